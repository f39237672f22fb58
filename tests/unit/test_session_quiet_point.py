"""Regression tests from the review of ``novasonic.session`` that need no server (ManualClock,
the real AudioInputPump/Outbox/TurnView of a session)."""

from __future__ import annotations

from types import SimpleNamespace

from fakeserver.audio import silence, synth_speech
from novasonic.session import ManualClock, NovaSonicSession, RecyclePolicy, StaticCredentials


def session_with_stream(policy: RecyclePolicy, **kw) -> tuple[NovaSonicSession, ManualClock]:
    clock = ManualClock()
    s = NovaSonicSession(credentials=StaticCredentials("AKID", "secret"), recycle=policy, clock=clock, **kw)
    s._stream = SimpleNamespace(index=0, opened_at=clock.monotonic(), closing=False,  # noqa: SLF001
                                credentials_expire_at=None)
    s._view.begin_stream(0)  # noqa: SLF001
    return s, clock


async def test_a_recycle_does_not_cut_the_user_mid_sentence_before_the_service_reports_it() -> None:
    """The quiet point looked only at the service's output. The service reports speech only
    after it detected it, so a recycle falling in the first few hundred ms of an utterance sent
    its start to the old stream (closed, never answered) and the rest to the new one."""
    s, clock = session_with_stream(RecyclePolicy.for_max_age(8.0, quiet_s=0.5))
    await clock.advance(6.0)  # from here the plan recycles at the first quiet point
    s.push_audio(synth_speech(200, 16000, seed=2))  # the user starts talking; no output yet
    assert s._recycle_plan(clock.monotonic())[0] is None  # noqa: SLF001
    await clock.advance(0.3)
    s.push_audio(silence(300, 16000))  # a pause, still inside quiet_s of the speech
    assert s._recycle_plan(clock.monotonic())[0] is None  # noqa: SLF001
    await clock.advance(0.5)  # quiet_s after the last voiced frame (the pause's first frame held speech's tail)
    due, _ = s._recycle_plan(clock.monotonic())  # noqa: SLF001
    assert due is not None and (due.reason, due.forced) == ("age", False)
    # a microphone that never goes quiet is still recycled at the deadline
    s2, clock2 = session_with_stream(RecyclePolicy.for_max_age(8.0, quiet_s=0.5))
    for _ in range(76):  # past the 7.5 s deadline
        await clock2.advance(0.1)
        s2.push_audio(synth_speech(100, 16000, seed=3))
    due, _ = s2._recycle_plan(clock2.monotonic())  # noqa: SLF001
    assert due is not None and due.forced is True
