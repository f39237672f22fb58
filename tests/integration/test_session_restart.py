"""Restart after retryable errors, exhaustion, non-retryable errors (NovaSonicSession against
FakeNovaSonic through the stock SDK client; faults injected by the fake)."""

from __future__ import annotations

import math

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ScriptedResponder, TurnScript
from novasonic.models import NOVA_2_SONIC
from novasonic.session import RestartPolicy, RestartsExhausted, SessionClosedError, SessionState
from novasonic.session import events as E
from tests.helpers.session_driver import SessionDriver

FAST = RestartPolicy(max_attempts=3, first_delay_s=0.0, base_delay_s=0.01, max_delay_s=0.05)

RETRYABLE_FAULTS = {
    "throttling": "throttlingException",
    "model-timeout": "modelTimeoutException",
    "model-stream-error": "modelStreamErrorException",
    "invalid-event-bytes": "corrupt",
    "531": "validationException:RequestId=abc : InternalErrorCode=531::RST_STREAM closed stream. "
           "HTTP/2 error code: NO_ERROR",
    "system-instability": "validationException:System instability detected. Please retry your request.",
    "rst-stream": "rst",
}


def scripted() -> ScriptedResponder:
    return ScriptedResponder(Script([TurnScript("what time is it?", ["It is noon.", "Anything else?"])],
                                    default=TurnScript("and now?", ["Still noon."])),
                             share_turns_across_streams=True)


@pytest.mark.parametrize("fault", list(RETRYABLE_FAULTS), ids=list(RETRYABLE_FAULTS))
async def test_retryable_error_mid_answer_restarts_with_history_and_audio(fault: str) -> None:
    spec = f"{RETRYABLE_FAULTS[fault]}@server:audioOutput#3@streams=0"
    async with FakeNovaSonic(responder=scripted(), faults=[spec], speed=math.inf, seed=8) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, restart=FAST) as d:
            old = d.session.current_stream
            stale = []
            d.session.on(lambda ev: stale.append(
                (old._writer.done(), old._reader.done())) if isinstance(ev, E.StreamOpened) and ev.stream_index else None)
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: d.count(E.StreamOpened) >= 2, what="the restart")
            await d.speak(1200, seed=3)
            await d.silence_until(lambda: any(t.turn.assistant_text == "Still noon." for t in d.of(E.TurnEnded)),
                                  what="an answer on the new stream")
        j0, j1 = fake.journal[0], fake.journal[1]
    restarting = d.of(E.Restarting)
    assert len(restarting) == 1 and restarting[0].attempt == 1 and restarting[0].stream_index == 0
    assert d.of(E.StreamOpened)[1].reason == "restart"
    assert stale == [(True, True)], "the old writer/reader must be finished before the new stream opens"
    assert d.count(E.SessionError) == 0 and d.session.state is SessionState.CLOSED
    # the interrupted turn is carried: its user transcript and what the assistant had started to say
    cut = [t for t in d.of(E.TurnEnded) if t.cut_by == "restart"]
    assert cut and cut[0].turn.user_text == "what time is it?"
    history = [(c.event.role, c.event.interactive) for c in j1.client
               if c.name == "contentStart" and c.event.type == "TEXT" and c.event.role != "SYSTEM"]
    assert history[0] == ("USER", False)
    texts = [e.content for e in j1.client_events("textInput")]
    assert "what time is it?" in texts
    # audio resumed on the new stream: one audio block, frames after it, an answer spoken
    names1 = j1.client_names()
    assert names1.count("contentStart") >= 2 and names1.count("audioInput") > 0
    assert sum(1 for c in j1.client if c.name == "contentStart" and c.event.type == "AUDIO") == 1
    assert any(c.stream_index == 1 for c in d.of(E.AudioChunk))
    assert j1.end == "completed" and [c.verdict for c in j1.client if c.verdict != "accepted"] == []
    assert j0.end != "completed"


async def test_restart_attempts_exhausted_is_not_recoverable() -> None:
    policy = RestartPolicy(max_attempts=2, first_delay_s=0.0, base_delay_s=0.01, max_delay_s=0.01)
    async with FakeNovaSonic(faults=["throttlingException@server:usageEvent#1@times=0"], speed=math.inf) as fake:
        d = SessionDriver(fake, model_id=NOVA_2_SONIC, restart=policy)
        try:
            await d.session.start()
        except RestartsExhausted:
            pass  # all attempts may already fail inside start()
        await d.wait_for(lambda: d.session.closed, what="the session to fail")
        await d.session.aclose()
        opened = len(fake.journal)
    assert [r.attempt for r in d.of(E.Restarting)] == [1, 2]
    assert opened == 3
    errors = d.of(E.SessionError)
    assert len(errors) == 1 and not errors[0].recoverable and isinstance(errors[0].error, RestartsExhausted)
    assert isinstance(d.events[-1], E.Closed) and isinstance(d.events[-1].error, RestartsExhausted)
    assert d.session.state is SessionState.FAILED
    assert "ThrottlingException" in str(d.session.error)


async def test_non_retryable_error_surfaces_without_restart() -> None:
    from aws_sdk_bedrock_runtime.models import ValidationException

    spec = "validationException:Invalid input request, please fix your input and try again.@server:audioOutput#2"
    async with FakeNovaSonic(responder=scripted(), faults=[spec], speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, restart=FAST) as d:
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: d.session.closed, what="the session to fail")
            with pytest.raises(SessionClosedError, match="failed"):
                d.session.push_audio(bytes(1024))
        opened = len(fake.journal)
    assert opened == 1 and d.count(E.Restarting) == 0
    err = d.of(E.SessionError)
    assert len(err) == 1 and not err[0].recoverable and isinstance(err[0].error, ValidationException)
    assert isinstance(d.events[-1], E.Closed) and d.events[-1].error is err[0].error
    assert d.session.state is SessionState.FAILED


async def test_retryable_http_error_at_open_is_retried_by_start() -> None:
    async with FakeNovaSonic(faults=["http:ModelNotReadyException@open@streams=0"], speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, restart=FAST) as d:
            await d.silence(64)
        assert len(fake.journal) == 2 and fake.journal[1].end == "completed"
    assert [o.reason for o in d.of(E.StreamOpened)] == ["restart"]
    assert d.of(E.Restarting)[0].error.__class__.__name__ == "ModelNotReadyException"


async def test_non_retryable_http_error_at_open_raises_from_start() -> None:
    from aws_sdk_bedrock_runtime.models import AccessDeniedException

    async with FakeNovaSonic(faults=["http:AccessDeniedException@open"], speed=math.inf) as fake:
        d = SessionDriver(fake, model_id=NOVA_2_SONIC, restart=FAST)
        with pytest.raises(AccessDeniedException):
            await d.session.start()
    assert d.session.state is SessionState.FAILED
    assert isinstance(d.events[-1], E.Closed) and isinstance(d.events[-1].error, AccessDeniedException)
