"""``make demo``: the toolkit end to end, offline.

1. Builds a full Nova 2 Sonic session with :class:`~novasonic.builder.EventBuilder` and runs every
   event through the shared protocol rules, printing each verdict; then shows the service's text
   for a typical mistake (audio while a text block is open).
2. Starts the fake Nova Sonic server in-process (loopback TLS + HTTP/2), connects the *stock*
   ``aws_sdk_bedrock_runtime`` client to it, speaks a synthetic user utterance, and prints the
   conversation as it happens: user transcript, assistant text, a tool call answered by the
   client, the follow-up; it writes the assistant audio to ``out/demo-assistant.wav``.
3. Runs a LiveKit voice agent (``AgentSession`` with ``novasonic.livekit.RealtimeModel``, a
   ``get_weather`` tool) end to end against the fake server replaying the ``agent_demo`` cassette:
   a microphone (no room, no LiveKit server: ``novasonic.livekit.testing``) asks for the weather,
   the agent calls its tool, speaks the answer, and the user talks over it (barge-in). The
   transcript and the tool call are printed as they happen; what the agent said is written to
   ``out/demo-agent-assistant.wav``. If the cassette or the replay is not available, the scripted
   responder plays the same conversation instead, and the demo says so.

Run: ``make demo`` (or ``.venv/bin/python -m novasonic.demo``). Only loopback is used.
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


AGENT_CASSETTE = Path(__file__).resolve().parent.parent / "cassettes" / "agent_demo.jsonl"
#: Microphone and playback pace of part 3 (times real time); playback lags like a real speaker.
MIC_SPEED = 4.0
PLAYBACK_SPEED = 2.0


def _open_demo_server() -> tuple[object, list[tuple[float, float]], str]:
    """The fake server for part 3: the ``agent_demo`` cassette replayed, else the scripted
    responder playing the same conversation. Returns (server, user speech positions, source)."""
    import math

    from fakeserver import FakeNovaSonic

    try:
        from .livekit.testing import user_speech_segments

        fake = FakeNovaSonic(cassette=AGENT_CASSETTE, speed=math.inf)
        return fake, user_speech_segments(AGENT_CASSETTE), f"cassette {AGENT_CASSETTE.name} (replayed)"
    except Exception as exc:  # noqa: BLE001 - any reason the replay cannot run: say it, fall back
        from fakeserver.responders import Script, ToolCallScript, TurnScript

        reason = str(exc).splitlines()[0] if str(exc) else ""
        print(f"  !! the agent_demo cassette cannot be replayed ({type(exc).__name__}: {reason});")
        print("  !! falling back to the SCRIPTED responder, which plays the same conversation")
        script = Script([
            TurnScript("what's the weather in lisbon today?",
                       tool_call=ToolCallScript("get_weather", {"location": "Lisbon"}, filler=["Let me check."]),
                       follow_up=lambda r: [f"It's {r.get('sky', 'sunny')} in Lisbon, {r.get('celsius', 24)} degrees "
                                            "with a light breeze.",
                                            "It's a great day for a walk along the river, and the evening should "
                                            "stay warm too."]),
            TurnScript("thanks, that's all i needed.", ["You're welcome. Enjoy your walk!"]),
        ])
        return FakeNovaSonic(script=script, speed=math.inf), [(320.0, 2320.0), (7056.0, 8376.0)], "scripted responder"


async def _agent_conversation() -> None:
    from livekit.agents import Agent, AgentSession, function_tool

    from fakeserver.audio import synth_speech

    from .livekit import RealtimeModel
    from .livekit.testing import MicInput, SpeakerOutput
    from .session import StaticCredentials

    print("== 3. A LiveKit voice agent (novasonic.livekit) on the fake server ==")
    fake, speech, source = _open_demo_server()
    t0 = asyncio.get_running_loop().time()

    def stamp() -> str:
        return f"{asyncio.get_running_loop().time() - t0:5.2f}s"

    class WeatherAgent(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You are a friendly weather assistant. Keep answers short.")

        @function_tool
        async def get_weather(self, location: str) -> dict:
            """Current weather for a city."""
            result = {"location": location, "sky": "sunny", "celsius": 24, "wind": "light breeze"}
            print(f"  {stamp()} [tool]      get_weather(location={location!r}) -> {result}")
            return result

    async with fake:  # type: ignore[attr-defined]
        print(f"  fake server at {fake.endpoint}, answering from the {source}")  # type: ignore[attr-defined]
        model = RealtimeModel.with_nova_sonic_2(
            endpoint=fake.endpoint, ca_file=fake.ca_file, region=fake.region,  # type: ignore[attr-defined]
            credentials=StaticCredentials(fake.access_key_id, fake.secret_access_key),  # type: ignore[attr-defined]
        )
        # Nova Sonic detects turns and barge-in itself: no local VAD, no echo-cancellation warm-up
        session = AgentSession(llm=model, vad=None, aec_warmup_duration=None,
                               turn_handling={"turn_detection": "realtime_llm",
                                              "interruption": {"resume_false_interruption": False}})
        mic, speaker = MicInput(speed=MIC_SPEED), SpeakerOutput(playout_speed=PLAYBACK_SPEED)
        session.input.audio, session.output.audio = mic, speaker
        assistant: list[object] = []

        def on_transcript(ev) -> None:  # noqa: ANN001
            if ev.is_final and ev.transcript:
                print(f"  {stamp()} [user]      {ev.transcript}")

        def on_item(ev) -> None:  # noqa: ANN001
            item = ev.item
            if getattr(item, "role", None) == "assistant" and item.text_content:
                assistant.append(item)
                print(f"  {stamp()} [assistant] {item.text_content}")
                if item.interrupted:
                    said = rt.chat_ctx.get_by_id(item.id) if rt is not None else None
                    print(f"  {stamp()} [barge-in]  the user spoke over the assistant: playback stopped"
                          + (f"; the model says it got as far as {said.text_content!r}" if said is not None else ""))

        rt = None
        session.on("user_input_transcribed", on_transcript)
        session.on("conversation_item_added", on_item)
        await session.start(WeatherAgent())
        rt = session._activity.realtime_llm_session if session._activity else None
        if rt is not None and hasattr(rt, "buffered_audio_ms"):
            mic.backlog = lambda: rt.buffered_audio_ms  # real-time microphone: never run ahead of the stream
        for i, (start, end) in enumerate(speech):
            mic.play(synth_speech(end - start, 16000, seed=i + 1), sample_rate=16000, at_ms=start)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(assistant) < 3 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        await session.aclose()
        await model.aclose()
        for seg in speaker.interrupted_segments:
            print(f"  barge-in: playback stopped at {seg.position:.2f} s of the {seg.duration:.2f} s received")
        OUT_DIR.mkdir(exist_ok=True)
        path = OUT_DIR / "demo-agent-assistant.wav"
        seconds = speaker.write_wav(path)
        print(f"  the agent said {seconds:.2f} s of audio -> {path}")
        replay = getattr(fake, "replay", None)
        if replay is not None:
            report = replay.report()
            print(f"  replay: {'every recorded interaction played' if report.all_played else report}")
        if len(assistant) < 3:
            print("  !! the conversation did not complete within 60 s")


def main() -> int:
    _show_rules()
    asyncio.run(_conversation())
    print()
    asyncio.run(_agent_conversation())
    return 0


if __name__ == "__main__":
    sys.exit(main())
