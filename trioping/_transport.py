"""The shell around a :class:`ProbeTable`: one socket, and the one task that reads it.

Everything the table decides is pure; this module moves bytes and clock readings in and
hands each result to its probe's owner.  The receiver task is the socket's only reader,
and also the timer of every probe on it: it sleeps until the socket is readable or the
table's next deadline, whichever comes first, so no probe needs a task or a timer of its
own and a timeout is a result, never an exception.
"""

from __future__ import annotations

import errno
import math
import time

import trio

from ._errors import PingerClosedError
from ._results import SendError
from ._socket import IcmpSocket
from ._table import Probe, ProbeOwner, ProbeState, ProbeTable, local_error_text

_BATCH = 512
_CONGESTED = frozenset({errno.ENOBUFS, errno.ENOMEM})
"""Errors that mean *not sent, slow down*: a full device queue or socket buffer (a raw
socket says ENOBUFS where others say EAGAIN).  The probe is sent again, as iputils does."""
_CONGESTED_PAUSE = 0.001
_STAMPING_SETTLE = 0.010
"""Seconds after a socket opens before receive stamps can be relied on: Linux switches
receive stamping on for the whole host through a deferred work item (net_enable_timestamp
schedules netstamp_work), so when no other socket has it on, datagrams received in the
first moments carry no stamp (measured: a trace sent at once was timed by the monotonic
clock in about one run in twenty)."""
_time_ns = time.time_ns
_monotonic_ns = time.monotonic_ns


