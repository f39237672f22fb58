"""``InputMachine``: what a client may send next, and the service's answer when it may not.

All the input rules live in this file (the texts in ``texts.py``, the catalogue in
``catalogue.py``). The machine ignores who calls it, so nobody can apply different rules on the
two sides (h11 ``_state.py``):

- the client session calls ``check(event)`` / ``feed(event)`` *before sending*, to fail fast with
  the text the service would send;
- the fake server calls ``feed(event)`` on every event it *receives*, and answers a
  ``ProtocolViolation`` with ``violation.message`` as a ``validationException`` frame.

Both sides also tell the machine about the service's ``toolUse`` events (``note_output``), because
a toolResult is only valid for a toolUseId the service asked for. The fake server feeds its own
outgoing events; the session feeds what it receives.

Verbs:

- ``check(event) -> ProtocolViolation | None``: would the event be accepted now? No side effect.
- ``feed(event) -> list[Fact]``: check, then apply. Raises the ``ProtocolViolation``; the machine
  is then in the terminal ``ERRORED`` state and every later ``check``/``feed`` answers with a
  ``machine-errored`` violation that carries the first error's text and has it as ``__cause__``.
- ``check_parse_error(exc)``: the service's answer to input that did not even parse.

The machine is two levels of tables (h2 style): ``_TRANSITIONS`` (session state × event name →
next state; a missing entry is a violation named by ``_OUT_OF_ORDER``), then a per-event check
and apply method (``_HANDLERS``), which work on the open prompt and its blocks (``_BLOCK_KIND``).

Session states::

    IDLE ──sessionStart──▶ SESSION_OPEN ──promptStart──▶ PROMPT_OPEN ──promptEnd──▶ SESSION_OPEN
                                │                           │ contentStart / textInput / audioInput
                                │                           │ toolResult / contentEnd (stay)
                                └──────sessionEnd──────▶ CLOSED ◀──sessionEnd (config)──┘
    any violation ──▶ ERRORED (terminal)

Phases of an open prompt: ``NEEDS_SYSTEM`` (no block yet; the first must be TEXT/SYSTEM) →
``HISTORY`` (chat history may follow the SYSTEM block) → ``LIVE`` (audio started: no more history).
"""

from __future__ import annotations

import binascii
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import EventDecodeError, EventError, EventValidationError, ProtocolViolation
from ..events import (
    AudioInput,
    ContentEnd,
    ContentStart,
    ContentType,
    InputEvent,
    OutputEvent,
    PromptEnd,
    PromptStart,
    Role,
    SessionEnd,
    SessionStart,
    TextInput,
    ToolResult,
    ToolUse,
)
from ..events.audio import b64_decoded_len
from ..events.input import INPUT_EVENTS
from ..models import ModelInfo, model_info
from . import facts as F
from .catalogue import RULES
from .config import RulesConfig
from .limits import Limits, pcm_ms
from .schema import find_keywords, load_schema_object
from .texts import service_text

__all__ = [
    "State",
    "Phase",
    "BlockKind",
    "BlockInfo",
    "InputMachine",
    "violation_for_parse_error",
    "transition_table",
]


class State(enum.StrEnum):
    """Session-level state."""

    IDLE = "IDLE"  # nothing accepted yet: only sessionStart
    SESSION_OPEN = "SESSION_OPEN"  # sessionStart accepted, no prompt open
    PROMPT_OPEN = "PROMPT_OPEN"  # a prompt is open: content events
    CLOSED = "CLOSED"  # sessionEnd accepted: nothing more
    ERRORED = "ERRORED"  # a violation happened: nothing more (terminal)


class Phase(enum.StrEnum):
    """Where an open prompt is."""

    NEEDS_SYSTEM = "NEEDS_SYSTEM"  # no block yet: the first must be the SYSTEM text block
    HISTORY = "HISTORY"  # SYSTEM opened; chat history may follow
    LIVE = "LIVE"  # audio started (first audioInput, or AUDIO block by config): no more history


class BlockKind(enum.StrEnum):
    SYSTEM = "system"
    HISTORY = "history"
    INTERACTIVE_TEXT = "interactive-text"
    AUDIO = "audio"
    TOOL = "tool"


# --- tables ------------------------------------------------------------------------------------------

