"""Sweep a subnet: one probe to every address, then list the hosts that answered.

    sudo python examples/subnet_sweep.py                    # 127.1.0.0/22 (1,022 loopback hosts)
    sudo python examples/subnet_sweep.py 127.2.0.0/20 --rate 5000

Every 127.x.y.z answers on Linux, so the loopback default shows a full sweep.  On a real
network, sweep only addresses you are allowed to probe; the rate (probes per second) keeps
the sweep polite, and prefixes of more than 65,536 addresses are refused.
"""

from __future__ import annotations

import argparse
import ipaddress
import time

import trio

import trioping

LIMIT = 65536


async def sweep(prefix: str, rate: float | None) -> None:
    network = ipaddress.ip_network(prefix, strict=False)
    if network.num_addresses > LIMIT:
        raise SystemExit(f"{prefix}: {network.num_addresses} addresses, more than {LIMIT}")
    alive: list[str] = []
    start = time.perf_counter()
    # network.hosts() is lazy: addresses are generated as the sweep goes.
    async with trioping.open_pinger() as pinger, pinger.fanout(network.hosts(), rate=rate, timeout=1.0) as batch:
        async for item in batch:
            if isinstance(item, trioping.HostResult) and isinstance(item.result, trioping.Reply):
                alive.append(item.host)
    elapsed = time.perf_counter() - start
    progress = batch.progress
    print(f"{prefix}: {len(alive)} of {progress.hosts} hosts alive in {elapsed:.2f} s")
    for host in sorted(alive, key=ipaddress.ip_address)[:10]:
        print(f"  {host}")
    if len(alive) > 10:
        print(f"  ... and {len(alive) - 10} more")
    if batch.kernel_drops:
        print(f"warning: the kernel dropped {batch.kernel_drops} replies; some hosts may be missing")


def main() -> None:
    parser = argparse.ArgumentParser(description="Ping every address of a prefix once.")
    parser.add_argument("prefix", nargs="?", default="127.1.0.0/22")
    parser.add_argument("--rate", type=float, default=trioping.DEFAULT_RATE, help="probes per second (0: no limit)")
    args = parser.parse_args()
    trio.run(sweep, args.prefix, args.rate or None)


if __name__ == "__main__":
    main()
