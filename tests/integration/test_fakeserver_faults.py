"""Injected faults, each seen through the STOCK SDK client the way the real service's would be.

Fault specs are ``ACTION@TRIGGER[@streams=..][@times=N]`` (fakeserver/faults.py). What the SDK
does with each (checked here):

- the six in-stream exceptions → ``receive()`` raises ``aws_sdk_bedrock_runtime.models.<Class>``
  with ``.message``; the stream is over (``receive()`` then returns ``None``);
- ``http:<Type>@open`` → ``await_output()`` (and so ``receive()``) raises the modeled class;
- ``corrupt:prelude`` / ``corrupt:message`` → ``receive()`` raises
  ``smithy_aws_event_stream.exceptions.ChecksumMismatch`` (no Bedrock class; the text names the
  expected and calculated CRC);
- ``rst``, ``goaway``, ``end`` → ``receive()`` returns ``None`` (no exception), mid-answer;
- ``delay-headers`` / ``drip`` → only timing changes (asserted on the service clock of the journal).
"""

from __future__ import annotations

import re

import pytest
from aws_sdk_bedrock_runtime import models
from smithy_aws_event_stream.exceptions import ChecksumMismatch

from fakeserver.faults import DEFAULT_EXCEPTION_TEXTS, Action, Fault, FaultPlan, Trigger
from fakeserver.http_errors import HTTP_ERRORS
from novasonic.wire import STREAM_EXCEPTIONS
from tests.helpers import factories as f
from tests.helpers.responders import TalkResponder
from tests.helpers.sessions import collect, exchange, opening, receive_n, send_all, wait_ended

TALK = [*opening(), f.audio_start(), *f.audio_frames(count=3)]


def names(events) -> list[str]:
    return [e.EVENT_NAME for e in events]


# ------------------------------------------------------------------------- in-stream exceptions


@pytest.mark.parametrize("member", list(STREAM_EXCEPTIONS))
async def test_in_stream_exception_fault(start_fake, open_session, member: str) -> None:
    fake = await start_fake(faults=[f"{member}@client:audioInput#3"])
    d = await open_session(fake)
    await send_all(d, TALK)
    events, exc = await collect(d)
    cls = getattr(models, STREAM_EXCEPTIONS[member].sdk_class)
    assert events == []
    assert type(exc) is cls and exc.message == DEFAULT_EXCEPTION_TEXTS[member]
    assert exc.fault == STREAM_EXCEPTIONS[member].fault
    assert await collect(d) == ([], None)
    j = await wait_ended(fake)
    assert j.end == f"exception:{member}"
    assert [(s.kind, s.name) for s in j.server] == [("fault", f"{member}@client:audioInput#3"), ("exception", member)]
    assert j.audio_in_frames == 3 and j.client[-1].name == "audioInput"


async def test_in_stream_exception_with_message_mid_answer(start_fake, open_session) -> None:
    spec = "modelStreamErrorException:Model stream broke@server:audioOutput#3"
    fake = await start_fake(TalkResponder(chunks=5), faults=[spec])
    d = await open_session(fake)
    await send_all(d, TALK)
    events, exc = await collect(d)
    assert names(events) == ["completionStart", "contentStart", "audioOutput", "audioOutput"]
    assert type(exc) is models.ModelStreamErrorException and exc.message == "Model stream broke"


# ------------------------------------------------------------------------- HTTP errors at open

HTTP_AT_OPEN = ["ModelNotReadyException", "ThrottlingException", "AccessDeniedException", "ServiceUnavailableException"]


@pytest.mark.parametrize("error_type", HTTP_AT_OPEN)
async def test_http_error_at_open(start_fake, open_session, error_type: str) -> None:
    fake = await start_fake(faults=[f"http:{error_type}@open"])
    d = await open_session(fake)
    await send_all(d, opening()[:1])
    cls = getattr(models, error_type)
    with pytest.raises(cls) as info:
        await d.await_output()
    assert info.value.message == HTTP_ERRORS[error_type].default_message != ""
    assert info.value.response_metadata.http_status_code == HTTP_ERRORS[error_type].status
    with pytest.raises(cls):
        await d.receive()  # receive() goes through await_output(): the same error
    j = await wait_ended(fake)
    assert (j.status, j.end) == (HTTP_ERRORS[error_type].status, f"http:{HTTP_ERRORS[error_type].status}")
    assert j.client == []


