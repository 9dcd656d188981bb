"""ICMP errors as traceroute needs them, in the probe table with no socket: bytes in,
results out.  A router's time-exceeded or unreachable is timed from the kernel's stamps as a
reply is, on the raw path (an ICMP packet) and the datagram path (an error-queue entry), and
is matched by the request it quotes -- never by the router's address."""

from __future__ import annotations

import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from trioping import Family, IcmpError, ProbeResult, RttClock, SendError
from trioping import _constants as C
from trioping._packet import internet_checksum
from trioping._table import Probe, ProbeState, ProbeTable

TOKEN = b"TOKEN123"
IDENTIFIER = 0x4242
TARGET4 = "198.19.76.4"
TARGET6 = "2001:db8:76::4"
ROUTER4 = "198.19.71.1"
ROUTER6 = "2001:db8:71::1"
WALL_NS = 1_800_000_000_000_000_000
MONO_NS = 5_000_000_000


class Owner:
    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        raise AssertionError("the table returns results; it never calls owners")

    def abandon(self, error: BaseException) -> None:
        pass


def ipv4(payload: bytes, *, source: str, destination: str, ttl: int = 64) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0,
        0,
        ttl,
        1,
        0,
        socket.inet_aton(source),
        socket.inet_aton(destination),
    )
    return header + payload


def ipv6_header(payload_length: int, *, source: str, destination: str, hop_limit: int = 1) -> bytes:
    return (
        struct.pack("!IHBB", 6 << 28, payload_length, 58, hop_limit)
        + socket.inet_pton(socket.AF_INET6, source)
        + socket.inet_pton(socket.AF_INET6, destination)
    )


def time_exceeded_v4(request: bytes, *, router: str = ROUTER4, quote: int | None = None) -> bytes:
    """What a Linux router sends: the whole request quoted (or *quote* bytes of it)."""
    quoted = ipv4(request, source="198.19.70.2", destination=TARGET4, ttl=1)
    if quote is not None:
        quoted = quoted[:quote]
    message = b"\x0b\x00\x00\x00\x00\x00\x00\x00" + quoted
    message = message[:2] + internet_checksum(message).to_bytes(2, "big") + message[4:]
    return ipv4(message, source=router, destination="198.19.70.2")


def unreachable_v6(request: bytes, code: int) -> bytes:
    quoted = ipv6_header(len(request), source="2001:db8:70::2", destination=TARGET6) + request
    return bytes([1, code]) + b"\x00" * 6 + quoted


def stamp(ns: int) -> list[tuple[int, int, bytes]]:
    return [(C.SOL_SOCKET, C.SO_TIMESTAMPNS, struct.pack("qq", *divmod(ns, 1_000_000_000)))]


def open_probe(table: ProbeTable, target: str) -> tuple[Probe, bytes]:
    opened = table.open_probe(target, 0, 56, Owner(), None, WALL_NS, MONO_NS, 0.0, 2.0)
    assert not isinstance(opened, SendError)
    return opened


def test_a_time_exceeded_is_timed_from_the_kernel_stamps_as_a_reply_is() -> None:
    table = ProbeTable(Family.V4, IDENTIFIER, TOKEN, delivers_ip_header=True)
    probe, request = open_probe(table, TARGET4)
    probe.tx_ns = WALL_NS + 4_000
    delivery = table.receive(time_exceeded_v4(request), stamp(WALL_NS + 54_000), ROUTER4, MONO_NS + 10**6)
    assert delivery is not None
    assert delivery[0] is probe
    error = delivery[1]
    assert isinstance(error, IcmpError)
    assert (error.source, error.target, error.icmp_type, error.code) == (ROUTER4, TARGET4, 11, 0)
    assert (error.rtt, error.clock) == (50e-6, RttClock.KERNEL)
    assert probe.state is ProbeState.FAILED


