"""Fan-out (``Pinger.fanout``) on real sockets: distinct loopback hosts (every 127.x.y.z
answers on Linux) and the lab's silent and unreachable hosts."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

import trioping
from trioping import (
    Family,
    HostError,
    HostResult,
    IcmpError,
    InvalidArgumentError,
    PingStats,
    Reply,
    ResolutionError,
    RttClock,
    Timeout,
)
from trioping._admission import fast_literal
from trioping._fanout import _Host
from trioping._packet import (
    EchoTemplate,
    decode_ipv4,
    encode_echo_request,
    internet_checksum,
    is_reply_to,
    make_payload,
    peek_ipv4_echo_reply,
)
from trioping._resolve import literal_address
from trioping._stats import StatsAccumulator

from .conftest import RX_STAMP_MAY_BE_LATE, requires_raw
from .netlab import NetLab

RX_STAMP_MAY_BE_LATE_CLOCK = RttClock(RX_STAMP_MAY_BE_LATE)


def loopback(count: int, start: int = 0) -> list[str]:
    """Distinct loopback addresses 127.1.0.0, 127.1.0.1, ... (all answer on Linux)."""
    return [str(ipaddress.IPv4Address("127.1.0.0") + start + i) for i in range(count)]


def transport_tables(pinger: trioping.Pinger) -> list[int]:
    return [len(t.table.probes) + len(t.table._tx_pending) for t in pinger._transports.values()]


async def collect(batch: trioping.Fanout) -> list[trioping.FanoutItem]:
    return [item async for item in batch]


@requires_raw
async def test_every_loopback_host_answers_once_and_the_tables_empty() -> None:
    hosts = loopback(300)
    async with trioping.open_pinger() as pinger:
        async with pinger.fanout(hosts, rate=None, timeout=2) as batch:
            items = await collect(batch)
        assert transport_tables(pinger) == [0]
    assert len(items) == 300
    assert all(isinstance(i, HostResult) and isinstance(i.result, Reply) for i in items)
    results = [i for i in items if isinstance(i, HostResult)]
    assert sorted(i.position for i in results) == list(range(300))
    assert all(i.result.target == i.address == i.host for i in results)
    assert [s.host for s in batch.statistics] == hosts
    assert all((s.transmitted, s.received, s.loss) == (1, 1, 0.0) for s in batch.statistics)
    progress = batch.progress
    assert (progress.hosts, progress.sent, progress.received, progress.outstanding) == (300, 300, 300, 0)
    assert progress.finished
    assert batch.kernel_drops == 0


@requires_raw
async def test_results_stream_as_they_arrive(netlab: NetLab) -> None:
    """A silent host first in the input does not hold back the answers behind it."""
    hosts = [netlab.silent_v4, *loopback(20)]
    timeout = 1.0
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, rate=None, timeout=timeout) as batch:
        start = trio.current_time()
        first_at: float | None = None
        kinds = []
        async for item in batch:
            assert isinstance(item, HostResult)
            first_at = trio.current_time() if first_at is None else first_at
            kinds.append(type(item.result))
    assert first_at is not None
    assert first_at - start < timeout / 2
    assert kinds == [Reply] * 20 + [Timeout]


@requires_raw
async def test_lazy_iterables_are_consumed_as_sending_goes() -> None:
    taken = 0

    def endless() -> Iterator[str]:
        nonlocal taken
        for address in itertools.cycle(loopback(50)):
            taken += 1
            yield address

    async with trioping.open_pinger() as pinger, pinger.fanout(endless(), rate=None, timeout=2) as batch:
        seen = 0
        async for item in batch:
            assert isinstance(item, HostResult)
            seen += 1
            if seen == 1000:
                break
        sent = batch.progress.sent
    assert 1000 <= sent < taken <= sent + 5000  # read ahead a bounded amount, never all


@requires_raw
async def test_async_iterables_are_accepted() -> None:
    async def hosts() -> AsyncIterator[str]:
        for address in loopback(10):
            await trio.lowlevel.checkpoint()
            yield address

    async with trioping.open_pinger() as pinger, pinger.fanout(hosts(), rate=None) as batch:
        items = await collect(batch)
    assert sorted(i.host for i in items) == loopback(10)


@requires_raw
async def test_a_name_that_does_not_resolve_is_one_error_not_the_batch() -> None:
    hosts = ["127.0.0.1", "nonexistent.invalid", "localhost", "::1", "127.0.0.2"]
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, rate=None) as batch:
        items = await collect(batch)
    errors = [i for i in items if isinstance(i, HostError)]
    assert len(errors) == 1
    assert errors[0].host == "nonexistent.invalid"
    assert errors[0].position == 1
    assert isinstance(errors[0].error, ResolutionError)
    replies = {i.host: i for i in items if isinstance(i, HostResult)}
    assert set(replies) == {"127.0.0.1", "localhost", "::1", "127.0.0.2"}
    assert all(isinstance(i.result, Reply) for i in replies.values())
    assert replies["::1"].result.target == "::1"
    assert [s.host for s in batch.statistics] == ["127.0.0.1", "localhost", "::1", "127.0.0.2"]
    assert batch.errors == errors
    assert batch.progress.unresolved == 1


@requires_raw
async def test_names_resolve_concurrently_within_the_bound() -> None:
    hosts = ["localhost"] * 12 + loopback(3)
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, rate=None, resolve_concurrency=3) as batch:
        items = await collect(batch)
    assert len(items) == 15
    assert all(isinstance(i, HostResult) and isinstance(i.result, Reply) for i in items)
    assert [s.host for s in batch.statistics] == hosts
    assert batch._admission.resolving == 0


@requires_raw
async def test_a_family_preference_turns_other_literals_into_errors() -> None:
    async with trioping.open_pinger() as pinger, pinger.fanout(["127.0.0.1", "::1"], family=4, rate=None) as batch:
        items = await collect(batch)
    kinds = {i.host: type(i) for i in items}
    assert kinds == {"127.0.0.1": HostResult, "::1": HostError}
    error = next(i for i in items if isinstance(i, HostError))
    assert isinstance(error.error, InvalidArgumentError)


@requires_raw
async def test_unreachable_and_silent_hosts_are_reported(netlab: NetLab) -> None:
    hosts = [netlab.unreachable_v4, netlab.silent_v4, netlab.live_host_v4, netlab.unreachable_v6]
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, rate=None, timeout=0.5) as batch:
        items = await collect(batch)
        assert transport_tables(pinger) == [0, 0]
    by_host = {i.host: i.result for i in items if isinstance(i, HostResult)}
    unreachable = by_host[netlab.unreachable_v4]
    assert isinstance(unreachable, IcmpError)
    assert unreachable.source == netlab.router_v4
    assert isinstance(by_host[netlab.unreachable_v6], IcmpError)
    assert isinstance(by_host[netlab.silent_v4], Timeout)
    assert isinstance(by_host[netlab.live_host_v4], Reply)
    stats = {s.host: s for s in batch.statistics}
    assert (stats[netlab.unreachable_v4].errors, stats[netlab.unreachable_v4].received) == (1, 0)
    assert stats[netlab.silent_v4].loss == 1.0
    progress = batch.progress
    assert (progress.received, progress.timeouts, progress.errors) == (1, 1, 2)


@requires_raw
async def test_count_gives_a_result_per_probe_and_per_host_statistics() -> None:
    hosts = loopback(5)
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, count=3, interval=0.01, rate=None) as batch:
        items = await collect(batch)
    results = [i for i in items if isinstance(i, HostResult)]
    assert len(results) == 15
    for host in hosts:
        mine = [i.result for i in results if i.host == host]
        assert [r.probe_index for r in mine] == [0, 1, 2]
        assert [r.sequence for r in mine] == [1, 2, 3]
        assert all(isinstance(r, Reply) for r in mine)
    for stats in batch.statistics:
        assert (stats.transmitted, stats.received) == (3, 3)
        assert stats.rtt_min is not None
        assert stats.rtt_max is not None
        assert 0 < stats.rtt_min <= stats.rtt_max


@requires_raw
async def test_a_host_given_twice_is_pinged_twice() -> None:
    async with trioping.open_pinger() as pinger, pinger.fanout(["127.0.0.1", "127.0.0.1"], rate=None) as batch:
        items = await collect(batch)
    assert sorted(i.position for i in items) == [0, 1]
    assert sorted(i.result.sequence for i in items if isinstance(i, HostResult)) == [1, 2]
    assert [s.received for s in batch.statistics] == [1, 1]


@requires_raw
async def test_sending_follows_the_rate_in_input_order(autojump_clock: trio.testing.MockClock) -> None:
    hosts = loopback(10)
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, rate=100) as batch:
        sent_at_half: list[int] = []

        async def watch() -> None:
            await trio.sleep(0.0451)  # slots at 0, 10, 20, 30, 40 ms have come
            sent_at_half.append(batch.progress.sent)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            order = [i.host async for i in batch]
    assert sent_at_half == [5]
    assert order == hosts


@requires_raw
async def test_without_a_rate_everything_goes_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with trioping.open_pinger() as pinger, pinger.fanout(loopback(200), rate=None) as batch:
        start = trio.current_time()
        await collect(batch)
    assert trio.current_time() == start  # no pacing sleep at all (virtual time never moved)


@requires_raw
@pytest.mark.parametrize("probe_timeout", [0.2, 0.3, 0.7])
async def test_repeated_probes_end_in_virtual_time(
    autojump_clock: trio.testing.MockClock, probe_timeout: float
) -> None:
    """Answered probes are kept a timeout past their deadline and then forgotten; the engine
    must wake for exactly that moment (a float mismatch once made it spin, frozen in time)."""

    async def watchdog() -> None:  # in real time: the virtual clock stands still if it spins
        await trio.to_thread.run_sync(time.sleep, 30, abandon_on_cancel=True)
        raise AssertionError("the batch did not end: its engine spins on a past deadline")

    async with trioping.open_pinger() as pinger, trio.open_nursery() as nursery:
        nursery.start_soon(watchdog)
        async with pinger.fanout(loopback(3), count=3, interval=0.5, timeout=probe_timeout, rate=10) as batch:
            items = await collect(batch)
        nursery.cancel_scope.cancel()
    assert len(items) == 9
    assert [s.received for s in batch.statistics] == [3, 3, 3]


@requires_raw
async def test_leaving_early_stops_sending_and_empties_the_tables() -> None:
    async with trioping.open_pinger() as pinger:
        async with pinger.fanout(loopback(500), rate=200) as batch:
            async for _ in batch:
                break
        sent = batch.progress.sent
        assert transport_tables(pinger) == [0]
        await trio.sleep(0.05)
        assert batch.progress.sent == sent < 500


@requires_raw
async def test_kernel_drops_are_surfaced() -> None:
    """A receive buffer forced to its minimum overflows at once: the batch says so."""
    async with (
        trioping.open_pinger(receive_buffer=1) as pinger,
        pinger.fanout(loopback(300), rate=None, timeout=0.3) as batch,
    ):
        items = await collect(batch)
    lost = sum(isinstance(i, HostResult) and isinstance(i.result, Timeout) for i in items)
    assert batch.kernel_drops > 0
    assert batch.progress.kernel_drops == batch.kernel_drops
    assert 0 < lost <= batch.kernel_drops


@requires_raw
async def test_kernel_transmit_stamps_are_the_default_clock() -> None:
    """Fan-out times replies as streams do: kernel TX and RX stamps, unless asked not to."""
    async with trioping.open_pinger() as pinger:
        async with pinger.fanout(loopback(20), rate=None) as batch:
            stamped = [i.result for i in await collect(batch) if isinstance(i, HostResult)]
        async with pinger.fanout(loopback(20), rate=None, tx_timestamps=False) as batch:
            unstamped = [i.result for i in await collect(batch) if isinstance(i, HostResult)]
        assert transport_tables(pinger) == [0]
    assert all(isinstance(r, Reply) for r in stamped + unstamped)
    assert {r.clock for r in stamped if isinstance(r, Reply)} <= {RttClock.KERNEL, RX_STAMP_MAY_BE_LATE_CLOCK}
    assert RttClock.KERNEL in {r.clock for r in stamped if isinstance(r, Reply)}
    assert {r.clock for r in unstamped if isinstance(r, Reply)} <= {RttClock.KERNEL_RX, RX_STAMP_MAY_BE_LATE_CLOCK}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"rate": -1.0},
        {"rate": float("nan")},
        {"count": 0},
        {"timeout": 0},
        {"interval": -1},
        {"size": -1},
        {"ttl": 0},
        {"family": 5},
        {"resolve_concurrency": 0},
    ],
)
async def test_bad_arguments_raise_before_anything_is_sent(kwargs: dict[str, float]) -> None:
    async with trioping.open_pinger() as pinger:
        with pytest.raises(InvalidArgumentError):
            pinger.fanout(["127.0.0.1"], **kwargs)  # type: ignore[arg-type]


async def test_a_string_is_not_a_list_of_hosts() -> None:
    async with trioping.open_pinger() as pinger:
        with pytest.raises(InvalidArgumentError):
            pinger.fanout("127.0.0.1")


async def test_a_closed_pinger_refuses_a_batch() -> None:
    async with trioping.open_pinger() as pinger:
        pass
    with pytest.raises(trio.ClosedResourceError):
        async with pinger.fanout(["127.0.0.1"]):
            pass


def test_default_rate_is_the_documented_one() -> None:
    import inspect

    assert inspect.signature(trioping.Pinger.fanout).parameters["rate"].default == trioping.DEFAULT_RATE


@given(st.ip_addresses())
def test_fast_literals_agree_with_the_resolver(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    for text in {str(address), address.exploded}:
        fast = fast_literal(text)
        if fast is not None:
            assert fast == literal_address(text)


@given(st.text(max_size=40))
def test_fast_literals_never_accept_what_the_resolver_refuses(text: str) -> None:
    fast = fast_literal(text)
    if fast is not None:
        assert fast == literal_address(text)


def test_a_host_record_sets_every_slot_of_its_statistics() -> None:
    """_Host sets StatsAccumulator's slots itself (one call fewer a host): none may be missed."""
    host = _Host("127.0.0.1", 0)
    slots = {name for cls in type(host).__mro__ for name in getattr(cls, "__slots__", ())}
    assert {name for name in slots if not hasattr(host, name)} == {"transport"}  # set when ready
    assert host.snapshot() == StatsAccumulator("127.0.0.1", "", keep_results=False).snapshot()


