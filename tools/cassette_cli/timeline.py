"""``nova-cassette timeline``: a picture of a stream on a time axis (HTML with inline SVG, or PNG).

``build_timeline(cassette, index)`` turns one stream into a ``StreamTimeline`` (spans and marks on
four rows); ``render_html`` and ``render_png`` draw a list of them. The model is drawn the same
way by both.

Rows
----
=============  ===================================================================================
``user``       speech segments (``seg`` of the ``audio_in`` records) over the microphone's audio;
               the user transcripts (USER ``textOutput``) and typed text (interactive USER
               ``textInput``) as labels; ``userSpeechStart``/``End`` as ticks
``assistant``  the assistant's audio, laid out as a client plays it: each block starts when its
               first chunk arrived or when the previous block finished, whichever is later, for
               its recorded duration; cut at a barge-in (drawn "interrupted"); the assistant's
               text (SPECULATIVE blocks, which come with the audio; FINAL when there are none)
``tools``      each tool call from the ``toolUse`` to the client's ``toolResult``: name,
               arguments and result ("no result" when the client never answered)
``events``     barge-ins (``OutputTracker``: marker text, INTERRUPTED, or user speech over the
               assistant), exceptions, transport actions (RST_STREAM, GOAWAY, end-input…), notes,
               and the stream's end
=============  ===================================================================================

Axis. ``time``: ``t``, the service's seconds since the stream opened. ``audio``: ``a``, the
milliseconds of user audio the service had received (shown in seconds), the clock the service
answers on. ``auto`` (default) uses time, unless every record of the stream is at t = 0 (a
recording made at infinite replay speed), then audio. On the time axis, speech segments (which
are audio positions) are placed at the time their audio was sent, interpolated between the send
times of their record's first and last frame.

Labels sit on three text lines above each row's bars; where they would overlap they are shortened
(with "…") or left out: in HTML every element keeps its full text as a hover title.

HTML is one self-contained file: inline CSS and SVG, no script, no external asset; every text
is escaped (built with ``xml.etree.ElementTree``); a ``<title>`` on each element gives its full
text on hover; an event table per stream sits under the picture in a ``<details>`` element.
PNG needs matplotlib (imported lazily, Agg backend); without it, ``TimelineError`` says so.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    Cassette,
    CassetteStream,
    ClientEventRecord,
    EndRecord,
    ExceptionRecord,
    NoteRecord,
    ServerEventRecord,
    TimedRecord,
    TransportRecord,
)
from novasonic.events import (
    BARGE_IN_TEXT,
    ContentStart,
    OutputContentStart,
    TextInput,
    TextOutput,
    ToolResult,
    ToolUse,
    UserSpeechEnd,
    UserSpeechStart,
)
from novasonic.rules.output_tracker import BargeIn, OutputTracker

__all__ = [
    "ROWS",
    "Axis",
    "Span",
    "Mark",
    "StreamTimeline",
    "TimelineError",
    "build_timeline",
    "render_html",
    "render_png",
]

ROWS = ("user", "assistant", "tools", "events")
Axis = Literal["auto", "time", "audio"]

#: Kind → colour, shared by both renderers (and the HTML legend).
COLOURS = {
    "mic": "#e3e9f1",
    "speech": "#3d7fd9",
    "vad": "#7d9cc8",
    "user-text": "#1f4f8f",
    "typed-text": "#1f4f8f",
    "assistant-audio": "#f0a030",
    "interrupted": "#f0a030",
    "assistant-text": "#8a4b00",
    "tool-call": "#2e9e5b",
    "barge-in": "#d6336c",
    "exception": "#c0392b",
    "transport": "#6c7a89",
    "note": "#8e44ad",
    "end": "#222222",
}
LEGEND = (
    ("speech", "user speech"), ("mic", "microphone audio"), ("assistant-audio", "assistant audio"),
    ("interrupted", "assistant audio cut by a barge-in"), ("tool-call", "tool call → result"),
    ("barge-in", "barge-in"), ("exception", "exception"), ("transport", "transport action"),
    ("end", "end of stream"),
)


class TimelineError(Exception):
    """The timeline cannot be drawn (a PNG without matplotlib, a stream that does not exist)."""


@dataclass(frozen=True, slots=True)
class Span:
    row: str
    kind: str
    x0: float
    x1: float
    label: str
    title: str


@dataclass(frozen=True, slots=True)
class Mark:
    row: str
    kind: str
    x: float
    label: str
    title: str
    across: bool = False
    """Drawn across every row (barge-in, exception, end)."""


@dataclass
class StreamTimeline:
    index: int
    axis: Literal["time", "audio"]
    model: str | None
    end: str | None
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    table: list[tuple[float | None, float | None, str, str]] = field(default_factory=list)
    """(t, a, direction, description) per record, in file order."""

    @property
    def x_max(self) -> float:
        xs = [s.x1 for s in self.spans] + [m.x for m in self.marks]
        return max([0.0, *xs])

    @property
    def unit(self) -> str:
        return "s" if self.axis == "time" else "s of user audio"


# --- model --------------------------------------------------------------------------------------


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _json_short(raw: str, n: int = 60) -> str:
    try:
        return _short(json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")), n)
    except ValueError:
        return _short(raw, n)


def _describe(r: object) -> tuple[str, str] | None:
    """(direction, text) of a record for the event table."""
    if isinstance(r, ClientEventRecord | ServerEventRecord):
        ev = r.event
        name = getattr(ev, "EVENT_NAME", "") or getattr(ev, "name", "event")
        bits = [name]
        for attr in ("type", "role", "stop_reason", "tool_name"):
            v = getattr(ev, attr, None)
            if v is not None:
                bits.append(str(getattr(v, "value", v)))
        if isinstance(ev, OutputContentStart) and ev.generation_stage is not None:
            bits.append(str(getattr(ev.generation_stage, "value", ev.generation_stage)))
        if isinstance(ev, TextOutput | TextInput | ToolUse | ToolResult):
            bits.append(json.dumps(_short(ev.content, 200), ensure_ascii=False))
        if isinstance(ev, UserSpeechStart | UserSpeechEnd):
            bits.append(f"offset {ev.input_audio_offset_ms} ms")
        if isinstance(r, ClientEventRecord) and r.verdict:
            bits.append(f"REJECTED {r.verdict}")
        return ("client" if r.direction == "c" else "service"), " ".join(bits)
    if isinstance(r, AudioInRecord):
        return "client", f"audioInput ×{r.n_frames} ({r.duration_ms:g} ms" + (", kept)" if r.pcm else ")")
    if isinstance(r, AudioOutRecord):
        extra = f", {len(r.usage)} usage events" if r.usage else ""
        return "service", f"audioOutput ×{r.n_chunks} ({r.duration_ms:g} ms{extra}" + (", kept)" if r.pcm else ")")
    if isinstance(r, ExceptionRecord):
        return "service", f"EXCEPTION {r.name} (via {r.via})" + (f": {r.message}" if r.message else "")
    if isinstance(r, TransportRecord):
        return ("client" if r.direction == "c" else "service"), f"transport {r.action}" + (
            f" code={r.code}" if r.code is not None else "") + (f" {r.detail}" if r.detail else "")
    if isinstance(r, EndRecord):
        return "", f"END {r.reason}" + (", input finished" if r.input_finished else "")
    if isinstance(r, NoteRecord):
        return "", f"note: {r.text}"
    return None


class _AudioClock:
    """Audio position (ms) → stream time (s): the earliest time the service had received that much
    audio. Anchors are every record's ``(t, a)`` (a service record's ``a`` is what had arrived at
    its ``t``) and each ``audio_in`` record's ends; between anchors the time is interpolated."""

    def __init__(self, stream: CassetteStream) -> None:
        pts: list[tuple[float, float]] = []
        for r in stream.records:
            if isinstance(r, AudioInRecord):
                pts += [(r.t, r.a), (r.t_end, r.a_end)]
            elif isinstance(r, TimedRecord):
                pts.append((r.t, r.a))
        pts.sort()
        self.anchors: list[tuple[float, float]] = []  # (a, t), a and t non-decreasing
        top = -1.0
        for t, a in pts:
            if a > top:
                self.anchors.append((a, t))
                top = a

    def __call__(self, pos: float) -> float:
        prev: tuple[float, float] | None = None
        for a, t in self.anchors:
            if a >= pos:
                if prev is None or a == prev[0]:
                    return t
                pa, pt = prev
                return pt + (t - pt) * (pos - pa) / (a - pa)
            prev = (a, t)
        return prev[1] if prev is not None else 0.0


