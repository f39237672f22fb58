"""Chunk, exception and error envelopes around the event JSON (protocol.md 4.3, 4.5).

Input and output events travel the same way: a smithy event message with
headers ``:message-type``="event", ``:event-type``="chunk",
``:content-type``="application/json" (in that order) and the payload
``{"bytes":"<base64 of the event JSON>"}``. The server can also send a modeled
exception (``:message-type``="exception", ``:exception-type`` = a *lower-camel*
union member name) or an unmodeled error (``:message-type``="error").

Output frames are not signed; the signed outer envelope of input frames lives
in :mod:`novasonic.wire.sigv4`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from smithy_aws_event_stream.events import EventMessage

from ..errors import EnvelopeError

__all__ = [
    "CHUNK_HEADERS",
    "StreamException",
    "STREAM_EXCEPTIONS",
    "chunk_message",
    "encode_chunk",
    "decode_chunk",
    "exception_message",
    "encode_exception",
    "error_message",
    "encode_error",
    "ChunkFrame",
    "ExceptionFrame",
    "ErrorFrame",
    "UnknownEventFrame",
    "OutputFrame",
    "decode_output",
]

CHUNK_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        ":message-type": "event",
        ":event-type": "chunk",
        ":content-type": "application/json",
    }
)
"""Headers of a chunk message, in the order the SDK's serializer writes them."""


@dataclass(frozen=True)
class StreamException:
    """One modeled exception member of the output union (protocol.md 4.5).

    ``member`` goes in ``:exception-type``; ``sdk_class`` is the class
    ``receive()`` raises from ``aws_sdk_bedrock_runtime.models``; ``fault`` and
    ``http_status`` are the SDK's values for it; ``extra_fields`` are the payload
    members besides ``message``.
    """

    member: str
    sdk_class: str
    fault: Literal["client", "server"]
    http_status: int
    extra_fields: tuple[str, ...] = ()


STREAM_EXCEPTIONS: Mapping[str, StreamException] = MappingProxyType(
    {
        e.member: e
        for e in (
            StreamException("validationException", "ValidationException", "client", 400),
            StreamException("throttlingException", "ThrottlingException", "client", 429),
            StreamException("modelTimeoutException", "ModelTimeoutException", "client", 408),
            StreamException(
                "modelStreamErrorException",
                "ModelStreamErrorException",
                "client",
                424,
                ("originalStatusCode", "originalMessage"),
            ),
            StreamException("internalServerException", "InternalServerException", "server", 500),
            StreamException(
                "serviceUnavailableException", "ServiceUnavailableException", "server", 503
            ),
        )
    }
)
"""The six in-stream exception members of ``InvokeModelWithBidirectionalStreamOutput``,
keyed by their lower-camel wire name."""


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chunk_message(event_json: bytes) -> EventMessage:
    """The chunk message carrying ``event_json`` (protocol.md 4.3, inner message)."""
    payload = _compact_json({"bytes": base64.b64encode(event_json).decode("ascii")})
    return EventMessage(headers=dict(CHUNK_HEADERS), payload=payload)


def encode_chunk(event_json: bytes) -> bytes:
    """Encode ``event_json`` as a chunk frame, byte-identical to the SDK's inner message."""
    return chunk_message(event_json).encode()


def _header(message: EventMessage, name: str) -> str | None:
    value = message.headers.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvelopeError(
            f"header {name} must be a string, got {type(value).__name__} {value!r}"
        )
    return value


def _expect_header(message: EventMessage, name: str, expected: str) -> None:
    value = _header(message, name)
    if value != expected:
        got = "missing" if value is None else repr(value)
        raise EnvelopeError(f"not a chunk message: {name} is {got}, expected {expected!r}")


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(
            f"{what} payload is not JSON ({exc}); first bytes {payload[:40]!r}"
        ) from exc
    if not isinstance(document, dict):
        raise EnvelopeError(f"{what} payload must be a JSON object, got {type(document).__name__}")
    return document


