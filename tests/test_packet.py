"""The sans-I/O codec, on bytes alone: round trips, checksum laws, and a decoder fuzz."""

from __future__ import annotations

import contextlib
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trioping import InvalidArgumentError, PacketError
from trioping._packet import (
    MAX_SIZE_V4,
    MAX_SIZE_V6,
    EchoMessage,
    ErrorMessage,
    Family,
    InvalidReason,
    check_payload,
    decode_error_payload,
    decode_icmpv4,
    decode_icmpv6,
    decode_ipv4,
    encode_echo_request,
    internet_checksum,
    is_foreign,
    make_payload,
    payload_stamp,
    validate_size,
)

sequences = st.integers(0, 0xFFFF)
tokens = st.binary(min_size=8, max_size=8)
stamps = st.integers(0, 2**64 - 1)
sizes = st.integers(0, 2000)


def ipv4_header(payload_len: int, source: str = "127.0.0.2", dest: str = "127.0.0.1", ttl: int = 64) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + payload_len,
        0,
        0,
        ttl,
        1,
        0,
        socket.inet_aton(source),
        socket.inet_aton(dest),
    )


def as_reply_v4(request: bytes) -> bytes:
    """What a host sends back: type 0, same body, checksum recomputed."""
    body = b"\x00\x00\x00\x00" + request[4:]
    checksum = internet_checksum(body)
    return body[:2] + struct.pack("!H", checksum) + body[4:]


@given(st.binary(max_size=3000))
def test_checksum_of_message_with_its_checksum_is_zero(data: bytes) -> None:
    padded = data + b"\x00" * (len(data) % 2)
    checksum = internet_checksum(padded)
    with_checksum = padded + struct.pack("!H", checksum)
    assert internet_checksum(with_checksum) == 0


@given(st.binary(max_size=500), st.binary(max_size=500))
def test_checksum_is_order_independent_over_words(a: bytes, b: bytes) -> None:
    a += b"\x00" * (len(a) % 2)
    b += b"\x00" * (len(b) % 2)
    assert internet_checksum(a + b) == internet_checksum(b + a)


def test_checksum_known_value() -> None:
    # RFC 1071 section 3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2, checksum 220d.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(sequences, sequences, stamps, tokens, sizes)
def test_v4_request_round_trip_through_a_reply(
    identifier: int, sequence: int, stamp: int, token: bytes, size: int
) -> None:
    payload = make_payload(size, stamp, token)
    request = encode_echo_request(Family.V4, identifier, sequence, payload)
    assert internet_checksum(request) == 0
    reply = as_reply_v4(request)
    decoded = decode_ipv4(ipv4_header(len(reply), ttl=57) + reply)
    assert isinstance(decoded, EchoMessage)
    assert decoded.is_reply
    assert (decoded.identifier, decoded.sequence, decoded.payload) == (identifier, sequence, payload)
    assert decoded.checksum_ok is True
    assert decoded.ttl == 57
    assert decoded.source == "127.0.0.2"
    assert decoded.icmp_size == 8 + size
    assert check_payload(decoded.payload, payload) is None


@given(sequences, sequences, stamps, tokens, sizes)
def test_v6_request_round_trip(identifier: int, sequence: int, stamp: int, token: bytes, size: int) -> None:
    payload = make_payload(size, stamp, token)
    request = encode_echo_request(Family.V6, identifier, sequence, payload)
    reply = bytes([129]) + request[1:]
    decoded = decode_icmpv6(reply, source="::1", hop_limit=3)
    assert isinstance(decoded, EchoMessage)
    assert decoded.is_reply
    assert (decoded.identifier, decoded.sequence, decoded.payload, decoded.ttl) == (identifier, sequence, payload, 3)
    assert decoded.checksum_ok is None


@given(stamps, tokens, sizes)
def test_payload_layout(stamp: int, token: bytes, size: int) -> None:
    payload = make_payload(size, stamp, token)
    assert len(payload) == size
    if size >= 8:
        assert payload_stamp(payload) == stamp
    else:
        assert payload_stamp(payload) is None
    if size >= 16:
        assert payload[8:16] == token
    for offset in range(16, size):
        assert payload[offset] == offset & 0xFF


@given(stamps, tokens, st.integers(17, 600), st.data())
def test_any_altered_byte_is_detected(stamp: int, token: bytes, size: int, data: st.DataObject) -> None:
    sent = make_payload(size, stamp, token)
    position = data.draw(st.integers(0, size - 1))
    flip = data.draw(st.integers(1, 255))
    altered = bytearray(sent)
    altered[position] ^= flip
    reason = check_payload(bytes(altered), sent)
    if 8 <= position < 16:
        assert reason is InvalidReason.WRONG_TOKEN
    else:
        assert reason is InvalidReason.CORRUPTED
    assert check_payload(sent[: data.draw(st.integers(0, size - 1))], sent) is InvalidReason.TRUNCATED


