"""The service's limits (protocol.md §3.3) on the fake's compressed clock, seen by the STOCK SDK.

Stream age and idle input run on the scaled clock (``speed``); the silent-audio limit runs on
input-audio time (what the client streamed), so it fires the same at any speed. Assertions are on
service time from the journal, never on wall-clock durations.
"""

from __future__ import annotations

import asyncio

from aws_sdk_bedrock_runtime.models import ModelTimeoutException, ThrottlingException, ValidationException

from fakeserver.audio import synth_speech
from fakeserver.config import generate_credentials
from fakeserver.handler import DEFAULT_AGE_TEXT, DEFAULT_THROTTLE_TEXT
from novasonic.events import AudioInput
from novasonic.rules import Limits, texts
from tests.helpers import factories as f
from tests.helpers.responders import EchoResponder
from tests.helpers.sessions import collect, exchange, opening, receive_n, send_all, wait_ended


async def test_stream_age_limit_is_model_timeout(start_fake, open_session) -> None:
    fake = await start_fake(speed=200, limits=Limits(max_stream_age_s=60, idle_input_timeout_s=10_000))
    d = await open_session(fake)
    await send_all(d, [*opening(), f.audio_start(), f.audio_input()])
    events, exc = await collect(d)
    assert events == []
    assert type(exc) is ModelTimeoutException and exc.message == DEFAULT_AGE_TEXT
    j = await wait_ended(fake)
    assert j.end == "exception:modelTimeoutException"
    assert j.exceptions[-1].t >= 60  # service seconds since the stream opened


async def test_default_eight_minute_limit_at_high_speed(start_fake, open_session) -> None:
    """The real 480 s on a clock 2000x faster (0.24 wall seconds), while the client keeps sending.

    The idle limit is raised: at this speed a routine 40 ms stall of the client's TCP writes
    (awscrt's small frames wait for the server's delayed ACK) is 80 service seconds of silence.
    """
    fake = await start_fake(speed=2000, limits=Limits(idle_input_timeout_s=100_000))
    d = await open_session(fake)
    await send_all(d, [*opening(), f.audio_start()])

    async def keep_talking() -> None:
        while True:
            await d.send(f.audio_input())
            await asyncio.sleep(0.005)

    talker = asyncio.create_task(keep_talking())
    try:
        events, exc = await collect(d)
    finally:
        talker.cancel()
        await asyncio.gather(talker, return_exceptions=True)
    assert type(exc) is ModelTimeoutException and exc.message == DEFAULT_AGE_TEXT
    j = await wait_ended(fake)
    assert j.exceptions[-1].t >= 480
    assert j.end == "exception:modelTimeoutException"
    assert j.audio_in_frames >= 2


async def test_idle_input_is_timed_out_waiting(start_fake, open_session) -> None:
    fake = await start_fake(speed=200)  # default 55 s idle = 0.275 wall seconds
    d = await open_session(fake)
    await send_all(d, opening())  # then nothing
    _, exc = await collect(d)
    assert type(exc) is ValidationException and exc.message == texts.TIMED_OUT_INPUT
    j = await wait_ended(fake)
    assert j.end == "exception:validationException"
    # (the journal stamps an event a moment after the idle timer restarts: allow a hair)
    assert j.exceptions[-1].t - j.client[-1].t >= 55 - 0.5
    assert j.client_names() == [e.EVENT_NAME for e in opening()]


async def test_events_keep_the_stream_alive(start_fake, open_session) -> None:
    """Input more often than the idle limit: no timeout, the session completes."""
    fake = await start_fake(EchoResponder(), speed=50)  # 55 s idle limit = 1.1 wall seconds
    d = await open_session(fake)
    await send_all(d, [*opening(), f.audio_start()])
    for _ in range(30):
        await d.send(f.audio_input())
        await asyncio.sleep(0.01)  # 0.5 service seconds between frames, far below 55
    await send_all(d, [f.content_end("mic"), f.prompt_end(), f.session_end()])
    await d.close_input()
    events, exc = await collect(d)
    assert exc is None and events[0].EVENT_NAME == "completionStart"
    j = await wait_ended(fake)
    assert j.end == "completed" and j.exceptions == []


