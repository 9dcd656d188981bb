"""The structured core at scale: the library's fan-out, side by side with fping and icmplib.

    python benchmarks/core.py                          # 10,000 and 100,000 hosts
    python benchmarks/core.py --sizes 10000 1000000 --repeat 3

Targets are distinct loopback addresses (all of 127.0.0.0/8 answers on Linux), one probe
each, so any host reported down is *false loss*.  Every run happens in a network namespace
this script creates (and removes), so other processes' ICMP traffic -- which every raw ICMP
socket on a host receives -- stays out of the figures.  Each run is a fresh process; its
peak RSS comes from ``wait4``.

* library: ``Pinger.fanout(rate=None, timeout=0.5)``, timed inside the process from the
  call to the last result (the consumer notes which hosts answered), four ways: ``async
  for`` (a checkpoint per result, the default kernel TX+RX clock), ``receive_nowait`` (the
  batch form: one checkpoint per wake-up), the batch form with ``tx_timestamps=False`` (a
  clock read before the send, as fping's), and with ``keep_statistics=False`` (no per-host
  record once a host is done: what a million hosts need).
* fping: ``fping -c1 -t500 -i0 -q``, wall time of the whole process (it refuses more than
  65,535 hosts).
* icmplib: ``async_multiping(timeout=0.5)``, timed inside its process (10,000 hosts at most:
  it takes ~17 s for 100,000).

The best of ``--repeat`` runs is shown, with the largest RSS and false loss of the runs.
Ratios are to fping in the same run.  Needs root (raw sockets and ``ip netns``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NETNS = f"tping-bench-{os.getpid()}"
FPING_LIMIT = 65535
ICMPLIB_LIMIT = 10000

LIBRARY_RUN = """
import json, sys, time
import trio, trioping

async def main():
    targets = open(sys.argv[1]).read().split()
    mode = sys.argv[2]
    alive = bytearray(len(targets))
    async with trioping.open_pinger() as pinger:
        pinger.socket_kind(4)  # open the socket first: not part of the figure
        start = time.perf_counter()
        async with pinger.fanout(
            targets, rate=None, timeout=0.5, tx_timestamps=mode != "nowait-rx", keep_statistics=mode != "nowait-lean"
        ) as batch:
            async for item in batch:
                while True:
                    if type(item.result) is trioping.Reply:
                        alive[item.position] = 1
                    if mode == "async-for":
                        break
                    try:
                        item = batch.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
        elapsed = time.perf_counter() - start
    print(json.dumps({"elapsed": elapsed, "down": len(targets) - sum(alive), "drops": batch.kernel_drops}))

trio.run(main)
"""

ICMPLIB_RUN = """
import asyncio, json, sys, time
from icmplib import async_multiping

targets = open(sys.argv[1]).read().split()
start = time.perf_counter()
hosts = asyncio.run(async_multiping(targets, count=1, timeout=0.5, privileged=True))
elapsed = time.perf_counter() - start
print(json.dumps({"elapsed": elapsed, "down": sum(1 for h in hosts if not h.is_alive)}))
"""

MODES = {
    "async-for": "library, async for",
    "nowait": "library, receive_nowait",
    "nowait-rx": "library, no TX stamps",
    "nowait-lean": "library, no per-host stats",
}


def targets(count: int) -> list[str]:
    return [f"127.{1 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}" for i in range(count)]


def in_netns(argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *argv]


def measured(argv: list[str]) -> tuple[float, float, str, str]:
    """(wall seconds, peak RSS MB, stdout, stderr) of *argv* run in the namespace."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(in_netns(argv), stdout=out, stderr=err, env=env)
        _pid, _status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, out.read(), err.read()


def python_figure(script: str, *args: str) -> tuple[float, float, int]:
    _wall, rss, out, err = measured([sys.executable, "-c", script, *args])
    if not out.strip():
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else "no output")
    result = json.loads(out.strip().splitlines()[-1])
    return result["elapsed"], rss, result["down"]


def fping_figure(path: str, count: int) -> tuple[float, float, int]:
    wall, rss, _out, err = measured(["fping", "-c1", "-t500", "-i0", "-q", "-f", path])
    down = sum(1 for line in err.splitlines() if "xmt/rcv/%loss = 1/0/" in line)
    return wall, rss, down


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: raw ICMP sockets and ip netns")
    has_fping = shutil.which("fping") is not None
    try:
        import icmplib  # noqa: F401
    except ImportError:
        has_icmplib = False
    else:
        has_icmplib = True
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        subprocess.run(in_netns(["ip", "link", "set", "lo", "up"]), check=True)
        for size in args.sizes:
            with tempfile.NamedTemporaryFile("w", suffix=".txt") as handle:
                handle.write("\n".join(targets(size)) + "\n")
                handle.flush()
                rows: dict[str, list[tuple[float, float, int]]] = {}
                for _ in range(args.repeat):  # interleaved, so each tool sees the same machine
                    if has_fping and size <= FPING_LIMIT:
                        rows.setdefault("fping (whole process)", []).append(fping_figure(handle.name, size))
                    for mode in args.modes:
                        rows.setdefault(MODES[mode], []).append(python_figure(LIBRARY_RUN, handle.name, mode))
                    if has_icmplib and size <= ICMPLIB_LIMIT:
                        rows.setdefault("icmplib async_multiping", []).append(python_figure(ICMPLIB_RUN, handle.name))
                report(size, rows)
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], check=False)
    if not has_fping:
        print("fping not installed (apt-get install fping): no ratios")
    if not has_icmplib:
        print("icmplib not installed (pip install icmplib)")


def report(size: int, rows: dict[str, list[tuple[float, float, int]]]) -> None:
    fping = rows.get("fping (whole process)")
    anchor = min(r[0] for r in fping) if fping else None
    print(f"\n{size:,} hosts (best of {len(next(iter(rows.values())))})")
    print(f"  {'tool':<26} {'time':>10} {'vs fping':>9} {'peak RSS':>9} {'false loss':>10}")
    for label, runs in rows.items():
        seconds = min(r[0] for r in runs)
        ratio = f"{seconds / anchor:.2f}x" if anchor else "-"
        print(
            f"  {label:<26} {seconds * 1e3:8.0f} ms {ratio:>9} {max(r[1] for r in runs):6.0f} MB"
            f" {max(r[2] for r in runs):>10}"
        )


if __name__ == "__main__":
    main()
