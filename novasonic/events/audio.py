"""Base64 LPCM payload helpers (protocol.md §1.4, §2.1): 16-bit little-endian mono PCM, no header."""

from __future__ import annotations

import base64
import binascii

from ..audio import pcm_ms as pcm_duration_ms

__all__ = ["pcm_to_b64", "b64_to_pcm", "pcm_duration_ms", "b64_decoded_len", "describe_b64_audio"]


def pcm_to_b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


def b64_to_pcm(content: str) -> bytes:
    """Decode base64 audio; raises ``ValueError`` with a clear message on bad input."""
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"audio content is not valid base64: {exc}") from None


def b64_decoded_len(content: str) -> int:
    """Length in bytes of the decoded payload, computed without decoding."""
    n = len(content)
    if n == 0:
        return 0
    pad = content.count("=", max(0, n - 2))
    return (n * 3) // 4 - pad


def describe_b64_audio(content: str, sample_rate: int | None) -> str:
    """Short repr of an audio payload: bytes and, when the rate is known, milliseconds."""
    n = b64_decoded_len(content)
    if sample_rate:
        return f"<{n} bytes, {pcm_duration_ms(n, sample_rate):.0f} ms @ {sample_rate} Hz>"
    return f"<{n} bytes>"