async def test_silent_audio_run_is_rst_531(start_fake, open_session) -> None:
    """175 s of digital silence, streamed as fast as possible at speed 1: audio time counts."""
    fake = await start_fake(speed=1)
    d = await open_session(fake)
    second = bytes(32_000)  # 1 s of 16 kHz 16-bit silence per frame
    await send_all(d, [*opening(), f.audio_start()])
    for _ in range(180):
        try:
            await asyncio.wait_for(d.send(AudioInput.from_pcm(f.PROMPT, "mic", second)), 10)
        except (OSError, RuntimeError):  # the server may have ended the stream under us
            break
    events, exc = await collect(d)
    assert type(exc) is ValidationException and exc.message == texts.RST_531
    j = await wait_ended(fake)
    assert j.end == "exception:validationException"
    assert 175_000 <= j.audio_in_bytes / 32 < 180_000  # ms of audio accepted when it fired


async def test_speech_resets_the_silent_run(start_fake, open_session) -> None:
    fake = await start_fake(EchoResponder(), speed=1, limits=Limits(silent_audio_timeout_s=3))
    d = await open_session(fake)
    speech = synth_speech(200)
    await send_all(d, [*opening(), f.audio_start()])
    for _ in range(4):  # 4 x (2 s silence + 0.2 s speech): never 3 s of silence in a row
        await d.send(AudioInput.from_pcm(f.PROMPT, "mic", bytes(64_000)))
        await d.send(AudioInput.from_pcm(f.PROMPT, "mic", speech))
    await send_all(d, [f.content_end("mic"), f.prompt_end(), f.session_end()])
    await d.close_input()
    _, exc = await collect(d)
    assert exc is None
    j = await wait_ended(fake)
    assert j.end == "completed" and j.audio_in_bytes / 32 >= 8_800


async def test_concurrent_streams_over_the_limit_are_throttled_at_open(start_fake, open_session) -> None:
    fake = await start_fake(EchoResponder(), limits=Limits(max_concurrent_streams_per_key=2))
    held = []
    for _ in range(2):
        d = await open_session(fake)
        await send_all(d, [*opening(), f.audio_start()])
        await receive_n(d, 1)  # the stream is being served
        held.append(d)
    third = await open_session(fake)
    await send_all(third, opening()[:1])
    try:
        await asyncio.wait_for(third.await_output(), 10)
    except ThrottlingException as exc:
        assert exc.message == "Too many concurrent streams for this account (2 allowed)."
        assert exc.response_metadata.http_status_code == 429
    else:
        raise AssertionError("the third concurrent stream was not throttled")
    j = await wait_ended(fake, 2)
    assert (j.status, j.end) == (429, "http:429")

    # A held stream finishes; the key has room again.
    await send_all(held[0], [f.content_end("mic"), f.prompt_end(), f.session_end()])
    await held[0].close_input()
    assert (await collect(held[0]))[1] is None
    await wait_ended(fake, 0)
    fourth = await open_session(fake)
    await send_all(fourth, exchange())
    await fourth.close_input()
    assert (await collect(fourth))[1] is None
    assert (await wait_ended(fake, 3)).end == "completed"


async def test_concurrent_streams_over_the_limit_in_stream_error(start_fake, open_session) -> None:
    fake = await start_fake(
        EchoResponder(), limits=Limits(max_concurrent_streams_per_key=2), concurrency_error="stream"
    )
    for _ in range(2):
        d = await open_session(fake)
        await send_all(d, [*opening(), f.audio_start()])
        await receive_n(d, 1)
    third = await open_session(fake)
    await send_all(third, opening())
    await third.await_output()  # HTTP 200: the error comes in the stream
    events, exc = await collect(third)
    assert events == []
    assert type(exc) is ThrottlingException and exc.message == DEFAULT_THROTTLE_TEXT
    j = await wait_ended(fake, 2)
    assert (j.status, j.end) == (200, "exception:throttlingException")


async def test_limits_are_per_key(start_fake, open_session) -> None:
    """Another accepted key has its own count."""
    a, b = generate_credentials(), generate_credentials()
    fake = await start_fake(
        EchoResponder(), credentials=(a, b), limits=Limits(max_concurrent_streams_per_key=1)
    )
    first = await open_session(fake, access_key_id=a.access_key_id, secret_access_key=a.secret_access_key)
    await send_all(first, [*opening(), f.audio_start()])
    await receive_n(first, 1)
    other = await open_session(fake, access_key_id=b.access_key_id, secret_access_key=b.secret_access_key)
    await send_all(other, exchange())
    await other.close_input()
    assert (await collect(other))[1] is None
    assert (await wait_ended(fake, 1)).access_key_id == b.access_key_id
