"""fping 5.1's command line, parsed as fping parses it.

Why a hand parser, not Typer or argparse: fping's grammar is getopt's with fping's own
quirks, and scripts (SmokePing, Zabbix, LibreNMS) depend on them.  Short flags bundle
(``-ae``, ``-qC3``), a value may be attached or separate (``-C3``, ``-C 3``,
``--vcount=3``, ``--vcount 3``), options and targets mix in any order, ``--`` ends the
options, ``-g`` is a flag whose range comes from the targets, and values are read as C
reads them (``-c 3x`` is 3; ``-t 1e3`` is 1000 ms; ``-H -1`` is 4294967295 and out of
range).  argparse would reject some of these and accept others fping refuses, and Typer
adds its import time to every run (the start-up goal is 1.5 times ``import trio``); the
table below plus a loop is all fping's grammar needs, and it imports nothing.

Every check fping makes is made here, in fping's order, with fping 5.1's exit code (1
for a bad command line, although fping's manual says 3; 4 where the binary fails a system
call), but the message is one line naming the problem instead of fping's whole usage text.
"""

from __future__ import annotations

import math
import re
import socket
from dataclasses import dataclass, field

from ._errors import TriopingError

PROG = "trioping-fping"

FPING_VERSION = "5.1"
"""The fping release whose options, output and exit codes this command follows."""

EXIT_USAGE = 1
"""What fping 5.1 exits with after a bad option (its manual says 3; the binary exits 1)."""
EXIT_SYSTEM = 4

MAX_PING_DATA = 65536 - 40 - 8
"""fping's largest ``-b`` (it allows for an IPv6 header on every target)."""
MAX_GENERATE = 100_000
"""fping's limit for a ``-g START END`` range (``end > start + MAX_GENERATE`` is refused)."""
MAX_CIDR_ADDRESSES = 1 << 20
"""Our limit for ``-g PREFIX`` (fping 5.1 has none, and fails with "not enough sequence
numbers" past 65,535 hosts; trioping pings a /12 and more)."""
MAX_COUNT = 1 << 31
"""Counts that C's ``atoi`` turns into gigabytes of per-probe storage: fping dies with exit
4 trying to allocate them; so do we, in one line."""