async def test_http_error_with_message(start_fake, open_session) -> None:
    fake = await start_fake(faults=["http:ThrottlingException:Rate exceeded@open"])
    d = await open_session(fake)
    with pytest.raises(models.ThrottlingException, match="Rate exceeded") as info:
        await d.receive()
    assert info.value.message == "Rate exceeded"


# ------------------------------------------------------------------------- transport faults


@pytest.mark.parametrize(("part", "flipped"), [("prelude", 0x01000000), ("message", 0x00000001)])
async def test_corrupt_frame_raises_checksum_mismatch(start_fake, open_session, part: str, flipped: int) -> None:
    fake = await start_fake(TalkResponder(chunks=5), faults=[f"corrupt:{part}@server:audioOutput#2"])
    d = await open_session(fake)
    await send_all(d, TALK)
    events, exc = await collect(d)
    assert names(events) == ["completionStart", "contentStart", "audioOutput"]
    assert type(exc) is ChecksumMismatch
    m = re.fullmatch(r"Checksum mismatch: expected 0x([0-9a-f]{8}), calculated 0x([0-9a-f]{8})", str(exc))
    assert m is not None, str(exc)
    # Bit 0 of the first byte of the prelude CRC, or of the last byte of the message CRC.
    assert int(m.group(1), 16) ^ int(m.group(2), 16) == flipped
    assert await collect(d) == ([], None)
    j = await wait_ended(fake)
    assert j.end == "fault:corrupt"
    assert ("transport", "corrupt-frame") in [(s.kind, s.name) for s in j.server]


@pytest.mark.parametrize("spec", ["rst@server:audioOutput#3", "rst:2@server:audioOutput#3", "end@server:audioOutput#3"])
async def test_reset_or_abrupt_end_mid_answer_returns_none(start_fake, open_session, spec: str) -> None:
    fake = await start_fake(TalkResponder(chunks=5), faults=[spec])
    d = await open_session(fake)
    await send_all(d, TALK)
    events, exc = await collect(d)
    assert exc is None  # just the end of the stream: receive() returned None
    assert names(events) == ["completionStart", "contentStart", "audioOutput", "audioOutput"]
    j = await wait_ended(fake)
    assert j.end == f"fault:{spec.split('@')[0].split(':')[0]}"
    assert j.server_names().count("audioOutput") == 2


async def test_goaway_ends_the_stream_and_the_client_reconnects(start_fake, open_session, client_for) -> None:
    fake = await start_fake(TalkResponder(chunks=5), faults=["goaway@server:audioOutput#2"])
    client = await client_for(fake)
    d = await open_session(fake, client=client)
    await send_all(d, TALK)
    events, exc = await collect(d)
    assert exc is None and names(events) == ["completionStart", "contentStart", "audioOutput"]
    assert (await wait_ended(fake)).end == "fault:goaway"
    # The same SDK client opens a new stream: it needs a new connection, and gets a full answer.
    again = await open_session(fake, client=client)
    await send_all(again, exchange())
    await again.close_input()
    events, exc = await collect(again)
    assert exc is None and names(events).count("audioOutput") == 5
    j0, j1 = fake.journal[0], await wait_ended(fake, 1)
    assert j1.end == "completed" and j1.connection_id != j0.connection_id


