"""Fan-out: many hosts from one pinger, results streamed as they arrive.

    async with pinger.fanout(hosts, rate=None) as batch:
        async for item in batch:
            ...
        batch.statistics  # one PingStats per host, in input order

How it stays cheap at 100,000 hosts (each figure measured with ``benchmarks/fanout.py``):

* One *engine* task per batch sends straight through :meth:`Transport.try_send` from
  absolute pace times (``start + k / rate``), bursting to catch up at most ``_MAX_LAG``
  behind.  No task, cancel scope or timer per probe.
* The timeout is the same for every probe of a batch, so the probes in flight form a deque
  ordered by deadline: the engine reaps its head, and sleeps until the next deadline, pace
  slot or event, whichever comes first.
* Every ``_DRAIN_EVERY`` sends the engine drains the sockets itself (the receiver task
  still drains when the engine sleeps), so replies never pile up in the kernel's receive
  buffer while we are busy sending; then it checkpoints, so other tasks run.
* Results go into a deque that the consumer's ``__anext__`` pops without a scheduler round
  trip, checkpointing every ``_CONSUMER_CHECKPOINT_EVERY`` items.
* Literal addresses are recognised with ``inet_pton``; names are resolved concurrently
  (bounded by ``resolve_concurrency``) while sending goes on.  A failure is one host's
  :class:`HostError`, never the batch's.
* A probe's memory (table entry, payload) is freed once its deadline has passed (answered
  probes stay until then to recognise duplicates, timed-out ones a further timeout to
  report late replies), and all of it when the batch ends.
"""

from __future__ import annotations

import heapq
import math
import socket
import weakref
from array import array
from collections import deque
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, cast

import trio

from ._errors import InvalidArgumentError, PingerClosedError, TriopingError
from ._packet import _V4, _V6, DEFAULT_SIZE, Family, validate_size
from ._pinger import DEFAULT_INTERVAL, DEFAULT_TIMEOUT, _check_positive_count, _check_seconds, _check_ttl
from ._resolve import Host, parse_family, resolve
from ._results import IcmpError, ProbeResult, Reply, SendError, Timeout
from ._stats import PingStats, StatsAccumulator
from ._transport import _WAITING, Probe, Transport

if TYPE_CHECKING:
    from ._pinger import Pinger

DEFAULT_RATE = 1000.0
"""Probes per second of a fan-out batch unless told otherwise (``rate=None``: no limit)."""
DEFAULT_RESOLVE_CONCURRENCY = 32

_DRAIN_EVERY = 64
_READY_HIGH = 4096
_RESULTS_HIGH = 65536
_CONSUMER_CHECKPOINT_EVERY = 128
_MAX_LAG = 0.005
_FEED_CHECKPOINT_EVERY = 512

_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_inet_pton = socket.inet_pton
_inet_ntop = socket.inet_ntop
_new_tuple = tuple.__new__


class HostResult(NamedTuple):
    """One probe's result, for the host it was sent to.

    ``host`` is the host as given, ``address`` what it resolved to, ``position`` its place
    in the input (0-based; it tells apart a host given twice).  ``result`` is a
    :class:`Reply`, :class:`Timeout`, :class:`IcmpError` or :class:`SendError` -- one per
    probe -- or an extra :class:`Reply` with ``duplicate`` set, :class:`LateReply` or
    :class:`InvalidReply`.  (A named tuple: one is made per probe, and it is the cheapest
    immutable record.)
    """

    host: str
    address: str
    position: int
    result: ProbeResult


class HostError(NamedTuple):
    """A host that could not be pinged at all: its name did not resolve, its address is of
    the wrong family, or its socket could not be opened.  The rest of the batch goes on."""

    host: str
    position: int
    error: TriopingError


FanoutItem = HostResult | HostError


@dataclass(frozen=True, slots=True)
class FanoutProgress:
    """Counts of a batch so far (a snapshot).

    ``outstanding`` probes are sent and still waiting for a verdict.  ``kernel_drops`` are
    datagrams the kernel dropped because a receive buffer was full during the batch
    (SO_RXQ_OVFL): when it is not zero, some hosts reported lost may in fact be alive.
    """

    hosts: int
    sent: int
    received: int
    timeouts: int
    errors: int
    unresolved: int
    outstanding: int
    kernel_drops: int
    finished: bool


