"""The outbox and the recycle plan of NovaSonicSession, on a ManualClock (no server needed: the
plan is a function of the current stream's age, credentials, pending updates and quiet point)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from novasonic.session import ManualClock, NovaSonicSession, RecyclePolicy, StaticCredentials
from novasonic.session.outbox import AudioItem, Outbox, TextItem
from tests.helpers import factories as f


async def test_outbox_trims_oldest_audio_and_keeps_blocks() -> None:
    box = Outbox(max_audio_bytes=2048)
    fut = asyncio.get_running_loop().create_future()
    box.put(AudioItem(b"a" * 1024))
    box.put(TextItem("hello", future=fut))
    box.put(AudioItem(b"b" * 1024))
    box.put(AudioItem(b"c" * 1024))
    assert box.dropped_audio_bytes == 1024 and box.audio_bytes == 2048
    items = [box.take(), box.take(), box.take(), box.take()]
    assert isinstance(items[0], TextItem) and [i.pcm[:1] for i in items[1:3]] == [b"b", b"c"] and items[3] is None


async def test_outbox_skips_abandoned_calls_and_fails_the_rest() -> None:
    box = Outbox(max_audio_bytes=10_000)
    loop = asyncio.get_running_loop()
    gone, waiting = loop.create_future(), loop.create_future()
    box.put(TextItem("never mind", future=gone))
    box.put(TextItem("still wanted", future=waiting))
    gone.cancel()
    item = box.take()
    assert isinstance(item, TextItem) and item.text == "still wanted"
    box.put_front(item)
    box.fail_all(RuntimeError("closed"))
    with pytest.raises(RuntimeError, match="closed"):
        await waiting


def session_with_stream(policy: RecyclePolicy, *, expires_in: float | None = None) -> tuple[NovaSonicSession, ManualClock]:
    clock = ManualClock()
    s = NovaSonicSession(credentials=StaticCredentials("AKID", "secret"), recycle=policy, clock=clock)
    stream = SimpleNamespace(index=0, opened_at=clock.monotonic(), closing=False,
                             credentials_expire_at=None if expires_in is None else expires_in)
    s._stream = stream  # noqa: SLF001 - the plan reads only these fields
    s._view.begin_stream(0)  # noqa: SLF001
    return s, clock


async def test_silent_user_recycles_at_after_s_without_being_forced() -> None:
    s, clock = session_with_stream(RecyclePolicy.for_max_age(8.0, quiet_s=1.0))
    due, wait = s._recycle_plan(clock.monotonic())  # noqa: SLF001
    assert due is None and wait == pytest.approx(6.0)
    await clock.advance(6.0)
    due, _ = s._recycle_plan(clock.monotonic())  # noqa: SLF001
    assert (due.reason, due.forced) == ("age", False)


async def test_busy_conversation_waits_for_quiet_then_is_forced_at_the_deadline() -> None:
    s, clock = session_with_stream(RecyclePolicy.for_max_age(8.0, quiet_s=1.0))
    await clock.advance(5.9)
    for ev in [f.completion_start(), f.out_audio_start("a"), f.out_audio("a", 3200)]:
        s._view.feed(0, ev, clock.monotonic())  # noqa: SLF001 - the assistant is speaking
    await clock.advance(0.2)
    due, wait = s._recycle_plan(clock.monotonic())  # noqa: SLF001
    assert due is None and 0 < wait <= 0.25  # polls the quiet point
    s._view.feed(0, f.out_content_end("a", "AUDIO", "END_TURN"), clock.monotonic())  # noqa: SLF001
    await clock.advance(0.5)
    assert s._recycle_plan(clock.monotonic())[0] is None  # quiet_s not over yet  # noqa: SLF001
    await clock.advance(0.6)
    assert s._recycle_plan(clock.monotonic())[0].forced is False  # noqa: SLF001

    s2, clock2 = session_with_stream(RecyclePolicy.for_max_age(8.0, quiet_s=1.0))
    s2._view.feed(0, f.out_audio_start("a"), 0.0)  # noqa: SLF001 - speaking forever
    await clock2.advance(7.5)
    due, _ = s2._recycle_plan(clock2.monotonic())  # noqa: SLF001
    assert (due.reason, due.forced) == ("age", True)


async def test_credential_expiry_moves_the_recycle_earlier() -> None:
    policy = RecyclePolicy(credentials_margin_s=180.0, min_age_s=10.0)
    s, clock = session_with_stream(policy, expires_in=300.0)
    due, wait = s._recycle_plan(clock.monotonic())  # noqa: SLF001
    assert due is None and wait == pytest.approx(120.0)
    await clock.advance(120.0)
    due, _ = s._recycle_plan(clock.monotonic())  # noqa: SLF001
    assert (due.reason, due.forced) == ("credentials", False)
    # credentials that are already nearly expired do not recycle before min_age_s
    s2, clock2 = session_with_stream(policy, expires_in=60.0)
    assert s2._recycle_plan(clock2.monotonic())[0] is None  # noqa: SLF001
    await clock2.advance(10.0)
    assert s2._recycle_plan(clock2.monotonic())[0].forced is True  # noqa: SLF001
