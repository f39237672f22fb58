"""The scripted responder: behaviour without a recording (design §6, protocol.md §2.2).

A script says what the "model" hears and answers; the responder turns it into the output event
sequences the real service sends, per model generation, paced in input-audio time::

    script = Script([
        TurnScript("what's the weather?", tool_call=ToolCallScript("getWeather", {"city": "Paris"},
                   filler=["Let me check."]), follow_up=lambda r: [f"It is {r['temp']} degrees."]),
        TurnScript("thanks", ["You're welcome."]),
    ], default=TurnScript("hello.", ["I heard you."]))
    responder = ScriptedResponder(script, pacing="audio", barge_in_variant="spec")

What triggers a turn
    a user utterance, found by the energy VAD in the client's audio (``fakeserver.audio``), when
    its end-point is detected (or when the audio block closes during speech); or, on Nova 2+,
    an interactive USER text (``InteractiveTextSubmitted.starts_response``; Nova Sonic 1 does not
    answer typed text, REP litellm #31924). Turns are taken from ``Script.turns`` in order, then
    ``Script.default`` (None: no answer). A plain function ``(UserInput) -> TurnScript | None``
    can stand in for the script.

What a turn sends (§2.2 A/B, D; Nova 1 differences from §0)
    ``userSpeechStart`` when the VAD finds speech (Nova 2+), ``completionStart`` when no completion
    is open (on Nova 2+ right after ``userSpeechStart`` as in OME-N1/OME-TOOL, on Nova 1 when the
    turn starts), ``userSpeechEnd`` at the end-point (Nova 2+), then the USER FINAL transcript
    block (PARTIAL_TURN; for typed text an empty one, pipecat #4042, or the text with
    ``interactive_text_transcript="echo"``), input usage; then the reply sentences, each as an
    ASSISTANT SPECULATIVE text block followed by its AUDIO block (PARTIAL_TURN, END_TURN for the
    last), output usage after each; then FINAL text blocks repeating the sentences (the first
    END_TURN, the others PARTIAL_TURN; ``final_text=False`` leaves them out like OME-N1); then
    ``completionEnd`` END_TURN when nothing else is pending (``completion_end_after_turn``:
    default True on Nova 2+ as in the three single-turn Nova 2 captures, False on Nova 1 where
    SQ shows none until the prompt ends; the next turn then opens a new completion).

Tools
    After the USER transcript (and after ``reply``, if any): TOOL block (``toolUse.content`` = the
    JSON arguments, double-encoded with ``double_encode_arguments``) ending TOOL_USE. Nova 2+
    (async tools) speaks ``filler`` at once (a segment of its own, ending END_TURN as in
    OME-TOOL); Nova Sonic 1 says nothing until the result. The matching ``ToolResultDelivered``
    releases ``then_tool_call`` (chained call) or ``follow_up`` (fixed sentences or a function
    of the last result). Results for ids this responder did not issue are ignored. While a turn
    waits for its result, later turns are answered (the waiting turn resumes afterwards).

Pacing (``pacing``)
    ``"audio"`` (default): assistant audio "plays" in input-audio time. A block starting at
    playback time T0 releases chunk k once the client's audio reaches ``T0 + k*chunk_ms -
    lead_ms``, so the same number of chunks precede a barge-in at any clock speed. The responder
    keeps its own audio timeline from the ``AudioReceived`` facts (not ``ctx.wait_audio_ms``):
    the VAD, the barge-in and the chunk releases are then decided synchronously inside
    ``on_event``, in one order, whatever the scheduling of tasks. When no audio is coming (no
    audio block open, input ended, or no audio frame for ``audio_stall_s`` of service time, at
    least ``audio_stall_wall_floor_s`` wall seconds) playback falls back to the scaled clock
    (``ctx.sleep``); the clock's progress is kept as a credit added to audio time, so playback
    continues smoothly (no burst, no stall) when audio resumes.
    ``"realtime"``: the scaled clock only (first ``lead_ms`` at once, then a chunk per chunk_ms).
    ``"burst"``: every chunk at once.

Barge-in (§2.2 E, client-behaviours #22)
    When the VAD finds speech while a turn's AUDIO block is being released: ``userSpeechStart``
    (Nova 2+), the AUDIO ``contentEnd``, then (unless ``"silent"``) an ASSISTANT FINAL text block
    with the words spoken so far (chunks released / chunks in the sentence) and the marker
    ``{ "interrupted" : true }``, ending INTERRUPTED. The rest of that turn is dropped (a tool
    result still owed by it is accepted by the rules and answered with nothing); the user's
    utterance becomes the next turn. ``barge_in_variant``:

    - ``"spec"``: §2.2 E's suggested sequence; the AUDIO block ends ``barge_in_audio_stop``
      (default PARTIAL_TURN, the only stop reason the Nova 2 field test saw).
    - ``"pipecat"``: what pipecat reported (commits 3a865d56d, 757667fd4): AUDIO contentEnd
      END_TURN *before* the FINAL TEXT contentEnd INTERRUPTED.
    - ``"silent"``: the Nova 2 field test (REP 2026-07-14): only ``userSpeechStart`` and the AUDIO
      contentEnd (PARTIAL_TURN); no FINAL text, no marker, no INTERRUPTED.

Ids: every event carries ``sessionId`` (``ctx.session_id``) and ``promptName``; completion,
content and toolUse ids come from ``ctx.new_id()`` in a fixed order, so the same input gives the
same output. Output goes through one ordered outbox drained by one task.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import zlib
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from novasonic.events import (
    BARGE_IN_TEXT,
    AudioInput,
    AudioOutput,
    AudioOutputConfigurationOut,
    CompletionEnd,
    CompletionStart,
    ContentType,
    GenerationStage,
    InputEvent,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    Role,
    StopReason,
    TextOutput,
    TextOutputConfigurationOut,
    TokenCounts,
    ToolUse,
    ToolUseOutputConfigurationOut,
    UsageDetails,
    UsageDirection,
    UsageEvent,
    UserSpeechEnd,
    UserSpeechStart,
)
from novasonic.rules import facts as F
from novasonic.rules.output_tracker import join_text

from ..audio import (
    DEFAULT_ENDPOINT_SILENCE_MS,
    ENDPOINT_SILENCE_MS,
    VAD_MIN_SPEECH_MS,
    VAD_THRESHOLD_RMS,
    VAD_WINDOW_MS,
    SpeechEnd,
    SpeechStart,
    VadEvent,
    VoiceActivityDetector,
    pcm_samples,
    synth_speech,
)
from .base import StreamContext

__all__ = [
    "UserInput",
    "ToolCallScript",
    "TurnScript",
    "Script",
    "ScriptFn",
    "ScriptedConfig",
    "ScriptedResponder",
    "ScriptedStream",
    "Pacing",
    "BargeInVariant",
    "default_script",
]

Pacing: TypeAlias = Literal["audio", "realtime", "burst"]
BargeInVariant: TypeAlias = Literal["spec", "pipecat", "silent"]


# --- script data -------------------------------------------------------------------------------------


def _sentences(value: Any, what: str) -> tuple[str, ...]:
    """A sentence list as a tuple; a lone string is one sentence (not a list of characters)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    out = tuple(value)
    for s in out:
        if not isinstance(s, str):
            raise TypeError(f"{what} must hold strings, got {type(s).__name__}")
    return out


