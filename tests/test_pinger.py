"""The library on real raw sockets, over loopback (127.0.0.0/8 and ::1)."""

from __future__ import annotations

import ipaddress
import os

import pytest
import trio
import trio.testing

import trioping
from trioping import (
    Family,
    InvalidArgumentError,
    Reply,
    ResolutionError,
    RttClock,
    Timeout,
)
from trioping._table import Probe, ProbeState, compute_rtt

from .conftest import RX_STAMP_MAY_BE_LATE, requires_raw
from .nsutil import RequestCapture

pytestmark = requires_raw

KERNEL_HAS_TS_OPT_ID = tuple(int(part) for part in os.uname().release.split(".")[:2] if part.isdigit()) >= (6, 13)


@pytest.mark.parametrize(("host", "family"), [("127.0.0.1", Family.V4), ("::1", Family.V6)])
async def test_probe_returns_a_reply_with_kernel_rtt(host: str, family: Family) -> None:
    async with trioping.open_pinger() as pinger:
        result = await pinger.probe(host, timeout=2)
        assert pinger.socket_kind(family) is trioping.SocketKind.RAW
    assert isinstance(result, Reply)
    assert (result.target, result.source, result.sequence, result.probe_index) == (host, host, 1, 0)
    assert result.size == 64
    assert result.ttl == 64
    assert not result.duplicate
    assert 0 < result.rtt < 1.0
    if KERNEL_HAS_TS_OPT_ID:
        assert result.clock.value in ("kernel", RX_STAMP_MAY_BE_LATE)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_ping_counts_every_reply(host: str) -> None:
    async with trioping.open_pinger() as pinger:
        stats = await pinger.ping(host, count=4, interval=0.01, timeout=2)
    assert (stats.transmitted, stats.received, stats.duplicates, stats.errors) == (4, 4, 0, 0)
    assert (stats.late, stats.invalid, stats.loss) == (0, 0, 0.0)
    assert [r.sequence for r in stats.replies] == [1, 2, 3, 4]
    assert [r.probe_index for r in stats.replies] == [0, 1, 2, 3]
    assert len(stats.rtts) == 4
    assert stats.rtt_min is not None
    assert stats.rtt_max is not None
    assert 0 < stats.rtt_min <= stats.rtt_max
    assert stats.address == host


async def test_distinct_loopback_addresses_answer_as_themselves() -> None:
    targets = [f"127.0.{i}.{j}" for i in (0, 1) for j in (2, 3, 4)]
    async with trioping.open_pinger() as pinger:
        results = {t: await pinger.probe(t, timeout=2) for t in targets}
    for target, result in results.items():
        assert isinstance(result, Reply)
        assert result.source == target


@pytest.mark.parametrize(("size", "family"), [(0, 4), (7, 4), (8, 6), (15, 4), (16, 6), (1472, 4), (9000, 6)])
async def test_sizes_from_zero_to_jumbo(size: int, family: int) -> None:
    host = "127.0.0.1" if family == 4 else "::1"
    async with trioping.open_pinger() as pinger:
        stats = await pinger.ping(host, count=2, interval=0.01, size=size)
    assert stats.received == 2
    assert {r.size for r in stats.replies} == {size + 8}


async def test_largest_ipv4_echo_is_sent_and_answered() -> None:
    async with trioping.open_pinger() as pinger:
        result = await pinger.probe("127.0.0.1", size=65507)
    assert isinstance(result, Reply)
    assert result.size == 65515


@pytest.mark.parametrize(("host", "family"), [("127.0.0.1", 4), ("::1", 6)])
async def test_ttl_is_applied_per_probe(host: str, family: int) -> None:
    with RequestCapture(family) as capture:
        async with trioping.open_pinger() as pinger:
            with_ttl = await pinger.probe(host, ttl=7)
            without = await pinger.probe(host)
            sent = capture.requests(pinger.token, expected=2)
    # On loopback the reply's TTL is the host's own default; the request carries ours.
    assert isinstance(with_ttl, Reply)
    assert isinstance(without, Reply)
    assert [(request.sequence, request.ttl) for request in sent] == [(1, 7), (2, 64)]


