"""Trio's rules for lifecycles, through the public API on real loopback sockets: tasks scoped
to their ``async with``, cancel-safe receives, bounded buffers, constant memory, errors that
reach only their own consumer, nothing left to the garbage collector."""

from __future__ import annotations

import gc
import ipaddress
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
import trio
import trio.testing

import trioping
from trioping import HostResult, Outstanding, Reply, Timeout

from .conftest import requires_raw
from .nsutil import RequestCapture

pytestmark = requires_raw


def loopback(count: int, start: int = 0) -> list[str]:
    return [str(ipaddress.IPv4Address("127.3.0.0") + start + i) for i in range(count)]


def sent_requests(capture: RequestCapture, pinger: trioping.Pinger) -> int:
    return len(capture.requests(pinger.token, wait=0.05, expected=100_000))


async def test_a_cancelled_batch_receive_loses_nothing() -> None:
    hosts = loopback(50)
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, rate=1000) as batch:
        got = []
        while True:
            with trio.move_on_after(0.001):
                try:
                    got.append(await batch.__anext__())
                except StopAsyncIteration:
                    break
    assert sorted(item.host for item in got) == sorted(hosts)


async def test_a_slow_consumer_holds_a_stream_to_its_buffer() -> None:
    """Backpressure: sending waits for the consumer instead of queueing without bound."""
    async with trioping.open_pinger() as pinger, pinger.stream("127.0.0.1", interval=0, buffer=8) as stream:
        consumed = 0
        async for _ in stream:
            consumed += 1
            await trio.sleep(0.002)
            assert stream.statistics.transmitted <= consumed + 8
            assert stream.queued + stream.outstanding <= 8
            if consumed == 60:
                break
    assert stream.overflowed == 0


async def test_a_slow_consumer_holds_a_batch_to_its_buffer() -> None:
    async with trioping.open_pinger() as pinger, pinger.fanout(loopback(300), rate=None, buffer=16) as batch:
        consumed = 0
        async for _ in batch:
            consumed += 1
            await trio.sleep(0.0005)
            assert batch.progress.sent <= consumed + 16
    assert consumed == 300


def _statistics_memory() -> int:
    """Bytes held by what the statistics module allocated.  (The queue is bounded by the
    buffer, tested above; the probe table's share is bounded by the send rate times the time
    a probe is kept, and varies with the rate.)"""
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/trioping/_stats.py")])
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_an_endless_stream_keeps_constant_memory() -> None:
    """Statistics are running figures and results are the consumer's: what the statistics
    hold after 12,000 replies is what they held after 2,000 (keeping 8 bytes a reply, as
    the RTT list did, would add 80 KB)."""
    async with trioping.open_pinger() as pinger, pinger.stream("127.0.0.1", interval=0, timeout=0.5) as stream:
        tracemalloc.start()
        try:
            baseline: int | None = None
            async for _ in stream:
                received = stream.statistics.received
                if baseline is None and received >= 2000:
                    baseline = _statistics_memory()
                elif baseline is not None and received >= 12_000:
                    grown = _statistics_memory() - baseline
                    break
        finally:
            tracemalloc.stop()
    assert grown < 8 * 1024, grown


async def test_an_error_in_one_stream_reaches_its_own_block_only() -> None:
    def boom(notice: Outstanding) -> None:
        raise RuntimeError(f"callback failed at {notice.sequence}")

    async with trioping.open_pinger() as pinger:
        async with trio.open_nursery() as nursery:
            healthy: list[trioping.PingStats] = []

            async def sibling() -> None:
                healthy.append(await pinger.ping("::1", count=10, interval=0.01))

            nursery.start_soon(sibling)

            async def failing() -> None:
                async with pinger.stream("127.0.0.1", interval=0, on_outstanding=boom) as stream:
                    async for _ in stream:
                        pass

            with pytest.raises(RuntimeError, match="callback failed"):
                await failing()
        after = await pinger.probe("127.0.0.1")
    assert healthy[0].received == 10
    assert isinstance(after, Reply)


async def test_an_error_in_a_batch_reaches_its_own_block_only() -> None:
    def hosts() -> Iterator[str]:
        yield from loopback(5)
        raise ValueError("the host list broke")

    async with trioping.open_pinger() as pinger:

        async def failing() -> None:
            async with pinger.fanout(hosts(), rate=None) as batch:
                async for _ in batch:
                    pass

        with pytest.raises(ValueError, match="host list broke"):
            await failing()
        stats = await pinger.ping("127.0.0.1", count=2, interval=0.01)
    assert stats.received == 2