@given(st.binary(max_size=4), st.integers(0, 255), st.data())
def test_bad_checksum_is_reported(junk: bytes, flip_position: int, data: st.DataObject) -> None:
    payload = make_payload(56, 1, b"12345678")
    reply = bytearray(as_reply_v4(encode_echo_request(Family.V4, 7, 9, payload)))
    position = flip_position % len(reply)
    reply[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = decode_icmpv4(bytes(reply))
    except PacketError:  # the flip made it an ICMP error whose quote does not parse: refused
        return
    if isinstance(decoded, EchoMessage) and decoded.is_reply:
        assert decoded.checksum_ok is False


def quoted_error_v4(icmp_type: int, code: int, info: int, identifier: int, sequence: int, target: str) -> bytes:
    original = encode_echo_request(Family.V4, identifier, sequence, make_payload(56, 5, b"abcdefgh"))
    quote = ipv4_header(len(original), source="198.18.1.1", dest=target) + original
    word = info.to_bytes(4, "big")
    body = bytes([icmp_type, code, 0, 0]) + word + quote
    checksum = internet_checksum(body)
    return body[:2] + struct.pack("!H", checksum) + body[4:]


@pytest.mark.parametrize(("icmp_type", "code"), [(3, 1), (11, 0), (3, 4), (12, 0)])
def test_v4_error_quotes_are_matched(icmp_type: int, code: int) -> None:
    message = quoted_error_v4(icmp_type, code, 1400, 0xBEEF, 3, "198.18.2.2")
    decoded = decode_ipv4(ipv4_header(len(message), source="198.18.1.2") + message)
    assert isinstance(decoded, ErrorMessage)
    assert (decoded.target, decoded.identifier, decoded.sequence) == ("198.18.2.2", 0xBEEF, 3)
    assert (decoded.icmp_type, decoded.code, decoded.source) == (icmp_type, code, "198.18.1.2")
    if icmp_type == 3 and code == 4:
        assert decoded.info == 1400


def test_v6_error_quotes_are_matched() -> None:
    original = encode_echo_request(Family.V6, 0x1234, 77, make_payload(56, 5, b"abcdefgh"))
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(original),
        58,
        64,
        socket.inet_pton(socket.AF_INET6, "2001:db8:1::1"),
        socket.inet_pton(socket.AF_INET6, "2001:db8:2::2"),
    )
    message = bytes([2, 0, 0, 0]) + (1280).to_bytes(4, "big") + header + original
    decoded = decode_icmpv6(message, source="2001:db8:1::2")
    assert isinstance(decoded, ErrorMessage)
    assert (decoded.target, decoded.identifier, decoded.sequence, decoded.info) == ("2001:db8:2::2", 0x1234, 77, 1280)


def test_error_queue_payload_gives_identifier_and_sequence() -> None:
    request = encode_echo_request(Family.V4, 4242, 17, b"")
    assert decode_error_payload(Family.V4, request) == (4242, 17)
    assert decode_error_payload(Family.V6, request) is None


def test_echo_requests_and_unrelated_types_are_not_replies() -> None:
    request = encode_echo_request(Family.V4, 1, 2, b"xy")
    decoded = decode_icmpv4(request)
    assert isinstance(decoded, EchoMessage)
    assert not decoded.is_reply
    assert decode_icmpv4(bytes([13, 0, 0, 0, 0, 0, 0, 0])) is None  # timestamp request


@settings(max_examples=3000)
@given(st.binary(max_size=200))
def test_decoders_raise_only_packet_error_on_arbitrary_bytes(data: bytes) -> None:
    for decode in (
        decode_ipv4,
        decode_icmpv4,
        decode_icmpv6,
        lambda b: decode_error_payload(Family.V4, b),
        lambda b: decode_error_payload(Family.V6, b),
    ):
        with contextlib.suppress(PacketError):
            decode(data)


@settings(max_examples=2000)
@given(st.sampled_from([3, 11, 12, 1, 2, 4]), st.integers(0, 255), st.binary(max_size=120))
def test_decoders_survive_errors_with_garbage_quotes(icmp_type: int, code: int, quote: bytes) -> None:
    message = bytes([icmp_type, code, 0, 0, 0, 0, 0, 0]) + quote
    for decode in (decode_icmpv4, decode_icmpv6):
        with contextlib.suppress(PacketError):
            decode(message)


def test_sizes_are_validated_per_family() -> None:
    assert validate_size(0) == 0
    assert validate_size(MAX_SIZE_V4, Family.V4) == 65507
    assert validate_size(MAX_SIZE_V6, Family.V6) == 65527
    for bad, family in ((-1, None), (MAX_SIZE_V4 + 1, Family.V4), (MAX_SIZE_V6 + 1, Family.V6)):
        with pytest.raises(InvalidArgumentError):
            validate_size(bad, family)
    with pytest.raises(InvalidArgumentError):
        validate_size(True)


def test_identifier_and_sequence_are_16_bit() -> None:
    with pytest.raises(InvalidArgumentError):
        encode_echo_request(Family.V4, 0x10000, 0, b"")
    with pytest.raises(InvalidArgumentError):
        encode_echo_request(Family.V4, 0, -1, b"")


@given(stamps, stamps, tokens, tokens, st.integers(16, 200))
def test_foreign_replies_differ_in_stamp_and_token(
    our_stamp: int, their_stamp: int, our_token: bytes, their_token: bytes, size: int
) -> None:
    ours = make_payload(size, our_stamp, our_token)
    theirs = make_payload(size, their_stamp, their_token)
    assert is_foreign(theirs, ours) == (our_stamp != their_stamp and our_token != their_token)
    spoof = ours[:8] + their_token + ours[16:]
    assert not is_foreign(spoof, ours)
    assert not is_foreign(ours[:10], ours)