class Transport:
    """One :class:`IcmpSocket`, its probe table and its receiver task."""

    def __init__(self, sock: IcmpSocket, token: bytes) -> None:
        self.sock = sock
        self.family = sock.family
        self.table = ProbeTable(
            sock.family,
            sock.identifier,
            token,
            kernel_owns_identifier=sock.kernel_owns_identifier,
            delivers_ip_header=sock.delivers_ip_header,
        )
        self._waiting: trio.CancelScope | None = None
        self._wake_at = math.inf
        self.closed = False
        self._congested = False
        self._stamps_from = trio.current_time() + _STAMPING_SETTLE

    @property
    def identifier(self) -> int:
        return self.sock.identifier

    @property
    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for a full receive buffer (SO_RXQ_OVFL)."""
        return self.table.kernel_drops

    @property
    def ignored(self) -> int:
        """Datagrams that were not replies to our probes (other pingers, strays, junk)."""
        return self.table.ignored

    # -- sending ---------------------------------------------------------------------------

    def try_send(
        self,
        target: str,
        probe_index: int,
        size: int,
        ttl: int | None,
        owner: ProbeOwner,
        reply_timeout: float,
        now: float,
        tx_timestamp: bool = True,
        tag: object = None,
    ) -> Probe | None:
        """Send one echo now (*now*: the Trio time) and return its probe, whose results reach
        *owner*.  None: the socket buffer or the device queue is full, nothing was sent;
        :meth:`wait_to_send`, then try again.

        A send the kernel refused is a probe like any other, finished at once: its
        :class:`SendError` has been delivered to *owner* before this returns.
        """
        if self.closed:
            raise PingerClosedError("this pinger is closed: use it inside its open_pinger() block")
        table = self.table
        made = table.open_probe(target, probe_index, size, owner, tag, _time_ns(), _monotonic_ns(), now, reply_timeout)
        if isinstance(made, SendError):  # no free sequence: a probe that never was
            unsent = Probe(target, made.sequence, probe_index, b"", 0, 0, 0, owner, tag)
            unsent.state = ProbeState.FAILED
            owner.deliver(unsent, made)
            return unsent
        probe, packet = made
        try:
            tx_id = self.sock.send(packet, target, ttl, tx_timestamp)
            if tx_id is not None:
                table.await_stamp(probe, tx_id)
        except BlockingIOError:
            table.withdraw(probe)
            return None
        except OSError as exc:
            if exc.errno in _CONGESTED:
                table.withdraw(probe)
                self._congested = True
                return None
            owner.deliver(probe, self._refuse(probe, exc))
            return probe
        if probe.deadline < self._wake_at:  # the receiver must wake earlier for it
            self._wake_at = probe.deadline
            if self._waiting is not None:
                self._waiting.deadline = probe.deadline
        return probe

    async def send(
        self,
        target: str,
        probe_index: int,
        size: int,
        ttl: int | None,
        owner: ProbeOwner,
        reply_timeout: float,
        tx_timestamp: bool = True,
        tag: object = None,
    ) -> Probe:
        """:meth:`try_send`, waiting while the socket's send buffer is full."""
        while True:
            now = trio.current_time()
            sent = self.try_send(target, probe_index, size, ttl, owner, reply_timeout, now, tx_timestamp, tag)
            if sent is not None:
                return sent
            await self.wait_to_send()

    async def wait_for_stamps(self) -> None:
        """Wait, if the socket has only just opened, until the kernel stamps what it receives
        (see ``_STAMPING_SETTLE``): for a burst sent at once, such as a trace's."""
        await trio.sleep_until(self._stamps_from)

    async def wait_to_send(self) -> None:
        """Wait until a send that found no room may be tried again: the socket writable, or,
        after ENOBUFS (which no readiness event ends), a millisecond."""
        if self._congested:
            self._congested = False
            await trio.sleep(_CONGESTED_PAUSE)
        else:
            await self.sock.wait_writable()

    def _refuse(self, probe: Probe, exc: OSError) -> SendError:
        """A refused send as a result; "message too long" carries the path MTU, as ping's
        ``local error: message too long, mtu=1280``."""
        number = exc.errno or 0
        if number == errno.EMSGSIZE:
            mtu = self.sock.path_mtu(probe.target)
            return self.table.refuse(probe, number, local_error_text(number, mtu or 0), mtu)
        return self.table.refuse(probe, number, exc.strerror or str(exc))

    def close(self) -> None:
        """Close the socket; every owner with a probe still here is told no verdict will come
        (a stream or batch that outlived its pinger ends with :class:`PingerClosedError`)."""
        self.closed = True
        owners = {id(probe.owner): probe.owner for probe in self.table.probes.values()}
        for owner in owners.values():
            owner.abandon(PingerClosedError("the pinger closed while this was waiting for replies"))
        self.table.clear()
        self.sock.close()

    # -- receiving ---------------------------------------------------------------------------

    async def receive_forever(self) -> None:
        """The socket's one reader, and the clock of its probes' deadlines."""
        table = self.table
        while True:
            self._wake_at = table.next_deadline()
            with trio.move_on_at(self._wake_at) as waiting:
                self._waiting = waiting
                await self.sock.wait_readable()
            self._waiting = None
            self.drain()
            now = trio.current_time()
            if now >= self._wake_at:  # else woken by a datagram, before any deadline
                self.expire(now)

    def drain(self) -> None:
        """Judge everything queued on the socket now, and deliver the results."""
        sock = self.sock
        table = self.table
        if sock.tx_timestamps or sock.kernel_owns_identifier:
            # Transmit stamps first, so a reply read below is timed from its own.
            stamps, entries = sock.error_queue_batch(_BATCH)
            if stamps:
                table.transmit_stamps(stamps)
            for data, ancillary, address in entries:
                delivery = table.error_queue_entry(data, ancillary, address, _monotonic_ns())
                if delivery is not None:
                    delivery[0].owner.deliver(*delivery)
        receive = table.receive
        for data, ancillary, _flags, address in sock.receive_batch(_BATCH):
            delivery = receive(data, ancillary, address[0] if address else "", _monotonic_ns())
            if delivery is not None:
                delivery[0].owner.deliver(*delivery)

    def expire(self, now: float) -> None:
        for probe, result in self.table.expire(now):
            probe.owner.deliver(probe, result)


__all__ = ["Transport"]
