"""Traceroute and mtr: the library's ``Pinger.trace`` / ``Pinger.mtr`` and the ``-T`` /
``--mtr`` commands, on loopback (TTL 1 reaches 127.0.0.1 and ::1) and through the trace
lab's three routers (tests/tracelab.py), as root and without capabilities, compared with
the real ``traceroute -I -n`` and ``mtr -r -n``.

No reverse names are looked up but those of 127.0.0.1 and ::1: every lab trace is numeric.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import trioping
from trioping import Family, Hop, IcmpError, MtrReport, Reply, RttClock, Timeout
from trioping._cli_trace import hop_line, mtr_report_lines
from trioping._mtr import MtrHop, MtrHost, _Running
from trioping._socket import _PENDING_ICMP_ERRNOS

from .nsutil import python_env
from .tracelab import TraceLab, Unavailable, mtr_hops, traceroute, traceroute_hops

LOOPBACKS = [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6")]
FAMILIES = [pytest.param(False, id="ipv4"), pytest.param(True, id="ipv6")]
PRIVILEGES = [pytest.param(False, id="root"), pytest.param(True, id="unprivileged")]
KERNEL_CLOCKS = {RttClock.KERNEL.value, RttClock.KERNEL_RX.value}


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trioping", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


# -- loopback, the library -----------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACKS)
async def test_a_loopback_trace_is_one_hop_reached_with_kernel_stamps(host: str) -> None:
    async with trioping.open_pinger() as pinger, pinger.trace(host, timeout=2) as trace:
        hops = [hop async for hop in trace]
    assert [hop.ttl for hop in hops] == [1]
    [hop] = hops
    assert hop.reached
    assert hop.final
    assert hop.addresses == (host,)
    assert all(isinstance(result, Reply) for result in hop.results)
    assert len(hop.results) == 3
    assert {result.clock for result in hop.results if isinstance(result, Reply)} <= {
        RttClock.KERNEL,
        RttClock.KERNEL_RX,
    }
    assert trace.final_ttl == 1


async def test_the_explicit_nursery_form_and_options() -> None:
    async with trioping.open_pinger() as pinger, trio.open_nursery() as nursery:
        trace = await pinger.start_trace(nursery, "127.0.0.1", probes_per_hop=5, first_hop=2, timeout=2)
        hops = [hop async for hop in trace]
    assert [(hop.ttl, len(hop.results), hop.reached) for hop in hops] == [(2, 5, True)]


@pytest.mark.parametrize(
    "keywords",
    [
        {"max_hops": 0},
        {"max_hops": 256},
        {"probes_per_hop": 0},
        {"probes_per_hop": 11},
        {"first_hop": 31},
        {"timeout": 0},
        {"concurrency": 0},
    ],
)
async def test_bad_arguments_are_refused_before_anything_is_sent(keywords: dict[str, Any]) -> None:
    async with trioping.open_pinger() as pinger:
        with pytest.raises(trioping.InvalidArgumentError):
            pinger.trace("127.0.0.1", **keywords)
        with pytest.raises(trioping.InvalidArgumentError):
            pinger.mtr("127.0.0.1", count=0)


async def test_names_come_in_the_background_for_loopback() -> None:
    expected = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0]
    async with trioping.open_pinger() as pinger, pinger.trace("127.0.0.1", names=True, timeout=2) as trace:
        async for hop in trace:
            await trace.wait_for_names(hop.addresses, trio.current_time() + 5)
            assert trace.name("127.0.0.1") == expected


@pytest.mark.parametrize("host", LOOPBACKS)
async def test_mtr_rounds_keep_running_figures(host: str) -> None:
    async with trioping.open_pinger() as pinger, pinger.mtr(host, count=4, interval=0.02) as run:
        reports = [report async for report in run]
    assert [report.rounds for report in reports] == [1, 2, 3, 4]
    final = reports[-1]
    assert final.reached
    [hop] = final.hops
    assert (hop.ttl, hop.sent, hop.received, hop.loss, hop.address) == (1, 4, 4, 0.0, host)
    assert hop.best is not None
    assert hop.worst is not None
    assert hop.avg is not None
    assert hop.best <= hop.avg <= hop.worst
    assert [h.address for h in hop.hosts] == [host]


async def test_a_trace_outliving_its_pinger_ends() -> None:
    async with trio.open_nursery() as nursery:
        async with trioping.open_pinger() as pinger:
            trace = await pinger.start_trace(nursery, "127.0.0.1", timeout=2)
        # The pinger is closed: what was produced is still read, then the trace ends (with
        # PingerClosedError if hops were still waiting), as a stream does; it never hangs.
        with trio.fail_after(5), contextlib.suppress(trioping.PingerClosedError):
            async for _hop in trace:
                pass


async def test_an_mtr_run_outliving_its_pinger_tells_its_consumer() -> None:
    """As a stream or a trace does: the consumer gets PingerClosedError after the reports
    queued, and the nursery the run lives in is not crashed by it."""
    async with trio.open_nursery() as nursery:
        async with trioping.open_pinger() as pinger:
            run = await pinger.start_mtr(nursery, "127.0.0.1", count=5, interval=0.5, timeout=2)
            with trio.fail_after(5):
                first = await run.__anext__()
        assert first.rounds == 1
        with trio.fail_after(5), pytest.raises(trioping.PingerClosedError):
            async for _report in run:
                pass


@pytest.mark.parametrize("names", [False, True])
async def test_waiting_for_names_always_checkpoints(names: bool) -> None:
    """A public async call is a cancel point even when there is nothing to wait for."""
    async with trioping.open_pinger() as pinger:
        async with pinger.trace("127.0.0.1", names=names, timeout=2) as trace:
            with trio.CancelScope() as scope:
                scope.cancel()
                await trace.wait_for_names([], trio.current_time() + 5)
            assert scope.cancelled_caught
        async with pinger.mtr("127.0.0.1", 1, names=names) as run:
            with trio.CancelScope() as scope:
                scope.cancel()
                await run.wait_for_names([], trio.current_time() + 5)
            assert scope.cancelled_caught


def test_the_lazily_imported_names_are_listed_and_importable() -> None:
    """``dir(trioping)`` lists the trace types before their first use (a fresh interpreter:
    this one may have loaded them already), and ``from trioping import ...`` loads them."""
    code = (
        "import trioping; lazy = {'Hop', 'HopResult', 'Trace', 'Mtr', 'MtrHop', 'MtrHost', 'MtrReport'};"
        "assert lazy <= set(dir(trioping)), sorted(lazy - set(dir(trioping)));"
        "assert lazy <= set(trioping.__all__);"
        "from trioping import Hop, MtrReport; assert Hop.__module__ == 'trioping._trace'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


# The errno Linux's ping_err gives a datagram socket for each ICMP error (net/ipv4/ping.c,
# icmp_err_convert in net/ipv4/icmp.c, icmpv6_err_convert in net/ipv6/icmp.c).
KERNEL_ICMP_ERRNOS = {
    "time exceeded": errno.EHOSTUNREACH,
    "source quench / redirect": errno.EREMOTEIO,
    "parameter problem": errno.EPROTO,
    "frag needed": errno.EMSGSIZE,
    "net unreachable": errno.ENETUNREACH,
    "host unreachable": errno.EHOSTUNREACH,
    "protocol unreachable": errno.ENOPROTOOPT,
    "port unreachable": errno.ECONNREFUSED,
    "source route failed": errno.EOPNOTSUPP,
    "host unknown": errno.EHOSTDOWN,
    "host isolated": errno.ENONET,
    "v6 administratively prohibited": errno.EACCES,
}


def test_every_errno_an_icmp_error_leaves_pending_is_sent_again() -> None:
    """A send meeting any of them on a datagram socket reports an earlier probe's ICMP
    error, not its own refusal (see the lab test above)."""
    missing = {what for what, number in KERNEL_ICMP_ERRNOS.items() if number not in _PENDING_ICMP_ERRNOS}
    assert not missing


# -- formats, without a network ------------------------------------------------------------


def test_hop_lines_as_traceroute_prints_them() -> None:
    v4 = Family.V4
    hop = Hop(
        3,
        (
            IcmpError("198.19.74.4", "198.19.72.2", 1, 0, v4, 3, 1, 0, 0.000123, RttClock.KERNEL),
            Timeout("198.19.74.4", 2, 1),
            IcmpError("198.19.74.4", "198.19.72.2", 3, 2, v4, 3, 13, 0, 0.0005, RttClock.KERNEL),
        ),
    )
    assert hop_line(hop) == " 3  198.19.72.2  0.123 ms !H *  0.500 ms !X"
    moved = Hop(
        12,
        (
            IcmpError("t", "198.19.70.2", 1, 0, v4, 11, 0, 0, 0.001, RttClock.KERNEL),
            IcmpError("t", "198.19.70.9", 2, 1, v4, 11, 0, 0, 0.002, RttClock.KERNEL),
        ),
    )
    assert hop_line(moved) == "12  198.19.70.2  1.000 ms 198.19.70.9  2.000 ms"
    assert hop_line(Hop(2, (Timeout("t", 1, 0),) * 3)) == " 2  * * *"
    assert hop_line(moved, {"198.19.70.2": "r1"}.get).startswith(
        "12  r1 (198.19.70.2)  1.000 ms 198.19.70.9 (198.19.70.9)"
    )
    v6 = IcmpError("t", "2001:db8:72::2", 1, 0, Family.V6, 1, 0, 0, 0.001, RttClock.KERNEL)
    assert hop_line(Hop(3, (v6,))) == " 3  2001:db8:72::2  1.000 ms !N"


def test_errors_other_than_transit_time_exceeded_end_the_trace_with_traceroutes_mark() -> None:
    """traceroute's parse_icmp_res: only "TTL exceeded in transit" goes on; time exceeded in
    reassembly (from the destination), a parameter problem... end it, marked ``!<type-code>``."""
    v4, v6 = Family.V4, Family.V6
    transit = IcmpError("t", "198.19.70.2", 1, 0, v4, 11, 0, 0, 0.001, RttClock.KERNEL)
    reassembly = IcmpError("t", "198.19.73.2", 2, 0, v4, 11, 1, 0, 0.001, RttClock.KERNEL)
    parameter = IcmpError("t", "2001:db8:72::2", 3, 0, v6, 4, 0, 0, 0.001, RttClock.KERNEL)
    assert not Hop(1, (transit,)).final
    assert Hop(4, (reassembly,)).final
    assert Hop(4, (reassembly,)).error == reassembly
    assert hop_line(Hop(4, (reassembly,))) == " 4  198.19.73.2  1.000 ms !<11-1>"
    assert hop_line(Hop(3, (parameter,))) == " 3  2001:db8:72::2  1.000 ms !<4-0>"


def test_mtr_rows_cut_a_full_loss_and_list_further_addresses_under_the_hop() -> None:
    """mtr writes its columns at fixed offsets: ``100.0%`` loses its sign to the next."""
    silent = MtrHop(2, 10, 0, None, None, None, None, 0.0, ())
    host = MtrHost("198.19.70.2", 9, 0.0011, 0.00105, 0.001, 0.0012, 0.00005)
    other = MtrHost("198.19.70.9", 1, 0.002, 0.002, 0.002, 0.002, 0.0)
    third = MtrHost("198.19.70.10", 1, 0.002, 0.002, 0.002, 0.002, 0.0)
    busy = MtrHop(1, 10, 10, 0.0011, 0.0012, 0.001, 0.002, 0.0003, (host, other, third))
    report = MtrReport("h", "198.19.73.2", 10, (busy, silent), False)
    assert mtr_report_lines(report, "vm") == [
        "HOST: vm                          Loss%   Snt   Last   Avg  Best  Wrst StDev",
        "  1.|-- 198.19.70.2                0.0%    10    1.1   1.2   1.0   2.0   0.3",
        "    |  `|-- 198.19.70.9",
        "    |   |-- 198.19.70.10",
        "  2.|-- ???                       100.0    10    0.0   0.0   0.0   0.0   0.0",
    ]


# -- loopback, the command -------------------------------------------------------------------


@pytest.mark.parametrize("host", LOOPBACKS)
def test_traceroute_output_has_traceroute_shape(host: str) -> None:
    done = cli("-T", "-n", host)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    packet = 84 if ":" not in host else 104
    assert lines[0] == f"traceroute to {host} ({host}), 30 hops max, {packet} byte packets"
    assert re.fullmatch(rf" 1  {re.escape(host)}  \d+\.\d{{3}} ms  \d+\.\d{{3}} ms  \d+\.\d{{3}} ms", lines[1])
    assert len(lines) == 2
    if shutil.which("traceroute") is None:
        pytest.skip("traceroute not installed: its shape not compared")
    real = subprocess.run(["traceroute", "-I", "-n", host], capture_output=True, text=True, timeout=30, check=True)
    shape = re.compile(r"\d+\.\d{3} ms")
    assert shape.sub("T", real.stdout.splitlines()[1]) == shape.sub("T", lines[1])


def test_traceroute_json_has_a_hop_per_line_then_a_summary() -> None:
    done = cli("-T", "-n", "--json", "--probes", "2", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    hop, summary = (json.loads(line) for line in done.stdout.splitlines())
    assert hop["type"] == "hop"
    assert hop["ttl"] == 1
    assert hop["reached"] is True
    assert [p["kind"] for p in hop["probes"]] == ["reply", "reply"]
    assert {p["clock"] for p in hop["probes"]} <= KERNEL_CLOCKS
    assert summary == {"type": "trace", "host": "127.0.0.1", "address": "127.0.0.1", "reached": True}


def mtr_or_skip() -> str:
    path = shutil.which("mtr")
    if path is None:
        pytest.skip("mtr not installed (apt-get install mtr-tiny)")
    return path


@pytest.mark.parametrize("host", LOOPBACKS)
def test_mtr_report_has_mtrs_shape_byte_for_byte(host: str) -> None:
    """Figures differ (ours are kernel-stamped); every column, width and word is mtr's."""
    mtr = mtr_or_skip()
    done = cli("--mtr", "-n", "-c", "2", "-i", "0.1", host)
    assert done.returncode == 0, done.stderr
    real = subprocess.run([mtr, "-r", "-n", "-c", "2", "-i", "0.1", host], capture_output=True, text=True, check=True)
    ours, theirs = done.stdout.splitlines(), real.stdout.splitlines()
    assert len(ours) == len(theirs) == 3
    start = re.compile(r"Start: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}")
    assert start.fullmatch(ours[0])
    assert start.fullmatch(theirs[0])
    assert ours[1] == theirs[1]
    figures = re.compile(r"\d+\.\d")
    assert figures.sub("F", ours[2]) == figures.sub("F", theirs[2])


