"""The probe table with no socket at all: bytes and times in, results out (sans-I/O)."""

from __future__ import annotations

import math
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trioping import (
    Family,
    IcmpError,
    LateReply,
    ProbeResult,
    Reply,
    RttClock,
    SendError,
    Timeout,
)
from trioping import _constants as C
from trioping._packet import internet_checksum
from trioping._table import Probe, ProbeState, ProbeTable

TOKEN = b"TOKEN123"
IDENTIFIER = 0x4242
TARGET = "198.18.7.7"
WALL_NS = 1_800_000_000_000_000_000


class Owner:
    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        raise AssertionError("the table returns results; it never calls owners")

    def abandon(self, error: BaseException) -> None:
        pass


def v4_table() -> ProbeTable:
    return ProbeTable(Family.V4, IDENTIFIER, TOKEN, delivers_ip_header=True)


def ipv4(message: bytes, *, source: str = TARGET, destination: str = "198.18.1.1", ttl: int = 61) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(message),
        0,
        0,
        ttl,
        1,
        0,
        socket.inet_aton(source),
        socket.inet_aton(destination),
    )
    return header + message


def reply_to(request: bytes) -> bytes:
    """What a host answers: type 0, checksum recomputed, behind an IPv4 header."""
    message = b"\x00\x00\x00\x00" + request[4:]
    return ipv4(message[:2] + internet_checksum(message).to_bytes(2, "big") + message[4:])


def unreachable_for(request: bytes) -> bytes:
    """A router's "host unreachable" quoting *request* (sent from us to TARGET)."""
    quoted = ipv4(request, source="198.18.1.1", destination=TARGET, ttl=63)[:28]
    message = b"\x03\x01\x00\x00\x00\x00\x00\x00" + quoted
    message = message[:2] + internet_checksum(message).to_bytes(2, "big") + message[4:]
    return ipv4(message, source="198.18.1.2")


def stamp(ns: int) -> list[tuple[int, int, bytes]]:
    return [(C.SOL_SOCKET, C.SO_TIMESTAMPNS, struct.pack("qq", *divmod(ns, 1_000_000_000)))]


def send(table: ProbeTable, now: float, timeout: float = 1.0, target: str = TARGET) -> tuple[Probe, bytes]:
    opened = table.open_probe(target, 0, 56, Owner(), None, WALL_NS, 0, now, timeout)
    assert not isinstance(opened, SendError)
    probe, request = opened
    return probe, request


def test_a_reply_then_a_duplicate_then_nothing_once_forgotten() -> None:
    table = v4_table()
    probe, request = send(table, now=0.0)
    first = table.receive(reply_to(request), stamp(WALL_NS + 30_000), TARGET, 10**12)
    assert first is not None
    assert first[0] is probe
    reply = first[1]
    assert isinstance(reply, Reply)
    assert (reply.sequence, reply.ttl, reply.size, reply.duplicate) == (1, 61, 64, False)
    assert (reply.rtt, reply.clock) == (30e-6, RttClock.KERNEL_RX)
    again = table.receive(reply_to(request), [], TARGET, 10**12)
    assert again is not None
    assert isinstance(again[1], Reply)
    assert again[1].duplicate
    assert table.expire(1.0) == []  # answered: no timeout
    assert table.expire(2.0) == []  # kept one timeout (a second at least) past its deadline
    assert len(table) == 0
    assert table.receive(reply_to(request), [], TARGET, 10**12) is None


def test_a_timeout_then_a_late_reply() -> None:
    table = v4_table()
    probe, request = send(table, now=5.0, timeout=0.5)
    assert table.next_deadline() == 5.5
    assert table.expire(5.4) == []
    [(expired, timeout)] = table.expire(5.5)
    assert expired is probe
    assert timeout == Timeout(TARGET, 1, 0)
    assert table.next_deadline() == 6.5  # when it is forgotten: a second (at least) later
    late = table.receive(reply_to(request), [], TARGET, 10**12)
    assert late is not None
    assert isinstance(late[1], LateReply)
    table.expire(6.5)
    assert table.next_deadline() == math.inf
    assert table.receive(reply_to(request), [], TARGET, 10**12) is None


