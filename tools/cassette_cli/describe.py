"""What ``nova-cassette inspect`` shows: ``describe(cassette)`` (plain JSON-able facts) and
``render_text`` (the same facts for people).

Counts: "events" are wire events, with audio runs expanded (an ``audio_in`` record of 56 frames
counts 56 client events; an ``audio_out`` record counts its chunks plus the usage events kept
inside it). Audio "kept" is the part of it whose PCM the cassette holds (sidecar or inline);
the rest is only described (durations, sizes, speech segments).
"""

from __future__ import annotations

import json
import math
from typing import Any

from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    Cassette,
    CassetteStream,
    ClientEventRecord,
    ExceptionRecord,
    NoteRecord,
    ServerEventRecord,
    TransportRecord,
)
from novasonic.events import ContentStart
from novasonic.rules.output_tracker import OutputTracker, Turn

__all__ = ["describe", "render_text", "event_counts"]



def _r(x: float | None, nd: int = 1) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd)


def event_counts(stream: CassetteStream) -> dict[str, int]:
    client = server = audio_in = audio_out = 0
    for r in stream.records:
        if isinstance(r, ClientEventRecord):
            client += 1
        elif isinstance(r, ServerEventRecord):
            server += 1
        elif isinstance(r, AudioInRecord):
            client += r.n_frames
            audio_in += r.n_frames
        elif isinstance(r, AudioOutRecord):
            server += r.n_chunks + len(r.usage)
            audio_out += r.n_chunks
    return {"client": client, "server": server, "audio_input_frames": audio_in,
            "audio_output_chunks": audio_out, "records": len(stream.records)}


def _kept_ms(stream: CassetteStream, kind: type) -> float:
    return sum(r.duration_ms for r in stream.records if isinstance(r, kind) and r.pcm is not None)


def _turns(stream: CassetteStream, output_rate: int) -> list[Turn]:
    tracker = OutputTracker(default_output_sample_rate=output_rate)
    for r in stream.records:
        if isinstance(r, ServerEventRecord | AudioOutRecord):
            for _, ev in stream.expand(r):
                tracker.feed(ev)  # type: ignore[arg-type]
        elif isinstance(r, ClientEventRecord) and isinstance(r.event, ContentStart):
            cfg = r.event.tool_result_input_configuration
            if cfg is not None:
                tracker.tool_result_sent(cfg.tool_use_id)
    tracker.close()
    return list(tracker.all_turns)


def _turn_dict(turn: Turn) -> dict[str, Any]:
    return {
        "index": turn.index,
        "user_text": turn.user_text,
        "assistant_text": turn.assistant_text,
        "assistant_speculative": turn.assistant_speculative,
        "assistant_final": turn.assistant_final,
        "tool_calls": [
            {"name": c.name, "tool_use_id": c.tool_use_id, "arguments": c.arguments,
             "requested": c.requested, "resolved": c.resolved}
            for c in turn.tool_calls
        ],
        "interrupted": turn.interrupted,
        "barge_in_reason": turn.barge_in_reason,
        "audio_ms": _r(turn.audio_ms),
        "audio_blocks": turn.audio_blocks,
        "usage": {"input_speech": turn.usage.input_speech, "input_text": turn.usage.input_text,
                  "output_speech": turn.usage.output_speech, "output_text": turn.usage.output_text},
        "user_speech_start_ms": turn.user_speech_start_ms,
        "user_speech_end_ms": turn.user_speech_end_ms,
    }


def _stream_dict(stream: CassetteStream, output_rate: int) -> dict[str, Any]:
    end = stream.end
    exceptions = [
        {"t": r.t, "a": r.a, "via": r.via, "name": r.name, "message": r.message, "status": r.status, "line": r.line}
        for r in stream.records if isinstance(r, ExceptionRecord)
    ]
    transport = [
        {"t": r.t, "a": r.a, "direction": "client" if r.direction == "c" else "server", "action": r.action,
         "code": r.code, "detail": r.detail, "line": r.line}
        for r in stream.records if isinstance(r, TransportRecord)
    ]
    rejected = [
        {"t": r.t, "event": getattr(r.event, "EVENT_NAME", type(r.event).__name__),
         "rule": r.verdict, "line": r.line}
        for r in stream.records if isinstance(r, ClientEventRecord) and r.verdict is not None
    ] + [
        {"t": r.t_end, "event": "audioInput", "rule": r.verdict, "line": r.line}
        for r in stream.records if isinstance(r, AudioInRecord) and r.verdict is not None
    ]
    notes = [{"t": r.t, "text": r.text, "line": r.line} for r in stream.records if isinstance(r, NoteRecord)]
    speech = stream.speech_ms
    return {
        "index": stream.index,
        "model": stream.model_id,
        "region": stream.start.region if stream.start else None,
        "t0_s": stream.t0,
        "duration_s": _r(stream.duration_s, 3),
        "end": end.reason if end else None,
        "input_finished": end.input_finished if end else None,
        "events": event_counts(stream),
        "user_audio_ms": _r(stream.audio_in_ms),
        "user_speech_ms": _r(speech) if speech is not None else None,
        "assistant_audio_ms": _r(stream.audio_out_ms),
        "user_audio_kept_ms": _r(_kept_ms(stream, AudioInRecord)),
        "assistant_audio_kept_ms": _r(_kept_ms(stream, AudioOutRecord)),
        "turns": [_turn_dict(t) for t in _turns(stream, output_rate)],
        "exceptions": exceptions,
        "transport": transport,
        "rejected_client_events": rejected,
        "notes": notes,
    }


