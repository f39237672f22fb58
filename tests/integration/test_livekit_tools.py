"""Function tools through a real ``AgentSession`` with the ``novasonic.livekit`` plugin against the
fake server: a call and its spoken result, chained calls with speech between them (delivered
without more user audio, upstream #4887), result encodings (dict / string / error, #4348),
double-encoded arguments (#5411), and the user barging in while a tool runs."""

from __future__ import annotations

import asyncio
import math

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ScriptedResponder, ToolCallScript, TurnScript
from tests.helpers.livekit_agents import WeatherAgent, text_blocks, tool_results
from tests.helpers.livekit_harness import AgentHarness


def weather_turn(*, filler: tuple[str, ...] = ("Let me check.",)) -> TurnScript:
    return TurnScript(
        "what's the weather in paris?",
        tool_call=ToolCallScript("get_weather", {"location": "Paris"}, filler=list(filler)),
        follow_up=lambda r: [f"In Paris it is {r.get('sky', r)}, {r.get('celsius', '?')} degrees."],
    )


def accepted(fake: FakeNovaSonic) -> None:
    for j in fake.journal.streams:
        assert [(c.name, c.verdict) for c in j.client if c.verdict != "accepted"] == []
        assert j.exceptions == []


async def test_tool_call_result_is_sent_and_spoken_without_more_user_audio() -> None:
    async with FakeNovaSonic(script=Script([weather_turn()]), speed=math.inf) as fake:
        agent = WeatherAgent()
        async with AgentHarness(fake, agent) as h:
            await h.say(1500)
            spoken = h.mic.speech_ms
            await h.wait_for(lambda: any("degrees" in t for t in h.assistant_texts()), what="the spoken result")
            assert h.mic.speech_ms == spoken, "the answer must not need more user speech"
        j = fake.journal[0]
    assert agent.calls == ["Paris"]
    results = tool_results(j)
    assert [r for _, r in results] == [{"location": "Paris", "sky": "sunny", "celsius": 21}]
    assert results[0][0] == j.server_events("toolUse")[0].tool_use_id
    assert h.assistant_texts() == ["Let me check.", "In Paris it is sunny, 21 degrees."]
    assert [c.name for c in h.tool_calls()] == ["get_weather"]
    assert [o.is_error for o in h.tool_outputs()] == [False]
    # the framework's history and the plugin's agree on the call and its output
    rt_items = [i.type for i in h.rt.chat_ctx.items]
    assert rt_items.index("function_call") < rt_items.index("function_call_output")
    assert h.errors() == []
    accepted(fake)


async def test_chained_tool_calls_with_speech_between() -> None:
    turn = TurnScript(
        "is it warmer in paris or in rome?",
        tool_call=ToolCallScript(
            "get_weather", {"location": "Paris"}, filler=["Let me check Paris first."],
            then_tool_call=ToolCallScript("get_weather", {"location": "Rome"}, filler=["And now Rome."]),
        ),
        follow_up=lambda r: [f"Rome is warmer: {r['celsius']} degrees."],
    )
    async with FakeNovaSonic(script=Script([turn]), speed=math.inf) as fake:
        agent = WeatherAgent()
        async with AgentHarness(fake, agent) as h:
            await h.say(1500)
            spoken = h.mic.speech_ms
            await h.wait_for(lambda: any("warmer" in t for t in h.assistant_texts()), what="the final answer")
            assert h.mic.speech_ms == spoken
        j = fake.journal[0]
    assert agent.calls == ["Paris", "Rome"]
    assert [r["location"] for _, r in tool_results(j)] == ["Paris", "Rome"]
    assert h.assistant_texts() == ["Let me check Paris first.", "And now Rome.", "Rome is warmer: 26 degrees."]
    assert len(fake.journal.streams) == 1 and h.errors() == []
    accepted(fake)


@pytest.mark.parametrize(("mode", "expected"), [
    ("dict", {"location": "Paris", "sky": "sunny", "celsius": 21}),
    ("text", {"result": "sunny, 21 degrees"}),
    ("error", {"error": "no weather station in Paris"}),
])
async def test_tool_result_encodings(mode: str, expected: dict) -> None:
    async with FakeNovaSonic(script=Script([weather_turn(filler=())]), speed=math.inf) as fake:
        agent = WeatherAgent(mode=mode)
        async with AgentHarness(fake, agent) as h:
            await h.say(1500)
            await h.wait_for(lambda: any("In Paris" in t for t in h.assistant_texts()), what="the follow-up")
        j = fake.journal[0]
    assert [r for _, r in tool_results(j)] == [expected]
    assert [o.is_error for o in h.tool_outputs()] == [mode == "error"]
    accepted(fake)


async def test_double_encoded_tool_arguments() -> None:
    responder = ScriptedResponder(Script([weather_turn()]), double_encode_arguments=True)
    async with FakeNovaSonic(responder=responder, speed=math.inf) as fake:
        agent = WeatherAgent()
        async with AgentHarness(fake, agent) as h:
            await h.say(1500)
            await h.wait_for(lambda: any("degrees" in t for t in h.assistant_texts()), what="the answer")
    assert isinstance(fake.journal[0].server_events("toolUse")[0].content, str)
    assert agent.calls == ["Paris"]
    accepted(fake)


async def test_typed_question_with_a_tool_call() -> None:
    async with FakeNovaSonic(script=Script([weather_turn()]), speed=math.inf) as fake:
        agent = WeatherAgent()
        async with AgentHarness(fake, agent, mic=False) as h:
            await h.session.run(user_input="What's the weather in Paris?")
            await h.wait_for(lambda: any("degrees" in t for t in h.assistant_texts()), what="the answer")
        j = fake.journal[0]
    assert ("USER", True, "What's the weather in Paris?") in text_blocks(j)
    assert agent.calls == ["Paris"] and len(tool_results(j)) == 1
    accepted(fake)


async def test_barge_in_while_a_tool_runs() -> None:
    script = Script([weather_turn(filler=("Let me check that for you, it will take a moment.",)),
                     TurnScript("never mind.", ["Okay, no problem."])])
    gate = asyncio.Event()
    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        agent = WeatherAgent(gate=gate)
        async with AgentHarness(fake, agent) as h:
            await h.say(1500)
            await asyncio.wait_for(agent.started.wait(), 10)
            await h.say(1000, seed=2)  # the user talks over the filler while the tool runs
            await h.wait_for(lambda: "Okay, no problem." in h.assistant_texts(), what="the answer to the barge-in")
            gate.set()  # the slow tool returns after all
            await h.wait_for(lambda: h.tool_outputs() or not h.rt.session.pending_tool_calls, what="the tool's end")
            await asyncio.sleep(0.2)
            assert h.rt.session.state == "active"
        j = fake.journal[0]
    assert agent.calls == ["Paris"]
    assert h.user_texts() == ["what's the weather in paris?", "never mind."]
    assert "Okay, no problem." in h.assistant_texts()
    # whatever the framework did with the late result, the service accepted everything sent
    accepted(fake)
    assert len(fake.journal.streams) == 1 and j.end == "completed"
    assert [e for e in h.errors() if not e.error.recoverable] == []
