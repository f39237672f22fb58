"""The LiveKit plugin (``novasonic.livekit``) driven through a real ``AgentSession`` against the fake
server: text-driven and audio-driven turns, transcription, metrics, generate_reply, start-up with
a long or assistant-first history, instructions/tool updates."""

from __future__ import annotations

import math

import pytest
from livekit.agents import ChatContext, function_tool, llm
from livekit.agents.voice import events as ev

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ScriptedResponder, TurnScript
from novasonic.livekit import RealtimeModel
from tests.helpers.livekit_agents import PlainAgent, WeatherAgent, text_blocks
from tests.helpers.livekit_harness import AgentHarness

HELLO = TurnScript("hello.", ["Hi there!", "How can I help you today?"])


def no_rejections(fake: FakeNovaSonic) -> None:
    for j in fake.journal.streams:
        assert [(c.name, c.verdict) for c in j.client if c.verdict != "accepted"] == []


async def test_text_turn_through_agent_session_run() -> None:
    async with FakeNovaSonic(script=Script([HELLO]), speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), mic=False) as h:
            result = await h.session.run(user_input="hello")
            await h.wait_for(lambda: h.assistant_texts(), what="the answer in the history")
        j = fake.journal[0]
    # the typed text went out as one interactive USER block after the (non-interactive) SYSTEM prompt
    blocks = text_blocks(j)
    assert blocks[0][:2] == ("SYSTEM", False) and blocks[0][2] == "You are a test assistant."
    assert ("USER", True, "hello") in blocks
    # one assistant message for the two sentences (upstream #4855), spoken as audio
    assert h.assistant_texts() == ["Hi there! How can I help you today?"]
    assert h.output.frames > 0 and h.output.segments[0].duration > 0.5
    assert h.transcript.segments == ["Hi there! How can I help you today?"]
    assert h.user_texts() == ["hello"]
    assert h.errors() == [] and h.rt_errors == []
    no_rejections(fake)
    assert j.client_names()[-3:] == ["contentEnd", "promptEnd", "sessionEnd"] and j.end == "completed"
    result.expect.contains_message(role="assistant")


async def test_audio_turn_transcription_speech_events_and_metrics() -> None:
    script = Script([TurnScript("what time is it?", ["It is noon."])])
    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent()) as h:
            await h.say(1500)
            await h.wait_for(lambda: h.assistant_texts(), what="the answer")
            await h.wait_for(lambda: any(not e.user_initiated for e in h.of(ev.SpeechCreatedEvent)), what="speech")
        j = fake.journal[0]
    finals = [e for e in h.of(ev.UserInputTranscribedEvent) if e.is_final]
    assert [e.transcript for e in finals] == ["what time is it?"]
    assert h.user_texts() == ["what time is it?"]
    assert h.assistant_texts() == ["It is noon."]
    # server-side VAD drove the user state (userSpeechStart/End → input_speech_started/stopped)
    user_states = [e.new_state for e in h.of(ev.UserStateChangedEvent)]
    assert "speaking" in user_states and user_states[-1] in ("listening", "away")
    # usage events became metrics (token counts as the fake reported them)
    metrics = [e.metrics for e in h.of(ev.MetricsCollectedEvent) if e.metrics.type == "realtime_model_metrics"]
    usage = [m for m in metrics if m.total_tokens > 0]
    assert usage, "no realtime metrics from usage events"
    assert sum(m.input_token_details.audio_tokens for m in usage) > 0
    assert sum(m.output_token_details.audio_tokens for m in usage) > 0
    assert all(m.input_tokens + m.output_tokens == m.total_tokens for m in usage)
    assert any(m.acquire_time > 0 for m in metrics), "connection time not reported"
    # audio went out at 16 kHz mono, one audio block, after the 48 kHz mic was resampled
    assert sum(1 for c in j.client if c.name == "contentStart" and str(c.event.type) == "AUDIO") == 1
    assert j.audio_in_frames > 40
    no_rejections(fake)


async def test_generate_reply_with_instructions_speaks_first() -> None:
    script = Script([TurnScript("", ["Welcome! What can I do for you?"])])
    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        agent = PlainAgent(greeting="Greet the user warmly.")
        async with AgentHarness(fake, agent) as h:
            await h.wait_for(lambda: h.assistant_texts(), what="the greeting")
        j = fake.journal[0]
    assert ("USER", True, "Greet the user warmly.") in text_blocks(j)
    assert h.assistant_texts() == ["Welcome! What can I do for you?"]
    assert h.user_texts() == []  # instructions are not a user message
    no_rejections(fake)


