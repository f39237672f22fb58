"""``load_cassette``: file → ``Cassette``, safely, with errors that name the line.

Safe: lines are read with ``json`` into plain data and then validated by pydantic models; nothing
in a cassette can name a Python object (no YAML tags, no pickle).

Tolerant of a killed writer, strict about everything else:

- a last line without its newline that does not parse (the writer died mid-line) is dropped with
  a ``CassetteWarning``; the cassette is usable up to its last complete record;
- any other line that is not a valid record is a ``CassetteFormatError`` naming the line;
- then ``validate.check_structure`` and, unless ``validate=False``, ``validate.check_rules``;
- audio kept in the sidecar is checked to be there (length); its bytes are read lazily
  (``CassetteStream.pcm``), with their CRC checked.
"""

from __future__ import annotations

import os
import warnings as _warnings
from pathlib import Path

from ..rules import Limits, RulesConfig
from .errors import CassetteFormatError, CassetteNotFoundError, CassetteWarning
from .model import AudioInRecord, AudioOutRecord, Cassette, CassetteStream, Record
from .persist import split_lines
from .serialize import LineDecoder, parse_json_line
from .sidecar import AudioReader
from .validate import check_rules, check_structure

__all__ = ["load_cassette", "read_cassette"]


def load_cassette(
    path: str | os.PathLike[str],
    *,
    validate: bool = True,
    rules_config: RulesConfig | None = None,
    limits: Limits | None = None,
) -> Cassette:
    """Load the cassette at ``path`` (its sidecar, if any, is looked up next to it)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CassetteNotFoundError(
            "no cassette at this path", path=str(p),
            hint="record it first (record mode once/new_episodes/all), or fix the cassette name",
        ) from None
    return read_cassette(data, path=p, validate=validate, rules_config=rules_config, limits=limits)


def read_cassette(
    data: bytes | str,
    *,
    path: str | os.PathLike[str] | None = None,
    validate: bool = True,
    rules_config: RulesConfig | None = None,
    limits: Limits | None = None,
) -> Cassette:
    """Parse cassette text. ``path`` is used in messages and to find the sidecar."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    where = str(path) if path is not None else None
    lines, tail = split_lines(raw)
    warns: list[str] = []

    objs: list[tuple[int, object]] = []
    for n, line in lines:
        if not line.strip():
            continue
        objs.append((n, _parse(line, n, where, last=False)))
    truncated = False
    if tail is not None and tail[1].strip():
        n, line = tail
        try:
            objs.append((n, _parse(line, n, where, last=True)))
        except CassetteFormatError as exc:
            truncated = True
            warns.append(f"line {n} is incomplete and was ignored (the writer was probably killed): {exc.message}")
    if not objs:
        raise CassetteFormatError("empty file: missing cassette header", line=1, path=where,
                                  hint='the first line must be {"novasonic_cassette": 1, ...}')

    decoder = LineDecoder(path=where)
    first_line, first = objs[0]
    header = decoder.header(first, first_line)
    records: list[Record] = [decoder.record(obj, n) for n, obj in objs[1:]]
    check_structure(records, path=where, truncated=truncated, warnings=warns)

    sidecar = None
    if header.sidecar is not None:
        base = Path(path).parent if path is not None else Path.cwd()
        sidecar = base / header.sidecar
    reader = AudioReader(sidecar, codec=header.audio.codec, cassette_path=where)
    for r in records:
        if isinstance(r, AudioInRecord | AudioOutRecord) and r.pcm is not None:
            reader.check_ref(r.pcm, r.line)

    streams: dict[int, CassetteStream] = {}
    for r in records:
        streams.setdefault(r.stream, CassetteStream(r.stream, audio_source=reader)).records.append(r)
    cassette = Cassette(
        header=header,
        streams=[streams[i] for i in sorted(streams)],
        path=Path(path) if path is not None else None,
        warnings=warns,
        size_bytes=len(raw),
        sidecar_bytes=reader.sidecar_size(),
    )
    if validate:
        check_rules(cassette, config=rules_config, limits=limits, path=where, warnings=warns)
    for w in warns:
        _warnings.warn(f"{where or 'cassette'}: {w}", CassetteWarning, stacklevel=3)
    return cassette


def _parse(line: bytes, n: int, where: str | None, *, last: bool) -> object:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CassetteFormatError(f"line is not UTF-8: {exc}", line=n, path=where) from None
    try:
        return parse_json_line(text)
    except ValueError as exc:
        hint = None if last else (
            "a line cut short in the middle of the file usually means a killed writer was resumed without "
            "repair; delete the broken line (CassetteWriter.resume repairs the tail before appending)"
        )
        raise CassetteFormatError(f"not a JSON line: {exc}", line=n, path=where, hint=hint) from None
