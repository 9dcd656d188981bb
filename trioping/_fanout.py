"""Fan-out: many hosts from one pinger, results streamed as they arrive.

    async with pinger.fanout(hosts, rate=None) as batch:
        async for item in batch:
            ...
    batch.statistics  # one PingStats per host, in input order

The batch's tasks -- admitting hosts (:mod:`._admission`) and the engine that paces and
sends -- live in a nursery scoped to its ``async with`` (or one the caller owns,
:meth:`Pinger.start_fanout`).  Replies, errors and timeouts reach each host's record from
the sockets' receiver tasks (:mod:`._transport`), which are the only readers of the
sockets and keep every probe's deadline; no probe has a task, timer or cancel scope of its
own.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import trio

from ._admission import Admission
from ._errors import InvalidArgumentError, TriopingError
from ._options import FanoutPlan, check_hosts, resume_chunk
from ._packet import Family
from ._resolve import Host
from ._results import IcmpError, ProbeResult, Reply, SendError, Timeout
from ._scoped import ScopedContext, start_scoped
from ._stats import PingStats, ResultsNotKeptError, StatsAccumulator
from ._table import Probe, ProbeState
from ._transport import Transport

_SENDS_PER_CHECKPOINT = 64
_READY_HIGH = 4096
_MAX_LAG = 0.005


class HostResult(NamedTuple):
    """One probe's result, for the host it was sent to.

    ``host`` is the host as given, ``address`` what it resolved to, ``position`` its place
    in the input (0-based; it tells apart a host given twice).  ``result`` is a
    :class:`Reply`, :class:`Timeout`, :class:`IcmpError` or :class:`SendError` -- one per
    probe -- or an extra :class:`Reply` with ``duplicate`` set, :class:`LateReply` or
    :class:`InvalidReply`.
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

    ``sent`` counts refused sends too (each is also one of ``errors``).  ``outstanding``
    probes are sent and still waiting for a verdict.  ``kernel_drops`` are datagrams the
    kernel dropped because a receive buffer was full during the batch (SO_RXQ_OVFL): when
    it is not zero, some hosts reported lost may in fact be alive.
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


class _Host(StatsAccumulator):
    """One host of a batch: where its probes go and (being a :class:`StatsAccumulator`
    itself, one object less per host) its running counts.  It is its probes' tag; the batch
    is their owner."""

    __slots__ = ("first_at", "position", "removed", "transport")

    transport: Transport

    def __init__(self, host: str, position: int) -> None:
        # Every slot, StatsAccumulator's too, set here without a super() call: one call fewer
        # a host (a test checks that none is missed).
        self.host = host
        self.address = ""
        self.transmitted = self.received = self.duplicates = self.errors = 0
        self.late = self.invalid = self.send_errors = 0
        self.rtt_min = math.inf
        self.rtt_max = self.rtt_mean = self.rtt_m2 = 0.0
        self.results = None
        self.elapsed = self.first_at = 0.0
        self.position = position
        self.removed = False


