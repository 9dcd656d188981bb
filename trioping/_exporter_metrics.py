"""The exporter's per-host series and their exposition.

smokeping_prober's names, labels and buckets, so its dashboards and alerts work unchanged.
Each host's counts live in one :class:`HostSeries` (plain ints and a list of bucket
counts, updated by the monitor's consumer task for each result); a scrape copies them in
one step on the Trio thread (:func:`snapshot`), then renders the text in a worker thread.

The per-host families are rendered here, in the text exposition format 0.0.4, rather than
by ``prometheus_client.generate_latest``: with 10,000 hosts there are about 260,000
samples, and ``generate_latest`` spends ~12 µs on each (label names re-validated and
re-escaped, labels re-sorted, per sample) -- 3 s a scrape, measured here, where a host's
label string can be escaped once, when the host is added.  Everything else (the
``process_*`` metrics, the exporter's own gauges) goes through ``prometheus_client``'s
registry, and the two texts are joined.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, cast

from prometheus_client.utils import floatToGoString

from ._results import IcmpError, InvalidReply, LateReply, ProbeResult, Reply, SendError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABEL_NAMES = ("host", "ip", "source", "tos")
_go_float = cast(Callable[[float], str], floatToGoString)  # what Go's client prints for a bucket bound


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class HostSeries:
    """One host's series: what smokeping_prober exports for it, plus trioping's extras.

    ``transmitted`` is the library's own count of probes sent to the host (read at each
    scrape from :attr:`Fanout.statistics`, plus ``sent_base``), so that a probe is in ``requests_total`` from
    the moment it leaves; the histogram counts a probe when its reply is taken from the
    batch, which is always later.  Hence a scrape never shows more answers than requests.
    """

    __slots__ = (
        "buckets",
        "duplicates",
        "error",
        "host",
        "host_ip",
        "icmp_errors",
        "invalid",
        "ip",
        "labels",
        "last_rtt",
        "late",
        "rtt_sum",
        "send_errors",
        "sent_base",
        "source",
        "timeouts",
        "tos",
        "transmitted",
        "ttl",
        "up",
    )

    def __init__(self, host: str, ip: str, source: str, tos: int, bucket_count: int) -> None:
        self.host = host
        self.ip = ip
        self.source = source
        self.tos = tos
        self.host_ip = f'host="{escape_label_value(host)}",ip="{escape_label_value(ip)}"'
        self.labels = (
            f'host="{escape_label_value(host)}",ip="{escape_label_value(ip)}",'
            f'source="{escape_label_value(source)}",tos="{tos}"'
        )
        self.buckets = [0] * (bucket_count + 1)  # per bucket, not cumulative; the last is +Inf
        self.rtt_sum = 0.0
        self.ttl = 0
        self.duplicates = 0
        self.send_errors = 0
        self.late = 0
        self.timeouts = 0
        self.invalid: dict[str, int] = {}
        self.icmp_errors: dict[str, int] = {}
        self.transmitted = 0
        self.sent_base = 0  # probes sent from monitors the host has left (a reload changed its interval)
        self.last_rtt: float | None = None
        self.up: bool | None = None
        self.error: str | None = None

    def record(self, result: ProbeResult, bounds: Sequence[float]) -> None:
        """Count one result from the monitor (any kind the library yields)."""
        kind = type(result)
        if kind is Reply:
            assert isinstance(result, Reply)
            if result.duplicate:
                self.duplicates += 1
                return
            rtt = result.rtt
            self.buckets[bisect.bisect_left(bounds, rtt)] += 1  # le: a bound counts what equals it
            self.rtt_sum += rtt
            if result.ttl is not None:
                self.ttl = result.ttl
            self.last_rtt = rtt
            self.up = True
        elif kind is LateReply:
            self.late += 1
        elif kind is InvalidReply:
            assert isinstance(result, InvalidReply)
            reason = result.reason.value
            self.invalid[reason] = self.invalid.get(reason, 0) + 1
        elif kind is IcmpError:
            assert isinstance(result, IcmpError)
            error_kind = result.kind
            name = error_kind.value if error_kind is not None else f"type-{result.icmp_type}"
            self.icmp_errors[name] = self.icmp_errors.get(name, 0) + 1
            self.up = False
        elif kind is SendError:
            self.send_errors += 1
            self.up = False
        else:  # Timeout
            self.timeouts += 1
            self.up = False

    @property
    def received(self) -> int:
        return sum(self.buckets)


class Frozen(NamedTuple):
    """A host's counts at one instant, for rendering away from the Trio thread."""

    labels: str
    host_ip: str
    transmitted: int
    buckets: list[int]
    rtt_sum: float
    ttl: int
    duplicates: int
    send_errors: int
    late: int
    invalid: list[tuple[str, int]]
    icmp_errors: list[tuple[str, int]]