@dataclass(frozen=True, slots=True)
class UserInput:
    """What a dynamic script is told about one user contribution.

    ``kind``: ``"speech"`` (a VAD utterance; ``text`` is ``""``, the fake has no ASR) or
    ``"text"`` (interactive text, ``text`` as typed). ``index`` counts turns from 0.
    ``start_ms``/``end_ms``: the utterance in input-audio time (speech only).
    """

    kind: Literal["speech", "text"]
    text: str
    index: int
    start_ms: float | None = None
    end_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ToolCallScript:
    """One tool call. ``filler``: sentences spoken while the tool runs (Nova 2+ only).
    ``then_tool_call``: the next call of a chain, or a function of this call's result."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    filler: Sequence[str] = ()
    then_tool_call: ToolCallScript | Callable[[dict[str, Any]], ToolCallScript | None] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ToolCallScript.name must not be empty")
        object.__setattr__(self, "filler", _sentences(self.filler, "filler"))
        object.__setattr__(self, "arguments", dict(self.arguments))


@dataclass(frozen=True, slots=True)
class TurnScript:
    """One turn: the user transcript the "ASR" reports, the reply sentences, an optional tool call.

    ``reply`` is spoken first (leave it empty with a tool call to match capture D, where the TOOL
    block follows the USER transcript directly); with ``tool_call``, ``follow_up`` is spoken
    once the (last chained) result arrives: fixed sentences or a function of the result dict.
    """

    user_transcript: str = ""
    reply: Sequence[str] = ()
    tool_call: ToolCallScript | None = None
    follow_up: Sequence[str] | Callable[[dict[str, Any]], Sequence[str]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reply", _sentences(self.reply, "reply"))
        if self.follow_up is not None and not callable(self.follow_up):
            object.__setattr__(self, "follow_up", _sentences(self.follow_up, "follow_up"))


ScriptFn: TypeAlias = Callable[[UserInput], TurnScript | None]


@dataclass(frozen=True, slots=True)
class Script:
    """Turns consumed in order, one per user utterance or interactive text; then ``default``
    (``None``: turns past the end get no answer)."""

    turns: Sequence[TurnScript] = ()
    default: TurnScript | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "turns", tuple(self.turns))

    def turn_for(self, user_input: UserInput) -> TurnScript | None:
        if user_input.index < len(self.turns):
            return self.turns[user_input.index]
        return self.default


def default_script() -> Script:
    """What ``python -m fakeserver serve`` answers without a cassette: every utterance is
    transcribed as "hello." and answered "I heard you."."""
    return Script((), default=TurnScript("hello.", ("I heard you.",)))


# --- configuration ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedConfig:
    """Every switch of the scripted responder (see the module doc)."""

    # assistant audio
    #: audioOutput chunk length. 40 ms = the Nova 1 capture (1920 B @ 24 kHz, SQ); Nova 2 sent
    #: ~107 ms chunks (3416 B @ 16 kHz, OME-PRE): ``chunk_ms=106.75`` reproduces that.
    chunk_ms: float = 40.0
    #: Spoken length of a sentence: ``max(min_sentence_ms, ms_per_char * len(sentence))``.
    ms_per_char: float = 55.0
    min_sentence_ms: float = 300.0
    speech_amplitude: float = 8000.0

    # pacing
    pacing: Pacing = "audio"
    #: How far assistant audio runs ahead of the playback time (released at once at a block start).
    lead_ms: float = 300.0
    #: Service seconds without an audio frame before "audio" pacing falls back to the clock
    #: (None: never); never less than ``audio_stall_wall_floor_s`` wall seconds.
    audio_stall_s: float | None = 1.0
    audio_stall_wall_floor_s: float = 0.25

    # turn shape
    final_text: bool = True
    #: None: True on Nova 2+, False on Nova Sonic 1.
    completion_end_after_turn: bool | None = None
    #: A completion still open when the prompt ends gets its completionEnd then.
    completion_end_at_prompt_end: bool = True
    #: End the completion after a turn's speech even while its tool result is owed (OME-TOOL did,
    #: but that client never sent the result); the follow-up then opens a new completion.
    #: Default: keep the completion open until the follow-up is spoken.
    completion_end_while_tool_pending: bool = False
    #: USER block answering interactive text: ``"empty"`` (pipecat #4042) or ``"echo"`` the text.
    interactive_text_transcript: Literal["empty", "echo"] = "empty"
    #: Answer interactive text only while an audio block is open (client-behaviours d.6).
    interactive_text_requires_audio: bool = False
    double_encode_arguments: bool = False

    # barge-in
    barge_in: bool = True
    barge_in_variant: BargeInVariant = "spec"
    #: AUDIO contentEnd stop reason on barge-in; None: PARTIAL_TURN for "spec"/"silent",
    #: END_TURN for "pipecat".
    barge_in_audio_stop: StopReason | str | None = None
    #: Send the ``{ "interrupted" : true }`` textOutput in the FINAL block ("spec", "pipecat").
    barge_in_marker: bool = True

    # voice activity detection
    vad_threshold_rms: float = VAD_THRESHOLD_RMS
    vad_min_speech_ms: float = VAD_MIN_SPEECH_MS
    vad_window_ms: float = VAD_WINDOW_MS
    #: endpointingSensitivity → end-point silence; ``default_endpoint_silence_ms`` when not given.
    endpoint_silence_ms: Mapping[str, float] = field(default_factory=lambda: MappingProxyType(dict(ENDPOINT_SILENCE_MS)))
    default_endpoint_silence_ms: float = DEFAULT_ENDPOINT_SILENCE_MS

    # usage
    usage_events: bool = True
    #: OME-N1: 210 input speech tokens for ~3.5 s of audio; 35 output speech tokens for 1.4 s.
    input_speech_tokens_per_s: float = 60.0
    output_speech_tokens_per_s: float = 25.0
    chars_per_text_token: float = 4.0

    # end of input
    #: ``on_input_end`` waits this long (service seconds, at least the wall floor) for output to finish.
    input_end_timeout_s: float = 30.0
    input_end_wall_floor_s: float = 2.0

    def __post_init__(self) -> None:
        if self.pacing not in ("audio", "realtime", "burst"):
            raise ValueError(f"pacing must be 'audio', 'realtime' or 'burst' (got {self.pacing!r})")
        if self.barge_in_variant not in ("spec", "pipecat", "silent"):
            raise ValueError(f"barge_in_variant must be 'spec', 'pipecat' or 'silent' (got {self.barge_in_variant!r})")
        if self.interactive_text_transcript not in ("empty", "echo"):
            raise ValueError("interactive_text_transcript must be 'empty' or 'echo'")
        if self.barge_in_audio_stop is not None and str(self.barge_in_audio_stop) not in (
            "PARTIAL_TURN", "END_TURN", "INTERRUPTED"
        ):
            raise ValueError(f"barge_in_audio_stop must be PARTIAL_TURN, END_TURN or INTERRUPTED (got {self.barge_in_audio_stop!r})")
        for name in ("chunk_ms", "chars_per_text_token"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("ms_per_char", "min_sentence_ms", "lead_ms", "audio_stall_wall_floor_s", "input_end_timeout_s",
                     "input_end_wall_floor_s", "input_speech_tokens_per_s", "output_speech_tokens_per_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        object.__setattr__(self, "endpoint_silence_ms", MappingProxyType({str(k).upper(): float(v)
                                                                         for k, v in self.endpoint_silence_ms.items()}))

    @property
    def audio_stop_on_barge_in(self) -> str:
        if self.barge_in_audio_stop is not None:
            return str(self.barge_in_audio_stop)
        return "END_TURN" if self.barge_in_variant == "pipecat" else "PARTIAL_TURN"


_CONFIG_FIELDS = frozenset(f.name for f in fields(ScriptedConfig))


# --- the responder -------------------------------------------------------------------------------------


class ScriptedResponder:
    """``Responder`` answering from a ``Script`` (or a script function).

    ``ScriptedResponder(script=None, config=None, *, share_turns_across_streams=False, **options)``:
    ``options`` are ``ScriptedConfig`` fields overriding ``config``. With
    ``share_turns_across_streams`` the turn index continues over the streams this responder serves
    (a session recycled onto a new stream continues the script); by default each stream starts at
    turn 0.
    """

    def __init__(
        self,
        script: Script | ScriptFn | Sequence[TurnScript] | None = None,
        config: ScriptedConfig | None = None,
        *,
        share_turns_across_streams: bool = False,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - _CONFIG_FIELDS)
        if unknown:
            raise TypeError(f"unknown ScriptedResponder option(s): {', '.join(unknown)}")
        if script is None:
            script = default_script()
        elif not isinstance(script, Script) and not callable(script):
            script = Script(tuple(script))
        self.script: Script | ScriptFn = script
        self.config = replace(config if config is not None else ScriptedConfig(), **options)
        self.share_turns_across_streams = share_turns_across_streams
        self._shared_turns = 0
        self.streams: list[ScriptedStream] = []

    def open_stream(self, ctx: StreamContext) -> ScriptedStream:
        stream = ScriptedStream(self, ctx)
        self.streams.append(stream)
        return stream

    def turn_for(self, user_input: UserInput) -> TurnScript | None:
        if isinstance(self.script, Script):
            return self.script.turn_for(user_input)
        return self.script(user_input)

    def _take_turn_index(self, stream: ScriptedStream) -> int:
        if self.share_turns_across_streams:
            i = self._shared_turns
            self._shared_turns += 1
            return i
        return stream.turns_taken

    def __repr__(self) -> str:
        return f"ScriptedResponder(script={self.script!r}, config={self.config!r})"


# --- the per-stream machinery ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ChunkWait:
    """Release the next audio chunk once playback time reaches ``due_ms``."""

    due_ms: float


@dataclass(frozen=True, slots=True)
class _ToolWait:
    tool_use_id: str


_Wait: TypeAlias = _ChunkWait | _ToolWait
_JobGen: TypeAlias = Generator[_Wait, Any, None]


@dataclass(eq=False, slots=True)
class _Speaking:
    """The AUDIO block being released."""

    sentence: str
    content_id: str
    n_chunks: int
    duration_ms: float
    sent: int = 0


@dataclass(eq=False, slots=True)
class _Job:
    """One turn's output, a synchronous generator that yields what it waits for."""

    name: str
    gen: _JobGen | None = None
    wait: _Wait | None = None
    speaking: _Speaking | None = None
    #: Sentences of the current segment whose audio was fully released.
    spoken: list[str] = field(default_factory=list)
    tool_ids: list[str] = field(default_factory=list)

    def close(self) -> None:
        if self.gen is not None:
            self.gen.close()


