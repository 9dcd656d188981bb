"""Monitoring many hosts: a batch with ``count=None`` probes every host at its interval until
its block ends, with hosts added and removed while it runs, in constant memory."""

from __future__ import annotations

import math
import time
from collections import Counter

import trio

import trioping
from trioping import HostError, HostResult, Reply

from .conftest import requires_raw

pytestmark = requires_raw

HOSTS = ["127.4.0.1", "127.4.0.2", "::1"]


async def take(batch: trioping.Fanout, seconds: float) -> list[HostResult]:
    items: list[HostResult] = []
    with trio.move_on_after(seconds):
        async for item in batch:
            assert isinstance(item, HostResult)
            items.append(item)
    return items


async def test_every_host_is_probed_at_its_interval_until_the_block_ends() -> None:
    async with trioping.open_pinger() as pinger:
        async with pinger.fanout(HOSTS, count=None, interval=0.02, timeout=0.5) as batch:
            items = await take(batch, 0.3)
            statistics = {s.host: s for s in batch.statistics}
        sent = batch.progress.sent
        await trio.sleep(0.05)
        assert batch.progress.sent == sent  # nothing after the block
    per_host = Counter(item.host for item in items)
    assert set(per_host) == set(HOSTS)
    assert all(6 <= n <= 20 for n in per_host.values()), per_host
    for host in HOSTS:
        indexes = [item.result.probe_index for item in items if item.host == host]
        assert indexes == list(range(len(indexes)))  # every probe answered, in order
        assert all(isinstance(item.result, Reply) for item in items if item.host == host)
        assert statistics[host].received >= len(indexes)
        assert statistics[host].loss == 0.0 or statistics[host].transmitted > statistics[host].received


async def test_transmitted_counts_each_host_as_statistics_do() -> None:
    async with trioping.open_pinger() as pinger:
        hosts = [*HOSTS, "127.4.0.1", "nonexistent.invalid"]  # one host twice, one that never resolves
        async with pinger.fanout(hosts, count=None, interval=0.02, timeout=0.5) as batch:
            await take_any(batch, 0.1)
            counts = batch.transmitted()
            statistics = batch.statistics
    summed: Counter[str] = Counter()
    for stats in statistics:
        summed[stats.host] += stats.transmitted
    assert counts == dict(summed)
    assert set(counts) == set(HOSTS)
    assert counts["127.4.0.1"] == statistics[0].transmitted + statistics[-1].transmitted


async def take_any(batch: trioping.Fanout, seconds: float) -> None:
    with trio.move_on_after(seconds):
        async for _ in batch:
            pass


async def test_hosts_are_added_and_removed_while_it_runs() -> None:
    async with (
        trioping.open_pinger() as pinger,
        pinger.fanout(HOSTS[:2], count=None, interval=0.02, timeout=0.5) as batch,
    ):
        before = await take(batch, 0.1)
        batch.add("::1")
        batch.add("nonexistent.invalid")
        assert batch.remove("127.4.0.1") == 1
        assert batch.remove("127.4.0.9") == 0
        rest: list[trioping.FanoutItem] = []
        with trio.move_on_after(0.15):
            async for item in batch:
                rest.append(item)
        hosts_now = [s.host for s in batch.statistics]
    assert {item.host for item in before} == {"127.4.0.1", "127.4.0.2"}
    results = [item for item in rest if isinstance(item, HostResult)]
    assert {item.host for item in results} == {"127.4.0.2", "::1"}
    assert [item.host for item in rest if isinstance(item, HostError)] == ["nonexistent.invalid"]
    assert hosts_now == ["127.4.0.2", "::1"]  # the removed host's statistics are gone
    assert next(item.position for item in results if item.host == "::1") in (2, 3)  # after the iterable's


async def test_a_monitor_keeps_its_tables_small() -> None:
    """Probes are forgotten a second (at least) past their deadline: the table holds what
    that time at this rate sends, however long the monitor runs."""
    async with (
        trioping.open_pinger() as pinger,
        pinger.fanout(HOSTS[:2], count=None, interval=0.005, timeout=0.05) as batch,
    ):
        await take(batch, 1.6)
        sizes = [len(t.table.probes) for t in pinger._transports.values()]
    assert batch.progress.sent > 500
    assert max(sizes) < 2 / 0.005 * (0.05 + 1.0) + 50


async def test_a_monitor_that_stalled_skips_the_probes_it_missed_rather_than_bursting_them() -> None:
    """A monitor stopped for many intervals (a suspended process, a paused VM, a loop held
    up) resumes on its schedule, without sending every missed probe at once: after a
    minute's pause, 10,000 hosts at 1/s would otherwise get 600,000 probes in a burst."""
    async with (
        trioping.open_pinger() as pinger,
        pinger.fanout(["127.4.0.9"], count=None, interval=0.02, timeout=0.5) as batch,
    ):
        with trio.fail_after(5):
            while batch.progress.sent < 2:  # noqa: ASYNC110  (the schedule is what is watched)
                await trio.sleep(0.005)
        time.sleep(0.3)  # noqa: ASYNC251  (the point: the whole loop stalls for 15 intervals)
        before, resumed = batch.progress.sent, trio.current_time()
        for _ in range(20):  # every send the engine wants to make now, not later
            await trio.lowlevel.checkpoint()
        burst = batch.progress.sent - before
        due_meanwhile = math.ceil((trio.current_time() - resumed) / 0.02)  # a loaded machine's slow checkpoints
    assert burst <= 2 + due_meanwhile, (burst, due_meanwhile)  # the slot due now and one caught up, no more