async def test_no_probe_is_sent_after_a_stream_block_ends() -> None:
    with RequestCapture(4) as capture:
        async with trioping.open_pinger() as pinger:
            async with pinger.stream("127.0.0.1", interval=0.002) as stream:
                async for result in stream:
                    if result.probe_index == 4:
                        break
            transmitted = stream.statistics.transmitted
            await trio.sleep(0.05)
            assert stream.statistics.transmitted == transmitted
            assert sent_requests(capture, pinger) == transmitted


async def test_no_probe_is_sent_after_a_batch_block_ends() -> None:
    with RequestCapture(4) as capture:
        async with trioping.open_pinger() as pinger:
            async with pinger.fanout(loopback(500), rate=500) as batch:
                async for _ in batch:
                    break
            sent = batch.progress.sent
            await trio.sleep(0.05)
            assert sent < 500
            assert sent_requests(capture, pinger) == sent
            assert [len(t.table.probes) for t in pinger._transports.values()] == [0]


async def test_a_probe_in_a_cancelled_scope_sends_nothing() -> None:
    with RequestCapture(4) as capture:
        async with trioping.open_pinger() as pinger:
            with trio.CancelScope() as scope:
                scope.cancel()
                for _ in range(5):
                    with pytest.raises(trio.Cancelled):
                        await pinger.probe("127.0.0.1")
            assert sent_requests(capture, pinger) == 0
            assert isinstance(await pinger.probe("127.0.0.1"), Reply)


async def test_every_async_call_is_a_checkpoint() -> None:
    async with trioping.open_pinger() as pinger:
        with trio.testing.assert_checkpoints():
            await pinger.probe("127.0.0.1")
        with trio.testing.assert_checkpoints():
            await pinger.ping("127.0.0.1", count=1)
        async with pinger.stream("127.0.0.1", count=2, interval=0) as stream:
            with trio.testing.assert_checkpoints():
                await stream.__anext__()
            await trio.sleep(0.01)
            assert stream.queued == 1
            with trio.testing.assert_checkpoints():
                await stream.__anext__()  # queued already: still a checkpoint
            with trio.testing.assert_checkpoints():
                await stream.aclose()
        async with pinger.fanout(loopback(2), rate=None) as batch:
            with trio.testing.assert_checkpoints():
                await batch.__anext__()
            with trio.testing.assert_checkpoints():
                await batch.aclose()


async def test_everything_works_with_the_garbage_collector_off() -> None:
    gc.disable()
    try:
        async with trioping.open_pinger() as pinger:
            assert isinstance(await pinger.probe("127.0.0.1"), Reply)
            async with pinger.stream("::1", interval=0.001) as stream:
                async for _ in stream:
                    break
            async with pinger.fanout(loopback(20), rate=None) as batch:
                assert len([item async for item in batch]) == 20
            stats = await pinger.ping("127.0.0.1", count=2, interval=0.001)
            await trio.sleep(0.01)
            assert [len(t.table.probes) for t in pinger._transports.values()] == [0, 0]
            assert len(pinger._nursery.child_tasks) == 2  # the receivers, nothing else
        assert stats.received == 2
    finally:
        gc.enable()


async def test_explicit_nursery_forms_run_in_the_callers_nursery() -> None:
    async with trioping.open_pinger() as pinger, trio.open_nursery() as nursery:
        stream = await pinger.start_stream(nursery, "127.0.0.1", count=3, interval=0.001)
        batch = await pinger.start_fanout(nursery, loopback(3), rate=None)
        assert len(nursery.child_tasks) == 2
        results = [r async for r in stream]
        items = [i async for i in batch]
    assert [r.probe_index for r in results] == [0, 1, 2]
    assert sorted(i.host for i in items if isinstance(i, HostResult)) == loopback(3)


async def test_statistics_say_what_they_keep() -> None:
    async with trioping.open_pinger() as pinger:
        kept = await pinger.ping("127.0.0.1", count=2, interval=0.001)
        async with pinger.stream("127.0.0.1", count=2, interval=0.001) as stream:
            handed = [r async for r in stream]
        async with pinger.fanout(["127.0.0.1"], rate=None) as batch:
            [_item] = [i async for i in batch]
    assert len(kept.results) == len(kept.replies) == len(kept.rtts) == 2
    for stats in (stream.statistics, batch.statistics[0]):
        assert stats.received == len(stats.kept_results or ()) or stats.kept_results is None
        with pytest.raises(trioping.ResultsNotKeptError):
            _ = stats.results
        with pytest.raises(trioping.ResultsNotKeptError):
            _ = stats.replies
    assert stream.statistics.received == len(handed) == 2
    assert stream.statistics.rtt_min is not None


