"""Semantic diff of two cassettes: what changed in the conversation, not in the bytes.

``diff_cassettes(a, b)`` returns a ``CassetteDiff``: structured differences (``.equal``,
``.changes()``, ``.to_dict()`` for machines, ``.render()`` for people, in a unified-diff style).
``nova-cassette diff A B`` is this function on the command line.

What is compared
----------------
Each stream is reduced to three **lanes** of normalised items, and the lanes are aligned item by
item (``difflib.SequenceMatcher``, no junk heuristic) with streams paired by index:

=========  ===========================================================================
``stream`` the stream's model and region, and how it ended (``end`` record)
``client`` client events in order; consecutive ``audioInput`` frames of one content block
           are one item, however the writer cut them into ``audio_in`` records;
           client transport actions (``end-input`` …)
``service`` service events in order; consecutive ``audioOutput`` chunks of one block are one
           item, usage events kept inside an ``audio_out`` record are expanded at their place
           (so ``audio ×13, usage, audio ×17`` reads the same however it was stored);
           exceptions and service transport actions
=========  ===========================================================================

Client and service are separate lanes because their *interleaving* in the file is not
canonical: a writer puts an ``audio_in`` run where it ended and a capture's view of two events
sent at the same moment depends on the network (docs/cassette-format.md §3 "Order"). Inside one
direction the order is what was sent, and that is compared. Cross-direction timing is caught by
``timing=True`` (below). The header is compared on ``HEADER_KEYS`` (model, voice, rates, region);
``created``, ``toolkit``, the audio storage policy, the sidecar and ``meta`` are not content.
Notes (``k: note``, free text for reviewers) are ignored.

What is ignored by default
--------------------------
- **Ids and names.** ``promptName``, ``contentName``, ``toolUseId``, ``sessionId``,
  ``completionId`` and ``contentId`` (``ID_KEYS``) are compared by *structure*, not by value: an
  item matches another whatever its ids are; then, along the matched items, each A id is bound
  to the B id at the same place (one binding per namespace, like replay rebinding them). An id
  that breaks the binding (a ``toolResult`` that answers another tool call than in A, text in
  another content block) makes the item *changed* at that field. Output shows ids as
  ``#prompt1``, ``#content2``, ``#toolUse1``, ``#contentId3``, ``#session1``, ``#completion1``
  numbered by order of appearance in A (B ids bound to an A id show the same symbol; unbound B
  ids continue the numbering), so unchanged lines read the same on both sides.
- **Times and audio positions**: ``t``, ``t1``, ``t0``, chunk send times, ``a``, the amounts of
  audio in runs (ms, frames, chunks), speech segments, and the audio positions the service
  reports inside events (``inputAudioOffsetMs``, ``inputAudioDetectionOffsetMs``). Two
  recordings of the same conversation at different speeds, or with a microphone that streamed
  a few more frames of silence, are equal.

``DiffOptions(timing=True)`` compares all of these too, each within a tolerance
(``time_tolerance_s`` for times, ``audio_tolerance_ms`` for audio positions and amounts; speech
segments must be as many, each boundary within the tolerance; a side whose segments are unknown,
as in a journal kept without audio, is not compared). Chunk and frame *counts* are shown, never
compared: the amount of audio is.

JSON carried in strings is compared as JSON: ``toolUse.content`` (tool arguments),
``toolResult.content``, ``additionalModelFields`` and the tools' ``inputSchema.json``, so
``{"city": "Paris"}`` equals ``{"city":"Paris"}``. A double-encoded value stays a string and
differs from the object (it is a real difference for clients).

``DiffOptions(ignore=...)`` drops more: event names or record kinds (``usageEvent``,
``audioInput``, ``exception``, ``transport``, ``end``…), lanes (``client``, ``service``,
``stream``), header keys (``voice``, ``region``…) or JSON keys anywhere in events
(``inferenceConfiguration``, ``additionalModelFields``…).

Result
------
``CassetteDiff.header`` (``HeaderChange`` list) and ``.streams`` (``StreamDiff``: ``status``
``same``/``changed``/``only_a``/``only_b`` and one ``LaneDiff`` per lane). A lane's ``rows``
cover both sequences in order (``" "`` same, ``"-"`` only in A, ``"+"`` only in B, ``"~"``
changed: same kind of event at the same place with different content, ids or timing).
``Change`` is a non-blank row with its items and the ``fields`` (dotted paths) that differ.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..events import InputEvent, OutputEvent, UnknownOutputEvent
from .load import load_cassette
from .model import (
    AudioInRecord,
    AudioOutRecord,
    Cassette,
    CassetteHeader,
    CassetteStream,
    ClientEventRecord,
    EndRecord,
    ExceptionRecord,
    ServerEventRecord,
    TransportRecord,
)

__all__ = [
    "ID_KEYS",
    "HEADER_KEYS",
    "LANES",
    "POSITION_KEYS",
    "DiffOptions",
    "DiffItem",
    "Row",
    "Change",
    "HeaderChange",
    "LaneDiff",
    "StreamDiff",
    "CassetteDiff",
    "diff_cassettes",
    "stream_items",
]

#: Keys whose values are ids or names, and their namespace (the symbol prefix in output).
ID_KEYS: dict[str, str] = {
    "promptName": "prompt",
    "contentName": "content",
    "toolUseId": "toolUse",
    "sessionId": "session",
    "completionId": "completion",
    "contentId": "contentId",
}
#: Namespaces the client introduces (bound along the client lane first); the others along the service lane.
_CLIENT_NAMESPACES = frozenset({"prompt", "content"})
#: Audio positions the service reports inside events: timing, not content.
POSITION_KEYS = ("inputAudioOffsetMs", "inputAudioDetectionOffsetMs")
#: Header keys that are content.
HEADER_KEYS = ("model", "voice", "input_rate", "output_rate", "region")
LANES = ("stream", "client", "service")
#: (event name or None for any, key) whose string value holds JSON, compared as JSON.
_JSON_STRINGS = {("toolUse", "content"), ("toolResult", "content"), (None, "additionalModelFields"), (None, "json")}
#: Timing fields compared with the time tolerance; every other timing field uses the audio tolerance.
_TIME_FIELDS = frozenset({"t", "t_end", "t0"})
#: Timing fields shown but never compared.
_COUNT_FIELDS = frozenset({"frames", "chunks"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffOptions:
    """``timing``: also compare times and audio positions, within the tolerances.
    ``ignore``: event names, record kinds, lanes, header keys or JSON keys to leave out."""

    timing: bool = False
    time_tolerance_s: float = 0.05
    audio_tolerance_ms: float = 40.0
    ignore: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not (self.time_tolerance_s >= 0 and math.isfinite(self.time_tolerance_s)):
            raise ValueError(f"time_tolerance_s must be a finite number >= 0 (got {self.time_tolerance_s!r})")
        if not (self.audio_tolerance_ms >= 0 and math.isfinite(self.audio_tolerance_ms)):
            raise ValueError(f"audio_tolerance_ms must be a finite number >= 0 (got {self.audio_tolerance_ms!r})")
        object.__setattr__(self, "ignore", frozenset(self.ignore))

    def to_dict(self) -> dict[str, Any]:
        return {"timing": self.timing, "time_tolerance_s": self.time_tolerance_s,
                "audio_tolerance_ms": self.audio_tolerance_ms, "ignore": sorted(self.ignore)}


# --- items --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffItem:
    """One normalised event of a lane.

    ``data``: the compared content (plain JSON; ids still as recorded). ``timing``: times,
    audio positions and amounts (compared only with ``timing=True``; ``frames``/``chunks`` never).
    ``key``: ``kind`` + ``data`` with every id replaced by its namespace, what alignment uses.
    ``line``: the cassette line of the (first) record it came from."""

    lane: str
    kind: str
    data: Mapping[str, Any]
    timing: Mapping[str, Any]
    line: int | None
    key: str

    def ids(self) -> list[tuple[str, str, str]]:
        """``(path, namespace, value)`` of every id in ``data``, in a canonical order."""
        out: list[tuple[str, str, str]] = []
        _collect_ids(self.data, "", out)
        return out


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _collect_ids(obj: Any, path: str, out: list[tuple[str, str, str]]) -> None:
    if isinstance(obj, dict):
        for k in sorted(obj):
            v = obj[k]
            p = f"{path}.{k}" if path else k
            ns = ID_KEYS.get(k)
            if ns is not None and isinstance(v, str):
                out.append((p, ns, v))
            else:
                _collect_ids(v, p, out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _collect_ids(v, f"{path}[{i}]", out)


def _placeholders(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (f"#{ID_KEYS[k]}" if k in ID_KEYS and isinstance(v, str) else _placeholders(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_placeholders(v) for v in obj]
    return obj


def _clean(obj: Any, kind: str, ignore: frozenset[str]) -> Any:
    """Drop ignored keys, parse JSON strings (``_JSON_STRINGS``)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k in ignore:
                continue
            if isinstance(v, str) and ((kind, k) in _JSON_STRINGS or (None, k) in _JSON_STRINGS):
                try:
                    v = json.loads(v)
                except ValueError:
                    pass
            out[k] = _clean(v, kind, ignore)
        return out
    if isinstance(obj, list):
        return [_clean(v, kind, ignore) for v in obj]
    return obj


