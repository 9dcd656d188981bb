"""A chain of three routers for the traceroute and mtr tests, in namespaces of its own.

A trace needs routers that count a probe's TTL down and answer "time exceeded" from known
addresses, one router that stays silent, and paths that end in an ICMP unreachable.  This
module builds that out of five network namespaces joined by veth pairs, IPv4 and IPv6::

    client  tpt-<pid>-c   198.19.70.1      2001:db8:70::1     probes are sent from here
       |
    r1      tpt-<pid>-r1  198.19.70.2  |  198.19.71.1         hop 1 answers from 198.19.70.2
       |
    r2      tpt-<pid>-r2  198.19.71.2  |  198.19.72.1         hop 2 answers from 198.19.71.2
       |
    r3      tpt-<pid>-r3  198.19.72.2  |  198.19.73.1         hop 3 answers from 198.19.72.2;
       |                  unreachable 198.19.74.0/24, 2001:db8:74::/64 (traceroute: !H, v6 !N)
       |                  prohibit    198.19.75.0/24, 2001:db8:75::/64 (traceroute: !X)
       |                  (IPv4: answered by an nftables rule, see TraceLab._reject_rules)
    target  tpt-<pid>-t   198.19.73.2      2001:db8:73::2     kernel answers echo (hop 4)

(IPv6 addresses follow the same pattern: 198.19.7L.N is 2001:db8:7L::N.)  A router sends
its ICMP errors from the address of the link that leads back to the client, which is why
each hop is the router's *upstream* address.

Every namespace has ICMP rate limits off (a trace provokes errors in bursts), permanent
neighbour entries on every link (IPv6 neighbour discovery would hold the first probes of a
test for about a second) and addresses without duplicate address detection.  No link reaches
the root namespace, so nothing sent here can leave the machine.  The client's
``net.ipv4.ping_group_range`` (it governs IPv6 too) admits every group, so a command run
with its capabilities dropped uses ICMP datagram sockets as an ordinary user's would.

Names carry the pid, so concurrent sessions never collide; the session fixture
:func:`tracelab` removes the lab even when a test fails or the run is interrupted, and sweeps
the labs of dead pids first.  ``python -m tests.tracelab`` builds one and prints what
``traceroute`` and ``mtr`` make of it, for debugging.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import pytest

from .nsutil import _SETPRIV_NO_CAPS, Unavailable, _ip, _run, python_env, remove_namespaces, sweep_stale_labs

__all__ = [
    "TraceLab",
    "TracerouteHop",
    "Unavailable",
    "mtr_hops",
    "mtr_report",
    "trace_lab",
    "tracelab",
    "traceroute",
    "traceroute_hops",
]

ROUTERS: Final = 3
_STALE: Final = r"tpt-(\d+)-(?:c|r\d|t)\b"
_SILENCE_TABLE: Final = "tracelab_silence"


def _v4(link: int, host: int) -> str:
    return f"198.19.{70 + link}.{host}"


def _v6(link: int, host: int) -> str:
    return f"2001:db8:{70 + link}::{host}"


def _mac(link: int, host: int) -> str:
    return f"02:74:70:00:{link:02x}:{host:02x}"


@dataclass(frozen=True)
class TraceLab:
    """Names and addresses of one trace lab (see the module docstring)."""

    prefix: str
    client: str
    target4: str = _v4(ROUTERS, 2)
    target6: str = _v6(ROUTERS, 2)
    hops4: tuple[str, ...] = tuple(_v4(link, 2) for link in range(ROUTERS + 1))
    hops6: tuple[str, ...] = tuple(_v6(link, 2) for link in range(ROUTERS + 1))
    unreachable4: str = "198.19.74.4"
    unreachable6: str = "2001:db8:74::4"
    prohibited4: str = "198.19.75.4"
    prohibited6: str = "2001:db8:75::4"

    @classmethod
    def for_pid(cls, pid: int) -> TraceLab:
        prefix = f"tpt-{pid}"
        return cls(prefix=prefix, client=f"{prefix}-c")

    def router(self, n: int) -> str:
        """The namespace of router r<n> (1..3)."""
        if not 1 <= n <= ROUTERS:
            raise ValueError(f"the lab has routers 1..{ROUTERS}, not {n}")
        return f"{self.prefix}-r{n}"

    @property
    def target(self) -> str:
        return f"{self.prefix}-t"

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Client, routers, target: in path order, node ``i`` on links ``i - 1`` and ``i``."""
        return (self.client, *(self.router(n) for n in range(1, ROUTERS + 1)), self.target)

    def run(
        self, argv: Sequence[str], *, unprivileged: bool = False, timeout: float = 30, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run *argv* in the client namespace, the checkout importable (``sys.executable -m trioping``).

        ``unprivileged=True`` drops every capability first (``setpriv``, as root: raw
        sockets fail with EPERM as for an ordinary user, datagram sockets work because the
        client's group range admits every group).  Bounded by *timeout* seconds
        (:class:`subprocess.TimeoutExpired`, the command killed).
        """
        prefix = _SETPRIV_NO_CAPS if unprivileged else ()
        return subprocess.run(
            [_ip(), "netns", "exec", self.client, *prefix, *argv],
            input=stdin,
            env=python_env(),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @contextlib.contextmanager
    def silence(self, router: int) -> Iterator[None]:
        """While inside, router r<router> sends no time-exceeded (its hop shows ``*``).

        An nftables rule on the router's output hook drops the errors it generates; it still
        forwards packets, so the hops behind it answer as before.  Nesting is allowed (each
        use has its own table).
        """
        ns = self.router(router)
        table = f"{_SILENCE_TABLE}_{time.monotonic_ns()}"
        nft = _nft()
        _run(
            [_ip(), "netns", "exec", ns, nft, "-f", "-"],
            f"table inet {table} {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n"
            "  icmp type time-exceeded drop\n  icmpv6 type time-exceeded drop\n }\n}\n",
        )
        try:
            yield
        finally:
            _run([_ip(), "netns", "exec", ns, nft, "delete", "table", "inet", table])

    def build(self) -> None:
        """Create the namespaces, links, addresses, routes and neighbours (one ``ip -batch`` each)."""
        ip = _ip()
        nodes = self.namespaces
        probe = subprocess.run([ip, "netns", "add", nodes[0]], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            raise Unavailable(f"cannot create network namespaces: {probe.stderr.strip()}")
        try:
            _run([ip, "-batch", "-"], "".join(f"netns add {ns}\n" for ns in nodes[1:]))
            for i, ns in enumerate(nodes):  # before the links exist, so they inherit "default"
                router = 0 < i < len(nodes) - 1
                _run([ip, "netns", "exec", ns, "sh", "-c", _sysctl_script(router=router, client=i == 0)])
            links = "".join(
                f"link add name downlink address {_mac(link, 1)} netns {nodes[link]} type veth"
                f" peer name uplink address {_mac(link, 2)} netns {nodes[link + 1]}\n"
                for link in range(len(nodes) - 1)
            )
            _run([ip, "-batch", "-"], links)
            for i, ns in enumerate(nodes):
                _run([ip, "-n", ns, "-batch", "-"], self._node_batch(i))
            _run([ip, "netns", "exec", self.router(ROUTERS), _nft(), "-f", "-"], self._reject_rules())
            self._wait_for_carrier()
        except BaseException:
            self.destroy()
            raise

    def _wait_for_carrier(self, limit: float = 5.0) -> None:
        """Return once every veth has its carrier (the kernel reports it from a deferred work
        item, up to a second after both ends are up), so no test starts on a half-up link."""
        deadline = time.monotonic() + limit
        for ns in self.namespaces:
            while True:
                links = json.loads(_run([_ip(), "-n", ns, "-j", "link", "show", "up"]))
                if all("NO-CARRIER" not in link["flags"] and link["operstate"] != "DOWN" for link in links):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"links of {ns} still without carrier after {limit} s: {links}")
                time.sleep(0.02)

    def _node_batch(self, i: int) -> str:
        """Node *i*'s set-up: link ``i - 1`` is its "uplink" (towards the client), link ``i`` "downlink"."""
        last = len(self.namespaces) - 1
        lines = ["link set lo up"]
        sides = ([("uplink", i - 1, 2, 1)] if i > 0 else []) + ([("downlink", i, 1, 2)] if i < last else [])
        for dev, link, me, peer in sides:
            lines += [
                f"addr add {_v4(link, me)}/24 dev {dev}",
                f"addr add {_v6(link, me)}/64 dev {dev} nodad",
                f"link set dev {dev} up",
                f"neigh replace {_v4(link, peer)} lladdr {_mac(link, peer)} dev {dev} nud permanent",
                f"neigh replace {_v6(link, peer)} lladdr {_mac(link, peer)} dev {dev} nud permanent",
            ]
        # A router reaches the links behind it through its upstream neighbour, and the rest of
        # the lab ranges through its downstream one (r3 has no such route: it answers what it
        # cannot reach as unreachable).  The client and the target each have one way out.
        if 0 < i < last:
            for link in range(i - 1):
                lines += [
                    f"route add {_v4(link, 0)}/24 via {_v4(i - 1, 1)}",
                    f"route add {_v6(link, 0)}/64 via {_v6(i - 1, 1)}",
                ]
        if i < ROUTERS:
            lines += [f"route add 198.18.0.0/15 via {_v4(i, 2)}", f"route add 2001:db8::/32 via {_v6(i, 2)}"]
        if i == ROUTERS:
            lines += [
                f"route add unreachable {self.unreachable4.rsplit('.', 1)[0]}.0/24",
                f"route add unreachable {self.unreachable6.rsplit(':', 1)[0]}:/64",
                f"route add prohibit {self.prohibited4.rsplit('.', 1)[0]}.0/24",
                f"route add prohibit {self.prohibited6.rsplit(':', 1)[0]}:/64",
            ]
        if i == last:
            lines += [f"route add 198.18.0.0/15 via {_v4(i - 1, 1)}", f"route add 2001:db8::/32 via {_v6(i - 1, 1)}"]
        return "".join(line + "\n" for line in lines)

    def _reject_rules(self) -> str:
        """r3's IPv4 unreachable and prohibit answers, given before its routes are consulted.

        The kernel answers a packet routed to an ``unreachable`` or ``prohibit`` route from
        ``ip_error``, which allows a source 5 errors, then one a second
        (``net.ipv4.route.error_cost`` / ``error_burst``: global, not per namespace, so not
        ours to change).  A trace probes every TTL at once and tests trace repeatedly, so the
        same answers (host unreachable, code 1: ``!H``; administratively prohibited, code 13:
        ``!X``) come from a prerouting rule instead, limited only by the namespace's own
        ``icmp_ratelimit`` (off).  IPv6 routes have no such limiter and answer themselves.
        """
        unreachable = self.unreachable4.rsplit(".", 1)[0] + ".0/24"
        prohibited = self.prohibited4.rsplit(".", 1)[0] + ".0/24"
        return (
            "table ip tracelab_unreachable {\n chain pre {\n  type filter hook prerouting priority 0; policy accept;\n"
            f"  ip daddr {unreachable} reject with icmp type host-unreachable\n"
            f"  ip daddr {prohibited} reject with icmp type admin-prohibited\n }}\n}}\n"
        )

    def destroy(self) -> None:
        """Remove the namespaces (killing anything still running in them). Idempotent."""
        remove_namespaces(self.namespaces)


def _sysctl_script(*, router: bool, client: bool) -> str:
    settings = [
        "net/ipv4/icmp_ratelimit=0",
        "net/ipv4/icmp_ratemask=0",
        "net/ipv6/icmp/ratelimit=0",
        "net/ipv6/icmp/ratemask=",
        "net/ipv6/conf/all/accept_dad=0",
        "net/ipv6/conf/default/accept_dad=0",
        "net/ipv6/conf/all/accept_ra=0",
        "net/ipv6/conf/default/accept_ra=0",
    ]
    if router:
        settings += ["net/ipv4/ip_forward=1", "net/ipv6/conf/all/forwarding=1"]
    if client:
        settings.append("net/ipv4/ping_group_range=0 2147483647")
    pairs = (setting.split("=", 1) for setting in settings)
    return "".join(f"printf '%s\\n' '{value}' > /proc/sys/{key} && " for key, value in pairs) + "true"


def _nft() -> str:
    path = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)
    if path is None:
        raise Unavailable("nftables `nft` not found (apt-get install nftables)")
    return path


@contextlib.contextmanager
def trace_lab() -> Iterator[TraceLab]:
    """Build this process's lab, removing stale ones first; removed on exit, whatever happens."""
    if os.geteuid() != 0:
        raise Unavailable("creating network namespaces needs root")
    _ip()
    _nft()
    sweep_stale_labs(_STALE)
    lab = TraceLab.for_pid(os.getpid())
    lab.destroy()
    lab.build()
    try:
        yield lab
    finally:
        lab.destroy()


@pytest.fixture(scope="session")
def tracelab() -> Iterator[TraceLab]:
    """The chain of the module docstring; skips where it cannot be built."""
    with contextlib.ExitStack() as stack:
        try:
            lab = stack.enter_context(trace_lab())
        except Unavailable as exc:
            pytest.skip(f"trace lab unavailable: {exc}")
        yield lab


# --------------------------------------------------------------------------------------------
# The real tools as oracles: what traceroute and mtr see in the lab


class TracerouteHop(NamedTuple):
    """One line of ``traceroute -q 1``: who answered (None: ``*``) and its mark (``!H``, ...)."""

    address: str | None
    mark: str | None


_TRACEROUTE_LINE: Final = re.compile(r"^\s*(\d+)\s+(?:(\*)|(\S+)\s+[\d.]+ ms(?:\s+(!\S*))?)\s*$")
_MTR_LINE: Final = re.compile(r"^\s*(\d+)\.\|--\s+(\S+)\s")


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        raise Unavailable(f"`{tool}` not installed (apt-get install {'mtr-tiny' if tool == 'mtr' else tool})")


def traceroute(lab: TraceLab, host: str, v6: bool = False, *, max_hops: int = 10) -> list[TracerouteHop]:
    """``traceroute -I -n -q 1 -w 1`` from the client, one :class:`TracerouteHop` per line.

    :class:`Unavailable` when traceroute is not installed; AssertionError on output this
    parser does not know (so an oracle never silently shrinks).
    """
    _require("traceroute")
    argv = ["traceroute", "-6" if v6 else "-4", "-I", "-n", "-q", "1", "-w", "1", "-m", str(max_hops), host]
    done = lab.run(argv, timeout=max_hops * 2 + 10)
    assert done.returncode == 0, f"{argv}: {done.returncode} {done.stderr}"
    hops: list[TracerouteHop] = []
    for line in done.stdout.splitlines()[1:]:  # the first line is the "traceroute to ..." header
        match = _TRACEROUTE_LINE.match(line)
        assert match is not None, f"unexpected traceroute line {line!r} in:\n{done.stdout}"
        assert int(match.group(1)) == len(hops) + 1, done.stdout
        hops.append(TracerouteHop(None, None) if match.group(2) else TracerouteHop(match.group(3), match.group(4)))
    return hops


def traceroute_hops(lab: TraceLab, host: str, v6: bool = False) -> list[str | None]:
    """The addresses ``traceroute -I -n`` lists, hop by hop (None: ``*``)."""
    return [hop.address for hop in traceroute(lab, host, v6)]


def mtr_report(lab: TraceLab, host: str, v6: bool = False, *, count: int = 2) -> str:
    """``mtr -r -n`` from the client: *count* rounds 0.1 s apart, then 0.5 s of grace for late answers."""
    _require("mtr")
    argv = ["mtr", "-6" if v6 else "-4", "-r", "-n", "-c", str(count), "-i", "0.1", "-G", "0.5", host]
    done = lab.run(argv, timeout=count + 30)
    assert done.returncode == 0, f"{argv}: {done.returncode} {done.stderr}"
    return done.stdout


def mtr_hops(lab: TraceLab, host: str, v6: bool = False, *, count: int = 2) -> list[str | None]:
    """The first address on each of ``mtr -r -n``'s hop rows (None: ``???``)."""
    report = mtr_report(lab, host, v6, count=count)
    hops: list[str | None] = []
    for line in report.splitlines():
        match = _MTR_LINE.match(line)
        if match is None:
            continue
        assert int(match.group(1)) == len(hops) + 1, report
        hops.append(None if match.group(2) == "???" else match.group(2))
    return hops


if __name__ == "__main__":  # a debugging aid: build a lab, show what the real tools make of it
    with trace_lab() as built:
        print(built)
        hosts = (
            built.target4,
            built.unreachable4,
            built.prohibited4,
            built.target6,
            built.unreachable6,
            built.prohibited6,
        )
        for host in hosts:
            for tool in (["traceroute", "-I", "-n", "-q", "1", "-w", "1"], ["mtr", "-r", "-n", "-c", "1", "-G", "1"]):
                done = built.run([*tool, host])
                sys.stdout.write(done.stdout + done.stderr)
