"""The in-memory cassette: a header and a list of streams, each a list of typed records.

Data only (httpx ``_models.py`` style): no file format here (``serialize``), no files
(``persist``/``sidecar``), no policy (``writer``/``load``). The replay engine reads this model.

Records (pydantic, frozen; field aliases are the on-disk keys, see docs/cassette-format.md):

=====================  ===========  =====================================================
class                  kind (``k``)  what it holds
=====================  ===========  =====================================================
``StreamRecord``       stream       start of a stream: offset from the cassette start, model
``ClientEventRecord``  (none)       one client event (not audio); ``verdict`` = rule it broke
``ServerEventRecord``  (none)       one service event (not audio)
``AudioInRecord``      audio_in     a run of audioInput frames of one content block
``AudioOutRecord``     audio_out    a run of audioOutput chunks of one contentId
``ExceptionRecord``    exception    an in-stream exception, unmodeled error or HTTP error
``TransportRecord``    transport    RST_STREAM, GOAWAY, END_STREAM, connection close/reset…
``EndRecord``          end          how the stream ended
``NoteRecord``         note         free text for reviewers (ignored by replay)
=====================  ===========  =====================================================

Every timed record has ``t`` (service seconds since its stream opened, ms precision) and ``a``
(milliseconds of user audio the server had received when the record happened: replay gates
server records on audio time, not on wall time).
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, PrivateAttr, model_validator

from ..events import AudioInput, AudioOutput, InputEvent, OutputEvent, UsageEvent, pcm_to_b64
from . import audio as A

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "toolkit_version",
    "AudioPolicy",
    "CassetteHeader",
    "AudioRef",
    "Record",
    "TimedRecord",
    "StreamRecord",
    "ClientEventRecord",
    "ServerEventRecord",
    "AudioInRecord",
    "AudioOutRecord",
    "ExceptionRecord",
    "TransportRecord",
    "EndRecord",
    "NoteRecord",
    "RECORD_KINDS",
    "TRANSPORT_ACTIONS",
    "AudioSource",
    "usage_event",
    "usage_vector",
    "Burst",
    "CassetteStream",
    "Cassette",
]

#: The format version written in the header (``{"novasonic_cassette": 1, ...}``).
FORMAT_VERSION = 1
#: The header key that identifies a cassette and carries its format version.
MAGIC = "novasonic_cassette"


@functools.cache
def toolkit_version() -> str:
    """The installed toolkit's version, or the source tree's ``pyproject.toml`` version."""
    import importlib.metadata

    try:
        return importlib.metadata.version("novasonic-toolkit")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        import tomllib

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"]) + "+src"
    except Exception:  # pragma: no cover - a stripped install
        return "unknown"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False), BeforeValidator(_no_bool)]
Millis = Annotated[float, Field(ge=0.0, allow_inf_nan=False), BeforeValidator(_no_bool)]
Rate = Annotated[int, Field(gt=0, strict=True)]
Count = Annotated[int, Field(ge=0, strict=True)]

_FROZEN = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, arbitrary_types_allowed=True)


# --- header ---------------------------------------------------------------------------------------


class AudioPolicy(BaseModel):
    """How audio was stored. ``user``: ``segments`` (default: duration and speech/silence only),
    ``sidecar`` or ``inline`` (full PCM, explicit option only). ``assistant``: ``elided``
    (duration and chunk sizes only; replay synthesises PCM of the right length), ``sidecar``
    (compressed PCM in ``<name>.audio``) or ``inline`` (base64 in the line, explicit option).
    The segment settings say how ``seg`` was computed."""

    model_config = _FROZEN

    user: Literal["segments", "sidecar", "inline"] = "segments"
    assistant: Literal["elided", "sidecar", "inline"] = "elided"
    codec: Literal["zlib"] = "zlib"
    threshold_rms: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = A.DEFAULT_THRESHOLD_RMS
    window_ms: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = A.DEFAULT_WINDOW_MS
    min_silence_ms: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = A.DEFAULT_MIN_SILENCE_MS
    min_speech_ms: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = A.DEFAULT_MIN_SPEECH_MS

    @property
    def needs_sidecar(self) -> bool:
        return "sidecar" in (self.user, self.assistant)

    def segmenter(self, sample_rate: int, start_ms: float) -> A.Segmenter:
        return A.Segmenter(
            sample_rate, start_ms, threshold_rms=self.threshold_rms, window_ms=self.window_ms,
            min_silence_ms=self.min_silence_ms, min_speech_ms=self.min_speech_ms,
        )


class CassetteHeader(BaseModel):
    """The first line. ``ids="recorded"``: sessionId/completionId/contentId/toolUseId and the
    client's promptName/contentName are kept exactly as recorded; replay rebinds them.
    ``meta`` is free plain data (redacted when written)."""

    model_config = _FROZEN

    format: int = Field(FORMAT_VERSION, alias=MAGIC, strict=True)
    model_id: str | None = Field(None, alias="model")
    voice: str | None = None
    input_rate: Rate = 16000
    output_rate: Rate = 24000
    region: str | None = None
    source: Literal["captured", "scripted"] = "captured"
    toolkit: str = Field(default_factory=toolkit_version)
    created: str = Field(default_factory=_utc_now)
    ids: Literal["recorded"] = "recorded"
    audio: AudioPolicy = Field(default_factory=AudioPolicy)
    sidecar: str | None = None
    meta: dict[str, JsonValue] = Field(default_factory=dict)


# --- records --------------------------------------------------------------------------------------


class AudioRef(BaseModel):
    """Where a record's PCM is: ``at``/``len`` in the sidecar, or ``b64`` inline; ``crc`` is the
    CRC-32 (hex) of the raw PCM. The bytes are one zlib stream of the record's PCM."""

    model_config = _FROZEN

    at: Count | None = None
    length: Count | None = Field(None, alias="len")
    b64: str | None = None
    crc: Annotated[str, Field(pattern=r"^[0-9a-f]{8}$")]

    @model_validator(mode="after")
    def _one_place(self) -> Self:
        in_sidecar = self.at is not None and self.length is not None
        if in_sidecar == (self.b64 is not None) or (self.at is None) != (self.length is None):
            raise ValueError('pcm must hold either "at" and "len" (sidecar) or "b64" (inline)')
        return self

    @property
    def in_sidecar(self) -> bool:
        return self.b64 is None


