"""``trioping-fping``: fping 5.1's options, output and exit codes, with fping as the oracle.

The option table is tested through the parser (no sockets).  Output is compared with the real
fping on the same targets (loopback, and the lab's silent host, unreachable route and
scripted responder), numbers masked; those tests skip where fping is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest

from trioping._fping import main, read_target_lines
from trioping._fping_options import (
    OPTION_TABLE,
    FpingExit,
    FpingOptions,
    atoi,
    generate,
    parse_args,
    scan_c_int,
    scan_float,
    usage,
)

from .conftest import REPO, default_sigint, requires_raw
from .netlab import NetLab, ResponderFactory

FPING = shutil.which("fping")
requires_fping = pytest.mark.skipif(FPING is None, reason="fping is not installed (apt-get install fping)")

_NUMBER = re.compile(r"(?<![\d.])\d+\.\d+(?:e[+-]\d+)?(?![\d.])")  # not an address
_CLOCK = re.compile(r"^\[\d\d:\d\d:\d\d\]$", re.MULTILINE)
_PROG = re.compile(r"^(fping|trioping-fping):", re.MULTILINE)


def mask(text: str) -> str:
    """Times vary from run to run; counts, indexes, names and layout must not."""
    return _PROG.sub("PROG:", _CLOCK.sub("[T]", _NUMBER.sub("N", text)))


def run_fping(*args: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m trioping.fping ARGS`` from the repository (so its code is what runs)."""
    return subprocess.run(
        [sys.executable, "-m", "trioping.fping", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def run_real(*args: str, stdin: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    assert FPING is not None
    return subprocess.run([FPING, *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def assert_same(args: Sequence[str], *, sort: bool = False) -> subprocess.CompletedProcess[str]:
    """Run fping and trioping-fping with *args*; the same exit code and masked output."""
    real = run_real(*args)
    ours = run_fping(*args)
    assert ours.returncode == real.returncode, (real, ours)
    want_out, got_out = mask(real.stdout), mask(ours.stdout)
    if sort:  # lines whose order depends on which reply comes first
        want_out, got_out = "\n".join(sorted(want_out.splitlines())), "\n".join(sorted(got_out.splitlines()))
    assert got_out == want_out, (real.stdout, ours.stdout)
    assert mask(ours.stderr) == mask(real.stderr), (real.stderr, ours.stderr)
    return ours


# -- the parser --------------------------------------------------------------------------


SAMPLE_VALUES = {
    "b": "64",
    "B": "2",
    "c": "3",
    "C": "3",
    "f": "targets.txt",
    "H": "9",
    "i": "5",
    "I": "lo",
    "O": "0x10",
    "p": "250",
    "Q": "2",
    "r": "1",
    "S": "127.0.0.1",
    "t": "75",
    "T": "1",
    "x": "1",
}


def _option_ids() -> list[str]:
    return [f"-{short}" if short else f"--{long}" for short, long, _takes in OPTION_TABLE]


@pytest.mark.parametrize(("short", "long", "takes"), OPTION_TABLE, ids=_option_ids())
def test_every_option_parses_in_each_of_its_forms(short: str, long: str | None, takes: bool) -> None:
    if short in ("h", "v"):
        with pytest.raises(FpingExit) as info:
            parse_args([f"-{short}", "127.0.0.1"], "9.9")
        assert info.value.status == 0
        assert info.value.stdout
        return
    forms: list[list[str]] = []
    if takes:
        value = SAMPLE_VALUES[short]
        forms += [[f"-{short}", value], [f"-{short}{value}"]]
        if long:
            forms += [[f"--{long}={value}"], [f"--{long}", value]]
    else:
        forms += [[f"-{short}"]] if short else []
        forms += [[f"--{long}"]] if long else []
    targets = {"f": [], "g": ["127.0.0.0/30"]}.get(short, ["127.0.0.1"])
    results = [parse_args([*form, *targets], "9.9") for form in forms]
    assert all(result == results[0] for result in results), forms
    if short != "T":  # fping ignores -T
        assert results[0] != FpingOptions(targets=targets)


def test_option_values_land_in_fping_units() -> None:
    opts = parse_args(["-C3", "-qp", "250", "--timeout=75", "-B", "2", "-r1", "-H9", "-O0x10", "-i0", "127.0.0.1"], "v")
    assert (opts.count, opts.report_all, opts.quiet, opts.period_ms) == (3, True, True, 250.0)
    assert (opts.timeout_ms, opts.timeout_set, opts.backoff, opts.retry) == (75.0, True, 2.0, 1)
    assert (opts.ttl, opts.tos, opts.interval_ms, opts.targets) == (9, 16, 0.0, ["127.0.0.1"])


def test_bundled_flags_and_options_after_targets() -> None:
    opts = parse_args(["127.0.0.1", "-ae", "::1", "-s", "--", "-x"], "v")
    assert (opts.alive, opts.elapsed, opts.stats) == (True, True, True)
    assert opts.targets == ["127.0.0.1", "::1", "-x"]


def test_default_timeout_follows_fping_in_each_mode() -> None:
    assert parse_args(["h"], "v").timeout_s == 0.5
    assert parse_args(["-c1", "h"], "v").timeout_s == 1.0
    assert parse_args(["-c1", "-p", "5000", "h"], "v").timeout_s == 2.0
    assert parse_args(["-l", "-p", "200", "h"], "v").timeout_s == 0.2
    assert parse_args(["-c1", "-t", "30", "h"], "v").timeout_s == 0.03


def test_numbers_are_read_as_c_reads_them() -> None:
    assert (scan_float("1e3"), scan_float("10abc"), scan_float("abc"), scan_float(" .5")) == (1000.0, 10.0, None, 0.5)
    assert (atoi("3x"), atoi("x3"), atoi("-1")) == (3, 0, -1)
    assert (scan_c_int("0x1f"), scan_c_int("010"), scan_c_int("0"), scan_c_int("z")) == (31, 8, 0, None)
    assert parse_args(["-c", "2x", "h"], "v").count == 2


def test_generate_follows_fping() -> None:
    assert generate(["127.0.0.0/30"]) == ["127.0.0.1", "127.0.0.2"]
    assert generate(["127.0.0.8/31"]) == ["127.0.0.8", "127.0.0.9"]
    assert generate(["127.0.0.1", "127.0.0.3"]) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    with pytest.raises(FpingExit, match="the range is empty"):
        generate(["127.0.0.3", "127.0.0.1"])
    assert len(generate(["127.0.0.0", "127.1.134.160"])) == 100_001


def test_target_files_take_the_first_word_of_each_line() -> None:
    assert read_target_lines("a\nb\n") == ["a", "b"]
    assert read_target_lines("# c\n\n  a x\n\tb\n#d e\n") == ["a", "b"]


def test_help_names_every_option_and_says_what_is_left_out() -> None:
    text = usage()
    for short, long, _takes in OPTION_TABLE:
        if short and short != "T":
            assert f"-{short}, --{long}" in text
    assert "not supported" not in text


# -- bad input ---------------------------------------------------------------------------

BAD_COMMAND_LINES: list[tuple[list[str], int]] = [
    (["-C", "0", "127.0.0.1"], 1),
    (["-c", "abc", "127.0.0.1"], 1),
    (["-p", "-1", "127.0.0.1"], 1),
    (["-i", "abc", "127.0.0.1"], 1),
    (["-b", "70000", "127.0.0.1"], 1),
    (["-b", "-1", "127.0.0.1"], 1),
    (["-t", "abc", "127.0.0.1"], 1),
    (["-H", "256", "127.0.0.1"], 1),
    (["-H", "0", "127.0.0.1"], 1),
    (["-H", "-1", "127.0.0.1"], 1),
    (["-B", "10", "127.0.0.1"], 1),
    (["-B", "0", "127.0.0.1"], 1),
    (["-r", "abc", "127.0.0.1"], 1),
    (["-x", "0", "127.0.0.1"], 1),
    (["-Q", "-1", "127.0.0.1"], 1),
    (["-O", "zz", "127.0.0.1"], 1),
    (["-S", "nonsense", "127.0.0.1"], 1),
    (["-I", "nosuch0", "127.0.0.1"], 1),
    (["--bogus", "127.0.0.1"], 1),
    (["-z", "127.0.0.1"], 1),
    (["--quiet=3", "127.0.0.1"], 1),
    (["-c"], 1),
    (["-4", "-6", "127.0.0.1"], 1),
    (["-n", "-d", "127.0.0.1"], 1),
    (["-a", "-u", "127.0.0.1"], 1),
    (["-c", "1", "-l", "127.0.0.1"], 1),
    (["-g", "127.0.0.1", "127.2.0.0"], 1),
    (["-g", "127.0.0.1/33"], 1),
    (["-g", "127.0.0.3", "127.0.0.1"], 1),
    (["-g", "foo/24"], 1),
    (["-g", "::1/120"], 1),
    (["-g", "127.0.0.1"], 1),
    (["-g"], 1),
    (["-g", "127.0.0.1", "127.0.0.2", "127.0.0.3"], 1),
    (["-f", "/nonexistent/targets", "-q"], 4),
    (["-f", "/dev/null", "127.0.0.1"], 1),
    (["-c", "-1", "127.0.0.1"], 4),
    (["-t", "-1", "127.0.0.1"], 1),
    (["-i", "-1", "127.0.0.1"], 1),
    (["-p", "abc", "127.0.0.1"], 1),
    (["-Q", "abc", "127.0.0.1"], 1),
    (["-b", "abc", "127.0.0.1"], 1),
    (["-x", "abc", "127.0.0.1"], 1),
    (["--count", "0", "127.0.0.1"], 1),
    (["--vcount=x", "127.0.0.1"], 1),
    (["--period"], 1),
]


@pytest.mark.parametrize(("args", "status"), BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES])
def test_bad_input_is_one_line_and_fpings_exit_code(
    args: list[str], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == status
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("trioping-fping: "), err


@pytest.mark.parametrize("args", [["-C", "0", "127.0.0.1"], ["-g", "foo/24"], ["-f", "/nonexistent/targets"]])
def test_bad_input_as_a_process_has_no_traceback(args: list[str]) -> None:
    done = run_fping(*args)
    assert done.returncode in (1, 4)
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


@requires_fping
@pytest.mark.parametrize(("args", "status"), BAD_COMMAND_LINES, ids=[" ".join(a) for a, _ in BAD_COMMAND_LINES])
def test_bad_input_exit_codes_are_the_fping_binarys(args: list[str], status: int) -> None:
    assert run_real(*args).returncode == status


def test_a_cidr_prefix_too_large_is_refused_in_one_line() -> None:
    done = run_fping("-g", "127.0.0.0/8")
    assert done.returncode == 1
    assert done.stderr == "trioping-fping: -g 127.0.0.0/8 generates 16777214 addresses, more than 1048576\n"


def test_version_and_help() -> None:
    done = run_fping("-v")
    assert (done.returncode, done.stderr) == (0, "")
    assert re.fullmatch(r"trioping-fping: Version 5\.1 \(trioping \d+\.\d+\.\d+\)\n", done.stdout)
    done = run_fping("-h")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: trioping-fping [options] [targets...]\n")


def test_no_target_that_resolves_exits_2() -> None:
    done = run_fping("-6", "127.0.0.1")
    assert done.returncode == 2
    assert done.stderr == "127.0.0.1: Address family for hostname not supported\n"


# -- against fping, on loopback ----------------------------------------------------------

# Periods (and so timeouts) of 100 ms: a busy machine can stall a process for 20 ms.
LOOPBACK_COMMAND_LINES = [
    ["127.0.0.1", "127.0.0.2", "::1"],
    ["-c3", "-p100", "127.0.0.1", "::1"],
    ["-C3", "-p100", "127.0.0.1", "::1"],
    ["-C", "3", "-q", "-p", "100", "127.0.0.1", "127.0.0.2"],
    ["--vcount=2", "--period=100", "-q", "127.0.0.1"],
    ["-a", "127.0.0.1", "::1"],
    ["-u", "127.0.0.1"],
    ["-e", "127.0.0.1"],
    ["-s", "127.0.0.1", "::1"],
    ["-c2", "-p100", "-s", "-o", "127.0.0.1"],
    ["-q", "127.0.0.1"],
    ["-c2", "-q", "-p100", "127.0.0.1", "127.0.0.10"],
    ["-c2", "-a", "-p100", "127.0.0.1"],
    ["-x", "1", "127.0.0.1"],
    ["-x", "3", "127.0.0.1", "127.0.0.2"],
    ["-A", "-d", "127.0.0.1"],
    ["-n", "127.0.0.1"],
    ["-A", "localhost"],
    ["-6", "127.0.0.1", "::1"],
    ["-4", "::1", "127.0.0.1"],
    ["-g", "127.0.0.0/30"],
    ["-g", "127.0.0.1", "127.0.0.4", "-q", "-s"],
    ["-c", "3", "-p", "100", "-Q", "0.15", "127.0.0.1"],  # a report between the 2nd and 3rd probes
    ["-c1", "-D", "127.0.0.1"],
    ["-c1", "-b", "0", "127.0.0.1"],
    ["-c1", "-b", "1000", "-H", "5", "-O", "16", "-M", "-S", "127.0.0.1", "-I", "lo", "127.0.0.1"],
    ["-c2", "-p", "0", "-q", "127.0.0.1"],
    ["-S", "127.0.0.1", "127.0.0.1", "::1"],  # -S binds its own family only
    ["-S", "::1", "-c2", "-p", "100", "127.0.0.1", "::1"],
]


@requires_raw
@requires_fping
@pytest.mark.parametrize("args", LOOPBACK_COMMAND_LINES, ids=[" ".join(a) for a in LOOPBACK_COMMAND_LINES])
def test_loopback_output_is_fpings(args: list[str]) -> None:
    # Lines whose order depends on which reply comes first: in default mode, and with -S
    # and both families (two pingers, whose sends interleave as the scheduler runs them).
    counting = any(a.startswith(("-c", "-C", "--vcount")) for a in args)
    assert_same(args, sort=not counting or "-S" in args)


@requires_raw
@requires_fping
def test_targets_from_a_file_and_from_stdin(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "targets")
    with open(path, "w") as handle:
        handle.write("# loopback\n127.0.0.1\n\n127.0.0.2 second\n")
    assert_same(["-f", path, "-c1", "-q"])
    done = run_fping("-c1", "-q", stdin="127.0.0.3\n")
    assert done.returncode == 0
    assert mask(done.stderr) == "127.0.0.3 : xmt/rcv/%loss = 1/1/0%, min/avg/max = N/N/N\n"


@requires_raw
def test_timestamps_are_unix_seconds() -> None:
    before = time.time()
    done = run_fping("-c1", "-D", "127.0.0.1")
    stamp = float(done.stdout.split("]")[0].lstrip("["))
    assert before <= stamp <= time.time()


@requires_raw
def test_more_targets_than_fping_can_ping() -> None:
    """fping 5.1 stops at 65,535 targets ("not enough sequence numbers"); trioping does not."""
    targets = "".join(f"127.{4 + (n >> 16)}.{(n >> 8) & 255}.{n & 255}\n" for n in range(70_000))
    done = run_fping("-c1", "-t500", "-i0", "-q", stdin=targets, timeout=60)
    lines = done.stderr.splitlines()
    assert len(lines) == 70_000, done.stderr[-500:]
    assert all(" : xmt/rcv/%loss = 1/" in line for line in lines)
    # Every target is alive; a few replies may be dropped by a kernel busy with other tests.
    assert done.stderr.count(" = 1/1/0%") > 69_000
    assert done.returncode in (0, 1)


@requires_raw
def test_loop_mode_stops_on_ctrl_c_with_its_summary() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "trioping.fping", "-l", "-p", "20", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=default_sigint,
    )
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert re.match(r"127\.0\.0\.1 : \[0\], 64 bytes", out)
    assert re.fullmatch(r"\n127\.0\.0\.1 : xmt/rcv/%loss = (\d+)/\1/0%, min/avg/max = [\d./]+\n", err), err


def _interrupted(argv: list[str], seconds: float) -> tuple[str, str]:
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, preexec_fn=default_sigint
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    return out, err


@requires_raw
@requires_fping
def test_netdata_output_is_fpings() -> None:
    """One report (at 1 s; ours starts a little later, and still reports before 1.6 s)."""
    args = ["-N", "-l", "-Q", "1", "-p", "200", "127.0.0.1", "::1"]
    assert FPING is not None
    real = _interrupted([FPING, *args], 1.6)
    ours = _interrupted([sys.executable, "-m", "trioping.fping", *args], 1.6)
    counts = re.compile(r"(= |/)\d+")
    assert [counts.sub(r"\1N", mask(text)) for text in ours] == [counts.sub(r"\1N", mask(text)) for text in real]
    assert ours[0].count("CHART ") == 6
    assert ours[0].count("BEGIN ") == 6


@requires_raw
def test_json_lines_carry_what_fping_cannot_say() -> None:
    done = run_fping("--json", "-c2", "-p", "10", "127.0.0.1", "::1")
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    replies = [obj for obj in objects if obj["type"] == "reply"]
    summaries = [obj for obj in objects if obj["type"] == "summary"]
    assert len(replies) == 4
    assert all(obj["clock"] in ("kernel", "kernel-rx", "monotonic") for obj in replies)
    assert [(obj["host"], obj["transmitted"], obj["received"]) for obj in summaries] == [
        ("127.0.0.1", 2, 2),
        ("::1", 2, 2),
    ]
    assert [obj["index"] for obj in replies if obj["host"] == "::1"] == [0, 1]
    done = run_fping("--json", "-6", "127.0.0.1", "::1")
    assert (done.returncode, done.stderr) == (2, "")
    first = json.loads(done.stdout.splitlines()[0])
    assert first["type"] == "warning"
    assert first["message"] == "127.0.0.1: Address family for hostname not supported"


# -- against fping, in the lab -----------------------------------------------------------


@requires_fping
@pytest.mark.netlab
def test_silent_host_is_unreachable_after_fpings_retries(netlab: NetLab) -> None:
    assert_same(["-t", "50", "-r", "2", netlab.silent_v4, "127.0.0.1", netlab.silent_v6], sort=True)
    assert_same(["-t", "50", "-r", "1", "-s", "-u", netlab.silent_v4, "127.0.0.1"])


@requires_fping
@pytest.mark.netlab
def test_silent_host_in_count_modes(netlab: NetLab) -> None:
    assert_same(["-c2", "-p", "100", netlab.silent_v4, "127.0.0.1"])
    assert_same(["-C2", "-q", "-p", "100", netlab.silent_v4, "127.0.0.1"])
    assert_same(["-c2", "-q", "-o", "-p", "100", netlab.silent_v4])


@requires_fping
@pytest.mark.netlab
def test_icmp_errors_on_stderr(netlab: NetLab, responder: ResponderFactory) -> None:
    """The errors come from the scripted responder: the router's own (for its unreachable
    route) are rate-limited by the kernel (net.ipv4.route.error_cost), so how many arrive
    depends on what ran before."""
    target = netlab.responder_v4
    for args, sort in [
        (["-t", "100", "-r", "1", target], False),
        (["-t", "100", "-r", "1", "-s", target], False),
        (["-c2", "-p", "100", "-t", "60", "-s", target, "127.0.0.1"], False),
        (["-c2", "-p", "50", "-q", target], False),
        (["-C2", "-p", "50", "-q", target], False),
    ]:
        responder(["unreachable"])
        real = run_real(*args)
        responder(["unreachable"])
        ours = run_fping(*args)
        assert ours.returncode == real.returncode == 1
        order = sorted if sort else list
        assert order(mask(ours.stdout).splitlines()) == order(mask(real.stdout).splitlines()), (real, ours)
        assert mask(ours.stderr) == mask(real.stderr), (args, real.stderr, ours.stderr)
    assert ours.stderr == f"{target} : - -\n"
    responder(["unreachable"])
    ours = run_fping("-t", "100", "-r", "1", target)
    assert ours.stderr.splitlines() == [f"ICMP Host Unreachable from {target} for ICMP Echo sent to {target}"] * 2
    # fping 5.1 does not recognise ICMPv6 errors: no line, the target is unreachable.
    responder(["unreachable"])
    assert_same(["-c1", "-t", "100", netlab.responder_v6])
    assert_same(["-c1", "-q", netlab.unreachable_v4])


@requires_fping
@pytest.mark.netlab
def test_time_exceeded_from_the_router(netlab: NetLab) -> None:
    ours = assert_same(["-H", "1", "-t", "100", "-r", "1", netlab.live_host_v4])
    line = f"ICMP Time Exceeded from {netlab.router_v4} for ICMP Echo sent to {netlab.live_host_v4}"
    assert ours.stderr.splitlines() == [line] * 2
    assert_same(["-H", "1", "-c", "2", "-p", "100", "-t", "60", netlab.live_host_v4])
    assert_same(["-H", "2", "-c", "1", "-q", netlab.live_host_v4])


@requires_fping
@pytest.mark.netlab
def test_responder_drops_and_duplicates(netlab: NetLab, responder: ResponderFactory) -> None:
    target = netlab.responder_v4
    for plan, args in [
        (["drop", "ok"], ["-t", "100", target]),  # one lost probe does not make it unreachable
        (["drop", "drop", "drop", "drop"], ["-t", "50", "-B", "1", target]),
        # -t below -p: a timeout and the next reply do not race for the same instant
        (["ok", "drop", "ok"], ["-C3", "-q", "-p", "100", "-t", "60", target]),
        (["ok", "drop", "ok"], ["-c3", "-p", "100", "-t", "60", target]),
        # fping prints a duplicate while it runs: the silent host keeps both runs going
        (["duplicate"], ["-r", "0", "-t", "100", target, netlab.silent_v4]),
        (["duplicate"], ["-c2", "-q", "-p", "100", "-t", "60", target, netlab.silent_v4]),
        (["duplicate"], ["-c2", "-p", "100", "-t", "60", target]),  # no duplicate lines in this mode
        # a reply from another of the host's addresses: " [<- address]" on stderr, no line end
        (["other_source"], ["-c2", "-p", "100", "-t", "60", target]),
        (["other_source"], ["-t", "100", target]),
    ]:
        responder(plan)
        real = run_real(*args)
        responder(plan)
        ours = run_fping(*args)
        assert (ours.returncode, mask(ours.stdout)) == (real.returncode, mask(real.stdout)), (plan, real, ours)
        assert mask(ours.stderr) == mask(real.stderr), (plan, real.stderr, ours.stderr)
    responder(["duplicate"])
    ours = run_fping("-c2", "-q", "-p", "100", "-t", "60", target, netlab.silent_v4)
    assert ours.stderr.startswith(f"{target} : duplicate for [0], 64 bytes, ")


@pytest.mark.netlab
def test_corrupt_replies_do_not_count_but_show_in_json(netlab: NetLab, responder: ResponderFactory) -> None:
    responder(["bad_checksum"])
    done = run_fping("-c1", "-t", "200", "-q", netlab.responder_v4)
    assert done.returncode == 1
    assert done.stderr == f"{netlab.responder_v4} : xmt/rcv/%loss = 1/0/100%\n"
    responder(["bad_checksum"])
    done = run_fping("--json", "-c1", "-t", "200", netlab.responder_v4)
    kinds = [json.loads(line)["type"] for line in done.stdout.splitlines()]
    assert {"invalid", "summary"} <= set(kinds)


def test_the_library_never_imports_the_command() -> None:
    code = "import sys, trioping; print([m for m in sys.modules if 'fping' in m])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout == "[]\n"
