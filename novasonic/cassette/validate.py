"""Checks a loaded cassette: its structure, and its client events against the protocol rules.

``check_structure`` (always run by the loader) — what the format itself promises:

- streams appear in order (0, 1, 2…); a ``stream`` record comes first in its stream, at most once;
  nothing follows a stream's ``end`` record;
- per stream and direction, ``t`` does not go backwards;
- audio positions add up: an ``audio_in`` record starts where the stream's earlier ones ended,
  a client event's ``a`` is the audio sent before it, the service's ``a`` never goes backwards and
  never exceeds the audio the stream holds.

``check_rules`` (``load_cassette(validate=True)``, the default) — the recorded client must be one
the service accepts: each stream's client records are fed, in order, to a fresh
``novasonic.rules.InputMachine`` for the stream's model; the service's ``toolUse`` events are
told to it (``note_output``) so tool results validate. ``audio_in`` records are fed as the frames
they stand for (silent PCM of each recorded frame size: the rules count bytes, not voices). A
record whose ``v`` names a rule must be rejected by exactly that rule, and the stream's later
client records are then not checked (the service ended the stream there). The first failure
raises ``CassetteRulesError`` naming the line, the rule and the service's text.

Limitation: an ``audio_in`` record is fed at its place in the file, which can be after service
records that happened while its frames were sent (see ``writer``); only a non-default
``RulesConfig(allow_audio_while_tool_result_owed=False)`` can notice the difference.
"""

from __future__ import annotations

import functools

from ..errors import ProtocolViolation, UnknownModelError
from ..events import AudioInput, InputEvent, pcm_to_b64
from ..rules import InputMachine, Limits, RulesConfig
from . import audio as A
from .errors import CassetteFormatError, CassetteRulesError
from .model import (
    AudioInRecord,
    Cassette,
    ClientEventRecord,
    EndRecord,
    Record,
    ServerEventRecord,
    StreamRecord,
    TimedRecord,
)

__all__ = ["check_structure", "check_rules"]

#: Slack for audio positions written with 0.1 ms precision.
_A_TOLERANCE_MS = 1.0
_T_TOLERANCE_S = 0.0005


def check_structure(records: list[Record], *, path: str | None = None, truncated: bool = False,
                    warnings: list[str] | None = None) -> None:
    """Raise ``CassetteFormatError`` for the first broken structural promise (module doc).

    ``truncated``: the file lost its last line. Then, and for a stream without an ``end``
    record (a writer killed between flushes), a service audio position beyond the stream's
    audio is a warning: the lost lines may have held the audio it counted."""

    def err(msg: str, r: Record, hint: str | None = None) -> CassetteFormatError:
        return CassetteFormatError(msg, line=r.line, path=path, hint=hint)

    seen: set[int] = set()
    started: set[int] = set()
    ended: dict[int, int | None] = {}
    last_t: dict[tuple[int, str], tuple[float, int | None]] = {}
    audio: dict[int, float] = {}
    server_a: dict[int, tuple[float, int | None]] = {}
    has_records: set[int] = set()
    for r in records:
        s = r.stream
        if s not in seen:
            if s != len(seen):
                raise err(f"stream {s} appears before stream {len(seen)}", r, hint="streams are numbered 0, 1, 2… in order")
            seen.add(s)
        if s in ended:
            raise err(f"stream {s} already ended (line {ended[s]})", r)
        if isinstance(r, StreamRecord):
            if s in started:
                raise err(f"a second stream record for stream {s}", r)
            started.add(s)
            if s in has_records:
                raise err(f"the stream record of stream {s} must come before its other records", r)
        elif isinstance(r, EndRecord):
            ended[s] = r.line
        has_records.add(s)
        if not isinstance(r, TimedRecord):
            continue
        key = (s, r.direction)
        prev = last_t.get(key)
        if prev is not None and r.t < prev[0] - _T_TOLERANCE_S:
            who = "client" if r.direction == "c" else "service"
            raise err(f"time goes backwards: t={r.t} after t={prev[0]} (line {prev[1]}) in the {who} records of stream {s}", r)
        last_t[key] = (r.t, r.line)
        total = audio.get(s, 0.0)
        if isinstance(r, AudioInRecord):
            if abs(r.a - total) > _A_TOLERANCE_MS:
                raise err(f"audio_in starts at a={r.a} ms, but stream {s}'s earlier audio_in records hold "
                          f"{A.round_ms(total)} ms", r, hint="audio_in records follow each other without gaps")
            audio[s] = total + r.duration_ms
        elif isinstance(r, ClientEventRecord):
            if abs(r.a - total) > _A_TOLERANCE_MS:
                raise err(f"client event at a={r.a} ms, but the audio sent before it is {A.round_ms(total)} ms", r,
                          hint='"a" of a client event is the audio sent before it (leave it out to have it computed)')
        elif r.direction == "s":
            prev_a = server_a.get(s)
            if prev_a is not None and r.a < prev_a[0] - _A_TOLERANCE_MS:
                raise err(f"the service's audio position goes backwards: a={r.a} after a={prev_a[0]} "
                          f"(line {prev_a[1]})", r)
            server_a[s] = (r.a, r.line)
    for s, (a, line) in server_a.items():
        total = audio.get(s, 0.0)
        if a > total + _A_TOLERANCE_MS:
            msg = (f"a service record of stream {s} says {a} ms of user audio had arrived, but the stream's "
                   f"audio_in records hold {A.round_ms(total)} ms")
            incomplete = truncated or s not in ended
            if incomplete and warnings is not None:
                why = "the file was truncated" if truncated else "the stream has no end record: the writer stopped early"
                warnings.append(f"line {line}: {msg} ({why})")
            else:
                raise CassetteFormatError(msg, line=line, path=path)