#: state → event name → next state. A missing entry is a violation (see _OUT_OF_ORDER).
_TRANSITIONS: dict[State, dict[str, State]] = {
    State.IDLE: {"sessionStart": State.SESSION_OPEN},
    State.SESSION_OPEN: {"promptStart": State.PROMPT_OPEN, "sessionEnd": State.CLOSED},
    State.PROMPT_OPEN: {
        "contentStart": State.PROMPT_OPEN,
        "textInput": State.PROMPT_OPEN,
        "audioInput": State.PROMPT_OPEN,
        "toolResult": State.PROMPT_OPEN,
        "contentEnd": State.PROMPT_OPEN,
        "promptEnd": State.SESSION_OPEN,
        "sessionEnd": State.CLOSED,
    },
    State.CLOSED: {},
    State.ERRORED: {},
}

#: state → (rule for any event missing from _TRANSITIONS, overrides per event name).
_OUT_OF_ORDER: dict[State, tuple[str, dict[str, str]]] = {
    State.IDLE: ("session-not-started", {}),
    State.SESSION_OPEN: ("prompt-not-open", {"sessionStart": "session-already-started"}),
    State.PROMPT_OPEN: ("prompt-not-open", {
        "sessionStart": "session-already-started",
        "promptStart": "prompt-already-open",
    }),
    State.CLOSED: ("session-ended", {}),
}

#: (type, role) → block kind; USER TEXT is HISTORY unless interactive. Interactive ASSISTANT text
#: is not a documented form; it is treated as history. Pairs missing here break
#: ``content-role-mismatch`` (or ``system-not-text``).
_BLOCK_KIND: dict[tuple[ContentType, Role], BlockKind] = {
    (ContentType.TEXT, Role.SYSTEM): BlockKind.SYSTEM,
    (ContentType.TEXT, Role.USER): BlockKind.HISTORY,
    (ContentType.TEXT, Role.ASSISTANT): BlockKind.HISTORY,
    (ContentType.AUDIO, Role.USER): BlockKind.AUDIO,
    (ContentType.TOOL, Role.TOOL): BlockKind.TOOL,
}

#: content event → the block type it belongs in.
_CONTENT_EVENT_TYPE: dict[str, ContentType] = {
    "textInput": ContentType.TEXT,
    "audioInput": ContentType.AUDIO,
    "toolResult": ContentType.TOOL,
}

#: event name → (check method, apply method).
_HANDLERS: dict[str, tuple[str, str]] = {
    name: (f"_check_{attr}", f"_apply_{attr}")
    for name, attr in {
        "sessionStart": "session_start",
        "promptStart": "prompt_start",
        "contentStart": "content_start",
        "textInput": "text_input",
        "audioInput": "audio_input",
        "toolResult": "tool_result",
        "contentEnd": "content_end",
        "promptEnd": "prompt_end",
        "sessionEnd": "session_end",
    }.items()
}


def transition_table() -> list[tuple[State, str, State | str]]:
    """Every (state, input event) pair → next state, or the rule id it breaks. For docs and tests."""
    rows: list[tuple[State, str, State | str]] = []
    for state in State:
        for name in INPUT_EVENTS:
            nxt = _TRANSITIONS[state].get(name)
            if nxt is not None:
                rows.append((state, name, nxt))
            elif state is State.ERRORED:
                rows.append((state, name, "machine-errored"))
            else:
                default, overrides = _OUT_OF_ORDER[state]
                rows.append((state, name, overrides.get(name, default)))
    return rows


# --- working state ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """Read-only view of an open content block."""

    content_name: str
    kind: BlockKind
    type: ContentType
    role: Role
    interactive: bool
    sample_rate_hertz: int | None = None
    tool_use_id: str | None = None
    n_bytes: int = 0


@dataclass(slots=True)
class _Block:
    name: str
    kind: BlockKind
    type: ContentType
    role: Role
    interactive: bool
    sample_rate_hertz: int | None = None
    tool_use_id: str | None = None
    history_index: int | None = None
    texts: list[str] = field(default_factory=list)
    n_bytes: int = 0
    has_result: bool = False

    def info(self) -> BlockInfo:
        return BlockInfo(self.name, self.kind, self.type, self.role, self.interactive,
                         self.sample_rate_hertz, self.tool_use_id, self.n_bytes)


@dataclass(slots=True)
class _Prompt:
    name: str
    phase: Phase = Phase.NEEDS_SYSTEM
    system_seen: bool = False
    audio_block_seen: bool = False
    used_names: set[str] = field(default_factory=set)
    blocks: dict[str, _Block] = field(default_factory=dict)  # open blocks, in opening order
    history_count: int = 0
    history_bytes: int = 0
    last_history_role: Role | None = None
    system_text: str | None = None


# --- the machine ------------------------------------------------------------------------------------


