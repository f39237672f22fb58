"""A cassette stream as the replay walks it: a flat list of steps (pure data, no I/O).

Records are taken in file order, which is causal order (docs/cassette-format.md §3 "Order"):
every service record written before a client event was sent before it. ``audio_in`` records
are not steps (user audio is not replayed, it is *waited for*: every service step carries the
audio position ``a`` it happened at), nor are notes, ``stream`` and ``end`` records.

=============  ==============================================================================
step kind      from
=============  ==============================================================================
``expect``     a client event record: the client must send a matching event
``input_end``  the client's ``end-input`` transport record: the client must end its input
``event``      a service event record
``chunk``      one audioOutput chunk of an ``audio_out`` run (with the usage events the service
               sent right after it)
``exception``  an in-stream modeled exception (``via="stream"``)
``error``      an unmodeled error frame (``via="error"``)
``transport``  a service transport action: rst, goaway, end-stream, close, reset
=============  ==============================================================================

``Step.interaction`` numbers the alternations "client events, then the service's answer": the
format's ``CassetteStream.bursts()`` with their gates, except that trailing client events (the
shutdown) form an interaction too, which the report needs to list them as unused.

Special records:

- an ``exception`` with ``via="http"`` is an HTTP error answered *instead of* the event stream:
  it becomes ``StreamPlan.http_error`` and the stream has no steps (client events recorded before
  it were what the client had sent meanwhile; the service answers HTTP errors at open);
- a ``corrupt-frame`` transport record marks the step before it (that frame goes out with a
  broken CRC, and the stream ends: the ``end-stream`` right after it is part of that);
- client ``rst``/``close``/``reset`` records are not steps: nothing to wait for.

Audio positions of chunks. An ``audio_out`` record keeps one ``a`` (its first chunk's) and each
chunk's send time. A chunk's position is the user audio the recorded service had received at
its send time, read from the stream's ``audio_in`` frames (kept between the run's ``a`` and the
next service record's ``a``; a chunk sent at the same instant as the previous one shares its
position). Under a live microphone this is "the assistant speaks while the user's audio
flows", which is what lets a replay cut the assistant off at a deterministic point (barge-in).
A run without timing (every chunk at one instant: recorded on an infinite clock, where service
time stands still) is spread evenly over the audio that arrived until the next service record:
the recording only says the chunks went out somewhere in that stretch.

Recorded barge-ins (``StreamPlan.interruptions``): an AUDIO block is *interrupted* in the
recording when, while it is open, a ``userSpeechStart`` comes after its last chunk (Nova 2: the
service heard the user and stopped), or its contentEnd says ``INTERRUPTED``, or (Nova Sonic 1,
no speech events) its contentEnd is followed by the ``{ "interrupted" : true }`` text or a TEXT
block ending ``INTERRUPTED``. The interruption step is that userSpeechStart / contentEnd. Where
the recorded user started speaking (``interruption_speech_ms``) is the userSpeechStart's
``inputAudioOffsetMs``, else the start of the last recorded speech segment before the
interruption (``audio_in.seg``), else unknown.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from novasonic.audio import pcm_ms
from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    CassetteHeader,
    CassetteStream,
    ClientEventRecord,
    ExceptionRecord,
    Record,
    ServerEventRecord,
    TimedRecord,
    TransportRecord,
)
from novasonic.events import (
    CompletionEnd,
    OutputContentEnd,
    OutputContentStart,
    TextOutput,
    UsageEvent,
    UserSpeechStart,
)

from .describe import describe_record

__all__ = ["StepKind", "Step", "StreamPlan", "build_plan", "CLIENT_KINDS", "TERMINAL_KINDS"]

StepKind: TypeAlias = Literal["expect", "input_end", "event", "chunk", "exception", "error", "transport"]
CLIENT_KINDS = frozenset({"expect", "input_end"})
#: Steps after which the stream is over.
TERMINAL_KINDS = frozenset({"exception", "error", "transport"})


@dataclass(slots=True, eq=False)
class Step:
    """One thing the replay waits for (client steps) or sends (service steps)."""

    index: int
    kind: StepKind
    record: Record
    t: float
    """Recorded service seconds since the stream opened."""
    a: float
    """Recorded audio position (ms of user audio the service had received)."""
    interaction: int
    """Interactions count the alternations: client events, then the service's answer, ..."""
    chunk: int = -1
    """For ``chunk``: its number in the record (0-based); ``offset``/``size``: its PCM bytes."""
    offset: int = 0
    size: int = 0
    usage: tuple[UsageEvent, ...] = ()
    """For ``chunk``: usage events sent right after it (record ids, rebound when emitted)."""
    corrupt: str | None = None
    """This frame went out corrupted in the recording (``prelude``/``message``)."""
    content_id: str | None = None
    """The recorded contentId of the AUDIO block a chunk (or an AUDIO contentStart/End) belongs to."""

    @property
    def is_client(self) -> bool:
        return self.kind in CLIENT_KINDS

    @property
    def line(self) -> int | None:
        return self.record.line

    def describe(self) -> str:
        if self.kind == "chunk":
            assert isinstance(self.record, AudioOutRecord)
            return f"audioOutput chunk {self.chunk + 1}/{self.record.n_chunks}"
        if self.kind == "input_end":
            return "end of client input"
        return describe_record(self.record)

    def __repr__(self) -> str:
        return f"Step({self.index}, {self.kind}, line={self.line}, t={self.t:g}, a={self.a:g}, {self.describe()!r})"


