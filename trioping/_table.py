"""The probe table: everything about the echoes in flight on one socket, as pure state.

Like h11's ``Connection``, it performs no I/O and reads no clock: it builds requests, takes
each received datagram (bytes, control messages, source address) and says whose probe it
answers and with what result, and expires probes at a time it is given.  The socket layer
(:mod:`._transport`) is a thin shell that moves bytes and times in and hands the results to
their owners; tests drive the table with bytes alone.

Replies are matched in O(1) by ``(source address, sequence)`` -- ICMP errors by the quoted
request's ``(destination, sequence)`` -- then checked against the probe's exact payload
(stamp, per-pinger token, fill) before they may count.  Every datagram takes the same path;
its first step is the cheap test that a correct IPv4 reply passes (two integers and a byte
comparison, RFC 1624), and anything that fails it is decoded in full.
"""

from __future__ import annotations

import enum
import errno as errnos
import math
import os
from collections import deque
from typing import Any, Protocol

from . import _constants as C
from ._ancillary import Cmsg, parse_ancillary, parse_error_queue
from ._errors import PacketError
from ._packet import (
    ICMP_HEADER_SIZE,
    ICMPV4_REDIRECT,
    ICMPV4_SOURCE_QUENCH,
    IPV4_HEADER_SIZE,
    STAMP_SIZE,
    EchoMessage,
    EchoTemplate,
    ErrorMessage,
    Family,
    InvalidReason,
    check_payload,
    decode_error_payload,
    decode_icmpv4,
    decode_icmpv6,
    decode_ipv4,
    is_foreign,
    is_reply_to,
    peek_ipv4_echo_reply,
    quotes_another_request,
)
from ._results import IcmpError, InvalidReply, LateReply, ProbeResult, Reply, RttClock, SendError, Timeout

SEQUENCE_SPACE = 0x10000
MIN_LINGER = 1.0
"""Seconds a probe is kept past its deadline at least (else one timeout), to tell late and
duplicate replies from strays."""


class ProbeState(enum.Enum):
    WAITING = "waiting"
    ANSWERED = "answered"
    EXPIRED = "expired"
    FAILED = "failed"
    FORGOTTEN = "forgotten"


# Enum members read through their class go through EnumType.__getattr__'s slot (a
# method-wrapper object a read, on Python 3.11): code run per packet uses these aliases.
_WAITING = ProbeState.WAITING
_ANSWERED = ProbeState.ANSWERED
_EXPIRED = ProbeState.EXPIRED
_FAILED = ProbeState.FAILED
_FORGOTTEN = ProbeState.FORGOTTEN
_WRONG_TOKEN = InvalidReason.WRONG_TOKEN
_BAD_CHECKSUM = InvalidReason.BAD_CHECKSUM
_KERNEL = RttClock.KERNEL
_KERNEL_RX = RttClock.KERNEL_RX
_MONOTONIC = RttClock.MONOTONIC
_ORIGIN_TIMESTAMPING = C.SO_EE_ORIGIN_TIMESTAMPING
_ORIGINS_ICMP = (C.SO_EE_ORIGIN_ICMP, C.SO_EE_ORIGIN_ICMP6)
_ORIGIN_ICMP_V4 = C.SO_EE_ORIGIN_ICMP
_ADVICE_V4 = frozenset({ICMPV4_REDIRECT, ICMPV4_SOURCE_QUENCH})
"""ICMPv4 messages that quote a request without being a verdict on it: a redirect means
the router forwarded the request (and names a better next hop), a source quench (obsolete,
RFC 6633) at most that it might drop some.  iputils' ping does not count them as errors and
keeps waiting for the reply; so does the table."""


class ProbeOwner(Protocol):
    """Whoever sent a probe and wants its results (a single probe, a stream, a batch...).

    ``deliver`` is called from the socket's receiver task: it must not block or raise.  A
    probe's ``tag`` is the owner's own (a batch keeps the host there), never read here.
    """

    def deliver(self, probe: Probe, result: ProbeResult) -> None: ...

    def abandon(self, error: BaseException) -> None:
        """The socket is closed under the owner's probes: no verdict will come."""


