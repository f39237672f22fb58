"""Cassettes for the CLI and diff tests, written with ``CassetteWriter`` from typed events, and
``run``, which runs ``nova-cassette`` as a real subprocess.

``write_conversation(path, Variant(...))`` writes one scripted conversation. ``Variant`` changes
what a semantic diff must ignore (every id and name, the times, how audio runs are cut, a few
more frames of microphone silence) or what it must find (the user's transcript, a missing tool
call, an extra stream, the voice):

stream 0  sessionStart, promptStart (tool getWeather), SYSTEM block, the microphone block;
          320 ms of silence, 800 ms of speech (a 220 Hz tone, RMS well above the segmenter's
          threshold), silence; userSpeechStart/End, the USER transcript, a tool call getWeather
          answered by a toolResult, SPECULATIVE text, assistant audio (a 440 Hz tone, a usage
          event after chunk 3), FINAL text, completionEnd; then a second turn that the user
          interrupts (barge-in marker, INTERRUPTED); the client closes (end-input), completed
stream 1  sessionStart, then throttlingException
stream 2  (``extra_stream``) sessionStart, promptStart, then serviceUnavailableException
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from novasonic.cassette import CassetteHeader, CassetteWriter, WriterOptions
from novasonic.events import (
    BARGE_IN_TEXT,
    AudioInput,
    AudioOutput,
    CompletionEnd,
    CompletionStart,
    UserSpeechEnd,
    UserSpeechStart,
)
from novasonic.models import NOVA_2_SONIC
from tests.helpers import factories as f

USER_1 = "what's the weather in paris"
REPLY_1 = "Clear skies, 21 degrees."
USER_2 = "tell me a long story"
REPLY_2 = "Once upon a time there was a dragon"
EXCEPTION_MESSAGE = "Too many requests, please wait before trying again."

IN_RATE = 16000
OUT_RATE = 24000
FRAME_BYTES = 1024  # 32 ms at 16 kHz
CHUNK_BYTES = 1920  # 40 ms at 24 kHz


def tone(n_bytes: int, freq: float, rate: int, amplitude: int, phase0: int = 0) -> bytes:
    """16-bit mono sine PCM (deterministic, non-silent)."""
    n = n_bytes // 2
    return struct.pack(f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * freq * (phase0 + i) / rate))
                                   for i in range(n)))


SILENT_FRAME = bytes(FRAME_BYTES)


def speech_frame(k: int) -> bytes:
    return tone(FRAME_BYTES, 220.0, IN_RATE, 6000, phase0=k * (FRAME_BYTES // 2))


def assistant_chunk(k: int, n_bytes: int = CHUNK_BYTES) -> bytes:
    return tone(n_bytes, 440.0, OUT_RATE, 4000, phase0=k * (CHUNK_BYTES // 2))


@dataclass(frozen=True)
class Variant:
    ids: str = "a"
    """Suffix of every id and name (promptName, contentName, sessionId, completionId, contentId, toolUseId)."""
    t_scale: float = 1.0
    t_offset: float = 0.0
    user_text: str = USER_1
    reply_text: str = REPLY_1
    tool_call: bool = True
    extra_stream: bool = False
    flush_often: bool = False
    """Flush after every microphone frame (audio_in records cut at every frame)."""
    extra_silence_frames: int = 0
    voice: str = "matthew"


def write_conversation(path: Path, variant: Variant = Variant(), options: WriterOptions | None = None) -> Path:
    v = variant
    header = CassetteHeader(model_id=NOVA_2_SONIC, voice=v.voice, region="us-east-1", source="scripted",
                            meta={"test": "cli"})
    prompt, sys_name, mic_name, result_name = f"p-{v.ids}", f"sys-{v.ids}", f"mic-{v.ids}", f"r1-{v.ids}"
    ids = {"prompt_name": prompt, "session_id": f"s-{v.ids}", "completion_id": f"c-{v.ids}"}
    tool_use_id = f"tu-{v.ids}"

    def cid(name: str) -> str:
        return f"{name}-{v.ids}"

    with CassetteWriter(path, header, options or WriterOptions()) as w:
        clock = [0.0]
        frames = [0]

        def tick(dt: float) -> float:
            clock[0] += dt
            return v.t_offset + clock[0] * v.t_scale

        def client(*events: Any, stream: int = 0) -> None:
            for ev in events:
                w.write_client(stream, tick(0.001), None, ev)

        def server(*events: Any, stream: int = 0) -> None:
            for ev in events:
                w.write_server(stream, tick(0.001), None, ev)

        def mic(n: int, *, speech: bool = False) -> None:
            for _ in range(n):
                pcm = speech_frame(frames[0]) if speech else SILENT_FRAME
                frames[0] += 1
                w.write_client(0, tick(0.032), None, AudioInput.from_pcm(prompt, mic_name, pcm))
                if v.flush_often:
                    w.flush()

        def text_block(name: str, role: str, stage: str, *texts: str, stop: str = "PARTIAL_TURN") -> list[Any]:
            return f.out_text_block(cid(name), role, stage, *texts, stop=stop, **ids)

        def audio_block(name: str, n_chunks: int, *, stop: str | None = "END_TURN", usage_after: int | None = 3) -> None:
            server(f.out_audio_start(cid(name), sample_rate=OUT_RATE, **ids))
            for k in range(n_chunks):
                server(AudioOutput.from_pcm(assistant_chunk(k), content_id=cid(name), **ids))
                if usage_after is not None and k + 1 == usage_after:
                    server(f.usage_event(out_speech=12, out_text=3, total=(40, 22, 12, 3), **ids))
            if stop is not None:
                server(f.out_content_end(cid(name), "AUDIO", stop, **ids))

        speech_start = UserSpeechStart(prompt_name=prompt, session_id=ids["session_id"], input_audio_offset_ms=320)
        speech_end = UserSpeechEnd(prompt_name=prompt, session_id=ids["session_id"], input_audio_offset_ms=1120,
                                   input_audio_detection_offset_ms=1600)

        tools = [f.tool("getWeather", {"type": "object", "properties": {"city": {"type": "string"}}})]
        client(f.session_start(nested="MEDIUM"), f.prompt_start(prompt, tools=tools, voice=v.voice),
               *f.system_block(content_name=sys_name, prompt_name=prompt),
               f.audio_start(mic_name, prompt_name=prompt))
        mic(10)
        mic(25, speech=True)
        server(CompletionStart(**ids), speech_start)
        mic(15 + v.extra_silence_frames)
        server(speech_end, *text_block("u1", "USER", "FINAL", v.user_text),
               f.usage_event(in_speech=40, in_text=22, **ids))
        if v.tool_call:
            server(*f.out_tool_block(cid("tool1"), tool_use_id, "getWeather", '{"city": "Paris"}', **ids))
            w.flush()
            client(*f.tool_result_block(result_name, tool_use_id, {"sky": "clear", "c": 21}, prompt_name=prompt))
        server(*text_block("x1", "ASSISTANT", "SPECULATIVE", v.reply_text))
        audio_block("a1", 8)
        server(*text_block("x2", "ASSISTANT", "FINAL", v.reply_text, stop="END_TURN"))
        w.flush()
        mic(10)
        # turn 2: the user speaks again while the assistant is answering (barge-in)
        mic(20, speech=True)
        server(UserSpeechStart(prompt_name=prompt, session_id=ids["session_id"], input_audio_offset_ms=2400),
               UserSpeechEnd(prompt_name=prompt, session_id=ids["session_id"], input_audio_offset_ms=3040,
                             input_audio_detection_offset_ms=3520),
               *text_block("u2", "USER", "FINAL", USER_2),
               *text_block("x3", "ASSISTANT", "SPECULATIVE", REPLY_2))
        audio_block("a2", 12, stop=None, usage_after=None)  # 480 ms: the barge-in comes while it plays
        mic(10, speech=True)
        server(UserSpeechStart(prompt_name=prompt, session_id=ids["session_id"], input_audio_offset_ms=4000),
               f.out_content_end(cid("a2"), "AUDIO", "PARTIAL_TURN", **ids),
               *text_block("x4", "ASSISTANT", "FINAL", "Once upon", BARGE_IN_TEXT, stop="INTERRUPTED"),
               CompletionEnd(stop_reason="END_TURN", **ids))
        mic(10)
        client(f.content_end(mic_name, prompt_name=prompt), f.prompt_end(prompt), f.session_end())
        w.write_transport(0, tick(0.001), None, "end-input", direction="c")
        w.end_stream(0, tick(0.001), "completed", input_finished=True)

        clock[0] = 0.0
        w.write_client(1, v.t_offset, None, f.session_start(nested="MEDIUM"))
        w.write_exception(1, v.t_offset + 0.01 * v.t_scale, None, "throttlingException", EXCEPTION_MESSAGE)
        w.end_stream(1, v.t_offset + 0.01 * v.t_scale, "exception:throttlingException")

        if v.extra_stream:
            w.write_client(2, 0.0, None, f.session_start(nested="MEDIUM"))
            w.write_client(2, 0.001, None, f.prompt_start(f"p2-{v.ids}", tools=tools, voice=v.voice))
            w.write_exception(2, 0.02, None, "serviceUnavailableException", "Service unavailable")
            w.end_stream(2, 0.02, "exception:serviceUnavailableException")
    return path


ROOT = Path(__file__).resolve().parents[2]
#: The installed console script (``make`` installs the project into .venv).
CONSOLE_SCRIPT = Path(sys.executable).parent / "nova-cassette"


def run(*args: str | Path, timeout: float = 60, script: bool = False,
        python: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m tools.cassette_cli ARGS`` (``script=True``: the ``nova-cassette`` console
    script; ``python``: ``python -c CODE`` arguments to run the CLI another way)."""
    if script:
        cmd = [str(CONSOLE_SCRIPT)]
    elif python:
        cmd = [sys.executable, *python]
    else:
        cmd = [sys.executable, "-m", "tools.cassette_cli"]
    return subprocess.run([*cmd, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


#: Keep everything: user audio inline (in full) and assistant audio in the sidecar.
KEEP_AUDIO = WriterOptions(user_audio="inline", assistant_audio="sidecar")

__all__ = [
    "USER_1", "REPLY_1", "USER_2", "REPLY_2", "EXCEPTION_MESSAGE", "IN_RATE", "OUT_RATE", "KEEP_AUDIO",
    "Variant", "write_conversation", "speech_frame", "assistant_chunk", "tone", "run", "ROOT", "CONSOLE_SCRIPT",
]
