"""``trioping HOST1 HOST2 ...`` / ``-f`` / ``-g``: fping's output shapes and exit codes."""

from __future__ import annotations

import functools
import io
import re
from pathlib import Path

import pytest

from trioping._cli_fanout import (
    FanoutOptions,
    generate_targets,
    read_targets,
    run_fanout,
    summary_lines,
)
from trioping._errors import TriopingError
from trioping._fping_words import fping_ms
from trioping._stats import PingStats, StatsAccumulator

from .conftest import requires_raw
from .conftest import run_cli as shared_run_cli
from .netlab import NetLab

PROBE_LINE = re.compile(r"^(\S+) +: \[(\d+)\], 64 bytes, (\d+\.\d+) ms \((\d+\.\d+) avg, 0% loss\)$")
SUMMARY_LINE = re.compile(r"^(\S+) +: xmt/rcv/%loss = (\d+)/(\d+)/(\d+)%(?:, min/avg/max = [\d.]+/[\d.]+/[\d.]+)?$")


run_cli = functools.partial(shared_run_cli, timeout=60)


@requires_raw
def test_plain_mode_prints_is_alive_per_host() -> None:
    done = run_cli("127.0.0.1", "127.0.0.2", "localhost", "--rate", "0")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["127.0.0.1 is alive", "127.0.0.2 is alive", "localhost is alive"]
    assert done.stderr == ""


@requires_raw
def test_a_name_that_does_not_resolve_exits_2_and_the_rest_is_pinged() -> None:
    done = run_cli("127.0.0.1", "nonexistent.invalid", "127.0.0.2")
    assert done.returncode == 2
    assert sorted(done.stdout.splitlines()) == ["127.0.0.1 is alive", "127.0.0.2 is alive"]
    assert done.stderr == "nonexistent.invalid: Name or service not known\n"


