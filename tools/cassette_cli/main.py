"""``nova-cassette`` / ``python -m tools.cassette_cli``: look at cassettes without writing code.

Commands::

    nova-cassette inspect PATH [--json] [--no-rules]
        The header, then per stream: duration, how it ended, event counts, user audio and
        speech, assistant audio (and how much of it the cassette keeps), the turns (user
        transcript -> assistant text, tool calls, barge-ins; read with
        ``novasonic.rules.OutputTracker``), exceptions, transport actions, rejected client events
        and notes; the file size and KB per conversation-minute. ``--json`` prints one JSON
        object instead. ``--no-rules`` skips the protocol-rule check (structure is still
        checked), to look at a cassette whose client events break the rules.

    nova-cassette validate PATH [PATH ...]
        Loads each cassette with full validation and prints one line per file:
        ``OK path (N streams, M events)`` or ``INVALID path:LINE: message (hint)``; a file that
        cannot be read at all is ``ERROR path: message``. Recoverable problems (a truncated last
        line left by a killed writer) are printed as ``WARNING path: ...`` on stderr; the file is
        still OK. Every file is reported, whatever happened to the others.

    nova-cassette diff A B [--json] [--timing] [--time-tolerance S] [--audio-tolerance MS]
                           [--ignore NAME[,NAME...]] [-U N]
        Semantic diff (``novasonic.cassette.diff``): ids and names are rebound by order of
        appearance, times and audio positions are ignored unless ``--timing``; the changes are
        shown per stream and lane (stream, client, service) in a unified-diff style, or as JSON.

    nova-cassette audio CASSETTE --out DIR [--stream N] [--who user|assistant|both] [--synthesize]
        One WAV per audio block (``s0-assistant-01.wav``) where the cassette keeps the audio;
        where it does not, one line says what was recorded and that it was not kept;
        ``--synthesize`` then writes silence of the recorded length (``…-silence.wav``).

    nova-cassette timeline CASSETTE --out FILE.html|FILE.png [--stream N] [--axis auto|time|audio]
        A picture of each stream (or stream N) on a time axis: user speech, transcripts,
        assistant audio and text, tool calls, barge-ins, exceptions, transport actions, the end.
        HTML is self-contained (inline SVG, no script); PNG needs matplotlib.

Exit codes (like diff(1): 1 is a negative answer, 2 is trouble):

    0  inspect/timeline: done; validate: every cassette is valid; diff: no semantic difference;
       audio: at least one WAV written
    1  validate: a cassette is invalid; diff: the cassettes differ; audio: nothing to write (the
       cassette keeps no audio for the chosen streams and sides, and no --synthesize)
    2  trouble: a usage error; a missing, unreadable or corrupt cassette (one line
       ``nova-cassette: error: PATH:LINE: message (how to fix: ...)``, no traceback); an output
       that cannot be written; PNG without matplotlib. ``validate`` reports a file it cannot read
       as ``ERROR`` and ends with 2 once every file is reported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from novasonic.cassette import (
    Cassette,
    CassetteError,
    CassetteNotFoundError,
    CassetteRulesError,
    CassetteWarning,
    load_cassette,
)
from novasonic.cassette.diff import DiffOptions, diff_cassettes

from .audio_export import export_audio
from .describe import describe, event_counts, render_text
from .timeline import TimelineError, build_timeline, render_html, render_png

__all__ = ["main", "build_parser", "describe", "render_text", "EXIT_OK", "EXIT_DIFFERENT", "EXIT_INVALID",
           "EXIT_ERROR", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_INVALID = 1
EXIT_ERROR = 2
EXIT_USAGE = 2

PROG = "nova-cassette"


# --- errors and loading -----------------------------------------------------------------------------


class CliError(Exception):
    """A problem to report on one line (exit 2)."""


class _LoadFailure(CliError):
    def __init__(self, path: str, line: int | None, message: str, hint: str | None, *, missing: bool = False):
        self.path, self.line, self.message, self.hint, self.missing = path, line, message, hint, missing
        super().__init__(self.render())

    def render(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" (how to fix: {self.hint})"
        return text


def _failure(path: str, exc: CassetteError) -> _LoadFailure:
    # The error's own rendering repeats "path:line:"; keep its parts and lay them out on one line.
    hint = exc.hint
    if isinstance(exc, CassetteRulesError):
        hint = (hint + "; " if hint else "") + "`nova-cassette inspect --no-rules` shows the cassette anyway"
    return _LoadFailure(exc.path or path, exc.line, exc.message, hint, missing=isinstance(exc, CassetteNotFoundError))


def _load(path: str, *, validate: bool = True) -> tuple[Cassette, list[str]]:
    """Load ``path``; return the cassette and its warnings, or raise ``_LoadFailure``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CassetteWarning)  # reported from cassette.warnings
        try:
            cassette = load_cassette(path, validate=validate)
        except CassetteError as exc:
            raise _failure(path, exc) from None
        except IsADirectoryError:
            raise _LoadFailure(path, None, "is a directory, not a cassette file", None, missing=True) from None
        except OSError as exc:
            raise _LoadFailure(path, None, f"cannot read the file: {exc.strerror or exc}", None, missing=True) from None
    return cassette, list(cassette.warnings)