async def test_two_pingers_never_count_each_others_replies() -> None:
    results: dict[str, trioping.PingStats] = {}

    async def run(name: str, pinger: trioping.Pinger, count: int) -> None:
        results[name] = await pinger.ping("127.0.0.1", count=count, interval=0.002, timeout=2)

    async with trioping.open_pinger() as a, trioping.open_pinger() as b:
        assert (a.identifier, a.token) != (b.identifier, b.token)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a", a, 30)
            nursery.start_soon(run, "b", b, 17)
    assert (results["a"].transmitted, results["a"].received, results["a"].duplicates) == (30, 30, 0)
    assert (results["b"].transmitted, results["b"].received, results["b"].duplicates) == (17, 17, 0)
    assert results["a"].invalid == results["b"].invalid == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_pingers_sharing_an_identifier_are_told_apart_by_token(host: str) -> None:
    """The 1-in-65,536 case: same identifier, same host, same sequences, same moment."""
    async with trioping.open_pinger() as a, trioping.open_pinger() as b:
        b.identifier = a.identifier
        results: list[trioping.PingStats] = []

        async def run(pinger: trioping.Pinger) -> None:
            results.append(await pinger.ping(host, count=20, interval=0.002))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, a)
            nursery.start_soon(run, b)
        family = Family.V6 if ":" in host else Family.V4
        assert a._transport(family).ignored >= 20
    for stats in results:
        assert (stats.transmitted, stats.received, stats.duplicates, stats.invalid) == (20, 20, 0, 0)


async def test_two_streams_on_one_pinger_to_one_host_get_their_own_sequences() -> None:
    async with trioping.open_pinger() as pinger, trio.open_nursery() as nursery:
        stats: list[trioping.PingStats] = []

        async def run() -> None:
            stats.append(await pinger.ping("127.0.0.1", count=10, interval=0.001))

        nursery.start_soon(run)
        nursery.start_soon(run)
    assert [s.received for s in stats] == [10, 10]
    sequences = [r.sequence for s in stats for r in s.replies]
    assert len(set(sequences)) == 20


async def test_sequence_numbers_wrap_around() -> None:
    async with trioping.open_pinger() as pinger:
        transport = pinger._transport(Family.V4)
        transport.table._next_sequence["127.0.0.1"] = 0xFFFE
        stats = await pinger.ping("127.0.0.1", count=4, interval=0.001)
    assert [r.sequence for r in stats.replies] == [0xFFFE, 0xFFFF, 0, 1]
    assert stats.received == 4


async def test_accepts_ipaddress_objects_and_names() -> None:
    async with trioping.open_pinger() as pinger:
        by_object = await pinger.probe(ipaddress.ip_address("127.0.0.1"))
        by_name = await pinger.ping("localhost", count=1)
    assert isinstance(by_object, Reply)
    assert by_name.received == 1
    assert by_name.host == "localhost"


async def test_family_preference_is_honoured() -> None:
    async with trioping.open_pinger() as pinger:
        with pytest.raises(InvalidArgumentError, match="Address family"):
            await pinger.probe("::1", family=4)
        result = await pinger.probe("localhost", family=4)
    assert isinstance(result, Reply)
    assert result.source == "127.0.0.1"


async def test_resolution_failure_is_raised_bare_not_in_a_group() -> None:
    with pytest.raises(ResolutionError, match=r"nonexistent\.invalid"):
        async with trioping.open_pinger() as pinger:
            await pinger.ping("nonexistent.invalid", count=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": 0},
        {"count": -1},
        {"interval": -0.5},
        {"interval": float("nan")},
        {"timeout": 0},
        {"timeout": -1},
        {"ttl": 0},
        {"ttl": 256},
        {"size": -1},
        {"size": 65508, "family": 4},
        {"deadline": float("nan")},
        {"family": 5},
    ],
)
async def test_bad_arguments_raise_before_sending(kwargs: dict[str, float]) -> None:
    async with trioping.open_pinger() as pinger:
        with pytest.raises(InvalidArgumentError):
            await pinger.ping("127.0.0.1", **kwargs)  # type: ignore[arg-type]
        assert pinger._transports == {}


