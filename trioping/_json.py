"""``--json``: one JSON object per line for every result, and one for the summary.

Pure functions from results to plain dicts (and compact one-line text), so the schema is
tested without sockets.  Field names are part of the public interface (documented in the
README, section *JSON output*): add fields if you must, never rename or remove one.

Every per-probe object has ``type``, ``time`` (Unix seconds when it was reported), ``host``
(as the user wrote it), ``target`` (the address pinged), ``seq`` (ICMP sequence) and
``index`` (0 for the first probe).  Times of flight are milliseconds, as ping prints them.
"""

from __future__ import annotations

import json
from typing import Any

from ._results import IcmpError, InvalidReply, LateReply, Outstanding, ProbeResult, Reply, SendError, Timeout
from ._stats import PingStats

JsonObject = dict[str, Any]


def _ms(seconds: float | None) -> float | None:
    """Seconds to milliseconds, to the nanosecond (no float noise such as 0.0130000001)."""
    return None if seconds is None else round(seconds * 1e3, 6)


def _probe_fields(kind: str, result: ProbeResult | Outstanding, host: str, now: float) -> JsonObject:
    return {
        "type": kind,
        "time": round(now, 6),
        "host": host,
        "target": result.target,
        "seq": result.sequence,
        "index": result.probe_index,
    }


def result_object(result: ProbeResult, host: str, now: float) -> JsonObject:
    """The object for one result: reply, late, timeout, error, send_error or invalid."""
    if isinstance(result, (Reply, LateReply)):
        obj = _probe_fields("reply" if isinstance(result, Reply) else "late", result, host, now)
        obj.update(
            source=result.source,
            size=result.size,
            ttl=result.ttl,
            rtt_ms=_ms(result.rtt),
            clock=result.clock.value,
        )
        if isinstance(result, Reply):
            obj["duplicate"] = result.duplicate
        return obj
    if isinstance(result, Timeout):
        return _probe_fields("timeout", result, host, now)
    if isinstance(result, IcmpError):
        obj = _probe_fields("error", result, host, now)
        kind = result.kind
        obj.update(
            source=result.source,
            icmp_type=result.icmp_type,
            icmp_code=result.code,
            kind=None if kind is None else kind.value,
            description=result.description,
            mtu=result.mtu,
        )
        return obj
    if isinstance(result, SendError):
        obj = _probe_fields("send_error", result, host, now)
        obj.update(errno=result.errno, message=result.message, mtu=result.mtu)
        return obj
    assert isinstance(result, InvalidReply)
    obj = _probe_fields("invalid", result, host, now)
    obj.update(source=result.source, reason=result.reason.value)
    return obj


def outstanding_object(notice: Outstanding, host: str, now: float) -> JsonObject:
    """``-O``: the previous probe has no reply yet as the next one is sent."""
    return _probe_fields("outstanding", notice, host, now)


def summary_object(stats: PingStats, host: str, now: float) -> JsonObject:
    """The final counts (the ``--- host ping statistics ---`` block)."""
    return {
        "type": "summary",
        "time": round(now, 6),
        "host": host,
        "target": stats.address,
        "transmitted": stats.transmitted,
        "received": stats.received,
        "duplicates": stats.duplicates,
        "errors": stats.errors,
        "send_errors": stats.send_errors,
        "late": stats.late,
        "invalid": stats.invalid,
        "loss_percent": round(stats.loss * 100, 6),
        "elapsed_ms": _ms(stats.elapsed),
        "rtt_min_ms": _ms(stats.rtt_min),
        "rtt_avg_ms": _ms(stats.rtt_avg),
        "rtt_max_ms": _ms(stats.rtt_max),
        "rtt_mdev_ms": _ms(stats.rtt_stddev),
    }


def dumps(obj: JsonObject) -> str:
    """One compact line of strict JSON (no NaN or Infinity)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)
