"""novasonic.wire.frames: push decoder, CRC/limit/header failures (protocol.md 4.2)."""

from __future__ import annotations

import binascii
import struct
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smithy_aws_event_stream.events import (
    MAX_PAYLOAD_LENGTH,
    Byte,
    EventHeaderDecoder,
    EventMessage,
    Long,
    Short,
    _EventEncoder,  # test-only: frames with arbitrary header bytes but valid CRCs
)

from novasonic.errors import FrameError
from novasonic.wire import FrameDecoder, decode_message, encode_message

ALL_TYPES = {
    "t": True,
    "f": False,
    "b": Byte(-7),
    "s": Short(1234),
    "i": 70000,
    "l": Long(2**40),
    "blob": b"\x00\x01\xff",
    "str": "héllo",
    "ts": datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def frame(headers: dict | None = None, payload: bytes = b"payload") -> bytes:
    return encode_message(headers if headers is not None else {":message-type": "event"}, payload)


def raw_frame(header_bytes: bytes, payload: bytes = b"") -> bytes:
    """A frame whose header block is arbitrary bytes, with correct CRCs."""
    return _EventEncoder().encode_bytes(headers=header_bytes, payload=payload)


def prelude(total_length: int, headers_length: int) -> bytes:
    """A 12-byte prelude with a valid CRC (test-only arithmetic)."""
    head = struct.pack("!II", total_length, headers_length)
    return head + struct.pack("!I", binascii.crc32(head))


def flip(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def expect_error(data: bytes, kind: str) -> FrameError:
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as info:
        decoder.feed(data)
        decoder.eof()
    assert info.value.kind == kind, str(info.value)
    return info.value


# --- round trips -----------------------------------------------------------------------


def test_all_header_types_round_trip() -> None:
    data = frame(ALL_TYPES, b"\x00body")
    message = decode_message(data)
    assert message.headers == ALL_TYPES
    assert message.payload == b"\x00body"
    assert message == EventMessage(headers=ALL_TYPES, payload=b"\x00body")


def test_header_order_is_kept() -> None:
    headers = {"z": "1", "a": "2", "m": "3"}
    data = frame(headers)
    header_block = data[12 : 12 + struct.unpack("!I", data[4:8])[0]]
    assert [name for name, _ in EventHeaderDecoder(header_block)] == ["z", "a", "m"]


def test_empty_frame() -> None:
    data = frame({}, b"")
    assert len(data) == 16
    assert FrameDecoder().feed(data) == [EventMessage()]


def test_several_frames_in_one_feed_and_byte_by_byte() -> None:
    frames = [frame({"n": i}, bytes([i]) * i) for i in range(5)]
    stream = b"".join(frames)
    assert [m.headers["n"] for m in FrameDecoder().feed(stream)] == list(range(5))

    decoder = FrameDecoder()
    got = []
    for i in range(len(stream)):
        got += decoder.feed(stream[i : i + 1])
    decoder.eof()
    assert [m.payload for m in got] == [bytes([i]) * i for i in range(5)]
    assert decoder.frames_decoded == 5 and decoder.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_random_split_points_never_lose_bytes(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame({"i": n}, p) for n, p in enumerate(payloads))
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    got = []
    for start, end in zip(points, points[1:]):
        got += decoder.feed(stream[start:end])
    decoder.eof()
    assert [m.payload for m in got] == payloads
    assert [m.headers["i"] for m in got] == list(range(len(payloads)))


# --- corruption -------------------------------------------------------------------------


def test_prelude_crc_flip_is_reported_before_the_body_arrives() -> None:
    data = flip(frame(), 9)  # inside the prelude CRC
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as info:
        decoder.feed(data[:12])
    err = info.value
    assert err.kind == "prelude-crc"
    assert "prelude CRC" in str(err) and str(err).count("0x") == 2


def test_length_flip_is_a_prelude_crc_error_not_a_hang() -> None:
    expect_error(flip(frame(), 2), "prelude-crc")  # total_length byte


def test_header_bit_flip_is_a_message_crc_error() -> None:
    err = expect_error(flip(frame(), 14), "message-crc")
    assert "message CRC" in str(err) and str(err).count("0x") == 2


def test_payload_bit_flip_is_a_message_crc_error() -> None:
    data = frame()
    expect_error(flip(data, len(data) - 6, 3), "message-crc")


def test_message_crc_flip() -> None:
    data = frame()
    expect_error(flip(data, len(data) - 1), "message-crc")


def test_truncated_prelude_then_eof() -> None:
    err = expect_error(frame()[:7], "truncated")
    assert "7 of the 12 prelude bytes" in str(err)


def test_truncated_body_then_eof() -> None:
    data = frame()
    decoder = FrameDecoder()
    assert decoder.feed(data[:-3]) == []
    with pytest.raises(FrameError) as info:
        decoder.eof()
    assert info.value.kind == "truncated"
    assert f"{len(data) - 3} of {len(data)} bytes" in str(info.value)


def test_oversize_is_refused_from_the_prelude() -> None:
    total = 16 + MAX_PAYLOAD_LENGTH + 1
    too_big = prelude(total, 0)
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as info:
        decoder.feed(too_big)  # only 12 bytes: nothing else needs to arrive
    assert info.value.kind == "oversize"
    assert str(total) in str(info.value)


def test_headers_length_larger_than_frame() -> None:
    expect_error(prelude(20, 10) + b"\x00" * 8, "headers")


def test_total_length_below_minimum() -> None:
    expect_error(prelude(8, 0), "headers")


def test_garbage_bytes() -> None:
    expect_error(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "prelude-crc")


@pytest.mark.parametrize(
    ("header_bytes", "why"),
    [
        (b"\x01a\x2a", "unknown type code"),
        (b"\x01a\x07\x00\x01x" * 2, "duplicate header"),
        (b"\x01a\x07\x00\x09abc", "string value runs past the block"),
    (b"\x01a\x06\x00\x09abc", "byte array runs past the block"),
        (b"\x09abc", "name runs past the block"),
        (b"\x01a\x04\x00\x01", "int32 cut short"),
        (b"\x01a\x07\x00\x02\xff\xfe", "bad utf-8"),
        (b"\x01a\x09" + b"\x00" * 5, "uuid cut short"),
        (b"\x01a\x08" + struct.pack("!q", 2**62), "timestamp out of range"),
        (b"\x02\xff\xfe\x00", "bad utf-8 name"),
    ],
)
def test_malformed_headers_with_valid_crcs(header_bytes: bytes, why: str) -> None:
    expect_error(raw_frame(header_bytes, b"p"), "headers")


def test_decoder_stays_errored() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError) as first:
        decoder.feed(flip(frame(), 9))
    for call in (lambda: decoder.feed(frame()), decoder.eof, decoder.next_message):
        with pytest.raises(FrameError) as again:
            call()
        assert again.value is first.value
    assert decoder.error is first.value


def test_iteration_yields_good_frames_before_the_bad_one() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(frame({"n": 1}) + frame({"n": 2}) + flip(frame(), 9))
    it = iter(decoder)
    assert next(it).headers == {"n": 1}
    assert next(it).headers == {"n": 2}
    with pytest.raises(FrameError):
        next(it)


def test_decode_message_requires_exactly_one_frame() -> None:
    data = frame()
    with pytest.raises(FrameError) as info:
        decode_message(data + b"x")
    assert info.value.kind == "oversize"
    with pytest.raises(FrameError) as info:
        decode_message(data[:-1])
    assert info.value.kind == "truncated"
    with pytest.raises(FrameError) as info:
        decode_message(data[:5])
    assert info.value.kind == "truncated"


def test_encode_message_limits() -> None:
    with pytest.raises(FrameError) as info:
        encode_message({}, b"x" * (MAX_PAYLOAD_LENGTH + 1))
    assert info.value.kind == "oversize"
    with pytest.raises(FrameError) as info:
        encode_message({"bad": 1.5})  # type: ignore[dict-item]
    assert info.value.kind == "headers"


# --- fuzz -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=1, max_value=50))
def test_random_bytes_only_raise_frame_error(data: bytes, step: int) -> None:
    decoder = FrameDecoder()
    try:
        for i in range(0, len(data), step):
            decoder.feed(data[i : i + step])
        decoder.eof()
    except FrameError as exc:
        assert exc.kind in {"prelude-crc", "message-crc", "truncated", "oversize", "headers"}


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80), st.binary(max_size=20))
def test_random_header_blocks_with_valid_crcs_only_raise_frame_error(
    header_bytes: bytes, payload: bytes
) -> None:
    try:
        message = decode_message(raw_frame(header_bytes, payload))
    except FrameError as exc:
        assert exc.kind == "headers"
    else:
        assert message.payload == payload
