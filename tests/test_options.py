"""ping's options, each checked on the wire or by its effect.

On loopback every raw ICMP socket receives a copy of each echo request, so a second raw
socket (:class:`tests.nsutil.RequestCapture`) shows the TOS / traffic class, DF bit and
source address the probe really carried.  Path-MTU behaviour needs links with small MTUs:
the private namespaces of :mod:`tests.nsutil` (client link 1400, far link 1280), where the
CLI and library run as subprocesses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from typing import Any

import pytest

import trioping
from trioping import InvalidArgumentError, Reply, RttClock, SendError, Timeout

from .conftest import requires_raw, run_cli
from .netlab import NetLab
from .nsutil import CLIENT_MTU, FAR_MTU, MiniLab, RequestCapture, python_env


def in_minilab(lab: MiniLab, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lab.in_client(*argv), env=python_env(), cwd="/", capture_output=True, text=True, timeout=30, check=False
    )


def run_library(lab: MiniLab, spec: dict[str, Any]) -> list[dict[str, Any]]:
    done = in_minilab(lab, sys.executable, "-m", "tests.nsprobe", json.dumps(spec))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# --------------------------------------------------------------------------------------------
# -Q, -M (DF bit), -I: on the wire


@requires_raw
@pytest.mark.parametrize(("host", "tos"), [("127.0.0.1", 0xB8), ("::1", 0x28)])
async def test_tos_and_traffic_class_are_on_the_wire(host: str, tos: int) -> None:
    with RequestCapture(6 if ":" in host else 4) as capture:
        async with trioping.open_pinger(tos=tos) as pinger:
            assert isinstance(await pinger.probe(host), Reply)
            [request] = capture.requests(pinger.token)
        async with trioping.open_pinger() as plain:
            await plain.probe(host)
            [default] = capture.requests(plain.token)
    assert request.tos == tos
    assert default.tos == 0


@requires_raw
@pytest.mark.parametrize(("pmtu", "df"), [(None, True), ("do", True), ("want", True), ("dont", False)])
async def test_df_bit_follows_pmtu(pmtu: str | None, df: bool) -> None:
    """Linux's default (``want``) sets DF on a probe that fits the path; ``dont`` clears it."""
    with RequestCapture(4) as capture:
        async with trioping.open_pinger(pmtu=pmtu) as pinger:
            assert isinstance(await pinger.probe("127.0.0.1"), Reply)
            [request] = capture.requests(pinger.token)
    assert request.df is df


@requires_raw
async def test_source_address_is_on_the_wire_v4() -> None:
    with RequestCapture(4) as capture:
        async with trioping.open_pinger(source="127.0.0.2") as pinger:
            reply = await pinger.probe("127.0.0.1")
            [request] = capture.requests(pinger.token)
    assert (request.source, request.destination) == ("127.0.0.2", "127.0.0.1")
    assert isinstance(reply, Reply)
    assert reply.source == "127.0.0.1"


@requires_raw
async def test_source_address_is_on_the_wire_v6(netlab: NetLab) -> None:
    with RequestCapture(6) as capture:
        async with trioping.open_pinger(source=netlab.root_v6) as pinger:
            reply = await pinger.probe("::1")
            [request] = capture.requests(pinger.token)
    assert (request.source, request.destination) == (netlab.root_v6, "::1")
    assert isinstance(reply, Reply)


@requires_raw
async def test_interface_binding_decides_the_way_out(netlab: NetLab) -> None:
    """Bound to the lab's interface the lab answers; bound to ``lo`` it cannot be reached."""
    async with trioping.open_pinger(interface=netlab.root_interface) as pinger:
        via_lab = [await pinger.probe(host) for host in (netlab.live_host_v4, netlab.live_host_v6)]
    assert all(isinstance(r, Reply) and r.ttl == netlab.remote_reply_ttl for r in via_lab)
    async with trioping.open_pinger(interface="lo") as pinger:
        assert isinstance(await pinger.probe("127.0.0.1"), Reply)
        stranded_v6 = await pinger.probe(netlab.live_host_v6)
        stranded_v4 = await pinger.probe(netlab.live_host_v4, timeout=0.3)
    assert isinstance(stranded_v6, SendError)
    assert stranded_v6.message == "Network is unreachable"
    assert isinstance(stranded_v4, Timeout)


