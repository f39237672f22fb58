"""NovaSonicSession conversations against FakeNovaSonic through the stock SDK client (real parts):
an audio turn, interactive text (Nova 2) and its refusal on Nova 1, tool calls, resampling."""

from __future__ import annotations

import math

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ToolCallScript, TurnScript
from novasonic.models import NOVA_2_SONIC, NOVA_SONIC_1
from novasonic.session import SessionState
from novasonic.session import events as E
from tests.helpers.session_driver import SessionDriver


async def test_audio_turn() -> None:
    script = Script([TurnScript("what time is it?", ["It is noon.", "Anything else?"])])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=3) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC) as d:
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: d.count(E.TurnEnded) >= 1, what="the end of the turn")
        j = fake.journal[0]
    assert d.session.state is SessionState.CLOSED
    turn = d.of(E.TurnEnded)[0].turn
    assert turn.user_text == "what time is it?"
    assert turn.assistant_text == "It is noon. Anything else?"
    assert d.count(E.GenerationStarted) == 1
    assert d.of(E.StreamOpened)[0].reason == "start"
    assert sum(len(c.pcm) for c in d.of(E.AudioChunk)) == turn.audio_bytes > 0
    assert isinstance(d.events[-1], E.Closed) and d.events[-1].error is None
    names = j.client_names()
    assert names[:7] == ["sessionStart", "promptStart", "contentStart", "textInput", "contentEnd",
                         "contentStart", "audioInput"]
    assert names[-3:] == ["contentEnd", "promptEnd", "sessionEnd"]
    assert j.end == "completed" and j.input_finished
    assert [c.verdict for c in j.client if c.verdict != "accepted"] == []


def text_blocks_are_whole(names_and_types: list[tuple[str, str | None]]) -> bool:
    """No event other than textInput/toolResult between a TEXT/TOOL contentStart and its contentEnd."""
    open_block = False
    for name, kind in names_and_types:
        if name == "contentStart" and kind in ("TEXT", "TOOL"):
            open_block = True
        elif name == "contentEnd" and open_block:
            open_block = False
        elif open_block and name not in ("textInput", "toolResult"):
            return False
    return True


def journal_blocks(j) -> list[tuple[str, str | None]]:
    out = []
    for c in j.client:
        kind = None
        if c.name == "contentStart" and c.event is not None:
            kind = str(c.event.type)
        out.append((c.name, kind))
    return out


async def test_interactive_text_turn_nova2() -> None:
    script = Script([TurnScript("", ["Paris is the capital of France."])])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=4) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC) as d:
            await d.silence(320)
            await d.session.send_text("What is the capital of France?")
            await d.silence_until(lambda: d.count(E.TurnEnded) >= 1, what="the answer")
            history = d.session.history
        j = fake.journal[0]
    turn = d.of(E.TurnEnded)[0].turn
    assert turn.assistant_text == "Paris is the capital of France."
    assert [(m.role.value, m.text) for m in history] == [
        ("USER", "What is the capital of France?"), ("ASSISTANT", "Paris is the capital of France.")]
    interactive = [c.event for c in j.client if c.name == "contentStart" and c.event.type == "TEXT"
                   and c.event.interactive]
    assert len(interactive) == 1 and interactive[0].role == "USER"
    assert "What is the capital of France?" in [e.content for e in j.client_events("textInput")]
    assert text_blocks_are_whole(journal_blocks(j))


async def test_interactive_text_refused_on_nova1() -> None:
    from novasonic.session import UnsupportedInput

    async with FakeNovaSonic(speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_SONIC_1) as d:
            with pytest.raises(UnsupportedInput, match="Nova Sonic 1|interactive text"):
                await d.session.send_text("hello")
            await d.silence(64)
        j = fake.journal[0]
    assert not [c for c in j.client if c.name == "contentStart" and c.event.type == "TEXT" and c.event.interactive]
    assert j.end == "completed"


WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
FIND_CITY = {"name": "find_city", "description": "Resolve a place description to a city",
             "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}


def answer_tools(d: SessionDriver, results: dict[str, dict]) -> list:
    """Answer every ToolCall from a task (as an app would), results by tool name."""
    import asyncio

    tasks: list[asyncio.Task] = []

    def on_event(ev: E.SessionEvent) -> None:
        if isinstance(ev, E.ToolCall):
            tasks.append(asyncio.create_task(d.session.send_tool_result(ev.tool_use_id, results[ev.name])))

    d.session.on(on_event)
    return tasks


async def test_tool_call_result_and_spoken_follow_up() -> None:
    script = Script([TurnScript(
        "what's the weather in paris?",
        tool_call=ToolCallScript("get_weather", {"city": "Paris"}, filler=["Let me check."]),
        follow_up=lambda r: [f"It is {r['temp_c']} degrees in Paris."],
    )])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=5) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, tools=(WEATHER,)) as d:
            tasks = answer_tools(d, {"get_weather": {"temp_c": 21}})
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: any("21 degrees" in t.text for t in d.of(E.AssistantText)),
                                  what="the spoken follow-up")
            await d.silence_until(lambda: d.count(E.TurnEnded) >= 1, what="the end of the turn")
            for t in tasks:
                await t
            assert d.session.pending_tool_calls == ()
        j = fake.journal[0]
    call = d.of(E.ToolCall)[0]
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
    turn = d.of(E.TurnEnded)[0].turn
    assert turn.tool_calls[0].resolved
    assert "It is 21 degrees in Paris." in turn.assistant_text
    results = j.client_events("toolResult")
    assert [r.content for r in results] == ['{"temp_c":21}']
    assert text_blocks_are_whole(journal_blocks(j))
    assert j.end == "completed"


