"""Every fault the lab can produce, counted exactly, by the library and by the CLI.

The scripted responder (``tests/lab/responder.py``) answers each echo request as a plan
says; the lab router sends real "Time to live exceeded" and "Destination Host Unreachable"
errors; routes this module adds to the root namespace (only inside 198.18.0.0/15 and
2001:db8::/32, removed again by the test) make the kernel refuse sends.  Each case asserts
the exact counts -- transmitted, received, duplicates, errors, late, invalid, loss -- and
the typed result of every probe.

What is surfaced and what is silent (the design these tests pin down):

* surfaced as :class:`InvalidReply` (counted ``invalid``, never received): a reply that
  matches a probe's identifier and sequence but fails the IPv4 checksum, the token, the
  payload, or is truncated -- and a reply carrying *another* in-flight probe's sequence
  (its payload is not that probe's: ``corrupted payload``);
* ignored silently (the probe simply times out): another identifier, a sequence never
  sent, an unsolicited reply, and IPv6 bad checksums (the kernel drops those itself);
* ICMP errors quoting a probe are ``errors`` (one per probe), valid replies after the
  timeout ``late``, further valid replies ``duplicates`` -- none of them received.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

import trioping
from trioping import (
    Family,
    HostResult,
    IcmpError,
    IcmpErrorKind,
    InvalidReason,
    InvalidReply,
    LateReply,
    PingStats,
    ProbeResult,
    Reply,
    SendError,
    Timeout,
)
from trioping._table import ProbeState

from .conftest import RX_STAMP_MAY_BE_LATE, default_sigint, requires_raw
from .conftest import run_cli as shared_run_cli
from .netlab import NetLab, ResponderFactory

pytestmark = [requires_raw, pytest.mark.netlab]

REPO = Path(__file__).resolve().parent.parent
FAMILIES = [pytest.param(Family.V4, id="v4"), pytest.param(Family.V6, id="v6")]
COUNT = 2
INTERVAL = 0.02
TIMEOUT = 0.3
BOTH = (Family.V4, Family.V6)
KERNEL_HAS_TS_OPT_ID = tuple(int(part) for part in os.uname().release.split(".")[:2] if part.isdigit()) >= (6, 13)


def lab_address(lab: NetLab, role: str, family: Family) -> str:
    value = getattr(lab, f"{role}_v{family.value}")
    assert isinstance(value, str)
    return value


def kinds(results: tuple[ProbeResult, ...]) -> Counter[str]:
    """A multiset of result kinds: ``Reply``, ``Reply(DUP)``, ``InvalidReply(truncated)``..."""
    names: Counter[str] = Counter()
    for result in results:
        name = type(result).__name__
        if isinstance(result, Reply) and result.duplicate:
            name += "(DUP)"
        elif isinstance(result, InvalidReply):
            name += f"({result.reason.value})"
        names[name] += 1
    return names


def assert_counts(
    stats: PingStats,
    *,
    transmitted: int,
    received: int,
    duplicates: int = 0,
    errors: int = 0,
    late: int = 0,
    invalid: int = 0,
) -> None:
    got = (stats.transmitted, stats.received, stats.duplicates, stats.errors, stats.late, stats.invalid)
    assert got == (transmitted, received, duplicates, errors, late, invalid), stats.kept_results
    assert 0.0 <= stats.loss <= 1.0
    if transmitted:
        assert stats.loss == (transmitted - received) / transmitted
    assert received <= transmitted
    assert (stats.rtt_avg is None) == (received == 0)
    if stats.kept_results is not None:  # ping() keeps them; streams hand them over
        assert len(stats.rtts) == received


async def ping_both(
    lab: NetLab, *, count: int = COUNT, interval: float = INTERVAL, wait: float = TIMEOUT
) -> dict[Family, PingStats]:
    """Ping the responder on IPv4 and IPv6 at once (one pinger, one socket per family)."""
    stats: dict[Family, PingStats] = {}
    async with trioping.open_pinger() as pinger:

        async def run(family: Family) -> None:
            host = lab_address(lab, "responder", family)
            stats[family] = await pinger.ping(host, count, interval=interval, timeout=wait)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for family in BOTH:
                    nursery.start_soon(run, family)
    return stats


# -- one plan, every probe the same fault ------------------------------------------------
# Probes 1 and 2 get the fault; probe 3 is dropped, so the run lasts its whole timeout and
# every packet the fault produces (a duplicate right after its reply...) arrives in time.


@dataclass(frozen=True)
class Case:
    plan: str
    received: int = 0
    duplicates: int = 0
    errors: int = 0
    invalid: int = 0
    kinds: tuple[tuple[str, int], ...] = ()
    v6_kinds: tuple[tuple[str, int], ...] | None = None  # when IPv6 differs
    v6_invalid: int | None = None


LOST = ("Timeout", 2)
CASES = [
    Case("ok", received=2, kinds=(("Reply", 2),)),
    Case("drop", kinds=(LOST,)),
    Case("duplicate", received=2, duplicates=2, kinds=(("Reply", 2), ("Reply(DUP)", 2))),
    Case(
        "bad_checksum",
        invalid=2,
        kinds=(("InvalidReply(bad-checksum)", 2), LOST),
        # The receiving kernel drops ICMPv6 with a bad checksum: no socket ever sees it.
        v6_invalid=0,
        v6_kinds=(LOST,),
    ),
    Case("corrupt_payload", invalid=2, kinds=(("InvalidReply(corrupted-payload)", 2), LOST)),
    Case("wrong_token", invalid=2, kinds=(("InvalidReply(wrong-token)", 2), LOST)),
    Case("truncate", invalid=2, kinds=(("InvalidReply(truncated)", 2), LOST)),
    Case("other_identifier", kinds=(LOST,)),
    Case("other_sequence", kinds=(LOST,)),
    Case("unsolicited", kinds=(LOST,)),
    Case("ok+unsolicited", received=2, kinds=(("Reply", 2),)),
    Case("corrupt_payload+ok", received=2, invalid=2, kinds=(("InvalidReply(corrupted-payload)", 2), ("Reply", 2))),
    Case(
        "truncate+duplicate",
        received=2,
        duplicates=2,
        invalid=2,
        kinds=(("InvalidReply(truncated)", 2), ("Reply", 2), ("Reply(DUP)", 2)),
    ),
    Case("unreachable", errors=2, kinds=(("IcmpError", 2),)),
    Case("time_exceeded", errors=2, kinds=(("IcmpError", 2),)),
    # A redirect is advice, not a verdict (iputils' ping neither counts it nor stops waiting):
    # the reply after it answers the probe.  (IPv6 has no such error: the responder sends none.)
    Case("redirect+ok", received=2, kinds=(("Reply", 2),)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.plan for c in CASES])
async def test_every_plan_is_counted_exactly(netlab: NetLab, responder: ResponderFactory, case: Case) -> None:
    r = responder([case.plan, case.plan, "drop"])
    stats = await ping_both(netlab, count=3)
    for family in BOTH:
        s = stats[family]
        v6 = family is Family.V6
        want = Counter(dict(case.v6_kinds if v6 and case.v6_kinds is not None else case.kinds))
        want["Timeout"] += 1  # probe 3
        invalid = case.v6_invalid if v6 and case.v6_invalid is not None else case.invalid
        assert kinds(s.results) == want, (family, s.results)
        assert_counts(
            s,
            transmitted=3,
            received=case.received,
            duplicates=case.duplicates,
            errors=case.errors,
            invalid=invalid,
        )
        responder_address = lab_address(netlab, "responder", family)
        for result in s.results:
            assert result.target == responder_address
            assert result.sequence == result.probe_index + 1
            if isinstance(result, (Reply, InvalidReply, IcmpError)):
                assert result.source == responder_address
            if isinstance(result, Reply):
                assert result.ttl == netlab.remote_reply_ttl
                assert result.size == 64
    with trio.fail_after(2):
        assert len(await r.wait_for_actions_async(6)) == 6


@pytest.mark.parametrize(
    ("plan", "kind", "v4_text", "v6_text"),
    [
        (
            "unreachable",
            IcmpErrorKind.DESTINATION_UNREACHABLE,
            "Destination Host Unreachable",
            "Destination unreachable: Address unreachable",
        ),
        ("time_exceeded", IcmpErrorKind.TIME_EXCEEDED, "Time to live exceeded", "Time exceeded: Hop limit"),
    ],
)
async def test_icmp_errors_from_the_host_are_matched_by_their_quote(
    netlab: NetLab, responder: ResponderFactory, plan: str, kind: IcmpErrorKind, v4_text: str, v6_text: str
) -> None:
    responder(plan)
    stats = await ping_both(netlab)
    for family, text in ((Family.V4, v4_text), (Family.V6, v6_text)):
        errors = [r for r in stats[family].results if isinstance(r, IcmpError)]
        assert [e.sequence for e in errors] == [1, 2]
        assert [e.probe_index for e in errors] == [0, 1]
        for error in errors:
            assert error.kind is kind
            assert error.description == text
            assert error.source == lab_address(netlab, "responder", family)
            assert error.family is family
            assert error.mtu is None


async def test_a_reply_from_another_address_of_the_host_is_counted(netlab: NetLab, responder: ResponderFactory) -> None:
    """The host answers from its second address: a reply all the same (iputils' ping and
    fping count it, and show the address), matched by the stamp and token it carries."""
    responder("other_source")
    stats = await ping_both(netlab, count=2, wait=1.0)
    for family, other in ((Family.V4, netlab.responder_other_v4), (Family.V6, netlab.responder_other_v6)):
        s = stats[family]
        assert_counts(s, transmitted=2, received=2)
        assert [(r.target, r.source) for r in s.replies] == [(lab_address(netlab, "responder", family), other)] * 2


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_marks_a_reply_from_another_address_as_ping_does(
    netlab: NetLab, responder: ResponderFactory, family: Family
) -> None:
    host = lab_address(netlab, "responder", family)
    other = netlab.responder_other_v4 if family is Family.V4 else netlab.responder_other_v6
    responder("other_source")
    done = run_cli(host, "-c", "2", "-i", "0.05", "-W", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()[1:3]
    assert len(lines) == 2, done.stdout
    for n, line in enumerate(lines, 1):
        assert re.fullmatch(
            rf"64 bytes from {re.escape(other)}: icmp_seq={n} ttl=63 time=\S+ ms \(DIFFERENT ADDRESS!\)", line
        )
    ping = shutil.which("ping")
    if ping is not None:  # iputils' own lines, times masked
        responder("other_source")
        real = subprocess.run(
            [ping, "-c", "2", "-i", "0.05", "-W", "1", host], capture_output=True, text=True, timeout=20
        )
        assert [re.sub(r"time=\S+", "time=", line) for line in real.stdout.splitlines()[1:3]] == [
            re.sub(r"time=\S+", "time=", line) for line in lines
        ]


def test_cli_with_several_hosts_marks_a_reply_from_another_address_as_fping_does(
    netlab: NetLab, responder: ResponderFactory
) -> None:
    host, other = netlab.responder_v4, netlab.responder_other_v4
    responder("other_source")
    done = run_cli("-c", "2", "-i", "0.05", "-W", "1", host, "127.0.0.1")
    assert done.returncode == 0, done.stderr
    assert [line.split(",")[0] for line in done.stdout.splitlines() if line.startswith(host)] == [
        f"{host} : [0]",
        f"{host} : [1]",
    ]
    # fping's own shape: the suffix on stderr with no line end, once per reply
    assert done.stderr.startswith(f" [<- {other}] [<- {other}]\n"), done.stderr
    responder("other_source")
    done = run_cli("-W", "1", host, "127.0.0.1")
    # lines in the order the replies came, as fping prints them: loopback may answer first
    assert (sorted(done.stdout.splitlines()), done.stderr) == (
        ["127.0.0.1 is alive", f"{host} is alive"],
        f" [<- {other}]",
    )


# -- timing: delayed and late replies ----------------------------------------------------


class WireTap:
    """Kernel-stamped copies of our echoes as they cross the lab link (an AF_PACKET socket).

    The independent truth for RTTs: the time between a request leaving through
    ``tping0`` and its reply coming back, stamped by the kernel at the device.
    """

    def __init__(self, interface: str) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
        self.sock.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
        self.sock.bind((interface, 0))

    def close(self) -> None:
        self.sock.close()

    def rtts(self, identifier: int) -> dict[tuple[Family, int], float]:
        """(family, sequence) -> seconds from request to first reply, for *identifier*."""
        sent: dict[tuple[Family, int], int] = {}
        rtts: dict[tuple[Family, int], float] = {}
        while True:
            try:
                frame, ancillary, _flags, _address = self.sock.recvmsg(2048, 256, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return rtts
            stamp = next(
                (int.from_bytes(d[:8], sys.byteorder) * 10**9 + int.from_bytes(d[8:16], sys.byteorder))
                for level, kind, d in ancillary
                if (level, kind) == (socket.SOL_SOCKET, 35)
            )
            ethertype = int.from_bytes(frame[12:14], "big")
            if ethertype == 0x0800 and frame[23] == 1:
                family, icmp = Family.V4, frame[14 + (frame[14] & 0x0F) * 4 :]
                request, reply = 8, 0
            elif ethertype == 0x86DD and frame[20] == 58:
                family, icmp = Family.V6, frame[54:]
                request, reply = 128, 129
            else:
                continue
            if len(icmp) < 8 or int.from_bytes(icmp[4:6], "big") != identifier:
                continue
            key = (family, int.from_bytes(icmp[6:8], "big"))
            if icmp[0] == request:
                sent[key] = stamp
            elif icmp[0] == reply and key in sent and key not in rtts:
                rtts[key] = (stamp - sent[key]) / 1e9


async def test_a_delayed_reply_reports_its_delay(netlab: NetLab, responder: ResponderFactory) -> None:
    """``delay:50`` reports 50 ms +- 1 ms, and every RTT is the wire's to a fraction of that."""
    responder("delay:50")
    tap = WireTap(netlab.root_interface)
    try:
        stats: dict[Family, PingStats] = {}
        async with trioping.open_pinger() as pinger:

            async def run(family: Family) -> None:
                host = lab_address(netlab, "responder", family)
                stats[family] = await pinger.ping(host, 5, interval=0.06, timeout=1.0)

            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    for family in BOTH:
                        nursery.start_soon(run, family)
        wire = tap.rtts(pinger.identifier)
    finally:
        tap.close()
    for family in BOTH:
        assert_counts(stats[family], transmitted=5, received=5)
        rtts = sorted(stats[family].rtts)
        # The responder answers 50 ms after the request's arrival (by the kernel's stamp);
        # two lab hops each way add a fraction of a millisecond.
        assert 0.050 <= rtts[2] <= 0.051, (family, rtts)
        for reply in stats[family].replies:
            assert reply.clock.value in ("kernel", RX_STAMP_MAY_BE_LATE) or not KERNEL_HAS_TS_OPT_ID
            assert reply.rtt == pytest.approx(wire[family, reply.sequence], abs=100e-6), (family, reply)
            assert reply.rtt >= 0.050


