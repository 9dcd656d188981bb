"""Batched receives (recvmmsg through ctypes) on real sockets, and the decoders that read
what they leave in their buffers."""

from __future__ import annotations

import errno
import json
import os
import platform
import socket
import struct
import subprocess
import sys

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import trioping
from trioping import RttClock, _mmsg
from trioping import _constants as C
from trioping._ancillary import control_messages, parse_error_queue, sockaddr_address, split_transmit_stamps

from .conftest import RX_STAMP_MAY_BE_LATE, requires_raw
from .nsutil import python_env

requires_recvmmsg = pytest.mark.skipif(not _mmsg.AVAILABLE, reason="recvmmsg: Linux with a C library that has it")
KERNEL_HAS_TS_OPT_ID = tuple(int(part) for part in os.uname().release.split(".")[:2] if part.isdigit()) >= (6, 13)


def encode(items: list[tuple[int, int, bytes]]) -> bytes:
    """Control messages laid out as the kernel writes them (``CMSG_SPACE`` apart)."""
    out = b""
    for level, kind, data in items:
        message = struct.pack("@Nii", socket.CMSG_LEN(len(data)), level, kind) + data
        out += message + bytes(socket.CMSG_SPACE(len(data)) - len(message))
    return out


@requires_recvmmsg
def test_a_batch_reads_queued_datagrams_with_their_addresses_and_control_messages() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(C.SOL_SOCKET, C.SO_TIMESTAMPNS, 1)
        sender.bind(("127.0.0.2", 0))
        sent = [f"datagram {n:03}".encode() for n in range(40)]
        for data in sent:
            sender.sendto(data, receiver.getsockname())
        batch = _mmsg.MessageBatch(16, 64, 128)
        got: list[bytes] = []
        while count := batch.receive(receiver.fileno()):
            assert count <= 16
            for index in range(count):
                got.append(batch.data(index))
                assert sockaddr_address(batch.name(index)) == "127.0.0.2"
                length = batch.control_lengths(count)[index]
                [(level, kind, stamp)] = control_messages(batch.control, index * batch.control_size, length)
                assert (level, kind, len(stamp)) == (C.SOL_SOCKET, C.SO_TIMESTAMPNS, 16)
        assert got == sent
        assert batch.receive(receiver.fileno()) == 0  # nothing queued: no wait, no error


@requires_recvmmsg
def test_a_datagram_longer_than_its_slot_is_cut_to_it() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        sender.sendto(b"0123456789", receiver.getsockname())
        batch = _mmsg.MessageBatch(4, 4, 64)
        assert batch.receive(receiver.fileno()) == 1
        assert batch.data(0) == b"0123"


@requires_raw
@pytest.mark.parametrize("batched", [True, False], ids=["recvmmsg", "recvmsg"])
async def test_transmit_stamps_time_every_reply_read_either_way(monkeypatch: pytest.MonkeyPatch, batched: bool) -> None:
    """Many stamps queued at once, read in batches of 64 -- or one by one where the C library
    has no recvmmsg: every reply is timed from its own transmit stamp."""
    if batched and not _mmsg.AVAILABLE:
        pytest.skip("recvmmsg: Linux with a C library that has it")
    monkeypatch.setattr(_mmsg, "AVAILABLE", batched)
    targets = [f"127.3.0.{n}" for n in range(1, 201)]
    async with trioping.open_pinger() as pinger:
        with trio.fail_after(10):
            async with pinger.fanout(targets, rate=None, timeout=2) as batch:
                results = [item.result async for item in batch if isinstance(item, trioping.HostResult)]
    assert len(results) == 200
    assert all(isinstance(result, trioping.Reply) for result in results)
    if KERNEL_HAS_TS_OPT_ID:
        clocks = {result.clock for result in results if isinstance(result, trioping.Reply)}
        assert clocks <= {RttClock.KERNEL, RttClock(RX_STAMP_MAY_BE_LATE)}
        assert RttClock.KERNEL in clocks


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1), st.binary(max_size=70)), max_size=5))
def test_control_messages_read_back_what_was_laid_out(items: list[tuple[int, int, bytes]]) -> None:
    raw = b"\xee" * 8 + encode(items)
    assert control_messages(raw, 8, len(raw) - 8) == items


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 40))
def test_decoding_junk_never_raises(raw: bytes, offset: int) -> None:
    length = max(len(raw) - offset, 0)
    control_messages(raw, offset, length)
    stamps: list[tuple[int, int | None]] = []
    padded = raw.ljust(offset + 96, b"\0")[offset:]
    assert split_transmit_stamps(padded, 96, [length], stamps) in ([], [0])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**31),
    st.integers(0, 2**31),
    st.sampled_from([C.SO_EE_ORIGIN_TIMESTAMPING, C.SO_EE_ORIGIN_ICMP, C.SO_EE_ORIGIN_LOCAL]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([(C.IPPROTO_IP, C.IP_RECVERR, 16), (C.IPPROTO_IPV6, C.IPV6_RECVERR, 28)]),
)
def test_the_usual_transmit_stamp_is_read_as_the_general_decoder_reads_it(
    seconds: int, nanoseconds: int, origin: int, tx_id: int, kind: tuple[int, int, int]
) -> None:
    """The kernel's layout -- stamp, then extended error and offender -- gives the general
    decoder's id and stamp when it is a transmit stamp, and None (the general path) for any
    other report or another order."""
    level, error_kind, offender_size = kind
    stamp = (C.SOL_SOCKET, C.SO_TIMESTAMPING, struct.pack("qq", seconds, nanoseconds) + bytes(32))
    error = (level, error_kind, struct.pack("IBBBBII", 0, origin, 0, 0, 0, 0, tx_id) + bytes(offender_size))
    usual = encode([stamp, error])
    general = parse_error_queue(control_messages(usual, 0, len(usual)))
    assert general is not None
    unusual = [encode([error, stamp]), encode([stamp, (level, C.IP_RECVERR + C.IPV6_RECVERR - error_kind, error[2])])]
    stride = max(len(usual), *map(len, unusual))
    entries = [usual, *unusual, usual]
    control = b"".join(entry.ljust(stride, b"\xee") for entry in entries)
    stamps: list[tuple[int, int | None]] = []
    others = split_transmit_stamps(control, stride, [len(entry) for entry in entries], stamps)
    if origin == C.SO_EE_ORIGIN_TIMESTAMPING:
        assert stamps == [(general.data, general.kernel_ns)] * 2
        assert others == [1, 2]
    else:
        assert stamps == []
        assert others == [0, 1, 2, 3]


