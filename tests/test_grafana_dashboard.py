"""examples/grafana-dashboard.json: valid JSON, only the exporter's metric names, valid PromQL.

The names are smokeping_prober's (so its users' dashboards and this one read either
exporter) plus trioping's own; a typo in a name shows as an empty panel, never as an error
in Grafana, so it is checked here.  The queries are then run by a real Prometheus against a
small exporter of those metrics whose loss is known (one probe in five unanswered).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from tests.conftest import REPO
from tests.promlab import PromLabs, ScrapeJob, free_port, value

DASHBOARD = REPO / "examples" / "grafana-dashboard.json"
SMOKEPING = ("host", "ip", "source", "tos")
BUCKETS = [5e-05 * 2**i for i in range(20)]
# The exporter's metric names (the series names a query may use) and their labels.
METRICS = {
    "smokeping_requests_total": SMOKEPING,
    "smokeping_response_duration_seconds_bucket": (*SMOKEPING, "le"),
    "smokeping_response_duration_seconds_count": SMOKEPING,
    "smokeping_response_duration_seconds_sum": SMOKEPING,
    "smokeping_response_ttl": SMOKEPING,
    "smokeping_response_duplicates_total": SMOKEPING,
    "smokeping_send_errors_total": SMOKEPING,
    "smokeping_receive_errors_total": SMOKEPING,
    "trioping_late_replies_total": ("host", "ip"),
    "trioping_invalid_replies_total": ("host", "ip", "reason"),
    "trioping_icmp_errors_total": ("host", "ip", "kind"),
    "trioping_kernel_receive_drops_total": (),
    "trioping_probes_in_flight": (),
}
TARGET_LABELS = ("instance", "job")  # added by Prometheus to every scraped series
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
OUR_PREFIX = re.compile(r"\b(?:smokeping|trioping)_[a-z0-9_]+")


def load() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.values():
            yield from walk(child)
    elif isinstance(node, list):
        for child in node:
            yield from walk(child)


def panel_queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in walk(dashboard["panels"]) for target in panel.get("targets", [])]


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    return [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]


def test_dashboard_is_valid_json_with_the_expected_parts() -> None:
    dashboard = load()
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["host"]["type"] == "query"
    assert variables["host"]["multi"]
    panels = list(walk(dashboard["panels"]))
    titles = {panel.get("title") for panel in panels}
    assert {"Packet loss", "Median and p90 round-trip time"} <= titles
    (heatmap,) = [panel for panel in panels if panel.get("type") == "heatmap"]
    assert heatmap["repeat"] == "host"
    ids = [panel["id"] for panel in panels if "gridPos" in panel]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if "targets" in panel:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_only_the_exporters_metric_names_and_labels_are_used() -> None:
    dashboard = load()
    queries = panel_queries(dashboard) + variable_queries(dashboard)
    used: set[str] = set()
    for query in queries:
        for name, matchers in SELECTOR.findall(query):
            assert name in METRICS, f"{name} in {query}"
            used.add(name)
            for matcher in filter(None, (m.strip() for m in matchers.split(","))):
                label = re.split(r"[=!~]", matcher, maxsplit=1)[0].strip()
                assert label in METRICS[name] + TARGET_LABELS, f"label {label} of {name} in {query}"
        for name in OUR_PREFIX.findall(query):
            assert name in METRICS, f"{name} in {query}"
    assert used >= {
        "smokeping_requests_total",
        "smokeping_response_duration_seconds_bucket",
        "smokeping_response_duration_seconds_count",
    }


def promql(query: str) -> str:
    """A dashboard query with Grafana's variables filled in as Grafana would."""
    return (
        query.replace('host="$host"', 'host="127.0.0.1"')
        .replace("$host", ".*")
        .replace("$instance", ".*")
        .replace("$__rate_interval", "10s")
    )


def label_values_selector(query: str) -> str:
    """The series selector inside Grafana's ``label_values(SELECTOR, label)``."""
    match = re.fullmatch(r"label_values\((.*), *\w+\)", query)
    assert match is not None, query
    return match[1]


class SmokepingLike:
    """The exporter's metrics for one host, five probes a tick and four answers in 1-2 ms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = {"host": "127.0.0.1", "ip": "127.0.0.1", "source": "", "tos": "0"}
        self.requests = Counter("smokeping_requests", "Requests.", list(labels), registry=self.registry).labels(
            **labels
        )
        self.durations = Histogram(
            "smokeping_response_duration_seconds", "RTT.", list(labels), buckets=BUCKETS, registry=self.registry
        ).labels(**labels)
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.stop = threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)
        self.ticker.start()

    def _tick(self) -> None:
        while not self.stop.wait(0.1):
            self.requests.inc(5)
            for _ in range(4):
                self.durations.observe(0.0012)

    def close(self) -> None:
        self.stop.set()
        self.ticker.join(timeout=5)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def smokeping_like() -> Iterator[SmokepingLike]:
    exporter = SmokepingLike()
    try:
        yield exporter
    finally:
        exporter.close()


def test_prometheus_accepts_every_query_and_computes_loss_and_median(
    promlab: PromLabs, smokeping_like: SmokepingLike
) -> None:
    dashboard = load()
    lab = promlab([ScrapeJob("smokeping", [f"127.0.0.1:{smokeping_like.port}"])])
    for query in panel_queries(dashboard):
        lab.query(promql(query))  # raises on a query Prometheus refuses
    for query in variable_queries(dashboard):
        lab.query(promql(label_values_selector(query)))
    (loss,) = [p for p in walk(dashboard["panels"]) if p.get("title") == "Packet loss"]
    result = lab.wait_for(promql(loss["targets"][0]["expr"]), lambda r: value(r) is not None, timeout=30)
    assert value(result) == pytest.approx(20, abs=5)
    (rtt,) = [p for p in walk(dashboard["panels"]) if p.get("title") == "Median and p90 round-trip time"]
    median = value(lab.query(promql(rtt["targets"][0]["expr"])))
    assert median is not None
    assert 0.0008 <= median <= 0.0016
    (host_variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "host"]
    hosts = lab.query(promql(label_values_selector(host_variable["definition"])))
    assert {sample["metric"]["host"] for sample in hosts} == {"127.0.0.1"}