def test_mtr_json_has_mtrs_keys_and_types() -> None:
    mtr = mtr_or_skip()
    done = cli("--mtr", "-n", "-c", "2", "-i", "0.1", "--json", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    real = subprocess.run(
        [mtr, "-j", "-n", "-c", "2", "-i", "0.1", "127.0.0.1"], capture_output=True, text=True, check=True
    )
    ours, theirs = json.loads(done.stdout), json.loads(real.stdout)

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(item) for item in value]
        return type(value).__name__

    assert shape(ours) == shape(theirs)
    assert ours["report"]["mtr"] == theirs["report"]["mtr"]
    assert [hub["host"] for hub in ours["report"]["hubs"]] == ["127.0.0.1"]


@pytest.mark.parametrize(
    "argv",
    [
        ["-T", "-m", "0", "127.0.0.1"],
        ["-T", "-m", "256", "127.0.0.1"],
        ["-T", "--probes", "0", "127.0.0.1"],
        ["-T", "nonexistent.invalid"],
        ["-T", "127.0.0.1", "127.0.0.2"],
        ["--mtr", "-c", "1", "127.0.0.1", "127.0.0.2"],
        ["--mtr", "-T", "127.0.0.1"],
        ["--mtr", "-c", "0", "127.0.0.1"],
        ["-T", "--first-hop", "0", "127.0.0.1"],
        ["-T", "-c", "3", "127.0.0.1"],
        ["-T", "-i", "0.2", "127.0.0.1"],
        ["-T", "-t", "5", "127.0.0.1"],
        ["--mtr", "-c", "1", "-w", "5", "127.0.0.1"],
        ["--mtr", "-c", "1", "-q", "127.0.0.1"],
        ["--mtr", "-c", "1", "--rate", "10", "127.0.0.1"],
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str]) -> None:
    done = cli(*argv)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("trioping: ")


