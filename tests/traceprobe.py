"""Run traces (and a ping stream) from one pinger inside a test namespace; print JSON.

``python -m tests.traceprobe SPEC`` (started by the trace tests through the lab's ``run``,
as root or with capabilities dropped), SPEC being JSON::

    {"open": {...open_pinger keywords...},
     "traces": [{"host": "...", ...Pinger.trace keywords...}, ...],
     "mtr": {"host": "...", "count": 3, "interval": 0.1, ...} | null,
     "stream": {"host": "...", "count": 5, "interval": 0.05} | null}

Everything runs at once from the one pinger.  Prints one line: ``{"traces": [[hop, ...],
...], "mtr": report | null, "stream": [result, ...] | null, "kinds": {"4": "raw", ...}}``;
an exception prints ``{"exception": class, "message": ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import trio

import trioping
from trioping import Family, Hop, IcmpError, Reply, SendError, Timeout


def result_object(result: Any) -> dict[str, Any]:
    if isinstance(result, Reply):
        return {"kind": "reply", "source": result.source, "rtt": result.rtt, "clock": result.clock.value}
    if isinstance(result, IcmpError):
        return {
            "kind": "error",
            "source": result.source,
            "rtt": result.rtt,
            "clock": None if result.clock is None else result.clock.value,
            "type": result.icmp_type,
            "code": result.code,
            "target": result.target,
        }
    if isinstance(result, Timeout):
        return {"kind": "timeout"}
    if isinstance(result, SendError):
        return {"kind": "send-error", "message": result.message}
    return {"kind": type(result).__name__}


def hop_object(hop: Hop) -> dict[str, Any]:
    return {"ttl": hop.ttl, "results": [result_object(r) for r in hop.results], "addresses": list(hop.addresses)}


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"traces": [None] * len(spec.get("traces", [])), "mtr": None, "stream": None}
    async with trioping.open_pinger(**spec.get("open", {})) as pinger, trio.open_nursery() as nursery:

        async def trace(index: int, keywords: dict[str, Any]) -> None:
            async with pinger.trace(**keywords) as hops:
                out["traces"][index] = [hop_object(hop) async for hop in hops]

        async def mtr(keywords: dict[str, Any]) -> None:
            async with pinger.mtr(**keywords) as run:
                async for _report in run:
                    pass
            out["mtr"] = dataclasses.asdict(run.report)

        async def stream(keywords: dict[str, Any]) -> None:
            async with pinger.stream(**keywords) as results:
                out["stream"] = [result_object(r) async for r in results]

        for index, keywords in enumerate(spec.get("traces", [])):
            nursery.start_soon(trace, index, keywords)
        if spec.get("mtr"):
            nursery.start_soon(mtr, spec["mtr"])
        if spec.get("stream"):
            nursery.start_soon(stream, spec["stream"])
        families = {Family.V6 if ":" in t["host"] else Family.V4 for t in spec.get("traces", [])}
        out["kinds"] = {str(f.value): pinger.socket_kind(f).value for f in sorted(families)}
    return out


if __name__ == "__main__":
    try:
        printed = trio.run(main, json.loads(sys.argv[1]))
    except trioping.TriopingError as exc:
        printed = {"exception": type(exc).__name__, "message": str(exc)}
    sys.stdout.write(json.dumps(printed) + "\n")