@dataclass(frozen=True, slots=True)
class FanoutPlan:
    count: int
    interval: float
    rate: float | None
    timeout: float
    size: int
    ttl: int | None
    family: Family | None
    resolve_concurrency: int
    tx_timestamps: bool


def make_plan(
    *,
    count: int,
    interval: float,
    rate: float | None,
    timeout: float,
    size: int,
    ttl: int | None,
    family: Family | int | None,
    resolve_concurrency: int,
    tx_timestamps: bool,
) -> FanoutPlan:
    """Check every argument before anything is sent."""
    wanted_family = parse_family(family)
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0
    ):
        raise InvalidArgumentError(f"rate must be a positive number of probes per second or None, not {rate!r}")
    checked_count = _check_positive_count(count, allow_none=False)
    assert checked_count is not None
    concurrency = _check_positive_count(resolve_concurrency, allow_none=False)
    assert concurrency is not None
    return FanoutPlan(
        count=checked_count,
        interval=_check_seconds("interval", interval, allow_zero=True),
        rate=None if rate is None else float(rate),
        timeout=_check_seconds("timeout", timeout, allow_zero=False),
        size=validate_size(size, wanted_family),
        ttl=_check_ttl(ttl),
        family=wanted_family,
        resolve_concurrency=concurrency,
        tx_timestamps=bool(tx_timestamps),
    )


def fast_literal(host: object) -> tuple[str, Family] | None:
    """(canonical address, family) for an address literal, or None for anything else.

    ``inet_pton`` is strict (no leading zeros, no short forms, no scope), so what it
    accepts :func:`~trioping.resolve` would accept too, with the same canonical spelling;
    everything else takes the general path.
    """
    if type(host) is not str:
        return None
    try:
        _inet_pton(_AF_INET, host)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        pass
    else:
        return host, _V4  # four decimal numbers, no leading zeros: already canonical
    return _ipv6_literal(host)


def _ipv6_literal(host: str) -> tuple[str, Family] | None:
    """:func:`fast_literal` for a string that is not an IPv4 literal."""
    if ":" not in host or "%" in host:
        return None
    try:
        return _inet_ntop(_AF_INET6, _inet_pton(_AF_INET6, host)), _V6
    except (OSError, ValueError):
        return None


class _Host(StatsAccumulator):
    """One host of a batch: its address, the owner of its probes, and (being a
    :class:`StatsAccumulator` itself, one object less per host) its running counts."""

    __slots__ = ("error", "first_at", "position", "run", "sent", "transport")

    transport: Transport

    def __init__(self, run: _FanoutRun, host: str, position: int) -> None:
        # Every slot, StatsAccumulator's too, set here without a super() call: one call fewer
        # per host (a test checks that none is missed).
        self.host = host
        self.address = ""
        self.transmitted = self.received = self.duplicates = self.errors = self.late = self.invalid = self.sent = 0
        self.rtts = array("d")
        self.results = None
        self.elapsed = self.first_at = 0.0
        self.run = run
        self.position = position
        # self.transport: set once the host is ready to be pinged (never, if it fails).
        self.error: TriopingError | None = None

    def deliver(self, probe: Probe | None, result: ProbeResult) -> None:
        run = self.run
        # HostResult(...) without the named tuple's Python-level __new__ (once per probe).
        run.results.append(_new_tuple(HostResult, (self.host, self.address, self.position, result)))
        kind = type(result)
        if type(result) is Reply and not result.duplicate:
            # The common case, counted inline (as StatsAccumulator.add would).
            self.received += 1
            self.rtts.append(result.rtt)
            run.received += 1
            run.outstanding -= 1
        else:
            self.add(result)
            if kind is Timeout:
                run.timeouts += 1
                run.outstanding -= 1
            elif kind is IcmpError or kind is SendError:
                run.errors += 1
                if probe is not None:  # else refused at once: it never was outstanding
                    run.outstanding -= 1
        event = run.consumer_event
        if event is not None:
            run.consumer_event = None
            event.set()
        if run.outstanding == 0:
            run.wake_engine()


