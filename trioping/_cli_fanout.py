"""``trioping HOST1 HOST2 ...``, ``-f FILE``, ``-g CIDR``: many hosts at once, printed like fping.

Plain mode (no ``-c``): one probe per host, ``HOST is alive`` / ``HOST is unreachable`` on
stdout as verdicts arrive.  Count mode (``-c N``): a line per probe on stdout, host names
padded to one width, and per-host summaries on stderr at the end.  ``-q`` keeps stdout
quiet, ``-a`` / ``-u`` print just the names of the hosts alive / unreachable.  ICMP errors
and names that do not resolve are reported on stderr in fping's words.

Exit status as fping: 0 if every host answered, 1 if some did not, 2 if a name did not
resolve or the command line is wrong.

Output goes out in blocks (one write per batch of results, flushed whenever the run waits),
so 100,000 result lines cost a few hundred system calls, not 100,000.  On a terminal, a
run longer than a second keeps a progress line on stderr (sent, received, outstanding),
erased before anything else is written.
"""

from __future__ import annotations

import ipaddress
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

import trio

from ._cli_common import DEFAULT_MAX_TARGETS, EXIT_ERROR, UsageError, run_interruptibly
from ._fanout import Fanout, HostError, HostResult
from ._fping_words import _V4_OTHER, _V4_UNREACHABLE, _ms, fping_ms
from ._options import DEFAULT_RATE
from ._packet import Family
from ._pinger import open_pinger
from ._results import IcmpError, Reply, SendError, Timeout
from ._stats import PingStats

EXIT_ALL_ALIVE = 0
EXIT_SOME_UNREACHABLE = 1

_PROGRESS_DELAY = 1.0
_PROGRESS_EVERY = 0.25
_FLUSH_LINES = 1024


@dataclass(frozen=True, slots=True)
class FanoutOptions:
    hosts: list[str]
    files: list[str] = field(default_factory=list)
    generate: list[str] = field(default_factory=list)
    count: int | None = None
    interval: float = 1.0
    size: int = 56
    timeout: float = 2.0
    deadline: float | None = None
    ttl: int | None = None
    quiet: bool = False
    alive: bool = False
    unreachable: bool = False
    family: Family | None = None
    rate: float | None = DEFAULT_RATE
    max_targets: int = DEFAULT_MAX_TARGETS
    source: str | None = None
    interface: str | None = None
    tos: int | None = None
    pmtu: str | None = None


# -- targets -----------------------------------------------------------------------------


_FIRST_WORD = re.compile(r"^\s*([^\s#]\S*)", re.MULTILINE)


def read_targets(text: str) -> list[str]:
    """Targets from a file as fping reads them: the first word of each line, skipping blank
    lines and ``#`` comments (one regular-expression scan, not a split per line)."""
    return _FIRST_WORD.findall(text)


def generate_targets(spec: str, limit: int) -> list[str]:
    """The addresses of ``-g``: a CIDR prefix (without its network and broadcast addresses
    when it has more than two, as fping) or a ``START-END`` range.  More than *limit*
    addresses is a usage error, checked before any is generated."""
    spec = spec.strip()
    try:
        if "/" in spec:
            network = ipaddress.ip_network(spec, strict=False)
            total = network.num_addresses
            if network.version == 4 and network.prefixlen < 31:
                total -= 2
            _check_limit(spec, total, limit)
            return [str(address) for address in network.hosts()]
        start_text, dash, end_text = spec.partition("-")
        if not dash:
            raise ValueError("not a prefix")
        start, end = ipaddress.ip_address(start_text.strip()), ipaddress.ip_address(end_text.strip())
    except ValueError:
        raise UsageError(f"-g {spec}: give a CIDR prefix (192.0.2.0/24) or a range (192.0.2.1-192.0.2.9)") from None
    if start.version != end.version:
        raise UsageError(f"-g {spec}: the range mixes IPv4 and IPv6")
    total = max(0, int(end) - int(start) + 1)
    _check_limit(spec, total, limit)
    kind = type(start)
    return [str(kind(number)) for number in range(int(start), int(end) + 1)]


