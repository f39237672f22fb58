"""Files: append-only writing that survives a killed writer, and reading lines back.

The persister knows bytes and lines, nothing about records (VCR.py's ``FilesystemPersister``).

Writing (``AppendFile``): the writer hands over whole lines; ``write`` appends them with
unbuffered ``os.write`` calls on a file opened with ``O_APPEND``, ``sync`` optionally
``fsync``\\ s. A writer killed between two ``write`` calls leaves only complete lines; one killed
in the middle of a ``write`` leaves at most one incomplete last line, which loading tolerates
(``split_lines``) and ``repair_tail`` cuts off before a writer appends again.

Reading (``split_lines``): the file is split on ``\\n``. Every line but the last must be
complete. A last line without its ``\\n`` is returned separately as the *tail*: the loader uses
it if it is a complete record and otherwise drops it with a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["AppendFile", "split_lines", "repair_tail"]


class AppendFile:
    """An append-only file written with unbuffered ``os.write`` (no Python buffer to lose)."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True, exclusive: bool = False) -> None:
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_APPEND
        if create:
            flags |= os.O_CREAT
        if exclusive:
            flags |= os.O_EXCL
        self._fd: int | None = os.open(self.path, flags, 0o644)
        self.size = os.fstat(self._fd).st_size

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, data: bytes) -> int:
        """Append ``data``; return the offset it was written at."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        offset = self.size
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.size += len(data)
        return offset

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def split_lines(data: bytes) -> tuple[list[tuple[int, bytes]], tuple[int, bytes] | None]:
    """``(complete lines, tail)``: 1-based numbered lines without their ``\\n``; ``tail`` is the
    last line when the data does not end with ``\\n`` (None otherwise). Lines are bytes: decoding
    belongs to the caller, which knows whether a bad line is a truncated tail."""
    parts = data.split(b"\n")
    last = parts.pop()  # b"" when data ends with \n (or is empty)
    lines = [(i + 1, p.removesuffix(b"\r")) for i, p in enumerate(parts)]
    tail = (len(parts) + 1, last) if last else None
    return lines, tail


def repair_tail(path: str | os.PathLike[str]) -> int:
    """Cut an incomplete last line (no ``\\n``) off ``path``; return the bytes removed."""
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        return 0
    with open(p, "rb+") as f:
        # Scan backwards for the last newline.
        block = 64 * 1024
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            if pos == size and chunk.endswith(b"\n"):
                return 0
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                f.truncate(keep)
                return size - keep
            pos = start
        f.truncate(0)
        return size
