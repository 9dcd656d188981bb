"""The Prometheus fixture (tests/promlab.py) against small real exporters.

A prometheus_client server in a thread is scraped, queried and reloaded; and a
prometheus_client ASGI app behind the web config (TLS and bcrypt basic auth) under
hypercorn's Trio worker shows that a real Prometheus scrapes through it with the right
password and gets 401 with a wrong one.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import bcrypt
import pytest
import trio
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry, Counter, Gauge, make_asgi_app, start_http_server

from tests.pki import HypercornWebConfig, make_certs
from tests.promlab import PromLabs, ScrapeJob, free_port, value, values
from trioping._webconfig import basic_auth_middleware, load_web_config


class TinyExporter:
    """prometheus_client's own HTTP server on 127.0.0.1, in a thread, with a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tiny_requests", "Requests sent.", ["host"], registry=self.registry)
        self.temperature = Gauge("tiny_temperature_celsius", "A gauge.", registry=self.registry)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.target = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def tiny() -> Iterator[TinyExporter]:
    exporter = TinyExporter()
    try:
        yield exporter
    finally:
        exporter.close()


def test_scrape_query_and_targets(promlab: PromLabs, tiny: TinyExporter) -> None:
    tiny.requests.labels("127.0.0.1").inc(5)
    tiny.temperature.set(21.5)
    lab = promlab([ScrapeJob("tiny", [tiny.target])])
    lab.wait_for('up{job="tiny"}', lambda r: value(r) == 1, timeout=15)
    assert value(lab.query('tiny_requests_total{host="127.0.0.1"}')) == 5
    assert value(lab.query("tiny_temperature_celsius")) == 21.5
    assert value(lab.query("1 + 1")) == 2  # a scalar result, as one sample
    (target,) = lab.targets()
    assert target["health"] == "up"
    assert target["labels"]["job"] == "tiny"
    assert target["scrapeUrl"] == f"http://{tiny.target}/metrics"
    tiny.requests.labels("127.0.0.1").inc(3)
    lab.wait_for("tiny_requests_total", lambda r: value(r) == 8, timeout=10)


def test_reload_through_the_api_and_sighup(promlab: PromLabs, tiny: TinyExporter) -> None:
    other = TinyExporter()
    try:
        lab = promlab([ScrapeJob("tiny", [tiny.target])])
        lab.wait_for("up", lambda r: values(r, "job") == {"tiny": 1}, timeout=15)
        lab.reload([ScrapeJob("tiny", [tiny.target]), ScrapeJob("other", [other.target])])
        lab.wait_for("up", lambda r: values(r, "job") == {"tiny": 1, "other": 1}, timeout=15)
        lab.reload([ScrapeJob("renamed", [other.target], labels={"vantage": "lab"})], signal_hup=True)
        lab.wait_for('up{job="renamed"}', lambda r: values(r, "vantage") == {"lab": 1}, timeout=15)
        assert {t["labels"]["job"] for t in lab.targets()} == {"renamed"}
    finally:
        other.close()


def test_a_refused_config_is_reported(promlab: PromLabs, tiny: TinyExporter) -> None:
    lab = promlab([ScrapeJob("tiny", [tiny.target])])
    with pytest.raises(AssertionError, match="reload refused"):
        lab.reload([ScrapeJob("tiny", [tiny.target]), ScrapeJob("tiny", [tiny.target])])  # duplicate job name


async def test_prometheus_scrapes_through_tls_and_basic_auth(promlab: PromLabs, tmp_path: Path) -> None:
    """The web config as the exporter uses it, seen from a real Prometheus."""
    certs = make_certs(tmp_path / "pki")
    hashed = bcrypt.hashpw(b"scrape-me", bcrypt.gensalt(4)).decode()
    web_yml = certs.ca.parent / "web.yml"
    web_yml.write_text(
        f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prom: {hashed}\n"
    )
    web = load_web_config(web_yml)
    registry = CollectorRegistry()
    Counter("guarded_events", "Behind a password.", registry=registry).inc(7)
    config = HypercornWebConfig(web)
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1
    target = f"127.0.0.1:{port}"
    ca = str(certs.ca)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve, shutdown_trigger=stop.wait), basic_auth_middleware(make_asgi_app(registry), web), config
        )
        lab = await promlab.start(
            [
                ScrapeJob("right", [target], scheme="https", ca_file=ca, basic_auth=("prom", "scrape-me")),
                ScrapeJob("wrong", [target], scheme="https", ca_file=ca, basic_auth=("prom", "guess")),
                ScrapeJob("none", [target], scheme="https", ca_file=ca),
            ]
        )
        with trio.fail_after(20):
            await lab.wait_for_async("up", lambda r: len(r) == 3)
        assert values(await lab.query_async("up"), "job") == {"right": 1, "wrong": 0, "none": 0}
        assert value(await lab.query_async("guarded_events_total")) == 7
        errors = {t["labels"]["job"]: t["lastError"] for t in await lab.targets_async()}
        assert errors["right"] == ""
        assert "401" in errors["wrong"]
        assert "401" in errors["none"]
        stop.set()
