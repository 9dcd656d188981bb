"""How a stream, a batch, a trace or an mtr run lives: in a nursery scoped to a block.

Each of them is a *runner* that starts its tasks in a nursery it is given and stops them
when told.  Trio's rule is that tasks live in a nursery scoped to the ``async with`` that
started them, and trio-websocket's ``open_websocket`` / ``connect_websocket(nursery)`` pair
is the model: ``async with pinger.stream(...)`` gives the runner a nursery of its own,
closed with the block, and ``start_stream(nursery, ...)`` lets a caller who owns a nursery
give that one.  Both forms go through :func:`start_scoped`, so every kind is started,
stopped and unwound the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

import trio

from ._errors import unwrap_lone_exception


class Runner(Protocol):
    async def _start(self, nursery: trio.Nursery) -> None:
        """Resolve what must be resolved, then start the tasks in *nursery*; return once
        probing began (errors before that are raised here, to the caller)."""

    def _stop(self) -> None:
        """Stop the tasks and finish: the consumer sees the end after what is queued."""


R = TypeVar("R", bound=Runner)
T = TypeVar("T")


async def start_scoped(nursery: trio.Nursery, runner: R) -> R:
    """Start *runner* in *nursery*, whose scope its tasks and their errors then belong to.
    A start that fails (a name that does not resolve, a cancellation) leaves nothing running."""
    try:
        await runner._start(nursery)
    except BaseException:
        runner._stop()
        raise
    return runner


@asynccontextmanager
async def _open_scoped(make: Callable[[], R]) -> AsyncIterator[R]:
    with unwrap_lone_exception():
        async with trio.open_nursery() as nursery:
            runner = await start_scoped(nursery, make())
            try:
                yield runner
            finally:
                runner._stop()


class ScopedContext(Generic[R, T]):
    """What ``pinger.stream()``, ``fanout()``, ``trace()`` and ``mtr()`` return: a block,
    ``async with ... as runner``, whose nursery holds the runner's tasks.

    The runner is made on entry, not before, so a context that is never entered costs
    nothing and holds nothing.  Iterating the context itself, without the block, is a
    ``TypeError`` naming the right form: there would be no nursery for the tasks.
    """

    def __init__(self, make: Callable[[], R], usage: str) -> None:
        self._manager = _open_scoped(make)
        self._usage = usage

    async def __aenter__(self) -> R:
        return await self._manager.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._manager.__aexit__(*exc_info)

    def __aiter__(self) -> AsyncIterator[T]:
        raise TypeError(self._usage)


__all__ = ["Runner", "ScopedContext", "start_scoped"]
