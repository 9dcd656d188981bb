"""A thin, non-blocking shell around one ICMP socket.

The socket is a non-blocking socket integrated with Trio the way :mod:`trio.socket` itself
is built: :func:`trio.lowlevel.wait_readable` / :func:`~trio.lowlevel.wait_writable` to
sleep, then non-blocking system calls.  The difference from ``await trio_sock.recvmsg()``
is that the receive path drains *everything* queued after one wake-up, instead of paying a
scheduling checkpoint per datagram: with 100,000 replies in flight those checkpoints would
cost more than the packets themselves.

Everything about *what the bytes mean* is in :mod:`._packet` and :mod:`._ancillary`.
"""

from __future__ import annotations

import enum
import errno
import ipaddress
import os
import socket
import struct
from typing import Any, NamedTuple

import trio

from . import _constants as C
from . import _mmsg
from ._ancillary import Cmsg, control_messages, sockaddr_address, split_transmit_stamps
from ._errors import InvalidArgumentError, PermissionDeniedError, mapped_os_errors
from ._packet import Family

_RECV_SIZE = 65536 + 512
_ANC_SIZE = 512
_DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024
_INT = struct.Struct("i")
_UINT = struct.Struct("I")
_TX_STAMP = (C.SOL_SOCKET, C.SO_TIMESTAMPING, _UINT.pack(C.SOF_TIMESTAMPING_TX_SOFTWARE))
_SOL_SOCKET = C.SOL_SOCKET
_SCM_TS_OPT_ID = C.SCM_TS_OPT_ID
_UINT_PACK = _UINT.pack
_MSG_ERRQUEUE = socket.MSG_ERRQUEUE
_ERROR_BATCH_SLOTS = 64
_ERROR_DATA_SIZE = 2048  # an ICMP error's quote is at most 1,232 bytes (IPv6's minimum MTU)
_RECVMMSG_REFUSED = frozenset({errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP})
"""What ``recvmmsg`` says where the C library has it but the system call is refused: a
seccomp filter (EPERM, or ENOSYS as container runtimes answer an unlisted call), an
emulating kernel.  The socket then reads its error queue one entry a call, as without it."""

_V4_WANTED_TYPES = (0, 3, 4, 5, 11, 12)  # echo reply and the errors we match
_V6_WANTED_TYPES = (1, 2, 3, 4, 129)
_PENDING_ICMP_ERRNOS = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.ENOPROTOOPT,
        errno.ECONNREFUSED,
        errno.EOPNOTSUPP,
        errno.EACCES,
        errno.EPROTO,
        errno.EMSGSIZE,
        errno.ENONET,
        errno.EREMOTEIO,
    }
)
"""What a Linux datagram ICMP socket's pending error (``sk_err``, set by every ICMP error
it receives -- a router's time-exceeded included) can be, as ``ping_err`` maps ICMP to errno
(``icmp_err_convert``, ``icmpv6_err_convert``; EREMOTEIO for a redirect or source quench,
ENONET for "host isolated"): the next send reports it *instead of sending*, once.  Such a
send is made again (errors keep arriving during a trace, so up to :data:`_PENDING_RETRIES`
times); a refusal of its own fails every time.  (iputils ping counts such a send as made
and lost; traceroute 2.1 reads its error queue before each send and stops at any other.)"""
_PENDING_RETRIES = 3
_BROKEN_SOCKET_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK, errno.EFAULT, errno.EINVAL})
"""Errors from ``recvmsg`` that mean the socket itself is unusable.  Any other errno is a
pending error the kernel derived from an ICMP message (datagram sockets report it once on
the next receive; the error queue holds the details), so it is skipped, never fatal: which
errnos ICMP can produce varies (EHOSTUNREACH, EACCES, EPROTO, EREMOTEIO for a redirect...)."""


class SocketKind(enum.Enum):
    """Raw sockets need CAP_NET_RAW; datagram ICMP sockets need the process's group inside
    ``net.ipv4.ping_group_range`` and let the kernel own the echo identifier."""

    RAW = "raw"
    DATAGRAM = "datagram"

    @property
    def socket_type(self) -> socket.SocketKind:
        return socket.SOCK_RAW if self is SocketKind.RAW else socket.SOCK_DGRAM