def build_timeline(cassette: Cassette, index: int, axis: Axis = "auto") -> StreamTimeline:
    """The timeline of stream ``index`` (see the module doc)."""
    if not 0 <= index < len(cassette.streams):
        raise TimelineError(f"the cassette has {len(cassette.streams)} stream(s) (0-{len(cassette.streams) - 1}), "
                            f"there is no stream {index}")
    stream = cassette.streams[index]
    if axis == "auto":
        axis = "time" if stream.duration_s > 0 else "audio"
    clock = _AudioClock(stream)

    def xr(r: object) -> float:
        t = getattr(r, "t", None) or 0.0
        return t if axis == "time" else getattr(r, "a", 0.0) / 1000.0

    def xa(pos_ms: float) -> float:
        return clock(pos_ms) if axis == "time" else pos_ms / 1000.0

    tl = StreamTimeline(index, axis, stream.model_id or cassette.header.model_id, stream.end_reason)  # type: ignore[arg-type]
    spans, marks = tl.spans, tl.marks
    tracker = OutputTracker(default_output_sample_rate=cassette.header.output_rate)
    stages: dict[str, str | None] = {}  # contentId → SPECULATIVE/FINAL
    assistant_texts: list[tuple[str | None, Mark]] = []
    tool_uses: dict[str, tuple[float, ToolUse]] = {}
    tool_result_blocks: dict[str, tuple[float, str]] = {}  # contentName → (x, toolUseId)
    typed_blocks: set[str] = set()
    audio_blocks: dict[str, list[float]] = {}  # contentId → [x0, x1]
    cursor = 0.0
    speech: list[list[float]] = []
    last_x = 0.0

    def barge(x: float, records: list) -> None:
        for rec in records:
            if isinstance(rec, BargeIn):
                marks.append(Mark("events", "barge-in", x, "barge-in", f"barge-in ({rec.reason}), turn {rec.turn_index}",
                                  across=True))

    for r in stream.records:
        d = _describe(r)
        if d is not None:
            tl.table.append((getattr(r, "t", None), getattr(r, "a", None), d[0], d[1]))
        x = xr(r) if not isinstance(r, NoteRecord) or r.t is not None else last_x
        if not isinstance(r, NoteRecord | EndRecord):
            last_x = max(last_x, x)
        if isinstance(r, AudioInRecord):
            a0, a1 = r.a, r.a_end
            m0, m1 = (r.t, r.t_end) if axis == "time" else (a0 / 1000.0, a1 / 1000.0)
            spans.append(Span("user", "mic", m0, m1, "",
                              f"microphone: {r.n_frames} frames, {r.duration_ms:g} ms (audio {a0:g}–{a1:g} ms)"))
            for kind, s, e in r.segments or ():
                if kind != "speech":
                    continue
                if speech and abs(speech[-1][1] - s) < 1e-6:
                    speech[-1][1] = e
                else:
                    speech.append([s, e])
            last_x = max(last_x, xa(a1))
        elif isinstance(r, ServerEventRecord):
            ev = r.event
            if isinstance(ev, OutputContentStart):
                stage = ev.generation_stage
                stages[ev.content_id] = None if stage is None else str(getattr(stage, "value", stage))
            elif isinstance(ev, TextOutput) and not ev.is_barge_in:
                role = str(getattr(ev.role, "value", ev.role))
                text = ev.content.replace(BARGE_IN_TEXT, "").strip()
                if role == "USER" and text:
                    marks.append(Mark("user", "user-text", x, _short(text, 48), f"user said: {text}"))
                elif role == "ASSISTANT" and text:
                    assistant_texts.append((stages.get(ev.content_id),
                                            Mark("assistant", "assistant-text", x, _short(text, 48),
                                                 f"assistant ({stages.get(ev.content_id) or 'text'}): {text}")))
            elif isinstance(ev, ToolUse):
                tool_uses[ev.tool_use_id] = (x, ev)
            elif isinstance(ev, UserSpeechStart | UserSpeechEnd):
                name = ev.EVENT_NAME
                marks.append(Mark("user", "vad", x, "", f"{name} (audio offset {ev.input_audio_offset_ms} ms)"))
            barge(x, tracker.feed(ev))
        elif isinstance(r, AudioOutRecord):
            for _, ev in stream.expand(r):
                barge(x, tracker.feed(ev))  # type: ignore[arg-type]
            start = max(x, cursor)
            cursor = start + r.duration_ms / 1000.0
            block = audio_blocks.setdefault(r.content_id, [start, cursor])
            block[1] = cursor
            last_x = max(last_x, cursor)
        elif isinstance(r, ClientEventRecord):
            ev = r.event
            if isinstance(ev, ContentStart):
                cfg = ev.tool_result_input_configuration
                if cfg is not None:
                    tool_result_blocks[ev.content_name] = (x, cfg.tool_use_id)
                    barge(x, tracker.tool_result_sent(cfg.tool_use_id))
                elif str(getattr(ev.type, "value", ev.type)) == "TEXT" and ev.interactive and \
                        str(getattr(ev.role, "value", ev.role)) == "USER":
                    typed_blocks.add(ev.content_name)
            elif isinstance(ev, ToolResult) and ev.content_name in tool_result_blocks:
                _, tid = tool_result_blocks.pop(ev.content_name)
                use = tool_uses.pop(tid, None)
                if use is not None:
                    x0, tu = use
                    label = f"{tu.tool_name}({_json_short(tu.content, 40)}) → {_json_short(ev.content, 40)}"
                    spans.append(Span("tools", "tool-call", x0, max(x0, x), label,
                                      f"tool call {tu.tool_name} ({tu.tool_use_id}): arguments {tu.content}; "
                                      f"result {ev.content}"))
            elif isinstance(ev, TextInput) and ev.content_name in typed_blocks:
                marks.append(Mark("user", "typed-text", x, "typed: " + _short(ev.content, 40), f"typed: {ev.content}"))
        elif isinstance(r, ExceptionRecord):
            extra = f", HTTP {r.status}" if r.status is not None else ""
            marks.append(Mark("events", "exception", x, r.name,
                              f"exception {r.name} (via {r.via}{extra})" + (f": {r.message}" if r.message else ""),
                              across=True))
        elif isinstance(r, TransportRecord):
            who = "client" if r.direction == "c" else "service"
            marks.append(Mark("events", "transport", x, f"{r.action} ({who})",
                              f"transport: {who} {r.action}" + (f" code {r.code}" if r.code is not None else "")
                              + (f" {r.detail}" if r.detail else "")))
        elif isinstance(r, NoteRecord):
            marks.append(Mark("events", "note", x, _short(r.text, 30), f"note: {r.text}"))
        elif isinstance(r, EndRecord):
            x_end = x if axis == "time" else last_x
            marks.append(Mark("events", "end", max(x_end, 0.0), f"end: {r.reason}",
                              f"stream {index} ended: {r.reason}" + (", input finished" if r.input_finished else ""),
                              across=True))
    barge(last_x, tracker.close())

    for s, e in speech:
        spans.append(Span("user", "speech", xa(s), xa(e), "",
                          f"user speech, audio {s:g}–{e:g} ms"))
    bargins = sorted(m.x for m in marks if m.kind == "barge-in")
    for cid, (x0, x1) in audio_blocks.items():
        cut = next((b for b in bargins if x0 < b < x1), None)
        if cut is None:
            spans.append(Span("assistant", "assistant-audio", x0, x1, "",
                              f"assistant audio {cid}: {(x1 - x0) * 1000:.0f} ms"))
        else:
            spans.append(Span("assistant", "assistant-audio", x0, cut, "",
                              f"assistant audio {cid}: played {(cut - x0) * 1000:.0f} ms until the barge-in"))
            spans.append(Span("assistant", "interrupted", cut, x1, "interrupted",
                              f"assistant audio {cid}: {(x1 - cut) * 1000:.0f} ms not played (barge-in)"))
    for tid, (x0, tu) in tool_uses.items():
        spans.append(Span("tools", "tool-call", x0, max(x0, last_x),
                          f"{tu.tool_name}({_json_short(tu.content, 40)}) → no result",
                          f"tool call {tu.tool_name} ({tid}): arguments {tu.content}; the client sent no result"))
    speculative = any(stage == "SPECULATIVE" for stage, _ in assistant_texts)
    marks.extend(m for stage, m in assistant_texts if (stage == "SPECULATIVE") == speculative)
    return tl


