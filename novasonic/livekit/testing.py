"""Offline audio I/O for a LiveKit ``AgentSession``: run an agent with no room and no LiveKit
server (tests, demos, batch runs). Used by ``make demo`` and the project's tests.

::

    mic, speaker = MicInput(speed=4.0), SpeakerOutput(playout_speed=4.0)
    session = AgentSession(llm=RealtimeModel(...), vad=None, aec_warmup_duration=None,
                           turn_handling={"turn_detection": "realtime_llm"})
    session.input.audio, session.output.audio = mic, speaker
    await session.start(agent)
    mic.play(pcm_16k, sample_rate=16000)          # the user says something
    ...
    speaker.write_wav("assistant.wav")

- ``MicInput`` (``livekit.agents.voice.io.AudioInput``): a live microphone. It streams silence
  all the time and plays the PCM given to ``play()`` — now, or at an audio position
  (``at_ms``: milliseconds of microphone audio since it started, e.g. to replay the user's side
  of a recorded conversation). Any input rate/channels; frames are sent at the mic's own rate.
  ``speed``: audio seconds per wall second (``math.inf``: as fast as taken). ``backlog``: a
  callable giving the audio the consumer has not sent yet (ms); the mic waits while it is above
  ``max_backlog_ms``, like a real-time microphone (``RealtimeSession.buffered_audio_ms`` fits).
- ``SpeakerOutput`` (``io.AudioOutput``): records what the agent plays, per segment, and reports
  playback finished or interrupted (``clear_buffer``) like a speaker: at once
  (``playout_speed=math.inf``) or at that many times real time, so an interruption cuts the
  segment where playback was. ``pcm()`` / ``write_wav()`` give what was heard.
- ``TranscriptOutput`` (``io.TextOutput``): records the agent's transcript.
- ``user_speech_segments(cassette, stream=0)``: where the user spoke in a recorded conversation
  (``(start_ms, end_ms)`` of input audio), to make the microphone speak at the same positions
  when the cassette is replayed.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

__all__ = ["MicInput", "SpeakerOutput", "TranscriptOutput", "Segment", "user_speech_segments"]


@dataclass(order=True)
class _Utterance:
    at_ms: float
    seq: int
    chunks: list[bytes] = field(compare=False)
    done: asyncio.Future[None] = field(compare=False)


class MicInput(io.AudioInput):
    def __init__(self, *, sample_rate: int = 48000, channels: int = 1, frame_ms: float = 20.0,
                 speed: float = math.inf, backlog: Callable[[], float] | None = None,
                 max_backlog_ms: float = 200.0, label: str = "novasonic-mic") -> None:
        super().__init__(label=label)
        if sample_rate <= 0 or channels <= 0 or frame_ms <= 0 or not speed > 0:
            raise ValueError("sample_rate, channels, frame_ms and speed must be positive")
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_ms = frame_ms
        self.speed = speed
        self.backlog = backlog
        self.max_backlog_ms = max_backlog_ms
        self._samples = int(sample_rate * frame_ms / 1000)
        self._frame_bytes = self._samples * 2 * channels
        self._silence = bytes(self._frame_bytes)
        self._scheduled: list[_Utterance] = []
        self._current: deque[bytes] = deque()
        self._current_done: asyncio.Future[None] | None = None
        self._seq = 0
        self._closed = False
        #: Microphone audio produced so far (ms) and how much of it was the played PCM.
        self.played_ms = 0.0
        self.speech_ms = 0.0

    # --- what the user says ------------------------------------------------------------------------

    def play(self, pcm: bytes, *, sample_rate: int | None = None, channels: int = 1,
             at_ms: float | None = None) -> asyncio.Future[None]:
        """Queue 16-bit PCM (``sample_rate`` defaults to the mic's; resampled and channel-mapped
        to the mic's format) to start at ``at_ms`` of mic audio (None: after what is queued).
        The future resolves once it has all been played."""
        rate = sample_rate or self.sample_rate
        data = np.frombuffer(pcm, dtype="<i2")
        if channels > 1:
            data = data.reshape(-1, channels).mean(axis=1).astype("<i2")
        if rate != self.sample_rate:
            resampler = rtc.AudioResampler(input_rate=rate, output_rate=self.sample_rate, num_channels=1)
            frame = rtc.AudioFrame(data=data.tobytes(), sample_rate=rate, num_channels=1,
                                   samples_per_channel=len(data))
            out = [*resampler.push(frame), *resampler.flush()]
            data = np.frombuffer(b"".join(bytes(f.data) for f in out), dtype="<i2")
        if self.channels > 1:
            data = np.repeat(data, self.channels)
        raw = data.astype("<i2").tobytes()
        step = self._frame_bytes
        chunks = [raw[i:i + step] for i in range(0, len(raw), step)] or [b""]
        chunks[-1] = chunks[-1] + bytes(step - len(chunks[-1]))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if at_ms is None:
            at_ms = max([self.played_ms, *(u.at_ms + len(u.chunks) * self.frame_ms for u in self._scheduled)])
        self._seq += 1
        bisect.insort(self._scheduled, _Utterance(at_ms, self._seq, chunks, done))
        return done

    @property
    def speaking(self) -> bool:
        return bool(self._current)

    @property
    def pending(self) -> bool:
        """True while queued or scheduled PCM has not all been played."""
        return bool(self._current or self._scheduled)

    def close(self) -> None:
        self._closed = True

    # --- AudioInput ---------------------------------------------------------------------------------

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        await asyncio.sleep(self.frame_ms / 1000 / self.speed if math.isfinite(self.speed) else 0)
        if self.backlog is not None:
            while not self._closed and self.backlog() > self.max_backlog_ms:
                await asyncio.sleep(0.002)
        if self._closed:
            raise StopAsyncIteration
        if not self._current and self._scheduled and self._scheduled[0].at_ms <= self.played_ms:
            utt = self._scheduled.pop(0)
            self._current.extend(utt.chunks)
            self._current_done = utt.done
        data = self._silence
        if self._current:
            data = self._current.popleft()
            self.speech_ms += self.frame_ms
            if not self._current and self._current_done is not None:
                if not self._current_done.done():
                    self._current_done.set_result(None)
                self._current_done = None
        self.played_ms += self.frame_ms
        return rtc.AudioFrame(data=data, sample_rate=self.sample_rate, num_channels=self.channels,
                              samples_per_channel=self._samples)


@dataclass
class Segment:
    """One playback segment (one assistant message as the framework played it)."""

    frames: list[rtc.AudioFrame] = field(default_factory=list)
    interrupted: bool = False
    #: Seconds played when the segment finished (less than ``duration`` when interrupted).
    position: float = 0.0

    @property
    def duration(self) -> float:
        return sum(f.duration for f in self.frames)

    @property
    def sample_rate(self) -> int | None:
        return self.frames[0].sample_rate if self.frames else None

    def pcm(self, *, played_only: bool = True) -> bytes:
        data = b"".join(bytes(f.data) for f in self.frames)
        if played_only and self.sample_rate and self.position < self.duration:
            data = data[: int(self.position * self.sample_rate) * 2]
        return data


class SpeakerOutput(io.AudioOutput):
    def __init__(self, *, playout_speed: float = math.inf, sample_rate: int | None = None,
                 label: str = "novasonic-speaker") -> None:
        super().__init__(label=label, capabilities=io.AudioOutputCapabilities(pause=False), sample_rate=sample_rate)
        if not playout_speed > 0:
            raise ValueError("playout_speed must be positive")
        self.playout_speed = playout_speed
        self.segments: list[Segment] = []
        self._current: Segment | None = None
        self._waiting: Segment | None = None
        self._started_at = 0.0
        self._timer: asyncio.Handle | None = None
        #: Called with every frame as it is captured (e.g. to print progress).
        self.on_frame: Callable[[rtc.AudioFrame], None] | None = None

    @property
    def frames(self) -> int:
        return sum(len(s.frames) for s in self.segments)

    @property
    def interrupted_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.interrupted]

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._current is None:
            self._current = Segment()
            self.segments.append(self._current)
            self._started_at = asyncio.get_running_loop().time()
            self.on_playback_started(created_at=self._started_at)
        self._current.frames.append(frame)
        if self.on_frame is not None:
            self.on_frame(frame)

    def _played(self, seg: Segment) -> float:
        if math.isinf(self.playout_speed):
            return seg.duration
        return min(seg.duration, (asyncio.get_running_loop().time() - self._started_at) * self.playout_speed)

    def flush(self) -> None:
        super().flush()
        seg, self._current = self._current, None
        if seg is None:
            return
        self._waiting = seg
        loop = asyncio.get_running_loop()
        left = 0.0 if math.isinf(self.playout_speed) else (seg.duration - self._played(seg)) / self.playout_speed
        self._timer = loop.call_later(max(0.0, left), self._finish, seg, False)

    def clear_buffer(self) -> None:
        seg = self._waiting
        if seg is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._finish(seg, True)

    def _finish(self, seg: Segment, interrupted: bool) -> None:
        if self._waiting is not seg:
            return
        self._waiting = None
        self._timer = None
        seg.position = self._played(seg)
        seg.interrupted = interrupted
        self.on_playback_finished(playback_position=seg.position, interrupted=interrupted)

    def pcm(self) -> tuple[bytes, int | None]:
        """Everything played so far, concatenated, and its sample rate."""
        segs = [s for s in self.segments if s.frames]
        rate = segs[0].sample_rate if segs else None
        return b"".join(s.pcm() for s in segs if s is not self._current), rate

    def write_wav(self, path: str | os.PathLike[str]) -> float:
        """Write what was played to a mono 16-bit WAV file; returns its duration in seconds."""
        pcm, rate = self.pcm()
        rate = rate or 24000
        with wave.open(os.fspath(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
        return len(pcm) / 2 / rate


class TranscriptOutput(io.TextOutput):
    def __init__(self, *, label: str = "novasonic-transcript") -> None:
        super().__init__(label=label, next_in_chain=None)
        self.text = ""
        self.segments: list[str] = []
        self.on_segment: Callable[[str], None] | None = None

    async def capture_text(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        if self.text:
            self.segments.append(self.text)
            if self.on_segment is not None:
                self.on_segment(self.text)
        self.text = ""


def user_speech_segments(cassette: str | os.PathLike[str], stream: int = 0) -> list[tuple[float, float]]:
    """``(start_ms, end_ms)`` of each user utterance in a cassette stream (input-audio time,
    adjacent speech segments joined)."""
    from ..cassette import AudioInRecord, load_cassette

    out: list[tuple[float, float]] = []
    for rec in load_cassette(cassette)[stream].records:
        if isinstance(rec, AudioInRecord) and rec.segments:
            for kind, start, end in rec.segments:
                if kind != "speech":
                    continue
                if out and abs(out[-1][1] - start) < 1e-6:
                    out[-1] = (out[-1][0], end)
                else:
                    out.append((start, end))
    return out