class PathMtuDiscovery(enum.Enum):
    """IPv4 DF-bit policy, as ``ping -M``: ``do`` sets DF and reports oversize locally,
    ``want`` sets DF but lets the kernel fragment locally, ``dont`` never sets DF."""

    DO = "do"
    WANT = "want"
    DONT = "dont"


class SocketOptions(NamedTuple):
    """Per-pinger socket settings (the ``open_pinger`` keywords of the same names)."""

    source: str | None = None
    interface: str | None = None
    tos: int | None = None
    pmtu: PathMtuDiscovery | None = None
    receive_buffer: int | None = None


class IcmpSocket:
    """One ICMP socket of one family and kind, configured for timestamps and filtering."""

    def __init__(self, family: Family, kind: SocketKind, identifier: int, options: SocketOptions) -> None:
        self.family = family
        self.kind = kind
        self.options = options
        # Linux datagram sockets own the echo identifier (the socket's port: the kernel
        # rewrites it on send and delivers only matching replies) and deliver no IPv4 header.
        # macOS's keep ours and deliver the header, as raw sockets do.
        self.kernel_owns_identifier = kind is SocketKind.DATAGRAM and C.IS_LINUX
        self.delivers_ip_header = family is Family.V4 and not self.kernel_owns_identifier
        what = f"opening {kind.value} ICMPv{family.value} socket"
        proto = C.IPPROTO_ICMP if family is Family.V4 else C.IPPROTO_ICMPV6
        try:
            with mapped_os_errors(what):
                self._sock = socket.socket(family.address_family, kind.socket_type, proto)
                self._sock.setblocking(False)
        except PermissionDeniedError as exc:
            detail = getattr(exc.__cause__, "strerror", None) or str(exc)
            requirement = raw_requirement() if kind is SocketKind.RAW else datagram_requirement()
            raise PermissionDeniedError(
                f"cannot open a {kind.value} ICMPv{family.value} socket ({detail}): {requirement}"
            ) from exc
        try:
            with mapped_os_errors(f"configuring ICMPv{family.value} socket"):
                self.tx_timestamps = self._configure(options)
                self.identifier = self._bind(identifier, options)
        except BaseException:
            self._sock.close()
            raise
        self._next_tx_id = 0
        self._error_batch: _mmsg.MessageBatch | None = None
        self._one_by_one = not _mmsg.AVAILABLE

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    # -- configuration --------------------------------------------------------------

    def _setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self._sock.setsockopt(level, option, value)

    def _try_setsockopt(self, level: int, option: int, value: int | bytes) -> bool:
        try:
            self._setsockopt(level, option, value)
        except OSError:
            return False
        return True

    def _configure(self, options: SocketOptions) -> bool:
        """Set the options; returns whether kernel transmit timestamps are on.

        Options numbered by the Linux ABI (filters, error queue, received TTL, drop counts,
        forced buffers, path-MTU policy, device binding) are set on Linux only: elsewhere
        the same numbers mean other options.  Asking for ``pmtu`` or ``interface`` there is
        an :class:`InvalidArgumentError`; everything else degrades (no TTL, monotonic RTTs).
        """
        v4 = self.family is Family.V4
        linux = C.IS_LINUX
        if linux and self.kind is SocketKind.RAW:
            if v4:
                self._try_setsockopt(C.SOL_RAW, C.ICMP_FILTER, _UINT.pack(_block_all_but(_V4_WANTED_TYPES)))
            else:
                self._try_setsockopt(C.IPPROTO_ICMPV6, C.ICMP6_FILTER, _icmp6_filter(_V6_WANTED_TYPES))
        elif linux:
            # Datagram sockets report ICMP errors only through the error queue.
            self._try_setsockopt(C.IPPROTO_IP if v4 else C.IPPROTO_IPV6, C.IP_RECVERR if v4 else C.IPV6_RECVERR, 1)
        if v4:
            if linux and not self.delivers_ip_header:  # else the TTL is in the header
                self._try_setsockopt(C.IPPROTO_IP, C.IP_RECVTTL, 1)
        else:
            self._try_setsockopt(C.IPPROTO_IPV6, C.IPV6_RECVHOPLIMIT, 1)
        wanted = options.receive_buffer or _DEFAULT_RECEIVE_BUFFER
        if linux:
            self._try_setsockopt(C.SOL_SOCKET, C.SO_RXQ_OVFL, 1)
        if not (linux and self._try_setsockopt(C.SOL_SOCKET, C.SO_RCVBUFFORCE, wanted)):
            self._try_setsockopt(C.SOL_SOCKET, socket.SO_RCVBUF, wanted)
        tx = self._enable_timestamps()
        if options.tos is not None:
            if v4:
                self._setsockopt(C.IPPROTO_IP, C.IP_TOS, options.tos)
            else:
                self._setsockopt(C.IPPROTO_IPV6, C.IPV6_TCLASS, options.tos)
        if options.pmtu is not None:
            if not linux:
                raise InvalidArgumentError("path-MTU discovery settings (-M) need Linux (IP_MTU_DISCOVER)")
            value = {
                PathMtuDiscovery.DO: C.IP_PMTUDISC_DO,
                PathMtuDiscovery.WANT: C.IP_PMTUDISC_WANT,
                PathMtuDiscovery.DONT: C.IP_PMTUDISC_DONT,
            }[options.pmtu]
            if v4:
                self._setsockopt(C.IPPROTO_IP, C.IP_MTU_DISCOVER, value)
            else:
                self._setsockopt(C.IPPROTO_IPV6, C.IPV6_MTU_DISCOVER, value)
        if options.interface is not None:
            if not C.IS_LINUX:
                raise InvalidArgumentError("binding to an interface needs Linux (SO_BINDTODEVICE)")
            try:
                self._setsockopt(C.SOL_SOCKET, C.SO_BINDTODEVICE, options.interface.encode())
            except OSError as exc:
                if exc.errno == errno.ENODEV:
                    raise InvalidArgumentError(f"unknown interface {options.interface!r}") from exc
                raise
        return tx

    def _enable_timestamps(self) -> bool:
        """Ask for software RX stamps, and TX stamps on request; fall back to RX-only
        (SO_TIMESTAMPNS).  Returns whether sends can ask for a TX stamp.

        TX stamping is off at the socket level and asked for per send (an SO_TIMESTAMPING
        control message), so a send that wants none -- every fan-out probe -- is a plain
        ``sendto``.  A stamp comes back on the error queue carrying the id attached to its
        send (SCM_TS_OPT_ID), so it is matched to its probe exactly, with no packet copy.
        """
        if not C.IS_LINUX:
            return False
        flags = (
            C.SOF_TIMESTAMPING_RX_SOFTWARE
            | C.SOF_TIMESTAMPING_SOFTWARE
            | C.SOF_TIMESTAMPING_OPT_ID
            | C.SOF_TIMESTAMPING_OPT_TSONLY
        )
        if self._try_setsockopt(C.SOL_SOCKET, C.SO_TIMESTAMPING, flags):
            return True
        self._try_setsockopt(C.SOL_SOCKET, C.SO_TIMESTAMPNS, 1)
        return False

    def _bind(self, identifier: int, options: SocketOptions) -> int:
        """Bind to the source address, if any; a datagram socket's port *is* its identifier."""
        if not self.kernel_owns_identifier and options.source is None:
            return identifier
        address = options.source or ("0.0.0.0" if self.family is Family.V4 else "::")
        _check_source_family(address, self.family)
        port = identifier if self.kernel_owns_identifier else 0
        try:
            self._sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL):
                raise InvalidArgumentError(f"cannot use source address {address}: {exc.strerror}") from exc
            if exc.errno != errno.EADDRINUSE or not self.kernel_owns_identifier:
                raise
            self._sock.bind((address, 0))
        if self.kernel_owns_identifier:
            port_now: int = self._sock.getsockname()[1]
            return port_now
        return identifier

    def path_mtu(self, address: str) -> int | None:
        """The path MTU the kernel knows towards *address*, for "message too long" reports.

        Read from a connected UDP socket bound like this one (connecting sends nothing); the
        kernel's figure includes MTUs learnt from "fragmentation needed" / "packet too big"
        errors.  None when unknown (or off Linux).
        """
        if not C.IS_LINUX:
            return None
        level, option = (C.IPPROTO_IP, C.IP_MTU) if self.family is Family.V4 else (C.IPPROTO_IPV6, C.IPV6_MTU)
        try:
            with socket.socket(self.family.address_family, socket.SOCK_DGRAM) as udp:
                if self.options.interface is not None:
                    udp.setsockopt(C.SOL_SOCKET, C.SO_BINDTODEVICE, self.options.interface.encode())
                if self.options.source is not None:
                    udp.bind((self.options.source, 0))
                udp.connect((address, 9))
                mtu: int = udp.getsockopt(level, option)
        except OSError:
            return None
        return mtu if mtu > 0 else None

    # -- I/O -----------------------------------------------------------------------------

    def send(self, packet: bytes, address: str, ttl: int | None, tx_timestamp: bool = True) -> int | None:
        """Hand *packet* to the kernel now; return the TX timestamp id, if one was asked for.

        Raises :class:`BlockingIOError` when the send buffer is full (wait writable and
        retry) and :class:`OSError` for a refused send, which the caller turns into a
        :class:`~trioping.SendError` result for that one probe.  On a Linux datagram
        socket, an error left pending by an earlier ICMP error is not this send's: the send
        is made again (see ``_PENDING_ICMP_ERRNOS``).

        ``tx_timestamp=False`` sends without a TX stamp, which saves a control message and an
        error-queue read per probe; None is then returned.
        """
        for _ in range(_PENDING_RETRIES):
            try:
                return self._send(packet, address, ttl, tx_timestamp)
            except OSError as exc:
                if not (self.kernel_owns_identifier and exc.errno in _PENDING_ICMP_ERRNOS):
                    raise
        return self._send(packet, address, ttl, tx_timestamp)

    def _send(self, packet: bytes, address: str, ttl: int | None, tx_timestamp: bool) -> int | None:
        if ttl is None:
            if not (tx_timestamp and self.tx_timestamps):
                self._sock.sendto(packet, (address, 0))
                return None
            tx_id = self._next_tx_id
            try:
                self._sock.sendmsg(
                    [packet], [_TX_STAMP, (_SOL_SOCKET, _SCM_TS_OPT_ID, _UINT_PACK(tx_id))], 0, (address, 0)
                )
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # as below: an old kernel, or the destination
                    return self._send_general(packet, address, ttl=ttl, tx_timestamp=tx_timestamp, failed=exc)
                raise
            self._next_tx_id = (tx_id + 1) & 0xFFFF_FFFF
            return tx_id
        return self._send_general(packet, address, ttl=ttl, tx_timestamp=tx_timestamp)

    def _send_general(
        self, packet: bytes, address: str, *, ttl: int | None, tx_timestamp: bool, failed: OSError | None = None
    ) -> int | None:
        """:meth:`send`, every case.  *failed*: the fast path's ``sendmsg`` already raised this
        (EINVAL), for the same packet and control messages; it is handled without sending again."""
        ancillary: list[tuple[int, int, bytes]] = []
        if ttl is not None:
            if self.family is Family.V4:
                ancillary.append((C.IPPROTO_IP, C.IP_TTL, _INT.pack(ttl)))
            else:
                ancillary.append((C.IPPROTO_IPV6, C.IPV6_HOPLIMIT, _INT.pack(ttl)))
        tx_id: int | None = None
        if tx_timestamp and self.tx_timestamps:
            tx_id = self._next_tx_id
            ancillary += [_TX_STAMP, (C.SOL_SOCKET, C.SCM_TS_OPT_ID, _UINT.pack(tx_id))]
        try:
            if failed is not None:
                raise failed
            self._sock_sendmsg(packet, ancillary, address)
        except OSError as exc:
            if tx_id is None or exc.errno != errno.EINVAL:
                raise
            # EINVAL is also what a blackhole route answers: the kernel is only blamed for
            # the stamp's control messages when the send succeeds without them; else the
            # socket keeps its stamps and the destination's error is raised.  A kernel
            # older than 6.13 does not know SCM_TS_OPT_ID: RX stamps only, from then on.
            self._sock_sendmsg(packet, ancillary[:-2], address)
            self.tx_timestamps = False
            return None
        if tx_id is not None:
            self._next_tx_id = (tx_id + 1) & 0xFFFF_FFFF
        return tx_id

    def _sock_sendmsg(self, packet: bytes, ancillary: list[tuple[int, int, bytes]], address: str) -> None:
        if ancillary:
            self._sock.sendmsg([packet], ancillary, 0, (address, 0))
        else:
            self._sock.sendto(packet, (address, 0))

    async def wait_writable(self) -> None:
        await trio.lowlevel.wait_writable(self._sock)

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self._sock)

    def receive_batch(self, limit: int) -> list[tuple[bytes, list[tuple[int, int, bytes]], int, Any]]:
        """Up to *limit* datagrams already queued, as ``recvmsg`` returns them -- ``(data,
        ancillary, flags, address)`` -- without blocking: a list of recvmsg's own tuples, not a
        generator or an object each, for the hot path."""
        recvmsg = self._sock.recvmsg
        batch: list[tuple[bytes, list[tuple[int, int, bytes]], int, Any]] = []
        append = batch.append
        for _ in range(limit):
            try:
                append(recvmsg(_RECV_SIZE, _ANC_SIZE))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _BROKEN_SOCKET_ERRNOS:
                    raise
        return batch

    def error_queue_batch(self, limit: int) -> tuple[list[tuple[int, int | None]], list[tuple[bytes, list[Cmsg], str]]]:
        """About *limit* error-queue entries at most: the transmit stamps in their usual form
        as ``(id, kernel_ns)``, and every other entry (a datagram socket's ICMP errors, an
        unusual stamp) as ``(data, control messages, address)``.

        One ``recvmmsg`` reads up to 64 entries (see :mod:`._mmsg`): with a stamp per probe,
        a fan-out reads as many entries as replies.  Where the C library has no
        ``recvmmsg``, or the system call is refused (``_RECVMMSG_REFUSED``), ``recvmsg``
        reads them one by one, all as "other" entries.
        """
        stamps: list[tuple[int, int | None]] = []
        others: list[tuple[bytes, list[Cmsg], str]] = []
        if self._one_by_one:
            return stamps, self._error_queue_one_by_one(limit)
        batch = self._error_batch
        if batch is None:
            batch = self._error_batch = _mmsg.MessageBatch(_ERROR_BATCH_SLOTS, _ERROR_DATA_SIZE, _ANC_SIZE)
        fd = self._sock.fileno()
        control, stride = batch.control, batch.control_size
        read = 0
        while read < limit:
            try:
                count = batch.receive(fd, _MSG_ERRQUEUE)
            except OSError as exc:
                if exc.errno not in _RECVMMSG_REFUSED:
                    raise
                self._one_by_one, self._error_batch = True, None
                others += self._error_queue_one_by_one(limit - read)
                break
            if not count:
                break
            lengths = batch.control_lengths(count)
            for index in split_transmit_stamps(control, stride, lengths, stamps):
                ancillary = control_messages(control, index * stride, lengths[index])
                others.append((batch.data(index), ancillary, sockaddr_address(batch.name(index)) or ""))
            read += count
            if count < batch.slots:
                break
        return stamps, others

    def _error_queue_one_by_one(self, limit: int) -> list[tuple[bytes, list[Cmsg], str]]:
        recvmsg = self._sock.recvmsg
        entries: list[tuple[bytes, list[Cmsg], str]] = []
        append = entries.append
        for _ in range(limit):
            try:
                data, ancillary, _flags, address = recvmsg(_RECV_SIZE, _ANC_SIZE, _MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            append((data, ancillary, address[0] if address else ""))
        return entries


def _block_all_but(types: tuple[int, ...]) -> int:
    mask = 0xFFFF_FFFF
    for icmp_type in types:
        mask &= ~(1 << icmp_type)
    return mask


def _icmp6_filter(types: tuple[int, ...]) -> bytes:
    words = [0xFFFF_FFFF] * 8
    for icmp_type in types:
        words[icmp_type >> 5] &= ~(1 << (icmp_type & 31))
    return struct.pack("8I", *words)


def _check_source_family(address: str, family: Family) -> None:
    try:
        version = ipaddress.ip_address(address.partition("%")[0]).version
    except ValueError:
        raise InvalidArgumentError(f"source address {address!r} is not an IP address") from None
    if version != family.value:
        raise InvalidArgumentError(f"source address {address} is not an IPv{family.value} address")


def raw_requirement() -> str:
    """What it takes to open raw ICMP sockets (for permission errors)."""
    return "raw ICMP sockets need root or CAP_NET_RAW (e.g. `setcap cap_net_raw+ep` on the Python interpreter)"


def datagram_requirement() -> str:
    """What it takes to open datagram ICMP sockets, with this process's gid and the range."""
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as sysctl:
            now = f", now '{' '.join(sysctl.read().split())}'"
    except OSError:
        now = ""
    return (
        f"datagram ICMP sockets need the process's group (gid {os.getegid()}) inside "
        f"net.ipv4.ping_group_range{now} (e.g. `sysctl -w net.ipv4.ping_group_range='0 2147483647'`)"
    )
