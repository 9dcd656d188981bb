"""The exporter's per-host series and their exposition.

smokeping_prober's names, labels and buckets, so its dashboards and alerts work unchanged.
Each host's counts live in one :class:`HostSeries` (plain ints and a list of bucket
counts, updated by the monitor's consumer task for each result); a scrape copies them in
one step (:func:`snapshot`), then makes the text a chunk at a time as it sends it.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

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

    def __init__(
        self,
        host: str,
        ip: str,
        source: str,
        tos: int,
        bucket_count: int,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.host = host
        self.ip = ip
        self.source = source
        self.tos = tos
        self.labels = (
            f'host="{escape_label_value(host)}",ip="{escape_label_value(ip)}",'
            f'source="{escape_label_value(source)}",tos="{tos}"'
        ) + "".join(f',{name}="{escape_label_value(value)}"' for name, value in extra)
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


_SCALARS = 6
"""Numbers a host has in a :class:`Snapshot` before its buckets: transmitted, rtt_sum, ttl,
duplicates, send_errors, late."""


class Snapshot:
    """Every host's counts at one instant, for rendering piece by piece while they change.

    Flat lists of references to the hosts' own (immutable) label strings and numbers, not an
    object per host: a scrape of 10,000 hosts that built ~40,000 tuples and lists on the Trio
    thread set off the garbage collector's full passes over the whole heap, and the probing
    loop stood still for 50-200 ms, measured here.  Appending references allocates nothing
    the collector tracks.
    """

    __slots__ = ("extras", "labels", "numbers", "stride")

    def __init__(self, bucket_count: int) -> None:
        self.labels: list[str] = []
        self.numbers: list[float] = []
        """Per host: the :data:`_SCALARS` numbers, then its bucket counts (not cumulative)."""
        self.extras: dict[int, tuple[list[tuple[str, int]], list[tuple[str, int]]]] = {}
        """(invalid replies, ICMP errors) by reason, for the few hosts that have any."""
        self.stride = _SCALARS + bucket_count + 1

    def __len__(self) -> int:
        return len(self.labels)

    def transmitted(self, index: int) -> int:
        return int(self.numbers[index * self.stride])

    def buckets(self, index: int) -> list[int]:
        base = index * self.stride + _SCALARS
        return [int(n) for n in self.numbers[base : base + self.stride - _SCALARS]]


def snapshot(series: Iterable[HostSeries], bucket_count: int) -> Snapshot:
    """Copy every host's counts; called on the Trio thread, with no checkpoint inside, so the
    copy is one instant of the counts."""
    frozen = Snapshot(bucket_count)
    add_labels = frozen.labels.append
    add, extend = frozen.numbers.append, frozen.numbers.extend
    extras = frozen.extras
    for index, s in enumerate(series):
        add_labels(s.labels)
        add(s.transmitted)
        add(s.rtt_sum)
        add(s.ttl)
        add(s.duplicates)
        add(s.send_errors)
        add(s.late)
        extend(s.buckets)
        if s.invalid or s.icmp_errors:
            extras[index] = (sorted(s.invalid.items()), sorted(s.icmp_errors.items()))
    return frozen


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")


_CHUNK_LINES = 4096


def render(frozen: Snapshot, bounds: Sequence[float]) -> Iterator[bytes]:
    """The per-host families in the text exposition format, in chunks of about 500 kB (a few
    milliseconds of work each), made one at a time as they are asked for.  A scrape of
    10,000 hosts is 30 MB: made as it is sent, it never is in memory all at once."""
    out: list[str] = []
    append = out.append
    numbers, labels_of, stride = frozen.numbers, frozen.labels, frozen.stride
    hosts = range(len(frozen))

    def chunk() -> bytes:
        text = "".join(out).encode()
        out.clear()
        return text

    def scalar(name: str, kind: str, help_text: str, offset: int) -> Iterator[bytes]:
        _family(out, name, kind, help_text)
        for i in hosts:
            append(f"{name}{{{labels_of[i]}}} {numbers[i * stride + offset]}\n")
            if len(out) >= _CHUNK_LINES:
                yield chunk()

    yield from scalar("smokeping_requests_total", "counter", "Number of ping requests sent", 0)

    name = "smokeping_response_duration_seconds"
    _family(out, name, "histogram", "A histogram of latencies for ping responses.")
    les = [f',le="{_go_float(b)}"}} ' for b in bounds] + [',le="+Inf"} ']
    prefix = name + "_bucket{"
    for i in hosts:
        host_labels = labels_of[i]
        labels = prefix + host_labels
        base = i * stride
        total = 0
        for le, n in zip(les, numbers[base + _SCALARS : base + stride], strict=True):
            total += int(n)
            append(f"{labels}{le}{total}\n")
        append(f"{name}_sum{{{host_labels}}} {numbers[base + 1]!r}\n{name}_count{{{host_labels}}} {total}\n")
        if len(out) >= _CHUNK_LINES:
            yield chunk()

    yield from scalar("smokeping_response_ttl", "gauge", "The last response Time To Live (TTL).", 2)
    yield from scalar("smokeping_response_duplicates_total", "counter", "The number of duplicated response packets.", 3)
    yield from scalar(
        "smokeping_send_errors_total", "counter", "The number of errors when Pinger attempts to send packets.", 4
    )

    _family(
        out,
        "trioping_late_replies_total",
        "counter",
        "Valid replies that came after their probe had timed out (not counted as responses).",
    )
    for i in hosts:
        append(f"trioping_late_replies_total{{{labels_of[i]}}} {numbers[i * stride + 5]}\n")
        if len(out) >= _CHUNK_LINES:
            yield chunk()
    extras = sorted(frozen.extras.items())
    _family(
        out,
        "trioping_invalid_replies_total",
        "counter",
        "Replies that matched a probe but failed a check (bad checksum, truncated, wrong token, corrupted payload).",
    )
    for i, (invalid, _) in extras:
        for reason, n in invalid:
            append(f'trioping_invalid_replies_total{{{labels_of[i]},reason="{reason}"}} {n}\n')
        if len(out) >= _CHUNK_LINES:
            yield chunk()
    _family(
        out,
        "trioping_icmp_errors_total",
        "counter",
        "ICMP errors (unreachable, time exceeded...) that quoted a probe, by kind.",
    )
    for i, (_, icmp_errors) in extras:
        for kind, n in icmp_errors:
            append(f'trioping_icmp_errors_total{{{labels_of[i]},kind="{kind}"}} {n}\n')
        if len(out) >= _CHUNK_LINES:
            yield chunk()
    yield chunk()


__all__ = ["CONTENT_TYPE", "HostSeries", "Snapshot", "escape_label_value", "render", "snapshot"]