@requires_raw
def test_count_mode_prints_probes_padded_and_summaries_on_stderr() -> None:
    done = run_cli("-c", "2", "-i", "0.05", "127.0.0.1", "127.0.0.22", "--rate", "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    matches = [PROBE_LINE.match(line) for line in lines]
    assert all(matches), lines
    assert {(m.group(1), m.group(2)) for m in matches if m} == {
        ("127.0.0.1", "0"),
        ("127.0.0.1", "1"),
        ("127.0.0.22", "0"),
        ("127.0.0.22", "1"),
    }
    assert all(line.startswith(("127.0.0.1  : ", "127.0.0.22 : ")) for line in lines)
    errors = done.stderr.splitlines()
    assert errors[0] == ""
    assert [SUMMARY_LINE.match(line).group(1, 2, 3, 4) for line in errors[1:]] == [  # type: ignore[union-attr]
        ("127.0.0.1", "2", "2", "0"),
        ("127.0.0.22", "2", "2", "0"),
    ]
    assert errors[1].startswith("127.0.0.1  : xmt/rcv/%loss = 2/2/0%, min/avg/max = ")


@requires_raw
def test_quiet_count_mode_prints_only_the_summaries() -> None:
    done = run_cli("-q", "-c", "1", "127.0.0.1", "127.0.0.2", "--rate", "0")
    assert done.returncode == 0
    assert done.stdout == ""
    assert [line.split(" :")[0] for line in done.stderr.splitlines()] == ["127.0.0.1", "127.0.0.2"]


@requires_raw
def test_alive_unreachable_and_exit_1(netlab: NetLab) -> None:
    hosts = ("127.0.0.1", netlab.silent_v4, netlab.unreachable_v4, "127.0.0.2")
    plain = run_cli(*hosts, "-W", "0.3")
    assert plain.returncode == 1
    assert sorted(plain.stdout.splitlines()) == sorted(
        [
            "127.0.0.1 is alive",
            "127.0.0.2 is alive",
            f"{netlab.silent_v4} is unreachable",
            f"{netlab.unreachable_v4} is unreachable",
        ]
    )
    assert plain.stderr == (
        f"ICMP Host Unreachable from {netlab.router_v4} for ICMP Echo sent to {netlab.unreachable_v4}\n"
    )
    alive = run_cli("-a", *hosts, "-W", "0.3")
    assert (alive.returncode, sorted(alive.stdout.splitlines())) == (1, ["127.0.0.1", "127.0.0.2"])
    unreachable = run_cli("-u", "-q", *hosts, "-W", "0.3")
    assert unreachable.returncode == 1
    assert sorted(unreachable.stdout.splitlines()) == sorted([netlab.silent_v4, netlab.unreachable_v4])
    assert unreachable.stderr == ""
    counted = run_cli("-c", "1", "-q", *hosts, "-W", "0.3")
    assert counted.returncode == 1
    assert counted.stdout == ""
    assert f"{netlab.silent_v4} : xmt/rcv/%loss = 1/0/100%" in counted.stderr.splitlines()
    assert "127.0.0.1  : xmt/rcv/%loss = 1/1/0%, min/avg/max = " in counted.stderr


@requires_raw
def test_a_timed_out_probe_line_says_nan(netlab: NetLab) -> None:
    done = run_cli("-c", "1", netlab.silent_v4, "127.0.0.1", "-W", "0.2")
    assert done.returncode == 1
    assert f"{netlab.silent_v4} : [0], timed out (NaN avg, 100% loss)" in done.stdout.splitlines()
    assert f"{netlab.silent_v4} : xmt/rcv/%loss = 1/0/100%" in done.stderr.splitlines()


@requires_raw
def test_targets_from_a_file_and_from_stdin(tmp_path: Path) -> None:
    listing = "# loopback\n127.0.0.1\n\n  127.0.0.2   trailing words\n127.0.0.3\n"
    path = tmp_path / "hosts.txt"
    path.write_text(listing)
    from_file = run_cli("-f", str(path), "--rate", "0")
    assert from_file.returncode == 0, from_file.stderr
    assert sorted(from_file.stdout.splitlines()) == [f"127.0.0.{i} is alive" for i in (1, 2, 3)]
    from_stdin = run_cli("-f", "-", "-a", stdin=listing)
    assert from_stdin.returncode == 0
    assert sorted(from_stdin.stdout.splitlines()) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    missing = run_cli("-f", str(tmp_path / "absent.txt"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


@requires_raw
def test_generate_a_prefix_and_refuse_a_huge_one() -> None:
    done = run_cli("-g", "127.0.0.0/30", "--rate", "0")
    assert done.returncode == 0
    assert sorted(done.stdout.splitlines()) == ["127.0.0.1 is alive", "127.0.0.2 is alive"]
    refused = run_cli("-g", "127.0.0.0/8")  # refused before anything is sent
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "generates 16777214 addresses" in refused.stderr
    assert "--max-targets" in refused.stderr
    allowed = run_cli("-g", "127.0.3.0/29", "--max-targets", "6", "-a", "--rate", "0")
    assert (allowed.returncode, len(allowed.stdout.splitlines())) == (0, 6)


def test_usage_errors_exit_2() -> None:
    assert run_cli("-f", "/dev/null").returncode == 2
    assert run_cli("-g", "not-a-prefix").returncode == 2
    assert run_cli("127.0.0.1", "127.0.0.2", "--rate", "-5").returncode == 2
    assert run_cli("127.0.0.1", "127.0.0.2", "--json").returncode == 2


def test_generated_targets_follow_fping() -> None:
    assert generate_targets("127.0.0.0/30", 10) == ["127.0.0.1", "127.0.0.2"]
    assert generate_targets("127.0.0.2/31", 10) == ["127.0.0.2", "127.0.0.3"]
    assert generate_targets("127.0.0.7/32", 10) == ["127.0.0.7"]
    assert generate_targets("127.0.0.250-127.0.1.1", 10) == [
        "127.0.0.250",
        "127.0.0.251",
        "127.0.0.252",
        "127.0.0.253",
        "127.0.0.254",
        "127.0.0.255",
        "127.0.1.0",
        "127.0.1.1",
    ]
    assert generate_targets("2001:db8::/126", 10) == ["2001:db8::1", "2001:db8::2", "2001:db8::3"]
    with pytest.raises(TriopingError, match="more than the limit of 100"):
        generate_targets("127.0.0.0/24", 100)
    assert read_targets("a b\n#c\n\n  d\n \t \n  #e f\nx#y z\r\n\x0c g") == ["a", "d", "x#y", "g"]


def test_milliseconds_as_fping_prints_them() -> None:
    assert [fping_ms(s) for s in (0.00005, 0.0012345, 0.012345, 0.12345, 1.5)] == [
        "0.050",
        "1.23",
        "12.3",
        "123",
        "1500",
    ]


def test_summary_lines_as_fping_prints_them() -> None:
    def stats(host: str, transmitted: int, rtts: tuple[float, ...]) -> PingStats:
        accumulator = StatsAccumulator(host, host)
        accumulator.transmitted = transmitted
        for rtt in rtts:
            accumulator.add_rtt(rtt)
        return accumulator.snapshot()

    statistics = [
        stats("127.0.0.1", 1, (0.00005,)),
        stats("198.18.5.2", 2, ()),
        stats("localhost", 3, (0.003, 0.001)),
        stats("nothing", 0, ()),
        stats("slow", 1, (0.0123,)),
    ]
    assert summary_lines(statistics, 10) == [
        "127.0.0.1  : xmt/rcv/%loss = 1/1/0%, min/avg/max = 0.050/0.050/0.050",
        "198.18.5.2 : xmt/rcv/%loss = 2/0/100%",
        "localhost  : xmt/rcv/%loss = 3/2/33%, min/avg/max = 1.00/2.00/3.00",
        "nothing    : xmt/rcv/%loss = 0/0/0%",
        "slow       : xmt/rcv/%loss = 1/1/0%, min/avg/max = 12.3/12.3/12.3",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@requires_raw
async def test_progress_on_a_terminal_never_reaches_stdout() -> None:
    out, err = io.StringIO(), _Terminal()
    hosts = [f"127.0.4.{i}" for i in range(1, 31)]
    options = FanoutOptions(hosts=hosts, rate=100.0, alive=True)
    status = await run_fanout(options, out, err, progress_delay=0.0)
    assert status == 0
    assert sorted(out.getvalue().splitlines()) == sorted(hosts)
    assert "\r" not in out.getvalue()
    shown = err.getvalue()
    assert re.search(r"\rtrioping: \d+ hosts, \d+ sent, \d+ received, \d+ outstanding\x1b\[K", shown)
    assert shown.endswith("\r\x1b[K")  # erased at the end


@requires_raw
async def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    options = FanoutOptions(hosts=["127.0.0.1", "127.0.0.2"], rate=None)
    assert await run_fanout(options, out, err, progress_delay=0.0) == 0
    assert err.getvalue() == ""