@dataclass(slots=True)
class _Totals:
    in_speech: int = 0
    in_text: int = 0
    out_speech: int = 0
    out_text: int = 0


def _stage_fields(stage: GenerationStage) -> str:
    return json.dumps({"generationStage": str(stage)}, separators=(",", ":"))


def _words_prefix(sentence: str, fraction: float) -> str:
    words = sentence.split()
    n = int(math.floor(len(words) * max(0.0, min(1.0, fraction)) + 1e-9))
    return " ".join(words[:n])


@functools.lru_cache(maxsize=128)
def _sentence_pcm(duration_ms: float, rate: int, seed: int, amplitude: float) -> bytes:
    """``synth_speech`` for one sentence, cached. It is deterministic (same arguments, same bytes),
    so streams saying the same sentence share the result instead of recomputing it: the numpy
    synthesis was a fifth of the server's CPU under load."""
    return synth_speech(duration_ms, rate, seed=seed, amplitude=amplitude)


class ScriptedStream:
    """The ``StreamResponder`` of one stream (see the module doc).

    Besides the protocol methods, tests may use ``wait_flushed()`` (every generated event was
    passed to ``ctx.emit``) and ``wait_idle()`` (nothing is being generated: no turn speaking or
    queued, outbox empty; turns waiting for a tool result do not count).
    """

    def __init__(self, responder: ScriptedResponder, ctx: StreamContext) -> None:
        self.responder = responder
        self.ctx = ctx
        self.config = responder.config
        self.model = ctx.model
        cfg = self.config
        self.completion_end_after_turn = (
            (not self.model.is_nova_1) if cfg.completion_end_after_turn is None else cfg.completion_end_after_turn
        )
        self.turns_taken = 0
        self._vad = self._make_vad(None)

        # prompt
        self._prompt_name: str | None = None
        self._out_rate = 24000
        self._system_text: str | None = None
        self._system_billed = False
        self._stopped = False  # prompt/session ended: generate nothing more
        self._closed = False  # stream over: emit nothing more
        self._input_ended = False

        # completion and usage
        self._completion_id: str | None = None
        self._completion_open = False
        self._totals = _Totals()
        self._billed_audio_ms = 0.0

        # audio time
        self._audio_rates: dict[str, int] = {}
        self._audio_open = False
        self._audio_ms = 0.0
        self._credit_ms = 0.0
        self._cursor_ms = 0.0
        self._frames_seen = 0
        self._stalled = False

        # jobs
        self._active: _Job | None = None
        self._ready: deque[_Job] = deque()
        self._parked: dict[str, _Job] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._issued_tools: set[str] = set()
        self._answered_tools: set[str] = set()
        self._dropped_tools: set[str] = set()

        # output
        self._outbox: deque[OutputEvent] = deque()
        self._emitting = False
        self._wake: asyncio.Event | None = None
        self._pump_task: asyncio.Task[Any] | None = None
        self._clock_task: asyncio.Task[Any] | None = None
        self._watchdog_task: asyncio.Task[Any] | None = None
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # --- StreamResponder ---------------------------------------------------------------------------

    async def on_event(self, event: InputEvent, facts: Sequence[F.Fact]) -> None:
        if self._closed:
            return
        for fact in facts:
            handler = self._FACT_HANDLERS.get(type(fact))
            if handler is not None:
                handler(self, event, fact)
        self._advance()

    async def on_input_end(self) -> None:
        self._input_ended = True
        for job in self._parked.values():  # their results can no longer arrive
            job.close()
            self._dropped_tools.update(job.tool_ids)
        self._parked.clear()
        self._advance()
        cfg = self.config
        timeout = max(self.ctx.clock.to_wall(cfg.input_end_timeout_s), cfg.input_end_wall_floor_s)
        try:
            await asyncio.wait_for(self._wait_for(self._is_idle), timeout)
        except TimeoutError:
            self._stop_jobs()
            self._notify()

    async def aclose(self) -> None:
        self._closed = True
        self._stopped = True
        self._stop_jobs()
        self._outbox.clear()
        current = asyncio.current_task()
        for task in (self._pump_task, self._clock_task, self._watchdog_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self._pump_task = None
        self._notify()
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    # --- test helpers ------------------------------------------------------------------------------

    async def wait_flushed(self) -> None:
        """Return once every event generated so far was handed to ``ctx.emit``."""
        await self._wait_for(self._is_flushed)

    async def wait_idle(self) -> None:
        """Return once no turn is speaking or queued and the outbox is empty."""
        await self._wait_for(self._is_idle)

    @property
    def playback_ms(self) -> float:
        """The pacing time: input-audio time plus clock credit (``"realtime"``: clock only)."""
        return self._ref_ms

    @property
    def quiet(self) -> bool:
        """Idle (``wait_idle``'s condition) and the VAD is not inside an utterance: silent input
        audio cannot make this stream send anything (only a tool result or speech can). The
        cassette generator sends runs of silence without a round trip per frame while quiet."""
        return self._is_idle() and not self._vad.in_speech

    @property
    def pending_tool_use_ids(self) -> tuple[str, ...]:
        """Tool calls issued by this stream and not answered yet."""
        return tuple(t for t in self._issued_tools if t not in self._answered_tools and t not in self._dropped_tools)

    # --- facts ---------------------------------------------------------------------------------------

    def _on_session_started(self, event: InputEvent, fact: F.SessionStarted) -> None:
        self._vad = self._make_vad(fact.endpointing_sensitivity)
        self._vad.reset(self._audio_ms)

    def _on_prompt_started(self, event: InputEvent, fact: F.PromptStarted) -> None:
        self._prompt_name = fact.prompt_name
        self._out_rate = fact.output_sample_rate_hertz
        self._system_text = None
        self._system_billed = False
        self._stopped = False
        self._completion_id = None
        self._completion_open = False
        self._totals = _Totals()
        self._billed_audio_ms = self._audio_ms
        self._vad.reset(self._audio_ms)

    def _on_system_prompt(self, event: InputEvent, fact: F.SystemPromptReceived) -> None:
        self._system_text = fact.text

    def _on_audio_opened(self, event: InputEvent, fact: F.AudioBlockOpened) -> None:
        self._audio_rates[fact.content_name] = fact.sample_rate_hertz
        self._audio_open = True
        if not self._system_billed and not self._stopped:
            # OME-N1 / SQ: a usage event for the system prompt before anything else
            self._system_billed = True
            self._usage(in_text=self._text_tokens(self._system_text or ""))

    def _on_audio_received(self, event: InputEvent, fact: F.AudioReceived) -> None:
        self._frames_seen += 1
        self._stalled = False
        if self._stopped or not isinstance(event, AudioInput):
            self._audio_ms = max(self._audio_ms, fact.total_ms)
            return
        rate = self._audio_rates.get(fact.content_name, 16000)
        start = fact.total_ms - fact.duration_ms
        for vad_event in self._vad.feed(event.pcm, rate, at_ms=start):
            self._set_audio_time(vad_event.detected_ms)
            self._on_vad(vad_event)
        self._set_audio_time(fact.total_ms)

    def _on_audio_closed(self, event: InputEvent, fact: F.AudioBlockClosed) -> None:
        self._audio_open = False
        if fact.implicit or self._stopped:
            self._vad.reset(self._audio_ms)
            return
        for vad_event in self._vad.flush():
            self._on_vad(vad_event)

    def _on_interactive_text(self, event: InputEvent, fact: F.InteractiveTextSubmitted) -> None:
        if self._stopped or not fact.starts_response:
            return
        if self.config.interactive_text_requires_audio and not self._audio_open:
            return
        self._enqueue_turn(UserInput("text", fact.text, 0))

    def _on_tool_result(self, event: InputEvent, fact: F.ToolResultDelivered) -> None:
        tid = fact.tool_use_id
        if tid not in self._issued_tools or tid in self._answered_tools or tid in self._dropped_tools:
            return
        self._answered_tools.add(tid)
        if self._stopped:
            return
        self._results[tid] = dict(fact.result)
        job = self._parked.pop(tid, None)
        if job is not None:
            self._ready.append(job)

    def _on_prompt_ended(self, event: InputEvent, fact: F.PromptEnded | F.SessionEnded) -> None:
        if self._stopped:
            return
        block_open = self._active is not None and self._active.speaking is not None
        self._stop_jobs()
        self._stopped = True
        if self.config.completion_end_at_prompt_end and self._completion_open and not block_open:
            self._end_completion()

    _FACT_HANDLERS: dict[type, Callable[..., None]] = {
        F.SessionStarted: _on_session_started,
        F.PromptStarted: _on_prompt_started,
        F.SystemPromptReceived: _on_system_prompt,
        F.AudioBlockOpened: _on_audio_opened,
        F.AudioReceived: _on_audio_received,
        F.AudioBlockClosed: _on_audio_closed,
        F.InteractiveTextSubmitted: _on_interactive_text,
        F.ToolResultDelivered: _on_tool_result,
        F.PromptEnded: _on_prompt_ended,
        F.SessionEnded: _on_prompt_ended,
    }

    # --- VAD ---------------------------------------------------------------------------------------

    def _make_vad(self, sensitivity: str | None) -> VoiceActivityDetector:
        cfg = self.config
        return VoiceActivityDetector.for_sensitivity(
            sensitivity,
            endpoint_silence_ms=cfg.endpoint_silence_ms,
            default_endpoint_silence_ms=cfg.default_endpoint_silence_ms,
            threshold_rms=cfg.vad_threshold_rms,
            min_speech_ms=cfg.vad_min_speech_ms,
            window_ms=cfg.vad_window_ms,
        )

    def _on_vad(self, ev: VadEvent) -> None:
        if self._stopped:
            return
        speech_events = self.model.user_speech_events
        if isinstance(ev, SpeechStart):
            if speech_events:
                self._out(UserSpeechStart(input_audio_offset_ms=int(round(ev.start_ms)), **self._ids()))
            job = self._active
            if job is not None and job.speaking is not None and self.config.barge_in:
                self._barge_in(job)
            elif speech_events:
                self._start_completion()  # OME-N1, OME-TOOL: completionStart right after userSpeechStart
        elif isinstance(ev, SpeechEnd):
            if speech_events:
                self._out(UserSpeechEnd(input_audio_offset_ms=int(round(ev.end_ms)),
                                        input_audio_detection_offset_ms=int(round(ev.detected_ms)), **self._ids()))
            self._enqueue_turn(UserInput("speech", "", 0, ev.start_ms, ev.end_ms))
        self._advance()

    # --- turns -------------------------------------------------------------------------------------

    def _enqueue_turn(self, user_input: UserInput) -> None:
        index = self.responder._take_turn_index(self)
        self.turns_taken += 1
        user_input = replace(user_input, index=index)
        turn = self.responder.turn_for(user_input)
        if turn is None:
            self._maybe_end_completion()
            return
        job = _Job(f"turn {index}")
        job.gen = self._turn(job, user_input, turn)
        self._ready.append(job)

    def _turn(self, job: _Job, user_input: UserInput, turn: TurnScript) -> _JobGen:
        self._start_completion()
        if user_input.kind == "speech":
            transcript = turn.user_transcript
        else:
            transcript = user_input.text if self.config.interactive_text_transcript == "echo" else ""
        self._text_block(Role.USER, GenerationStage.FINAL, [transcript], StopReason.PARTIAL_TURN)
        self._usage(in_speech=self._bill_input_speech(), in_text=self._text_tokens(transcript))
        if turn.reply:
            yield from self._speak(job, turn.reply)
        if turn.tool_call is not None:
            result = yield from self._tool_chain(job, turn.tool_call)
            follow = turn.follow_up(result) if callable(turn.follow_up) else turn.follow_up
            sentences = _sentences(follow, "follow_up")
            if sentences:
                yield from self._speak(job, sentences)

    def _tool_chain(self, job: _Job, call: ToolCallScript | None) -> Generator[_Wait, Any, dict[str, Any]]:
        result: dict[str, Any] = {}
        while call is not None:
            tid = self._tool_block(job, call)
            if self.model.async_tools and call.filler:
                yield from self._speak(job, call.filler)
            result = yield _ToolWait(tid)
            nxt = call.then_tool_call
            call = nxt(result) if callable(nxt) and not isinstance(nxt, ToolCallScript) else nxt
        return result

    def _speak(self, job: _Job, sentences: Sequence[str]) -> _JobGen:
        """One segment: SPECULATIVE text + AUDIO per sentence, then the FINAL texts."""
        said = [s for s in sentences if s.strip()]
        if not said:
            return
        self._start_completion()  # a follow-up may come after the completion ended
        cfg = self.config
        rate = self._out_rate
        chunk_samples = max(1, pcm_samples(cfg.chunk_ms, rate))
        chunk_ms = chunk_samples * 1000.0 / rate
        job.spoken = []
        for i, sentence in enumerate(said):
            last = i == len(said) - 1
            self._text_block(Role.ASSISTANT, GenerationStage.SPECULATIVE, [sentence], StopReason.PARTIAL_TURN)
            duration = max(cfg.min_sentence_ms, cfg.ms_per_char * len(sentence.strip()))
            pcm = _sentence_pcm(duration, rate, zlib.crc32(sentence.encode("utf-8")), cfg.speech_amplitude)
            n_samples = len(pcm) // 2
            actual_ms = n_samples * 1000.0 / rate
            content_id = self.ctx.new_id()
            self._out(OutputContentStart(
                content_id=content_id, role=Role.ASSISTANT, type=ContentType.AUDIO,
                audio_output_configuration=AudioOutputConfigurationOut(sample_rate_hertz=rate), **self._cids(),
            ))
            step = 2 * chunk_samples
            chunks = [pcm[o : o + step] for o in range(0, len(pcm), step)]
            start = max(self._cursor_ms, self._ref_ms)
            job.speaking = speaking = _Speaking(sentence, content_id, len(chunks), actual_ms)
            for k, chunk in enumerate(chunks):
                yield _ChunkWait(start + k * chunk_ms - cfg.lead_ms)
                self._out(AudioOutput.from_pcm(chunk, content_id=content_id, role=Role.ASSISTANT, **self._cids()))
                speaking.sent += 1
                self._cursor_ms = start + min((k + 1) * chunk_ms, actual_ms)
            job.speaking = None
            self._content_end(content_id, ContentType.AUDIO, StopReason.END_TURN if last else StopReason.PARTIAL_TURN)
            job.spoken.append(sentence)
            self._usage(out_speech=self._speech_tokens(actual_ms), out_text=self._text_tokens(sentence))
        job.spoken = []
        if cfg.final_text:
            for i, sentence in enumerate(said):  # §2.2 B: first FINAL END_TURN, later ones PARTIAL_TURN
                stop = StopReason.END_TURN if i == 0 else StopReason.PARTIAL_TURN
                self._text_block(Role.ASSISTANT, GenerationStage.FINAL, [sentence], stop)

    def _barge_in(self, job: _Job) -> None:
        cfg = self.config
        speaking = job.speaking
        assert speaking is not None
        spoken = list(job.spoken)
        partial = _words_prefix(speaking.sentence, speaking.sent / speaking.n_chunks if speaking.n_chunks else 1.0)
        if partial:
            spoken.append(partial)
        self._content_end(speaking.content_id, ContentType.AUDIO, cfg.audio_stop_on_barge_in)
        played_ms = speaking.duration_ms * (speaking.sent / speaking.n_chunks if speaking.n_chunks else 1.0)
        self._usage(out_speech=self._speech_tokens(played_ms), out_text=self._text_tokens(partial))
        if cfg.barge_in_variant != "silent":
            texts = [join_text(spoken)] if spoken else []
            if cfg.barge_in_marker:
                texts.append(BARGE_IN_TEXT)
            self._text_block(Role.ASSISTANT, GenerationStage.FINAL, texts, StopReason.INTERRUPTED)
        job.speaking = None
        job.close()
        self._dropped_tools.update(t for t in job.tool_ids if t not in self._answered_tools)
        if self._active is job:
            self._active = None
        self._cursor_ms = self._ref_ms  # the client drops what it had queued

    # --- the executor ------------------------------------------------------------------------------

    def _advance(self) -> None:
        """Run jobs until each waits for something that has not happened yet."""
        while not self._stopped and not self._closed:
            job = self._active
            if job is None:
                if not self._ready or self._vad.in_speech:
                    break  # a queued answer waits for the user to finish
                job = self._active = self._ready.popleft()
            wait = job.wait
            send: Any = None
            if isinstance(wait, _ChunkWait):
                if not self._released(wait):
                    break
            elif isinstance(wait, _ToolWait):
                if wait.tool_use_id not in self._results:
                    self._parked[wait.tool_use_id] = job
                    self._active = None
                    self._maybe_end_completion()
                    continue
                send = self._results.pop(wait.tool_use_id)
            assert job.gen is not None
            try:
                job.wait = job.gen.send(send)
            except StopIteration:
                job.wait = None
                self._active = None
                self._maybe_end_completion()
        self._arm_timers()
        self._notify()

    def _released(self, wait: _ChunkWait) -> bool:
        return self.config.pacing == "burst" or self._ref_ms >= wait.due_ms - 1e-6

    @property
    def _ref_ms(self) -> float:
        if self.config.pacing == "realtime":
            return self._credit_ms
        return self._audio_ms + self._credit_ms

    def _audio_live(self) -> bool:
        return self.config.pacing == "audio" and self._audio_open and not self._input_ended and not self._stalled

    def _set_audio_time(self, ms: float) -> None:
        if ms > self._audio_ms:
            self._audio_ms = ms
            self._advance()

    def _waiting_chunk(self) -> _Job | None:
        job = self._active
        if job is None or self._stopped or self._closed or not isinstance(job.wait, _ChunkWait):
            return None
        return job

    def _arm_timers(self) -> None:
        if self.config.pacing == "burst" or self._waiting_chunk() is None:
            return
        if self._audio_live():
            if self.config.audio_stall_s is not None and (self._watchdog_task is None or self._watchdog_task.done()):
                self._watchdog_task = self.ctx.spawn(self._watchdog(), name="scripted-audio-watchdog")
        elif self._clock_task is None or self._clock_task.done():
            self._clock_task = self.ctx.spawn(self._clock_pacing(), name="scripted-clock-pacing")

    async def _clock_pacing(self) -> None:
        """Release chunks on the scaled clock while no input audio drives playback."""
        while (job := self._waiting_chunk()) is not None and not self._audio_live():
            wait = job.wait
            assert isinstance(wait, _ChunkWait)
            await self.ctx.sleep(max(0.0, wait.due_ms - self._ref_ms) / 1000.0)
            if self._active is job and job.wait is wait and not self._audio_live():
                self._credit_ms += max(0.0, wait.due_ms - self._ref_ms)
                self._advance()

    async def _watchdog(self) -> None:
        """Notice input audio stalling while playback waits for it."""
        cfg = self.config
        assert cfg.audio_stall_s is not None
        while self._waiting_chunk() is not None and self._audio_live():
            frames = self._frames_seen
            await asyncio.sleep(max(self.ctx.clock.to_wall(cfg.audio_stall_s), cfg.audio_stall_wall_floor_s))
            if self._frames_seen == frames and self._waiting_chunk() is not None and self._audio_live():
                self._stalled = True
                self._advance()  # arms the clock pacing
                return

    def _stop_jobs(self) -> None:
        jobs = ([self._active] if self._active else []) + list(self._ready) + list(self._parked.values())
        for job in jobs:
            job.close()
            self._dropped_tools.update(t for t in job.tool_ids if t not in self._answered_tools)
        self._active = None
        self._ready.clear()
        self._parked.clear()
        self._results.clear()
        current = asyncio.current_task()
        for task in (self._clock_task, self._watchdog_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self._clock_task = self._watchdog_task = None

    # --- completion, usage ---------------------------------------------------------------------------

    def _ids(self) -> dict[str, Any]:
        return {"prompt_name": self._prompt_name or self.ctx.prompt_name or "", "session_id": self.ctx.session_id}

    def _cid(self) -> str:
        if self._completion_id is None:
            self._completion_id = self.ctx.new_id()
        return self._completion_id

    def _cids(self) -> dict[str, Any]:
        return {**self._ids(), "completion_id": self._cid()}

    def _start_completion(self) -> None:
        if not self._completion_open:
            self._completion_open = True
            self._out(CompletionStart(**self._cids()))

    def _end_completion(self) -> None:
        self._out(CompletionEnd(stop_reason=StopReason.END_TURN, **self._cids()))
        self._completion_open = False
        self._completion_id = None

    def _maybe_end_completion(self) -> None:
        if (self.completion_end_after_turn and self._completion_open and self._active is None and not self._ready
                and (not self._parked or self.config.completion_end_while_tool_pending)
                and not self._vad.in_speech and not self._stopped):
            self._end_completion()

    def _text_tokens(self, text: str) -> int:
        return math.ceil(len(text) / self.config.chars_per_text_token) if text else 0

    def _speech_tokens(self, ms: float) -> int:
        return int(round(ms / 1000.0 * self.config.output_speech_tokens_per_s))

    def _bill_input_speech(self) -> int:
        ms = max(0.0, self._audio_ms - self._billed_audio_ms)
        self._billed_audio_ms = self._audio_ms
        return int(round(ms / 1000.0 * self.config.input_speech_tokens_per_s))

    def _usage(self, *, in_speech: int = 0, in_text: int = 0, out_speech: int = 0, out_text: int = 0) -> None:
        if not self.config.usage_events or not (in_speech or in_text or out_speech or out_text):
            return
        t = self._totals
        t.in_speech += in_speech
        t.in_text += in_text
        t.out_speech += out_speech
        t.out_text += out_text
        details = UsageDetails(
            delta=UsageDirection(input=TokenCounts(speech_tokens=in_speech, text_tokens=in_text),
                                 output=TokenCounts(speech_tokens=out_speech, text_tokens=out_text)),
            total=UsageDirection(input=TokenCounts(speech_tokens=t.in_speech, text_tokens=t.in_text),
                                 output=TokenCounts(speech_tokens=t.out_speech, text_tokens=t.out_text)),
        )
        total_in, total_out = t.in_speech + t.in_text, t.out_speech + t.out_text
        self._out(UsageEvent(details=details, total_input_tokens=total_in, total_output_tokens=total_out,
                             total_tokens=total_in + total_out, **self._cids()))

    # --- blocks ------------------------------------------------------------------------------------

    def _text_block(self, role: Role, stage: GenerationStage, texts: list[str], stop: StopReason | str) -> None:
        content_id = self.ctx.new_id()
        cids = self._cids()
        self._out(OutputContentStart(
            additional_model_fields=_stage_fields(stage), content_id=content_id, role=role, type=ContentType.TEXT,
            text_output_configuration=TextOutputConfigurationOut(), **cids,
        ))
        for text in texts:
            self._out(TextOutput(content=text, content_id=content_id, role=role, **cids))
        self._content_end(content_id, ContentType.TEXT, stop)

    def _content_end(self, content_id: str, type_: ContentType, stop: StopReason | str) -> None:
        self._out(OutputContentEnd(content_id=content_id, stop_reason=stop, type=type_, **self._cids()))

    def _tool_block(self, job: _Job, call: ToolCallScript) -> str:
        self._start_completion()
        content_id = self.ctx.new_id()
        tool_use_id = self.ctx.new_id()
        cids = self._cids()
        content = json.dumps(dict(call.arguments), separators=(",", ":"), ensure_ascii=False)
        if self.config.double_encode_arguments:
            content = json.dumps(content, ensure_ascii=False)
        self._out(OutputContentStart(
            content_id=content_id, role=Role.TOOL, type=ContentType.TOOL,
            tool_use_output_configuration=ToolUseOutputConfigurationOut(), **cids,
        ))
        self._out(ToolUse(content=content, content_id=content_id, role=Role.TOOL, tool_name=call.name,
                          tool_use_id=tool_use_id, **cids))
        self._content_end(content_id, ContentType.TOOL, StopReason.TOOL_USE)
        job.tool_ids.append(tool_use_id)
        self._issued_tools.add(tool_use_id)
        return tool_use_id

    # --- output ------------------------------------------------------------------------------------

    def _out(self, event: OutputEvent) -> None:
        if self._closed:
            return
        self._outbox.append(event)
        if self._pump_task is None or self._pump_task.done():
            self._wake = asyncio.Event()
            self._pump_task = self.ctx.spawn(self._pump(), name="scripted-output")
        assert self._wake is not None
        self._wake.set()

    async def _pump(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self._closed:
            if not self._outbox:
                wake.clear()
                self._notify()
                await wake.wait()
                continue
            event = self._outbox.popleft()
            self._emitting = True
            try:
                ok = await self.ctx.emit(event)
            finally:
                self._emitting = False
            if not ok:  # the stream is closed
                self._closed = True
                self._stopped = True
                self._outbox.clear()
                self._stop_jobs()
                break
        self._notify()

    def _is_flushed(self) -> bool:
        return self._closed or (not self._outbox and not self._emitting)

    def _is_idle(self) -> bool:
        if self._closed:
            return True
        generating = not self._stopped and (self._active is not None or (self._ready and not self._vad.in_speech))
        return not generating and self._is_flushed()

    async def _wait_for(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        try:
            await fut
        finally:
            if (predicate, fut) in self._waiters:
                self._waiters.remove((predicate, fut))

    def _notify(self) -> None:
        for predicate, fut in list(self._waiters):
            if not fut.done() and predicate():
                fut.set_result(None)

    def __repr__(self) -> str:
        return (f"ScriptedStream(model={self.model.model_id!r}, turns_taken={self.turns_taken}, "
                f"audio_ms={self._audio_ms:.0f}, playback_ms={self._ref_ms:.0f}, active={self._active and self._active.name})")
