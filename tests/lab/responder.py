#!/usr/bin/env python3
"""Scripted ICMP echo responder: answers echo requests wrong on purpose, for trioping's tests.

A real kernel answers every echo request correctly, so it cannot show how a ping library copes
with duplicates, late or corrupt replies, spoofs or ICMP errors. This script runs inside a
network namespace whose kernel echo is switched off (``net.ipv4.icmp_echo_ignore_all=1``,
``net.ipv6.icmp.echo_ignore_all=1``), reads echo requests from raw ICMPv4/ICMPv6 sockets and
answers each one as the *plan* says. Standard library only; needs CAP_NET_RAW.

Plan (``--plan`` JSON), one of:

* a list of actions, ``["ok", "drop", "duplicate"]``: request number *i* of each address
  family (counted separately for IPv4 and IPv6, from 0, in arrival order) gets ``plan[i]``;
  after the end of the list **the last action repeats** (so ``["drop", "ok"]`` drops only the
  first request, ``["drop"]`` drops all);
* an object keyed by ICMP sequence number (decimal strings), with an optional ``"default"``
  (``"ok"`` when absent): ``{"1": "ok", "2": "drop", "default": "ok"}`` — deterministic when
  requests may arrive in any order;
* a single action string, the same as a one-element list.

Actions (identical meaning for IPv4 and IPv6; combine several with ``+``, e.g.
``ok+unsolicited``: every part runs, in order, for the same request):

``ok``               a correct echo reply: same identifier, sequence and data.
``drop``             nothing.
``duplicate``        two identical correct replies.
``bad_checksum``     a correct reply whose ICMP checksum is wrong. IPv6 ones are sent through an
                     ``IPPROTO_RAW`` socket with a hand-built IPv6 header, because the kernel
                     fills in the checksum on ICMPv6 raw sockets. NOTE: the receiving Linux
                     kernel drops an ICMPv6 message with a bad checksum before any socket sees
                     it (it counts ``Icmp6InCsumErrors``), so for IPv6 a test sees a loss.
                     IPv4 raw sockets do receive it (only the kernel's own ICMP code drops it).
``corrupt_payload``  a reply with a correct checksum but one data byte altered (XOR 0xFF):
                     offset 20 (in the fill area after timestamp and token) when the data has
                     more than 20 bytes, else the last byte; empty data is sent unchanged.
``other_identifier`` a correct reply whose identifier is XOR 0xFFFF.
``wrong_token``      a correct reply with data bytes 8..15 (trioping's per-pinger token) XOR
                     0xFF, checksum recomputed: a spoof of our identifier and sequence.
``truncate``         a correct reply (checksum valid) whose data is cut to half its length.
``other_sequence``   a correct reply with sequence (seq + 1000) & 0xFFFF, never sent.
``unsolicited``      ONLY a correct-looking reply with sequence (seq + 500) & 0xFFFF (our
                     identifier and token, data copied) as if answering a request never sent;
                     no reply to the request itself. Use ``ok+unsolicited`` for both.
``delay:MS``         a correct reply MS milliseconds after the request arrived (other requests
                     are served meanwhile).
``late:MS``          the same as ``delay:MS``; the name documents "after the probe's timeout".
``unreachable``      ICMP destination unreachable quoting the request: IPv4 type 3 code 1
                     (host unreachable), IPv6 type 1 code 3 (address unreachable).
``time_exceeded``    ICMP time exceeded quoting the request: IPv4 type 11 code 0, IPv6 type 3
                     code 0.
``other_source``     a correct reply from the responder's next address (the address pinged
                     plus one: 198.18.3.3 for 198.18.3.2), as a host answering from another
                     of its addresses, or one of many answering a broadcast.
``redirect``         IPv4: an ICMP redirect for host (type 5 code 1) quoting the request and
                     naming the responder's own address as the better gateway; no reply
                     (``redirect+ok`` for both).  IPv6 has no such error: nothing is sent.

Quotes are what routers send: IPv4 the request's IP header and ICMP message up to 548 bytes
(576 minus outer headers), IPv6 the request's IPv6 header (rebuilt from ancillary data: traffic
class, flow label, hop limit as received, addresses) and ICMPv6 message up to 1232 bytes.

Addresses: echo replies come *from the address the request was sent to* (``IP_PKTINFO`` /
``IPV6_PKTINFO``), because a pinger matches replies by source address; ICMP errors come from
an address the kernel picks (the namespace's own address on the way back).

Output: ``ready`` (flushed) once both sockets are open, then one line per request, e.g.
``v4 idx=0 seq=3 id=0x1234 from=198.18.1.1 to=198.18.3.2 action=duplicate``, and a line
``delayed v4 seq=3 ...`` when a delayed packet leaves.

It always stops by itself: after ``--max-seconds`` (default 120), after sending
``--max-packets`` packets (default 10000), on SIGTERM/SIGINT, and with ``--watch-stdin`` when
its stdin reaches end of file (the parent died or closed the pipe). Exit status 0, 2 for a bad
plan or arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import ipaddress
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Final

ICMP_ECHO_REPLY: Final = 0
ICMP_DEST_UNREACH: Final = 3
ICMP_HOST_UNREACH: Final = 1
ICMP_ECHO_REQUEST: Final = 8
ICMP_TIME_EXCEEDED: Final = 11
ICMP_REDIRECT: Final = 5
ICMP_REDIRECT_HOST: Final = 1
ICMP6_DST_UNREACH: Final = 1
ICMP6_ADDR_UNREACH: Final = 3
ICMP6_TIME_EXCEEDED: Final = 3
ICMP6_ECHO_REQUEST: Final = 128
ICMP6_ECHO_REPLY: Final = 129

# Linux constants not (always) in the socket module.
SOL_RAW: Final = 255
ICMP_FILTER: Final = 1
ICMP6_FILTER: Final = 1
IP_PKTINFO: Final = 8
IPV6_FLOWINFO: Final = 11
SO_TIMESTAMPNS: Final = 35  # == SCM_TIMESTAMPNS; cmsg: struct timespec (CLOCK_REALTIME)
IPPROTO_ICMPV6: Final = 58

V4_QUOTE_MAX: Final = 576 - 20 - 8
V6_QUOTE_MAX: Final = 1280 - 40 - 8
MAX_DELAY_MS: Final = 600_000
SPIN_S: Final = 0.002

SIMPLE_ACTIONS: Final = frozenset(
    {
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
        "unreachable",
        "time_exceeded",
        "redirect",
        "other_source",
    }
)
TIMED_ACTIONS: Final = frozenset({"delay", "late"})


class PlanError(ValueError):
    """The plan given on the command line is not valid."""


class Stop(Exception):
    """Raised from the signal handler to leave the loop cleanly."""


# --------------------------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class Step:
    """One ``+``-separated part of an action: a name and, for delay/late, milliseconds."""

    name: str
    delay_ms: int = 0


@dataclass(frozen=True)
class Action:
    """A full plan entry such as ``ok+unsolicited``."""

    text: str
    steps: tuple[Step, ...]


def parse_action(text: str) -> Action:
    """Parse ``name[:ms][+name[:ms]...]``; raise :class:`PlanError` on anything unknown."""
    if not isinstance(text, str) or not text:
        raise PlanError(f"an action must be a non-empty string, not {text!r}")
    steps = []
    for part in text.split("+"):
        name, sep, arg = part.partition(":")
        if name in TIMED_ACTIONS:
            if not sep or not arg.isdigit() or int(arg) > MAX_DELAY_MS:
                raise PlanError(f"{part!r}: expected {name}:MS with 0 <= MS <= {MAX_DELAY_MS}")
            steps.append(Step(name, int(arg)))
        elif name in SIMPLE_ACTIONS and not sep:
            steps.append(Step(name))
        else:
            known = ", ".join(sorted(SIMPLE_ACTIONS | {"delay:MS", "late:MS"}))
            raise PlanError(f"unknown action {part!r} (known: {known})")
    return Action(text, tuple(steps))


@dataclass(frozen=True)
class Plan:
    """Which action answers which request (see the module docstring)."""

    in_order: tuple[Action, ...] = ()
    by_sequence: tuple[tuple[int, Action], ...] = ()
    default: Action | None = None

    def action_for(self, index: int, seq: int) -> Action:
        """The action for request number ``index`` (per family) with ICMP sequence ``seq``."""
        if self.in_order:
            return self.in_order[min(index, len(self.in_order) - 1)]
        for key, action in self.by_sequence:
            if key == seq:
                return action
        assert self.default is not None
        return self.default


def parse_plan(text: str) -> Plan:
    """Parse the ``--plan`` JSON."""
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"plan is not JSON: {exc}") from None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not value:
            raise PlanError("an empty plan list has no action to repeat")
        return Plan(in_order=tuple(parse_action(item) for item in value))
    if isinstance(value, dict):
        default = parse_action(value.get("default", "ok"))
        entries = []
        for key, item in value.items():
            if key == "default":
                continue
            if not key.isdigit() or int(key) > 0xFFFF:
                raise PlanError(f"plan key {key!r} is not a sequence number 0..65535")
            entries.append((int(key), parse_action(item)))
        return Plan(by_sequence=tuple(entries), default=default)
    raise PlanError("plan must be a JSON list, object or string")


# --------------------------------------------------------------------------------------------
# Packets


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_checksum(message: bytes, checksum: int) -> bytes:
    """``message`` with bytes 2..3 (the ICMP checksum field) set to ``checksum``."""
    return message[:2] + struct.pack("!H", checksum) + message[4:]


def icmpv6_checksum(src: str, dst: str, message: bytes) -> int:
    """ICMPv6 checksum over the IPv6 pseudo-header (RFC 8200 section 8.1)."""
    pseudo = (
        socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6)
    )
    return internet_checksum(pseudo + with_checksum(message, 0))


@dataclass(frozen=True)
class Request:
    """An echo request as received."""

    v6: bool
    src: str  # the pinger (where answers go)
    dst: str  # the address it pinged (where echo replies come from)
    scope_id: int
    ident: int
    seq: int
    data: bytes
    original: bytes  # IP header + ICMP message as received (IPv6: header rebuilt)

    @property
    def family(self) -> str:
        return "v6" if self.v6 else "v4"


@dataclass(frozen=True)
class Outgoing:
    """A packet to send. ``raw6`` packets carry their own IPv6 header (IPPROTO_RAW socket)."""

    v6: bool
    message: bytes
    dst: str
    scope_id: int
    src: str | None  # None: the kernel chooses
    raw6: bool = False
    what: str = ""


def echo_reply(req: Request, *, ident: int, seq: int, data: bytes) -> bytes:
    """An echo reply; checksum filled for IPv4 (the kernel fills it for ICMPv6 raw sockets)."""
    msg_type = ICMP6_ECHO_REPLY if req.v6 else ICMP_ECHO_REPLY
    msg = struct.pack("!BBHHH", msg_type, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + data
    return msg if req.v6 else with_checksum(msg, internet_checksum(msg))


def icmp_error(
    req: Request, *, v4_type: int, v4_code: int, v6_type: int, v6_code: int, v4_word: bytes = bytes(4)
) -> bytes:
    """An ICMP error quoting the request the way a router does (*v4_word*: the header's second
    word, a redirect's gateway)."""
    if req.v6:
        return struct.pack("!BBHI", v6_type, v6_code, 0, 0) + req.original[:V6_QUOTE_MAX]
    msg = struct.pack("!BBH", v4_type, v4_code, 0) + v4_word + req.original[:V4_QUOTE_MAX]
    return with_checksum(msg, internet_checksum(msg))


def corrupt_checksum(checksum: int) -> int:
    """A checksum value that never verifies: XOR with anything but 0xFFFF changes the sum."""
    return checksum ^ 0x5A5A


def bad_checksum_packet(req: Request) -> Outgoing:
    """A correct echo reply with a wrong checksum (IPv6: complete packet for IPPROTO_RAW)."""
    if not req.v6:
        msg = echo_reply(req, ident=req.ident, seq=req.seq, data=req.data)
        cks = struct.unpack("!H", msg[2:4])[0]
        return Outgoing(False, with_checksum(msg, corrupt_checksum(cks)), req.src, 0, req.dst)
    msg = echo_reply(req, ident=req.ident, seq=req.seq, data=req.data)
    cks = corrupt_checksum(icmpv6_checksum(req.dst, req.src, msg))
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(msg),
        IPPROTO_ICMPV6,
        64,
        socket.inet_pton(socket.AF_INET6, req.dst),
        socket.inet_pton(socket.AF_INET6, req.src),
    )
    return Outgoing(True, header + with_checksum(msg, cks), req.src, req.scope_id, None, True)