@requires_raw
@pytest.mark.parametrize(
    ("options", "host", "message"),
    [
        ({"source": "198.19.255.254"}, "127.0.0.1", "cannot use source address 198.19.255.254"),
        ({"source": "::1"}, "127.0.0.1", "source address ::1 is not an IPv4 address"),
        ({"source": "127.0.0.1"}, "::1", "source address 127.0.0.1 is not an IPv6 address"),
        ({"source": "localhost"}, "::1", "source address 'localhost' is not an IP address"),
        ({"interface": "tping-none0"}, "127.0.0.1", "unknown interface 'tping-none0'"),
    ],
)
async def test_bad_source_or_interface_is_an_invalid_argument(options: dict[str, str], host: str, message: str) -> None:
    async with trioping.open_pinger(**options) as pinger:  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match=re.escape(message)):
            await pinger.probe(host)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tos": 256}, "tos must be an integer from 0 to 255"),
        ({"tos": -1}, "tos must be an integer from 0 to 255"),
        ({"pmtu": "probe"}, "pmtu must be do, want or dont"),
        ({"socket_kind": "packet"}, "socket_kind must be raw, datagram or auto"),
    ],
)
async def test_bad_option_values_raise_before_any_socket(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        async with trioping.open_pinger(**options):  # type: ignore[arg-type]
            pass


# --------------------------------------------------------------------------------------------
# -M do against real MTUs (private namespaces), raw and datagram sockets


@pytest.mark.parametrize(("kind", "far"), [("raw", 3), ("datagram", 4)])
def test_pmtu_do_reports_local_errors_and_router_errors(minilab: MiniLab, kind: str, far: int) -> None:
    """As ping -M do: "message too long" for the local link, "frag needed" / "packet too big"
    from the router for a narrower link beyond it, then a local error once the kernel knows."""
    minilab.set_ping_group_range(0, 0)
    big_for_client, big_for_far = CLIENT_MTU - 28 + 1, FAR_MTU - 28 + 1
    steps = [
        {"op": "probe", "host": minilab.router_v4, "size": big_for_client},
        {"op": "probe", "host": MiniLab.far_v4(far), "size": big_for_far},
        {"op": "probe", "host": MiniLab.far_v4(far), "size": big_for_far},
        {"op": "probe", "host": minilab.router_v6, "size": big_for_client},
        {"op": "probe", "host": MiniLab.far_v6(far), "size": big_for_far},
        {"op": "probe", "host": MiniLab.far_v6(far), "size": big_for_far},
        {"op": "probe", "host": MiniLab.far_v4(far), "size": FAR_MTU - 28},  # fits: answered
    ]
    objects = run_library(minilab, {"open": {"socket_kind": kind, "pmtu": "do"}, "steps": steps})
    assert {o["kind"] for o in objects if o["type"] == "socket"} == {kind}
    seen = [(o["type"], o.get("mtu"), o.get("message") or o.get("description")) for o in objects if "step" in o]
    too_long = "local error: message too long, mtu={}"
    assert seen == [
        ("send_error", CLIENT_MTU, too_long.format(CLIENT_MTU)),
        ("error", FAR_MTU, f"Frag needed and DF set (mtu = {FAR_MTU})"),
        ("send_error", FAR_MTU, too_long.format(FAR_MTU)),
        ("send_error", CLIENT_MTU, too_long.format(CLIENT_MTU)),
        ("error", FAR_MTU, f"Packet too big: mtu={FAR_MTU}"),
        ("send_error", FAR_MTU, too_long.format(FAR_MTU)),
        ("reply", None, None),
    ]
    assert {o["errno"] for o in objects if o["type"] == "send_error"} == {90}  # EMSGSIZE


@pytest.mark.parametrize("kind", ["raw", "datagram"])
def test_pmtu_dont_and_want_let_big_probes_through(minilab: MiniLab, kind: str) -> None:
    """``dont``: no DF, the router fragments; ``want``: the kernel fragments on the client link."""
    minilab.set_ping_group_range(0, 0)
    far = 5 if kind == "raw" else 6
    objects = run_library(
        minilab,
        {
            "open": {"socket_kind": kind, "pmtu": "dont"},
            "steps": [{"op": "probe", "host": MiniLab.far_v4(far), "size": 1300}],
        },
    )
    objects += run_library(
        minilab,
        {
            "open": {"socket_kind": kind, "pmtu": "want"},
            "steps": [{"op": "probe", "host": minilab.router_v4, "size": 1400}],
        },
    )
    replies = [(o["target"], o["size"]) for o in objects if o["type"] == "reply"]
    assert replies == [(MiniLab.far_v4(far), 1308), (minilab.router_v4, 1408)]


def test_cli_pmtu_do_prints_like_ping(minilab: MiniLab) -> None:
    done = in_minilab(
        minilab, sys.executable, "-m", "trioping", MiniLab.far_v4(7), "-M", "do", "-s", "1300", "-c", "2", "-i", "0.1"
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[1] == f"From {minilab.router_v4} icmp_seq=1 Frag needed and DF set (mtu = 1280)"
    assert done.stderr.splitlines() == ["trioping: local error: message too long, mtu=1280"]
    assert "0 received, +2 errors, 100% packet loss" in done.stdout


def test_datagram_sockets_apply_the_options_on_the_wire(minilab: MiniLab) -> None:
    """TOS, DF and source address on datagram sockets, seen by a raw socket in the namespace;
    the identifier on the wire is the one the kernel gave the socket."""
    minilab.set_ping_group_range(0, 0)
    v4 = run_library(
        minilab,
        {
            "open": {"socket_kind": "datagram", "tos": 0x48, "pmtu": "dont", "source": "127.0.0.3"},
            "steps": [{"op": "probe", "host": "127.0.0.1"}],
            "capture": 4,
        },
    )
    v6 = run_library(
        minilab,
        {"open": {"socket_kind": "datagram", "tos": 0x48}, "steps": [{"op": "probe", "host": "::1"}], "capture": 6},
    )
    for objects, source, df in ((v4, "127.0.0.3", False), (v6, "::1", None)):
        [sock] = [o for o in objects if o["type"] == "socket"]
        [captured] = [o for o in objects if o["type"] == "captured"]
        assert sock["kind"] == "datagram"
        assert (captured["source"], captured["tos"], captured["df"]) == (source, 0x48, df)
        assert captured["identifier"] == sock["identifier"]
        assert [o["type"] for o in objects if "step" in o] == ["reply"]


# --------------------------------------------------------------------------------------------
# -D, -O and the CLI's option errors


@requires_raw
def test_timestamps_prefix_each_probe_line() -> None:
    before = time.time()
    done = run_cli("127.0.0.1", "-c", "2", "-i", "0.05", "-D")
    after = time.time()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("PING 127.0.0.1 (127.0.0.1)")
    stamps = []
    for line in lines[1:3]:
        match = re.match(r"^\[(\d+\.\d{6})\] 64 bytes from 127\.0\.0\.1: icmp_seq=\d ttl=64 time=", line)
        assert match, line
        stamps.append(float(match.group(1)))
    assert before <= stamps[0] <= stamps[1] <= after
    assert lines[4] == "--- 127.0.0.1 ping statistics ---"


@requires_raw
def test_outstanding_reports_unanswered_probes(netlab: NetLab) -> None:
    silent = run_cli(netlab.silent_v4, "-c", "3", "-i", "0.1", "-W", "0.3", "-O")
    assert silent.returncode == 1
    assert silent.stdout.splitlines()[1:3] == ["no answer yet for icmp_seq=1", "no answer yet for icmp_seq=2"]
    answered = run_cli("127.0.0.1", "-c", "3", "-i", "0.05", "-O", "-D")
    assert answered.returncode == 0
    assert "no answer yet" not in answered.stdout
    unreachable = run_cli(netlab.unreachable_v4, "-c", "2", "-i", "0.1", "-O")
    assert "no answer yet" not in unreachable.stdout  # an ICMP error is an answer


@requires_raw
async def test_stream_on_outstanding_callback(netlab: NetLab) -> None:
    notices: list[trioping.Outstanding] = []
    async with (
        trioping.open_pinger() as pinger,
        pinger.stream(netlab.silent_v6, count=3, interval=0.05, timeout=0.5, on_outstanding=notices.append) as stream,
    ):
        results = [result async for result in stream]
    assert [(n.target, n.sequence, n.probe_index) for n in notices] == [
        (netlab.silent_v6, 1, 0),
        (netlab.silent_v6, 2, 1),
    ]
    assert [type(r) for r in results] == [Timeout] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-Q", "x", "127.0.0.1"], "invalid TOS value 'x'"),
        (["-Q", "256", "127.0.0.1"], "tos must be an integer from 0 to 255"),
        (["-M", "probe", "127.0.0.1"], "invalid -M value 'probe': use do, want or dont"),
        (["-I", "", "127.0.0.1"], "-I needs an address or an interface name"),
        pytest.param(["-I", "tping-none0", "127.0.0.1"], "unknown interface 'tping-none0'", marks=requires_raw),
        (["-I", "::1", "-4", "127.0.0.1"], "source address ::1 is not an IPv4 address"),
        (["-I", "127.0.0.1", "::1"], "Address family"),
    ],
)
def test_option_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run_cli(*args, "-c", "1")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("trioping: ")
    assert message in done.stderr


