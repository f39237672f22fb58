"""Audio helpers of the cassette format: speech/silence segments, compact integer lists, PCM blobs.

No I/O. 16-bit little-endian mono PCM throughout (protocol.md §1.4).

Speech/silence segments (``Segmenter``)
---------------------------------------
User audio is somebody's voice, so by default a cassette keeps only *where* the user spoke: an
energy classifier cuts the PCM of one ``audio_in`` record into fixed windows (``window_ms``,
40 ms like the fake server's VAD, whose every reported offset is a multiple of 40 ms) and calls a
window speech when its RMS reaches ``threshold_rms``. Then, inside the record, silences shorter
than ``min_silence_ms`` between two speech segments become speech (pauses between words), and
speech shorter than ``min_speech_ms`` that does not touch the record's edges becomes silence
(clicks). The result is ``[["speech"|"silence", start_ms, end_ms], ...]`` in *absolute* input
audio time of the stream (the same clock as ``userSpeechStart.inputAudioOffsetMs``), contiguous,
covering the record exactly.

The default threshold (300 RMS in int16 units, ≈ -41 dBFS) and window are
``novasonic.audio.VAD_THRESHOLD_RMS`` / ``VAD_WINDOW_MS``, the values the fake server's VAD uses.

Compact integer lists (``compact_ints`` / ``expand_ints``)
---------------------------------------------------------
Chunk sizes and gaps are mostly one repeated value. A list is written as a bare integer when all
values are equal, otherwise as a list whose items are either an integer (one value) or a
``[value, count]`` pair (a run), whichever is shorter: ``[1920, 1920, 1920, 640]`` →
``[[1920, 3], 640]``.

PCM blobs
---------
Full audio (the sidecar, or inline by explicit option) is stored per record as one independent
zlib stream of the record's concatenated PCM (codec ``"zlib"``), with the CRC-32 of the raw PCM,
so any record can be decoded alone and corruption is detected.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from ..audio import BYTES_PER_SAMPLE, VAD_MIN_SPEECH_MS, VAD_THRESHOLD_RMS, VAD_WINDOW_MS, pcm_ms

__all__ = [
    "SPEECH",
    "SILENCE",
    "Segment",
    "DEFAULT_THRESHOLD_RMS",
    "DEFAULT_WINDOW_MS",
    "DEFAULT_MIN_SILENCE_MS",
    "DEFAULT_MIN_SPEECH_MS",
    "Segmenter",
    "segments_of",
    "compact_ints",
    "expand_ints",
    "CODECS",
    "encode_blob",
    "decode_blob",
    "crc_hex",
    "zeros",
    "pcm_ms",
    "round_ms",
]

SPEECH = "speech"
SILENCE = "silence"
Segment = tuple[str, float, float]

#: The speech threshold the fake server's VAD uses too (``novasonic.audio``).
DEFAULT_THRESHOLD_RMS = VAD_THRESHOLD_RMS
DEFAULT_WINDOW_MS = VAD_WINDOW_MS
#: Pauses shorter than this inside speech are part of the speech (between words).
DEFAULT_MIN_SILENCE_MS = 200.0
#: Voiced runs shorter than this, away from the record's edges, are clicks.
DEFAULT_MIN_SPEECH_MS = VAD_MIN_SPEECH_MS


def round_ms(value: float, digits: int = 1) -> float | int:
    """``value`` rounded to ``digits`` decimals, as an ``int`` when whole (shorter JSON)."""
    r = round(float(value), digits)
    return int(r) if r.is_integer() else r


# --- segments ------------------------------------------------------------------------------------


class Segmenter:
    """Incremental speech/silence classifier for one ``audio_in`` record (see the module doc).

    ``feed(pcm)`` as frames arrive (any size), ``segments()`` at any time (non-destructive; the
    incomplete last window is classified on its own so the segments cover all the audio fed).
    """

    def __init__(
        self,
        sample_rate: int,
        start_ms: float = 0.0,
        *,
        threshold_rms: float = DEFAULT_THRESHOLD_RMS,
        window_ms: float = DEFAULT_WINDOW_MS,
        min_silence_ms: float = DEFAULT_MIN_SILENCE_MS,
        min_speech_ms: float = DEFAULT_MIN_SPEECH_MS,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0 (got {sample_rate!r})")
        if not window_ms > 0:
            raise ValueError(f"window_ms must be > 0 (got {window_ms!r})")
        self.sample_rate = int(sample_rate)
        self.start_ms = float(start_ms)
        self.threshold_rms = float(threshold_rms)
        self.min_silence_ms = float(min_silence_ms)
        self.min_speech_ms = float(min_speech_ms)
        self._win = max(1, int(round(self.sample_rate * window_ms / 1000.0)))
        self._carry = np.zeros(0, dtype=np.int16)
        self._runs: list[list] = []  # [voiced, n_samples], adjacent runs differ
        self._odd = b""

    def feed(self, pcm: bytes) -> None:
        if self._odd:
            pcm = self._odd + pcm
            self._odd = b""
        if len(pcm) % 2:
            pcm, self._odd = pcm[:-1], pcm[-1:]
        samples = np.frombuffer(pcm, dtype="<i2")
        buf = np.concatenate([self._carry, samples]) if len(self._carry) else samples
        k = len(buf) // self._win
        if k:
            frames = buf[: k * self._win].astype(np.float64).reshape(k, self._win)
            voiced = np.sqrt(np.mean(frames * frames, axis=1)) >= self.threshold_rms
            for v in voiced.tolist():
                self._push(bool(v), self._win, self._runs)
        self._carry = buf[k * self._win :].copy()

    @staticmethod
    def _push(voiced: bool, n: int, runs: list[list]) -> None:
        if runs and runs[-1][0] == voiced:
            runs[-1][1] += n
        else:
            runs.append([voiced, n])

    def segments(self) -> list[Segment]:
        runs = [list(r) for r in self._runs]
        if len(self._carry):
            c = self._carry.astype(np.float64)
            self._push(bool(math.sqrt(float(np.mean(c * c))) >= self.threshold_rms), len(self._carry), runs)
        segs: list[list] = []
        pos = 0
        for voiced, n in runs:
            start = self.start_ms + pos * 1000.0 / self.sample_rate
            pos += n
            end = self.start_ms + pos * 1000.0 / self.sample_rate
            segs.append([SPEECH if voiced else SILENCE, start, end])
        segs = _smooth(segs, self.min_silence_ms, self.min_speech_ms)
        return [(k, round_ms(s), round_ms(e)) for k, s, e in segs]


def _merge(segs: list[list]) -> list[list]:
    out: list[list] = []
    for seg in segs:
        if out and out[-1][0] == seg[0]:
            out[-1][2] = seg[2]
        else:
            out.append(list(seg))
    return out


def _smooth(segs: list[list], min_silence_ms: float, min_speech_ms: float) -> list[list]:
    for i in range(1, len(segs) - 1):
        k, s, e = segs[i]
        if k == SILENCE and e - s < min_silence_ms and segs[i - 1][0] == SPEECH and segs[i + 1][0] == SPEECH:
            segs[i][0] = SPEECH
    segs = _merge(segs)
    for i in range(1, len(segs) - 1):
        k, s, e = segs[i]
        if k == SPEECH and e - s < min_speech_ms:
            segs[i][0] = SILENCE
    return _merge(segs)


def segments_of(pcm: bytes, sample_rate: int, start_ms: float = 0.0, **options: float) -> list[Segment]:
    """Segments of one piece of PCM (see ``Segmenter``)."""
    seg = Segmenter(sample_rate, start_ms, **options)
    seg.feed(pcm)
    return seg.segments()


# --- compact integer lists -----------------------------------------------------------------------


def compact_ints(values: Sequence[int]) -> int | list[int | list[int]]:
    """The compact form of a list of integers (see the module doc). ``[]`` stays ``[]``."""
    if not values:
        return []
    runs: list[list[int]] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([int(v), 1])
    if len(runs) == 1:
        return runs[0][0]
    out: list[int | list[int]] = []
    for v, c in runs:
        # A pair costs len(v)+len(c)+3 characters, c singles cost c*(len(v)+1).
        if c > 1 and len(str(v)) + len(str(c)) + 3 < c * (len(str(v)) + 1):
            out.append([v, c])
        else:
            out.extend([v] * c)
    return out


def expand_ints(data: object, *, count: int | None = None) -> list[int]:
    """Inverse of ``compact_ints``. A bare integer needs ``count`` (it repeats ``count`` times).
    Raises ``ValueError`` with a readable message on anything else."""
    if isinstance(data, bool):
        raise ValueError("expected an integer or a list, got a boolean")
    if isinstance(data, int):
        if count is None:
            raise ValueError("a bare integer needs a count")
        return [data] * count
    if not isinstance(data, list):
        raise ValueError(f"expected an integer or a list, got {type(data).__name__}")
    out: list[int] = []
    for item in data:
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(item)
        elif (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
            and item[1] >= 1
        ):
            out.extend([item[0]] * item[1])
        else:
            raise ValueError(f"list items must be integers or [value, count] pairs, got {item!r}")
    if count is not None and len(out) != count:
        raise ValueError(f"holds {len(out)} values, expected {count}")
    return out


# --- PCM blobs -----------------------------------------------------------------------------------

CODECS = ("zlib",)


def crc_hex(pcm: bytes) -> str:
    return f"{zlib.crc32(pcm) & 0xFFFFFFFF:08x}"


def encode_blob(pcm: bytes, codec: str = "zlib", level: int = 6) -> bytes:
    if codec != "zlib":
        raise ValueError(f"unknown audio codec {codec!r} (known: {', '.join(CODECS)})")
    return zlib.compress(pcm, level)


def decode_blob(blob: bytes, codec: str = "zlib") -> bytes:
    """Raises ``ValueError`` when the blob does not decode."""
    if codec != "zlib":
        raise ValueError(f"unknown audio codec {codec!r} (known: {', '.join(CODECS)})")
    try:
        return zlib.decompress(blob)
    except zlib.error as exc:
        raise ValueError(f"audio blob does not decompress: {exc}") from None


@functools.lru_cache(maxsize=64)
def zeros(n_bytes: int) -> bytes:
    """``n_bytes`` of digital silence (what replay sends for elided audio)."""
    return bytes(n_bytes)


def concat(parts: Iterable[bytes]) -> bytes:
    return b"".join(parts)