# -- the trace lab: three routers ------------------------------------------------------------


def probe_in_lab(lab: TraceLab, spec: dict[str, Any], *, unprivileged: bool = False) -> dict[str, Any]:
    done = lab.run([sys.executable, "-m", "tests.traceprobe", json.dumps(spec)], unprivileged=unprivileged, timeout=60)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    assert "exception" not in out, out
    return out


def lab_hops(lab: TraceLab, v6: bool) -> tuple[str, ...]:
    return lab.hops6 if v6 else lab.hops4


def addresses(trace: list[dict[str, Any]]) -> list[list[str | None]]:
    return [[result.get("source") for result in hop["results"]] for hop in trace]


@pytest.mark.parametrize("unprivileged", PRIVILEGES)
@pytest.mark.parametrize("v6", FAMILIES)
def test_the_trace_lists_the_routers_in_order_with_kernel_stamps(
    tracelab: TraceLab, v6: bool, unprivileged: bool
) -> None:
    target = tracelab.target6 if v6 else tracelab.target4
    out = probe_in_lab(tracelab, {"traces": [{"host": target, "timeout": 2}]}, unprivileged=unprivileged)
    assert out["kinds"] == {"6" if v6 else "4": "datagram" if unprivileged else "raw"}
    [trace] = out["traces"]
    assert [hop["ttl"] for hop in trace] == [1, 2, 3, 4]
    assert addresses(trace) == [[hop] * 3 for hop in lab_hops(tracelab, v6)]
    results = [result for hop in trace for result in hop["results"]]
    assert [r["kind"] for r in results] == ["error"] * 9 + ["reply"] * 3
    assert {r["type"] for r in results[:9]} == {3 if v6 else 11}
    assert {r["clock"] for r in results} <= KERNEL_CLOCKS
    assert all(0 < r["rtt"] < 1 for r in results)


