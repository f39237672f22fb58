"""``save_cassette``: an in-memory ``Cassette`` (built by hand, trimmed, loaded) → a file.

It goes through ``CassetteWriter.write_record``, so redaction, the secret check and the audio
policy apply exactly as when recording. Audio that the source kept is re-stored under the
target's policy (copied into the new sidecar, inlined, or dropped).
"""

from __future__ import annotations

import os
from pathlib import Path

from .model import AudioInRecord, AudioOutRecord, Cassette, CassetteHeader
from .writer import CassetteWriter, WriterOptions

__all__ = ["save_cassette"]


def save_cassette(
    cassette: Cassette,
    path: str | os.PathLike[str],
    *,
    options: WriterOptions | None = None,
    header: CassetteHeader | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``cassette`` to ``path``; ``options`` default to the cassette's audio policy."""
    header = header if header is not None else cassette.header
    options = options if options is not None else WriterOptions.from_policy(header.audio)
    with CassetteWriter(path, header, options, overwrite=overwrite) as w:
        for stream in cassette.streams:
            for record in stream.records:
                pcm = None
                if isinstance(record, AudioInRecord | AudioOutRecord) and record.pcm is not None:
                    pcm = stream.pcm(record)
                w.write_record(record, pcm=pcm)
    return Path(path)
