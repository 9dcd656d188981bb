"""How fast can Python fan out on this machine?  The floor under ``Pinger.fanout``, and
whether a sender thread lowers it -- side by side with the library and fping.

    python benchmarks/python_floor.py                 # 10,000 loopback hosts, best of 5
    python benchmarks/python_floor.py --hosts 3000 --repeat 3

Every loop here does the library's per-probe work in one plain function, with no Trio, no
async iterator, no timeouts and no per-host statistics: build the request (payload stamp,
per-run token, checksum by arithmetic), keep a record and a table entry per probe, then
match each reply by (source, sequence), check identifier, checksum and payload, take the
RTT from the kernel's receive stamp and make a result tuple.  They differ only in who
sends:

* ``inline``: the loop calls ``sendto`` itself, as the library does.
* ``sendto thread``: batches of 64 go to a second thread that calls ``sendto`` per probe
  (the call releases the GIL, so the kernel's work -- which on loopback includes making
  the reply -- could overlap the loop's Python).
* ``sendmmsg thread``: the same thread sends a batch with one ``sendmmsg`` through ctypes
  (one GIL release a batch).  Its send times are unknown per probe, so RTTs here would
  need the kernel's transmit stamps, whose error-queue reads are *not* included.

Each variant runs in a fresh process; the fastest of ``--repeat`` runs is shown.  Needs
root (raw sockets).  Sends only to 127.1.0.0 and up (every 127.x.y.z answers on Linux),
a bounded number of probes, and waits at most 0.5 s for the last replies.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import importlib
import json
import os
import queue
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
fanout_bench = importlib.import_module("fanout")

BATCH = 64
PAYLOAD_SIZE = 56
PACKET_SIZE = 8 + PAYLOAD_SIZE
IDENTIFIER = 0x7A11
WAIT_S = 0.5
REQUEST = struct.Struct("!BBHHHQ")
REPLY = struct.Struct("!8xBB10xHHHH")  # IPv4 header (20 bytes), then the ICMP header
TIMESPEC = struct.Struct("qq")
SOF_TIMESTAMPING_RX_SOFTWARE_AND_SOFTWARE = (1 << 3) | (1 << 4)
SO_TIMESTAMPING = 37
SO_RCVBUFFORCE = 33
SOL_RAW, ICMP_FILTER = 255, 1
VARIANTS = ("inline", "sendto thread", "sendmmsg thread")


class Probe:
    __slots__ = ("payload", "reply_checksum", "sent_mono_ns", "sent_wall_ns", "sequence", "state", "target")
    payload: bytes
    reply_checksum: int
    sent_mono_ns: int
    sent_wall_ns: int
    sequence: int
    state: int
    target: str


def open_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~1 & 0xFFFF_FFFF))  # echo replies only
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE_AND_SOFTWARE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    return sock


def wait_writable(sock: socket.socket) -> None:
    if not select.select([], [sock], [], 1.0)[1]:
        raise TimeoutError("send buffer stayed full for 1 s")


class SendtoThread:
    """Sends batches with ``sendto``, one system call (and GIL release) a probe."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.batches: queue.SimpleQueue[list[tuple[bytes, str]] | None] = queue.SimpleQueue()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run_and_keep_failure)
        self.thread.start()

    def _run_and_keep_failure(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.failure = exc

    def _run(self) -> None:
        sendto = self.sock.sendto
        while (batch := self.batches.get()) is not None:
            for packet, target in batch:
                while True:
                    try:
                        sendto(packet, (target, 0))
                        break
                    except BlockingIOError:
                        wait_writable(self.sock)

    def close(self) -> None:
        self.batches.put(None)
        self.thread.join()
        if self.failure is not None:
            raise self.failure


class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(Iovec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("header", Msghdr), ("length", ctypes.c_uint)]


class SendmmsgThread(SendtoThread):
    """Sends each batch with one ``sendmmsg``: packets and addresses are copied into fixed
    buffers whose message headers are built once."""

    def __init__(self, sock: socket.socket) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.sendmmsg = libc.sendmmsg
        self.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self.sendmmsg.restype = ctypes.c_int
        self.packets = ctypes.create_string_buffer(BATCH * PACKET_SIZE)
        self.addresses = ctypes.create_string_buffer(BATCH * 16)
        self.iovecs = (Iovec * BATCH)()
        self.messages = (Mmsghdr * BATCH)()
        for k in range(BATCH):
            struct.pack_into("=H", self.addresses, 16 * k, socket.AF_INET)
            self.iovecs[k].base = ctypes.addressof(self.packets) + k * PACKET_SIZE
            self.iovecs[k].length = PACKET_SIZE
            header = self.messages[k].header
            header.name = ctypes.addressof(self.addresses) + 16 * k
            header.namelen = 16
            header.iov = ctypes.pointer(self.iovecs[k])
            header.iovlen = 1
        super().__init__(sock)

    def _run(self) -> None:
        packets, addresses = memoryview(self.packets).cast("B"), memoryview(self.addresses).cast("B")
        messages, inet_aton = self.messages, socket.inet_aton
        fd, first, size = self.sock.fileno(), ctypes.addressof(messages), ctypes.sizeof(Mmsghdr)
        while (batch := self.batches.get()) is not None:
            for k, (packet, target) in enumerate(batch):
                packets[k * PACKET_SIZE : (k + 1) * PACKET_SIZE] = packet
                addresses[16 * k + 4 : 16 * k + 8] = inet_aton(target)
            done = 0
            while done < len(batch):
                sent = self.sendmmsg(fd, first + done * size, len(batch) - done, 0)
                if sent > 0:
                    done += sent
                elif ctypes.get_errno() in (11, 4):  # EAGAIN, EINTR
                    wait_writable(self.sock)
                else:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def run_loop(targets: list[str], variant: str) -> dict[str, float]:
    """The whole fan-out in one function (locals only: the fair floor)."""
    sock = open_socket()
    token = os.urandom(8)
    tail = token + bytes(range(PAYLOAD_SIZE - 16))
    base = (0x0800 + IDENTIFIER + sum(struct.unpack(f"!{len(tail) // 2}H", tail))) % 0xFFFF
    sender = None if variant == "inline" else (SendtoThread if variant == "sendto thread" else SendmmsgThread)(sock)
    table: dict[tuple[str, int], Probe] = {}
    results: list[tuple[object, ...]] = []
    sendto, recvmsg, pack = sock.sendto, sock.recvmsg, REQUEST.pack
    peek, timespec = REPLY.unpack_from, TIMESPEC.unpack_from
    time_ns, monotonic_ns = time.time_ns, time.monotonic_ns

    def drain() -> None:
        while True:
            try:
                data, ancillary, _flags, address = recvmsg(2048, 256)
            except BlockingIOError:
                return
            if len(data) < 28 or data[0] != 0x45:
                continue
            ttl, protocol, type_code, checksum, identifier, sequence = peek(data)
            if protocol != 1 or type_code != 0 or identifier != IDENTIFIER:
                continue
            source = address[0]
            probe = table.get((source, sequence))
            if (
                probe is None
                or checksum % 0xFFFF != probe.reply_checksum
                or len(data) != 28 + len(probe.payload)
                or not data.endswith(probe.payload)
            ):
                continue
            now = monotonic_ns()
            rtt = 0
            if ancillary:
                seconds, nanoseconds = timespec(ancillary[0][2])
                rtt = seconds * 1_000_000_000 + nanoseconds - probe.sent_wall_ns
            if not 0 < rtt <= now - probe.sent_mono_ns + 1_000_000:
                rtt = now - probe.sent_mono_ns
            probe.state = 1
            results.append((probe.target, source, sequence, len(data) - 20, ttl, rtt / 1e9))

    start = time.perf_counter()
    outbox: list[tuple[bytes, str]] = []
    for position, target in enumerate(targets):
        sequence = 1
        wall_ns = time_ns()
        stamp = wall_ns & 0xFFFF_FFFF_FFFF_FFFF
        checksum = ~(((base + sequence + stamp) % 0xFFFF) or 0xFFFF) & 0xFFFF
        request = pack(8, 0, checksum, IDENTIFIER, sequence, stamp) + tail
        probe = table[(target, sequence)] = Probe()
        probe.target, probe.sequence, probe.payload = target, sequence, request[8:]
        probe.reply_checksum = (checksum + 0x0800) % 0xFFFF
        probe.sent_wall_ns, probe.sent_mono_ns, probe.state = wall_ns, monotonic_ns(), 0
        if sender is None:
            while True:
                try:
                    sendto(request, (target, 0))
                    break
                except BlockingIOError:
                    wait_writable(sock)
        else:
            outbox.append((request, target))
        if position % BATCH == BATCH - 1:
            if sender is not None:
                sender.batches.put(outbox)
                outbox = []
            drain()
    if sender is not None:
        sender.batches.put(outbox)
        sender.close()
    while len(results) < len(targets) and select.select([sock], [], [], WAIT_S)[0]:
        drain()
    elapsed = time.perf_counter() - start
    sock.close()
    return {"elapsed": elapsed, "received": len(results)}


def measure(variant: str, path: str) -> dict[str, float] | str:
    done = subprocess.run(
        [sys.executable, __file__, "--run", variant, path], capture_output=True, text=True, check=False, timeout=120
    )
    if done.returncode != 0:
        return done.stderr.strip()[-200:]
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        variant, path = args.run
        print(json.dumps(run_loop(Path(path).read_text().split(), variant)))
        return 0
    if os.geteuid() != 0:
        print("needs root (raw ICMP sockets)")
        return 2
    if not 1 <= args.hosts <= 60000:
        print("--hosts: 1 to 60,000 (one probe each, 127.1.0.0 and up)")
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "targets.txt")
        Path(path).write_text("\n".join(fanout_bench.loopback_targets(args.hosts)) + "\n")
        tools: dict[str, Callable[[], dict[str, float] | str]] = {
            variant: functools.partial(measure, variant, path) for variant in VARIANTS
        }
        tools["trioping library"] = lambda: _library(path, args.hosts)
        if shutil.which("fping"):
            tools["fping"] = lambda: _fping(path, args.hosts)
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, run in tools.items():
                figures = run()
                if isinstance(figures, str):
                    print(f"{name}: failed: {figures}")
                    continue
                if figures["received"] < args.hosts:
                    print(f"{name}: only {figures['received']:.0f} of {args.hosts} replies")
                best[name] = min(best.get(name, float("inf")), figures["elapsed"])
    print(f"\n{args.hosts:,} loopback hosts, one probe each, fastest of {args.repeat}:")
    for name, seconds in best.items():
        ratios = ", ".join(
            f"{seconds / best[other]:.2f}x {other}" for other in ("trioping library", "fping") if other in best
        )
        print(f"  {name:18} {seconds * 1000:7.0f} ms {seconds * 1e6 / args.hosts:6.1f} us/probe   {ratios}")
    return 0


def _library(path: str, hosts: int) -> dict[str, float] | str:
    figure = fanout_bench.bench_library(path)
    if figure.seconds is None:
        return str(figure.note)
    return {"elapsed": float(figure.seconds), "received": float(hosts - (figure.down or 0))}


def _fping(path: str, hosts: int) -> dict[str, float] | str:
    figure = fanout_bench.bench_fping(path, hosts)
    if figure.seconds is None:
        return str(figure.note)
    return {"elapsed": float(figure.seconds), "received": float(hosts - (figure.down or 0))}


if __name__ == "__main__":
    raise SystemExit(main())
