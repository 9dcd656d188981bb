"""``trioping-exporter``: a Prometheus exporter with smokeping_prober's flags, file and metrics.

Built on the library's monitor (:meth:`Pinger.start_fanout` with ``count=None``): one
pinger per distinct (protocol, source, tos) -- each opens one socket per address family --
and under it one monitor per distinct (interval, size), to which hosts are added and from
which they are removed as the configuration changes.  A consumer task per monitor turns
each result into its host's counts (:mod:`._exporter_metrics`).  The HTTP side is an ASGI
app served by hypercorn's Trio worker in the same event loop.

Reload (SIGHUP, ``POST /-/reload``) compares the new targets with the running ones: a
target whose host, source, tos, interval, size, network and protocol are unchanged keeps
its series and counts, a removed one disappears, a new one starts; a configuration that
fails to load or resolve is reported on stderr and the running one stays.
"""

from __future__ import annotations

import argparse
import errno
import html
import math
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ._admission import fast_literal
from ._errors import PermissionDeniedError, TriopingError
from ._exporter_config import (
    DEFAULT_BUCKETS,
    ConfigError,
    TargetGroup,
    check_unique,
    format_duration,
    load_config,
    parse_buckets,
    parse_duration,
)
from ._exporter_metrics import CONTENT_TYPE, HostSeries, Snapshot, render, snapshot
from ._fanout import Fanout, HostError, HostResult
from ._packet import Family
from ._pinger import Pinger, open_pinger
from ._resolve import resolve