class _RecordBase(BaseModel):
    model_config = _FROZEN

    KIND: ClassVar[str]
    stream: Count = Field(alias="s")
    _line: int | None = PrivateAttr(default=None)

    @property
    def line(self) -> int | None:
        """1-based line in the file this record was loaded from (None when built in memory)."""
        return self._line

    def at_line(self, line: int | None) -> Self:
        self._line = line
        return self

    def __eq__(self, other: object) -> bool:
        # By content: where a record was read from (``line``) does not make it another record.
        if type(self) is not type(other):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), self.stream, getattr(self, "t", None)))


class TimedRecord(_RecordBase):
    """Base of the records that happen in one direction at a time and audio position."""

    direction: Literal["c", "s"] = Field(alias="d")
    t: Seconds
    a: Millis = 0.0


class StreamRecord(_RecordBase):
    """Start of stream ``stream``. ``t0``: seconds from the cassette's first stream to this
    one (None when unknown)."""

    KIND: ClassVar[str] = "stream"
    t0: Seconds | None = None
    model_id: str | None = Field(None, alias="model")
    region: str | None = None
    meta: dict[str, JsonValue] = Field(default_factory=dict)


class ClientEventRecord(TimedRecord):
    """A client event other than audioInput. ``verdict``: the rule id the recorded service (or
    fake) rejected it with (``None``: accepted); loading checks the rules agree."""

    KIND: ClassVar[str] = "event"
    direction: Literal["c"] = Field("c", alias="d")
    event: InputEvent = Field(alias="e")
    verdict: str | None = Field(None, alias="v")

    @model_validator(mode="after")
    def _not_audio(self) -> Self:
        if isinstance(self.event, AudioInput):
            raise ValueError("audioInput events are stored in audio_in records")
        return self