async def test_a_late_reply_is_reported_never_received(netlab: NetLab, responder: ResponderFactory) -> None:
    # Probe 1 times out at 0.3 s and its reply comes at 0.35 s, while probe 2 (sent at 0.2 s,
    # answered after 0.25 s) keeps the run going until 0.45 s.
    responder(["late:350", "delay:250"])
    stats = await ping_both(netlab, count=2, interval=0.2, wait=0.3)
    for family in BOTH:
        s = stats[family]
        assert_counts(s, transmitted=2, received=1, late=1)
        assert s.loss == 0.5
        timeout, late, reply = s.results
        assert isinstance(timeout, Timeout)
        assert timeout.sequence == 1
        assert isinstance(late, LateReply)
        assert late.sequence == 1
        assert 0.35 <= late.rtt < 0.4
        assert isinstance(reply, Reply)
        assert reply.sequence == 2
        assert not reply.duplicate
        assert s.rtts == (reply.rtt,)


async def test_a_reply_after_the_run_ended_is_ignored(netlab: NetLab, responder: ResponderFactory) -> None:
    r = responder(["late:100", "ok"])
    async with trioping.open_pinger() as pinger:
        stats = await pinger.ping(netlab.responder_v4, count=1, timeout=0.05)
        transport = pinger._transport(Family.V4)
        assert transport.table.probes == {}
        with trio.fail_after(2):
            while not any(line.startswith("delayed ") for line in r.lines):  # noqa: ASYNC110 - a log
                await trio.sleep(0.005)
            await trio.sleep(0.05)  # the late reply reaches the receiver, which ignores it
            after = await pinger.probe(netlab.responder_v4, timeout=TIMEOUT)
        assert transport.table.probes == {}
    assert_counts(stats, transmitted=1, received=0)
    assert isinstance(after, Reply)
    assert after.sequence == 2


