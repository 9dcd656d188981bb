"""A throw-away routed network lab for trioping's fault-injection tests.

Loopback cannot produce the things a ping library must survive: ICMP errors from a router,
TTL expiry, hosts that never answer, or replies that are duplicated, late, spoofed or corrupt.
This module builds a small routed network out of Linux network namespaces and veth pairs, plus
a scripted responder (``tests/lab/responder.py``) that answers echo requests however a test
asks it to.  The tests themselves run in the root namespace (the pytest process), so the
library under test is exercised exactly as a user would run it.

Topology (all addresses from the documentation/benchmark ranges 198.18.0.0/15, 2001:db8::/32)::

    root ns  tping0 198.18.1.1 / 2001:db8:1::1
       |
    tping-router  198.18.1.2 / 2001:db8:1::2   (forwards; "unreachable" routes; catch-all)
       |-- 198.18.2.0/24, 2001:db8:2::/64 -- tping-host    .2 / ::2  kernel echo ON
       |-- 198.18.3.0/24, 2001:db8:3::/64 -- tping-resp    .2 / ::2  kernel echo OFF,
       |                                                            scripted responder
       `-- 198.18.5.0/24, 2001:db8:5::/64 -- tping-silent  .2 / ::2  kernel echo OFF, never
                                                                    runs a responder

Use it from pytest with ``pytest_plugins = ["tests.netlab"]`` (or ``-p tests.netlab``); it
gives the fixtures :func:`netlab` (session scope) and :func:`responder` (function scope).
``python tests/netlab.py up|down`` builds or removes the lab by hand for debugging.

Safety: the root namespace gets routes for the whole 198.18.0.0/15 and 2001:db8::/32 into the
lab, and the router answers anything it has no route for with an ICMP unreachable, so a test
with a typo in a lab address can never leak probes out of the machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import pytest

__all__ = [
    "LAB_NAMESPACES",
    "LabUnavailable",
    "NetLab",
    "Responder",
    "ResponderFactory",
    "build_lab",
    "destroy_lab",
    "netlab",
    "responder",
]

ROUTER_NS: Final = "tping-router"
HOST_NS: Final = "tping-host"
RESP_NS: Final = "tping-resp"
SILENT_NS: Final = "tping-silent"
#: Every namespace the lab owns; only these are deleted as "stale" (see :func:`destroy_lab`).
LAB_NAMESPACES: Final = (ROUTER_NS, HOST_NS, RESP_NS, SILENT_NS)
#: The lab's veth in the root namespace (its peer lives in tping-router).
ROOT_IF: Final = "tping0"

RESPONDER_SCRIPT: Final = Path(__file__).resolve().parent / "lab" / "responder.py"

# A lock so that two pytest sessions on one machine (e.g. two engineers, or a rerun while an
# old session is still tearing down) take turns instead of deleting each other's lab.
_LOCK_PATH: Final = Path(tempfile.gettempdir()) / "tping-netlab.lock"
_LOCK_WAIT_S: Final = 300.0
_READY_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True)
class NetLab:
    """Addresses and names of the running lab, as seen from the root namespace.

    Every address below is reached from the pytest process through :attr:`router_v4` /
    :attr:`router_v6`, so replies from the far namespaces arrive with TTL/hop limit
    :attr:`remote_reply_ttl` (64 minus one router hop).
    """

    #: Root-namespace interface that leads into the lab.
    root_interface: str = ROOT_IF
    #: The pytest process's own lab addresses: sources of our probes, destinations of replies.
    root_v4: str = "198.18.1.1"
    root_v6: str = "2001:db8:1::1"
    #: The router's near-side addresses. They send "Time to live exceeded" / "Time exceeded:
    #: Hop limit" for probes sent with TTL/hop limit 1, and the unreachables below. They also
    #: answer echo requests themselves (kernel echo is on in the router).
    router_v4: str = "198.18.1.2"
    router_v6: str = "2001:db8:1::2"
    #: A normal live host two hops away (kernel answers echo requests).
    live_host_v4: str = "198.18.2.2"
    live_host_v6: str = "2001:db8:2::2"
    #: The scripted responder's addresses (kernel echo off: without a running
    #: :func:`responder` nothing answers here).
    responder_v4: str = "198.18.3.2"
    responder_v6: str = "2001:db8:3::2"
    #: A second address of the responder's, from which its ``other_source`` action answers.
    responder_other_v4: str = "198.18.3.3"
    responder_other_v6: str = "2001:db8:3::3"
    #: A host that exists (neighbour resolves, packets are delivered) but never answers: kernel
    #: echo is off and no responder is ever started in its namespace. For timeout tests.
    silent_v4: str = "198.18.5.2"
    silent_v6: str = "2001:db8:5::2"
    #: Inside the router's ``unreachable`` routes 198.18.4.0/24 and 2001:db8:4::/64: a probe
    #: here gets an immediate ICMP error from :attr:`router_v4` / :attr:`router_v6`.
    unreachable_v4: str = "198.18.4.4"
    unreachable_v6: str = "2001:db8:4::4"
    #: What Linux sends for an ``unreachable`` route, measured on kernel 6.18:
    #: ICMPv4 type 3 code 1 (host unreachable, iputils: "Destination Host Unreachable") and
    #: ICMPv6 type 1 code 0 (no route to destination, iputils: "Destination unreachable: No
    #: route"). Code 3 "address unreachable" only comes after a failed neighbour resolution,
    #: which takes seconds; the scripted responder's ``unreachable`` action sends code 3.
    unreachable_type_v4: int = 3
    unreachable_code_v4: int = 1
    unreachable_type_v6: int = 1
    unreachable_code_v6: int = 0
    #: TTL / hop limit with which the router reports TTL expiry (type 11 code 0 for IPv4,
    #: type 3 code 0 for IPv6).
    time_exceeded_type_v4: int = 11
    time_exceeded_type_v6: int = 3
    #: TTL / hop limit of replies from the live host and the responder as seen in the root ns.
    remote_reply_ttl: int = 63
    #: Namespace names.
    router_ns: str = ROUTER_NS
    live_host_ns: str = HOST_NS
    responder_ns: str = RESP_NS
    silent_ns: str = SILENT_NS

    @property
    def namespaces(self) -> tuple[str, ...]:
        """All namespaces of the lab."""
        return (self.router_ns, self.live_host_ns, self.responder_ns, self.silent_ns)

    def netns_exec(self, namespace: str, *argv: str) -> list[str]:
        """The argv that runs ``argv`` inside ``namespace`` (for ``subprocess``)."""
        if namespace not in self.namespaces:
            raise ValueError(f"{namespace!r} is not a lab namespace")
        return [_ip_binary(), "netns", "exec", namespace, *argv]


# --------------------------------------------------------------------------------------------
# Building and destroying the lab


class LabUnavailable(RuntimeError):
    """Namespaces cannot be created here (no ``ip``, no privileges); tests should skip."""


def _ip_binary() -> str:
    path = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise LabUnavailable("iproute2 `ip` binary not found")
    return path


def _run(argv: Sequence[str], stdin: str | None = None, *, check: bool = True) -> str:
    """Run a short helper command with a time limit; raise with its stderr on failure."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}"
            + (f"\n--- input ---\n{stdin}" if stdin else "")
        )
    return proc.stdout