def test_an_icmp_error_is_matched_by_the_request_it_quotes_and_counts_once() -> None:
    table = v4_table()
    probe, request = send(table, now=0.0)
    delivery = table.receive(unreachable_for(request), [], "198.18.1.2", 0)
    assert delivery is not None
    error = delivery[1]
    assert isinstance(error, IcmpError)
    assert (error.source, error.icmp_type, error.code, error.target) == ("198.18.1.2", 3, 1, TARGET)
    assert probe.state is ProbeState.FAILED
    assert table.receive(unreachable_for(request), [], "198.18.1.2", 0) is None
    assert table.expire(1.0) == []  # it has its verdict


def reply_from(request: bytes, source: str) -> bytes:
    datagram = reply_to(request)
    return datagram[:12] + socket.inet_aton(source) + datagram[16:]


def test_a_reply_from_another_address_answers_its_probe() -> None:
    """A broadcast, a multicast group or a host answering from another of its addresses:
    the send stamp and token in the payload say which probe it answers (iputils' ping and
    fping count such replies too, and show the address)."""
    table = v4_table()
    send(table, now=0.0)  # another probe, to the same host
    probe, request = table.open_probe(TARGET, 1, 56, Owner(), None, WALL_NS + 1, 0, 0.0, 1.0)  # type: ignore[misc]
    first = table.receive(reply_from(request, "198.18.9.9"), [], "198.18.9.9", 10**12)
    assert first is not None
    assert first[0] is probe
    reply = first[1]
    assert isinstance(reply, Reply)
    assert (reply.target, reply.source, reply.sequence, reply.duplicate) == (TARGET, "198.18.9.9", 2, False)
    second = table.receive(reply_from(request, "198.18.9.10"), [], "198.18.9.10", 10**12)
    assert second is not None
    assert isinstance(second[1], Reply)
    assert second[1].duplicate


def test_a_reply_from_another_address_that_fails_a_check_is_not_ours() -> None:
    """Its address does not vouch for it: a wrong token, another sequence or a bad
    checksum makes it somebody else's (ignored), not an invalid reply to our probe."""
    table = v4_table()
    probe, request = send(table, now=0.0)
    forged = request[:16] + b"THEIRTOK" + request[24:]
    other_sequence = request[:6] + (0x2222).to_bytes(2, "big") + request[8:]
    for bad in (forged, other_sequence):
        message = b"\x00\x00\x00\x00" + bad[4:]
        datagram = ipv4(message[:2] + internet_checksum(message).to_bytes(2, "big") + message[4:], source="198.18.9.9")
        assert table.receive(datagram, [], "198.18.9.9", 10**12) is None
    broken = bytearray(reply_from(request, "198.18.9.9"))
    broken[22] ^= 0xFF  # the ICMP checksum
    assert table.receive(bytes(broken), [], "198.18.9.9", 10**12) is None
    assert table.ignored == 3
    assert probe.state is ProbeState.WAITING


def test_probes_sent_within_one_clock_tick_carry_stamps_of_their_own() -> None:
    """A coarse clock gives two sends the same reading: the second probe's stamp is moved on
    (stamps only increase), so a reply from another address still names exactly one probe (two
    targets' first probes share sequence 1 and, but for the stamp, their payload)."""
    table = v4_table()
    first, _ = table.open_probe(TARGET, 0, 56, Owner(), None, WALL_NS, 0, 0.0, 1.0)  # type: ignore[misc]
    second, second_request = table.open_probe("198.18.7.8", 0, 56, Owner(), None, WALL_NS, 0, 0.0, 1.0)  # type: ignore[misc]
    assert first.sequence == second.sequence
    assert first.payload != second.payload
    delivery = table.receive(reply_from(second_request, "198.18.9.9"), [], "198.18.9.9", 10**12)
    assert delivery is not None
    assert delivery[0] is second
    assert first.state is ProbeState.WAITING
    table.forget(first)
    assert table.receive(reply_from(second_request, "198.18.9.10"), [], "198.18.9.10", 10**12) is not None


