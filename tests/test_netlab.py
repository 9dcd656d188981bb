"""Tests of the network lab and the scripted responder themselves (not of trioping).

Fault-injection tests are only as good as the faults they inject: if the lab silently stopped
producing a TTL-exceeded or the responder's ``bad_checksum`` sent a good checksum, library
tests would pass for the wrong reason. These tests check each promise of ``tests/netlab.py``
and ``tests/lab/responder.py`` with a tiny self-contained raw-socket prober (no iputils, no
trioping), so they keep working while the library is broken.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import trio

from tests.netlab import NetLab, ResponderFactory

# tests/conftest.py loads the plugin too; naming it here keeps this file usable on its own.
pytest_plugins = ["tests.netlab"]
pytestmark = pytest.mark.netlab

FAMILIES = [pytest.param(False, id="v4"), pytest.param(True, id="v6")]
PAYLOAD_SIZE = 56


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum (0 when computed over a message whose checksum is correct)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def make_payload(token: bytes, size: int = PAYLOAD_SIZE) -> bytes:
    """trioping's layout: u64 ns timestamp, 8-byte token, fill byte ``i & 0xFF`` at offset i."""
    head = struct.pack("!Q", time.time_ns()) + token
    return (head + bytes(i & 0xFF for i in range(len(head), size)))[:size]


def addr(lab: NetLab, role: str, v6: bool) -> str:
    """``addr(lab, "live_host", True)`` -> ``lab.live_host_v6``."""
    value = getattr(lab, f"{role}_{'v6' if v6 else 'v4'}")
    assert isinstance(value, str)
    return value


@dataclass(frozen=True)
class Seen:
    """An ICMP packet that belongs to our probes: an echo reply or an error quoting a probe.

    For errors, ``ident``/``seq``/``data`` are those of the quoted echo request.
    """

    source: str
    type: int
    code: int
    error: bool
    ident: int
    seq: int
    data: bytes
    checksum_ok: bool
    ttl: int | None
    after: float  # seconds since the first probe was sent


class Prober:
    """One raw ICMP socket that sends echo requests and collects what comes back for them."""

    def __init__(self, v6: bool, *, ttl: int | None = None) -> None:
        self.v6 = v6
        self.ident = int.from_bytes(os.urandom(2), "big")
        self.token = os.urandom(8)
        if v6:
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            if ttl is not None:
                self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            if ttl is not None:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)

    def close(self) -> None:
        self.sock.close()

    def request(self, seq: int, data: bytes) -> bytes:
        msg = struct.pack("!BBHHH", 128 if self.v6 else 8, 0, 0, self.ident, seq) + data
        if self.v6:
            return msg  # the kernel computes ICMPv6 checksums
        return msg[:2] + struct.pack("!H", internet_checksum(msg)) + msg[4:]

    def exchange(self, dst: str, seqs: Sequence[int], data: bytes, *, window: float, expect: int = 0) -> list[Seen]:
        """Send one request per ``seqs`` back to back, collect for ``window`` seconds.

        Returns early once ``expect`` packets were seen (0: always wait the whole window).
        """
        start = time.monotonic()
        for seq in seqs:
            self.sock.sendto(self.request(seq, data), (dst, 0))
        seen: list[Seen] = []
        deadline = start + window
        while (left := deadline - time.monotonic()) > 0 and not (expect and len(seen) >= expect):
            readable, _, _ = select.select([self.sock], [], [], left)
            if not readable:
                break
            packet, ancdata, _flags, src = self.sock.recvmsg(65535, 256)
            item = self._parse(packet, ancdata, src[0], time.monotonic() - start)
            if item is not None:
                seen.append(item)
        return seen

    def _parse(self, packet: bytes, ancdata: list[tuple[int, int, bytes]], source: str, after: float) -> Seen | None:
        ttl: int | None = None
        if self.v6:
            icmp = packet
            for level, kind, value in ancdata:
                if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                    ttl = int.from_bytes(value[:4], sys.byteorder)
            checksum_ok = True  # verified by the kernel; bad ones never arrive
            reply_type, error_types, request_type = 129, (1, 3), 128
        else:
            ttl = packet[8]
            icmp = packet[(packet[0] & 0x0F) * 4 :]
            checksum_ok = internet_checksum(icmp) == 0
            reply_type, error_types, request_type = 0, (3, 11), 8
        if len(icmp) < 8:
            return None
        if icmp[0] == reply_type:
            ident, seq = struct.unpack("!HH", icmp[4:8])
            data = icmp[8:]
            if ident != self.ident and data[8:16] != self.token:
                return None
            return Seen(source, icmp[0], icmp[1], False, ident, seq, data, checksum_ok, ttl, after)
        if icmp[0] in error_types:
            quoted = icmp[8:]
            inner = quoted[40:] if self.v6 else quoted[(quoted[0] & 0x0F) * 4 :] if quoted else b""
            if len(inner) < 8 or inner[0] != request_type:
                return None
            ident, seq = struct.unpack("!HH", inner[4:8])
            if ident != self.ident:
                return None
            return Seen(source, icmp[0], icmp[1], True, ident, seq, inner[8:], checksum_ok, ttl, after)
        return None