class ServerEventRecord(TimedRecord):
    """A service event other than audioOutput."""

    KIND: ClassVar[str] = "event"
    direction: Literal["s"] = Field("s", alias="d")
    event: OutputEvent = Field(alias="e")

    @model_validator(mode="after")
    def _not_audio(self) -> Self:
        if isinstance(self.event, AudioOutput):
            raise ValueError("audioOutput events are stored in audio_out records")
        return self


class AudioInRecord(TimedRecord):
    """A run of audioInput frames of one content block, sent from ``t`` to ``t_end``, starting
    at audio position ``a``. ``template`` is the frames' event with empty content; ``sizes`` the
    decoded bytes of each frame; ``segments`` speech/silence in absolute audio ms (None when
    unknown); ``pcm`` the full audio when it was kept; ``verdict`` the rule id the *last* frame
    was rejected with (None: all accepted)."""

    KIND: ClassVar[str] = "audio_in"
    direction: Literal["c"] = Field("c", alias="d")
    t_end: Seconds = Field(alias="t1")
    template: AudioInput = Field(alias="e")
    sample_rate: Rate = Field(alias="hz")
    sizes: tuple[Count, ...] = Field(alias="sz", min_length=1)
    segments: tuple[tuple[Literal["speech", "silence"], Millis, Millis], ...] | None = Field(None, alias="seg")
    pcm: AudioRef | None = None
    verdict: str | None = Field(None, alias="v")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.t_end < self.t:
            raise ValueError(f"t1 ({self.t_end}) is before t ({self.t})")
        if self.template.content:
            raise ValueError("the audio_in template must not hold audio content")
        if self.segments is not None:
            _check_segments(self.segments, self.a, self.a + self.duration_ms)
        return self

    @property
    def n_frames(self) -> int:
        return len(self.sizes)

    @property
    def n_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def duration_ms(self) -> float:
        return A.pcm_ms(self.n_bytes, self.sample_rate)

    @property
    def a_end(self) -> float:
        return self.a + self.duration_ms

    def speech_ms(self) -> float | None:
        if self.segments is None:
            return None
        return sum(e - s for k, s, e in self.segments if k == A.SPEECH)

    def frame_times(self) -> list[float]:
        """Send time of each frame (linear between ``t`` and ``t_end``; only those two are kept)."""
        n = self.n_frames
        if n == 1:
            return [self.t]
        step = (self.t_end - self.t) / (n - 1)
        return [self.t + i * step for i in range(n)]


UsageVector = tuple[Count, Count, Count, Count, Count, Count, Count, Count]


def usage_event(vector: Sequence[int], *, session_id: str, prompt_name: str, completion_id: str) -> UsageEvent:
    """The usageEvent an 8-number usage vector stands for: ``[Δin.speech, Δin.text, Δout.speech,
    Δout.text, in.speech, in.text, out.speech, out.text]``; totals are the sums (docs §usage)."""
    v = list(vector)

    def direction(i: int) -> dict[str, Any]:
        return {"input": {"speechTokens": v[i], "textTokens": v[i + 1]},
                "output": {"speechTokens": v[i + 2], "textTokens": v[i + 3]}}

    t_in, t_out = v[4] + v[5], v[6] + v[7]
    return UsageEvent.model_validate(
        {"completionId": completion_id, "promptName": prompt_name, "sessionId": session_id,
         "details": {"delta": direction(0), "total": direction(4)},
         "totalInputTokens": t_in, "totalOutputTokens": t_out, "totalTokens": t_in + t_out},
        by_alias=True, by_name=False,
    )


