"""What a probe can come to: typed results, never strings.

Every result names the probe by ``target`` (the address pinged), ``sequence`` (the ICMP
sequence number on the wire) and ``probe_index`` (0 for the first probe of a call, 1 for
the next...).  Times are in seconds, as floats, following Trio's convention.

Results are named tuples: immutable and cheap to build (one is made per probe, and at
fan-out rates a frozen dataclass costs several times as much), matched with ``isinstance``
or ``match`` by class.  A result equals only a result of its own kind: ``Timeout`` and
``Outstanding`` with the same fields are different things, and neither equals a plain
tuple.  No field shadows a tuple method.

Annotations here are evaluated at import (no ``from __future__ import annotations``): as
strings, every field of a named tuple would be compiled again at each start of a command.
"""

import enum
from typing import Any, NamedTuple, TypeVar

from ._packet import Family, InvalidReason

__all__ = [
    "IcmpError",
    "IcmpErrorKind",
    "InvalidReason",
    "InvalidReply",
    "LateReply",
    "Outstanding",
    "ProbeResult",
    "Reply",
    "RttClock",
    "SendError",
    "Timeout",
]


_R = TypeVar("_R")


def _own_kind_equality(cls: type[_R]) -> type[_R]:
    """Make a named tuple class compare equal only to instances of exactly its class.

    A bare named tuple is a tuple: ``Timeout("a", 1, 0) == Outstanding("a", 1, 0)`` would
    be true, and so would a comparison with any plain tuple of the same values.
    """

    def __eq__(self: tuple[Any, ...], other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self: tuple[Any, ...], other: object) -> bool:
        return not __eq__(self, other)

    def __hash__(self: tuple[Any, ...]) -> int:
        return hash((type(self).__name__, tuple(self)))

    cls.__eq__ = __eq__  # type: ignore[assignment,method-assign]
    cls.__ne__ = __ne__  # type: ignore[assignment,method-assign]
    cls.__hash__ = __hash__  # type: ignore[assignment,method-assign]
    return cls


class RttClock(enum.Enum):
    """Which clock readings an RTT was computed from.

    ``KERNEL``: the kernel's software transmit and receive timestamps (SO_TIMESTAMPING),
    so neither Python nor a busy event loop is in the figure.  ``KERNEL_RX``: kernel receive
    timestamp, send time read just before the send call.  ``MONOTONIC``: both ends
    read from ``time.monotonic_ns`` in user space; used when the kernel gives no stamps or
    when the wall clock (which kernel stamps use) stepped during the probe.
    """

    KERNEL = "kernel"
    KERNEL_RX = "kernel-rx"
    MONOTONIC = "monotonic"


@_own_kind_equality
class Reply(NamedTuple):
    """A valid echo reply.  ``duplicate`` is True for every reply after the first.

    ``size`` is the ICMP message length (header + data), as ping's "64 bytes from";
    ``ttl`` is the reply's IPv4 TTL or IPv6 hop limit.
    """

    target: str
    source: str
    sequence: int
    probe_index: int
    size: int
    ttl: int | None
    rtt: float
    clock: RttClock
    duplicate: bool = False


@_own_kind_equality
class LateReply(NamedTuple):
    """A valid reply that arrived after its probe had timed out (or drawn an ICMP error).

    It is reported, never counted as received: the probe was already declared lost.
    """

    target: str
    source: str
    sequence: int
    probe_index: int
    size: int
    ttl: int | None
    rtt: float
    clock: RttClock


@_own_kind_equality
class Timeout(NamedTuple):
    """No valid reply within the probe's timeout: the probe is lost."""

    target: str
    sequence: int
    probe_index: int


class IcmpErrorKind(enum.Enum):
    DESTINATION_UNREACHABLE = "destination-unreachable"
    TIME_EXCEEDED = "time-exceeded"
    PACKET_TOO_BIG = "packet-too-big"
    PARAMETER_PROBLEM = "parameter-problem"
    SOURCE_QUENCH = "source-quench"
    REDIRECT = "redirect"


_V4_KINDS = {
    3: IcmpErrorKind.DESTINATION_UNREACHABLE,
    4: IcmpErrorKind.SOURCE_QUENCH,
    5: IcmpErrorKind.REDIRECT,
    11: IcmpErrorKind.TIME_EXCEEDED,
    12: IcmpErrorKind.PARAMETER_PROBLEM,
}
_V6_KINDS = {
    1: IcmpErrorKind.DESTINATION_UNREACHABLE,
    2: IcmpErrorKind.PACKET_TOO_BIG,
    3: IcmpErrorKind.TIME_EXCEEDED,
    4: IcmpErrorKind.PARAMETER_PROBLEM,
}

