"""Exception tree of the toolkit. Imports nothing from the rest of the package.

::

    NovaSonicError
    ├── EventError (ValueError)          an event could not be parsed or built
    │   ├── EventDecodeError             bytes/str are not UTF-8 JSON, or not one {"event": {...}}
    │   └── EventValidationError         JSON is an event but fails its schema (unknown field, bad value)
    ├── UnknownModelError (ValueError)   a model id that is not in the catalogue
    ├── ProtocolViolation                rules: this event is not allowed now (carries the service's text)
    │   └── HistoryLimitError            chat history exceeds a configured limit (builder side)
    └── WireError                        event-stream bytes or envelopes
        ├── FrameError                   malformed frame: bad CRC, truncated prelude, oversize, bad header
        ├── EnvelopeError                a well-formed frame whose headers/payload are not a chunk envelope
        └── SignatureError               SigV4 request or chunk signature does not verify

Every error carries what a test or a user needs to act: the event name, the state, the expected
and received values. Reprs never contain secrets or base64 audio.
"""

from __future__ import annotations

__all__ = [
    "NovaSonicError",
    "EventError",
    "EventDecodeError",
    "EventValidationError",
    "UnknownModelError",
    "ProtocolViolation",
    "HistoryLimitError",
    "WireError",
    "FrameError",
    "EnvelopeError",
    "SignatureError",
]


class NovaSonicError(Exception):
    """Base of every error raised by the toolkit."""


class EventError(NovaSonicError, ValueError):
    """An event could not be parsed or built."""


class EventDecodeError(EventError):
    """The data is not UTF-8 JSON holding exactly one ``{"event": {"<name>": {...}}}``."""


class EventValidationError(EventError):
    """The JSON names a known event but does not match its schema.

    ``event_name`` is the wire name (``textInput``), ``errors`` a list of
    ``(location, message)`` pairs such as ``("event.textInput.foo", "unknown field")``.
    """

    def __init__(self, event_name: str, errors: list[tuple[str, str]]):
        self.event_name = event_name
        self.errors = list(errors)
        lines = "; ".join(f"{loc}: {msg}" for loc, msg in self.errors)
        super().__init__(f"invalid {event_name} event: {lines}")


class UnknownModelError(NovaSonicError, ValueError):
    """A model id that the catalogue does not know."""


class ProtocolViolation(NovaSonicError):
    """An input event that the service would reject at this point.

    ``exception_type`` is the lower-camel member name the service puts in ``:exception-type``
    (``validationException``), ``message`` the service's text (what the SDK shows as ``.message``),
    ``rule`` a short stable identifier of the broken rule (``first-content-not-system``), ``state``
    a description of where the machine was, ``event_name`` the offending event's wire name, and
    ``confident`` whether the text is the service's known text (False where the spec marks it UNK
    and the generic text is used instead).
    """

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        exception_type: str = "validationException",
        event_name: str | None = None,
        state: str | None = None,
        confident: bool = True,
    ):
        self.message = message
        self.rule = rule
        self.exception_type = exception_type
        self.event_name = event_name
        self.state = state
        self.confident = confident
        where = f" (event {event_name}, state {state})" if event_name or state else ""
        super().__init__(f"[{rule}] {exception_type}: {message}{where}")


class HistoryLimitError(ProtocolViolation):
    """Chat history larger than the configured limits allow."""


class WireError(NovaSonicError):
    """Event-stream bytes or envelopes that cannot be understood."""


class FrameError(WireError):
    """A malformed event-stream frame. ``kind`` is one of ``prelude-crc``, ``message-crc``,
    ``truncated``, ``oversize``, ``headers``."""

    def __init__(self, message: str, *, kind: str):
        self.kind = kind
        super().__init__(message)


class EnvelopeError(WireError):
    """A well-formed frame that is not the expected envelope (wrong headers, bad JSON, bad base64)."""


class SignatureError(WireError):
    """A SigV4 signature that does not verify. ``reason`` is a short stable code:
    ``missing-auth``, ``malformed-auth``, ``unknown-key``, ``bad-signature``, ``stale-date``,
    ``bad-chunk-signature``, ``missing-chunk-signature``, ``bad-scope``."""

    def __init__(self, message: str, *, reason: str):
        self.reason = reason
        super().__init__(message)
