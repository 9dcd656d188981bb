"""Bad input of every kind: one clear line and exit 2 from the CLI, a documented exception
from the API, and no exception at all from the receiver, whatever bytes arrive."""

from __future__ import annotations

import math
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trioping
from trioping import (
    Family,
    IcmpError,
    InvalidArgumentError,
    InvalidReply,
    LateReply,
    ProbeResult,
    Reply,
    ResolutionError,
    RttClock,
    TriopingError,
)
from trioping import _constants as C
from trioping._cli import main as cli_main
from trioping._packet import encode_echo_request, internet_checksum, make_payload
from trioping._table import Probe, ProbeTable

from .conftest import requires_raw

REPO = Path(__file__).resolve().parent.parent

# -- the command line -------------------------------------------------------------------------
# None of these reaches the network: names that cannot exist and RFC 6761 ``.invalid``
# names are refused by trioping's resolver before any query (test_resolver_sends_no_query).
CLI_CASES = [
    (["nonexistent.invalid", "-c", "1"], "nonexistent.invalid: Name or service not known"),
    ([""], "empty host name"),
    (["   "], "empty host name"),
    (["exa mple"], "exa mple: Name or service not known"),
    (["a" * 64 + ".invalid"], "Name or service not known"),
    (["foo..bar"], "foo..bar: Name or service not known"),
    ([":::1"], ":::1: Name or service not known"),
    (["1::2::3"], "1::2::3: Name or service not known"),
    (["--", "-x"], "-x: Name or service not known"),
    (["fe80::1%lo"], "scoped IPv6 addresses are not supported"),
    (["127.0.0.1", "-c", "0"], "count must be a positive integer, not 0"),
    (["127.0.0.1", "-c", "-1"], "count must be a positive integer, not -1"),
    (["127.0.0.1", "-c", "1.5"], "'-c' / '--count'"),
    (["127.0.0.1", "-i", "-1"], "interval must be >= 0 seconds"),
    (["127.0.0.1", "-i", "nan"], "interval must be a finite number of seconds, not nan"),
    (["127.0.0.1", "-i", "1e400"], "interval must be a finite number of seconds, not inf"),
    (["127.0.0.1", "-i", "soon"], "'-i' / '--interval'"),
    (["127.0.0.1", "-W", "0"], "timeout must be > 0 seconds"),
    (["127.0.0.1", "-W", "-2"], "timeout must be > 0 seconds"),
    (["127.0.0.1", "-W", "inf"], "timeout must be a finite number of seconds, not inf"),
    (["127.0.0.1", "-w", "0"], "deadline must be > 0 seconds"),
    (["127.0.0.1", "-w", "-1"], "deadline must be > 0 seconds"),
    (["127.0.0.1", "-w", "nan"], "deadline must be a finite number of seconds, not nan"),
    (["127.0.0.1", "-s", "-1"], "invalid packet size -1"),
    (["127.0.0.1", "-s", "65508"], "invalid packet size 65508: must be 0 to 65507"),
    (["::1", "-s", "65528"], "invalid packet size 65528: must be 0 to 65527"),
    (["127.0.0.1", "-s", "99999999999999999999"], "must be 0 to 65507"),
    (["127.0.0.1", "-s", "1.5"], "'-s' / '--size'"),
    (["127.0.0.1", "-t", "0"], "ttl must be an integer from 1 to 255, not 0"),
    (["127.0.0.1", "-t", "256"], "ttl must be an integer from 1 to 255, not 256"),
    (["127.0.0.1", "-t", "-1"], "ttl must be an integer from 1 to 255, not -1"),
    (["127.0.0.1", "-t", "x"], "'-t' / '--ttl'"),
    (["-4", "::1"], "::1: Address family for hostname not supported"),
    (["-6", "127.0.0.1"], "127.0.0.1: Address family for hostname not supported"),
    (["-4", "-6", "127.0.0.1"], "only one of -4 and -6"),
    (["127.0.0.1", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize(("args", "message"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli_main(args)
    out = capsys.readouterr()
    assert status == 2
    assert out.out == ""
    assert out.err.count("\n") == 1, out.err
    assert out.err.startswith("trioping: ")
    assert message in out.err


@pytest.mark.parametrize("args", [["exa mple"], ["127.0.0.1", "-i", "nan"], ["-4", "::1"], ["127.0.0.1", "-t", "x"]])
def test_the_installed_entry_point_agrees(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trioping", *args], capture_output=True, text=True, timeout=30, check=False, cwd=REPO
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("trioping: ")
    assert "Traceback" not in done.stderr


# -- the library --------------------------------------------------------------------------------

Call = Callable[[trioping.Pinger], Awaitable[object]]


def _ping(host: Any = "127.0.0.1", **kwargs: Any) -> Call:
    return lambda pinger: pinger.ping(host, **kwargs)


def _probe(host: Any = "127.0.0.1", **kwargs: Any) -> Call:
    return lambda pinger: pinger.probe(host, **kwargs)


async def _stream(pinger: trioping.Pinger, host: Any, kwargs: dict[str, Any]) -> object:
    async for result in pinger.stream(host, **kwargs):
        return result
    return None


API_CASES: list[tuple[str, Call, type[Exception], str]] = [
    ("unresolvable", _ping("nonexistent.invalid", count=1), ResolutionError, "Name or service not known"),
    ("empty", _ping(""), InvalidArgumentError, "empty host name"),
    ("blank", _probe("  "), InvalidArgumentError, "empty host name"),
    ("space", _probe("exa mple"), ResolutionError, "Name or service not known"),
    ("long label", _probe("a" * 64 + ".example"), ResolutionError, "Name or service not known"),
    ("garbage v6", _probe(":::1"), ResolutionError, "Name or service not known"),
    ("scoped", _probe("fe80::1%lo"), InvalidArgumentError, "scoped"),
    ("not a host", _ping(127001), InvalidArgumentError, "host must be a str"),
    ("bytes host", _probe(b"127.0.0.1"), InvalidArgumentError, "host must be a str"),
    ("count 0", _ping(count=0), InvalidArgumentError, "count"),
    ("count -1", _ping(count=-1), InvalidArgumentError, "count"),
    ("count 1.5", _ping(count=1.5), InvalidArgumentError, "count"),
    ("count True", _ping(count=True), InvalidArgumentError, "count"),
    ("count None", _ping(count=None), InvalidArgumentError, "count"),
    ("stream count 0", lambda p: _stream(p, "127.0.0.1", {"count": 0}), InvalidArgumentError, "count"),
    ("interval -1", _ping(interval=-1), InvalidArgumentError, "interval"),
    ("interval nan", _ping(interval=math.nan), InvalidArgumentError, "interval"),
    ("interval inf", _ping(interval=math.inf), InvalidArgumentError, "interval"),
    ("interval str", _ping(interval="1"), InvalidArgumentError, "interval"),
    ("timeout 0", _probe(timeout=0), InvalidArgumentError, "timeout"),
    ("timeout -1", _ping(timeout=-1), InvalidArgumentError, "timeout"),
    ("timeout nan", _probe(timeout=math.nan), InvalidArgumentError, "timeout"),
    ("deadline nan", _ping(deadline=math.nan), InvalidArgumentError, "deadline"),
    ("deadline str", _ping(deadline="5"), InvalidArgumentError, "deadline"),
    ("size -1", _probe(size=-1), InvalidArgumentError, "size"),
    ("size v4 max+1", _probe(size=65508), InvalidArgumentError, "65507"),
    ("size v6 max+1", _probe("::1", size=65528), InvalidArgumentError, "65527"),
    ("size 1.5", _ping(size=1.5), InvalidArgumentError, "size"),
    ("size str", _ping(size="56"), InvalidArgumentError, "size"),
    ("ttl 0", _probe(ttl=0), InvalidArgumentError, "ttl"),
    ("ttl 256", _ping(ttl=256), InvalidArgumentError, "ttl"),
    ("ttl True", _ping(ttl=True), InvalidArgumentError, "ttl"),
    ("ttl 1.0", _probe(ttl=1.0), InvalidArgumentError, "ttl"),
    ("-4 with ::1", _ping("::1", family=4), InvalidArgumentError, "Address family"),
    ("-6 with 127.0.0.1", _probe("127.0.0.1", family=6), InvalidArgumentError, "Address family"),
    ("family 5", _ping(family=5), InvalidArgumentError, "family"),
    ("family str", _probe(family="4"), InvalidArgumentError, "family"),
]


@requires_raw
@pytest.mark.parametrize(("call", "error", "message"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
async def test_api_bad_input_raises_the_documented_exception(call: Call, error: type[Exception], message: str) -> None:
    async with trioping.open_pinger() as pinger:
        with pytest.raises(error, match=message) as caught:
            await call(pinger)
        assert isinstance(caught.value, TriopingError)
        assert all(not t.table.probes for t in pinger._transports.values())
        # Nothing was sent, and the pinger is as good as new.
        assert isinstance(await pinger.probe("127.0.0.1"), Reply)


OPEN_CASES: list[tuple[dict[str, Any], str]] = [
    ({"socket_kind": "bogus"}, "socket_kind"),
    ({"tos": 256}, "tos"),
    ({"tos": -1}, "tos"),
    ({"pmtu": "maybe"}, "pmtu"),
    ({"receive_buffer": 0}, "receive_buffer"),
    ({"receive_buffer": -1}, "receive_buffer"),
    ({"receive_buffer": "big"}, "receive_buffer"),
    ({"receive_buffer": 2**31}, "receive_buffer"),
]


@pytest.mark.parametrize(("kwargs", "message"), OPEN_CASES, ids=[str(k) for k, _ in OPEN_CASES])
async def test_bad_pinger_options_raise_invalid_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        async with trioping.open_pinger(**kwargs):
            pytest.fail("the block must not run")


@requires_raw
async def test_an_unknown_interface_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="nonexistent0"):
        async with trioping.open_pinger(interface="nonexistent0") as pinger:
            await pinger.probe("127.0.0.1")


# -- the probe table: arbitrary bytes, no socket ---------------------------------------------


class _Recorder:
    """A probe owner (the table only names it in what it returns)."""

    def deliver(self, probe: Probe, result: ProbeResult) -> None:
        raise AssertionError("the table returns results; it never calls owners itself")

    def abandon(self, error: BaseException) -> None:
        pass


TOKEN = bytes(range(8))
V4_TARGET = "198.18.3.2"
V6_TARGET = "2001:db8:3::2"
_SENT_WALL_NS = 1_700_000_000_000_000_000


def _table(family: Family, *, datagram: bool = False) -> ProbeTable:
    """A table with three probes in flight (sequences 1-3) to the lab responder; the third
    has timed out, so replies to it are late."""
    table = ProbeTable(
        family, 0x1234, TOKEN, kernel_owns_identifier=datagram, delivers_ip_header=family is Family.V4 and not datagram
    )
    target = V4_TARGET if family is Family.V4 else V6_TARGET
    owner = _Recorder()
    for sequence in (1, 2, 3):
        timeout = 0.5 if sequence == 3 else 100.0
        opened = table.open_probe(
            target, sequence - 1, 56, owner, None, _SENT_WALL_NS + sequence, time.monotonic_ns(), 0.0, timeout
        )
        assert not isinstance(opened, trioping.SendError)
        probe, _request = opened
        assert probe.sequence == sequence
    assert [type(result) for _probe, result in table.expire(0.7)] == [trioping.Timeout]
    return table


def _feed(table: ProbeTable, data: bytes, ancillary: list[tuple[int, int, bytes]], source: str) -> list[ProbeResult]:
    delivery = table.receive(data, ancillary, source, time.monotonic_ns())
    return [] if delivery is None else [delivery[1]]


def _feed_error_queue(
    table: ProbeTable, data: bytes, ancillary: list[tuple[int, int, bytes]], source: str
) -> list[ProbeResult]:
    delivery = table.error_queue_entry(data, ancillary, source, time.monotonic_ns())
    return [] if delivery is None else [delivery[1]]


def _ipv4(payload: bytes, *, source: str = V4_TARGET, ttl: int = 63) -> bytes:
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
        socket.inet_aton("198.18.1.1"),
    )
    return header + payload


def _reply_v4(sequence: int, *, identifier: int = 0x1234) -> bytes:
    payload = make_payload(56, 1_700_000_000_000_000_000 + sequence, TOKEN)
    request = encode_echo_request(Family.V4, identifier, sequence, payload)
    message = bytes([0, 0, 0, 0]) + request[4:]
    checksum = internet_checksum(message)
    return _ipv4(message[:2] + checksum.to_bytes(2, "big") + message[4:])


_LEVELS = st.sampled_from([C.SOL_SOCKET, C.IPPROTO_IP, C.IPPROTO_IPV6, C.SOL_RAW, 0xFFFF])
_KINDS = st.sampled_from(
    [C.SO_TIMESTAMPNS, C.SO_TIMESTAMPING, C.SO_RXQ_OVFL, C.IP_TTL, C.IPV6_HOPLIMIT, C.IP_RECVERR, C.IPV6_RECVERR, 0]
)
ANCILLARY = st.lists(st.tuples(_LEVELS, _KINDS, st.binary(max_size=64)), max_size=4)
ICMP_TYPES = st.sampled_from([0, 3, 4, 5, 8, 11, 12, 1, 2, 128, 129, 255])


@st.composite
def icmp_messages(draw: st.DrawFn) -> bytes:
    """An ICMP message with a type we handle and arbitrary rest: reaches the deep paths."""
    head = bytes([draw(ICMP_TYPES), draw(st.integers(0, 255))])
    rest = draw(st.binary(max_size=120))
    if draw(st.booleans()):  # our identifier and a sequence in the table, half the time
        rest = rest[:2] + struct.pack("!HH", 0x1234, draw(st.integers(0, 4))) + rest[6:]
    message = head + rest
    if draw(st.booleans()) and len(message) >= 4:
        message = message[:2] + internet_checksum(message[:2] + b"\0\0" + message[4:]).to_bytes(2, "big") + message[4:]
    return message


DATAGRAMS = st.one_of(
    st.binary(max_size=200),
    icmp_messages(),
    icmp_messages().map(_ipv4),
    st.binary(max_size=100).map(_ipv4),
)
SOURCES = st.sampled_from([V4_TARGET, V6_TARGET, "", "198.18.3.3", "::"])


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([(Family.V4, False), (Family.V4, True), (Family.V6, False), (Family.V6, True)]),
    DATAGRAMS,
    ANCILLARY,
    SOURCES,
)
def test_the_table_never_raises_on_arbitrary_datagrams(
    kind: tuple[Family, bool], data: bytes, ancillary: list[tuple[int, int, bytes]], source: str
) -> None:
    family, datagram = kind
    table = _table(family, datagram=datagram)
    results = _feed(table, data, ancillary, source)
    results += _feed_error_queue(table, data, ancillary, source)
    assert len(results) <= 2
    assert sum(isinstance(r, Reply) and not r.duplicate for r in results) <= 1


@st.composite
def mutated_replies(draw: st.DrawFn) -> bytes:
    reply = bytearray(_reply_v4(draw(st.integers(1, 3))))
    for _ in range(draw(st.integers(0, 3))):
        reply[draw(st.integers(0, len(reply) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(reply)))
    return bytes(reply[: cut if draw(st.booleans()) else len(reply)])


def test_a_plain_reply_answers_its_probe() -> None:
    table = _table(Family.V4)
    assert _outcome(_feed(table, _reply_v4(1), [], V4_TARGET)) == [("Reply", 1, False, 64, 63, V4_TARGET)]
    assert _outcome(_feed(table, _reply_v4(1), [], V4_TARGET)) == [("Reply", 1, True, 64, 63, V4_TARGET)]
    assert _feed(table, _reply_v4(2, identifier=0x4321), [], V4_TARGET) == []
    assert _outcome(_feed(table, _reply_v4(3), [], V4_TARGET)) == [("LateReply", 3, 64, 63, V4_TARGET)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(-2_000_000_000, 9_000_000_000), st.integers(11_000_000_000, 30_000_000_000)))
def test_a_reply_is_timed_from_its_stamps_unless_the_wall_clock_stepped(rtt_ns: int) -> None:
    """Receive-stamp RTTs (the probe was sent 10 s ago by the monotonic clock; figures near
    that bound are left out, being timing): the kernel's figure, or the monotonic one when
    the kernel's is impossible."""
    stamp = struct.pack("qq", *divmod(_SENT_WALL_NS + 1 + rtt_ns, 1_000_000_000))
    ancillary = [(C.SOL_SOCKET, C.SO_TIMESTAMPNS, stamp)]
    table = _table(Family.V4)
    table.probes[V4_TARGET, 1].sent_mono_ns = time.monotonic_ns() - 10_000_000_000
    [reply] = _feed(table, _reply_v4(1), ancillary, V4_TARGET)
    assert isinstance(reply, Reply)
    if 0 < rtt_ns <= 9_000_000_000:
        assert (reply.clock, reply.rtt) == (RttClock.KERNEL_RX, rtt_ns / 1e9)
    else:
        assert reply.clock is RttClock.MONOTONIC


def _outcome(results: list[ProbeResult]) -> list[tuple[Any, ...]]:
    outcome: list[tuple[Any, ...]] = []
    for result in results:
        row: tuple[Any, ...] = (type(result).__name__, result.sequence)
        if isinstance(result, Reply):
            row += (result.duplicate, result.size, result.ttl, result.source)
        elif isinstance(result, LateReply):
            row += (result.size, result.ttl, result.source)
        elif isinstance(result, InvalidReply):
            row += (result.reason,)
        elif isinstance(result, IcmpError):
            row += (result.icmp_type, result.code)
        outcome.append(row)
    return outcome


@settings(max_examples=1500, deadline=None)
@given(st.lists(mutated_replies(), min_size=1, max_size=4), ANCILLARY)
def test_mutated_replies_count_at_most_once(datagrams: list[bytes], ancillary: list[tuple[int, int, bytes]]) -> None:
    """Valid replies with a few bytes changed or cut: never more than one reply counted per
    probe, and a counted one carries exactly the probe's payload."""
    table = _table(Family.V4)
    results: list[ProbeResult] = []
    for data in datagrams:
        # A raw IPv4 socket's recvmsg address is the IP header's source (raw_recvmsg).
        source = socket.inet_ntoa(data[12:16]) if len(data) >= 20 else ""
        results += _feed(table, data, ancillary, source)
    firsts = [r.sequence for r in results if isinstance(r, Reply) and not r.duplicate]
    assert len(firsts) == len(set(firsts))
    assert 3 not in firsts  # probe 3 had expired: its replies are late, never received
    for result in results:
        if isinstance(result, (Reply, LateReply)):
            assert any(_same_echo(data, result.sequence) for data in datagrams)


def _same_echo(datagram: bytes, sequence: int) -> bool:
    """*datagram* is an intact reply to probe *sequence*, whatever its IP header says."""
    header = (datagram[0] & 0x0F) * 4 if datagram else 0
    message = datagram[header:]
    expected = _reply_v4(sequence)[20:]
    return len(message) == len(expected) and message[4:] == expected[4:] and internet_checksum(message) == 0


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=120), st.lists(st.tuples(_LEVELS, _KINDS, st.binary(max_size=80)), max_size=3), SOURCES)
def test_the_error_queue_reader_never_raises(data: bytes, ancillary: list[tuple[int, int, bytes]], source: str) -> None:
    for family in (Family.V4, Family.V6):
        table = _table(family, datagram=True)
        assert len(_feed_error_queue(table, data, ancillary, source)) <= 1


@pytest.mark.parametrize(
    "name", ["nonexistent.invalid", "A.B.INVALID.", "-x", "1::2::3", "foo..bar", "a" * 64 + ".example"]
)
async def test_resolver_sends_no_query(name: str) -> None:
    """Impossible and ``.invalid`` names fail without reaching getaddrinfo (so no DNS query
    leaves the machine, from the tests or from users' typos)."""

    class NoLookups(trio.abc.HostnameResolver):
        async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"getaddrinfo was asked for {args[0]!r}")

        async def getnameinfo(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("getnameinfo")

    trio.socket.set_custom_hostname_resolver(NoLookups())
    try:
        with pytest.raises(ResolutionError, match="Name or service not known"):
            await trioping.resolve(name)
    finally:
        trio.socket.set_custom_hostname_resolver(None)