def _load_for_command(path: str, *, validate: bool = False) -> Cassette:
    cassette, warns = _load(path, validate=validate)
    for w in warns:
        print(f"{PROG}: warning: {path}: {w}", file=sys.stderr)
    return cassette


def _out(text: str) -> None:
    sys.stdout.write(text)


# --- commands ---------------------------------------------------------------------------------------


def _cmd_inspect(args: argparse.Namespace) -> int:
    cassette = _load_for_command(args.path, validate=not args.no_rules)
    d = describe(cassette)
    _out(json.dumps(d, indent=2, ensure_ascii=False) + "\n" if args.json else render_text(d))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for path in args.paths:
        try:
            cassette, warns = _load(path)
        except _LoadFailure as exc:
            if exc.missing:
                print(f"ERROR {exc.render()}")
                status = EXIT_ERROR
            else:
                print(f"INVALID {exc.render()}")
                status = max(status, EXIT_INVALID)
            continue
        except Exception as exc:  # a bug in the loader must not hide the other files' results
            print(f"INVALID {path}: unexpected error while loading: {type(exc).__name__}: {exc}")
            status = max(status, EXIT_INVALID)
            continue
        n_events = sum(c["client"] + c["server"] for c in (event_counts(s) for s in cassette.streams))
        print(f"OK {path} ({len(cassette.streams)} streams, {n_events} events)")
        for w in warns:
            print(f"WARNING {path}: {w}", file=sys.stderr)
    sys.stdout.flush()
    return status


def _cmd_diff(args: argparse.Namespace) -> int:
    a = _load_for_command(args.a)
    b = _load_for_command(args.b)
    ignore = frozenset(x.strip() for item in args.ignore for x in item.split(",") if x.strip())
    options = DiffOptions(timing=args.timing, time_tolerance_s=args.time_tolerance,
                          audio_tolerance_ms=args.audio_tolerance, ignore=ignore)
    result = diff_cassettes(a, b, options)
    result.a_label, result.b_label = args.a, args.b
    if args.json:
        _out(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    elif result.equal:
        what = ("ids and names rebound; times within ±{:g} s, audio positions within ±{:g} ms".format(
            options.time_tolerance_s, options.audio_tolerance_ms) if options.timing
            else "ids, names, times and audio positions ignored")
        _out(f"no semantic differences between {args.a} and {args.b} ({what})\n")
    else:
        _out(result.render(context=args.context))
    return EXIT_OK if result.equal else EXIT_DIFFERENT


def _streams(cassette: Cassette, stream: int | None) -> list[int]:
    n = len(cassette.streams)
    if stream is None:
        return list(range(n))
    if not 0 <= stream < n:
        raise CliError(f"{cassette.path}: there is no stream {stream} (the cassette has {n} stream(s), "
                       f"numbered 0-{n - 1})" if n else f"{cassette.path}: the cassette has no streams")
    return [stream]


def _cmd_audio(args: argparse.Namespace) -> int:
    cassette = _load_for_command(args.cassette)
    streams = _streams(cassette, args.stream)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out}: exists and is not a directory (--out names the directory the WAV files go to)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"{out}: cannot create the directory: {exc.strerror or exc}") from None
    who = ("user", "assistant") if args.who == "both" else (args.who,)
    try:
        results = export_audio(cassette, out, streams=streams, who=who, synthesize=args.synthesize)  # type: ignore[arg-type]
    except CassetteError as exc:
        raise _failure(args.cassette, exc) from None
    except OSError as exc:
        raise CliError(f"{out}: cannot write: {exc.strerror or exc}") from None
    for r in results:
        print(r.message)
    written = [r for r in results if r.path is not None]
    sides = " and ".join(who)
    where = f"stream {streams[0]}" if len(streams) == 1 else f"{len(streams)} stream(s)"
    if not results:
        print(f"no {sides} audio in {where} of {args.cassette}; nothing written")
        return EXIT_DIFFERENT
    if not written:
        print(f"no WAV written: {args.cassette} does not keep the {sides} audio of {where} "
              f"(--synthesize writes silence of the recorded length)")
        return EXIT_DIFFERENT
    real = sum(1 for r in written if r.status in ("written", "partial"))
    print(f"{len(written)} WAV file(s) written to {out}" + (f" ({len(written) - real} silent placeholder(s))"
                                                            if real < len(written) else ""))
    return EXIT_OK


def _cmd_timeline(args: argparse.Namespace) -> int:
    out = Path(args.out)
    fmt = args.format or out.suffix.lower().lstrip(".")
    if fmt == "htm":
        fmt = "html"
    if fmt not in ("html", "png"):
        raise CliError(f"{out}: cannot tell the format from the name; use a .html or .png file name, "
                       f"or --format html|png")
    cassette = _load_for_command(args.cassette)
    streams = _streams(cassette, args.stream)
    if not streams:
        raise CliError(f"{args.cassette}: the cassette has no streams to draw")
    timelines = [build_timeline(cassette, i, args.axis) for i in streams]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "html":
            out.write_text(render_html(timelines, cassette=cassette), encoding="utf-8")
        else:
            render_png(timelines, out, cassette=cassette)
    except OSError as exc:
        raise CliError(f"{out}: cannot write: {exc.strerror or exc}") from None
    axes = sorted({t.axis for t in timelines})
    print(f"wrote {out} ({fmt.upper()}, {len(timelines)} stream(s), {'/'.join(axes)} axis)")
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------------