async def test_generate_reply_times_out_with_a_realtime_error() -> None:
    # the fake answers nothing: the reply future must fail, not hang (upstream returned a future
    # that never resolved when no instructions were given)
    script = Script([], default=None)
    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), mic=False, generate_reply_timeout=0.3) as h:
            with pytest.raises(llm.RealtimeError, match="timed out"):
                await h.rt.generate_reply(instructions="Say something.")
            with pytest.raises(llm.RealtimeError, match="timed out"):
                await h.rt.generate_reply()
            assert h.rt.session.state == "active"  # the session goes on
    assert ("USER", True, "Say something.") in text_blocks(fake.journal[0])


async def test_start_with_a_long_assistant_first_history() -> None:
    ctx = ChatContext.empty()
    ctx.add_message(role="assistant", content="Welcome back!")
    for i in range(30):
        ctx.add_message(role="user", content=f"question {i}")
        ctx.add_message(role="assistant", content=f"answer {i}")
    ctx.add_message(role="user", content="and one more")
    ctx.add_message(role="user", content="thing")
    script = Script([HELLO])
    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(chat_ctx=ctx), mic=False) as h:
            await h.session.run(user_input="hello")
            await h.wait_for(lambda: h.assistant_texts(), what="an answer after the history")
        j = fake.journal[0]
    history = [b for b in text_blocks(j) if not b[1] and b[0] != "SYSTEM"]
    assert history[0][0] == "USER", "history must start with USER (leading assistant message dropped)"
    roles = [r for r, _, _ in history]
    assert all(a != b for a, b in zip(roles, roles[1:])), "same-role messages must be merged"
    assert history[-1] == ("USER", False, "and one more\nthing")
    assert len(history) <= 40
    assert ("USER", True, "hello") in text_blocks(j)
    assert h.assistant_texts() == ["Hi there! How can I help you today?"]
    no_rejections(fake)


class ToolsAgent(PlainAgent):
    @function_tool
    async def lookup(self, query: str) -> str:
        """Look something up."""
        return "nothing"


@function_tool
async def extra_tool(name: str) -> str:
    """An extra tool."""
    return name


async def test_tool_updates_burst_makes_one_recycle_and_audio_flows_on() -> None:
    script = Script([HELLO], default=TurnScript("again.", ["Still here."]))
    responder = ScriptedResponder(script, share_turns_across_streams=True)
    async with FakeNovaSonic(responder=responder, speed=math.inf) as fake:
        agent = ToolsAgent()
        async with AgentHarness(fake, agent) as h:
            await h.wait_for(lambda: h.mic.played_ms > 200, what="mic audio")
            # unchanged tools: nothing to do
            await agent.update_tools(list(agent.tools))
            # a burst of changes (upstream #6812): one recycle with the last tool set
            await agent.update_tools([*agent.tools, extra_tool])
            await agent.update_tools(list(agent.tools)[:1])
            await agent.update_tools([*agent.tools, extra_tool])
            await h.wait_for(lambda: len(fake.journal.streams) >= 2 and fake.journal[1].audio_in_frames > 10,
                             what="the recycled stream with audio")
            await h.say(1200)
            await h.wait_for(lambda: h.assistant_texts(), what="an answer on the new stream")
            assert h.rt.session.stream_index == 1
        j0, j1 = fake.journal[0], fake.journal[1]
    assert len(fake.journal.streams) == 2, "the burst must share one recycle"
    names0 = j0.client_names()
    assert names0[-3:] == ["contentEnd", "promptEnd", "sessionEnd"], "nothing after sessionEnd"
    tools1 = sorted(t.tool_spec.name for t in j1.client_events("promptStart")[0].tool_configuration.tools)
    assert tools1 == ["extra_tool", "lookup"]
    assert h.assistant_texts() == ["Hi there! How can I help you today?"]
    assert h.errors() == []
    no_rejections(fake)


async def test_update_instructions_recycles_with_the_new_system_prompt() -> None:
    async with FakeNovaSonic(script=Script([HELLO]), speed=math.inf) as fake:
        agent = PlainAgent("First prompt.")
        async with AgentHarness(fake, agent) as h:
            await h.wait_for(lambda: h.mic.played_ms > 200, what="mic audio")
            await agent.update_instructions("First prompt.")  # unchanged: no recycle
            await agent.update_instructions("Second prompt.")
            await h.wait_for(lambda: len(fake.journal.streams) >= 2 and fake.journal[1].audio_in_frames > 5,
                             what="the recycled stream")
        j0, j1 = fake.journal[0], fake.journal[1]
    assert len(fake.journal.streams) == 2
    assert text_blocks(j0)[0] == ("SYSTEM", False, "First prompt.")
    assert text_blocks(j1)[0] == ("SYSTEM", False, "Second prompt.")
    no_rejections(fake)