async def test_a_reply_carrying_another_probes_sequence_is_not_that_probes_reply(
    netlab: NetLab, responder: ResponderFactory
) -> None:
    """Probe A (seq 1) is answered with seq 1001: probe B's, still waiting for its reply."""
    host = netlab.responder_v4
    responder({"1": "other_sequence", "1001": "delay:100"})
    results: dict[str, list[ProbeResult]] = {"a": [], "b": []}

    async def consume(name: str, stream: trioping.PingStream) -> None:
        async for result in stream:
            results[name].append(result)

    async with trioping.open_pinger() as pinger:
        transport = pinger._transport(Family.V4)
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                transport.table._next_sequence[host] = 1001
                second = await pinger.start_stream(nursery, host, count=1, timeout=TIMEOUT)
                nursery.start_soon(consume, "b", second)
                while second.statistics.transmitted == 0:  # noqa: ASYNC110 - no event to wait on
                    await trio.sleep(0.001)
                transport.table._next_sequence[host] = 1
                first = await pinger.start_stream(nursery, host, count=1, timeout=TIMEOUT)
                nursery.start_soon(consume, "a", first)
    [timeout] = results["a"]
    assert isinstance(timeout, Timeout)
    assert timeout.sequence == 1
    invalid, reply = results["b"]
    assert isinstance(invalid, InvalidReply)
    assert (invalid.sequence, invalid.reason) == (1001, InvalidReason.CORRUPTED)
    assert isinstance(reply, Reply)
    assert reply.sequence == 1001
    assert_counts(first.statistics, transmitted=1, received=0)
    assert_counts(second.statistics, transmitted=1, received=1, invalid=1)


