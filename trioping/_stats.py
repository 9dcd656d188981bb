"""Counting rules, in one place, so the library, the CLI and fan-out agree on every number.

* transmitted: probes we handed to the kernel, refused ones included (as iputils counts a
  failed ``sendmsg``), so a host we cannot reach shows its loss.
* received: first valid reply to a probe still waiting; never more than transmitted.
* duplicates: further valid replies to an answered probe.
* errors: ICMP errors matched to a probe, plus local send errors (``send_errors`` counts
  those alone).
* late: valid replies after the probe timed out; invalid: replies failing a check.

RTT statistics are running figures (count, minimum, maximum, mean and the sum of squared
deviations, Welford's method), so a stream that runs for weeks keeps constant memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._errors import TriopingError
from ._results import IcmpError, InvalidReply, LateReply, ProbeResult, Reply, SendError, Timeout


class ResultsNotKeptError(TriopingError, LookupError):
    """Per-probe results were not kept for these statistics (streams and fan-out hand every
    result to their consumer instead; only :meth:`Pinger.ping` keeps them)."""


@dataclass(frozen=True, slots=True)
class PingStats:
    """Statistics of a run against one destination.  RTTs are in seconds.

    Every figure is kept for any run, however long; the per-probe ``results`` only by
    :meth:`Pinger.ping`, which has no other consumer for them.
    """

    host: str
    """The host as given."""
    address: str
    """The address pinged."""
    transmitted: int = 0
    """Probes sent, refused sends included (see ``send_errors``)."""
    received: int = 0
    """Probes answered by a valid reply (first replies only)."""
    duplicates: int = 0
    """Valid replies beyond the first to an answered probe."""
    errors: int = 0
    """ICMP errors matched to a probe, plus local send errors."""
    late: int = 0
    """Valid replies that came after their probe had timed out."""
    invalid: int = 0
    """Replies that matched a probe but failed a check (checksum, payload, token, length)."""
    send_errors: int = 0
    """Probes the kernel refused to send (each also counted in ``transmitted`` and ``errors``)."""
    rtt_min: float | None = None
    """Smallest RTT of the received replies, None if none was received."""
    rtt_avg: float | None = None
    """Mean RTT of the received replies, None if none was received."""
    rtt_max: float | None = None
    """Largest RTT of the received replies, None if none was received."""
    rtt_stddev: float | None = None
    """*Population* standard deviation of the RTTs (iputils' ``mdev``), None if none was received."""
    elapsed: float = 0.0
    """Seconds from the first send to the end of the run (or to now, while it runs)."""
    kept_results: tuple[ProbeResult, ...] | None = None

    @property
    def loss(self) -> float:
        """Fraction of transmitted probes that got no valid reply, in [0, 1]; 0 when nothing
        was transmitted."""
        if self.transmitted == 0:
            return 0.0
        return (self.transmitted - self.received) / self.transmitted

    @property
    def is_alive(self) -> bool:
        """Whether at least one valid reply arrived."""
        return self.received > 0

    @property
    def results(self) -> tuple[ProbeResult, ...]:
        """Every result in the order it happened.  Kept by :meth:`Pinger.ping` only: raises
        :class:`ResultsNotKeptError` for a stream's or a batch's statistics."""
        if self.kept_results is None:
            raise ResultsNotKeptError("per-probe results are handed to the consumer, not kept: collect them there")
        return self.kept_results

    @property
    def replies(self) -> tuple[Reply, ...]:
        """The first valid reply of every answered probe (see :attr:`results`)."""
        return tuple(r for r in self.results if isinstance(r, Reply) and not r.duplicate)

    @property
    def rtts(self) -> tuple[float, ...]:
        """The RTT of every answered probe, in order (see :attr:`results`)."""
        return tuple(r.rtt for r in self.replies)


class StatsAccumulator:
    """Mutable running counts for one destination; :meth:`snapshot` freezes them.

    Constant memory unless ``keep_results`` asks for every result (a finite ``ping``).
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
        "rtt_m2",
        "rtt_max",
        "rtt_mean",
        "rtt_min",
        "send_errors",
        "transmitted",
    )

    def __init__(self, host: str, address: str, keep_results: bool = False) -> None:
        self.host = host
        self.address = address
        self.transmitted = self.received = self.duplicates = self.errors = 0
        self.late = self.invalid = self.send_errors = 0
        self.rtt_min = math.inf
        self.rtt_max = self.rtt_mean = self.rtt_m2 = 0.0
        self.results: list[ProbeResult] | None = [] if keep_results else None
        self.elapsed = 0.0

    def add_rtt(self, rtt: float) -> None:
        """Count a first valid reply with this RTT (Welford's update)."""
        self.received = n = self.received + 1
        if n == 1:  # the first is the mean, the minimum and the maximum: one float, not three
            self.rtt_mean = self.rtt_min = self.rtt_max = rtt
            return
        delta = rtt - self.rtt_mean
        self.rtt_mean += delta / n
        self.rtt_m2 += delta * (rtt - self.rtt_mean)
        if rtt < self.rtt_min:
            self.rtt_min = rtt
        if rtt > self.rtt_max:
            self.rtt_max = rtt

    def add(self, result: ProbeResult) -> None:
        kind = type(result)
        if kind is Reply:
            assert isinstance(result, Reply)
            if result.duplicate:
                self.duplicates += 1
            else:
                self.add_rtt(result.rtt)
        elif kind is IcmpError:
            self.errors += 1
        elif kind is SendError:
            self.errors += 1
            self.send_errors += 1
        elif kind is LateReply:
            self.late += 1
        elif kind is InvalidReply:
            self.invalid += 1
        else:
            assert kind is Timeout, kind
        if self.results is not None:
            self.results.append(result)

    def snapshot(self) -> PingStats:
        n = self.received
        # PingStats(...) without its frozen __init__, which sets each of 15 slots through
        # object.__setattr__ (callgrind: 21,600 instructions a snapshot; this way 3,000).  A
        # batch makes one a host: 60,000 of them end a 60,000-host run.
        stats: Any = _new_object(_Unfrozen)
        stats.host = self.host
        stats.address = self.address
        stats.transmitted = self.transmitted
        stats.received = n
        stats.duplicates = self.duplicates
        stats.errors = self.errors
        stats.late = self.late
        stats.invalid = self.invalid
        stats.send_errors = self.send_errors
        stats.rtt_min = self.rtt_min if n else None
        stats.rtt_avg = self.rtt_mean if n else None
        stats.rtt_max = self.rtt_max if n else None
        stats.rtt_stddev = math.sqrt(max(self.rtt_m2, 0.0) / n) if n else None
        stats.elapsed = self.elapsed
        stats.kept_results = None if self.results is None else tuple(self.results)
        stats.__class__ = PingStats  # the same slots in the same order: a PingStats, frozen from now on
        frozen: PingStats = stats
        return frozen


_new_object = object.__new__
_Unfrozen: Any = type("_Unfrozen", (), {"__slots__": PingStats.__slots__})
"""PingStats's memory layout without its frozen ``__setattr__``: a snapshot is filled in as
one of these and then becomes a PingStats (``__class__`` assignment, allowed between
classes whose slots are the same)."""