def probe(
    v6: bool,
    dst: str,
    seqs: Sequence[int] = (1,),
    *,
    ttl: int | None = None,
    window: float = 1.0,
    expect: int = 0,
) -> tuple[Prober, bytes, list[Seen]]:
    prober = Prober(v6, ttl=ttl)
    try:
        data = make_payload(prober.token)
        return prober, data, prober.exchange(dst, seqs, data, window=window, expect=expect)
    finally:
        prober.close()


def icmp6_in_csum_errors() -> int:
    with open("/proc/net/snmp6") as f:
        for line in f:
            name, _, value = line.partition(" ")
            if name == "Icmp6InCsumErrors":
                return int(value)
    raise AssertionError("Icmp6InCsumErrors missing from /proc/net/snmp6")


# --------------------------------------------------------------------------------------------
# Topology


@pytest.mark.parametrize("v6", FAMILIES)
def test_live_host_answers(netlab: NetLab, v6: bool) -> None:
    prober, data, seen = probe(v6, addr(netlab, "live_host", v6), expect=1)
    assert len(seen) == 1, seen
    reply = seen[0]
    assert (reply.source, reply.error, reply.ident, reply.seq) == (
        addr(netlab, "live_host", v6),
        False,
        prober.ident,
        1,
    )
    assert reply.data == data
    assert reply.checksum_ok
    assert reply.ttl == netlab.remote_reply_ttl


@pytest.mark.parametrize("v6", FAMILIES)
def test_ttl_one_gets_time_exceeded_from_router(netlab: NetLab, v6: bool) -> None:
    _prober, data, seen = probe(v6, addr(netlab, "live_host", v6), ttl=1, expect=1)
    expected_type = netlab.time_exceeded_type_v6 if v6 else netlab.time_exceeded_type_v4
    assert [(s.source, s.error, s.type, s.code, s.seq) for s in seen] == [
        (addr(netlab, "router", v6), True, expected_type, 0, 1)
    ]
    assert seen[0].data == data  # the quote carries the whole request
    assert seen[0].checksum_ok


@pytest.mark.parametrize("v6", FAMILIES)
def test_unreachable_route_gets_immediate_error_from_router(netlab: NetLab, v6: bool) -> None:
    _prober, _data, seen = probe(v6, addr(netlab, "unreachable", v6), expect=1)
    expected = (
        (netlab.unreachable_type_v6, netlab.unreachable_code_v6)
        if v6
        else (netlab.unreachable_type_v4, netlab.unreachable_code_v4)
    )
    assert [(s.source, s.error, (s.type, s.code), s.seq) for s in seen] == [
        (addr(netlab, "router", v6), True, expected, 1)
    ]
    assert seen[0].after < 0.5


@pytest.mark.parametrize("v6", FAMILIES)
@pytest.mark.parametrize("role", ["silent", "responder"])
def test_silent_addresses_never_answer(netlab: NetLab, v6: bool, role: str) -> None:
    """``responder`` too: without a running responder (none may survive a test) it is quiet."""
    _prober, _data, seen = probe(v6, addr(netlab, role, v6), seqs=(1, 2), window=0.2)
    assert seen == []


# --------------------------------------------------------------------------------------------
# Responder

ACTIONS = [
    "ok",
    "drop",
    "duplicate",
    "bad_checksum",
    "corrupt_payload",
    "other_identifier",
    "wrong_token",
    "truncate",
    "other_sequence",
    "unsolicited",
    "ok+unsolicited",
    "delay:100",
    "late:150",
    "unreachable",
    "time_exceeded",
]


