"""Regression tests from the review of ``novasonic.session`` (each names the defect it pins).

Real parts throughout: the session's stock SDK client on CRT against ``FakeNovaSonic``.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ScriptedResponder, TurnScript
from novasonic.errors import ProtocolViolation
from novasonic.models import NOVA_2_SONIC
from novasonic.session import NovaSonicSession, RecyclePolicy, RestartPolicy, SessionState
from novasonic.session import events as E
from tests.helpers.session_driver import SessionDriver, options_for

FAST = RestartPolicy(max_attempts=3, first_delay_s=0.0, base_delay_s=0.01, max_delay_s=0.05)


def others() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


@pytest.mark.parametrize("yields", [1, 3, 8, 20])
async def test_aclose_cancelled_half_way_still_closes_and_a_second_aclose_returns(yields: int) -> None:
    """A caller's timeout (``wait_for(aclose(), t)``) cancelled ``aclose`` in its graceful part:
    the session stayed CLOSING forever with the stream's writer/reader running, and every later
    ``aclose()``/``wait_closed()`` waited forever."""
    async with FakeNovaSonic(speed=math.inf) as fake:
        session = NovaSonicSession(options_for(fake, model_id=NOVA_2_SONIC))
        await session.start()
        session.push_audio(bytes(1024 * 60))  # a backlog the graceful close drains
        closing = asyncio.create_task(session.aclose())
        for _ in range(yields):
            await asyncio.sleep(0)
        closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)
        await asyncio.wait_for(session.aclose(), 5)
        await asyncio.wait_for(session.wait_closed(), 5)
        leftover = others()
    assert session.state is SessionState.CLOSED
    assert leftover == set(), leftover


async def test_update_tools_the_service_would_refuse_fails_the_call_not_the_session() -> None:
    """``additionalProperties`` (pydantic schemas have it) is refused in ``promptStart``. The
    update passed ``SessionOptions`` validation, the old stream was closed, the new stream's start
    block failed the rules and the whole session died (the caller only saw SessionClosedError).
    Bad input must get a clear error and lose nothing."""
    bad = {"name": "lookup", "description": "Look up", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False}}
    async with FakeNovaSonic(speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, recycle=RecyclePolicy(coalesce_s=0.0, quiet_s=0.0)) as d:
            await d.silence(64)
            with pytest.raises(ProtocolViolation, match="lookup|Invalid input"):
                await d.session.update_tools([bad])
            assert d.session.state is SessionState.ACTIVE and d.session.options.tools == ()
            await d.silence(320)
            await d.wait_for(lambda: fake.journal[0].audio_in_frames >= 10, what="audio still flowing")
        streams = list(fake.journal)
    assert len(streams) == 1 and d.count(E.Recycling) == 0 and d.count(E.SessionError) == 0
    assert streams[0].end == "completed"


async def test_a_new_stream_that_times_out_opening_is_retried() -> None:
    """A stream whose response headers do not come within ``open_timeout_s`` raised a bare
    ``TimeoutError``, which is not retryable: one slow open during a recycle ended the session."""
    policy = RestartPolicy(max_attempts=3, first_delay_s=0.0, base_delay_s=0.01, max_delay_s=0.05,
                           open_timeout_s=0.5)
    async with FakeNovaSonic(speed=1.0, faults=["delay-headers:30@open@streams=1"]) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, restart=policy,
                                 recycle=RecyclePolicy(coalesce_s=0.0, quiet_s=0.0)) as d:
            await d.silence(64)
            await asyncio.wait_for(d.session.recycle(), 10)
            await d.silence(160)
            await d.wait_for(lambda: len(fake.journal) >= 3 and fake.journal[2].audio_in_frames >= 5,
                             what="audio on the stream after the slow one")
        streams = list(fake.journal)
    assert d.session.error is None and d.count(E.SessionError) == 0
    assert [o.reason for o in d.of(E.StreamOpened)] == ["start", "restart"]
    assert d.count(E.Restarting) == 1 and "timed out" in str(d.of(E.Restarting)[0].error)
    assert streams[2].end == "completed"


async def test_a_question_cut_off_by_a_restart_is_answered_on_the_new_stream() -> None:
    """The stream broke after the user's transcript and before any answer. The question was
    carried only as (non-interactive) chat history, which the model does not answer: the user was
    left in silence (LiveKit and Pipecat re-send the last USER message as interactive text)."""
    responder = ScriptedResponder(Script([TurnScript("what time is it?", ["It is noon."])],
                                         default=TurnScript("", ["It is noon, as I said."])),
                                  share_turns_across_streams=True)
    # contentStart #1 is the USER transcript, #2 would be the assistant's first text
    spec = "modelStreamErrorException@server:contentStart#2@streams=0"
    async with FakeNovaSonic(responder=responder, faults=[spec], speed=math.inf, seed=8) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, restart=FAST) as d:
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: d.count(E.StreamOpened) >= 2, what="the restart")
            await d.silence_until(lambda: any(t.stream_index == 1 for t in d.of(E.AssistantText)),
                                  what="an answer on the new stream without the user asking again")
            await d.silence_until(lambda: any(t.stream_index == 1 for t in d.of(E.TurnEnded)), what="its end")
            history = [(m.role.value, m.text) for m in d.session.history]
        j1 = fake.journal[1]
    assert [t.turn.user_text for t in d.of(E.TurnEnded) if t.cut_by == "restart"] == ["what time is it?"]
    blocks = [(c.event.role, c.event.interactive) for c in j1.client
              if c.name == "contentStart" and c.event.type == "TEXT" and c.event.role != "SYSTEM"]
    assert blocks == [("USER", True)]  # no history left to carry: the question went as input
    assert "what time is it?" in [e.content for e in j1.client_events("textInput")]
    assert history == [("USER", "what time is it?"), ("ASSISTANT", "It is noon, as I said.")]
    assert [c.verdict for c in j1.client if c.verdict != "accepted"] == []


async def test_an_answered_conversation_is_not_re_sent_after_a_restart() -> None:
    """The counterpart: when the last message is the assistant's, nothing is re-sent as input."""
    responder = ScriptedResponder(Script([TurnScript("what time is it?", ["It is noon."])]),
                                  share_turns_across_streams=True)
    spec = "modelStreamErrorException@client:audioInput#120@streams=0"  # after the answer
    async with FakeNovaSonic(responder=responder, faults=[spec], speed=math.inf, seed=8) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, restart=FAST) as d:
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: d.count(E.TurnEnded) >= 1, what="the answer")
            await d.silence_until(lambda: d.count(E.StreamOpened) >= 2, what="the restart")
            await d.silence(320)
        j1 = fake.journal[1]
    assert any(t.turn.assistant_text for t in d.of(E.TurnEnded))
    assert not [c for c in j1.client if c.name == "contentStart" and c.event.type == "TEXT" and c.event.interactive]