@dataclass(slots=True)
class StreamPlan:
    """Stream ``index`` of a cassette, ready to replay."""

    index: int
    steps: list[Step]
    model_id: str | None
    http_error: ExceptionRecord | None = None
    end_reason: str | None = None
    #: Recorded AUDIO contentId → index of the step where the recording shows it interrupted.
    interruptions: dict[str, int] = field(default_factory=dict)
    #: Recorded AUDIO contentId → where the recorded user's interrupting speech started (ms).
    interruption_speech_ms: dict[str, float] = field(default_factory=dict)
    #: Rule ids the recorded audioInput frames were rejected with (``audio_in.v``).
    audio_verdicts: frozenset[str] = frozenset()
    first_line: int | None = None
    last_line: int | None = None
    audio_in_ms: float = 0.0
    stream: CassetteStream | None = field(default=None, repr=False)

    @property
    def n_client(self) -> int:
        return sum(1 for s in self.steps if s.is_client)

    @property
    def n_server(self) -> int:
        return sum(1 for s in self.steps if not s.is_client)

    def lines(self) -> str:
        if self.first_line is None:
            return "(built in memory)"
        return f"lines {self.first_line}–{self.last_line}"


def _is_server(r: Record) -> bool:
    return isinstance(r, TimedRecord) and r.direction == "s"


class _AudioTimeline:
    """Audio position at a service time, from the stream's audio_in frames."""

    def __init__(self, stream: CassetteStream) -> None:
        points: list[tuple[float, float]] = []
        for r in stream.records:
            if isinstance(r, AudioInRecord):
                pos = r.a
                for t, n in zip(r.frame_times(), r.sizes):
                    pos += pcm_ms(n, r.sample_rate)
                    points.append((t, pos))
        points.sort()
        self.times = [p[0] for p in points]
        self.positions: list[float] = []
        best = 0.0
        for _, pos in points:
            best = max(best, pos)
            self.positions.append(best)

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t + 1e-9)
        return self.positions[i - 1] if i else 0.0


def build_plan(stream: CassetteStream, header: CassetteHeader | None = None) -> StreamPlan:
    """The steps of ``stream`` (see the module doc)."""
    records = stream.records
    lines = [r.line for r in records if r.line is not None]
    plan = StreamPlan(
        index=stream.index, steps=[], model_id=stream.model_id or (header.model_id if header else None),
        end_reason=stream.end_reason, first_line=min(lines) if lines else None,
        last_line=max(lines) if lines else None, audio_in_ms=stream.audio_in_ms, stream=stream,
    )
    plan.audio_verdicts = frozenset(r.verdict for r in records if isinstance(r, AudioInRecord) and r.verdict)
    http = next((r for r in records if isinstance(r, ExceptionRecord) and r.via == "http"), None)
    if http is not None:
        plan.http_error = http
        return plan

    timeline = _AudioTimeline(stream)
    server = [r for r in records if _is_server(r)]
    next_a: dict[int, float] = {}  # id(server record) → the next server record's a
    cap = max(stream.audio_in_ms, max((r.a for r in server), default=0.0))  # type: ignore[union-attr]
    for r in reversed(server):
        next_a[id(r)] = cap
        cap = r.a  # type: ignore[union-attr]

    steps: list[Step] = []
    interaction = 0
    last_client: bool | None = None
    absorb_end_stream = False

    def add(kind: StepKind, record: Record, t: float, a: float, **kw: object) -> Step:
        nonlocal interaction, last_client
        client = kind in CLIENT_KINDS
        if client and last_client is False:
            interaction += 1
        last_client = client
        step = Step(len(steps), kind, record, t, a, interaction, **kw)  # type: ignore[arg-type]
        steps.append(step)
        return step

    for r in records:
        if isinstance(r, ClientEventRecord):
            add("expect", r, r.t, r.a)
            absorb_end_stream = False
        elif isinstance(r, TransportRecord) and r.direction == "c":
            if r.action == "end-input":
                add("input_end", r, r.t, r.a)
        elif isinstance(r, ServerEventRecord):
            add("event", r, r.t, r.a, content_id=_audio_block_id(r))
            absorb_end_stream = False
        elif isinstance(r, AudioOutRecord):
            _add_chunks(add, r, timeline, next_a[id(r)])
            absorb_end_stream = False
        elif isinstance(r, ExceptionRecord):
            add("exception" if r.via == "stream" else "error", r, r.t, r.a)
        elif isinstance(r, TransportRecord):
            if r.action == "corrupt-frame":
                prev = next((s for s in reversed(steps) if s.kind in ("event", "chunk")), None)
                if prev is not None:
                    prev.corrupt = r.detail if r.detail in ("prelude", "message") else "message"
                    absorb_end_stream = True
                continue
            if r.action == "end-stream" and absorb_end_stream:
                continue  # the corrupt frame already ended the stream
            if r.action != "end-input":
                add("transport", r, r.t, r.a)
    plan.steps = steps
    plan.interruptions = _interruptions(steps)
    speech = [(s, e) for r in records if isinstance(r, AudioInRecord) and r.segments
              for kind, s, e in r.segments if kind == "speech"]
    for cid, i in plan.interruptions.items():
        ev = getattr(steps[i].record, "event", None)
        if isinstance(ev, UserSpeechStart):
            plan.interruption_speech_ms[cid] = float(ev.input_audio_offset_ms)
        else:
            starts = [s for s, _ in speech if s <= steps[i].a]
            if starts:
                plan.interruption_speech_ms[cid] = max(starts)
    return plan


