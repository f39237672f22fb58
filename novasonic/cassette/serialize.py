"""The cassette serializer: records ↔ JSON lines (format version ``FORMAT_VERSION``).

Two functions' worth of policy, like VCR.py's ``serializers/jsonserializer.py``, plus the small
amount of per-stream state the compact forms need. ``LineEncoder`` and ``LineDecoder`` must see
the records of a file in file order; both are fed by one writer/loader.

Compact forms (each exactly reversible; docs/cassette-format.md has the full table):

- **Service ids written when they change.** In a service event (and an ``audio_out`` template)
  ``sessionId``, ``promptName``, ``completionId`` and ``contentId`` are left out when they equal
  the value the previous service event *of the same stream* had for that key. Only keys the
  event's model declares are left out or restored, so ``userSpeechStart`` (no completionId) is
  never given one. Unknown events are written whole.
- **Usage events as 8 numbers.** ``"u":[Δin.speech, Δin.text, Δout.speech, Δout.text,
  in.speech, in.text, out.speech, out.text]`` when the event is exactly the one those numbers
  rebuild (totals = sums, no added fields, ids unchanged); otherwise the full ``"e"`` form.
- **Audio runs.** ``sz`` chunk sizes and ``dt`` chunk gaps as ``audio.compact_ints``.

JSON is read with ``json`` only (plain data, never objects), strictly: duplicate keys,
``NaN``/``Infinity`` and non-object lines are errors.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ..errors import EventError
from ..events import AudioInput, AudioOutput, OutputEvent, UnknownOutputEvent, UsageEvent, parse_input, parse_output
from ..events.output import OUTPUT_EVENTS
from . import audio as A
from .errors import CassetteFormatError, CassetteVersionError
from .model import (
    FORMAT_VERSION,
    MAGIC,
    RECORD_KINDS,
    AudioInRecord,
    AudioOutRecord,
    CassetteHeader,
    ClientEventRecord,
    EndRecord,
    ExceptionRecord,
    NoteRecord,
    Record,
    ServerEventRecord,
    StreamRecord,
    TransportRecord,
    usage_event,
    usage_vector,
)

__all__ = ["SUPPORTED_VERSIONS", "ELIDED_IDS", "LineEncoder", "LineDecoder", "parse_json_line", "dumps"]

#: Format versions this toolkit reads.
SUPPORTED_VERSIONS = frozenset({FORMAT_VERSION})
#: Service ids written only when they change (per stream).
ELIDED_IDS = ("sessionId", "promptName", "completionId", "contentId")


def _declared_ids(cls: type[OutputEvent]) -> tuple[str, ...]:
    aliases = {f.alias or name for name, f in cls.model_fields.items()}
    return tuple(k for k in ELIDED_IDS if k in aliases)


_DECLARED: dict[str, tuple[str, ...]] = {name: _declared_ids(cls) for name, cls in OUTPUT_EVENTS.items()}


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _t(value: float) -> float | int:
    return A.round_ms(value, 3)


def _ms(value: float) -> float | int:
    return A.round_ms(value, 1)


# --- encoding --------------------------------------------------------------------------------------


class LineEncoder:
    """Record → one JSON line (no newline). Keeps the per-stream id state of the compact form."""

    def __init__(self) -> None:
        self._ids: dict[int, dict[str, str]] = {}
        self._last_audio: dict[tuple[int, str], tuple[Any, int]] = {}  # (stream, kind) → (template, hz)

    def _same_as_last(self, r: AudioInRecord | AudioOutRecord, d: dict[str, Any]) -> bool:
        """Leave out ``hz`` (and tell whether to leave out ``e``) when they repeat the previous
        audio record of the same kind in the stream."""
        key = (r.stream, r.KIND)
        last = self._last_audio.get(key)
        self._last_audio[key] = (r.template, r.sample_rate)
        if last is not None and last[1] == r.sample_rate:
            del d["hz"]
        return last is not None and last[0] == r.template

    def header(self, header: CassetteHeader) -> str:
        d = header.model_dump(by_alias=True, exclude_none=True, mode="json")
        if not d.get("meta"):
            d.pop("meta", None)
        return dumps({MAGIC: d.pop(MAGIC), **d})

    def record(self, r: Record) -> str:
        return dumps(self.to_obj(r))

    def to_obj(self, r: Record) -> dict[str, Any]:
        if isinstance(r, StreamRecord):
            d: dict[str, Any] = {"k": "stream", "s": r.stream}
            if r.t0 is not None:
                d["t0"] = _t(r.t0)
            if r.model_id is not None:
                d["model"] = r.model_id
            if r.region is not None:
                d["region"] = r.region
            if r.meta:
                d["meta"] = r.meta
            return d
        if isinstance(r, EndRecord):
            d = {"k": "end", "s": r.stream, "t": _t(r.t), "how": r.reason}
            if r.input_finished is not None:
                d["input_finished"] = r.input_finished
            return d
        if isinstance(r, NoteRecord):
            d = {"k": "note", "s": r.stream}
            if r.t is not None:
                d["t"] = _t(r.t)
            d["text"] = r.text
            return d
        base = {"s": r.stream, "d": r.direction, "t": _t(r.t), "a": _ms(r.a)}
        if isinstance(r, ClientEventRecord):
            d = {**base, "e": {r.event.EVENT_NAME: r.event.to_dict()}}
            if r.verdict is not None:
                d["v"] = r.verdict
            return d
        if isinstance(r, ServerEventRecord):
            return {**base, **self._server_event(r.stream, r.event)}
        if isinstance(r, AudioInRecord):
            d = {"k": "audio_in", **base, "t1": _t(r.t_end), "ms": _ms(r.duration_ms), "n": r.n_frames,
                 "hz": r.sample_rate, "sz": A.compact_ints(r.sizes)}
            if r.segments is not None:
                d["seg"] = [[k, _ms(s), _ms(e)] for k, s, e in r.segments]
            if r.pcm is not None:
                d["pcm"] = r.pcm.model_dump(by_alias=True, exclude_none=True)
            if r.verdict is not None:
                d["v"] = r.verdict
            if not self._same_as_last(r, d):
                tmpl = r.template.to_dict()
                tmpl.pop("content", None)
                d["e"] = {AudioInput.EVENT_NAME: tmpl}
            return d
        if isinstance(r, AudioOutRecord):
            gaps = [b - a for a, b in zip(r.offsets_ms, r.offsets_ms[1:])]
            d = {"k": "audio_out", **base, "ms": _ms(r.duration_ms), "n": r.n_chunks, "hz": r.sample_rate,
                 "sz": A.compact_ints(r.sizes)}
            if gaps:
                d["dt"] = A.compact_ints(gaps)
            if r.usage:
                d["u"] = [[k, list(v)] for k, v in r.usage]
            if r.pcm is not None:
                d["pcm"] = r.pcm.model_dump(by_alias=True, exclude_none=True)
            if not self._same_as_last(r, d):
                tmpl = self._elide(r.stream, AudioOutput.EVENT_NAME, r.template.to_dict())
                tmpl.pop("content", None)
                d["e"] = {AudioOutput.EVENT_NAME: tmpl}
            return d
        if isinstance(r, ExceptionRecord):
            d = {"k": "exception", **base}
            if r.via != "stream":
                d["via"] = r.via
            d["name"] = r.name
            if r.message is not None:
                d["msg"] = r.message
            if r.status is not None:
                d["status"] = r.status
            if r.extra:
                d["extra"] = r.extra
            return d
        if isinstance(r, TransportRecord):
            d = {"k": "transport", **base, "action": r.action}
            if r.code is not None:
                d["code"] = r.code
            if r.detail is not None:
                d["detail"] = r.detail
            return d
        raise TypeError(f"not a cassette record: {type(r).__name__}")

    def _elide(self, stream: int, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        state = self._ids.setdefault(stream, {})
        out = dict(payload)
        for key in _DECLARED.get(name, ()):
            value = payload.get(key)
            if isinstance(value, str):
                if state.get(key) == value:
                    del out[key]
                state[key] = value
        return out

    def _server_event(self, stream: int, ev: OutputEvent) -> dict[str, Any]:
        if isinstance(ev, UnknownOutputEvent):
            return {"e": {ev.name: ev.payload}}
        if type(ev) is UsageEvent:
            state = self._ids.setdefault(stream, {})
            ids = {"completionId": ev.completion_id, "promptName": ev.prompt_name, "sessionId": ev.session_id}
            if all(state.get(k) == v for k, v in ids.items()):
                vec = usage_vector(ev)
                if vec is not None:
                    return {"u": vec}
        return {"e": {ev.EVENT_NAME: self._elide(stream, ev.EVENT_NAME, ev.to_dict())}}


# --- decoding --------------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_line(text: str) -> Any:
    """``json.loads`` with duplicate keys and NaN/Infinity refused. Raises ``ValueError``."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "record"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