async def test_chained_tool_calls() -> None:
    script = Script([TurnScript(
        "weather where the eiffel tower is",
        tool_call=ToolCallScript("find_city", {"q": "eiffel tower"}, filler=["Looking that up."],
                                 then_tool_call=lambda r: ToolCallScript("get_weather", {"city": r["city"]},
                                                                         filler=["Now the weather."])),
        follow_up=lambda r: [f"It is {r['temp_c']} degrees there."],
    )])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=6) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, tools=(WEATHER, FIND_CITY), tool_choice="auto") as d:
            tasks = answer_tools(d, {"find_city": {"city": "Paris"}, "get_weather": {"temp_c": 18}})
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: any("18 degrees" in t.text for t in d.of(E.AssistantText)),
                                  what="the answer after two tool calls")
            for t in tasks:
                await t
        j = fake.journal[0]
    calls = d.of(E.ToolCall)
    assert [(c.name, c.arguments) for c in calls] == [("find_city", {"q": "eiffel tower"}),
                                                      ("get_weather", {"city": "Paris"})]
    assert [r.content for r in j.client_events("toolResult")] == ['{"city":"Paris"}', '{"temp_c":18}']
    assert text_blocks_are_whole(journal_blocks(j))


async def test_audio_48k_stereo_arrives_as_16k_mono_32ms_frames() -> None:
    async with FakeNovaSonic(speed=math.inf, keep_audio=True) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC) as d:
            await d.speak(1000, rate=48000, channels=2, seed=2)
            await d.push(bytes(2 * 2 * 480 * 10), rate=48000, channels=2, chunk_ms=10)  # 100 ms silence
        j = fake.journal[0]
    audio_start = [c.event for c in j.client if c.name == "contentStart" and c.event.type == "AUDIO"][0]
    cfg = audio_start.audio_input_configuration
    assert (cfg.sample_rate_hertz, cfg.channel_count, cfg.sample_size_bits) == (16000, 1, 16)
    sizes = [c.n_bytes for c in j.client if c.name == "audioInput"]
    assert all(n == 1024 for n in sizes[:-1]) and 0 < sizes[-1] <= 1024
    # 1.1 s at 16 kHz mono = 35200 bytes (the resampler's delay is flushed at close)
    assert abs(sum(sizes) - 35200) <= 1024
    # the speech survived the conversion: the fake's VAD heard it
    assert any(s.name == "userSpeechStart" for s in j.server)


async def test_text_and_tool_result_sent_concurrently_with_audio_never_interleave() -> None:
    """Upstream, tool-result blocks bypassed the text-block lock and could interleave an
    interactive text block; here every block is one outbox item sent whole by one writer."""
    import asyncio

    script = Script([TurnScript("weather?", tool_call=ToolCallScript("get_weather", {"city": "Oslo"}),
                                follow_up=["It is cold in Oslo."])],
                    default=TurnScript("", ["Yes, still here."]))
    async with FakeNovaSonic(script=script, speed=math.inf, seed=9) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, tools=(WEATHER,)) as d:
            await d.silence(320)
            await d.speak(1200)
            await d.silence_until(lambda: d.count(E.ToolCall) >= 1, what="the tool call")
            call = d.of(E.ToolCall)[0]
            for _ in range(5):
                d.session.push_audio(bytes(1024))
            sends = [asyncio.create_task(d.session.send_text("are you still there?")),
                     asyncio.create_task(d.session.send_tool_result(call.tool_use_id, {"temp_c": -3}))]
            for _ in range(5):
                d.session.push_audio(bytes(1024))
            await d.silence_until(lambda: all(t.done() for t in sends), what="both sends")
            for t in sends:
                await t
            await d.silence(320)
        j = fake.journal[0]
    kinds = [k for _, k in journal_blocks(j) if k in ("TEXT", "TOOL")]
    assert kinds.count("TOOL") == 1 and kinds.count("TEXT") == 2  # SYSTEM + the interactive text
    assert text_blocks_are_whole(journal_blocks(j))
    assert [c.verdict for c in j.client if c.verdict != "accepted"] == []


async def test_endpoint_trust_region_and_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection arguments: endpoint, CA, region and the boto3 credential chain come from the
    environment a fake server publishes (``fake.env``)."""
    from novasonic.session import NovaSonicSession

    async with FakeNovaSonic(speed=math.inf) as fake:
        for key, value in fake.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        async with NovaSonicSession(model_id=NOVA_2_SONIC) as session:
            session.push_audio(bytes(1024 * 4))
        j = fake.journal[0]
    assert j.auth == "ok" and j.access_key_id == fake.access_key_id and j.region == fake.region
    assert j.client_names().count("audioInput") == 4 and j.end == "completed"


async def test_nova1_audio_turn_with_its_session_start_shape() -> None:
    script = Script([TurnScript("hello there.", ["Hi.", "How can I help?"])])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=12) as fake:
        async with SessionDriver(fake, model_id=NOVA_SONIC_1, endpointing="HIGH", voice="amy") as d:
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: sum(1 for t in d.of(E.AssistantText) if t.stage == "FINAL") >= 2,
                                  what="the FINAL texts")
        j = fake.journal[0]
    start = j.client_events("sessionStart")[0]
    assert start.endpointing_sensitivity == "HIGH" and start.turn_detection_configuration is None
    assert j.client_events("promptStart")[0].audio_output_configuration.voice_id == "amy"
    (turn,) = [t.turn for t in d.of(E.TurnEnded)]
    assert (turn.user_text, turn.assistant_text) == ("hello there.", "Hi. How can I help?")
    assert j.end == "completed"
