"""SigV4 against the fake server: the request signature (STOCK SDK client) and the chunk-signature
chain (hand-signed frames from ``tests/helpers/raw_client.py``, for what the SDK never sends).

What the stock client raises for the AWS-wide auth errors (not in the operation's error
registry) is ``smithy_core.exceptions.CallError`` naming the type and the status, without the
body text (see fakeserver/http_errors.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aws_sdk_bedrock_runtime.models import ValidationException
from smithy_core.exceptions import CallError

from fakeserver.config import generate_credentials
from novasonic.wire import Credentials, EventMessage, encode_chunk
from novasonic.wire.envelope import ChunkFrame, ErrorFrame
from tests.helpers import factories as f
from tests.helpers.raw_client import RawClient
from tests.helpers.responders import ECHO_TEXT, EchoResponder
from tests.helpers.sessions import TIMEOUT, collect, exchange, opening, send_all, wait_ended

OP = "com.amazonaws.bedrockruntime#InvokeModelWithBidirectionalStream"


def call_error_text(error_type: str, status: int = 403) -> str:
    return f"Unknown error for operation {OP} - status: {status} - id: com.amazonaws.bedrockruntime#{error_type}"


async def _refused(fake, open_session, **creds) -> BaseException:
    d = await open_session(fake, **creds)
    await send_all(d, opening()[:1])
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(d.await_output(), TIMEOUT)
    return info.value


async def _complete(fake, open_session, **creds) -> None:
    d = await open_session(fake, **creds)
    await send_all(d, exchange())
    await d.close_input()
    assert await collect(d) == ([], None)


# ------------------------------------------------------------------------- request signature


async def test_wrong_secret_is_invalid_signature(start_fake, open_session) -> None:
    fake = await start_fake()
    exc = await _refused(fake, open_session, secret_access_key="x" * 40)
    assert type(exc) is CallError
    assert exc.message == call_error_text("InvalidSignatureException")
    j = await wait_ended(fake)
    assert (j.auth, j.status, j.end) == ("bad-signature", 403, "http:403")
    assert j.client == []  # nothing was read from a stream that failed authentication
    assert [(s.kind, s.name) for s in j.server] == [("http", "InvalidSignatureException")]


async def test_unknown_key_id_is_unrecognized_client(start_fake, open_session) -> None:
    fake = await start_fake()
    exc = await _refused(fake, open_session, access_key_id="AKIAUNKNOWNKEY000000")
    assert type(exc) is CallError
    assert exc.message == call_error_text("UnrecognizedClientException")
    j = await wait_ended(fake)
    assert (j.auth, j.status) == ("unknown-key", 403)


async def test_session_token_accepted_when_it_matches(start_fake, open_session) -> None:
    creds = generate_credentials()
    fake = await start_fake(credentials=(Credentials(creds.access_key_id, creds.secret_access_key, "session-tok"),))
    assert fake.session_token == "session-tok" and fake.env["AWS_SESSION_TOKEN"] == "session-tok"
    await _complete(fake, open_session)  # client_for sends fake.session_token
    j = await wait_ended(fake)
    assert (j.auth, j.end, j.access_key_id) == ("ok", "completed", creds.access_key_id)


@pytest.mark.parametrize("token", [None, "another-token"], ids=["missing", "mismatched"])
async def test_session_token_missing_or_mismatched_is_refused(start_fake, open_session, token) -> None:
    creds = generate_credentials()
    fake = await start_fake(credentials=(Credentials(creds.access_key_id, creds.secret_access_key, "session-tok"),))
    exc = await _refused(fake, open_session, session_token=token)
    assert type(exc) is CallError and exc.message == call_error_text("UnrecognizedClientException")
    assert (await wait_ended(fake)).auth == "unknown-key"


async def test_token_sent_for_long_term_key_is_refused(start_fake, open_session) -> None:
    fake = await start_fake()
    exc = await _refused(fake, open_session, session_token="unexpected")
    assert type(exc) is CallError and exc.message == call_error_text("UnrecognizedClientException")


async def test_accept_any_key_id_with_the_published_secret(start_fake, open_session) -> None:
    fake = await start_fake(accept_any_key_id=True)
    await _complete(fake, open_session, access_key_id="AKIAANYOTHERKEY00001")
    j = await wait_ended(fake)
    assert (j.auth, j.access_key_id, j.end) == ("ok", "AKIAANYOTHERKEY00001", "completed")
    assert j.chunks_verified == len(exchange()) + 1  # every event frame and the empty end frame
    # ... but the secret still has to be the published one.
    exc = await _refused(fake, open_session, access_key_id="AKIAANYOTHERKEY00002", secret_access_key="y" * 40)
    assert type(exc) is CallError and exc.message == call_error_text("InvalidSignatureException")


async def test_other_key_id_refused_without_accept_any(start_fake, open_session) -> None:
    fake = await start_fake()
    exc = await _refused(fake, open_session, access_key_id="AKIAANYOTHERKEY00001")
    assert exc.message == call_error_text("UnrecognizedClientException")


async def test_other_region_in_scope_is_refused(start_fake, open_session) -> None:
    fake = await start_fake()
    exc = await _refused(fake, open_session, region="eu-north-1")
    assert type(exc) is CallError and exc.message == call_error_text("InvalidSignatureException")
    assert (await wait_ended(fake)).auth == "bad-scope"


# ------------------------------------------------------------------------- raw, hand-signed


def published(fake) -> Credentials:
    return Credentials(fake.access_key_id, fake.secret_access_key)


async def test_raw_client_signed_like_the_sdk_completes(start_fake) -> None:
    """Sanity check of the raw client: signed exactly as the SDK signs, a session completes."""
    fake = await start_fake()
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(published(fake), region=fake.region)
        for ev in exchange():
            await s.send_event(ev)
        await s.end_input()
        status, frames = await s.response()
    finally:
        await raw.close()
    assert status == 200 and s.ended and frames == []
    j = await wait_ended(fake)
    assert (j.auth, j.chunk_signature, j.end) == ("ok", "ok", "completed")
    assert j.chunks_verified == len(exchange()) + 1


def _tampered(stream, inner: bytes) -> bytes:
    """The signature of ``inner`` on another (well-formed) event: a frame changed in transit."""
    signed = stream.signer.sign(inner, date=datetime.now(UTC))
    other = encode_chunk(f.prompt_start("p-evil").to_bytes())
    return EventMessage(headers=signed.headers, payload=other).encode()


def _out_of_chain(stream, inner: bytes) -> bytes:
    """A frame signed after a frame that was never sent (the chain skips one signature)."""
    stream.sign(encode_chunk(b'{"event":{"sessionEnd":{}}}'))  # signed, dropped
    return stream.sign(inner)


def _unsigned(stream, inner: bytes) -> bytes:
    return inner  # the bare inner message, as a client without SigV4 event signing sends it


@pytest.mark.parametrize(
    ("make_frame", "reason"),
    [
        (_tampered, "bad-chunk-signature"),
        (_out_of_chain, "bad-chunk-signature"),
        (_unsigned, "missing-chunk-signature"),
    ],
    ids=["tampered", "out-of-chain", "unsigned"],
)
async def test_bad_chunk_signature_is_an_in_stream_error(start_fake, make_frame, reason: str) -> None:
    fake = await start_fake()
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(published(fake), region=fake.region)
        first, *rest = opening()
        await s.send_event(first)  # accepted: the chain is fine so far
        await s.send_bytes(make_frame(s, encode_chunk(rest[0].to_bytes())))
        status, frames = await s.response()
    finally:
        await raw.close()
    # Headers (200) went out with the error: the request signature was fine. The failure is the
    # unmodeled error form (the SDK raises smithy_aws_event_stream UnmodeledEventError for it).
    assert status == 200 and s.ended
    assert len(frames) == 1 and isinstance(frames[0], ErrorFrame)
    assert frames[0].code == "InvalidSignatureException"
    assert frames[0].message.startswith("Chunk signature verification failed: signed frame #1")
    j = await wait_ended(fake)
    assert (j.auth, j.chunk_signature, j.end) == ("ok", reason, "error:InvalidSignatureException")
    assert j.chunks_verified == 1
    assert j.client_names() == ["sessionStart"]  # the bad frame never reached the rules


async def test_stale_request_date_is_403(start_fake) -> None:
    fake = await start_fake()
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(published(fake), region=fake.region, now=datetime.now(UTC) - timedelta(minutes=10))
        await s.send_event(f.session_start())
        status, _ = await s.response()
    finally:
        await raw.close()
    assert status == 403
    assert s.headers["x-amzn-errortype"].startswith("InvalidSignatureException:")
    assert s.json_body()["message"].startswith("Signature expired: x-amz-date ")
    j = await wait_ended(fake)
    assert (j.auth, j.status, j.end) == ("stale-date", 403, "http:403")


async def test_date_within_skew_is_accepted(start_fake) -> None:
    fake = await start_fake()
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(published(fake), region=fake.region, now=datetime.now(UTC) - timedelta(minutes=4))
        await s.send_event(f.session_start())
        assert await s.wait_headers() == 200
    finally:
        await raw.close()


async def test_verify_signatures_off_accepts_any_credentials(start_fake, open_session) -> None:
    fake = await start_fake(verify_signatures=False)
    await _complete(fake, open_session, access_key_id="AKIAWHATEVER00000000", secret_access_key="z" * 40)
    j = await wait_ended(fake)
    assert (j.auth, j.end) == ("anonymous", "completed")


async def test_auth_failure_does_not_count_as_a_violation(start_fake, open_session) -> None:
    """A refused request never reaches the rules; the SDK sees no ValidationException."""
    fake = await start_fake()
    exc = await _refused(fake, open_session, secret_access_key="w" * 40)
    assert not isinstance(exc, ValidationException)


async def test_raw_chunk_frame_round_trip_gets_output(start_fake) -> None:
    """The raw client also reads output: the echo answer to the AUDIO block is a chunk frame."""
    fake = await start_fake(EchoResponder())
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(published(fake), region=fake.region)
        for ev in exchange():
            await s.send_event(ev)
        await s.end_input()
        status, frames = await s.response()
    finally:
        await raw.close()
    assert status == 200
    assert all(isinstance(fr, ChunkFrame) for fr in frames)
    assert any(ECHO_TEXT.encode() in fr.event_json for fr in frames)
