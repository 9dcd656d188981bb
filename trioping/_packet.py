"""Sans-I/O ICMP echo codec: pure functions from values to bytes and back.

Nothing here opens a socket or reads a clock, so every rule about what counts as *our* reply
can be property-tested on bytes alone (as h11 and wsproto do for HTTP and WebSocket).

Echo payload layout (``size`` data bytes after the 8-byte ICMP header)::

    0        8          16                    size
    | stamp  |  token   | fill: byte i = i & 0xFF |

* ``stamp``: the sender's wall-clock send time, unsigned 64-bit big-endian nanoseconds.  It
  travels with the packet, as in BSD ping, so a reply carries its own send time.
* ``token``: 8 random bytes chosen per pinger.  The identifier alone is only 16 bits and
  datagram sockets let the kernel pick it; the token is what stops another pinger (in this
  process or another) from having its replies counted as ours.
* ``fill``: the same pattern as iputils, so corruption anywhere in the payload is caught.

For ``size < 16`` the layout is simply cut to ``size`` bytes: whatever bytes fit are still
sent and verified, so ``size=8`` verifies the stamp but no token, and ``size=0`` leaves only
identifier and sequence to match replies on.  RTTs never depend on the payload stamp (they
come from kernel timestamps kept beside each probe), so small sizes still measure time.

Annotations here are evaluated at import (no ``from __future__ import annotations``): as
strings, every field of a named tuple would be compiled again at each start of a command.
"""

import enum
import socket
import struct
from typing import NamedTuple

from ._errors import InvalidArgumentError, PacketError

ICMP_HEADER_SIZE = 8
IPV4_HEADER_SIZE = 20
STAMP_SIZE = 8
TOKEN_SIZE = 8
PAYLOAD_PREFIX_SIZE = STAMP_SIZE + TOKEN_SIZE
DEFAULT_SIZE = 56
MAX_SIZE_V4 = 65535 - IPV4_HEADER_SIZE - ICMP_HEADER_SIZE  # 65507, as iputils
MAX_SIZE_V6 = 65535 - ICMP_HEADER_SIZE  # 65527: the IPv6 payload length is 16 bits


class Family(enum.IntEnum):
    """IP version of a probe; the value is the version number."""

    V4 = 4
    V6 = 6

    @property
    def address_family(self) -> socket.AddressFamily:
        return socket.AF_INET if self is _V4 else socket.AF_INET6

    @property
    def echo_request_type(self) -> int:
        return ICMPV4_ECHO_REQUEST if self is _V4 else ICMPV6_ECHO_REQUEST

    @property
    def echo_reply_type(self) -> int:
        return ICMPV4_ECHO_REPLY if self is _V4 else ICMPV6_ECHO_REPLY

    @property
    def max_size(self) -> int:
        return MAX_SIZE_V4 if self is _V4 else MAX_SIZE_V6


# Class attribute reads on an enum go through EnumType.__getattr__'s slot, which costs a
# method-wrapper object each on Python 3.11: code run per packet uses these aliases.
_V4 = Family.V4
_V6 = Family.V6


ICMPV4_ECHO_REPLY = 0
ICMPV4_DEST_UNREACHABLE = 3
ICMPV4_SOURCE_QUENCH = 4
ICMPV4_REDIRECT = 5
ICMPV4_ECHO_REQUEST = 8
ICMPV4_TIME_EXCEEDED = 11
ICMPV4_PARAMETER_PROBLEM = 12
ICMPV4_ERROR_TYPES = frozenset(
    {
        ICMPV4_DEST_UNREACHABLE,
        ICMPV4_SOURCE_QUENCH,
        ICMPV4_REDIRECT,
        ICMPV4_TIME_EXCEEDED,
        ICMPV4_PARAMETER_PROBLEM,
    }
)

ICMPV6_DEST_UNREACHABLE = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_PARAMETER_PROBLEM = 4
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
ICMPV6_ERROR_TYPES = frozenset(
    {
        ICMPV6_DEST_UNREACHABLE,
        ICMPV6_PACKET_TOO_BIG,
        ICMPV6_TIME_EXCEEDED,
        ICMPV6_PARAMETER_PROBLEM,
    }
)

IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58

_ICMP_HEADER = struct.Struct("!BBHHH")
_CHECKSUM = struct.Struct("!H")
_AF_INET = socket.AF_INET
_inet_ntop = socket.inet_ntop
_STAMP = struct.Struct("!Q")
_FILL = (bytes(range(256)) * (MAX_SIZE_V6 // 256 + 1))[:MAX_SIZE_V6]


def validate_size(size: int, family: Family | None = None) -> int:
    """Return *size* if an echo with that many data bytes can be sent, else raise.

    Without a family the IPv6 limit applies (the larger); the pinger checks again once the
    destination's family is known.
    """
    if isinstance(size, bool) or not isinstance(size, int):
        raise InvalidArgumentError(f"size must be an integer, not {size!r}")
    limit = (family or Family.V6).max_size
    if not 0 <= size <= limit:
        raise InvalidArgumentError(f"invalid packet size {size}: must be 0 to {limit}")
    return size


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum of 16-bit words, complemented.

    Verifying a message that carries its checksum yields 0, which is how replies are checked.
    """
    # The data as one big-endian integer is the sum of its 16-bit words times powers of
    # 2**16, and 2**16 = 1 (mod 0xFFFF): so the folded one's-complement sum is that integer
    # mod 0xFFFF -- except that a non-zero sum folds to 0xFFFF, never to 0.  One C-level
    # conversion and division instead of a Python loop over words (10x faster at 64 bytes).
    if len(data) % 2:
        data += b"\x00"
    whole = int.from_bytes(data, "big")
    folded = whole % 0xFFFF or (0xFFFF if whole else 0)
    return ~folded & 0xFFFF


def make_payload(size: int, stamp_ns: int, token: bytes) -> bytes:
    """Build the echo data: stamp, token and fill, cut to *size* bytes (see module doc)."""
    if len(token) != TOKEN_SIZE:
        raise InvalidArgumentError(f"token must be {TOKEN_SIZE} bytes")
    prefix = _STAMP.pack(stamp_ns & 0xFFFF_FFFF_FFFF_FFFF) + token
    if size <= PAYLOAD_PREFIX_SIZE:
        return prefix[:size]
    return prefix + _FILL[PAYLOAD_PREFIX_SIZE:size]


def payload_stamp(payload: bytes) -> int | None:
    """The send stamp carried by *payload*, or None when the payload is too short for one."""
    if len(payload) < STAMP_SIZE:
        return None
    stamp: int = _STAMP.unpack_from(payload)[0]
    return stamp


class InvalidReason(enum.Enum):
    """Why a reply that matched one of our probes was rejected.  Values are stable strings."""

    BAD_CHECKSUM = "bad-checksum"
    TRUNCATED = "truncated"
    WRONG_TOKEN = "wrong-token"
    CORRUPTED = "corrupted-payload"


def check_payload(received: bytes, sent: bytes) -> InvalidReason | None:
    """Compare a reply's payload with the probe's; None means they are identical.

    A shorter payload is *truncated* (a middlebox or a short read cut it); a difference in
    the token bytes is a *wrong token* (a spoof, or another pinger's reply that happens to
    share identifier and sequence); anything else is *corruption*.
    """
    if received == sent:
        return None
    if len(received) < len(sent):
        return InvalidReason.TRUNCATED
    if received[STAMP_SIZE:PAYLOAD_PREFIX_SIZE] != sent[STAMP_SIZE:PAYLOAD_PREFIX_SIZE]:
        return InvalidReason.WRONG_TOKEN
    return InvalidReason.CORRUPTED


def is_foreign(received: bytes, sent: bytes) -> bool:
    """True when *received* carries another sender's stamp **and** token.

    That is another pinger's reply which happens to share our identifier and sequence
    (1 in 65,536 for two raw-socket pingers): it is ignored, not reported.  A reply with our
    stamp but a wrong token was made from our request -- a spoof -- and is reported invalid.
    """
    if len(received) < PAYLOAD_PREFIX_SIZE or len(sent) < PAYLOAD_PREFIX_SIZE:
        return False
    return received[:STAMP_SIZE] != sent[:STAMP_SIZE] and (
        received[STAMP_SIZE:PAYLOAD_PREFIX_SIZE] != sent[STAMP_SIZE:PAYLOAD_PREFIX_SIZE]
    )


def encode_echo_request(family: Family, identifier: int, sequence: int, payload: bytes) -> bytes:
    """An ICMP (v4) or ICMPv6 echo request message, without IP header.

    IPv4: the checksum is computed here.  IPv6: it is left zero, because the kernel must
    compute it over a pseudo-header holding the source address, which only it knows.
    """
    if not 0 <= identifier <= 0xFFFF or not 0 <= sequence <= 0xFFFF:
        raise InvalidArgumentError("identifier and sequence are 16-bit unsigned integers")
    if family is Family.V6:
        return _ICMP_HEADER.pack(ICMPV6_ECHO_REQUEST, 0, 0, identifier, sequence) + payload
    message = _ICMP_HEADER.pack(ICMPV4_ECHO_REQUEST, 0, 0, identifier, sequence) + payload
    return message[:2] + _CHECKSUM.pack(internet_checksum(message)) + message[4:]


_HEADER_AND_STAMP = struct.Struct("!BBHHHQ")
_REPLY_TYPE_DELTA = ICMPV4_ECHO_REQUEST << 8
"""Request and reply differ in the type word only (8 vs 0), so a correct reply's checksum
is the request's plus this, in one's-complement arithmetic (RFC 1624)."""


class EchoTemplate:
    """Echo requests of one family, identifier, token and size, built fast.

    Between two probes only the sequence and the stamp change, so the one's-complement sum
    of everything else (type, identifier, token, fill) is computed once; each request is
    then one ``struct`` call and a concatenation.  :meth:`build` returns exactly what
    ``encode_echo_request(family, identifier, sequence, make_payload(size, stamp, token))``
    does, with that payload and the checksum its reply must carry.
    """

    __slots__ = ("_base", "_family", "_identifier", "_size", "_tail", "_token", "_type")

    def __init__(self, family: Family, identifier: int, token: bytes, size: int) -> None:
        if not 0 <= identifier <= 0xFFFF:
            raise InvalidArgumentError("identifier and sequence are 16-bit unsigned integers")
        self._family = family
        self._identifier = identifier
        self._token = token
        self._size = size
        self._type = ICMPV6_ECHO_REQUEST if family is Family.V6 else ICMPV4_ECHO_REQUEST
        full = make_payload(size, 0, token)  # also checks the token
        self._tail: bytes | None = full[STAMP_SIZE:] if size >= PAYLOAD_PREFIX_SIZE else None
        tail = self._tail or b""
        padded = tail + b"\x00" if len(tail) % 2 else tail
        self._base = (self._type << 8) + identifier + int.from_bytes(padded, "big") % 0xFFFF

    def build(self, sequence: int, stamp_ns: int) -> tuple[bytes, bytes, int]:
        """(request, payload, reply checksum) for this *sequence* and send *stamp_ns*.

        The reply checksum is what a correct echo reply to this request carries, modulo
        0xFFFF (see :func:`peek_ipv4_echo_reply`); 0 for ICMPv6, whose checksums the
        kernel computes and verifies.
        """
        tail = self._tail
        if tail is None or not 0 <= sequence <= 0xFFFF:
            payload = make_payload(self._size, stamp_ns, self._token)
            request = encode_echo_request(self._family, self._identifier, sequence, payload)
            return request, payload, _reply_checksum(self._family, request)
        stamp = stamp_ns & 0xFFFF_FFFF_FFFF_FFFF
        if self._type == ICMPV6_ECHO_REQUEST:
            checksum = reply_checksum = 0  # the kernel's job (see encode_echo_request)
        else:
            # The stamp's four 16-bit words sum to the stamp itself, mod 0xFFFF (2**16 = 1).
            folded = (self._base + sequence + stamp) % 0xFFFF
            checksum = ~(folded or 0xFFFF) & 0xFFFF  # a non-zero sum folds to 0xFFFF, never 0
            reply_checksum = (checksum + _REPLY_TYPE_DELTA) % 0xFFFF
        request = _HEADER_AND_STAMP.pack(self._type, 0, checksum, self._identifier, sequence, stamp) + tail
        return request, request[ICMP_HEADER_SIZE:], reply_checksum


def _reply_checksum(family: Family, request: bytes) -> int:
    if family is Family.V6:
        return 0
    request_checksum: int = _CHECKSUM.unpack_from(request, 2)[0]
    return (request_checksum + _REPLY_TYPE_DELTA) % 0xFFFF


class EchoMessage(NamedTuple):
    """A decoded echo request or reply (a named tuple, like ErrorMessage: a frozen dataclass
    costs every start-up ~1 ms to build, a named tuple a fifth of it).

    ``ttl`` is the IPv4 header's TTL when the datagram carried its IP header, else None (the
    socket layer then takes it from ancillary data).  ``checksum_ok`` is None where the
    kernel already verified it (ICMPv6) and so it cannot be wrong here.
    """

    icmp_type: int
    identifier: int
    sequence: int
    payload: bytes
    icmp_size: int
    checksum_ok: bool | None
    source: str | None = None
    ttl: int | None = None

    @property
    def is_reply(self) -> bool:
        return self.icmp_type in (ICMPV4_ECHO_REPLY, ICMPV6_ECHO_REPLY)


class ErrorMessage(NamedTuple):
    """A decoded ICMP error that quotes one of our echo requests.

    ``target`` is the destination of the quoted (original) request, so together with the
    quoted identifier and sequence the error can be matched to the probe that caused it.
    ``source`` is the router or host that sent the error, when the IP header was present.
    ``info`` is the type-specific word: next-hop MTU (v4 fragmentation needed, v6 packet
    too big) or parameter-problem pointer.
    """

    family: Family
    icmp_type: int
    code: int
    info: int
    target: str
    identifier: int
    sequence: int
    source: str | None = None
    quoted_data: bytes = b""
    """The quoted request's echo data, as far as the error quotes it (RFC 792 asks for 8
    bytes of it only, Linux quotes up to 576 bytes in all): matched against the probe's."""