def _check_limit(spec: str, total: int, limit: int) -> None:
    if total > limit:
        raise UsageError(
            f"-g {spec} generates {total} addresses, more than the limit of {limit} (raise it with --max-targets)"
        )


def collect_targets(options: FanoutOptions, stdin: TextIO) -> list[str]:
    targets = list(options.hosts)
    for name in options.files:
        try:
            if name == "-":
                targets.extend(read_targets(stdin.read()))
            else:
                with open(name, encoding="utf-8", errors="replace") as handle:
                    targets.extend(read_targets(handle.read()))
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    for spec in options.generate:
        targets.extend(generate_targets(spec, options.max_targets))
    if not targets:
        raise UsageError("no hosts: give HOST arguments, -f FILE or -g CIDR")
    return targets


# -- fping's words -----------------------------------------------------------------------


def icmp_error_line(error: IcmpError, host: str) -> str:
    """``ICMP Host Unreachable from 198.18.1.2 for ICMP Echo sent to 198.18.4.4``."""
    if error.family is Family.V4 and error.icmp_type == 3 and error.code < len(_V4_UNREACHABLE):
        text = _V4_UNREACHABLE[error.code]
    elif error.family is Family.V4 and error.icmp_type in _V4_OTHER:
        text = _V4_OTHER[error.icmp_type]
    else:
        text = f"ICMP {error.description}"
    target = host if host == error.target else f"{host} ({error.target})"
    return f"{text} from {error.source} for ICMP Echo sent to {target}"


def summary_lines(statistics: Iterable[PingStats], width: int) -> list[str]:
    """fping's summary per host: ``127.0.0.1 : xmt/rcv/%loss = 2/2/0%, min/avg/max = 0.050/0.050/0.050``.

    A line a host, 60,000 of them at a time, so the common case is cheap: a host with one
    probe answered has its one RTT as minimum, average and maximum, formatted once."""
    lines: list[str] = []
    append = lines.append
    for stats in statistics:
        transmitted = stats.transmitted
        received = stats.received
        low = stats.rtt_min
        if transmitted == 1 and received == 1 and low is not None:
            text = _ms(low)
            append(f"{stats.host.ljust(width)} : xmt/rcv/%loss = 1/1/0%, min/avg/max = {text}/{text}/{text}")
            continue
        loss = (transmitted - received) * 100 // transmitted if transmitted else 0
        line = f"{stats.host.ljust(width)} : xmt/rcv/%loss = {transmitted}/{received}/{loss}%"
        if low is not None and stats.rtt_avg is not None and stats.rtt_max is not None:
            line = f"{line}, min/avg/max = {fping_ms(low)}/{fping_ms(stats.rtt_avg)}/{fping_ms(stats.rtt_max)}"
        append(line)
    return lines


# -- the run -----------------------------------------------------------------------------


class _Output:
    """Buffered stdout, unbuffered stderr, and a progress line that is erased before either
    is written to."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self.lines: list[str] = []
        self.progress_shown = False

    def line(self, text: str) -> None:
        self.lines.append(text)
        if len(self.lines) >= _FLUSH_LINES:
            self.flush()

    def error(self, text: str) -> None:
        self.flush()
        self.err.write(text + "\n")
        self.err.flush()

    def error_fragment(self, text: str) -> None:
        """Text on stderr with no line end, after stdout's lines so far: fping writes a
        reply's `` [<- source]`` so, meaning it for the end of the line it prints."""
        self.flush()
        self.err.write(text)
        self.err.flush()

    def flush(self) -> None:
        if self.progress_shown:
            self.clear_progress()
        if self.lines:
            self.out.write("\n".join(self.lines) + "\n")
            self.lines.clear()
            self.out.flush()

    def progress(self, text: str) -> None:
        self.flush()
        self.err.write("\r" + text + "\x1b[K")
        self.err.flush()
        self.progress_shown = True

    def clear_progress(self) -> None:
        self.progress_shown = False
        self.err.write("\r\x1b[K")
        self.err.flush()


