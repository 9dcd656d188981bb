"""Reverse names of the addresses a trace meets, looked up in the background.

Optional, bounded in concurrency and in time per lookup, and never in the way of results:
whoever shows a hop asks :meth:`NameBook.name` (None until known) or waits a bounded time
with :meth:`NameBook.wait_for`.
"""

from __future__ import annotations

import math
import socket

import trio


class NameBook:
    """Names of addresses, each looked up once, *concurrency* at a time, for at most
    *timeout* seconds.  :meth:`run` is its task; :meth:`close` lets it end once the lookups
    asked for are done."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        self._timeout = timeout
        self._limiter = trio.CapacityLimiter(concurrency)
        self._names: dict[str, str | None] = {}
        self._events: dict[str, trio.Event] = {}
        # Unbounded in form only: one request per distinct address a trace meets.
        self._requests, self._incoming = trio.open_memory_channel[str](math.inf)
        self.scope = trio.CancelScope()

    def request(self, address: str) -> None:
        if address in self._events:
            return
        event = self._events[address] = trio.Event()
        try:
            self._requests.send_nowait(address)
        except (trio.ClosedResourceError, trio.BrokenResourceError, trio.WouldBlock):
            event.set()

    def name(self, address: str) -> str | None:
        return self._names.get(address)

    async def wait_for(self, addresses: tuple[str, ...] | list[str], deadline: float) -> None:
        await trio.lowlevel.checkpoint()  # even with nothing to wait for, as Trio's rule asks
        with trio.move_on_at(deadline):
            for address in addresses:
                event = self._events.get(address)
                if event is not None:
                    await event.wait()

    def close(self) -> None:
        self._requests.close()

    async def run(self) -> None:
        with self.scope:
            async with trio.open_nursery() as nursery, self._incoming:
                async for address in self._incoming:
                    nursery.start_soon(self._look_up, address)

    async def _look_up(self, address: str) -> None:
        try:
            with trio.move_on_after(self._timeout):
                async with self._limiter:
                    name, _port = await trio.socket.getnameinfo((address, 0), socket.NI_NAMEREQD)
                    self._names[address] = name
        except OSError:
            self._names[address] = None
        finally:
            self._events[address].set()


class NamesOf:
    """The reverse-name side shared by a trace and an mtr run, whose ``_names`` is a
    :class:`NameBook` with ``names=True`` and None without."""

    _names: NameBook | None

    def name(self, address: str) -> str | None:
        """The reverse name of *address*, if looked up and found (``names=True``)."""
        return None if self._names is None else self._names.name(address)

    async def wait_for_names(self, addresses: tuple[str, ...] | list[str], deadline: float) -> None:
        """Wait until the names of *addresses* are looked up, or until *deadline* (a Trio time)."""
        if self._names is None:
            await trio.lowlevel.checkpoint()
        else:
            await self._names.wait_for(addresses, deadline)


__all__ = ["NameBook", "NamesOf"]