# -- the router: real TTL expiry and unreachable routes -------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
async def test_ttl_1_draws_time_exceeded_from_the_router(netlab: NetLab, family: Family) -> None:
    host = lab_address(netlab, "live_host", family)
    async with trioping.open_pinger() as pinger:
        with trio.fail_after(5):
            stats = await pinger.ping(host, count=2, interval=INTERVAL, timeout=TIMEOUT, ttl=1)
            sane = await pinger.ping(host, count=1, timeout=TIMEOUT)
    assert_counts(stats, transmitted=2, received=0, errors=2)
    assert_counts(sane, transmitted=1, received=1)
    for index, error in enumerate(stats.results):
        assert isinstance(error, IcmpError)
        assert (error.sequence, error.probe_index) == (index + 1, index)
        assert error.source == lab_address(netlab, "router", family)
        assert error.kind is IcmpErrorKind.TIME_EXCEEDED
        expected_type = netlab.time_exceeded_type_v4 if family is Family.V4 else netlab.time_exceeded_type_v6
        assert (error.icmp_type, error.code) == (expected_type, 0)


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_missing_host_draws_unreachable_from_the_router(netlab: NetLab, family: Family) -> None:
    host = lab_address(netlab, "unreachable", family)
    async with trioping.open_pinger() as pinger:
        with trio.fail_after(5):
            stats = await pinger.ping(host, count=3, interval=INTERVAL, timeout=TIMEOUT)
            single = await pinger.probe(host, timeout=TIMEOUT)
    assert_counts(stats, transmitted=3, received=0, errors=3)
    assert isinstance(single, IcmpError)
    for error in (*stats.results, single):
        assert isinstance(error, IcmpError)
        assert error.source == lab_address(netlab, "router", family)
        assert error.kind is IcmpErrorKind.DESTINATION_UNREACHABLE
        if family is Family.V4:
            assert (error.icmp_type, error.code) == (netlab.unreachable_type_v4, netlab.unreachable_code_v4)
            assert error.description == "Destination Host Unreachable"
        else:
            assert (error.icmp_type, error.code) == (netlab.unreachable_type_v6, netlab.unreachable_code_v6)
            assert error.description == "Destination unreachable: No route"


# -- local send errors: routes the kernel refuses, DF too big -----------------------------

