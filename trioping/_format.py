"""Text in the shapes users know from iputils ping, as pure functions (no I/O).

Users read ping output with their eyes and with scripts, so matching iputils line for line
is a feature; where trioping counts more than iputils (late and invalid replies) it adds
fields in the same style rather than changing existing ones.
"""

from __future__ import annotations

import ipaddress

from ._packet import ICMP_HEADER_SIZE, IPV4_HEADER_SIZE, Family, InvalidReason
from ._results import IcmpError, InvalidReply, LateReply, Outstanding, Reply, SendError, Timeout
from ._stats import PingStats

_REASON_TEXT = {
    InvalidReason.BAD_CHECKSUM: "bad checksum",
    InvalidReason.TRUNCATED: "truncated",
    InvalidReason.WRONG_TOKEN: "wrong token",
    InvalidReason.CORRUPTED: "corrupted payload",
}


def rtt_ms(seconds: float) -> str:
    """An RTT as iputils prints it per reply: 3 significant decimals, fewer as it grows."""
    micros = round(seconds * 1e6)
    if micros >= 100_000 - 50:
        return f"{(micros + 500) // 1000}"
    if micros >= 10_000 - 5:
        return f"{(micros + 50) // 1000}.{((micros + 50) % 1000) // 100:01d}"
    if micros >= 1000:
        return f"{(micros + 5) // 1000}.{((micros + 5) % 1000) // 10:02d}"
    return f"{micros // 1000}.{micros % 1000:03d}"


def summary_ms(seconds: float) -> str:
    """An RTT in the statistics line: always milliseconds with three decimals."""
    return f"{seconds * 1000:.3f}"


def header(host: str, address: str, family: Family, size: int) -> str:
    if family is Family.V6:
        return f"PING {host}({address}) {size} data bytes"
    return f"PING {host} ({address}) {size}({size + ICMP_HEADER_SIZE + IPV4_HEADER_SIZE}) bytes of data."


def peer(host: str, address: str, source: str) -> str:
    """How a reply's sender is named: ``name (addr)`` when the user gave a name."""
    if host != address and source == address:
        return f"{host} ({source})"
    return source


def reply_line(reply: Reply | LateReply, host: str, address: str) -> str:
    ttl = f" ttl={reply.ttl}" if reply.ttl is not None else ""
    sender = peer(host, address, reply.source)
    line = f"{reply.size} bytes from {sender}: icmp_seq={reply.sequence}{ttl} time={rtt_ms(reply.rtt)} ms"
    different = reply.source != address
    multicast = different and _is_multicast(address)  # a group's members all answer from their own
    if isinstance(reply, LateReply):
        line += " (LATE!)"
    elif reply.duplicate and not multicast:  # iputils leaves a group's many answers unmarked (but for -v)
        line += " (DUP!)"
    if different and not multicast:
        line += " (DIFFERENT ADDRESS!)"  # iputils' words
    return line


def _is_multicast(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.partition("%")[0]).is_multicast
    except ValueError:
        return False


def error_line(error: IcmpError) -> str:
    return f"From {error.source} icmp_seq={error.sequence} {error.description}"


def send_error_text(error: SendError) -> str:
    """iputils' stderr wording for a refused send: ``local error: ...`` or ``sendmsg: ...``.

    Not a ``From ... icmp_seq=`` line: nothing answered, our own kernel refused the packet.
    """
    if error.message.startswith("local error"):
        return error.message
    return f"sendmsg: {error.message}"


def invalid_line(invalid: InvalidReply) -> str:
    return f"From {invalid.source} icmp_seq={invalid.sequence} Invalid reply: {_REASON_TEXT[invalid.reason]}"


def outstanding_line(timeout: Timeout | Outstanding) -> str:
    return f"no answer yet for icmp_seq={timeout.sequence}"


def summary_lines(stats: PingStats, *, errors: int | None = None) -> list[str]:
    """The ``--- host ping statistics ---`` block, iputils' fields first, ours after.

    *errors*: the ``+N errors`` figure when the caller counts it as iputils does (see the
    CLI); ``stats.errors`` otherwise."""
    counts = f"{stats.transmitted} packets transmitted, {stats.received} received"
    for count, label in (
        (stats.duplicates, "duplicates"),
        (stats.invalid, "invalid"),
        (stats.errors if errors is None else errors, "errors"),
        (stats.late, "late"),
    ):
        if count:
            counts += f", +{count} {label}"
    if stats.transmitted:
        counts += f", {stats.loss * 100:g}% packet loss, time {round(stats.elapsed * 1000)}ms"
    lines = [f"--- {stats.host} ping statistics ---", counts]
    figures = (stats.rtt_min, stats.rtt_avg, stats.rtt_max, stats.rtt_stddev)
    if stats.received:
        shown = "/".join(summary_ms(value) for value in figures if value is not None)
        lines.append(f"rtt min/avg/max/mdev = {shown} ms")
    return lines
