"""Host names and address literals to (canonical address, family)."""

from __future__ import annotations

import ipaddress
import re
import socket

import trio

from ._errors import InvalidArgumentError, ResolutionError
from ._packet import Family

Host = str | ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_family(family: Family | int | None) -> Family | None:
    """4, 6, a :class:`Family`, ``socket.AF_INET`` / ``AF_INET6``, or None (either)."""
    if family is None:
        return None
    if family == socket.AF_INET:
        return Family.V4
    if family == socket.AF_INET6:
        return Family.V6
    try:
        return Family(family)
    except ValueError:
        raise InvalidArgumentError(f"family must be 4, 6 or None, not {family!r}") from None


def canonical_address(address: str, family: Family) -> str:
    """The one spelling of *address* used as a demultiplexing key (what ``inet_ntop`` gives)."""
    af = family.address_family
    return socket.inet_ntop(af, socket.inet_pton(af, address))


def literal_address(host: Host) -> tuple[str, Family] | None:
    """(address, family) if *host* is an IP address literal or object, else None."""
    if isinstance(host, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        parsed: ipaddress.IPv4Address | ipaddress.IPv6Address = host
    else:
        try:
            parsed = ipaddress.ip_address(host)
        except ValueError:
            return None
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.scope_id:
            raise InvalidArgumentError(f"{host}: scoped IPv6 addresses are not supported")
        return canonical_address(str(parsed), Family.V6), Family.V6
    return canonical_address(str(parsed), Family.V4), Family.V4


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")


def is_valid_hostname(name: str) -> bool:
    """Whether *name* could be a DNS host name at all (RFC 1123 labels, IDNA for others).

    A name that cannot exist is refused here rather than handed to the resolver, which
    would otherwise send a query that can only fail (``-x``, ``1::2::3``, ``a..b``).
    """
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    ascii_name = ascii_name[:-1] if ascii_name.endswith(".") else ascii_name
    if not ascii_name or len(ascii_name) > 253:
        return False
    return all(_LABEL.match(label) for label in ascii_name.split("."))


def is_special_invalid(name: str) -> bool:
    """RFC 6761 section 6.4: "invalid" names never resolve, and resolver libraries should
    answer them negatively at once instead of querying a name server."""
    labels = name.lower().rstrip(".").split(".")
    return labels[-1] == "invalid"


async def resolve(host: Host, family: Family | None = None) -> tuple[str, Family]:
    """Resolve *host* to its first address of the wanted family (any, if None).

    Literals are checked without a lookup; a literal of the other family than asked is an
    :class:`InvalidArgumentError` (as ``ping -4 ::1`` refuses).  Names that cannot exist,
    and RFC 6761's ``.invalid`` names, fail without a query.  Failed lookups raise
    :class:`ResolutionError` with the resolver's own words ("Name or service not known").
    """
    if not isinstance(host, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise InvalidArgumentError(f"host must be a str or an ipaddress object, not {host!r}")
    literal = literal_address(host)
    if literal is not None:
        if family is not None and literal[1] is not family:
            raise InvalidArgumentError(f"{host}: Address family for hostname not supported")
        return literal
    assert isinstance(host, str)
    name = host.strip()
    if not name:
        raise InvalidArgumentError("empty host name")
    if not is_valid_hostname(name) or is_special_invalid(name):
        raise ResolutionError(host, "Name or service not known")
    af = socket.AF_UNSPEC if family is None else family.address_family
    try:
        infos = await trio.socket.getaddrinfo(name, None, af, socket.SOCK_RAW)
    except socket.gaierror as exc:
        raise ResolutionError(host, exc.strerror or str(exc)) from exc
    except UnicodeError as exc:
        raise ResolutionError(host, f"invalid name ({exc})") from exc
    for info_family, _type, _proto, _canon, sockaddr in infos:
        if info_family == socket.AF_INET:
            return canonical_address(str(sockaddr[0]), Family.V4), Family.V4
        if info_family == socket.AF_INET6 and not (len(sockaddr) > 3 and sockaddr[3]):
            return canonical_address(str(sockaddr[0]), Family.V6), Family.V6
    raise ResolutionError(host, "No address associated with hostname")