PROG = "trioping-exporter"
EXIT_ERROR = 2
_SPREAD_ABOVE = 64
"""Hosts added at once beyond this many are spread over one interval, so that their probes
(which repeat from their first send) do not all leave in the same millisecond forever."""
_SPREAD_STEPS = 50
_RESOLVE_CONCURRENCY = 32
_MONITOR_HOSTS = 65536
"""Silent hosts a monitor keeps probing on time.  A monitor's buffer counts its probes in
flight, and a silent host has ``timeout / interval`` of them waiting at any time: with the
library's default buffer, 10,000 hosts going silent at once with ``--ping.timeout=10s``
(an upstream outage, just when the exporter matters) held every host's sending back."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def warn(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class TargetKey:
    """What makes a target the same one across a reload (and so keeps its counts)."""

    host: str
    source: str
    tos: int
    interval: float
    size: int
    network: str
    protocol: str
    labels: tuple[tuple[str, str], ...] = ()


def target_keys(groups: Sequence[TargetGroup]) -> list[TargetKey]:
    return [
        TargetKey(host, g.source, g.tos, g.interval, g.size, g.network, g.protocol, g.labels)
        for g in groups
        for host in g.hosts
    ]


_FAMILY = {"ip": None, "ip4": Family.V4, "ip6": Family.V6}


class _PingerSlot:
    """A pinger of its own task, kept while a monitor uses it."""

    def __init__(self, protocol: str, source: str, tos: int) -> None:
        self.protocol = protocol
        self.source = source
        self.tos = tos
        self.pinger: Pinger | None = None
        self.stop = trio.Event()
        self.monitors = 0

    async def run(self, *, task_status: trio.TaskStatus[Pinger]) -> None:
        async with open_pinger(
            socket_kind="datagram" if self.protocol == "udp" else None,
            source=self.source or None,
            tos=self.tos or None,
        ) as pinger:
            self.pinger = pinger
            task_status.started(pinger)
            await self.stop.wait()


class _Monitor:
    """One library monitor (a fan-out with count=None) and the series of its hosts."""

    def __init__(self, slot: _PingerSlot, interval: float, size: int, batch: Fanout) -> None:
        self.slot = slot
        self.interval = interval
        self.size = size
        self.batch = batch
        self.by_address: dict[str, list[HostSeries]] = {}
        self.added: set[str] = set()
        self.consumer = trio.CancelScope()


class Exporter:
    """The running targets, their monitors and series; reloads and re-resolution."""

    def __init__(
        self, nursery: trio.Nursery, bounds: Sequence[float], timeout: float | None, resolve_every: float
    ) -> None:
        self._nursery = nursery
        self.bounds = tuple(bounds)
        self._timeout = timeout
        self._resolve_every = resolve_every
        self.targets: dict[TargetKey, HostSeries] = {}
        self._monitor_of: dict[TargetKey, _Monitor] = {}
        self._slots: dict[tuple[str, str, int], _PingerSlot] = {}
        self._monitors: dict[tuple[str, str, int, float, int], _Monitor] = {}
        self._retired_drops = 0
        self._lock = trio.Lock()
        self.reload_ok = True
        self.reload_time = time.time()
        self.errors_reported: set[tuple[TargetKey, str]] = set()

    # -- applying a configuration ------------------------------------------------------------

    async def apply(self, groups: Sequence[TargetGroup]) -> None:
        """Make the running targets those of *groups*; raises :class:`ConfigError` (and
        changes nothing) when a new target's name does not resolve.

        A target whose series stay the same (host, source, tos and address) but whose
        interval, size or protocol changed moves to its new monitor with its counts, so that
        none of its counters goes back."""
        keys = target_keys(groups)
        if not keys:
            raise ConfigError("no targets: give hosts as arguments or in --config.file")
        async with self._lock:
            wanted = dict.fromkeys(keys)
            new = [key for key in wanted if key not in self.targets]
            addresses = await self._resolve_all(new)
            # From here on, all or nothing: a reload cancelled half-way (its HTTP client gone)
            # would leave hosts dropped and their successors never started.
            with trio.CancelScope(shield=True):
                dropped = [key for key in self.targets if key not in wanted]
                self._refresh_transmitted()
                leaving = {(k.host, k.source, k.tos, k.labels, self.targets[k].ip): self.targets[k] for k in dropped}
                for key in dropped:
                    self._drop(key)
                pending: dict[int, tuple[_Monitor, list[str]]] = {}
                for key in new:
                    moving = leaving.pop((key.host, key.source, key.tos, key.labels, addresses[key]), None)
                    if moving is not None:
                        moving.sent_base = moving.transmitted
                    monitor = await self._start(key, addresses[key], moving, spread=False)
                    pending.setdefault(id(monitor), (monitor, []))[1].append(addresses[key])
                for monitor, monitor_addresses in pending.values():  # many hosts added at once: spread
                    self._nursery.start_soon(self._spread, monitor, list(dict.fromkeys(monitor_addresses)))
                self.targets = {key: self.targets[key] for key in wanted}  # the configuration's order

    async def _resolve_all(self, keys: list[TargetKey]) -> dict[TargetKey, str]:
        found: dict[TargetKey, str] = {}
        failures: list[str] = []
        slots = trio.Semaphore(_RESOLVE_CONCURRENCY)

        async def one(key: TargetKey) -> None:
            async with slots:
                try:
                    found[key] = (await resolve(key.host, _FAMILY[key.network]))[0]
                except TriopingError as exc:
                    failures.append(str(exc))

        literal = [key for key in keys if fast_literal(key.host) is not None and _FAMILY[key.network] is None]
        for key in literal:
            literal_address = fast_literal(key.host)
            assert literal_address is not None
            found[key] = literal_address[0]
        async with trio.open_nursery() as nursery:
            for key in keys:
                if key not in found:
                    nursery.start_soon(one, key)
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise ConfigError(f"cannot resolve {failures[0]}{more}")
        return found

    async def _start(
        self, key: TargetKey, address: str, series: HostSeries | None = None, *, spread: bool = True
    ) -> _Monitor:
        if series is None:
            series = HostSeries(key.host, address, key.source, key.tos, len(self.bounds), key.labels)
        self.targets[key] = series
        monitor = await self._monitor(key)
        self._monitor_of[key] = monitor
        monitor.by_address.setdefault(address, []).append(series)
        if spread:
            self._nursery.start_soon(self._spread, monitor, [address])
        return monitor

    def _drop(self, key: TargetKey) -> None:
        series = self.targets.pop(key)
        monitor = self._monitor_of.pop(key)
        sharing = monitor.by_address.get(series.ip, [])
        if series in sharing:
            sharing.remove(series)
        if not sharing:
            monitor.by_address.pop(series.ip, None)
            if series.ip in monitor.added:
                monitor.added.discard(series.ip)
                monitor.batch.remove(series.ip)
        if not monitor.by_address:
            self._close_monitor(monitor)

    async def _monitor(self, key: TargetKey) -> _Monitor:
        protocol_key = (key.protocol, key.source, key.tos)
        monitor_key = (*protocol_key, key.interval, key.size)
        monitor = self._monitors.get(monitor_key)
        if monitor is not None:
            return monitor
        slot = self._slots.get(protocol_key)
        if slot is None:
            slot = _PingerSlot(*protocol_key)
            await self._nursery.start(slot.run)
            self._slots[protocol_key] = slot
        assert slot.pinger is not None
        timeout = self._timeout if self._timeout is not None else max(2.0, key.interval)
        batch = await slot.pinger.start_fanout(
            self._nursery,
            [],
            count=None,
            interval=key.interval,
            rate=None,
            timeout=timeout,
            size=key.size,
            buffer=_MONITOR_HOSTS * (math.ceil(timeout / key.interval) + 1),
        )
        monitor = _Monitor(slot, key.interval, key.size, batch)
        slot.monitors += 1
        self._monitors[monitor_key] = monitor
        self._nursery.start_soon(self._consume, monitor)
        return monitor

    def _close_monitor(self, monitor: _Monitor) -> None:
        for monitor_key, known in list(self._monitors.items()):
            if known is monitor:
                del self._monitors[monitor_key]
        monitor.consumer.cancel()
        monitor.batch._stop()  # aclose() without its checkpoint: callers here must not wait
        slot = monitor.slot
        slot.monitors -= 1
        if slot.monitors == 0:
            for key, known_slot in list(self._slots.items()):
                if known_slot is slot:
                    del self._slots[key]
            if slot.pinger is not None:
                self._retired_drops += slot.pinger.kernel_drops
            slot.stop.set()

    async def _spread(self, monitor: _Monitor, addresses: list[str]) -> None:
        """Add *addresses* to the monitor, spread over one interval when there are many."""
        steps = 1 if len(addresses) <= _SPREAD_ABOVE else _SPREAD_STEPS
        per_step = -(-len(addresses) // steps)
        for step in range(steps):
            if monitor.batch.finished:
                return
            for address in addresses[step * per_step : (step + 1) * per_step]:
                if address in monitor.by_address and address not in monitor.added:
                    try:
                        monitor.batch.add(address)
                    except trio.ClosedResourceError:
                        return  # stopping (or the monitor closed): nothing left to add to
                    monitor.added.add(address)
            if step + 1 < steps:
                await trio.sleep(monitor.interval / steps)

    async def start_many(self, groups: Sequence[TargetGroup]) -> None:
        """:meth:`apply` for the first configuration: hosts are added to their monitors in
        bulk and spread over their interval."""
        keys = target_keys(groups)
        if not keys:
            raise ConfigError("no targets: give hosts as arguments or in --config.file")
        async with self._lock:
            addresses = await self._resolve_all(list(dict.fromkeys(keys)))
            pending: dict[int, tuple[_Monitor, list[str]]] = {}
            for key in dict.fromkeys(keys):
                address = addresses[key]
                series = HostSeries(key.host, address, key.source, key.tos, len(self.bounds), key.labels)
                self.targets[key] = series
                monitor = await self._monitor(key)
                self._monitor_of[key] = monitor
                monitor.by_address.setdefault(address, []).append(series)
                pending.setdefault(id(monitor), (monitor, []))[1].append(address)
            for monitor, batch_addresses in pending.values():
                self._nursery.start_soon(self._spread, monitor, list(dict.fromkeys(batch_addresses)))

    # -- results -------------------------------------------------------------------------------

    async def _consume(self, monitor: _Monitor) -> None:
        """Count every result of *monitor* into its host's series, taking all that is queued
        at each wake-up (one checkpoint per wake-up, not per result)."""
        with monitor.consumer:
            async for first in monitor.batch:
                self._take(monitor, first)
                self._drain(monitor)

    def _drain(self, monitor: _Monitor) -> None:
        """Take every result already queued, without a checkpoint."""
        batch = monitor.batch
        while True:
            try:
                item = batch.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            self._take(monitor, item)

    def _take(self, monitor: _Monitor, item: HostResult | HostError) -> None:
        if type(item) is HostResult:
            for series in monitor.by_address.get(item.host, ()):
                series.record(item.result, self.bounds)
        else:
            assert isinstance(item, HostError)
            self._host_error(monitor, item)

    def _host_error(self, monitor: _Monitor, item: HostError) -> None:
        for series in monitor.by_address.get(item.host, ()):
            series.error = str(item.error)
            series.up = False
            key = next((k for k, s in self.targets.items() if s is series), None)
            if key is not None and (key, series.error) not in self.errors_reported:
                self.errors_reported.add((key, series.error))
                warn(f"{series.host}: {series.error}")
        monitor.added.discard(item.host)  # the library dropped it; a reload may try again

    # -- re-resolution ---------------------------------------------------------------------------

    async def reresolve_forever(self) -> None:
        """Resolve names again every so often: a host whose address changed gets a new
        ``ip`` series (and the old one ends), as smokeping_prober does."""
        while True:
            await trio.sleep(self._resolve_every)
            async with self._lock:
                for key, series in list(self.targets.items()):
                    if fast_literal(key.host) is not None:
                        continue
                    try:
                        address, _ = await resolve(key.host, _FAMILY[key.network])
                    except TriopingError:
                        continue  # keep probing the last address known
                    if self.targets.get(key) is series and address != series.ip:
                        with trio.CancelScope(shield=True):  # not dropped without its successor
                            order = list(self.targets)
                            self._drop(key)
                            await self._start(key, address)
                            self.targets = {k: self.targets[k] for k in order if k in self.targets}

    # -- what a scrape reads ---------------------------------------------------------------------

    def freeze(self) -> Snapshot:
        """Every host's counts at this instant (no checkpoint inside): the library's sent
        counts are read after the replies counted here, so answers never exceed requests.
        Results already queued are taken first, so that a scrape does not show as lost a
        probe whose answer was waiting for the consumer."""
        self._refresh_transmitted()
        return snapshot(self.targets.values(), len(self.bounds))

    def _refresh_transmitted(self) -> None:
        for monitor in self._monitors.values():
            if not monitor.batch.finished:
                self._drain(monitor)
            by_address = monitor.by_address
            for address, sent in monitor.batch.transmitted().items():  # hosts are added by address
                for series in by_address.get(address, ()):
                    series.transmitted = series.sent_base + sent

    @property
    def kernel_drops(self) -> int:
        return self._retired_drops + sum(s.pinger.kernel_drops for s in self._slots.values() if s.pinger is not None)

    @property
    def in_flight(self) -> int:
        return sum(m.batch.progress.outstanding for m in self._monitors.values())

    def rows(self) -> Iterator[tuple[TargetKey, HostSeries]]:
        self._refresh_transmitted()
        yield from self.targets.items()


class _ExporterCollector(Collector):
    """The exporter's own figures, through prometheus_client (few samples, read live)."""

    def __init__(self, exporter: Exporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterator[Any]:
        e = self._exporter
        yield CounterMetricFamily(
            "smokeping_receive_errors",
            "The number of errors when Pinger attempts to receive packets (trioping: receive errors end the "
            "exporter, so this stays 0; rejected replies are trioping_invalid_replies_total).",
            value=0,
        )
        yield CounterMetricFamily(
            "trioping_kernel_receive_drops",
            "Datagrams the kernel dropped because a socket receive buffer was full (SO_RXQ_OVFL).",
            value=e.kernel_drops,
        )
        yield GaugeMetricFamily(
            "trioping_probes_in_flight", "Probes sent and still waiting for a verdict.", e.in_flight
        )
        yield GaugeMetricFamily("trioping_targets", "Targets being probed.", len(e.targets))
        yield GaugeMetricFamily(
            "smokeping_prober_config_last_reload_successful",
            "smokeping_prober config loaded successfully.",
            1 if e.reload_ok else 0,
        )
        yield GaugeMetricFamily(
            "smokeping_prober_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            e.reload_time,
        )


@dataclass
class Settings:
    hosts: list[str]
    config_file: str | None
    listen: list[str]
    telemetry_path: str
    web_config_file: str | None
    buckets: tuple[float, ...]
    interval: float
    size: int
    tos: int
    protocol: str
    timeout: float | None
    resolve_every: float


def read_groups(settings: Settings) -> list[TargetGroup]:
    """The command line's hosts and the file's groups (raises ConfigError)."""
    groups: list[TargetGroup] = []
    if settings.hosts:
        groups.append(
            TargetGroup(
                hosts=tuple(settings.hosts),
                interval=settings.interval,
                size=settings.size,
                tos=settings.tos,
                protocol=settings.protocol,
            )
        )
    if settings.config_file is not None:
        groups.extend(load_config(settings.config_file))
    check_unique(groups, settings.config_file)
    return groups


class Service:
    """The exporter and its HTTP side in one Trio program."""

    def __init__(self, settings: Settings, exporter: Exporter) -> None:
        self.settings = settings
        self.exporter = exporter
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ProcessCollector(registry=None))
        self.registry.register(_ExporterCollector(exporter))

    async def reload(self) -> str | None:
        """Re-read the configuration; the error's one line, or None when it took effect."""
        try:
            # A 10,000-host file takes ~0.4 s to parse: off the Trio thread, or probing and
            # scrapes stand still for that long at every reload.
            groups = await trio.to_thread.run_sync(read_groups, self.settings)
            await self.exporter.apply(groups)
        except (ConfigError, TriopingError) as exc:
            self.exporter.reload_ok = False
            warn(f"reload failed, the running configuration stays: {exc}")
            return str(exc)
        self.exporter.reload_ok = True
        self.exporter.reload_time = time.time()
        warn(f"configuration reloaded: {len(self.exporter.targets)} targets")
        return None

    async def metrics(self, send: Send, method: str) -> None:
        """Answer a scrape, sending the text as it is made, a chunk (~1 MB) at a time.

        A scrape of 10,000 hosts is 30 MB: made whole before sending, it stood in memory at
        once (twice with two Prometheus servers scraping), and the process's RSS swung by
        that much at every scrape.  The counts are copied first, in one step, so that the
        text is one instant's even though it is made piece by piece.  Made here, a few
        milliseconds a chunk between checkpoints, not in a worker thread: a thread holding
        the GIL makes every socket call of the probing loop wait for it again (up to the 5 ms
        switch interval each), which stalled the loop longer and made a 10,000-host scrape
        take 0.4-1 s where this takes 0.2-0.26 s, measured here.  Sent without a length:
        HTTP/1.1 chunked.
        """
        frozen = self.exporter.freeze()
        own = generate_latest(self.registry)
        headers = [(b"content-type", CONTENT_TYPE.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        for chunk in render(frozen, self.exporter.bounds):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await trio.lowlevel.checkpoint()
        await send({"type": "http.response.body", "body": own})

    def index(self) -> bytes:
        rows = []
        for shown, (key, series) in enumerate(self.exporter.rows()):
            if shown >= 1000:
                break
            if series.error is not None:
                state = f"error: {series.error}"
            else:
                state = {None: "waiting", True: "up", False: "down"}[series.up]
            loss = "-"
            if series.transmitted:
                answered = series.received
                loss = f"{max(0, series.transmitted - answered) / series.transmitted:.1%}"
            rtt = "-" if series.last_rtt is None else f"{series.last_rtt * 1e3:.3f} ms"
            cells = [
                key.host,
                series.ip,
                key.source or "-",
                str(key.tos),
                format_duration(key.interval),
                str(series.transmitted),
                str(series.received),
                loss,
                rtt,
                state,
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        more = ""
        if len(self.exporter.targets) > 1000:
            more = f"<p>... and {len(self.exporter.targets) - 1000} more targets (see the metrics).</p>"
        path = html.escape(self.settings.telemetry_path)
        page = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>trioping exporter</title></head><body>"
            "<h1>trioping exporter</h1>"
            f"<p><a href='{path}'>Metrics</a> &middot; {len(self.exporter.targets)} targets &middot; "
            f"{self.exporter.in_flight} probes in flight &middot; last reload "
            f"{'succeeded' if self.exporter.reload_ok else 'FAILED (the previous configuration runs)'}</p>"
            "<table border='1' cellspacing='0' cellpadding='3'><tr><th>host</th><th>ip</th><th>source</th>"
            "<th>tos</th><th>interval</th><th>sent</th><th>answered</th><th>loss</th><th>last RTT</th>"
            "<th>state</th></tr>" + "".join(rows) + "</table>" + more + "</body></html>"
        )
        return page.encode()

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: the metrics, ``/``, ``/-/healthy`` and ``/-/reload``."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        status, content_type, body = 404, "text/plain; charset=utf-8", b"Not Found\n"
        if path == self.settings.telemetry_path and method in ("GET", "HEAD"):
            await self.metrics(send, method)
            return
        elif path == "/" and method in ("GET", "HEAD"):
            status, content_type, body = 200, "text/html; charset=utf-8", self.index()
        elif path == "/-/healthy" and method in ("GET", "HEAD"):
            status, body = 200, b"Healthy"
        elif path == "/-/reload":
            if method in ("POST", "PUT"):
                failure = await self.reload()
                status, body = (
                    (200, b"") if failure is None else (500, f"failed to reload config: {failure}\n".encode())
                )
            else:
                status, body = 405, b"This endpoint requires a POST request.\n"
        await self._respond(send, method, status, content_type, [body])

    @staticmethod
    async def _respond(send: Send, method: str, status: int, content_type: str, chunks: list[bytes]) -> None:
        """Send *chunks* as one response, chunk by chunk."""
        length = sum(len(chunk) for chunk in chunks)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(length).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if method == "HEAD":
            chunks = []
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index + 1 < len(chunks)})
        if not chunks:
            await send({"type": "http.response.body", "body": b""})