def snapshot(series: Iterable[HostSeries]) -> list[Frozen]:
    """Copy every host's counts; called on the Trio thread, with no checkpoint inside, so the
    copy is one instant of the counts."""
    return [
        Frozen(
            s.labels,
            s.host_ip,
            s.transmitted,
            s.buckets.copy(),
            s.rtt_sum,
            s.ttl,
            s.duplicates,
            s.send_errors,
            s.late,
            sorted(s.invalid.items()),
            sorted(s.icmp_errors.items()),
        )
        for s in series
    ]


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")


_CHUNK_LINES = 8192


def render(hosts: Sequence[Frozen], bounds: Sequence[float]) -> list[bytes]:
    """The per-host families in the text exposition format, in chunks of about 1 MB (pure:
    runs in a worker thread).  Chunks, not one text: a scrape of 10,000 hosts is 30 MB, and
    holding it as lines, then one string, then its bytes would take three times that."""
    out: list[str] = []
    append = out.append
    chunks: list[bytes] = []

    def flush() -> None:
        chunks.append("".join(out).encode())
        out.clear()

    _family(out, "smokeping_requests_total", "counter", "Number of ping requests sent")
    for h in hosts:
        append(f"smokeping_requests_total{{{h.labels}}} {h.transmitted}\n")
        if len(out) >= _CHUNK_LINES:
            flush()

    name = "smokeping_response_duration_seconds"
    _family(out, name, "histogram", "A histogram of latencies for ping responses.")
    les = [f',le="{_go_float(b)}"}} ' for b in bounds] + [',le="+Inf"} ']
    prefix = name + "_bucket{"
    for h in hosts:
        labels = prefix + h.labels
        total = 0
        for le, n in zip(les, h.buckets, strict=True):
            total += n
            append(f"{labels}{le}{total}\n")
        append(f"{name}_sum{{{h.labels}}} {h.rtt_sum!r}\n{name}_count{{{h.labels}}} {total}\n")
        if len(out) >= _CHUNK_LINES:
            flush()

    _family(out, "smokeping_response_ttl", "gauge", "The last response Time To Live (TTL).")
    for h in hosts:
        append(f"smokeping_response_ttl{{{h.labels}}} {h.ttl}\n")
        if len(out) >= _CHUNK_LINES:
            flush()
    _family(out, "smokeping_response_duplicates_total", "counter", "The number of duplicated response packets.")
    for h in hosts:
        append(f"smokeping_response_duplicates_total{{{h.labels}}} {h.duplicates}\n")
        if len(out) >= _CHUNK_LINES:
            flush()
    _family(out, "smokeping_send_errors_total", "counter", "The number of errors when Pinger attempts to send packets.")
    for h in hosts:
        append(f"smokeping_send_errors_total{{{h.labels}}} {h.send_errors}\n")
        if len(out) >= _CHUNK_LINES:
            flush()

    _family(
        out,
        "trioping_late_replies_total",
        "counter",
        "Valid replies that came after their probe had timed out (not counted as responses).",
    )
    for h in hosts:
        append(f"trioping_late_replies_total{{{h.host_ip}}} {h.late}\n")
        if len(out) >= _CHUNK_LINES:
            flush()
    _family(
        out,
        "trioping_invalid_replies_total",
        "counter",
        "Replies that matched a probe but failed a check (bad checksum, truncated, wrong token, corrupted payload).",
    )
    for h in hosts:
        for reason, n in h.invalid:
            append(f'trioping_invalid_replies_total{{{h.host_ip},reason="{reason}"}} {n}\n')
        if len(out) >= _CHUNK_LINES:
            flush()
    _family(
        out,
        "trioping_icmp_errors_total",
        "counter",
        "ICMP errors (unreachable, time exceeded...) that quoted a probe, by kind.",
    )
    for h in hosts:
        for kind, n in h.icmp_errors:
            append(f'trioping_icmp_errors_total{{{h.host_ip},kind="{kind}"}} {n}\n')
        if len(out) >= _CHUNK_LINES:
            flush()
    flush()
    return chunks


__all__ = ["CONTENT_TYPE", "Frozen", "HostSeries", "escape_label_value", "render", "snapshot"]
