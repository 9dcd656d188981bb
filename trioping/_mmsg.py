"""Many datagrams in one system call: Linux ``recvmmsg``, through :mod:`ctypes`.

Python's ``socket.recvmsg`` reads one message a call and makes objects of all of it --
data, each control message, the address -- before anyone looks.  A fan-out with kernel
transmit stamps reads one error-queue entry per probe, and nearly all of them are the same
two control messages; read one by one they cost about as much as the replies themselves.
:class:`MessageBatch` hands the kernel an array of message headers over buffers allocated
once, and leaves the bytes where the kernel put them: the caller decodes what it needs
(:func:`~trioping._ancillary.split_transmit_stamps` for the usual entries, the general
decoders for the rest).

Linux only, like the error queue; :data:`AVAILABLE` is False where the C library has no
``recvmmsg`` (the socket then reads one message a call).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
from collections.abc import Callable

from . import _constants as C

_MSG_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0x40)
_RETRY_LATER = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


def _load_recvmmsg() -> Callable[..., int] | None:
    if not C.IS_LINUX:
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).recvmmsg
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    function.restype = ctypes.c_int
    loaded: Callable[..., int] = function
    return loaded


_RECVMMSG = _load_recvmmsg()
AVAILABLE = _RECVMMSG is not None
"""Whether :class:`MessageBatch` can be used here."""

_HEADER_SIZE = ctypes.sizeof(_MMsgHdr)
_NAMELEN_AT = _MsgHdr.namelen.offset
_CONTROLLEN_AT = _MsgHdr.controllen.offset
_LENGTH_AT = _MMsgHdr.len.offset
_UINT32 = struct.Struct("I")
_SIZE_T = struct.Struct("N")


class MessageBatch:
    """Buffers for up to *slots* messages, each with room for *data_size* bytes of data,
    *control_size* bytes of control messages and a socket address.

    After :meth:`receive` returned *n*, slot ``i < n`` holds one message:
    :meth:`control_lengths` says how long its control messages in :attr:`control` are,
    :meth:`data` and :meth:`name` copy out its data and address.  The next :meth:`receive`
    overwrites them all.
    """

    __slots__ = (
        "_address",
        "_data",
        "_headers",
        "_length_readers",
        "_names",
        "_template",
        "control",
        "control_size",
        "slots",
    )

    def __init__(self, slots: int, data_size: int, control_size: int, name_size: int = 128) -> None:
        if _RECVMMSG is None:
            raise OSError(errno.ENOSYS, "recvmmsg is not available here")
        self.slots = slots
        self.control_size = control_size
        data = ctypes.create_string_buffer(slots * data_size)
        control = ctypes.create_string_buffer(slots * control_size)
        names = ctypes.create_string_buffer(slots * name_size)
        vectors = (_IoVec * slots)()
        headers = (_MMsgHdr * slots)()
        for index in range(slots):
            vectors[index].base = ctypes.addressof(data) + index * data_size
            vectors[index].len = data_size
            header = headers[index].hdr
            header.name = ctypes.addressof(names) + index * name_size
            header.namelen = name_size
            header.iov = ctypes.addressof(vectors[index])
            header.iovlen = 1
            header.control = ctypes.addressof(control) + index * control_size
            header.controllen = control_size
        # The kernel overwrites each header's lengths; the template puts them back.
        self._headers = memoryview(headers).cast("B")
        self._template = bytes(self._headers)
        self._address = ctypes.addressof(headers)
        self._data = (memoryview(data).cast("B"), data_size, vectors)  # the vectors must outlive the batch
        self._names = (memoryview(names).cast("B"), name_size)
        self._length_readers: dict[int, struct.Struct] = {}
        self.control = memoryview(control).cast("B")
        """Every slot's control messages, slot ``i`` at ``i * control_size``."""

    def receive(self, fd: int, flags: int = 0) -> int:
        """Read up to :attr:`slots` messages queued on *fd* now (never waits); 0 if none."""
        assert _RECVMMSG is not None
        self._headers[:] = self._template
        count: int = _RECVMMSG(fd, self._address, self.slots, flags | _MSG_DONTWAIT, None)
        if count < 0:
            number = ctypes.get_errno()
            if number in _RETRY_LATER:
                return 0
            raise OSError(number, os.strerror(number))
        return count

    def control_lengths(self, count: int) -> tuple[int, ...]:
        """The length of the control messages in each of the first *count* slots (slot ``i``'s
        start at ``i * control_size`` in :attr:`control`), read in one call."""
        reader = self._length_readers.get(count)
        if reader is None:
            # Each slot's controllen, the rest of its header skipped.
            slot = f"{_CONTROLLEN_AT}xN{_HEADER_SIZE - _CONTROLLEN_AT - _SIZE_T.size}x"
            reader = self._length_readers[count] = struct.Struct("@" + slot * count)
        lengths: tuple[int, ...] = reader.unpack_from(self._headers)
        return lengths

    def data(self, index: int) -> bytes:
        """Slot *index*'s data (cut to the slot's size if the message was longer)."""
        view, size, _vectors = self._data
        length: int = _UINT32.unpack_from(self._headers, index * _HEADER_SIZE + _LENGTH_AT)[0]
        start = index * size
        return bytes(view[start : start + min(length, size)])

    def name(self, index: int) -> bytes:
        """Slot *index*'s socket address as the kernel wrote it (empty if none)."""
        view, size = self._names
        length: int = _UINT32.unpack_from(self._headers, index * _HEADER_SIZE + _NAMELEN_AT)[0]
        start = index * size
        return bytes(view[start : start + min(length, size)])


__all__ = ["AVAILABLE", "MessageBatch"]
