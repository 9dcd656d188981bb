"""Sans-I/O decoding of ``recvmsg`` ancillary data: TTL, hop limit, kernel timestamps,
drop counts and error-queue reports.

Kept apart from the socket layer so these byte layouts are tested without a socket.

Annotations here are evaluated at import (no ``from __future__ import annotations``): as
strings, every field of a named tuple would be compiled again at each start of a command.
"""

import socket
import struct
import sys
from collections.abc import Sequence
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
                offender = sockaddr_address(data[_EXTENDED_ERR.size :])
    if extended is None:
        return None
    error_number, origin, icmp_type, code, _pad, info, data_word = extended
    return QueuedError(origin, error_number, icmp_type, code, info, data_word, offender, stamp)


_CMSG_HEADER = struct.Struct("@Nii")
_CMSG_ALIGN = struct.calcsize("N")
_CMSG_DATA = (_CMSG_HEADER.size + _CMSG_ALIGN - 1) & ~(_CMSG_ALIGN - 1)
_STAMP_CMSG_LEN = _CMSG_DATA + 3 * _TIMESPEC.size
# A transmit stamp's entry as the kernel writes it (ip_recv_error / ipv6_recv_error): the
# SO_TIMESTAMPING message (three timespecs, the software stamp first), then IP_RECVERR /
# IPV6_RECVERR: the extended error (errno, origin, type, code, pad, info, data), then the
# offender's address.  Read here: the lengths, levels and types, the software stamp, the
# origin and the data word (the id given to the send).
_TX_ENTRY = struct.Struct("@Niiqq32xNii4xB7xI")
_TX_LAYOUT = _STAMP_CMSG_LEN == 64 and _TX_ENTRY.size == 96
"""Whether this is the layout :func:`split_transmit_stamps` reads (64-bit Linux)."""
_TX_ENTRY_MIN = _TX_ENTRY.size


def split_transmit_stamps(
    control: bytes | memoryview, stride: int, lengths: Sequence[int], stamps: list[tuple[int, int | None]]
) -> list[int]:
    """Read a batch of error-queue entries' control messages -- entry ``i`` at ``i * stride``,
    ``lengths[i]`` bytes: append each usual transmit stamp to *stamps* as ``(id, kernel_ns)``
    and return the indices of the other entries, to be read with :func:`control_messages`
    and :func:`parse_error_queue`.

    The usual stamp is the kernel's layout exactly: the stamp, then the extended error of
    origin SO_EE_ORIGIN_TIMESTAMPING whose data word is the id given to the send.  It comes
    once per transmitted probe, so it costs one unpack and a few comparisons; anything else
    (another order, an ICMP error, another word size) goes the general way.
    """
    others: list[int] = []
    if not _TX_LAYOUT:
        return list(range(len(lengths)))
    unpack = _TX_ENTRY.unpack_from
    append = stamps.append
    offset = 0
    for index, length in enumerate(lengths):
        if length >= _TX_ENTRY_MIN:
            stamp_len, stamp_level, stamp_kind, seconds, nanoseconds, _error_len, level, kind, origin, tx_id = unpack(
                control, offset
            )
            if (
                origin == _ORIGIN_TIMESTAMPING
                and stamp_len == 64
                and stamp_level == _SOL_SOCKET
                and stamp_kind in _STAMP_KINDS
                and (level, kind) in _ERROR_KINDS
            ):
                append((tx_id, seconds * 1_000_000_000 + nanoseconds or None))
                offset += stride
                continue
        others.append(index)
        offset += stride
    return others


def control_messages(control: bytes | memoryview, offset: int, length: int) -> list[Cmsg]:
    """The control messages at *offset* (*length* bytes) as ``recvmsg`` lists them:
    ``(level, type, data)`` each."""
    items: list[Cmsg] = []
    position, end = offset, offset + length
    while position + _CMSG_HEADER.size <= end:
        cmsg_len, level, kind = _CMSG_HEADER.unpack_from(control, position)
        if cmsg_len < _CMSG_DATA or position + cmsg_len > end:
            break
        items.append((level, kind, bytes(control[position + _CMSG_DATA : position + cmsg_len])))
        position += (cmsg_len + _CMSG_ALIGN - 1) & ~(_CMSG_ALIGN - 1)
    return items


def sockaddr_address(raw: bytes) -> str | None:
    """The IP address in a ``struct sockaddr_in`` / ``sockaddr_in6``, as text."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], sys.byteorder)
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None