class InputMachine:
    """The input rules of one stream (one ``InvokeModelWithBidirectionalStream``).

    ``request_id``: when given, violation texts get the ``RequestId=<id> : `` prefix according to
    ``config.prefix_request_id`` (the fake server passes its ``x-amzn-requestid``).
    """

    def __init__(
        self,
        model_id: str,
        config: RulesConfig | None = None,
        limits: Limits | None = None,
        *,
        request_id: str | None = None,
    ):
        self._model = model_info(model_id)
        self.config = config if config is not None else RulesConfig()
        self.limits = limits if limits is not None else Limits()
        self.request_id = request_id
        self._state = State.IDLE
        self._state_before_error: State | None = None
        self._error: ProtocolViolation | None = None
        self._prompt: _Prompt | None = None
        self._ended_prompts: set[str] = set()
        self._requested_tools: dict[str, str | None] = {}  # toolUseId → toolName, in order
        self._answered_tools: set[str] = set()
        self._audio_bytes = 0
        self._audio_ms = 0.0

    # --- read-only views ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def model_info(self) -> ModelInfo:
        return self._model

    @property
    def error(self) -> ProtocolViolation | None:
        """The first violation, once the machine is ``ERRORED``."""
        return self._error

    @property
    def prompt_name(self) -> str | None:
        return self._prompt.name if self._prompt else None

    @property
    def phase(self) -> Phase | None:
        return self._prompt.phase if self._prompt else None

    @property
    def open_blocks(self) -> tuple[BlockInfo, ...]:
        return tuple(b.info() for b in self._prompt.blocks.values()) if self._prompt else ()

    @property
    def pending_tool_use_ids(self) -> tuple[str, ...]:
        """toolUseIds the service asked for that have no toolResult yet, oldest first."""
        return tuple(t for t in self._requested_tools if t not in self._answered_tools)

    @property
    def answered_tool_use_ids(self) -> frozenset[str]:
        return frozenset(self._answered_tools)

    @property
    def audio_bytes_received(self) -> int:
        return self._audio_bytes

    @property
    def audio_ms_received(self) -> float:
        """Milliseconds of input audio in the session, each block at its own sample rate."""
        return self._audio_ms

    @property
    def history_bytes(self) -> int:
        """UTF-8 bytes of chat history in the open prompt."""
        return self._prompt.history_bytes if self._prompt else 0

    @property
    def history_messages(self) -> int:
        return self._prompt.history_count if self._prompt else 0

    @property
    def system_prompt(self) -> str | None:
        """Text of the open prompt's SYSTEM block, once that block has ended."""
        return self._prompt.system_text if self._prompt else None

    # --- the verbs ----------------------------------------------------------------------------------

    def check(self, event: InputEvent) -> ProtocolViolation | None:
        """The violation ``event`` would cause now, or None. Changes nothing."""
        name = _event_name(event)
        if self._error is not None:
            return self._errored(name)
        if name not in _TRANSITIONS[self._state]:
            default, overrides = _OUT_OF_ORDER[self._state]
            return self._violation(overrides.get(name, default), name, f"{name} is not valid in state {self._state}")
        check: Callable[[Any], ProtocolViolation | None] = getattr(self, _HANDLERS[name][0])
        return check(event)

    def feed(self, event: InputEvent) -> list[F.Fact]:
        """Apply ``event``; return what it means. Raises ``ProtocolViolation`` (then ``ERRORED``)."""
        violation = self.check(event)
        if violation is not None:
            self.fail(violation)
            raise violation
        name = _event_name(event)
        apply: Callable[[Any], list[F.Fact]] = getattr(self, _HANDLERS[name][1])
        next_state = _TRANSITIONS[self._state][name]
        out = apply(event)
        self._state = next_state
        return out

    def fail(self, violation: ProtocolViolation) -> None:
        """Enter ``ERRORED`` with ``violation`` as the first error (no-op once errored). The I/O
        layer calls it when something outside the machine ended the stream (a parse error, a
        timeout), like h11's ``send_failed``."""
        if self._error is None:
            self._error = violation
            self._state_before_error = self._state
            self._state = State.ERRORED

    def check_parse_error(self, exc: EventError) -> ProtocolViolation:
        """The service's answer to input that ``parse_input`` rejected (see ``violation_for_parse_error``).
        Pure: call ``fail`` to make it the machine's error."""
        return violation_for_parse_error(exc, self.config, request_id=self.request_id, state=self._describe())

    def note_output(self, event: OutputEvent) -> None:
        """Tell the machine about a service event. Only ``toolUse`` matters (it makes its toolUseId
        answerable); anything else is ignored, so callers may pass every output event."""
        if isinstance(event, ToolUse):
            self.note_tool_use(event.tool_use_id, event.tool_name)

    def note_tool_use(self, tool_use_id: str, tool_name: str | None = None) -> None:
        """The service asked for ``tool_use_id`` (a toolResult for it is now valid)."""
        self._requested_tools.setdefault(tool_use_id, tool_name)

    # --- violations --------------------------------------------------------------------------------

    def _describe(self) -> str:
        state = self._state if self._state is not State.ERRORED else f"ERRORED (after {self._state_before_error})"
        p = self._prompt
        if p is None or self._state is not State.PROMPT_OPEN:
            return str(state)
        blocks = ",".join(f"{b.name}:{b.kind}" for b in p.blocks.values()) or "none"
        return f"{state} prompt={p.name!r} phase={p.phase} open=[{blocks}]"

    def _violation(self, rule_id: str, event_name: str | None, detail: str | None = None) -> ProtocolViolation:
        r = RULES[rule_id]
        text = r.text if r.text is not None else self.config.unknown_text
        v = ProtocolViolation(
            service_text(text, self.request_id, self.config.prefix_request_id),
            rule=rule_id,
            event_name=event_name,
            state=self._describe(),
            confident=r.confident,
        )
        if detail:
            v.add_note(detail)
        return v

    def _errored(self, event_name: str) -> ProtocolViolation:
        first = self._error
        assert first is not None
        v = ProtocolViolation(
            first.message,
            rule="machine-errored",
            exception_type=first.exception_type,
            event_name=event_name,
            state=self._describe(),
            confident=first.confident,
        )
        v.add_note(f"the stream already failed: {first}")
        v.__cause__ = first
        return v

    # --- shared checks ------------------------------------------------------------------------------

    def _check_prompt_name(self, name: str, prompt_name: str) -> ProtocolViolation | None:
        assert self._prompt is not None
        if prompt_name != self._prompt.name:
            return self._violation(
                "prompt-name-mismatch", name, f"promptName {prompt_name!r}, but the open prompt is {self._prompt.name!r}"
            )
        return None

    def _open_block(self, name: str, prompt_name: str, content_name: str) -> _Block | ProtocolViolation:
        if (v := self._check_prompt_name(name, prompt_name)) is not None:
            return v
        assert self._prompt is not None
        block = self._prompt.blocks.get(content_name)
        if block is None:
            why = "has already ended" if content_name in self._prompt.used_names else "was never started"
            return self._violation("content-not-open", name, f"contentName {content_name!r} {why}")
        return block

    def _content_event_block(self, name: str, event: TextInput | AudioInput | ToolResult) -> _Block | ProtocolViolation:
        block = self._open_block(name, event.prompt_name, event.content_name)
        if isinstance(block, ProtocolViolation):
            return block
        if name == "audioInput" and (texts := self._open_text_blocks()):
            return self._violation("audio-while-text-open", name, f"TEXT block(s) open: {', '.join(texts)}")
        wanted = _CONTENT_EVENT_TYPE[name]
        if block.type is not wanted:
            return self._violation(
                "content-type-mismatch", name, f"{name} belongs in a {wanted} block; {block.name!r} is {block.type}"
            )
        return block

    def _open_text_blocks(self) -> list[str]:
        assert self._prompt is not None
        return [b.name for b in self._prompt.blocks.values() if b.type is ContentType.TEXT]

    # --- sessionStart ------------------------------------------------------------------------------------

    def _check_session_start(self, ev: SessionStart) -> ProtocolViolation | None:
        nova1 = self._model.is_nova_1
        if ev.endpointing_sensitivity is not None and not nova1 and self.config.reject_flat_endpointing_on_nova2:
            return self._violation(
                "flat-endpointing-on-nova2", ev.EVENT_NAME,
                f"{self._model.model_id} takes turnDetectionConfiguration.endpointingSensitivity, not the flat key",
            )
        if ev.turn_detection_configuration is not None and nova1 and self.config.reject_turn_detection_on_nova1:
            return self._violation(
                "turn-detection-on-nova1", ev.EVENT_NAME, f"{self._model.model_id} has no turnDetectionConfiguration"
            )
        return None

    def _apply_session_start(self, ev: SessionStart) -> list[F.Fact]:
        sens = ev.endpointing_sensitivity
        if ev.turn_detection_configuration is not None:
            sens = ev.turn_detection_configuration.endpointing_sensitivity
        inf = ev.inference_configuration
        return [
            F.SessionStarted(
                endpointing_sensitivity=str(sens) if sens is not None else None,
                max_tokens=inf.max_tokens if inf else None,
                top_p=inf.top_p if inf else None,
                temperature=inf.temperature if inf else None,
            )
        ]

    # --- promptStart --------------------------------------------------------------------------------------

    def _check_prompt_start(self, ev: PromptStart) -> ProtocolViolation | None:
        name = ev.EVENT_NAME
        if self._ended_prompts and not self.config.allow_new_prompt_after_prompt_end:
            return self._violation("prompt-restart", name, "one prompt per session (config)")
        if ev.prompt_name in self._ended_prompts:
            return self._violation("prompt-name-reused", name, f"prompt {ev.prompt_name!r} already ended")
        voice = ev.audio_output_configuration.voice_id
        if not voice:
            return self._violation("voice-empty", name, "audioOutputConfiguration.voiceId is missing or empty")
        if voice not in self._model.voices and self.config.reject_unknown_voice:
            known = ", ".join(sorted(self._model.voices))
            return self._violation("voice-unknown", name, f"voiceId {voice!r} is not a {self._model.model_id} voice ({known})")
        return self._check_tools(ev)

    def _check_tools(self, ev: PromptStart) -> ProtocolViolation | None:
        tc = ev.tool_configuration
        if tc is None:
            return None
        name = ev.EVENT_NAME
        cfg = self.config
        names = [t.tool_spec.name for t in tc.tools]
        if cfg.reject_bad_tool_configuration:
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                return self._violation("tool-name-duplicate", name, f"tool names used twice: {dupes}")
            if tc.tool_choice is not None and tc.tool_choice.tool is not None and tc.tool_choice.tool.name not in names:
                return self._violation(
                    "tool-choice-unknown-tool", name, f"toolChoice names {tc.tool_choice.tool.name!r}; tools: {names}"
                )
        for tool in tc.tools:
            spec = tool.tool_spec
            schema = load_schema_object(spec.input_schema.json_schema)
            if schema is None:
                if cfg.reject_invalid_input_schema:
                    return self._violation(
                        "tool-schema-invalid", name, f"tool {spec.name!r}: inputSchema.json does not hold a JSON object"
                    )
                continue
            if cfg.reject_unsupported_schema_keywords:
                found = list(find_keywords(schema, cfg.unsupported_schema_keywords))
                if found:
                    return self._violation(
                        "tool-schema-unsupported-keyword", name, f"tool {spec.name!r}: unsupported keyword at {found}"
                    )
        return None

    def _apply_prompt_start(self, ev: PromptStart) -> list[F.Fact]:
        self._prompt = _Prompt(ev.prompt_name)
        tc = ev.tool_configuration
        choice = None
        if tc is not None and tc.tool_choice is not None:
            c = tc.tool_choice
            choice = "auto" if c.auto is not None else "any" if c.any is not None else f"tool:{c.tool.name}"  # type: ignore[union-attr]
        out = ev.audio_output_configuration
        return [
            F.PromptStarted(
                prompt_name=ev.prompt_name,
                voice_id=out.voice_id or "",
                output_sample_rate_hertz=int(out.sample_rate_hertz),
                tool_names=tuple(t.tool_spec.name for t in tc.tools) if tc else (),
                tool_choice=choice,
            )
        ]

    # --- contentStart -------------------------------------------------------------------------------------

    def _check_content_start(self, ev: ContentStart) -> ProtocolViolation | None:
        name = ev.EVENT_NAME
        if (v := self._check_prompt_name(name, ev.prompt_name)) is not None:
            return v
        p = self._prompt
        assert p is not None
        cfg = self.config
        if ev.content_name in p.used_names:
            return self._violation("content-name-reused", name, f"contentName {ev.content_name!r} was already used")
        is_system = ev.role is Role.SYSTEM
        if p.phase is Phase.NEEDS_SYSTEM and not is_system:
            return self._violation("first-content-not-system", name, f"first block is {ev.type}/{ev.role}")
        if is_system and p.system_seen:
            return self._violation("duplicate-system", name, "this prompt already has its SYSTEM block")
        if is_system and ev.type is not ContentType.TEXT:
            return self._violation("system-not-text", name, f"SYSTEM block of type {ev.type}")
        kind = _BLOCK_KIND.get((ev.type, ev.role))
        if kind is None:
            return self._violation("content-role-mismatch", name, f"type {ev.type} with role {ev.role}")
        if kind is BlockKind.SYSTEM and ev.interactive and not cfg.allow_interactive_system_block:
            return self._violation("system-interactive", name, "SYSTEM block with interactive: true (config)")
        if kind is BlockKind.HISTORY and ev.interactive and ev.role is Role.USER:
            kind = BlockKind.INTERACTIVE_TEXT
        if cfg.reject_overlapping_blocks:
            is_audio = kind is BlockKind.AUDIO
            clash = [b.name for b in p.blocks.values() if (b.kind is BlockKind.AUDIO) == is_audio]
            if clash:
                what = "an AUDIO" if is_audio else "a TEXT/TOOL"
                return self._violation("content-overlap", name, f"{what} block is already open: {clash}")
        if kind is BlockKind.HISTORY:
            return self._check_history_start(ev)
        if kind is BlockKind.TOOL:
            return self._check_tool_start(ev)
        return None

    def _check_history_start(self, ev: ContentStart) -> ProtocolViolation | None:
        name = ev.EVENT_NAME
        p = self._prompt
        assert p is not None
        cfg = self.config
        if p.phase is Phase.LIVE:
            return self._violation("history-after-audio", name, "chat history must come before the first audio")
        if p.history_count == 0 and ev.role is not Role.USER and cfg.require_history_user_first:
            return self._violation("history-not-user-first", name, f"history starts with {ev.role}")
        if p.last_history_role is ev.role and cfg.require_history_alternation:
            return self._violation("history-not-alternating", name, f"two {ev.role} history messages in a row")
        limit = self.limits.history_max_messages
        if limit is not None and p.history_count >= limit:
            return self._violation("history-too-many-messages", name, f"history is limited to {limit} messages")
        return None

    def _check_tool_start(self, ev: ContentStart) -> ProtocolViolation | None:
        name = ev.EVENT_NAME
        assert ev.tool_result_input_configuration is not None and self._prompt is not None
        tool_use_id = ev.tool_result_input_configuration.tool_use_id
        if tool_use_id not in self._requested_tools and self.config.reject_unknown_tool_use_id:
            return self._violation("tool-result-unknown-id", name, f"the service never sent toolUseId {tool_use_id!r}")
        in_progress = {b.tool_use_id for b in self._prompt.blocks.values() if b.kind is BlockKind.TOOL}
        if (tool_use_id in self._answered_tools or tool_use_id in in_progress) and self.config.reject_duplicate_tool_result:
            return self._violation("tool-result-duplicate", name, f"toolUseId {tool_use_id!r} is already answered")
        return None

    def _apply_content_start(self, ev: ContentStart) -> list[F.Fact]:
        p = self._prompt
        assert p is not None
        kind = _BLOCK_KIND.get((ev.type, ev.role), BlockKind.HISTORY)
        if kind is BlockKind.HISTORY and ev.interactive and ev.role is Role.USER:
            kind = BlockKind.INTERACTIVE_TEXT
        block = _Block(ev.content_name, kind, ev.type, ev.role, ev.interactive)
        p.used_names.add(ev.content_name)
        p.blocks[ev.content_name] = block
        if p.phase is Phase.NEEDS_SYSTEM:
            p.phase = Phase.HISTORY
        out: list[F.Fact] = []
        if kind is BlockKind.SYSTEM:
            p.system_seen = True
        elif kind is BlockKind.HISTORY:
            block.history_index = p.history_count
            p.history_count += 1
            p.last_history_role = ev.role
        elif kind is BlockKind.AUDIO:
            assert ev.audio_input_configuration is not None
            block.sample_rate_hertz = int(ev.audio_input_configuration.sample_rate_hertz)
            p.audio_block_seen = True
            if self.config.history_ends_at_audio_block:
                p.phase = Phase.LIVE
            out.append(F.AudioBlockOpened(prompt_name=p.name, content_name=block.name,
                                          sample_rate_hertz=block.sample_rate_hertz))
        elif kind is BlockKind.TOOL:
            assert ev.tool_result_input_configuration is not None
            block.tool_use_id = ev.tool_result_input_configuration.tool_use_id
        return out

    # --- textInput -----------------------------------------------------------------------------------------

    def _check_text_input(self, ev: TextInput) -> ProtocolViolation | None:
        block = self._content_event_block(ev.EVENT_NAME, ev)
        if isinstance(block, ProtocolViolation):
            return block
        if block.kind is BlockKind.HISTORY:
            size = len(ev.content.encode("utf-8"))
            per_input = self.limits.history_text_input_bytes
            if per_input is not None and size > per_input:
                return self._violation(
                    "history-input-too-large", ev.EVENT_NAME, f"{size} bytes > {per_input} per history textInput"
                )
            total = self.limits.history_total_bytes
            assert self._prompt is not None
            if total is not None and self._prompt.history_bytes + size > total:
                return self._violation(
                    "history-too-large", ev.EVENT_NAME,
                    f"history would be {self._prompt.history_bytes + size} bytes > {total}",
                )
        return None

    def _apply_text_input(self, ev: TextInput) -> list[F.Fact]:
        assert self._prompt is not None
        block = self._prompt.blocks[ev.content_name]
        block.texts.append(ev.content)
        if block.kind is BlockKind.HISTORY:
            self._prompt.history_bytes += len(ev.content.encode("utf-8"))
        return []

    # --- audioInput ----------------------------------------------------------------------------------------

    def _check_audio_input(self, ev: AudioInput) -> ProtocolViolation | None:
        name = ev.EVENT_NAME
        block = self._content_event_block(name, ev)
        if isinstance(block, ProtocolViolation):
            return block
        try:
            n = len(binascii.a2b_base64(ev.content, strict_mode=True))
        except (binascii.Error, ValueError):
            return self._violation("audio-not-base64", name, "audioInput.content is not valid base64")
        limit = self.limits.max_audio_input_bytes
        if limit is not None and n > limit:
            return self._violation("audio-input-too-large", name, f"{n} bytes > {limit} per audioInput")
        if not self.config.allow_audio_while_tool_result_owed and (owed := self.pending_tool_use_ids):
            return self._violation("audio-while-tool-result-owed", name, f"tool results owed: {list(owed)}")
        return None

    def _apply_audio_input(self, ev: AudioInput) -> list[F.Fact]:
        p = self._prompt
        assert p is not None
        block = p.blocks[ev.content_name]
        assert block.sample_rate_hertz is not None
        n = b64_decoded_len(ev.content)
        ms = pcm_ms(n, block.sample_rate_hertz)
        block.n_bytes += n
        self._audio_bytes += n
        self._audio_ms += ms
        p.phase = Phase.LIVE
        return [
            F.AudioReceived(
                content_name=block.name,
                n_bytes=n,
                duration_ms=ms,
                block_ms=pcm_ms(block.n_bytes, block.sample_rate_hertz),
                total_ms=self._audio_ms,
            )
        ]

    # --- toolResult ----------------------------------------------------------------------------------------

    def _check_tool_result(self, ev: ToolResult) -> ProtocolViolation | None:
        name = ev.EVENT_NAME
        block = self._content_event_block(name, ev)
        if isinstance(block, ProtocolViolation):
            return block
        if block.has_result and self.config.reject_duplicate_tool_result:
            return self._violation("tool-result-duplicate", name, f"toolUseId {block.tool_use_id!r} already has a result")
        limit = self.limits.max_tool_result_bytes
        size = len(ev.content.encode("utf-8"))
        if limit is not None and size > limit:
            return self._violation("tool-result-too-large", name, f"{size} bytes > {limit} per toolResult")
        if _json_object(ev.content) is None:
            return self._violation("tool-result-not-json-object", name, "toolResult.content must be a JSON object string")
        return None

    def _apply_tool_result(self, ev: ToolResult) -> list[F.Fact]:
        assert self._prompt is not None
        block = self._prompt.blocks[ev.content_name]
        assert block.tool_use_id is not None
        block.has_result = True
        self._answered_tools.add(block.tool_use_id)
        result = _json_object(ev.content)
        assert result is not None
        return [F.ToolResultDelivered(prompt_name=self._prompt.name, content_name=block.name,
                                      tool_use_id=block.tool_use_id, result=result)]

    # --- contentEnd ----------------------------------------------------------------------------------------

    def _check_content_end(self, ev: ContentEnd) -> ProtocolViolation | None:
        block = self._open_block(ev.EVENT_NAME, ev.prompt_name, ev.content_name)
        return block if isinstance(block, ProtocolViolation) else None

    def _apply_content_end(self, ev: ContentEnd) -> list[F.Fact]:
        assert self._prompt is not None
        block = self._prompt.blocks.pop(ev.content_name)
        return self._close_block(block, implicit=False)

    def _close_block(self, block: _Block, *, implicit: bool) -> list[F.Fact]:
        p = self._prompt
        assert p is not None
        out: list[F.Fact] = []
        text = "".join(block.texts)
        if block.kind is BlockKind.SYSTEM and not implicit:
            p.system_text = text
            out.append(F.SystemPromptReceived(prompt_name=p.name, content_name=block.name, text=text))
        elif block.kind is BlockKind.HISTORY and not implicit:
            assert block.history_index is not None
            out.append(F.HistoryMessageReceived(prompt_name=p.name, content_name=block.name, role=str(block.role),
                                                text=text, index=block.history_index))
        elif block.kind is BlockKind.INTERACTIVE_TEXT and not implicit:
            out.append(F.InteractiveTextSubmitted(prompt_name=p.name, content_name=block.name, text=text,
                                                  starts_response=self._model.interactive_text))
        elif block.kind is BlockKind.AUDIO:
            assert block.sample_rate_hertz is not None
            out.append(F.AudioBlockClosed(prompt_name=p.name, content_name=block.name, n_bytes=block.n_bytes,
                                          duration_ms=pcm_ms(block.n_bytes, block.sample_rate_hertz),
                                          implicit=implicit))
        out.append(F.ContentClosed(prompt_name=p.name, content_name=block.name, kind=str(block.kind), implicit=implicit))
        return out

    # --- promptEnd -----------------------------------------------------------------------------------------

    def _check_prompt_end(self, ev: PromptEnd) -> ProtocolViolation | None:
        name = ev.EVENT_NAME
        if (v := self._check_prompt_name(name, ev.prompt_name)) is not None:
            return v
        p = self._prompt
        assert p is not None
        if p.blocks and self.config.reject_prompt_end_with_open_content:
            return self._violation("prompt-end-with-open-content", name, f"open blocks: {list(p.blocks)}")
        if self._model.is_nova_1 and not p.audio_block_seen and self.config.require_audio_block_on_nova1_prompt_end:
            return self._violation("prompt-without-audio", name, "Nova Sonic 1 rejects a prompt with no audio content")
        return None

    def _apply_prompt_end(self, ev: PromptEnd) -> list[F.Fact]:
        return self._end_prompt()

    def _end_prompt(self) -> list[F.Fact]:
        p = self._prompt
        assert p is not None
        out: list[F.Fact] = []
        open_names = tuple(p.blocks)
        for block in list(p.blocks.values()):
            out.extend(self._close_block(block, implicit=True))
        p.blocks.clear()
        out.append(F.PromptEnded(prompt_name=p.name, open_blocks=open_names,
                                 unanswered_tool_use_ids=self.pending_tool_use_ids))
        self._ended_prompts.add(p.name)
        self._prompt = None
        return out

    # --- sessionEnd ----------------------------------------------------------------------------------------

    def _check_session_end(self, ev: SessionEnd) -> ProtocolViolation | None:
        if self._prompt is not None and self.config.reject_session_end_with_open_prompt:
            return self._violation("session-end-with-open-prompt", ev.EVENT_NAME, f"prompt {self._prompt.name!r} is open")
        return None

    def _apply_session_end(self, ev: SessionEnd) -> list[F.Fact]:
        open_prompt = self._prompt.name if self._prompt else None
        out = self._end_prompt() if self._prompt else []
        out.append(F.SessionEnded(open_prompt=open_prompt))
        return out


