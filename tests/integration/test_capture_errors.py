"""Upstream errors and faults reach the client through the capture proxy as they would from the
service, and are recorded as such.

Each scenario is run twice with the STOCK SDK client: directly against a fake server, and through
the proxy in front of an identical fake server. What the client sees must be the same (events,
exception class, message / error code); the proxy's cassette must hold the matching exception or
transport record and ending. The upstream behaviours come from replayed cassettes written with
``Tape`` (every way a stream can end) and from the fake server's fault injection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_sdk_bedrock_runtime import models
from smithy_aws_event_stream.exceptions import ChecksumMismatch, UnmodeledEventError
from smithy_core.exceptions import CallError

from fakeserver import FakeNovaSonic
from novasonic.cassette import ExceptionRecord, TransportRecord, load_cassette
from tests.helpers import factories as f
from tests.helpers.replay_cassettes import IDS, Tape
from tests.helpers.responders import TalkResponder
from tests.helpers.sessions import collect, send_all
from tools.capture import CaptureProxy, Upstream

START = [f.session_start(nested="MEDIUM"), f.prompt_start(), *f.system_block(), f.audio_start(), *f.audio_frames(count=3)]


def answer_then(path: Path, action: str, **kw: Any) -> Path:
    """The start block and three frames, then completionStart and two audio chunks, then ``action``."""
    t = Tape(path)
    t.open()
    t.start()
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.audio(96)
    t.server(f.completion_start(**ids))
    t.audio_out("aud", 2, end=False, audio_flows=False, **ids)
    if action == "exception":
        t.exception("modelStreamErrorException", "Model stream broke",
                    extra={"originalStatusCode": 500, "originalMessage": "upstream model failed"})
        t.end("exception:modelStreamErrorException")
    elif action == "error":
        t.exception("InternalFailure", "Model stream broke", via="error")
        t.end("error:InternalFailure")
    else:
        t.transport(action, **kw)
        if action == "corrupt-frame":
            t.transport("end-stream")
        t.end(f"fault:{action}")
    return t.save()


def http_at_open(path: Path, name: str, status: int, message: str | None) -> Path:
    t = Tape(path)
    t.open()
    t.exception(name, message, via="http", status=status)
    t.end(f"http:{status}")
    return t.save()


Outcome = tuple[list[str], type | None, Any]


async def outcome(endpoint: Any, open_session: Callable[..., Any], **creds: Any) -> Outcome:
    d = await open_session(endpoint, **creds)
    try:
        await send_all(d, START)
    except Exception:
        pass  # an HTTP error at open may refuse the input already; await_output says which
    events, exc = await collect(d)
    detail = None
    if isinstance(exc, UnmodeledEventError):
        detail = (exc.code, exc.message)
    elif isinstance(exc, ChecksumMismatch):  # the CRC values belong to the corrupted frame's bytes
        detail = "message checksum" if "Checksum mismatch" in str(exc) else str(exc)
    elif exc is not None:
        detail = getattr(exc, "message", str(exc))
    return [e.EVENT_NAME for e in events], type(exc) if exc is not None else None, detail


async def direct_and_proxied(tmp_path: Path, open_session: Callable[..., Any], **fake_kwargs: Any):
    async with FakeNovaSonic(speed=math.inf, **fake_kwargs) as fake:
        direct = await outcome(fake, open_session)
    out = tmp_path / "captured.jsonl"
    async with FakeNovaSonic(speed=math.inf, **fake_kwargs) as fake:
        async with CaptureProxy(out, upstream=Upstream.from_info(fake.info())) as proxy:
            proxied = await outcome(proxy, open_session)
        assert proxy.error is None
        journal = proxy.journal.last()
    return direct, proxied, out, journal


@pytest.mark.parametrize(
    ("action", "kw", "error", "end", "recorded"),
    [
        ("exception", {}, models.ModelStreamErrorException, "exception:modelStreamErrorException",
         ("exception", "modelStreamErrorException")),
        ("error", {}, UnmodeledEventError, "error:InternalFailure", ("exception", "InternalFailure")),
        ("corrupt-frame", {"detail": "message"}, ChecksumMismatch, "upstream:corrupt-frame", ("transport", "corrupt-frame")),
        ("rst", {"code": 2}, None, "upstream:rst", ("transport", "rst")),
        ("goaway", {"code": 0}, None, "upstream:close", ("transport", "close")),
        ("end-stream", {}, None, "upstream:end-stream", ("transport", "end-stream")),
    ],
)
async def test_in_stream_endings_are_relayed_as_the_service_sent_them(
    tmp_path: Path, open_session, action, kw, error, end, recorded
) -> None:
    tape = answer_then(tmp_path / f"{action}.jsonl", action, **kw)
    direct, proxied, out, journal = await direct_and_proxied(tmp_path, open_session, cassette=tape)
    assert proxied == direct
    assert proxied[1] is error
    if action == "corrupt-frame":  # the SDK drops the corrupted frame and raises
        assert proxied[0] == ["completionStart", "contentStart", "audioOutput"]
    else:
        assert proxied[0] == ["completionStart", "contentStart", "audioOutput", "audioOutput"]
    if action == "exception":
        assert proxied[2] == "Model stream broke"
    assert journal.end == end
    stream = load_cassette(out)[0]
    assert stream.end_reason == end and stream.end.input_finished is False
    kind, name = recorded
    if kind == "exception":
        rec = [r for r in stream.records if isinstance(r, ExceptionRecord)]
        assert [(r.name, r.message) for r in rec] == [(name, "Model stream broke")]
        if action == "exception":  # the modeled exception's extra members are kept
            assert rec[0].extra == {"originalStatusCode": 500, "originalMessage": "upstream model failed"}
            assert rec[0].via == "stream"
        else:
            assert rec[0].via == "error"
    else:
        assert name in [r.action for r in stream.records if isinstance(r, TransportRecord)]


@pytest.mark.parametrize(
    ("name", "status", "message", "error"),
    [
        ("ThrottlingException", 429, "Rate exceeded", models.ThrottlingException),
        ("ModelNotReadyException", 429, "The model is not ready", models.ModelNotReadyException),
        ("UnrecognizedClientException", 403, None, CallError),
    ],
)
async def test_http_errors_at_open_are_relayed_with_the_same_type_status_and_message(
    tmp_path: Path, open_session, name, status, message, error
) -> None:
    tape = http_at_open(tmp_path / "http.jsonl", name, status, message)
    direct, proxied, out, journal = await direct_and_proxied(tmp_path, open_session, cassette=tape)
    assert proxied == direct
    assert proxied[0] == [] and proxied[1] is error
    if error is CallError:  # unmodeled: the SDK shows the status and the type, not the text
        assert f"status: {status}" in proxied[2] and name in proxied[2]
    assert journal.status == status and journal.end == f"http:{status}"
    stream = load_cassette(out)[0]
    [rec] = [r for r in stream.records if isinstance(r, ExceptionRecord)]
    assert (rec.via, rec.name, rec.status) == ("http", name, status)
    if message is not None:
        assert rec.message == message
    assert stream.end_reason == f"http:{status}"


@pytest.mark.parametrize(
    "fault",
    ["throttlingException@client:promptStart", "http:ServiceUnavailableException@open",
     "modelStreamErrorException:stream broke@server:audioOutput#2", "rst:8@server:audioOutput#3"],
)
async def test_injected_faults_reach_the_client_as_from_the_fake_itself(tmp_path: Path, open_session, fault) -> None:
    direct, proxied, out, journal = await direct_and_proxied(tmp_path, open_session,
                                                             responder=TalkResponder(), faults=[fault])
    assert proxied == direct
    assert journal.end != "completed"
    assert load_cassette(out)[0].end_reason == journal.end


async def test_a_client_signing_with_other_keys_is_refused_like_the_fake_does_and_not_forwarded(
    tmp_path: Path, open_session
) -> None:
    wrong = {"access_key_id": "AKIAWRONGWRONGWRONG1", "secret_access_key": "x" * 40}
    async with FakeNovaSonic(speed=math.inf, responder=TalkResponder()) as fake:
        direct = await outcome(fake, open_session, **wrong)
        n_direct = fake.journal.opened
        async with CaptureProxy(tmp_path / "c.jsonl", upstream=Upstream.from_info(fake.info())) as proxy:
            proxied = await outcome(proxy, open_session, **wrong)
            assert proxy.journal.last().auth == "unknown-key"
        assert fake.journal.opened == n_direct  # the upstream never saw it
    assert proxied == direct and proxied[1] is CallError and "UnrecognizedClientException" in proxied[2]
    assert not (tmp_path / "c.jsonl").exists()  # nothing reached the service: nothing recorded


async def test_upstream_refusing_the_proxys_keys_is_relayed_and_recorded(tmp_path: Path, open_session) -> None:
    async with FakeNovaSonic(speed=math.inf, responder=TalkResponder()) as fake:
        bad = Upstream(region=fake.region, endpoint=fake.endpoint, ca_file=fake.ca_file,
                       credentials=None)
        bad.credentials = Upstream.from_info({**fake.info(), "secret_access_key": "y" * 40}).credentials
        async with CaptureProxy(tmp_path / "c.jsonl", upstream=bad) as proxy:
            proxied = await outcome(proxy, open_session)
        direct = await outcome(fake, open_session, secret_access_key="y" * 40)
    assert proxied == direct and proxied[1] is CallError and "InvalidSignatureException" in proxied[2]
    stream = load_cassette(tmp_path / "c.jsonl")[0]
    assert stream.end_reason == "http:403"


async def test_an_unreachable_upstream_gives_a_clear_502_and_no_recording(tmp_path: Path, open_session) -> None:
    async with FakeNovaSonic(speed=math.inf) as fake:  # only for a CA file and keys; nothing listens below
        info = {**fake.info(), "endpoint": "https://localhost:9"}
        async with CaptureProxy(tmp_path / "c.jsonl", upstream=Upstream.from_info(info)) as proxy:
            names, error, detail = await outcome(proxy, open_session)
            assert proxy.journal.last().end == "upstream-unreachable"
    assert names == [] and error is CallError and "status: 502" in detail and "CaptureProxyUpstreamError" in detail
    assert not (tmp_path / "c.jsonl").exists()
