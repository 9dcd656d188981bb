"""The ``trioping`` command, run as users run it: a subprocess on real sockets."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from .conftest import REPO, default_sigint, requires_raw, run_cli

REPLY_V4 = re.compile(r"^64 bytes from 127\.0\.0\.1: icmp_seq=(\d+) ttl=64 time=\d+\.\d+ ms$")
SUMMARY = re.compile(
    r"^(\d+) packets transmitted, (\d+) received(?:, \+\d+ \w+)*, ([\d.]+)% packet loss, time (\d+)ms$"
)
RTT = re.compile(r"^rtt min/avg/max/mdev = \d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3}/\d+\.\d{3} ms$")


@requires_raw
def test_ping_output_has_iputils_shape() -> None:
    done = run_cli("127.0.0.1", "-c", "3", "-i", "0.05")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data."
    assert [REPLY_V4.match(line).group(1) for line in lines[1:4]] == ["1", "2", "3"]  # type: ignore[union-attr]
    assert lines[4] == ""
    assert lines[5] == "--- 127.0.0.1 ping statistics ---"
    summary = SUMMARY.match(lines[6])
    assert summary is not None
    assert summary.group(1, 2, 3) == ("3", "3", "0")
    assert 90 <= int(summary.group(4)) < 2000
    assert RTT.match(lines[7])
    assert len(lines) == 8
    assert done.stderr == ""


@requires_raw
def test_ipv6_header_and_name_display() -> None:
    v6 = run_cli("::1", "-c", "1")
    assert v6.returncode == 0, v6.stderr
    assert v6.stdout.splitlines()[0] == "PING ::1(::1) 56 data bytes"
    assert re.match(r"^64 bytes from ::1: icmp_seq=1 ttl=64 time=", v6.stdout.splitlines()[1])
    named = run_cli("localhost", "-c", "1", "-4", "-s", "100")
    assert named.returncode == 0, named.stderr
    lines = named.stdout.splitlines()
    assert lines[0] == "PING localhost (127.0.0.1) 100(128) bytes of data."
    assert lines[1].startswith("108 bytes from localhost (127.0.0.1): icmp_seq=1 ttl=64 time=")
    assert lines[3] == "--- localhost ping statistics ---"


@requires_raw
def test_quiet_prints_header_and_summary_only() -> None:
    done = run_cli("127.0.0.1", "-c", "2", "-i", "0.01", "-q")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PING ")
    assert lines[1:3] == ["", "--- 127.0.0.1 ping statistics ---"]
    assert len(lines) == 5


@requires_raw
def test_module_and_console_script_agree() -> None:
    script = subprocess.run(
        [sys.executable, "-c", "import sys; from trioping._cli import main; sys.exit(main(['127.0.0.1','-c','1']))"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert script.returncode == 0
    assert script.stdout.startswith("PING 127.0.0.1 (127.0.0.1)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nonexistent.invalid", "-c", "1"], "nonexistent.invalid: Name or service not known"),
        (["", "-c", "1"], "empty host name"),
        (["127.0.0.1", "-c", "0"], "count"),
        (["127.0.0.1", "-c", "-3"], "count"),
        (["127.0.0.1", "-c", "three"], "-c"),
        (["127.0.0.1", "-i", "-1"], "interval"),
        (["127.0.0.1", "-i", "soon"], "-i"),
        (["127.0.0.1", "-W", "-1"], "timeout"),
        (["127.0.0.1", "-W", "0"], "timeout"),
        (["127.0.0.1", "-w", "-2"], "deadline"),
        (["127.0.0.1", "-s", "65508"], "65507"),
        (["::1", "-s", "65528"], "65527"),
        (["127.0.0.1", "-s", "-1"], "size"),
        (["127.0.0.1", "-t", "0"], "ttl"),
        (["127.0.0.1", "-t", "256"], "ttl"),
        (["-4", "::1"], "Address family"),
        (["-6", "127.0.0.1"], "Address family"),
        (["-4", "-6", "127.0.0.1"], "-4"),
        (["127.0.0.1", "--no-such-option"], "no-such-option"),
        ([], "hosts"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(args: list[str], message: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("trioping: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@requires_raw
def test_sigint_prints_the_summary_and_exits_by_the_reply_rule() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "trioping", "127.0.0.1", "-i", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert process.stdout is not None
        header = process.stdout.readline()
        assert header.startswith("PING 127.0.0.1")
        for _ in range(3):
            assert REPLY_V4.match(process.stdout.readline().rstrip("\n"))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    assert err == ""
    lines = out.splitlines()
    index = lines.index("--- 127.0.0.1 ping statistics ---")
    summary = SUMMARY.match(lines[index + 1])
    assert summary is not None
    assert int(summary.group(2)) >= 3
    assert int(summary.group(1)) - int(summary.group(2)) <= 1
    assert RTT.match(lines[index + 2])


@requires_raw
def test_sigint_with_no_reply_exits_1(netlab: object) -> None:
    from tests.netlab import NetLab

    assert isinstance(netlab, NetLab)
    process = subprocess.Popen(
        [sys.executable, "-m", "trioping", netlab.silent_v4, "-i", "0.05", "-W", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("PING ")
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 1, err
    summary = [line for line in out.splitlines() if "packets transmitted" in line]
    assert summary
    assert ", 0 received, 100% packet loss" in summary[0]
    assert "rtt min" not in out


@requires_raw
def test_no_reply_exits_1(netlab: object) -> None:
    from tests.netlab import NetLab

    assert isinstance(netlab, NetLab)
    done = run_cli(netlab.silent_v4, "-c", "2", "-i", "0.1", "-W", "0.3")
    assert done.returncode == 1
    assert "2 packets transmitted, 0 received, 100% packet loss" in done.stdout
    assert "rtt min" not in done.stdout


@requires_raw
def test_deadline_with_count_short_of_replies_exits_1(netlab: object) -> None:
    from tests.netlab import NetLab

    assert isinstance(netlab, NetLab)
    done = run_cli(netlab.silent_v6, "-c", "5", "-w", "0.5", "-i", "0.1")
    assert done.returncode == 1
    assert "0 received" in done.stdout


@requires_raw
def test_closed_stdout_ends_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "trioping", "127.0.0.1", "-c", "50", "-i", "0.01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("PING")
    process.stdout.close()
    _, err = process.communicate(timeout=10)
    assert "Traceback" not in err
    assert process.returncode == -signal.SIGPIPE


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_prints_the_version_and_exits_0(flag: str) -> None:
    import trioping

    done = run_cli(flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"trioping {trioping.__version__}\n"
    assert done.stderr == ""


def test_version_is_the_installed_distribution_s() -> None:
    import importlib.metadata

    import trioping

    assert trioping.__version__ == importlib.metadata.version("trioping")


def test_version_wins_over_hosts_and_other_options() -> None:
    """As ``ping -V``: the version, whatever else the command line holds, and no ping."""
    done = run_cli("127.0.0.1", "-c", "1", "-V")
    assert done.returncode == 0
    assert done.stdout.startswith("trioping ")
    assert "PING" not in done.stdout


def _help() -> str:
    done = run_cli("--help")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def _option_help(text: str, option: str) -> str:
    """The help of one option (its line starts ``  -c, --count``), wrapped lines joined."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"  {re.escape(option)}[ ,]", line))
    words = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("   "):
            break
        words.append(line)
    return " ".join(" ".join(words).split())


