"""Unprivileged mode: Linux datagram ICMP sockets, for real, inside namespaces we create.

``net.ipv4.ping_group_range`` is per network namespace; the root namespace's is left alone.
Each test sets it in the private client namespace of :mod:`tests.nsutil` and runs the CLI
or the library there (``ip netns exec``), as user ``nobody`` when an interpreter readable by
``nobody`` exists, else as root with every capability dropped (``setpriv``), where raw
sockets fail with EPERM exactly as for an ordinary user.  Tests that need to watch the wire
or forge packets run as root in the namespace and ask for datagram sockets explicitly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from .conftest import RX_STAMP_MAY_BE_LATE
from .nsutil import Identity, MiniLab, Unavailable, python_env, unprivileged_identity

REPLY = r"^64 bytes from {}: icmp_seq=\d+ ttl={} time=\d+\.\d{{3}} ms$"


@pytest.fixture(scope="module")
def identity(minilab: MiniLab) -> Identity:
    try:
        return unprivileged_identity(minilab)
    except Unavailable as exc:
        pytest.skip(f"cannot drop privileges here: {exc}")


def _run(lab: MiniLab, argv: list[str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lab.in_client(*prefix, *argv),
        env=python_env(),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def run_cli(lab: MiniLab, identity: Identity, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(lab, [identity.python, "-m", "trioping", *args], identity.prefix)


def run_library(lab: MiniLab, spec: dict[str, Any], identity: Identity | None = None) -> list[dict[str, Any]]:
    """Run ``tests.nsprobe`` in the client namespace (as root unless *identity*)."""
    python, prefix = (identity.python, identity.prefix) if identity else (sys.executable, ())
    done = _run(lab, [python, "-m", "tests.nsprobe", json.dumps(spec)], prefix)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [json.loads(line) for line in done.stdout.splitlines()]


def of_type(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["type"] == kind]


@pytest.fixture
def unprivileged(minilab: MiniLab, identity: Identity) -> Identity:
    minilab.set_ping_group_range(identity.gid, identity.gid)
    return identity


@pytest.fixture
def datagram_allowed_for_root(minilab: MiniLab) -> MiniLab:
    minilab.set_ping_group_range(0, 0)
    return minilab


@pytest.mark.parametrize(
    ("host", "header"), [("127.0.0.1", "PING 127.0.0.1 (127.0.0.1) 56(84)"), ("::1", "PING ::1(::1)")]
)
def test_cli_runs_unprivileged(minilab: MiniLab, unprivileged: Identity, host: str, header: str) -> None:
    done = run_cli(minilab, unprivileged, host, "-c", "2", "-i", "0.05")
    assert done.returncode == 0, (unprivileged.description, done.stderr)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(header)
    for line in lines[1:3]:
        assert re.match(REPLY.format(re.escape(host), 64), line), line
    assert "2 packets transmitted, 2 received, 0% packet loss" in done.stdout
    assert done.stderr == ""


def test_library_falls_back_to_datagram_sockets(minilab: MiniLab, unprivileged: Identity) -> None:
    """Auto mode picks datagram sockets; TTL / hop limit and kernel TX+RX stamps still work."""
    objects = run_library(
        minilab,
        {
            "steps": [
                {"op": "ping", "host": "127.0.0.1", "count": 2, "interval": 0.02},
                {"op": "ping", "host": "::1", "count": 2, "interval": 0.02},
                {"op": "probe", "host": MiniLab.far_v4()},
                {"op": "probe", "host": MiniLab.far_v6()},
            ]
        },
        unprivileged,
    )
    sockets = {o["family"]: o for o in of_type(objects, "socket")}
    assert {family: s["kind"] for family, s in sockets.items()} == {4: "datagram", 6: "datagram"}
    replies = of_type(objects, "reply")
    assert [(r["target"], r["seq"], r["ttl"]) for r in replies] == [
        ("127.0.0.1", 1, 64),
        ("127.0.0.1", 2, 64),
        ("::1", 1, 64),
        ("::1", 2, 64),
        (MiniLab.far_v4(), 1, 63),  # one router on the way
        (MiniLab.far_v6(), 1, 63),
    ]
    clocks = {r["clock"] for r in replies}
    assert "kernel" in clocks  # kernel TX and RX stamps on datagram sockets too
    assert clocks <= {"kernel", RX_STAMP_MAY_BE_LATE}
    assert all(0 < r["rtt_ms"] < 1000 for r in replies)
    assert [(s["transmitted"], s["received"]) for s in of_type(objects, "summary")] == [(2, 2), (2, 2)]


def test_endless_stream_in_datagram_mode_stops_and_cleans_up(minilab: MiniLab, unprivileged: Identity) -> None:
    objects = run_library(
        minilab, {"steps": [{"op": "stream", "host": MiniLab.far_v6(), "interval": 0.01, "take": 5}]}, unprivileged
    )
    replies = of_type(objects, "reply")
    assert [r["seq"] for r in replies] == [1, 2, 3, 4, 5]
    assert [r["received"] for r in replies] == [1, 2, 3, 4, 5]  # the running snapshot
    [after] = of_type(objects, "stream")
    assert after["transmitted_later"] == after["transmitted"] >= 5  # nothing sent after the break
    assert after["waiting"] == 0  # its probes are forgotten
    assert after["tasks"] == 1  # only the receiver is left
    assert of_type(objects, "socket")[0]["kind"] == "datagram"


def test_outside_the_group_range_one_clear_error(minilab: MiniLab, identity: Identity) -> None:
    minilab.set_ping_group_range(1, 0)  # the kernel default: nobody
    for host in ("127.0.0.1", "::1"):
        done = run_cli(minilab, identity, host, "-c", "1")
        assert done.returncode == 2
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        message = done.stderr
        assert message.startswith("trioping: cannot open an ICMPv")
        assert "CAP_NET_RAW" in message
        assert f"(gid {identity.gid}) inside net.ipv4.ping_group_range, now '1 0'" in message
        assert "sysctl -w net.ipv4.ping_group_range=" in message
    [failure] = run_library(minilab, {"steps": [{"op": "probe", "host": "::1"}]}, identity)
    assert failure["class"] == "PermissionDeniedError"
    assert "ping_group_range" in failure["message"]
    assert "CAP_NET_RAW" in failure["message"]


def test_range_that_includes_another_group_still_refuses(minilab: MiniLab, identity: Identity) -> None:
    minilab.set_ping_group_range(identity.gid + 1, identity.gid + 10)
    [failure] = run_library(
        minilab, {"open": {"socket_kind": "datagram"}, "steps": [{"op": "probe", "host": "::1"}]}, identity
    )
    assert failure["class"] == "PermissionDeniedError"
    assert failure["message"].startswith("cannot open a datagram ICMPv6 socket")
    assert f"now '{identity.gid + 1} {identity.gid + 10}'" in failure["message"]


def test_explicit_raw_without_the_capability_says_so(minilab: MiniLab, unprivileged: Identity) -> None:
    [failure] = run_library(
        minilab, {"open": {"socket_kind": "raw"}, "steps": [{"op": "probe", "host": "127.0.0.1"}]}, unprivileged
    )
    assert failure["class"] == "PermissionDeniedError"
    assert failure["message"].startswith("cannot open a raw ICMPv4 socket (Operation not permitted)")
    assert "CAP_NET_RAW" in failure["message"]


@pytest.mark.usefixtures("datagram_allowed_for_root")
def test_icmp_errors_arrive_through_the_error_queue(minilab: MiniLab) -> None:
    """A router's unreachable and time-exceeded errors, matched to the probe that drew them."""
    objects = run_library(
        minilab,
        {
            "open": {"socket_kind": "datagram"},
            "steps": [
                {"op": "probe", "host": minilab.unreachable_v4},
                {"op": "probe", "host": minilab.unreachable_v6},
                {"op": "probe", "host": MiniLab.far_v4(), "ttl": 1},
                {"op": "probe", "host": MiniLab.far_v6(), "ttl": 1},
                {"op": "probe", "host": MiniLab.far_v4(), "ttl": 2},
            ],
        },
    )
    errors = [
        (e["target"], e["source"], e["icmp_type"], e["icmp_code"], e["description"]) for e in of_type(objects, "error")
    ]
    assert errors == [
        (minilab.unreachable_v4, minilab.router_v4, 3, 1, "Destination Host Unreachable"),
        (minilab.unreachable_v6, minilab.router_v6, 1, 0, "Destination unreachable: No route"),
        (MiniLab.far_v4(), minilab.router_v4, 11, 0, "Time to live exceeded"),
        (MiniLab.far_v6(), minilab.router_v6, 3, 0, "Time exceeded: Hop limit"),
    ]
    [reply] = of_type(objects, "reply")  # TTL 2 is enough
    assert (reply["target"], reply["ttl"]) == (MiniLab.far_v4(), 63)
    assert {s["kind"] for s in of_type(objects, "socket")} == {"datagram"}