def decode_chunk(message: EventMessage) -> bytes:
    """Return the event JSON bytes carried by a chunk message.

    Raises :class:`EnvelopeError` for any other message type, event type or
    content type, a payload that is not a JSON object, a missing or non-string
    ``bytes`` member, or invalid base64. Other payload members are ignored, as
    the SDK's deserializer ignores them.
    """
    for name, expected in CHUNK_HEADERS.items():
        _expect_header(message, name, expected)
    document = _json_object(message.payload, "chunk")
    if "bytes" not in document:
        raise EnvelopeError(f"chunk payload has no 'bytes' member (members: {sorted(document)})")
    encoded = document["bytes"]
    if not isinstance(encoded, str):
        raise EnvelopeError(
            f"chunk 'bytes' member must be a base64 string, got {type(encoded).__name__}"
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise EnvelopeError(
            f"chunk 'bytes' member is not valid base64 ({exc}); {len(encoded)} characters"
        ) from exc


def _stream_exception(member: str) -> StreamException:
    try:
        return STREAM_EXCEPTIONS[member]
    except KeyError:
        hint = ""
        for known in STREAM_EXCEPTIONS.values():
            if member == known.sdk_class:
                hint = (
                    f"; use the lower-camel member name {known.member!r}: the SDK indexes "
                    f"the union by member name and raises a bare KeyError for {member!r}"
                )
        raise ValueError(
            f"{member!r} is not an in-stream exception member "
            f"(known: {', '.join(STREAM_EXCEPTIONS)}){hint}"
        ) from None


def exception_message(member: str, message: str, **extra: Any) -> EventMessage:
    """A modeled exception message (protocol.md 4.5).

    ``member`` is the lower-camel union member (``validationException``);
    ``extra`` holds further payload members by wire name, allowed only where the
    member defines them (``originalStatusCode``, ``originalMessage`` for
    ``modelStreamErrorException``). Anything else raises :class:`ValueError`.
    """
    spec = _stream_exception(member)
    unknown = sorted(set(extra) - set(spec.extra_fields))
    if unknown:
        allowed = ", ".join(spec.extra_fields) or "none"
        raise ValueError(f"{member} has no payload member(s) {unknown} (allowed: {allowed})")
    headers = {
        ":message-type": "exception",
        ":exception-type": member,
        ":content-type": "application/json",
    }
    return EventMessage(headers=headers, payload=_compact_json({"message": message, **extra}))


def encode_exception(member: str, message: str, **extra: Any) -> bytes:
    """Encode :func:`exception_message` as a frame."""
    return exception_message(member, message, **extra).encode()


def error_message(code: str, message: str) -> EventMessage:
    """An unmodeled error message; the SDK raises ``UnmodeledEventError(code, message)``."""
    headers = {":message-type": "error", ":error-code": code, ":error-message": message}
    return EventMessage(headers=headers)


def encode_error(code: str, message: str) -> bytes:
    """Encode :func:`error_message` as a frame."""
    return error_message(code, message).encode()


@dataclass(frozen=True)
class ChunkFrame:
    """A normal output event: ``event_json`` is the ``{"event": {...}}`` document."""

    event_json: bytes

    def __repr__(self) -> str:
        # Never print the JSON itself: audio events hold kilobytes of base64.
        try:
            document = json.loads(self.event_json)
            name = next(iter(document["event"]))
        except Exception:
            name = "?"
        return f"ChunkFrame(event={name!r}, {len(self.event_json)} bytes)"


@dataclass(frozen=True)
class ExceptionFrame:
    """A modeled exception. ``member`` is the raw ``:exception-type`` value; ``spec``
    is its :data:`STREAM_EXCEPTIONS` entry, or ``None`` when the SDK would not know it
    (and would raise ``KeyError``)."""

    member: str
    message: str | None
    payload: Mapping[str, Any] = field(repr=False)

    @property
    def spec(self) -> StreamException | None:
        return STREAM_EXCEPTIONS.get(self.member)


@dataclass(frozen=True)
class ErrorFrame:
    """An unmodeled error (``:message-type`` = ``error``)."""

    code: str
    message: str


@dataclass(frozen=True)
class UnknownEventFrame:
    """An event whose ``:event-type`` is not ``chunk``; the SDK yields
    ``InvokeModelWithBidirectionalStreamOutputUnknown`` for it."""

    event_type: str
    message: EventMessage = field(repr=False)


type OutputFrame = ChunkFrame | ExceptionFrame | ErrorFrame | UnknownEventFrame
"""What a server frame means to the SDK's output stream."""


def decode_output(message: EventMessage) -> OutputFrame:
    """Classify a server frame the way the SDK's deserializer does (protocol.md 4.5).

    Raises :class:`EnvelopeError` for frames the SDK cannot deserialize at all:
    unknown ``:message-type``, missing ``:event-type``/``:exception-type``/
    ``:error-code``/``:error-message``, or a broken chunk/exception payload.
    """
    message_type = _header(message, ":message-type")
    match message_type:
        case "event":
            event_type = _header(message, ":event-type")
            if event_type is None:
                raise EnvelopeError("event message has no :event-type header")
            if event_type != "chunk":
                return UnknownEventFrame(event_type, message)
            return ChunkFrame(decode_chunk(message))
        case "exception":
            member = _header(message, ":exception-type")
            if member is None:
                raise EnvelopeError("exception message has no :exception-type header")
            payload: dict[str, Any] = {}
            if message.payload:
                payload = _json_object(message.payload, f"{member} exception")
            text = payload.get("message")
            if text is not None and not isinstance(text, str):
                raise EnvelopeError(f"{member} exception 'message' must be a string, got {text!r}")
            return ExceptionFrame(member, text, MappingProxyType(payload))
        case "error":
            code = _header(message, ":error-code")
            text = _header(message, ":error-message")
            if code is None or text is None:
                raise EnvelopeError(
                    "error message needs string :error-code and :error-message headers"
                )
            return ErrorFrame(code, text)
        case _:
            got = "missing" if message_type is None else repr(message_type)
            raise EnvelopeError(
                f":message-type is {got}, expected 'event', 'exception' or 'error'"
            )
