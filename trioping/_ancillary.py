"""Sans-I/O decoding of ``recvmsg`` ancillary data: TTL, hop limit, kernel timestamps,
drop counts and error-queue reports.

Kept apart from the socket layer so these byte layouts are tested without a socket.

Annotations here are evaluated at import (no ``from __future__ import annotations``): as
strings, every field of a named tuple would be compiled again at each start of a command.
"""

import socket
import struct
import sys
from typing import NamedTuple

from . import _constants as C

_INT = struct.Struct("i")
_UINT = struct.Struct("I")
_TIMESPEC = struct.Struct("qq")
_EXTENDED_ERR = struct.Struct("IBBBBII")

Cmsg = tuple[int, int, bytes]


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
_EXTENDED_ERR_SIZE = _EXTENDED_ERR.size


def parse_ancillary(items: list[Cmsg]) -> tuple[int | None, int | None, int | None]:
    """``(kernel_ns, ttl, dropped)`` of a received datagram's control messages.

    ``kernel_ns``: the kernel's receive stamp (CLOCK_REALTIME nanoseconds); ``ttl``: the
    IPv4 TTL or IPv6 hop limit when the socket delivers it as a control message;
    ``dropped``: the socket's running count of datagrams dropped for a full receive buffer
    (SO_RXQ_OVFL).  Each is None when absent.  Runs once per datagram, so the usual case --
    the stamp alone -- is read first.
    """
    if len(items) == 1:
        level, kind, data = items[0]
        if level == _SOL_SOCKET and kind in _STAMP_KINDS and len(data) >= 16:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds or None, None, None
    stamp = ttl = dropped = None
    for level, kind, data in items:
        if level == _SOL_SOCKET:
            if kind in _STAMP_KINDS:
                stamp = timespec_ns(data, 0)
            elif kind == _SO_RXQ_OVFL and len(data) >= 4:
                dropped = _UINT.unpack_from(data)[0]
        elif (level, kind) in _TTL_KINDS:
            if len(data) >= 4:
                ttl = _INT.unpack_from(data)[0]
            elif data:
                ttl = data[0]
    return stamp, ttl, dropped


class QueuedError(NamedTuple):
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


def parse_error_queue(items: list[Cmsg]) -> QueuedError | None:
    """One error-queue entry's control messages, or None when they hold no report.

    Runs once per transmitted probe: the usual entry -- a transmit stamp, two control
    messages, the stamp first -- is read first, without the general loop.
    """
    if len(items) == 2:
        (stamp_level, stamp_kind, stamp_data), (error_level, error_kind, error_data) = items
        if (
            stamp_level == _SOL_SOCKET
            and stamp_kind in _STAMP_KINDS
            and (error_level, error_kind) in _ERROR_KINDS
            and len(stamp_data) >= 16
            and len(error_data) >= _EXTENDED_ERR_SIZE
        ):
            error_number, origin, icmp_type, code, _pad, info, data_word = _EXTENDED_ERR.unpack_from(error_data)
            if origin == _ORIGIN_TIMESTAMPING:
                seconds, nanoseconds = _TIMESPEC.unpack_from(stamp_data)
                kernel_ns = seconds * 1_000_000_000 + nanoseconds or None
                return QueuedError(origin, error_number, icmp_type, code, info, data_word, None, kernel_ns)
    extended: tuple[int, ...] | None = None
    offender: str | None = None
    stamp: int | None = None
    for level, kind, data in items:
        if level == _SOL_SOCKET and kind in _STAMP_KINDS:
            if len(data) >= 16:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                stamp = seconds * 1_000_000_000 + nanoseconds or None
        elif (level, kind) in _ERROR_KINDS:
            if len(data) < _EXTENDED_ERR.size:
                continue
            extended = _EXTENDED_ERR.unpack_from(data)
            if extended[1] != _ORIGIN_TIMESTAMPING:
                offender = _sockaddr_address(data[_EXTENDED_ERR.size :])
    if extended is None:
        return None
    error_number, origin, icmp_type, code, _pad, info, data_word = extended
    return QueuedError(origin, error_number, icmp_type, code, info, data_word, offender, stamp)


def _sockaddr_address(raw: bytes) -> str | None:
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], sys.byteorder)
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None
