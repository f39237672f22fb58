"""``OutputTracker``: what the service's output stream means, as turns (protocol.md §2).

Fed with typed output events (``feed(event) -> list[Record]``), it returns small frozen records
and keeps completed ``Turn`` records. Pure and role-agnostic like ``InputMachine``: the client
session uses it to drive callbacks, the fake server and the cassette tools to describe streams.

What a *turn* is here: one user contribution (speech or typed text) and the assistant's answer.
The service gives no turn boundary event (one ``completionId`` spans the whole prompt, §2.0), so:

- a turn starts at the first event that belongs to it (``userSpeechStart``/``End``, a USER
  transcript block, or assistant output when there is no open turn);
- a new turn starts when a USER transcript block opens after the current turn already has
  assistant output. ``userSpeechStart``/``End`` do **not** start it: during a barge-in they come
  before the interrupted turn's last events (§2.2 E), which still belong to the old turn; their
  offsets are kept for the next turn;
- a turn ends at the next turn, at ``completionEnd``, or at ``close()``.

Other behaviours covered (each from §2.2):

- USER transcripts split over several FINAL blocks (OME-MT "i'm going to go the" + "art gallery")
  are joined into one transcript (a space is inserted where neither side has one).
- ASSISTANT text is kept twice: SPECULATIVE (sent before its audio) and FINAL (often repeated
  after all the audio, Nova 1 and Nova 2, §2.2 B). A FINAL block that arrives after the next turn
  started, while the next turn has no assistant text yet and the previous turn still lacks FINAL
  blocks, is credited to the previous turn (pipecat PR #4042: "FINAL text can arrive … after the
  next user's speech start").
- Barge-in (§2.2 E, both reported variants): the ``{ "interrupted" : true }`` text (exact, or
  inside a longer text, where it is cut out) or a ``contentEnd`` INTERRUPTED marks the turn
  interrupted. Where neither is sent (Nova 2 field test: only ``userSpeechStart``, every
  contentEnd PARTIAL_TURN), ``userSpeechStart`` while an assistant AUDIO block is open, or user
  speech after assistant audio in a turn that never reached END_TURN when the next turn starts,
  does the same (switch: ``user_speech_is_barge_in``). ``BargeIn`` is emitted once per turn.
- Tool calls: collected at ``toolUse``, *requested* at the TOOL ``contentEnd`` (DOC D-TOOL: run
  the tool only then), *resolved* when told ``tool_result_sent(id)``.
- Audio is counted in bytes and in milliseconds at the rate of the block's ``contentStart``.
- Usage: ``delta`` added to the current turn (deltas before any turn go to the next one);
  ``total`` is the service's running total for the prompt.
- Unknown output events are counted (``unknown_events``) and otherwise ignored.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..events import (
    BARGE_IN_TEXT,
    AudioOutput,
    CompletionEnd,
    CompletionStart,
    ContentType,
    GenerationStage,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    Role,
    StopReason,
    TextOutput,
    ToolUse,
    UnknownOutputEvent,
    UsageEvent,
    UserSpeechEnd,
    UserSpeechStart,
    decode_tool_arguments,
)
from .limits import pcm_ms

__all__ = [
    "TokenUsage",
    "ToolCall",
    "Turn",
    "Record",
    "CompletionStarted",
    "CompletionEnded",
    "TurnStarted",
    "TurnEnded",
    "UserSpeechStarted",
    "UserSpeechEnded",
    "UserTranscript",
    "AssistantText",
    "AudioChunk",
    "AudioEnded",
    "ToolCallRequested",
    "ToolCallResolved",
    "BargeIn",
    "Usage",
    "OutputTracker",
    "join_text",
]


# --- values ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_speech: int = 0
    input_text: int = 0
    output_speech: int = 0
    output_text: int = 0

    @property
    def input(self) -> int:
        return self.input_speech + self.input_text

    @property
    def output(self) -> int:
        return self.output_speech + self.output_text

    @property
    def total(self) -> int:
        return self.input + self.output

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_speech + other.input_speech,
            self.input_text + other.input_text,
            self.output_speech + other.output_speech,
            self.output_text + other.output_text,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    tool_use_id: str
    name: str
    #: Decoded arguments (``decode_tool_arguments``); the raw string when it is not JSON.
    arguments: Any
    raw: str = field(repr=False)
    #: The TOOL block ended (the client should run the tool now).
    requested: bool = False
    #: The client reported the result sent (``tool_result_sent``).
    resolved: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One user contribution and the assistant's answer."""

    index: int
    completion_id: str | None
    user_text: str
    #: SPECULATIVE assistant text, joined (what the audio says, sent ahead of it).
    assistant_speculative: str
    #: FINAL assistant text, joined ("" when the service sent none).
    assistant_final: str
    audio_blocks: int
    audio_bytes: int
    audio_ms: float
    tool_calls: tuple[ToolCall, ...]
    interrupted: bool
    #: ``marker`` / ``stop-reason`` / ``user-speech`` / ``user-speech-inferred`` / None.
    barge_in_reason: str | None
    usage: TokenUsage
    user_speech_start_ms: int | None
    user_speech_end_ms: int | None
    user_speech_detected_ms: int | None

    @property
    def assistant_text(self) -> str:
        """FINAL text when there is any, else SPECULATIVE."""
        return self.assistant_final or self.assistant_speculative


