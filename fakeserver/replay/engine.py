"""The replay engine: a responder that answers a client from a cassette, reactively and
deterministically (design §4).

``ReplayResponder(cassette, match_on=..., ids=..., ...)`` serves the cassette's streams in order,
one per new stream (connection); each stream is a :class:`ReplayStream` walking its
:class:`~fakeserver.replay.plan.StreamPlan`. A service step is released when **all** of these
hold:

1. **order** — every earlier step of the stream was released or passed: the service events go
   out in the recorded order, always (same cassette, same client behaviour → the same service
   event sequence, at any speed, on any machine);
2. **cause** — the client events recorded before it were received and matched (the matchers,
   ``match_on``); a toolResult for the recorded toolUseId releases what followed it, an
   interactive text its answer;
3. **audio** — the client has sent the audio the recorded service had received (``a``),
   counted from the last client event: ``need = a + shift`` where ``shift`` = (the client's
   audio when its last matched event arrived) − (that event's recorded ``a``), so "the model
   answered 1.6 s after the user started speaking" replays in audio time. The audio gate is
   void while the client has no AUDIO block open, after its input ended, and when its audio
   stalls (no frame for ``audio_stall_s`` service seconds, at least ``audio_stall_wall_floor_s``
   wall seconds): a client that does not stream is answered by the clock alone;
4. **clock** — at a finite ``speed``, the part of the recorded delay *not* covered by audio has
   passed on the scaled clock: ``max(0, Δt − Δa)``, measured both from the previous service
   step and from the last client event (Δa = 0 when the audio gate is void, so the whole
   recorded spacing is kept). Under a live microphone Δt ≈ Δa: pacing is audio time and the
   same at every speed; text turns, tool latency and assistant audio sent without user audio
   keep their recorded spacing, × 1/speed. ``speed=math.inf``: as fast as causality allows.
   The handler's limits (stream age, idle input) run on the same clock.

Decisions are taken synchronously when a client frame is processed (``on_event``) or a timer
fires, and queued in one outbox drained by one task, so they do not depend on how tasks are
scheduled.

Barge-in: the engine runs the fake's energy VAD on the client's audio. When speech starts while
the walk is inside an AUDIO block that the recording shows interrupted (``plan.interruptions``),
and earlier than the recorded user's speech did (more than one 40 ms VAD window earlier, in the
client's shifted audio time), the block's remaining chunks are cut and the recorded interruption
events follow at once (the audio gate is moved so they are due now). Speech at the recorded
point needs no cut: the recorded interruption comes there by itself, so the same client gets
the recorded conversation. Speech during an AUDIO block the recording did not interrupt does not
cut it (a note in the report says so): a replay cannot invent the service's answer to that.

Mismatch: the stream ends with an in-stream ``validationException`` whose message names the
expected event and its cassette line; ``fake.replay.report()`` has the details (expected vs
received, matchers that failed, the closest recorded candidates, how to fix). The *shutdown*
events (AUDIO contentEnd, promptEnd, sessionEnd, end of input) are the exception: a client that
ends earlier than the recording skips to them and the skipped interactions are reported unused.

Assistant audio elided from the cassette is synthesised (``elided_audio="speech"``: voice-like
PCM, deterministic; ``"silence"``: zeros) in the recorded chunk sizes; audio kept in the sidecar
or inline is sent as stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from novasonic.cassette import AudioOutRecord, Cassette, ExceptionRecord, TransportRecord, load_cassette
from novasonic.events import (
    AudioInput,
    ContentEnd,
    ContentStart,
    InputEvent,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    PromptEnd,
    PromptStart,
    SessionEnd,
    pcm_to_b64,
)
from novasonic.rules import facts as F

from ..audio import VAD_MIN_SPEECH_MS, VAD_THRESHOLD_RMS, SpeechStart, VoiceActivityDetector, synth_speech
from ..faults import DEFAULT_EXCEPTION_TEXTS
from ..responders.base import StreamContext
from .bindings import Bindings, IdMode
from .matchers import DEFAULT_MATCH_ON, MatchContext, Matcher, MatcherFailure, resolve_matchers, run_matchers
from .plan import Step, StreamPlan, build_plan
from .report import Candidate, Mismatch, MismatchKind, ReplayReport, StreamSummary, UnusedInteraction

__all__ = ["ReplayConfig", "ReplayResponder", "ReplayStream", "Release"]

log = logging.getLogger("fakeserver.replay")

PENDING, PLAYED, CUT, SKIPPED = "pending", "played", "cut", "skipped"
#: Speech starting within one VAD window of the recorded barge-in is the recorded barge-in.
_BARGE_IN_TOLERANCE_MS = 40.0
#: Clock delays shorter than this are rounding noise (the format keeps ms for t, 0.1 ms for a).
_CLOCK_EPS_S = 0.002


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayConfig:
    """Switches of the replay (see the module doc)."""

    #: Service ids emitted: the recorded ones, or fresh ones (mapped both ways either way).
    ids: IdMode = "recorded"
    #: Cut recorded assistant audio when the client speaks during a recorded barge-in block.
    barge_in: bool = True
    #: PCM for assistant audio elided from the cassette: voice-like ("speech") or zeros.
    elided_audio: Literal["speech", "silence"] = "speech"
    #: Service seconds without a client audio frame before audio gates give way to the clock
    #: (None: never), and the wall-clock floor of that wait (``speed=math.inf`` has no service time).
    audio_stall_s: float | None = 1.0
    audio_stall_wall_floor_s: float = 0.5
    #: Barge-in VAD (``fakeserver.audio.VoiceActivityDetector``).
    vad_threshold_rms: float = VAD_THRESHOLD_RMS
    vad_min_speech_ms: float = VAD_MIN_SPEECH_MS
    #: The in-stream exception a mismatch ends the stream with.
    mismatch_exception: str = "validationException"
    #: Closest recorded candidates shown per mismatch.
    max_candidates: int = 3

    def __post_init__(self) -> None:
        if self.ids not in ("recorded", "fresh"):
            raise ValueError(f"ids must be 'recorded' or 'fresh' (got {self.ids!r})")
        if self.elided_audio not in ("speech", "silence"):
            raise ValueError(f"elided_audio must be 'speech' or 'silence' (got {self.elided_audio!r})")
        if self.audio_stall_s is not None and not self.audio_stall_s > 0:
            raise ValueError("audio_stall_s must be > 0 or None")
        if self.audio_stall_wall_floor_s < 0:
            raise ValueError("audio_stall_wall_floor_s must be >= 0")


_CONFIG_FIELDS = frozenset(f.name for f in fields(ReplayConfig))


@dataclass(frozen=True, slots=True)
class Release:
    """One service step the replay released: ``t`` service seconds after the stream opened,
    with ``audio_ms`` of client audio received (what timing tests compare across speeds)."""

    step: int
    what: str
    t: float
    audio_ms: float


@dataclass(frozen=True, slots=True)
class Cut:
    """A barge-in: client speech at ``speech_ms`` cut ``chunks`` chunks of AUDIO block ``content_id``."""

    content_id: str
    speech_ms: float
    audio_ms: float
    chunks: int


# --- outbox items ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Emit:
    event: OutputEvent
    corrupt: str | None = None

    async def send(self, ctx: StreamContext) -> bool:
        return await ctx.emit(self.event, corrupt=self.corrupt) if self.corrupt else await ctx.emit(self.event)


@dataclass(slots=True)
class _Fail:
    member: str
    message: str
    extra: dict[str, Any]

    async def send(self, ctx: StreamContext) -> bool:
        await ctx.fail(self.member, self.message, **self.extra)
        return False


@dataclass(slots=True)
class _Error:
    code: str
    message: str

    async def send(self, ctx: StreamContext) -> bool:
        await ctx.error_frame(self.code, self.message)
        return False


@dataclass(slots=True)
class _Transport:
    action: str
    code: int | None

    async def send(self, ctx: StreamContext) -> bool:
        await ctx.transport(self.action, self.code)  # the journal's end: responder:<action>
        return False


_Out = _Emit | _Fail | _Error | _Transport


@dataclass(slots=True)
class _Ref:
    """A passed step: its recorded time and audio, and the service time it was passed at."""

    t: float
    a: float
    clock: float


# --- the responder -----------------------------------------------------------------------------------


class ReplayResponder:
    """``Responder`` replaying ``cassette`` (a path or a loaded :class:`Cassette`).

    ``match_on``: matcher names or callables (``fakeserver.replay.matchers``; ``None`` = the
    lenient defaults). ``config`` / ``options``: :class:`ReplayConfig` fields. Loading errors
    (missing, corrupt, truncated cassette) raise here, with the loader's message naming the line.
    """

    def __init__(
        self,
        cassette: Cassette | str | os.PathLike[str],
        *,
        match_on: Iterable[str | Matcher] | str | None = None,
        config: ReplayConfig | None = None,
        load_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - _CONFIG_FIELDS)
        if unknown:
            raise TypeError(f"unknown ReplayResponder option(s): {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(_CONFIG_FIELDS))}")
        if not isinstance(cassette, Cassette):
            cassette = load_cassette(cassette, **(load_options or {}))
        self.cassette = cassette
        self.matchers = resolve_matchers(match_on)
        self.config = replace(config if config is not None else ReplayConfig(), **options)
        self.plans: list[StreamPlan] = [build_plan(s, cassette.header) for s in cassette.streams]
        self.streams: list[ReplayStream] = []

    @property
    def match_on(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.matchers)

    @property
    def path(self) -> str | None:
        return str(self.cassette.path) if self.cassette.path is not None else None

    def open_stream(self, ctx: StreamContext) -> ReplayStream:
        n = len(self.streams)
        plan = self.plans[n] if n < len(self.plans) else None
        stream = ReplayStream(self, ctx, plan, n)
        self.streams.append(stream)
        return stream

    # --- results ------------------------------------------------------------------------------------
    @property
    def mismatches(self) -> list[Mismatch]:
        return [m for s in self.streams for m in s.mismatches]

    @property
    def all_played(self) -> bool:
        """No mismatch, and every recorded interaction of every stream was played."""
        return self.report().all_played

    def report(self) -> ReplayReport:
        rep = ReplayReport(cassette=self.path, n_streams=len(self.plans))
        for s in self.streams:
            rep.streams.append(s.summary())
            rep.mismatches.extend(s.mismatches)
            rep.notes.extend(f"stream {s.connection}: {n}" for n in s.notes)
            rep.unused.extend(s.unused())
        for plan in self.plans[len(self.streams):]:
            steps = tuple(plan.steps)
            if plan.http_error is not None and not steps:
                reason = f"never replayed: the client opened {len(self.streams)} stream(s); this one answers HTTP " \
                         f"{plan.http_error.status or ''} {plan.http_error.name}"
            else:
                reason = f"never replayed: the client opened {len(self.streams)} stream(s)"
            rep.unused.append(UnusedInteraction(
                plan.index, tuple(s for s in steps if s.is_client), tuple(s for s in steps if not s.is_client),
                reason))
        return rep

    # --- assistant audio ----------------------------------------------------------------------------
    def record_pcm(self, plan: StreamPlan, record: AudioOutRecord) -> bytes:
        """The PCM of an ``audio_out`` run: as stored (sidecar/inline, CRC checked), or synthesised
        in the recorded length when it was elided (voice-like and deterministic, or zeros)."""
        if record.pcm is not None and plan.stream is not None:
            return plan.stream.pcm(record)
        n = record.n_bytes
        if self.config.elided_audio == "silence":
            return bytes(n)
        seed = zlib.crc32(record.content_id.encode("utf-8"))
        pcm = synth_speech(record.duration_ms + 1.0, record.sample_rate, seed=seed, amplitude=6000.0)
        return pcm[:n] if len(pcm) >= n else pcm + bytes(n - len(pcm))

    def __repr__(self) -> str:
        return (f"ReplayResponder({self.path or 'in-memory'}, streams={len(self.plans)}, "
                f"match_on={self.match_on}, served={len(self.streams)})")


class ReplayStream:
    """The ``StreamResponder`` replaying one cassette stream (see the module doc).

    Views for tests: ``released`` (each service step sent: time and audio position),
    ``cuts`` (barge-ins), ``mismatches``, ``notes``, ``bindings``, ``state`` (per step).
    """

    def __init__(self, responder: ReplayResponder, ctx: StreamContext, plan: StreamPlan | None, connection: int):
        self.responder = responder
        self.ctx = ctx
        self.plan = plan
        self.connection = connection
        self.config = responder.config
        self.matchers = responder.matchers
        self.steps: list[Step] = plan.steps if plan is not None else []
        self.state: list[str] = [PENDING] * len(self.steps)
        self.expects: list[int] = [s.index for s in self.steps if s.is_client]
        self.client_pos = 0
        self.pos = 0
        self.arrivals: dict[int, tuple[float, float]] = {}
        ids_new = ctx.new_id if self.config.ids == "fresh" else None
        self.bindings = Bindings(self.config.ids, new_id=ids_new, session_id=ctx.session_id)
        self._client_blocks: dict[str, ContentStart] = {}
        self._recorded_blocks: dict[str, ContentStart] = {}
        self._mctx = MatchContext(self.bindings, model_id=ctx.model.model_id,
                                  recorded_model_id=plan.model_id if plan else None,
                                  client_blocks=self._client_blocks, recorded_blocks=self._recorded_blocks)
        self.t0 = ctx.clock.now()
        self.shift = 0.0
        self._ref_server = _Ref(0.0, 0.0, self.t0)
        self._ref_client = _Ref(0.0, 0.0, self.t0)
        self.audio_ms = 0.0
        self._audio_rates: dict[str, int] = {}
        self._open_audio: set[str] = set()
        self.input_ended = False
        self._stalled = False
        self._frames = 0
        self.client_events = 0
        self._vad = self._make_vad()
        self._playing: str | None = None
        self.stopped = False
        self.closed = False
        self.http_answered = False
        self.released: list[Release] = []
        self.cuts: list[Cut] = []
        self.mismatches: list[Mismatch] = []
        self.notes: list[str] = []
        self._outbox: deque[_Out] = deque()
        self._emitting = False
        self._wake: asyncio.Event | None = None
        self._pump_task: asyncio.Task[Any] | None = None
        self._timer: asyncio.Task[Any] | None = None
        self._timer_due: float | None = None
        self._watchdog: asyncio.Task[Any] | None = None
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._advancing = False
        self._pcm_of: AudioOutRecord | None = None
        self._pcm = b""
        self._ended_by_replay = False

    # --- StreamResponder ------------------------------------------------------------------------------

    async def on_open(self) -> None:
        plan = self.plan
        if plan is None:
            self._mismatch("extra-stream", None, None, (), send_error=False)
            await self.ctx.fail(self.config.mismatch_exception, self.mismatches[-1].summary())
            return
        if plan.http_error is not None:
            r = plan.http_error
            self.stopped = True
            self.http_answered = await self.ctx.http_error(r.name, r.message, status=r.status)
            if not self.http_answered:  # response headers already out (a server configured so)
                self.notes.append(f"the recorded HTTP error {r.name} was sent as an in-stream exception: the "
                                  "response headers were already sent")
                await self.ctx.fail(r.name[:1].lower() + r.name[1:], r.message or "")

    async def on_event(self, event: InputEvent, facts: Sequence[F.Fact]) -> None:
        if self.stopped or self.closed:
            return
        if isinstance(event, ContentStart):
            self._client_blocks[event.content_name] = event
        for fact in facts:
            if isinstance(fact, F.AudioReceived):
                self._on_audio(event, fact)
            elif isinstance(fact, F.AudioBlockOpened):
                self._audio_rates[fact.content_name] = fact.sample_rate_hertz
                self._open_audio.add(fact.content_name)
                self._vad.reset(self.audio_ms)
            elif isinstance(fact, F.AudioBlockClosed):
                self._open_audio.discard(fact.content_name)
        if not isinstance(event, AudioInput) and not self.stopped:
            self.client_events += 1
            self._match(event)
        self._advance()

    async def on_rejected(self, event: InputEvent | None, rule: str, message: str) -> None:
        """The protocol rules rejected a client event (the handler answers it with the service's
        exception). Expected when the recording has that very rejection; a mismatch otherwise."""
        if self.stopped or self.closed:
            return
        self.stopped = True
        if event is not None and not isinstance(event, AudioInput):
            self.client_events += 1
        step = self._next_expected()
        if isinstance(event, AudioInput):
            if rule in (self.plan.audio_verdicts if self.plan else ()):
                self._mark_answer_played(self.pos)
                return
        elif step is not None and step.kind == "expect" and event is not None:
            failures = run_matchers(self.matchers, event, step.record.event, self._mctx)  # type: ignore[union-attr]
            if step.record.verdict == rule and not failures:  # type: ignore[union-attr]
                self._accept(step.index, event)
                self.state[step.index] = PLAYED
                self._mark_answer_played(step.index)
                return
        failures = ()
        if event is not None and step is not None and step.kind == "expect" and not isinstance(event, AudioInput):
            failures = tuple(run_matchers(self.matchers, event, step.record.event, self._mctx))  # type: ignore[union-attr]
        self._mismatch("rejected", step, event, (MatcherFailure("rules", f"[{rule}] {message}"), *failures),
                       rule=rule, send_error=False)

    async def on_input_end(self) -> None:
        self.input_ended = True
        if not self.stopped and self.client_pos < len(self.expects):
            k = next((k for k in range(self.client_pos, len(self.expects))
                      if self.steps[self.expects[k]].kind == "input_end"), None)
            if k is not None:
                if k > self.client_pos:
                    self._skip_to(k, "the client ended its input before these recorded events")
                self._arrive(self.expects[k])
        self._advance()
        await self._wait_for(self._settled)

    async def aclose(self) -> None:
        self._note_own_ending()
        self.closed = True
        self.stopped = True
        self._outbox.clear()
        current = asyncio.current_task()
        for task in (self._pump_task, self._timer, self._watchdog):
            if task is not None and task is not current and not task.done():
                task.cancel()
        self._pump_task = self._timer = self._watchdog = None
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    def _note_own_ending(self) -> None:
        """The fake's own limits (stream age, idle input, silent audio) run during a replay too.
        When one ended the stream with the very exception the recording has next (the recording
        came from the same limit), that recorded step counts as played."""
        reason = getattr(self.ctx, "end_reason", None)
        if self._ended_by_replay or self.mismatches or not isinstance(reason, str) \
                or not reason.startswith("exception:"):
            return
        member = reason.split(":", 1)[1]
        for j in range(self.pos, len(self.steps)):
            step = self.steps[j]
            if self.state[j] != PENDING:
                continue
            if step.kind == "exception" and getattr(step.record, "name", None) == member:
                if all(self.state[k] != PENDING or not self.steps[k].is_client for k in range(self.pos, j)):
                    self.state[j] = PLAYED
                    self.notes.append(f"the fake server's own {member} ended the stream where the recording has "
                                      f"it (line {step.line})")
                return
            if step.kind in ("exception", "error", "transport"):
                return

    # --- client side ----------------------------------------------------------------------------------

    def _make_vad(self) -> VoiceActivityDetector:
        return VoiceActivityDetector(self.config.vad_threshold_rms, self.config.vad_min_speech_ms)

    def _on_audio(self, event: InputEvent, fact: F.AudioReceived) -> None:
        self._frames += 1
        self._stalled = False
        if self.config.barge_in and isinstance(event, AudioInput) and self.plan is not None:
            rate = self._audio_rates.get(fact.content_name, 16000)
            for v in self._vad.feed(event.pcm, rate, at_ms=fact.total_ms - fact.duration_ms):
                if isinstance(v, SpeechStart):
                    self._set_audio(v.detected_ms)
                    self._speech_started(v)
        self._set_audio(fact.total_ms)

    def _set_audio(self, ms: float) -> None:
        if ms > self.audio_ms:
            self.audio_ms = ms
            self._advance()

    def _speech_started(self, v: SpeechStart) -> None:
        cid = self._playing
        if cid is None or self.stopped or self.plan is None:
            return
        target = self.plan.interruptions.get(cid)
        if target is None:
            self.notes.append(f"client speech at {v.start_ms:.0f} ms during recorded assistant audio {cid!r}; "
                              "the recording has no barge-in there, so the audio was not cut")
            return
        if self.pos > target:
            return
        # Only speech that starts earlier than the recorded user's interrupts earlier than the
        # recording: at (or after) the recorded point the recorded interruption comes by itself.
        recorded = self.plan.interruption_speech_ms.get(cid)
        mine = (v.start_ms if recorded is not None else v.detected_ms) - self.shift
        if mine >= (recorded if recorded is not None else self.steps[target].a) - _BARGE_IN_TOLERANCE_MS:
            return
        cut = [j for j in range(self.pos, target)
               if self.steps[j].kind == "chunk" and self.steps[j].content_id == cid and self.state[j] == PENDING]
        for j in cut:
            self.state[j] = CUT
        self.shift = min(self.shift, self.audio_ms - self.steps[target].a)
        self.cuts.append(Cut(cid, v.start_ms, self.audio_ms, len(cut)))
        log.debug("stream %d: barge-in at %.0f ms cut %d chunks of %s", self.connection, v.start_ms, len(cut), cid)

    def _next_expected(self) -> Step | None:
        if self.client_pos < len(self.expects):
            return self.steps[self.expects[self.client_pos]]
        return None

    def _match(self, event: InputEvent) -> None:
        step = self._next_expected()
        if step is None or step.kind == "input_end":
            if _is_closing(event, self._client_blocks):
                # The recorded client stopped without its shutdown (a reset, a lost connection, an
                # input end without promptEnd): this client's shutdown goes beyond it, harmlessly.
                self.notes.append(f"the client's {event.EVENT_NAME} goes beyond the recording (the recorded "
                                  "client did not send it); accepted")
                return
            failures = () if step is None else (MatcherFailure(
                "event_type", f"event {event.EVENT_NAME}, recorded: the client ended its input here"),)
            self._mismatch("extra-event", step, event, failures)
            return
        recorded = step.record.event  # type: ignore[union-attr]
        failures = run_matchers(self.matchers, event, recorded, self._mctx)
        verdict = step.record.verdict  # type: ignore[union-attr]
        if not failures and verdict is not None:
            failures = [MatcherFailure("verdict", f"accepted here, but the recording's service rejected it ({verdict})")]
        if not failures:
            self._accept(step.index, event)
            return
        later = self._find_expect(event, self.client_pos + 1)
        if later is not None and _is_closing(event, self._client_blocks):
            self._skip_to(later, "the client ended earlier than the recording")
            self._accept(self.expects[later], event)
            return
        self._mismatch("missing-event" if later is not None else "unexpected-event", step, event, tuple(failures))

    def _find_expect(self, event: InputEvent, start: int) -> int | None:
        for k in range(start, len(self.expects)):
            step = self.steps[self.expects[k]]
            if step.kind != "expect" or step.record.verdict is not None:  # type: ignore[union-attr]
                continue
            if not run_matchers(self.matchers, event, step.record.event, self._mctx):  # type: ignore[union-attr]
                return k
        return None

    def _skip_to(self, k: int, reason: str) -> None:
        """Skip the recorded steps from the next expected client event up to client step ``k``."""
        first, last = self.expects[self.client_pos], self.expects[k]
        for j in range(first, last):
            if self.state[j] == PENDING:
                self.state[j] = SKIPPED
        self.notes.append(f"{reason}: skipped lines {self.steps[first].line}–{self.steps[last - 1].line}")
        self.client_pos = k

    def _accept(self, i: int, event: InputEvent) -> None:
        recorded = self.steps[i].record.event  # type: ignore[union-attr]
        if isinstance(recorded, PromptStart) and isinstance(event, PromptStart):
            self.bindings.bind_prompt(recorded.prompt_name, event.prompt_name)
        elif isinstance(recorded, ContentStart) and isinstance(event, ContentStart):
            self.bindings.bind_content(recorded.content_name, event.content_name)
            self._recorded_blocks[recorded.content_name] = recorded
        self._arrive(i)

    def _arrive(self, i: int) -> None:
        self.arrivals[i] = (self.ctx.clock.now(), self.audio_ms)
        self.client_pos = self.expects.index(i) + 1

    def _mark_answer_played(self, after: int) -> None:
        """The handler answered a rejected client event with the service's exception: the
        recorded exception after it counts as played."""
        for j in range(after, len(self.steps)):
            if self.steps[j].kind in ("exception", "error") and self.state[j] == PENDING:
                self.state[j] = PLAYED
                return

    # --- the walk -------------------------------------------------------------------------------------

    def _audio_void(self) -> bool:
        return self.input_ended or not self._open_audio or self._stalled

    def _advance(self) -> None:
        if self._advancing:
            return
        self._advancing = True
        try:
            self._walk()
        finally:
            self._advancing = False
        self._notify()

    def _walk(self) -> None:
        steps = self.steps
        while not self.stopped and self.pos < len(steps):
            i = self.pos
            step = steps[i]
            if self.state[i] != PENDING:
                self.pos += 1
                continue
            if step.is_client:
                arrival = self.arrivals.get(i)
                if arrival is None:
                    return
                self.state[i] = PLAYED
                clock, audio = arrival
                self.shift = audio - step.a
                self._ref_client = _Ref(step.t, step.a, clock)
                self.pos += 1
                continue
            void = self._audio_void()
            if not void and self.audio_ms + 1e-6 < step.a + self.shift:
                self._arm_watchdog()
                return
            if not self.ctx.clock.unlimited:
                due = max(self._ref_server.clock + self._delay(step, self._ref_server, void),
                          self._ref_client.clock + self._delay(step, self._ref_client, void))
                if self.ctx.clock.now() + 1e-9 < due:
                    self._arm_timer(due)
                    return
            self._release(i)
            self.pos += 1

    @staticmethod
    def _delay(step: Step, ref: _Ref, void: bool) -> float:
        covered = 0.0 if void else max(0.0, step.a - ref.a) / 1000.0
        delay = (step.t - ref.t) - covered
        return delay if delay > _CLOCK_EPS_S else 0.0

    def _release(self, i: int) -> None:
        step = self.steps[i]
        self.state[i] = PLAYED
        now = self.ctx.clock.now()
        self._ref_server = _Ref(step.t, step.a, now)
        self.released.append(Release(i, step.describe(), now - self.t0, self.audio_ms))
        rec = step.record
        b = self.bindings
        if step.kind == "event":
            event = rec.event  # type: ignore[union-attr]
            if step.content_id is not None:
                if isinstance(event, OutputContentStart):
                    self._playing = step.content_id
                elif isinstance(event, OutputContentEnd) and self._playing == step.content_id:
                    self._playing = None
            self._out(_Emit(b.rebind_output(event), step.corrupt))
        elif step.kind == "chunk":
            assert isinstance(rec, AudioOutRecord) and self.plan is not None
            if self._pcm_of is not rec:  # one run's audio at a time (a long cassette stays small in memory)
                self._pcm_of, self._pcm = rec, self.responder.record_pcm(self.plan, rec)
            pcm = self._pcm[step.offset: step.offset + step.size]
            template = b.rebind_output(rec.template)
            self._out(_Emit(template.model_copy(update={"content": pcm_to_b64(pcm)}), step.corrupt))
            for usage in step.usage:
                self._out(_Emit(b.rebind_output(usage)))
        elif step.kind in ("exception", "error"):
            assert isinstance(rec, ExceptionRecord)
            message = rec.message if rec.message is not None else DEFAULT_EXCEPTION_TEXTS.get(rec.name, "")
            if step.kind == "exception":
                self._out(_Fail(rec.name, message, dict(rec.extra or {})))
            else:
                self._out(_Error(rec.name, message))
            self.stopped = self._ended_by_replay = True
        elif step.kind == "transport":
            assert isinstance(rec, TransportRecord)
            self._out(_Transport(rec.action, rec.code))
            self.stopped = self._ended_by_replay = True

    # --- timers ---------------------------------------------------------------------------------------

    def _arm_timer(self, due: float) -> None:
        if self._timer is not None and not self._timer.done():
            if self._timer_due is not None and self._timer_due <= due + 1e-9:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = self.ctx.spawn(self._timer_fire(due), name=f"replay-clock-{self.connection}")

    async def _timer_fire(self, due: float) -> None:
        await self.ctx.clock.sleep_until(due)
        if self._timer is asyncio.current_task():
            self._timer = None
            self._timer_due = None
        self._advance()

    def _arm_watchdog(self) -> None:
        if self.config.audio_stall_s is None:
            return
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = self.ctx.spawn(self._watch_audio(), name=f"replay-audio-stall-{self.connection}")

    def _blocked_on_audio(self) -> bool:
        if self.stopped or self.pos >= len(self.steps) or self._audio_void():
            return False
        step = self.steps[self.pos]
        return not step.is_client and self.audio_ms + 1e-6 < step.a + self.shift

    async def _watch_audio(self) -> None:
        cfg = self.config
        assert cfg.audio_stall_s is not None
        while self._blocked_on_audio():
            frames = self._frames
            await asyncio.sleep(max(self.ctx.clock.to_wall(cfg.audio_stall_s), cfg.audio_stall_wall_floor_s))
            if self._frames == frames and self._blocked_on_audio():
                self._stalled = True
                self.notes.append(f"client audio stalled at {self.audio_ms:.0f} ms while the recording waits for "
                                  f"{self.steps[self.pos].a + self.shift:.0f} ms; released by the clock")
                self._advance()
                return

    # --- output ---------------------------------------------------------------------------------------

    def _out(self, item: _Out) -> None:
        if self.closed:
            return
        self._outbox.append(item)
        if self._pump_task is None or self._pump_task.done():
            self._wake = asyncio.Event()
            self._pump_task = self.ctx.spawn(self._pump(), name=f"replay-output-{self.connection}")
        assert self._wake is not None
        self._wake.set()

    async def _pump(self) -> None:
        wake = self._wake
        assert wake is not None
        while not self.closed:
            if not self._outbox:
                wake.clear()
                self._notify()
                await wake.wait()
                continue
            item = self._outbox.popleft()
            self._emitting = True
            try:
                ok = await item.send(self.ctx)
            finally:
                self._emitting = False
            if not ok:
                self.stopped = True
                self._outbox.clear()
                break
        self._notify()

    def _settled(self) -> bool:
        if self.closed:
            return True
        if self._outbox or self._emitting:
            return False
        if self.stopped or self.pos >= len(self.steps):
            return True
        return self.steps[self.pos].is_client and self.pos not in self.arrivals

    async def _wait_for(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, fut)
        self._waiters.append(entry)
        try:
            await fut
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _notify(self) -> None:
        for predicate, fut in list(self._waiters):
            if not fut.done() and predicate():
                fut.set_result(None)

    async def wait_settled(self) -> None:
        """Return once everything the replay can send now was handed to the server."""
        await self._wait_for(self._settled)

    # --- mismatches and the report -----------------------------------------------------------------

    def _mismatch(self, kind: MismatchKind, step: Step | None, event: InputEvent | None,
                  failures: tuple[MatcherFailure, ...], *, rule: str | None = None, send_error: bool = True) -> None:
        m = Mismatch(
            kind=kind, connection=self.connection, cassette_stream=self.plan.index if self.plan else None,
            expected=step, received=event, failures=failures,
            candidates=self._candidates(event) if event is not None else (),
            hints=self._hints(kind, step, event, failures), client_event_number=self.client_events or None,
            audio_ms=self.audio_ms, rule=rule, cassette=self.responder.path,
        )
        self.mismatches.append(m)
        self.stopped = True
        log.warning("cassette replay mismatch:\n%s", m.render())
        if send_error:
            self._out(_Fail(self.config.mismatch_exception, m.summary(), {}))

    def _candidates(self, event: InputEvent) -> tuple[Candidate, ...]:
        scored: list[tuple[tuple[int, int, int, int], Candidate]] = []
        here = self.client_pos
        for k, i in enumerate(self.expects):
            step = self.steps[i]
            if step.kind != "expect":
                continue
            failures = tuple(run_matchers(self.matchers, event, step.record.event, self._mctx, all_=True))  # type: ignore[union-attr]
            wrong_type = any(f.matcher == "event_type" for f in failures)
            played = self.state[i] == PLAYED
            cand = Candidate(step, k - here, failures, played=played)
            scored.append(((int(wrong_type), int(played), len(failures), abs(k - here)), cand))
        scored.sort(key=lambda x: x[0])
        expected = self._next_expected()
        first = [c for _, c in scored if c.step is expected]  # "expected here" always comes first
        rest = [c for _, c in scored if c.step is not expected]
        return tuple((first + rest)[: self.config.max_candidates])

    def _hints(self, kind: MismatchKind, step: Step | None, event: InputEvent | None,
               failures: tuple[MatcherFailure, ...]) -> tuple[str, ...]:
        hints: list[str] = []
        names = {f.matcher for f in failures}
        if kind == "extra-stream":
            hints.append("the client opened more streams than the cassette has (a reconnect, a retry, a session "
                         "recycle?): record that stream too, or find out why the client opened another one "
                         "(the journal, fake.journal, shows how each stream ended)")
            return tuple(hints)
        if kind == "extra-event":
            hints.append("the recording's client sent nothing more at this point: re-record the cassette with "
                         "the client's current behaviour, or stop the client from sending this event")
        if kind == "rejected":
            hints.append("the fake server's protocol rules rejected the client's event, as the real service would: "
                         "fix the client (the service's error text is above)")
            if event is not None and isinstance(event, ContentStart) and event.tool_result_input_configuration:
                sent = ", ".join(f"{v} (recorded {k})" for k, v in self.bindings.tool_ids.items()) or "none yet"
                hints.append(f"the toolUseIds this replay sent: {sent}; answer the toolUseId of the toolUse event "
                             "the client received")
        if kind == "missing-event" and event is not None:
            k = self._find_expect(event, self.client_pos + 1)
            if k is not None:
                missing = [self.steps[i] for i in self.expects[self.client_pos:k]]
                listed = "; ".join(f"line {m.line}: {m.describe()}" for m in missing[:4])
                more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
                hints.append(f"the client skipped {len(missing)} recorded client event(s) ({listed}{more}): this "
                             f"event matches line {self.steps[self.expects[k]].line}; send the skipped events "
                             "first, or re-record the cassette")
        elif kind == "unexpected-event" and "event_type" in names:
            hints.append("the recording has no such event ahead: the client sends an event the recorded client did "
                         "not send here (an extra event, or another order); re-record the cassette")
        if "content_kind" in names:
            hints.append("the client opens another kind of content block here than the recorded client did (a "
                         "turn added or missing: typed text instead of speech, a tool result not sent, ...): make "
                         "the client do what the recording shows, or re-record the cassette")
        if "model" in names:
            hints.append("replay a cassette recorded for this model (the shipped ones say it in their name: "
                         "nova1_*, nova2_*), or open the stream for the recorded model")
        optional = names - set(DEFAULT_MATCH_ON) - {"verdict", "rules"}
        if optional:
            hints.append(f"if this difference does not matter to the test, leave {', '.join(sorted(optional))} out "
                         f"of match_on (now: {', '.join(self.responder.match_on)}); the defaults are lenient")
        if "names" in names:
            hints.append("the client used a promptName/contentName other than the one it used for this block "
                         "(names are rebound to the client's own, but must stay consistent)")
        if "tool_use_id" in names:
            hints.append("answer the toolUseId the replay sent in its toolUse event (ids are rebound, never "
                         "compared literally)")
        if "verdict" in names:
            hints.append("the recording expects this event to be rejected; the fake's rules (RulesConfig) "
                         "accepted it: align the rules with the recording, or re-record")
        hints.append("if the client's behaviour changed on purpose, re-record the cassette")
        return tuple(hints)

    def summary(self) -> StreamSummary:
        played = sum(1 for s in self.state if s in (PLAYED, CUT))
        total = len(self.steps) + (1 if self.plan is not None and self.plan.http_error is not None else 0)
        if self.http_answered:
            played += 1
        return StreamSummary(self.connection, self.plan.index if self.plan else None, played, total,
                             sum(c.chunks for c in self.cuts), getattr(self.ctx, "end_reason", None))

    def unused(self) -> list[UnusedInteraction]:
        """The recorded interactions of this stream not played (grouped per interaction)."""
        if self.plan is None:
            return []
        if self.plan.http_error is not None and not self.steps:
            if self.http_answered:
                return []
            return [UnusedInteraction(self.plan.index, (), (), "the recorded HTTP error was not sent")]
        out: list[UnusedInteraction] = []
        groups: dict[tuple[int, str], list[Step]] = {}
        for step, st in zip(self.steps, self.state):
            if st in (PENDING, SKIPPED):
                groups.setdefault((step.interaction, st), []).append(step)
        ended = UnusedInteraction.AFTER_MISMATCH if self.mismatches else (
            "not reached: the stream ended before them" if self.closed or self.stopped else "not reached yet")
        for (_, st), steps in sorted(groups.items(), key=lambda kv: kv[1][0].index):
            reason = "skipped: the client ended earlier than the recording" if st == SKIPPED else ended
            out.append(UnusedInteraction(self.plan.index, tuple(s for s in steps if s.is_client),
                                         tuple(s for s in steps if not s.is_client), reason))
        return out

    def __repr__(self) -> str:
        return (f"ReplayStream(connection={self.connection}, cassette_stream={self.plan.index if self.plan else None}, "
                f"pos={self.pos}/{len(self.steps)}, audio_ms={self.audio_ms:.0f}, stopped={self.stopped})")


def _is_closing(event: InputEvent, client_blocks: dict[str, ContentStart]) -> bool:
    """The documented shutdown events: AUDIO contentEnd, promptEnd, sessionEnd."""
    if isinstance(event, PromptEnd | SessionEnd):
        return True
    if isinstance(event, ContentEnd):
        block = client_blocks.get(event.content_name)
        return block is not None and str(block.type) == "AUDIO"
    return False