# route type -> (errno name, strerror); all prefixes inside the lab ranges.
LOCAL_ROUTES = {
    "unreachable": (9, "EHOSTUNREACH", "No route to host"),
    "prohibit": (10, "EACCES", "Permission denied"),
    "throw": (11, "ENETUNREACH", "Network is unreachable"),
    "blackhole": (12, "EINVAL", "Invalid argument"),
}


def local_route_target(kind: str, family: Family) -> str:
    number = LOCAL_ROUTES[kind][0]
    return f"198.18.{number}.9" if family is Family.V4 else f"2001:db8:{number}::9"


@pytest.fixture
def local_routes(netlab: NetLab) -> Iterator[None]:  # netlab: its session lock guards the root ns
    """Reject routes in the root namespace (only lab prefixes), removed after the test."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    added: list[list[str]] = []
    try:
        for kind, (number, _, _) in LOCAL_ROUTES.items():
            for prefix in (f"198.18.{number}.0/24", f"2001:db8:{number}::/64"):
                argv = [ip, "route", "replace", kind, prefix]  # replace: a killed run's leftover is fine
                subprocess.run(argv, check=True, capture_output=True, timeout=10)
                added.append([ip, "route", "del", kind, prefix])
        yield
    finally:
        for argv in added:
            subprocess.run(argv, check=False, capture_output=True, timeout=10)


@pytest.mark.usefixtures("local_routes")
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", list(LOCAL_ROUTES))
async def test_send_errors_are_counted_per_probe_and_never_fatal(netlab: NetLab, family: Family, kind: str) -> None:
    _, errno_name, text = LOCAL_ROUTES[kind]
    target = local_route_target(kind, family)
    live = lab_address(netlab, "live_host", family)
    async with trioping.open_pinger() as pinger:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                results: dict[str, PingStats] = {}

                async def run(name: str, host: str) -> None:
                    results[name] = await pinger.ping(host, count=3, interval=INTERVAL, timeout=TIMEOUT)

                nursery.start_soon(run, "refused", target)
                nursery.start_soon(run, "live", live)
            after = await pinger.probe(live, timeout=TIMEOUT)
    refused = results["refused"]
    assert_counts(refused, transmitted=3, received=0, errors=3)  # refused sends are loss, as in iputils
    assert refused.send_errors == 3
    assert refused.loss == 1.0
    for index, result in enumerate(refused.results):
        assert isinstance(result, SendError)
        assert (result.target, result.probe_index, result.sequence) == (target, index, index + 1)
        assert result.errno == getattr(errno, errno_name)
        assert result.message == text
    assert_counts(results["live"], transmitted=3, received=3)
    assert isinstance(after, Reply)
    # A refused send never costs the socket its kernel transmit timestamps.
    assert after.clock.value in ("kernel", RX_STAMP_MAY_BE_LATE) or not KERNEL_HAS_TS_OPT_ID


class _Recorder:
    def __init__(self) -> None:
        self.results: list[ProbeResult] = []

    def deliver(self, probe: object, result: ProbeResult) -> None:
        self.results.append(result)

    def abandon(self, error: BaseException) -> None:
        pass


@pytest.mark.usefixtures("local_routes")
@pytest.mark.parametrize("family", FAMILIES)
async def test_a_batch_counts_refused_sends_as_loss(netlab: NetLab, family: Family) -> None:
    """A host we cannot send to is never reported with less than full loss."""
    target = local_route_target("prohibit", family)
    live = lab_address(netlab, "live_host", family)
    async with (
        trioping.open_pinger() as pinger,
        pinger.fanout([target, live], count=3, interval=INTERVAL, timeout=TIMEOUT, rate=None) as batch,
    ):
        items = [item async for item in batch]
    stats = {s.host: s for s in batch.statistics}
    refused = stats[target]
    assert (refused.transmitted, refused.received, refused.errors, refused.send_errors) == (3, 0, 3, 3)
    assert refused.loss == 1.0
    assert (stats[live].transmitted, stats[live].received, stats[live].loss) == (3, 3, 0.0)
    assert sum(isinstance(i, HostResult) and isinstance(i.result, SendError) for i in items) == 3
    progress = batch.progress
    assert (progress.sent, progress.errors, progress.outstanding) == (6, 3, 0)


@pytest.mark.usefixtures("local_routes")
@pytest.mark.parametrize("family", FAMILIES)
def test_cli_fanout_counts_refused_sends_as_loss(netlab: NetLab, family: Family) -> None:
    target = local_route_target("prohibit", family)
    live = lab_address(netlab, "live_host", family)
    done = run_cli("-c", "2", "-i", "0.05", target, live)
    assert done.returncode == 1, done.stderr
    summaries = [line for line in done.stderr.splitlines() if "xmt/rcv/%loss" in line]
    assert re.fullmatch(rf"{re.escape(target)} +: xmt/rcv/%loss = 2/0/100%", summaries[0])
    assert re.match(rf"{re.escape(live)} +: xmt/rcv/%loss = 2/2/0%, min/avg/max = ", summaries[1])
    assert "timed out" not in done.stdout  # it was never sent, so it never timed out


@pytest.mark.usefixtures("local_routes")
@pytest.mark.parametrize("family", FAMILIES)
async def test_a_blackhole_route_costs_the_socket_none_of_its_timestamps(netlab: NetLab, family: Family) -> None:
    """A blackhole answers EINVAL, as an old kernel refusing a timestamp control message does."""
    target = local_route_target("blackhole", family)
    async with trioping.open_pinger() as pinger:
        transport = pinger._transport(family)
        for stamped in (True, False, True):  # per-send stamp flags and id, then none
            owner = _Recorder()
            sent = transport.try_send(target, 0, 56, None, owner, 1.0, trio.current_time(), stamped)
            assert sent is not None
            assert sent.state is ProbeState.FAILED
            [refused] = owner.results
            assert isinstance(refused, SendError)
            assert refused.errno == errno.EINVAL
        assert transport.table.probes == {}
        assert transport.sock.tx_timestamps  # blamed on the route, not on the kernel
        with trio.fail_after(5):
            reply = await pinger.probe(lab_address(netlab, "live_host", family), timeout=TIMEOUT)
    assert isinstance(reply, Reply)
    assert reply.clock.value in ("kernel", RX_STAMP_MAY_BE_LATE) or not KERNEL_HAS_TS_OPT_ID


@pytest.mark.parametrize("family", FAMILIES)
async def test_oversize_with_dont_fragment_is_a_send_error(netlab: NetLab, family: Family) -> None:
    live = lab_address(netlab, "live_host", family)
    too_big = 1500 - 8 - (20 if family is Family.V4 else 40) + 1  # one byte over the link MTU
    async with trioping.open_pinger(pmtu="do") as pinger:
        with trio.fail_after(5):
            stats = await pinger.ping(live, count=2, interval=INTERVAL, timeout=TIMEOUT, size=too_big)
            fits = await pinger.ping(live, count=2, interval=INTERVAL, timeout=TIMEOUT, size=too_big - 1)
    assert_counts(stats, transmitted=2, received=0, errors=2)
    assert stats.loss == 1.0
    assert all(isinstance(r, SendError) and r.errno == errno.EMSGSIZE for r in stats.results)
    assert_counts(fits, transmitted=2, received=2)


# -- many pingers, many processes ------------------------------------------------------------


# Every probe answered twice, except sequences 4 and 6, answered once after 150 ms: a run
# of 6 probes gets 4 duplicates, a run of 4 gets 3, and each run's last reply comes after
# its last duplicate (a duplicate after the run is over is not counted, as with iputils).
LAST_DELAYED = {"4": "delay:150", "6": "delay:150", "default": "duplicate"}


async def test_two_pingers_in_one_process_count_only_their_own(netlab: NetLab, responder: ResponderFactory) -> None:
    r = responder(LAST_DELAYED)
    stats: dict[tuple[str, Family], PingStats] = {}
    async with trioping.open_pinger() as a, trioping.open_pinger() as b:
        b.identifier = a.identifier  # the worst case: only the token tells them apart

        async def run(name: str, pinger: trioping.Pinger, family: Family, count: int) -> None:
            host = lab_address(netlab, "responder", family)
            stats[name, family] = await pinger.ping(host, count=count, interval=0.005, timeout=1.0)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for family in BOTH:
                    nursery.start_soon(run, "a", a, family, 6)
                    nursery.start_soon(run, "b", b, family, 4)
    for family in BOTH:
        assert_counts(stats["a", family], transmitted=6, received=6, duplicates=4)
        assert_counts(stats["b", family], transmitted=4, received=4, duplicates=3)
    assert len(r.action_lines) == 20


run_cli = functools.partial(shared_run_cli, timeout=20)


def summary_of(stdout: str) -> str:
    lines = stdout.splitlines()
    return lines[lines.index(next(line for line in lines if line.endswith(" ping statistics ---"))) + 1]


def test_two_processes_at_once_each_count_only_their_own(netlab: NetLab, responder: ResponderFactory) -> None:
    r = responder(LAST_DELAYED)
    argv = [sys.executable, "-m", "trioping"]
    runs = [(host, count) for host in (netlab.responder_v4, netlab.responder_v6) for count in (6, 4)]
    processes = [
        subprocess.Popen(
            [*argv, host, "-c", str(count), "-i", "0.01", "-W", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for host, count in runs
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=20))
    finally:
        for process in processes:
            process.kill()
            process.wait()
    for (host, count), process, (out, err) in zip(runs, processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert err == ""
        dups = count - 2 if count == 6 else count - 1
        assert re.fullmatch(
            rf"{count} packets transmitted, {count} received, \+{dups} duplicates, 0% packet loss, time \d+ms",
            summary_of(out),
        ), out
        assert sum(line.endswith("(DUP!)") for line in out.splitlines()) == dups
        assert all(host in line for line in out.splitlines()[1 : count + dups + 1])
    assert len(r.action_lines) == 20


# -- the command line: what users see -------------------------------------------------------

MIXED_PLAN = {
    "1": "ok",
    "2": "late:350",
    "3": "duplicate",
    "4": "drop",
    "5": "bad_checksum",
    "6": "corrupt_payload",
    "7": "wrong_token",
    "8": "truncate",
    "9": "other_identifier",
    "10": "other_sequence",
    "11": "unsolicited",
    "12": "unreachable",
    "13": "time_exceeded",
    "14": "delay:50",
    "default": "ok",
}


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_prints_every_fault_like_iputils(netlab: NetLab, responder: ResponderFactory, family: Family) -> None:
    responder(MIXED_PLAN)
    host = lab_address(netlab, "responder", family)
    done = run_cli(host, "-c", "15", "-i", "0.05", "-W", "0.3")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    v4 = family is Family.V4
    assert lines[0] == (f"PING {host} ({host}) 56(84) bytes of data." if v4 else f"PING {host}({host}) 56 data bytes")
    body = lines[1 : lines.index("")]
    reply = rf"64 bytes from {re.escape(host)}: icmp_seq=(\d+) ttl=63 time=([\d.]+) ms"
    replies = [m for line in body if (m := re.fullmatch(reply, line))]
    assert sorted(int(m.group(1)) for m in replies) == [1, 3, 14, 15]
    assert 50 <= next(float(m.group(2)) for m in replies if m.group(1) == "14") < 55  # precisely: above
    dup = [line for line in body if line.endswith(" (DUP!)")]
    assert len(dup) == 1
    assert re.fullmatch(reply + r" \(DUP!\)", dup[0])
    assert body.index(dup[0]) > next(
        i for i, line in enumerate(body) if re.fullmatch(reply, line) and "icmp_seq=3 " in line
    )
    late = [line for line in body if line.endswith(" (LATE!)")]
    assert len(late) == 1
    assert re.fullmatch(rf"64 bytes from {re.escape(host)}: icmp_seq=2 ttl=63 time=35\d ms \(LATE!\)", late[0])
    others = [line for line in body if line.startswith("From ")]
    expected = [
        f"From {host} icmp_seq=6 Invalid reply: corrupted payload",
        f"From {host} icmp_seq=7 Invalid reply: wrong token",
        f"From {host} icmp_seq=8 Invalid reply: truncated",
    ]
    if v4:
        expected.insert(0, f"From {host} icmp_seq=5 Invalid reply: bad checksum")
        expected += [
            f"From {host} icmp_seq=12 Destination Host Unreachable",
            f"From {host} icmp_seq=13 Time to live exceeded",
        ]
    else:
        expected += [
            f"From {host} icmp_seq=12 Destination unreachable: Address unreachable",
            f"From {host} icmp_seq=13 Time exceeded: Hop limit",
        ]
    assert others == expected
    assert len(body) == len(replies) + len(dup) + len(late) + len(others)
    assert lines[lines.index("") + 1] == f"--- {host} ping statistics ---"
    invalid = 4 if v4 else 3
    assert re.fullmatch(
        rf"15 packets transmitted, 4 received, \+1 duplicates, \+{invalid} invalid, \+2 errors, \+1 late, "
        r"73.3333% packet loss, time \d+ms",
        summary_of(done.stdout),
    ), done.stdout
    assert re.fullmatch(r"rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms", lines[-1])


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_ttl_1_prints_time_exceeded_and_exits_1(netlab: NetLab, family: Family) -> None:
    host = lab_address(netlab, "live_host", family)
    router = lab_address(netlab, "router", family)
    done = run_cli(host, "-t", "1", "-c", "2", "-i", "0.05", "-W", "1")
    assert done.returncode == 1, done.stderr
    assert done.stderr == ""
    text = "Time to live exceeded" if family is Family.V4 else "Time exceeded: Hop limit"
    lines = done.stdout.splitlines()
    assert lines[1:3] == [f"From {router} icmp_seq=1 {text}", f"From {router} icmp_seq=2 {text}"]
    assert re.fullmatch(
        r"2 packets transmitted, 0 received, \+2 errors, 100% packet loss, time \d+ms", summary_of(done.stdout)
    )
    assert "rtt min" not in done.stdout


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_missing_host_prints_unreachable_and_exits_1(netlab: NetLab, family: Family) -> None:
    host = lab_address(netlab, "unreachable", family)
    router = lab_address(netlab, "router", family)
    done = run_cli(host, "-c", "3", "-i", "0.05", "-W", "1")
    assert done.returncode == 1, done.stderr
    text = "Destination Host Unreachable" if family is Family.V4 else "Destination unreachable: No route"
    assert done.stdout.splitlines()[1:4] == [f"From {router} icmp_seq={n} {text}" for n in (1, 2, 3)]
    assert re.fullmatch(
        r"3 packets transmitted, 0 received, \+3 errors, 100% packet loss, time \d+ms", summary_of(done.stdout)
    )


@pytest.mark.usefixtures("local_routes")
@pytest.mark.parametrize("family", FAMILIES)
def test_cli_send_errors_are_printed_per_probe(family: Family) -> None:
    target = local_route_target("unreachable", family)
    done = run_cli(target, "-c", "2", "-i", "0.05", "-W", "1")
    assert done.returncode == 1, done.stderr
    # Our own kernel refused the send: reported on stderr as iputils does, not as a reply.
    assert done.stderr.splitlines() == ["trioping: sendmsg: No route to host"] * 2
    assert done.stdout.splitlines()[1] == ""
    # Counted as iputils counts a refused sendmsg: transmitted and lost, not "+N errors".
    assert re.fullmatch(r"2 packets transmitted, 0 received, 100% packet loss, time \d+ms", summary_of(done.stdout))


@pytest.mark.parametrize(("plan", "status"), [("duplicate", 0), ("unreachable", 1)])
def test_sigint_mid_run_prints_the_summary_with_every_count(
    netlab: NetLab, responder: ResponderFactory, plan: str, status: int
) -> None:
    responder(plan)
    process = subprocess.Popen(
        [sys.executable, "-m", "trioping", netlab.responder_v4, "-i", "0.02", "-W", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=default_sigint,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("PING ")
        for _ in range(6):
            assert process.stdout.readline().startswith(("64 bytes", "From "))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == status, err
    assert err == ""
    summary = summary_of(out)
    match = re.fullmatch(r"(\d+) packets transmitted, (\d+) received, \+(\d+) (duplicates|errors), .*", summary)
    assert match is not None, summary
    transmitted, received, extra = (int(match.group(n)) for n in (1, 2, 3))
    if plan == "duplicate":
        assert match.group(4) == "duplicates"
        assert transmitted - 1 <= received <= transmitted
        assert received - 1 <= extra <= received
        assert "rtt min/avg/max/mdev" in out
    else:
        assert match.group(4) == "errors"
        assert received == 0
        assert transmitted - 1 <= extra <= transmitted
        assert "rtt min" not in out


# -- datagram sockets: every ICMP error errno, and the receiver never dies --------------------

DATAGRAM_SCRIPT = """
import json, time
import trio, trioping
from trioping._table import ProbeState
from trioping._packet import Family, encode_echo_request
from trioping._socket import IcmpSocket, SocketKind, SocketOptions