@pytest.mark.parametrize("v6", FAMILIES)
def test_the_same_hops_as_traceroute_and_mtr(tracelab: TraceLab, v6: bool) -> None:
    target = tracelab.target6 if v6 else tracelab.target4
    family = "-6" if v6 else "-4"
    done = tracelab.run([sys.executable, "-m", "trioping", "-T", "-n", family, "-W", "2", target])
    assert done.returncode == 0, done.stderr
    ours = [line.split()[1] for line in done.stdout.splitlines()[1:]]
    assert ours == list(lab_hops(tracelab, v6))
    mtr = tracelab.run([sys.executable, "-m", "trioping", "--mtr", "-n", family, "-c", "2", "-i", "0.1", target])
    assert mtr.returncode == 0, mtr.stderr
    rows = [re.match(r"\s*\d+\.\|-- (\S+)", line) for line in mtr.stdout.splitlines()[2:]]
    ours_mtr = [row.group(1) for row in rows if row is not None]
    assert ours_mtr == list(lab_hops(tracelab, v6))
    try:
        assert traceroute_hops(tracelab, target, v6) == ours
        assert mtr_hops(tracelab, target, v6) == ours_mtr
    except Unavailable as exc:
        pytest.skip(f"not compared with the real tools: {exc}")


@pytest.mark.parametrize("unprivileged", PRIVILEGES)
@pytest.mark.parametrize("v6", FAMILIES)
def test_a_silenced_router_is_a_star(tracelab: TraceLab, v6: bool, unprivileged: bool) -> None:
    target = tracelab.target6 if v6 else tracelab.target4
    argv = [sys.executable, "-m", "trioping", "-T", "-n", "-W", "0.5", target]
    with tracelab.silence(2):
        done = tracelab.run(argv, unprivileged=unprivileged)
        try:
            real = traceroute_hops(tracelab, target, v6)
        except Unavailable:
            real = None
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()[1:]
    assert lines[1] == " 2  * * *"
    expected: list[str | None] = list(lab_hops(tracelab, v6))
    expected[1] = None
    ours = [None if line.split()[1] == "*" else line.split()[1] for line in lines]
    assert ours == expected
    if real is not None:
        assert real == expected