def test_results_equal_only_their_own_kind() -> None:
    timeout: object = Timeout("a", 1, 0)
    assert timeout != Outstanding("a", 1, 0)
    assert Timeout("a", 1, 0) == Timeout("a", 1, 0)
    assert Timeout("a", 1, 0) != ("a", 1, 0)
    assert len({Timeout("a", 1, 0), Outstanding("a", 1, 0), Timeout("a", 1, 0)}) == 2
    assert Timeout("a", 1, 0).probe_index == 0
    assert Timeout("a", 1, 0).index("a") == 0  # the tuple method, not shadowed
    with pytest.raises(TypeError):
        Timeout("a", 1)  # type: ignore[call-arg]


async def test_a_batch_without_statistics_keeps_no_host_once_it_is_done() -> None:
    from trioping._fanout import _Host

    def live_hosts() -> int:
        return sum(type(o) is _Host for o in gc.get_objects())

    gc.collect()  # earlier tests' garbage; this batch's records must go without the collector
    gc.disable()
    try:
        await _run_a_batch_without_statistics(live_hosts)
    finally:
        gc.enable()


async def _run_a_batch_without_statistics(live_hosts: Callable[[], int]) -> None:
    async with trioping.open_pinger() as pinger:
        async with pinger.fanout(loopback(300), rate=None, timeout=0.2, keep_statistics=False) as batch:
            items = [item async for item in batch]
        await trio.sleep(1.3)  # past every probe's deadline and its lingering time
        assert live_hosts() == 0
        assert batch.progress.hosts == 300
        with pytest.raises(trioping.ResultsNotKeptError):
            _ = batch.statistics
    assert sorted(item.position for item in items) == list(range(300))
    assert all(isinstance(item, HostResult) and isinstance(item.result, Reply) for item in items)


async def test_nothing_is_sent_once_a_stream_or_batch_has_stopped() -> None:
    """Even when the sender was woken (room in the buffer) just before the consumer left: no
    probe goes out after the stop, so none is left in the tables once the block has ended."""

    def leftovers(pinger: trioping.Pinger, owner: object) -> int:
        return sum(p.owner is owner for t in pinger._transports.values() for p in t.table.probes.values())

    with RequestCapture(4) as capture:
        async with trioping.open_pinger() as pinger:
            at_exit = 0
            for _ in range(20):
                async with pinger.stream("127.0.0.1", interval=0, buffer=2) as stream:
                    async for _ in stream:
                        break
                assert leftovers(pinger, stream) == 0
                at_exit += stream.statistics.transmitted
                async with pinger.fanout(loopback(40), rate=None, buffer=4) as batch:
                    async for _ in batch:
                        batch.receive_nowait()
                        break
                assert leftovers(pinger, batch) == 0
                at_exit += batch.progress.sent
            await trio.sleep(0.05)
            assert sent_requests(capture, pinger) == at_exit


async def test_what_outlives_its_pinger_ends_with_pinger_closed() -> None:
    async with trio.open_nursery() as outer:
        async with trioping.open_pinger() as pinger:
            stream = await pinger.start_stream(outer, "127.0.0.1", interval=0.05, count=100)
            batch = await pinger.start_fanout(outer, ["127.0.0.1"], count=None, interval=0.05)
            first = await stream.__anext__()
        with trio.fail_after(5):
            with pytest.raises(trioping.PingerClosedError):
                async for _ in stream:
                    pass
            with pytest.raises(trioping.PingerClosedError):
                async for _ in batch:
                    pass
    assert isinstance(first, Reply)


async def test_two_tasks_can_read_one_stream() -> None:
    seen: list[int] = []
    async with trioping.open_pinger() as pinger, pinger.stream("127.0.0.1", interval=0.01, count=6) as stream:

        async def reader() -> None:
            async for result in stream:
                seen.append(result.probe_index)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                nursery.start_soon(reader)
    assert sorted(seen) == list(range(6))


async def test_hosts_are_added_only_to_a_monitor() -> None:
    async with trioping.open_pinger() as pinger, pinger.fanout(["127.0.0.1"], rate=None) as batch:
        with pytest.raises(trioping.InvalidArgumentError, match="count=None"):
            batch.add("127.0.0.2")
