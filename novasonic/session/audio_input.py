"""Microphone audio in any format → 16 kHz mono 16-bit PCM frames of ``frame_ms`` (32 ms = 1024
bytes, the recommended size, protocol.md §1.4).

Channels are averaged to mono (numpy), the rate is converted with ``livekit.rtc.AudioResampler``
(a streaming resampler: its state carries across pushes, so frame boundaries leave no clicks),
and the result is cut into fixed frames; a partial frame waits for the next push (``flush()``
returns it, e.g. at close). A change of input format flushes the previous resampler first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from livekit import rtc

from ..audio import BYTES_PER_SAMPLE

__all__ = ["AudioInputPump", "INPUT_SAMPLE_RATE", "as_pcm"]

#: The rate every session sends (the documented input rate; Nova Sonic 1 samples only use it).
INPUT_SAMPLE_RATE = 16000


def as_pcm(audio: Any, sample_rate: int | None, num_channels: int | None) -> tuple[bytes, int, int]:
    """``(pcm, rate, channels)`` from bytes-like audio or an ``rtc.AudioFrame``-like object."""
    if hasattr(audio, "data") and hasattr(audio, "sample_rate") and hasattr(audio, "num_channels"):
        data = bytes(memoryview(audio.data).cast("B"))
        rate, channels = int(audio.sample_rate), int(audio.num_channels)
    elif isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        rate = INPUT_SAMPLE_RATE if sample_rate is None else int(sample_rate)
        channels = 1 if num_channels is None else int(num_channels)
    else:
        raise TypeError(f"audio must be PCM bytes or an AudioFrame-like object, got {type(audio).__name__}")
    if rate <= 0 or channels <= 0:
        raise ValueError(f"sample_rate and num_channels must be positive (got {rate}, {channels})")
    if len(data) % (BYTES_PER_SAMPLE * channels):
        raise ValueError(
            f"{len(data)} bytes is not a whole number of 16-bit samples for {channels} channel(s)"
        )
    return data, rate, channels


class AudioInputPump:
    def __init__(self, *, frame_ms: float = 32.0, output_rate: int = INPUT_SAMPLE_RATE) -> None:
        self.output_rate = output_rate
        self.set_frame_ms(frame_ms)
        self._format: tuple[int, int] | None = None
        self._resampler: rtc.AudioResampler | None = None
        self._pending = bytearray()
        self.bytes_in = 0
        self.frames_out = 0

    def set_frame_ms(self, frame_ms: float) -> None:
        """Cut the following frames to ``frame_ms``; what waits and the resampler state are kept
        (no short frame, no restarted filter)."""
        self.frame_bytes = max(BYTES_PER_SAMPLE, int(self.output_rate * frame_ms / 1000) * BYTES_PER_SAMPLE)

    def push(self, audio: Any, sample_rate: int | None = None, num_channels: int | None = None) -> list[bytes]:
        """Take audio, return the whole frames now ready."""
        data, rate, channels = as_pcm(audio, sample_rate, num_channels)
        self.bytes_in += len(data)
        if self._format != (rate, channels):
            self._drain_resampler()
            self._format = (rate, channels)
            self._resampler = None if rate == self.output_rate else rtc.AudioResampler(
                rate, self.output_rate, num_channels=1, quality=rtc.AudioResamplerQuality.HIGH
            )
        mono = self._downmix(data, channels)
        if self._resampler is None:
            self._pending.extend(mono)
        elif mono:
            for frame in self._resampler.push(bytearray(mono)):
                self._pending.extend(bytes(memoryview(frame.data).cast("B")))
        return self._frames()

    def flush(self) -> list[bytes]:
        """Everything left: whole frames and a final shorter one."""
        self._drain_resampler()
        frames = self._frames()
        if self._pending:
            frames.append(bytes(self._pending))
            self._pending.clear()
            self.frames_out += 1
        return frames

    def _drain_resampler(self) -> None:
        if self._resampler is not None:
            for frame in self._resampler.flush():
                self._pending.extend(bytes(memoryview(frame.data).cast("B")))
            self._resampler = None
            self._format = None

    @staticmethod
    def _downmix(data: bytes, channels: int) -> bytes:
        if channels == 1 or not data:
            return data
        samples = np.frombuffer(data, dtype="<i2").reshape(-1, channels).astype(np.int32)
        return samples.mean(axis=1).round().astype("<i2").tobytes()

    def _frames(self) -> list[bytes]:
        out = []
        n = self.frame_bytes
        while len(self._pending) >= n:
            out.append(bytes(self._pending[:n]))
            del self._pending[:n]
        self.frames_out += len(out)
        return out
