"""Admitting a batch's hosts: from the caller's iterable to addresses ready to ping.

Literal addresses (the common case at scale) are recognised with ``inet_pton`` and admitted
at once; names are resolved in tasks of their own, at most ``resolve_concurrency`` at a
time, while sending goes on.  A host that cannot be pinged (a name that does not resolve,
an address of the wrong family, a socket that cannot be opened) is that host's error,
never the batch's.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable, Sized
from typing import Generic, Protocol, TypeVar

import trio

from ._errors import InvalidArgumentError, TriopingError
from ._packet import _V4, _V6, Family, validate_size
from ._resolve import Host, resolve
from ._transport import Transport

_FEED_CHECKPOINT_EVERY = 512
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_inet_pton = socket.inet_pton
_inet_ntop = socket.inet_ntop


def fast_literal(host: object) -> tuple[str, Family] | None:
    """(canonical address, family) for an address literal, or None for anything else.

    ``inet_pton`` is strict (no leading zeros, no short forms, no scope), so what it
    accepts :func:`~trioping.resolve` would accept too, with the same canonical spelling;
    everything else takes the general path.
    """
    if type(host) is not str:
        return None
    try:
        _inet_pton(_AF_INET, host)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return _ipv6_literal(host)
    return host, _V4  # four decimal numbers, no leading zeros: already canonical


def _ipv6_literal(host: str) -> tuple[str, Family] | None:
    if ":" not in host or "%" in host:
        return None
    try:
        return _inet_ntop(_AF_INET6, _inet_pton(_AF_INET6, host)), _V6
    except (OSError, ValueError):
        return None


class AdmittedHost(Protocol):
    host: str
    address: str
    transport: Transport


H = TypeVar("H", bound=AdmittedHost)


class Admission(Generic[H]):
    """Feeds a batch's hosts into :attr:`ready`, in input order for literals.

    ``make_host(name, position)`` makes each host's record (kept in :attr:`hosts`, in input
    order); a record joins :attr:`ready` once its address and transport are set, and
    ``on_error(host, error)`` takes one that cannot be pinged.  Feeding pauses while
    :attr:`ready` holds ``ready_limit`` hosts or *results* holds *buffer* items, until
    :meth:`wake`.  ``wake_batch()`` is called when :attr:`ready` stops being empty, when
    feeding ends and when a name has been resolved (or not).
    """

    def __init__(
        self,
        *,
        family: Family | None,
        size: int,
        resolve_concurrency: int,
        transport_for: Callable[[Family], Transport],
        make_host: Callable[[str, int], H],
        on_error: Callable[[H, TriopingError], None],
        results: Sized,
        buffer: int,
        ready_limit: int,
        wake_batch: Callable[[], None],
        keep_hosts: bool = True,
    ) -> None:
        self._family = family
        self._size = size
        self._transport_for = transport_for
        self._make_host = make_host
        self._on_error = on_error
        self._results = results
        self._buffer = buffer
        self._ready_limit = ready_limit
        self._wake_batch = wake_batch
        self._keep_hosts = keep_hosts
        self._slots = trio.Semaphore(resolve_concurrency)
        self._usable: dict[Family, Transport] = {}
        self._family_errors: dict[Family, TriopingError] = {}
        self._event: trio.Event | None = None
        self.hosts: list[H] = []
        """Every host's record, in input order (none without *keep_hosts*: a record then
        lives only as long as the batch needs it)."""
        self.admitted = 0
        """Hosts taken from the iterable so far."""
        self.ready: deque[H] = deque()
        """Hosts with an address and a transport, waiting for their first probe."""
        self.transports: list[Transport] = []
        """Every transport a host of the batch was admitted to, in first-use order."""
        self.kernel_drops_before: dict[int, int] = {}
        """Each transport's kernel drop count when the batch first used it (by id)."""
        self.resolving = 0
        self.done = False
        self._stopped = False

    def stop(self) -> None:
        """Take no more hosts (the batch has ended)."""
        self._stopped = True
        self.wake()

    def has_room(self) -> bool:
        return len(self.ready) < self._ready_limit and len(self._results) < self._buffer

    def wake(self) -> None:
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    async def feed(self, source: Iterable[Host] | AsyncIterable[Host], nursery: trio.Nursery) -> None:
        """Admit every host of *source*; names resolve in tasks started in *nursery*."""
        try:
            if isinstance(source, AsyncIterable):
                async for item in source:
                    if self._stopped:
                        return
                    if not self._admit_literal(item):
                        await self._admit_name(item, nursery)
                    if not self.has_room():
                        await self._wait_for_room()
            else:
                since_checkpoint = 0
                ready, results = self.ready, self._results
                ready_limit, buffer = self._ready_limit, self._buffer
                for item in source:
                    if self._stopped:
                        return
                    if not self._admit_literal(item):
                        await self._admit_name(item, nursery)
                    since_checkpoint += 1
                    if len(ready) >= ready_limit or len(results) >= buffer:
                        since_checkpoint = 0
                        await self._wait_for_room()
                    elif since_checkpoint >= _FEED_CHECKPOINT_EVERY:
                        since_checkpoint = 0
                        await trio.lowlevel.checkpoint()
        finally:
            self.done = True
            self._wake_batch()

    async def admit(self, item: Host, nursery: trio.Nursery) -> None:
        """Admit one more host, after the iterable (a batch that runs until it is closed)."""
        if not self._admit_literal(item):
            await self._admit_name(item, nursery)

    async def _wait_for_room(self) -> None:
        while not self.has_room() and not self._stopped:
            event = self._event = trio.Event()
            await event.wait()

    def _admit_literal(self, item: Host) -> bool:
        """Admit *item* at once if it is an address literal (the usual case at scale)."""
        if type(item) is not str:
            return False
        try:
            _inet_pton(_AF_INET, item)  # fast_literal's first test, here: one call fewer a host
        except (OSError, ValueError):
            literal = _ipv6_literal(item)
            if literal is None:
                return False
            address, family = literal
        else:
            address, family = item, _V4
        host = self._make_host(item, self.admitted)
        self.admitted += 1
        if self._keep_hosts:
            self.hosts.append(host)
        transport = self._usable.get(family)
        if transport is None:
            self._ready(host, address, family)
            return True
        host.address = address
        host.transport = transport
        ready = self.ready
        ready.append(host)
        if len(ready) == 1:
            self._wake_batch()
        return True

    async def _admit_name(self, item: Host, nursery: trio.Nursery) -> None:
        host = self._make_host(item if isinstance(item, str) else str(item), self.admitted)
        self.admitted += 1
        if self._keep_hosts:
            self.hosts.append(host)
        await self._slots.acquire()
        self.resolving += 1
        nursery.start_soon(self._resolve, host, item)

    async def _resolve(self, host: H, item: Host) -> None:
        try:
            address, family = await resolve(item, self._family)
        except TriopingError as exc:
            if not self._stopped and not getattr(host, "removed", False):
                self._on_error(host, exc)
        else:
            if not self._stopped:
                self._ready(host, address, family)
        finally:
            self.resolving -= 1
            self._slots.release()
            self._wake_batch()

    def _ready(self, host: H, address: str, family: Family) -> None:
        transport = self._usable.get(family)
        if transport is None:
            try:
                if self._family is not None and family is not self._family:
                    raise InvalidArgumentError(f"{host.host}: Address family for hostname not supported")
                transport = self._admit_family(family)
            except TriopingError as exc:
                self._on_error(host, exc)
                return
        host.address = address
        host.transport = transport
        self.ready.append(host)
        if len(self.ready) == 1:
            self._wake_batch()

    def _admit_family(self, family: Family) -> Transport:
        """The transport for hosts of *family*, once the probe size is checked for it; a
        failure (size, socket) is remembered and raised again for each host."""
        failure = self._family_errors.get(family)
        if failure is None:
            try:
                validate_size(self._size, family)
                transport = self._transport_for(family)
            except TriopingError as exc:
                self._family_errors[family] = failure = exc
            else:
                self._usable[family] = transport
                self.transports.append(transport)
                self.kernel_drops_before[id(transport)] = transport.kernel_drops
                return transport
        raise failure


__all__ = ["Admission", "fast_literal"]