class _FanoutRun:
    """The state and tasks of one batch; its tasks live in the pinger's nursery."""

    def __init__(self, pinger: Pinger, plan: FanoutPlan, source: Iterable[Host] | AsyncIterable[Host]) -> None:
        self.pinger = pinger
        self.plan = plan
        self.source = source
        self.cancel_scope = trio.CancelScope()
        self.done = trio.Event()
        self.hosts: list[_Host] = []
        self.ready: deque[_Host] = deque()
        self.repeats: list[tuple[float, int, _Host]] = []
        self.inflight: deque[Probe] = deque()  # in deadline order: one timeout for all
        self.lingering: deque[Probe] = deque()  # past their deadline, in the same order
        self.results: deque[FanoutItem] = deque()
        self.transports: list[Transport] = []
        self._drop_baseline: dict[int, int] = {}
        self._family_errors: dict[Family, TriopingError] = {}
        self._usable: dict[Family, Transport] = {}
        self.consumer_event: trio.Event | None = None
        self._engine_event: trio.Event | None = None
        self._feeder_event: trio.Event | None = None
        self._resolve_slots = trio.Semaphore(plan.resolve_concurrency)
        self.sent = 0
        self.received = 0
        self.timeouts = 0
        self.errors = 0
        self.unresolved = 0
        self.outstanding = 0
        self.resolving = 0
        self.feeding_done = False
        self.started = False
        self.finished = False
        self.failure: BaseException | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._order = 0

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        if self.pinger._closed:
            self.finished = True
            raise PingerClosedError("this pinger is closed: use it inside its open_pinger() block")
        await self.pinger._nursery.start(self._main)

    def cancel(self) -> None:
        self.cancel_scope.cancel()
        if not self.started:
            self.started = self.finished = True
            self.done.set()

    async def wait_done(self) -> None:
        if self.started:
            with trio.CancelScope(shield=True):
                await self.done.wait()

    async def _main(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with self.cancel_scope:
                self.started_at = trio.current_time()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._feed, nursery)
                    task_status.started()
                    await self._engine()
                    nursery.cancel_scope.cancel()
        except Exception as exc:  # reported to the consumer, never to the pinger's nursery
            while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            self.failure = exc
        finally:
            self.finished_at = trio.current_time()
            self._forget_all()
            self.finished = True
            self.done.set()
            self.wake_consumer()

    def _forget_all(self) -> None:
        for queue in (self.inflight, self.lingering):
            if len(self.transports) == 1:
                self.transports[0].forget_all(queue)
            else:
                for probe in queue:
                    cast(_Host, probe.owner).transport.forget(probe)
            queue.clear()
        self.repeats.clear()
        self.ready.clear()

    # -- wake-ups ------------------------------------------------------------------------

    def wake_engine(self) -> None:
        event = self._engine_event
        if event is not None:
            self._engine_event = None
            event.set()

    def wake_consumer(self) -> None:
        event = self.consumer_event
        if event is not None:
            self.consumer_event = None
            event.set()

    def wake_feeder(self) -> None:
        event = self._feeder_event
        if event is not None:
            self._feeder_event = None
            event.set()

    # -- admitting hosts -----------------------------------------------------------------

    async def _feed(self, nursery: trio.Nursery) -> None:
        try:
            source = self.source
            if isinstance(source, AsyncIterable):
                async for item in source:
                    if not self._admit_literal(item):
                        await self._admit_name(item, nursery)
                    if len(self.ready) >= _READY_HIGH or len(self.results) >= _RESULTS_HIGH:
                        await self._wait_for_room()
            else:
                since_checkpoint = 0
                for item in source:
                    if not self._admit_literal(item):
                        await self._admit_name(item, nursery)
                    since_checkpoint += 1
                    if len(self.ready) >= _READY_HIGH or len(self.results) >= _RESULTS_HIGH:
                        since_checkpoint = 0
                        await self._wait_for_room()
                    elif since_checkpoint >= _FEED_CHECKPOINT_EVERY:
                        since_checkpoint = 0
                        await trio.lowlevel.checkpoint()
        finally:
            self.feeding_done = True
            self.wake_engine()

    async def _wait_for_room(self) -> None:
        """Pause admitting hosts while the engine or the consumer is far behind."""
        self.wake_engine()
        while len(self.ready) >= _READY_HIGH or len(self.results) >= _RESULTS_HIGH:
            event = self._feeder_event = trio.Event()
            await event.wait()

    def _admit_literal(self, item: Host) -> bool:
        """Admit *item* at once if it is an address literal (the common case at scale)."""
        if type(item) is not str:
            return False
        try:
            _inet_pton(_AF_INET, item)  # fast_literal's first test, inline: one call fewer a host
        except (OSError, ValueError):
            literal = _ipv6_literal(item)
            if literal is None:
                return False
            address, family = literal
        else:
            address, family = item, _V4
        host = _Host(self, item, len(self.hosts))
        self.hosts.append(host)
        transport = self._usable.get(family)
        if transport is None:
            self._host_ready(host, address, family)
            return True
        host.address = address
        host.transport = transport
        self.ready.append(host)
        if self._engine_event is not None:
            self.wake_engine()
        return True

    async def _admit_name(self, item: Host, nursery: trio.Nursery) -> None:
        """Resolve *item* in a task of its own, at most ``resolve_concurrency`` at once."""
        host = _Host(self, item if isinstance(item, str) else str(item), len(self.hosts))
        self.hosts.append(host)
        await self._resolve_slots.acquire()
        self.resolving += 1
        nursery.start_soon(self._resolve, host, item)

    async def _resolve(self, host: _Host, item: Host) -> None:
        try:
            address, family = await resolve(item, self.plan.family)
        except TriopingError as exc:
            self._host_error(host, exc)
        else:
            self._host_ready(host, address, family)
        finally:
            self.resolving -= 1
            self._resolve_slots.release()
            self.wake_engine()

    def _host_ready(self, host: _Host, address: str, family: Family) -> None:
        try:
            if self.plan.family is not None and family is not self.plan.family:
                raise InvalidArgumentError(f"{host.host}: Address family for hostname not supported")
            transport = self._usable.get(family) or self._admit_family(family)
        except TriopingError as exc:
            self._host_error(host, exc)
            return
        host.address = address
        host.transport = transport
        self.ready.append(host)
        self.wake_engine()

    def _admit_family(self, family: Family) -> Transport:
        """The transport for hosts of *family*, once the probe size is checked for it; a
        failure (size, socket) is remembered and raised again for each host."""
        failure = self._family_errors.get(family)
        if failure is None:
            try:
                validate_size(self.plan.size, family)
                transport = self.pinger._transport(family)
            except TriopingError as exc:
                self._family_errors[family] = failure = exc
            else:
                self._usable[family] = transport
                self._drop_baseline[id(transport)] = transport.kernel_drops
                self.transports.append(transport)
                return transport
        raise failure

    def _host_error(self, host: _Host, error: TriopingError) -> None:
        host.error = error
        self.unresolved += 1
        self.results.append(HostError(host.host, host.position, error))
        self.wake_consumer()

    # -- sending and reaping -------------------------------------------------------------

    def _complete(self) -> bool:
        return (
            self.feeding_done and not self.resolving and not self.ready and not self.repeats and self.outstanding == 0
        )

    async def _engine(self) -> None:
        plan = self.plan
        period = 0.0 if plan.rate is None else 1.0 / plan.rate
        ready = self.ready
        repeats = self.repeats
        inflight = self.inflight
        clock = trio.lowlevel.current_clock().current_time  # trio.current_time, two calls fewer
        next_slot = clock()
        since_drain = 0
        lingering = self.lingering
        linger = plan.timeout
        while True:
            now = clock()
            if (inflight and inflight[0].deadline <= now) or (lingering and lingering[0].deadline + linger <= now):
                self._reap(now)
            while True:
                slot = now
                if period:
                    slot = next_slot if next_slot > now - _MAX_LAG else now - _MAX_LAG
                    if slot > now:
                        break
                if repeats and repeats[0][0] <= now:
                    due, order, host = heapq.heappop(repeats)
                    if not self._send(host, now):
                        heapq.heappush(repeats, (due, order, host))
                        await self._wait_writable(host)
                        now = clock()
                        continue
                elif ready:
                    host = ready.popleft()
                    host.first_at = now
                    if not self._send(host, now):
                        ready.appendleft(host)
                        await self._wait_writable(host)
                        now = clock()
                        continue
                else:
                    break
                next_slot = slot + period
                since_drain += 1
                if since_drain >= _DRAIN_EVERY:
                    since_drain = 0
                    for transport in self.transports:
                        transport.drain()
                    if len(ready) < _READY_HIGH // 2:
                        self.wake_feeder()
                    await trio.lowlevel.checkpoint()
                    now = clock()
                    if inflight and inflight[0].deadline <= now:
                        self._reap(now)
                else:
                    now = clock()
            if len(ready) < _READY_HIGH // 2:
                self.wake_feeder()
            if self._complete():
                return
            # Wake for whichever comes first: a timeout, a kept probe to forget, a send slot.
            wake_at = min(
                inflight[0].deadline if inflight else math.inf,
                lingering[0].deadline + linger if lingering else math.inf,
            )
            if ready:
                wake_at = min(wake_at, next_slot)
            if repeats:
                wake_at = min(wake_at, max(repeats[0][0], next_slot if period else -math.inf))
            event = self._engine_event = trio.Event()
            with trio.move_on_at(wake_at):
                await event.wait()
            self._engine_event = None

    @staticmethod
    async def _wait_writable(host: _Host) -> None:
        """The socket's send buffer is full: wait until it drains (the caller retries)."""
        await host.transport.sock.wait_writable()

    def _send(self, host: _Host, now: float) -> bool:
        plan = self.plan
        index = host.sent
        sent = host.transport.try_send(host.address, index, plan.size, plan.ttl, host, plan.tx_timestamps)
        if sent is None:
            return False
        host.sent = index + 1
        if index + 1 < plan.count:
            self._order += 1
            heapq.heappush(self.repeats, (host.first_at + (index + 1) * plan.interval, self._order, host))
        if isinstance(sent, SendError):
            host.deliver(None, sent)
        else:
            host.transmitted += 1
            self.sent += 1
            self.outstanding += 1
            sent.deadline = now + plan.timeout
            self.inflight.append(sent)
        return True

    def _reap(self, now: float) -> None:
        """Declare lost the probes whose deadline passed; forget those kept long enough."""
        inflight = self.inflight
        lingering = self.lingering
        waiting = _WAITING
        while inflight and inflight[0].deadline <= now:
            probe = inflight.popleft()
            if probe.state is waiting:
                cast(_Host, probe.owner).transport.expire(probe)
            lingering.append(probe)
        linger = self.plan.timeout
        while lingering and lingering[0].deadline + linger <= now:  # the engine's wake-up test, exactly
            probe = lingering.popleft()
            cast(_Host, probe.owner).transport.forget(probe)

    # -- reporting -----------------------------------------------------------------------

    @property
    def kernel_drops(self) -> int:
        return sum(t.kernel_drops - self._drop_baseline[id(t)] for t in self.transports)

    def progress(self) -> FanoutProgress:
        return FanoutProgress(
            hosts=len(self.hosts),
            sent=self.sent,
            received=self.received,
            timeouts=self.timeouts,
            errors=self.errors,
            unresolved=self.unresolved,
            outstanding=self.outstanding,
            kernel_drops=self.kernel_drops,
            finished=self.finished,
        )

    def statistics(self) -> list[PingStats]:
        elapsed = 0.0
        if self.started_at is not None:
            end = self.finished_at if self.finished_at is not None else trio.current_time()
            elapsed = end - self.started_at
        snapshots = []
        for host in self.hosts:
            if host.address:  # resolved (a failed host never gets one)
                host.elapsed = elapsed
                snapshots.append(host.snapshot())
        return snapshots