async def test_cancelling_a_ping_leaves_the_pinger_usable_and_the_table_empty() -> None:
    async with trioping.open_pinger() as pinger:
        with trio.move_on_after(0.05):
            await pinger.ping("127.0.0.1", count=1000, interval=0.01)
        transport = pinger._transport(Family.V4)
        await trio.testing.wait_all_tasks_blocked()
        assert transport.table.probes == {}
        assert transport.table._tx_pending == {}
        stats = await pinger.ping("127.0.0.1", count=2, interval=0.01)
    assert stats.received == 2


async def _sent_after_a_pause(stream: trioping.PingStream) -> tuple[int, int]:
    await trio.sleep(0.03)
    before = stream.statistics.transmitted
    await trio.sleep(0.05)
    return before, stream.statistics.transmitted


async def test_leaving_a_stream_block_stops_it() -> None:
    async with trioping.open_pinger() as pinger:
        async with pinger.stream("127.0.0.1", interval=0.005) as stream:
            async for result in stream:
                assert isinstance(result, Reply)
                if result.probe_index == 2:
                    break
        before, after = await _sent_after_a_pause(stream)
        assert before == after
        assert stream.statistics.received >= 3
        assert pinger._transport(Family.V4).table.probes == {}


async def test_a_stream_is_only_iterated_inside_its_block() -> None:
    """Its probes live as long as its ``async with``: no block, no probes (no cleanup left
    to the garbage collector)."""
    async with trioping.open_pinger() as pinger:
        with pytest.raises(TypeError, match=r"async with pinger\.stream"):
            async for _ in pinger.stream("127.0.0.1"):
                pass
        assert pinger._transports == {}
        assert len(pinger._nursery.child_tasks) == 0


async def test_a_cancelled_receive_loses_nothing_and_the_stream_goes_on() -> None:
    async with trioping.open_pinger() as pinger, pinger.stream("127.0.0.1", interval=0.2, count=4) as stream:
        first = await stream.__anext__()
        with trio.move_on_after(0.05) as scope:
            await stream.__anext__()  # the next probe is 150 ms away: cancelled while waiting
        assert scope.cancelled_caught
        rest = [result async for result in stream]
    assert [r.probe_index for r in [first, *rest]] == [0, 1, 2, 3]
    assert all(isinstance(r, Reply) for r in rest)


async def test_every_receive_is_a_checkpoint() -> None:
    async with trioping.open_pinger() as pinger, pinger.stream("127.0.0.1", interval=0, count=50) as stream:
        await trio.sleep(0.05)  # every result queued by now
        assert stream.queued > 1
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await stream.__anext__()
        assert len([r async for r in stream]) == 50


async def test_cancelling_the_consumer_leaves_the_block_and_stops_the_stream() -> None:
    async with trioping.open_pinger() as pinger:
        with trio.move_on_after(0.05):
            async with pinger.stream("::1", interval=0.005) as stream:
                async for _ in stream:
                    pass
        before, after = await _sent_after_a_pause(stream)
        assert before == after > 0


async def test_stream_statistics_are_live() -> None:
    async with trioping.open_pinger() as pinger:
        async with pinger.stream("::1", count=3, interval=0.01) as stream:
            snapshots = [stream.statistics.received async for _ in stream]
        # Live counts: never behind what was yielded (a slow consumer may see them ahead).
        assert len(snapshots) == 3
        assert all(seen >= position for position, seen in enumerate(snapshots, 1))
        assert snapshots == sorted(snapshots)
        assert snapshots[-1] == 3
        assert stream.statistics.transmitted == 3
        assert stream.outstanding == 0


async def test_deadline_ends_the_run() -> None:
    async with trioping.open_pinger() as pinger:
        stats = await pinger.ping("127.0.0.1", count=100, interval=0.02, deadline=trio.current_time() + 0.1)
    assert 3 <= stats.transmitted <= 7
    # The deadline may cancel the run while the last probe is still in flight.
    assert stats.transmitted - 1 <= stats.received <= stats.transmitted


