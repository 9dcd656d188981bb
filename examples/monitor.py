"""A small monitor: ping a set of hosts every N seconds and print what changed.

    sudo python examples/monitor.py                          # loopback hosts, 5 rounds of 2 s
    sudo python examples/monitor.py 127.0.0.1 ::1 127.0.0.2 --every 1 --rounds 10

The first round prints every host's state; later rounds print only changes (``up -> down``
or ``down -> up``), with the RTT of hosts that came up.  A host is *down* in a round when
its probe drew no reply within the timeout (or an ICMP error).  It stops after --rounds
rounds (or Ctrl-C).
"""

from __future__ import annotations

import argparse
import time

import trio

import trioping

DEFAULT_HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1"]


async def monitor(hosts: list[str], every: float, rounds: int, wait: float) -> None:
    state: dict[str, bool] = {}
    async with trioping.open_pinger() as pinger:
        for round_number in range(rounds):
            started = trio.current_time()
            now: dict[str, bool] = {}
            rtts: dict[str, float] = {}
            async with pinger.fanout(hosts, timeout=wait) as batch:
                async for item in batch:
                    if isinstance(item, trioping.HostError):
                        now[item.host] = False
                    elif isinstance(item.result, trioping.Reply) and not item.result.duplicate:
                        now[item.host] = True
                        rtts[item.host] = item.result.rtt
                    elif isinstance(item.result, (trioping.Timeout, trioping.IcmpError, trioping.SendError)):
                        now.setdefault(item.host, False)
            stamp = time.strftime("%H:%M:%S")
            for host in hosts:
                up = now.get(host, False)
                before = state.get(host)
                if before is None:
                    print(f"{stamp} {host} is {'up' if up else 'down'}")
                elif before != up:
                    change = "down -> up" if up else "up -> down"
                    detail = f" ({rtts[host] * 1e3:.3f} ms)" if up else ""
                    print(f"{stamp} {host}: {change}{detail}")
                state[host] = up
            if round_number + 1 < rounds:
                await trio.sleep_until(started + every)


def main() -> None:
    parser = argparse.ArgumentParser(description="Print hosts going up and down.")
    parser.add_argument("hosts", nargs="*", default=DEFAULT_HOSTS)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between rounds")
    parser.add_argument("--rounds", type=int, default=5, help="how many rounds, then stop")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for each reply")
    args = parser.parse_args()
    trio.run(monitor, args.hosts, args.every, max(1, args.rounds), args.timeout)


if __name__ == "__main__":
    main()