def test_without_stamps_an_error_is_timed_by_the_monotonic_clock() -> None:
    table = ProbeTable(Family.V4, IDENTIFIER, TOKEN, delivers_ip_header=True)
    _probe, request = open_probe(table, TARGET4)
    delivery = table.receive(time_exceeded_v4(request), [], ROUTER4, MONO_NS + 250_000)
    assert delivery is not None
    error = delivery[1]
    assert isinstance(error, IcmpError)
    assert (error.rtt, error.clock) == (250e-6, RttClock.MONOTONIC)


def test_an_error_quoting_another_senders_token_is_ignored() -> None:
    """Another pinger's request to the same host, with our identifier and sequence: a raw
    socket sees its time-exceeded too, and only the quoted token tells."""
    table = ProbeTable(Family.V4, IDENTIFIER, TOKEN, delivers_ip_header=True)
    probe, request = open_probe(table, TARGET4)
    theirs = request[:16] + b"THEIRTOK" + request[24:]
    assert table.receive(time_exceeded_v4(theirs), [], ROUTER4, MONO_NS + 1) is None
    assert table.ignored == 1
    assert probe.state is ProbeState.WAITING
    # An RFC 792 router quotes 8 bytes of the request only: identifier and sequence decide.
    short = table.receive(time_exceeded_v4(request, quote=28), [], ROUTER4, MONO_NS + 1)
    assert short is not None
    assert isinstance(short[1], IcmpError)


@settings(max_examples=200, deadline=None)
@given(quote=st.integers(28, 84), stamp_offset=st.integers(1, 10**6))
def test_any_quote_length_matches_and_the_rtt_is_exact(quote: int, stamp_offset: int) -> None:
    table = ProbeTable(Family.V4, IDENTIFIER, TOKEN, delivers_ip_header=True)
    _probe, request = open_probe(table, TARGET4)
    datagram = time_exceeded_v4(request, quote=quote)
    delivery = table.receive(datagram, stamp(WALL_NS + stamp_offset), ROUTER4, MONO_NS + 2 * 10**9)
    assert delivery is not None
    error = delivery[1]
    assert isinstance(error, IcmpError)
    assert error.clock is RttClock.KERNEL_RX
    assert error.rtt == stamp_offset / 1e9


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=16), st.integers(8, 23))
def test_a_quote_differing_in_stamp_or_token_is_never_ours(flips: bytes, at: int) -> None:
    table = ProbeTable(Family.V4, IDENTIFIER, TOKEN, delivers_ip_header=True)
    probe, request = open_probe(table, TARGET4)
    flips = flips[: 24 - at]  # within the stamp (request bytes 8-15) and token (16-23)
    changed = bytearray(request)
    for offset, flip in enumerate(flips):
        changed[at + offset] ^= flip or 1
    assert table.receive(time_exceeded_v4(bytes(changed)), [], ROUTER4, MONO_NS) is None
    assert probe.state is ProbeState.WAITING


def test_an_ipv6_unreachable_carries_its_code_and_rtt() -> None:
    table = ProbeTable(Family.V6, IDENTIFIER, TOKEN)
    _probe, request = open_probe(table, TARGET6)
    delivery = table.receive(unreachable_v6(request, 1), stamp(WALL_NS + 70_000), ROUTER6, MONO_NS + 10**6)
    assert delivery is not None
    error = delivery[1]
    assert isinstance(error, IcmpError)
    assert (error.source, error.icmp_type, error.code, error.rtt) == (ROUTER6, 1, 1, 70e-6)
    assert error.description == "Destination unreachable: Administratively prohibited"