ENDINGS = [
    pytest.param("unreachable4", "!H", id="unreachable-ipv4"),
    pytest.param("prohibited4", "!X", id="prohibited-ipv4"),
    pytest.param("unreachable6", "!N", id="unreachable-ipv6"),
    pytest.param("prohibited6", "!X", id="prohibited-ipv6"),
]


@pytest.mark.parametrize("unprivileged", PRIVILEGES)
@pytest.mark.parametrize(("attribute", "flag"), ENDINGS)
def test_a_trace_ends_at_an_unreachable_with_its_mark(
    tracelab: TraceLab, attribute: str, flag: str, unprivileged: bool
) -> None:
    host = getattr(tracelab, attribute)
    v6 = ":" in host
    done = tracelab.run([sys.executable, "-m", "trioping", "-T", "-n", "-W", "2", host], unprivileged=unprivileged)
    assert done.returncode == 1, done.stderr  # not reached
    lines = done.stdout.splitlines()[1:]
    routers = lab_hops(tracelab, v6)[:3]
    assert [line.split()[1] for line in lines] == list(routers)
    assert lines[-1].count(flag) == 3, lines[-1]
    try:
        real = traceroute(tracelab, host, v6)
    except Unavailable as exc:
        pytest.skip(f"not compared with traceroute: {exc}")
    assert [hop.address for hop in real] == list(routers)
    assert real[-1].mark == flag


