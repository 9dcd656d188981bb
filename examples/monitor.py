"""A small monitor: ping a set of hosts every N seconds and print what changes.

    sudo python examples/monitor.py                          # loopback hosts, 10 s
    sudo python examples/monitor.py 127.0.0.1 ::1 127.0.0.2 --every 1 --seconds 60

One batch with ``count=None`` probes every host at its interval for as long as it runs
(hosts could be added and removed meanwhile: ``batch.add`` / ``batch.remove``).  The first
verdict prints each host's state; later ones print only changes (``up -> down`` or
``down -> up``, with the RTT of a host that came up).  A host is *down* when a probe drew
no reply within the timeout, or an ICMP error.  At the end, each host's running statistics
(kept in constant memory, however long it runs).
"""

from __future__ import annotations

import argparse
import time

import trio

import trioping

DEFAULT_HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1"]


async def monitor(hosts: list[str], every: float, seconds: float, wait: float) -> None:
    state: dict[str, bool] = {}
    async with (
        trioping.open_pinger() as pinger,
        pinger.fanout(hosts, count=None, interval=every, timeout=wait) as batch,
    ):
        with trio.move_on_after(seconds):
            async for item in batch:
                stamp = time.strftime("%H:%M:%S")
                if isinstance(item, trioping.HostError):
                    print(f"{stamp} {item.host}: {item.error}")
                    continue
                result = item.result
                if isinstance(result, trioping.Reply) and not result.duplicate:
                    up = True
                elif isinstance(result, (trioping.Timeout, trioping.IcmpError, trioping.SendError)):
                    up = False
                else:
                    continue  # a duplicate, late or invalid reply: no verdict
                before = state.get(item.host)
                if before is None:
                    print(f"{stamp} {item.host} is {'up' if up else 'down'}")
                elif before != up:
                    detail = f" ({result.rtt * 1e3:.3f} ms)" if isinstance(result, trioping.Reply) else ""
                    print(f"{stamp} {item.host}: {'down -> up' if up else 'up -> down'}{detail}")
                state[item.host] = up
        for stats in batch.statistics:
            average = "-" if stats.rtt_avg is None else f"{stats.rtt_avg * 1e3:.3f} ms"
            print(f"{stats.host}: {stats.transmitted} sent, {stats.loss:.0%} loss, average {average}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Print hosts going up and down.")
    parser.add_argument("hosts", nargs="*", default=DEFAULT_HOSTS)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between two probes to a host")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (or Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply")
    args = parser.parse_args()
    trio.run(monitor, args.hosts, args.every, args.seconds, args.timeout)


if __name__ == "__main__":
    main()
