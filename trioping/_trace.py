"""Traceroute: probes with rising TTLs to one host, as an async iterator of hops in order.

A trace is one more owner of probes on the pinger's sockets, as a stream or a batch is: its
probes go through the same probe table, are matched the same exact way (an ICMP error by
the request it quotes), and are timed from the same kernel stamps.  Raw sockets receive a
router's time-exceeded as a packet, datagram sockets on their error queue; both reach the
table, so a trace works with or without root, as :func:`open_pinger` chose.

All TTLs are in flight at once (bounded by *concurrency* probes, as traceroute's ``-N``),
and hops come out in order as each is complete.  Its task lives in a nursery scoped to its
``async with`` block (or in a nursery the caller owns, :meth:`Pinger.start_trace`).
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import trio

from ._errors import InvalidArgumentError
from ._names import NameBook, NamesOf
from ._options import check_positive, check_seconds
from ._packet import Family, validate_size
from ._resolve import Host, parse_family, resolve
from ._results import IcmpError, IcmpErrorKind, ProbeResult, Reply, SendError, Timeout
from ._scoped import ScopedContext, start_scoped
from ._table import Probe
from ._transport import Transport

HopResult = Reply | IcmpError | Timeout | SendError
"""What one probe of a hop came to: the target's reply, a router's ICMP error (time
exceeded, or an unreachable that ends the trace), a timeout, or a refused send."""

MAX_PROBES_PER_HOP = 10
_TIME_EXCEEDED = IcmpErrorKind.TIME_EXCEEDED


@dataclass(frozen=True, slots=True)
class Hop:
    """One TTL of a trace and what each of its probes came to, in probe order.

    A hop may show several addresses (load-balanced paths).  ``reached``: the target
    answered at this TTL; ``final``: the trace ends here (reached, or an ICMP error other
    than time-exceeded, such as an unreachable).
    """

    ttl: int
    results: tuple[HopResult, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        """The distinct addresses that answered, in the order they first did."""
        seen: dict[str, None] = {}
        for result in self.results:
            if isinstance(result, (Reply, IcmpError)):
                seen.setdefault(result.source, None)
        return tuple(seen)

    @property
    def reached(self) -> bool:
        return any(isinstance(result, Reply) for result in self.results)

    @property
    def error(self) -> IcmpError | None:
        """The first ICMP error that ends the trace here (unreachable, prohibited...), if any."""
        for result in self.results:
            if isinstance(result, IcmpError) and not in_transit(result):
                return result
        return None

    @property
    def final(self) -> bool:
        return self.reached or self.error is not None

    @property
    def rtts(self) -> tuple[float, ...]:
        """The round-trip times of the probes that were answered (seconds)."""
        return tuple(
            result.rtt for result in self.results if isinstance(result, (Reply, IcmpError)) and result.rtt is not None
        )


def in_transit(result: IcmpError) -> bool:
    """A router's "TTL exceeded in transit" (code 0): the one error that says go further.
    Time exceeded in *reassembly* (code 1) comes from the destination, and ends the trace
    as traceroute ends it (``!<11-1>``)."""
    return result.kind is _TIME_EXCEEDED and result.code == 0


def ends_trace(result: HopResult) -> bool:
    """The target answered, or an error other than time-exceeded in transit says it will not be."""
    if isinstance(result, Reply):
        return True
    return isinstance(result, IcmpError) and not in_transit(result)


@dataclass(frozen=True, slots=True)
class TracePlan:
    """What a :class:`Trace` will do, checked."""

    host: str
    target: Host
    max_hops: int
    probes_per_hop: int
    timeout: float
    first_hop: int
    size: int
    family: Family | None
    concurrency: int
    names: bool
    name_timeout: float
    name_concurrency: int
    tx_timestamps: bool = True


def trace_plan(
    host: Host,
    *,
    max_hops: int,
    probes_per_hop: int,
    timeout: float,
    first_hop: int,
    size: int,
    family: Family | int | None,
    concurrency: int,
    names: bool,
    name_timeout: float,
    name_concurrency: int,
    tx_timestamps: bool = True,
) -> TracePlan:
    wanted_family = parse_family(family)
    if isinstance(max_hops, bool) or not isinstance(max_hops, int) or not 1 <= max_hops <= 255:
        raise InvalidArgumentError(f"max_hops must be an integer from 1 to 255, not {max_hops!r}")
    if (
        isinstance(probes_per_hop, bool)
        or not isinstance(probes_per_hop, int)
        or not 1 <= probes_per_hop <= MAX_PROBES_PER_HOP
    ):
        raise InvalidArgumentError(
            f"probes_per_hop must be an integer from 1 to {MAX_PROBES_PER_HOP}, not {probes_per_hop!r}"
        )
    if isinstance(first_hop, bool) or not isinstance(first_hop, int) or not 1 <= first_hop <= max_hops:
        raise InvalidArgumentError(f"first_hop must be an integer from 1 to max_hops ({max_hops}), not {first_hop!r}")
    return TracePlan(
        host=host if isinstance(host, str) else str(host),
        target=host,
        max_hops=max_hops,
        probes_per_hop=probes_per_hop,
        timeout=check_seconds("timeout", timeout, allow_zero=False),
        first_hop=first_hop,
        size=validate_size(size, wanted_family),
        family=wanted_family,
        concurrency=check_positive("concurrency", concurrency),
        names=bool(names),
        name_timeout=check_seconds("name_timeout", name_timeout, allow_zero=False),
        name_concurrency=check_positive("name_concurrency", name_concurrency),
        tx_timestamps=bool(tx_timestamps),
    )


class Trace(NamesOf):
    """The hops to one host, in order; ``async for hop in trace`` yields each :class:`Hop`
    once all its probes have a verdict, and ends after the final hop (the target reached,
    an unreachable) or at ``max_hops``.

    Open one with ``async with pinger.trace(host) as trace:``.  Probes beyond the final
    hop, sent before it was known, are forgotten: they never make extra hops.  Memory is
    bounded by ``max_hops`` hops of ``probes_per_hop`` results.

    **Names.**  With ``names=True`` each address that answers is looked up (reverse DNS),
    ``name_concurrency`` at a time, each for at most ``name_timeout`` seconds, in the
    background (:mod:`._names`): hops never wait for names.  :meth:`name` gives one once known, and
    :meth:`wait_for_names` waits for some, up to a deadline of the caller's.
    """

    def __init__(self, plan: TracePlan, transport_for: Callable[[Family], Transport]) -> None:
        self.host = plan.host
        self.address: str | None = None
        """The resolved address, once the trace has started."""
        self.family: Family | None = None
        self._plan = plan
        self._transport_for = transport_for
        self._transport: Transport | None = None
        self._slots: dict[int, list[HopResult | None]] = {}
        self._next_ttl = plan.first_hop
        self._final: int | None = None
        self._queue: deque[Hop] = deque()
        self._in_flight = 0
        self._room: trio.Event | None = None
        self._done = trio.Event()
        self._consumers = trio.lowlevel.ParkingLot()
        self._scope = trio.CancelScope()
        self._names = NameBook(plan.name_concurrency, plan.name_timeout) if plan.names else None
        self._finished = False
        self._error: BaseException | None = None
        self.sent = 0
        """Probes handed to the kernel so far."""

    @property
    def final_ttl(self) -> int | None:
        """The TTL at which the trace ends, once a probe has shown it."""
        return self._final

    # -- the consumer's side -----------------------------------------------------------------

    def __aiter__(self) -> Trace:
        return self

    async def __anext__(self) -> Hop:
        await trio.lowlevel.checkpoint()
        while not self._queue:
            if self._finished or self._done.is_set():
                if self._error is not None:
                    raise copy.copy(self._error)
                raise StopAsyncIteration
            await self._consumers.park()
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Stop probing and forget this trace's probes."""
        self._stop()
        await trio.lowlevel.checkpoint()

    # -- the receiver's side -----------------------------------------------------------------

    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        """Take a verdict from the socket's receiver (or, for a refused send, the send)."""
        if self._finished:
            return
        if isinstance(result, Reply):
            if result.duplicate:
                return
        elif not isinstance(result, (Timeout, IcmpError, SendError)):
            return  # late or invalid replies say nothing about the path
        hop_result: HopResult = result
        ttl, index = probe.tag
        slots = self._slots.get(ttl)
        if slots is None or slots[index] is not None:
            return
        slots[index] = hop_result
        self._in_flight -= 1
        if ends_trace(hop_result) and (self._final is None or ttl < self._final):
            self._final = ttl
        if self._names is not None and isinstance(hop_result, (Reply, IcmpError)):
            self._names.request(hop_result.source)
        self._emit_ready()
        if self._room is not None:
            self._room.set()

    def _emit_ready(self) -> None:
        plan = self._plan
        while not self._done.is_set():
            ttl = self._next_ttl
            slots = self._slots.get(ttl)
            if slots is None or None in slots:
                break
            del self._slots[ttl]
            self._queue.append(Hop(ttl, tuple(cast(list[HopResult], slots))))
            self._next_ttl = ttl + 1
            if ttl >= plan.max_hops or (self._final is not None and ttl >= self._final):
                self._complete()
        self._consumers.unpark_all()

    def _complete(self) -> None:
        """Every hop is out: stop sending, forget the probes sent beyond the final hop."""
        self._done.set()
        self._slots.clear()
        if self._transport is not None:
            self._transport.table.forget_owner(self)
        if self._names is not None:
            self._names.close()  # the name task ends once the lookups asked are done

    def abandon(self, error: BaseException) -> None:
        """The pinger closed under this trace: its consumer gets *error* after the hops out."""
        self._error = error
        self._stop()

    # -- the sending task ----------------------------------------------------------------------

    async def _start(self, nursery: trio.Nursery) -> None:
        plan = self._plan
        address, family = await resolve(plan.target, plan.family)
        validate_size(plan.size, family)
        self.address, self.family = address, family
        self._transport = self._transport_for(family)
        if self._names is not None:
            nursery.start_soon(self._names.run)
        await self._transport.wait_for_stamps()
        await nursery.start(self._run, self._transport, address)

    def _stop(self) -> None:
        self._scope.cancel()
        if self._names is not None:
            self._names.scope.cancel()
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._transport is not None:
            self._transport.table.forget_owner(self)
        if self._names is not None:
            self._names.close()
        self._consumers.unpark_all()
        if self._room is not None:
            self._room.set()

    async def _run(self, transport: Transport, address: str, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with self._scope:
                task_status.started()
                await self._send_all(transport, address)
                await self._done.wait()
        finally:
            if not self._done.is_set():
                self._done.set()
            self._finish()

    async def _send_all(self, transport: Transport, address: str) -> None:
        plan = self._plan
        probes, size, timeout, tx = plan.probes_per_hop, plan.size, plan.timeout, plan.tx_timestamps
        for ttl in range(plan.first_hop, plan.max_hops + 1):
            await trio.lowlevel.checkpoint()
            for index in range(probes):
                while self._in_flight >= plan.concurrency and not self._done.is_set():
                    room = self._room = trio.Event()
                    await room.wait()
                if self._done.is_set() or self._finished or (self._final is not None and ttl > self._final):
                    return
                if index == 0:
                    self._slots[ttl] = [None] * probes
                self._in_flight += 1  # before the send: a refused one has its verdict at once
                self.sent += 1
                await transport.send(address, index, size, ttl, self, timeout, tx, (ttl, index))


async def start_trace(nursery: trio.Nursery, plan: TracePlan, transport_for: Callable[[Family], Transport]) -> Trace:
    """Resolve the host, then start the trace's tasks in *nursery*; errors in them go there."""
    return await start_scoped(nursery, Trace(plan, transport_for))


class TraceContext(ScopedContext[Trace, Hop]):
    """What :meth:`Pinger.trace` returns: use it as ``async with ... as trace``."""

    def __init__(self, plan: TracePlan, transport_for: Callable[[Family], Transport]) -> None:
        super().__init__(
            lambda: Trace(plan, transport_for),
            "a trace's probes run inside a block: `async with pinger.trace(host) as trace: async for hop in trace`",
        )


__all__ = [
    "Hop",
    "HopResult",
    "Trace",
    "TraceContext",
    "TracePlan",
    "ends_trace",
    "in_transit",
    "start_trace",
    "trace_plan",
]
