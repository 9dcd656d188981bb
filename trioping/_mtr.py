"""mtr: traces repeated at an interval, with running statistics per hop and per address.

Each round is a :class:`Trace` of one probe per hop, started every *interval* whether the
previous one has finished or not (a silent hop costs its timeout once, not once a round),
all in the nursery of the run.  Statistics are running figures (Welford's mean and
variance): memory stays constant however long it runs.  A snapshot of every hop's figures
comes out each time a round completes.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ._errors import PingerClosedError
from ._names import NameBook, NamesOf
from ._options import check_count, check_positive, check_seconds
from ._packet import Family
from ._resolve import resolve
from ._results import IcmpError, Reply
from ._scoped import ScopedContext, start_scoped
from ._trace import Hop, TracePlan, ends_trace, in_transit, start_trace
from ._transport import Transport


class _Running:
    """Running RTT figures: count, last, best, worst, mean and the sum of squared deviations
    (Welford), in seconds."""

    __slots__ = ("best", "count", "last", "mean", "squares", "worst")

    def __init__(self) -> None:
        self.count = 0
        self.last = math.nan
        self.best = math.inf
        self.worst = 0.0
        self.mean = 0.0
        self.squares = 0.0

    def add(self, rtt: float) -> None:
        self.count += 1
        self.last = rtt
        self.best = min(self.best, rtt)
        self.worst = max(self.worst, rtt)
        delta = rtt - self.mean
        self.mean += delta / self.count
        self.squares += delta * (rtt - self.mean)

    @property
    def stddev(self) -> float:
        """Sample standard deviation, as mtr computes it (n - 1)."""
        return math.sqrt(self.squares / (self.count - 1)) if self.count > 1 else 0.0


@dataclass(frozen=True, slots=True)
class MtrHost:
    """One address seen at a hop, with the figures of the probes it answered (seconds;
    None before its first answer)."""

    address: str
    received: int
    last: float | None
    avg: float | None
    best: float | None
    worst: float | None
    stddev: float


@dataclass(frozen=True, slots=True)
class MtrHop:
    """One hop's figures over all rounds so far: ``sent`` probes with a verdict,
    ``received`` of them answered (by the target or a router's ICMP error), RTT figures in
    seconds (None before the first answer), and every address that answered, in the
    order first seen (``hosts``; mtr lists the later ones under the first)."""

    ttl: int
    sent: int
    received: int
    last: float | None
    avg: float | None
    best: float | None
    worst: float | None
    stddev: float
    hosts: tuple[MtrHost, ...]

    @property
    def loss(self) -> float:
        """Lost probes, in percent of those sent."""
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def address(self) -> str | None:
        """The first address that answered at this hop (None: none yet, mtr's ``???``)."""
        return self.hosts[0].address if self.hosts else None


@dataclass(frozen=True, slots=True)
class MtrReport:
    """A snapshot of an mtr run: ``rounds`` traces completed, the hops up to the target
    (or up to the last that answered, while the target has not), and whether the target
    has answered (``reached``)."""

    host: str
    address: str
    rounds: int
    hops: tuple[MtrHop, ...]
    reached: bool


def _figures(running: _Running) -> tuple[float | None, float | None, float | None, float | None, float]:
    if not running.count:
        return None, None, None, None, 0.0
    return running.last, running.mean, running.best, running.worst, running.stddev


class _HopFigures:
    __slots__ = ("hosts", "rtt", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.rtt = _Running()
        self.hosts: dict[str, _Running] = {}

    def snapshot(self, ttl: int) -> MtrHop:
        hosts = tuple(MtrHost(address, running.count, *_figures(running)) for address, running in self.hosts.items())
        return MtrHop(ttl, self.sent, self.rtt.count, *_figures(self.rtt), hosts)


@dataclass(frozen=True, slots=True)
class MtrPlan:
    count: int | None
    interval: float
    trace: TracePlan
    buffer: int


def mtr_plan(count: int | None, interval: float, trace: TracePlan, buffer: int) -> MtrPlan:
    return MtrPlan(
        count=check_count(count, allow_none=True),
        interval=check_seconds("interval", interval, allow_zero=False),
        trace=trace,
        buffer=check_positive("buffer", buffer),
    )


def _went_on(hop: Hop) -> bool:
    """A router said "TTL exceeded in transit" at this hop: the path goes further."""
    return any(isinstance(result, IcmpError) and in_transit(result) for result in hop.results)


class Mtr(NamesOf):
    """Repeated traces to one host; ``async for report in mtr`` yields an
    :class:`MtrReport` each time a round completes, and ends after *count* rounds (never,
    with ``count=None``, until its block ends).  :attr:`report` is the latest at any time.
    """

    def __init__(self, plan: MtrPlan, transport_for: Callable[[Family], Transport]) -> None:
        self.host = plan.trace.host
        self.address: str | None = None
        self._plan = plan
        self._transport_for = transport_for
        self._hops: dict[int, _HopFigures] = {}
        self._final: int | None = None
        self._reached = False
        self._rounds_done = 0
        self._queue: deque[MtrReport] = deque(maxlen=plan.buffer)
        self._consumers = trio.lowlevel.ParkingLot()
        self._scope = trio.CancelScope()
        self._finished = False
        self._error: BaseException | None = None
        trace = plan.trace
        self._names = NameBook(trace.name_concurrency, trace.name_timeout) if trace.names else None
        self.dropped = 0
        """Snapshots dropped because the consumer fell more than ``buffer`` behind."""

    @property
    def report(self) -> MtrReport:
        """The figures so far."""
        ttls = sorted(self._hops)
        if self._final is not None:
            last = self._final
        else:
            answered = [ttl for ttl in ttls if self._hops[ttl].hosts]
            last = answered[-1] if answered else (ttls[0] if ttls else 0)
        hops = tuple(self._hops[ttl].snapshot(ttl) for ttl in ttls if ttl <= last)
        return MtrReport(self.host, self.address or "", self._rounds_done, hops, self._reached)

    def __aiter__(self) -> Mtr:
        return self

    async def __anext__(self) -> MtrReport:
        await trio.lowlevel.checkpoint()
        while not self._queue:
            if self._finished:
                if self._error is not None:
                    raise copy.copy(self._error)
                raise StopAsyncIteration
            await self._consumers.park()
        return self._queue.popleft()

    async def aclose(self) -> None:
        self._stop()
        await trio.lowlevel.checkpoint()

    def _add(self, hop: Hop) -> None:
        figures = self._hops.get(hop.ttl)
        if figures is None:
            figures = self._hops[hop.ttl] = _HopFigures()
        for result in hop.results:
            figures.sent += 1
            if isinstance(result, Reply):
                self._reached = True  # an unreachable ends the path too, but is no answer
            if isinstance(result, (Reply, IcmpError)):
                rtt = result.rtt if result.rtt is not None else math.nan
                figures.rtt.add(rtt)
                host = figures.hosts.get(result.source)
                if host is None:
                    host = figures.hosts[result.source] = _Running()
                    if self._names is not None:
                        self._names.request(result.source)
                host.add(rtt)
            if ends_trace(result) and (self._final is None or hop.ttl < self._final):
                self._final = hop.ttl

    def _round_done(self) -> None:
        self._rounds_done += 1
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(self.report)
        self._consumers.unpark_all()

    async def _start(self, nursery: trio.Nursery) -> None:
        trace = self._plan.trace
        self.address, family = await resolve(trace.target, trace.family)
        if self._names is not None:
            nursery.start_soon(self._names.run)
        await nursery.start(self._run, family)

    async def _run(self, family: Family, *, task_status: trio.TaskStatus[None]) -> None:
        plan = self._plan
        try:
            with self._scope:
                task_status.started()
                async with trio.open_nursery() as rounds:
                    start = trio.current_time()
                    index = 0
                    while plan.count is None or index < plan.count:
                        await trio.sleep_until(start + index * plan.interval)
                        await rounds.start(self._round, family, rounds)
                        index += 1
        finally:
            self._finish()

    async def _round(self, family: Family, nursery: trio.Nursery, *, task_status: trio.TaskStatus[None]) -> None:
        base = self._plan.trace
        assert self.address is not None
        max_hops = self._final if self._final is not None else base.max_hops
        plan = TracePlan(
            host=base.host,
            target=self.address,
            max_hops=max_hops,
            probes_per_hop=1,
            timeout=base.timeout,
            first_hop=min(base.first_hop, max_hops),
            size=base.size,
            family=family,
            concurrency=base.concurrency,
            names=False,
            name_timeout=base.name_timeout,
            name_concurrency=base.name_concurrency,
            tx_timestamps=base.tx_timestamps,
        )
        async with trio.open_nursery() as own:
            try:
                trace = await start_trace(own, plan, self._transport_for)
            except PingerClosedError as exc:  # closed between two rounds
                task_status.started()
                self.abandon(exc)
                return
            task_status.started()
            last: Hop | None = None
            try:
                async for last in trace:
                    self._add(last)
            except PingerClosedError as exc:  # closed under this round's probes
                self.abandon(exc)
                return
        if last is not None and last.ttl == max_hops < base.max_hops and self._final == max_hops and _went_on(last):
            # A router now forwards what used to end here: the path grew (a route changed in
            # a long run), so the next round looks as far as max_hops again, as mtr does.
            self._final = None
        self._round_done()

    def _stop(self) -> None:
        self._scope.cancel()
        if self._names is not None:
            self._names.scope.cancel()
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._names is not None:
            self._names.close()  # its task ends once the lookups asked are done
        self._consumers.unpark_all()

    def abandon(self, error: BaseException) -> None:
        """The pinger closed under this run: its consumer gets *error* after the reports
        queued, as a stream's does -- not the nursery the run's tasks live in."""
        self._error = error
        self._stop()


async def start_mtr(nursery: trio.Nursery, plan: MtrPlan, transport_for: Callable[[Family], Transport]) -> Mtr:
    """Resolve the host, then start the run's task in *nursery*; errors in it go there."""
    return await start_scoped(nursery, Mtr(plan, transport_for))


class MtrContext(ScopedContext[Mtr, MtrReport]):
    """What :meth:`Pinger.mtr` returns: use it as ``async with ... as mtr``."""

    def __init__(self, plan: MtrPlan, transport_for: Callable[[Family], Transport]) -> None:
        super().__init__(
            lambda: Mtr(plan, transport_for),
            "an mtr run's probes run inside a block: `async with pinger.mtr(host) as mtr: async for r in mtr`",
        )


__all__ = [
    "Mtr",
    "MtrContext",
    "MtrHop",
    "MtrHost",
    "MtrPlan",
    "MtrReport",
    "mtr_plan",
    "start_mtr",
]
