"""The public entry points: :func:`open_pinger`, :class:`Pinger`, :func:`ping`."""

from __future__ import annotations

import math
import secrets
import weakref
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ._errors import InvalidArgumentError, PermissionDeniedError, PingerClosedError
from ._packet import DEFAULT_SIZE, TOKEN_SIZE, Family, validate_size
from ._resolve import Host, parse_family, resolve
from ._results import IcmpError, Outstanding, ProbeResult, Reply, SendError, Timeout
from ._socket import (
    IcmpSocket,
    PathMtuDiscovery,
    SocketKind,
    SocketOptions,
    datagram_requirement,
    raw_requirement,
)
from ._stats import PingStats, StatsAccumulator
from ._transport import _WAITING, Probe, ProbeState, Transport

if TYPE_CHECKING:
    from ._fanout import Fanout

DEFAULT_COUNT = 5
DEFAULT_INTERVAL = 1.0
DEFAULT_TIMEOUT = 2.0
_KEPT_FINISHED_PROBES = 4096
_CHECKPOINT_EVERY = 64
_UNANSWERED = (ProbeState.WAITING, ProbeState.EXPIRED)  # no reply and no ICMP error (yet)


def _check_positive_count(count: int | None, *, allow_none: bool) -> int | None:
    if count is None and allow_none:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise InvalidArgumentError(f"count must be a positive integer, not {count!r}")
    return count


def _check_optional_seconds(name: str, value: float | None) -> float | None:
    return None if value is None else _check_seconds(name, value, allow_zero=False)


