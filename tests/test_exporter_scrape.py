"""A scrape's two halves, without a process: the copy of every host's counts on the Trio
thread, and the text made from it away from it."""

from __future__ import annotations

import gc
import threading
import tracemalloc
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from trioping import _exporter as exporter_module
from trioping._exporter import Exporter, Service, Settings, TargetKey
from trioping._exporter_config import DEFAULT_BUCKETS, TargetGroup
from trioping._exporter_config import load_config as load_config_file
from trioping._exporter_metrics import HostSeries, render, snapshot


def hosts(count: int) -> list[HostSeries]:
    made = []
    for i in range(count):
        address = f"127.9.{i // 256}.{i % 256}"
        series = HostSeries(address, address, "", 0, len(DEFAULT_BUCKETS))
        series.buckets[i % len(series.buckets)] = 1000 + i
        series.transmitted = 2000 + i
        series.rtt_sum = 0.5 + i
        if i % 97 == 0:
            series.invalid["truncated"] = 3
            series.icmp_errors["host-unreachable"] = 2
        made.append(series)
    return made


def settings(config_file: str | None = None) -> Settings:
    return Settings(
        hosts=[],
        config_file=config_file,
        listen=[],
        telemetry_path="/metrics",
        web_config_file=None,
        buckets=DEFAULT_BUCKETS,
        interval=1.0,
        size=56,
        tos=0,
        protocol="icmp",
        timeout=None,
        resolve_every=300.0,
    )


def test_the_copy_sets_off_no_garbage_collection() -> None:
    """An object per host (tuples, lists) made on the Trio thread at each scrape set off ~50
    of the collector's passes, among them full ones over the whole heap: with 10,000 hosts
    the probing loop stood still for 50-200 ms at each scrape, measured here."""
    series = hosts(3000)
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        frozen = snapshot(series, len(DEFAULT_BUCKETS))
    finally:
        gc.callbacks.remove(count)
    assert len(frozen) == 3000
    assert len(collections) <= 1, collections  # an object per host: about 3000 / 700 of them