def _bind(address: str) -> str:
    """smokeping_prober's ``:9374`` (every address) in hypercorn's spelling."""
    if address.startswith(":"):
        return f"[::]{address}"
    return address


def _hypercorn_config(settings: Settings, web: Any) -> Any:
    from hypercorn.config import Config

    class _Config(Config):  # TLS from the web configuration's own context (client auth too)
        @property
        def ssl_enabled(self) -> bool:
            return web is not None and web.tls_files() is not None

        def create_ssl_context(self) -> Any:
            return None if web is None else web.ssl_context()

    config = _Config()
    config.bind = [_bind(a) for a in settings.listen]
    config.loglevel = "WARNING"
    config.accesslog = None
    config.graceful_timeout = 0.2
    return config


class _ServeError(TriopingError):
    pass


def _first_os_error(error: BaseException) -> OSError | None:
    if isinstance(error, OSError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_os_error(inner)
            if found is not None:
                return found
    return None


async def _serve(app: ASGIApp, config: Any, *, task_status: trio.TaskStatus[list[str]]) -> None:
    from hypercorn.trio import serve

    try:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]
    except (OSError, BaseExceptionGroup) as exc:
        os_error = _first_os_error(exc)
        if os_error is None:
            raise
        where = " ".join(config.bind)
        if os_error.errno == errno.EADDRINUSE:
            raise _ServeError(f"cannot listen on {where}: address already in use") from None
        raise _ServeError(f"cannot listen on {where}: {os_error.strerror or os_error}") from None


