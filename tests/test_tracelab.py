"""The trace lab is what it says it is, as the real ``traceroute -I`` and ``mtr`` see it.

These results are the oracle the trace tests compare trioping's hop lists with: if the lab
drifted (a router answering from another address, a silenced hop still answering, an
unreachable turned into a timeout), the trace tests would be checking against a wrong
picture.  Each real tool skips with a reason where it is not installed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from typing import Any, cast

import pytest

from .nsutil import REPO, _ip, sweep_stale_labs
from .tracelab import _STALE, TraceLab, TracerouteHop, Unavailable, mtr_hops, traceroute, traceroute_hops

FAMILIES = [pytest.param(False, id="ipv4"), pytest.param(True, id="ipv6")]


def traceroute_or_skip(lab: TraceLab, host: str, v6: bool) -> list[TracerouteHop]:
    try:
        return traceroute(lab, host, v6)
    except Unavailable as exc:
        pytest.skip(str(exc))


def addresses(lab: TraceLab, host: str, v6: bool = False) -> list[str | None]:
    """What :func:`tests.tracelab.traceroute_hops` gives, skipping where traceroute is missing."""
    return [hop.address for hop in traceroute_or_skip(lab, host, v6)]


def mtr_or_skip(lab: TraceLab, host: str, v6: bool) -> list[str | None]:
    try:
        return mtr_hops(lab, host, v6)
    except Unavailable as exc:
        pytest.skip(str(exc))


def hops(lab: TraceLab, v6: bool) -> tuple[str, ...]:
    return lab.hops6 if v6 else lab.hops4


def test_names_and_addresses(tracelab: TraceLab) -> None:
    """Names carry our pid; every address is in the ranges the network rule allows."""
    assert tracelab.client == f"tpt-{os.getpid()}-c"
    assert tracelab.namespaces == tuple(f"tpt-{os.getpid()}-{n}" for n in ("c", "r1", "r2", "r3", "t"))
    listed = subprocess.run([_ip(), "netns", "list"], capture_output=True, text=True, timeout=30, check=True).stdout
    for ns in tracelab.namespaces:
        assert ns in listed
    addresses = [
        *tracelab.hops4,
        *tracelab.hops6,
        tracelab.target4,
        tracelab.target6,
        tracelab.unreachable4,
        tracelab.unreachable6,
        tracelab.prohibited4,
        tracelab.prohibited6,
    ]
    allowed = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:db8::/32"))
    for text in addresses:
        address = ipaddress.ip_address(text)
        assert any(address in net for net in allowed if net.version == address.version), text
    assert (tracelab.hops4[-1], tracelab.hops6[-1]) == (tracelab.target4, tracelab.target6)


def _ip_json(*argv: str) -> list[dict[str, Any]]:
    done = subprocess.run([_ip(), "-j", *argv], capture_output=True, text=True, timeout=30, check=True)
    return cast(list[dict[str, Any]], json.loads(done.stdout or "[]"))


def test_isolated_from_the_root_namespace(tracelab: TraceLab) -> None:
    """Every link's far end is in another namespace of the lab (one in the root namespace
    would have no name there), in path order; the client routes only the lab ranges."""
    nodes = tracelab.namespaces
    for index, ns in enumerate(nodes):
        names = {entry["nsid"]: entry.get("name") for entry in _ip_json("-n", ns, "netns", "list-id")}
        peers = {
            link["ifname"]: names.get(link.get("link_netnsid"))
            for link in _ip_json("-n", ns, "link")
            if link["ifname"] != "lo"
        }
        expected = {}
        if index > 0:
            expected["uplink"] = nodes[index - 1]
        if index < len(nodes) - 1:
            expected["downlink"] = nodes[index + 1]
        assert peers == expected, ns
    for family, outside in (("-4", "192.0.2.1"), ("-6", "3fff::1")):  # documentation addresses; a lookup sends nothing
        done = subprocess.run(
            [_ip(), "-n", tracelab.client, family, "route", "get", outside], capture_output=True, text=True, timeout=30
        )
        assert done.returncode != 0, done.stdout  # "Network is unreachable": no default route


@pytest.mark.parametrize("v6", FAMILIES)
def test_traceroute_lists_each_router_then_the_target(tracelab: TraceLab, v6: bool) -> None:
    target = tracelab.target6 if v6 else tracelab.target4
    assert traceroute_or_skip(tracelab, target, v6) == [TracerouteHop(hop, None) for hop in hops(tracelab, v6)]
    assert traceroute_hops(tracelab, target, v6) == list(hops(tracelab, v6))


@pytest.mark.parametrize("v6", FAMILIES)
def test_mtr_lists_each_router_then_the_target(tracelab: TraceLab, v6: bool) -> None:
    target = tracelab.target6 if v6 else tracelab.target4
    assert mtr_or_skip(tracelab, target, v6) == list(hops(tracelab, v6))


@pytest.mark.parametrize("v6", FAMILIES)
def test_a_silenced_router_is_a_star_and_speaks_again_afterwards(tracelab: TraceLab, v6: bool) -> None:
    target = tracelab.target6 if v6 else tracelab.target4
    expected: list[str | None] = list(hops(tracelab, v6))
    expected[1] = None
    with tracelab.silence(2):
        assert traceroute_or_skip(tracelab, target, v6) == [TracerouteHop(hop, None) for hop in expected]
        assert mtr_or_skip(tracelab, target, v6) == expected
    assert addresses(tracelab, target, v6) == list(hops(tracelab, v6))


@pytest.mark.parametrize(("router", "v6"), [pytest.param(1, False, id="r1-ipv4"), pytest.param(3, True, id="r3-ipv6")])
def test_each_router_can_be_silenced(tracelab: TraceLab, router: int, v6: bool) -> None:
    target = tracelab.target6 if v6 else tracelab.target4
    expected: list[str | None] = list(hops(tracelab, v6))
    expected[router - 1] = None
    with tracelab.silence(router):
        assert addresses(tracelab, target, v6) == expected


def test_silences_nest(tracelab: TraceLab) -> None:
    with tracelab.silence(1), tracelab.silence(3):
        with tracelab.silence(3):
            assert addresses(tracelab, tracelab.target4) == [None, tracelab.hops4[1], None, tracelab.target4]
        assert addresses(tracelab, tracelab.target4) == [None, tracelab.hops4[1], None, tracelab.target4]
    assert addresses(tracelab, tracelab.target4) == list(tracelab.hops4)


@pytest.mark.parametrize(
    ("kind", "v6", "mark"),
    [
        pytest.param("unreachable", False, "!H", id="unreachable-ipv4"),
        pytest.param("unreachable", True, "!N", id="unreachable-ipv6"),
        pytest.param("prohibited", False, "!X", id="prohibited-ipv4"),
        pytest.param("prohibited", True, "!X", id="prohibited-ipv6"),
    ],
)
def test_unreachable_paths_end_at_r3_with_its_mark(tracelab: TraceLab, kind: str, v6: bool, mark: str) -> None:
    """r3 answers for the whole path; mtr shows r3 as the last hop (it prints no marks)."""
    host = getattr(tracelab, f"{kind}{6 if v6 else 4}")
    routers = hops(tracelab, v6)[:3]
    for _ in range(3):  # repeatedly: no rate limit turns the answer into a timeout
        expected = [TracerouteHop(routers[0], None), TracerouteHop(routers[1], None), TracerouteHop(routers[2], mark)]
        assert traceroute_or_skip(tracelab, host, v6) == expected
    assert mtr_or_skip(tracelab, host, v6) == list(routers)


def test_unprivileged_runs_have_datagram_sockets_but_no_raw_ones(tracelab: TraceLab) -> None:
    code = (
        "import socket\n"
        "for family, proto in ((socket.AF_INET, socket.IPPROTO_ICMP), (socket.AF_INET6, socket.IPPROTO_ICMPV6)):\n"
        "    socket.socket(family, socket.SOCK_DGRAM, proto).close()\n"
        "    try:\n"
        "        socket.socket(family, socket.SOCK_RAW, proto)\n"
        "    except PermissionError:\n"
        "        print('raw refused')\n"
        "import trioping; print(trioping.__file__)\n"
    )
    done = tracelab.run([sys.executable, "-c", code], unprivileged=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["raw refused", "raw refused"]
    assert lines[2].startswith(str(REPO)), lines
    privileged = tracelab.run(
        [sys.executable, "-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)"]
    )
    assert privileged.returncode == 0, privileged.stderr


def test_run_passes_stdin_and_bounds_time(tracelab: TraceLab) -> None:
    assert tracelab.run(["cat"], stdin="198.19.73.2\n").stdout == "198.19.73.2\n"
    with pytest.raises(subprocess.TimeoutExpired):
        tracelab.run(["sleep", "5"], timeout=0.2)


def test_labs_of_dead_processes_are_swept(tracelab: TraceLab) -> None:
    stale = "tpt-999999999-c"  # above any pid_max: its creator cannot be alive
    subprocess.run([_ip(), "netns", "add", stale], capture_output=True, timeout=30, check=True)
    try:
        sweep_stale_labs(_STALE)
        listed = subprocess.run([_ip(), "netns", "list"], capture_output=True, text=True, timeout=30, check=True).stdout
        assert stale not in listed
        assert tracelab.client in listed
    finally:
        subprocess.run([_ip(), "netns", "del", stale], capture_output=True, timeout=30, check=False)
