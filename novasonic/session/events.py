"""The typed events a ``NovaSonicSession`` reports, in three families.

- **Output**: ``ServiceEvent`` wraps every typed output event the service sent
  (``novasonic.events``), in order, with the index of the stream it came on.
- **Turn level** (from ``novasonic.rules.OutputTracker``): ``TurnStarted``, ``UserSpeechStarted``,
  ``UserSpeechEnded``, ``UserTranscript``, ``GenerationStarted`` (the assistant's answer begins),
  ``AssistantText``, ``AudioChunk`` (PCM to play), ``AudioEnded``, ``ToolCall`` (run it, then
  ``send_tool_result``), ``BargeIn`` (stop playback now), ``Usage``, ``TurnEnded``.
- **Lifecycle**: ``StreamOpened``, ``Restarting``, ``Recycling``, ``Recycled``, ``SessionError``, ``Closed``
  (always the last event).

Turn indexes count over the whole session (a new stream does not restart them). Every event is
a frozen dataclass; match on the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..events import OutputEvent
from ..rules import TokenUsage, Turn

__all__ = [
    "SessionEvent",
    "ServiceEvent",
    "TurnStarted",
    "UserSpeechStarted",
    "UserSpeechEnded",
    "UserTranscript",
    "GenerationStarted",
    "AssistantText",
    "AudioChunk",
    "AudioEnded",
    "ToolCall",
    "BargeIn",
    "Usage",
    "TurnEnded",
    "StreamOpened",
    "Restarting",
    "Recycling",
    "Recycled",
    "SessionError",
    "Closed",
    "StreamReason",
]

StreamReason = Literal["start", "recycle", "restart"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEvent:
    """Base class. ``stream_index``: 0 for the first stream of the session, +1 per new stream."""

    stream_index: int


# --- output -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEvent(SessionEvent):
    """One typed output event as the service sent it."""

    event: OutputEvent


# --- turn level ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnStarted(SessionEvent):
    turn_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSpeechStarted(SessionEvent):
    offset_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSpeechEnded(SessionEvent):
    offset_ms: int
    detection_offset_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTranscript(SessionEvent):
    """A FINAL piece of the user's transcript; ``transcript`` is the turn's text so far."""

    turn_index: int
    text: str
    transcript: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationStarted(SessionEvent):
    """The assistant's answer to ``turn_index`` began (first text, audio or tool call)."""

    turn_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantText(SessionEvent):
    """Assistant text. ``stage`` SPECULATIVE: sent ahead of its audio (what is about to be said);
    FINAL: the transcript of what was said (often after all the audio)."""

    turn_index: int
    stage: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioChunk(SessionEvent):
    """Assistant audio: 16-bit little-endian mono PCM at ``sample_rate``."""

    turn_index: int
    content_id: str
    pcm: bytes = field(repr=False)
    sample_rate: int
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioEnded(SessionEvent):
    turn_index: int
    content_id: str
    stop_reason: str
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall(SessionEvent):
    """The model asked for a tool (its TOOL block ended: run it now) and answer with
    ``session.send_tool_result(tool_use_id, result)``. ``arguments``: decoded JSON (double
    encoding peeled), or the raw string when it is not JSON."""

    turn_index: int
    tool_use_id: str
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeIn(SessionEvent):
    """The user interrupted the assistant: stop playing its audio. ``reason``: ``marker``,
    ``stop-reason``, ``user-speech`` or ``user-speech-inferred`` (``OutputTracker``)."""

    turn_index: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage(SessionEvent):
    """Token usage: ``delta`` since the last report; ``total`` the stream's running total;
    ``session_total`` summed over every stream of the session."""

    delta: TokenUsage
    total: TokenUsage
    session_total: TokenUsage


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnEnded(SessionEvent):
    """A turn is complete (``turn.index`` is session-wide). ``cut_by``: ``None``, or
    ``"recycle"``/``"restart"``/``"close"`` when the stream ended during the turn."""

    turn: Turn
    cut_by: str | None = None


# --- lifecycle ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOpened(SessionEvent):
    """A stream is open and its start block (session, prompt, SYSTEM, history, audio block) sent.
    ``history_messages``: chat-history messages carried into it."""

    reason: StreamReason
    prompt_name: str
    history_messages: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Restarting(SessionEvent):
    """Stream ``stream_index`` failed with a retryable ``error``; attempt ``attempt`` of
    ``max_attempts`` starts after ``delay_s``."""

    error: BaseException
    attempt: int
    max_attempts: int
    delay_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Recycling(SessionEvent):
    """Stream ``stream_index`` stops taking input and is being closed gracefully; input sent from
    now on waits for the next stream. ``reason``/``forced`` as in ``Recycled``."""

    reason: str
    forced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Recycled(SessionEvent):
    """Stream ``previous_stream_index`` was closed gracefully and replaced by ``stream_index``.
    ``reason``: ``age``, ``credentials``, ``update`` or ``requested``; ``forced``: the deadline
    came before a quiet point."""

    previous_stream_index: int
    reason: str
    forced: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionError(SessionEvent):
    """An error. ``recoverable=True``: one input (text, tool result) was refused before sending,
    e.g. by the protocol rules; its caller got the same exception and the session goes on.
    ``False``: the session is over (``Closed`` follows). Retryable stream errors are reported as
    ``Restarting`` instead."""

    error: BaseException
    recoverable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Closed(SessionEvent):
    """The session is over; the last event. ``error`` is None after ``aclose()``."""

    error: BaseException | None = None