# --- records -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Base of what ``OutputTracker.feed`` returns."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletionStarted(Record):
    completion_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletionEnded(Record):
    completion_id: str
    stop_reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnStarted(Record):
    turn_index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnEnded(Record):
    turn: Turn


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSpeechStarted(Record):
    offset_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSpeechEnded(Record):
    offset_ms: int
    detection_offset_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserTranscript(Record):
    """A piece of the user's FINAL transcript; ``transcript`` is the turn's text so far."""

    turn_index: int
    text: str
    transcript: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AssistantText(Record):
    turn_index: int
    stage: str  # SPECULATIVE | FINAL
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioChunk(Record):
    turn_index: int
    content_id: str
    n_bytes: int
    duration_ms: float
    sample_rate_hertz: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioEnded(Record):
    turn_index: int
    content_id: str
    stop_reason: str
    n_bytes: int
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallRequested(Record):
    turn_index: int
    tool_use_id: str
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallResolved(Record):
    tool_use_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeIn(Record):
    turn_index: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage(Record):
    delta: TokenUsage
    #: The service's running total for the prompt.
    total: TokenUsage


# --- working state ----------------------------------------------------------------------------------


def join_text(parts: list[str]) -> str:
    """Join text pieces, inserting one space where neither side has whitespace at the seam."""
    out = ""
    for part in parts:
        if not part:
            continue
        if out and not out[-1].isspace() and not part[0].isspace():
            out += " "
        out += part
    return out


@dataclass(slots=True)
class _TurnBuilder:
    index: int
    completion_id: str | None = None
    user_parts: list[str] = field(default_factory=list)
    speculative_parts: list[str] = field(default_factory=list)
    final_parts: list[str] = field(default_factory=list)
    speculative_blocks: int = 0
    final_blocks: int = 0
    audio_blocks: int = 0
    audio_bytes: int = 0
    audio_ms: float = 0.0
    tool_calls: dict[str, ToolCall] = field(default_factory=dict)
    interrupted: bool = False
    barge_in_reason: str | None = None
    usage: TokenUsage = TokenUsage()
    speech_start_ms: int | None = None
    speech_end_ms: int | None = None
    speech_detected_ms: int | None = None
    assistant_output: bool = False
    end_turn_seen: bool = False
    user_spoke_during_output: bool = False

    def freeze(self) -> Turn:
        return Turn(
            index=self.index,
            completion_id=self.completion_id,
            user_text=join_text(self.user_parts),
            assistant_speculative=join_text(self.speculative_parts),
            assistant_final=join_text(self.final_parts),
            audio_blocks=self.audio_blocks,
            audio_bytes=self.audio_bytes,
            audio_ms=self.audio_ms,
            tool_calls=tuple(self.tool_calls.values()),
            interrupted=self.interrupted,
            barge_in_reason=self.barge_in_reason,
            usage=self.usage,
            user_speech_start_ms=self.speech_start_ms,
            user_speech_end_ms=self.speech_end_ms,
            user_speech_detected_ms=self.speech_detected_ms,
        )


@dataclass(slots=True)
class _Block:
    content_id: str
    type: ContentType | str
    role: Role | str
    stage: GenerationStage | str | None
    sample_rate_hertz: int
    turn: _TurnBuilder
    n_bytes: int = 0
    tool_uses: list[str] = field(default_factory=list)


def _usage(direction: Any) -> TokenUsage:
    return TokenUsage(
        direction.input.speech_tokens, direction.input.text_tokens,
        direction.output.speech_tokens, direction.output.text_tokens,
    )


