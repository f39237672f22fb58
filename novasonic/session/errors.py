"""Session errors and the one place that decides which service errors are worth a restart.

Retryable (a new stream with the same conversation is expected to work), from protocol.md §3.2
and §4.5 and client-behaviours.md §a.2:

- in-stream / HTTP exceptions ``ThrottlingException``, ``ModelTimeoutException`` (also the
  8-minute limit), ``ModelStreamErrorException``, ``ModelNotReadyException``,
  ``ModelErrorException``, ``ServiceUnavailableException``, ``InternalServerException``
  (server faults, retry-safe);
- ``ValidationException`` carrying ``InternalErrorCode=531`` (the RST_STREAM / inactivity text)
  or "System instability detected" (LiveKit #6042);
- corrupt event-stream bytes (``smithy_aws_event_stream`` ``InvalidEventBytes``,
  ``ChecksumMismatch`` and the other framing errors);
- the output stream ending while the session did not close it (RST_STREAM, GOAWAY, END_STREAM),
  a send that fails or times out at the transport, and a stream that does not open within
  ``RestartPolicy.open_timeout_s`` (``StreamBroken``).

Everything else — other ``ValidationException`` texts (the same input would fail again),
``AccessDeniedException``, ``ResourceNotFoundException``, unknown errors — is not retried and
ends the session.
"""

from __future__ import annotations

from ..errors import NovaSonicError

__all__ = [
    "SessionClosedError",
    "SessionNotStartedError",
    "StreamBroken",
    "RestartsExhausted",
    "ToolResultUndeliverable",
    "UnsupportedInput",
    "is_retryable",
    "RETRYABLE_EXCEPTION_NAMES",
    "RETRYABLE_VALIDATION_MARKERS",
]

#: SDK exception class names that are retried (``aws_sdk_bedrock_runtime.models``).
RETRYABLE_EXCEPTION_NAMES = frozenset({
    "ThrottlingException",
    "ModelTimeoutException",
    "ModelStreamErrorException",
    "ModelNotReadyException",
    "ModelErrorException",
    "ServiceUnavailableException",
    "InternalServerException",
})

#: Substrings of a ``ValidationException`` message that make it retryable.
RETRYABLE_VALIDATION_MARKERS = ("InternalErrorCode=531", "System instability detected")

#: ``smithy_aws_event_stream.exceptions`` framing errors (bad bytes on the wire).
_FRAMING_ERRORS = frozenset({
    "InvalidEventBytes", "ChecksumMismatch", "InvalidPayloadLength", "InvalidHeadersLength",
    "InvalidHeaderValueLength", "InvalidHeaderValue", "InvalidIntegerValue", "DuplicateHeader",
})


class SessionClosedError(NovaSonicError):
    """The session is closed (or failed); nothing more can be sent."""


class SessionNotStartedError(NovaSonicError):
    """``start()`` has not been called."""


class StreamBroken(NovaSonicError):
    """The stream ended or stopped accepting input while the session was using it (RST_STREAM,
    GOAWAY, an unexpected end of the output stream, a send that failed or timed out, a stream
    that did not open within ``RestartPolicy.open_timeout_s``)."""


class RestartsExhausted(NovaSonicError):
    """``RestartPolicy.max_attempts`` restarts in a row failed; ``last_error`` is the last cause."""

    def __init__(self, attempts: int, last_error: BaseException):
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(f"gave up after {attempts} restart attempt(s); last error: {describe(last_error)}")


class ToolResultUndeliverable(NovaSonicError):
    """A tool result that cannot be delivered: its call came on a stream that is gone, and the
    model (Nova Sonic 1) takes no interactive text to carry it to the new stream."""


class UnsupportedInput(NovaSonicError, ValueError):
    """Input the model does not take (interactive text on Nova Sonic 1)."""


def describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    """True when a new stream carrying the conversation is expected to succeed (module doc)."""
    name = type(exc).__name__
    if isinstance(exc, StreamBroken):
        return True
    if name in RETRYABLE_EXCEPTION_NAMES:
        return True
    if name == "ValidationException":
        message = str(getattr(exc, "message", None) or exc)
        return any(marker in message for marker in RETRYABLE_VALIDATION_MARKERS)
    if name in _FRAMING_ERRORS and type(exc).__module__.startswith("smithy_aws_event_stream"):
        return True
    return False
