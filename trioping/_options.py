"""Defaults and argument checks, written once, below every API that takes them.

Each public call checks all of its arguments here before anything is sent, so a bad value
is an :class:`InvalidArgumentError` at the call, never a failure half-way through a run.
Times are seconds; ``deadline`` is an absolute :func:`trio.current_time`, as everywhere in
Trio.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass

from ._errors import InvalidArgumentError
from ._packet import DEFAULT_SIZE, Family, validate_size
from ._resolve import Host, parse_family
from ._results import Outstanding

DEFAULT_COUNT = 5
"""Probes sent by :meth:`Pinger.ping` unless told otherwise."""
DEFAULT_INTERVAL = 1.0
"""Seconds between two probes to one host."""
DEFAULT_TIMEOUT = 2.0
"""Seconds a probe waits for its reply before it is lost."""
DEFAULT_RATE = 1000.0
"""Probes per second of a fan-out batch unless told otherwise (``rate=None``: no limit)."""
DEFAULT_RESOLVE_CONCURRENCY = 32
"""Names a fan-out batch resolves at once."""
DEFAULT_STREAM_BUFFER = 1024
"""Results a stream holds for its consumer, probes in flight included (see PingStream)."""
DEFAULT_FANOUT_BUFFER = 65536
"""Results a fan-out batch holds for its consumer, probes in flight included (see Fanout)."""
DEFAULT_MAX_HOPS = 30
"""The largest TTL a trace probes unless told otherwise (traceroute's ``-m``)."""
DEFAULT_PROBES_PER_HOP = 3
DEFAULT_TRACE_TIMEOUT = DEFAULT_TIMEOUT
DEFAULT_TRACE_CONCURRENCY = 16
"""Probes of one trace in flight at once (traceroute's ``-N`` default)."""
DEFAULT_NAME_TIMEOUT = 2.0
"""Seconds a trace's reverse lookup of one address may take."""
DEFAULT_NAME_CONCURRENCY = 8
DEFAULT_MTR_TIMEOUT = DEFAULT_TIMEOUT
DEFAULT_MTR_BUFFER = 16
"""mtr snapshots held for a consumer that falls behind; older ones are dropped (the newest
holds everything the older ones did)."""


def check_hosts(hosts: object) -> None:
    """A batch's hosts: any iterable of hosts, lazy or async, but not one host's string."""
    if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (Iterable, AsyncIterable)):
        raise InvalidArgumentError(f"hosts must be an iterable of hosts, not {hosts!r}")


def resume_chunk(buffer: int) -> int:
    """How much room a full stream or batch buffer must have again before sending resumes:
    room is given back in chunks, so that a consumer reading one result at a time does not
    wake the sender for each send."""
    return max(1, min(buffer // 4, 256))


def check_count(count: int | None, *, allow_none: bool, name: str = "count") -> int | None:
    if count is None and allow_none:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise InvalidArgumentError(f"{name} must be a positive integer, not {count!r}")
    return count


def check_positive(name: str, value: int) -> int:
    checked = check_count(value, allow_none=False, name=name)
    assert checked is not None
    return checked


def check_seconds(name: str, value: float, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgumentError(f"{name} must be {'>= 0' if allow_zero else '> 0'} seconds, not {value!r}")
    return float(value)


def check_deadline(deadline: float | None) -> float | None:
    """An absolute Trio time (``trio.current_time() + seconds``); any finite value or None."""
    if deadline is None:
        return None
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or math.isnan(deadline):
        raise InvalidArgumentError(f"deadline must be an absolute trio.current_time() value, not {deadline!r}")
    return float(deadline)


def check_ttl(ttl: int | None) -> int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 255:
        raise InvalidArgumentError(f"ttl must be an integer from 1 to 255, not {ttl!r}")
    return ttl


def check_rate(rate: float | None) -> float | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise InvalidArgumentError(f"rate must be a positive number of probes per second or None, not {rate!r}")
    return float(rate)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What a :class:`PingStream` will do, checked."""

    host: str
    target: Host
    count: int | None
    interval: float
    size: int
    timeout: float
    ttl: int | None
    family: Family | None
    deadline: float | None
    buffer: int
    tx_timestamps: bool
    keep_results: bool = False
    on_outstanding: Callable[[Outstanding], None] | None = None


def stream_plan(
    host: Host,
    *,
    count: int | None,
    interval: float,
    size: int,
    timeout: float,
    ttl: int | None,
    family: Family | int | None,
    deadline: float | None,
    buffer: int,
    tx_timestamps: bool,
    keep_results: bool = False,
    on_outstanding: Callable[[Outstanding], None] | None = None,
) -> StreamPlan:
    wanted_family = parse_family(family)
    return StreamPlan(
        host=host if isinstance(host, str) else str(host),
        target=host,
        count=check_count(count, allow_none=True),
        interval=check_seconds("interval", interval, allow_zero=True),
        size=validate_size(size, wanted_family),
        timeout=check_seconds("timeout", timeout, allow_zero=False),
        ttl=check_ttl(ttl),
        family=wanted_family,
        deadline=check_deadline(deadline),
        buffer=check_positive("buffer", buffer),
        tx_timestamps=bool(tx_timestamps),
        keep_results=keep_results,
        on_outstanding=on_outstanding,
    )


@dataclass(frozen=True, slots=True)
class FanoutPlan:
    """What a :class:`Fanout` will do, checked."""

    count: int | None
    interval: float
    rate: float | None
    timeout: float
    size: int
    ttl: int | None
    family: Family | None
    resolve_concurrency: int
    buffer: int
    tx_timestamps: bool
    keep_statistics: bool = True


def fanout_plan(
    *,
    count: int | None,
    interval: float,
    rate: float | None,
    timeout: float,
    size: int,
    ttl: int | None,
    family: Family | int | None,
    resolve_concurrency: int,
    buffer: int,
    tx_timestamps: bool,
    keep_statistics: bool = True,
) -> FanoutPlan:
    wanted_family = parse_family(family)
    return FanoutPlan(
        count=check_count(count, allow_none=True),
        interval=check_seconds("interval", interval, allow_zero=True),
        rate=check_rate(rate),
        timeout=check_seconds("timeout", timeout, allow_zero=False),
        size=validate_size(size, wanted_family),
        ttl=check_ttl(ttl),
        family=wanted_family,
        resolve_concurrency=check_positive("resolve_concurrency", resolve_concurrency),
        buffer=check_positive("buffer", buffer),
        tx_timestamps=bool(tx_timestamps),
        keep_statistics=bool(keep_statistics),
    )


__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_FANOUT_BUFFER",
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_HOPS",
    "DEFAULT_MTR_BUFFER",
    "DEFAULT_MTR_TIMEOUT",
    "DEFAULT_NAME_CONCURRENCY",
    "DEFAULT_NAME_TIMEOUT",
    "DEFAULT_PROBES_PER_HOP",
    "DEFAULT_RATE",
    "DEFAULT_RESOLVE_CONCURRENCY",
    "DEFAULT_SIZE",
    "DEFAULT_STREAM_BUFFER",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TRACE_CONCURRENCY",
    "DEFAULT_TRACE_TIMEOUT",
    "FanoutPlan",
    "StreamPlan",
    "fanout_plan",
    "stream_plan",
]
