"""Run the library inside a test namespace and report, one JSON object per line.

``python -m tests.nsprobe SPEC`` (started by the tests through ``ip netns exec``, as root,
root without capabilities, or ``nobody``) where SPEC is JSON::

    {"open": {...open_pinger keywords...},
     "steps": [{"op": "probe" | "ping", "host": "...", ...keywords...},
               {"op": "stream", "host": "...", "interval": 0.01, "take": 5},
               {"op": "spoof", "host": "127.0.0.1"}],
     "capture": 4 | 6 | null}

Every result prints as its ``--json`` object (``trioping._json``) with ``step``; then a
``{"type": "socket", "family", "kind", "identifier"}`` line per socket opened; with
``capture`` the echo requests carrying this pinger's token as ``{"type": "captured", ...}``
(needs CAP_NET_RAW); an exception ends the run as ``{"type": "exception", "class", "message"}``.

``spoof`` (needs CAP_NET_RAW, and the host's kernel echo switched off): sends a probe, reads
the request back from a raw socket, and answers it three times from that raw socket -- with
another identifier, with a wrong token, then correctly -- to show what the pinger accepts.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import struct
import sys
import time
from typing import Any

import trio

import trioping
from trioping import _json
from trioping._packet import internet_checksum


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def spoof(pinger: trioping.Pinger, host: str, step: int) -> None:
    from .nsutil import RequestCapture  # imports pytest: only where a raw socket is used

    family = 6 if ":" in host else 4
    with RequestCapture(family) as capture:
        raw = capture.sock
        async with trio.open_nursery() as nursery, pinger.stream(host, count=1, timeout=2.0) as stream:

            async def consume() -> None:
                async for result in stream:
                    emit({**_json.result_object(result, host, time.time()), "step": step})

            nursery.start_soon(consume)
            request = b""
            with trio.fail_after(2):
                while not request:
                    await trio.sleep(0.01)
                    for data in _drain(raw):
                        icmp = data[(data[0] & 0x0F) * 4 :] if family == 4 else data
                        if icmp[0] in (8, 128) and icmp[16:24] == pinger.token:
                            request = icmp
            reply_type = 0 if family == 4 else 129
            identifier = struct.unpack("!H", request[4:6])[0]
            for name, ident, payload in (
                ("other-identifier", identifier ^ 0xFFFF, request[8:]),
                ("wrong-token", identifier, request[8:16] + bytes(b ^ 0xFF for b in request[16:24]) + request[24:]),
                ("correct", identifier, request[8:]),
            ):
                message = struct.pack("!BBHHH", reply_type, 0, 0, ident, struct.unpack("!H", request[6:8])[0])
                message += payload
                if family == 4:  # the kernel fills in ICMPv6 checksums itself
                    message = message[:2] + struct.pack("!H", internet_checksum(message)) + message[4:]
                raw.sendto(message, (host, 0))
                emit({"type": "spoofed", "as": name, "identifier": ident, "step": step})
                await trio.sleep(0.05)


async def endless(pinger: trioping.Pinger, host: str, step: int, *, interval: float, take: int) -> None:
    """An endless stream left after *take* results: does it stop and clean up?"""
    async with pinger.stream(host, interval=interval) as stream:
        async for result in stream:
            running = stream.statistics
            emit({**_json.result_object(result, host, time.time()), "step": step, "received": running.received})
            if running.received >= take or running.transmitted >= 10 * take:  # bounded even if nothing answers
                break
    at_exit = stream.statistics.transmitted
    await trio.sleep(interval * 5)
    transport = next(iter(pinger._transports.values()))
    emit(
        {
            "type": "stream",
            "step": step,
            "transmitted": at_exit,
            "transmitted_later": stream.statistics.transmitted,
            "waiting": len(transport.table.probes),
            "tasks": len(pinger._nursery.child_tasks),
        }
    )


def _drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except BlockingIOError:
            return out


async def main(spec: dict[str, Any]) -> None:
    capture = None
    if spec.get("capture"):
        from .nsutil import RequestCapture

        capture = RequestCapture(spec["capture"])
    try:
        async with trioping.open_pinger(**spec.get("open", {})) as pinger:
            for step, action in enumerate(spec["steps"]):
                op = action.pop("op")
                host = action.pop("host")
                if op == "probe":
                    outcome = await pinger.probe(host, **action)
                    emit({**_json.result_object(outcome, host, time.time()), "step": step})
                elif op == "ping":
                    async with pinger.stream(host, **action) as stream:
                        async for result in stream:
                            emit({**_json.result_object(result, host, time.time()), "step": step})
                    stats = dataclasses.replace(stream.statistics, host=host)
                    emit({**_json.summary_object(stats, host, time.time()), "step": step})
                elif op == "stream":
                    await endless(pinger, host, step, **action)
                elif op == "spoof":
                    await spoof(pinger, host, step)
                else:
                    raise ValueError(op)
            for family, transport in pinger._transports.items():
                emit(
                    {
                        "type": "socket",
                        "family": family.value,
                        "kind": transport.sock.kind.value,
                        "identifier": transport.identifier,
                        "ignored": transport.ignored,
                    }
                )
            if capture is not None:
                for seen in capture.requests(pinger.token, wait=0.2, expected=1000):
                    emit({"type": "captured", **dataclasses.asdict(seen)})
    except trioping.TriopingError as exc:
        emit({"type": "exception", "class": type(exc).__name__, "message": str(exc)})
    finally:
        if capture is not None:
            capture.close()


if __name__ == "__main__":
    trio.run(main, json.loads(sys.argv[1]))