async def test_changing_frame_ms_keeps_every_frame_whole() -> None:
    """``update_options(frame_ms=...)`` flushed the audio pump: the partial frame (and the
    resampler's tail) went out as a short frame in the middle of the conversation."""
    async with FakeNovaSonic(speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, recycle=RecyclePolicy(coalesce_s=0.0, quiet_s=0.0)) as d:
            d.session.push_audio(bytes(3200))  # 100 ms: three 1024-byte frames and 128 bytes waiting
            await d.session.update_options(frame_ms=20.0)
            d.session.push_audio(bytes(6400 - 128))  # with the 128 waiting: exactly ten 640-byte frames
            await d.wait_for(lambda: fake.journal[-1].audio_in_frames >= 10, what="the 20 ms frames")
        streams = list(fake.journal)
    sizes = [c.n_bytes for j in streams for c in j.client if c.name == "audioInput"]
    assert sizes == [1024] * 3 + [640] * 10, sizes


async def test_update_history_before_start_is_carried_by_the_first_stream() -> None:
    """``update_history`` before ``start()`` is documented to change what the first stream
    carries; ``start()`` (``history=()`` by default) silently replaced it with nothing."""
    async with FakeNovaSonic(speed=math.inf) as fake:
        session = NovaSonicSession(options_for(fake, model_id=NOVA_2_SONIC))
        await session.update_history([("user", "I'm Ann."), ("assistant", "Hello Ann!")])
        async with session:
            carried = [(m.role.value, m.text) for m in session.history]
        j = fake.journal[0]
    assert carried == [("USER", "I'm Ann."), ("ASSISTANT", "Hello Ann!")]
    texts = [e.content for e in j.client_events("textInput")]
    assert "I'm Ann." in texts and "Hello Ann!" in texts