def usage_vector(event: UsageEvent) -> list[int] | None:
    """The 8-number form of ``event``, or None when the numbers would not rebuild it exactly
    (added fields, totals that are not the sums, negative counts)."""
    d, t = event.details.delta, event.details.total
    v = [d.input.speech_tokens, d.input.text_tokens, d.output.speech_tokens, d.output.text_tokens,
         t.input.speech_tokens, t.input.text_tokens, t.output.speech_tokens, t.output.text_tokens]
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return None
    try:
        same = usage_event(v, session_id=event.session_id, prompt_name=event.prompt_name,
                           completion_id=event.completion_id).to_dict() == event.to_dict()
    except ValueError:
        return None
    return v if same else None


class AudioOutRecord(TimedRecord):
    """A run of audioOutput chunks of one contentId. ``template`` is the chunks' event with
    empty content; ``sizes`` the decoded bytes of each chunk; ``offsets_ms`` each chunk's send
    time relative to ``t`` (the first is 0); ``pcm`` the audio when kept (else elided).

    ``usage``: usageEvents the service interleaved with the chunks (it meters as it speaks),
    as ``(k, vector)``: sent right after chunk ``k`` (1-based), at that chunk's time, with the
    template's ids (see ``usage_event``). Keeping them inside the run avoids cutting the run
    every dozen chunks."""

    KIND: ClassVar[str] = "audio_out"
    direction: Literal["s"] = Field("s", alias="d")
    template: AudioOutput = Field(alias="e")
    sample_rate: Rate = Field(alias="hz")
    sizes: tuple[Count, ...] = Field(alias="sz", min_length=1)
    offsets_ms: tuple[Count, ...] = Field(alias="dt")
    usage: tuple[tuple[Count, UsageVector], ...] = Field((), alias="u")
    pcm: AudioRef | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.template.content:
            raise ValueError("the audio_out template must not hold audio content")
        if len(self.offsets_ms) != len(self.sizes):
            raise ValueError(f"{len(self.offsets_ms)} chunk times for {len(self.sizes)} chunks")
        if self.offsets_ms[0] != 0 or any(b < a for a, b in zip(self.offsets_ms, self.offsets_ms[1:])):
            raise ValueError("chunk times must start at 0 and not go backwards")
        ks = [k for k, _ in self.usage]
        if any(not 1 <= k <= len(self.sizes) for k in ks) or ks != sorted(ks):
            raise ValueError(f"usage positions must be chunk numbers 1..{len(self.sizes)} in order, got {ks}")
        return self

    def usage_events(self) -> list[tuple[int, UsageEvent]]:
        tp = self.template
        return [(k, usage_event(v, session_id=tp.session_id, prompt_name=tp.prompt_name,
                                completion_id=tp.completion_id)) for k, v in self.usage]

    @property
    def content_id(self) -> str:
        return self.template.content_id

    @property
    def n_chunks(self) -> int:
        return len(self.sizes)

    @property
    def n_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def duration_ms(self) -> float:
        return A.pcm_ms(self.n_bytes, self.sample_rate)

    @property
    def t_end(self) -> float:
        return self.t + self.offsets_ms[-1] / 1000.0

    def chunk_times(self) -> list[float]:
        return [self.t + o / 1000.0 for o in self.offsets_ms]


class ExceptionRecord(TimedRecord):
    """What ended a stream with an error. ``via``: ``stream`` (a modeled in-stream exception;
    ``name`` is the lower-camel ``:exception-type`` member), ``error`` (an unmodeled error
    message; ``name`` is ``:error-code``) or ``http`` (an HTTP error response before the event
    stream; ``name`` is the error type, ``status`` the HTTP status)."""

    KIND: ClassVar[str] = "exception"
    direction: Literal["s"] = Field("s", alias="d")
    via: Literal["stream", "error", "http"] = "stream"
    name: Annotated[str, Field(min_length=1)]
    message: str | None = Field(None, alias="msg")
    status: Annotated[int, Field(ge=100, le=599, strict=True)] | None = None
    extra: dict[str, JsonValue] | None = None