class Probe:
    """One echo request, and what is needed to judge its replies."""

    __slots__ = (
        "deadline",
        "owner",
        "payload",
        "probe_index",
        "reply_checksum",
        "sent_mono_ns",
        "sent_wall_ns",
        "sequence",
        "state",
        "tag",
        "target",
        "tx_id",
        "tx_ns",
    )

    def __init__(
        self,
        target: str,
        sequence: int,
        probe_index: int,
        payload: bytes,
        reply_checksum: int,
        sent_wall_ns: int,
        sent_mono_ns: int,
        owner: ProbeOwner,
        tag: object = None,
        deadline: float = math.inf,
    ) -> None:
        self.target = target
        self.sequence = sequence
        self.probe_index = probe_index
        self.payload = payload
        self.reply_checksum = reply_checksum
        self.sent_wall_ns = sent_wall_ns
        self.sent_mono_ns = sent_mono_ns
        self.tx_ns: int | None = None
        self.tx_id: int | None = None
        self.state = _WAITING
        self.owner = owner
        self.tag: Any = tag
        self.deadline = deadline
        """The Trio time at which the probe is lost unless answered."""


Delivery = tuple[Probe, ProbeResult]
"""A result and the probe it belongs to (its ``owner`` takes it)."""


def compute_rtt(probe: Probe, rx_wall_ns: int | None, now_mono_ns: int) -> tuple[float, RttClock]:
    """The probe's round-trip time in seconds, and the clock it came from.

    Kernel stamps are CLOCK_REALTIME, which can step.  The monotonic time from just before
    the send to now bounds the true RTT from above (the kernel stamps lie inside it), so
    a kernel figure that is not positive or exceeds that bound means the wall clock moved:
    the monotonic figure is used instead.
    """
    elapsed_ns = now_mono_ns - probe.sent_mono_ns
    if rx_wall_ns is not None:
        if probe.tx_ns is not None:
            sent_ns, clock = probe.tx_ns, _KERNEL
        else:
            sent_ns, clock = probe.sent_wall_ns, _KERNEL_RX
        rtt_ns = rx_wall_ns - sent_ns
        slack_ns = 1_000_000 + elapsed_ns // 1000
        if 0 < rtt_ns <= elapsed_ns + slack_ns:
            return rtt_ns / 1e9, clock
    return max(elapsed_ns, 1) / 1e9, _MONOTONIC


def local_error_text(error_number: int, info: int) -> str:
    """iputils' wording for a refused send: ``local error: message too long, mtu=1280``."""
    reason = "message too long" if error_number == errnos.EMSGSIZE else os.strerror(error_number)
    text = f"local error: {reason}"
    return f"{text}, mtu={info}" if info else text


