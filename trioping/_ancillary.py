"""Sans-I/O decoding of ``recvmsg`` ancillary data: TTL, hop limit, kernel timestamps,
drop counts and error-queue reports.

Kept apart from the socket layer so these byte layouts are tested without a socket.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from . import _constants as C

_INT = struct.Struct("i")
_UINT = struct.Struct("I")
_TIMESPEC = struct.Struct("qq")
_EXTENDED_ERR = struct.Struct("IBBBBII")

Cmsg = tuple[int, int, bytes]


@dataclass(slots=True)
class Ancillary:
    """What a received datagram's ancillary data told us.

    ``kernel_ns`` is the kernel's receive timestamp (CLOCK_REALTIME nanoseconds);
    ``dropped`` is the socket's running count of datagrams the kernel dropped because the
    receive buffer was full (SO_RXQ_OVFL), when the kernel reports it.
    """

    ttl: int | None = None
    kernel_ns: int | None = None
    dropped: int | None = None


def timespec_ns(data: bytes, index: int = 0) -> int | None:
    """Nanoseconds of the *index*-th ``struct timespec`` in *data*; None if absent or zero."""
    offset = index * _TIMESPEC.size
    if len(data) < offset + _TIMESPEC.size:
        return None
    seconds, nanoseconds = _TIMESPEC.unpack_from(data, offset)
    stamp: int = seconds * 1_000_000_000 + nanoseconds
    return stamp or None


_SOL_SOCKET = C.SOL_SOCKET
_STAMP_KINDS = (C.SO_TIMESTAMPING, C.SO_TIMESTAMPNS)
_SO_RXQ_OVFL = C.SO_RXQ_OVFL
_TTL_KINDS = ((C.IPPROTO_IP, C.IP_TTL), (C.IPPROTO_IPV6, C.IPV6_HOPLIMIT))
_ERROR_KINDS = ((C.IPPROTO_IP, C.IP_RECVERR), (C.IPPROTO_IPV6, C.IPV6_RECVERR))
_ORIGIN_TIMESTAMPING = C.SO_EE_ORIGIN_TIMESTAMPING


def parse_ancillary(items: Iterable[Cmsg]) -> Ancillary:
    # Runs once per received datagram: constants are module globals, not attribute lookups.
    result = Ancillary()
    for level, kind, data in items:
        if level == _SOL_SOCKET:
            if kind in _STAMP_KINDS:
                if len(data) >= 16:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                    result.kernel_ns = seconds * 1_000_000_000 + nanoseconds or None
                else:
                    result.kernel_ns = None
            elif kind == _SO_RXQ_OVFL and len(data) >= 4:
                result.dropped = _UINT.unpack_from(data)[0]
        elif (level, kind) in _TTL_KINDS:
            if len(data) >= 4:
                result.ttl = _INT.unpack_from(data)[0]
            elif data:
                result.ttl = data[0]
    return result


def stamp_and_drops(items: list[Cmsg]) -> tuple[int | None, int | None]:
    """Just ``(kernel_ns, dropped)`` of :func:`parse_ancillary`, for the receive fast path
    (where the TTL comes from the IP header)."""
    if len(items) == 1:  # the common case: the stamp alone
        level, kind, data = items[0]
        if level == _SOL_SOCKET and kind in _STAMP_KINDS and len(data) >= 16:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds or None, None
    stamp = dropped = None
    for level, kind, data in items:
        if level == _SOL_SOCKET:
            if kind in _STAMP_KINDS:
                if len(data) >= 16:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                    stamp = seconds * 1_000_000_000 + nanoseconds or None
                else:
                    stamp = None
            elif kind == _SO_RXQ_OVFL and len(data) >= 4:
                dropped = _UINT.unpack_from(data)[0]
    return stamp, dropped


@dataclass(frozen=True, slots=True)
class QueuedError:
    """One entry of a socket's error queue (``MSG_ERRQUEUE``).

    Either a transmit timestamp (``origin`` SO_EE_ORIGIN_TIMESTAMPING, ``data`` the id we
    gave the send, ``kernel_ns`` the stamp) or an ICMP error / local error reported for one
    of our sends (``icmp_type``, ``code``, ``info``, ``offender``).
    """

    origin: int
    errno: int
    icmp_type: int
    code: int
    info: int
    data: int
    offender: str | None = None
    kernel_ns: int | None = None


def parse_error_queue(items: Iterable[Cmsg]) -> QueuedError | None:
    extended: tuple[int, ...] | None = None
    offender: str | None = None
    stamp: int | None = None
    # Runs once per transmitted probe (its TX timestamp): module constants, positional
    # construction (a frozen dataclass built from keywords costs twice as much).
    for level, kind, data in items:
        if level == _SOL_SOCKET and kind in _STAMP_KINDS:
            stamp = timespec_ns(data, 0)
        elif (level, kind) in _ERROR_KINDS:
            if len(data) < _EXTENDED_ERR.size:
                continue
            extended = _EXTENDED_ERR.unpack_from(data)
            offender = _sockaddr_address(data[_EXTENDED_ERR.size :])
    if extended is None:
        return None
    error_number, origin, icmp_type, code, _pad, info, data_word = extended
    return QueuedError(origin, error_number, icmp_type, code, info, data_word, offender, stamp)


def tx_timestamp(items: Iterable[Cmsg]) -> tuple[int, int | None] | None:
    """``(id, kernel_ns)`` when an error-queue entry is a transmit timestamp -- one per
    stamped send, so the common case -- without building a :class:`QueuedError`; None for
    anything else, which :func:`parse_error_queue` then reads in full."""
    stamp: int | None = None
    identifier: int | None = None
    for level, kind, data in items:
        if level == _SOL_SOCKET and kind in _STAMP_KINDS:
            stamp = timespec_ns(data, 0)
        elif (level, kind) in _ERROR_KINDS and len(data) >= _EXTENDED_ERR.size:
            _errno, origin, _type, _code, _pad, _info, identifier = _EXTENDED_ERR.unpack_from(data)
            if origin != _ORIGIN_TIMESTAMPING:
                return None
    return None if identifier is None else (identifier, stamp)


def _sockaddr_address(raw: bytes) -> str | None:
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], sys.byteorder)
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None
