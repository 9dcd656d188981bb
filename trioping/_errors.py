"""The exception tree, and the one place where OS errors become ours.

Callers catch :class:`TriopingError` for anything this library raises on purpose.  A probe
that times out or draws an ICMP error is *not* an exception: it is a result, because loss is
data for a ping tool, not a failure.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import trio


class TriopingError(Exception):
    """Base class of every error trioping raises deliberately."""


class InvalidArgumentError(TriopingError, ValueError):
    """An argument is out of range or malformed (count, size, ttl, interval, address...)."""


class ResolutionError(TriopingError):
    """A host name did not resolve to an address of a usable family."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class PermissionDeniedError(TriopingError, PermissionError):
    """The process may not open the ICMP sockets it needs.

    The message says what to grant: CAP_NET_RAW for raw sockets, or a
    ``net.ipv4.ping_group_range`` that contains the process's group for datagram sockets.
    """


class PingerClosedError(TriopingError, trio.ClosedResourceError):
    """The pinger was used after its ``async with open_pinger()`` block ended."""


class SocketError(TriopingError, OSError):
    """Any other operating-system error while opening or configuring a socket."""


class PacketError(TriopingError, ValueError):
    """Bytes that are not a well-formed ICMP message of the kind expected.

    The sans-I/O decoder raises only this, whatever bytes it is given.
    """


_PERMISSION_ERRNOS = frozenset({errno.EPERM, errno.EACCES})


@contextmanager
def unwrap_lone_exception() -> Iterator[None]:
    """Let a lone exception out of a nursery as itself, not inside an exception group.

    The nurseries behind ``open_pinger``, a stream or a batch are ours, not the caller's:
    an error from the caller's own block, or from the one task that failed, is raised as
    it was, so ``except ResolutionError`` works around them.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        lone: BaseException = group
        while isinstance(lone, BaseExceptionGroup) and len(lone.exceptions) == 1:
            lone = lone.exceptions[0]
        if lone is group:
            raise
        raise lone from lone.__cause__


@contextmanager
def mapped_os_errors(what: str) -> Iterator[None]:
    """Turn OS errors raised while *what* into :class:`TriopingError` subclasses.

    This is the single boundary where the socket layer's :class:`OSError` becomes part of
    our tree, as httpcore's backends do, so callers never catch bare ``OSError``.
    """
    try:
        yield
    except socket.gaierror as exc:
        raise ResolutionError(what, exc.strerror or str(exc)) from exc
    except OSError as exc:
        if exc.errno in _PERMISSION_ERRNOS:
            raise PermissionDeniedError(f"{what}: {exc.strerror}") from exc
        raise SocketError(exc.errno, f"{what}: {exc.strerror or exc}") from exc
