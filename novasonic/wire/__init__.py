"""The wire codec: bytes <-> frames <-> envelopes <-> event JSON (protocol.md section 4).

Three sans-IO layers, each importing only the ones above it in this list:

``frames``
    Event-stream framing (protocol.md 4.2) on top of ``smithy_aws_event_stream``:
    :class:`FrameDecoder` turns pushed bytes into ``EventMessage`` objects, checking
    prelude CRC, size limits, message CRC and headers, and raising
    :class:`~novasonic.errors.FrameError` with a ``kind``.
``envelope``
    What a message means (protocol.md 4.3, 4.5): the ``chunk`` envelope carrying
    one event's JSON, the six modeled in-stream exceptions (one table,
    :data:`STREAM_EXCEPTIONS`), unmodeled errors, and :func:`decode_output` to
    classify a server frame the way the SDK does. Raises
    :class:`~novasonic.errors.EnvelopeError`.
``sigv4``
    Request signature and event-signature chain (protocol.md 4.1, 4.4), verified by
    re-running ``aws_sdk_signers``' own signers: :func:`verify_request`,
    :class:`ChunkSignatureVerifier`, and the signing counterparts
    :func:`sign_request` and :class:`ChunkSigner`. Raises
    :class:`~novasonic.errors.SignatureError` with a ``reason``.

A client input frame on the wire is ``outer(signed) -> inner(chunk) -> event JSON``::

    decoder = FrameDecoder()
    verifier = ChunkSignatureVerifier(verify_request(...), credentials)
    for outer in decoder.feed(data):
        inner = verifier.verify(outer)
        if inner:                       # b"" = end of client input
            event_json = decode_chunk(decode_message(inner))
"""

from smithy_aws_event_stream.events import EventMessage

from .envelope import (
    CHUNK_HEADERS,
    STREAM_EXCEPTIONS,
    ChunkFrame,
    ErrorFrame,
    ExceptionFrame,
    OutputFrame,
    StreamException,
    UnknownEventFrame,
    chunk_message,
    decode_chunk,
    decode_output,
    encode_chunk,
    encode_error,
    encode_exception,
    error_message,
    exception_message,
)
from .frames import (
    MAX_FRAME_LENGTH,
    MIN_FRAME_LENGTH,
    PRELUDE_LENGTH,
    FrameDecoder,
    decode_message,
    encode_message,
    wire_timestamp,
)
from .sigv4 import (
    DEFAULT_MAX_SKEW,
    EVENT_STREAM_HASH,
    AuthorizationHeader,
    ChunkSignatureVerifier,
    ChunkSigner,
    Credentials,
    CredentialsLookup,
    RequestAuth,
    date_header_block,
    parse_authorization,
    sign_request,
    verify_request,
)

__all__ = [
    "EventMessage",
    # frames
    "PRELUDE_LENGTH",
    "MIN_FRAME_LENGTH",
    "MAX_FRAME_LENGTH",
    "FrameDecoder",
    "encode_message",
    "decode_message",
    "wire_timestamp",
    # envelope
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
    # sigv4
    "EVENT_STREAM_HASH",
    "DEFAULT_MAX_SKEW",
    "Credentials",
    "CredentialsLookup",
    "AuthorizationHeader",
    "parse_authorization",
    "RequestAuth",
    "verify_request",
    "sign_request",
    "date_header_block",
    "ChunkSignatureVerifier",
    "ChunkSigner",
]