# --- helpers -----------------------------------------------------------------------------------------


def _event_name(event: InputEvent) -> str:
    if not isinstance(event, InputEvent):
        raise TypeError(f"InputMachine takes typed input events, got {type(event).__name__}")
    return event.EVENT_NAME


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def violation_for_parse_error(
    exc: EventError,
    config: RulesConfig | None = None,
    *,
    request_id: str | None = None,
    state: str | None = None,
) -> ProtocolViolation:
    """Map a ``parse_input`` failure to the service's answer.

    - bytes that are not UTF-8 JSON → ``unparsable-chunk`` (UNPARSABLE_CHUNK, assumed: confident=False);
    - ``inputSchema.json`` given as an object (or any non-string) → ``input-schema-object``
      (UNPARSABLE_CHUNK, REP: confident);
    - an input event name the service does not define → ``unknown-input-event`` (UNK);
    - only unknown fields → ``invalid-event-unknown-field`` (GENERIC_INVALID, REP: confident);
    - any other schema or envelope error → ``invalid-event`` (UNK).
    """
    config = config if config is not None else RulesConfig()
    event_name: str | None = None
    if isinstance(exc, EventDecodeError):
        ctx = exc.__context__
        not_json = isinstance(ctx, ValueError) or str(exc).startswith(("event is not JSON", "event is not UTF-8"))
        rule_id = "unparsable-chunk" if not_json else "invalid-event"
    elif isinstance(exc, EventValidationError):
        event_name = exc.event_name
        locs = [loc for loc, _ in exc.errors]
        if exc.event_name not in INPUT_EVENTS:
            rule_id = "unknown-input-event"
        elif any(loc.endswith(".inputSchema.json") for loc in locs):
            rule_id = "input-schema-object"
        elif exc.errors and all(msg == "unknown field" for _, msg in exc.errors):
            rule_id = "invalid-event-unknown-field"
        else:
            rule_id = "invalid-event"
    else:
        raise TypeError(f"not a parse error: {type(exc).__name__}")
    r = RULES[rule_id]
    text = r.text if r.text is not None else config.unknown_text
    v = ProtocolViolation(
        service_text(text, request_id, config.prefix_request_id),
        rule=rule_id,
        event_name=event_name,
        state=state,
        confident=r.confident,
    )
    v.add_note(str(exc))
    return v

