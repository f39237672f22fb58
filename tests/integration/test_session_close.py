"""Graceful close of a NovaSonicSession with sends in flight: the documented shutdown reaches the
server, every call is answered, no task is left pending and asyncio reports nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import warnings

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.audio import synth_speech
from novasonic.errors import ProtocolViolation
from novasonic.models import NOVA_2_SONIC
from novasonic.session import NovaSonicSession, SessionClosedError, SessionState
from novasonic.session import events as E
from tests.helpers.session_driver import SessionDriver, options_for

LEAK_MARKERS = ("Task was destroyed", "never retrieved", "was never awaited")


def others() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_close_with_sends_in_flight_leaves_nothing_pending(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asyncio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with FakeNovaSonic(speed=math.inf) as fake:
            session = NovaSonicSession(options_for(fake, model_id=NOVA_2_SONIC))
            events = session.events()
            await session.start()
            session.push_audio(synth_speech(2000, 48000, seed=1), sample_rate=48000)  # a backlog
            text = asyncio.create_task(session.send_text("are you there?"))
            unknown = asyncio.create_task(session.send_tool_result("no-such-call", {"x": 1}))
            await asyncio.sleep(0)
            await asyncio.wait_for(session.aclose(), 10)
            await session.aclose()  # idempotent
            outcomes = await asyncio.gather(text, unknown, return_exceptions=True)
            seen = [ev async for ev in events]
            j = fake.journal[0]
        leftover = others()
        del session, events
        gc.collect()
        await asyncio.sleep(0)
    assert leftover == set(), leftover
    # graceful close sends what is pending (documented): the text went out, the unknown id was
    # refused by the rules with the service's text, not dropped as "closed"
    assert outcomes[0] is None
    assert "are you there?" in [e.content for e in j.client_events("textInput")]
    assert isinstance(outcomes[1], ProtocolViolation)
    assert isinstance(seen[-1], E.Closed) and seen[-1].error is None
    names = j.client_names()
    assert names[-3:] == ["contentEnd", "promptEnd", "sessionEnd"]
    assert j.end == "completed" and j.input_finished
    assert [c.verdict for c in j.client if c.verdict != "accepted"] == []
    logged = [r.getMessage() for r in caplog.records]
    assert not [m for m in logged if any(k in m for k in LEAK_MARKERS)], logged
    assert not [w for w in caught if any(k in str(w.message) for k in LEAK_MARKERS)]


async def test_close_during_a_restart_backoff_and_after_failure() -> None:
    from novasonic.session import RestartPolicy

    policy = RestartPolicy(max_attempts=3, first_delay_s=5.0)  # aclose must not wait for it
    async with FakeNovaSonic(faults=["throttlingException@client:audioInput#5@streams=0"], speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC, restart=policy) as d:
            await d.silence(320)
            await d.wait_for(lambda: d.count(E.Restarting) == 1, what="the restart to begin")
            assert d.session.state is SessionState.RESTARTING
        leftover = others()
    assert d.session.state is SessionState.CLOSED
    assert isinstance(d.events[-1], E.Closed) and d.count(E.StreamOpened) == 1
    assert leftover == set()
    with pytest.raises(SessionClosedError):
        d.session.push_audio(bytes(1024))
    with pytest.raises(SessionClosedError):
        await d.session.send_text("hello")


async def test_audio_pushed_before_start_is_sent_after_the_audio_block_opens() -> None:
    async with FakeNovaSonic(speed=math.inf) as fake:
        session = NovaSonicSession(options_for(fake, model_id=NOVA_2_SONIC))
        session.push_audio(bytes(1024 * 10))  # 10 frames, before any stream exists
        async with session:
            await asyncio.sleep(0)
        j = fake.journal[0]
    names = j.client_names()
    assert names.count("audioInput") == 10
    assert names.index("audioInput") > names.index("contentStart", 5)