# --- shared layout ------------------------------------------------------------------------------


def _nice_step(span: float, target: int = 10) -> float:
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def _fmt_x(x: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{x:.{digits}f}"


@dataclass(frozen=True, slots=True)
class _Label:
    x: float
    text: str
    colour: str
    target: object = None
    """Where the renderer puts it (the SVG group of its element)."""


def _layout(labels: list[_Label], char_w: float, right_edge: float, levels: int = 3) -> list[tuple[_Label, int, str, bool]]:
    """Place a row's labels on ``levels`` text lines, left to right, without overlaps: each label
    is shortened (with "…") to end before the label ``levels`` places later starts; one that
    still finds no free line is left out (the element keeps its hover title). A label that would
    run past ``right_edge`` ends at its x instead. Returns (label, line, text, ends_at_x)."""
    labels = sorted((lb for lb in labels if lb.text), key=lambda lb: lb.x)
    ends = [-math.inf] * levels
    out: list[tuple[_Label, int, str, bool]] = []
    for i, lb in enumerate(labels):
        text = lb.text
        if i + levels < len(labels):
            room = int((labels[i + levels].x - lb.x) / char_w) - 1
            if room < len(text):
                text = text[: room - 1] + "…" if room >= 6 else ""
        if not text:
            continue
        width = (len(text) + 1) * char_w
        right = lb.x + width > right_edge
        x0 = lb.x - width if right else lb.x
        free = [k for k in range(levels) if ends[k] <= x0]
        if not free:
            continue
        ends[free[0]] = x0 + width
        out.append((lb, free[0], text, right))
    return out


# --- HTML / SVG ---------------------------------------------------------------------------------

_W, _LEFT, _RIGHT, _TOP, _ROW_H, _BOTTOM = 1200, 110, 30, 16, 78, 34
_CHAR_W = 6.3  # px per character at 11 px

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
p.meta { color: #555; margin: 0.2em 0; }
svg { background: #fff; border: 1px solid #ccc; }
table.events { border-collapse: collapse; font-size: 12px; }
table.events td, table.events th { border-bottom: 1px solid #eee; padding: 2px 8px; text-align: left; }
ul.legend { list-style: none; padding: 0; font-size: 12px; }
ul.legend li { display: inline-block; margin-right: 1.2em; }
ul.legend span.sw { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }
"""


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def _svg(tl: StreamTimeline) -> ET.Element:
    height = _TOP + _ROW_H * len(ROWS) + _BOTTOM
    plot_w = _W - _LEFT - _RIGHT
    x_max = tl.x_max or 1.0
    x_max *= 1.02

    def px(x: float) -> float:
        return round(_LEFT + plot_w * (x / x_max), 2)

    svg = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": str(_W), "height": str(height),
                             "viewBox": f"0 0 {_W} {height}", "role": "img",
                             "font-family": "system-ui, sans-serif", "font-size": "11",
                             "aria-label": f"timeline of stream {tl.index}"})
    _sub(svg, "title", f"stream {tl.index} timeline ({tl.axis} axis)")
    step = _nice_step(x_max)
    ticks = _sub(svg, "g", class_="axis")
    k = 0
    while k * step <= x_max + 1e-9:
        x = px(k * step)
        _sub(ticks, "line", class_="grid", x1=x, x2=x, y1=_TOP, y2=_TOP + _ROW_H * len(ROWS), stroke="#eeeeee")
        _sub(ticks, "text", _fmt_x(k * step, step), class_="tick", x=x, y=height - _BOTTOM + 14, text_anchor="middle",
             fill="#666666")
        k += 1
    _sub(ticks, "text", f"{tl.unit}", class_="tick", x=_W - _RIGHT, y=height - 6, text_anchor="end", fill="#666666")
    row_top = {row: _TOP + i * _ROW_H for i, row in enumerate(ROWS)}
    for row, y in row_top.items():
        _sub(svg, "line", class_="row-sep", x1=0, x2=_W, y1=y + _ROW_H, y2=y + _ROW_H, stroke="#cccccc")
        _sub(svg, "text", row, class_="row-label", x=8, y=y + _ROW_H / 2 + 4, font_weight="bold", font_size=12)
    bar_y = {row: row_top[row] + _ROW_H - 26 for row in ROWS}
    pending: dict[str, list[_Label]] = {row: [] for row in ROWS}

    for s in sorted(tl.spans, key=lambda s: (s.kind != "mic", s.x0)):
        g = _sub(svg, "g", class_=f"span {s.kind}", data_kind=s.kind)
        _sub(g, "title", s.title)
        x0, x1 = px(s.x0), px(s.x1)
        thin = s.kind == "mic"
        attrs = {"x": x0, "y": bar_y[s.row] + (6 if thin else 0), "width": max(2.0, round(x1 - x0, 2)),
                 "height": 6 if thin else 16, "fill": COLOURS.get(s.kind, "#999"), "rx": 2}
        if s.kind == "interrupted":
            attrs.update({"fill": "none", "stroke": COLOURS["interrupted"], "stroke-dasharray": "4 2"})
        _sub(g, "rect", **attrs)
        pending[s.row].append(_Label(x0, s.label, COLOURS.get(s.kind, "#222"), g))
    for m in sorted(tl.marks, key=lambda m: m.x):
        g = _sub(svg, "g", class_=f"mark {m.kind}", data_kind=m.kind)
        _sub(g, "title", m.title)
        x = px(m.x)
        colour = COLOURS.get(m.kind, "#555")
        if m.across:
            _sub(g, "line", x1=x, x2=x, y1=_TOP, y2=_TOP + _ROW_H * len(ROWS), stroke=colour, stroke_width=1.5,
                 stroke_dasharray="5 3" if m.kind != "end" else "none")
        else:
            y = bar_y[m.row]
            _sub(g, "line", x1=x, x2=x, y1=y - 4, y2=y + 20, stroke=colour, stroke_width=1.5)
        pending[m.row].append(_Label(x, m.label, colour, g))
    for row, labels in pending.items():
        for lb, level, text, right in _layout(labels, _CHAR_W, _W - 4):
            attrs = {"x": round(lb.x - 2 if right else lb.x + 2, 2), "y": row_top[row] + 14 + 13 * level,
                     "fill": lb.colour}
            if right:
                attrs["text_anchor"] = "end"
            _sub(lb.target, "text", text, **attrs)  # type: ignore[arg-type]
    return svg


def render_html(timelines: Sequence[StreamTimeline], *, cassette: Cassette) -> str:
    """One self-contained HTML document (see the module doc)."""
    name = cassette.path.name if cassette.path else "cassette"
    root = ET.Element("html", {"xmlns": "http://www.w3.org/1999/xhtml", "lang": "en"})
    head = _sub(root, "head")
    _sub(head, "meta", charset="utf-8")
    _sub(head, "title", f"{name}: timeline")
    _sub(head, "style", _CSS)
    body = _sub(root, "body")
    _sub(body, "h1", f"Timeline of {name}")
    h = cassette.header
    _sub(body, "p", f"model {h.model_id or '-'}, voice {h.voice or '-'}, source {h.source}, "
                    f"{len(cassette.streams)} stream(s), {cassette.duration_s:g} s; audio: user {h.audio.user}, "
                    f"assistant {h.audio.assistant}", class_="meta")
    legend = _sub(body, "ul", class_="legend")
    for kind, text in LEGEND:
        li = _sub(legend, "li")
        _sub(li, "span", "\u00a0", class_="sw", style=f"background: {COLOURS[kind]}")
        li[-1].tail = text
    for tl in timelines:
        section = _sub(body, "section", id=f"stream-{tl.index}")
        _sub(section, "h2", f"Stream {tl.index}")
        _sub(section, "p", f"model {tl.model or '-'}; ended: {tl.end or 'no end record'}; axis: {tl.axis} "
                           f"({'service seconds since the stream opened' if tl.axis == 'time' else 'seconds of user audio received'})",
             class_="meta")
        section.append(_svg(tl))
        details = _sub(section, "details")
        _sub(details, "summary", f"{len(tl.table)} records")
        table = _sub(details, "table", class_="events")
        tr = _sub(table, "tr")
        for col in ("t (s)", "a (ms)", "from", "record"):
            _sub(tr, "th", col)
        for t, a, who, text in tl.table:
            tr = _sub(table, "tr")
            _sub(tr, "td", "" if t is None else f"{t:.3f}")
            _sub(tr, "td", "" if a is None else f"{a:g}")
            _sub(tr, "td", who or "\u00a0")
            _sub(tr, "td", text)
    ET.indent(root, space=" ")
    return "<!DOCTYPE html>\n" + ET.tostring(root, encoding="unicode", method="xml") + "\n"


# --- PNG ----------------------------------------------------------------------------------------


def render_png(timelines: Sequence[StreamTimeline], path: Path, *, cassette: Cassette, dpi: int = 100) -> None:
    """Draw the timelines with matplotlib (Agg) into ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError as exc:
        raise TimelineError(f"PNG output needs matplotlib ({exc}); install it (pip install matplotlib) "
                            "or write HTML instead (--out FILE.html)") from None

    n = len(timelines)
    fig, axes = plt.subplots(n, 1, figsize=(14, 3.4 * n + 0.6), squeeze=False)
    name = cassette.path.name if cassette.path else "cassette"
    fig.suptitle(f"Timeline of {name}", fontsize=12)
    for ax, tl in zip(axes[:, 0], timelines):
        x_max = (tl.x_max or 1.0) * 1.02
        rows = {row: len(ROWS) - 1 - i for i, row in enumerate(ROWS)}  # user on top
        ax.set_xlim(0, x_max)
        ax.set_ylim(-0.2, len(ROWS))
        ax.set_yticks([rows[r] + 0.5 for r in ROWS], list(ROWS))
        ax.set_xlabel(tl.unit)
        ax.set_title(f"stream {tl.index}: {tl.model or '-'}, ended: {tl.end or 'no end record'}", fontsize=10,
                     loc="left")
        ax.set_axisbelow(True)
        ax.grid(axis="x", color="#eeeeee")
        for r in ROWS:
            ax.axhline(rows[r], color="#cccccc", linewidth=0.6)
        char = x_max / (14 * dpi * 0.8) * 6.0  # data units per character at font size 7
        pending: dict[str, list[_Label]] = {row: [] for row in ROWS}
        for s in sorted(tl.spans, key=lambda s: (s.kind != "mic", s.x0)):
            y = rows[s.row] + (0.12 if s.kind == "mic" else 0.08)
            h = 0.08 if s.kind == "mic" else 0.22
            w = max(s.x1 - s.x0, x_max / 600)
            if s.kind == "interrupted":
                ax.add_patch(Rectangle((s.x0, y), w, h, fill=False, edgecolor=COLOURS["interrupted"], linestyle="--"))
            else:
                ax.add_patch(Rectangle((s.x0, y), w, h, color=COLOURS.get(s.kind, "#999999")))
            pending[s.row].append(_Label(s.x0, s.label, COLOURS.get(s.kind, "#222222")))
        for m in tl.marks:
            colour = COLOURS.get(m.kind, "#555555")
            if m.across:
                ax.axvline(m.x, color=colour, linewidth=1.2, linestyle="-" if m.kind == "end" else "--")
            else:
                ax.plot([m.x, m.x], [rows[m.row] + 0.04, rows[m.row] + 0.38], color=colour, linewidth=1.2)
            pending[m.row].append(_Label(m.x, m.label, colour))
        for row, labels in pending.items():
            for lb, level, text, right in _layout(labels, char, x_max):
                ax.text(lb.x, rows[row] + 0.92 - 0.17 * level, text, fontsize=7, color=lb.colour, va="top",
                        parse_math=False, ha="right" if right else "left", clip_on=True)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=dpi)
    finally:
        plt.close(fig)