# --- the tracker ----------------------------------------------------------------------------------------


class OutputTracker:
    """Turns a stream of output events into turns.

    ``default_output_sample_rate``: the rate for audio whose block was never announced (the
    promptStart default, 24 kHz). ``user_speech_is_barge_in``: see the module doc.
    """

    def __init__(self, *, default_output_sample_rate: int = 24000, user_speech_is_barge_in: bool = True):
        self.default_output_sample_rate = default_output_sample_rate
        self.user_speech_is_barge_in = user_speech_is_barge_in
        self._sealed: list[_TurnBuilder] = []
        self._current: _TurnBuilder | None = None
        self._blocks: dict[str, _Block] = {}
        self._pending_usage = TokenUsage()
        self._pending_speech: tuple[int | None, int | None, int | None] = (None, None, None)
        self._completion_id: str | None = None
        self._completions: list[str] = []
        self._usage_sum = TokenUsage()
        self._usage_total = TokenUsage()
        self.unknown_events: Counter[str] = Counter()
        self.events_seen = 0
        self._dispatch: dict[type, Callable[[Any], list[Record]]] = {
            UsageEvent: self._on_usage,
            CompletionStart: self._on_completion_start,
            CompletionEnd: self._on_completion_end,
            UserSpeechStart: self._on_speech_start,
            UserSpeechEnd: self._on_speech_end,
            OutputContentStart: self._on_content_start,
            TextOutput: self._on_text,
            AudioOutput: self._on_audio,
            ToolUse: self._on_tool_use,
            OutputContentEnd: self._on_content_end,
            UnknownOutputEvent: self._on_unknown,
        }

    # --- views -----------------------------------------------------------------------------------

    @property
    def turns(self) -> tuple[Turn, ...]:
        """Completed turns (a late FINAL text or a tool resolution may still update them)."""
        return tuple(b.freeze() for b in self._sealed)

    @property
    def current_turn(self) -> Turn | None:
        return self._current.freeze() if self._current else None

    @property
    def all_turns(self) -> tuple[Turn, ...]:
        """Completed turns plus the one in progress."""
        return self.turns + ((self._current.freeze(),) if self._current else ())

    @property
    def completion_id(self) -> str | None:
        return self._completion_id

    @property
    def completions(self) -> tuple[str, ...]:
        return tuple(self._completions)

    @property
    def usage_total(self) -> TokenUsage:
        """The last running total the service reported."""
        return self._usage_total

    @property
    def usage_delta_sum(self) -> TokenUsage:
        """The sum of every delta seen (equals ``usage_total`` within one prompt)."""
        return self._usage_sum

    @property
    def pending_tool_calls(self) -> tuple[ToolCall, ...]:
        """Requested and not yet resolved, oldest first."""
        return tuple(c for b in self._builders() for c in b.tool_calls.values() if c.requested and not c.resolved)

    @property
    def audio_ms(self) -> float:
        return sum(b.audio_ms for b in self._builders())

    # --- verbs ----------------------------------------------------------------------------------

    def feed(self, event: OutputEvent) -> list[Record]:
        """Take one output event; return what it means."""
        self.events_seen += 1
        handler = self._dispatch.get(type(event))
        if handler is None:
            raise TypeError(f"OutputTracker takes typed output events, got {type(event).__name__}")
        cid = getattr(event, "completion_id", None)
        if cid and self._current is not None and self._current.completion_id is None:
            self._current.completion_id = cid
        return handler(event)

    def tool_result_sent(self, tool_use_id: str) -> list[Record]:
        """The client sent the result for ``tool_use_id``; ``[]`` if unknown or already resolved."""
        for b in self._builders():
            call = b.tool_calls.get(tool_use_id)
            if call is not None and not call.resolved:
                b.tool_calls[tool_use_id] = dataclasses.replace(call, resolved=True)
                return [ToolCallResolved(tool_use_id=tool_use_id)]
        return []

    def close(self) -> list[Record]:
        """End of stream: complete the turn in progress."""
        return self._seal()

    # --- turns ----------------------------------------------------------------------------------

    def _builders(self) -> list[_TurnBuilder]:
        return self._sealed + ([self._current] if self._current else [])

    def _turn(self, out: list[Record]) -> _TurnBuilder:
        """The turn in progress, started if needed."""
        if self._current is None:
            start, end, detected = self._pending_speech
            self._pending_speech = (None, None, None)
            index = len(self._sealed)
            self._current = _TurnBuilder(
                index, self._completion_id, usage=self._pending_usage,
                speech_start_ms=start, speech_end_ms=end, speech_detected_ms=detected,
            )
            self._pending_usage = TokenUsage()
            out.append(TurnStarted(turn_index=index))
        return self._current

    def _seal(self, *, next_turn: bool = False) -> list[Record]:
        turn = self._current
        if turn is None:
            return []
        out: list[Record] = []
        if (next_turn and self.user_speech_is_barge_in and not turn.interrupted and turn.user_spoke_during_output
                and not turn.end_turn_seen):
            out.extend(self._barge_in(turn, "user-speech-inferred"))
        self._sealed.append(turn)
        self._current = None
        out.append(TurnEnded(turn=turn.freeze()))
        return out

    def _barge_in(self, turn: _TurnBuilder, reason: str) -> list[Record]:
        if turn.interrupted:
            return []
        turn.interrupted = True
        turn.barge_in_reason = reason
        return [BargeIn(turn_index=turn.index, reason=reason)]

    # --- handlers -------------------------------------------------------------------------------

    def _on_unknown(self, event: UnknownOutputEvent) -> list[Record]:
        self.unknown_events[event.name] += 1
        return []

    def _on_usage(self, event: UsageEvent) -> list[Record]:
        delta = _usage(event.details.delta)
        total = _usage(event.details.total)
        self._usage_sum = self._usage_sum + delta
        self._usage_total = total
        if self._current is not None:
            self._current.usage = self._current.usage + delta
        else:
            self._pending_usage = self._pending_usage + delta
        return [Usage(delta=delta, total=total)]

    def _on_completion_start(self, event: CompletionStart) -> list[Record]:
        self._completion_id = event.completion_id
        self._completions.append(event.completion_id)
        if self._current is not None and self._current.completion_id is None:
            self._current.completion_id = event.completion_id
        return [CompletionStarted(completion_id=event.completion_id)]

    def _on_completion_end(self, event: CompletionEnd) -> list[Record]:
        out = self._seal()
        if self._completion_id == event.completion_id:
            self._completion_id = None  # the next turn belongs to the next completion
        out.append(CompletionEnded(completion_id=event.completion_id, stop_reason=str(event.stop_reason)))
        return out

    def _speech_belongs_to_next_turn(self) -> bool:
        return self._current is not None and self._current.assistant_output

    def _on_speech_start(self, event: UserSpeechStart) -> list[Record]:
        out: list[Record] = []
        offset = event.input_audio_offset_ms
        if self._speech_belongs_to_next_turn():
            turn = self._current
            assert turn is not None
            self._pending_speech = (offset, None, None)
            if turn.audio_blocks and not turn.end_turn_seen:
                turn.user_spoke_during_output = True
            audio_open = any(b.type == ContentType.AUDIO and b.turn is turn for b in self._blocks.values())
            if audio_open and self.user_speech_is_barge_in:
                out.extend(self._barge_in(turn, "user-speech"))
        else:
            turn = self._turn(out)
            if turn.speech_start_ms is None:
                turn.speech_start_ms = offset
        out.append(UserSpeechStarted(offset_ms=offset))
        return out

    def _on_speech_end(self, event: UserSpeechEnd) -> list[Record]:
        out: list[Record] = []
        end, detected = event.input_audio_offset_ms, event.input_audio_detection_offset_ms
        if self._speech_belongs_to_next_turn():
            self._pending_speech = (self._pending_speech[0], end, detected)
        else:
            turn = self._turn(out)
            turn.speech_end_ms, turn.speech_detected_ms = end, detected
        out.append(UserSpeechEnded(offset_ms=end, detection_offset_ms=detected))
        return out

    def _on_content_start(self, event: OutputContentStart) -> list[Record]:
        out: list[Record] = []
        stage = event.generation_stage
        if event.role == Role.USER:
            if self._speech_belongs_to_next_turn():
                out.extend(self._seal(next_turn=True))
            turn = self._turn(out)
        elif self._is_late_final(event.role, event.type, stage):
            turn = self._sealed[-1]
        else:
            turn = self._turn(out)
            turn.assistant_output = True
        rate = event.sample_rate_hertz or self.default_output_sample_rate
        self._blocks[event.content_id] = _Block(event.content_id, event.type, event.role, stage, rate, turn)
        if event.type == ContentType.AUDIO:
            turn.audio_blocks += 1
        elif event.type == ContentType.TEXT and event.role == Role.ASSISTANT:
            if stage == GenerationStage.SPECULATIVE:
                turn.speculative_blocks += 1
            else:
                turn.final_blocks += 1
        return out

    def _is_late_final(self, role: Any, type_: Any, stage: Any) -> bool:
        if role != Role.ASSISTANT or type_ != ContentType.TEXT or stage == GenerationStage.SPECULATIVE:
            return False
        if not self._sealed:
            return False
        prev = self._sealed[-1]
        cur = self._current
        current_has_text = cur is not None and (cur.speculative_blocks or cur.final_blocks)
        return not current_has_text and prev.final_blocks < prev.speculative_blocks

    def _block(self, content_id: str, role: Any, type_: ContentType, out: list[Record]) -> _Block:
        """The block of a content event; one is made up for an event whose contentStart was missed."""
        block = self._blocks.get(content_id)
        if block is None:
            turn = self._turn(out)
            block = _Block(content_id, type_, role, None, self.default_output_sample_rate, turn)
            self._blocks[content_id] = block
            if role != Role.USER:
                turn.assistant_output = True
        return block

    def _on_text(self, event: TextOutput) -> list[Record]:
        out: list[Record] = []
        block = self._block(event.content_id, event.role, ContentType.TEXT, out)
        turn = block.turn
        text = event.content
        if BARGE_IN_TEXT in text:
            out.extend(self._barge_in(turn, "marker"))
            text = join_text(text.split(BARGE_IN_TEXT))
            if not text.strip():
                return out
        if block.role == Role.USER:
            turn.user_parts.append(text)
            out.append(UserTranscript(turn_index=turn.index, text=text, transcript=join_text(turn.user_parts)))
        else:
            speculative = block.stage == GenerationStage.SPECULATIVE
            (turn.speculative_parts if speculative else turn.final_parts).append(text)
            stage = GenerationStage.SPECULATIVE if speculative else GenerationStage.FINAL
            out.append(AssistantText(turn_index=turn.index, stage=str(stage), text=text))
        return out

    def _on_audio(self, event: AudioOutput) -> list[Record]:
        out: list[Record] = []
        block = self._block(event.content_id, event.role, ContentType.AUDIO, out)
        n = event.pcm_len
        ms = pcm_ms(n, block.sample_rate_hertz)
        block.n_bytes += n
        block.turn.audio_bytes += n
        block.turn.audio_ms += ms
        out.append(AudioChunk(turn_index=block.turn.index, content_id=block.content_id, n_bytes=n,
                              duration_ms=ms, sample_rate_hertz=block.sample_rate_hertz))
        return out

    def _on_tool_use(self, event: ToolUse) -> list[Record]:
        out: list[Record] = []
        block = self._block(event.content_id, event.role, ContentType.TOOL, out)
        try:
            arguments = decode_tool_arguments(event.content)
        except ValueError:
            arguments = event.content
        block.turn.tool_calls[event.tool_use_id] = ToolCall(
            tool_use_id=event.tool_use_id, name=event.tool_name, arguments=arguments, raw=event.content
        )
        block.tool_uses.append(event.tool_use_id)
        return out

    def _on_content_end(self, event: OutputContentEnd) -> list[Record]:
        out: list[Record] = []
        block = self._blocks.pop(event.content_id, None)
        if block is None:
            return out
        turn = block.turn
        if event.stop_reason == StopReason.INTERRUPTED:
            out.extend(self._barge_in(turn, "stop-reason"))
        elif event.stop_reason == StopReason.END_TURN and block.role != Role.USER:
            turn.end_turn_seen = True
        if block.type == ContentType.AUDIO:
            out.append(AudioEnded(turn_index=turn.index, content_id=block.content_id,
                                  stop_reason=str(event.stop_reason), n_bytes=block.n_bytes,
                                  duration_ms=pcm_ms(block.n_bytes, block.sample_rate_hertz)))
        for tool_use_id in block.tool_uses:
            call = dataclasses.replace(turn.tool_calls[tool_use_id], requested=True)
            turn.tool_calls[tool_use_id] = call
            out.append(ToolCallRequested(turn_index=turn.index, tool_use_id=call.tool_use_id, name=call.name,
                                         arguments=call.arguments))
        return out