@pytest.mark.parametrize("v6", FAMILIES)
def test_responder_actions(netlab: NetLab, responder: ResponderFactory, v6: bool) -> None:
    """Every action at once, one probe each, keyed by sequence number (the dict plan form)."""
    seq_of = {action: index + 1 for index, action in enumerate(ACTIONS)}
    handle = responder({**{str(seq): a for a, seq in seq_of.items()}, "default": "drop"})
    resp = addr(netlab, "responder", v6)
    csum_errors_before = icmp6_in_csum_errors()
    prober, data, seen = probe(v6, resp, list(seq_of.values()), window=0.4)
    assert len(handle.wait_for_actions(len(ACTIONS))) == len(ACTIONS), handle.lines

    by_seq: dict[int, list[Seen]] = {}
    for item in seen:
        assert item.source == resp, item
        assert item.ttl == netlab.remote_reply_ttl, item
        by_seq.setdefault(item.seq, []).append(item)

    def replies(seq: int) -> list[Seen]:
        return [s for s in by_seq.pop(seq, []) if not s.error or pytest.fail(f"error {s}")]

    def one_good_reply(seq: int, *, ident: int = prober.ident, payload: bytes = data) -> Seen:
        got = replies(seq)
        assert len(got) == 1, (seq, got)
        assert (got[0].ident, got[0].data, got[0].checksum_ok) == (ident, payload, True), got
        return got[0]

    for action, seq in seq_of.items():
        ctx = f"{action} (seq {seq})"
        if action in ("ok", "ok+unsolicited"):
            assert one_good_reply(seq).after < 0.1, ctx
        if action in ("unsolicited", "ok+unsolicited"):
            one_good_reply(seq + 500)
        match action:
            case "drop" | "unsolicited":
                assert seq not in by_seq, ctx
            case "duplicate":
                got = replies(seq)
                assert [(s.data, s.checksum_ok) for s in got] == [(data, True)] * 2, ctx
            case "bad_checksum":
                if v6:  # the root namespace's kernel must have dropped it
                    assert seq not in by_seq, ctx
                    assert icmp6_in_csum_errors() > csum_errors_before, ctx
                else:
                    got = replies(seq)
                    assert len(got) == 1, ctx
                    assert not got[0].checksum_ok, ctx
                    assert got[0].data == data, ctx
            case "corrupt_payload":
                got = replies(seq)
                assert len(got) == 1, ctx
                assert got[0].checksum_ok, ctx
                assert [i for i in range(len(data)) if got[0].data[i] != data[i]] == [20], ctx
            case "other_identifier":
                one_good_reply(seq, ident=prober.ident ^ 0xFFFF)
            case "wrong_token":
                got = replies(seq)
                assert len(got) == 1, ctx
                assert got[0].checksum_ok, ctx
                assert got[0].data[8:16] != prober.token, ctx
                assert got[0].data[:8] + got[0].data[16:] == data[:8] + data[16:], ctx
            case "truncate":
                one_good_reply(seq, payload=data[: len(data) // 2])
            case "other_sequence":
                assert seq not in by_seq, ctx
                one_good_reply(seq + 1000)
            case "delay:100" | "late:150":
                minimum = int(action.partition(":")[2]) / 1000
                assert one_good_reply(seq).after >= minimum, ctx
            case "unreachable" | "time_exceeded":
                got = by_seq.pop(seq, [])
                expected = {
                    ("unreachable", False): (3, 1),
                    ("unreachable", True): (1, 3),
                    ("time_exceeded", False): (11, 0),
                    ("time_exceeded", True): (3, 0),
                }[action, v6]
                assert [(s.error, s.type, s.code, s.data, s.checksum_ok) for s in got] == [
                    (True, *expected, data, True)
                ], ctx
    assert by_seq == {}, f"unexpected packets: {by_seq}"


@pytest.mark.parametrize("v6", FAMILIES)
def test_responder_list_plan_by_arrival_last_repeats(netlab: NetLab, responder: ResponderFactory, v6: bool) -> None:
    handle = responder(["drop", "ok"])
    prober = Prober(v6)
    try:
        data = make_payload(prober.token)
        answered = [
            bool(prober.exchange(addr(netlab, "responder", v6), [seq], data, window=0.15, expect=1))
            for seq in (7, 8, 9)
        ]
    finally:
        prober.close()
    assert answered == [False, True, True]
    logged = handle.wait_for_actions(3)
    assert [line.split()[1] for line in logged] == ["idx=0", "idx=1", "idx=2"], handle.lines


def test_responder_packet_cap_stops_it(netlab: NetLab, responder: ResponderFactory) -> None:
    handle = responder("duplicate", max_packets=1)
    _prober, _data, seen = probe(False, netlab.responder_v4, window=0.3)
    assert len(seen) == 1
    assert handle.process.wait(timeout=2) == 0
    assert handle.lines[-1] == "stopped: packet cap 1 reached"


def test_responder_rejects_bad_plan(responder: ResponderFactory) -> None:
    with pytest.raises(RuntimeError, match="unknown action 'nonsense'"):
        responder(["ok", "nonsense"])


async def test_responder_usable_from_trio(netlab: NetLab, responder: ResponderFactory) -> None:
    """The fixtures are sync but work in trio tests; a trio raw socket gets the reply."""
    handle = responder(["ok"])
    prober = Prober(False)  # only for building the request
    prober.close()
    data = make_payload(prober.token)
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_RAW, trio.socket.IPPROTO_ICMP)
    with sock:
        await sock.sendto(prober.request(5, data), (netlab.responder_v4, 0))
        with trio.fail_after(2):
            while True:
                packet, source = await sock.recvfrom(65535)
                icmp = packet[(packet[0] & 0x0F) * 4 :]
                if icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (prober.ident, 5):
                    break
    assert source[0] == netlab.responder_v4
    assert icmp[8:] == data
    with trio.fail_after(2):
        assert len(await handle.wait_for_actions_async(1)) == 1