Decoded = EchoMessage | ErrorMessage | None

# version/IHL, TTL, protocol; then the ICMP type and code, checksum, identifier, sequence.
_IPV4_ECHO = struct.Struct("!B7xBB10xHHHH")


def peek_ipv4_echo_reply(datagram: bytes) -> tuple[int, int, int, int] | None:
    """``(identifier, sequence, ttl, checksum % 0xFFFF)`` of what has the shape of an echo
    reply (type 0, code 0) behind a plain 20-byte IPv4 header; None otherwise.

    The checksum is *not* verified here, because a receiver that knows the request can do
    it for free (:func:`is_reply_to`).  Nothing is built but a tuple of integers, so a
    receiver can match a reply to its probe before paying for objects; the source address
    is left out because ``recvmsg`` gives it as text already (formatting it again costs
    more than the rest of this function).
    """
    if len(datagram) < IPV4_HEADER_SIZE + ICMP_HEADER_SIZE or datagram[0] != 0x45:
        return None
    _version_ihl, ttl, protocol, type_and_code, checksum, identifier, sequence = _IPV4_ECHO.unpack_from(datagram)
    if protocol != IPPROTO_ICMP or type_and_code != 0:  # echo reply, code 0
        return None
    return identifier, sequence, ttl, checksum % 0xFFFF


