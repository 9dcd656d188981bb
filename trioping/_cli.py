"""The ``trioping`` command: iputils-style ping for one host.

Exit status follows iputils: 0 if any reply arrived, 1 if none (or fewer than ``-c`` with
``-w``), 2 on an error (bad option, unknown host, no permission).  Every error is one line
on stderr; no traceback reaches the user.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import trio
import typer

from . import _format as fmt
from ._errors import TriopingError
from ._packet import DEFAULT_SIZE, Family
from ._pinger import DEFAULT_INTERVAL, DEFAULT_TIMEOUT, PingStream, open_pinger
from ._resolve import resolve
from ._results import IcmpError, InvalidReply, LateReply, ProbeResult, Reply, SendError, Timeout

EXIT_REPLIES = 0
EXIT_NO_REPLY = 1
EXIT_ERROR = 2
_PROG = "trioping"

Writer = Callable[[str], None]


def _write_line(stream: typer.FileText | None = None) -> Writer:
    def write(line: str) -> None:
        target = stream or sys.stdout
        target.write(line + "\n")
        target.flush()

    return write


@dataclass(frozen=True, slots=True)
class PingOptions:
    host: str
    count: int | None
    interval: float
    size: int
    timeout: float
    deadline: float | None
    ttl: int | None
    quiet: bool
    family: Family | None


class UsageError(TriopingError):
    """A command-line mistake that the library would not catch (conflicting flags...)."""


def _family(ipv4: bool, ipv6: bool) -> Family | None:
    if ipv4 and ipv6:
        raise UsageError("only one of -4 and -6 may be given")
    return Family.V4 if ipv4 else Family.V6 if ipv6 else None


app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command(help="Send ICMP echo requests to HOST, like iputils ping.")
def _command(
    hosts: Annotated[
        list[str], typer.Argument(help="Host names or IP addresses; several print like fping.", show_default=False)
    ],
    count: Annotated[
        int | None, typer.Option("-c", "--count", help="Stop after COUNT probes (default: until interrupted).")
    ] = None,
    interval: Annotated[float, typer.Option("-i", "--interval", help="Seconds between probes.")] = DEFAULT_INTERVAL,
    size: Annotated[int, typer.Option("-s", "--size", help="Data bytes per probe.")] = DEFAULT_SIZE,
    timeout: Annotated[
        float, typer.Option("-W", "--timeout", help="Seconds to wait for each reply.")
    ] = DEFAULT_TIMEOUT,
    deadline: Annotated[
        float | None, typer.Option("-w", "--deadline", help="Stop after this many seconds, whatever the count.")
    ] = None,
    ttl: Annotated[int | None, typer.Option("-t", "--ttl", help="IPv4 TTL / IPv6 hop limit of probes.")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print only the header and summary.")] = False,
    ipv4: Annotated[bool, typer.Option("-4", help="Use IPv4 only.")] = False,
    ipv6: Annotated[bool, typer.Option("-6", help="Use IPv6 only.")] = False,
) -> None:
    if len(hosts) != 1:
        raise UsageError("pinging several hosts at once is not implemented yet")
    options = PingOptions(
        host=hosts[0],
        count=count,
        interval=interval,
        size=size,
        timeout=timeout,
        deadline=deadline,
        ttl=ttl,
        quiet=quiet,
        family=_family(ipv4, ipv6),
    )
    raise SystemExit(trio.run(run_ping, options, _write_line()))


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


async def run_ping(options: PingOptions, out: Writer) -> int:
    """Ping one host, printing as iputils does; Ctrl-C ends the run with the summary."""
    return await run_interruptibly(lambda scope: _ping(options, out, scope))


async def _ping(options: PingOptions, out: Writer, run_scope: trio.CancelScope) -> int:
    stream: PingStream | None = None
    async with open_pinger() as pinger:
        with run_scope:
            address, family = await resolve(options.host, options.family)
            stream = pinger.stream(
                address,
                count=options.count,
                interval=options.interval,
                size=options.size,
                timeout=options.timeout,
                ttl=options.ttl,
                family=family,
                deadline=options.deadline,
            )
            pinger.socket_kind(family)  # open the socket now: a permission error precedes output
            out(fmt.header(options.host, address, family, options.size))
            async for result in stream:
                if not options.quiet:
                    line = _result_line(result, options.host, address)
                    if line is not None:
                        out(line)
    if stream is None:
        return EXIT_ERROR
    stats = dataclasses.replace(stream.statistics, host=options.host)
    out("")
    for line in fmt.summary_lines(stats):
        out(line)
    if stats.received == 0:
        return EXIT_NO_REPLY
    if options.deadline is not None and options.count is not None and stats.received < options.count:
        return EXIT_NO_REPLY
    return EXIT_REPLIES


def _result_line(result: ProbeResult, host: str, address: str) -> str | None:
    if isinstance(result, (Reply, LateReply)):
        return fmt.reply_line(result, host, address)
    if isinstance(result, IcmpError):
        return fmt.error_line(result)
    if isinstance(result, SendError):
        return fmt.send_error_line(result)
    if isinstance(result, InvalidReply):
        return fmt.invalid_line(result)
    assert isinstance(result, Timeout)
    return None


def _fail(message: str) -> int:
    sys.stderr.write(f"{_PROG}: {message}\n")
    sys.stderr.flush()
    return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status instead of raising ``SystemExit``."""
    try:
        app(args=argv, prog_name=_PROG, standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:
        return _fail(exc.format_message())
    except TriopingError as exc:
        return _fail(str(exc))
    except (typer.Abort, KeyboardInterrupt):
        return _fail("interrupted")
    return EXIT_REPLIES


def run() -> None:
    """Console-script entry point.

    SIGPIPE gets its default action back, so ``trioping ... | head`` ends quietly as ping
    does, instead of Python turning it into a BrokenPipeError traceback.
    """
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())