class FpingExit(TriopingError):
    """The command ends before pinging: *message* (one line) and exit *status*.

    A message for stdout (``-v``, ``-h``) has ``stdout`` set."""

    def __init__(self, message: str, status: int, *, stdout: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.stdout = stdout


@dataclass(slots=True)
class FpingOptions:
    """What the command line asks for, in fping's units (milliseconds, except ``-Q``)."""

    targets: list[str] = field(default_factory=list)
    family: int | None = None  # 4 or 6
    size: int = 56
    backoff: float = 1.5
    count: int | None = None
    report_all: bool = False  # -C
    rdns: bool = False  # -d
    timestamp: bool = False  # -D
    elapsed: bool = False  # -e
    file: str | None = None
    generate: bool = False
    ttl: int | None = None
    interval_ms: float = 10.0
    interface: str | None = None
    loop: bool = False
    all_addresses: bool = False  # -m
    dontfrag: bool = False  # -M
    name: bool = False  # -n
    netdata: bool = False  # -N
    outage: bool = False  # -o
    tos: int | None = None
    period_ms: float = 1000.0
    quiet: bool = False
    report_interval_s: float = 0.0  # -Q
    retry: int = 3
    random_data: bool = False  # -R
    stats: bool = False  # -s
    source: str | None = None
    timeout_ms: float = 500.0
    timeout_set: bool = False
    unreachable: bool = False  # -u
    alive: bool = False  # -a
    addr: bool = False  # -A
    reachable: int = 0  # -x
    json: bool = False

    @property
    def timeout_s(self) -> float:
        """fping's per-probe wait: ``-t``, or in count and loop modes the period up to 2 s."""
        if (self.loop or self.count is not None) and not self.timeout_set:
            return min(self.period_ms, 2000.0) / 1e3
        return self.timeout_ms / 1e3


# (short, long, takes a value); long None: short only (fping's ignored -T).
OPTION_TABLE: tuple[tuple[str, str | None, bool], ...] = (
    ("4", "ipv4", False),
    ("6", "ipv6", False),
    ("a", "alive", False),
    ("A", "addr", False),
    ("b", "size", True),
    ("B", "backoff", True),
    ("c", "count", True),
    ("C", "vcount", True),
    ("d", "rdns", False),
    ("D", "timestamp", False),
    ("e", "elapsed", False),
    ("f", "file", True),
    ("g", "generate", False),
    ("h", "help", False),
    ("H", "ttl", True),
    ("i", "interval", True),
    ("I", "iface", True),
    ("l", "loop", False),
    ("m", "all", False),
    ("M", "dontfrag", False),
    ("n", "name", False),
    ("N", "netdata", False),
    ("o", "outage", False),
    ("O", "tos", True),
    ("p", "period", True),
    ("q", "quiet", False),
    ("Q", "squiet", True),
    ("r", "retry", True),
    ("R", "random", False),
    ("s", "stats", False),
    ("S", "src", True),
    ("t", "timeout", True),
    ("T", None, True),
    ("u", "unreach", False),
    ("v", "version", False),
    ("x", "reachable", True),
    ("", "json", False),  # ours: results as JSON lines instead of fping's text
)
_SHORT = {short: takes for short, _long, takes in OPTION_TABLE if short}
_LONG = {long: (short or long, takes) for short, long, takes in OPTION_TABLE if long}

_FLOAT = re.compile(r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", re.IGNORECASE)
_INT = re.compile(r"\s*([+-]?\d+)")
_C_INT = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)")


def scan_float(text: str) -> float | None:
    """C's ``sscanf("%f")``: the longest number at the start, or None if there is none."""
    match = _FLOAT.match(text)
    return float(match.group(1)) if match else None


def atoi(text: str) -> int:
    """C's ``atoi``: the leading integer, 0 if there is none."""
    match = _INT.match(text)
    return int(match.group(1)) if match else 0


def unsigned(value: int) -> int:
    """A C ``int`` read into an ``unsigned int`` (``-1`` becomes 4294967295)."""
    return value % (1 << 32)


def scan_unsigned(text: str) -> int | None:
    """``sscanf("%u")``, which glibc lets take a sign (``-1`` is 4294967295)."""
    match = _INT.match(text)
    return unsigned(int(match.group(1))) if match else None


def scan_c_int(text: str) -> int | None:
    """``sscanf("%i")``: decimal, ``0x`` hexadecimal or ``0`` octal."""
    match = _C_INT.match(text)
    if not match:
        return None
    digits = match.group(2)
    base = 16 if digits[:2] in ("0x", "0X") else 8 if digits.startswith("0") else 10
    value = int(digits, base)
    return -value if match.group(1) == "-" else value


def _bad(option: str, value: str, why: str) -> FpingExit:
    return FpingExit(f"{PROG}: -{option} {value}: {why}", EXIT_USAGE)


def _milliseconds(option: str, value: str) -> float:
    number = scan_float(value)
    if number is None or math.isnan(number):
        raise _bad(option, value, "not a number of milliseconds")
    if number < 0:
        raise _bad(option, value, "must not be negative")
    if math.isinf(number):
        raise _bad(option, value, "must be finite")
    return number


def _tokens(argv: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Split *argv* as fping's optparse does: options (name, value) in order, and operands."""
    options: list[tuple[str, str | None]] = []
    operands: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            operands.extend(argv[index:])
            break
        if arg.startswith("--"):
            name, equals, attached = arg[2:].partition("=")
            if name not in _LONG:
                raise FpingExit(f"{PROG}: invalid option -- '{arg[2:]}' (see {PROG} -h)", EXIT_USAGE)
            key, takes = _LONG[name]
            if not takes:
                if equals:
                    raise FpingExit(f"{PROG}: option takes no arguments -- '{name}'", EXIT_USAGE)
                options.append((key, None))
            elif equals:
                options.append((key, attached))
            elif index < len(argv):
                options.append((key, argv[index]))
                index += 1
            else:
                raise FpingExit(f"{PROG}: option requires an argument -- '{name}'", EXIT_USAGE)
            continue
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
            continue
        position = 1
        while position < len(arg):
            letter = arg[position]
            position += 1
            if letter not in _SHORT:
                raise FpingExit(f"{PROG}: invalid option -- '{letter}' (see {PROG} -h)", EXIT_USAGE)
            if not _SHORT[letter]:
                options.append((letter, None))
                continue
            if position < len(arg):
                options.append((letter, arg[position:]))
            elif index < len(argv):
                options.append((letter, argv[index]))
                index += 1
            else:
                raise FpingExit(f"{PROG}: option requires an argument -- '{letter}'", EXIT_USAGE)
            break
    return options, operands


def parse_args(argv: list[str], version: str) -> FpingOptions:
    """Parse fping's command line; raise :class:`FpingExit` for -h, -v and every mistake."""
    if len(argv) == 1 and argv[0] in ("-h", "--help"):
        raise FpingExit(usage(), 0, stdout=True)
    parsed, operands = _tokens(argv)
    opts = FpingOptions()
    for key, raw in parsed:
        value = raw or ""
        if key == "4" or key == "6":
            wanted = int(key)
            if opts.family not in (None, wanted):
                raise FpingExit(f"{PROG}: can't specify both -4 and -6", EXIT_USAGE)
            opts.family = wanted
        elif key == "M":
            opts.dontfrag = True
        elif key == "t":
            opts.timeout_ms = _milliseconds("t", value)
            opts.timeout_set = True
        elif key == "r":
            retry = scan_unsigned(value)
            if retry is None:
                raise _bad("r", value, "not a number of retries")
            opts.retry = retry
        elif key == "i":
            opts.interval_ms = _milliseconds("i", value)
        elif key == "p":
            opts.period_ms = _milliseconds("p", value)
        elif key in ("c", "C"):
            count = unsigned(atoi(value))
            if count == 0:
                raise _bad(key, value, "the count must be a positive integer")
            if count >= MAX_COUNT:
                raise FpingExit(f"{PROG}: -{key} {value}: count {count} too large to allocate", EXIT_SYSTEM)
            opts.count = count
            opts.report_all = opts.report_all or key == "C"
        elif key == "b":
            size = scan_unsigned(value)
            if size is None:
                raise _bad("b", value, "not a number of bytes")
            opts.size = size
        elif key == "h":
            raise FpingExit(usage(), 0, stdout=True)
        elif key == "q":
            opts.quiet = True
        elif key == "Q":
            opts.quiet = True
            number = scan_float(value)
            if number is None or math.isnan(number) or math.isinf(number):
                raise _bad("Q", value, "not a number of seconds")
            if number < 0:
                raise _bad("Q", value, "must not be negative")
            opts.report_interval_s = number
        elif key == "e":
            opts.elapsed = True
        elif key == "m":
            opts.all_addresses = True
        elif key == "N":
            opts.netdata = True
        elif key == "n":
            if opts.rdns:
                raise FpingExit(f"{PROG}: use either one of -d or -n", EXIT_USAGE)
            opts.name = True
        elif key == "d":
            if opts.name:
                raise FpingExit(f"{PROG}: use either one of -d or -n", EXIT_USAGE)
            opts.rdns = True
        elif key == "A":
            opts.addr = True
        elif key == "B":
            backoff = scan_float(value) or 0.0
            if backoff == 0.0 or math.isnan(backoff):
                raise _bad("B", value, "not a backoff factor")
            opts.backoff = backoff
        elif key == "s":
            opts.stats = True
        elif key == "D":
            opts.timestamp = True
        elif key == "R":
            opts.random_data = True
        elif key == "l":
            opts.loop = True
        elif key == "u":
            opts.unreachable = True
        elif key == "a":
            opts.alive = True
        elif key == "H":
            ttl = unsigned(atoi(value))
            if ttl == 0:
                raise _bad("H", value, "the TTL must be a positive integer")
            opts.ttl = ttl
        elif key == "v":
            # Scripts that read fping's version ("fping: Version 5.1") to decide which options
            # it has find the fping release whose options and output this command speaks.
            raise FpingExit(f"{PROG}: Version {FPING_VERSION} (trioping {version})", 0, stdout=True)
        elif key == "x":
            reachable = unsigned(atoi(value))
            if reachable == 0:
                raise _bad("x", value, "the number of hosts must be a positive integer")
            opts.reachable = reachable
        elif key == "f":
            opts.file = value
        elif key == "g":
            opts.generate = True
        elif key == "S":
            if not _is_address(value):
                raise FpingExit(f"{PROG}: can't parse source address: {value}", EXIT_USAGE)
            opts.source = value
        elif key == "I":
            opts.interface = value
        elif key == "T":
            pass  # ignored, as by fping (compatibility with fping 2.4)
        elif key == "O":
            if not value.strip():
                continue  # C's sscanf finds no input at all, and fping goes on without a TOS
            tos = scan_c_int(value)
            if tos is None:
                raise _bad("O", value, "not a type of service (decimal or 0x hexadecimal)")
            opts.tos = tos & 0xFF  # the byte the kernel keeps of fping's int
        elif key == "o":
            opts.outage = True
        elif key == "json":
            opts.json = True
    _check_combination(opts, operands)
    opts.targets = operands
    return opts


def _is_address(text: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except OSError:
            continue
        return True
    return False


def _check_combination(opts: FpingOptions, operands: list[str]) -> None:
    """fping's checks after the options, in its order."""
    if opts.ttl is not None and opts.ttl > 255:
        raise FpingExit(f"{PROG}: ttl {opts.ttl} out of range", EXIT_USAGE)
    if opts.unreachable and opts.alive:
        raise FpingExit(f"{PROG}: specify only one of a, u", EXIT_USAGE)
    if opts.count is not None and opts.loop:
        raise FpingExit(f"{PROG}: specify only one of c, l", EXIT_USAGE)
    if opts.size > MAX_PING_DATA:
        raise FpingExit(f"{PROG}: data size {opts.size} not valid, must be lower than {MAX_PING_DATA}", EXIT_USAGE)
    if not 1.0 <= opts.backoff <= 5.0:
        raise FpingExit(f"{PROG}: backoff factor {opts.backoff:.1f} not valid, must be between 1.0 and 5.0", EXIT_USAGE)
    if operands and opts.file is not None:
        raise FpingExit(f"{PROG}: give targets either with -f or on the command line, not both", EXIT_USAGE)
    if opts.file is not None and opts.generate:
        raise FpingExit(f"{PROG}: -f and -g cannot be combined", EXIT_USAGE)
    if opts.generate and not operands:
        raise FpingExit(f"{PROG}: -g needs a CIDR prefix (-g 192.0.2.0/24) or a range (-g START END)", EXIT_USAGE)
    if opts.generate and len(operands) > 2:
        raise FpingExit(f"{PROG}: -g takes a CIDR prefix or a START END range, not {len(operands)} targets", EXIT_USAGE)


def generate(operands: list[str], limit_range: int = MAX_GENERATE, limit_cidr: int = MAX_CIDR_ADDRESSES) -> list[str]:
    """The targets of ``-g``: IPv4 only, as fping 5.1.  A prefix drops its network and
    broadcast addresses below /31; a range is inclusive.  A range that runs backwards is
    refused in one line (fping 5.1 pings nothing and exits 1 silently)."""
    if len(operands) == 1:
        spec = operands[0]
        address, slash, mask_text = spec.partition("/")
        if not slash:
            raise FpingExit(f"{PROG}: -g {spec}: give a CIDR prefix (192.0.2.0/24) or a START END range", EXIT_USAGE)
        start = _ipv4_number(address)
        mask = atoi(mask_text)
        if not 1 <= mask <= 32:
            raise FpingExit(f"{PROG}: netmask must be between 1 and 32 (is: {mask_text})", EXIT_USAGE)
        start &= (0xFFFFFFFF << (32 - mask)) & 0xFFFFFFFF
        last = start + (1 << (32 - mask)) - 1
        if mask < 31:
            start, last = start + 1, last - 1
        if last - start + 1 > limit_cidr:
            raise FpingExit(
                f"{PROG}: -g {spec} generates {last - start + 1} addresses, more than {limit_cidr}", EXIT_USAGE
            )
    else:
        start, last = _ipv4_number(operands[0]), _ipv4_number(operands[1])
        if last < start:  # fping generates nothing and exits 1 without a word
            raise FpingExit(
                f"{PROG}: -g {operands[0]} {operands[1]}: the range is empty (its start comes after its end)",
                EXIT_USAGE,
            )
        if last > start + limit_range:
            raise FpingExit(
                f"{PROG}: -g parameter generates too many addresses (more than {limit_range + 1})", EXIT_USAGE
            )
    return [socket.inet_ntoa(number.to_bytes(4, "big")) for number in range(start, last + 1)]


def _ipv4_number(text: str) -> int:
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        pass
    try:
        socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        raise FpingExit(f"{PROG}: -g: can't parse address {text}: not an IP address", EXIT_USAGE) from None
    raise FpingExit(f"{PROG}: -g works only with IPv4 addresses", EXIT_USAGE)


def usage() -> str:
    """fping's ``-h`` text, with trioping's additions and omissions."""
    return f"""Usage: {PROG} [options] [targets...]

Probing options:
   -4, --ipv4         only ping IPv4 addresses
   -6, --ipv6         only ping IPv6 addresses
   -b, --size=BYTES   amount of ping data to send, in bytes (default: 56)
   -B, --backoff=N    set exponential backoff factor to N (default: 1.5)
   -c, --count=N      count mode: send N pings to each target
   -f, --file=FILE    read list of targets from a file ( - means stdin)
   -g, --generate     generate target list (only if no -f specified)
                      (give start and end IP in the target list, or a CIDR address)
                      (ex. {PROG} -g 192.168.1.0 192.168.1.255 or {PROG} -g 192.168.1.0/24)
   -H, --ttl=N        set the IP TTL value (Time To Live hops)
   -I, --iface=IFACE  bind to a particular interface
   -l, --loop         loop mode: send pings forever
   -m, --all          use all IPs of provided hostnames (e.g. IPv4 and IPv6), use with -A
   -M, --dontfrag     set the Don't Fragment flag
   -O, --tos=N        set the type of service (tos) flag on the ICMP packets
   -p, --period=MSEC  interval between ping packets to one target (in ms)
                      (in loop and count modes, default: 1000 ms)
   -r, --retry=N      number of retries (default: 3)
   -R, --random       random packet data (accepted; trioping's payload is never all zeros)
   -S, --src=IP       set source address
   -t, --timeout=MSEC individual target initial timeout (default: 500 ms,
                      except with -l/-c/-C, where it's the -p period up to 2000 ms)

Output options:
   -a, --alive        show targets that are alive
   -A, --addr         show targets by address
   -C, --vcount=N     same as -c, report results in verbose format
   -d, --rdns         show targets by name (force reverse-DNS lookup)
   -D, --timestamp    print timestamp before each output line
   -e, --elapsed      show elapsed time on return packets
   -i, --interval=MSEC  interval between sending ping packets (default: 10 ms)
   -n, --name         show targets by name (reverse-DNS lookup for target IPs)
   -N, --netdata      output compatible for netdata (-l -Q are required)
   -o, --outage       show the accumulated outage time (lost packets * packet interval)
   -q, --quiet        quiet (don't show per-target/per-ping results)
   -Q, --squiet=SECS  same as -q, but add interval summary every SECS seconds
   -s, --stats        print final stats
   -u, --unreach      show targets that are unreachable
   -v, --version      show version
   -h, --help         show this help
   -x, --reachable=N  shows if >=N hosts are reachable or not
       --json         trioping's own: every result and per-target summary as JSON lines
                      (late, invalid and duplicate replies, ICMP errors, RTT clocks)
                      instead of fping's text"""
