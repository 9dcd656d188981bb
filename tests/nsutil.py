"""A private three-namespace network for the datagram-socket and option tests.

The shared lab (``tests/netlab.py``) runs the library in the root namespace, whose
``net.ipv4.ping_group_range`` is ``1 0`` (nobody may open datagram ICMP sockets) and must
not be changed.  Datagram sockets and link MTUs are therefore tested inside namespaces this
module creates, with the library started there as a subprocess (``ip netns exec``)::

    client  198.19.61.1/24  2001:db8:61::1/64   ping_group_range set per test
       |  link MTU CLIENT_MTU (1400)
    router  198.19.61.2 / 2001:db8:61::2        forwards; unreachable 198.19.63.0/24,
       |  link MTU FAR_MTU (1280)               2001:db8:63::/64; no ICMP rate limit
    far     198.19.62.2-9 / 2001:db8:62::2-9    kernel answers echo requests

The namespaces are isolated: no link reaches the root namespace, so nothing sent here can
leave the machine.  Names carry the pid (``tping-dg-<pid>-client`` ...), so concurrent test
sessions never collide, and :meth:`MiniLab.destroy` removes them even after a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parent.parent
CLIENT_MTU: Final = 1400
FAR_MTU: Final = 1280
_SETPRIV_NO_CAPS: Final = ("setpriv", "--bounding-set=-all", "--inh-caps=-all")
_SETPRIV_NOBODY: Final = (
    "setpriv",
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--bounding-set=-all",
    "--inh-caps=-all",
)
NOBODY_GID: Final = 65534
_MAC: Final = {
    "c0": "02:74:71:00:01:01",
    "r0": "02:74:71:00:01:02",
    "r1": "02:74:71:00:02:01",
    "f0": "02:74:71:00:02:02",
}


class Unavailable(RuntimeError):
    """Namespaces cannot be created here; tests skip with this reason."""


def _ip() -> str:
    path = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None)
    if path is None:
        raise Unavailable("iproute2 `ip` not found")
    return path


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class MiniLab:
    """Names and addresses of one private network (see the module docstring)."""

    prefix: str
    client_v4: str = "198.19.61.1"
    client_v6: str = "2001:db8:61::1"
    router_v4: str = "198.19.61.2"
    router_v6: str = "2001:db8:61::2"
    unreachable_v4: str = "198.19.63.4"
    unreachable_v6: str = "2001:db8:63::4"

    @property
    def client(self) -> str:
        return f"{self.prefix}-client"

    @property
    def router(self) -> str:
        return f"{self.prefix}-router"

    @property
    def far(self) -> str:
        return f"{self.prefix}-far"

    @property
    def namespaces(self) -> tuple[str, str, str]:
        return (self.client, self.router, self.far)

    @staticmethod
    def far_v4(n: int = 2) -> str:
        """A far host address; each test that learns a path MTU uses its own ``n`` (2-9)."""
        return f"198.19.62.{n}"

    @staticmethod
    def far_v6(n: int = 2) -> str:
        return f"2001:db8:62::{n}"

    def set_ping_group_range(self, low: int, high: int) -> None:
        """Set ``net.ipv4.ping_group_range`` in the client namespace (it governs IPv6 too)."""
        self.sysctl("net/ipv4/ping_group_range", f"{low} {high}")

    def sysctl(self, key: str, value: str) -> None:
        """Write ``/proc/sys/<key>`` in the client namespace."""
        _run(self.in_client("sh", "-c", f"printf '%s\\n' '{value}' > /proc/sys/{key}"))

    def in_client(self, *argv: str) -> list[str]:
        return [_ip(), "netns", "exec", self.client, *argv]

    def build(self) -> None:
        ip = _ip()
        probe = subprocess.run([ip, "netns", "add", self.client], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            raise Unavailable(f"cannot create network namespaces: {probe.stderr.strip()}")
        try:
            _run([ip, "-batch", "-"], f"netns add {self.router}\nnetns add {self.far}\n")
            sysctls = (
                "net/ipv4/icmp_ratelimit=0",
                "net/ipv4/icmp_ratemask=0",
                "net/ipv6/icmp/ratelimit=0",
                "net/ipv6/icmp/ratemask=",
                "net/ipv6/conf/all/accept_dad=0",
                "net/ipv6/conf/default/accept_dad=0",
                "net/ipv6/conf/all/accept_ra=0",
                "net/ipv6/conf/default/accept_ra=0",
                "net/ipv4/ip_forward=1",
                "net/ipv6/conf/all/forwarding=1",
            )
            pairs = (setting.split("=", 1) for setting in sysctls)
            script = "".join(f"printf '%s\\n' '{value}' > /proc/sys/{key} && " for key, value in pairs)
            for ns in self.namespaces:  # before the links exist, so they inherit "default"
                _run([ip, "netns", "exec", ns, "sh", "-c", script + "true"])
            _run(
                [ip, "-batch", "-"],
                f"link add c0 address {_MAC['c0']} mtu {CLIENT_MTU} netns {self.client} type veth"
                f" peer name r0 address {_MAC['r0']} mtu {CLIENT_MTU} netns {self.router}\n"
                f"link add r1 address {_MAC['r1']} mtu {FAR_MTU} netns {self.router} type veth"
                f" peer name f0 address {_MAC['f0']} mtu {FAR_MTU} netns {self.far}\n",
            )
            far_addresses = "".join(
                f"addr add 198.19.62.{n}/24 dev f0\naddr add 2001:db8:62::{n}/64 dev f0 nodad\n" for n in range(2, 10)
            )
            # Permanent neighbours: no address resolution delays the first probe (IPv6 ND
            # takes about a second here).
            to_far = "".join(
                f"neigh replace {a}{n} lladdr {_MAC['f0']} dev r1 nud permanent\n"
                for n in range(2, 10)
                for a in ("198.19.62.", "2001:db8:62::")
            )
            batches_neigh = {
                self.client: "".join(
                    f"neigh replace {a} lladdr {_MAC['r0']} dev c0 nud permanent\n"
                    for a in ("198.19.61.2", "2001:db8:61::2")
                ),
                self.router: to_far
                + "".join(
                    f"neigh replace {a} lladdr {_MAC['c0']} dev r0 nud permanent\n"
                    for a in ("198.19.61.1", "2001:db8:61::1")
                ),
                self.far: "".join(
                    f"neigh replace {a} lladdr {_MAC['r1']} dev f0 nud permanent\n"
                    for a in ("198.19.62.1", "2001:db8:62::1")
                ),
            }
            batches = {
                self.client: "addr add 198.19.61.1/24 dev c0\naddr add 2001:db8:61::1/64 dev c0 nodad\n"
                "link set c0 up\nroute add 198.18.0.0/15 via 198.19.61.2\n"
                "route add 2001:db8::/32 via 2001:db8:61::2\n",
                self.router: "addr add 198.19.61.2/24 dev r0\naddr add 2001:db8:61::2/64 dev r0 nodad\n"
                "addr add 198.19.62.1/24 dev r1\naddr add 2001:db8:62::1/64 dev r1 nodad\n"
                "link set r0 up\nlink set r1 up\n"
                "route add unreachable 198.19.63.0/24\nroute add unreachable 2001:db8:63::/64\n",
                self.far: far_addresses + "link set f0 up\nroute add 198.18.0.0/15 via 198.19.62.1\n"
                "route add 2001:db8::/32 via 2001:db8:62::1\n",
            }
            for ns, batch in batches.items():
                _run([ip, "-n", ns, "-batch", "-"], "link set lo up\n" + batch + batches_neigh[ns])
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        """Remove the namespaces (killing anything still running in them). Idempotent."""
        remove_namespaces(self.namespaces)


def remove_namespaces(namespaces: Iterable[str]) -> None:
    """Delete these namespaces, killing anything still running in them; missing ones are skipped."""
    ip = _ip()
    for ns in namespaces:
        pids = subprocess.run([ip, "netns", "pids", ns], capture_output=True, text=True, timeout=30).stdout
        for pid in pids.split():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.kill(int(pid), 9)
        subprocess.run([ip, "netns", "del", ns], capture_output=True, timeout=30, check=False)


def sweep_stale_labs(pattern: str = r"tping-dg-(\d+)-\w+") -> None:
    """Remove labs whose creating pytest died without cleaning up (e.g. SIGKILL).

    *pattern* matches a lab's namespace name (the whole match) from its start, its first
    group being the creator's pid; the default matches this module's mini-labs.
    """
    listing = subprocess.run([_ip(), "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    for line in listing.splitlines():
        match = re.match(pattern, line)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            subprocess.run([_ip(), "netns", "del", match.group(0)], capture_output=True, timeout=30, check=False)
        except PermissionError:
            pass


@contextlib.contextmanager
def mini_lab() -> Iterator[MiniLab]:
    lab = MiniLab(prefix=f"tping-dg-{os.getpid()}")
    if os.geteuid() != 0:
        raise Unavailable("creating network namespaces needs root")
    sweep_stale_labs()
    lab.destroy()
    lab.build()
    try:
        yield lab
    finally:
        lab.destroy()


@pytest.fixture(scope="session")
def minilab() -> Iterator[MiniLab]:
    """The private network of this module's docstring; skips where it cannot be built."""
    with contextlib.ExitStack() as stack:
        try:
            lab = stack.enter_context(mini_lab())
        except Unavailable as exc:
            pytest.skip(f"private network namespaces unavailable: {exc}")
        yield lab