#: Transport actions: by the server (``rst`` RST_STREAM, ``goaway`` GOAWAY, ``end-stream``
#: END_STREAM without an exception, ``corrupt-frame`` the previous frame went out corrupted,
#: ``close`` connection closed, ``reset`` connection reset) or the client (``end-input`` the
#: empty signed frame + END_STREAM, ``rst``, ``close``, ``reset``).
TRANSPORT_ACTIONS = ("rst", "goaway", "end-stream", "corrupt-frame", "close", "reset", "end-input")


class TransportRecord(TimedRecord):
    KIND: ClassVar[str] = "transport"
    action: Literal["rst", "goaway", "end-stream", "corrupt-frame", "close", "reset", "end-input"]
    code: Annotated[int, Field(ge=0, strict=True)] | None = None
    detail: str | None = None


class EndRecord(_RecordBase):
    """How stream ``stream`` ended (``completed``, ``exception:<member>``, ``http:<status>``,
    ``client-reset``, ``connection-lost``, ``fault:<action>``, ``recycled``…)."""

    KIND: ClassVar[str] = "end"
    t: Seconds
    reason: Annotated[str, Field(min_length=1)] = Field(alias="how")
    input_finished: bool | None = None


class NoteRecord(_RecordBase):
    """Free text for reviewers (a fault that fired, a hand-written remark). Replay ignores it."""

    KIND: ClassVar[str] = "note"
    t: Seconds | None = None
    text: str


Record = (
    StreamRecord
    | ClientEventRecord
    | ServerEventRecord
    | AudioInRecord
    | AudioOutRecord
    | ExceptionRecord
    | TransportRecord
    | EndRecord
    | NoteRecord
)

#: On-disk ``k`` value → record class. An event record has no ``k``.
RECORD_KINDS: dict[str, type[_RecordBase]] = {
    cls.KIND: cls
    for cls in (StreamRecord, AudioInRecord, AudioOutRecord, ExceptionRecord, TransportRecord, EndRecord, NoteRecord)
}


def _check_segments(segs: Sequence[tuple[str, float, float]], start: float, end: float) -> None:
    pos = start
    for i, (_kind, s, e) in enumerate(segs):
        if abs(s - pos) > 1.0:
            raise ValueError(f"segment {i} starts at {s} ms, expected {A.round_ms(pos)} (segments are contiguous)")
        if e < s:
            raise ValueError(f"segment {i} ends ({e}) before it starts ({s})")
        pos = e
    if segs and abs(pos - end) > 1.0:
        raise ValueError(f"segments end at {pos} ms, the audio at {A.round_ms(end)} ms")


# --- streams and the cassette ---------------------------------------------------------------------

#: Reads the PCM of an audio record: (record) -> bytes, or None when the audio was not kept.
AudioSource = Callable[[AudioInRecord | AudioOutRecord], bytes | None]


@dataclass(frozen=True, slots=True)
class Burst:
    """A maximal run of server records between client records (design §4 causal gating).

    ``after``: the client event/transport records since the previous burst, in order (what
    must have been received before the burst may start); ``records``: the server records
    (events, audio_out, exceptions, transport); ``a``: the audio position the first record
    waited for. Audio_in records are not part of bursts: they are the audio flowing meanwhile,
    and every server record carries its own ``a``.
    """

    stream: int
    index: int
    after: tuple[Record, ...]
    records: tuple[Record, ...]

    @property
    def a(self) -> float:
        return self.records[0].a  # type: ignore[union-attr]

    @property
    def t(self) -> float:
        return self.records[0].t  # type: ignore[union-attr]

    @property
    def t_end(self) -> float:
        last = self.records[-1]
        return last.t_end if isinstance(last, AudioOutRecord) else last.t  # type: ignore[union-attr]


def _is_client_gate(r: Record) -> bool:
    return isinstance(r, ClientEventRecord) or (isinstance(r, TransportRecord) and r.direction == "c")


