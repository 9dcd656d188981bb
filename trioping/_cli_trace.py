"""``trioping -T`` (traceroute -I's output) and ``trioping --mtr`` (mtr's report, JSON and a
live table), on the library's :meth:`Pinger.trace` and :meth:`Pinger.mtr`.

Imported only when one of those modes is asked for, so ping's start-up does not pay for it.
Exit status: 0 the target answered, 1 it did not, 2 an error (one line on stderr).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ._cli_common import EXIT_NO_REPLY, EXIT_REPLIES, UsageError, run_interruptibly
from ._format import send_error_text
from ._mtr import Mtr, MtrHop, MtrReport
from ._packet import Family
from ._pinger import open_pinger
from ._results import IcmpError, IcmpErrorKind, Reply, SendError, Timeout
from ._trace import Hop, HopResult, Trace, in_transit

Writer = Callable[[str], None]

MTR_REPORT_CYCLES = 10
"""Rounds of ``--mtr`` without ``-c`` when the output is not a terminal (mtr's report default)."""
_NAME_WAIT = 2.0
"""Seconds traceroute output waits for a hop's names before printing addresses alone."""


@dataclass(frozen=True, slots=True)
class TraceOptions:
    host: str
    mtr: bool
    count: int | None
    interval: float
    size: int
    timeout: float
    family: Family | None
    max_hops: int
    probes: int
    first_hop: int
    names: bool
    json_output: bool
    source: str | None = None
    interface: str | None = None
    tos: int | None = None


def check_hosts(hosts: list[str], mode: str) -> str:
    if len(hosts) != 1:
        raise UsageError(f"{mode} traces one host, not {len(hosts)}")
    return hosts[0]


def command(options: TraceOptions, out: Writer) -> int:
    if options.mtr:
        return trio.run(run_interruptibly, lambda scope: _mtr(options, out, scope))
    return trio.run(run_interruptibly, lambda scope: _traceroute(options, out, scope))


# -- traceroute ------------------------------------------------------------------------------

_V4_UNREACHABLE_MARKS = {
    0: "!N",
    1: "!H",
    2: "!P",
    3: "",
    5: "!S",
    6: "!N",
    7: "!H",
    8: "!N",
    9: "!X",
    10: "!X",
    11: "!N",
    12: "!H",
    13: "!X",
    14: "!V",
    15: "!C",
}
_V6_UNREACHABLE_MARKS = {0: "!N", 1: "!X", 2: "!H", 3: "!H", 4: ""}


def mark(result: HopResult) -> str:
    """traceroute's mark after an answer: ``!H``, ``!N``, ``!P``, ``!X``... ("" for none),
    and for any other error ``!<type-code>``, as its parse_icmp_res prints it."""
    if not isinstance(result, IcmpError) or in_transit(result):
        return ""
    if result.mtu is not None:
        return f"!F-{result.mtu}"
    if result.kind is IcmpErrorKind.DESTINATION_UNREACHABLE:
        marks = _V4_UNREACHABLE_MARKS if result.family is Family.V4 else _V6_UNREACHABLE_MARKS
        return marks.get(result.code, f"!<{result.code}>")
    return f"!<{result.icmp_type}-{result.code}>"


def _answer(result: HopResult) -> tuple[str | None, float | None]:
    if isinstance(result, (Reply, IcmpError)):
        return result.source, result.rtt
    return None, None


def hop_line(hop: Hop, name: Callable[[str], str | None] | None = None) -> str:
    """One hop as traceroute prints it: ``%2u `` then, per probe, the address when it
    differs from the last answer's, the time, and a mark; ``*`` for a probe lost."""
    line = f"{hop.ttl:2d} "
    previous: str | None = None
    for result in hop.results:
        address, rtt = _answer(result)
        if address is None:
            line += " *"
            continue
        if address != previous:
            line += f" {address}" if name is None else f" {name(address) or address} ({address})"
            previous = address
        if rtt is not None:
            line += f"  {rtt * 1e3:.3f} ms"
        flag = mark(result)
        if flag:
            line += f" {flag}"
    return line


def _probe_object(result: HopResult) -> dict[str, Any]:
    if isinstance(result, Reply):
        return {
            "kind": "reply",
            "address": result.source,
            "rtt_ms": round(result.rtt * 1e3, 6),
            "clock": result.clock.value,
        }
    if isinstance(result, IcmpError):
        kind = result.kind
        return {
            "kind": "error",
            "address": result.source,
            "rtt_ms": None if result.rtt is None else round(result.rtt * 1e3, 6),
            "clock": None if result.clock is None else result.clock.value,
            "icmp_type": result.icmp_type,
            "icmp_code": result.code,
            "error": None if kind is None else kind.value,
            "mark": mark(result) or None,
            "description": result.description,
        }
    if isinstance(result, Timeout):
        return {"kind": "timeout"}
    return {"kind": "send-error", "errno": result.errno, "message": result.message}


def hop_object(hop: Hop, trace: Trace) -> dict[str, Any]:
    return {
        "type": "hop",
        "ttl": hop.ttl,
        "addresses": [{"address": a, "name": trace.name(a)} for a in hop.addresses],
        "probes": [_probe_object(result) for result in hop.results],
        "reached": hop.reached,
    }


def _packet_bytes(size: int, family: Family) -> int:
    return size + (28 if family is Family.V4 else 48)


async def _traceroute(options: TraceOptions, out: Writer, run_scope: trio.CancelScope) -> int:
    reached = False
    async with open_pinger(source=options.source, interface=options.interface, tos=options.tos) as pinger:
        with run_scope:
            context = pinger.trace(  # checks every argument before anything is printed or sent
                options.host,
                max_hops=options.max_hops,
                probes_per_hop=options.probes,
                timeout=options.timeout,
                first_hop=options.first_hop,
                size=options.size,
                family=options.family,
                names=options.names,
            )
            warned: set[str] = set()
            # Entering resolves the host and opens its socket: a name or permission error
            # comes before any output, and the header shows the address the trace probes.
            async with context as trace:
                address, family = trace.address, trace.family
                assert address is not None
                assert family is not None
                if not options.json_output:
                    out(
                        f"traceroute to {options.host} ({address}), {options.max_hops} hops max, "
                        f"{_packet_bytes(options.size, family)} byte packets"
                    )
                async for hop in trace:
                    for result in hop.results:
                        if isinstance(result, SendError) and result.message not in warned:
                            warned.add(result.message)  # once each, as traceroute reports a refused send
                            _warn(send_error_text(result))
                    if options.names:
                        await trace.wait_for_names(hop.addresses, trio.current_time() + _NAME_WAIT)
                    if options.json_output:
                        out(json.dumps(hop_object(hop, trace)))
                    else:
                        out(hop_line(hop, trace.name if options.names else None))
                    reached = reached or hop.reached
            if options.json_output:
                summary = {"type": "trace", "host": options.host, "address": address, "reached": reached}
                out(json.dumps(summary))
    return EXIT_REPLIES if reached else EXIT_NO_REPLY


def _warn(message: str) -> None:
    sys.stderr.write(f"trioping: {message}\n")
    sys.stderr.flush()


# -- mtr -------------------------------------------------------------------------------------

_HOST_WIDTH = 33
_FIELDS = (" %4.1f%%", " %5d", " ", " %5.1f", " %5.1f", " %5.1f", " %5.1f", " %5.1f")
_WIDTHS = (6, 6, 1, 6, 6, 6, 6, 6)
_TITLES = ("Loss%", "Snt", " ", "Last", "Avg", "Best", "Wrst", "StDev")


def _usec(seconds: float | None) -> int:
    """mtr keeps times as whole microseconds."""
    return 0 if seconds is None or seconds != seconds else int(seconds * 1e6)


def _hop_values(hop: MtrHop) -> tuple[float, int, float, float, float, float, float]:
    """mtr's figures: loss in thousandths of a percent and times in microseconds, as its
    integer fields hold them, then divided by 1000 (ms, percent)."""
    loss = int(1000 * (100 - 100.0 * hop.received / hop.sent)) if hop.sent else 0
    return (
        loss / 1000.0,
        hop.sent,
        _usec(hop.last) / 1000.0,
        _usec(hop.avg) / 1000.0,
        _usec(hop.best) / 1000.0,
        _usec(hop.worst) / 1000.0,
        _usec(hop.stddev) / 1000.0,
    )


def _c_fields(prefix: str, texts: tuple[str, ...]) -> str:
    """mtr writes each field at a fixed offset with snprintf: a field wider than its column
    is cut by the next one (a loss of ``100.0%`` shows as ``100.0``)."""
    line = prefix[:_HOST_WIDTH]
    for index, text in enumerate(texts):
        line += text if index == len(texts) - 1 else text[: _WIDTHS[index]].ljust(_WIDTHS[index])
    return line


def mtr_report_lines(report: MtrReport, local_name: str, name: Callable[[str], str | None] | None = None) -> list[str]:
    """``mtr --report``'s lines after ``Start:``: the header and a row per hop (its first
    address, or its name when *name* knows one), further addresses under its row."""
    header = _c_fields(
        f"HOST: {local_name:<{_HOST_WIDTH}}", tuple(f"%{w}s" % t for t, w in zip(_TITLES, _WIDTHS, strict=True))
    )
    lines = [header]
    for hop in report.hops:
        loss, sent, last, avg, best, worst, stddev = _hop_values(hop)
        values: tuple[Any, ...] = (loss, sent, None, last, avg, best, worst, stddev)
        texts = tuple(" " if value is None else fmt % value for fmt, value in zip(_FIELDS, values, strict=True))
        shown = _shown(hop.address, name)
        lines.append(_c_fields(f" {hop.ttl:2d}.|-- {shown:<{_HOST_WIDTH}}", texts))
        for index, host in enumerate(hop.hosts[1:]):
            lines.append(f"    |  `|-- {host.address}" if index == 0 else f"    |   |-- {host.address}")
    return lines


def _shown(address: str | None, name: Callable[[str], str | None] | None) -> str:
    if address is None:
        return "???"
    return (name(address) if name is not None else None) or address


def mtr_json(
    report: MtrReport, local_name: str, options: TraceOptions, name: Callable[[str], str | None] | None = None
) -> str:
    """``mtr --json``'s object (mtr 0.95's keys and types)."""
    hubs = []
    for hop in report.hops:
        loss, sent, last, avg, best, worst, stddev = _hop_values(hop)
        hubs.append(
            {
                "count": hop.ttl,
                "host": _shown(hop.address, name),
                "Loss%": loss,
                "Snt": sent,
                "Last": last,
                "Avg": avg,
                "Best": best,
                "Wrst": worst,
                "StDev": stddev,
            }
        )
    mtr = {
        "src": local_name,
        "dst": options.host,
        "tos": options.tos or 0,
        "tests": report.rounds,
        "psize": str(options.size + 8),
        "bitpattern": "0x00",
    }
    return json.dumps({"report": {"mtr": mtr, "hubs": hubs}}, indent=4)


async def _mtr(options: TraceOptions, out: Writer, run_scope: trio.CancelScope) -> int:
    live = options.count is None and sys.stdout.isatty() and not options.json_output
    count = options.count if options.count is not None or live else MTR_REPORT_CYCLES
    local_name = socket.gethostname()
    run: Mtr | None = None
    async with open_pinger(source=options.source, interface=options.interface, tos=options.tos) as pinger:
        context = pinger.mtr(  # checks every argument before anything is printed or sent
            options.host,
            count,
            options.interval,
            max_hops=options.max_hops,
            timeout=options.timeout,
            first_hop=options.first_hop,
            size=options.size,
            family=options.family,
            names=options.names,
        )
        start = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with run_scope:
            async with context as run:
                if live:
                    await _live_table(run, start, local_name)
                else:
                    async for _report in run:
                        pass
                    addresses = [host.address for hop in run.report.hops for host in hop.hosts[:1]]
                    await run.wait_for_names(addresses, trio.current_time() + _NAME_WAIT)
    if run is None:  # Ctrl-C before the first round
        return EXIT_NO_REPLY
    report = run.report
    name = run.name if options.names else None
    if options.json_output:
        out(mtr_json(report, local_name, options, name))
    elif not live:
        out(f"Start: {start}")
        for line in mtr_report_lines(report, local_name, name):
            out(line)
    return EXIT_REPLIES if report.reached else EXIT_NO_REPLY


async def _live_table(run: Mtr, start: str, local_name: str) -> None:
    """Redraw the report in place at each round (rich); the last one stays on screen."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    def render(report: MtrReport) -> Text:
        return Text("\n".join([f"Start: {start}", *mtr_report_lines(report, local_name, run.name)]))

    with Live(render(run.report), console=Console(), auto_refresh=False, transient=False) as live:
        try:
            async for report in run:
                live.update(render(report), refresh=True)
        finally:
            live.update(render(run.report), refresh=True)


__all__ = ["TraceOptions", "check_hosts", "command", "hop_line", "mark", "mtr_json", "mtr_report_lines"]