# --------------------------------------------------------------------------------------------
# Running Python as an unprivileged user


def python_env() -> dict[str, str]:
    """Environment for a child interpreter that imports this checkout and its dependencies."""
    path = [str(REPO), sysconfig.get_paths()["purelib"]]
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PYTHONPATH": os.pathsep.join(path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LANG": "C.UTF-8",
    }


@dataclass(frozen=True)
class Identity:
    """How to run a command without CAP_NET_RAW: its argv prefix, interpreter and group."""

    prefix: tuple[str, ...]
    python: str
    gid: int
    description: str


def unprivileged_identity(lab: MiniLab) -> Identity:
    """The most unprivileged identity that can run this checkout here.

    User ``nobody`` (gid 65534, no capabilities) when some Python of the running minor
    version is readable by it -- this interpreter, or the system's ``python3`` with our
    site-packages on ``PYTHONPATH`` (an interpreter under ``/root`` is not).  Otherwise root
    with every capability dropped (``setpriv --bounding-set=-all``): raw sockets then fail
    with EPERM exactly as for an ordinary user, and datagram sockets depend only on the
    group range, so the code paths are the same.
    """
    candidates = [sys.executable]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates += [p for p in (f"/usr/bin/{version}", f"/usr/local/bin/{version}") if os.path.exists(p)]
    if shutil.which("setpriv") is None:
        raise Unavailable("setpriv (util-linux) not found")
    check = "import trio, typer, trioping"
    for python in candidates:
        argv = lab.in_client(*_SETPRIV_NOBODY, python, "-c", check)
        done = subprocess.run(argv, env=python_env(), cwd="/", capture_output=True, text=True, timeout=30, check=False)
        if done.returncode == 0:
            return Identity(_SETPRIV_NOBODY, python, NOBODY_GID, f"user nobody with {python}")
    argv = lab.in_client(*_SETPRIV_NO_CAPS, sys.executable, "-c", check)
    done = subprocess.run(argv, env=python_env(), cwd="/", capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise Unavailable(f"cannot run Python without capabilities: {done.stderr.strip()}")
    return Identity(_SETPRIV_NO_CAPS, sys.executable, 0, "root without capabilities (interpreter unreadable to nobody)")


# --------------------------------------------------------------------------------------------
# Seeing our own echo requests: on loopback every raw ICMP socket gets a copy of each one


@dataclass(frozen=True)
class Captured:
    """One echo request as it travelled; ``df`` is None for IPv6 (no such bit)."""

    source: str
    destination: str
    tos: int
    ttl: int
    df: bool | None
    identifier: int
    sequence: int


class RequestCapture:
    """A second raw socket that records echo requests carrying a given pinger's token.

    Open it before sending; :meth:`requests` then reads what is already queued.  IPv4 raw
    sockets deliver the IP header (TOS, flags, TTL, addresses); for IPv6 the traffic class,
    hop limit and destination come as ancillary data.
    """

    def __init__(self, family: int) -> None:
        self.family = family
        if family == 4:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            for option in (socket.IPV6_RECVTCLASS, socket.IPV6_RECVHOPLIMIT, socket.IPV6_RECVPKTINFO):
                self.sock.setsockopt(socket.IPPROTO_IPV6, option, 1)
        try:  # a raw socket sees every ICMP packet of the host: room for a busy machine's
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RequestCapture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def requests(self, token: bytes, *, wait: float = 0.5, expected: int = 1) -> list[Captured]:
        """Requests carrying *token* (ICMP data bytes 8-15), waiting up to *wait* seconds."""
        found: list[Captured] = []
        deadline = time.monotonic() + wait
        while len(found) < expected:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                break
            data, ancillary, _flags, address = self.sock.recvmsg(65535, 512)
            captured = self._parse(data, ancillary, address[0], token)
            if captured is not None:
                found.append(captured)
        return found

    def _parse(
        self, data: bytes, ancillary: list[tuple[int, int, bytes]], sender: str, token: bytes
    ) -> Captured | None:
        if self.family == 4:
            ihl = (data[0] & 0x0F) * 4
            icmp = data[ihl:]
            if len(icmp) < 24 or icmp[0] != 8 or icmp[16:24] != token:
                return None
            flags = struct.unpack("!H", data[6:8])[0]
            return Captured(
                source=socket.inet_ntop(socket.AF_INET, data[12:16]),
                destination=socket.inet_ntop(socket.AF_INET, data[16:20]),
                tos=data[1],
                ttl=data[8],
                df=bool(flags & 0x4000),
                identifier=struct.unpack("!H", icmp[4:6])[0],
                sequence=struct.unpack("!H", icmp[6:8])[0],
            )
        if len(data) < 24 or data[0] != 128 or data[16:24] != token:
            return None
        tclass = hop_limit = -1
        destination = ""
        for level, kind, value in ancillary:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == socket.IPV6_TCLASS:
                tclass = int.from_bytes(value[:4], sys.byteorder)
            elif kind == socket.IPV6_HOPLIMIT:
                hop_limit = int.from_bytes(value[:4], sys.byteorder)
            elif kind == socket.IPV6_PKTINFO:
                destination = socket.inet_ntop(socket.AF_INET6, value[:16])
        return Captured(
            source=sender,
            destination=destination,
            tos=tclass,
            ttl=hop_limit,
            df=None,
            identifier=struct.unpack("!H", data[4:6])[0],
            sequence=struct.unpack("!H", data[6:8])[0],
        )