@dataclass
class CassetteStream:
    """One ``InvokeModelWithBidirectionalStream`` of the cassette: its records in file order."""

    index: int
    records: list[Record] = field(default_factory=list)
    audio_source: AudioSource | None = field(default=None, repr=False, compare=False)

    # --- views ------------------------------------------------------------------------------
    @property
    def start(self) -> StreamRecord | None:
        return next((r for r in self.records if isinstance(r, StreamRecord)), None)

    @property
    def end(self) -> EndRecord | None:
        return next((r for r in reversed(self.records) if isinstance(r, EndRecord)), None)

    @property
    def end_reason(self) -> str | None:
        e = self.end
        return e.reason if e else None

    @property
    def model_id(self) -> str | None:
        s = self.start
        return s.model_id if s else None

    @property
    def t0(self) -> float | None:
        s = self.start
        return s.t0 if s else None

    def timed(self) -> list[TimedRecord]:
        return [r for r in self.records if isinstance(r, TimedRecord)]

    @property
    def client_records(self) -> list[TimedRecord]:
        return [r for r in self.timed() if r.direction == "c"]

    @property
    def server_records(self) -> list[TimedRecord]:
        return [r for r in self.timed() if r.direction == "s"]

    @property
    def duration_s(self) -> float:
        """Seconds from the stream's open to its last record."""
        last = 0.0
        for r in self.records:
            if isinstance(r, AudioOutRecord | AudioInRecord):
                last = max(last, r.t_end)
            elif isinstance(r, TimedRecord | EndRecord) or (isinstance(r, NoteRecord) and r.t is not None):
                last = max(last, r.t or 0.0)
        return last

    @property
    def audio_in_ms(self) -> float:
        return sum(r.duration_ms for r in self.records if isinstance(r, AudioInRecord))

    @property
    def audio_out_ms(self) -> float:
        return sum(r.duration_ms for r in self.records if isinstance(r, AudioOutRecord))

    @property
    def speech_ms(self) -> float | None:
        """Milliseconds of user speech by the segments (None if any audio_in lacks them)."""
        total = 0.0
        for r in self.records:
            if isinstance(r, AudioInRecord):
                ms = r.speech_ms()
                if ms is None:
                    return None
                total += ms
        return total

    def bursts(self, max_gap_s: float | None = None) -> list[Burst]:
        """The server bursts, each with the client records that preceded it (see ``Burst``).

        A burst ends at the next client event or client transport record. With ``max_gap_s``
        it also ends where the service paused longer than that (from the end of one record to
        the next): with a microphone streaming all the time there are few client events, and
        the pauses are where the service waited for the user's audio (each burst's ``a``)."""
        out: list[Burst] = []
        gate: list[Record] = []
        cur: list[Record] = []
        last_end: float | None = None
        for r in self.records:
            if _is_client_gate(r):
                if cur:
                    out.append(Burst(self.index, len(out), tuple(gate), tuple(cur)))
                    gate, cur = [], []
                gate.append(r)
            elif isinstance(r, TimedRecord) and r.direction == "s":
                if cur and max_gap_s is not None and last_end is not None and r.t - last_end > max_gap_s:
                    out.append(Burst(self.index, len(out), tuple(gate), tuple(cur)))
                    gate, cur = [], []
                cur.append(r)
                last_end = r.t_end if isinstance(r, AudioOutRecord) else r.t
        if cur:
            out.append(Burst(self.index, len(out), tuple(gate), tuple(cur)))
        return out

    # --- audio and expansion ----------------------------------------------------------------
    def pcm(self, record: AudioInRecord | AudioOutRecord) -> bytes:
        """The record's PCM: the kept audio, or silence of the recorded length when it was not
        kept (elided assistant audio, segments-only user audio)."""
        data = self.audio_source(record) if self.audio_source is not None else None
        return data if data is not None else A.zeros(record.n_bytes)

    def has_audio(self, record: AudioInRecord | AudioOutRecord) -> bool:
        return record.pcm is not None

    def expand(self, record: Record) -> list[tuple[float, InputEvent | OutputEvent]]:
        """``(t, event)`` for each wire event a record stands for (audio runs → their frames)."""
        if isinstance(record, ClientEventRecord | ServerEventRecord):
            return [(record.t, record.event)]
        if isinstance(record, AudioInRecord | AudioOutRecord):
            pcm = self.pcm(record)
            times = record.frame_times() if isinstance(record, AudioInRecord) else record.chunk_times()
            usage: dict[int, list[UsageEvent]] = {}
            if isinstance(record, AudioOutRecord):
                for k, ev in record.usage_events():
                    usage.setdefault(k, []).append(ev)
            out: list[tuple[float, InputEvent | OutputEvent]] = []
            pos = 0
            for i, (t, n) in enumerate(zip(times, record.sizes), start=1):
                piece = pcm[pos : pos + n]
                pos += n
                out.append((t, _with_pcm(record.template, piece)))
                out.extend((t, ev) for ev in usage.get(i, ()))
            return out
        return []

    def client_events(self) -> list[InputEvent]:
        """Every client event in order, audio runs expanded to frames."""
        return [ev for r in self.records if isinstance(r, ClientEventRecord | AudioInRecord)
                for _, ev in self.expand(r)]  # type: ignore[misc]

    def server_events(self) -> list[OutputEvent]:
        """Every service event in order, audio runs expanded to chunks."""
        return [ev for r in self.records if isinstance(r, ServerEventRecord | AudioOutRecord)
                for _, ev in self.expand(r)]  # type: ignore[misc]