def describe(cassette: Cassette) -> dict[str, Any]:
    """Everything ``inspect`` shows, as plain JSON-able data."""
    h = cassette.header
    per_min = cassette.bytes_per_minute()
    return {
        "path": str(cassette.path) if cassette.path else None,
        "header": {
            "format_version": h.format,
            "model": h.model_id,
            "voice": h.voice,
            "input_rate": h.input_rate,
            "output_rate": h.output_rate,
            "region": h.region,
            "source": h.source,
            "created": h.created,
            "toolkit": h.toolkit,
            "audio": {"user": h.audio.user, "assistant": h.audio.assistant},
            "sidecar": h.sidecar,
            "meta": h.meta,
        },
        "size_bytes": cassette.size_bytes,
        "sidecar_bytes": cassette.sidecar_bytes,
        "duration_s": _r(cassette.duration_s, 3),
        "kb_per_minute": _r(per_min / 1024, 2),
        "streams": [_stream_dict(s, h.output_rate) for s in cassette.streams],
        "warnings": list(cassette.warnings),
    }


# --- text -------------------------------------------------------------------------------------------


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _ms(x: float | None) -> str:
    return "?" if x is None else f"{x:g} ms"


def _kept(total: float | None, kept: float | None) -> str:
    if not total:
        return "none recorded"
    if not kept:
        return "not kept"
    return "kept" if abs(total - kept) < 0.05 else f"{kept:g} ms kept"


def render_text(d: dict[str, Any]) -> str:
    h = d["header"]
    out: list[str] = []
    add = out.append
    add(f"cassette   {d['path']}")
    add(f"format     novasonic_cassette {h['format_version']}")
    add(f"model      {h['model'] or '-'}")
    add(f"voice      {h['voice'] or '-'}")
    add(f"rates      input {h['input_rate']} Hz, output {h['output_rate']} Hz")
    add(f"region     {h['region'] or '-'}")
    add(f"source     {h['source']}")
    add(f"created    {h['created']} (toolkit {h['toolkit']})")
    add(f"audio      user {h['audio']['user']}, assistant {h['audio']['assistant']}"
        + (f", sidecar {h['sidecar']}" if h["sidecar"] else ""))
    size = f"{d['size_bytes']} bytes"
    if d["sidecar_bytes"]:
        size += f" (+ {d['sidecar_bytes']} bytes of sidecar audio)"
    kb = d["kb_per_minute"]
    add(f"size       {size}; {d['duration_s']:g} s of conversation; "
        + (f"{kb:g} KB per conversation-minute" if kb is not None else "KB per minute: n/a (no duration)"))
    add(f"streams    {len(d['streams'])}")
    for w in d["warnings"]:
        add(f"warning    {w}")

    for s in d["streams"]:
        add("")
        ended = s["end"] or "no end record (the recording stopped mid-stream)"
        if s["input_finished"]:
            ended += ", input finished"
        t0 = f", starts at {s['t0_s']:g} s" if s["t0_s"] is not None else ""
        add(f"stream {s['index']}  {s['model'] or '-'}{t0}, {s['duration_s']:g} s, ended: {ended}")
        ev = s["events"]
        add(f"  events     {ev['client']} client ({ev['audio_input_frames']} audio frames), "
            f"{ev['server']} server ({ev['audio_output_chunks']} audio chunks); {ev['records']} records")
        add(f"  audio      user {_ms(s['user_audio_ms'])} (speech {_ms(s['user_speech_ms'])}; "
            f"{_kept(s['user_audio_ms'], s['user_audio_kept_ms'])}), "
            f"assistant {_ms(s['assistant_audio_ms'])} ({_kept(s['assistant_audio_ms'], s['assistant_audio_kept_ms'])})")
        if not s["turns"]:
            add("  turns      none")
        for t in s["turns"]:
            flags = []
            if t["interrupted"]:
                flags.append(f"BARGE-IN ({t['barge_in_reason']})" if t["barge_in_reason"] else "BARGE-IN")
            add(f"  turn {t['index']}" + (f"  [{', '.join(flags)}]" if flags else ""))
            add(f"    user       {_q(t['user_text']) if t['user_text'] else '-'}")
            for c in t["tool_calls"]:
                state = "resolved" if c["resolved"] else ("requested" if c["requested"] else "incomplete")
                args = json.dumps(c["arguments"], ensure_ascii=False, sort_keys=True)
                add(f"    tool call  {c['name']}({args}) id={c['tool_use_id']} [{state}]")
            add(f"    assistant  {_q(t['assistant_text']) if t['assistant_text'] else '-'}")
            add(f"    audio      {_ms(t['audio_ms'])} in {t['audio_blocks']} block(s)")
        if s["exceptions"]:
            add("  exceptions")
            for e in s["exceptions"]:
                extra = f" HTTP {e['status']}" if e["status"] is not None else ""
                msg = f": {e['message']}" if e["message"] else ""
                add(f"    {e['t']:8.3f} s  {e['name']} (via {e['via']}{extra}){msg}")
        if s["transport"]:
            add("  transport")
            for e in s["transport"]:
                bits = "".join(f" {k}={e[k]}" for k in ("code", "detail") if e[k] is not None)
                add(f"    {e['t']:8.3f} s  {e['direction']} {e['action']}{bits}")
        if s["rejected_client_events"]:
            add("  rejected client events")
            for e in s["rejected_client_events"]:
                add(f"    {e['t']:8.3f} s  {e['event']} broke {e['rule']} (line {e['line']})")
        for n in s["notes"]:
            when = f"{n['t']:8.3f} s  " if n["t"] is not None else ""
            add(f"  note       {when}{n['text']}")
    return "\n".join(out) + "\n"
