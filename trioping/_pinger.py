"""The public entry points: :func:`open_pinger`, :class:`Pinger`, :func:`ping`."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ._errors import InvalidArgumentError, PermissionDeniedError, PingerClosedError, unwrap_lone_exception
from ._fanout import Fanout, FanoutContext, start_fanout
from ._options import (
    DEFAULT_COUNT,
    DEFAULT_FANOUT_BUFFER,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_HOPS,
    DEFAULT_MTR_BUFFER,
    DEFAULT_MTR_TIMEOUT,
    DEFAULT_NAME_CONCURRENCY,
    DEFAULT_NAME_TIMEOUT,
    DEFAULT_PROBES_PER_HOP,
    DEFAULT_RATE,
    DEFAULT_RESOLVE_CONCURRENCY,
    DEFAULT_STREAM_BUFFER,
    DEFAULT_TIMEOUT,
    DEFAULT_TRACE_CONCURRENCY,
    DEFAULT_TRACE_TIMEOUT,
    check_count,
    check_seconds,
    check_ttl,
    fanout_plan,
    stream_plan,
)
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
from ._stats import PingStats
from ._stream import PingStream, StreamContext, start_stream
from ._table import Probe
from ._transport import Transport

if TYPE_CHECKING:  # imported where used: a ping run does without them (start-up time)
    from ._mtr import Mtr, MtrContext
    from ._trace import Trace, TraceContext, TracePlan


class _SingleProbe:
    """Owner of one probe: remembers its verdict and wakes the caller."""

    def __init__(self) -> None:
        self.outcome: Reply | IcmpError | SendError | Timeout | None = None
        self.error: BaseException | None = None
        self.done = trio.Event()

    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        if self.outcome is None and isinstance(result, (Reply, IcmpError, SendError, Timeout)):
            self.outcome = result
            self.done.set()

    def abandon(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


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

    def _check_open(self) -> None:
        if self._closed:
            raise PingerClosedError("this pinger is closed: use it inside its open_pinger() block")

    def _transport(self, family: Family) -> Transport:
        """The transport for *family*, opening its socket and receiver on first use."""
        self._check_open()
        transport = self._transports.get(family)
        if transport is None:
            sock = self._open_socket(family)
            transport = Transport(sock, self.token)
            try:
                self._nursery.start_soon(transport.receive_forever, name=f"trioping receiver v{family.value}")
            except RuntimeError:  # cancelled and winding down: its block is about to close
                sock.close()
                raise PingerClosedError("this pinger is closing: use it inside its open_pinger() block") from None
            self._transports[family] = transport
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
        buffer: int = DEFAULT_STREAM_BUFFER,
        tx_timestamps: bool = True,
        on_outstanding: Callable[[Outstanding], None] | None = None,
    ) -> StreamContext:
        """Probe *host* every *interval* seconds, *count* times (None: until stopped), as
        ``async with pinger.stream(host) as stream: async for result in stream: ...``.

        Each probe waits up to *timeout* seconds; *deadline*, an absolute
        :func:`trio.current_time` (``trio.current_time() + 10`` for ``ping -w 10``), ends
        the whole run.  *buffer* bounds the results held for the consumer, probes in flight
        included (see :class:`PingStream`).  *on_outstanding* (``ping -O``) is called in
        the sending task just before each probe is sent, with the previous probe if neither
        a valid reply nor an ICMP error for it has arrived; an exception from it ends this
        stream (and is raised from its block), nothing else.  *tx_timestamps=False* times
        replies from a clock read just before the send instead of the kernel's transmit
        stamp (``RttClock.KERNEL_RX``).  Arguments are checked here, before anything is sent.
        """
        plan = stream_plan(
            host,
            count=count,
            interval=interval,
            size=size,
            timeout=timeout,
            ttl=ttl,
            family=family,
            deadline=deadline,
            buffer=buffer,
            tx_timestamps=tx_timestamps,
            on_outstanding=on_outstanding,
        )
        self._check_open()
        return StreamContext(plan, self._transport)

    async def start_stream(
        self,
        nursery: trio.Nursery,
        host: Host,
        *,
        count: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        size: int = DEFAULT_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        ttl: int | None = None,
        family: Family | int | None = None,
        deadline: float | None = None,
        buffer: int = DEFAULT_STREAM_BUFFER,
        tx_timestamps: bool = True,
        on_outstanding: Callable[[Outstanding], None] | None = None,
    ) -> PingStream:
        """:meth:`stream`, for a caller who owns a nursery (as trio-websocket's
        ``connect_websocket``): the stream's task runs in *nursery* and its errors go there.
        It stops at its count or deadline, at ``await stream.aclose()``, or when *nursery*
        is cancelled.  Returns once the host is resolved and sending has begun."""
        plan = stream_plan(
            host,
            count=count,
            interval=interval,
            size=size,
            timeout=timeout,
            ttl=ttl,
            family=family,
            deadline=deadline,
            buffer=buffer,
            tx_timestamps=tx_timestamps,
            on_outstanding=on_outstanding,
        )
        self._check_open()
        return await start_stream(nursery, plan, self._transport)

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
        """Send *count* echoes to *host* and return the statistics, with every result
        (:attr:`PingStats.results`).

        Lost probes are counted, never raised.  *deadline* is an absolute
        :func:`trio.current_time`.  Raises :class:`ResolutionError` for a name that does not
        resolve and :class:`InvalidArgumentError` for a bad argument.
        """
        plan = stream_plan(
            host,
            count=check_count(count, allow_none=False),
            interval=interval,
            size=size,
            timeout=timeout,
            ttl=ttl,
            family=family,
            deadline=deadline,
            buffer=DEFAULT_STREAM_BUFFER,
            tx_timestamps=True,
            keep_results=True,
        )
        self._check_open()
        async with StreamContext(plan, self._transport) as stream:
            async for _ in stream:
                pass
        return stream.statistics

    def fanout(
        self,
        hosts: Iterable[Host] | AsyncIterable[Host],
        *,
        count: int | None = 1,
        interval: float = DEFAULT_INTERVAL,
        rate: float | None = DEFAULT_RATE,
        timeout: float = DEFAULT_TIMEOUT,
        size: int = DEFAULT_SIZE,
        ttl: int | None = None,
        family: Family | int | None = None,
        resolve_concurrency: int = DEFAULT_RESOLVE_CONCURRENCY,
        buffer: int = DEFAULT_FANOUT_BUFFER,
        tx_timestamps: bool = True,
        keep_statistics: bool = True,
    ) -> FanoutContext:
        """Ping many *hosts* (any iterable, lazy or async) *count* times each, as
        ``async with pinger.fanout(hosts) as batch: async for item in batch: ...``; results
        stream as they arrive.  See :class:`~trioping.Fanout`.  ``count=None`` probes every
        host every *interval* until the block ends, hosts added (``batch.add``) and removed
        (``batch.remove``) as it runs: the way to monitor many hosts.

        *rate* paces the whole batch in probes per second (None: as fast as the socket
        takes them); *interval* separates the probes to one host; each probe waits up to
        *timeout*.  Names are resolved *resolve_concurrency* at a time while sending goes
        on.  *buffer* bounds the results held for the consumer, probes in flight included.
        RTTs come from kernel transmit and receive stamps (``RttClock.KERNEL``), as in every
        API; *tx_timestamps=False* saves an error-queue read a probe by timing from a clock
        read just before the send (``RttClock.KERNEL_RX``).  *keep_statistics=False* keeps no
        per-host record once a host is done (``batch.statistics`` then raises), for batches
        whose consumer keeps what it needs from the items.  Arguments are checked here.
        """
        plan = fanout_plan(
            count=count,
            interval=interval,
            rate=rate,
            timeout=timeout,
            size=size,
            ttl=ttl,
            family=family,
            resolve_concurrency=resolve_concurrency,
            buffer=buffer,
            tx_timestamps=tx_timestamps,
            keep_statistics=keep_statistics,
        )
        self._check_open()
        return FanoutContext(plan, hosts, self._transport)

    async def start_fanout(
        self,
        nursery: trio.Nursery,
        hosts: Iterable[Host] | AsyncIterable[Host],
        *,
        count: int | None = 1,
        interval: float = DEFAULT_INTERVAL,
        rate: float | None = DEFAULT_RATE,
        timeout: float = DEFAULT_TIMEOUT,
        size: int = DEFAULT_SIZE,
        ttl: int | None = None,
        family: Family | int | None = None,
        resolve_concurrency: int = DEFAULT_RESOLVE_CONCURRENCY,
        buffer: int = DEFAULT_FANOUT_BUFFER,
        tx_timestamps: bool = True,
        keep_statistics: bool = True,
    ) -> Fanout:
        """:meth:`fanout`, for a caller who owns a nursery: the batch's tasks run in
        *nursery* and its errors go there; it stops when done, at ``await batch.aclose()``,
        or when *nursery* is cancelled."""
        plan = fanout_plan(
            count=count,
            interval=interval,
            rate=rate,
            timeout=timeout,
            size=size,
            ttl=ttl,
            family=family,
            resolve_concurrency=resolve_concurrency,
            buffer=buffer,
            tx_timestamps=tx_timestamps,
            keep_statistics=keep_statistics,
        )
        self._check_open()
        return await start_fanout(nursery, plan, hosts, self._transport)

    def trace(
        self,
        host: Host,
        *,
        max_hops: int = DEFAULT_MAX_HOPS,
        probes_per_hop: int = DEFAULT_PROBES_PER_HOP,
        timeout: float = DEFAULT_TRACE_TIMEOUT,
        first_hop: int = 1,
        size: int = DEFAULT_SIZE,
        family: Family | int | None = None,
        concurrency: int = DEFAULT_TRACE_CONCURRENCY,
        names: bool = False,
        name_timeout: float = DEFAULT_NAME_TIMEOUT,
        name_concurrency: int = DEFAULT_NAME_CONCURRENCY,
        tx_timestamps: bool = True,
    ) -> TraceContext:
        """Trace the path to *host*, as ``async with pinger.trace(host) as trace: async for
        hop in trace: ...``: a :class:`~trioping.Hop` per TTL from *first_hop*, in order, each
        with its *probes_per_hop* results (the target's :class:`Reply`, a router's
        :class:`IcmpError` with its RTT, or a :class:`Timeout` after *timeout* seconds).

        Ends at the target, at an unreachable, or at *max_hops*.  Up to *concurrency* probes
        are in flight at once, every TTL together, as traceroute sends them; hops still come
        out in order.  *names=True* looks addresses up in the background (see
        :class:`~trioping.Trace`).  Works with raw and datagram sockets alike.  Arguments
        are checked here, before anything is sent.
        """
        from ._trace import trace_plan

        plan = trace_plan(
            host,
            max_hops=max_hops,
            probes_per_hop=probes_per_hop,
            timeout=timeout,
            first_hop=first_hop,
            size=size,
            family=family,
            concurrency=concurrency,
            names=names,
            name_timeout=name_timeout,
            name_concurrency=name_concurrency,
            tx_timestamps=tx_timestamps,
        )
        self._check_open()
        from ._trace import TraceContext

        return TraceContext(plan, self._transport)

    async def start_trace(
        self,
        nursery: trio.Nursery,
        host: Host,
        *,
        max_hops: int = DEFAULT_MAX_HOPS,
        probes_per_hop: int = DEFAULT_PROBES_PER_HOP,
        timeout: float = DEFAULT_TRACE_TIMEOUT,
        first_hop: int = 1,
        size: int = DEFAULT_SIZE,
        family: Family | int | None = None,
        concurrency: int = DEFAULT_TRACE_CONCURRENCY,
        names: bool = False,
        name_timeout: float = DEFAULT_NAME_TIMEOUT,
        name_concurrency: int = DEFAULT_NAME_CONCURRENCY,
        tx_timestamps: bool = True,
    ) -> Trace:
        """:meth:`trace`, for a caller who owns a nursery: the trace's tasks run in *nursery*
        and their errors go there; it stops after its final hop, at ``await trace.aclose()``,
        or when *nursery* is cancelled.  Returns once the host is resolved and probing began."""
        from ._trace import trace_plan

        plan = trace_plan(
            host,
            max_hops=max_hops,
            probes_per_hop=probes_per_hop,
            timeout=timeout,
            first_hop=first_hop,
            size=size,
            family=family,
            concurrency=concurrency,
            names=names,
            name_timeout=name_timeout,
            name_concurrency=name_concurrency,
            tx_timestamps=tx_timestamps,
        )
        self._check_open()
        from ._trace import start_trace

        return await start_trace(nursery, plan, self._transport)

    def mtr(
        self,
        host: Host,
        count: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        *,
        max_hops: int = DEFAULT_MAX_HOPS,
        timeout: float = DEFAULT_MTR_TIMEOUT,
        first_hop: int = 1,
        size: int = DEFAULT_SIZE,
        family: Family | int | None = None,
        concurrency: int = DEFAULT_TRACE_CONCURRENCY,
        buffer: int = DEFAULT_MTR_BUFFER,
        names: bool = False,
    ) -> MtrContext:
        """Trace *host* every *interval* seconds, *count* times (None: until the block ends),
        as ``async with pinger.mtr(host, 10) as run: async for report in run: ...``: an
        :class:`~trioping.MtrReport` of running per-hop figures (sent, loss, last, average,
        best, worst, standard deviation; per address too) each time a round completes.

        Rounds overlap: one starts every *interval* whatever the last is waiting for, so a
        silent hop costs one *timeout*, not one per round.  *names=True* looks addresses up
        in the background, as :meth:`trace` does (``run.name(address)``).  Arguments are
        checked here.
        """
        from ._mtr import mtr_plan

        plan = mtr_plan(
            count,
            interval,
            self._mtr_trace_plan(host, max_hops, timeout, first_hop, size, family, concurrency, names),
            buffer,
        )
        self._check_open()
        from ._mtr import MtrContext

        return MtrContext(plan, self._transport)

    async def start_mtr(
        self,
        nursery: trio.Nursery,
        host: Host,
        count: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        *,
        max_hops: int = DEFAULT_MAX_HOPS,
        timeout: float = DEFAULT_MTR_TIMEOUT,
        first_hop: int = 1,
        size: int = DEFAULT_SIZE,
        family: Family | int | None = None,
        concurrency: int = DEFAULT_TRACE_CONCURRENCY,
        buffer: int = DEFAULT_MTR_BUFFER,
        names: bool = False,
    ) -> Mtr:
        """:meth:`mtr`, for a caller who owns a nursery: its tasks run in *nursery*."""
        from ._mtr import mtr_plan

        plan = mtr_plan(
            count,
            interval,
            self._mtr_trace_plan(host, max_hops, timeout, first_hop, size, family, concurrency, names),
            buffer,
        )
        self._check_open()
        from ._mtr import start_mtr

        return await start_mtr(nursery, plan, self._transport)

    @staticmethod
    def _mtr_trace_plan(
        host: Host,
        max_hops: int,
        timeout: float,
        first_hop: int,
        size: int,
        family: Family | int | None,
        concurrency: int,
        names: bool,
    ) -> TracePlan:
        from ._trace import trace_plan

        return trace_plan(
            host,
            max_hops=max_hops,
            probes_per_hop=1,
            timeout=timeout,
            first_hop=first_hop,
            size=size,
            family=family,
            concurrency=concurrency,
            names=names,
            name_timeout=DEFAULT_NAME_TIMEOUT,
            name_concurrency=DEFAULT_NAME_CONCURRENCY,
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
        source address, sequence, size, TTL or hop limit and RTT.  A call made in a
        cancelled scope raises ``Cancelled`` before anything is sent.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        checked_timeout = check_seconds("timeout", timeout, allow_zero=False)
        checked_ttl = check_ttl(ttl)
        wanted_family = parse_family(family)
        validate_size(size, wanted_family)
        address, resolved_family = await resolve(host, wanted_family)
        validate_size(size, resolved_family)
        transport = self._transport(resolved_family)
        owner = _SingleProbe()
        sent = await transport.send(address, 0, size, checked_ttl, owner, checked_timeout)
        try:
            await owner.done.wait()
        finally:
            transport.table.forget(sent)
        if owner.outcome is None:
            assert owner.error is not None
            raise owner.error
        return owner.outcome

    def _close(self) -> None:
        self._closed = True
        self._drops_at_close = self.kernel_drops
        for transport in self._transports.values():
            transport.close()
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
        with unwrap_lone_exception():
            async with trio.open_nursery() as nursery:
                pinger = Pinger(nursery, socket_kind=kind, options=options)
                try:
                    yield pinger
                finally:
                    nursery.cancel_scope.cancel()
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