class LineDecoder:
    """JSON object → record, in file order. Raises ``CassetteFormatError`` naming the line."""

    def __init__(self, *, path: str | None = None) -> None:
        self.path = path
        self._ids: dict[int, dict[str, str]] = {}
        self._audio_ms: dict[int, float] = {}
        self._last_audio: dict[tuple[int, str], tuple[Any, int]] = {}  # (stream, kind) → (template, hz)

    def audio_total_ms(self, stream: int) -> float:
        """User audio (ms) of the stream's audio_in records decoded so far."""
        return self._audio_ms.get(stream, 0.0)

    def _err(self, message: str, line: int, hint: str | None = None) -> CassetteFormatError:
        return CassetteFormatError(message, line=line, path=self.path, hint=hint)

    # --- header ---------------------------------------------------------------------------------
    def header(self, obj: Any, line: int = 1) -> CassetteHeader:
        if not isinstance(obj, dict) or MAGIC not in obj:
            looks_like_record = isinstance(obj, dict) and ("s" in obj or "k" in obj)
            raise self._err(
                "missing cassette header" + (" (the first line is a record)" if looks_like_record else ""),
                line,
                hint=f'the first line must be the header {{"{MAGIC}": {FORMAT_VERSION}, ...}}',
            )
        version = obj[MAGIC]
        if not isinstance(version, int) or isinstance(version, bool):
            raise self._err(f'"{MAGIC}" must be an integer format version, got {version!r}', line)
        if version not in SUPPORTED_VERSIONS:
            newer = version > FORMAT_VERSION
            raise CassetteVersionError(
                f"cassette format version {version} is not supported (this toolkit reads "
                f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})",
                line=line,
                path=self.path,
                hint="upgrade novasonic-toolkit to read this cassette" if newer else "re-record the cassette",
            )
        try:
            return CassetteHeader.model_validate(obj, by_alias=True, by_name=False)
        except ValidationError as exc:
            raise self._err(f"bad header: {_pydantic_message(exc)}", line) from None

    # --- records --------------------------------------------------------------------------------
    def record(self, obj: Any, line: int) -> Record:
        if not isinstance(obj, dict):
            raise self._err(f"a record must be a JSON object, got {type(obj).__name__}", line)
        if MAGIC in obj:
            raise self._err("a second cassette header", line, hint="concatenated cassettes are not supported")
        obj = dict(obj)
        kind = obj.pop("k", None)
        stream = obj.get("s")
        if not isinstance(stream, int) or isinstance(stream, bool) or stream < 0:
            raise self._err(f'"s" (stream index) must be an integer >= 0, got {stream!r}', line)
        if kind is None:
            rec = self._event(obj, stream, line)
        else:
            cls = RECORD_KINDS.get(kind) if isinstance(kind, str) else None
            if cls is None:
                known = ", ".join(["(none: event)", *RECORD_KINDS])
                raise self._err(f"unknown record kind {kind!r} (known: {known})", line,
                                hint="this toolkit may be older than the cassette's writer")
            rec = self._kind(cls, obj, stream, line)
        rec.at_line(line)
        if isinstance(rec, AudioInRecord):
            self._audio_ms[stream] = self.audio_total_ms(stream) + rec.duration_ms
        if isinstance(rec, AudioInRecord | AudioOutRecord):
            self._last_audio[(stream, rec.KIND)] = (rec.template, rec.sample_rate)
        return rec

    def _validate(self, cls: type, obj: dict[str, Any], line: int, what: str) -> Any:
        try:
            return cls.model_validate(obj, by_alias=True, by_name=False)
        except ValidationError as exc:
            raise self._err(f"bad {what} record: {_pydantic_message(exc)}", line) from None

    def _default_a(self, obj: dict[str, Any], stream: int) -> None:
        if "a" not in obj:
            obj["a"] = self.audio_total_ms(stream)

    def _event(self, obj: dict[str, Any], stream: int, line: int) -> Record:
        d = obj.get("d")
        if d not in ("c", "s"):
            raise self._err(f'"d" (direction) must be "c" or "s", got {d!r}', line)
        self._default_a(obj, stream)
        if d == "c":
            e = obj.get("e")
            name = self._event_name(e, line)
            if name == AudioInput.EVENT_NAME:
                raise self._err("audioInput events belong in audio_in records", line)
            try:
                obj["e"] = parse_input({"event": e})
            except EventError as exc:
                raise self._err(f"bad client event: {exc}", line) from None
            return self._validate(ClientEventRecord, obj, line, "client event")
        if "u" in obj:
            if "e" in obj:
                raise self._err('a service event has either "e" or "u", not both', line)
            obj["e"] = self._usage(obj.pop("u"), stream, line)
        else:
            e = obj.get("e")
            name = self._event_name(e, line)
            if name == AudioOutput.EVENT_NAME:
                raise self._err("audioOutput events belong in audio_out records", line)
            obj["e"] = self._output(e, name, stream, line)
        return self._validate(ServerEventRecord, obj, line, "service event")

    def _event_name(self, e: Any, line: int) -> str:
        if not isinstance(e, dict) or len(e) != 1:
            raise self._err('"e" must be an object holding exactly one named event, like {"textOutput": {...}}', line)
        (name,) = e
        if not isinstance(e[name], dict):
            raise self._err(f'"e.{name}" must be a JSON object', line)
        return name

    def _restore(self, name: str, payload: dict[str, Any], stream: int, line: int) -> dict[str, Any]:
        state = self._ids.setdefault(stream, {})
        out = dict(payload)
        for key in _DECLARED.get(name, ()):
            if key not in out:
                if key not in state:
                    raise self._err(
                        f"{name}.{key} is left out, but no earlier service event of stream {stream} gave it",
                        line, hint="write the id on the first event that uses it",
                    )
                out[key] = state[key]
            if isinstance(out[key], str):
                state[key] = out[key]
        return out

    def _output(self, e: dict[str, Any], name: str, stream: int, line: int) -> OutputEvent:
        payload = self._restore(name, e[name], stream, line)
        try:
            return parse_output({"event": {name: payload}})
        except EventError as exc:
            raise self._err(f"bad service event: {exc}", line) from None

    def _usage(self, u: Any, stream: int, line: int) -> UsageEvent:
        if not (isinstance(u, list) and len(u) == 8
                and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in u)):
            raise self._err('"u" (usage) must be a list of 8 integers >= 0', line)
        state = self._ids.get(stream, {})
        missing = [k for k in ("sessionId", "promptName", "completionId") if k not in state]
        if missing:
            raise self._err(f"usage record before any service event gave {', '.join(missing)}", line)
        return usage_event(u, session_id=state["sessionId"], prompt_name=state["promptName"],
                           completion_id=state["completionId"])

    def _kind(self, cls: type, obj: dict[str, Any], stream: int, line: int) -> Record:
        kind = cls.KIND  # type: ignore[attr-defined]
        if cls in (AudioInRecord, AudioOutRecord, ExceptionRecord, TransportRecord):
            self._default_a(obj, stream)
        if cls is AudioInRecord or cls is AudioOutRecord:
            self._audio(cls, obj, stream, line)
        return self._validate(cls, obj, line, kind)

    def _audio(self, cls: type, obj: dict[str, Any], stream: int, line: int) -> None:
        kind = cls.KIND  # type: ignore[attr-defined]
        n = obj.pop("n", None)
        ms = obj.pop("ms", None)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise self._err(f'"n" must be an integer >= 1, got {n!r}', line)
        if "sz" not in obj:
            raise self._err(f'an {kind} record needs "sz" (the decoded bytes of each chunk)', line)
        try:
            sizes = A.expand_ints(obj.get("sz"), count=n)
        except ValueError as exc:
            raise self._err(f'bad "sz" (chunk sizes): {exc}', line) from None
        obj["sz"] = sizes
        want_name = AudioInput.EVENT_NAME if cls is AudioInRecord else AudioOutput.EVENT_NAME
        last = self._last_audio.get((stream, kind))
        if "hz" not in obj and last is not None:
            obj["hz"] = last[1]
        e = obj.get("e")
        if e is None:
            if last is None:
                raise self._err(f'the first {kind} record of stream {stream} needs "e" (the template event)', line)
            obj["e"] = last[0]
        else:
            name = self._event_name(e, line)
            if name != want_name:
                raise self._err(f'the template of an {kind} record must be {{"{want_name}": {{...}}}}, got {name!r}',
                                line)
            if "content" in e[name]:
                raise self._err(f"the {kind} template must not hold content (audio is in sz/pcm)", line)
            if cls is AudioInRecord:
                try:
                    obj["e"] = parse_input({"event": {name: {**e[name], "content": ""}}})
                except EventError as exc:
                    raise self._err(f"bad audio_in template: {exc}", line) from None
            else:
                payload = self._restore(name, {**e[name], "content": ""}, stream, line)
                try:
                    obj["e"] = parse_output({"event": {name: payload}})
                except EventError as exc:
                    raise self._err(f"bad audio_out template: {exc}", line) from None
        if cls is AudioOutRecord:
            dt = obj.pop("dt", None)
            try:
                if len(sizes) <= 1:
                    if dt not in (None, []):
                        raise ValueError("a single chunk has no gaps")
                    gaps: list[int] = []
                else:
                    gaps = A.expand_ints(dt if dt is not None else 0, count=len(sizes) - 1)
            except ValueError as exc:
                raise self._err(f'bad "dt" (chunk gaps, ms): {exc}', line) from None
            if any(g < 0 for g in gaps):
                raise self._err('"dt" (chunk gaps) must not be negative', line)
            offsets = [0]
            for g in gaps:
                offsets.append(offsets[-1] + g)
            obj["dt"] = offsets
        hz = obj.get("hz")
        if ms is not None and isinstance(hz, int) and not isinstance(hz, bool) and hz > 0:
            actual = A.pcm_ms(sum(sizes), hz)
            if not isinstance(ms, int | float) or isinstance(ms, bool) or abs(ms - actual) > 0.2:
                raise self._err(
                    f'"ms" says {ms!r} but the chunk sizes hold {A.round_ms(actual)} ms at {hz} Hz', line,
                    hint='"ms" is informative; fix "sz" or "hz", or drop "ms"',
                )