def is_reply_to(datagram: bytes, checksum: int, payload: bytes, reply_checksum: int) -> bool:
    """Whether *datagram* -- accepted by :func:`peek_ipv4_echo_reply` (*checksum* as it
    peeked) and already matched to a request by identifier and sequence -- is a correct
    reply to that request, whose payload and reply checksum (:meth:`EchoTemplate.build`)
    are given.  When this says yes, :func:`decode_ipv4` decodes a valid echo reply with the
    same fields and payload; anything else is left to it.

    Request and reply then differ in the type word only, so the reply is correct exactly
    when its checksum is the request's plus 0x0800 in one's-complement arithmetic
    (RFC 1624): two numbers compared instead of a sum over the packet.  The one exception
    is a message that is all zeros (RFC 1071: a sum of zero is written 0xFFFF, never 0),
    possible only when the reply checksum is 0 mod 0xFFFF: those few requests (1 in
    65,535) are left to the decoder.
    """
    return (
        checksum == reply_checksum != 0
        and len(datagram) == IPV4_HEADER_SIZE + ICMP_HEADER_SIZE + len(payload)
        and datagram.endswith(payload)
    )


def decode_ipv4(datagram: bytes) -> Decoded:
    """Decode what an IPv4 raw ICMP socket delivers: IP header, then ICMP.

    Returns None for well-formed ICMP we do not care about (other types, or errors that
    quote something other than an ICMP echo request); raises :class:`PacketError` for
    bytes that are not a well-formed IPv4 ICMP datagram.
    """
    if len(datagram) < IPV4_HEADER_SIZE:
        raise PacketError(f"IPv4 datagram of {len(datagram)} bytes is shorter than a header")
    version_ihl = datagram[0]
    if version_ihl >> 4 != 4:
        raise PacketError(f"IP version {version_ihl >> 4} is not 4")
    header_size = (version_ihl & 0x0F) * 4
    if header_size < IPV4_HEADER_SIZE or len(datagram) < header_size:
        raise PacketError(f"bad IPv4 header length {header_size}")
    if datagram[9] != IPPROTO_ICMP:
        raise PacketError(f"IP protocol {datagram[9]} is not ICMP")
    source = _inet_ntop(_AF_INET, datagram[12:16])
    return decode_icmpv4(datagram[header_size:], source=source, ttl=datagram[8])