async def test_no_op_operations_and_model_close() -> None:
    async with FakeNovaSonic(script=Script([HELLO]), speed=math.inf) as fake:
        h = AgentHarness(fake, WeatherAgent(), mic=False)
        async with h:
            rt = h.rt
            rt.interrupt()
            rt.clear_audio()
            rt.commit_audio()
            rt.truncate(message_id="x", modalities=["audio"], audio_end_ms=10)
            rt.update_options(tool_choice="required")
            await h.session.run(user_input="hello")
            await h.wait_for(lambda: h.assistant_texts(), what="an answer")
            assert rt in h.model.sessions
            await h.model.aclose()  # closes every session it made
            assert rt.session.closed
    assert h.assistant_texts() == ["Hi there! How can I help you today?"]
    assert fake.journal[0].client_names()[-3:] == ["contentEnd", "promptEnd", "sessionEnd"]
    no_rejections(fake)


def test_model_constructor_defaults_and_factories() -> None:
    m = RealtimeModel()
    assert (m.model, m.modalities, m.provider) == ("amazon.nova-2-sonic-v1:0", "mixed", "Amazon")
    o = m.session_options
    assert (o.voice, o.temperature, o.top_p, o.max_tokens, str(o.endpointing)) == ("tiffany", 0.7, 0.9, 1024, "MEDIUM")
    assert m._generate_reply_timeout == 10.0
    caps = m.capabilities
    assert (caps.turn_detection, caps.user_transcription, caps.auto_tool_reply_generation, caps.audio_output,
            caps.message_truncation, caps.manual_function_calls) == (True, True, True, True, False, False)
    m1 = RealtimeModel.with_nova_sonic_1(voice="matthew", turn_detection="HIGH", max_tokens=2048)
    assert (m1.model, m1.modalities, m1.session_options.voice, str(m1.session_options.endpointing),
            m1.session_options.max_tokens, m1.text_input) == ("amazon.nova-sonic-v1:0", "audio", "matthew", "HIGH", 2048, False)
    m2 = RealtimeModel.with_nova_sonic_2(voice="olivia", temperature=0.2, region="eu-north-1")
    assert (m2.model, m2.modalities, m2.session_options.temperature, m2.session_options.region, m2.text_input) == (
        "amazon.nova-2-sonic-v1:0", "mixed", 0.2, "eu-north-1", True)
    m25 = RealtimeModel.with_nova_sonic_2_5()
    assert (m25.model, m25.modalities) == ("amazon.nova-2-5-sonic", "mixed")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"model": "amazon.nova-3-sonic"}, "unknown Nova Sonic model id"),
    ({"voice": "kiara", "model": "amazon.nova-sonic-v1:0", "modalities": "audio"}, "voice 'kiara'"),
    ({"turn_detection": "FAST"}, "turn_detection"),
    ({"modalities": "text"}, "modalities"),
    ({"generate_reply_timeout": 0}, "generate_reply_timeout"),
    ({"max_tokens": 0}, "max_tokens|greater"),
])
def test_model_refuses_bad_arguments_up_front(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RealtimeModel(**kwargs)


def test_lk_session_max_duration_compresses_the_recycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LK_SESSION_MAX_DURATION", "60")
    pol = RealtimeModel().session_options.recycle
    assert (pol.after_s, pol.deadline_s) == (60.0, 75.0)
    monkeypatch.setenv("LK_SESSION_MAX_DURATION", "soon")
    with pytest.raises(ValueError, match="LK_SESSION_MAX_DURATION"):
        RealtimeModel()


async def test_typed_text_without_generate_reply_is_still_answered() -> None:
    """An application that adds a user message with ``update_chat_ctx`` and never asks for a
    reply still hears the model's answer (announced as a server-initiated generation)."""
    async with FakeNovaSonic(script=Script([HELLO]), speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), mic=False) as h:
            await h.wait_for(lambda: h.rt.session.state == "active", what="the stream")
            ctx = h.rt.chat_ctx
            ctx.add_message(role="user", content="hello")
            await h.rt.update_chat_ctx(ctx)
            await h.wait_for(lambda: h.assistant_texts(), what="the answer")
    assert h.assistant_texts() == ["Hi there! How can I help you today?"]
    assert [e.user_initiated for e in h.of(ev.SpeechCreatedEvent)] == [False]
    assert ("USER", True, "hello") in text_blocks(fake.journal[0])