out = {}
# An ICMP error pending on a datagram socket is raised by the next recvmsg (EACCES for an
# administratively prohibited IPv6 destination): read it before the error queue is.
for family, host in ((Family.V4, "198.18.6.9"), (Family.V6, "2001:db8:6::9")):
    sock = IcmpSocket(family, SocketKind.DATAGRAM, 0, SocketOptions())
    sock.send(encode_echo_request(family, 0, 1, bytes(16)), host, ttl=None)
    time.sleep(0.2)
    out[f"v{family.value} received"] = len(sock.receive_batch(8))
    stamps, errors = sock.error_queue_batch(8)
    out[f"v{family.value} queued"] = len(errors)
    sock.close()

async def main():
    async with trioping.open_pinger(socket_kind="datagram") as pinger:
        for host in ("198.18.6.9", "2001:db8:6::9"):
            stats = await pinger.ping(host, 3, interval=0.02, timeout=1.0)
            out[host] = [stats.transmitted, stats.received, stats.errors]
            out[host].append([r.description for r in stats.results])
        out["after"] = (await pinger.ping("198.18.1.2", 2, interval=0.02, timeout=1.0)).received

trio.run(main)
print(json.dumps(out))
"""


def test_datagram_sockets_survive_every_icmp_errno(netlab: NetLab) -> None:
    """In the live host's namespace (its own ping_group_range), through a ``prohibit`` route."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    ns = netlab.live_host_ns
    sysctl = Path("/proc/sys/net/ipv4/ping_group_range")
    read = netlab.netns_exec(ns, "cat", str(sysctl))
    original = subprocess.run(read, capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    routes = [("198.18.6.0/24",), ("2001:db8:6::/64",)]
    try:
        subprocess.run(netlab.netns_exec(ns, "sh", "-c", f"echo '0 0' > {sysctl}"), check=True, timeout=10)
        for (prefix,) in routes:
            subprocess.run([ip, "-n", netlab.router_ns, "route", "add", "prohibit", prefix], check=True, timeout=10)
        done = subprocess.run(
            netlab.netns_exec(ns, sys.executable, "-c", DATAGRAM_SCRIPT),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        for (prefix,) in routes:
            subprocess.run([ip, "-n", netlab.router_ns, "route", "del", "prohibit", prefix], check=False, timeout=10)
        subprocess.run(netlab.netns_exec(ns, "sh", "-c", f"echo '{original}' > {sysctl}"), check=False, timeout=10)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # The pending error made recvmsg fail (skipped, nothing received); its details wait on
    # the error queue next to the send's timestamp.
    assert out["v4 received"] == out["v6 received"] == 0
    assert out["v4 queued"] >= 1
    assert out["v6 queued"] >= 1
    assert out["198.18.6.9"] == [3, 0, 3, ["Packet filtered"] * 3]
    assert out["2001:db8:6::9"] == [3, 0, 3, ["Destination unreachable: Administratively prohibited"] * 3]
    assert out["after"] == 2


@requires_raw
@pytest.mark.parametrize("family", FAMILIES)
async def test_count_with_deadline_sends_until_count_replies(
    netlab: NetLab, responder: ResponderFactory, family: Family
) -> None:
    """As ``ping -c 2 -w 5``: a lost probe is made up for; the run ends at the 2nd reply."""
    responder(["drop", "ok"], max_seconds=30)
    target = netlab.responder_v4 if family is Family.V4 else netlab.responder_v6
    async with trioping.open_pinger() as pinger:
        with trio.fail_after(10):
            stats = await pinger.ping(target, count=2, interval=0.05, timeout=0.3, deadline=trio.current_time() + 5)
    assert (stats.transmitted, stats.received) == (3, 2)
    assert [r.sequence for r in stats.replies] == [2, 3]
    assert stats.elapsed < 5