def test_a_reply_from_another_target_answers_the_probe_it_carries() -> None:
    """Two addresses of one host pinged at once, the first answering from the second's
    address with the same sequence: it is the first's reply, not a corrupted one to the second."""
    table = v4_table()
    first, first_request = table.open_probe(TARGET, 0, 56, Owner(), None, WALL_NS, 0, 0.0, 1.0)  # type: ignore[misc]
    second, _ = table.open_probe("198.18.7.8", 0, 56, Owner(), None, WALL_NS + 5, 0, 0.0, 1.0)  # type: ignore[misc]
    delivery = table.receive(reply_from(first_request, "198.18.7.8"), [], "198.18.7.8", 10**12)
    assert delivery is not None
    assert delivery[0] is first
    assert isinstance(delivery[1], Reply)
    assert delivery[1].source == "198.18.7.8"
    assert second.state is ProbeState.WAITING


def advice_for(request: bytes, icmp_type: int) -> bytes:
    """A redirect (type 5, code 1: "redirect for host", naming a gateway) or a source quench
    (type 4) quoting *request*."""
    quoted = ipv4(request, source="198.18.1.1", destination=TARGET, ttl=63)[:28]
    code, gateway = (1, socket.inet_aton("198.18.1.3")) if icmp_type == 5 else (0, bytes(4))
    message = bytes([icmp_type, code, 0, 0]) + gateway + quoted
    message = message[:2] + internet_checksum(message).to_bytes(2, "big") + message[4:]
    return ipv4(message, source="198.18.1.2")


@pytest.mark.parametrize("icmp_type", [5, 4], ids=["redirect", "source quench"])
def test_a_redirect_or_source_quench_is_no_verdict(icmp_type: int) -> None:
    """The router forwarded the request (or may have): the probe waits on, and the reply
    that follows answers it -- not a late reply after an error."""
    table = v4_table()
    probe, request = send(table, now=0.0)
    assert table.receive(advice_for(request, icmp_type), [], "198.18.1.2", 0) is None
    assert probe.state is ProbeState.WAITING
    assert (table.advisories, table.ignored) == (1, 0)
    delivery = table.receive(reply_to(request), [], TARGET, 10**12)
    assert delivery is not None
    assert isinstance(delivery[1], Reply)
    assert not delivery[1].duplicate


def test_a_transmit_stamp_times_the_reply_from_the_kernel() -> None:
    table = v4_table()
    opened = table.open_probe(TARGET, 0, 56, Owner(), None, WALL_NS, 0, 0.0, 1.0)
    assert not isinstance(opened, SendError)
    probe, request = opened
    table.await_stamp(probe, 17)
    # SO_EE_ORIGIN_TIMESTAMPING entry for TX id 17, stamped 10 us after the user-space clock.
    extended = struct.pack("IBBBBII", 42, C.SO_EE_ORIGIN_TIMESTAMPING, 0, 0, 0, 0, 17)
    entry = [(C.SOL_SOCKET, C.SO_TIMESTAMPING, struct.pack("qq", *divmod(WALL_NS + 10_000, 10**9)) + bytes(32))]
    entry.append((C.IPPROTO_IP, C.IP_RECVERR, extended))
    assert table.error_queue_entry(b"", entry, "", 0) is None
    assert probe.tx_ns == WALL_NS + 10_000
    delivery = table.receive(reply_to(request), stamp(WALL_NS + 35_000), TARGET, 10**12)
    assert delivery is not None
    reply = delivery[1]
    assert isinstance(reply, Reply)
    assert (reply.rtt, reply.clock) == (25e-6, RttClock.KERNEL)


def test_a_withdrawn_request_gives_its_sequence_back() -> None:
    table = v4_table()
    opened = table.open_probe(TARGET, 0, 56, Owner(), None, WALL_NS, 0, 0.0, 1.0)
    assert not isinstance(opened, SendError)
    table.withdraw(opened[0])
    assert len(table) == 0
    probe, _ = send(table, now=0.0)
    assert probe.sequence == 1


