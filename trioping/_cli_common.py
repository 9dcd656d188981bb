"""What the ping and fping-style commands share: exit codes, usage errors, Ctrl-C handling."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import trio

from ._errors import TriopingError

EXIT_REPLIES = 0
EXIT_NO_REPLY = 1
EXIT_ERROR = 2

DEFAULT_MAX_TARGETS = 131072
"""The largest ``-g`` expansion accepted without ``--max-targets`` (a /15, as fping's limit)."""


class UsageError(TriopingError):
    """A command-line mistake that the library would not catch (conflicting flags...)."""


async def run_interruptibly(body: Callable[[trio.CancelScope], Awaitable[int]]) -> int:
    """Run *body* with a cancel scope that Ctrl-C (SIGINT) cancels.

    The body prints its own summary after the scope is cancelled, as ping does; watching
    the signal (instead of letting KeyboardInterrupt fly) keeps it out of exception groups.
    """
    failure: TriopingError | None = None
    status = EXIT_ERROR
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        run_scope = trio.CancelScope()

        async def cancel_on_interrupt() -> None:
            async for _ in signals:
                run_scope.cancel()
                return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_on_interrupt)
            try:
                status = await body(run_scope)
            except TriopingError as exc:
                failure = exc
            finally:
                nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return status