def _mac(link: int, host: int) -> str:
    """Fixed MAC per (link, host) so neighbour entries can be made permanent up front."""
    return f"02:74:70:00:{link:02x}:{host:02x}"


@dataclass(frozen=True)
class _Link:
    """One veth pair: the ``near`` side is host .1/::1, the ``far`` side .2/::2.

    On the uplink the near side is the root namespace and the far side the router; on the
    leaf links the near side is the router.
    """

    number: int  # third IPv4 octet and the IPv6 /64 number
    near_ns: str | None  # None: the root namespace
    near_if: str
    far_ns: str
    far_if: str

    def v4(self, host: int) -> str:
        return f"198.18.{self.number}.{host}"

    def v6(self, host: int) -> str:
        return f"2001:db8:{self.number}::{host}"


# Link 1: root (.1) <-> router (.2); the others: router (.1) <-> leaf (.2).
_UPLINK: Final = _Link(1, None, ROOT_IF, ROUTER_NS, "to-root")
_LEAVES: Final = (
    _Link(2, ROUTER_NS, "to-host", HOST_NS, "eth0"),
    _Link(3, ROUTER_NS, "to-resp", RESP_NS, "eth0"),
    _Link(5, ROUTER_NS, "to-silent", SILENT_NS, "eth0"),
)

