"""novasonic.wire.envelope: chunk, exception and error envelopes (protocol.md 4.3, 4.5)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smithy_aws_event_stream.events import EventHeaderDecoder, EventMessage

from novasonic.errors import EnvelopeError
from novasonic.wire import (
    CHUNK_HEADERS,
    STREAM_EXCEPTIONS,
    ChunkFrame,
    ErrorFrame,
    ExceptionFrame,
    FrameDecoder,
    UnknownEventFrame,
    chunk_message,
    decode_chunk,
    decode_message,
    decode_output,
    encode_chunk,
    encode_error,
    encode_exception,
)

EVENT = b'{"event":{"textInput":{"promptName":"p","contentName":"c","content":"hi"}}}'


def header_names_in_wire_order(data: bytes) -> list[str]:
    headers_length = int.from_bytes(data[4:8], "big")
    return [name for name, _ in EventHeaderDecoder(data[12 : 12 + headers_length])]


def with_headers(**changes: object) -> EventMessage:
    message = chunk_message(EVENT)
    headers = dict(message.headers)
    for name, value in changes.items():
        key = ":" + name.replace("_", "-")
        if value is None:
            headers.pop(key)
        else:
            headers[key] = value  # type: ignore[assignment]
    return EventMessage(headers=headers, payload=message.payload)


# --- chunk ------------------------------------------------------------------------------


def test_chunk_round_trip_and_wire_shape() -> None:
    data = encode_chunk(EVENT)
    assert header_names_in_wire_order(data) == [":message-type", ":event-type", ":content-type"]
    message = decode_message(data)
    assert message.headers == dict(CHUNK_HEADERS)
    assert message.payload == b'{"bytes":"' + base64.b64encode(EVENT) + b'"}'
    assert decode_chunk(message) == EVENT
    assert decode_output(message) == ChunkFrame(EVENT)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(st.binary(max_size=2000), min_size=1, max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=20000), max_size=10),
)
def test_chunks_survive_random_splits(events: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_chunk(e) for e in events)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    got = []
    for start, end in zip(points, points[1:]):
        got += [decode_chunk(m) for m in decoder.feed(stream[start:end])]
    decoder.eof()
    assert got == events


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (with_headers(message_type="exception"), ":message-type is 'exception'"),
        (with_headers(event_type="audio"), ":event-type is 'audio'"),
        (with_headers(content_type="text/plain"), ":content-type is 'text/plain'"),
        (with_headers(content_type=None), ":content-type is missing"),
        (with_headers(event_type=b"chunk"), "must be a string"),
        (EventMessage(headers=dict(CHUNK_HEADERS), payload=b"{not json"), "not JSON"),
        (EventMessage(headers=dict(CHUNK_HEADERS), payload=b"\xff\xfe"), "not JSON"),
        (EventMessage(headers=dict(CHUNK_HEADERS), payload=b"[1]"), "must be a JSON object"),
        (EventMessage(headers=dict(CHUNK_HEADERS), payload=b'{"byte":"AA=="}'), "no 'bytes'"),
        (EventMessage(headers=dict(CHUNK_HEADERS), payload=b'{"bytes":5}'), "base64 string"),
        (EventMessage(headers=dict(CHUNK_HEADERS), payload=b'{"bytes":"a$b="}'), "base64"),
        (EventMessage(headers=dict(CHUNK_HEADERS), payload=b'{"bytes":"abc"}'), "not valid base64"),
    ],
)
def test_decode_chunk_errors(message: EventMessage, needle: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_chunk(message)
    assert needle in str(info.value)


def test_chunk_frame_repr_hides_the_payload() -> None:
    audio = json.dumps({"event": {"audioOutput": {"content": "QUFB" * 1000}}}).encode()
    text = repr(ChunkFrame(audio))
    assert "audioOutput" in text and "QUFB" not in text and len(text) < 80


# --- exceptions and errors ------------------------------------------------------------


@pytest.mark.parametrize("member", sorted(STREAM_EXCEPTIONS))
def test_exception_round_trip(member: str) -> None:
    data = encode_exception(member, "RequestId=1 : boom")
    assert header_names_in_wire_order(data) == [
        ":message-type",
        ":exception-type",
        ":content-type",
    ]
    frame = decode_output(decode_message(data))
    assert isinstance(frame, ExceptionFrame)
    assert (frame.member, frame.message) == (member, "RequestId=1 : boom")
    assert frame.spec is STREAM_EXCEPTIONS[member]
    assert dict(frame.payload) == {"message": "RequestId=1 : boom"}


def test_exception_table() -> None:
    assert {m: e.sdk_class for m, e in STREAM_EXCEPTIONS.items()} == {
        "validationException": "ValidationException",
        "throttlingException": "ThrottlingException",
        "modelTimeoutException": "ModelTimeoutException",
        "modelStreamErrorException": "ModelStreamErrorException",
        "internalServerException": "InternalServerException",
        "serviceUnavailableException": "ServiceUnavailableException",
    }


def test_model_stream_error_extras() -> None:
    data = encode_exception(
        "modelStreamErrorException", "m", originalStatusCode=500, originalMessage="orig"
    )
    frame = decode_output(decode_message(data))
    assert isinstance(frame, ExceptionFrame)
    assert dict(frame.payload) == {
        "message": "m",
        "originalStatusCode": 500,
        "originalMessage": "orig",
    }


def test_capitalised_member_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError) as info:
        encode_exception("ValidationException", "x")
    assert "'validationException'" in str(info.value) and "KeyError" in str(info.value)


def test_unknown_member_and_unknown_extra_are_refused() -> None:
    with pytest.raises(ValueError, match="modelNotReadyException"):
        encode_exception("modelNotReadyException", "x")
    with pytest.raises(ValueError, match="originalStatusCode"):
        encode_exception("validationException", "x", originalStatusCode=1)


def test_foreign_exception_member_still_classifies() -> None:
    message = EventMessage(
        headers={":message-type": "exception", ":exception-type": "ValidationException"},
        payload=b'{"message":"x"}',
    )
    frame = decode_output(message)
    assert isinstance(frame, ExceptionFrame) and frame.spec is None


def test_error_round_trip() -> None:
    data = encode_error("InternalFailure", "it broke")
    assert header_names_in_wire_order(data) == [":message-type", ":error-code", ":error-message"]
    assert decode_output(decode_message(data)) == ErrorFrame("InternalFailure", "it broke")


def test_unknown_event_type() -> None:
    message = EventMessage(headers={":message-type": "event", ":event-type": "newThing"})
    frame = decode_output(message)
    assert isinstance(frame, UnknownEventFrame) and frame.event_type == "newThing"


@pytest.mark.parametrize(
    ("headers", "payload", "needle"),
    [
        ({}, b"", ":message-type is missing"),
        ({":message-type": "weird"}, b"", "'weird'"),
        ({":message-type": "event"}, b"", "no :event-type"),
        ({":message-type": "exception"}, b"", "no :exception-type"),
        ({":message-type": "exception", ":exception-type": "x"}, b"{", "not JSON"),
        ({":message-type": "exception", ":exception-type": "x"}, b'{"message":3}', "a string"),
        ({":message-type": "error", ":error-code": "x"}, b"", ":error-message"),
    ],
)
def test_decode_output_errors(headers: dict, payload: bytes, needle: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_output(EventMessage(headers=headers, payload=payload))
    assert needle in str(info.value)
