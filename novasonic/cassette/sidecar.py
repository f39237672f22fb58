"""The audio sidecar ``<name>.audio``: compressed PCM blobs that records point at.

A plain concatenation of independent blobs (one zlib stream per audio record, codec in the
header), so a record's audio is read with one seek and a torn tail only loses the blobs no record
points at yet: the writer appends a blob *before* the line that references it.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from . import audio as A
from .errors import CassetteAudioError
from .model import AudioInRecord, AudioOutRecord, AudioRef
from .persist import AppendFile

__all__ = ["sidecar_path_for", "SidecarWriter", "AudioReader", "make_ref"]


def sidecar_path_for(cassette_path: str | os.PathLike[str]) -> Path:
    """``calls.jsonl`` → ``calls.audio`` (same directory)."""
    return Path(cassette_path).with_suffix(".audio")


def make_ref(pcm: bytes, *, sidecar: SidecarWriter | None, codec: str = "zlib") -> AudioRef:
    """Store ``pcm`` (sidecar when given, else inline base64) and return the reference."""
    blob = A.encode_blob(pcm, codec)
    crc = A.crc_hex(pcm)
    if sidecar is None:
        return AudioRef(b64=base64.b64encode(blob).decode("ascii"), crc=crc)
    at = sidecar.append(blob)
    return AudioRef(at=at, length=len(blob), crc=crc)


class SidecarWriter:
    """Appends blobs to the sidecar, opened lazily on the first blob."""

    def __init__(self, path: str | os.PathLike[str], *, fresh: bool) -> None:
        self.path = Path(path)
        self._fresh = fresh
        self._file: AppendFile | None = None

    def append(self, blob: bytes) -> int:
        if self._file is None:
            if self._fresh and self.path.exists():
                self.path.unlink()
            self._file = AppendFile(self.path)
        return self._file.write(blob)

    def sync(self) -> None:
        if self._file is not None:
            self._file.sync()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class AudioReader:
    """Reads the PCM of audio records (sidecar or inline), checking length and CRC."""

    def __init__(self, sidecar: Path | None, *, codec: str = "zlib", cassette_path: str | None = None) -> None:
        self.sidecar = sidecar
        self.codec = codec
        self.cassette_path = cassette_path

    def sidecar_size(self) -> int:
        return self.sidecar.stat().st_size if self.sidecar is not None and self.sidecar.exists() else 0

    def check_ref(self, ref: AudioRef, line: int | None) -> None:
        """Fail early (at load) when a sidecar reference points past the end of the sidecar."""
        if not ref.in_sidecar:
            return
        if self.sidecar is None:
            raise self._error("the record points into an audio sidecar, but the header names none", line)
        size = self.sidecar_size()
        assert ref.at is not None and ref.length is not None
        if ref.at + ref.length > size:
            raise self._error(
                f"audio at bytes {ref.at}..{ref.at + ref.length} of {self.sidecar.name}, which holds {size} bytes",
                line,
                hint=f"keep {self.sidecar.name} next to the cassette (it is written with it)",
            )

    def __call__(self, record: AudioInRecord | AudioOutRecord) -> bytes | None:
        ref = record.pcm
        if ref is None:
            return None
        line = record.line
        if ref.in_sidecar:
            self.check_ref(ref, line)
            assert self.sidecar is not None and ref.at is not None and ref.length is not None
            with open(self.sidecar, "rb") as f:
                f.seek(ref.at)
                blob = f.read(ref.length)
        else:
            try:
                blob = base64.b64decode(ref.b64 or "", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise self._error(f"inline audio is not valid base64: {exc}", line) from None
        try:
            pcm = A.decode_blob(blob, self.codec)
        except ValueError as exc:
            raise self._error(str(exc), line) from None
        if A.crc_hex(pcm) != ref.crc:
            raise self._error(f"audio CRC mismatch (recorded {ref.crc}, read {A.crc_hex(pcm)})", line)
        if len(pcm) != record.n_bytes:
            raise self._error(f"audio holds {len(pcm)} bytes, the record's chunk sizes add up to {record.n_bytes}", line)
        return pcm

    def _error(self, message: str, line: int | None, hint: str | None = None) -> CassetteAudioError:
        return CassetteAudioError(message, line=line, path=self.cassette_path, hint=hint)
