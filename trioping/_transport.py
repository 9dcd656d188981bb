"""One socket per address family, its receiver task, and the table of probes in flight.

The receiver is the only reader of its socket.  Every datagram is decoded by the sans-I/O
codec and matched in O(1) by ``(source address, sequence)`` -- for ICMP errors, by the
quoted request's ``(destination, sequence)`` -- then checked against the probe's exact
payload (stamp, per-pinger token, fill) before it may count.  Results are handed to the
probe's owner (a :class:`ProbeOwner`), which decides what a caller sees.
"""

from __future__ import annotations

import enum
import errno
import os
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import trio

from . import _constants as C
from ._ancillary import Ancillary, parse_ancillary, parse_error_queue, stamp_and_drops, tx_timestamp
from ._errors import PacketError
from ._packet import (
    IPV4_HEADER_SIZE,
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
)
from ._results import (
    IcmpError,
    InvalidReply,
    LateReply,
    ProbeResult,
    Reply,
    RttClock,
    SendError,
    Timeout,
)
from ._socket import IcmpSocket, Received

_BATCH = 512
_SEQUENCE_SPACE = 0x10000
_time_ns = time.time_ns
_new_tuple = tuple.__new__
_monotonic_ns = time.monotonic_ns


class ProbeState(enum.Enum):
    WAITING = "waiting"
    ANSWERED = "answered"
    EXPIRED = "expired"
    FAILED = "failed"


# Enum members read through their class go through EnumType.__getattr__'s slot (a
# method-wrapper object a read, on Python 3.11): the hot paths use these aliases instead.
_WAITING = ProbeState.WAITING
_ANSWERED = ProbeState.ANSWERED
_EXPIRED = ProbeState.EXPIRED
_FAILED = ProbeState.FAILED
_WRONG_TOKEN = InvalidReason.WRONG_TOKEN
_KERNEL = RttClock.KERNEL
_KERNEL_RX = RttClock.KERNEL_RX
_MONOTONIC = RttClock.MONOTONIC


class ProbeOwner(Protocol):
    """Whoever sent a probe and wants its results (a stream, a fan-out batch...)."""

    def deliver(self, probe: Probe, result: ProbeResult) -> None: ...


class Probe:
    """One echo request in flight, and what we need to judge its replies."""

    __slots__ = (
        "deadline",
        "done",
        "index",
        "owner",
        "payload",
        "reply_checksum",
        "sent_mono_ns",
        "sent_wall_ns",
        "sequence",
        "state",
        "target",
        "tx_id",
        "tx_ns",
    )

    def __init__(
        self,
        target: str,
        sequence: int,
        index: int,
        payload: bytes,
        reply_checksum: int,
        sent_wall_ns: int,
        sent_mono_ns: int,
        owner: ProbeOwner,
    ) -> None:
        self.target = target
        self.sequence = sequence
        self.index = index
        self.payload = payload
        self.reply_checksum = reply_checksum
        self.sent_wall_ns = sent_wall_ns
        self.sent_mono_ns = sent_mono_ns
        self.tx_ns: int | None = None
        self.tx_id: int | None = None
        self.state = _WAITING
        self.owner = owner
        self.done: trio.Event | None = None
        self.deadline = 0.0
        """When its owner gives up on it (Trio time), for owners that keep probes in order."""

    def finish(self, state: ProbeState) -> None:
        self.state = state
        if self.done is not None:
            self.done.set()


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