async def test_delay_headers_holds_the_response(start_fake, open_session) -> None:
    fake = await start_fake(TalkResponder(chunks=1), speed=100, faults=["delay-headers:20@open"])
    d = await open_session(fake)
    await send_all(d, [*TALK, f.content_end("mic"), f.prompt_end(), f.session_end()])
    await d.close_input()
    await d.await_output()
    events, exc = await collect(d)
    assert exc is None and names(events)[0] == "completionStart"
    j = await wait_ended(fake)
    fault = next(s for s in j.server if s.kind == "fault")
    assert fault.name == "delay-headers:20@open" and fault.t < 20
    # No event was read before the delay was over: headers (sent on the first event) came after it.
    assert j.status == 200 and j.client[0].t >= 20
    assert j.server_events()[0].EVENT_NAME == "completionStart"


async def test_drip_spaces_every_frame(start_fake, open_session) -> None:
    fake = await start_fake(TalkResponder(chunks=4), speed=200, faults=["drip:3@server:completionStart#1"])
    d = await open_session(fake)
    await send_all(d, [*TALK, f.content_end("mic"), f.prompt_end(), f.session_end()])
    await d.close_input()
    events, exc = await collect(d)
    assert exc is None
    assert names(events) == ["completionStart", "contentStart", *["audioOutput"] * 4, "contentEnd", "completionEnd"]
    j = await wait_ended(fake)
    times = [s.t for s in j.server if s.kind == "event"]
    assert all(b - a >= 3 - 1e-3 for a, b in zip(times, times[1:])), times


async def test_time_trigger_fires_on_the_service_clock(start_fake, open_session) -> None:
    fake = await start_fake(speed=200, faults=["serviceUnavailableException@t=30"])
    d = await open_session(fake)
    await send_all(d, TALK)
    _, exc = await collect(d)
    assert type(exc) is models.ServiceUnavailableException
    j = await wait_ended(fake)
    assert j.exceptions[-1].t >= 30


async def test_client_events_trigger(start_fake, open_session) -> None:
    fake = await start_fake(faults=["internalServerException@client-events:4"])
    d = await open_session(fake)
    await send_all(d, TALK)
    _, exc = await collect(d)
    assert type(exc) is models.InternalServerException
    j = await wait_ended(fake)
    assert len(j.client) == 4


# ------------------------------------------------------------------------- scoping


async def test_streams_scoping_first_stream_fails_second_connection_succeeds(start_fake, open_session) -> None:
    fake = await start_fake(TalkResponder(chunks=2), faults=["modelStreamErrorException@client:audioInput#1@streams=0"])
    first = await open_session(fake)
    await send_all(first, TALK)
    _, exc = await collect(first)
    assert type(exc) is models.ModelStreamErrorException

    second = await open_session(fake)  # a new client: a second connection
    await send_all(second, exchange())
    await second.close_input()
    events, exc = await collect(second)
    assert exc is None and names(events)[:2] == ["completionStart", "contentStart"]
    j0, j1 = fake.journal[0], await wait_ended(fake, 1)
    assert (j0.end, j1.end) == ("exception:modelStreamErrorException", "completed")
    assert j0.connection_id != j1.connection_id


async def test_times_limits_how_often_a_fault_fires(start_fake, open_session) -> None:
    fake = await start_fake(faults=["throttlingException@client:sessionStart#1@times=2"])
    outcomes = []
    for _ in range(3):
        d = await open_session(fake)
        await send_all(d, exchange())
        await d.close_input()
        outcomes.append(type((await collect(d))[1]))
    assert outcomes == [models.ThrottlingException, models.ThrottlingException, type(None)]


@pytest.mark.parametrize("spec", ["delay-headers:5@open@times=0", "drip:1@t=0@times=0"])
async def test_unlimited_fault_fires_once_per_stream(start_fake, open_session, spec: str) -> None:
    """times=0: on every stream, once (regression: these used to fire again and again in one
    stream, hanging it, or, for a t= trigger, freezing the whole server)."""
    fake = await start_fake(TalkResponder(chunks=2), speed=100, faults=[spec])
    for i in range(2):
        d = await open_session(fake)
        await send_all(d, exchange())
        await d.close_input()
        events, exc = await collect(d)
        assert exc is None and names(events).count("audioOutput") == 2
        j = await wait_ended(fake, i)
        assert j.end == "completed"
        assert [s.name for s in j.server if s.kind == "fault"] == [spec]