def decode_icmpv4(message: bytes, *, source: str | None = None, ttl: int | None = None) -> Decoded:
    """Decode an ICMPv4 message without its IP header (as datagram sockets deliver it)."""
    if len(message) < ICMP_HEADER_SIZE:
        raise PacketError(f"ICMP message of {len(message)} bytes is shorter than a header")
    icmp_type, code, _checksum, identifier, sequence = _ICMP_HEADER.unpack_from(message)
    if icmp_type in (ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST):
        # Positional: a named tuple built from keywords costs more.
        return EchoMessage(
            icmp_type,
            identifier,
            sequence,
            message[ICMP_HEADER_SIZE:],
            len(message),
            internet_checksum(message) == 0,
            source,
            ttl,
        )
    if icmp_type not in ICMPV4_ERROR_TYPES:
        return None
    if icmp_type == ICMPV4_PARAMETER_PROBLEM:
        info = message[4]
    elif icmp_type == ICMPV4_DEST_UNREACHABLE:
        info = int.from_bytes(message[6:8], "big")
    else:
        info = 0
    quoted = _decode_quoted_v4(message[ICMP_HEADER_SIZE:])
    if quoted is None:
        return None
    target, quoted_identifier, quoted_sequence, quoted_data = quoted
    return ErrorMessage(
        family=Family.V4,
        icmp_type=icmp_type,
        code=code,
        info=info,
        target=target,
        identifier=quoted_identifier,
        sequence=quoted_sequence,
        source=source,
        quoted_data=quoted_data,
    )


