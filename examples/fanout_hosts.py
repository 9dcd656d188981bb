"""Ping a list of hosts at once and print each result as it arrives.

    sudo python examples/fanout_hosts.py                    # 127.0.0.1 ... 127.0.0.9, ::1, localhost
    sudo python examples/fanout_hosts.py 127.0.0.1 ::1 localhost nonexistent.invalid

Hosts may be addresses or names; a name that does not resolve is reported and the others
are pinged anyway.  The per-host statistics are printed at the end.
"""

from __future__ import annotations

import sys

import trio

import trioping

DEFAULT_HOSTS = [f"127.0.0.{i}" for i in range(1, 10)] + ["::1", "localhost"]


async def main(hosts: list[str]) -> None:
    async with trioping.open_pinger() as pinger, pinger.fanout(hosts, count=3, interval=0.2, timeout=1.0) as batch:
        async for item in batch:
            match item:
                case trioping.HostResult(host=host, result=trioping.Reply(rtt=rtt, probe_index=index)):
                    print(f"{host:<12} probe {index}: reply in {rtt * 1e3:.3f} ms")
                case trioping.HostResult(host=host, result=trioping.Timeout(probe_index=index)):
                    print(f"{host:<12} probe {index}: no reply")
                case trioping.HostResult(host=host, result=trioping.IcmpError() as error):
                    print(f"{host:<12} probe {error.probe_index}: {error.description} from {error.source}")
                case trioping.HostResult(host=host, result=other):
                    print(f"{host:<12} {other}")
                case trioping.HostError(host=host, error=error):
                    print(f"{host:<12} cannot be pinged: {error}")
    print()
    for stats in batch.statistics:
        average = "" if stats.rtt_avg is None else f", avg {stats.rtt_avg * 1e3:.3f} ms"
        print(f"{stats.host:<12} {stats.received}/{stats.transmitted} replies{average}")


if __name__ == "__main__":
    trio.run(main, sys.argv[1:] or DEFAULT_HOSTS)