@pytest.mark.usefixtures("datagram_allowed_for_root")
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_token_rejects_spoofed_replies_that_the_kernel_lets_through(minilab: MiniLab, host: str) -> None:
    """The kernel delivers any reply carrying the socket's identifier; the token decides.

    Kernel echo is off in the client namespace for this test, so only forged replies come:
    one with another identifier (the kernel never hands it to us), one with our identifier
    but a wrong token (reported as invalid), then a correct one (the reply).
    """
    key = "net/ipv4/icmp_echo_ignore_all" if host == "127.0.0.1" else "net/ipv6/icmp/echo_ignore_all"
    minilab.sysctl(key, "1")
    try:
        objects = run_library(minilab, {"open": {"socket_kind": "datagram"}, "steps": [{"op": "spoof", "host": host}]})
    finally:
        minilab.sysctl(key, "0")
    [sock] = of_type(objects, "socket")
    assert sock["kind"] == "datagram"
    spoofed = {o["as"]: o["identifier"] for o in of_type(objects, "spoofed")}
    assert spoofed["correct"] == sock["identifier"]  # the kernel's identifier (the port)
    assert [(o["type"], o.get("reason")) for o in objects if o["type"] in ("invalid", "reply")] == [
        ("invalid", "wrong-token"),
        ("reply", None),
    ]
