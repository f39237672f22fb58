"""Facts returned by ``InputMachine.feed``: what an accepted input event means.

Small frozen values, so the fake server (answer, journal, gate the replay) and the client session
(bookkeeping) read the same meaning from the same machine. Reprs never hold audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Fact",
    "SessionStarted",
    "PromptStarted",
    "SystemPromptReceived",
    "HistoryMessageReceived",
    "InteractiveTextSubmitted",
    "AudioBlockOpened",
    "AudioReceived",
    "AudioBlockClosed",
    "ToolResultDelivered",
    "ContentClosed",
    "PromptEnded",
    "SessionEnded",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """Base of every input fact."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(Fact):
    #: ``HIGH``/``MEDIUM``/``LOW`` from whichever form the model accepts, or None.
    endpointing_sensitivity: str | None
    max_tokens: int | None
    top_p: float | None
    temperature: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptStarted(Fact):
    prompt_name: str
    voice_id: str
    output_sample_rate_hertz: int
    tool_names: tuple[str, ...]
    #: ``"auto"`` / ``"any"`` / ``"tool:<name>"`` or None when absent.
    tool_choice: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemPromptReceived(Fact):
    """The SYSTEM block ended; ``text`` joins its textInputs."""

    prompt_name: str
    content_name: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryMessageReceived(Fact):
    """A chat-history block ended. ``index`` counts history messages in the prompt from 0."""

    prompt_name: str
    content_name: str
    role: str
    text: str
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InteractiveTextSubmitted(Fact):
    """An interactive USER text block ended. ``starts_response`` is True where the model answers
    typed text (Nova 2+, DOC D-XMOD) and False on Nova Sonic 1 (REP litellm #31924)."""

    prompt_name: str
    content_name: str
    text: str
    starts_response: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioBlockOpened(Fact):
    prompt_name: str
    content_name: str
    sample_rate_hertz: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioReceived(Fact):
    """One audioInput: ``n_bytes`` of PCM = ``duration_ms`` at the block's rate. ``block_ms`` and
    ``total_ms`` are the running totals for the block and for the whole session."""

    content_name: str
    n_bytes: int
    duration_ms: float
    block_ms: float
    total_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioBlockClosed(Fact):
    prompt_name: str
    content_name: str
    n_bytes: int
    duration_ms: float
    #: True when promptEnd/sessionEnd closed the block without its contentEnd.
    implicit: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResultDelivered(Fact):
    """A toolResult for ``tool_use_id``; ``result`` is the decoded JSON object."""

    prompt_name: str
    content_name: str
    tool_use_id: str
    result: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentClosed(Fact):
    """Any block ended (after the specific fact, if any). ``kind``: ``system``, ``history``,
    ``interactive-text``, ``audio`` or ``tool``."""

    prompt_name: str
    content_name: str
    kind: str
    implicit: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptEnded(Fact):
    prompt_name: str
    #: Blocks still open at promptEnd (closed implicitly; only when allowed by the config).
    open_blocks: tuple[str, ...] = ()
    #: Tool results the service asked for and never got.
    unanswered_tool_use_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded(Fact):
    #: A prompt still open at sessionEnd (only when allowed by the config).
    open_prompt: str | None = None