def _audio_block_id(r: ServerEventRecord) -> str | None:
    ev = r.event
    if isinstance(ev, OutputContentStart | OutputContentEnd) and str(ev.type) == "AUDIO":
        return ev.content_id
    return None


def _add_chunks(add: Callable[..., Step], r: AudioOutRecord, timeline: _AudioTimeline, a_cap: float) -> None:
    usage: dict[int, list[UsageEvent]] = {}
    for k, ev in r.usage_events():
        usage.setdefault(k - 1, []).append(ev)
    times = r.chunk_times()
    n = len(times)
    untimed = n > 1 and times[-1] <= times[0]  # recorded on an infinite clock: every chunk at one instant
    offset = 0
    a_prev = r.a
    for k, (t, size) in enumerate(zip(times, r.sizes)):
        if untimed:
            a = r.a + max(0.0, a_cap - r.a) * k / n
        elif k == 0 or t <= times[k - 1]:
            a = a_prev
        else:
            a = min(max(timeline.at(t), a_prev), max(a_cap, a_prev))
        add("chunk", r, t, a, chunk=k, offset=offset, size=size, usage=tuple(usage.get(k, ())),
            content_id=r.content_id)
        offset += size
        a_prev = a


def _interruptions(steps: list[Step]) -> dict[str, int]:
    last_chunk: dict[str, int] = {}
    for s in steps:
        if s.kind == "chunk" and s.content_id is not None:
            last_chunk[s.content_id] = s.index
    out: dict[str, int] = {}
    open_audio: list[str] = []
    for s in steps:
        if s.kind != "event":
            continue
        ev = s.record.event  # type: ignore[union-attr]
        if isinstance(ev, OutputContentStart) and s.content_id is not None:
            open_audio.append(s.content_id)
        elif isinstance(ev, UserSpeechStart):
            for cid in open_audio:
                if cid not in out and cid in last_chunk and last_chunk[cid] < s.index:
                    out[cid] = s.index
        elif isinstance(ev, OutputContentEnd) and s.content_id is not None:
            cid = s.content_id
            if cid not in out and cid in last_chunk and (
                    str(ev.stop_reason) == "INTERRUPTED" or _barge_in_text_follows(steps, s.index)):
                out[cid] = s.index
            if cid in open_audio:
                open_audio.remove(cid)
    return out


def _barge_in_text_follows(steps: list[Step], i: int) -> bool:
    """After an AUDIO contentEnd: the barge-in marker or a TEXT block ending INTERRUPTED, before
    the next AUDIO block, USER text or completionEnd (Nova Sonic 1 has no speech events)."""
    for s in steps[i + 1:]:
        if s.kind in ("chunk", "exception", "error", "transport"):
            return False
        if s.kind != "event":
            continue
        ev = s.record.event  # type: ignore[union-attr]
        if isinstance(ev, TextOutput):
            if ev.is_barge_in:
                return True
            if str(ev.role) == "USER":
                return False
        elif isinstance(ev, OutputContentEnd):
            if str(ev.type) == "TEXT" and str(ev.stop_reason) == "INTERRUPTED":
                return True
        elif isinstance(ev, OutputContentStart):
            if str(ev.type) == "AUDIO" or str(ev.role) == "USER":
                return False
        elif isinstance(ev, CompletionEnd | UserSpeechStart):
            return False
    return False