def _event_parts(event: InputEvent | OutputEvent) -> tuple[str, dict[str, Any]]:
    if isinstance(event, UnknownOutputEvent):
        return event.name, dict(event.payload)
    return event.EVENT_NAME, event.to_dict()


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


class _LaneBuilder:
    def __init__(self, lane: str, options: DiffOptions) -> None:
        self.lane = lane
        self.options = options
        self.items: list[DiffItem] = []
        self._run: dict[str, Any] | None = None  # pending audio run

    def add(self, kind: str, data: dict[str, Any], timing: dict[str, Any], line: int | None) -> None:
        self.flush_run()
        self._add(kind, data, timing, line)

    def _add(self, kind: str, data: dict[str, Any], timing: dict[str, Any], line: int | None) -> None:
        ignore = self.options.ignore
        if kind in ignore:
            return
        data = _clean(data, kind, ignore)
        for k in POSITION_KEYS:
            if k in data:
                timing[k] = data.pop(k)
        key = _canon([kind, _placeholders(data)])
        self.items.append(DiffItem(self.lane, kind, data, timing, line, key))

    def event(self, event: InputEvent | OutputEvent, t: float, a: float, line: int | None, **extra: Any) -> None:
        kind, data = _event_parts(event)
        data.update({k: v for k, v in extra.items() if v is not None})
        self.add(kind, data, {"t": _r(t), "a": _r(a, 1)}, line)

    def audio(self, kind: str, template: InputEvent | OutputEvent, *, t: float, t_end: float, a: float, ms: float,
              n: int, speech: list[list[float]] | None, line: int | None, verdict: str | None = None) -> None:
        """Add audio to the pending run of ``kind`` (a new run when the template changed)."""
        _, data = _event_parts(template)
        data.pop("content", None)
        tkey = _canon(data)
        run = self._run
        if run is None or run["kind"] != kind or run["tkey"] != tkey:
            self.flush_run()
            count = "frames" if kind == "audioInput" else "chunks"
            run = self._run = {"kind": kind, "tkey": tkey, "data": data, "line": line, "count": count,
                               "timing": {"t": _r(t), "t_end": _r(t_end), "a": _r(a, 1), "ms": 0.0, count: 0,
                                          "speech": []}}
        timing = run["timing"]
        timing["t_end"] = max(timing["t_end"], _r(t_end))
        timing["ms"] = _r(timing["ms"] + ms, 1)
        timing[run["count"]] += n
        if speech is None or timing["speech"] is None:
            timing["speech"] = None
        else:
            for s, e in speech:
                if timing["speech"] and abs(timing["speech"][-1][1] - s) < 1e-6:
                    timing["speech"][-1][1] = e  # speech that continues across a record boundary
                else:
                    timing["speech"].append([s, e])
        if verdict is not None:  # the last frame was rejected: the run ends here
            run["data"] = {**run["data"], "rejected": verdict}
            self.flush_run()

    def flush_run(self) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        timing = run["timing"]
        if run["kind"] == "audioOutput":
            timing.pop("speech", None)
        self._add(run["kind"], run["data"], timing, run["line"])