@given(
    st.lists(st.floats(min_value=1e-6, max_value=10.0), max_size=5),
    st.integers(min_value=0, max_value=3),
    st.booleans(),
)
def test_a_snapshot_is_a_frozen_ping_stats_with_every_field(rtts: list[float], extra: int, keep: bool) -> None:
    """snapshot() fills a PingStats slot by slot without its __init__: it must be one in every
    respect -- its class, each field, equality, hash, frozenness, dataclasses.replace."""
    accumulator = StatsAccumulator("host.example", "127.0.0.1", keep_results=keep)
    for rtt in rtts:
        accumulator.add_rtt(rtt)
    accumulator.transmitted = len(rtts) + extra
    accumulator.errors = accumulator.send_errors = extra
    accumulator.elapsed = 1.5
    stats = accumulator.snapshot()
    n = len(rtts)
    expected = PingStats(
        "host.example",
        "127.0.0.1",
        n + extra,
        n,
        0,
        extra,
        0,
        0,
        extra,
        accumulator.rtt_min if n else None,
        accumulator.rtt_mean if n else None,
        accumulator.rtt_max if n else None,
        stats.rtt_stddev,
        1.5,
        () if keep else None,
    )
    assert type(stats) is PingStats
    assert stats == expected
    assert hash(stats) == hash(expected)
    assert [getattr(stats, f.name) for f in dataclasses.fields(PingStats)] == list(dataclasses.astuple(expected))
    assert (stats.rtt_stddev is None) == (n == 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.host = "other"  # type: ignore[misc]
    assert dataclasses.replace(stats, host="other").host == "other"


def _kernel_reply(request: bytes, ttl: int, source: str = "127.9.8.7") -> bytes:
    """What a Linux host answers to *request*: type 0, checksum recomputed, behind a header."""
    reply = b"\x00" + request[1:2] + b"\x00\x00" + request[4:]
    reply = reply[:2] + internet_checksum(reply).to_bytes(2, "big") + reply[4:]
    header = bytes([0x45, 0, 0, 0, 0, 0, 0, 0, ttl, 1, 0, 0]) + socket.inet_aton(source) + bytes(4)
    return header + reply


def _fast_path_accepts(datagram: bytes, identifier: int, sequence: int, payload: bytes, reply_checksum: int) -> bool:
    """The receiver's fast path (Transport._on_reply_fast) for the probe (identifier, sequence)."""
    peeked = peek_ipv4_echo_reply(datagram)
    if peeked is None:
        return False
    peeked_identifier, peeked_sequence, _ttl, checksum = peeked
    return (peeked_identifier, peeked_sequence) == (identifier, sequence) and is_reply_to(
        datagram, checksum, payload, reply_checksum
    )


def _assert_decoder_calls_it_a_good_reply(datagram: bytes, payload: bytes) -> None:
    peeked = peek_ipv4_echo_reply(datagram)
    decoded = decode_ipv4(datagram)
    assert peeked is not None
    assert isinstance(decoded, trioping._packet.EchoMessage)
    assert decoded.is_reply
    assert decoded.checksum_ok is True
    assert decoded.payload == payload
    assert peeked[:3] == (decoded.identifier, decoded.sequence, decoded.ttl)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(1, 255),
    st.integers(0, 200),
    st.integers(0, 2**64 - 1),
)
def test_the_reply_fast_path_takes_every_correct_reply(
    identifier: int, sequence: int, ttl: int, size: int, stamp: int
) -> None:
    request, payload, reply_checksum = EchoTemplate(Family.V4, identifier, b"TOKEN123", size).build(sequence, stamp)
    assert request == encode_echo_request(Family.V4, identifier, sequence, make_payload(size, stamp, b"TOKEN123"))
    assert payload == request[8:]
    datagram = _kernel_reply(request, ttl)
    # A reply checksum of 0 (mod 0xFFFF) is left to the decoder (see is_reply_to).
    assert _fast_path_accepts(datagram, identifier, sequence, payload, reply_checksum) == (reply_checksum != 0)
    _assert_decoder_calls_it_a_good_reply(datagram, payload)