async def run_fanout(
    options: FanoutOptions,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
    *,
    progress_delay: float = _PROGRESS_DELAY,
) -> int:
    """Ping every target, print as fping does, return fping's exit status."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    targets = collect_targets(options, stdin or sys.stdin)
    output = _Output(stdout, stderr)
    return await run_interruptibly(lambda scope: _run(options, targets, output, scope, progress_delay))


async def _run(
    options: FanoutOptions, targets: list[str], output: _Output, run_scope: trio.CancelScope, progress_delay: float
) -> int:
    count_mode = options.count is not None
    names_only = options.alive or options.unreachable
    per_probe = count_mode and not options.quiet and not names_only
    width = max(map(len, targets))
    # Without output per result (-q), a result has nothing to print: skip the call.
    reporting = not options.quiet or (not count_mode and names_only)
    reporter = _Reporter(options, output, len(targets), width, per_probe)
    unresolved = 0
    batch: Fanout | None = None
    async with open_pinger(
        source=options.source, interface=options.interface, tos=options.tos, pmtu=options.pmtu
    ) as pinger:
        with run_scope:
            if options.deadline is not None:
                run_scope.deadline = trio.current_time() + options.deadline
            async with (
                pinger.fanout(
                    targets,
                    count=options.count or 1,
                    interval=options.interval,
                    rate=options.rate,
                    timeout=options.timeout,
                    size=options.size,
                    ttl=options.ttl,
                    family=options.family,
                ) as batch,
                trio.open_nursery() as nursery,
            ):
                if output.err.isatty():
                    nursery.start_soon(_show_progress, batch, output, progress_delay)
                async for item in batch:
                    while True:  # everything queued, with one checkpoint per wake-up
                        if type(item) is HostError:
                            unresolved += 1
                            output.error(_host_error_text(item))
                        elif reporting:
                            assert isinstance(item, HostResult)
                            reporter.result(item)
                        try:
                            item = batch.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    if output.lines:
                        output.flush()
                nursery.cancel_scope.cancel()
    output.flush()
    if output.progress_shown:
        output.clear_progress()
    if batch is None:
        return EXIT_ERROR
    if batch.kernel_drops:
        output.error(
            f"trioping: warning: the kernel dropped {batch.kernel_drops} replies (receive buffer full);"
            " some hosts reported unreachable may be alive"
        )
    statistics = batch.statistics
    if count_mode:
        if names_only:
            for stats in statistics:
                if (options.alive and stats.received > 0) or (options.unreachable and stats.received == 0):
                    output.line(stats.host)
            output.flush()
        summaries = summary_lines(statistics, width)
        if per_probe and summaries:
            summaries.insert(0, "")
        if summaries:
            output.error("\n".join(summaries))  # one write, however many hosts
    if unresolved:
        return EXIT_ERROR
    everyone = bool(statistics) and all([stats.received > 0 for stats in statistics])
    return EXIT_ALL_ALIVE if everyone else EXIT_SOME_UNREACHABLE


def _host_error_text(item: HostError) -> str:
    text = str(item.error)
    return text if text.startswith(f"{item.host}:") else f"{item.host}: {text}"


class _Reporter:
    """Prints each result as it arrives, as fping does, and keeps per host (by position) what
    that needs: whether it was seen alive (plain mode), and its verdicts, replies and RTT sum
    for the running ``(avg, loss)`` of count mode (lists, not an object a host)."""

    __slots__ = ("alive", "options", "output", "per_probe", "received", "rtt_sums", "verdicts", "width")

    def __init__(self, options: FanoutOptions, output: _Output, hosts: int, width: int, per_probe: bool) -> None:
        self.options = options
        self.output = output
        self.width = width
        self.per_probe = per_probe
        self.alive = [False] * hosts if options.count is None else []
        self.verdicts = [0] * hosts if per_probe else []
        self.received = [0] * hosts if per_probe else []
        self.rtt_sums = [0.0] * hosts if per_probe else []

    def result(self, item: HostResult) -> None:
        result = item.result
        kind = type(result)
        if kind is Reply:
            assert isinstance(result, Reply)
            if self.per_probe:
                self._probe_reply(item.host, item.position, result)
            elif not result.duplicate and self.options.count is None and not self.alive[item.position]:
                self.alive[item.position] = True
                options = self.options
                if options.alive:
                    self.output.line(item.host)
                elif not options.quiet and not options.unreachable:
                    self.output.line(f"{item.host} is alive")
                    if result.source != result.target:
                        self.output.error_fragment(f" [<- {result.source}]")
        elif kind is Timeout or kind is IcmpError or kind is SendError:
            assert isinstance(result, (Timeout, IcmpError, SendError))
            self._no_reply(item.host, item.position, result)

    def _probe_reply(self, host: str, position: int, reply: Reply) -> None:
        if reply.duplicate:
            index, size, ms = reply.probe_index, reply.size, _ms(reply.rtt)
            elsewhere = "" if reply.source == reply.target else f" [<- {reply.source}]"
            self.output.error(f"{host.ljust(self.width)} : duplicate for [{index}], {size} bytes, {ms} ms{elsewhere}")
            return
        verdicts = self.verdicts[position] = self.verdicts[position] + 1
        received = self.received[position] = self.received[position] + 1
        rtt_sum = self.rtt_sums[position] = self.rtt_sums[position] + reply.rtt
        loss = (verdicts - received) * 100 // verdicts
        self.output.line(
            f"{host.ljust(self.width)} : [{reply.probe_index}], {reply.size} bytes, {_ms(reply.rtt)} ms"
            f" ({_ms(rtt_sum / received)} avg, {loss}% loss)"
        )
        if reply.source != reply.target:
            self.output.error_fragment(f" [<- {reply.source}]")

    def _no_reply(self, host: str, position: int, result: Timeout | IcmpError | SendError) -> None:
        options = self.options
        if not options.quiet:
            if type(result) is IcmpError:
                self.output.error(icmp_error_line(result, host))
            elif type(result) is SendError:
                self.output.error(f"{host}: error while sending ping: {result.message}")
        if self.per_probe:
            verdicts = self.verdicts[position] = self.verdicts[position] + 1
            if type(result) is SendError:
                return  # fping prints no "timed out" for a probe it could not send; its loss shows
            received = self.received[position]
            avg = _ms(self.rtt_sums[position] / received) if received else "NaN"
            loss = (verdicts - received) * 100 // verdicts
            self.output.line(f"{host.ljust(self.width)} : [{result.probe_index}], timed out ({avg} avg, {loss}% loss)")
        elif options.count is None:
            if options.unreachable:
                self.output.line(host)
            elif not options.quiet and not options.alive:
                self.output.line(f"{host} is unreachable")


async def _show_progress(batch: Fanout, output: _Output, delay: float) -> None:
    await trio.sleep(delay)
    while True:
        progress = batch.progress
        output.progress(
            f"trioping: {progress.hosts} hosts, {progress.sent} sent, {progress.received} received,"
            f" {progress.outstanding} outstanding"
        )
        await trio.sleep(_PROGRESS_EVERY)


def rate_from_option(rate: float) -> float | None:
    """``--rate 0`` (or anything not finite-positive) means as fast as possible."""
    if isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0:
        return float(rate)
    if rate == 0:
        return None
    raise UsageError(f"--rate must be a number of probes per second, or 0 for no limit, not {rate!r}")


def command(options: FanoutOptions) -> int:
    """Run fan-out mode from the command line (``_cli._command`` dispatches here)."""
    return trio.run(run_fanout, options)


__all__ = ["FanoutOptions", "command", "run_fanout"]
