"""iputils-shaped text and the counting rules, without sockets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioping import Family, IcmpError, InvalidReason, InvalidReply, LateReply, Reply, RttClock, SendError, Timeout
from trioping._format import error_line, header, reply_line, rtt_ms, summary_lines
from trioping._stats import StatsAccumulator


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(41e-6, "0.041"), (0.000999, "0.999"), (0.00123, "1.23"), (0.0123, "12.3"), (0.123, "123"), (1.5, "1500")],
)
def test_rtt_ms_matches_iputils_precision(seconds: float, text: str) -> None:
    assert rtt_ms(seconds) == text


def test_headers() -> None:
    assert header("127.0.0.1", "127.0.0.1", Family.V4, 56) == "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data."
    assert header("::1", "::1", Family.V6, 56) == "PING ::1(::1) 56 data bytes"


def reply(**overrides: object) -> Reply:
    fields: dict[str, object] = {
        "target": "127.0.0.1",
        "source": "127.0.0.1",
        "sequence": 1,
        "probe_index": 0,
        "size": 64,
        "ttl": 64,
        "rtt": 41e-6,
        "clock": RttClock.KERNEL,
    }
    fields.update(overrides)
    return Reply(**fields)  # type: ignore[arg-type]


def test_reply_lines() -> None:
    assert reply_line(reply(), "127.0.0.1", "127.0.0.1") == "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.041 ms"
    assert reply_line(reply(), "localhost", "127.0.0.1") == (
        "64 bytes from localhost (127.0.0.1): icmp_seq=1 ttl=64 time=0.041 ms"
    )
    assert reply_line(reply(duplicate=True), "127.0.0.1", "127.0.0.1").endswith("time=0.041 ms (DUP!)")
    late = LateReply("127.0.0.1", "127.0.0.1", 1, 0, 64, 64, 1.2, RttClock.KERNEL)
    assert reply_line(late, "127.0.0.1", "127.0.0.1").endswith("time=1200 ms (LATE!)")


def test_replies_from_elsewhere_are_marked_as_iputils_marks_them() -> None:
    """Another address: ``(DIFFERENT ADDRESS!)`` after ``(DUP!)``.  A multicast group's
    members all answer from their own addresses, and every answer after the first is a
    duplicate: iputils marks neither (``-v`` aside)."""
    other = reply(source="198.18.3.3", duplicate=True)
    assert reply_line(other, "198.18.3.2", "198.18.3.2").endswith("time=0.041 ms (DUP!) (DIFFERENT ADDRESS!)")
    member = reply(target="ff0e::1", source="2001:db8:3::2", duplicate=True)
    assert reply_line(member, "ff0e::1", "ff0e::1").endswith("icmp_seq=1 ttl=64 time=0.041 ms")


def test_error_lines_use_iputils_words() -> None:
    unreachable = IcmpError("198.18.2.99", "198.18.2.1", 3, 2, Family.V4, 3, 1)
    assert error_line(unreachable) == "From 198.18.2.1 icmp_seq=3 Destination Host Unreachable"
    ttl = IcmpError("198.18.2.2", "198.18.1.2", 1, 0, Family.V4, 11, 0)
    assert error_line(ttl) == "From 198.18.1.2 icmp_seq=1 Time to live exceeded"
    v6 = IcmpError("2001:db8:2::9", "2001:db8:2::2", 1, 0, Family.V6, 1, 3)
    assert error_line(v6) == "From 2001:db8:2::2 icmp_seq=1 Destination unreachable: Address unreachable"
    hop = IcmpError("2001:db8:2::2", "2001:db8:1::2", 1, 0, Family.V6, 3, 0)
    assert error_line(hop) == "From 2001:db8:1::2 icmp_seq=1 Time exceeded: Hop limit"
    assert IcmpError("x", "y", 1, 0, Family.V6, 2, 0, 1280).mtu == 1280
    assert IcmpError("x", "y", 1, 0, Family.V4, 3, 4, 1400).description == "Frag needed and DF set (mtu = 1400)"


def test_summary_block_and_counting_rules() -> None:
    acc = StatsAccumulator("localhost", "127.0.0.1")
    acc.transmitted = 4  # the refused send counts, as iputils counts it
    acc.add(reply(rtt=0.000041))
    acc.add(reply(rtt=0.000050, sequence=2))
    acc.add(reply(rtt=0.000050, sequence=2, duplicate=True))
    acc.add(IcmpError("127.0.0.1", "127.0.0.1", 3, 2, Family.V4, 3, 1))
    acc.add(LateReply("127.0.0.1", "127.0.0.1", 3, 2, 64, 64, 3.0, RttClock.KERNEL))
    acc.add(InvalidReply("127.0.0.1", "127.0.0.1", 3, 2, InvalidReason.BAD_CHECKSUM))
    acc.add(Timeout("127.0.0.1", 3, 2))
    acc.add(SendError("127.0.0.1", 4, 3, 105, "No buffer space available"))
    acc.elapsed = 1.0014
    stats = acc.snapshot()
    assert (stats.received, stats.duplicates, stats.errors, stats.late, stats.invalid) == (2, 1, 2, 1, 1)
    assert stats.send_errors == 1
    assert stats.loss == 0.5
    assert stats.rtt_stddev == pytest.approx(4.5e-6)
    assert summary_lines(stats) == [  # a refused send is transmitted, an error, and lost
        "--- localhost ping statistics ---",
        "4 packets transmitted, 2 received, +1 duplicates, +1 invalid, +2 errors, +1 late, "
        "50% packet loss, time 1001ms",
        "rtt min/avg/max/mdev = 0.041/0.045/0.050/0.005 ms",
    ]


def test_summary_without_replies_has_no_rtt_line() -> None:
    acc = StatsAccumulator("198.18.3.3", "198.18.3.3")
    acc.transmitted = 2
    acc.add(Timeout("198.18.3.3", 1, 0))
    lines = summary_lines(acc.snapshot())
    assert lines[1].startswith("2 packets transmitted, 0 received, 100% packet loss")
    assert len(lines) == 2


@given(st.lists(st.floats(1e-6, 10.0), min_size=1, max_size=50))
def test_stddev_is_population_standard_deviation(rtts: list[float]) -> None:
    acc = StatsAccumulator("h", "h")
    acc.transmitted = len(rtts)
    for rtt in rtts:
        acc.add(reply(rtt=rtt))
    stats = acc.snapshot()
    mean = sum(rtts) / len(rtts)
    assert stats.rtt_stddev == pytest.approx(math.sqrt(sum((r - mean) ** 2 for r in rtts) / len(rtts)), abs=1e-12)
    assert 0.0 <= stats.loss <= 1.0
    assert stats.received <= stats.transmitted
