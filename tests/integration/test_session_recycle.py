"""Proactive recycle (stream age on a compressed clock, credentials, updates) through the stock
SDK client against FakeNovaSonic: the conversation is carried, audio flows on the new stream,
nothing is ever sent after ``sessionEnd`` on the old stream, and a silent user does not block it."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

from fakeserver import FakeNovaSonic
from fakeserver.config import generate_credentials
from fakeserver.responders import Script, ScriptedResponder, ToolCallScript, TurnScript
from novasonic.models import NOVA_2_SONIC
from novasonic.rules import Limits
from novasonic.session import CachedCredentials, Credentials, RecyclePolicy, SessionState, SystemClock
from novasonic.session import events as E
from tests.helpers.session_driver import SessionDriver

#: The fake ends streams after 2 s (its 8-minute limit, compressed); the session recycles from
#: 1.5 s at a quiet point and at 1.875 s whatever happens.
MAX_AGE_S = 2.0
AGE_POLICY = RecyclePolicy.for_max_age(MAX_AGE_S, quiet_s=0.2)
REAL_TIME = 0.032  # pace silence like a microphone (32 ms frames)


def nothing_after_session_end(j) -> None:
    names = j.client_names()
    assert names[-3:] == ["contentEnd", "promptEnd", "sessionEnd"], names[-6:]
    assert [c.verdict for c in j.client if c.verdict != "accepted"] == []
    assert j.end == "completed" and j.input_finished and j.exceptions == []


def history_blocks(j) -> list[tuple[str, str]]:
    """(role, text) of the non-interactive USER/ASSISTANT text blocks of a stream."""
    out: list[tuple[str, str]] = []
    current = None
    for c in j.client:
        ev = c.event
        if c.name == "contentStart" and ev.type == "TEXT" and ev.role in ("USER", "ASSISTANT") and not ev.interactive:
            current = [str(ev.role), ""]
        elif c.name == "textInput" and current is not None:
            current[1] += ev.content
        elif c.name == "contentEnd" and current is not None:
            out.append((current[0], current[1]))
            current = None
    return out


def fake_with_age_limit(**kw) -> FakeNovaSonic:
    return FakeNovaSonic(speed=1.0, limits=Limits(max_stream_age_s=MAX_AGE_S), **kw)


async def test_recycle_with_a_silent_user_does_not_wait_for_a_turn() -> None:
    async with fake_with_age_limit() as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, recycle=AGE_POLICY) as d:
            await d.silence_until(lambda: d.count(E.Recycled) >= 1, pace=REAL_TIME, what="the recycle")
            await d.silence(320, pace=0.0)
            await d.wait_for(lambda: fake.journal[1].audio_in_frames >= 10, what="audio on the new stream")
        j0, j1 = fake.journal[0], fake.journal[1]
    rec = d.of(E.Recycled)[0]
    assert (rec.reason, rec.forced, rec.previous_stream_index, rec.stream_index) == ("age", False, 0, 1)
    assert d.count(E.Restarting) == 0 and d.count(E.SessionError) == 0
    nothing_after_session_end(j0)
    names1 = j1.client_names()
    assert names1.index("audioInput") > names1.index("contentStart")
    assert j1.end == "completed"


async def test_recycle_carries_the_conversation_and_audio_flows_on() -> None:
    responder = ScriptedResponder(Script([
        TurnScript("my name is ann.", ["Nice to meet you, Ann."]),
        TurnScript("what is my name?", ["Your name is Ann."]),
    ]), share_turns_across_streams=True)
    start_history = [("assistant", "Welcome back!"), ("user", "Hi"), ("user", "it's me")]
    async with fake_with_age_limit(responder=responder) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, recycle=AGE_POLICY, history=start_history) as d:
            await d.silence(320)
            await d.speak(1200)
            await d.silence_until(lambda: d.count(E.TurnEnded) >= 1, what="the first answer")
            await d.silence_until(lambda: d.count(E.Recycled) >= 1, pace=REAL_TIME, what="the recycle")
            await d.speak(1200, seed=4)
            await d.silence_until(lambda: any(t.turn.assistant_text == "Your name is Ann." for t in d.of(E.TurnEnded)),
                                  what="the answer on the new stream")
            carried = d.session.history
        j0, j1 = fake.journal[0], fake.journal[1]
    assert history_blocks(j0) == [("USER", "Hi\nit's me")]  # leading ASSISTANT dropped, same roles merged
    assert history_blocks(j1) == [("USER", "Hi\nit's me\nmy name is ann."), ("ASSISTANT", "Nice to meet you, Ann.")]
    assert d.of(E.StreamOpened)[1].history_messages == 2
    assert [m.role.value for m in carried] == ["USER", "ASSISTANT", "USER", "ASSISTANT"][: len(carried)]
    assert carried[-1].text == "Your name is Ann."
    assert d.of(E.Recycled)[0].forced is False
    nothing_after_session_end(j0)
    assert any(c.stream_index == 1 for c in d.of(E.AudioChunk))
    assert d.session.turns[-1].index == 1  # session-wide turn indexes


async def test_recycle_deadline_cuts_a_long_answer_but_sends_nothing_after_session_end() -> None:
    long_reply = ["This is a rather long answer that keeps going for quite a while."] * 3
    responder = ScriptedResponder(Script([TurnScript("tell me a story.", long_reply)]), share_turns_across_streams=True)
    async with fake_with_age_limit(responder=responder) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, recycle=AGE_POLICY) as d:
            await d.silence(320)
            await d.speak(800)
            await d.silence_until(lambda: d.count(E.Recycled) >= 1, pace=REAL_TIME, what="the forced recycle")
            await d.silence(320)
        j0 = fake.journal[0]
    rec = d.of(E.Recycled)[0]
    assert rec.forced is True and rec.reason == "age"
    cut = [t for t in d.of(E.TurnEnded) if t.cut_by == "recycle"]
    assert cut and cut[0].turn.user_text == "tell me a story."
    nothing_after_session_end(j0)
    assert d.count(E.Restarting) == 0


async def test_tool_result_arriving_during_a_recycle_goes_to_the_new_stream() -> None:
    responder = ScriptedResponder(Script(
        [TurnScript("weather in paris?", tool_call=ToolCallScript("get_weather", {"city": "Paris"},
                                                                  filler=["Let me check."]),
                    follow_up=["This must not be said on the old stream."])],
        default=TurnScript("", ["It is 21 degrees in Paris."]),
    ), share_turns_across_streams=True)
    weather = {"name": "get_weather", "description": "Weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    policy = RecyclePolicy(update_max_wait_s=0.3, coalesce_s=0.05, quiet_s=0.1)
    async with FakeNovaSonic(responder=responder, speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, tools=(weather,), recycle=policy) as d:
            await d.silence(320)
            await d.speak(1200)
            await d.silence_until(lambda: d.count(E.ToolCall) >= 1, what="the tool call")
            call = d.of(E.ToolCall)[0]
            results: list[asyncio.Task] = []

            def on_recycling(ev: E.SessionEvent) -> None:
                # the tool finishes while the old stream is being closed
                if isinstance(ev, E.Recycling):
                    assert d.session.state is SessionState.RECYCLING
                    results.append(asyncio.create_task(d.session.send_tool_result(call.tool_use_id, {"temp_c": 21})))

            d.session.on(on_recycling)
            update = asyncio.create_task(d.session.update_instructions("You are terse."))
            await d.silence_until(lambda: results and results[0].done() and update.done(),
                                  what="the result to be delivered")
            await results[0]
            await update
            await d.silence_until(lambda: any(t.stream_index == 1 and "21 degrees" in t.text
                                              for t in d.of(E.AssistantText)), what="the answer using the result")
            assert d.session.pending_tool_calls == ()
        j0, j1 = fake.journal[0], fake.journal[1]
    assert j0.client_events("toolResult") == []
    nothing_after_session_end(j0)
    rec = d.of(E.Recycled)[0]
    assert rec.reason == "update" and rec.forced is True  # the owed result kept it from a quiet point
    system = [e.content for e in j1.client_events("textInput")][0]
    assert system == "You are terse."
    interactive = [c for c in j1.client if c.name == "contentStart" and c.event.type == "TEXT" and c.event.interactive]
    assert len(interactive) == 1
    texts = [e.content for e in j1.client_events("textInput")]
    assert any(call.tool_use_id in t and '{"temp_c":21}' in t for t in texts)
    assert not any("must not be said" in t.text for t in d.of(E.AssistantText))


async def test_update_tools_burst_is_one_recycle() -> None:
    def tool(name: str) -> dict:
        return {"name": name, "description": name, "parameters": {"type": "object", "properties": {}}}

    async with FakeNovaSonic(speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, recycle=RecyclePolicy(coalesce_s=0.1, quiet_s=0.0)) as d:
            await d.silence(64)
            await asyncio.gather(
                d.session.update_tools([tool("a")]),
                d.session.update_tools([tool("a"), tool("b")]),
                d.session.update_tools([tool("c")], tool_choice="c"),
            )
            await d.silence(320)
            await d.wait_for(lambda: fake.journal[1].audio_in_frames >= 5, what="audio on the new stream")
        streams = list(fake.journal)
    assert len(streams) == 2 and d.count(E.Recycled) == 1
    prompt = streams[1].client_events("promptStart")[0]
    assert [t.tool_spec.name for t in prompt.tool_configuration.tools] == ["c"]
    assert prompt.tool_configuration.tool_choice.tool.name == "c"
    nothing_after_session_end(streams[0])


async def test_credentials_are_refreshed_before_they_expire() -> None:
    first, second = generate_credentials(), generate_credentials()
    issued: list[str] = []
    clock = SystemClock()

    def fetch() -> Credentials:
        creds = first if not issued else second
        issued.append(creds.access_key_id)
        lifetime = timedelta(seconds=2.5) if creds is first else timedelta(hours=1)
        return Credentials(creds.access_key_id, creds.secret_access_key, expiry=clock.utcnow() + lifetime)

    policy = RecyclePolicy(credentials_margin_s=2.0, min_age_s=0.1, quiet_s=0.1)
    provider = CachedCredentials(fetch, margin_s=policy.credentials_margin_s, clock=clock)
    async with FakeNovaSonic(speed=math.inf, credentials=(first, second)) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, recycle=policy, credentials=provider, clock=clock) as d:
            await d.silence_until(lambda: d.count(E.Recycled) >= 1, pace=REAL_TIME, what="the recycle")
            await d.silence(160)
        j0, j1 = fake.journal[0], fake.journal[1]
    assert d.of(E.Recycled)[0].reason == "credentials"
    assert (j0.access_key_id, j1.access_key_id) == (first.access_key_id, second.access_key_id)
    assert j0.auth == j1.auth == "ok" and provider.fetches == 2
    nothing_after_session_end(j0)
