"""PCM helpers for the fake server: frame energy, voice activity detection and synthetic speech.

16-bit little-endian mono PCM throughout (protocol.md §1.4).

Voice activity detection (``VoiceActivityDetector``)
----------------------------------------------------
An energy detector that stands in for the service's end-pointing. It cuts the audio into fixed
analysis windows (``window_ms``, default 40 ms) whatever the size of the client's frames, so the
same PCM gives the same transitions however it was chunked, at any clock speed. A window is
*voiced* when its RMS reaches ``threshold_rms``.

- speech **starts** at the first voiced window of a run of at least ``min_speech_ms`` voiced
  windows; it is *reported* (``SpeechStart.detected_ms``) at the end of that run;
- speech **ends** at the end of the last voiced window; the end is *detected* once
  ``endpoint_silence_ms`` of unvoiced windows followed it (``SpeechEnd.detected_ms``).

Why 40 ms windows and 480 ms: every offset the real service reported is a multiple of 40 ms, and
the delays from end of speech to detection in the captures are 1920→2400 (480 ms, OME-N1),
2480→2760 (280 ms, OME-TOOL) and 3080→3600 (520 ms, OME-PRE) (protocol.md §2.1). The documented
endpointing pauses (HIGH ≈1.5 s, MEDIUM ≈1.75 s, LOW ≈2 s, DOC D-TURN) are far longer than what
the service actually reports, so the defaults follow the captures: MEDIUM (and "not given") =
480 ms, HIGH = 320 ms, LOW = 640 ms. All three are configurable (``ENDPOINT_SILENCE_MS`` is only
the default mapping).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from novasonic.audio import SILENCE_RMS, VAD_MIN_SPEECH_MS, VAD_THRESHOLD_RMS, VAD_WINDOW_MS, frame_rms

__all__ = [
    "frame_rms",
    "SILENCE_RMS",
    "VAD_THRESHOLD_RMS",
    "VAD_WINDOW_MS",
    "VAD_MIN_SPEECH_MS",
    "DEFAULT_ENDPOINT_SILENCE_MS",
    "ENDPOINT_SILENCE_MS",
    "SpeechStart",
    "SpeechEnd",
    "VadEvent",
    "VoiceActivityDetector",
    "synth_speech",
    "silence",
    "noise",
    "pcm_samples",
]

# SILENCE_RMS, VAD_THRESHOLD_RMS (``synth_speech`` windows sit far above it), VAD_WINDOW_MS,
# VAD_MIN_SPEECH_MS and frame_rms live in ``novasonic.audio``, shared with the cassette format.
#: End-of-speech silence before the end-point is detected when no sensitivity is given (OME-N1).
DEFAULT_ENDPOINT_SILENCE_MS = 480.0
#: ``endpointingSensitivity`` → end-point silence (ms). See the module doc for the evidence.
ENDPOINT_SILENCE_MS: Mapping[str, float] = {"HIGH": 320.0, "MEDIUM": 480.0, "LOW": 640.0}




def pcm_samples(duration_ms: float, sample_rate: int) -> int:
    """Whole samples in ``duration_ms`` at ``sample_rate`` (rounded)."""
    return int(round(duration_ms * sample_rate / 1000.0))


# --- voice activity detection ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech began at ``start_ms`` (start of the first voiced window); known at ``detected_ms``."""

    start_ms: float
    detected_ms: float


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Speech that began at ``start_ms`` ended at ``end_ms`` (end of the last voiced window); the
    end-point was detected at ``detected_ms``. ``flushed``: detected because the audio ended
    (``flush``), not after the end-point silence."""

    start_ms: float
    end_ms: float
    detected_ms: float
    flushed: bool = False


VadEvent = SpeechStart | SpeechEnd


class VoiceActivityDetector:
    """Energy VAD over fixed windows; deterministic for the same PCM (see the module doc).

    ``feed(pcm, sample_rate, at_ms)`` takes one client frame; ``at_ms`` is the audio time of the
    frame's first sample (``None``: right after the previous frame). A jump in ``at_ms`` or a new
    sample rate drops the incomplete window (the missing audio counts as nothing, not silence).
    Times are in ms of input audio.
    """

    def __init__(
        self,
        threshold_rms: float = VAD_THRESHOLD_RMS,
        min_speech_ms: float = VAD_MIN_SPEECH_MS,
        endpoint_silence_ms: float = DEFAULT_ENDPOINT_SILENCE_MS,
        *,
        window_ms: float = VAD_WINDOW_MS,
    ) -> None:
        if not window_ms > 0:
            raise ValueError(f"window_ms must be > 0 (got {window_ms!r})")
        if threshold_rms < 0 or min_speech_ms < 0 or endpoint_silence_ms < 0:
            raise ValueError("threshold_rms, min_speech_ms and endpoint_silence_ms must be >= 0")
        self.threshold_rms = float(threshold_rms)
        self.min_speech_ms = float(min_speech_ms)
        self.endpoint_silence_ms = float(endpoint_silence_ms)
        self.window_ms = float(window_ms)
        self._min_windows = max(1, math.ceil(self.min_speech_ms / self.window_ms - 1e-9))
        self._endpoint_windows = max(1, math.ceil(self.endpoint_silence_ms / self.window_ms - 1e-9))
        self.reset()

    @classmethod
    def for_sensitivity(
        cls,
        sensitivity: str | None,
        *,
        endpoint_silence_ms: Mapping[str, float] | None = None,
        default_endpoint_silence_ms: float = DEFAULT_ENDPOINT_SILENCE_MS,
        threshold_rms: float = VAD_THRESHOLD_RMS,
        min_speech_ms: float = VAD_MIN_SPEECH_MS,
        window_ms: float = VAD_WINDOW_MS,
    ) -> VoiceActivityDetector:
        """A detector whose end-point silence follows ``endpointingSensitivity`` (HIGH/MEDIUM/LOW)."""
        table = ENDPOINT_SILENCE_MS if endpoint_silence_ms is None else endpoint_silence_ms
        silence_ms = table.get(str(sensitivity).upper(), default_endpoint_silence_ms) if sensitivity else (
            default_endpoint_silence_ms
        )
        return cls(threshold_rms, min_speech_ms, silence_ms, window_ms=window_ms)

    def reset(self, at_ms: float = 0.0) -> None:
        """Forget everything; the next window starts at ``at_ms``."""
        self._rate: int | None = None
        self._buf = np.zeros(0, dtype=np.int16)
        self._t_ms = float(at_ms)  # audio time of self._buf[0]
        self._in_speech = False
        self._run_start_ms: float | None = None  # first window of the current voiced run (not yet speech)
        self._run_windows = 0
        self._speech_start_ms: float | None = None
        self._last_voiced_end_ms: float | None = None
        self._silent_windows = 0

    # --- views -----------------------------------------------------------------------------------

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def speech_start_ms(self) -> float | None:
        """Start of the utterance in progress, or None."""
        return self._speech_start_ms if self._in_speech else None

    @property
    def analysed_ms(self) -> float:
        """Audio time up to which windows were analysed."""
        return self._t_ms

    # --- feeding ---------------------------------------------------------------------------------

    def feed(self, pcm: bytes, sample_rate: int = 16000, at_ms: float | None = None) -> list[VadEvent]:
        """Analyse one frame; return the transitions it completes, in time order."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0 (got {sample_rate!r})")
        if self._rate != sample_rate:
            self._buf = np.zeros(0, dtype=np.int16)
            if at_ms is None:
                at_ms = self._t_ms
            self._rate = sample_rate
        expected = self._t_ms + len(self._buf) * 1000.0 / sample_rate
        if at_ms is not None and abs(at_ms - expected) > 0.5:
            self._buf = np.zeros(0, dtype=np.int16)
            self._t_ms = float(at_ms)
        n = len(pcm) // 2
        samples = np.frombuffer(pcm, dtype="<i2", count=n)
        self._buf = np.concatenate([self._buf, samples]) if len(self._buf) else samples.copy()
        win = max(1, int(round(sample_rate * self.window_ms / 1000.0)))
        win_ms = win * 1000.0 / sample_rate
        out: list[VadEvent] = []
        n_windows = len(self._buf) // win
        if n_windows:
            frames = self._buf[: n_windows * win].astype(np.float64).reshape(n_windows, win)
            # == np.mean(frames * frames, axis=1) bit for bit, without np.mean's wrapper cost.
            rms = np.sqrt(np.add.reduce(frames * frames, axis=1) / win)
            for value in rms:
                start = self._t_ms
                self._t_ms = start + win_ms
                ev = self._window(start, self._t_ms, bool(value >= self.threshold_rms))
                if ev is not None:
                    out.append(ev)
            self._buf = self._buf[n_windows * win :]
        return out

    def flush(self) -> list[VadEvent]:
        """The audio ended (block closed): end an utterance in progress now. A voiced run too short
        to be speech and the incomplete window are dropped."""
        out: list[VadEvent] = []
        if self._in_speech:
            assert self._speech_start_ms is not None and self._last_voiced_end_ms is not None
            out.append(SpeechEnd(self._speech_start_ms, self._last_voiced_end_ms, self._t_ms, flushed=True))
        rate = self._rate
        t = self._t_ms
        self.reset(t)
        self._rate = rate
        return out

    def _window(self, start: float, end: float, voiced: bool) -> VadEvent | None:
        if not self._in_speech:
            if not voiced:
                self._run_start_ms, self._run_windows = None, 0
                return None
            if self._run_start_ms is None:
                self._run_start_ms = start
            self._run_windows += 1
            if self._run_windows >= self._min_windows:
                self._in_speech = True
                self._speech_start_ms = self._run_start_ms
                self._last_voiced_end_ms = end
                self._silent_windows = 0
                self._run_start_ms, self._run_windows = None, 0
                return SpeechStart(self._speech_start_ms, end)
            return None
        if voiced:
            self._last_voiced_end_ms = end
            self._silent_windows = 0
            return None
        self._silent_windows += 1
        if self._silent_windows >= self._endpoint_windows:
            assert self._speech_start_ms is not None and self._last_voiced_end_ms is not None
            ev = SpeechEnd(self._speech_start_ms, self._last_voiced_end_ms, end)
            self._in_speech = False
            self._speech_start_ms = None
            self._last_voiced_end_ms = None
            self._silent_windows = 0
            return ev
        return None

    def __repr__(self) -> str:
        return (
            f"VoiceActivityDetector(threshold_rms={self.threshold_rms:g}, min_speech_ms={self.min_speech_ms:g}, "
            f"endpoint_silence_ms={self.endpoint_silence_ms:g}, window_ms={self.window_ms:g})"
        )