def test_mtr_ending_at_an_unreachable_has_not_reached_the_target(tracelab: TraceLab) -> None:
    """An unreachable ends the path as the target's reply does, but is no answer from it:
    the report says not reached and ``--mtr`` exits 1, as ``-T`` does."""
    out = probe_in_lab(tracelab, {"mtr": {"host": tracelab.unreachable4, "count": 2, "interval": 0.05, "timeout": 2}})
    report = out["mtr"]
    assert [hop["ttl"] for hop in report["hops"]] == [1, 2, 3]
    assert report["reached"] is False
    argv = [sys.executable, "-m", "trioping", "--mtr", "-n", "-c", "2", "-i", "0.1", tracelab.unreachable4]
    done = tracelab.run(argv)
    assert done.returncode == 1, done.stdout + done.stderr


PENDING_ERROR_SEND = """
import sys, time
from trioping._packet import EchoTemplate, Family
from trioping._socket import IcmpSocket, SocketKind, SocketOptions

target = sys.argv[1]
family = Family.V6 if ":" in target else Family.V4
sock = IcmpSocket(family, SocketKind.DATAGRAM, 0, SocketOptions())
template = EchoTemplate(family, sock.identifier, b"TOKEN123", 56)
sock.send(template.build(1, time.time_ns())[0], target, 1, tx_timestamp=False)
time.sleep(0.3)  # r1's time-exceeded is in: the socket's error is pending, its entry unread
sock.send(template.build(2, time.time_ns())[0], target, None, tx_timestamp=False)
time.sleep(0.3)
reply = sock._sock.recv(2048)
print(reply[0], int.from_bytes(reply[6:8], "big"))
"""