async def test_unlimited_exception_fault_hits_every_stream(start_fake, open_session) -> None:
    fake = await start_fake(faults=["throttlingException@client:sessionStart#1@times=0"])
    for _ in range(3):
        d = await open_session(fake)
        await send_all(d, opening()[:1])
        assert type((await collect(d))[1]) is models.ThrottlingException


async def test_add_fault_while_running(start_fake, open_session) -> None:
    fake = await start_fake(TalkResponder(chunks=3))
    d = await open_session(fake)
    await send_all(d, TALK)
    assert names(await receive_n(d, 2)) == ["completionStart", "contentStart"]
    fake.add_fault("rst@server:audioOutput#1")  # only streams opened from now on
    await send_all(d, [f.content_end("mic"), f.prompt_end(), f.session_end()])
    await d.close_input()
    events, exc = await collect(d)
    assert exc is None and names(events).count("audioOutput") == 3
    later = await open_session(fake)
    await send_all(later, TALK)
    events, _ = await collect(later)
    assert names(events) == ["completionStart", "contentStart"]
    assert (await wait_ended(fake, 1)).end == "fault:rst"


# ------------------------------------------------------------------------- spec parsing (no I/O)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("throttlingException", "bad fault 'throttlingException': expected ACTION@TRIGGER"),
        ("explode@open", "bad fault action 'explode': use one of internalServerException, "),
        ("rst@sometimes", "bad fault trigger 'sometimes': use open, t=<seconds>, client-events:<n>"),
        ("rst@client:audioInput#x", "bad fault trigger 'client:audioInput#x'"),
        ("http:ThrottlingException@client:audioInput#1", "an HTTP-level error can only be injected at 'open'"),
        ("http:NoSuchException@open", "unknown HTTP error type 'NoSuchException'; known: ["),
        ("delay-headers:5@server:audioOutput#1", "delay-headers only makes sense at 'open'"),
        ("rst@open@color=blue", "bad fault option 'color=blue' in 'rst@open@color=blue': use streams=0,1 or times=N"),
        ("ValidationException@open", "bad fault action 'ValidationException'"),
    ],
)
def test_fault_spec_errors_are_clear(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Fault.parse(spec)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    "spec",
    [
        "throttlingException@client:audioInput#50",
        "modelStreamErrorException:boom@server:audioOutput#3@streams=0,2@times=0",
        "http:ModelNotReadyException@open",
        "corrupt:prelude@server:contentStart#2",
        "rst:2@t=12.5",
        "goaway:0@client-events:7",
        "end@server:textOutput#1",
        "delay-headers:3@open",
        "drip:0.5@server:completionStart#1",
    ],
)
def test_fault_spec_round_trip(spec: str) -> None:
    fault = Fault.parse(spec)
    assert Fault.parse(str(fault)) == fault


def test_fault_parts() -> None:
    fault = Fault.parse("rst@server:audioOutput#2@streams=0")
    assert fault.trigger == Trigger("server", "audioOutput", 2)
    assert fault.action == Action("rst", code=0)
    assert fault.applies_to(0) and not fault.applies_to(1)
    plan = FaultPlan.parse(["end@open", "rst@open@times=0"])
    assert plan.try_fire(0) and not plan.try_fire(0)
    assert all(plan.try_fire(1) for _ in range(5))
    assert Action.parse("throttlingException").exception_text() == DEFAULT_EXCEPTION_TEXTS["throttlingException"]



def test_time_fault_needs_a_finite_clock() -> None:
    """On an infinite clock service time never advances: a t= fault could never fire, so it is refused."""
    import math

    from fakeserver import FakeNovaSonic

    with pytest.raises(ValueError, match="speed is infinite"):
        FakeNovaSonic(faults=["rst@t=5"], speed=math.inf)
    fake = FakeNovaSonic(faults=["rst@client:audioInput#2"], speed=math.inf)  # other triggers are fine
    assert [str(x) for x in fake.faults.faults] == ["rst:0@client:audioInput#2"]