def packets_for(step: Step, req: Request) -> list[Outgoing]:
    """What one action step sends in answer to ``req`` (empty for ``drop``)."""

    def reply(*, ident: int = req.ident, seq: int = req.seq, data: bytes = req.data) -> Outgoing:
        msg = echo_reply(req, ident=ident, seq=seq, data=data)
        return Outgoing(req.v6, msg, req.src, req.scope_id, req.dst)

    def error(v4_type: int, v4_code: int, v6_type: int, v6_code: int) -> Outgoing:
        msg = icmp_error(req, v4_type=v4_type, v4_code=v4_code, v6_type=v6_type, v6_code=v6_code)
        return Outgoing(req.v6, msg, req.src, req.scope_id, None)

    data = req.data
    match step.name:
        case "ok" | "delay" | "late":
            return [reply()]
        case "drop":
            return []
        case "duplicate":
            return [reply(), reply()]
        case "bad_checksum":
            return [bad_checksum_packet(req)]
        case "corrupt_payload":
            if data:
                pos = 20 if len(data) > 20 else len(data) - 1
                data = data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :]
            return [reply(data=data)]
        case "other_identifier":
            return [reply(ident=req.ident ^ 0xFFFF)]
        case "wrong_token":
            token = bytes(b ^ 0xFF for b in data[8:16])
            return [reply(data=data[:8] + token + data[16:])]
        case "truncate":
            return [reply(data=data[: len(data) // 2])]
        case "other_source":
            other = str(ipaddress.ip_address(req.dst) + 1)
            return [
                Outgoing(req.v6, echo_reply(req, ident=req.ident, seq=req.seq, data=data), req.src, req.scope_id, other)
            ]
        case "other_sequence":
            return [reply(seq=(req.seq + 1000) & 0xFFFF)]
        case "unsolicited":
            return [reply(seq=(req.seq + 500) & 0xFFFF)]
        case "unreachable":
            return [error(ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, ICMP6_DST_UNREACH, ICMP6_ADDR_UNREACH)]
        case "time_exceeded":
            return [error(ICMP_TIME_EXCEEDED, 0, ICMP6_TIME_EXCEEDED, 0)]
        case "redirect":
            if req.v6:
                return []
            gateway = socket.inet_aton(req.dst)
            msg = icmp_error(
                req, v4_type=ICMP_REDIRECT, v4_code=ICMP_REDIRECT_HOST, v6_type=0, v6_code=0, v4_word=gateway
            )
            return [Outgoing(False, msg, req.src, req.scope_id, None)]
        case _:  # parse_action rejects anything else
            raise AssertionError(step.name)


# --------------------------------------------------------------------------------------------
# Sockets


def parse_v4(packet: bytes) -> Request | None:
    """An IPv4 raw-socket packet (IP header first) -> echo request, or None if not one."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:]
    if len(icmp) < 8 or icmp[0] != ICMP_ECHO_REQUEST or icmp[1] != 0:
        return None
    ident, seq = struct.unpack("!HH", icmp[4:8])
    return Request(
        v6=False,
        src=socket.inet_ntop(socket.AF_INET, packet[12:16]),
        dst=socket.inet_ntop(socket.AF_INET, packet[16:20]),
        scope_id=0,
        ident=ident,
        seq=seq,
        data=icmp[8:],
        original=packet,
    )


def parse_v6(icmp: bytes, ancdata: list[tuple[int, int, bytes]], addr: tuple[str, int, int, int]) -> Request | None:
    """An ICMPv6 raw-socket message plus ancillary data -> echo request, or None."""
    if len(icmp) < 8 or icmp[0] != ICMP6_ECHO_REQUEST or icmp[1] != 0:
        return None
    dst: bytes | None = None
    hop_limit = 0
    flowinfo: int | None = None
    tclass = 0
    for level, kind, value in ancdata:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == socket.IPV6_PKTINFO and len(value) >= 16:
            dst = value[:16]
        elif kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
            hop_limit = int.from_bytes(value[:4], sys.byteorder)
        elif kind == socket.IPV6_TCLASS and len(value) >= 4:
            tclass = int.from_bytes(value[:4], sys.byteorder)
        elif kind == IPV6_FLOWINFO and len(value) >= 4:
            flowinfo = struct.unpack("!I", value[:4])[0] & 0x0FFFFFFF
    if dst is None:
        return None
    src = addr[0].partition("%")[0]
    # The kernel only passes IPV6_FLOWINFO when it is non-zero (it includes the class).
    first_word = (6 << 28) | (flowinfo if flowinfo is not None else (tclass & 0xFF) << 20)
    header = struct.pack(
        "!IHBB16s16s",
        first_word,
        len(icmp),
        IPPROTO_ICMPV6,
        hop_limit,
        socket.inet_pton(socket.AF_INET6, src),
        dst,
    )
    ident, seq = struct.unpack("!HH", icmp[4:8])
    return Request(
        v6=True,
        src=src,
        dst=socket.inet_ntop(socket.AF_INET6, dst),
        scope_id=addr[3],
        ident=ident,
        seq=seq,
        data=icmp[8:],
        original=header + icmp,
    )


def kernel_stamp_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS receive stamp (CLOCK_REALTIME ns) in ``ancdata``, if any."""
    for level, kind, value in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            seconds, nanoseconds = struct.unpack("=qq", value[:16])
            return int(seconds * 1_000_000_000 + nanoseconds)
    return None


class Sockets:
    """The raw sockets: receive echo requests (kernel-filtered), send answers."""

    def __init__(self) -> None:
        self.v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        # Block every ICMP type except echo request (bit set = blocked).
        self.v4.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~(1 << 8) & 0xFFFFFFFF))
        self.v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        words = [0xFFFFFFFF] * 8
        words[ICMP6_ECHO_REQUEST >> 5] &= ~(1 << (ICMP6_ECHO_REQUEST & 31)) & 0xFFFFFFFF
        self.v6.setsockopt(IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
        for option in (socket.IPV6_RECVPKTINFO, socket.IPV6_RECVHOPLIMIT, socket.IPV6_RECVTCLASS, IPV6_FLOWINFO):
            self.v6.setsockopt(socket.IPPROTO_IPV6, option, 1)
        # IPPROTO_RAW implies IPV6_HDRINCL on Linux: we write the whole IPv6 header, so the
        # kernel does not compute (and fix) the ICMPv6 checksum. Send-only.
        self.v6_hdrincl = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sent = 0
        # Kernel receive stamps: ``delay:MS`` counts from the request's arrival, not from
        # this process waking up for it (which can take a millisecond in a VM).
        for sock in (self.v4, self.v6):
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.received_ns: int | None = None  # kernel stamp of the last request received

    def close(self) -> None:
        for sock in (self.v4, self.v6, self.v6_hdrincl):
            sock.close()

    def receive_v4(self) -> Request | None:
        packet, ancdata, _flags, _addr = self.v4.recvmsg(65535, 512)
        self.received_ns = kernel_stamp_ns(ancdata)
        return parse_v4(packet)

    def receive_v6(self) -> Request | None:
        icmp, ancdata, _flags, addr = self.v6.recvmsg(65535, 512)
        self.received_ns = kernel_stamp_ns(ancdata)
        return parse_v6(icmp, ancdata, addr)

    def send(self, out: Outgoing) -> None:
        """Send ``out``; errors (e.g. no route) are logged, never fatal."""
        try:
            if out.raw6:
                self.v6_hdrincl.sendto(out.message, (out.dst, 0, 0, out.scope_id))
            elif out.v6:
                cmsg = []
                if out.src is not None:
                    info = socket.inet_pton(socket.AF_INET6, out.src) + struct.pack("=i", 0)
                    cmsg.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info))
                self.v6.sendmsg([out.message], cmsg, 0, (out.dst, 0, 0, out.scope_id))
            else:
                cmsg = []
                if out.src is not None:
                    # struct in_pktinfo: ifindex, spec_dst (our source), addr (ignored)
                    info = struct.pack("=i4s4s", 0, socket.inet_pton(socket.AF_INET, out.src), bytes(4))
                    cmsg.append((socket.IPPROTO_IP, IP_PKTINFO, info))
                self.v4.sendmsg([out.message], cmsg, 0, (out.dst, 0))
        except OSError as exc:
            print(f"send error {'v6' if out.v6 else 'v4'} to={out.dst}: {exc}", flush=True)
        self.sent += 1