@pytest.mark.parametrize("written", [0x0000, 0xFFFF])
def test_an_all_zero_reply_is_left_to_the_decoder(written: int) -> None:
    """Identifier 0, sequence 0, no payload: the reply is all zeros but its checksum, which
    RFC 1071 writes 0xFFFF; 0x0000 is the other zero, and wrong."""
    request, payload, reply_checksum = EchoTemplate(Family.V4, 0, b"TOKEN123", 0).build(0, 0)
    assert (payload, reply_checksum) == (b"", 0)
    datagram = bytearray(_kernel_reply(request, 64))
    datagram[22:24] = written.to_bytes(2, "big")
    assert not _fast_path_accepts(bytes(datagram), 0, 0, payload, reply_checksum)
    decoded = decode_ipv4(bytes(datagram))
    assert isinstance(decoded, trioping._packet.EchoMessage)
    assert decoded.checksum_ok is (written == 0xFFFF)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 80),
    st.integers(0, 2**64 - 1),
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), min_size=1, max_size=3),
    st.integers(0, 3),
)
def test_the_reply_fast_path_takes_only_what_the_decoder_calls_a_good_reply(
    identifier: int, sequence: int, size: int, stamp: int, flips: list[tuple[int, int]], cut: int
) -> None:
    """Damage a correct reply anywhere (header, checksum, payload, length): whatever the fast
    path still accepts, the full decoder must call a correct reply with that same payload."""
    request, payload, reply_checksum = EchoTemplate(Family.V4, identifier, b"TOKEN123", size).build(sequence, stamp)
    damaged = bytearray(_kernel_reply(request, 64))
    for position, mask in flips:
        damaged[position % len(damaged)] ^= mask
    datagram = bytes(damaged[: len(damaged) - cut])
    if _fast_path_accepts(datagram, identifier, sequence, payload, reply_checksum):
        _assert_decoder_calls_it_a_good_reply(datagram, payload)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 40),
    st.binary(min_size=20, max_size=20),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
)
def test_the_reply_fast_path_ignores_the_ip_header_but_nothing_else(
    identifier: int, sequence: int, size: int, ip_header: bytes, checksum: int, stamp: int
) -> None:
    """Any IPv4 header bytes (options aside) and any ICMP checksum in front of the probe's
    own payload: what the fast path accepts, the decoder calls a correct reply."""
    _request, payload, reply_checksum = EchoTemplate(Family.V4, identifier, b"TOKEN123", size).build(sequence, stamp)
    header = b"\x45" + ip_header[1:9] + b"\x01" + ip_header[10:]
    icmp = b"\x00\x00" + checksum.to_bytes(2, "big") + identifier.to_bytes(2, "big") + sequence.to_bytes(2, "big")
    datagram = header + icmp + payload
    accepted = _fast_path_accepts(datagram, identifier, sequence, payload, reply_checksum)
    if accepted:
        _assert_decoder_calls_it_a_good_reply(datagram, payload)
    decoded = decode_ipv4(datagram)
    assert isinstance(decoded, trioping._packet.EchoMessage)
    assert accepted == (decoded.checksum_ok is True and reply_checksum != 0)