def stream_items(
    stream: CassetteStream, header: CassetteHeader | None = None, options: DiffOptions | None = None
) -> dict[str, list[DiffItem]]:
    """The normalised lanes of one stream (see the module doc), ``{lane: items}``."""
    options = options or DiffOptions()
    lanes = {name: _LaneBuilder(name, options) for name in LANES}
    start = stream.start
    model = stream.model_id or (header.model_id if header else None)
    region = (start.region if start else None) or (header.region if header else None)
    lanes["stream"].add("stream", {"model": model, "region": region},
                        {"t0": start.t0} if start is not None and start.t0 is not None else {},
                        start.line if start else None)
    end: EndRecord | None = None
    for r in stream.records:
        if isinstance(r, ClientEventRecord):
            lanes["client"].event(r.event, r.t, r.a, r.line, rejected=r.verdict)
        elif isinstance(r, ServerEventRecord):
            lanes["service"].event(r.event, r.t, r.a, r.line)
        elif isinstance(r, AudioInRecord):
            speech = None
            if r.segments is not None:
                speech = [[float(s), float(e)] for k, s, e in r.segments if k == "speech"]
            lanes["client"].audio("audioInput", r.template, t=r.t, t_end=r.t_end, a=r.a, ms=r.duration_ms,
                                  n=r.n_frames, speech=speech, line=r.line, verdict=r.verdict)
        elif isinstance(r, AudioOutRecord):
            _audio_out(lanes["service"], r)
        elif isinstance(r, ExceptionRecord):
            data = {"via": r.via, "name": r.name, "message": r.message, "status": r.status, "extra": r.extra}
            lanes["service"].add("exception", {k: v for k, v in data.items() if v is not None},
                                 {"t": _r(r.t), "a": _r(r.a, 1)}, r.line)
        elif isinstance(r, TransportRecord):
            data = {"action": r.action, "code": r.code, "detail": r.detail}
            lane = lanes["client" if r.direction == "c" else "service"]
            lane.add("transport", {k: v for k, v in data.items() if v is not None},
                     {"t": _r(r.t), "a": _r(r.a, 1)}, r.line)
        elif isinstance(r, EndRecord):
            end = r
    for lane in lanes.values():
        lane.flush_run()
    if end is not None:
        data: dict[str, Any] = {"how": end.reason}
        if end.input_finished is not None:
            data["input_finished"] = end.input_finished
        lanes["stream"].add("end", data, {"t": _r(end.t)}, end.line)
    return {name: ([] if name in options.ignore else lane.items) for name, lane in lanes.items()}