SECCOMP_ARCHES = {"x86_64": (0xC000003E, 299), "aarch64": (0xC00000B7, 243)}
"""``AUDIT_ARCH_*`` and ``__NR_recvmmsg`` where the test below can filter the call."""

REFUSED_RECVMMSG_RUN = """
import ctypes, json, struct, sys
arch, number, error = map(int, sys.argv[1:4])
def statement(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
allow, refuse = 0x7FFF0000, 0x00050000 | error  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
program = ctypes.create_string_buffer(b"".join([
    statement(0x20, 4), statement(0x15, arch, 1, 0), statement(0x06, allow),  # another ABI: allowed
    statement(0x20, 0), statement(0x15, number, 0, 1), statement(0x06, refuse), statement(0x06, allow),
]))
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
filters = Program(len(program.raw) // 8, ctypes.addressof(program))
prctl = ctypes.CDLL(None, use_errno=True).prctl
prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
if prctl(38, 1, 0, 0, 0) or prctl(22, 2, ctypes.addressof(filters), 0, 0):  # NO_NEW_PRIVS, SECCOMP filter
    print(json.dumps({"unfiltered": ctypes.get_errno()}))
    sys.exit(0)
import trio, trioping
async def main():
    async with trioping.open_pinger() as pinger:
        with trio.fail_after(10):
            async with pinger.fanout([f"127.3.1.{n}" for n in range(1, 51)], rate=None, timeout=2) as batch:
                results = [item.result async for item in batch if isinstance(item, trioping.HostResult)]
    print(json.dumps({"kinds": sorted({type(result).__name__ for result in results}), "count": len(results)}))
trio.run(main)
"""


@requires_raw
@requires_recvmmsg
@pytest.mark.parametrize("refusal", [errno.EPERM, errno.ENOSYS], ids=["EPERM", "ENOSYS"])
def test_a_refused_recvmmsg_reads_the_error_queue_one_by_one(refusal: int) -> None:
    """A seccomp filter (a container's, a service manager's) may refuse recvmmsg although the
    C library has it: the transmit stamps are then read one by one, not a crash of the
    pinger.  The child process filters the call for itself only."""
    machine = SECCOMP_ARCHES.get(platform.machine())
    if machine is None:
        pytest.skip(f"no seccomp numbers for {platform.machine()} in this test")
    argv = [sys.executable, "-c", REFUSED_RECVMMSG_RUN, *map(str, machine), str(refusal)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=python_env(), check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout)
    if "unfiltered" in outcome:
        pytest.skip(f"seccomp filters unavailable here (errno {outcome['unfiltered']})")
    assert outcome == {"kinds": ["Reply"], "count": 50}
