"""Test-side helpers around ``novasonic.livekit.testing`` (the offline mic/speaker):
synthetic speech the fake server's VAD detects, and the user's speech positions of a cassette
(so a test can speak where the recorded user spoke)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fakeserver.audio import synth_speech
from novasonic.livekit.testing import MicInput, Segment, SpeakerOutput, TranscriptOutput, user_speech_segments

__all__ = ["MicInput", "SpeakerOutput", "TranscriptOutput", "Segment", "speak", "user_speech"]


def speak(mic: MicInput, ms: float, *, seed: int = 1, at_ms: float | None = None) -> asyncio.Future[None]:
    """The user says ``ms`` of synthetic speech (now, or at mic position ``at_ms``)."""
    return mic.play(synth_speech(ms, 16000, seed=seed), sample_rate=16000, at_ms=at_ms)


def user_speech(cassette: str | Path, stream: int = 0) -> list[tuple[float, float]]:
    """``(start_ms, end_ms)`` of each user utterance in a cassette stream (input-audio time)."""
    return user_speech_segments(cassette, stream)
