"""Streams: probes to one host at a fixed interval, as an async iterator of results.

A stream's sending task lives in a nursery scoped to its ``async with`` block (or in a
nursery its caller owns, :meth:`Pinger.start_stream`), never in the pinger's: leaving the
block stops it and forgets its probes, and an error in it reaches that block alone.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from typing import cast

import trio

from ._options import StreamPlan, resume_chunk
from ._packet import Family, validate_size
from ._resolve import resolve
from ._results import IcmpError, Outstanding, ProbeResult, Reply, SendError, Timeout
from ._scoped import ScopedContext, start_scoped
from ._stats import PingStats, StatsAccumulator
from ._table import Probe, ProbeState
from ._transport import Transport

_CHECKPOINT_EVERY = 64
_WAITING = ProbeState.WAITING


class PingStream:
    """Probes to one host at a fixed interval; ``async for`` yields their results.

    Open one with ``async with pinger.stream(host, ...) as stream:``.  It yields
    :class:`Reply`, :class:`Timeout`, :class:`IcmpError`, :class:`SendError`,
    :class:`LateReply` and :class:`InvalidReply` as they happen, and ends when its count is
    done (or its deadline passes); :attr:`statistics` is a running snapshot at any moment.

    **Buffer.**  A stream holds at most ``buffer`` results for its consumer, counting the
    probes in flight (each will have one verdict).  When the consumer falls that far behind,
    sending *waits* (backpressure): a slow consumer never makes memory grow, and the stream
    never claims probes it did not send.  The schedule then resumes from the moment there is
    room, without a burst to catch up.  Extra results that find the buffer full --
    duplicates, late or invalid replies, which a misbehaving network can multiply -- are
    counted in :attr:`statistics` and in :attr:`overflowed`, not queued.

    **Cancellation.**  A cancelled ``__anext__`` loses nothing: the result it was waiting
    for is handed to the next call, and the stream goes on.  Every ``__anext__`` is a
    checkpoint.

    **Memory.**  Statistics are running figures; results are the consumer's to keep.
    """

    def __init__(self, plan: StreamPlan, transport_for: Callable[[Family], Transport]) -> None:
        self.host = plan.host
        self._plan = plan
        self._transport_for = transport_for
        self._transport: Transport | None = None
        self._accumulator = StatsAccumulator(plan.host, "", keep_results=plan.keep_results)
        self._queue: deque[ProbeResult] = deque()
        self._outstanding = 0
        self._consumers = trio.lowlevel.ParkingLot()  # several tasks may read one stream
        self._parked = 0
        self._room: trio.Event | None = None
        self._all_answered: trio.Event | None = None
        self._scope = trio.CancelScope()
        self._last: Probe | None = None
        self._last_answered = True
        self._finished = False
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._error: BaseException | None = None
        self.overflowed = 0
        """Extra results (duplicate, late, invalid) not queued because the buffer was full."""
        self._resume_below = plan.buffer - resume_chunk(plan.buffer)

    @property
    def address(self) -> str | None:
        """The resolved address, once the stream has started."""
        return self._accumulator.address or None

    @property
    def statistics(self) -> PingStats:
        """Counts so far (final, once the stream has ended)."""
        if self._started_at is not None:
            end = self._finished_at if self._finished_at is not None else trio.current_time()
            self._accumulator.elapsed = end - self._started_at
        return self._accumulator.snapshot()

    @property
    def outstanding(self) -> int:
        """Probes sent that have no verdict yet (reply, timeout or error)."""
        return self._outstanding

    @property
    def queued(self) -> int:
        """Results the next ``__anext__`` calls return without waiting."""
        return len(self._queue)

    # -- the consumer's side -----------------------------------------------------------------

    def __aiter__(self) -> PingStream:
        return self

    async def __anext__(self) -> ProbeResult:
        await trio.lowlevel.checkpoint()  # before taking anything, so a cancel loses nothing
        while not self._queue:
            if self._finished:
                if self._error is not None:
                    raise copy.copy(self._error)  # a fresh one each time, not one piling tracebacks
                raise StopAsyncIteration
            self._parked += 1
            try:
                await self._consumers.park()
            finally:
                self._parked -= 1
        return self.receive_nowait()

    def receive_nowait(self) -> ProbeResult:
        """The next result if one is queued, without a checkpoint, as Trio's channels offer
        (for a consumer that takes many results per wake-up).  Raises
        :class:`trio.WouldBlock` when nothing is queued yet and :class:`trio.EndOfChannel`
        once the stream is over."""
        queue = self._queue
        if not queue:
            if self._finished:
                if self._error is not None:
                    raise copy.copy(self._error)  # a fresh one each time, not one piling tracebacks
                raise trio.EndOfChannel
            raise trio.WouldBlock
        result = queue.popleft()
        room = self._room
        if room is not None and len(queue) + self._outstanding <= self._resume_below:
            self._room = None  # room is given back in chunks
            room.set()
        return result

    async def aclose(self) -> None:
        """Stop sending and forget this stream's probes."""
        self._stop()
        await trio.lowlevel.checkpoint()

    # -- the receiver's side -------------------------------------------------------------------

    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        """Take a result from the socket's receiver (or, for a refused send, from the send)."""
        if self._finished:
            return
        self._accumulator.add(result)
        kind = type(result)
        if (
            kind is Timeout
            or kind is IcmpError
            or kind is SendError
            or (kind is Reply and not cast(Reply, result).duplicate)
        ):
            self._outstanding -= 1
            if probe is self._last and kind is not Timeout:
                self._last_answered = True
            self._queue.append(result)
            if self._outstanding == 0 and self._all_answered is not None:
                self._all_answered.set()
            plan = self._plan
            if plan.deadline is not None and plan.count is not None and self._accumulator.received >= plan.count:
                self._scope.cancel()  # ping -c N -w T ends at the N-th reply
        elif len(self._queue) + self._outstanding < self._plan.buffer:
            self._queue.append(result)
        else:
            self.overflowed += 1
        if self._parked and self._consumers:  # not woken already by an earlier result
            self._consumers.unpark()

    # -- the sending task ----------------------------------------------------------------------

    async def _start(self, nursery: trio.Nursery) -> None:
        plan = self._plan
        address, family = await resolve(plan.target, plan.family)
        validate_size(plan.size, family)
        self._transport = self._transport_for(family)
        self._accumulator.address = address
        await nursery.start(self._run, self._transport, address)

    def _stop(self) -> None:
        self._scope.cancel()
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._started_at is not None and self._finished_at is None:
            self._finished_at = trio.current_time()
        if self._transport is not None:
            self._transport.table.forget_owner(self)
        self._consumers.unpark_all()
        if self._all_answered is not None:
            self._all_answered.set()

    def abandon(self, error: BaseException) -> None:
        """The pinger closed under this stream: no verdict will come.  Its consumer gets
        *error* once the results already queued are taken."""
        self._error = error
        self._scope.cancel()
        self._finish()

    async def _run(self, transport: Transport, address: str, *, task_status: trio.TaskStatus[None]) -> None:
        plan = self._plan
        try:
            with self._scope:
                self._started_at = start = trio.current_time()
                if plan.deadline is not None:
                    self._scope.deadline = plan.deadline
                task_status.started()
                await self._send_all(transport, address, start)
                if self._outstanding:
                    self._all_answered = trio.Event()
                    await self._all_answered.wait()
        finally:
            self._finished_at = trio.current_time()
            self._finish()

    async def _send_all(self, transport: Transport, address: str, start: float) -> None:
        plan = self._plan
        count, interval, size, ttl, timeout = plan.count, plan.interval, plan.size, plan.ttl, plan.timeout
        buffer, tx = plan.buffer, plan.tx_timestamps
        notify = plan.on_outstanding
        clock = trio.current_time
        accumulator = self._accumulator
        queue = self._queue
        # With a deadline, as ping -c N -w T: keep sending until N replies, not N probes.
        until_replies = count is not None and plan.deadline is not None
        index = 0
        while count is None or index < count or (until_replies and accumulator.received < count):
            due = start + index * interval
            if interval and due > clock():
                await trio.sleep_until(due)
            elif index % _CHECKPOINT_EVERY == 0:
                await trio.lowlevel.checkpoint()  # back to back (-i 0): let replies in
            if len(queue) + self._outstanding >= buffer:
                while len(queue) + self._outstanding >= buffer:
                    room = self._room = trio.Event()
                    await room.wait()
                if interval:
                    start = max(start, clock() - index * interval)  # resume, no catch-up burst
            if self._finished:  # stopped while this task waited for an event already set
                return
            last = self._last
            if notify is not None and last is not None and not self._last_answered:
                notify(Outstanding(last.target, last.sequence, last.probe_index))
            self._outstanding += 1  # before the send: a refused one has its verdict at once
            accumulator.transmitted += 1
            self._last = None
            sent = transport.try_send(address, index, size, ttl, self, timeout, clock(), tx)
            if sent is None:  # the send buffer is full
                try:
                    sent = await transport.send(address, index, size, ttl, self, timeout, tx)
                except BaseException:  # stopped while waiting: this probe never went out
                    self._outstanding -= 1
                    accumulator.transmitted -= 1
                    raise
            index += 1
            if sent.state is _WAITING:
                self._last = sent
                self._last_answered = False


async def start_stream(
    nursery: trio.Nursery, plan: StreamPlan, transport_for: Callable[[Family], Transport]
) -> PingStream:
    """Resolve the host, then start the stream's task in *nursery*; errors in it go there."""
    return await start_scoped(nursery, PingStream(plan, transport_for))


class StreamContext(ScopedContext[PingStream, ProbeResult]):
    """What :meth:`Pinger.stream` returns: use it as ``async with ... as stream``."""

    def __init__(self, plan: StreamPlan, transport_for: Callable[[Family], Transport]) -> None:
        super().__init__(
            lambda: PingStream(plan, transport_for),
            "a stream's probes run inside a block: `async with pinger.stream(...) as stream: async for r in stream`",
        )


__all__ = ["PingStream", "StreamContext", "start_stream"]