def _with_pcm(template: AudioInput | AudioOutput, pcm: bytes) -> Any:
    return template.model_copy(update={"content": pcm_to_b64(pcm)})


@dataclass
class Cassette:
    """A loaded (or built) cassette: ``header`` and ``streams`` (index = the records' ``s``)."""

    header: CassetteHeader
    streams: list[CassetteStream] = field(default_factory=list)
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    size_bytes: int = 0
    """Bytes of the cassette file (0 when built in memory)."""
    sidecar_bytes: int = 0
    """Bytes of the audio sidecar (0 when there is none)."""

    def __len__(self) -> int:
        return len(self.streams)

    def __iter__(self) -> Iterator[CassetteStream]:
        return iter(self.streams)

    def __getitem__(self, index: int) -> CassetteStream:
        return self.streams[index]

    def records(self) -> Iterator[Record]:
        for s in self.streams:
            yield from s.records

    @property
    def duration_s(self) -> float:
        """From the first stream's open to the last record of the last stream (streams laid end
        to end when their ``t0`` is unknown)."""
        end = 0.0
        cursor = 0.0
        for s in self.streams:
            start = s.t0 if s.t0 is not None else cursor
            cursor = start + s.duration_s
            end = max(end, cursor)
        return end

    @property
    def audio_in_ms(self) -> float:
        return sum(s.audio_in_ms for s in self.streams)

    @property
    def audio_out_ms(self) -> float:
        return sum(s.audio_out_ms for s in self.streams)

    def bytes_per_minute(self) -> float:
        """Cassette file bytes per conversation-minute (the size budget is 25 KB)."""
        d = self.duration_s
        return self.size_bytes / (d / 60.0) if d > 0 else math.inf

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "model": self.header.model_id,
            "source": self.header.source,
            "streams": len(self.streams),
            "duration_s": round(self.duration_s, 3),
            "audio_in_ms": round(self.audio_in_ms, 1),
            "audio_out_ms": round(self.audio_out_ms, 1),
            "records": sum(len(s.records) for s in self.streams),
            "size_bytes": self.size_bytes,
            "sidecar_bytes": self.sidecar_bytes,
            "ends": [s.end_reason for s in self.streams],
            "warnings": len(self.warnings),
        }
