"""What the proxy writes: the cassette (``CassetteWriter``), a journal and live statistics.

Off the relay's hot path
------------------------
The relay forwards first and records second: each pump hands the recorder the raw event JSON and
the time it arrived (:meth:`StreamRecording.client` / :meth:`StreamRecording.server`), which only
appends to a queue. The queue is drained by one callback scheduled with ``loop.call_soon``: it
parses the events (pydantic), feeds the journal, the statistics and the writer, then flushes the
writer (one ``os.write``). So a burst of upstream events is relayed back to back and parsed
afterwards, in arrival order, and a burst ends with one flush: the "flush per burst" of
docs/cassette-format.md §9. ``flush(runs=False)`` is used, so flushing after every burst does not
cut the audio runs into more records; a run is written when the client or the service sends
something else (and a microphone run every ``audio_in_split_ms``). A SIGKILL therefore loses at
most the pending audio runs and the events of the current loop iteration; the file stays
loadable up to its last complete line.

When is a stream written
------------------------
A stream enters the cassette once the upstream *answered* it (its HTTP 200, or an HTTP error):
a stream the upstream never saw (no credentials, connection refused) is a fault of the recording
set-up, not service behaviour, and is left out (the journal and the log keep it). Until then its
records are held in memory; streams are numbered in the order they were answered.

The header is written when the first voice is known (the first ``promptStart``), or when a
stream ends, or when the proxy closes, whichever comes first, so that ``voice`` and
``output_rate`` can be taken from the conversation. Until then (normally a single
``sessionStart``) records are held; nothing is ever written without its header.

Secrets: the writer is given every credential in play (the proxy's published test keys and the
upstream's keys and token) and checks each line against them (``WriterOptions.secrets``), on top
of the format's own redaction. A refused line stops the recording (loudly: ``error``), never the
relay.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeserver.journal import Journal, StreamJournal
from novasonic.cassette import CassetteHeader, CassetteWriter, WriterOptions, load_cassette
from novasonic.errors import EventError
from novasonic.events import (
    AudioInput,
    AudioOutput,
    ContentStart,
    OutputContentStart,
    PromptStart,
    parse_input,
    parse_output,
)

__all__ = ["Recorder", "StreamRecording", "CaptureStats"]

log = logging.getLogger("tools.capture")

#: Held operations (before the header or before the upstream answered) after which the header is
#: written anyway, so a client that never sends promptStart still gets its cassette.
MAX_HELD = 256

Op = Callable[[CassetteWriter, int], None]


@dataclass
class CaptureStats:
    """Live figures of a capture (the CLI's progress line)."""

    streams: int = 0
    open_streams: int = 0
    client_events: int = 0
    server_events: int = 0
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0
    errors: int = 0
    """Streams that ended with an exception, an error frame, an HTTP error or a transport fault."""
    started: float = field(default_factory=time.monotonic)

    def line(self, path: Path | None = None) -> str:
        size = ""
        if path is not None:
            try:
                size = f" | {path.name} {path.stat().st_size / 1024:.1f} KB"
            except OSError:
                size = f" | {path.name} (not written yet)"
        return (f"{self.streams} stream{'s' if self.streams != 1 else ''} ({self.open_streams} open) | "
                f"events {self.client_events} up / {self.server_events} down | "
                f"audio {self.audio_in_ms / 1000:.1f} s in / {self.audio_out_ms / 1000:.1f} s out | "
                f"{self.errors} error{'s' if self.errors != 1 else ''}{size}")

    def to_dict(self) -> dict[str, Any]:
        return {"streams": self.streams, "open_streams": self.open_streams, "client_events": self.client_events,
                "server_events": self.server_events, "audio_in_ms": round(self.audio_in_ms, 1),
                "audio_out_ms": round(self.audio_out_ms, 1), "errors": self.errors}


class StreamRecording:
    """The recording of one relayed stream. Times are seconds since the stream opened."""

    def __init__(self, recorder: Recorder, journal: StreamJournal, *, model_id: str, region: str, t_open: float) -> None:
        self.rec = recorder
        self.journal = journal
        self.model_id = model_id
        self.region = region
        self.t_open = t_open
        self.index: int | None = None
        """Cassette stream index, once the upstream answered (:meth:`commit`)."""
        self.meta: dict[str, Any] = {}
        self.held: list[Op] = []
        self.discarded = False
        self.ended = False
        self.input_finished = False
        self._in_rates: dict[str, int] = {}
        self._out_rates: dict[str, int] = {}

    # --- hot path: queue only ----------------------------------------------------------------------
    def client(self, t: float, event_json: bytes) -> None:
        self.rec._queue(self, "c", t, event_json)

    def server(self, t: float, event_json: bytes) -> None:
        self.rec._queue(self, "s", t, event_json)

    # --- everything else goes through the same queue (keeps the order) --------------------------
    def commit(self, status: int, request_id: str | None) -> None:
        """The upstream answered: the stream belongs in the cassette."""
        self.rec._queue_call(self, lambda: self.rec._commit(self, status, request_id))

    def discard(self, reason: str | None) -> None:
        """Keep this stream out of the cassette (journal only). ``reason``: logged (None: quietly)."""
        self.rec._queue_call(self, lambda: self.rec._discard(self, reason))

    def input_end(self, t: float) -> None:
        def note() -> None:
            self.input_finished = True
            self.journal.input_finished = True
        self.rec._queue_call(self, note)

    def exception(self, t: float, name: str, message: str | None, *, via: str = "stream", status: int | None = None,
                  extra: dict[str, Any] | None = None) -> None:
        kind = {"stream": "exception", "error": "error", "http": "http"}[via]

        def op() -> None:
            self.journal.record_server(t, kind, name, message)
            self.rec.stats.errors += 1
            self.rec._apply(self, lambda w, i: w.write_exception(i, t, None, name, message, via=via,  # type: ignore[arg-type]
                                                                 status=status, extra=extra))
        self.rec._queue_call(self, op)

    def transport(self, t: float, action: str, *, direction: str = "s", code: int | None = None,
                  detail: str | None = None) -> None:
        def op() -> None:
            if direction == "s":
                self.journal.record_server(t, "transport", action, detail)
                if action != "end-stream":
                    self.rec.stats.errors += 1
            self.rec._apply(self, lambda w, i: w.write_transport(i, t, None, action, direction=direction,  # type: ignore[arg-type]
                                                                 code=code, detail=detail))
        self.rec._queue_call(self, op)

    def note(self, t: float | None, text: str) -> None:
        self.rec._queue_call(self, lambda: self.rec._apply(self, lambda w, i: w.write_note(i, t, text)))

    def end(self, t: float, how: str) -> None:
        """The stream is over (``completed``, ``exception:<member>``, ``http:<status>``, …)."""
        def op() -> None:
            if self.ended:
                return
            self.ended = True
            self.journal.end = how
            self.rec.stats.open_streams -= 1
            if self.discarded:
                return
            finished = self.input_finished
            self.rec._apply(self, lambda w, i: w.end_stream(i, t, how, input_finished=finished))
            self.rec._ensure_writer(reason="a stream ended")
        self.rec._queue_call(self, op)

    # --- drain side ----------------------------------------------------------------------------------
    def _client(self, t: float, raw: bytes) -> None:
        try:
            event = parse_input(raw)
        except (EventError, ValueError) as exc:
            name = _event_name(raw)
            self.journal.record_rejected(t, name, "unparsable")
            self.rec._apply(self, lambda w, i: w.write_note(
                i, t, f"client {name} not understood by this toolkit (forwarded as sent): {str(exc)[:300]}"))
            self.rec.stats.client_events += 1
            return
        self.journal.record_client(t, event)
        self.rec.stats.client_events += 1
        if isinstance(event, AudioInput):
            rate = self._in_rates.get(event.content_name, 16000)
            self.rec.stats.audio_in_ms += event.pcm_len * 500.0 / rate
        elif isinstance(event, ContentStart) and event.audio_input_configuration is not None:
            self._in_rates[event.content_name] = int(event.audio_input_configuration.sample_rate_hertz)
        elif isinstance(event, PromptStart):
            self.rec._learn_voice(event)
        self.rec._apply(self, lambda w, i: w.write_client(i, t, None, event))

    def _server(self, t: float, raw: bytes) -> None:
        try:
            event = parse_output(raw)
        except (EventError, ValueError) as exc:
            self.journal.record_server(t, "event", _event_name(raw), "unparsable")
            self.rec._apply(self, lambda w, i: w.write_note(
                i, t, f"service {_event_name(raw)} not understood by this toolkit (relayed as sent): {str(exc)[:300]}"))
            self.rec.stats.server_events += 1
            return
        self.journal.record_server_event(t, event)
        self.rec.stats.server_events += 1
        if isinstance(event, AudioOutput):
            rate = self._out_rates.get(event.content_id or "", self.rec.output_rate)
            self.rec.stats.audio_out_ms += event.pcm_len * 500.0 / rate
        elif isinstance(event, OutputContentStart) and event.audio_output_configuration is not None:
            self._out_rates[event.content_id or ""] = int(event.audio_output_configuration.sample_rate_hertz)
        self.rec._apply(self, lambda w, i: w.write_server(i, t, None, event))


def _event_name(raw: bytes) -> str:
    """The event name of a JSON document we could not parse, best effort (never raises)."""
    try:
        import json

        doc = json.loads(raw)
        ev = doc.get("event", doc)
        if isinstance(ev, dict) and len(ev) == 1:
            return str(next(iter(ev)))
    except Exception:
        pass
    return "(unparsable)"


class Recorder:
    """All streams of one capture → one cassette file (+ sidecar when audio is kept)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        header: CassetteHeader,
        options: WriterOptions | None = None,
        journal: Journal | None = None,
        secrets: Callable[[], tuple[str, ...]] = tuple,
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self.options = options or WriterOptions()
        self.journal = journal if journal is not None else Journal()
        self.stats = CaptureStats()
        self._secrets = secrets
        self._resume = resume
        self._overwrite = overwrite
        if not resume and self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists: choose another --out, or overwrite/append explicitly")
        if resume and not self.path.exists():
            raise FileNotFoundError(f"cannot append to {self.path}: it does not exist")
        self.writer: CassetteWriter | None = None
        self.error: BaseException | None = None
        self.output_rate = header.output_rate
        self._voice: str | None = header.voice
        self._t_first: float | None = None
        self._committed: list[StreamRecording] = []
        self._next_index = 0
        self._queue_items: list[tuple[StreamRecording, str, float, Any]] = []
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held_total = 0
        self._next_offset = 0
        self.closed = False

    # --- streams -------------------------------------------------------------------------------------
    def open_stream(self, journal: StreamJournal, *, model_id: str, region: str,
                    t_open: float | None = None) -> StreamRecording:
        """``t_open``: ``time.monotonic()`` when the stream opened (default: now)."""
        now = time.monotonic() if t_open is None else t_open
        if self._t_first is None:
            self._t_first = now
        self.stats.streams += 1
        self.stats.open_streams += 1
        return StreamRecording(self, journal, model_id=model_id, region=region, t_open=now)

    def _commit(self, sr: StreamRecording, status: int, request_id: str | None) -> None:
        if sr.index is not None or sr.discarded:
            return
        sr.journal.status = status
        sr.index = self._next_index
        self._next_index += 1
        sr.meta = {"status": status}
        if request_id:
            sr.meta["upstream_request_id"] = request_id
        self._committed.append(sr)
        if self.writer is not None:
            self._open_in_writer(sr)
        elif self._voice is not None or self._held_total > MAX_HELD:
            self._ensure_writer(reason="a stream was answered")

    def _discard(self, sr: StreamRecording, reason: str | None) -> None:
        if sr.index is not None:
            return
        sr.discarded = True
        self._held_total -= len(sr.held)
        sr.held.clear()
        if reason is not None:
            log.warning("stream %d is not recorded: %s", sr.journal.index, reason)

    # --- queue ---------------------------------------------------------------------------------------
    def _queue(self, sr: StreamRecording, kind: str, t: float, payload: Any) -> None:
        self._queue_items.append((sr, kind, t, payload))
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            loop.call_soon(self._drain)

    def _queue_call(self, sr: StreamRecording, fn: Callable[[], None]) -> None:
        self._queue(sr, "f", 0.0, fn)

    def _drain(self) -> None:
        self._scheduled = False
        items, self._queue_items = self._queue_items, []
        for sr, kind, t, payload in items:
            try:
                if kind == "c":
                    sr._client(t, payload)
                elif kind == "s":
                    sr._server(t, payload)
                else:
                    payload()
            except Exception as exc:  # a bug here must never stop the relay
                self._fail(exc)
        if self.writer is not None and self.error is None:
            try:
                self.writer.flush(runs=False)
            except Exception as exc:
                self._fail(exc)

    def drain_now(self) -> None:
        """Process everything queued (close, tests)."""
        while self._queue_items:
            self._drain()

    # --- writing -------------------------------------------------------------------------------------
    def _apply(self, sr: StreamRecording, op: Op) -> None:
        if sr.discarded or self.error is not None:
            return
        if sr.index is None or self.writer is None:
            sr.held.append(op)
            self._held_total += 1
            if self._held_total > MAX_HELD and sr.index is not None:
                self._ensure_writer(reason="many records held")
            return
        try:
            op(self.writer, sr.index)
        except Exception as exc:
            self._fail(exc)

    def _learn_voice(self, event: PromptStart) -> None:
        cfg = event.audio_output_configuration
        if self._voice is None and cfg is not None and cfg.voice_id:
            self._voice = cfg.voice_id
            if cfg.sample_rate_hertz:
                self.output_rate = int(cfg.sample_rate_hertz)
        # The header goes out now if a stream was answered already (else at the commit); the
        # promptStart itself is applied right after this call, behind the held records.
        self._ensure_writer(reason="the voice is known")

    def _ensure_writer(self, reason: str = "") -> None:
        if self.writer is not None or self.error is not None or self.closed and reason != "close":
            return
        if not self._committed:
            return  # nothing to write yet (a header alone is not a cassette)
        first = self._committed[0]
        try:
            if self._resume:  # new streams are appended after the recorded ones
                existing = load_cassette(self.path, validate=False)
                options = WriterOptions.from_policy(existing.header.audio, secrets=self._all_secrets())
                self.writer = CassetteWriter.resume(self.path, options)
                self._next_offset = len(existing)
            else:
                header = self.header.model_copy(update={
                    "model_id": self.header.model_id or first.model_id,
                    "region": self.header.region or first.region,
                    "voice": self._voice,
                    "output_rate": self.output_rate,
                })
                options = WriterOptions(**{**_options_dict(self.options), "secrets": self._all_secrets()})
                self.writer = CassetteWriter(self.path, header, options, overwrite=self._overwrite)
                self._next_offset = 0
        except Exception as exc:
            self._fail(exc)
            return
        log.debug("cassette %s started (%s)", self.path, reason)
        for sr in self._committed:
            self._open_in_writer(sr)

    def _all_secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (*self.options.secrets, *self._secrets()) if s)

    def _open_in_writer(self, sr: StreamRecording) -> None:
        assert self.writer is not None and sr.index is not None
        index = sr.index + self._next_offset
        sr.index = index
        t0 = round(sr.t_open - self._t_first, 3) if self._t_first is not None else None
        try:
            self.writer.open_stream(index, t0=t0 if not self._resume else None, model_id=sr.model_id,
                                    region=sr.region, meta=sr.meta)
            held, sr.held = sr.held, []
            self._held_total -= len(held)
            for op in held:
                op(self.writer, index)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            log.error("the recording stopped (the relay goes on): %s", exc, exc_info=not isinstance(exc, OSError))

    def close(self) -> None:
        """Write everything left (held streams included) and close the files."""
        if self.closed:
            return
        self.drain_now()
        self.closed = True
        self._ensure_writer(reason="close")
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception as exc:
                self._fail(exc)


def _options_dict(options: WriterOptions) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(options, f.name) for f in fields(options)}
