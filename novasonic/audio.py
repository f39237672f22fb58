"""16-bit little-endian mono PCM facts shared by every layer (protocol.md §1.4, §2.1).

One place for the sample size, PCM durations, frame energy and the speech/silence thresholds, so
the rules, the cassette format and the fake server's VAD agree on what "speech" is.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BYTES_PER_SAMPLE",
    "pcm_ms",
    "frame_rms",
    "SILENCE_RMS",
    "VAD_THRESHOLD_RMS",
    "VAD_WINDOW_MS",
    "VAD_MIN_SPEECH_MS",
]

#: sampleSizeBits 16, channelCount 1, in and out (DOC D-N2-IN, D-OUT).
BYTES_PER_SAMPLE = 2

#: RMS (int16 units) below which a frame counts as silence (≈ -50 dBFS).
SILENCE_RMS = 100.0
#: Speech threshold: 3 × SILENCE_RMS (≈ -41 dBFS), above typical room/mic noise, far below speech.
VAD_THRESHOLD_RMS = 3 * SILENCE_RMS
#: Analysis window; every offset the service reported is a multiple of 40 ms (CAP OME).
VAD_WINDOW_MS = 40.0
#: Shortest voiced run that counts as speech (debounces clicks).
VAD_MIN_SPEECH_MS = 80.0


def pcm_ms(n_bytes: int, sample_rate_hertz: int) -> float:
    """Milliseconds of 16-bit mono PCM held in ``n_bytes`` at ``sample_rate_hertz``."""
    return n_bytes / BYTES_PER_SAMPLE / sample_rate_hertz * 1000.0


def frame_rms(pcm: bytes) -> float:
    """Root-mean-square amplitude of a PCM frame (0 for an empty frame)."""
    n = len(pcm) // BYTES_PER_SAMPLE
    if n == 0:
        return 0.0
    samples = np.frombuffer(pcm, dtype="<i2", count=n).astype(np.float32)
    # == np.mean(samples * samples) bit for bit (np.mean is np.add.reduce then a division; its
    # Python-level wrapper cost more than the arithmetic on a 32 ms frame).
    return float(np.sqrt(np.add.reduce(samples * samples) / n))