class ProbeTable:
    """The probes in flight on one socket of one family.

    *identifier* is the echo identifier on the wire (the kernel's, for a Linux datagram
    socket, which also delivers only replies carrying it: *kernel_owns_identifier*);
    *delivers_ip_header* says whether received IPv4 datagrams start with their IP header
    (raw sockets).  A probe stays in the table one timeout (at least :data:`MIN_LINGER`)
    after its deadline, so late and duplicate replies are still told apart, then it is
    forgotten: the table's size is bounded by the send rate times that time plus the
    timeout, however long it runs.
    """

    def __init__(
        self,
        family: Family,
        identifier: int,
        token: bytes,
        *,
        kernel_owns_identifier: bool = False,
        delivers_ip_header: bool = False,
    ) -> None:
        self.family = family
        self.identifier = identifier
        self.token = token
        self.kernel_owns_identifier = kernel_owns_identifier
        self.delivers_ip_header = delivers_ip_header and family is Family.V4
        self.probes: dict[tuple[str, int], Probe] = {}
        # The same probes by the send stamp their payload carries: a reply from an address
        # other than the one pinged (a broadcast, a multicast group, a host answering from
        # another of its addresses) is still found, as iputils' ping and fping find it.
        self._by_stamp: dict[int, Probe] = {}
        self._last_stamp = 0
        self._tx_pending: dict[int, Probe] = {}
        self._next_sequence: dict[str, int] = {}
        self._templates: dict[int, EchoTemplate] = {}
        # Probes waiting for their deadline, then lingering one timeout more, one deque per
        # timeout value: appended in send order, so each is in deadline order.
        self._timed: dict[float, deque[Probe]] = {}
        self._lingering: dict[float, deque[Probe]] = {}
        self.ignored = 0
        """Datagrams that were not replies to our probes (other pingers, strays, junk)."""
        self.kernel_drops = 0
        """Datagrams the kernel dropped for a full receive buffer (SO_RXQ_OVFL)."""
        self.advisories = 0
        """ICMPv4 redirects and source quenches that quoted a waiting probe (see
        ``_ADVICE_V4``): the probe waits on for its reply."""

    def __len__(self) -> int:
        return len(self.probes)

    # -- sending ---------------------------------------------------------------------------

    def open_probe(
        self,
        target: str,
        probe_index: int,
        size: int,
        owner: ProbeOwner,
        tag: object,
        wall_ns: int,
        mono_ns: int,
        now: float,
        timeout: float,
    ) -> tuple[Probe, bytes] | SendError:
        """A new probe to *target* (owned by *owner*, with its *tag*) and the request to send.

        *wall_ns* / *mono_ns* are the clocks read just before the send, *now* the Trio time:
        the probe is lost unless answered by ``now + timeout``.  Returns a
        :class:`SendError` when all 65,536 sequences to *target* are still waiting.  The
        request is taken as sent; the caller reports :meth:`await_stamp` (a transmit stamp
        is due), :meth:`withdraw` (the send would block) or :meth:`refuse` (the kernel
        refused it).
        """
        probes = self.probes
        sequence = self._next_sequence.get(target, 1)
        key = (target, sequence)
        if key in probes:
            free = self._free_sequence(target, sequence)
            if free is None:
                message = "no free sequence number: 65,536 probes to this host await replies"
                return SendError(target, sequence, probe_index, errnos.ENOBUFS, message)
            sequence = free
            key = (target, sequence)
        self._next_sequence[target] = (sequence + 1) % SEQUENCE_SPACE
        if wall_ns <= self._last_stamp:  # a coarse clock, or one stepped back: no stamp is used twice
            wall_ns = self._last_stamp + 1
        self._last_stamp = wall_ns
        template = self._templates.get(size) or self._template(size)
        packet, payload, reply_checksum = template.build(sequence, wall_ns)
        probe = probes[key] = Probe(
            target, sequence, probe_index, payload, reply_checksum, wall_ns, mono_ns, owner, tag, now + timeout
        )
        self._by_stamp[wall_ns] = probe
        queue = self._timed.get(timeout)
        if queue is None:
            queue = self._timed[timeout] = deque()
        queue.append(probe)
        return probe, packet

    def _free_sequence(self, target: str, sequence: int) -> int | None:
        """The next sequence to *target* not still waiting, after a full wrap.

        An old answered or expired probe on the same key is forgotten: after 65,536 probes
        to one host its duplicates can no longer be told apart, as in iputils' table.
        """
        for _ in range(SEQUENCE_SPACE):
            old = self.probes.get((target, sequence))
            if old is None or old.state is not _WAITING:
                if old is not None:
                    self.forget(old)
                return sequence
            sequence = (sequence + 1) % SEQUENCE_SPACE
        return None

    def _template(self, size: int) -> EchoTemplate:
        template = self._templates[size] = EchoTemplate(self.family, self.identifier, self.token, size)
        return template

    def await_stamp(self, probe: Probe, tx_id: int) -> None:
        """The kernel will report the request's transmit stamp under *tx_id*."""
        probe.tx_id = tx_id
        self._tx_pending[tx_id] = probe

    def withdraw(self, probe: Probe) -> None:
        """The request was never sent (the socket buffer was full): as if never opened."""
        self.forget(probe)
        self._next_sequence[probe.target] = probe.sequence

    def refuse(self, probe: Probe, error_number: int, message: str, mtu: int | None = None) -> SendError:
        """The kernel refused the request: the probe is finished, and this is its result."""
        self.forget(probe)
        probe.state = _FAILED
        return SendError(probe.target, probe.sequence, probe.probe_index, error_number, message, mtu)

    # -- time --------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """The Trio time at which :meth:`expire` next has something to do (inf: never)."""
        wake = math.inf
        for queue in self._timed.values():
            if queue[0].deadline < wake:
                wake = queue[0].deadline
        for timeout, queue in self._lingering.items():
            forget_at = queue[0].deadline + (timeout if timeout > MIN_LINGER else MIN_LINGER)
            if forget_at < wake:
                wake = forget_at
        return wake

    def expire(self, now: float) -> list[Delivery]:
        """Declare lost the probes still waiting at their deadline, and forget those kept
        one timeout (at least :data:`MIN_LINGER`) past it.  Returns the :class:`Timeout`
        results to deliver."""
        expired: list[Delivery] = []
        for timeout, queue in list(self._timed.items()):
            lingering = self._lingering.get(timeout)
            while queue and queue[0].deadline <= now:
                probe = queue.popleft()
                state = probe.state
                if state is _FORGOTTEN:
                    continue
                if state is _WAITING:
                    probe.state = _EXPIRED
                    expired.append((probe, Timeout(probe.target, probe.sequence, probe.probe_index)))
                if lingering is None:
                    lingering = self._lingering[timeout] = deque()
                lingering.append(probe)
            if not queue:
                del self._timed[timeout]
        probes, by_stamp = self.probes, self._by_stamp
        for timeout, queue in list(self._lingering.items()):
            linger = timeout if timeout > MIN_LINGER else MIN_LINGER  # next_deadline's sum, exactly
            while queue and queue[0].deadline + linger <= now:
                probe = queue.popleft()
                if probe.state is not _FORGOTTEN:  # what forget() does, without a call each
                    key = (probe.target, probe.sequence)
                    if probes.get(key) is probe:
                        del probes[key]
                    if by_stamp.get(probe.sent_wall_ns) is probe:
                        del by_stamp[probe.sent_wall_ns]
                    if probe.tx_id is not None and self._tx_pending.get(probe.tx_id) is probe:
                        del self._tx_pending[probe.tx_id]
                    probe.state = _FORGOTTEN
            if not queue:
                del self._lingering[timeout]
        return expired

    def forget(self, probe: Probe) -> None:
        """Remove *probe*: its replies are ignored from now on."""
        key = (probe.target, probe.sequence)
        if self.probes.get(key) is probe:
            del self.probes[key]
        if self._by_stamp.get(probe.sent_wall_ns) is probe:
            del self._by_stamp[probe.sent_wall_ns]
        if probe.tx_id is not None and self._tx_pending.get(probe.tx_id) is probe:
            del self._tx_pending[probe.tx_id]
        probe.state = _FORGOTTEN

    def clear(self) -> None:
        """Forget every probe at once (the socket is closing)."""
        self.probes.clear()
        self._by_stamp.clear()
        self._tx_pending.clear()

    def forget_owner(self, owner: ProbeOwner) -> None:
        """Forget every probe of *owner* (a stream or batch that has ended)."""
        probes = self.probes
        tx_pending = self._tx_pending
        by_stamp = self._by_stamp
        for key, probe in [(k, p) for k, p in probes.items() if p.owner is owner]:
            del probes[key]
            if by_stamp.get(probe.sent_wall_ns) is probe:
                del by_stamp[probe.sent_wall_ns]
            if probe.tx_id is not None and tx_pending.get(probe.tx_id) is probe:
                del tx_pending[probe.tx_id]
            probe.state = _FORGOTTEN

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, data: bytes, ancillary: list[Cmsg], source: str, now_mono_ns: int) -> Delivery | None:
        """Judge one received datagram (*source*: the address ``recvmsg`` gave, on a raw
        IPv4 socket the IP header's source).  None when it is nobody's business here."""
        kernel_ns, cmsg_ttl, dropped = parse_ancillary(ancillary)
        if dropped is not None:
            self.kernel_drops = dropped
        if self.delivers_ip_header:
            # The usual case first: a correct reply to one of our probes, proved so by two
            # integers and a byte comparison before any object is decoded.
            peeked = peek_ipv4_echo_reply(data)
            if peeked is not None:
                identifier, sequence, ttl, checksum = peeked
                probe = self.probes.get((source, sequence))
                if (
                    probe is not None
                    and identifier == self.identifier
                    and is_reply_to(data, checksum, probe.payload, probe.reply_checksum)
                ):
                    return self._valid_reply(probe, source, len(data) - IPV4_HEADER_SIZE, ttl, kernel_ns, now_mono_ns)
        try:
            if self.family is Family.V6:
                message = decode_icmpv6(data, source=source, hop_limit=cmsg_ttl)
            elif self.delivers_ip_header:
                message = decode_ipv4(data)
            else:
                message = decode_icmpv4(data, source=source, ttl=cmsg_ttl)
        except PacketError:
            self.ignored += 1
            return None
        if isinstance(message, EchoMessage):
            return self._on_echo(message, source, kernel_ns, now_mono_ns)
        if isinstance(message, ErrorMessage):
            return self._on_icmp_error(message, source, kernel_ns, now_mono_ns)
        self.ignored += 1
        return None

    def _ours(self, identifier: int) -> bool:
        # A Linux datagram socket only ever receives replies carrying its own identifier.
        return self.kernel_owns_identifier or identifier == self.identifier

    def _on_echo(self, message: EchoMessage, source: str, kernel_ns: int | None, now_mono_ns: int) -> Delivery | None:
        source = message.source or source
        if not message.is_reply or not self._ours(message.identifier):
            self.ignored += 1
            return None
        probe = self.probes.get((source, message.sequence))
        if probe is None:
            return self._on_echo_from_elsewhere(message, source, kernel_ns, now_mono_ns)
        reason = _BAD_CHECKSUM if message.checksum_ok is False else None
        reason = reason or check_payload(message.payload, probe.payload)
        if reason is not None and message.payload[:STAMP_SIZE] != probe.payload[:STAMP_SIZE]:
            # Another probe's reply with this one's address and sequence: another target
            # (or another address of it) answered for the one it was sent to.
            elsewhere = self._stamped(message)
            if elsewhere is not None:
                return self._valid_reply(elsewhere, source, message.icmp_size, message.ttl, kernel_ns, now_mono_ns)
        if reason is _WRONG_TOKEN and is_foreign(message.payload, probe.payload):
            self.ignored += 1
            return None
        if reason is not None:
            return probe, InvalidReply(probe.target, source, probe.sequence, probe.probe_index, reason)
        return self._valid_reply(probe, source, message.icmp_size, message.ttl, kernel_ns, now_mono_ns)

    def _on_echo_from_elsewhere(
        self, message: EchoMessage, source: str, kernel_ns: int | None, now_mono_ns: int
    ) -> Delivery | None:
        """A reply from an address we did not ping, found by the send stamp it carries: ours
        only if it passes every check (sequence, checksum, token, the whole payload), since
        its address does not vouch for it.  Anything less is somebody else's, ignored."""
        probe = self._stamped(message)
        if probe is None:
            self.ignored += 1
            return None
        return self._valid_reply(probe, source, message.icmp_size, message.ttl, kernel_ns, now_mono_ns)

    def _stamped(self, message: EchoMessage) -> Probe | None:
        """The probe whose send stamp *message* carries, if it passes every check."""
        payload = message.payload
        probe = self._by_stamp.get(int.from_bytes(payload[:STAMP_SIZE], "big")) if len(payload) >= STAMP_SIZE else None
        if (
            probe is None
            or probe.sequence != message.sequence
            or message.checksum_ok is False
            or check_payload(payload, probe.payload) is not None
        ):
            return None
        return probe

    def _valid_reply(
        self, probe: Probe, source: str, icmp_size: int, ttl: int | None, kernel_ns: int | None, now_mono_ns: int
    ) -> Delivery:
        """A reply that passed every check: the first answers *probe*, later ones are
        duplicates, and one after its verdict is late."""
        rtt, clock = compute_rtt(probe, kernel_ns, now_mono_ns)
        state = probe.state
        if state is _WAITING:
            probe.state = _ANSWERED
            return probe, Reply(probe.target, source, probe.sequence, probe.probe_index, icmp_size, ttl, rtt, clock)
        if state is _ANSWERED:
            return probe, Reply(
                probe.target, source, probe.sequence, probe.probe_index, icmp_size, ttl, rtt, clock, True
            )
        return probe, LateReply(probe.target, source, probe.sequence, probe.probe_index, icmp_size, ttl, rtt, clock)

    def _on_icmp_error(
        self, message: ErrorMessage, sender: str, kernel_ns: int | None, now_mono_ns: int
    ) -> Delivery | None:
        """An error quoting one of our requests: matched by the quoted destination, identifier
        and sequence, and by the quoted stamp and token as far as they are quoted -- never by
        the address it came from (a router's)."""
        probe = self.probes.get((message.target, message.sequence))
        if (
            probe is None
            or not self._ours(message.identifier)
            or probe.state is not _WAITING
            or quotes_another_request(message.quoted_data, probe.payload)
        ):
            self.ignored += 1
            return None
        if message.icmp_type in _ADVICE_V4 and self.family is Family.V4:
            self.advisories += 1
            return None
        probe.state = _FAILED
        rtt, clock = compute_rtt(probe, kernel_ns, now_mono_ns)
        result = IcmpError(
            probe.target,
            message.source or sender,
            probe.sequence,
            probe.probe_index,
            self.family,
            message.icmp_type,
            message.code,
            message.info,
            rtt,
            clock,
        )
        return probe, result

    def transmit_stamps(self, stamps: list[tuple[int, int | None]]) -> None:
        """Record transmit stamps, ``(id, kernel_ns)`` each, on the probes they belong to
        (an id no probe awaits -- forgotten, withdrawn -- is dropped)."""
        pending = self._tx_pending
        for tx_id, kernel_ns in stamps:
            probe = pending.pop(tx_id, None)
            if probe is not None:
                probe.tx_ns = kernel_ns

    def error_queue_entry(self, data: bytes, ancillary: list[Cmsg], source: str, now_mono_ns: int) -> Delivery | None:
        """Judge one entry of the socket's error queue: a transmit stamp (recorded on its
        probe), or, on a datagram socket, an ICMP or local error for one of our requests
        (*data* is then the request as quoted, *source* its destination).  An ICMP error's
        receive stamp is in the entry's control messages: it is timed as a reply is."""
        queued = parse_error_queue(ancillary)
        if queued is None:
            return None
        if queued.origin == _ORIGIN_TIMESTAMPING:
            self.transmit_stamps([(queued.data, queued.kernel_ns)])
            return None
        try:
            quoted = decode_error_payload(self.family, data)
        except PacketError:
            quoted = None
        probe = None if quoted is None else self.probes.get((source, quoted[1]))
        if (
            probe is None
            or probe.state is not _WAITING
            or quotes_another_request(data[ICMP_HEADER_SIZE:], probe.payload)
        ):
            self.ignored += 1
            return None
        if queued.origin == _ORIGIN_ICMP_V4 and queued.icmp_type in _ADVICE_V4:
            self.advisories += 1
            return None
        probe.state = _FAILED
        if queued.origin in _ORIGINS_ICMP:
            error = IcmpError(
                probe.target,
                queued.offender or source,
                probe.sequence,
                probe.probe_index,
                self.family,
                queued.icmp_type,
                queued.code,
                queued.info,
                *compute_rtt(probe, queued.kernel_ns, now_mono_ns),
            )
            return probe, error
        detail = local_error_text(queued.errno, queued.info)
        mtu = (queued.info or None) if queued.errno == errnos.EMSGSIZE else None
        return probe, SendError(probe.target, probe.sequence, probe.probe_index, queued.errno, detail, mtu)


__all__ = ["Delivery", "Probe", "ProbeOwner", "ProbeState", "ProbeTable", "compute_rtt", "local_error_text"]
