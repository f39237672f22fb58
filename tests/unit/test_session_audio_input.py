"""AudioInputPump: any rate / channel count → 16 kHz mono frames of 32 ms (livekit.rtc.AudioResampler)."""

from __future__ import annotations

import numpy as np
import pytest
from livekit import rtc

from fakeserver.audio import synth_speech
from novasonic.audio import frame_rms
from novasonic.session.audio_input import AudioInputPump, as_pcm


def stereo(pcm: bytes) -> bytes:
    return np.repeat(np.frombuffer(pcm, dtype="<i2"), 2).astype("<i2").tobytes()


def test_16k_mono_is_only_cut_into_1024_byte_frames() -> None:
    pump = AudioInputPump()
    pcm = synth_speech(100, 16000)  # 3200 bytes
    frames = pump.push(pcm)
    assert [len(f) for f in frames] == [1024, 1024, 1024]
    rest = pump.flush()
    assert [len(f) for f in rest] == [128]
    assert b"".join(frames + rest) == pcm


def test_48k_stereo_becomes_16k_mono_and_keeps_the_signal() -> None:
    pump = AudioInputPump()
    src = synth_speech(1000, 48000, seed=3)
    frames: list[bytes] = []
    for i in range(0, len(src), 960):  # 10 ms pieces, as a WebRTC track delivers them
        frames += pump.push(stereo(src[i:i + 960]), sample_rate=48000, num_channels=2)
    frames += pump.flush()
    assert all(len(f) == 1024 for f in frames[:-1])
    total = sum(len(f) for f in frames)
    assert abs(total - 32000) <= 1024  # 1 s at 16 kHz, 16-bit
    out = np.frombuffer(b"".join(frames), dtype="<i2")
    # same loudness as the source (downmix of identical channels, band-limited resampling)
    assert frame_rms(out.tobytes()) == pytest.approx(frame_rms(src), rel=0.1)


def test_audio_frame_objects_and_format_changes() -> None:
    pump = AudioInputPump()
    pcm24 = synth_speech(200, 24000)
    frame = rtc.AudioFrame(pcm24, 24000, 1, len(pcm24) // 2)
    out = pump.push(frame)
    out += pump.push(synth_speech(200, 16000))  # the 24 kHz resampler is flushed first
    out += pump.flush()
    assert abs(sum(len(f) for f in out) - 2 * 6400) <= 1024


@pytest.mark.parametrize(("data", "rate", "channels", "message"), [
    (b"\x00\x01\x02", 16000, 1, "whole number"),
    (b"\x00\x01", 16000, 2, "whole number"),
    (b"\x00\x01", 0, 1, "positive"),
])
def test_bad_input_is_refused_clearly(data: bytes, rate: int, channels: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_pcm(data, rate, channels)


def test_non_audio_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="PCM bytes or an AudioFrame"):
        as_pcm("hello", 16000, 1)