class Transport:
    """One :class:`IcmpSocket`, its receiver, and the demultiplexing table."""

    def __init__(self, sock: IcmpSocket, token: bytes) -> None:
        self.sock = sock
        self.family = sock.family
        self.token = token
        self.table: dict[tuple[str, int], Probe] = {}
        self._tx_pending: dict[int, Probe] = {}
        self._next_sequence: dict[str, int] = {}
        # By size (the socket's identifier is fixed): requests differ in sequence and stamp only.
        self._templates: dict[int, EchoTemplate] = {}
        self._send_unstamped = sock.send_unstamped
        self.kernel_drops = 0
        """Datagrams the kernel dropped for a full receive buffer (SO_RXQ_OVFL)."""
        self.ignored = 0
        """Datagrams that were not replies to our probes (other pingers, strays, junk)."""
        self._decode: Callable[[Received, Ancillary], EchoMessage | ErrorMessage | None]
        if self.family is Family.V4:
            self._decode = _decode_v4_raw if sock.delivers_ip_header else _decode_v4_datagram
        else:
            self._decode = _decode_v6
        self._fast_replies = self.family is Family.V4 and sock.delivers_ip_header and not sock.kernel_owns_identifier

    @property
    def identifier(self) -> int:
        return self.sock.identifier

    # -- sending -----------------------------------------------------------------------

    def _allocate_sequence(self, target: str) -> int | None:
        """Next sequence for *target*, skipping ones still waiting after a full wrap.

        An old answered or expired probe on the same key is evicted: after 65,536 probes to
        one host its duplicates can no longer be told apart, as in iputils' table.  None
        when all 65,536 are still waiting (a flood to a host that never answers).
        """
        sequence = self._next_sequence.get(target, 1)
        for _ in range(_SEQUENCE_SPACE):
            old = self.table.get((target, sequence))
            if old is None or old.state is not _WAITING:
                if old is not None:
                    self.forget(old)
                self._next_sequence[target] = (sequence + 1) % _SEQUENCE_SPACE
                return sequence
            sequence = (sequence + 1) % _SEQUENCE_SPACE
        return None

    def try_send(
        self,
        target: str,
        index: int,
        size: int,
        ttl: int | None,
        owner: ProbeOwner,
        tx_timestamp: bool = True,
    ) -> Probe | SendError | None:
        """Send one echo now.  None means the socket buffer is full: wait writable, retry.

        ``tx_timestamp=False`` skips the kernel's transmit stamp for this probe (fan-out
        does, to save an error-queue read per probe): its RTT then runs from a clock read
        just before the send to the kernel's receive stamp (``RttClock.KERNEL_RX``).
        """
        table = self.table
        next_sequence = self._next_sequence
        sequence = next_sequence.get(target, 1)
        key = (target, sequence)
        if key in table:  # rare: a full wrap of the sequence space
            free = self._allocate_sequence(target)
            if free is None:
                message = "no free sequence number: 65,536 probes to this host await replies"
                return SendError(target, sequence, index, errno.ENOBUFS, message)
            sequence = free
            key = (target, sequence)
        else:
            next_sequence[target] = (sequence + 1) % _SEQUENCE_SPACE
        template = self._templates.get(size) or self._template(size)
        wall_ns = _time_ns()
        packet, payload, reply_checksum = template.build(sequence, wall_ns)
        probe = table[key] = Probe(target, sequence, index, payload, reply_checksum, wall_ns, _monotonic_ns(), owner)
        try:
            if ttl is None and not tx_timestamp:
                self._send_unstamped(packet, (target, 0))
                return probe
            tx_id = self.sock.send(packet, target, ttl=ttl, tx_timestamp=tx_timestamp)
        except BlockingIOError:
            del table[key]
            next_sequence[target] = sequence
            return None
        except OSError as exc:
            del table[key]
            return self._send_error(probe, exc)
        if tx_id is not None:
            probe.tx_id = tx_id
            self._tx_pending[tx_id] = probe
        return probe

    def _template(self, size: int) -> EchoTemplate:
        template = self._templates[size] = EchoTemplate(self.family, self.sock.identifier, self.token, size)
        return template

    def _send_error(self, probe: Probe, exc: OSError) -> SendError:
        """A refused send as a result; "message too long" carries the path MTU, as ping's
        ``local error: message too long, mtu=1280``."""
        number = exc.errno or 0
        if number == errno.EMSGSIZE:
            mtu = self.sock.path_mtu(probe.target)
            text = _local_error_text(number, mtu or 0)
            return SendError(probe.target, probe.sequence, probe.index, number, text, mtu=mtu)
        return SendError(probe.target, probe.sequence, probe.index, number, exc.strerror or str(exc))

    async def send(
        self, target: str, *, index: int, size: int, ttl: int | None, owner: ProbeOwner
    ) -> Probe | SendError:
        while True:
            sent = self.try_send(target, index=index, size=size, ttl=ttl, owner=owner)
            if sent is not None:
                return sent
            await self.sock.wait_writable()

    def expire(self, probe: Probe) -> Timeout | None:
        """Declare a still-waiting probe lost and tell its owner; replies later are *late*."""
        if probe.state is not _WAITING:
            return None
        probe.finish(_EXPIRED)
        result = Timeout(probe.target, probe.sequence, probe.index)
        probe.owner.deliver(probe, result)
        return result

    def forget(self, probe: Probe) -> None:
        """Remove *probe* from the tables; its replies are ignored from now on."""
        key = (probe.target, probe.sequence)
        if self.table.get(key) is probe:
            del self.table[key]
        if probe.tx_id is not None and self._tx_pending.get(probe.tx_id) is probe:
            del self._tx_pending[probe.tx_id]

    def forget_all(self, probes: Iterable[Probe]) -> None:
        """:meth:`forget` many probes (the end of a fan-out batch), without a call each."""
        table = self.table
        tx_pending = self._tx_pending
        for probe in probes:
            key = (probe.target, probe.sequence)
            if table.get(key) is probe:
                del table[key]
            if probe.tx_id is not None and tx_pending.get(probe.tx_id) is probe:
                del tx_pending[probe.tx_id]

    # -- receiving ---------------------------------------------------------------------

    async def receive_forever(self) -> None:
        """The socket's one reader: sleep until readable, then drain what is queued."""
        while True:
            await self.sock.wait_readable()
            self.drain()

    def drain(self) -> None:
        sock = self.sock
        if sock.tx_timestamps or sock.kernel_owns_identifier:
            tx_pending = self._tx_pending
            for data, ancillary, address in sock.error_queue_batch(_BATCH):
                stamped = tx_timestamp(ancillary)  # the common case (one per stamped send), inline
                if stamped is None:
                    self._on_error_queue(Received(data, ancillary, address))
                    continue
                probe = tx_pending.pop(stamped[0], None)
                if probe is not None:
                    probe.tx_ns = stamped[1]
        # What _on_datagram does, without a Received object for the common case.
        fast = self._on_reply_fast if self._fast_replies else None
        for data, ancillary, _flags, address in sock.receive_batch(_BATCH):
            source = address[0] if address else ""
            if fast is None or not fast(data, ancillary, source):
                self._on_datagram_in_full(Received(data, ancillary, source))

    def _on_datagram(self, received: Received) -> None:
        if self._fast_replies and self._on_reply_fast(received.data, received.ancillary, received.address):
            return
        self._on_datagram_in_full(received)

    def _on_datagram_in_full(self, received: Received) -> None:
        ancillary = parse_ancillary(received.ancillary)
        if ancillary.dropped is not None:
            self.kernel_drops = ancillary.dropped
        try:
            message = self._decode(received, ancillary)
        except PacketError:
            self.ignored += 1
            return
        if isinstance(message, EchoMessage):
            self._on_echo(message, ancillary)
        elif isinstance(message, ErrorMessage):
            self._on_icmp_error(message, received.address)
        else:
            self.ignored += 1

    def _ours(self, identifier: int) -> bool:
        # A Linux datagram socket only ever receives replies carrying its own identifier.
        return self.sock.kernel_owns_identifier or identifier == self.identifier

    def _on_echo(self, message: EchoMessage, ancillary: Ancillary) -> None:
        now_mono_ns = time.monotonic_ns()
        source = message.source or ""
        probe = self.table.get((source, message.sequence))
        if not message.is_reply or probe is None or not self._ours(message.identifier):
            self.ignored += 1
            return
        reason = InvalidReason.BAD_CHECKSUM if message.checksum_ok is False else None
        reason = reason or check_payload(message.payload, probe.payload)
        if reason is _WRONG_TOKEN and is_foreign(message.payload, probe.payload):
            self.ignored += 1
            return
        if reason is not None:
            probe.owner.deliver(probe, InvalidReply(probe.target, source, probe.sequence, probe.index, reason))
            return
        ttl = message.ttl if message.ttl is not None else ancillary.ttl
        self._valid_reply(probe, source, message.icmp_size, ttl, ancillary.kernel_ns, now_mono_ns)

    def _valid_reply(
        self, probe: Probe, source: str, icmp_size: int, ttl: int | None, kernel_ns: int | None, now_mono_ns: int
    ) -> None:
        """A reply that passed every check: the first answers *probe*, later ones are
        duplicates, and one after its verdict is late."""
        rtt, clock = compute_rtt(probe, kernel_ns, now_mono_ns)
        result: ProbeResult
        state = probe.state
        if state is _WAITING:
            probe.state = _ANSWERED
            if probe.done is not None:
                probe.done.set()
            # Reply(...) without the named tuple's Python-level __new__ (once per reply).
            result = _new_tuple(
                Reply, (probe.target, source, probe.sequence, probe.index, icmp_size, ttl, rtt, clock, False)
            )
        elif state is _ANSWERED:
            result = Reply(probe.target, source, probe.sequence, probe.index, icmp_size, ttl, rtt, clock, True)
        else:
            result = LateReply(probe.target, source, probe.sequence, probe.index, icmp_size, ttl, rtt, clock)
        probe.owner.deliver(probe, result)

    def _on_reply_fast(self, data: bytes, ancillary: list[tuple[int, int, bytes]], source: str) -> bool:
        """The common case on a socket that delivers IPv4 headers -- a valid reply to one of
        our probes -- matched before any decoding object is built.  False for anything
        else (foreign, invalid, errors...), which the general path then handles in full.
        *source* is the address ``recvmsg`` gave: on a raw socket, the IP header's source."""
        peeked = peek_ipv4_echo_reply(data)
        if peeked is None:
            return False
        identifier, sequence, ttl, checksum = peeked
        probe = self.table.get((source, sequence))
        if (
            probe is None
            or identifier != self.sock.identifier
            or not is_reply_to(data, checksum, probe.payload, probe.reply_checksum)
        ):
            return False
        now_mono_ns = _monotonic_ns()
        kernel_ns, dropped = stamp_and_drops(ancillary)
        if dropped is not None:
            self.kernel_drops = dropped
        if probe.state is not _WAITING or probe.done is not None:
            self._valid_reply(probe, source, len(data) - IPV4_HEADER_SIZE, ttl, kernel_ns, now_mono_ns)
            return True
        # What _valid_reply does for a first reply nobody awaits alone (fan-out, streams), one call fewer.
        probe.state = _ANSWERED
        rtt, clock = compute_rtt(probe, kernel_ns, now_mono_ns)
        fields = (probe.target, source, sequence, probe.index, len(data) - IPV4_HEADER_SIZE, ttl, rtt, clock, False)
        probe.owner.deliver(probe, _new_tuple(Reply, fields))
        return True

    def _on_icmp_error(self, message: ErrorMessage, sender: str) -> None:
        probe = self.table.get((message.target, message.sequence))
        if probe is None or not self._ours(message.identifier) or probe.state is not _WAITING:
            self.ignored += 1
            return
        probe.finish(_FAILED)
        source = message.source or sender
        result = IcmpError(
            probe.target,
            source,
            probe.sequence,
            probe.index,
            self.family,
            message.icmp_type,
            message.code,
            message.info,
        )
        probe.owner.deliver(probe, result)

    def _on_error_queue(self, entry: Received) -> None:
        stamped = tx_timestamp(entry.ancillary)  # the common case, read fast
        if stamped is not None:
            probe = self._tx_pending.pop(stamped[0], None)
            if probe is not None:
                probe.tx_ns = stamped[1]
            return
        queued = parse_error_queue(entry.ancillary)
        if queued is None:
            return
        if queued.origin == C.SO_EE_ORIGIN_TIMESTAMPING:
            probe = self._tx_pending.pop(queued.data, None)
            if probe is not None:
                probe.tx_ns = queued.kernel_ns
            return
        # An ICMP or local error for a datagram socket: the entry's data is our request.
        try:
            quoted = decode_error_payload(self.family, entry.data)
        except PacketError:
            quoted = None
        if quoted is None:
            self.ignored += 1
            return
        probe = self.table.get((entry.address, quoted[1]))
        if probe is None or probe.state is not _WAITING:
            self.ignored += 1
            return
        if queued.origin in (C.SO_EE_ORIGIN_ICMP, C.SO_EE_ORIGIN_ICMP6):
            probe.finish(_FAILED)
            result: ProbeResult = IcmpError(
                probe.target,
                queued.offender or entry.address,
                probe.sequence,
                probe.index,
                self.family,
                queued.icmp_type,
                queued.code,
                queued.info,
            )
        else:
            probe.finish(_FAILED)
            detail = _local_error_text(queued.errno, queued.info)
            mtu = (queued.info or None) if queued.errno == errno.EMSGSIZE else None
            result = SendError(probe.target, probe.sequence, probe.index, queued.errno, detail, mtu=mtu)
        probe.owner.deliver(probe, result)


def _local_error_text(error_number: int, info: int) -> str:
    # iputils' wording: "local error: message too long, mtu=1280".
    reason = "message too long" if error_number == errno.EMSGSIZE else os.strerror(error_number)
    text = f"local error: {reason}"
    return f"{text}, mtu={info}" if info else text


def _decode_v4_raw(received: Received, _ancillary: Ancillary) -> EchoMessage | ErrorMessage | None:
    return decode_ipv4(received.data)


def _decode_v4_datagram(received: Received, ancillary: Ancillary) -> EchoMessage | ErrorMessage | None:
    return decode_icmpv4(received.data, source=received.address, ttl=ancillary.ttl)


def _decode_v6(received: Received, ancillary: Ancillary) -> EchoMessage | ErrorMessage | None:
    return decode_icmpv6(received.data, source=received.address, hop_limit=ancillary.ttl)