def test_help_shows_no_python_types() -> None:
    text = _help()
    assert "list[str]" not in text
    assert not re.search(r"<(int|float|str|list[^>]*)>", text), text
    assert "HOST..." in text
    assert "-V, --version" in text


def test_help_describes_each_mode() -> None:
    text = _help()
    count = _option_help(text, "-c")
    assert "one host, until Ctrl-C" in count
    assert "several hosts, 1" in count
    quiet = _option_help(text, "-q")
    assert "One host:" in quiet
    assert "Several hosts:" in quiet
    for option in ("-D", "-O", "--json"):
        assert _option_help(text, option).split(None, 1)[1].startswith("One host only"), option
    assert "-D, -O and --json apply to one host only" in " ".join(text.split())
    for option in ("-f", "-g", "-a", "-u", "--rate"):
        assert "Several hosts:" in _option_help(text, option), option


@pytest.mark.parametrize("option", ["--bogus", "-x", "--cout"])
def test_an_unknown_option_is_one_line_without_a_guess(option: str) -> None:
    done = run_cli(option, "127.0.0.1")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"trioping: unknown option {option} (trioping --help lists them)\n"


@requires_raw
def test_one_host_imports_neither_the_fanout_command_nor_pydantic() -> None:
    """Start-up is what the one-host command's users wait for: the fping-style command,
    JSON output and typer's pydantic coercion (typer >= 0.29) stay unimported."""
    code = (
        "import sys; from trioping._cli import main; status = main(['127.0.0.1', '-c', '1', '-q']);"
        " print(sorted(m for m in ('trioping._cli_fanout', 'trioping._json', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
