"""``cassette_from_journal``: the fake server's per-stream journals → a cassette file.

The journal (``fakeserver.journal.StreamJournal``) is read by duck typing: ``novasonic`` never
imports ``fakeserver``. What is used:

- ``model_id``, ``region``, ``auth``, ``status``, ``input_finished``, ``end``;
- ``client``: items with ``t``, ``name``, ``event`` (``None`` for audioInput unless the journal
  kept audio), ``n_bytes``, ``verdict``;
- ``server``: items with ``t``, ``kind`` (``event`` | ``exception`` | ``error`` | ``http`` |
  ``transport`` | ``fault``), ``name``, ``event``, ``message``.

What the journal does not give, and how it is made up for:

- *Audio positions*: computed from the audioInput sizes seen so far (bytes → ms at the rate of
  the block's contentStart).
- *The order of a client event and a service frame*: by the journal's shared per-stream ``seq``
  when it has one (at infinite speed every ``t`` is 0, so time alone cannot order a toolResult
  after the toolUse it answers); for a journal without ``seq``, by time, the client first on a
  tie (the service reacts to the client).
- *User audio itself* (a journal without ``keep_audio``): frames are known by size only, so the
  ``audio_in`` records carry no speech/silence segments and no audio, whatever the options say;
  their block is the AUDIO block open at that point.
- *When the stream opened relative to the others*: unknown (``t0`` is left out).
- *Client input that did not decode or parse* (``record_rejected``): there is no typed event to
  store, so it becomes a ``note`` with its name and verdict; the service's exception follows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ..events import AudioInput, ContentEnd, ContentStart
from .load import load_cassette
from .model import TRANSPORT_ACTIONS, Cassette, CassetteHeader
from .writer import CassetteWriter, WriterOptions

__all__ = ["cassette_from_journal", "write_stream_journal"]


def cassette_from_journal(
    journals: Iterable[Any],
    header: CassetteHeader,
    path: str | os.PathLike[str],
    *,
    options: WriterOptions | None = None,
    overwrite: bool = False,
    validate: bool = True,
) -> Cassette:
    """Write the journals (in order; re-numbered 0, 1, …) as a cassette at ``path`` and load it."""
    journals = list(journals)
    update: dict[str, Any] = {}
    if header.model_id is None:
        update["model_id"] = next((j.model_id for j in journals if getattr(j, "model_id", None)), None)
    if header.region is None:
        update["region"] = next((j.region for j in journals if getattr(j, "region", None)), None)
    if update:
        header = header.model_copy(update=update)
    with CassetteWriter(path, header, options, overwrite=overwrite) as w:
        for index, sj in enumerate(journals):
            write_stream_journal(w, index, sj)
    return load_cassette(path, validate=validate)


def write_stream_journal(w: CassetteWriter, index: int, sj: Any) -> None:
    """Write one stream journal as stream ``index`` of ``w``."""
    # Verdicts only (never a key id or a signature). The chunk-chain verdict is not called
    # "chunk_signature" here: that name is redacted by policy, whatever it holds.
    meta = {k: v for k, v in (("auth", getattr(sj, "auth", None)), ("status", getattr(sj, "status", None)),
                               ("chunk_chain", getattr(sj, "chunk_signature", None))) if v is not None}
    w.open_stream(index, model_id=getattr(sj, "model_id", None), region=getattr(sj, "region", None), meta=meta)
    # Merge by the journal's shared sequence when present, else by time (client first on a tie).
    merged = [(c.t, 0, i, c) for i, c in enumerate(sj.client)] + [(f.t, 1, i, f) for i, f in enumerate(sj.server)]
    if all(getattr(x[3], "seq", 0) for x in merged):
        items = sorted(merged, key=lambda x: x[3].seq)
    else:
        items = sorted(merged, key=lambda x: (x[0], x[1], x[2]))
    audio_blocks: dict[str, str] = {}  # open AUDIO contentName → promptName, in opening order
    last_t = 0.0
    for t, side, _, item in items:
        last_t = max(last_t, t)
        if side == 0:
            _client(w, index, item, audio_blocks)
        else:
            _server(w, index, item, getattr(sj, "status", None))
    end = getattr(sj, "end", None)
    if end is not None:
        w.end_stream(index, last_t, end, input_finished=getattr(sj, "input_finished", None))


def _client(w: CassetteWriter, index: int, c: Any, audio_blocks: dict[str, str]) -> None:
    verdict = None if c.verdict in (None, "accepted") else c.verdict
    ev = c.event
    if ev is None and c.name == AudioInput.EVENT_NAME:
        if not audio_blocks:
            w.write_note(index, c.t, f"audioInput of {c.n_bytes} bytes outside any AUDIO block (journal had no audio)")
            return
        content_name = next(reversed(audio_blocks))
        w.write_audio_in_size(index, c.t, prompt_name=audio_blocks[content_name], content_name=content_name,
                              n_bytes=c.n_bytes)
        return
    if ev is None:  # a rejected input with no typed event (it did not decode or parse)
        how = f"rejected: {verdict}" if verdict else "not kept by the journal"
        w.write_note(index, c.t, f"client {c.name} ({how})")
        return
    if isinstance(ev, ContentStart) and ev.audio_input_configuration is not None:
        audio_blocks[ev.content_name] = ev.prompt_name
    elif isinstance(ev, ContentEnd):
        audio_blocks.pop(ev.content_name, None)
    w.write_client(index, c.t, None, ev, verdict=verdict)


def _server(w: CassetteWriter, index: int, f: Any, status: int | None) -> None:
    kind = f.kind
    if kind == "event" and f.event is not None:
        w.write_server(index, f.t, None, f.event)
    elif kind == "exception":
        w.write_exception(index, f.t, None, f.name, f.message)
    elif kind == "error":
        w.write_exception(index, f.t, None, f.name, f.message, via="error")
    elif kind == "http":
        w.write_exception(index, f.t, None, f.name, f.message, via="http",
                          status=status if isinstance(status, int) and 100 <= status <= 599 else None)
    elif kind == "transport" and f.name in TRANSPORT_ACTIONS:
        code = int(f.message) if isinstance(f.message, str) and f.message.isdigit() else None
        detail = f.message if f.message is not None and code is None else None
        w.write_transport(index, f.t, None, f.name, code=code, detail=detail)
    else:
        text = f"{kind}: {f.name}" + (f" ({f.message})" if f.message else "")
        w.write_note(index, f.t, text)
