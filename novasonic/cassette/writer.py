"""``CassetteWriter``: writes a cassette incrementally, the way the capture proxy needs it.

Records are written in the order things happened, audio coalesced on the fly:

- consecutive ``audioInput`` frames of one content block become one ``audio_in`` record;
  consecutive ``audioOutput`` chunks with the same ids become one ``audio_out`` record;
- a pending client run is written when the client sends anything else, the block changes,
  ``flush()`` is called, the stream ends, or a service event arrives once the run is longer
  than ``audio_in_split_ms`` (so a long microphone stream is cut at natural points without
  one record per service event);
- a pending service run is written when the service sends anything else, the ids change, the
  *client* sends a non-audio event (causal order: what was sent before a toolResult stays
  before it), ``flush()`` is called or the stream ends.

Because a client run is not cut by every service event, an ``audio_in`` record can be written
after service records that happened while it was recorded; each service record carries its own
audio position ``a``, which is what replay uses.

Crash safety: lines are kept in memory until ``flush()`` (call it after every burst), then
appended with one unbuffered write (``persist.AppendFile``), optionally ``fsync``\\ ed. A writer
killed at any point loses at most what was not flushed; the file stays loadable up to its last
complete line. Sidecar blobs are appended before the line that points at them.

Nothing secret is written: metadata goes through ``redact_mapping``, free text through
``redact_text``, and with ``WriterOptions(secrets=...)`` every line is checked by
``assert_clean`` before it is written (the writer then refuses further writes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..events import AudioInput, AudioOutput, ContentStart, InputEvent, OutputContentStart, OutputEvent, UsageEvent
from . import audio as A
from .errors import CassetteError, CassetteFormatError
from .model import (
    AudioInRecord,
    AudioOutRecord,
    AudioPolicy,
    AudioRef,
    CassetteHeader,
    ClientEventRecord,
    EndRecord,
    ExceptionRecord,
    NoteRecord,
    Record,
    ServerEventRecord,
    StreamRecord,
    TransportRecord,
    usage_vector,
)
from .persist import AppendFile, repair_tail, split_lines
from .redact import assert_clean, redact_mapping, redact_text
from .serialize import LineDecoder, LineEncoder, parse_json_line
from .sidecar import SidecarWriter, make_ref, sidecar_path_for

__all__ = ["WriterOptions", "CassetteWriter"]


@dataclass(frozen=True, kw_only=True)
class WriterOptions:
    """How a cassette is written.

    ``user_audio``: ``segments`` (default: duration and speech/silence segments only; it is a
    person's voice), ``sidecar`` or ``inline`` (full PCM, explicit choice). ``assistant_audio``:
    ``elided`` (default: sizes and timing only; replay synthesises PCM of the right length),
    ``sidecar`` (compressed PCM in ``<name>.audio``) or ``inline`` (base64 in the line).
    The segment settings are the energy classifier's (``audio.Segmenter``).
    """

    user_audio: Literal["segments", "sidecar", "inline"] = "segments"
    assistant_audio: Literal["elided", "sidecar", "inline"] = "elided"
    threshold_rms: float = A.DEFAULT_THRESHOLD_RMS
    window_ms: float = A.DEFAULT_WINDOW_MS
    min_silence_ms: float = A.DEFAULT_MIN_SILENCE_MS
    min_speech_ms: float = A.DEFAULT_MIN_SPEECH_MS
    audio_in_split_ms: float | None = 5000.0
    """Cut a pending client audio run at the next service event once it is this long (None: never)."""
    fsync: bool = False
    """``fsync`` the files on every ``flush()`` (survives a machine crash, not only a killed process)."""
    secrets: tuple[str, ...] = ()
    """Values that must never appear in the file (the recording's credentials); every line is checked."""
    compress_level: int = 6
    max_pending_bytes: int = 256 * 1024
    """Write lines out before ``flush()`` when this many bytes are waiting (bounds memory)."""

    def __post_init__(self) -> None:
        if self.user_audio not in ("segments", "sidecar", "inline"):
            raise ValueError(f"user_audio must be segments, sidecar or inline (got {self.user_audio!r})")
        if self.assistant_audio not in ("elided", "sidecar", "inline"):
            raise ValueError(f"assistant_audio must be elided, sidecar or inline (got {self.assistant_audio!r})")
        if self.audio_in_split_ms is not None and not self.audio_in_split_ms > 0:
            raise ValueError("audio_in_split_ms must be > 0 or None")

    def policy(self) -> AudioPolicy:
        return AudioPolicy(
            user=self.user_audio, assistant=self.assistant_audio, threshold_rms=self.threshold_rms,
            window_ms=self.window_ms, min_silence_ms=self.min_silence_ms, min_speech_ms=self.min_speech_ms,
        )

    @classmethod
    def from_policy(cls, policy: AudioPolicy, **over: Any) -> WriterOptions:
        return cls(
            user_audio=policy.user, assistant_audio=policy.assistant, threshold_rms=policy.threshold_rms,
            window_ms=policy.window_ms, min_silence_ms=policy.min_silence_ms, min_speech_ms=policy.min_speech_ms,
            **over,
        )


@dataclass
class _InRun:
    template: AudioInput
    rate: int
    t: float
    a: float
    t_end: float = 0.0
    sizes: list[int] = field(default_factory=list)
    segmenter: A.Segmenter | None = None
    pcm: list[bytes] | None = None

    @property
    def ms(self) -> float:
        return A.pcm_ms(sum(self.sizes), self.rate)


@dataclass
class _OutRun:
    template: AudioOutput
    rate: int
    t: float
    a: float
    offsets: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    usage: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    pcm: list[bytes] | None = None


@dataclass
class _Stream:
    index: int
    model_id: str | None
    ended: bool = False
    audio_ms: float = 0.0
    in_rates: dict[str, int] = field(default_factory=dict)
    out_rates: dict[str, int] = field(default_factory=dict)
    in_run: _InRun | None = None
    out_run: _OutRun | None = None


class CassetteWriter:
    """Writes ``path`` (and ``<name>.audio`` when audio is kept in a sidecar).

    ``header``'s audio policy and sidecar name are set from ``options``; its ``meta`` is
    redacted. The header line is written at once. An existing file is refused unless
    ``overwrite=True`` (``CassetteWriter.resume`` appends new streams to one).

    Times: ``t`` is service seconds since *that stream* opened. Audio positions: ``a`` is the
    milliseconds of user audio the server had received; pass ``None`` to use the writer's own
    count of the audioInput frames it was given (what a capture proxy wants). For audioInput
    frames ``a`` is always the writer's count.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: CassetteHeader | None = None,
        options: WriterOptions | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.options = options if options is not None else WriterOptions()
        header = header if header is not None else CassetteHeader()
        policy = self.options.policy()
        sidecar = sidecar_path_for(self.path)
        self.header = header.model_copy(
            update={"audio": policy, "sidecar": sidecar.name if policy.needs_sidecar else None,
                    "meta": redact_mapping(header.meta)}
        )
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True or use CassetteWriter.resume()")
        header_line = LineEncoder().header(self.header)
        if self.options.secrets:  # before anything touches the disk
            assert_clean(header_line, self.options.secrets, path=str(self.path))
        if overwrite:  # the old cassette's sidecar goes with it
            for old in (self.path, sidecar):
                if old.exists():
                    old.unlink()
        self._file = AppendFile(self.path, exclusive=True)
        self._sidecar = SidecarWriter(sidecar, fresh=True)
        self._init_state()
        self._lines.append(header_line)
        self._write_out()

    @classmethod
    def resume(cls, path: str | os.PathLike[str], options: WriterOptions | None = None) -> CassetteWriter:
        """Append *new streams* to an existing cassette (record mode ``new_episodes``, a capture
        restarted after a crash). An incomplete last line is cut off first. The header is kept;
        ``options`` default to the header's audio policy."""
        p = Path(path)
        repair_tail(p)
        lines, _ = split_lines(p.read_bytes())
        if not lines:
            raise CassetteError("cannot resume an empty file", path=str(p))
        decoder = LineDecoder(path=str(p))
        header = decoder.header(_json(lines[0][1], str(p), lines[0][0]), lines[0][0])
        streams = -1
        for n, raw in lines[1:]:
            obj = _json(raw, str(p), n)
            if isinstance(obj, dict) and isinstance(obj.get("s"), int):
                streams = max(streams, obj["s"])
        self = cls.__new__(cls)
        self.path = p
        self.options = options if options is not None else WriterOptions.from_policy(header.audio)
        if self.options.policy() != header.audio:
            raise CassetteError(
                "the options' audio policy differs from the cassette header's", path=str(p),
                hint="resume with WriterOptions.from_policy(header.audio)",
            )
        self.header = header
        self._file = AppendFile(p, create=False)
        self._sidecar = SidecarWriter(sidecar_path_for(p), fresh=False)
        self._init_state()
        self._next_stream = streams + 1
        self._closed_streams = set(range(streams + 1))
        return self

    def _init_state(self) -> None:
        self._encoder = LineEncoder()
        self._lines: list[str] = []
        self._pending_bytes = 0
        self._streams: dict[int, _Stream] = {}
        self._next_stream = 0
        self._closed_streams: set[int] = set()
        self._failed: BaseException | None = None
        self._closed = False

    # --- streams ----------------------------------------------------------------------------------
    def open_stream(
        self,
        stream: int,
        *,
        t0: float | None = None,
        model_id: str | None = None,
        region: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Start stream ``stream`` (the next index) with its metadata. Optional: the first
        write to a new stream opens it with the header's model."""
        self._usable()
        if stream in self._streams or stream in self._closed_streams:
            raise ValueError(f"stream {stream} is already open")
        if stream != self._next_stream:
            raise ValueError(f"streams are numbered in order: the next is {self._next_stream}, not {stream}")
        self._next_stream += 1
        st = _Stream(stream, model_id if model_id is not None else self.header.model_id)
        self._streams[stream] = st
        self._emit(StreamRecord(stream=stream, t0=t0, model_id=st.model_id, region=region,
                                meta=redact_mapping(meta or {})))

    def _stream(self, stream: int) -> _Stream:
        self._usable()
        st = self._streams.get(stream)
        if st is None:
            if stream in self._closed_streams:
                raise ValueError(f"stream {stream} has ended")
            self.open_stream(stream)
            st = self._streams[stream]
        if st.ended:
            raise ValueError(f"stream {stream} has ended")
        return st

    def audio_ms(self, stream: int) -> float:
        """User audio (ms) the writer has seen on ``stream``: the default ``a``."""
        st = self._streams.get(stream)
        return st.audio_ms if st is not None else 0.0

    # --- writing ----------------------------------------------------------------------------------
    def write_client(self, stream: int, t: float, a: float | None, event: InputEvent, *, verdict: str | None = None) -> None:
        """A client event. ``verdict``: the rule id it was rejected with (None: accepted)."""
        st = self._stream(stream)
        if isinstance(event, AudioInput):
            self._add_audio_in(st, t, event, verdict)
            return
        self._flush_runs(st)
        if isinstance(event, ContentStart) and event.audio_input_configuration is not None:
            st.in_rates[event.content_name] = int(event.audio_input_configuration.sample_rate_hertz)
        self._emit(ClientEventRecord(stream=stream, t=t, a=st.audio_ms if a is None else a, event=event, verdict=verdict))

    def write_audio_in_size(self, stream: int, t: float, *, prompt_name: str, content_name: str, n_bytes: int) -> None:
        """An audioInput frame whose PCM is not known, only its decoded size (a journal kept
        without audio). The run's record then has no segments and no audio."""
        st = self._stream(stream)
        template = AudioInput(prompt_name=prompt_name, content_name=content_name, content="")
        self._add_audio_in(st, t, template, None, n_bytes=n_bytes)

    def write_server(self, stream: int, t: float, a: float | None, event: OutputEvent) -> None:
        """A service event."""
        st = self._stream(stream)
        a = st.audio_ms if a is None else a
        if isinstance(event, AudioOutput):
            self._add_audio_out(st, t, a, event)
            return
        if type(event) is UsageEvent and self._absorb_usage(st, event):
            return
        self._flush_out(st)
        split = self.options.audio_in_split_ms
        if st.in_run is not None and split is not None and st.in_run.ms >= split:
            self._flush_in(st)
        if isinstance(event, OutputContentStart) and event.audio_output_configuration is not None:
            st.out_rates[event.content_id] = int(event.audio_output_configuration.sample_rate_hertz)
        self._emit(ServerEventRecord(stream=stream, t=t, a=a, event=event))

    def write_exception(
        self,
        stream: int,
        t: float,
        a: float | None,
        name: str,
        message: str | None = None,
        *,
        via: Literal["stream", "error", "http"] = "stream",
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """An in-stream exception (``via="stream"``, ``name`` = lower-camel member), an unmodeled
        error frame (``via="error"``, ``name`` = error code) or an HTTP error (``via="http"``)."""
        st = self._stream(stream)
        self._flush_runs(st)
        self._emit(ExceptionRecord(
            stream=stream, t=t, a=st.audio_ms if a is None else a, via=via, name=name,
            message=redact_text(message) if message is not None else None, status=status,
            extra=redact_mapping(extra) if extra else None,
        ))

    def write_transport(
        self,
        stream: int,
        t: float,
        a: float | None,
        action: str,
        *,
        direction: Literal["c", "s"] = "s",
        code: int | None = None,
        detail: str | None = None,
    ) -> None:
        """A transport action (``model.TRANSPORT_ACTIONS``): rst, goaway, end-stream, close, …"""
        st = self._stream(stream)
        self._flush_runs(st)
        self._emit(TransportRecord(
            stream=stream, direction=direction, t=t, a=st.audio_ms if a is None else a, action=action,  # type: ignore[arg-type]
            code=code, detail=redact_text(detail) if detail is not None else None,
        ))

    def write_note(self, stream: int, t: float | None, text: str) -> None:
        st = self._stream(stream)
        self._flush_runs(st)
        self._emit(NoteRecord(stream=stream, t=t, text=redact_text(text)))

    def end_stream(self, stream: int, t: float, reason: str, *, input_finished: bool | None = None) -> None:
        """The stream ended (``completed``, ``exception:<member>``, …). Nothing more may be written to it."""
        st = self._stream(stream)
        self._flush_runs(st)
        self._emit(EndRecord(stream=stream, t=t, reason=reason, input_finished=input_finished))
        st.ended = True

    def write_record(self, record: Record, *, pcm: bytes | None = None) -> None:
        """Write a ready-made record (``save_cassette``, trimming tools). ``pcm``: the audio of
        an audio record, stored as this writer's options say (dropped when they do not keep it)."""
        if isinstance(record, StreamRecord):
            self.open_stream(record.stream, t0=record.t0, model_id=record.model_id, region=record.region,
                             meta=dict(record.meta))
            return
        st = self._stream(record.stream)
        self._flush_runs(st)
        if isinstance(record, AudioInRecord | AudioOutRecord):
            user = isinstance(record, AudioInRecord)
            ref = self._store(pcm, user=user) if pcm is not None else None
            record = record.model_copy(update={"pcm": ref})
            if user:
                st.audio_ms += record.duration_ms
        elif isinstance(record, NoteRecord):
            record = record.model_copy(update={"text": redact_text(record.text)})
        elif isinstance(record, ExceptionRecord) and record.message is not None:
            record = record.model_copy(update={"message": redact_text(record.message)})
        if isinstance(record, ClientEventRecord) and isinstance(record.event, ContentStart):
            cfg = record.event.audio_input_configuration
            if cfg is not None:
                st.in_rates[record.event.content_name] = int(cfg.sample_rate_hertz)
        self._emit(record)
        if isinstance(record, EndRecord):
            st.ended = True

    # --- audio runs -------------------------------------------------------------------------------
    def _add_audio_in(self, st: _Stream, t: float, event: AudioInput, verdict: str | None,
                      *, n_bytes: int | None = None) -> None:
        run = st.in_run
        template = event.model_copy(update={"content": ""}) if event.content else event
        if run is not None and run.template != template:
            self._flush_in(st)
            run = None
        keep = self.options.user_audio != "segments"
        if run is None:
            rate = st.in_rates.get(event.content_name, self.header.input_rate)
            run = _InRun(template, rate, t, st.audio_ms, pcm=[] if keep else None,
                         segmenter=self.header.audio.segmenter(rate, st.audio_ms))
            st.in_run = run
        run.t_end = max(t, run.t_end, run.t)
        if n_bytes is None:
            pcm = event.pcm
            n_bytes = len(pcm)
            if run.segmenter is not None:
                run.segmenter.feed(pcm)
            if run.pcm is not None:
                run.pcm.append(pcm)
        else:  # size only: neither segments nor audio can be known for this run
            run.segmenter = None
            run.pcm = None
        run.sizes.append(n_bytes)
        st.audio_ms += A.pcm_ms(n_bytes, run.rate)
        if verdict is not None:
            self._flush_in(st, verdict=verdict)

    def _add_audio_out(self, st: _Stream, t: float, a: float, event: AudioOutput) -> None:
        run = st.out_run
        template = event.model_copy(update={"content": ""})
        if run is not None and run.template != template:
            self._flush_out(st)
            run = None
        keep = self.options.assistant_audio != "elided"
        if run is None:
            rate = st.out_rates.get(event.content_id, self.header.output_rate)
            run = _OutRun(template, rate, t, a, pcm=[] if keep else None)
            st.out_run = run
        offset = max(int(round((t - run.t) * 1000)), run.offsets[-1] if run.offsets else 0)
        run.offsets.append(offset)
        if run.pcm is not None:
            pcm = event.pcm
            run.pcm.append(pcm)
            run.sizes.append(len(pcm))
        else:
            run.sizes.append(event.pcm_len)

    def _absorb_usage(self, st: _Stream, event: UsageEvent) -> bool:
        """Keep a usageEvent inside the pending audio run when it carries the run's ids and
        its 8-number form rebuilds it exactly (``AudioOutRecord.usage``)."""
        run = st.out_run
        if run is None:
            return False
        tp = run.template
        if (event.session_id, event.prompt_name, event.completion_id) != (tp.session_id, tp.prompt_name, tp.completion_id):
            return False
        vec = usage_vector(event)
        if vec is None:
            return False
        run.usage.append((len(run.sizes), tuple(vec)))
        return True

    def _store(self, pcm: bytes, *, user: bool) -> AudioRef | None:
        mode = self.options.user_audio if user else self.options.assistant_audio
        if mode in ("segments", "elided"):
            return None
        return make_ref(pcm, sidecar=self._sidecar if mode == "sidecar" else None, codec=self.header.audio.codec)

    def _flush_in(self, st: _Stream, *, verdict: str | None = None) -> None:
        run, st.in_run = st.in_run, None
        if run is None:
            return
        ref = self._store(b"".join(run.pcm), user=True) if run.pcm is not None else None
        segments = tuple(run.segmenter.segments()) if run.segmenter is not None else None
        self._emit(AudioInRecord(
            stream=st.index, t=run.t, t_end=run.t_end, a=run.a, template=run.template, sample_rate=run.rate,
            sizes=tuple(run.sizes), segments=segments, pcm=ref, verdict=verdict,
        ))

    def _flush_out(self, st: _Stream) -> None:
        run, st.out_run = st.out_run, None
        if run is None:
            return
        ref = self._store(b"".join(run.pcm), user=False) if run.pcm is not None else None
        self._emit(AudioOutRecord(
            stream=st.index, t=run.t, a=run.a, template=run.template, sample_rate=run.rate,
            sizes=tuple(run.sizes), offsets_ms=tuple(run.offsets), usage=tuple(run.usage), pcm=ref,  # type: ignore[arg-type]
        ))

    def _flush_runs(self, st: _Stream) -> None:
        """Write both pending runs, the one that started first first."""
        runs = [(r.t, i) for i, r in enumerate((st.in_run, st.out_run)) if r is not None]
        for _, i in sorted(runs):
            (self._flush_in if i == 0 else self._flush_out)(st)

    # --- output -----------------------------------------------------------------------------------
    def _usable(self) -> None:
        if self._failed is not None:
            raise CassetteError(f"the writer failed earlier and writes nothing more: {self._failed}",
                                path=str(self.path)) from self._failed
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")

    def _check_last_line(self) -> None:
        if self.options.secrets:
            try:
                assert_clean(self._lines[-1], self.options.secrets, path=str(self.path))
            except CassetteError as exc:
                self._lines.pop()
                self._failed = exc
                raise

    def _emit(self, record: Record) -> None:
        self._lines.append(self._encoder.record(record))
        self._check_last_line()
        self._pending_bytes += len(self._lines[-1]) + 1
        if self._pending_bytes >= self.options.max_pending_bytes:
            self._write_out()

    def _write_out(self) -> None:
        if not self._lines:
            return
        data = ("\n".join(self._lines) + "\n").encode("utf-8")
        self._lines.clear()
        self._pending_bytes = 0
        if self.options.fsync:
            self._sidecar.sync()
        self._file.write(data)
        if self.options.fsync:
            self._file.sync()

    def flush(self, *, runs: bool = True) -> None:
        """Write everything pending to disk. Call it after every burst.

        ``runs=False`` keeps the audio runs pending (only complete records are written): a
        capture that flushes very often (every network read) then does not cut its audio runs
        into many records; the client run is still cut every ``audio_in_split_ms`` at the next
        service event. A writer killed then loses the pending runs too."""
        self._usable()
        if runs:
            for st in self._streams.values():
                if not st.ended:
                    self._flush_runs(st)
        self._write_out()

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._failed is None:
                self.flush()
            else:  # the lines queued before the refused one are clean; runs are not encoded any more
                self._write_out()
        finally:
            self._closed = True
            self._file.close()
            self._sidecar.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> CassetteWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _json(raw: bytes, path: str, line: int) -> Any:
    try:
        return parse_json_line(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CassetteFormatError(f"not a JSON line: {exc}", line=line, path=path) from None
