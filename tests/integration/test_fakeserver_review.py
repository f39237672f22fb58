"""Edge cases of the stream handler (fakeserver/handler.py) found in review: how a stream ends when
the responder breaks, when the client vanishes or resets while the responder is busy, when a
limit fires in the middle of buffered input, and when input ends before any event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aws_sdk_bedrock_runtime.models import InternalServerException, ThrottlingException
from smithy_aws_event_stream.exceptions import ChecksumMismatch

from fakeserver.faults import DEFAULT_EXCEPTION_TEXTS
from fakeserver.responders.base import StreamContext
from novasonic.events import InputEvent, SessionStart
from novasonic.rules import Fact, Limits, texts
from novasonic.wire import Credentials, encode_chunk
from tests.helpers import factories as f
from tests.helpers.raw_client import RawClient
from tests.helpers.responders import EchoResponder, SilentResponder, TalkResponder, _Base
from tests.helpers.sessions import TIMEOUT, collect, opening, receive_n, send_all, wait_ended


class _Raising(_Base):
    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None:
        await super().on_event(event, facts)
        if isinstance(event, SessionStart):
            raise RuntimeError("responder bug")


class RaisingOnEvent(SilentResponder):
    def open_stream(self, ctx: StreamContext) -> _Base:
        s = _Raising(ctx)
        self.streams.append(s)
        return s


class RaisingAtOpen(SilentResponder):
    def open_stream(self, ctx: StreamContext) -> _Base:
        raise RuntimeError("responder cannot open")


class _Busy(_Base):
    """Keeps the handler's read loop inside ``on_event`` (sessionStart): emits until the stream is
    closed, or just waits when ``emit`` is False."""

    def __init__(self, ctx: StreamContext, emit: bool) -> None:
        super().__init__(ctx)
        self.emit = emit
        self.busy = asyncio.Event()

    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None:
        await super().on_event(event, facts)
        if not isinstance(event, SessionStart):
            return
        self.busy.set()
        if not self.emit:
            await asyncio.sleep(3600)
        ids = {"prompt_name": "", "session_id": self.ctx.session_id, "completion_id": self.ctx.new_id()}
        while await self.ctx.emit(f.usage_event(**ids)):
            await asyncio.sleep(0.005)


class BusyResponder(SilentResponder):
    def __init__(self, emit: bool) -> None:
        super().__init__()
        self.emit = emit

    def open_stream(self, ctx: StreamContext) -> _Base:
        s = _Busy(ctx, self.emit)
        self.streams.append(s)
        return s


def _creds(fake) -> Credentials:
    return Credentials(fake.access_key_id, fake.secret_access_key)


# ------------------------------------------------------------------------- responder failures


async def test_responder_failing_in_on_event_ends_with_internal_server_exception(start_fake, open_session) -> None:
    fake = await start_fake(RaisingOnEvent())
    d = await open_session(fake)
    await send_all(d, opening()[:1])
    events, exc = await collect(d)
    assert events == [] and type(exc) is InternalServerException
    j = await wait_ended(fake)
    assert (j.status, j.end) == (200, "exception:internalServerException")
    assert fake.handler.active_per_key == {}


async def test_responder_failing_to_open_is_an_internal_error_not_a_completed_stream(start_fake, open_session) -> None:
    fake = await start_fake(RaisingAtOpen())
    d = await open_session(fake)
    await send_all(d, opening()[:1])
    with pytest.raises(InternalServerException):
        await asyncio.wait_for(d.await_output(), TIMEOUT)
    j = await wait_ended(fake)
    assert (j.status, j.end) == (500, "http:500")
    assert fake.handler.active_per_key == {}


# ------------------------------------------------------------------------- the client goes away


async def test_client_vanishing_while_the_responder_is_busy_is_connection_lost(start_fake) -> None:
    """The handler task is cancelled by the connection's teardown: that is a lost connection, not a
    server shutdown (nobody is shutting the server down)."""
    responder = BusyResponder(emit=False)
    fake = await start_fake(responder)
    raw = await RawClient.connect(fake.port, fake.ca_file)
    stream = await raw.open(_creds(fake), region=fake.region)
    await stream.send_event(f.session_start())
    assert await stream.wait_headers() == 200
    await _until(lambda: responder.streams)
    await asyncio.wait_for(_first(responder).busy.wait(), TIMEOUT)
    raw.abort()
    j = await wait_ended(fake)
    assert j.end == "connection-lost"
    await _until(lambda: fake.handler.active_per_key == {} and not fake.handler.sessions)


async def test_client_reset_seen_by_emit_is_client_reset(start_fake) -> None:
    """The read loop is busy in on_event, so the responder's emit is the first to see the client's
    RST_STREAM: the journal still says the client reset the stream."""
    responder = BusyResponder(emit=True)
    fake = await start_fake(responder)
    raw = await RawClient.connect(fake.port, fake.ca_file)
    stream = await raw.open(_creds(fake), region=fake.region)
    await stream.send_event(f.session_start())
    await _until(lambda: responder.streams)
    await asyncio.wait_for(_first(responder).busy.wait(), TIMEOUT)
    raw.conn.reset_stream(stream.stream_id, 8)  # CANCEL
    await raw.flush()
    j = await wait_ended(fake)
    await raw.close()
    assert j.end == "client-reset"
    await _until(lambda: fake.handler.active_per_key == {})


# ------------------------------------------------------------------------- limits and buffered input


async def test_silent_audio_limit_stops_accepting_buffered_input(start_fake) -> None:
    """Seven 32 ms silent frames in ONE DATA frame, limit 100 ms: the 4th frame reaches it; nothing
    after it is accepted or handed to the responder."""
    responder = SilentResponder()
    fake = await start_fake(responder, limits=Limits(silent_audio_timeout_s=0.1))
    raw = await RawClient.connect(fake.port, fake.ca_file)
    stream = await raw.open(_creds(fake), region=fake.region)
    for ev in [*opening(), f.audio_start()]:
        await stream.send_event(ev)
    batch = b"".join(stream.sign(encode_chunk(ev.to_bytes())) for ev in f.audio_frames(count=7))
    await stream.send_bytes(batch)
    status, frames = await stream.response()
    await raw.close()
    assert status == 200 and [fr.member for fr in frames] == ["validationException"]
    assert frames[0].message == texts.RST_531
    j = await wait_ended(fake)
    assert j.end == "exception:validationException"
    assert j.audio_in_frames == 4
    assert sum(1 for e in responder.streams[0].events if e.EVENT_NAME == "audioInput") == 3


async def test_over_concurrency_stream_closed_without_events_is_still_throttled(start_fake, open_session) -> None:
    fake = await start_fake(EchoResponder(), limits=Limits(max_concurrent_streams_per_key=1), concurrency_error="stream")
    held = await open_session(fake)
    await send_all(held, [*opening(), f.audio_start()])
    await receive_n(held, 1)
    extra = await open_session(fake)
    await asyncio.wait_for(extra.close_input(), TIMEOUT)
    events, exc = await collect(extra)
    assert events == []
    assert type(exc) is ThrottlingException and exc.message == DEFAULT_EXCEPTION_TEXTS["throttlingException"]
    j = await wait_ended(fake, 1)
    assert j.end == "exception:throttlingException"


# ------------------------------------------------------------------------- faults at open


@pytest.mark.parametrize("spec", ["internalServerException@open", "rst@open", "end@open"])
async def test_terminal_fault_at_open_does_not_open_a_responder(start_fake, spec: str) -> None:
    responder = SilentResponder()
    fake = await start_fake(responder, faults=[spec])
    raw = await RawClient.connect(fake.port, fake.ca_file)
    stream = await raw.open(_creds(fake), region=fake.region)
    await stream.response()
    await raw.close()
    j = await wait_ended(fake)
    assert j.end.startswith(("exception:", "fault:"))
    assert responder.streams == []  # nothing was asked of a responder for a stream already over
    await _until(lambda: fake.handler.active_per_key == {})


# ------------------------------------------------------------------------- helpers


def _first(responder: SilentResponder) -> _Busy:
    assert responder.streams, "no stream opened"
    s = responder.streams[0]
    assert isinstance(s, _Busy)
    return s


async def _until(cond, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_corrupt_at_a_server_event_corrupts_that_event(start_fake, open_session) -> None:
    """``corrupt@server:audioOutput#2`` sends the 2nd audioOutput with a bad CRC; the journal shows
    that event, not a filler usageEvent the responder never emitted."""
    fake = await start_fake(TalkResponder(chunks=5), faults=["corrupt:message@server:audioOutput#2"])
    d = await open_session(fake)
    await send_all(d, [*opening(), f.audio_start(), *f.audio_frames(count=3)])
    events, exc = await collect(d)
    assert [e.EVENT_NAME for e in events] == ["completionStart", "contentStart", "audioOutput"]
    assert type(exc) is ChecksumMismatch
    j = await wait_ended(fake)
    assert j.end == "fault:corrupt"
    assert [s.name for s in j.server if s.kind == "event"] == ["completionStart", "contentStart", "audioOutput", "audioOutput"]