# sysctls for every lab namespace: no ICMP rate limiting at all (ratemask empty also keeps the
# per-namespace global ICMP limiter away), no DAD / router advertisements so IPv6 addresses
# are usable at once.
_COMMON_SYSCTLS: Final = (
    ("net/ipv4/icmp_ratelimit", "0"),
    ("net/ipv4/icmp_ratemask", "0"),
    ("net/ipv6/icmp/ratelimit", "0"),
    ("net/ipv6/icmp/ratemask", ""),
    ("net/ipv6/conf/all/accept_dad", "0"),
    ("net/ipv6/conf/default/accept_dad", "0"),
    ("net/ipv6/conf/all/accept_ra", "0"),
    ("net/ipv6/conf/default/accept_ra", "0"),
)
_SILENT_SYSCTLS: Final = (
    ("net/ipv4/icmp_echo_ignore_all", "1"),
    ("net/ipv6/icmp/echo_ignore_all", "1"),
)
_NS_SYSCTLS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    ROUTER_NS: (("net/ipv4/ip_forward", "1"), ("net/ipv6/conf/all/forwarding", "1")),
    HOST_NS: (),
    RESP_NS: _SILENT_SYSCTLS,
    SILENT_NS: _SILENT_SYSCTLS,
}


def _iface_sysctls(ifname: str) -> tuple[tuple[str, str], ...]:
    return (
        (f"net/ipv6/conf/{ifname}/disable_ipv6", "0"),
        (f"net/ipv6/conf/{ifname}/accept_dad", "0"),
        (f"net/ipv6/conf/{ifname}/accept_ra", "0"),
    )


def _sysctl_script(settings: Sequence[tuple[str, str]]) -> str:
    """A /bin/sh script writing /proc/sys entries (no dependency on the sysctl binary)."""
    return "".join(f"printf '%s\\n' '{value}' > /proc/sys/{key} && " for key, value in settings)


def _ns_batch(ns: str) -> str:
    """``ip -batch`` commands configuring namespace ``ns`` (run with ``ip -n ns``)."""
    cmds = ["link set lo up"]
    links = [link for link in (_UPLINK, *_LEAVES) if ns in (link.near_ns, link.far_ns)]
    for link in links:
        near = link.near_ns == ns
        ifname = link.near_if if near else link.far_if
        me, peer = (1, 2) if near else (2, 1)
        cmds += [
            f"addr add {link.v4(me)}/24 dev {ifname}",
            f"addr add {link.v6(me)}/64 dev {ifname} nodad",
            f"link set {ifname} up",
            f"neigh replace {link.v4(peer)} lladdr {_mac(link.number, peer)} dev {ifname} nud permanent",
            f"neigh replace {link.v6(peer)} lladdr {_mac(link.number, peer)} dev {ifname} nud permanent",
        ]
        if ns == RESP_NS:  # a second address to answer from (see NetLab.responder_other_v4)
            # secondary (IPv4) and deprecated (IPv6): never what the kernel picks as a source
            cmds += [
                f"addr add {link.v4(3)}/24 dev {ifname}",
                f"addr add {link.v6(3)}/64 dev {ifname} nodad preferred_lft 0",
            ]
        if not near and link is not _UPLINK:  # a leaf host: default route via the router
            cmds += [
                f"route add default via {link.v4(1)} dev {ifname}",
                f"route add ::/0 via {link.v6(1)} dev {ifname}",
            ]
    if ns == ROUTER_NS:
        cmds += [
            "route add unreachable 198.18.4.0/24",
            "route add unreachable 2001:db8:4::/64",
            # Catch-all: nothing in the lab ranges ever leaves the lab.
            "route add unreachable 198.18.0.0/15",
            "route add unreachable 2001:db8::/32",
        ]
    return "\n".join(cmds) + "\n"