# --- synthetic audio -----------------------------------------------------------------------------------


def silence(duration_ms: float, sample_rate: int = 16000) -> bytes:
    """``duration_ms`` of digital silence."""
    return bytes(2 * pcm_samples(duration_ms, sample_rate))


def noise(duration_ms: float, sample_rate: int = 16000, *, rms: float = 30.0, seed: int = 0) -> bytes:
    """Deterministic white noise at about ``rms`` (default well under the VAD threshold)."""
    n = pcm_samples(duration_ms, sample_rate)
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, rms, n)
    return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()


_HARMONICS = 6
_FADE_MS = 10.0


def synth_speech(duration_ms: float, sample_rate: int = 16000, seed: int = 0, *, amplitude: float = 8000.0) -> bytes:
    """Deterministic voice-like PCM: exactly ``pcm_samples(duration_ms, sample_rate)`` samples.

    A harmonic tone (f0 100–200 Hz by ``seed``, 6 harmonics with 1/k amplitudes, a slow pitch
    contour) under a syllable-rate envelope (3.5–5.5 Hz, never below 45 % so no 40 ms window drops
    toward silence), with 10 ms fades at the ends. Peak ≤ ``amplitude``; with the default every
    40 ms window has an RMS above 1000, far above ``VAD_THRESHOLD_RMS``. Same arguments → same bytes.
    """
    n = pcm_samples(duration_ms, sample_rate)
    if n <= 0:
        return b""
    rng = np.random.default_rng(seed)
    f0 = rng.uniform(100.0, 200.0)
    contour_hz = rng.uniform(0.5, 1.5)
    contour_phase = rng.uniform(0.0, 2 * np.pi)
    syllable_hz = rng.uniform(3.5, 5.5)
    syllable_phase = rng.uniform(0.0, np.pi)
    phases = rng.uniform(0.0, 2 * np.pi, _HARMONICS)

    t = np.arange(n, dtype=np.float64) / sample_rate
    inst_f = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * contour_hz * t + contour_phase))
    phase = 2 * np.pi * np.cumsum(inst_f) / sample_rate
    weights = 1.0 / np.arange(1, _HARMONICS + 1)
    tone = np.zeros(n, dtype=np.float64)
    for k in range(1, _HARMONICS + 1):
        if k * f0 * 1.1 < sample_rate / 2:
            tone += weights[k - 1] * np.sin(k * phase + phases[k - 1])
    tone /= weights.sum()
    env = 0.45 + 0.55 * np.sin(np.pi * syllable_hz * t + syllable_phase) ** 2
    fade = min(n // 2, pcm_samples(_FADE_MS, sample_rate))
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        env[:fade] *= ramp
        env[n - fade :] *= ramp[::-1]
    pcm = np.round(tone * env * amplitude)
    return np.clip(pcm, -32768, 32767).astype("<i2").tobytes()