def test_a_refused_request_is_its_own_send_error() -> None:
    table = v4_table()
    opened = table.open_probe(TARGET, 3, 56, Owner(), None, WALL_NS, 0, 0.0, 1.0)
    assert not isinstance(opened, SendError)
    error = table.refuse(opened[0], 1, "Operation not permitted")
    assert error == SendError(TARGET, 1, 3, 1, "Operation not permitted", None)
    assert len(table) == 0
    assert table.expire(2.0) == []  # no timeout for it
    assert table.next_deadline() == math.inf


def test_forgetting_an_owner_leaves_the_others() -> None:
    table = v4_table()
    mine, theirs = Owner(), Owner()
    for owner in (mine, theirs, mine):
        opened = table.open_probe(TARGET, 0, 56, owner, None, WALL_NS, 0, 0.0, 1.0)
        assert not isinstance(opened, SendError)
    table.forget_owner(mine)
    assert [p.owner for p in table.probes.values()] == [theirs]
    # Forgotten probes give no timeout either.
    assert [r.sequence for _, r in table.expire(1.0)] == [2]


def test_sixty_five_thousand_waiting_probes_exhaust_the_sequences_to_one_host() -> None:
    table = v4_table()
    for _ in range(0x10000):
        send(table, now=0.0, timeout=10.0)
    refused = table.open_probe(TARGET, 0, 56, Owner(), None, WALL_NS, 0, 0.0, 10.0)
    assert isinstance(refused, SendError)
    assert "no free sequence number" in refused.message
    assert len(table.expire(10.0)) == 0x10000  # all expired: a sequence may be reused
    probe, _ = send(table, now=10.0)
    assert probe.sequence == 1  # the next in turn, its expired probe evicted
    assert len(table) == 0x10000


class TableMachine(RuleBasedStateMachine):
    """Any mix of sends, replies, duplicates, errors and the passing of time: each probe gets
    exactly one verdict, a reply never counts twice, and the table empties when time runs out."""

    def __init__(self) -> None:
        super().__init__()
        self.table = v4_table()
        self.now = 0.0
        self.requests: list[tuple[Probe, bytes]] = []
        self.verdicts: dict[int, list[ProbeResult]] = {}

    @initialize()
    def start(self) -> None:
        self.table = v4_table()

    def _record(self, delivery: tuple[Probe, ProbeResult] | None) -> None:
        if delivery is None:
            return
        probe, result = delivery
        if isinstance(result, (Timeout, IcmpError)) or (isinstance(result, Reply) and not result.duplicate):
            self.verdicts.setdefault(id(probe), []).append(result)

    @rule(
        timeout=st.sampled_from([0.1, 0.5, 1.0]),
        destination=st.sampled_from([TARGET, "198.18.7.8"]),
        tick=st.integers(0, 2),
    )
    def send(self, timeout: float, destination: str, tick: int) -> None:
        stamp = WALL_NS + tick  # a coarse clock: sends often read the same time
        opened = self.table.open_probe(destination, len(self.requests), 56, Owner(), None, stamp, 0, self.now, timeout)
        assert not isinstance(opened, SendError)
        self.requests.append(opened)

    @precondition(lambda self: self.requests)
    @rule(
        data=st.data(), kind=st.sampled_from(["reply", "reply from elsewhere", "reply from the other target", "error"])
    )
    def answer(self, data: st.DataObject, kind: str) -> None:
        probe, request = data.draw(st.sampled_from(self.requests))
        if kind.startswith("reply"):
            other = "198.18.7.8" if probe.target == TARGET else TARGET
            source = {"reply": probe.target, "reply from elsewhere": "198.18.9.9"}.get(kind, other)
            datagram = reply_to(request)
            datagram = datagram[:12] + socket.inet_aton(source) + datagram[16:]
            delivery = self.table.receive(datagram, [], source, 10**12)
            if delivery is not None and delivery[0] is not probe:
                # a forgotten probe's reply, from the other target's address and sequence
                assert probe.state is ProbeState.FORGOTTEN
                assert source == other
                assert delivery[0].target == other
            elif delivery is not None:
                assert delivery[1].source == source  # type: ignore[union-attr]
            elif probe.state is not ProbeState.FORGOTTEN:
                raise AssertionError(f"a reply to a probe still known was not recognised: {probe.state}")
            self._record(delivery)
        elif probe.target == TARGET:
            self._record(self.table.receive(unreachable_for(request), [], "198.18.1.2", 0))

    @rule(step=st.floats(0.0, 0.7))
    def wait(self, step: float) -> None:
        self.now += step
        for delivery in self.table.expire(self.now):
            self._record(delivery)

    @invariant()
    def one_verdict_each(self) -> None:
        assert all(len(verdicts) == 1 for verdicts in self.verdicts.values())

    @invariant()
    def nothing_is_due_once_expired(self) -> None:
        assert self.table.next_deadline() > self.now

    @invariant()
    def every_stamp_indexed_is_a_known_probe(self) -> None:
        known = {id(probe) for probe in self.table.probes.values()}
        assert {id(probe) for probe in self.table._by_stamp.values()} == known

    def teardown(self) -> None:
        for delivery in self.table.expire(self.now + 10.0):
            self._record(delivery)
        assert len(self.table) == 0
        assert not self.table._by_stamp
        assert self.table.next_deadline() == math.inf
        assert {id(p) for p, _ in self.requests} == set(self.verdicts)


