"""``nova-cassette audio`` as a real subprocess: WAV files equal to the stored PCM, with the
recorded duration; elided audio reported, not invented; ``--synthesize`` placeholders."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from novasonic.cassette import AudioInRecord, AudioOutRecord, load_cassette
from tests.cli.cassettes import IN_RATE, KEEP_AUDIO, OUT_RATE, assistant_chunk, run, speech_frame, write_conversation
from tests.cli.conftest import Recorded


def read_wav(path: Path) -> tuple[int, int, int, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.readframes(w.getnframes())


def stored_blocks(path: Path) -> dict[str, tuple[int, float, bytes]]:
    """File name the CLI must write → (rate, duration ms, PCM) read through the cassette API."""
    c = load_cassette(path, validate=False)
    out: dict[str, tuple[int, float, bytes]] = {}
    for s in c:
        for who, kind, key in (("user", AudioInRecord, "content_name"), ("assistant", AudioOutRecord, "content_id")):
            names: list[str] = []
            for r in s.records:
                if isinstance(r, kind):
                    name = getattr(r.template, key)
                    if name not in names:
                        names.append(name)
            for i, name in enumerate(names, start=1):
                recs = [r for r in s.records if isinstance(r, kind) and getattr(r.template, key) == name]
                assert all(r.pcm is not None for r in recs)
                out[f"s{s.index}-{who}-{i:02d}.wav"] = (recs[0].sample_rate, sum(r.duration_ms for r in recs),
                                                         b"".join(s.pcm(r) for r in recs))
    return out


def test_kept_audio_becomes_wav_files_equal_to_the_stored_pcm(tmp_path: Path) -> None:
    cassette = write_conversation(tmp_path / "kept.jsonl", options=KEEP_AUDIO)
    out = tmp_path / "wav"
    r = run("audio", cassette, "--out", out, script=True)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = stored_blocks(cassette)
    assert sorted(p.name for p in out.iterdir()) == sorted(expected) == [
        "s0-assistant-01.wav", "s0-assistant-02.wav", "s0-user-01.wav"]
    for name, (rate, ms, pcm) in expected.items():
        channels, width, wav_rate, frames = read_wav(out / name)
        assert (channels, width, wav_rate) == (1, 2, rate)
        assert frames == pcm and len(frames) / 2 / wav_rate * 1000 == pytest.approx(ms)
        assert any(frames)  # real audio, not silence
    # what the writer was given, independently of the cassette API
    _, _, _, assistant = read_wav(out / "s0-assistant-01.wav")
    assert assistant == b"".join(assistant_chunk(k) for k in range(8))
    _, _, _, user = read_wav(out / "s0-user-01.wav")
    assert user[10 * 1024: 35 * 1024] == b"".join(speech_frame(k) for k in range(10, 35))
    assert (IN_RATE, OUT_RATE) == (read_wav(out / "s0-user-01.wav")[2], read_wav(out / "s0-assistant-02.wav")[2])
    assert f"wrote {out / 's0-assistant-01.wav'}  320.0 ms at 24000 Hz (8 chunks)" in r.stdout
    assert r.stdout.rstrip().endswith(f"3 WAV file(s) written to {out}")

    # --who and --stream choose
    only = tmp_path / "only"
    r = run("audio", cassette, "--out", only, "--who", "assistant", "--stream", "0")
    assert r.returncode == 0 and sorted(p.name for p in only.iterdir()) == ["s0-assistant-01.wav", "s0-assistant-02.wav"]


def test_recorded_session_audio_equals_what_was_sent_and_received(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "wav"
    r = run("audio", recorded.path, "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    expected = stored_blocks(recorded.path)
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name, (rate, ms, pcm) in expected.items():
        _, _, wav_rate, frames = read_wav(out / name)
        assert wav_rate == rate and frames == pcm
        assert len(frames) / 2 / rate * 1000 == pytest.approx(ms)
    # the assistant's WAVs are the audio the stock client received, block by block
    received = [bytes(b.audio) for b in recorded.result.blocks if b.type == "AUDIO"]
    written = [read_wav(out / n)[3] for n in sorted(expected) if "-assistant-" in n]
    assert len(received) >= 3 and written == received


def test_elided_audio_is_reported_not_invented(tmp_path: Path) -> None:
    cassette = write_conversation(tmp_path / "default.jsonl")  # default options: nothing kept
    out = tmp_path / "wav"
    r = run("audio", cassette, "--out", out)
    assert r.returncode == 1, r.stdout + r.stderr
    assert list(out.iterdir()) == []
    lines = r.stdout.splitlines()
    assert lines[0] == ("stream 0 user block 1: 3200.0 ms at 16000 Hz recorded, but the audio is not in this cassette "
                        "(user audio stored as speech/silence segments only; speech at 320–1120 ms, 1920–2880 ms); "
                        "not written (--synthesize writes silence of that length)")
    assert lines[1].startswith("stream 0 assistant block 1: 320.0 ms at 24000 Hz recorded, but the audio is not in "
                               "this cassette (assistant audio elided to sizes and timing)")
    assert lines[-1].startswith(f"no WAV written: {cassette} does not keep the user and assistant audio")
    assert r.stderr == ""

    r = run("audio", cassette, "--out", out, "--synthesize", "--who", "assistant")
    assert r.returncode == 0, r.stdout + r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["s0-assistant-01-silence.wav", "s0-assistant-02-silence.wav"]
    _, _, rate, frames = read_wav(out / names[0])
    assert rate == OUT_RATE and frames == bytes(len(frames)) and len(frames) == 8 * 1920
    assert r.stdout.rstrip().endswith("(2 silent placeholder(s))")


def test_a_stream_without_audio_and_bad_requests(tmp_path: Path) -> None:
    cassette = write_conversation(tmp_path / "kept.jsonl", options=KEEP_AUDIO)
    r = run("audio", cassette, "--out", tmp_path / "s1", "--stream", "1")  # the throttled stream: no audio at all
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stdout.strip() == f"no user and assistant audio in stream 1 of {cassette}; nothing written"
    r = run("audio", cassette, "--out", tmp_path / "x", "--stream", "7")
    assert r.returncode == 2 and "there is no stream 7 (the cassette has 2 stream(s), numbered 0-1)" in r.stderr
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    r = run("audio", cassette, "--out", not_dir)
    assert r.returncode == 2 and "exists and is not a directory" in r.stderr
    r = run("audio", cassette)
    assert r.returncode == 2 and "--out" in r.stderr


def test_corrupt_sidecar_is_one_error_line_naming_the_record(tmp_path: Path) -> None:
    cassette = write_conversation(tmp_path / "kept.jsonl", options=KEEP_AUDIO)
    sidecar = tmp_path / "kept.audio"
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    r = run("audio", cassette, "--out", tmp_path / "wav", "--who", "assistant")
    assert r.returncode == 2, r.stdout + r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"nova-cassette: error: {cassette}:") and "Traceback" not in r.stderr
    assert "CRC" in line or "decompress" in line
    sidecar.unlink()
    r = run("audio", cassette, "--out", tmp_path / "wav")
    assert r.returncode == 2 and "kept.audio" in r.stderr and len(r.stderr.splitlines()) == 1