@requires_raw
def test_cli_source_address_decides_the_family() -> None:
    done = run_cli("-I", "127.0.0.2", "localhost", "-c", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PING localhost (127.0.0.1)")


# --------------------------------------------------------------------------------------------
# Off Linux: the package imports and pings; Linux-only options are clean errors

_NOT_LINUX = """
import sys
from trioping import _constants
_constants.IS_LINUX = False  # what the socket layer asks, at run time
from trioping._cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_package_imports_on_another_platform() -> None:
    script = (
        "import sys, trio; sys.platform = 'darwin'; import trioping, trioping._cli, trioping._json; "
        "assert not trioping._constants.IS_LINUX"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def run_cli_not_linux(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", _NOT_LINUX, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@requires_raw  # the options are checked as the socket opens
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["-M", "do"], "path-MTU discovery settings (-M) need Linux (IP_MTU_DISCOVER)"),
        (["-I", "lo"], "binding to an interface needs Linux (SO_BINDTODEVICE)"),
    ],
)
def test_off_linux_the_linux_only_options_are_refused(option: list[str], message: str) -> None:
    done = run_cli_not_linux("127.0.0.1", "-c", "1", *option)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"trioping: {message}\n")


@requires_raw
def test_off_linux_the_cli_still_pings() -> None:
    done = run_cli_not_linux("127.0.0.1", "-c", "2", "-i", "0.05", "-Q", "16")
    assert done.returncode == 0, done.stderr
    assert "2 packets transmitted, 2 received, 0% packet loss" in done.stdout


@requires_raw
async def test_off_linux_pinging_skips_linux_socket_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the platform check off, no Linux-numbered option is set, and pings still work
    (RTTs from the monotonic clock: no kernel timestamps are asked for)."""
    from trioping import _constants as C
    from trioping._socket import IcmpSocket

    monkeypatch.setattr(C, "IS_LINUX", False)
    asked: list[tuple[int, int]] = []
    real = IcmpSocket._setsockopt

    def spy(self: IcmpSocket, level: int, option: int, value: int | bytes) -> None:
        asked.append((level, option))
        real(self, level, option, value)

    monkeypatch.setattr(IcmpSocket, "_setsockopt", spy)
    async with trioping.open_pinger(tos=0x10) as pinger:
        v4 = await pinger.ping("127.0.0.1", count=2, interval=0.01)
        v6 = await pinger.probe("::1")
    assert v4.received == 2
    assert {r.clock for r in v4.replies} == {RttClock.MONOTONIC}
    assert isinstance(v6, Reply)
    linux_only = {
        (C.SOL_RAW, C.ICMP_FILTER),
        (C.IPPROTO_ICMPV6, C.ICMP6_FILTER),
        (C.IPPROTO_IP, C.IP_RECVERR),
        (C.IPPROTO_IP, C.IP_RECVTTL),
        (C.IPPROTO_IP, C.IP_MTU_DISCOVER),
        (C.SOL_SOCKET, C.SO_RXQ_OVFL),
        (C.SOL_SOCKET, C.SO_RCVBUFFORCE),
        (C.SOL_SOCKET, C.SO_TIMESTAMPING),
        (C.SOL_SOCKET, C.SO_TIMESTAMPNS),
        (C.SOL_SOCKET, C.SO_BINDTODEVICE),
    }
    assert not set(asked) & linux_only
    assert (C.IPPROTO_IP, C.IP_TOS) in asked
    assert (C.IPPROTO_IPV6, C.IPV6_TCLASS) in asked