class Fanout:
    """A batch of hosts pinged from one pinger: an async iterator of results.

    Open one with ``async with pinger.fanout(hosts, ...) as batch:``.  ``async for item in
    batch`` yields a :class:`HostResult` per probe as its verdict arrives (``count=1``: one
    per host) and a :class:`HostError` per host that could not be pinged; iteration ends
    when every probe has its verdict.  :attr:`statistics` then holds one :class:`PingStats`
    per host, in input order, and :attr:`progress` the batch's counts (also while it runs).

    **Buffer.**  The batch holds at most ``buffer`` results for its consumer, counting the
    probes in flight: when the consumer is that far behind, sending waits (backpressure),
    and hosts are read from the iterable only as fast as they are sent.  Duplicate, late
    and invalid replies that find the buffer full are counted in the host's statistics and
    in :attr:`overflowed`, not queued.

    **Cancellation.**  A cancelled ``__anext__`` loses nothing; every ``__anext__`` is a
    checkpoint (:meth:`receive_nowait` is the escape for consumers that take many items at
    once).  Leaving the block stops sending and forgets the batch's probes; an error in the
    batch's tasks is raised from that block, not from the pinger's.

    **Memory.**  Per-host counts (about 250 bytes a host) are kept for :attr:`statistics`;
    with ``keep_statistics=False`` a host's record is dropped once the batch no longer needs
    it, so memory does not grow with the number of hosts.  The per-probe results are the
    consumer's.
    """

    def __init__(
        self,
        plan: FanoutPlan,
        hosts: Iterable[Host] | AsyncIterable[Host],
        transport_for: Callable[[Family], Transport],
    ) -> None:
        check_hosts(hosts)
        self.plan = plan
        self._source = hosts
        self._repeats: list[tuple[float, int, _Host]] = []
        self._results: deque[FanoutItem] = deque()
        self._admission = Admission[_Host](
            family=plan.family,
            size=plan.size,
            resolve_concurrency=plan.resolve_concurrency,
            transport_for=transport_for,
            make_host=_Host,
            on_error=self._host_error,
            results=self._results,
            buffer=plan.buffer,
            ready_limit=_READY_HIGH,
            wake_batch=self._wake_engine,
            keep_hosts=plan.keep_statistics,
        )
        self._host_errors: list[HostError] = []
        self._resume_below = plan.buffer - resume_chunk(plan.buffer)
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._consumers = trio.lowlevel.ParkingLot()  # several tasks may read one batch
        self._parked = 0
        self._error: BaseException | None = None
        self._engine_event: trio.Event | None = None
        self._order = 0
        self._sent = 0
        self._received = 0
        self._timeouts = 0
        self._errors = 0
        self._unresolved = 0
        self._outstanding = 0
        self.overflowed = 0
        """Extra results (duplicate, late, invalid) not queued because the buffer was full."""
        self.finished = False
        self._started_at: float | None = None
        self._finished_at: float | None = None

    # -- what the caller reads ---------------------------------------------------------------

    @property
    def statistics(self) -> list[PingStats]:
        """One :class:`PingStats` per host that resolved, in input order (so far).

        Raises :class:`ResultsNotKeptError` for a batch made with ``keep_statistics=False``.
        """
        if not self.plan.keep_statistics:
            raise ResultsNotKeptError("this batch keeps no per-host statistics (keep_statistics=False)")
        elapsed = 0.0
        if self._started_at is not None:
            end = self._finished_at if self._finished_at is not None else trio.current_time()
            elapsed = end - self._started_at
        snapshots = []
        for host in self._admission.hosts:
            if host.address:  # resolved (a failed host never gets one)
                host.elapsed = elapsed
                snapshots.append(host.snapshot())
        return snapshots

    def transmitted(self) -> dict[str, int]:
        """Probes sent so far to each host that resolved, keyed by host as given (a host given
        twice: the sum), without building a :class:`PingStats` per host.

        For a caller that reads a monitor's counts often -- an exporter answering a scrape
        of 10,000 hosts -- where :attr:`statistics` would cost ~10 µs a host.  Needs the
        per-host records (``keep_statistics``, the default).
        """
        if not self.plan.keep_statistics:
            raise ResultsNotKeptError("this batch keeps no per-host statistics (keep_statistics=False)")
        counts: dict[str, int] = {}
        for host in self._admission.hosts:
            if host.address:
                counts[host.host] = counts.get(host.host, 0) + host.transmitted
        return counts

    @property
    def errors(self) -> list[HostError]:
        """The hosts that could not be pinged, in input order."""
        return sorted(self._host_errors, key=lambda error: error.position)

    @property
    def progress(self) -> FanoutProgress:
        return FanoutProgress(
            hosts=self._admission.admitted,
            sent=self._sent,
            received=self._received,
            timeouts=self._timeouts,
            errors=self._errors,
            unresolved=self._unresolved,
            outstanding=self._outstanding,
            kernel_drops=self.kernel_drops,
            finished=self.finished,
        )

    @property
    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for a full receive buffer during this batch."""
        before = self._admission.kernel_drops_before
        return sum(t.kernel_drops - before[id(t)] for t in self._admission.transports)

    @property
    def queued(self) -> int:
        """Results that the next ``__anext__`` calls return without waiting."""
        return len(self._results)

    # -- the consumer's side -----------------------------------------------------------------

    def __aiter__(self) -> Fanout:
        return self

    async def __anext__(self) -> FanoutItem:
        await trio.lowlevel.checkpoint()  # before taking anything, so a cancel loses nothing
        while not self._results:
            if self.finished:
                if self._error is not None:
                    raise copy.copy(self._error)  # a fresh one each time, not one piling tracebacks
                raise StopAsyncIteration
            self._parked += 1
            try:
                await self._consumers.park()
            finally:
                self._parked -= 1
        return self.receive_nowait()

    def receive_nowait(self) -> FanoutItem:
        """The next item if one is queued, without a checkpoint, as Trio's channels offer.

        For a consumer that takes many items per wake-up: ``async for`` checkpoints on every
        item (a trip through Trio's scheduler), this does not.  Raises
        :class:`trio.WouldBlock` when nothing is queued yet and :class:`trio.EndOfChannel`
        once the batch is over.
        """
        results = self._results
        if not results:
            if self.finished:
                if self._error is not None:
                    raise copy.copy(self._error)  # a fresh one each time, not one piling tracebacks
                raise trio.EndOfChannel
            raise trio.WouldBlock
        item = results.popleft()
        # Room is given back in chunks, not a result at a time: a full batch read by a
        # consumer that checkpoints per item would otherwise wake the engine for one send.
        if len(results) + self._outstanding <= self._resume_below:
            if self._engine_event is not None:
                self._wake_engine()
            if self._admission._event is not None:
                self._admission.wake()
        return item

    def add(self, host: Host) -> None:
        """Ping *host* too, from now on: a batch made with ``count=None`` (a monitor) takes
        hosts while it runs.  A name is resolved in the batch's tasks; failing, it becomes a
        :class:`HostError` item, as in the iterable."""
        if self.plan.count is not None:
            raise InvalidArgumentError("hosts are added to a batch made with count=None (a monitor) only")
        if self._nursery is None or self.finished:
            raise trio.ClosedResourceError("this batch is not running")
        try:
            self._nursery.start_soon(self._admission.admit, host, self._nursery)
        except RuntimeError:  # cancelled and winding down: its nursery takes no more tasks
            raise trio.ClosedResourceError("this batch is not running") from None

    def remove(self, host: Host) -> int:
        """Stop pinging *host* (as it was given; every occurrence), forget its probes and its
        statistics; returns how many were removed.  Needs the per-host records
        (``keep_statistics``, the default)."""
        if not self.plan.keep_statistics:
            raise ResultsNotKeptError("a batch made with keep_statistics=False cannot find its hosts again")
        name = host if isinstance(host, str) else str(host)
        removed = [record for record in self._admission.hosts if record.host == name and not record.removed]
        doomed = {id(record) for record in removed}
        for record in removed:
            record.removed = True
        for transport in self._admission.transports:
            for probe in [p for p in transport.table.probes.values() if id(p.tag) in doomed]:
                if probe.owner is self and probe.state is ProbeState.WAITING:
                    self._outstanding -= 1
                transport.table.forget(probe)
        self._admission.hosts[:] = [record for record in self._admission.hosts if not record.removed]
        self._wake_engine()
        return len(removed)

    async def aclose(self) -> None:
        """Stop sending and forget this batch's probes."""
        self._stop()
        await trio.lowlevel.checkpoint()

    # -- results -----------------------------------------------------------------------------

    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        """A result for the probe's host (its tag), from a socket's receiver or, for a
        refused send, from the send itself."""
        if self.finished:
            return
        host: _Host = probe.tag
        kind = type(result)
        if type(result) is Reply and not result.duplicate:
            host.add_rtt(result.rtt)
            self._received += 1
        elif kind is Timeout:
            self._timeouts += 1
        elif kind is IcmpError or kind is SendError:
            host.add(result)
            self._errors += 1
        else:  # an extra: duplicate, late or invalid
            host.add(result)
            if len(self._results) + self._outstanding >= self.plan.buffer:
                self.overflowed += 1
                return
            self._results.append(HostResult(host.host, host.address, host.position, result))
            self._wake_consumer()
            return
        self._outstanding -= 1
        self._results.append(HostResult(host.host, host.address, host.position, result))
        if self._parked and self._consumers:
            self._consumers.unpark()
        if self._outstanding == 0 and self._engine_event is not None:
            self._wake_engine()

    def _host_error(self, host: _Host, error: TriopingError) -> None:
        self._unresolved += 1
        item = HostError(host.host, host.position, error)
        self._host_errors.append(item)
        self._results.append(item)
        self._wake_consumer()
        self._wake_engine()

    # -- wake-ups ----------------------------------------------------------------------------

    def _wake_engine(self) -> None:
        event = self._engine_event
        if event is not None:
            self._engine_event = None
            event.set()

    def _wake_consumer(self) -> None:
        # A woken consumer stays counted in _parked until it runs; the lot itself says
        # whether one still waits, so the results that arrive meanwhile (hundreds in one
        # drain of the socket) do not each call unpark for nobody.
        if self._parked and self._consumers:
            self._consumers.unpark()

    # -- life cycle --------------------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with self._scope:
                self._started_at = trio.current_time()
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._admission.feed, self._source, nursery)
                    task_status.started()
                    await self._engine()
                    nursery.cancel_scope.cancel()
        finally:
            self._finish()

    async def _start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self._run)

    def _stop(self) -> None:
        self._scope.cancel()
        self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._finished_at is None:
            self._finished_at = trio.current_time()
        self._admission.stop()
        for transport in self._admission.transports:
            transport.table.forget_owner(self)
        self._repeats.clear()
        self._admission.ready.clear()
        self._consumers.unpark_all()

    def abandon(self, error: BaseException) -> None:
        """The pinger closed under this batch: no verdict will come.  Its consumer gets
        *error* once the items already queued are taken."""
        self._error = error
        self._stop()

    # -- the engine: pacing and sending --------------------------------------------------------

    def _complete(self) -> bool:
        if self.plan.count is None:
            return False  # probes every host until it is closed
        admission = self._admission
        idle = not (admission.ready or self._repeats or self._outstanding)
        return idle and admission.done and not admission.resolving

    async def _engine(self) -> None:
        plan = self.plan
        period = 0.0 if plan.rate is None else 1.0 / plan.rate
        buffer = plan.buffer
        admission = self._admission
        ready = admission.ready
        repeats = self._repeats
        results = self._results
        clock = trio.lowlevel.current_clock().current_time  # trio.current_time, two calls fewer
        count = plan.count
        next_slot = clock()
        since_checkpoint = 0
        while not self.finished:  # (stopped while this task waited for an event already set)
            now = clock()
            while len(results) + self._outstanding < buffer and not self.finished:
                slot = now
                if period:
                    slot = next_slot if next_slot > now - _MAX_LAG else now - _MAX_LAG
                    if slot > now:
                        break
                if repeats and repeats[0][0] <= now:
                    due, order, host = heapq.heappop(repeats)
                    if host.removed:
                        continue
                    if not self._send(host, now):
                        heapq.heappush(repeats, (due, order, host))
                        await host.transport.wait_to_send()
                        now = clock()
                        continue
                elif ready:
                    host = ready.popleft()
                    if host.removed:
                        continue
                    if count != 1:  # the repeats' schedule starts here (a float a host, else)
                        host.first_at = now
                    if not self._send(host, now):
                        ready.appendleft(host)
                        await host.transport.wait_to_send()
                        now = clock()
                        continue
                else:
                    break
                next_slot = slot + period
                since_checkpoint += 1
                if since_checkpoint >= _SENDS_PER_CHECKPOINT:
                    since_checkpoint = 0
                    if len(ready) < _READY_HIGH // 2:
                        admission.wake()
                    await trio.lowlevel.checkpoint()  # the receivers take the replies meanwhile
                now = clock()
            if len(ready) < _READY_HIGH // 2:
                admission.wake()
            if self._complete():
                return
            wake_at = math.inf
            if len(results) + self._outstanding < buffer:
                if ready:
                    wake_at = next_slot
                if repeats:
                    wake_at = min(wake_at, max(repeats[0][0], next_slot if period else -math.inf))
            event = self._engine_event = trio.Event()
            with trio.move_on_at(wake_at):
                await event.wait()
            self._engine_event = None

    def _send(self, host: _Host, now: float) -> bool:
        """Send *host*'s next probe; False when the socket buffer is full (nothing sent)."""
        plan = self.plan
        index = host.transmitted
        self._outstanding += 1  # before the send: a refused one has its verdict at once
        sent = host.transport.try_send(
            host.address, index, plan.size, plan.ttl, self, plan.timeout, now, plan.tx_timestamps, host
        )
        if sent is None:
            self._outstanding -= 1
            return False
        host.transmitted = index + 1
        self._sent += 1
        if plan.count is None or index + 1 < plan.count:
            interval = plan.interval
            due = host.first_at + (index + 1) * interval
            if plan.count is None and due < now - interval:
                # A monitor a whole interval behind (a suspended process, a stalled loop) skips
                # the slots it missed, keeping its phase, instead of sending them all at once.
                skipped = math.floor((now - due) / interval)
                host.first_at += skipped * interval
                due += skipped * interval
            self._order += 1
            heapq.heappush(self._repeats, (due, self._order, host))
        return True


async def start_fanout(
    nursery: trio.Nursery,
    plan: FanoutPlan,
    hosts: Iterable[Host] | AsyncIterable[Host],
    transport_for: Callable[[Family], Transport],
) -> Fanout:
    """Start a batch whose tasks live in *nursery*; errors in them go there."""
    return await start_scoped(nursery, Fanout(plan, hosts, transport_for))


class FanoutContext(ScopedContext[Fanout, FanoutItem]):
    """What :meth:`Pinger.fanout` returns: use it as ``async with ... as batch``."""

    def __init__(
        self,
        plan: FanoutPlan,
        hosts: Iterable[Host] | AsyncIterable[Host],
        transport_for: Callable[[Family], Transport],
    ) -> None:
        check_hosts(hosts)
        super().__init__(
            lambda: Fanout(plan, hosts, transport_for),
            "a batch's probes run inside a block: `async with pinger.fanout(...) as batch: async for ...`",
        )


__all__ = ["Fanout", "FanoutContext", "FanoutItem", "FanoutProgress", "HostError", "HostResult", "start_fanout"]
