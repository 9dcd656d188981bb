"""Counting rules, in one place, so the library, the CLI and fan-out agree on every number.

* transmitted: probes the kernel accepted.
* received: first valid reply to a probe still waiting; never more than transmitted.
* duplicates: further valid replies to an answered probe.
* errors: ICMP errors matched to a probe, plus local send errors.
* late: valid replies after the probe timed out; invalid: replies failing a check.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

from ._results import IcmpError, InvalidReply, LateReply, ProbeResult, Reply, SendError, Timeout


@dataclass(frozen=True, slots=True)
class PingStats:
    """Statistics of a run against one destination.  RTTs are in seconds.

    ``rtt_stddev`` is the *population* standard deviation (iputils' ``mdev``); the RTT
    fields are None when nothing was received.  ``loss`` is a fraction in [0, 1].
    """

    host: str
    address: str
    transmitted: int = 0
    received: int = 0
    duplicates: int = 0
    errors: int = 0
    late: int = 0
    invalid: int = 0
    rtts: tuple[float, ...] = ()
    elapsed: float = 0.0
    results: tuple[ProbeResult, ...] = ()

    @property
    def loss(self) -> float:
        if self.transmitted == 0:
            return 1.0 if self.errors else 0.0
        return (self.transmitted - self.received) / self.transmitted

    @property
    def replies(self) -> tuple[Reply, ...]:
        return tuple(r for r in self.results if isinstance(r, Reply) and not r.duplicate)

    @property
    def rtt_min(self) -> float | None:
        return min(self.rtts) if self.rtts else None

    @property
    def rtt_max(self) -> float | None:
        return max(self.rtts) if self.rtts else None

    @property
    def rtt_avg(self) -> float | None:
        return math.fsum(self.rtts) / len(self.rtts) if self.rtts else None

    @property
    def rtt_stddev(self) -> float | None:
        if not self.rtts:
            return None
        mean = math.fsum(self.rtts) / len(self.rtts)
        return math.sqrt(math.fsum((r - mean) ** 2 for r in self.rtts) / len(self.rtts))

    @property
    def is_alive(self) -> bool:
        return self.received > 0


class StatsAccumulator:
    """Mutable running counts for one destination; :meth:`snapshot` freezes them.

    ``keep_results`` is off for endless streams, where keeping every result would grow
    without bound, and for fan-out, which streams its results instead; the RTTs are kept
    either way, in an array (a float a reply, and nothing for the garbage collector to
    scan: a fan-out batch holds one accumulator per host).
    """

    __slots__ = (
        "address",
        "duplicates",
        "elapsed",
        "errors",
        "host",
        "invalid",
        "late",
        "received",
        "results",
        "rtts",
        "transmitted",
    )

    def __init__(self, host: str, address: str, keep_results: bool = True) -> None:
        self.host = host
        self.address = address
        self.transmitted = self.received = self.duplicates = self.errors = self.late = self.invalid = 0
        self.rtts = array("d")
        self.results: list[ProbeResult] | None = [] if keep_results else None
        self.elapsed = 0.0

    def add(self, result: ProbeResult) -> None:
        if isinstance(result, Reply):
            if result.duplicate:
                self.duplicates += 1
            else:
                self.received += 1
                self.rtts.append(result.rtt)
        elif isinstance(result, (IcmpError, SendError)):
            self.errors += 1
        elif isinstance(result, LateReply):
            self.late += 1
        elif isinstance(result, InvalidReply):
            self.invalid += 1
        else:
            assert isinstance(result, Timeout)
        if self.results is not None:
            self.results.append(result)

    def snapshot(self) -> PingStats:
        # Every field, in PingStats' order (a batch takes one snapshot per host).
        return PingStats(
            self.host,
            self.address,
            self.transmitted,
            self.received,
            self.duplicates,
            self.errors,
            self.late,
            self.invalid,
            tuple(self.rtts),
            self.elapsed,
            () if self.results is None else tuple(self.results),
        )
