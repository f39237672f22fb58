"""Barge-in through a real ``AgentSession`` with the ``novasonic.livekit`` plugin: the user talks
over the assistant, playback stops at once, the interrupted message is marked, the rest of the
answer is dropped and the interrupting utterance is answered. Every barge-in shape reported for
Nova 2 (client-behaviours #22, spec §2.2 E) is covered."""

from __future__ import annotations

import math

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ScriptedResponder, TurnScript
from tests.helpers.livekit_agents import PlainAgent
from tests.helpers.livekit_harness import AgentHarness
from tests.helpers.livekit_io import SpeakerOutput

#: The microphone runs at 20x real time; the speaker plays at a quarter of that pace, so it holds
#: unplayed audio (as a real client's playout buffer does) when the user talks over it.
SPEED = 20.0

STORY = TurnScript("tell me a story.", [
    "Once upon a time there was a little fox who lived in a very big forest.",
    "Every morning the fox went down to the river to look at the fish.",
    "One day it met a heron who wanted to be its friend.",
])
STOP = TurnScript("stop please.", ["Sure, I'll stop."])


@pytest.mark.parametrize("variant", ["spec", "pipecat", "silent"])
async def test_barge_in_during_speech(variant: str) -> None:
    responder = ScriptedResponder(Script([STORY, STOP]), barge_in_variant=variant)
    async with FakeNovaSonic(responder=responder, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), mic_speed=SPEED, output=SpeakerOutput(playout_speed=SPEED / 4)) as h:
            await h.say(1500)
            await h.wait_for(lambda: h.output.frames > 3, what="the story being played")
            await h.say(1000, seed=2)
            await h.wait_for(lambda: "Sure, I'll stop." in h.assistant_texts(), what="the answer to the barge-in")
            rt_messages = [m for m in h.rt.chat_ctx.items if m.type == "message" and m.role == "assistant"]
        j = fake.journal[0]
    story = [m for m in h.assistant_messages() if m.text_content and "fox" in m.text_content]
    assert len(story) == 1 and story[0].interrupted, "the framework's message must be marked interrupted"
    assert "heron" not in (story[0].text_content or ""), "the rest of the story is dropped"
    assert h.output.segments[0].interrupted and h.output.segments[0].position < h.output.segments[0].duration
    assert rt_messages[0].interrupted and not rt_messages[-1].interrupted, "the plugin's chat_ctx marks it too"
    assert h.user_texts() == ["tell me a story.", "stop please."]
    assert len(fake.journal.streams) == 1 and j.end == "completed" and j.exceptions == []
    assert [(c.name, c.verdict) for c in j.client if c.verdict != "accepted"] == []
    assert h.errors() == []


async def test_speech_queued_after_a_barge_in_is_not_played() -> None:
    """Audio the service sent before it noticed the user is not played after the interruption:
    the turn's generation is closed, later chunks of that turn are dropped."""
    responder = ScriptedResponder(Script([STORY, STOP]), lead_ms=2000.0)  # a large burst ahead of playback
    async with FakeNovaSonic(responder=responder, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), mic_speed=SPEED, output=SpeakerOutput(playout_speed=SPEED / 4)) as h:
            await h.say(1500)
            await h.wait_for(lambda: h.output.frames > 3, what="the story being played")
            await h.say(1000, seed=2)
            await h.wait_for(lambda: "Sure, I'll stop." in h.assistant_texts(), what="the answer to the barge-in")
    first, *rest = h.output.segments
    assert first.interrupted
    assert sum(s.duration for s in rest) < 2.0, "only the short answer follows the interrupted story"
    assert fake.journal[0].exceptions == []