def test_the_text_has_every_hosts_counts() -> None:
    series = hosts(300)
    text = b"".join(render(snapshot(series, len(DEFAULT_BUCKETS)), DEFAULT_BUCKETS)).decode()
    samples = {
        (sample.name, sample.labels.get("host"), sample.labels.get("le"), sample.labels.get("reason")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    for i, s in enumerate(series):
        assert samples[("smokeping_requests_total", s.host, None, None)] == 2000 + i
        assert samples[("smokeping_response_duration_seconds_count", s.host, None, None)] == 1000 + i
        assert samples[("smokeping_response_duration_seconds_sum", s.host, None, None)] == 0.5 + i
        assert samples[("smokeping_response_duration_seconds_bucket", s.host, "+Inf", None)] == 1000 + i
        first = i % len(s.buckets)
        if first > 0:
            below = repr(DEFAULT_BUCKETS[first - 1]) if first - 1 < len(DEFAULT_BUCKETS) else "+Inf"
            assert samples[("smokeping_response_duration_seconds_bucket", s.host, below, None)] == 0
        if i % 97 == 0:
            assert samples[("trioping_invalid_replies_total", s.host, None, "truncated")] == 3
        else:
            assert ("trioping_invalid_replies_total", s.host, None, "truncated") not in samples


async def test_a_scrape_is_sent_as_it_is_made_not_held_whole(nursery: trio.Nursery) -> None:
    """At 10,000 hosts the text is 30 MB: held whole, the process grew by that much at
    every scrape.  Made and sent a chunk at a time, a scrape holds a chunk or two."""
    exporter = Exporter(nursery, DEFAULT_BUCKETS, None, 300.0)
    for series in hosts(4000):
        key = TargetKey(series.host, "", 0, 1.0, 56, "ip", "icmp")
        exporter.targets[key] = series
    service = Service(settings(), exporter)
    sent = bytearray()
    held: list[int] = []

    async def receive() -> MutableMapping[str, Any]:
        raise AssertionError("a GET has no body to read")

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            held.append(tracemalloc.get_traced_memory()[0] - start)
            if len(sent) < 100_000:
                sent.extend(message["body"][:1000])
            total.append(len(message["body"]))

    total: list[int] = []
    scope = {"type": "http", "path": "/metrics", "method": "GET", "headers": []}
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        await service.app(scope, receive, send)
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    body = sum(total)
    assert body > 10_000_000  # 4,000 hosts: 12 MB
    assert bytes(sent).startswith(b"# HELP smokeping_requests_total")
    assert len(total) > 5
    assert peak < body / 2, (peak, body, held)  # held whole: more than the body


async def test_a_reload_cancelled_after_resolving_still_applies_whole(nursery: trio.Nursery) -> None:
    """A ``POST /-/reload`` whose client goes away is cancelled: half-applied, hosts were
    dropped and the hosts replacing them never started (real pinging, on loopback)."""
    exporter = Exporter(nursery, DEFAULT_BUCKETS, 0.5, 300.0)
    await exporter.start_many([TargetGroup(hosts=("127.9.0.1", "127.9.0.2"), interval=0.05)])
    resolve_all = exporter._resolve_all
    scope = trio.CancelScope()

    async def resolve_then_cancel(keys: list[TargetKey]) -> dict[TargetKey, str]:
        found = await resolve_all(keys)
        scope.cancel()  # as the client's disconnect would, once names are resolved
        return found

    exporter._resolve_all = resolve_then_cancel  # type: ignore[method-assign]
    with scope:
        await exporter.apply([TargetGroup(hosts=("127.9.0.2", "127.9.0.3"), interval=0.07)])
    assert {key.host for key in exporter.targets} == {"127.9.0.2", "127.9.0.3"}
    with trio.fail_after(10):
        while not all(s.received for s in exporter.targets.values()):  # noqa: ASYNC110  (as a scrape polls)
            await trio.sleep(0.02)
    nursery.cancel_scope.cancel()


def test_one_host_twice_with_two_tos_values_makes_no_duplicate_series() -> None:
    """A host may be listed twice with different source or tos (two series in smokeping's
    families); trioping's own families must tell them apart too, or Prometheus keeps one
    of the two samples and drops the other as a duplicate."""
    low = HostSeries("127.9.0.1", "127.9.0.1", "", 0, len(DEFAULT_BUCKETS))
    high = HostSeries("127.9.0.1", "127.9.0.1", "", 0x10, len(DEFAULT_BUCKETS))
    low.late, high.late = 1, 2
    low.invalid["truncated"] = high.invalid["truncated"] = 3
    low.icmp_errors["host-unreachable"] = high.icmp_errors["host-unreachable"] = 4
    text = b"".join(render(snapshot([low, high], len(DEFAULT_BUCKETS)), DEFAULT_BUCKETS)).decode()
    seen: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        identity = line.rsplit(" ", 1)[0]
        assert identity not in seen, identity
        seen.add(identity)
    assert 'trioping_late_replies_total{host="127.9.0.1",ip="127.9.0.1",source="",tos="16"} 2' in text


async def test_a_monitor_has_room_for_every_silent_hosts_probes_in_flight(nursery: trio.Nursery) -> None:
    """A silent host has ``timeout / interval`` probes waiting at any time, and a monitor
    stops sending when its buffer is full of them: 10,000 hosts silent with a 10 s timeout
    (an outage upstream) held back every host's probes, the live ones' too."""
    exporter = Exporter(nursery, DEFAULT_BUCKETS, 10.0, 300.0)
    await exporter.start_many([TargetGroup(hosts=("127.9.0.1",), interval=1.0)])
    (monitor,) = exporter._monitors.values()
    assert monitor.batch.plan.buffer >= 65536 * 11
    nursery.cancel_scope.cancel()


async def test_hosts_added_by_a_reload_are_spread_over_their_interval(nursery: trio.Nursery) -> None:
    """Hosts a reload adds all at once first probe over one interval, as at start-up: all
    added in the same instant, their probes would leave (and their replies come back, into
    one receive buffer) in the same millisecond of every interval, forever."""
    exporter = Exporter(nursery, DEFAULT_BUCKETS, 0.5, 300.0)
    await exporter.start_many([TargetGroup(hosts=("127.9.0.1",), interval=1.0)])
    many = tuple(f"127.9.1.{i}" for i in range(1, 201))
    await exporter.apply([TargetGroup(hosts=("127.9.0.1", *many), interval=1.0)])
    (monitor,) = exporter._monitors.values()
    for _ in range(10):  # every task the reload started runs its first step
        await trio.lowlevel.checkpoint()
    assert 1 < len(monitor.added) <= 100, len(monitor.added)  # a 50th of them a step, not all 201 at once
    nursery.cancel_scope.cancel()


async def test_a_stop_right_after_a_start_is_clean() -> None:
    """SIGTERM just after start-up (or a reload) cancels tasks that were about to add hosts to
    a monitor whose own tasks were already winding down: that was a RuntimeError ("Nursery
    is closed to new arrivals") and a traceback at exit."""
    for _ in range(5):
        async with trio.open_nursery() as nursery:
            exporter = Exporter(nursery, DEFAULT_BUCKETS, 0.5, 300.0)
            await exporter.start_many([TargetGroup(hosts=("127.9.0.1", "127.9.0.2"), interval=1.0)])
            nursery.cancel_scope.cancel()


async def test_a_reload_parses_its_file_away_from_the_trio_thread(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing a 10,000-host file takes ~0.4 s: on the Trio thread, every reload stopped the
    probing (and the scrapes) for that long."""
    config = tmp_path / "targets.yml"
    config.write_text("targets:\n- interval: 1s\n  hosts: [127.9.0.1]\n")
    parsed_on: list[threading.Thread] = []

    def load_config(path: str | Path) -> list[TargetGroup]:
        parsed_on.append(threading.current_thread())
        return load_config_file(path)

    exporter = Exporter(nursery, DEFAULT_BUCKETS, 0.5, 300.0)
    service = Service(settings(config_file=str(config)), exporter)
    await exporter.start_many(exporter_module.read_groups(service.settings))
    monkeypatch.setattr(exporter_module, "load_config", load_config)
    assert await service.reload() is None
    assert parsed_on
    assert threading.main_thread() not in parsed_on
    nursery.cancel_scope.cancel()
