"""The public entry points: :func:`open_pinger`, :class:`Pinger`, :func:`ping`."""

from __future__ import annotations

import contextlib
import math
import secrets
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from ._errors import InvalidArgumentError, PermissionDeniedError
from ._packet import DEFAULT_SIZE, TOKEN_SIZE, Family, validate_size
from ._resolve import Host, parse_family, resolve
from ._results import IcmpError, ProbeResult, Reply, SendError, Timeout
from ._socket import IcmpSocket, PathMtuDiscovery, SocketKind, SocketOptions
from ._stats import PingStats, StatsAccumulator
from ._transport import Probe, ProbeState, Transport

DEFAULT_COUNT = 5
DEFAULT_INTERVAL = 1.0
DEFAULT_TIMEOUT = 2.0
_KEPT_FINISHED_PROBES = 4096


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
        self.address: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

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

    def _report(self, result: ProbeResult) -> None:
        self.accumulator.add(result)
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            self.send_channel.send_nowait(result)

    async def _send_probes(self, transport: Transport, address: str, *, task_status: trio.TaskStatus[None]) -> None:
        plan = self.plan
        try:
            with self.cancel_scope:
                self.started_at = start = trio.current_time()
                if plan.deadline is not None:
                    self.cancel_scope.deadline = start + plan.deadline
                task_status.started()
                async with trio.open_nursery() as waits:
                    index = 0
                    while plan.count is None or index < plan.count:
                        await trio.sleep_until(start + index * plan.interval)
                        sent = await transport.send(address, index=index, size=plan.size, ttl=plan.ttl, owner=self)
                        index += 1
                        if isinstance(sent, SendError):
                            self._report(sent)
                            continue
                        self.accumulator.transmitted += 1
                        self._keep(transport, sent)
                        waits.start_soon(self._await_verdict, transport, sent)
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
        probe.done = trio.Event()
        self.kept.append(probe)
        while len(self.kept) > _KEPT_FINISHED_PROBES and self.kept[0].state is not ProbeState.WAITING:
            transport.forget(self.kept.popleft())

    async def _await_verdict(self, transport: Transport, probe: Probe) -> None:
        assert probe.done is not None
        with trio.move_on_after(self.plan.timeout):
            await probe.done.wait()
        transport.expire(probe)


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


class PingStream:
    """Probes to one host at a fixed interval, as an async iterator of results.

    ``async for result in pinger.stream(host):`` yields :class:`Reply`, :class:`Timeout`,
    :class:`IcmpError`, :class:`SendError`, :class:`LateReply` and :class:`InvalidReply`
    as they happen; :attr:`statistics` is a running snapshot at any moment.  Probes are
    sent from absolute times (``start + i * interval``) so intervals never drift, by a task
    in the pinger's nursery, so a slow consumer never delays a send.

    The run stops when its count is done, at :meth:`aclose` (or leaving
    ``async with pinger.stream(...) as stream:``), when the task iterating it is cancelled,
    or when the stream object is garbage-collected; its probes are then forgotten.
    """

    def __init__(self, pinger: Pinger, plan: _StreamPlan) -> None:
        self.host = plan.host
        self._run = _StreamRun(pinger, plan)
        self._started = False
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
        try:
            if not self._started:
                self._started = True
                await self._run.start()
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

    def _transport(self, family: Family) -> Transport:
        """The transport for *family*, opening its socket and receiver on first use."""
        if self._closed:
            raise trio.ClosedResourceError("this pinger is closed")
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
        except PermissionDeniedError as raw_error:
            try:
                return IcmpSocket(family, SocketKind.DATAGRAM, self.identifier, self._options)
            except PermissionDeniedError as datagram_error:
                raise PermissionDeniedError(
                    f"cannot open an ICMP socket. {raw_error}. Or: {datagram_error}"
                ) from datagram_error

    def socket_kind(self, family: Family | int = Family.V4) -> SocketKind:
        """The kind of socket used for *family*, opening it if needed (to see what works)."""
        return self._transport(Family(family)).sock.kind

    @property
    def kernel_drops(self) -> int:
        """Replies the kernel dropped because a receive buffer was full (all families)."""
        return sum(t.kernel_drops for t in self._transports.values())

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
    ) -> PingStream:
        """Probe *host* every *interval* seconds, *count* times (None: until stopped).

        Each probe waits up to *timeout* seconds; *deadline* (seconds) ends the whole run,
        as ``ping -w``.  Arguments are checked here, before anything is sent.
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
        mtu_policy = None if pmtu is None else PathMtuDiscovery(pmtu)
    except ValueError as exc:
        raise InvalidArgumentError(str(exc)) from None
    if tos is not None and (isinstance(tos, bool) or not isinstance(tos, int) or not 0 <= tos <= 255):
        raise InvalidArgumentError(f"tos must be an integer from 0 to 255, not {tos!r}")
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
            raise group.exceptions[0] from None
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
