"""``nova-cassette audio``: a cassette's kept audio → WAV files (stdlib ``wave``).

One WAV per audio *block*: the user's audio of one AUDIO content block (its ``audio_in`` records,
grouped by ``contentName``) and the assistant's audio of one AUDIO block (its ``audio_out``
records, grouped by ``contentId``), in order of first appearance in the stream. Files are named
``s<stream>-<who>-<NN>.wav`` (``s0-assistant-01.wav``): 16-bit mono PCM at the block's rate,
exactly the stored PCM (read with its CRC checked).

Audio that a cassette does not keep (the default: user audio as speech/silence segments only,
assistant audio elided to sizes and timing) is reported, never invented: one line per block
says what was recorded (duration, rate, speech segments) and that the audio was not kept.
Decision: ``--synthesize`` writes a *placeholder* of the recorded length for such blocks,
digital silence (what replay sends for elided audio), named ``…-silence.wav`` so nobody mistakes
it for the recording. A block whose records are only partly kept (possible in a cassette built
from pieces) is written with silence where the audio is missing, and says so.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from novasonic.cassette import AudioInRecord, AudioOutRecord, Cassette, CassetteStream

__all__ = ["Who", "AudioBlock", "ExportResult", "audio_blocks", "export_audio", "write_wav"]

Who = Literal["user", "assistant"]


@dataclass
class AudioBlock:
    """The audio records of one content block of one stream, in order."""

    stream: CassetteStream
    who: Who
    number: int
    """1-based, per stream and side, in order of first appearance."""
    name: str
    """The block's contentName (user) or contentId (assistant), as recorded."""
    records: list[AudioInRecord | AudioOutRecord] = field(default_factory=list)

    @property
    def sample_rates(self) -> set[int]:
        return {r.sample_rate for r in self.records}

    @property
    def sample_rate(self) -> int:
        return self.records[0].sample_rate

    @property
    def n_bytes(self) -> int:
        return sum(r.n_bytes for r in self.records)

    @property
    def duration_ms(self) -> float:
        return sum(r.duration_ms for r in self.records)

    @property
    def kept(self) -> Literal["all", "none", "partial"]:
        kept = [r.pcm is not None for r in self.records]
        return "all" if all(kept) else ("none" if not any(kept) else "partial")

    @property
    def speech(self) -> list[tuple[float, float]] | None:
        """User speech segments (audio ms) when every record has them, else None."""
        out: list[tuple[float, float]] = []
        for r in self.records:
            if not isinstance(r, AudioInRecord) or r.segments is None:
                return None
            for kind, s, e in r.segments:
                if kind == "speech":
                    if out and abs(out[-1][1] - s) < 1e-6:
                        out[-1] = (out[-1][0], e)
                    else:
                        out.append((s, e))
        return out

    @property
    def label(self) -> str:
        return f"stream {self.stream.index} {self.who} block {self.number}"

    def filename(self, *, placeholder: bool = False) -> str:
        return f"s{self.stream.index}-{self.who}-{self.number:02d}" + ("-silence" if placeholder else "") + ".wav"

    def pcm(self) -> tuple[bytes, float]:
        """The block's PCM and the milliseconds of it that were filled with silence (not kept).
        Raises ``CassetteAudioError`` when kept audio cannot be read back (CRC, sidecar)."""
        parts: list[bytes] = []
        filled = 0.0
        for r in self.records:
            if r.pcm is None:
                filled += r.duration_ms
            parts.append(self.stream.pcm(r))  # the kept audio, or silence of the recorded length
        return b"".join(parts), filled


@dataclass(frozen=True)
class ExportResult:
    block: AudioBlock
    status: Literal["written", "placeholder", "partial", "not-kept", "skipped"]
    path: Path | None
    message: str


def audio_blocks(cassette: Cassette, *, streams: Iterable[int] | None = None,
                 who: Iterable[Who] = ("user", "assistant")) -> list[AudioBlock]:
    """The audio blocks of the chosen streams and sides, stream by stream, user before assistant."""
    wanted = set(who)
    out: list[AudioBlock] = []
    for stream in cassette.streams:
        if streams is not None and stream.index not in set(streams):
            continue
        for side in ("user", "assistant"):
            if side not in wanted:
                continue
            blocks: dict[str, AudioBlock] = {}
            for r in stream.records:
                if side == "user" and isinstance(r, AudioInRecord):
                    name = r.template.content_name
                elif side == "assistant" and isinstance(r, AudioOutRecord):
                    name = r.template.content_id
                else:
                    continue
                if name not in blocks:
                    blocks[name] = AudioBlock(stream, side, len(blocks) + 1, name)  # type: ignore[arg-type]
                blocks[name].records.append(r)
            out.extend(blocks.values())
    return out


def write_wav(path: Path, pcm: bytes, sample_rate: int) -> None:
    """16-bit little-endian mono PCM → ``path`` (RIFF/WAVE, via the stdlib ``wave`` module)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)


def _fmt_ms(ms: float) -> str:
    return f"{ms:.1f} ms"


def export_audio(cassette: Cassette, out_dir: Path, *, streams: Iterable[int] | None = None,
                 who: Iterable[Who] = ("user", "assistant"), synthesize: bool = False) -> list[ExportResult]:
    """Write the WAV files (see the module doc); one ``ExportResult`` per block, in order."""
    policy = cassette.header.audio
    results: list[ExportResult] = []
    for block in audio_blocks(cassette, streams=streams, who=who):
        what = f"{_fmt_ms(block.duration_ms)} at {block.sample_rate} Hz"
        if len(block.sample_rates) > 1:
            rates = ", ".join(str(x) for x in sorted(block.sample_rates))
            results.append(ExportResult(block, "skipped", None,
                                        f"{block.label}: records at different sample rates ({rates} Hz); not written"))
            continue
        kept = block.kept
        if kept == "none" and not synthesize:
            mode = policy.user if block.who == "user" else policy.assistant
            detail = {"segments": "user audio stored as speech/silence segments only",
                      "elided": "assistant audio elided to sizes and timing"}.get(
                mode, f"this block's audio was not recorded, although the header says {mode}")
            speech = block.speech
            if block.who == "user" and speech is not None:
                detail += "; speech at " + (", ".join(f"{s:g}–{e:g} ms" for s, e in speech) if speech else "none")
            results.append(ExportResult(
                block, "not-kept", None,
                f"{block.label}: {what} recorded, but the audio is not in this cassette ({detail}); "
                f"not written (--synthesize writes silence of that length)"))
            continue
        pcm, filled = block.pcm()
        path = out_dir / block.filename(placeholder=kept == "none")
        write_wav(path, pcm, block.sample_rate)
        if kept == "none":
            status, note = "placeholder", "silence: the audio is not in this cassette"
        elif kept == "partial":
            status, note = "partial", f"{_fmt_ms(filled)} not kept, written as silence"
        else:
            n = sum(r.n_frames if isinstance(r, AudioInRecord) else r.n_chunks for r in block.records)
            status, note = "written", f"{n} {'frames' if block.who == 'user' else 'chunks'}"
        results.append(ExportResult(block, status, path, f"wrote {path}  {what} ({note})"))  # type: ignore[arg-type]
    return results