def _check_seconds(name: str, value: float, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, not {value!r}")
    return float(value)


def _check_ttl(ttl: int | None) -> int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 255:
        raise InvalidArgumentError(f"ttl must be an integer from 1 to 255, not {ttl!r}")
    return ttl


class _StreamRun:
    """The sending side of a :class:`PingStream`; its task lives in the pinger's nursery.

    Kept apart from the user-facing object so that dropping that object (it holds the only
    strong reference the user has) can cancel the run through a finalizer.
    """

    def __init__(self, pinger: Pinger, plan: _StreamPlan) -> None:
        self.pinger = pinger
        self.plan = plan
        self.accumulator = StatsAccumulator(plan.host, "", keep_results=plan.count is not None)
        self.cancel_scope = trio.CancelScope()
        self.kept: deque[Probe] = deque()
        self.send_channel, self.receive_channel = trio.open_memory_channel[ProbeResult](math.inf)
        self._send_nowait = self.send_channel.send_nowait
        self.address: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.waiting: deque[tuple[float, Probe]] = deque()  # (deadline, probe), oldest first
        self.reaper_event: trio.Event | None = None
        self.sending_done = False

    async def start(self) -> None:
        address, family = await resolve(self.plan.target, self.plan.family)
        validate_size(self.plan.size, family)
        transport = self.pinger._transport(family)
        self.address = self.accumulator.address = address
        await self.pinger._nursery.start(self._send_probes, transport, address)

    def cancel(self) -> None:
        self.cancel_scope.cancel()
        self.receive_channel.close()

    def statistics(self) -> PingStats:
        if self.started_at is not None:
            end = self.finished_at if self.finished_at is not None else trio.current_time()
            self.accumulator.elapsed = end - self.started_at
        return self.accumulator.snapshot()

    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        self._report(result)
        if self.waiting and probe is self.waiting[0][1]:
            self._wake_reaper()  # the oldest probe has its verdict: the reaper moves on
        plan = self.plan
        if plan.deadline is not None and plan.count is not None and self.accumulator.received >= plan.count:
            self.cancel_scope.cancel()  # ping -c N -w T ends at the N-th reply

    def _report(self, result: ProbeResult) -> None:
        self.accumulator.add(result)
        # Not contextlib.suppress: this runs per result, and a try block costs nothing.
        try:  # noqa: SIM105
            self._send_nowait(result)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _send_probes(self, transport: Transport, address: str, *, task_status: trio.TaskStatus[None]) -> None:
        plan = self.plan
        try:
            with self.cancel_scope:
                self.started_at = start = trio.current_time()
                if plan.deadline is not None:
                    self.cancel_scope.deadline = start + plan.deadline
                task_status.started()
                async with trio.open_nursery() as waits:
                    waits.start_soon(self._await_verdicts, transport)
                    index = 0
                    previous: Probe | None = None
                    # Locals: this loop runs per probe (a flood sends tens of thousands a second).
                    count, interval, size, ttl, timeout = plan.count, plan.interval, plan.size, plan.ttl, plan.timeout
                    notify = plan.on_outstanding
                    clock = trio.lowlevel.current_clock().current_time  # trio.current_time, two calls fewer
                    try_send = transport.try_send
                    waiting = self.waiting
                    accumulator = self.accumulator
                    # With a deadline, as ping -c N -w T: keep sending until N replies, not N probes.
                    until_replies = count is not None and plan.deadline is not None
                    while count is None or index < count or (until_replies and accumulator.received < count):
                        due = start + index * interval
                        # (-i 0: every probe is due at once, no clock reading needed.)
                        if interval and due > clock():
                            await trio.sleep_until(due)
                        elif index % _CHECKPOINT_EVERY == 0:
                            await trio.lowlevel.checkpoint()  # back to back (-i 0): let replies in
                        if notify is not None and previous is not None and previous.state in _UNANSWERED:
                            notify(Outstanding(previous.target, previous.sequence, previous.index))
                        sent = try_send(address, index=index, size=size, ttl=ttl, owner=self)
                        if sent is None:  # the send buffer is full
                            sent = await transport.send(address, index=index, size=size, ttl=ttl, owner=self)
                        index += 1
                        if type(sent) is SendError:
                            previous = None
                            self._report(sent)
                            continue
                        assert isinstance(sent, Probe)
                        previous = sent
                        accumulator.transmitted += 1
                        self._keep(transport, sent)
                        idle = not waiting  # else the reaper already waits for an earlier deadline
                        waiting.append((clock() + timeout, sent))
                        if idle:
                            self._wake_reaper()
                    self.sending_done = True
                    self._wake_reaper()
        finally:
            self.finished_at = trio.current_time()
            for probe in self.kept:
                transport.forget(probe)
            self.kept.clear()
            self.send_channel.close()

    def _keep(self, transport: Transport, probe: Probe) -> None:
        """Keep finished probes in the table a while, to tell duplicate and late replies.

        Only the oldest *finished* probes are forgotten, so an endless stream stays bounded
        while no probe still waiting for its reply is ever dropped.
        """
        self.kept.append(probe)
        while len(self.kept) > _KEPT_FINISHED_PROBES and self.kept[0].state is not _WAITING:
            transport.forget(self.kept.popleft())

    def _wake_reaper(self) -> None:
        event = self.reaper_event
        if event is not None:
            self.reaper_event = None
            event.set()

    async def _await_verdicts(self, transport: Transport) -> None:
        """Expire each probe *timeout* after its send, unless answered before.

        One task for the whole stream, not a task and cancel scope per probe: the timeout
        is the same for every probe, so ``waiting`` is ordered by deadline and only its
        head is ever watched.  Returns once sending is over and every probe has a verdict.
        """
        waiting = self.waiting
        while True:
            while waiting and (waiting[0][1].state is not _WAITING or waiting[0][0] <= trio.current_time()):
                transport.expire(waiting.popleft()[1])
            if not waiting and self.sending_done:
                return
            event = self.reaper_event = trio.Event()
            with trio.move_on_at(waiting[0][0] if waiting else math.inf):
                await event.wait()


@dataclass(frozen=True, slots=True)
class _StreamPlan:
    host: str
    target: Host
    count: int | None
    interval: float
    size: int
    timeout: float
    ttl: int | None
    family: Family | None
    deadline: float | None
    on_outstanding: Callable[[Outstanding], None] | None = None


class PingStream:
    """Probes to one host at a fixed interval, as an async iterator of results.

    ``async for result in pinger.stream(host):`` yields :class:`Reply`, :class:`Timeout`,
    :class:`IcmpError`, :class:`SendError`, :class:`LateReply` and :class:`InvalidReply`
    as they happen; :attr:`statistics` is a running snapshot at any moment.  Probes are
    sent from absolute times (``start + i * interval``) so intervals never drift, by a task
    in the pinger's nursery, so a slow consumer never delays a send.

    The run stops when its count is done, at :meth:`aclose` (or leaving
    ``async with pinger.stream(...) as stream:``), when the task iterating it is cancelled,
    or when the stream object is garbage-collected; its probes are then forgotten.  A
    stream is iterated once; an endless stream keeps its counts and RTTs (8 bytes a reply)
    but not its results, so it can run for days.
    """

    def __init__(self, pinger: Pinger, plan: _StreamPlan) -> None:
        self.host = plan.host
        self._run = _StreamRun(pinger, plan)
        self._started = False
        self._since_checkpoint = 0
        weakref.finalize(self, self._run.cancel)

    @property
    def address(self) -> str | None:
        """The resolved address, once iteration has started."""
        return self._run.address

    @property
    def statistics(self) -> PingStats:
        """Counts so far (or final, once the stream has ended)."""
        return self._run.statistics()

    @property
    def outstanding(self) -> int:
        """Probes sent that have neither an answer nor a verdict yet."""
        return sum(1 for probe in self._run.kept if probe.state is ProbeState.WAITING)

    async def __aenter__(self) -> PingStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop sending and forget this stream's probes."""
        self._run.cancel()
        await trio.lowlevel.checkpoint()

    def __aiter__(self) -> PingStream:
        return self

    async def __anext__(self) -> ProbeResult:
        if not self._started:
            self._started = True
            try:
                await self._run.start()  # errors here (closed pinger, bad host) are raised
            except BaseException:
                self._run.cancel()
                raise
        try:
            self._since_checkpoint += 1
            if self._since_checkpoint < _CHECKPOINT_EVERY:
                # Results already queued are handed out without a trip through the
                # scheduler (a flood yields thousands); every _CHECKPOINT_EVERY-th call,
                # and any call that has to wait, is a full checkpoint.  (Not
                # contextlib.suppress: this runs per result, and a try block costs nothing.)
                try:
                    return self._run.receive_channel.receive_nowait()
                except trio.WouldBlock:
                    pass
            self._since_checkpoint = 0
            return await self._run.receive_channel.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        except BaseException:
            self._run.cancel()
            raise


class _SingleProbe:
    """Owner of one low-level probe: remembers its first decisive result."""

    def __init__(self) -> None:
        self.outcome: Reply | IcmpError | SendError | Timeout | None = None

    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        if self.outcome is None and isinstance(result, (Reply, IcmpError, SendError, Timeout)):
            self.outcome = result


class Pinger:
    """Owns one ICMP socket per address family (opened on first use) and their receivers.

    Create it with :func:`open_pinger`.  Each pinger draws a random 16-bit identifier and a
    random 8-byte payload token, so any number of pingers, in one process or many, can ping
    the same hosts at once without counting each other's replies.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        *,
        socket_kind: SocketKind | None,
        options: SocketOptions,
    ) -> None:
        self._nursery = nursery
        self._socket_kind = socket_kind
        self._options = options
        self.identifier = secrets.randbelow(0x10000)
        self.token = secrets.token_bytes(TOKEN_SIZE)
        self._transports: dict[Family, Transport] = {}
        self._closed = False
        self._drops_at_close = 0

    def _transport(self, family: Family) -> Transport:
        """The transport for *family*, opening its socket and receiver on first use."""
        if self._closed:
            raise PingerClosedError("this pinger is closed: use it inside its open_pinger() block")
        transport = self._transports.get(family)
        if transport is None:
            sock = self._open_socket(family)
            transport = Transport(sock, self.token)
            self._transports[family] = transport
            self._nursery.start_soon(transport.receive_forever, name=f"trioping receiver v{family.value}")
        return transport

    def _open_socket(self, family: Family) -> IcmpSocket:
        if self._socket_kind is not None:
            return IcmpSocket(family, self._socket_kind, self.identifier, self._options)
        try:
            return IcmpSocket(family, SocketKind.RAW, self.identifier, self._options)
        except PermissionDeniedError:
            try:
                return IcmpSocket(family, SocketKind.DATAGRAM, self.identifier, self._options)
            except PermissionDeniedError as datagram_error:
                raise PermissionDeniedError(
                    f"cannot open an ICMPv{family.value} socket: {raw_requirement()}, and {datagram_requirement()}"
                ) from datagram_error

    def socket_kind(self, family: Family | int = Family.V4) -> SocketKind:
        """The kind of socket used for *family*, opening it if needed (to see what works)."""
        return self._transport(Family(family)).sock.kind

    @property
    def kernel_drops(self) -> int:
        """Replies the kernel dropped because a receive buffer was full (all families).

        Still readable once the pinger is closed.
        """
        return self._drops_at_close + sum(t.kernel_drops for t in self._transports.values())

    def stream(
        self,
        host: Host,
        *,
        count: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        size: int = DEFAULT_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        ttl: int | None = None,
        family: Family | int | None = None,
        deadline: float | None = None,
        on_outstanding: Callable[[Outstanding], None] | None = None,
    ) -> PingStream:
        """Probe *host* every *interval* seconds, *count* times (None: until stopped).

        Each probe waits up to *timeout* seconds; *deadline* (seconds) ends the whole run,
        as ``ping -w``.  *on_outstanding* (``ping -O``) is called just before each probe is
        sent, with the previous probe if neither a valid reply nor an ICMP error for it has
        arrived yet (a probe past its timeout still counts, as in iputils); it runs in
        the sending task, so it must neither block nor raise.  Arguments are checked here,
        before anything is sent.
        """
        wanted_family = parse_family(family)
        plan = _StreamPlan(
            host=host if isinstance(host, str) else str(host),
            target=host,
            count=_check_positive_count(count, allow_none=True),
            interval=_check_seconds("interval", interval, allow_zero=True),
            size=validate_size(size, wanted_family),
            timeout=_check_seconds("timeout", timeout, allow_zero=False),
            ttl=_check_ttl(ttl),
            family=wanted_family,
            deadline=_check_optional_seconds("deadline", deadline),
            on_outstanding=on_outstanding,
        )
        return PingStream(self, plan)

    async def ping(
        self,
        host: Host,
        count: int = DEFAULT_COUNT,
        *,
        interval: float = DEFAULT_INTERVAL,
        size: int = DEFAULT_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        ttl: int | None = None,
        family: Family | int | None = None,
        deadline: float | None = None,
    ) -> PingStats:
        """Send *count* echoes to *host* and return the statistics.

        Lost probes are counted, never raised.  Raises :class:`ResolutionError` for a name
        that does not resolve and :class:`InvalidArgumentError` for a bad argument.
        """
        stream = self.stream(
            host,
            count=_check_positive_count(count, allow_none=False),
            interval=interval,
            size=size,
            timeout=timeout,
            ttl=ttl,
            family=family,
            deadline=deadline,
        )
        async for _ in stream:
            pass
        return stream.statistics

    def fanout(
        self,
        hosts: Iterable[Host] | AsyncIterable[Host],
        *,
        count: int = 1,
        interval: float = DEFAULT_INTERVAL,
        rate: float | None = 1000.0,
        timeout: float = DEFAULT_TIMEOUT,
        size: int = DEFAULT_SIZE,
        ttl: int | None = None,
        family: Family | int | None = None,
        resolve_concurrency: int = 32,
        tx_timestamps: bool = False,
    ) -> Fanout:
        """Ping many *hosts* (any iterable, lazy or async) *count* times each; results
        stream as they arrive.  See :class:`~trioping.Fanout`.

        *rate* paces the whole batch in probes per second (None: as fast as the socket
        takes them); *interval* separates the probes to one host; each probe waits up to
        *timeout*.  Names are resolved *resolve_concurrency* at a time while sending goes
        on.  RTTs use the kernel's receive stamp and a clock read just before the send
        (``RttClock.KERNEL_RX``) unless *tx_timestamps* asks for kernel transmit stamps too,
        at the cost of an error-queue read per probe.  Arguments are checked here.
        """
        from ._fanout import fanout

        return fanout(
            self,
            hosts,
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

    async def probe(
        self,
        host: Host,
        *,
        size: int = DEFAULT_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        ttl: int | None = None,
        family: Family | int | None = None,
    ) -> Reply | Timeout | IcmpError | SendError:
        """Send one echo and return its reply, or :class:`Timeout` -- never raise for loss.

        The low-level call (ping-tokio's ``send_icmp_echo_v4/v6``): the reply carries the
        source address, sequence, size, TTL or hop limit and RTT.
        """
        checked_timeout = _check_seconds("timeout", timeout, allow_zero=False)
        checked_ttl = _check_ttl(ttl)
        wanted_family = parse_family(family)
        validate_size(size, wanted_family)
        address, resolved_family = await resolve(host, wanted_family)
        validate_size(size, resolved_family)
        transport = self._transport(resolved_family)
        owner = _SingleProbe()
        sent = await transport.send(address, index=0, size=size, ttl=checked_ttl, owner=owner)
        if isinstance(sent, SendError):
            return sent
        sent.done = trio.Event()
        try:
            with trio.move_on_after(checked_timeout):
                await sent.done.wait()
            transport.expire(sent)
            assert owner.outcome is not None
            return owner.outcome
        finally:
            transport.forget(sent)

    def _close(self) -> None:
        self._closed = True
        for transport in self._transports.values():
            transport.sock.close()
        self._drops_at_close = self.kernel_drops
        self._transports.clear()


@asynccontextmanager
async def open_pinger(
    *,
    socket_kind: SocketKind | str | None = None,
    source: str | None = None,
    interface: str | None = None,
    tos: int | None = None,
    pmtu: PathMtuDiscovery | str | None = None,
    receive_buffer: int | None = None,
) -> AsyncIterator[Pinger]:
    """Open a :class:`Pinger` whose receiver tasks live in a nursery scoped to the block.

    ``socket_kind``: ``"raw"``, ``"datagram"`` or None to pick raw when permitted, else
    datagram.  ``source`` / ``interface`` bind the sockets (``ping -I``), ``tos`` sets the
    IPv4 TOS / IPv6 traffic class (``-Q``), ``pmtu`` the DF policy (``-M``),
    ``receive_buffer`` the socket receive buffer in bytes.  Leaving the block cancels the
    receivers and closes the sockets.
    """
    try:
        kind = None if socket_kind in (None, "auto") else SocketKind(socket_kind)
    except ValueError:
        raise InvalidArgumentError(f"socket_kind must be raw, datagram or auto, not {socket_kind!r}") from None
    try:
        mtu_policy = None if pmtu is None else PathMtuDiscovery(pmtu)
    except ValueError:
        raise InvalidArgumentError(f"pmtu must be do, want or dont, not {pmtu!r}") from None
    if tos is not None and (isinstance(tos, bool) or not isinstance(tos, int) or not 0 <= tos <= 255):
        raise InvalidArgumentError(f"tos must be an integer from 0 to 255, not {tos!r}")
    if receive_buffer is not None and (
        isinstance(receive_buffer, bool) or not isinstance(receive_buffer, int) or not 0 < receive_buffer < 2**31
    ):
        raise InvalidArgumentError(f"receive_buffer must be a positive number of bytes, not {receive_buffer!r}")
    options = SocketOptions(source=source, interface=interface, tos=tos, pmtu=mtu_policy, receive_buffer=receive_buffer)
    pinger: Pinger | None = None
    try:
        async with trio.open_nursery() as nursery:
            pinger = Pinger(nursery, socket_kind=kind, options=options)
            try:
                yield pinger
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Receivers never raise, so a lone exception is the block's own: let the caller
        # catch ResolutionError itself rather than a group around it.
        if len(group.exceptions) == 1:
            lone = group.exceptions[0]
            raise lone from lone.__cause__
        raise
    finally:
        if pinger is not None:
            pinger._close()


async def ping(
    host: Host,
    count: int = DEFAULT_COUNT,
    *,
    interval: float = DEFAULT_INTERVAL,
    size: int = DEFAULT_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    ttl: int | None = None,
    family: Family | int | None = None,
    deadline: float | None = None,
) -> PingStats:
    """One-off convenience: open a pinger, ping *host*, close it."""
    async with open_pinger() as pinger:
        return await pinger.ping(
            host,
            count,
            interval=interval,
            size=size,
            timeout=timeout,
            ttl=ttl,
            family=family,
            deadline=deadline,
        )


__all__ = ["PingStream", "Pinger", "open_pinger", "ping"]
