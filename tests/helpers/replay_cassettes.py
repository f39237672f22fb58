"""Cassettes for the replay tests, made two ways (real parts only):

- **recorded**: a real conversation — the stock SDK client (``Conversation``) against
  ``FakeNovaSonic`` with the scripted responder — converted from the server's journal with
  ``cassette_from_journal`` (``record``);
- **written**: ``Tape`` writes one by hand with ``CassetteWriter``, with exact times and audio
  positions (pacing and speed tests, recorded faults, multi-stream).

``normalised(events)`` is a server event sequence with names and ids replaced by the order they
first appeared in, so two replays (or a replay with fresh ids) compare equal when they are the
same conversation.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.audio import silence as silence_pcm
from fakeserver.audio import synth_speech
from fakeserver.responders import Script, ScriptedResponder, ToolCallScript, TurnScript
from novasonic.builder import EventBuilder, sequential_names
from novasonic.cassette import Cassette, CassetteHeader, CassetteWriter, WriterOptions, cassette_from_journal
from novasonic.events import AudioOutput, InputEvent, OutputEvent, Tool
from novasonic.models import NOVA_2_SONIC
from tests.helpers import factories as f
from tests.helpers.conversation import Conversation, ConversationResult

__all__ = [
    "WEATHER",
    "TOOL_SCRIPT",
    "BARGE_SCRIPT",
    "record",
    "tool_conversation",
    "normalised",
    "Tape",
    "text_turn_tape",
    "audio_turn_tape",
    "cached",
    "collect_client_garbage",
]

WEATHER = Tool.define(
    "get_weather", "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TOOL_SCRIPT = Script([TurnScript("weather in paris?", tool_call=ToolCallScript("get_weather", {"city": "Paris"}),
                                 follow_up=["It is sunny in Paris."])])
BARGE_SCRIPT = Script([
    TurnScript("tell me a story", ["Once upon a time there was a very long story.",
                                   "It went on and on for quite a while."]),
    TurnScript("stop", ["Okay."]),
])


async def record(path: Path, drive: Callable[[FakeNovaSonic], Awaitable[Any]], *, script: Script | None = None,
                 responder: Any = None, **fake_kwargs: Any) -> Cassette:
    """Run ``drive(fake)`` against the scripted responder; write and load the cassette."""
    fake_kwargs.setdefault("speed", math.inf)
    fake_kwargs.setdefault("seed", 1)
    if responder is None:
        responder = ScriptedResponder(script if script is not None else TOOL_SCRIPT)
    async with FakeNovaSonic(responder=responder, **fake_kwargs) as fake:
        await drive(fake)
        streams = fake.journal.streams
    return cassette_from_journal(streams, CassetteHeader(source="scripted"), path, overwrite=True)


async def tool_conversation(fake: FakeNovaSonic, **kwargs: Any) -> ConversationResult:
    """One spoken turn with a tool call: 320 ms silence, 1.2 s speech, silence until the answer
    ended, then the documented shutdown."""
    kwargs.setdefault("tools", [WEATHER])
    kwargs.setdefault("on_tool_call", lambda call: {"sky": "clear", "c": 21})
    async with Conversation(fake, **kwargs) as conv:
        await conv.silence(320)
        await conv.speak(1200)
        await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="completionEnd")
        await conv.silence(160)
        return await conv.close()


def normalised(events: Iterable[OutputEvent]) -> list[str]:
    """Each event's JSON with every id/name replaced by ``#n`` in order of first appearance, and
    audio content replaced by its length (synthesised audio is compared by size)."""
    seen: dict[str, str] = {}

    def norm(value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: norm(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, str) and key in ("promptName", "sessionId", "completionId", "contentId", "toolUseId",
                                              "contentName"):
            return seen.setdefault(value, f"#{len(seen)}")
        return value

    out = []
    for ev in events:
        d = ev.to_dict()
        if isinstance(ev, AudioOutput):
            d["content"] = f"<{ev.pcm_len} bytes>"
        out.append(json.dumps({ev.EVENT_NAME or "?": norm(d)}, sort_keys=True))
    return out


class Tape:
    """Writes a cassette by hand. Client events come from an ``EventBuilder`` (valid by
    construction), service events from ``tests.helpers.factories``. ``t`` defaults to the audio
    position (a live microphone: service time = audio time) plus ``lag``."""

    def __init__(self, path: Path, model_id: str = NOVA_2_SONIC, *, options: WriterOptions | None = None,
                 **header: Any) -> None:
        self.path = path
        self.model_id = model_id
        self.w = CassetteWriter(path, CassetteHeader(model_id=model_id, source="scripted", **header), options,
                                overwrite=True)
        self.stream = -1
        self.lag = 0.0
        self.b: EventBuilder

    # --- streams ------------------------------------------------------------------------------------
    def open(self) -> EventBuilder:
        self.stream += 1
        self.lag = 0.0
        self.w.open_stream(self.stream, model_id=self.model_id)
        self.b = EventBuilder(self.model_id, name_factory=sequential_names(f"s{self.stream}n"))
        return self.b

    @property
    def a(self) -> float:
        return self.w.audio_ms(self.stream)

    def now(self) -> float:
        return round(self.a / 1000.0 + self.lag, 3)

    def wait(self, seconds: float) -> None:
        """Service time passes without user audio (a text turn, tool latency)."""
        self.lag += seconds

    # --- writing ------------------------------------------------------------------------------------
    def client(self, *events: InputEvent) -> None:
        for ev in events:
            self.w.write_client(self.stream, self.now(), None, ev)

    def start(self, system: str = "You are a helpful assistant.", tools: Sequence[Tool] = ()) -> None:
        self.b = EventBuilder(self.model_id, tools=tools, name_factory=sequential_names(f"s{self.stream}n"))
        self.client(*self.b.start(system), *self.b.audio_start())

    def audio(self, ms: float, *, speech: bool = False, frame_ms: float = 32.0) -> None:
        """Microphone frames; each is sent once its audio was captured (t = the audio after it)."""
        pcm = synth_speech(ms, 16000, seed=3) if speech else silence_pcm(ms, 16000)
        for frame in self.b.audio_frames(pcm, frame_ms=frame_ms):
            t = round((self.a + frame.pcm_len / 32.0) / 1000.0 + self.lag, 3)
            self.w.write_client(self.stream, t, None, frame)

    def server(self, *events: OutputEvent) -> None:
        for ev in events:
            self.w.write_server(self.stream, self.now(), None, ev)

    def audio_out(self, content_id: str, n: int, *, chunk_bytes: int = 1920, dt_ms: float = 32.0,
                  audio_flows: bool = True, stop: str = "END_TURN", end: bool = True, **ids: Any) -> None:
        """An AUDIO block of ``n`` chunks sent ``dt_ms`` apart; with ``audio_flows`` the
        microphone streams silence meanwhile (a live client), else service time just passes."""
        self.server(f.out_audio_start(content_id, sample_rate=24000, **ids))
        for k in range(n):
            if k:
                if audio_flows:
                    self.audio(dt_ms)
                else:
                    self.wait(dt_ms / 1000.0)
            self.server(f.out_audio(content_id, chunk_bytes, **ids))
        if end:
            self.server(f.out_content_end(content_id, "AUDIO", stop, **ids))

    def close_client(self) -> None:
        self.client(*self.b.close())
        self.w.write_transport(self.stream, self.now(), None, "end-input", direction="c")

    def end(self, how: str = "completed") -> None:
        self.w.end_stream(self.stream, self.now(), how, input_finished=how == "completed" or None)

    def exception(self, name: str, message: str | None = None, **kw: Any) -> None:
        self.w.write_exception(self.stream, self.now(), None, name, message, **kw)

    def transport(self, action: str, **kw: Any) -> None:
        self.w.write_transport(self.stream, self.now(), None, action, **kw)

    def save(self) -> Path:
        self.w.close()
        return self.path


IDS = {"prompt_name": "s0n1", "session_id": f.SESSION_ID, "completion_id": "cmp-rec"}


def _answer(t: Tape, chunks: int, *, audio_flows: bool, ids: dict[str, Any], text: str = "Sure.") -> None:
    t.server(*f.out_text_block("txt-1", "ASSISTANT", "SPECULATIVE", text, **ids))
    t.audio_out("aud-1", chunks, audio_flows=audio_flows, **ids)
    t.server(*f.out_text_block("txt-2", "ASSISTANT", "FINAL", text, stop="END_TURN", **ids),
             f.completion_end(**ids))


def text_turn_tape(path: Path, *, delay_s: float = 0.3, chunks: int = 6, dt_ms: float = 40.0) -> Path:
    """An interactive text turn: the answer comes ``delay_s`` after the text with no user audio
    flowing, its chunks ``dt_ms`` apart (service time only)."""
    t = Tape(path)
    t.open()
    t.start()
    t.audio(320)
    t.client(*t.b.interactive_text("hello there"))
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.wait(delay_s)
    t.server(f.completion_start(**ids), *f.out_text_block("usr-1", "USER", "FINAL", "", **ids))
    t.server(*f.out_text_block("txt-1", "ASSISTANT", "SPECULATIVE", "Hi!", **ids))
    t.server(f.out_audio_start("aud-1", sample_rate=24000, **ids))
    for k in range(chunks):
        if k:
            t.wait(dt_ms / 1000.0)
        t.server(f.out_audio("aud-1", 1920, **ids))
    t.server(f.out_content_end("aud-1", "AUDIO", "END_TURN", **ids),
             *f.out_text_block("txt-2", "ASSISTANT", "FINAL", "Hi!", stop="END_TURN", **ids),
             f.completion_end(**ids))
    t.wait(0.1)
    t.close_client()
    t.end()
    return t.save()


def audio_turn_tape(path: Path, *, chunks: int = 8) -> Path:
    """A spoken turn under a live microphone (service time = audio time): speech 320–1500 ms,
    the end-point at 1984 ms, the answer's chunks 32 ms apart (one microphone frame) while silence
    streams. Every frame is 32 ms, so the frame times the format interpolates are exact."""
    t = Tape(path)
    t.open()
    t.start()
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.audio(320)
    t.audio(96, speech=True)
    t.server(f.user_speech_start(320).model_copy(update={"prompt_name": ids["prompt_name"]}),
             f.completion_start(**ids))
    t.audio(1088, speech=True)
    t.audio(480)
    t.server(f.user_speech_end(1504, 1984).model_copy(update={"prompt_name": ids["prompt_name"]}),
             *f.out_text_block("usr-1", "USER", "FINAL", "hello", **ids))
    t.audio(96)
    _answer(t, chunks, audio_flows=True, ids=ids)
    t.audio(320)
    t.close_client()
    t.end()
    return t.save()


_CACHE: dict[tuple[Path, str], Path] = {}


async def cached(directory: Path, name: str, make: Callable[[Path], Awaitable[Any] | Any]) -> Path:
    """``directory/name.jsonl`` made once per test session by ``make(path)`` (recording a cassette
    takes a real conversation; the tests only read it)."""
    key = (directory, name)
    if key not in _CACHE:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.jsonl"
        result = make(path)
        if hasattr(result, "__await__"):
            await result
        _CACHE[key] = path
    return _CACHE[key]


@pytest.fixture(autouse=True)
def collect_client_garbage() -> Any:
    """Autouse in the replay test modules (import it there): streams these tests end abruptly
    (exceptions, resets, mismatches) leave the CRT client's body-writer task failed; it is logged
    ("Task exception was never retrieved") when collected. Collect it here, in the test that
    caused it, instead of in whichever later test happens to run the collector."""
    yield
    gc.collect()