def _decode_quoted_v4(quote: bytes) -> tuple[str, int, int, bytes] | None:
    if len(quote) < IPV4_HEADER_SIZE:
        raise PacketError("ICMP error quotes less than an IPv4 header")
    if quote[0] >> 4 != 4:
        raise PacketError("ICMP error quotes a non-IPv4 header")
    header_size = (quote[0] & 0x0F) * 4
    if header_size < IPV4_HEADER_SIZE or len(quote) < header_size + ICMP_HEADER_SIZE:
        raise PacketError("ICMP error quotes a truncated datagram")
    if quote[9] != IPPROTO_ICMP:
        return None
    icmp_type, _code, _checksum, identifier, sequence = _ICMP_HEADER.unpack_from(quote, header_size)
    if icmp_type != ICMPV4_ECHO_REQUEST:
        return None
    data = quote[header_size + ICMP_HEADER_SIZE :]
    return socket.inet_ntop(socket.AF_INET, quote[16:20]), identifier, sequence, data


_IPV6_HEADER_SIZE = 40


def decode_icmpv6(message: bytes, *, source: str | None = None, hop_limit: int | None = None) -> Decoded:
    """Decode an ICMPv6 message (raw and datagram ICMPv6 sockets deliver no IP header).

    The kernel verifies ICMPv6 checksums before delivery, so ``checksum_ok`` is None.
    """
    if len(message) < ICMP_HEADER_SIZE:
        raise PacketError(f"ICMPv6 message of {len(message)} bytes is shorter than a header")
    icmp_type, code, _checksum, identifier, sequence = _ICMP_HEADER.unpack_from(message)
    if icmp_type in (ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST):
        return EchoMessage(
            icmp_type=icmp_type,
            identifier=identifier,
            sequence=sequence,
            payload=message[ICMP_HEADER_SIZE:],
            icmp_size=len(message),
            checksum_ok=None,
            source=source,
            ttl=hop_limit,
        )
    if icmp_type not in ICMPV6_ERROR_TYPES:
        return None
    info = int.from_bytes(message[4:8], "big")
    quote = message[ICMP_HEADER_SIZE:]
    if len(quote) < _IPV6_HEADER_SIZE + ICMP_HEADER_SIZE:
        raise PacketError("ICMPv6 error quotes a truncated datagram")
    if quote[0] >> 4 != 6:
        raise PacketError("ICMPv6 error quotes a non-IPv6 header")
    if quote[6] != IPPROTO_ICMPV6:
        return None
    quoted_type, _code, _checksum, quoted_identifier, quoted_sequence = _ICMP_HEADER.unpack_from(
        quote, _IPV6_HEADER_SIZE
    )
    if quoted_type != ICMPV6_ECHO_REQUEST:
        return None
    return ErrorMessage(
        family=Family.V6,
        icmp_type=icmp_type,
        code=code,
        info=info,
        target=socket.inet_ntop(socket.AF_INET6, quote[24:40]),
        identifier=quoted_identifier,
        sequence=quoted_sequence,
        source=source,
        quoted_data=quote[_IPV6_HEADER_SIZE + ICMP_HEADER_SIZE :],
    )


def decode_error_payload(family: Family, message: bytes) -> tuple[int, int] | None:
    """Identifier and sequence of the echo request an error-queue entry carries.

    Datagram sockets report ICMP errors on the error queue with the offending *ICMP message*
    as data (no IP header); this reads ours back from it.
    """
    if len(message) < ICMP_HEADER_SIZE:
        raise PacketError("error-queue entry shorter than an ICMP header")
    icmp_type, _code, _checksum, identifier, sequence = _ICMP_HEADER.unpack_from(message)
    if icmp_type != family.echo_request_type:
        return None
    return identifier, sequence


def quotes_another_request(quoted_data: bytes, payload: bytes) -> bool:
    """Whether an ICMP error's quoted echo data shows it was caused by another sender's
    request: its stamp and token differ from the probe's, as far as they are quoted.

    The identifier and sequence quoted are 16-bit numbers that another pinger (a raw socket
    sees every ICMP error on the host) can share; the token cannot be guessed.  An error
    that quotes no data (RFC 792 routers quote 8 bytes only) is judged on those numbers.
    """
    quoted = min(len(quoted_data), len(payload), PAYLOAD_PREFIX_SIZE)
    return quoted_data[:quoted] != payload[:quoted]