# --------------------------------------------------------------------------------------------
# Main loop


def serve(
    sockets: Sockets,
    plan: Plan,
    *,
    max_seconds: float,
    max_packets: int,
    watch_stdin: bool,
    log: Callable[[str], None],
) -> str:
    """Answer requests until a limit is hit; return why it stopped."""
    deadline = time.monotonic() + max_seconds
    counters = {"v4": 0, "v6": 0}
    timers: list[tuple[float, int, Outgoing]] = []  # heap of (due, tiebreak, packet)
    tiebreak = 0
    # select(2) takes microseconds; epoll rounds its timeout up to whole milliseconds (twice,
    # in Python), which made a ``delay:50`` reply leave up to ~2 ms late. Three fds only.
    selector = selectors.SelectSelector()
    selector.register(sockets.v4, selectors.EVENT_READ, "v4")
    selector.register(sockets.v6, selectors.EVENT_READ, "v6")
    if watch_stdin:
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")

    def emit(out: Outgoing) -> bool:
        if sockets.sent >= max_packets:
            return False
        sockets.send(out)
        return True

    try:
        while True:
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                _, _, out = heapq.heappop(timers)
                if not emit(out):
                    return f"packet cap {max_packets} reached"
                log(f"delayed {out.what}")
            if now >= deadline:
                return f"lifetime {max_seconds} s over"
            wake = min(deadline, timers[0][0]) if timers else deadline
            # Poll without sleeping for a delayed packet's last 2 ms: a timer wake-up can
            # take a millisecond here, and ``delay:MS`` should mean MS, not MS + wake-up.
            spin = bool(timers) and wake - now < SPIN_S
            for key, _events in selector.select(0.0 if spin else max(0.0, wake - now)):
                if key.data == "stdin":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return "stdin closed"
                    continue
                req = sockets.receive_v4() if key.data == "v4" else sockets.receive_v6()
                if req is None:
                    continue
                arrived = time.monotonic()  # delays count from the kernel's arrival stamp:
                if sockets.received_ns is not None:
                    arrived -= min(max(time.time_ns() - sockets.received_ns, 0), 10**9) / 1e9
                index = counters[req.family]
                counters[req.family] += 1
                action = plan.action_for(index, req.seq)
                log(
                    f"{req.family} idx={index} seq={req.seq} id={req.ident:#06x} "
                    f"from={req.src} to={req.dst} action={action.text}"
                )
                for step in action.steps:
                    for out in packets_for(step, req):
                        if step.delay_ms:
                            what = f"{req.family} seq={req.seq} {step.name}:{step.delay_ms}"
                            out = Outgoing(out.v6, out.message, out.dst, out.scope_id, out.src, out.raw6, what)
                            tiebreak += 1
                            heapq.heappush(timers, (arrived + step.delay_ms / 1000, tiebreak, out))
                        elif not emit(out):
                            return f"packet cap {max_packets} reached"
    finally:
        selector.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted ICMP echo responder for trioping's lab tests.")
    parser.add_argument("--plan", default='["ok"]', help="JSON plan (see module docstring)")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--max-packets", type=int, default=10_000)
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin reaches end of file")
    args = parser.parse_args(argv)
    try:
        plan = parse_plan(args.plan)
    except PlanError as exc:
        print(f"bad plan: {exc}", file=sys.stderr, flush=True)
        return 2
    if not 0 < args.max_seconds <= 3600 or not 0 < args.max_packets <= 1_000_000:
        print("--max-seconds must be in (0, 3600], --max-packets in (0, 1e6]", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def log(line: str) -> None:
        # BrokenPipeError: nobody reads us any more; keep serving until a limit.
        with contextlib.suppress(BrokenPipeError):
            print(line, flush=True)

    sockets = Sockets()
    try:
        log("ready")
        reason = serve(
            sockets,
            plan,
            max_seconds=args.max_seconds,
            max_packets=args.max_packets,
            watch_stdin=args.watch_stdin,
            log=log,
        )
    except Stop as exc:
        reason = f"signal {exc}"
    finally:
        sockets.close()
    log(f"stopped: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