_UNREACHABLE_V4_RULES: Final = (
    "table ip tping_unreachable {\n chain pre {\n  type filter hook prerouting priority 0; policy accept;\n"
    "  ip daddr 198.18.4.0/24 reject with icmp type host-unreachable\n }\n}\n"
)
"""The router's IPv4 answer for 198.18.4.0/24, given before its ``unreachable`` route is
consulted: the kernel answers for such a route from ``ip_error``, which allows a source 5
errors, then one a second (``net.ipv4.route.error_cost`` / ``error_burst``: host-wide, not
ours to change), so a test that followed another one's unreachables by under a second lost
its own.  A reject rule is limited only by the namespace's ``icmp_ratelimit`` (off); it
sends the same type 3 code 1.  Without ``nft`` (or before Linux 5.9, which first allows a
reject in prerouting) the route answers, as before.  IPv6 routes
have no such limiter."""


def _root_batch() -> str:
    link = _UPLINK
    return (
        "\n".join(
            [
                f"addr add {link.v4(1)}/24 dev {ROOT_IF}",
                f"addr add {link.v6(1)}/64 dev {ROOT_IF} nodad",
                f"link set {ROOT_IF} up",
                f"neigh replace {link.v4(2)} lladdr {_mac(1, 2)} dev {ROOT_IF} nud permanent",
                f"neigh replace {link.v6(2)} lladdr {_mac(1, 2)} dev {ROOT_IF} nud permanent",
                # Everything in the lab ranges goes into the lab (see the module docstring).
                f"route add 198.18.0.0/15 via {link.v4(2)} dev {ROOT_IF}",
                f"route add 2001:db8::/32 via {link.v6(2)} dev {ROOT_IF}",
            ]
        )
        + "\n"
    )