def _audio_out(lane: _LaneBuilder, r: AudioOutRecord) -> None:
    """Chunks as runs, split where usage events were interleaved (they are events too)."""
    times = r.chunk_times()
    usage = r.usage_events()
    start = 0  # index of the first chunk of the current piece
    for k, ev in usage:
        if k > start:
            _out_piece(lane, r, times, start, k)
            start = k
        lane.event(ev, times[k - 1], r.a, r.line)
    if start < r.n_chunks:
        _out_piece(lane, r, times, start, r.n_chunks)


def _out_piece(lane: _LaneBuilder, r: AudioOutRecord, times: list[float], i: int, j: int) -> None:
    n_bytes = sum(r.sizes[i:j])
    ms = n_bytes * 1000.0 / (2 * r.sample_rate)
    lane.audio("audioOutput", r.template, t=times[i], t_end=times[j - 1], a=r.a, ms=ms, n=j - i, speech=None,
               line=r.line)


# --- results ------------------------------------------------------------------------------------

RowTag = Literal[" ", "-", "+", "~"]


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a lane's alignment: ``tag`` and the item indices in A and B (None when absent);
    ``fields``: for ``~``, the dotted paths that differ (``t``/``a``/… for timing)."""

    tag: RowTag
    ia: int | None
    ib: int | None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    stream: int
    lane: str
    op: Literal["removed", "added", "changed"]
    a: DiffItem | None
    b: DiffItem | None
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HeaderChange:
    key: str
    a: Any
    b: Any


class _Symbols:
    """Display symbols for the ids of one stream: A ids by order of appearance; B ids bound to an
    A id get its symbol, the others continue the numbering."""

    def __init__(self) -> None:
        self.a: dict[tuple[str, str], str] = {}
        self.b: dict[tuple[str, str], str] = {}
        self.count: dict[str, int] = {}

    def _new(self, ns: str) -> str:
        self.count[ns] = self.count.get(ns, 0) + 1
        return f"#{ns}{self.count[ns]}"

    def name_a(self, ns: str, value: str) -> str:
        key = (ns, value)
        if key not in self.a:
            self.a[key] = self._new(ns)
        return self.a[key]

    def name_b(self, ns: str, value: str) -> str:
        key = (ns, value)
        if key not in self.b:
            self.b[key] = self._new(ns)
        return self.b[key]


@dataclass
class LaneDiff:
    stream: int
    lane: str
    a: list[DiffItem]
    b: list[DiffItem]
    rows: list[Row]

    def changes(self) -> list[Change]:
        out = []
        for row in self.rows:
            if row.tag == " ":
                continue
            op = {"-": "removed", "+": "added", "~": "changed"}[row.tag]
            out.append(Change(self.stream, self.lane, op,  # type: ignore[arg-type]
                              self.a[row.ia] if row.ia is not None else None,
                              self.b[row.ib] if row.ib is not None else None, row.fields))
        return out


@dataclass
class StreamDiff:
    index: int
    status: Literal["same", "changed", "only_a", "only_b"]
    lanes: dict[str, LaneDiff]
    symbols: _Symbols = field(repr=False, default_factory=_Symbols)
    end_a: str | None = None
    end_b: str | None = None

    def changes(self) -> list[Change]:
        return [c for lane in self.lanes.values() for c in lane.changes()]


@dataclass
class CassetteDiff:
    a_label: str
    b_label: str
    options: DiffOptions
    header: list[HeaderChange]
    streams: list[StreamDiff]

    @property
    def equal(self) -> bool:
        return not self.header and all(s.status == "same" for s in self.streams)

    def changes(self) -> list[Change]:
        return [c for s in self.streams for c in s.changes()]

    def counts(self) -> dict[str, int]:
        out = {"removed": 0, "added": 0, "changed": 0, "header": len(self.header)}
        for c in self.changes():
            out[c.op] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: ``equal``, ``counts``, ``header`` changes, per stream its status and changes
        (each item with ``kind``, ``summary``, ``data`` with ids as symbols, ``timing``, ``line``)."""
        return {
            "equal": self.equal,
            "a": self.a_label,
            "b": self.b_label,
            "options": self.options.to_dict(),
            "counts": self.counts(),
            "header": [{"key": h.key, "a": h.a, "b": h.b} for h in self.header],
            "streams": [
                {
                    "index": s.index,
                    "status": s.status,
                    "end": {"a": s.end_a, "b": s.end_b},
                    "changes": [
                        {
                            "lane": c.lane,
                            "op": c.op,
                            "fields": list(c.fields),
                            "a": _item_dict(c.a, s.symbols, "a", self.options) if c.a else None,
                            "b": _item_dict(c.b, s.symbols, "b", self.options) if c.b else None,
                        }
                        for c in s.changes()
                    ],
                }
                for s in self.streams
            ],
        }

    def render(self, *, context: int = 3) -> str:
        """A unified-diff-style text (``---``/``+++``, one ``@@`` hunk per group of changes)."""
        return _render(self, context)


