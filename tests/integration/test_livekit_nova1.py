"""Nova Sonic 1 (``RealtimeModel.with_nova_sonic_1()``) through a real ``AgentSession``: audio-only
turns with per-sentence blocks and the FINAL text after the audio, user speech events derived from
the transcript (Nova 1 sends no userSpeechStart/End), ``generate_reply`` as a completed empty
generation, typed text refused with a clear error, barge-in signalled by the text marker."""

from __future__ import annotations

import asyncio
import math

from livekit.agents.voice import events as ev

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ScriptedResponder, TurnScript
from novasonic.livekit import RealtimeModel
from tests.helpers.livekit_agents import PlainAgent, text_blocks
from tests.helpers.livekit_harness import AgentHarness
from tests.helpers.livekit_io import SpeakerOutput

NOVA1 = {"factory": RealtimeModel.with_nova_sonic_1}


async def test_nova1_audio_turn() -> None:
    script = Script([TurnScript("what time is it?", ["It is noon.", "The sun is high."])])
    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), **NOVA1) as h:
            await h.say(1500)
            await h.wait_for(lambda: h.assistant_texts(), what="the answer")
        j = fake.journal[0]
    start = j.client_events("sessionStart")[0]
    assert start.endpointing_sensitivity is not None, "Nova 1 takes the flat endpointingSensitivity"
    assert "userSpeechStart" not in j.server_names()
    # one message for the per-sentence blocks; the FINAL text after the audio is not repeated
    assert h.assistant_texts() == ["It is noon. The sun is high."]
    assert [e.transcript for e in h.of(ev.UserInputTranscribedEvent) if e.is_final] == ["what time is it?"]
    states = [e.new_state for e in h.of(ev.UserStateChangedEvent)]
    assert "speaking" in states, "speech events derived from the transcript"
    assert [(c.name, c.verdict) for c in j.client if c.verdict != "accepted"] == []
    assert h.errors() == []


async def test_nova1_generate_reply_and_typed_text_do_not_hang() -> None:
    script = Script([], default=None)
    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), mic=False, **NOVA1) as h:
            await h.wait_for(lambda: h.rt.session.state == "active", what="the stream")
            handle = h.session.generate_reply(instructions="Greet the user.")
            await asyncio.wait_for(handle.wait_for_playout(), 10)
            gen = await asyncio.wait_for(h.rt.generate_reply(instructions="Greet the user."), 1)
            assert gen.user_initiated and [m async for m in gen.message_stream] == []
            await asyncio.wait_for(h.session.run(user_input="hello"), 10)
        j = fake.journal[0]
    assert [b for b in text_blocks(j) if b[1]] == [], "Nova 1 must not be sent interactive text"
    assert h.assistant_texts() == []
    assert [(c.name, c.verdict) for c in j.client if c.verdict != "accepted"] == []
    assert j.end == "completed"


async def test_nova1_barge_in_by_the_text_marker() -> None:
    story = TurnScript("tell me a story.", ["Once upon a time there was a little fox in a very big forest.",
                                            "Every morning it went down to the river."])
    responder = ScriptedResponder(Script([story, TurnScript("stop.", ["Okay."])]))
    async with FakeNovaSonic(responder=responder, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), mic_speed=20.0, output=SpeakerOutput(playout_speed=5.0),
                                **NOVA1) as h:
            await h.say(1500)
            await h.wait_for(lambda: h.output.frames > 3, what="the story being played")
            await h.say(1000, seed=2)
            await h.wait_for(lambda: "Okay." in h.assistant_texts(), what="the answer after the barge-in")
        j = fake.journal[0]
    assert any(getattr(e, "content", None) == '{ "interrupted" : true }' for e in j.server_events("textOutput"))
    story_msgs = [m for m in h.assistant_messages() if "fox" in (m.text_content or "")]
    assert len(story_msgs) == 1 and story_msgs[0].interrupted
    assert h.user_texts() == ["tell me a story.", "stop."]
    assert h.errors() == []