def _existing_namespaces(ip: str) -> set[str]:
    out = _run([ip, "netns", "list"], check=False)
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def destroy_lab() -> None:
    """Remove the lab (or leftovers of a crashed run). Idempotent, never raises on absence.

    Processes still running in lab namespaces (responders started by this module) are killed
    by pid first: a namespace with a live process would otherwise linger, detached.
    """
    ip = _ip_binary()
    present = _existing_namespaces(ip) & set(LAB_NAMESPACES)
    for ns in sorted(present):
        for pid_text in _run([ip, "netns", "pids", ns], check=False).split():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(pid_text), signal.SIGKILL)
    cmds = []
    if Path("/sys/class/net", ROOT_IF).exists():
        cmds.append(f"link del {ROOT_IF}")
    cmds += [f"netns del {ns}" for ns in sorted(present)]
    if cmds:
        _run([ip, "-force", "-batch", "-"], "\n".join(cmds) + "\n", check=False)
    # Namespace teardown is asynchronous in the kernel; make sure the root-side veth is gone
    # before anybody tries to create it again.
    deadline = time.monotonic() + 5.0
    while Path("/sys/class/net", ROOT_IF).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def build_lab() -> NetLab:
    """Create the lab (removing stale leftovers first) and wait until it forwards traffic.

    Raises :class:`LabUnavailable` when namespaces cannot be created at all.
    """
    ip = _ip_binary()
    destroy_lab()
    probe = subprocess.run([ip, "netns", "add", ROUTER_NS], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        raise LabUnavailable(
            f"cannot create network namespaces (`ip netns add` failed: {probe.stderr.strip()};"
            " the network lab needs root or CAP_SYS_ADMIN+CAP_NET_ADMIN)"
        )
    try:
        cmds = [f"netns add {ns}" for ns in LAB_NAMESPACES if ns != ROUTER_NS]
        for link in (_UPLINK, *_LEAVES):
            near_netns = f" netns {link.near_ns}" if link.near_ns else ""
            cmds.append(
                f"link add {link.near_if} address {_mac(link.number, 1)}{near_netns} type veth"
                f" peer name {link.far_if} address {_mac(link.number, 2)} netns {link.far_ns}"
            )
        _run([ip, "-batch", "-"], "\n".join(cmds) + "\n")

        for key, value in _iface_sysctls(ROOT_IF):
            Path("/proc/sys", key).write_text(value + "\n")

        # Configure the four namespaces in parallel: one `sh` (sysctls) + `ip -batch` each.
        procs: list[tuple[str, str, subprocess.Popen[str]]] = []
        for ns in LAB_NAMESPACES:
            ifaces = ["lo"] + [
                link.near_if if link.near_ns == ns else link.far_if
                for link in (_UPLINK, *_LEAVES)
                if ns in (link.near_ns, link.far_ns)
            ]
            settings = [*_COMMON_SYSCTLS, *_NS_SYSCTLS[ns]]
            for ifname in ifaces:
                settings += _iface_sysctls(ifname)
            script = _sysctl_script(settings) + f'exec "{ip}" -batch -'
            batch = _ns_batch(ns)
            proc = subprocess.Popen(
                [ip, "netns", "exec", ns, "/bin/sh", "-c", script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs.append((ns, batch, proc))
        errors = []
        for ns, batch, proc in procs:
            _out, err = proc.communicate(batch, timeout=30)
            if proc.returncode != 0:
                errors.append(f"{ns}: {err.strip()}\n--- batch ---\n{batch}")
        if errors:
            raise RuntimeError("configuring lab namespaces failed:\n" + "\n".join(errors))

        _run([ip, "-batch", "-"], _root_batch())
        nft = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None)
        if nft is not None:
            # Reject in a prerouting chain needs Linux 5.9; an older kernel keeps the route's answers.
            _run([ip, "netns", "exec", ROUTER_NS, nft, "-f", "-"], _UNREACHABLE_V4_RULES, check=False)
        lab = NetLab()
        _wait_until_forwarding(lab)
        return lab
    except BaseException:
        destroy_lab()
        raise


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _wait_until_forwarding(lab: NetLab) -> None:
    """Bounded readiness poll: an echo to the live host must come back on IPv4 and IPv6.

    Uses raw sockets (no iputils). One request per family every 50 ms, at most
    ``_READY_TIMEOUT_S`` seconds; raises if the lab does not forward by then.
    """
    ident = os.getpid() & 0xFFFF
    targets = {
        socket.AF_INET: (lab.live_host_v4, socket.IPPROTO_ICMP, 8, 0),
        socket.AF_INET6: (lab.live_host_v6, socket.IPPROTO_ICMPV6, 128, 129),
    }
    socks = {fam: socket.socket(fam, socket.SOCK_RAW, proto) for fam, (_, proto, _, _) in targets.items()}
    try:
        pending = set(socks)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        seq = 0
        while pending:
            now = time.monotonic()
            if now >= deadline:
                names = ", ".join(targets[f][0] for f in pending)
                raise RuntimeError(f"network lab not forwarding after {_READY_TIMEOUT_S} s: no echo reply from {names}")
            seq += 1
            for fam in pending:
                dst, _proto, req_type, _ = targets[fam]
                msg = struct.pack("!BBHHH", req_type, 0, 0, ident, seq) + b"tping-netlab-ready"
                if fam == socket.AF_INET:
                    msg = msg[:2] + struct.pack("!H", _checksum(msg)) + msg[4:]
                socks[fam].sendto(msg, (dst, 0))
            poll_until = min(deadline, time.monotonic() + 0.05)
            while pending and (left := poll_until - time.monotonic()) > 0:
                readable, _, _ = select.select([socks[f] for f in pending], [], [], left)
                for sock in readable:
                    fam = sock.family
                    data, addr = sock.recvfrom(65535)
                    if fam == socket.AF_INET:
                        data = data[(data[0] & 0x0F) * 4 :]
                    dst, _proto, _, reply_type = targets[fam]
                    if (
                        len(data) >= 8
                        and data[0] == reply_type
                        and addr[0] == dst
                        and struct.unpack("!H", data[4:6])[0] == ident
                    ):
                        pending.discard(fam)
    finally:
        for sock in socks.values():
            sock.close()


_CAP_NET_ADMIN: Final = 12
_CAP_NET_RAW: Final = 13
_CAP_SYS_ADMIN: Final = 21


def _check_privileges() -> None:
    """Fail early, with a clear reason, when the effective capabilities cannot run the lab."""
    _ip_binary()
    try:
        status = Path("/proc/self/status").read_text()
        cap_eff = int(next(x for x in status.splitlines() if x.startswith("CapEff:")).split()[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        return  # unknown: let `ip netns add` decide
    missing = [
        name
        for bit, name in (
            (_CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            (_CAP_NET_ADMIN, "CAP_NET_ADMIN"),
            (_CAP_NET_RAW, "CAP_NET_RAW"),
        )
        if not cap_eff >> bit & 1
    ]
    if missing:
        raise LabUnavailable(f"needs root ({', '.join(missing)} missing)")


@contextlib.contextmanager
def _session_lock() -> Iterator[None]:
    """Exclusive inter-process lock for the lab's fixed names (bounded wait, then skip)."""
    try:
        lock_file = open(_LOCK_PATH, "a")  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise LabUnavailable(f"cannot open lock file {_LOCK_PATH}: {exc}") from None
    with lock_file:
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LabUnavailable(f"another test session held {_LOCK_PATH} for {_LOCK_WAIT_S} s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def netlab() -> Iterator[NetLab]:
    """The running lab (built once per session, always torn down, skips if impossible)."""
    with contextlib.ExitStack() as stack:
        try:
            _check_privileges()
            stack.enter_context(_session_lock())
            lab = build_lab()
        except LabUnavailable as exc:
            pytest.skip(f"network lab unavailable: {exc}")
        stack.callback(destroy_lab)
        yield lab


# --------------------------------------------------------------------------------------------
# The scripted responder

#: A plan as accepted by ``responder.py --plan`` (JSON-serialisable): a list of actions by
#: arrival order (the last one repeats), a dict ``{"<seq>": action, "default": action}``, or a
#: single action string. See tests/lab/responder.py for the actions.
Plan = str | Sequence[str] | dict[str, str]


@dataclass
class Responder:
    """A running ``responder.py`` in the responder namespace.

    ``lines`` collects its output (one line per request handled, e.g.
    ``v4 idx=0 seq=1 id=0x1234 from=198.18.1.1 to=198.18.3.2 action=duplicate``, plus
    ``delayed ...`` lines when a delayed packet goes out), for assertions and debugging.
    """

    plan: Plan
    process: subprocess.Popen[str]
    _lines: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _ready: threading.Event = field(default_factory=threading.Event)  # "ready" line or EOF
    _saw_ready: bool = False
    _reader: threading.Thread | None = None

    def _read(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            if line == "ready" and not self._saw_ready:
                self._saw_ready = True
                self._ready.set()
                continue
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:  # EOF: wake waiters so they notice the process is gone
            self._cond.notify_all()
        self._ready.set()

    @property
    def lines(self) -> list[str]:
        """A snapshot of everything the responder has printed so far (except ``ready``)."""
        with self._cond:
            return list(self._lines)

    @property
    def action_lines(self) -> list[str]:
        """Only the per-request lines (``v4 ...`` / ``v6 ...``)."""
        return [line for line in self.lines if line.startswith(("v4 ", "v6 "))]

    def wait_for_actions(self, count: int, timeout: float = 2.0) -> list[str]:
        """Block until ``count`` requests were handled (or ``timeout``); return action lines.

        Blocking: from a trio test use :meth:`wait_for_actions_async`.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                actions = [x for x in self._lines if x.startswith(("v4 ", "v6 "))]
                left = deadline - time.monotonic()
                if len(actions) >= count or left <= 0 or self.process.poll() is not None:
                    return actions
                self._cond.wait(left)

    async def wait_for_actions_async(self, count: int) -> list[str]:
        """Like :meth:`wait_for_actions`, for trio tests; bound it with ``trio.fail_after``.

        Returns early if the responder exits. Polls every 5 ms: the log is filled by a plain
        reader thread, which has no trio token to set a ``trio.Event`` with.
        """
        import trio

        while len(self.action_lines) < count and self.process.poll() is None:  # noqa: ASYNC110
            await trio.sleep(0.005)
        return self.action_lines

    def stop(self) -> int:
        """Stop the process (SIGTERM, then SIGKILL after 2 s); return its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5.0)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


class ResponderFactory:
    """Callable returned by the :func:`responder` fixture: ``responder(plan) -> Responder``.

    Only one responder should answer at a time, so starting a new one stops the previous
    one. Everything started is stopped at the end of the test.
    """

    def __init__(self, lab: NetLab) -> None:
        self.lab = lab
        self.started: list[Responder] = []

    def __call__(
        self,
        plan: Plan = "ok",
        *,
        max_seconds: float = 60.0,
        max_packets: int = 10_000,
        ready_timeout: float = 5.0,
    ) -> Responder:
        """Start ``responder.py --plan <plan>`` in the responder namespace; wait for ``ready``.

        ``max_seconds`` / ``max_packets`` bound the process even if the test never stops it;
        it also exits when this process dies (it watches its stdin pipe).
        """
        for old in self.started:
            old.stop()
        argv = self.lab.netns_exec(
            self.lab.responder_ns,
            sys.executable,
            str(RESPONDER_SCRIPT),
            "--plan",
            json.dumps(plan if isinstance(plan, (str, dict)) else list(plan)),
            "--max-seconds",
            str(max_seconds),
            "--max-packets",
            str(max_packets),
            "--watch-stdin",
        )
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        handle = Responder(plan=plan, process=process)
        self.started.append(handle)
        assert process.stdout is not None
        handle._reader = threading.Thread(
            target=handle._read, args=(process.stdout,), name="responder-stdout", daemon=True
        )
        handle._reader.start()
        handle._ready.wait(ready_timeout)
        if not handle._saw_ready or process.poll() is not None:
            code = handle.stop()
            output = "\n".join(handle.lines)
            raise RuntimeError(f"responder did not become ready (exit status {code}):\n{output}")
        return handle

    def stop_all(self) -> None:
        """Stop every responder this factory started."""
        for handle in self.started:
            handle.stop()


@pytest.fixture
def responder(netlab: NetLab) -> Iterator[ResponderFactory]:
    """Factory starting scripted responders in the lab; all are killed after the test.

    Example::

        async def test_duplicate(netlab: NetLab, responder: ResponderFactory) -> None:
            r = responder(["ok", "duplicate"])  # request #0 answered once, later ones twice
            ...  # ping netlab.responder_v4 / responder_v6 twice
            with trio.fail_after(2):
                assert len(await r.wait_for_actions_async(2)) == 2
    """
    factory = ResponderFactory(netlab)
    try:
        yield factory
    finally:
        factory.stop_all()


def _main(argv: Sequence[str]) -> int:
    """``python tests/netlab.py up|down``: build or remove the lab by hand (debugging)."""
    if len(argv) != 1 or argv[0] not in ("up", "down"):
        print("usage: netlab.py up|down", file=sys.stderr)
        return 2
    if argv[0] == "down":
        destroy_lab()
        return 0
    start = time.monotonic()
    lab = build_lab()
    print(f"lab up in {time.monotonic() - start:.3f} s: {lab}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