def _item_dict(item: DiffItem, sym: _Symbols, side: str, options: DiffOptions) -> dict[str, Any]:
    name = sym.name_a if side == "a" else sym.name_b
    return {
        "kind": item.kind,
        "summary": summarize(item, name),
        "data": _with_symbols(item.data, name),
        "timing": dict(item.timing),
        "line": item.line,
    }


def _with_symbols(obj: Any, name: Callable[[str, str], str]) -> Any:
    if isinstance(obj, dict):
        return {k: (name(ID_KEYS[k], v) if k in ID_KEYS and isinstance(v, str) else _with_symbols(v, name))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_with_symbols(v, name) for v in obj]
    return obj


# --- comparison ---------------------------------------------------------------------------------


def _paths_differ(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two placeholder'd JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                out.append(p)
            else:
                out.extend(_paths_differ(a[k], b[k], p))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(_paths_differ(x, y, f"{path}[{i}]"))
        return out
    return [] if _canon(a) == _canon(b) else [path or "(value)"]


def _timing_differs(a: Mapping[str, Any], b: Mapping[str, Any], options: DiffOptions) -> list[str]:
    out = []
    for k in sorted(set(a) & set(b)):
        if k in _COUNT_FIELDS:
            continue
        va, vb = a[k], b[k]
        if va is None or vb is None:
            continue  # unknown on one side (segments of a journal without audio)
        if k == "speech":
            tol = options.audio_tolerance_ms
            if len(va) != len(vb) or any(abs(x - y) > tol + 1e-9 for sa, sb in zip(va, vb) for x, y in zip(sa, sb)):
                out.append(k)
            continue
        tol = options.time_tolerance_s if k in _TIME_FIELDS else options.audio_tolerance_ms
        if abs(float(va) - float(vb)) > tol + 1e-9:
            out.append(k)
    return out


def _align(a: list[DiffItem], b: list[DiffItem]) -> list[tuple[str, int | None, int | None]]:
    """Rows ``(tag, ia, ib)`` with tag ``=`` (same key), ``~`` (same kind, paired inside a replaced
    block), ``-`` or ``+``."""
    rows: list[tuple[str, int | None, int | None]] = []
    sm = difflib.SequenceMatcher(None, [x.key for x in a], [x.key for x in b], autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            rows.extend(("=", i1 + k, j1 + k) for k in range(i2 - i1))
        elif op == "delete":
            rows.extend(("-", i, None) for i in range(i1, i2))
        elif op == "insert":
            rows.extend(("+", None, j) for j in range(j1, j2))
        else:  # replace: pair items of the same kind, in order
            kinds = difflib.SequenceMatcher(None, [x.kind for x in a[i1:i2]], [x.kind for x in b[j1:j2]],
                                            autojunk=False)
            for op2, p1, p2, q1, q2 in kinds.get_opcodes():
                if op2 == "equal":
                    rows.extend(("~", i1 + p1 + k, j1 + q1 + k) for k in range(p2 - p1))
                else:
                    rows.extend(("-", i1 + i, None) for i in range(p1, p2))
                    rows.extend(("+", None, j1 + j) for j in range(q1, q2))
    return rows


def _diff_stream(index: int, a: dict[str, list[DiffItem]], b: dict[str, list[DiffItem]],
                 options: DiffOptions) -> StreamDiff:
    aligned = {lane: _align(a[lane], b[lane]) for lane in LANES}

    # Id bindings along the matched items: first the namespaces each lane introduces, then the rest.
    fwd: dict[tuple[str, str], str] = {}
    back: dict[tuple[str, str], str] = {}
    conflicts: dict[tuple[str, int], list[str]] = {}

    def bind(lane: str, ia: int, ib: int, only: Callable[[str], bool], check: bool) -> None:
        ids_a, ids_b = a[lane][ia].ids(), b[lane][ib].ids()
        by_path_b = {p: (ns, v) for p, ns, v in ids_b}
        for p, ns, va in ids_a:
            if not only(ns) or p not in by_path_b:
                continue
            _, vb = by_path_b[p]
            ka, kb = (ns, va), (ns, vb)
            if ka not in fwd and kb not in back:
                fwd[ka], back[kb] = vb, va
            elif check and (fwd.get(ka) != vb or back.get(kb) != va):
                conflicts.setdefault((lane, ia), []).append(p)

    for lane in LANES:
        origin = (lambda ns: ns in _CLIENT_NAMESPACES) if lane == "client" else (lambda ns: ns not in _CLIENT_NAMESPACES)
        for tag, ia, ib in aligned[lane]:
            if tag in "=~" and ia is not None and ib is not None:
                bind(lane, ia, ib, origin, check=False)
    for lane in LANES:
        for tag, ia, ib in aligned[lane]:
            if tag in "=~" and ia is not None and ib is not None:
                bind(lane, ia, ib, lambda ns: True, check=True)

    symbols = _Symbols()
    # A symbols by order of appearance: client-introduced names along the client lane, the others
    # along the service lane, then anything left (so symbols read naturally: #prompt1, #contentId1…).
    for lane, pick in (("client", True), ("service", False)):
        for item in a[lane]:
            for _, ns, v in item.ids():
                if (ns in _CLIENT_NAMESPACES) == pick:
                    symbols.name_a(ns, v)
    for lane in LANES:
        for item in a[lane]:
            for _, ns, v in item.ids():
                symbols.name_a(ns, v)
    for (ns, vb), va in back.items():
        symbols.b[(ns, vb)] = symbols.name_a(ns, va)

    lanes: dict[str, LaneDiff] = {}
    for lane in LANES:
        rows: list[Row] = []
        for tag, ia, ib in aligned[lane]:
            if tag in "-+":
                rows.append(Row(tag, ia, ib))  # type: ignore[arg-type]
                continue
            assert ia is not None and ib is not None
            x, y = a[lane][ia], b[lane][ib]
            fields: list[str] = []
            if tag == "~":
                fields += _paths_differ(_placeholders(x.data), _placeholders(y.data))
            fields += conflicts.get((lane, ia), [])
            if options.timing:
                fields += _timing_differs(x.timing, y.timing, options)
            fields = list(dict.fromkeys(fields))
            rows.append(Row("~", ia, ib, tuple(fields)) if fields or tag == "~" else Row(" ", ia, ib))
        lanes[lane] = LaneDiff(index, lane, a[lane], b[lane], rows)
    status = "changed" if any(r.tag != " " for ld in lanes.values() for r in ld.rows) else "same"
    return StreamDiff(index, status, lanes, symbols)  # type: ignore[arg-type]


def _load(x: Cassette | str | os.PathLike[str]) -> Cassette:
    return x if isinstance(x, Cassette) else load_cassette(x, validate=False)


def _label(c: Cassette, given: Any) -> str:
    if isinstance(given, str | os.PathLike):
        return os.fspath(given)
    return str(c.path) if c.path is not None else "cassette"


def diff_cassettes(
    a: Cassette | str | os.PathLike[str],
    b: Cassette | str | os.PathLike[str],
    options: DiffOptions | None = None,
) -> CassetteDiff:
    """Compare two cassettes (loaded ones, or paths: loaded without the rule check, structure
    still checked; a ``CassetteError`` names the file and line of a bad one)."""
    options = options or DiffOptions()
    ca, cb = _load(a), _load(b)
    header: list[HeaderChange] = []
    ha, hb = ca.header.model_dump(by_alias=True), cb.header.model_dump(by_alias=True)
    for key in HEADER_KEYS:
        if key not in options.ignore and ha.get(key) != hb.get(key):
            header.append(HeaderChange(key, ha.get(key), hb.get(key)))
    streams: list[StreamDiff] = []
    empty = {lane: [] for lane in LANES}
    for i in range(max(len(ca), len(cb))):
        sa = stream_items(ca[i], ca.header, options) if i < len(ca) else empty
        sb = stream_items(cb[i], cb.header, options) if i < len(cb) else empty
        sd = _diff_stream(i, sa, sb, options)
        if i >= len(ca):
            sd.status = "only_b"
        elif i >= len(cb):
            sd.status = "only_a"
        sd.end_a = ca[i].end_reason if i < len(ca) else None
        sd.end_b = cb[i].end_reason if i < len(cb) else None
        streams.append(sd)
    return CassetteDiff(_label(ca, a), _label(cb, b), options, header, streams)


# --- text ---------------------------------------------------------------------------------------

_MAX_TEXT = 160


def _q(text: Any, limit: int | None = _MAX_TEXT) -> str:
    s = json.dumps(text, ensure_ascii=False) if isinstance(text, str) else _canon(text)
    if limit is not None and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def _leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, k)
    else:
        yield path, obj


def summarize(item: DiffItem, name: Callable[[str, str], str] | None = None, *, limit: int | None = _MAX_TEXT) -> str:
    """One readable line for an item. ``name(namespace, value)`` gives the symbol of an id."""
    d = dict(item.data)
    nm = name or (lambda ns, v: v)

    def sym(key: str) -> str:
        v = d.get(key)
        return nm(ID_KEYS[key], v) if isinstance(v, str) else "-"

    k = item.kind
    tm = item.timing
    bits: list[str] = [k]
    if item.lane == "stream":
        if k == "stream":
            bits = [f"stream model={d.get('model') or '-'} region={d.get('region') or '-'}"]
        elif k == "end":
            bits = [f"end {d.get('how')}" + (", input finished" if d.get("input_finished") else "")]
    elif k in ("audioInput", "audioOutput"):
        who = "content" if k == "audioInput" else "contentId"
        key = "contentName" if k == "audioInput" else "contentId"
        n = tm.get("frames", tm.get("chunks", 0))
        unit = "frames" if k == "audioInput" else "chunks"
        bits.append(sym(key) if key in d else f"#{who}?")
        bits.append(f"×{n} {unit}, {tm.get('ms', 0):g} ms")
        if tm.get("speech"):
            bits.append("speech " + ", ".join(f"{s:g}–{e:g}" for s, e in tm["speech"]) + " ms")
        if d.get("rejected"):
            bits.append(f"rejected: {d['rejected']}")
    elif k == "sessionStart":
        bits += [f"{p}={_q(v, 40)}" for p, v in _leaves(d)]
    elif k == "promptStart":
        bits.append(sym("promptName"))
        audio = d.get("audioOutputConfiguration") or {}
        if audio.get("voiceId"):
            bits.append(f"voice={audio['voiceId']}")
        if audio.get("sampleRateHertz"):
            bits.append(f"output {audio['sampleRateHertz']} Hz")
        tools = ((d.get("toolConfiguration") or {}).get("tools")) or []
        names = [((t.get("toolSpec") or {}).get("name")) for t in tools if isinstance(t, dict)]
        if names:
            bits.append("tools=[" + ", ".join(str(x) for x in names) + "]")
    elif k == "contentStart" and item.lane == "client":
        bits += [sym("contentName"), str(d.get("type")), str(d.get("role"))]
        if d.get("interactive"):
            bits.append("interactive")
        audio = d.get("audioInputConfiguration") or {}
        if audio.get("sampleRateHertz"):
            bits.append(f"{audio['sampleRateHertz']} Hz")
        tr = d.get("toolResultInputConfiguration") or {}
        if tr.get("toolUseId"):
            bits.append(f"result for {nm('toolUse', tr['toolUseId'])}")
    elif k in ("textInput", "toolResult"):
        bits += [sym("contentName"), _q(d.get("content"), limit)]
    elif k in ("contentEnd", "promptEnd") and item.lane == "client":
        bits.append(sym("contentName") if "contentName" in d else sym("promptName"))
    elif k == "completionStart":
        bits.append(sym("completionId"))
    elif k in ("userSpeechStart", "userSpeechEnd"):
        if "inputAudioOffsetMs" in tm:
            bits.append(f"at {tm['inputAudioOffsetMs']} ms")
        if "inputAudioDetectionOffsetMs" in tm:
            bits.append(f"(detected at {tm['inputAudioDetectionOffsetMs']} ms)")
    elif k == "contentStart":
        bits += [sym("contentId"), str(d.get("type")), str(d.get("role"))]
        stage = d.get("additionalModelFields")
        if isinstance(stage, dict) and "generationStage" in stage:
            bits.append(str(stage["generationStage"]))
        audio = d.get("audioOutputConfiguration") or {}
        if audio.get("sampleRateHertz"):
            bits.append(f"{audio['sampleRateHertz']} Hz")
    elif k == "textOutput":
        bits += [str(d.get("role")), _q(d.get("content"), limit)]
    elif k == "toolUse":
        bits += [str(d.get("toolName")), sym("toolUseId"), _q(d.get("content"), limit)]
    elif k == "contentEnd":
        bits += [sym("contentId"), str(d.get("type")), str(d.get("stopReason"))]
    elif k == "completionEnd":
        bits.append(str(d.get("stopReason")))
    elif k == "usageEvent":
        det = d.get("details") or {}

        def counts(part: str) -> str:
            x = det.get(part) or {}
            i, o = x.get("input") or {}, x.get("output") or {}
            return (f"in {i.get('speechTokens', 0)}s/{i.get('textTokens', 0)}t "
                    f"out {o.get('speechTokens', 0)}s/{o.get('textTokens', 0)}t")

        bits.append(f"Δ {counts('delta')}; total {counts('total')}")
    elif k == "exception":
        via = f"via {d.get('via')}" + (f", HTTP {d['status']}" if d.get("status") is not None else "")
        bits += [str(d.get("name")), f"({via})"]
        if d.get("message"):
            bits.append(_q(d["message"], limit))
    elif k == "transport":
        bits.append(str(d.get("action")))
        bits += [f"{x}={d[x]}" for x in ("code", "detail") if x in d]
    elif k in ("sessionEnd",):
        pass
    else:  # unknown events, promptEnd, anything new
        rest = _with_symbols(d, nm)
        if rest:
            bits.append(_q(rest, limit))
    if item.lane == "client" and k not in ("audioInput",) and d.get("rejected"):
        bits.append(f"rejected: {d['rejected']}")
    return " ".join(b for b in bits if b)


def _timing_text(item: DiffItem) -> str:
    tm = item.timing
    parts = []
    if "t" in tm:
        parts.append(f"t={tm['t']:g}s" + (f"–{tm['t_end']:g}s" if "t_end" in tm and tm["t_end"] != tm["t"] else ""))
    if "t0" in tm:
        parts.append(f"t0={tm['t0']:g}s")
    if "a" in tm:
        parts.append(f"a={tm['a']:g}ms")
    return " @ " + " ".join(parts) if parts else ""


def _field_value(item: DiffItem, path: str, name: Callable[[str, str], str]) -> str:
    if path in item.timing:
        v = item.timing[path]
        return f"{v:g}" if isinstance(v, int | float) else _q(v)
    obj: Any = _with_symbols(item.data, name)
    for part in path.replace("]", "").replace("[", ".").split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return "(absent)"
    return _q(obj, 80)


def _line(prefix: str, item: DiffItem, name: Callable[[str, str], str], options: DiffOptions,
          fields: Sequence[str] = (), show_line: bool = False) -> str:
    text = summarize(item, name, limit=None if fields or prefix != " " else _MAX_TEXT)
    if options.timing:
        text += _timing_text(item)
    hidden = [f for f in fields if f not in ("t", "t_end", "a", "t0")]
    if hidden:
        shown = [f"{f}={_field_value(item, f, name)}" for f in hidden]
        shown = [s for s in shown if s.split("=", 1)[1].strip('"') not in text]
        if shown:
            text += "  {" + ", ".join(shown) + "}"
    if fields:
        text += f"  (differs: {', '.join(fields)})"
    if show_line and item.line is not None:
        text += f"  (line {item.line})"
    return f"{prefix} {text}"


def _hunks(rows: list[Row], context: int) -> list[tuple[int, int]]:
    idx = [i for i, r in enumerate(rows) if r.tag != " "]
    out: list[tuple[int, int]] = []
    for i in idx:
        lo, hi = max(0, i - context), min(len(rows), i + context + 1)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _lines_range(items: Iterable[DiffItem | None]) -> str:
    lines = [x.line for x in items if x is not None and x.line is not None]
    if not lines:
        return "-"
    lo, hi = min(lines), max(lines)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _render(d: CassetteDiff, context: int) -> str:
    out = [f"--- {d.a_label}", f"+++ {d.b_label}"]
    if d.header:
        out.append("@@ header @@")
        for h in d.header:
            out.append(f"- {h.key}: {h.a}")
            out.append(f"+ {h.key}: {h.b}")
    for s in d.streams:
        if s.status == "same":
            continue
        sym = s.symbols
        if s.status in ("only_a", "only_b"):
            side = "a" if s.status == "only_a" else "b"
            label = d.a_label if side == "a" else d.b_label
            n = sum(len(getattr(ld, side)) for ld in s.lanes.values())
            end = s.end_a if side == "a" else s.end_b
            out.append(f"@@ stream {s.index}: only in {label} ({n} items, ended: {end or 'no end record'}) @@")
        for lane in LANES:
            ld = s.lanes[lane]
            for lo, hi in _hunks(ld.rows, context):
                rows = ld.rows[lo:hi]
                ra = _lines_range(ld.a[r.ia] for r in rows if r.ia is not None)
                rb = _lines_range(ld.b[r.ib] for r in rows if r.ib is not None)
                out.append(f"@@ stream {s.index} {lane} (a: line {ra}, b: line {rb}) @@")
                for r in rows:
                    if r.tag == " ":
                        out.append(_line(" ", ld.a[r.ia], sym.name_a, d.options))  # type: ignore[index]
                    if r.tag in "-~":
                        out.append(_line("-", ld.a[r.ia], sym.name_a, d.options, r.fields, True))  # type: ignore[index]
                    if r.tag in "+~":
                        out.append(_line("+", ld.b[r.ib], sym.name_b, d.options, r.fields, True))  # type: ignore[index]
    if d.equal:
        return ""
    c = d.counts()
    out.append(f"# {c['changed']} changed, {c['removed']} removed, {c['added']} added"
               + (f", {c['header']} header field(s) differ" if c["header"] else ""))
    return "\n".join(out) + "\n"