@pytest.mark.parametrize("v6", FAMILIES)
def test_a_send_meeting_a_routers_pending_error_still_goes_out(tracelab: TraceLab, v6: bool) -> None:
    """Linux sets a datagram ICMP socket's error (sk_err) for every ICMP error it gets, and
    the next send reports that instead of sending (sock_alloc_send_pskb).  That send is not
    refused: made again, it goes out and its echo is answered."""
    target = tracelab.target6 if v6 else tracelab.target4
    done = tracelab.run([sys.executable, "-c", PENDING_ERROR_SEND, target], unprivileged=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["129" if v6 else "0", "2"]  # the echo reply to sequence 2


@pytest.mark.parametrize("unprivileged", PRIVILEGES)
def test_two_traces_and_a_ping_stream_at_once_from_one_pinger(tracelab: TraceLab, unprivileged: bool) -> None:
    spec = {
        "traces": [
            {"host": tracelab.target4, "timeout": 2},
            {"host": tracelab.unreachable4, "timeout": 2, "probes_per_hop": 2},
        ],
        "stream": {"host": tracelab.target4, "count": 10, "interval": 0.01, "timeout": 2},
    }
    out = probe_in_lab(tracelab, spec, unprivileged=unprivileged)
    to_target, to_unreachable = out["traces"]
    assert addresses(to_target) == [[hop] * 3 for hop in tracelab.hops4]
    assert addresses(to_unreachable) == [[hop] * 2 for hop in tracelab.hops4[:3]]
    assert [r["type"] for r in to_unreachable[-1]["results"]] == [3, 3]
    assert [(r["kind"], r["source"]) for r in out["stream"]] == [("reply", tracelab.target4)] * 10


def test_mtr_through_the_lab_counts_loss_at_a_silenced_hop(tracelab: TraceLab) -> None:
    spec = {"mtr": {"host": tracelab.target4, "count": 4, "interval": 0.05, "timeout": 0.5}}
    with tracelab.silence(1):
        out = probe_in_lab(tracelab, spec)
    report = out["mtr"]
    assert report["rounds"] == 4
    assert report["reached"] is True
    assert [(hop["ttl"], hop["sent"], hop["received"]) for hop in report["hops"]] == [
        (1, 4, 0),
        (2, 4, 4),
        (3, 4, 4),
        (4, 4, 4),
    ]
    assert [[host["address"] for host in hop["hosts"]] for hop in report["hops"]] == [
        [],
        [tracelab.hops4[1]],
        [tracelab.hops4[2]],
        [tracelab.hops4[3]],
    ]


GROWING_PATH_MTR = """
import json, sys, trio, trioping

async def main():
    host = sys.argv[1]
    async with trioping.open_pinger() as pinger, pinger.mtr(host, None, 0.05, timeout=0.5) as run:
        async for report in run:
            if report.reached:
                break
        print(json.dumps([hop.ttl for hop in report.hops]), flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)  # the address moves one router on
        with trio.move_on_after(10):
            async for report in run:
                if len(report.hops) > 2 and report.hops[-1].address == host:
                    break
        print(json.dumps([[h.address for h in hop.hosts] for hop in run.report.hops]), flush=True)

trio.run(main)
"""


def test_mtr_follows_a_path_that_grows(tracelab: TraceLab) -> None:
    """An address answered by r2 moves to r3 during a run: later rounds must look past the
    old end (mtr probes one TTL further than the last that answered)."""
    moving = "198.19.77.1"
    ip = shutil.which("ip") or "/usr/sbin/ip"

    def address(action: str, router: int) -> None:
        argv = [ip, "-n", tracelab.router(router), "addr", action, f"{moving}/32", "dev", "lo"]
        subprocess.run(argv, check=True, timeout=10)

    address("add", 2)
    process = subprocess.Popen(
        [ip, "netns", "exec", tracelab.client, sys.executable, "-c", GROWING_PATH_MTR, moving],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
        cwd="/",
    )
    moved = False
    try:
        assert process.stdout is not None
        assert process.stdin is not None
        first = process.stdout.readline()
        assert first, process.stderr.read() if process.stderr is not None else ""
        assert json.loads(first) == [1, 2]
        address("del", 2)
        address("add", 3)
        moved = True
        out, err = process.communicate("go\n", timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        address("del", 3 if moved else 2)
    assert process.returncode == 0, err
    hosts = json.loads(out)
    assert hosts[0] == [tracelab.hops4[0]]
    assert hosts[1][0] == moving  # first seen at hop 2; r2 answers there now
    assert tracelab.hops4[1] in hosts[1]
    assert hosts[2] == [moving]


def test_mtr_on_a_terminal_is_a_live_table_that_ctrl_c_leaves_on_screen() -> None:
    """Without -c on a terminal: the table is redrawn in place each round; SIGINT ends the
    run, the last table stays, and the exit status says the target answered."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "trioping", "--mtr", "-n", "-i", "0.05", "127.0.0.1"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(slave)
    screen = b""

    def read_for(seconds: float) -> bytes:
        got = b""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                got += chunk
        return got

    try:
        screen += read_for(1.0)
        process.send_signal(signal.SIGINT)
        status = process.wait(10)
        screen += read_for(0.3)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert status == 0
    text = screen.decode()
    assert text.count("HOST: ") >= 3  # redrawn
    assert "\x1b[1A" in text  # in place: the cursor goes back up
    last = text.rsplit("Start: ", 1)[1].splitlines()
    assert last[1].startswith("HOST: ")
    assert re.match(r"  1\.\|-- 127\.0\.0\.1 +0\.0%", last[2])


def test_mtr_names_loopback_as_mtr_does() -> None:
    """Without -n, as mtr: the row shows the address's name (loopback's only: tests look up
    no other)."""
    mtr = mtr_or_skip()
    done = cli("--mtr", "-c", "1", "-i", "0.1", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    real = subprocess.run([mtr, "-r", "-c", "1", "127.0.0.1"], capture_output=True, text=True, check=True)
    row = re.compile(r"\s*1\.\|-- (\S+)")
    ours = row.match(done.stdout.splitlines()[2])
    theirs = row.match(real.stdout.splitlines()[2])
    assert ours is not None
    assert theirs is not None
    assert ours.group(1) == theirs.group(1)


async def test_mtr_names_in_the_library() -> None:
    expected = socket.getnameinfo(("127.0.0.1", 0), socket.NI_NAMEREQD)[0]
    async with trioping.open_pinger() as pinger, pinger.mtr("127.0.0.1", 1, names=True) as run:
        async for _report in run:
            pass
        await run.wait_for_names(["127.0.0.1"], trio.current_time() + 5)
        assert run.name("127.0.0.1") == expected


def test_a_send_the_kernel_refuses_is_said_once_on_stderr(tracelab: TraceLab) -> None:
    """A route of type ``unreachable`` in the client's own namespace: the kernel refuses
    every probe (nothing leaves); traceroute's ``*`` for each, the reason once."""
    refused = "198.19.79.1"
    route = ["ip", "netns", "exec", tracelab.client, "ip", "route"]
    subprocess.run([*route, "add", "unreachable", "198.19.79.0/24"], check=True, timeout=10)
    try:
        done = tracelab.run([sys.executable, "-m", "trioping", "-T", "-n", "-m", "2", refused])
    finally:
        subprocess.run([*route, "del", "unreachable", "198.19.79.0/24"], check=True, timeout=10)
    assert done.returncode == 1
    assert done.stdout.splitlines()[1:] == [" 1  * * *", " 2  * * *"]
    assert done.stderr == "trioping: sendmsg: No route to host\n"


def test_a_trace_stops_at_max_hops_short_of_the_target(tracelab: TraceLab) -> None:
    out = probe_in_lab(tracelab, {"traces": [{"host": tracelab.target4, "max_hops": 2, "timeout": 2}]})
    [trace] = out["traces"]
    assert addresses(trace) == [[hop] * 3 for hop in tracelab.hops4[:2]]
    done = tracelab.run([sys.executable, "-m", "trioping", "-T", "-n", "-m", "2", "--first-hop", "2", tracelab.target4])
    assert done.returncode == 1  # not reached
    assert done.stdout.splitlines()[0].endswith(", 2 hops max, 84 byte packets")
    assert [line.split()[:2] for line in done.stdout.splitlines()[1:]] == [["2", tracelab.hops4[1]]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=50))
def test_running_figures_are_the_batch_figures(rtts: list[float]) -> None:
    """Welford's running mean and deviation equal the batch ones (mtr's sample stddev)."""
    running = _Running()
    for rtt in rtts:
        running.add(rtt)
    assert running.count == len(rtts)
    assert running.last == rtts[-1]
    assert (running.best, running.worst) == (min(rtts), max(rtts))
    assert running.mean == pytest.approx(statistics.fmean(rtts), rel=1e-9)
    expected = statistics.stdev(rtts) if len(rtts) > 1 else 0.0
    assert running.stddev == pytest.approx(expected, rel=1e-6, abs=1e-9)