def error_queue_entry(
    family: Family, offender: str, icmp_type: int, code: int, rx_ns: int | None
) -> list[tuple[int, int, bytes]]:
    """The control messages of a datagram socket's error-queue entry for an ICMP error."""
    if family is Family.V4:
        origin, level, kind = C.SO_EE_ORIGIN_ICMP, C.IPPROTO_IP, C.IP_RECVERR
        sockaddr = struct.pack("=H", socket.AF_INET) + b"\x00\x00" + socket.inet_aton(offender) + bytes(8)
    else:
        origin, level, kind = C.SO_EE_ORIGIN_ICMP6, C.IPPROTO_IPV6, C.IPV6_RECVERR
        sockaddr = (
            struct.pack("=H", socket.AF_INET6) + bytes(6) + socket.inet_pton(socket.AF_INET6, offender) + bytes(4)
        )
    extended = struct.pack("IBBBBII", 113, origin, icmp_type, code, 0, 0, 0) + sockaddr
    items = [(level, kind, extended)]
    if rx_ns is not None:
        items.insert(0, (C.SOL_SOCKET, C.SO_TIMESTAMPING, struct.pack("qq", *divmod(rx_ns, 10**9)) + bytes(32)))
    return items


@given(family=st.sampled_from([Family.V4, Family.V6]), offset=st.integers(1, 10**7))
@settings(max_examples=100, deadline=None)
def test_an_error_queue_entry_is_timed_from_its_receive_stamp(family: Family, offset: int) -> None:
    """Without root: the kernel hands the router's error to the datagram socket's error
    queue, the quoted request as data, the router in the extended error, the stamp beside."""
    table = ProbeTable(family, 0x0777, TOKEN, kernel_owns_identifier=True)
    target, router = (TARGET4, ROUTER4) if family is Family.V4 else (TARGET6, ROUTER6)
    time_exceeded = 11 if family is Family.V4 else 3
    probe, request = open_probe(table, target)
    probe.tx_ns = WALL_NS + 1
    entry = error_queue_entry(family, router, time_exceeded, 0, WALL_NS + 1 + offset)
    delivery = table.error_queue_entry(request, entry, target, MONO_NS + 10**9)
    assert delivery is not None
    assert delivery[0] is probe
    error = delivery[1]
    assert isinstance(error, IcmpError)
    assert (error.source, error.icmp_type, error.rtt, error.clock) == (
        router,
        time_exceeded,
        offset / 1e9,
        RttClock.KERNEL,
    )
    # Its verdict is given: the same entry again is nobody's.
    assert table.error_queue_entry(request, entry, target, MONO_NS + 10**9) is None


def test_a_redirect_on_the_error_queue_is_no_verdict() -> None:
    """A datagram socket gets a redirect through its error queue (``ping_err``): the probe
    waits on for its reply, as on a raw socket."""
    table = ProbeTable(Family.V4, 0x0777, TOKEN, kernel_owns_identifier=True)
    probe, request = open_probe(table, TARGET4)
    entry = error_queue_entry(Family.V4, ROUTER4, 5, 1, WALL_NS + 10)
    assert table.error_queue_entry(request, entry, TARGET4, MONO_NS + 1) is None
    assert probe.state is ProbeState.WAITING
    assert table.advisories == 1
    # An unreachable after it is still a verdict.
    entry = error_queue_entry(Family.V4, ROUTER4, 3, 1, WALL_NS + 20)
    delivery = table.error_queue_entry(request, entry, TARGET4, MONO_NS + 2)
    assert delivery is not None
    assert isinstance(delivery[1], IcmpError)


def test_an_error_queue_entry_for_another_request_is_ignored() -> None:
    table = ProbeTable(Family.V4, 0x0777, TOKEN, kernel_owns_identifier=True)
    probe, request = open_probe(table, TARGET4)
    theirs = request[:16] + b"THEIRTOK" + request[24:]
    entry = error_queue_entry(Family.V4, ROUTER4, 11, 0, None)
    assert table.error_queue_entry(theirs, entry, TARGET4, MONO_NS + 1) is None
    assert probe.state is ProbeState.WAITING
    delivery = table.error_queue_entry(request, entry, TARGET4, MONO_NS + 300_000)
    assert delivery is not None
    assert isinstance(delivery[1], IcmpError)
    assert (delivery[1].rtt, delivery[1].clock) == (300e-6, RttClock.MONOTONIC)