async def run_service(settings: Settings, groups: list[TargetGroup], web: Any) -> int:
    """The whole program under Trio: serve, probe, reload on SIGHUP, stop on SIGTERM/SIGINT."""
    await _check_privileges(settings, groups)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            exporter = Exporter(nursery, settings.buckets, settings.timeout, settings.resolve_every)
            service = Service(settings, exporter)
            app: ASGIApp = service.app
            if web is not None:
                from ._webconfig import basic_auth_middleware

                app = basic_auth_middleware(app, web)
            binds = await nursery.start(_serve, app, _hypercorn_config(settings, web))
            await exporter.start_many(groups)
            nursery.start_soon(exporter.reresolve_forever)
            warn(f"probing {len(exporter.targets)} targets; metrics on {', '.join(binds)}{settings.telemetry_path}")
            async for signum in signals:
                if signum == signal.SIGHUP:
                    nursery.start_soon(service.reload)
                else:
                    break
            nursery.cancel_scope.cancel()
    return 0


async def _check_privileges(settings: Settings, groups: list[TargetGroup]) -> None:
    """Open a socket of each kind the targets need, once, so that missing privileges are one
    line at start-up rather than an error per host."""
    for kind in sorted({g.protocol for g in groups}):
        async with open_pinger(socket_kind="datagram" if kind == "udp" else None) as pinger:
            for family in (Family.V4, Family.V6):
                try:
                    pinger.socket_kind(family)
                except PermissionDeniedError:
                    raise
                except TriopingError:
                    continue  # e.g. no IPv6 on this machine: that family's hosts say so
                break


