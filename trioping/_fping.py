"""``trioping-fping``: fping 5.1's command line and output, pinging with trioping.

SmokePing, Zabbix, LibreNMS and many scripts run fping and parse what it prints; this
command prints the same lines (``is alive``, count mode's per-probe lines and ``xmt/rcv``
summaries, ``-C`` value lists, ``-Q`` interval blocks, ``-s`` statistics, ``-o`` outage,
ICMP error and duplicate lines) with fping's exit codes, so they can use it unchanged.
What trioping knows beyond fping (late, corrupted or spoofed replies, RTT clocks) never
changes those lines: ``--json`` prints it instead.

Counting follows fping: a probe counts as sent once it has its verdict (reply or
timeout), so a summary never shows a probe in flight as lost; a reply later than the
probe's timeout is dropped (trioping reports it as a late reply, in ``--json`` only);
duplicates are printed only where fping prints them (default mode and ``-q``).  Where
trioping is stricter, fping's lines change by what it no longer counts: a reply with a bad
checksum or altered payload is not a reply.

How the schedule differs from fping's (``-i`` is the minimum gap between any two probes,
as a rate for the whole run; ``-p`` the gap between probes to one target):

* Default mode retries (``-r``, ``-B``) go in rounds: try *k* pings every target still
  unanswered once every probe of try *k - 1* has its verdict, each waiting ``-t`` times
  ``-B`` to the *k*; fping retries a target as soon as that target's own try times out.
  When sending a round takes little time next to ``-t`` (a few hundred targets at the
  default ``-i`` of 10 ms, or ``-i 0``) the two schedules are the same; with more targets,
  a dead target's retries start up to one round's sending time later than under fping.
* A reply to an earlier try that comes after that try's timeout is not counted (fping
  counts it if it is within the later try's longer timeout).
* Count and loop modes send in rounds too: round *k* (every target's probe ``[k]``) starts
  at *k* times ``-p``, or when the previous round's sends are done at ``-i``'s pace if that
  is later.  That is fping's schedule when ``-i`` keeps up with ``-p``; when it does not,
  fping also takes the targets in turn.
* An ICMP error is printed when it arrives, and its probe counted lost (``timed out``, a
  retry) one timeout after that, where fping counts it one timeout after the send: the
  two differ by the error's round trip.  fping 5.1 never prints ICMPv6 errors (its
  decoder looks for an IPv4 echo in them); neither does this command, except in
  ``--json``.
* Duplicates are recognised while the run lasts, for up to one timeout after their
  round has all its verdicts (fping: up to 10 s); a duplicate that arrives in the
  microseconds after the run's last verdict may be printed by one and not the other.
* ``-R`` is accepted and changes nothing (trioping's payload is a pattern with a token,
  never all zeros); ``-T`` is ignored, as by fping.

RTTs come from kernel receive timestamps (see ``trioping.RttClock``), as fping's do.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

import trio

from . import (
    Family,
    Fanout,
    HostError,
    HostResult,
    IcmpError,
    InvalidArgumentError,
    LateReply,
    Pinger,
    Reply,
    ResolutionError,
    SendError,
    Timeout,
    TriopingError,
    __version__,
    open_pinger,
    resolve,
)
from ._cli_common import run_interruptibly
from ._fping_options import EXIT_SYSTEM, EXIT_USAGE, PROG, FpingExit, FpingOptions, generate, parse_args
from ._fping_words import _V4_OTHER, _V4_UNREACHABLE, _ms, fping_ms

EXIT_ALL_ALIVE = 0
EXIT_SOME_UNREACHABLE = 1
EXIT_NO_ADDRESS = 2

_RESOLVE_CONCURRENCY = 32

# What a result means for its probe (see _Run.handle).
_NOT_A_VERDICT, _DONE, _LOST, _LOST_LATER = 0, 1, 2, 3


class _Target:
    """One target's counts, as fping keeps them (``_i``: since the last ``-Q`` report).

    The counters start as class attributes, so making one of 100,000 targets costs three
    assignments."""

    sent = recv = recv_total = sent_i = recv_i = 0
    min = max = total = min_i = max_i = total_i = 0.0
    resp: dict[int, float] | None = None

    def __init__(self, host: str, address: str, family: Family, name: str | None = None) -> None:
        self.host = host  # as printed
        self.address = address
        self.family = family
        self.name = host if name is None else name  # as given (netdata's chart names)


class _Run:
    """The state of one run: options, targets, global counters for ``-s``, output buffers."""

    def __init__(self, opts: FpingOptions, out: TextIO, err: TextIO) -> None:
        self.opts = opts
        self.out = out
        self.err = err
        self.lines: list[str] = []
        self.targets: list[_Target] = []
        self.width = 0
        self.noaddress = 0
        self.alive = 0
        self.timeouts = 0
        self.transmitted = 0  # probes the kernel took, over every fan-out
        self.send_errors = 0
        self.other_icmp = 0
        self.started = time.time()
        counting = opts.count is not None
        # fping's flags after its option checks: -a/-u/-x silence "is alive"; count and
        # loop modes print per-probe lines unless quiet, and never names.
        verbose = not (opts.quiet or opts.alive or opts.unreachable or opts.reachable)
        self.per_recv = (counting and verbose) or (opts.loop and not opts.report_interval_s)
        self.verbose = verbose and not counting and not opts.loop
        self.show_alive = opts.alive and not counting and not opts.loop
        self.show_unreachable = opts.unreachable and not counting and not opts.loop
        self.report_all = opts.report_all and not opts.loop
        self.show_duplicates = not self.per_recv
        self.period_ms = opts.period_ms
        self.wait = opts.timeout_s
        self.charts_sent = False

    # -- output -------------------------------------------------------------------------

    def line(self, text: str) -> None:
        self.lines.append(text)
        if len(self.lines) >= 1024:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self.out.write("\n".join(self.lines) + "\n")
            self.lines.clear()
        self.out.flush()

    def error(self, text: str) -> None:
        """A line on stderr, after what stdout holds so far (fping's stdout is line-buffered)."""
        self.flush()
        self.err.write(text + "\n")
        self.err.flush()

    def error_fragment(self, text: str) -> None:
        """Text on stderr with no line end: fping writes a reply's `` [<- source]`` there,
        meaning it for the end of the line it is printing on stdout."""
        self.flush()
        self.err.write(text)
        self.err.flush()

    def warning(self, text: str) -> None:
        """fping's ``print_warning``: stderr unless ``-q``."""
        if not self.opts.quiet:
            self.error(text)

    # -- results ------------------------------------------------------------------------

    def handle(self, item: HostResult, target: _Target, index: int) -> int:
        """Count and print one result of probe *index* (fping's ``[index]``: a target's
        tries in default mode share one); return what it means for the probe: not its
        verdict, ``_DONE``, ``_LOST`` (a retry is due), or ``_LOST_LATER`` (an ICMP error:
        fping prints it at once and counts the probe lost at its timeout)."""
        result = item.result
        kind = type(result)
        if kind is Reply:
            assert isinstance(result, Reply)
            target.recv_total += 1
            if result.duplicate:
                if self.show_duplicates:
                    rtt = fping_ms(result.rtt)
                    line = f"{target.host} : duplicate for [{index}], {result.size} bytes, {rtt} ms"
                    self.error(line + self._from(result, target))
                return _NOT_A_VERDICT
            if result.rtt > self.wait:
                self._lost(index, target)  # fping drops a reply later than -t (fping -c2 -p0)
                return _LOST
            self._reply(result, target, index)
            return _DONE
        if kind is Timeout:
            self._lost(index, target)
            return _LOST
        if kind is IcmpError:
            assert isinstance(result, IcmpError)
            self._icmp_error(result, target)
            return _LOST_LATER
        if kind is LateReply:
            target.recv_total += 1
            return _NOT_A_VERDICT
        if kind is SendError:
            assert isinstance(result, SendError)
            self.send_errors += 1
            target.sent += 1
            target.sent_i += 1
            if self.verbose:
                self.warning(f"{target.host}: error while sending ping: {result.message}")
            return _DONE  # no timeout, so no retry either (as fping)
        return _NOT_A_VERDICT  # InvalidReply: not a reply (fping would have counted it)

    def _from(self, reply: Reply, target: _Target) -> str:
        return "" if reply.source == target.address else f" [<- {reply.source}]"

    def _reply(self, reply: Reply, target: _Target, index: int) -> None:
        rtt = reply.rtt
        target.sent += 1
        target.sent_i += 1
        recv = target.recv = target.recv + 1
        target.total += rtt
        if recv == 1:
            target.min = target.max = rtt
        elif rtt > target.max:
            target.max = rtt
        elif rtt < target.min:
            target.min = rtt
        recv_i = target.recv_i = target.recv_i + 1
        target.total_i += rtt
        if recv_i == 1:
            target.min_i = target.max_i = rtt
        elif rtt > target.max_i:
            target.max_i = rtt
        elif rtt < target.min_i:
            target.min_i = rtt
        if target.resp is not None:
            target.resp[index] = rtt
        if recv == 1:
            self.alive += 1
            if self.verbose or self.show_alive:
                text = f"{target.host} is alive" if self.verbose else target.host
                if self.opts.elapsed:
                    text += f" ({fping_ms(rtt)} ms)"
                self.line(text)
                if reply.source != target.address:
                    self.error_fragment(f" [<- {reply.source}]")
        if self.per_recv:
            prefix = f"[{time.time():.5f}] " if self.opts.timestamp else ""
            loss = (target.sent - target.recv) * 100 // target.sent
            self.line(
                f"{prefix}{target.host:<{self.width}} : [{index}], {reply.size} bytes, {fping_ms(rtt)} ms"
                f" ({fping_ms(target.total / target.recv)} avg, {loss}% loss)"
            )
            if reply.source != target.address:
                self.error_fragment(f" [<- {reply.source}]")

    def _lost(self, index: int, target: _Target) -> None:
        self.timeouts += 1
        target.sent += 1
        target.sent_i += 1
        if self.per_recv:
            prefix = f"[{time.time():.5f}] " if self.opts.timestamp else ""
            avg = fping_ms(target.total / target.recv) if target.recv else "NaN"
            loss = (target.sent - target.recv) * 100 // target.sent
            self.line(f"{prefix}{target.host:<{self.width}} : [{index}], timed out ({avg} avg, {loss}% loss)")

    def _icmp_error(self, error: IcmpError, target: _Target) -> None:
        self.other_icmp += 1
        if error.family is not Family.V4:
            return  # fping 5.1 does not recognise ICMPv6 errors as its own (see module doc)
        if error.icmp_type == 3:
            known = error.code < len(_V4_UNREACHABLE)
            text = _V4_UNREACHABLE[error.code] if known else "ICMP Unreachable (Invalid Code)"
        else:
            text = _V4_OTHER.get(error.icmp_type, f"ICMP {error.icmp_type}")
        self.warning(f"{text} from {error.source} for ICMP Echo sent to {target.host}")

    # -- reports ------------------------------------------------------------------------

    def report(self) -> None:
        """Every ``-Q`` seconds: the counts since the last report, for people or netdata."""
        if self.opts.netdata:
            self.netdata()
        else:
            self.splits()

    def netdata(self) -> None:
        """``-N``: netdata's external-plugin protocol, chart definitions the first time."""
        interval = f"{self.opts.report_interval_s:.0f}"
        first = not self.charts_sent
        self.charts_sent = True
        for target in self.targets:
            name, host = "".join(c if c.isalnum() else "_" for c in target.name), target.host
            sent, recv = target.sent_i, target.recv_i
            if first:
                self.line(
                    f"CHART fping.{name}_packets '' 'FPing Packets for host {host}' packets '{host}'"
                    f" fping.packets line 110020 {interval}\nDIMENSION xmt sent absolute 1 1"
                    "\nDIMENSION rcv received absolute 1 1"
                )
            self.line(f"BEGIN fping.{name}_packets\nSET xmt = {sent}\nSET rcv = {recv}\nEND")
            if first:
                self.line(
                    f"CHART fping.{name}_quality '' 'FPing Quality for host {host}' percentage '{host}'"
                    f" fping.quality area 110010 {interval}\nDIMENSION returned '' absolute 1 1"
                )
            returned = recv * 100 // sent if sent else 0
            self.line(f"BEGIN fping.{name}_quality\nSET returned = {returned}\nEND")
            if first:
                self.line(
                    f"CHART fping.{name}_latency '' 'FPing Latency for host {host}' ms '{host}'"
                    f" fping.latency area 110000 {interval}\nDIMENSION min minimum absolute 1 1000000"
                    "\nDIMENSION max maximum absolute 1 1000000\nDIMENSION avg average absolute 1 1000000"
                )
            self.line(f"BEGIN fping.{name}_latency")
            if recv:  # nanoseconds, as fping keeps them
                low, avg, high = int(target.min_i * 1e9), int(target.total_i * 1e9) // recv, int(target.max_i * 1e9)
                self.line(f"SET min = {low}\nSET avg = {avg}\nSET max = {high}")
            self.line("END")
            target.sent_i = target.recv_i = 0
            target.min_i = target.max_i = target.total_i = 0.0
        self.flush()

    def splits(self) -> None:
        """``-Q`` and SIGQUIT: counts since the last report, under a ``[hh:mm:ss]`` header."""
        lines = [""] if self.verbose or self.per_recv else []
        lines.append(time.strftime("[%H:%M:%S]", time.localtime()))
        for target in self.targets:
            text = f"{target.host:<{self.width}} :"
            text += self._counts(target.sent_i, target.recv_i)
            if target.recv_i:
                text += self._min_avg_max(target.min_i, target.total_i / target.recv_i, target.max_i)
            lines.append(text)
            target.sent_i = target.recv_i = 0
            target.min_i = target.max_i = target.total_i = 0.0
        self.error("\n".join(lines))

    def _counts(self, sent: int, recv: int) -> str:
        loss = (sent - recv) * 100 // sent if sent else 0
        text = f" xmt/rcv/%loss = {sent}/{recv}/{loss}%"
        if self.opts.outage:
            text += f", outage(ms) = {int((sent - recv) * self.period_ms)}"
        return text

    @staticmethod
    def _min_avg_max(low: float, avg: float, high: float) -> str:
        return f", min/avg/max = {fping_ms(low)}/{fping_ms(avg)}/{fping_ms(high)}"

    def finish(self) -> int:
        """fping's ``finish``: unreachable targets, summaries, ``-s``, ``-x``, exit status."""
        ended = time.time()
        unreachable = 0
        for target in self.targets:
            if not target.recv:
                unreachable += 1
                if self.verbose:
                    self.line(f"{target.host} is unreachable")
                elif self.show_unreachable:
                    self.line(target.host)
        self.flush()
        if self.opts.count is not None or self.opts.loop:
            self._per_target_stats()
        if self.opts.stats:
            self._global_stats(unreachable, ended - self.started)
        if self.opts.reachable:
            reachable = len(self.targets) - unreachable
            enough = reachable >= self.opts.reachable
            self.line(
                f"{'Enough' if enough else 'Not enough'} hosts reachable"
                f" (required: {self.opts.reachable}, reachable: {reachable})"
            )
            self.flush()
            return EXIT_ALL_ALIVE if enough else EXIT_SOME_UNREACHABLE
        if self.noaddress:
            return EXIT_NO_ADDRESS
        return EXIT_ALL_ALIVE if self.alive == len(self.targets) else EXIT_SOME_UNREACHABLE

    def _per_target_stats(self) -> None:
        lines = [""] if self.verbose or self.per_recv else []
        append = lines.append
        width = self.width
        ms = fping_ms
        quick_ms = _ms
        if self.report_all:
            for target in self.targets:
                resp = target.resp or {}
                values = "".join(f" {ms(resp[j])}" if j in resp else " -" for j in range(target.sent))
                append(f"{target.host:<{width}} :{values}")
        else:
            outage = self.opts.outage
            period = self.period_ms
            for target in self.targets:
                sent, recv = target.sent, target.recv
                loss = (sent - recv) * 100 // sent if sent else 0
                text = f"{target.host:<{width}} : xmt/rcv/%loss = {sent}/{recv}/{loss}%"
                if outage:
                    text += f", outage(ms) = {int((sent - recv) * period)}"
                if recv == 1:  # one RTT is the minimum, the average (0.0 + rtt) and the maximum
                    value = quick_ms(target.min)
                    text += f", min/avg/max = {value}/{value}/{value}"
                elif recv:
                    text += f", min/avg/max = {ms(target.min)}/{ms(target.total / recv)}/{ms(target.max)}"
                append(text)
        self.error("\n".join(lines))

    def _global_stats(self, unreachable: int, elapsed: float) -> None:
        """``-s``: the run's totals, summed from the targets' counts (not kept per reply)."""
        answered = [target for target in self.targets if target.recv]
        count = sum(target.recv for target in answered)
        avg = sum(target.total for target in answered) / count if count else 0.0
        low = min((target.min for target in answered), default=0.0)
        high = max((target.max for target in answered), default=0.0)
        # fping counts a probe here when it is sent (so also those in flight at Ctrl-C),
        # and one the kernel refused.
        sent = self.transmitted + self.send_errors
        replies = sum(target.recv_total for target in self.targets)
        self.error(
            "\n".join(
                [
                    "",
                    f" {len(self.targets):7d} targets",
                    f" {self.alive:7d} alive",
                    f" {unreachable:7d} unreachable",
                    f" {self.noaddress:7d} unknown addresses",
                    "",
                    f" {self.timeouts:7d} timeouts (waiting for response)",
                    f" {sent:7d} ICMP Echos sent",
                    f" {replies:7d} ICMP Echo Replies received",
                    f" {self.other_icmp:7d} other ICMP received",
                    "",
                    f" {fping_ms(low)} ms (min round trip time)",
                    f" {fping_ms(avg)} ms (avg round trip time)",
                    f" {fping_ms(high)} ms (max round trip time)",
                    f" {elapsed:12.3f} sec (elapsed real time)",
                    "",
                ]
            )
        )


# -- targets ----------------------------------------------------------------------------


def read_target_lines(text: str) -> list[str]:
    """fping's target file: the first word of each line; blank lines and ``#`` comments skipped."""
    if "#" not in text and " " not in text and "\t" not in text:
        return text.split()  # one word a line, the usual file: no per-line work
    targets = []
    for line in text.splitlines():
        words = line.split(None, 1)
        if words and not words[0].startswith("#"):
            targets.append(words[0])
    return targets


def _target_names(opts: FpingOptions, stdin: TextIO) -> list[str]:
    if opts.generate:
        return generate(opts.targets)
    if opts.targets:
        return opts.targets
    name = opts.file or "-"
    if name == "-":
        return read_target_lines(stdin.read())
    try:
        with open(name, encoding="utf-8", errors="replace") as handle:
            return read_target_lines(handle.read())
    except OSError as exc:
        raise FpingExit(f"{PROG}: cannot read {name}: {exc.strerror or exc}", EXIT_SYSTEM) from None


def _all_ipv4(names: list[str]) -> bool:
    pton, inet = socket.inet_pton, socket.AF_INET
    try:
        for name in names:
            pton(inet, name)
    except OSError:
        return False
    return True


def _literal(name: str) -> tuple[str, Family] | None:
    try:
        socket.inet_pton(socket.AF_INET, name)
    except OSError:
        pass
    else:
        return name, Family.V4
    try:
        packed = socket.inet_pton(socket.AF_INET6, name)
    except OSError:
        return None
    return socket.inet_ntop(socket.AF_INET6, packed), Family.V6


async def _resolve_all(run: _Run, names: list[str]) -> None:
    """Addresses and display names for every target, in input order, as fping's ``add_name``
    does before it pings: literals without a lookup, names ``32`` at a time."""
    opts = run.opts
    wanted = None if opts.family is None else (Family.V4 if opts.family == 4 else Family.V6)
    plain = not (opts.addr or opts.name or opts.rdns or opts.all_addresses)
    if plain and wanted is not Family.V6 and _all_ipv4(names):  # the fast path: 100,000 addresses
        run.targets = [_Target(name, name, Family.V4) for name in names]
        return
    literals = [_literal(name) for name in names]
    found: list[list[tuple[str, Family]] | str] = [[]] * len(names)
    limiter = trio.CapacityLimiter(_RESOLVE_CONCURRENCY)

    async def lookup(position: int) -> None:
        async with limiter:
            found[position] = await _addresses(names[position], wanted, opts.all_addresses)

    async with trio.open_nursery() as nursery:
        for position, (name, literal) in enumerate(zip(names, literals, strict=True)):
            if literal is None:
                nursery.start_soon(lookup, position)
            elif wanted is not None and literal[1] is not wanted:
                found[position] = f"{name}: Address family for hostname not supported"
            else:
                found[position] = [literal]
    for name, entry in zip(names, found, strict=True):
        if isinstance(entry, str):
            run.noaddress += 1
            run.warning(entry)
            continue
        for address, family in entry:
            run.targets.append(_Target(await _display(opts, name, address), address, family, name))


async def _addresses(name: str, wanted: Family | None, every: bool) -> list[tuple[str, Family]] | str:
    """A name's address (every address with ``-m``), or fping's line for a failed lookup."""
    try:
        if not every:
            return [await resolve(name, wanted)]
        af = socket.AF_UNSPEC if wanted is None else wanted.address_family
        infos = await trio.socket.getaddrinfo(name, None, af, socket.SOCK_RAW)
    except ResolutionError as exc:
        return f"{name}: {exc.reason}"
    except (InvalidArgumentError, socket.gaierror, UnicodeError) as exc:
        text = str(exc.strerror if isinstance(exc, socket.gaierror) else exc)
        return text if text.startswith(f"{name}:") else f"{name}: {text}"
    addresses: list[tuple[str, Family]] = []
    for info_family, _type, _proto, _canon, sockaddr in infos:
        family = Family.V4 if info_family == socket.AF_INET else Family.V6
        entry = (str(sockaddr[0]), family)
        if entry not in addresses:
            addresses.append(entry)
    return addresses or f"{name}: Name or service not known"


async def _display(opts: FpingOptions, name: str, address: str) -> str:
    """fping's printed name: as given; ``-A`` the address; ``-n`` (for literals) and ``-d``
    the reverse-DNS name; ``-A`` with either, ``name (address)``."""
    shown = name
    if opts.rdns or (opts.name and _literal(name) is not None):
        try:
            shown, _port = await trio.socket.getnameinfo((address, 0), 0)
        except OSError:
            shown = name
    if opts.addr:
        return f"{shown} ({address})" if opts.rdns or opts.name else address
    return shown


# -- the run ----------------------------------------------------------------------------


_Group = tuple[Pinger, list[_Target], float | None]
"""Targets that share a pinger, and their share of ``-i``'s rate."""


async def _ping(run: _Run, scope: trio.CancelScope) -> None:
    opts = run.opts
    targets = run.targets
    counting = opts.count is not None
    for target in targets:
        if run.report_all:
            target.resp = {}
    rate = 1000.0 / opts.interval_ms if opts.interval_ms > 0 else None
    timeout = max(opts.timeout_s, 1e-6)  # fping's -c2 -p0 waits 0 ms: no reply is in time (see handle)
    async with contextlib.AsyncExitStack() as stack:
        groups: list[_Group] = []
        for source, members in _by_source(opts.source, targets):
            pinger = await stack.enter_async_context(
                open_pinger(source=source, interface=opts.interface, tos=opts.tos, pmtu="do" if opts.dontfrag else None)
            )
            for family in {target.family for target in members}:
                try:
                    pinger.socket_kind(family)
                except TriopingError as exc:
                    raise FpingExit(f"{PROG}: {exc}", EXIT_SYSTEM) from None
            groups.append((pinger, members, None if rate is None else rate * len(members) / len(targets)))
        with scope:
            async with trio.open_nursery() as nursery:
                if (counting or opts.loop) and opts.report_interval_s > 0:
                    nursery.start_soon(_report_every, run, opts.report_interval_s)
                nursery.start_soon(_report_on_sigquit, run)
                if counting or opts.loop:
                    await _rounds(run, groups, opts.count, opts.period_ms / 1e3, rate, timeout)
                else:
                    await _tries(run, groups, opts.retry, opts.backoff, timeout)
                nursery.cancel_scope.cancel()


def _by_source(source: str | None, targets: list[_Target]) -> list[tuple[str | None, list[_Target]]]:
    """fping's ``-S`` binds the socket of the source address's family only: the targets of
    the other family go out unbound, from a pinger of their own."""
    if source is None:
        return [(None, targets)]
    family = Family.V6 if ":" in source else Family.V4
    bound = [target for target in targets if target.family is family]
    unbound = [target for target in targets if target.family is not family]
    groups = [(address, members) for address, members in ((source, bound), (None, unbound)) if members]
    return groups if targets[0].family is family else groups[::-1]  # the first target's first


async def _tries(run: _Run, groups: list[_Group], retry: int, backoff: float, wait: float) -> None:
    """Default mode: a try for every target, then a retry for those still unanswered, each
    waiting *backoff* times longer, up to *retry* retries (see the module doc for how this
    differs from fping's per-target schedule)."""
    closing = trio.Event()
    async with trio.open_nursery() as nursery:
        pending = [members for _pinger, members, _rate in groups]
        for attempt in range(min(retry, 1 << 16) + 1):
            outcomes: list[_Outcome] = []
            for (pinger, _members, rate), targets in zip(groups, pending, strict=True):
                if targets:
                    outcomes.append(outcome := _Outcome())
                    limit = wait * backoff**attempt
                    nursery.start_soon(_batch, run, pinger, targets, 0, rate, limit, closing, outcome)
            if not outcomes:
                break
            for outcome in outcomes:
                await outcome.answered.wait()
            lost = {id(target) for outcome in outcomes for target in outcome.lost}
            pending = [[target for target in targets if id(target) in lost] for targets in pending]
        closing.set()


class _Outcome:
    """A try's verdicts: the targets it lost, once every probe has its verdict."""

    def __init__(self) -> None:
        self.lost: list[_Target] = []
        self.answered = trio.Event()

    def __call__(self, lost: list[_Target]) -> None:
        self.lost = lost
        self.answered.set()


async def _rounds(
    run: _Run, groups: list[_Group], count: int | None, period: float, rate: float | None, wait: float
) -> None:
    """Count and loop modes: probe *index* of every target in round *index*, a round every
    *period* (``-p``), or as soon as the last round's sends are done at ``-i``'s rate.

    fping sends to its targets round-robin, so every target gets its turn even when ``-i``
    cannot keep up with ``-p``; one fan-out per round does the same (a single fan-out with
    ``count=N`` would favour its first targets' repeats).  Rounds overlap while the last
    one's probes wait for replies."""
    sending = len(run.targets) / rate if rate else 0.0
    closing = trio.Event()
    complete = 0

    def done(_lost: list[_Target]) -> None:
        nonlocal complete
        complete += 1
        if count is not None and complete == count * len(groups):
            closing.set()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        index = 0
        while True:
            for pinger, members, share in groups:
                nursery.start_soon(_batch, run, pinger, members, index, share, wait, closing, done)
            index += 1
            if count is not None and index >= count:
                break
            await trio.sleep_until(max(start + index * period, trio.current_time() + sending))


class _Addresses:
    """The targets' addresses for one fan-out, as an async iterable that ends only when
    *closed* is set: until then the fan-out stays open and still sees duplicates of the
    probes it has answered, which fping reports as long as it runs."""

    def __init__(self, targets: list[_Target], closed: trio.Event) -> None:
        self.addresses = [target.address for target in targets]
        self.next = 0
        self.closed = closed

    def __aiter__(self) -> _Addresses:
        return self

    async def __anext__(self) -> str:
        position = self.next
        if position < len(self.addresses):
            self.next = position + 1
            return self.addresses[position]
        await self.closed.wait()
        raise StopAsyncIteration


async def _batch(
    run: _Run,
    pinger: Pinger,
    targets: list[_Target],
    index: int,
    rate: float | None,
    wait: float,
    closing: trio.Event,
    done: Callable[[list[_Target]], None],
) -> None:
    """Probe *index* of every one of *targets*, one fan-out, each probe waiting *wait*
    seconds; *done* gets the targets whose probe was lost (to retry) once every probe has
    its verdict.  The fan-out stays open for duplicates until the run is *closing*, or
    for *wait* more (so that loop mode keeps a few rounds open, not every one)."""
    opts = run.opts
    closed = trio.Event()
    source = _Addresses(targets, closed)
    run.wait = wait
    async with pinger.fanout(source, count=1, rate=rate, timeout=wait, size=opts.size, ttl=opts.ttl) as batch:
        try:
            await _consume(run, batch, targets, index, done, _Closer(closing, closed, wait))
        finally:
            run.transmitted += batch.progress.sent


class _Closer:
    """Closes one fan-out when the run is closing or *linger* seconds after its verdicts."""

    def __init__(self, closing: trio.Event, closed: trio.Event, linger: float) -> None:
        self.closing = closing
        self.closed = closed
        self.linger = linger

    async def __call__(self) -> None:
        with trio.move_on_after(self.linger):
            await self.closing.wait()
        self.closed.set()


async def _consume(
    run: _Run,
    batch: Fanout,
    targets: list[_Target],
    index: int,
    done: Callable[[list[_Target]], None],
    closer: _Closer,
) -> None:
    """Count and print the batch's results as they come; *done* as for :func:`_batch`.

    A probe that drew an ICMP error is counted lost when its timeout would have expired,
    as fping does (it prints the error at once, and the ``timed out`` line and the retry
    at the timeout)."""
    lost: list[_Target] = []
    handle = run.json_lines if isinstance(run, _JsonRun) else run.handle
    waiting = len(targets)
    errored: deque[tuple[float, _Target]] = deque()
    wait = run.wait
    async with trio.open_nursery() as nursery:

        def verdict(target: _Target, lost_it: bool) -> None:
            nonlocal waiting
            if lost_it and not target.recv:
                lost.append(target)
            waiting -= 1
            if not waiting:
                done(lost)
                nursery.start_soon(closer)

        async def expire_errored() -> None:
            while errored:
                deadline, target = errored[0]
                await trio.sleep_until(deadline)
                errored.popleft()
                run._lost(index, target)
                verdict(target, True)
                run.flush()

        async for item in batch:
            while True:  # everything queued, with one checkpoint per wake-up
                if type(item) is HostError:
                    run.warning(f"{targets[item.position].host}: {item.error}")
                    verdict(targets[item.position], False)
                else:
                    assert isinstance(item, HostResult)
                    target = targets[item.position]
                    meaning = handle(item, target, index)
                    if meaning == _LOST_LATER:
                        errored.append((trio.current_time() + wait, target))
                        if len(errored) == 1:
                            nursery.start_soon(expire_errored)
                    elif meaning:
                        verdict(target, meaning == _LOST)
                try:
                    item = batch.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            run.flush()


async def _report_every(run: _Run, seconds: float) -> None:
    next_report = trio.current_time() + seconds
    while True:
        await trio.sleep_until(next_report)
        run.report()
        now = trio.current_time()
        while next_report <= now:
            next_report += seconds


async def _report_on_sigquit(run: _Run) -> None:
    with trio.open_signal_receiver(signal.SIGQUIT) as signals:
        async for _ in signals:
            run.splits()


async def main_async(opts: FpingOptions, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    names = _target_names(opts, stdin)
    run = _JsonRun(opts, out, err) if opts.json else _Run(opts, out, err)
    await _resolve_all(run, names)
    if not run.targets:
        run.flush()
        return EXIT_NO_ADDRESS if run.noaddress else EXIT_USAGE
    run.width = max(len(target.host) for target in run.targets)
    # The targets live as long as the run: the collector need not walk them again and again,
    # nor the interpreter's start-up objects (see main for the threshold).
    gc.freeze()
    if opts.interface is not None:
        try:
            socket.if_nametoindex(opts.interface)
        except OSError:
            raise FpingExit(f"{PROG}: -I {opts.interface}: no such network interface", EXIT_USAGE) from None

    async def body(scope: trio.CancelScope) -> int:
        await _ping(run, scope)
        return 0

    await run_interruptibly(body)
    return run.finish()


class _JsonRun(_Run):
    """``--json``: every result and every target's counts as JSON lines on stdout."""

    def __init__(self, opts: FpingOptions, out: TextIO, err: TextIO) -> None:
        super().__init__(opts, out, err)
        self.per_recv = self.verbose = self.show_alive = self.show_unreachable = self.show_duplicates = False

    def warning(self, text: str) -> None:
        """A target that did not resolve or could not be pinged, as fping words it."""
        from ._json import dumps

        self.line(dumps({"type": "warning", "time": round(time.time(), 6), "message": text}))

    def _icmp_error(self, error: IcmpError, target: _Target) -> None:
        self.other_icmp += 1  # the error's own JSON line says the rest

    def json_lines(self, item: HostResult, target: _Target, index: int) -> int:
        from ._json import dumps, result_object

        obj = result_object(item.result, target.host, time.time())
        obj["index"] = index  # the round's, as fping's [index]
        self.line(dumps(obj))
        return self.handle(item, target, index)

    def finish(self) -> int:
        from ._json import dumps

        status = _exit_status(self)
        for target in self.targets:
            loss = (target.sent - target.recv) * 100 / target.sent if target.sent else 0.0
            self.line(
                dumps(
                    {
                        "type": "summary",
                        "host": target.host,
                        "target": target.address,
                        "transmitted": target.sent,
                        "received": target.recv,
                        "duplicates": target.recv_total - target.recv,
                        "loss_percent": round(loss, 6),
                        "rtt_min_ms": round(target.min * 1e3, 6) if target.recv else None,
                        "rtt_avg_ms": round(target.total / target.recv * 1e3, 6) if target.recv else None,
                        "rtt_max_ms": round(target.max * 1e3, 6) if target.recv else None,
                    }
                )
            )
        self.flush()
        return status

    def report(self) -> None:
        pass  # every result is already a line

    def splits(self) -> None:
        pass


def _exit_status(run: _Run) -> int:
    reachable = sum(1 for target in run.targets if target.recv)
    if run.opts.reachable:
        return EXIT_ALL_ALIVE if reachable >= run.opts.reachable else EXIT_SOME_UNREACHABLE
    if run.noaddress:
        return EXIT_NO_ADDRESS
    return EXIT_ALL_ALIVE if reachable == len(run.targets) else EXIT_SOME_UNREACHABLE


def main(argv: list[str] | None = None) -> int:
    """The command: parse, ping, print; one line on stderr and fping's status on a mistake."""
    args = sys.argv[1:] if argv is None else argv
    out, err = sys.stdout, sys.stderr
    if argv is None:
        # As fping (and every C filter): a reader that goes away (``| head``) ends the run.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        # A result or two per probe are tuples the collector tracks: at the default threshold
        # (700) it ran 450 times in a 60,000-target run, 175 ms of it; at 100,000, twice
        # (45 ms).  Memory stays bounded in loop mode: it still runs every 100,000 objects.
        gc.set_threshold(100_000, 10, 10)
    try:
        opts = parse_args(args, __version__)
        return trio.run(main_async, opts, out, err, sys.stdin)
    except FpingExit as exc:
        (out if exc.stdout else err).write(exc.message + "\n")
        return exc.status
    except TriopingError as exc:
        err.write(f"{PROG}: {exc}\n")
        return EXIT_SYSTEM
    except KeyboardInterrupt:
        return EXIT_SOME_UNREACHABLE


def run() -> None:
    """Console-script entry point.

    It leaves without the interpreter's clean-up: freeing a large run's objects one by one
    (100,000 targets and their counts, the fan-outs' tables) takes longer than fping's whole
    exit, and the operating system reclaims the memory at once.  Output is flushed first."""
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


__all__ = ["main", "run"]
