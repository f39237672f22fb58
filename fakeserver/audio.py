"""PCM helpers for the fake server: frame energy (speech vs silence) and synthetic speech.

16-bit little-endian mono PCM throughout (protocol.md §1.4).
"""

from __future__ import annotations

import numpy as np

__all__ = ["frame_rms", "SILENCE_RMS"]

#: RMS (int16 units) below which a frame counts as silence (≈ -50 dBFS). Configurable per responder.
SILENCE_RMS = 100.0


def frame_rms(pcm: bytes) -> float:
    """Root-mean-square amplitude of a PCM frame (0 for an empty frame)."""
    n = len(pcm) // 2
    if n == 0:
        return 0.0
    samples = np.frombuffer(pcm, dtype="<i2", count=n).astype(np.float32)
    return float(np.sqrt(np.mean(samples * samples)))