async def test_module_level_ping() -> None:
    stats = await trioping.ping("127.0.0.1", count=2, interval=0.01)
    assert stats.received == 2


async def test_closed_pinger_refuses_work() -> None:
    async with trioping.open_pinger() as pinger:
        pass
    with pytest.raises(trioping.PingerClosedError):
        await pinger.probe("127.0.0.1")
    with pytest.raises(trioping.PingerClosedError):
        await pinger.ping("127.0.0.1", count=1)
    with pytest.raises(trio.ClosedResourceError):  # also a trio.ClosedResourceError
        pinger.stream("127.0.0.1")


def _probe_sent(mono_ns: int, wall_ns: int, tx_ns: int | None) -> Probe:
    probe = Probe("127.0.0.1", 1, 0, b"", 0, wall_ns, mono_ns, owner=None)  # type: ignore[arg-type]
    probe.tx_ns = tx_ns
    return probe


def test_rtt_prefers_kernel_stamps() -> None:
    probe = _probe_sent(mono_ns=1_000_000, wall_ns=5_000_000_000, tx_ns=5_000_010_000)
    assert compute_rtt(probe, rx_wall_ns=5_000_030_000, now_mono_ns=1_100_000) == (20e-6, RttClock.KERNEL)
    probe.tx_ns = None
    assert compute_rtt(probe, rx_wall_ns=5_000_030_000, now_mono_ns=1_100_000) == (30e-6, RttClock.KERNEL_RX)
    assert compute_rtt(probe, rx_wall_ns=None, now_mono_ns=1_100_000) == (100e-6, RttClock.MONOTONIC)


@pytest.mark.parametrize("step_ns", [-3_600_000_000_000, -100_000, 3_600_000_000_000])
def test_rtt_survives_a_wall_clock_step(step_ns: int) -> None:
    probe = _probe_sent(mono_ns=0, wall_ns=10**18, tx_ns=10**18 + 1000)
    rtt, clock = compute_rtt(probe, rx_wall_ns=10**18 + 50_000 + step_ns, now_mono_ns=60_000)
    assert rtt == 60e-6
    assert clock is RttClock.MONOTONIC


async def test_timeout_is_loss_in_virtual_time(autojump_clock: trio.testing.MockClock, netlab: object) -> None:
    from tests.netlab import NetLab

    assert isinstance(netlab, NetLab)
    async with trioping.open_pinger() as pinger:
        result = await pinger.probe(netlab.silent_v4, timeout=5)
        stats = await pinger.ping(netlab.silent_v6, count=3, interval=1, timeout=5)
    assert isinstance(result, Timeout)
    assert (stats.transmitted, stats.received, stats.loss) == (3, 0, 1.0)
    assert all(isinstance(r, Timeout) for r in stats.results)
    assert stats.rtt_avg is None


class _Owner:
    def __init__(self) -> None:
        self.results: list[trioping.ProbeResult] = []

    def deliver(self, probe: Probe, result: trioping.ProbeResult) -> None:
        self.results.append(result)

    def abandon(self, error: BaseException) -> None:
        pass


async def test_running_out_of_sequence_numbers_is_a_send_error_not_a_crash() -> None:
    async with trioping.open_pinger() as pinger:
        transport = pinger._transport(Family.V4)
        owner = _Owner()
        waiting = [Probe("127.0.0.1", seq, seq, b"", 0, 0, 0, owner) for seq in range(0x10000)]
        assert all(p.state is ProbeState.WAITING for p in waiting)
        transport.table.probes.update({("127.0.0.1", p.sequence): p for p in waiting})
        sent = transport.try_send("127.0.0.1", 0, 56, None, owner, 1.0, trio.current_time())
        assert sent is not None
        assert sent.state is ProbeState.FAILED
        [result] = owner.results
        assert isinstance(result, trioping.SendError)
        assert "no free sequence number" in result.message
        for probe in waiting:
            transport.table.forget(probe)
        stats = await pinger.ping("127.0.0.1", count=1)
    assert stats.received == 1
