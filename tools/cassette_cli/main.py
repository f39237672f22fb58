"""``nova-cassette`` / ``python -m tools.cassette_cli``: look at cassettes without writing code.

Commands::

    nova-cassette inspect PATH [--json] [--no-rules]
        The header, then per stream: duration, how it ended, event counts, user audio and
        speech, assistant audio, the turns (user transcript -> assistant text, tool calls,
        barge-ins; read with ``novasonic.rules.OutputTracker``), exceptions, transport actions,
        rejected client events and notes; the file size and KB per conversation-minute.
        ``--json`` prints one JSON object instead (the same facts, for machines).
        ``--no-rules`` skips the protocol-rule check (structure is still checked), to look at a
        cassette whose client events break the rules.

    nova-cassette validate PATH [PATH ...]
        Loads each cassette with full validation and prints one line per file:
        ``OK path (N streams, M events)`` or ``INVALID path:LINE: message (hint)``.
        Recoverable problems (a truncated last line left by a killed writer) are printed as
        ``WARNING path: ...`` on stderr; the file is still OK.

Exit codes:

    0  every cassette is valid
    1  a cassette is invalid, or cannot be read: a missing file counts as invalid
       (``INVALID path: no cassette at this path (...)``) so that ``validate a b c`` reports
       every file and still fails
    2  usage error (unknown command or option, missing argument)

Counts: "events" are wire events, with audio runs expanded (an ``audio_in`` record of 56
frames counts 56 client events; an ``audio_out`` record counts its chunks plus the usage events
kept inside it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    Cassette,
    CassetteError,
    CassetteStream,
    CassetteWarning,
    ClientEventRecord,
    ExceptionRecord,
    NoteRecord,
    ServerEventRecord,
    TransportRecord,
    load_cassette,
)
from novasonic.events import ContentStart
from novasonic.rules.output_tracker import OutputTracker, Turn

__all__ = ["main", "build_parser", "describe", "render_text", "EXIT_OK", "EXIT_INVALID", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


# --- loading ----------------------------------------------------------------------------------------


class _LoadFailure(Exception):
    def __init__(self, path: str, line: int | None, message: str, hint: str | None):
        self.path, self.line, self.message, self.hint = path, line, message, hint
        super().__init__(self.render())

    def render(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def _load(path: str, *, validate: bool = True) -> tuple[Cassette, list[str]]:
    """Load ``path``; return the cassette and its warnings, or raise ``_LoadFailure``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CassetteWarning)  # they are reported from cassette.warnings
        try:
            cassette = load_cassette(path, validate=validate)
        except CassetteError as exc:
            # The message names the line itself: drop the duplicate "path:line:" prefix.
            return _raise(path, exc.line, exc.message, exc.hint)
        except IsADirectoryError:
            return _raise(path, None, "is a directory, not a cassette file", None)
        except OSError as exc:
            return _raise(path, None, f"cannot read the file: {exc.strerror or exc}", None)
    return cassette, list(cassette.warnings)


def _raise(path: str, line: int | None, message: str, hint: str | None) -> Any:
    raise _LoadFailure(path, line, message, hint)


# --- facts ------------------------------------------------------------------------------------------


def _r(x: float | None, nd: int = 1) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd)


def _event_counts(stream: CassetteStream) -> dict[str, int]:
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
        "events": _event_counts(stream),
        "user_audio_ms": _r(stream.audio_in_ms),
        "user_speech_ms": _r(speech) if speech is not None else None,
        "assistant_audio_ms": _r(stream.audio_out_ms),
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
        add(f"  audio      user {_ms(s['user_audio_ms'])} (speech {_ms(s['user_speech_ms'])}), "
            f"assistant {_ms(s['assistant_audio_ms'])}")
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


# --- commands ---------------------------------------------------------------------------------------


def _cmd_inspect(args: argparse.Namespace) -> int:
    try:
        cassette, _ = _load(args.path, validate=not args.no_rules)
    except _LoadFailure as exc:
        print(f"INVALID {exc.render()}", file=sys.stderr)
        return EXIT_INVALID
    d = describe(cassette)
    if args.json:
        sys.stdout.write(json.dumps(d, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_text(d))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.paths:
        try:
            cassette, warns = _load(path)
        except _LoadFailure as exc:
            print(f"INVALID {exc.render()}")
            status = EXIT_INVALID
            continue
        except Exception as exc:  # a bug in the loader must not hide the other files' results
            print(f"INVALID {path}: unexpected error while loading: {type(exc).__name__}: {exc}")
            status = EXIT_INVALID
            continue
        n_events = sum(c["client"] + c["server"] for c in (_event_counts(s) for s in cassette.streams))
        print(f"OK {path} ({len(cassette.streams)} streams, {n_events} events)")
        for w in warns:
            print(f"WARNING {path}: {w}", file=sys.stderr)
    sys.stdout.flush()
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nova-cassette",
        description="Inspect and validate Nova Sonic cassettes (docs/cassette-format.md).",
        epilog="exit codes: 0 ok, 1 invalid or unreadable cassette (a missing file is invalid), 2 usage error",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("inspect", help="show a cassette's header, streams and turns",
                       description="Show a cassette's header, streams, turns, exceptions and size.")
    p.add_argument("path", metavar="PATH", help="the cassette (.jsonl)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-rules", action="store_true",
                   help="do not check the client events against the protocol rules (structure is still checked)")
    p.set_defaults(func=_cmd_inspect)
    v = sub.add_parser("validate", help="check cassettes; one OK/INVALID line each",
                       description="Load each cassette with full validation. Exit 1 if any is invalid or missing.")
    v.add_argument("paths", metavar="PATH", nargs="+", help="cassette files (.jsonl)")
    v.set_defaults(func=_cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 on a usage error
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