# -- the command line -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not argparse's usage block
        self.exit(EXIT_ERROR, f"{PROG}: {message} (see --help)\n")


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (a Go duration such as 1s, 500ms or 1m)") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration must be more than zero, not {text!r}")
    return seconds


def _tos(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"must be from 0 to 255, not {text!r}")
    return value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 24 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"packet size must be in the range 24-65535, not {text}")
    return value


def _path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"must start with /, not {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Ping hosts forever and export smokeping_prober's metrics to Prometheus (its flags too).",
    )
    parser.add_argument("hosts", nargs="*", help="hosts to ping")
    parser.add_argument("--config.file", dest="config_file", metavar="FILE", help="smokeping_prober configuration YAML")
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        action="append",
        metavar="ADDR",
        help="address to listen on (repeatable; default :9374)",
    )
    parser.add_argument("--web.telemetry-path", dest="telemetry_path", type=_path, default="/metrics")
    parser.add_argument(
        "--web.config.file", dest="web_config_file", metavar="FILE", help="TLS and basic auth (exporter-toolkit format)"
    )
    parser.add_argument("--buckets", default=",".join(repr(b) for b in DEFAULT_BUCKETS), help="comma-separated")
    parser.add_argument("-i", "--ping.interval", dest="interval", type=_duration, default=1.0, help="default 1s")
    parser.add_argument("-s", "--ping.size", dest="size", type=_size, default=56, help="payload bytes, default 56")
    parser.add_argument("-O", "--ping.tos", dest="tos", type=_tos, default=0, help="ToS / traffic class, default 0")
    parser.add_argument(
        "--privileged",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="raw sockets only (--no-privileged: ICMP datagram sockets); default: raw, else datagram",
    )
    parser.add_argument(
        "--ping.timeout",
        dest="timeout",
        type=_duration,
        default=None,
        help="how long a probe waits for its reply before it is lost (default: the larger of 2s and the interval)",
    )
    parser.add_argument(
        "--resolve.interval",
        dest="resolve_every",
        type=_duration,
        default=300.0,
        help="how often names are resolved again (default 5m)",
    )
    parser.add_argument("--log.level", dest="log_level", choices=["debug", "info", "warn", "error"], default="info")
    parser.add_argument("--log.format", dest="log_format", choices=["logfmt", "json"], default="logfmt")
    parser.add_argument("--version", action="version", version=f"{PROG} (trioping) " + _version())
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def settings_from(argv: Sequence[str]) -> Settings:
    args = build_parser().parse_args(list(argv))
    try:
        buckets = parse_buckets(args.buckets)
    except ConfigError as exc:
        build_parser().error(str(exc))
    protocol = "icmp"
    if args.privileged is False:
        protocol = "udp"
    return Settings(
        hosts=list(args.hosts),
        config_file=args.config_file,
        listen=args.listen or [":9374"],
        telemetry_path=args.telemetry_path,
        web_config_file=args.web_config_file,
        buckets=buckets,
        interval=args.interval,
        size=args.size,
        tos=args.tos,
        protocol=protocol,
        timeout=args.timeout,
        resolve_every=args.resolve_every,
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = settings_from(sys.argv[1:] if argv is None else argv)
    try:
        groups = read_groups(settings)
        if not target_keys(groups):
            raise ConfigError("no targets: give hosts as arguments or in --config.file")
        web = None
        if settings.web_config_file is not None:
            try:
                from ._webconfig import load_web_config
            except ImportError:
                raise ConfigError("--web.config.file is not supported by this build") from None
            web = load_web_config(settings.web_config_file)
            web.ssl_context()  # certificate and key that do not load: one line now, not at the first scrape
        return trio.run(run_service, settings, groups, web)
    except TriopingError as exc:
        warn(str(exc))
        return EXIT_ERROR
    except BaseExceptionGroup as group:
        lone: BaseException = group
        while isinstance(lone, BaseExceptionGroup) and len(lone.exceptions) == 1:
            lone = lone.exceptions[0]
        if isinstance(lone, TriopingError):
            warn(str(lone))
            return EXIT_ERROR
        raise


def run() -> None:
    sys.exit(main())


__all__ = ["Exporter", "Service", "Settings", "main", "run"]