@functools.lru_cache(maxsize=64)
def _silent_b64(n_bytes: int) -> str:
    return pcm_to_b64(A.zeros(n_bytes))


def check_rules(
    cassette: Cassette,
    *,
    config: RulesConfig | None = None,
    limits: Limits | None = None,
    path: str | None = None,
    warnings: list[str] | None = None,
) -> None:
    """Feed each stream's client records to an ``InputMachine`` (module doc)."""
    for stream in cassette.streams:
        model_id = stream.model_id or cassette.header.model_id
        if model_id is None:
            if warnings is not None:
                warnings.append(f"stream {stream.index}: no model id in the header or stream record; rules not checked")
            continue
        try:
            machine = InputMachine(model_id, config, limits)
        except UnknownModelError as exc:
            line = stream.start.line if stream.start is not None and stream.model_id else 1
            raise CassetteRulesError(str(exc), line=line, path=path) from None
        _check_stream(machine, stream.records, path)


def _check_stream(machine: InputMachine, records: list[Record], path: str | None) -> None:
    for r in records:
        if isinstance(r, ServerEventRecord):
            machine.note_output(r.event)
        elif isinstance(r, ClientEventRecord):
            if _feed(machine, r.event, r.verdict, r, path, None):
                return
        elif isinstance(r, AudioInRecord):
            last = r.n_frames - 1
            for i, size in enumerate(r.sizes):
                ev = r.template.model_copy(update={"content": _silent_b64(size)})
                if _feed(machine, ev, r.verdict if i == last else None, r, path, i):
                    return


def _feed(machine: InputMachine, event: InputEvent, expected: str | None, r: Record, path: str | None,
          frame: int | None) -> bool:
    """Feed one event; True when it was (as recorded) rejected and checking the stream stops."""
    what = event.EVENT_NAME if frame is None else f"{AudioInput.EVENT_NAME} frame {frame + 1} of this run"
    try:
        machine.feed(event)
    except ProtocolViolation as v:
        if expected == v.rule:
            return True
        if expected is not None:
            raise CassetteRulesError(
                f"{what} was recorded as rejected by rule {expected!r}, but the rules reject it by "
                f"{v.rule!r}: {v.message}", violation=v, line=r.line, path=path,
            ) from None
        raise CassetteRulesError(
            f"{what} breaks protocol rule {v.rule!r} ({v.exception_type}: {v.message}) in state {v.state}",
            violation=v, line=r.line, path=path,
            hint="the service would reject this client event; fix the cassette, or, if the recording had the "
            'service reject it, keep its verdict as "v"',
        ) from None
    if expected is not None:
        raise CassetteRulesError(
            f"{what} was recorded as rejected by rule {expected!r}, but the rules accept it",
            line=r.line, path=path, hint='drop "v" if the service accepted it, or check the rules configuration',
        )
    return False