TestTableMachine = TableMachine.TestCase
TestTableMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100), st.sampled_from([TARGET, "", "::1", "198.18.1.2"]))
def test_junk_is_ignored_and_counted(data: bytes, source: str) -> None:
    table = v4_table()
    send(table, now=0.0)
    before = table.ignored
    delivery = table.receive(data, [], source, 0)
    assert delivery is None or delivery[1].target == TARGET
    if delivery is None:
        assert table.ignored == before + 1


@pytest.mark.parametrize("family", [Family.V4, Family.V6])
def test_requests_carry_the_identifier_sequence_and_token(family: Family) -> None:
    table = ProbeTable(family, IDENTIFIER, TOKEN)
    target = "198.18.7.7" if family is Family.V4 else "2001:db8::7"
    opened = table.open_probe(target, 0, 56, Owner(), None, WALL_NS, 0, 0.0, 1.0)
    assert not isinstance(opened, SendError)
    probe, request = opened
    assert request[0] == (8 if family is Family.V4 else 128)
    assert struct.unpack("!HH", request[4:8]) == (IDENTIFIER, 1)
    assert request[16:24] == TOKEN
    assert probe.payload == request[8:]
    assert len(request) == 64


@settings(max_examples=500, deadline=None)
@given(
    st.integers(0, 2**31),
    st.integers(0, 2**31),
    st.integers(0, 255),
    st.sampled_from([C.SO_EE_ORIGIN_TIMESTAMPING, C.SO_EE_ORIGIN_ICMP, C.SO_EE_ORIGIN_LOCAL]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([(C.IPPROTO_IP, C.IP_RECVERR), (C.IPPROTO_IPV6, C.IPV6_RECVERR)]),
)
def test_the_usual_error_queue_entry_reads_as_any_other(
    seconds: int, nanoseconds: int, errno_: int, origin: int, data: int, kind: tuple[int, int]
) -> None:
    """A transmit stamp's two control messages, in the kernel's order (read first) and
    reversed (the general loop): the same report."""
    from trioping._ancillary import parse_error_queue

    stamp = (C.SOL_SOCKET, C.SO_TIMESTAMPING, struct.pack("qq", seconds, nanoseconds) + bytes(32))
    error = (*kind, struct.pack("IBBBBII", errno_, origin, 0, 0, 0, 0, data) + bytes(16))
    usual = parse_error_queue([stamp, error])
    assert usual == parse_error_queue([error, stamp])
    assert usual is not None
    assert (usual.origin, usual.data) == (origin, data)
    assert usual.kernel_ns == ((seconds * 1_000_000_000 + nanoseconds) or None)
