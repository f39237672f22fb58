"""``make demo``: the toolkit end to end, offline.

1. Builds a full Nova 2 Sonic session with :class:`~novasonic.builder.EventBuilder` and runs every
   event through the shared protocol rules, printing each verdict; then shows the service's text
   for a typical mistake (audio while a text block is open).
2. Starts the fake Nova Sonic server in-process (loopback TLS + HTTP/2), connects the *stock*
   ``aws_sdk_bedrock_runtime`` client to it, speaks a synthetic user utterance, and prints the
   conversation as it happens: user transcript, assistant text, a tool call answered by the
   client, the follow-up; it writes the assistant audio to ``out/demo-assistant.wav``.

Run: ``make demo`` (or ``.venv/bin/python -m novasonic.demo``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import wave
from pathlib import Path

from .builder import EventBuilder
from .errors import ProtocolViolation
from .events import Tool, AudioOutput, OutputContentStart, TextOutput, ToolUse, UserSpeechEnd, UserSpeechStart
from .models import NOVA_2_SONIC
from .rules import InputMachine

OUT_DIR = Path("out")


def _show_rules() -> None:
    print("== 1. A Nova 2 Sonic session, checked by the protocol rules ==")
    b = EventBuilder(NOVA_2_SONIC, voice="matthew")
    machine = InputMachine(NOVA_2_SONIC)
    tool_events: list = []
    events = [
        *b.start("You are a concise assistant.", [("user", "Hi!"), ("assistant", "Hello, how can I help?")]),
        *b.audio_start(),
        *b.audio_frames(bytes(3200)),
        *b.interactive_text("What's the weather in Paris?"),
    ]
    for ev in events:
        machine.feed(ev)
        print(f"  accepted  {ev.EVENT_NAME:<13} {_brief(ev)}")
    machine.note_tool_use("tool-1", "get_weather")
    tool_events = b.tool_result("tool-1", {"city": "Paris", "forecast": "sunny"})
    for ev in [*tool_events, *b.close()]:
        machine.feed(ev)
        print(f"  accepted  {ev.EVENT_NAME:<13} {_brief(ev)}")
    print("  -> the whole session is valid; now a typical mistake:")
    bad = EventBuilder(NOVA_2_SONIC)
    m2 = InputMachine(NOVA_2_SONIC)
    for ev in [*bad.start("sys"), *bad.audio_start()]:
        m2.feed(ev)
    text_open = bad.interactive_text("typed text")[0]  # contentStart of a TEXT block, left open
    m2.feed(text_open)
    try:
        m2.feed(bad.audio(bytes(1024)))
    except ProtocolViolation as v:
        print(f"  rejected  audioInput    while a TEXT block is open -> {v.exception_type}: {v.message!r} [{v.rule}]")
    print()


def _brief(ev) -> str:
    d = ev.to_dict()
    d.pop("promptName", None)
    d.pop("contentName", None)
    if "content" in d and ev.EVENT_NAME == "audioInput":
        d["content"] = f"<{ev.pcm_len} bytes PCM>"
    s = json.dumps(d, separators=(",", ":"))
    return s if len(s) < 90 else s[:87] + "..."


async def _conversation() -> None:
    from fakeserver import FakeNovaSonic
    from fakeserver.audio import silence, synth_speech
    from fakeserver.responders import Script, ToolCallScript, TurnScript

    from .transport import client_from_info, open_duplex

    print("== 2. The stock SDK client talking to the fake Nova Sonic server ==")
    script = Script(
        turns=[
            TurnScript(
                user_transcript="what's the weather in paris",
                reply=["Let me check the weather for you."],
                tool_call=ToolCallScript(name="get_weather", arguments={"city": "Paris"}),
                follow_up=lambda result: [f"It is {result.get('forecast', 'unknown')} in Paris today."],
            )
        ]
    )
    async with FakeNovaSonic(script=script, speed=20.0, seed=7) as fake:
        print(f"  fake server at {fake.endpoint} (CA {fake.ca_file})")
        client = await client_from_info(fake.info())
        duplex = await open_duplex(client, NOVA_2_SONIC)
        weather = Tool.define("get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})
        b = EventBuilder(NOVA_2_SONIC, tools=[weather])
        for ev in b.start("You are a helpful assistant."):
            await duplex.send(ev)
        for ev in b.audio_start():
            await duplex.send(ev)

        audio_out = bytearray()
        rate = 24000
        stages: dict[str, str] = {}
        done = asyncio.Event()

        async def reader() -> None:
            nonlocal rate
            while (ev := await duplex.receive()) is not None:
                if isinstance(ev, UserSpeechStart):
                    print(f"  <- user started speaking at {ev.input_audio_offset_ms} ms")
                elif isinstance(ev, UserSpeechEnd):
                    print(f"  <- user stopped at {ev.input_audio_offset_ms} ms (detected {ev.input_audio_detection_offset_ms} ms)")
                elif isinstance(ev, OutputContentStart):
                    stages[ev.content_id] = str(ev.generation_stage or "")
                    if ev.sample_rate_hertz:
                        rate = ev.sample_rate_hertz
                elif isinstance(ev, TextOutput):
                    who = "user" if ev.role == "USER" else f"assistant ({stages.get(ev.content_id, '').lower()})"
                    print(f"  <- {who:24} {ev.content!r}")
                elif isinstance(ev, AudioOutput):
                    audio_out.extend(ev.pcm)
                elif isinstance(ev, ToolUse):
                    print(f"  <- tool call {ev.tool_name}({ev.arguments})  -> answering")
                    for e in b.tool_result(ev.tool_use_id, {"forecast": "sunny", "celsius": 21}):
                        await duplex.send(e)
                if ev.EVENT_NAME == "completionEnd":
                    done.set()

        read_task = asyncio.create_task(reader())
        speech = synth_speech(1500, 16000, seed=1) + silence(4000, 16000)
        for frame in b.audio_frames(speech):
            await duplex.send(frame)
            await asyncio.sleep(0.032 / 20)
        while not done.is_set():  # keep the session alive with silence, as a microphone would
            for frame in b.audio_frames(silence(320, 16000)):
                await duplex.send(frame)
            await asyncio.sleep(0.016)
        for ev in b.close():
            await duplex.send(ev)
        await duplex.close_input()
        await read_task
        OUT_DIR.mkdir(exist_ok=True)
        path = OUT_DIR / "demo-assistant.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(bytes(audio_out))
        s = fake.journal.last().summary()
        print(f"  assistant audio: {len(audio_out) / 2 / rate:.2f} s at {rate} Hz -> {path}")
        print(f"  server journal: {s}")


def main() -> int:
    _show_rules()
    asyncio.run(_conversation())
    return 0


if __name__ == "__main__":
    sys.exit(main())