class Fanout:
    """A batch of hosts pinged from one pinger: an async iterator of results.

    Create it with :meth:`Pinger.fanout`.  ``async for item in batch:`` yields a
    :class:`HostResult` per probe as its verdict arrives (``count=1``: one per host) and a
    :class:`HostError` per host that could not be pinged; iteration ends when every probe
    has its verdict.  :attr:`statistics` then holds one :class:`PingStats` per host, in
    input order, and :attr:`progress` the batch's counts (also while it runs).

    Sending runs in the pinger's nursery, paced by ``rate``, whatever the consumer does
    (it reads ahead of the hosts' iterable, and pauses when the consumer lags, by a bounded
    amount).  The batch stops at :meth:`aclose` (or leaving ``async with``), when the task
    iterating it is cancelled, or when the object is garbage-collected; its probes are then
    forgotten.  Counts are kept for every host until the batch is dropped (about 300 bytes
    a host): for an endless stream of hosts, run a batch per round, as
    ``examples/monitor.py`` does.
    """

    def __init__(self, pinger: Pinger, hosts: Iterable[Host] | AsyncIterable[Host], plan: FanoutPlan) -> None:
        if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (Iterable, AsyncIterable)):
            raise InvalidArgumentError(f"hosts must be an iterable of hosts, not {hosts!r}")
        self.plan = plan
        self._run = _FanoutRun(pinger, plan, hosts)
        self._since_checkpoint = 0
        weakref.finalize(self, self._run.cancel)

    @property
    def statistics(self) -> list[PingStats]:
        """One :class:`PingStats` per host that resolved, in input order (so far)."""
        return self._run.statistics()

    @property
    def errors(self) -> list[HostError]:
        """The hosts that could not be pinged, in input order."""
        return [HostError(h.host, h.position, h.error) for h in self._run.hosts if h.error is not None]

    @property
    def progress(self) -> FanoutProgress:
        return self._run.progress()

    @property
    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for a full receive buffer during this batch."""
        return self._run.kernel_drops

    @property
    def queued(self) -> int:
        """Results that the next ``__anext__`` calls return without waiting."""
        return len(self._run.results)

    async def __aenter__(self) -> Fanout:
        await self._run.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop sending, forget this batch's probes, and wait until that is done."""
        self._run.cancel()
        await self._run.wait_done()
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> Fanout:
        return self

    async def __anext__(self) -> FanoutItem:
        run = self._run
        try:
            if not run.started:
                await run.start()
            results = run.results
            while True:
                if results:
                    self._since_checkpoint += 1
                    if self._since_checkpoint >= _CONSUMER_CHECKPOINT_EVERY:
                        self._since_checkpoint = 0
                        await trio.lowlevel.checkpoint()
                    item = results.popleft()
                    if run._feeder_event is not None and len(results) < _RESULTS_HIGH // 2:
                        run.wake_feeder()
                    return item
                if run.finished:
                    if run.failure is not None:
                        raise run.failure
                    raise StopAsyncIteration
                event = run.consumer_event = trio.Event()
                await event.wait()
        except StopAsyncIteration:
            raise
        except BaseException:
            run.cancel()
            raise


def fanout(
    pinger: Pinger,
    hosts: Iterable[Host] | AsyncIterable[Host],
    *,
    count: int = 1,
    interval: float = DEFAULT_INTERVAL,
    rate: float | None = DEFAULT_RATE,
    timeout: float = DEFAULT_TIMEOUT,
    size: int = DEFAULT_SIZE,
    ttl: int | None = None,
    family: Family | int | None = None,
    resolve_concurrency: int = DEFAULT_RESOLVE_CONCURRENCY,
    tx_timestamps: bool = False,
) -> Fanout:
    """See :meth:`Pinger.fanout`."""
    plan = make_plan(
        count=count,
        interval=interval,
        rate=rate,
        timeout=timeout,
        size=size,
        ttl=ttl,
        family=family,
        resolve_concurrency=resolve_concurrency,
        tx_timestamps=tx_timestamps,
    )
    return Fanout(pinger, hosts, plan)


__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_RESOLVE_CONCURRENCY",
    "Fanout",
    "FanoutItem",
    "FanoutProgress",
    "HostError",
    "HostResult",
    "fanout",
]