def _non_negative(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (value >= 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect, validate, diff, export and draw Nova Sonic cassettes (docs/cassette-format.md).",
        epilog="exit codes: 0 ok/equal, 1 invalid cassette (validate), cassettes differ (diff) or nothing to "
               "write (audio), 2 trouble (usage error, missing or corrupt cassette, output not writable)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("inspect", help="show a cassette's header, streams, turns, faults and size",
                       description="Show a cassette's header, streams, turns, exceptions and size.")
    p.add_argument("path", metavar="PATH", help="the cassette (.jsonl)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-rules", action="store_true",
                   help="do not check the client events against the protocol rules (structure is still checked)")
    p.set_defaults(func=_cmd_inspect)

    v = sub.add_parser("validate", help="check cassettes; one OK/INVALID line each",
                       description="Load each cassette with full validation (format and protocol rules). "
                                   "Exit 1 if any is invalid, 2 if any cannot be read.")
    v.add_argument("paths", metavar="PATH", nargs="+", help="cassette files (.jsonl)")
    v.set_defaults(func=_cmd_validate)

    d = sub.add_parser(
        "diff", help="semantic diff of two cassettes (exit 0 equal, 1 different, 2 error)",
        description="Compare two cassettes event by event, per stream and lane (stream, client, service). "
                    "Ids and names (promptName, contentName, toolUseId, contentId, sessionId, completionId) are "
                    "rebound by order of appearance; times and audio positions are ignored unless --timing.",
    )
    d.add_argument("a", metavar="A", help="the first cassette (shown as -)")
    d.add_argument("b", metavar="B", help="the second cassette (shown as +)")
    d.add_argument("--json", action="store_true", help="print the differences as one JSON object")
    d.add_argument("--timing", action="store_true",
                   help="also compare times, audio positions and audio amounts, within the tolerances")
    d.add_argument("--time-tolerance", type=_non_negative(float), default=0.05, metavar="S",
                   help="seconds two times may differ by with --timing (default 0.05)")
    d.add_argument("--audio-tolerance", type=_non_negative(float), default=40.0, metavar="MS",
                   help="milliseconds two audio positions or amounts may differ by with --timing (default 40)")
    d.add_argument("--ignore", action="append", default=[], metavar="NAME[,NAME...]",
                   help="leave out event names or record kinds (usageEvent, exception, transport, end...), lanes "
                        "(client, service, stream), header keys (voice, region...) or JSON keys "
                        "(inferenceConfiguration...); repeatable")
    d.add_argument("-U", "--context", type=_non_negative(int), default=3, metavar="N",
                   help="unchanged events shown around each change (default 3)")
    d.set_defaults(func=_cmd_diff)

    a = sub.add_parser(
        "audio", help="export the kept user/assistant audio to WAV files",
        description="Write one WAV per audio block where the cassette keeps the audio (sidecar or inline). "
                    "Elided or segments-only audio is reported, not written, unless --synthesize.",
    )
    a.add_argument("cassette", metavar="CASSETTE", help="the cassette (.jsonl)")
    a.add_argument("--out", required=True, metavar="DIR", help="directory for the WAV files (created if needed)")
    a.add_argument("--stream", type=_non_negative(int), metavar="N", help="only stream N (default: every stream)")
    a.add_argument("--who", choices=("assistant", "user", "both"), default="both",
                   help="whose audio (default both)")
    a.add_argument("--synthesize", action="store_true",
                   help="for audio the cassette does not keep, write silence of the recorded length "
                        "(named ...-silence.wav)")
    a.set_defaults(func=_cmd_audio)

    t = sub.add_parser(
        "timeline", help="draw streams on a time axis (HTML with inline SVG, or PNG)",
        description="Draw user speech, transcripts, assistant audio and text, tool calls, barge-ins, "
                    "exceptions, transport actions and the end of each stream on a time axis.",
    )
    t.add_argument("cassette", metavar="CASSETTE", help="the cassette (.jsonl)")
    t.add_argument("--out", required=True, metavar="FILE", help="FILE.html (self-contained) or FILE.png (matplotlib)")
    t.add_argument("--stream", type=_non_negative(int), metavar="N", help="only stream N (default: every stream)")
    t.add_argument("--axis", choices=("auto", "time", "audio"), default="auto",
                   help="time: service seconds; audio: seconds of user audio received; auto (default): time, "
                        "or audio when the stream has no times (recorded at infinite speed)")
    t.add_argument("--format", choices=("html", "png"), help="override the format given by the file name")
    t.set_defaults(func=_cmd_timeline)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 on a usage error
    try:
        return int(args.func(args))
    except CliError as exc:
        sys.stdout.flush()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except TimelineError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `nova-cassette diff a b | head`: stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