_V4_UNREACHABLE = (
    "Destination Net Unreachable",
    "Destination Host Unreachable",
    "Destination Protocol Unreachable",
    "Destination Port Unreachable",
    "Frag needed and DF set (mtu = {info})",
    "Source Route Failed",
    "Destination Net Unknown",
    "Destination Host Unknown",
    "Source Host Isolated",
    "Destination Net Prohibited",
    "Destination Host Prohibited",
    "Destination Net Unreachable for Type of Service",
    "Destination Host Unreachable for Type of Service",
    "Packet filtered",
    "Precedence Violation",
    "Precedence Cutoff",
)
_V6_UNREACHABLE = (
    "No route",
    "Administratively prohibited",
    "Beyond scope of source address",
    "Address unreachable",
    "Port unreachable",
    "Source address failed ingress/egress policy",
    "Reject route to destination",
)


def describe_icmp_error(family: Family, icmp_type: int, code: int, info: int) -> str:
    """The text iputils ping prints for this ICMP error (``From ... icmp_seq=N <text>``)."""
    if family is Family.V4:
        if icmp_type == 3:
            if code < len(_V4_UNREACHABLE):
                return _V4_UNREACHABLE[code].format(info=info)
            return f"Dest Unreachable, Bad Code: {code}"
        if icmp_type == 11:
            return "Time to live exceeded" if code == 0 else "Frag reassembly time exceeded"
        if icmp_type == 12:
            return f"Parameter problem: pointer = {info}"
        if icmp_type == 4:
            return "Source Quench"
        if icmp_type == 5:
            return f"Redirect, Bad Code: {code}" if code > 3 else "Redirect"
        return f"Bad ICMP type: {icmp_type}"
    if icmp_type == 1:
        reason = _V6_UNREACHABLE[code] if code < len(_V6_UNREACHABLE) else f"Unknown code {code}"
        return f"Destination unreachable: {reason}"
    if icmp_type == 2:
        return f"Packet too big: mtu={info}"
    if icmp_type == 3:
        reason = {0: "Hop limit", 1: "Defragmentation failure"}.get(code, f"code {code}")
        return f"Time exceeded: {reason}"
    if icmp_type == 4:
        reason = {0: "Wrong header field ", 1: "Unknown header ", 2: "Unknown option "}.get(code, f"code {code} ")
        return f"Parameter problem: {reason}at {info}"
    return f"Bad ICMP type: {icmp_type}"


@_own_kind_equality
class IcmpError(NamedTuple):
    """An ICMP error (unreachable, time exceeded, packet too big...) that quoted our probe.

    ``source`` is the router or host that sent it.  ``mtu`` is set for "fragmentation
    needed" (IPv4) and "packet too big" (IPv6).  The probe is finished: it counts as an
    error and as lost.

    ``rtt`` is the time from the probe's send to the error's arrival, from the same clocks
    as a reply's (``clock``): what traceroute shows for a router.  None only for an error
    built without one.
    """

    target: str
    source: str
    sequence: int
    probe_index: int
    family: Family
    icmp_type: int
    code: int
    info: int = 0
    rtt: float | None = None
    clock: RttClock | None = None

    @property
    def kind(self) -> IcmpErrorKind | None:
        kinds = _V4_KINDS if self.family is Family.V4 else _V6_KINDS
        return kinds.get(self.icmp_type)

    @property
    def mtu(self) -> int | None:
        too_big = (self.family is Family.V4 and self.icmp_type == 3 and self.code == 4) or (
            self.family is Family.V6 and self.icmp_type == 2
        )
        return self.info if too_big else None

    @property
    def description(self) -> str:
        return describe_icmp_error(self.family, self.icmp_type, self.code, self.info)


@_own_kind_equality
class SendError(NamedTuple):
    """The kernel refused to send the probe (``EPERM`` from a firewall, ``EHOSTUNREACH``,
    ``EMSGSIZE``...).  A full queue (``ENOBUFS``) is not one: that probe is sent again shortly.

    Counted as transmitted, as an error and so as lost, as iputils counts a refused
    ``sendmsg``: a host that cannot be reached must never show less loss.  For ``EMSGSIZE`` (a probe larger than the
    path MTU with ``pmtu="do"``) ``mtu`` is that MTU and ``message`` reads as ping's
    ``local error: message too long, mtu=1280``.
    """

    target: str
    sequence: int
    probe_index: int
    errno: int
    message: str
    mtu: int | None = None


@_own_kind_equality
class InvalidReply(NamedTuple):
    """A reply that matched one of our probes but failed a check (checksum, payload, token,
    length).  Reported, as iputils reports ``wrong data byte``, and never counted."""

    target: str
    source: str
    sequence: int
    probe_index: int
    reason: InvalidReason


@_own_kind_equality
class Outstanding(NamedTuple):
    """A probe still waiting for its reply when the next one is sent (``ping -O``).

    Not a result: the probe may still be answered.  Passed to a stream's
    ``on_outstanding`` callback.
    """

    target: str
    sequence: int
    probe_index: int


ProbeResult = Reply | LateReply | Timeout | IcmpError | SendError | InvalidReply
