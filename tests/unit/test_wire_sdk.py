"""The wire layer against bytes produced and consumed by the stock SDK's own code.

Producers: ``AWSEventPublisher`` (the SDK's input stream) with the restJson codec
of ``aws_sdk_bedrock_runtime``, signed by ``AsyncSigV4Signer`` (request) and the
``AsyncEventSigner`` that ``SigV4AuthScheme(service="bedrock")`` builds from the
signed request. Consumer: ``AWSEventReceiver`` with the SDK's output deserializer.
No sockets (protocol.md 4.1-4.5).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aws_sdk_bedrock_runtime import models
from aws_sdk_bedrock_runtime.config import _PROTOCOL_SETTINGS
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOutputChunk,
    InvokeModelWithBidirectionalStreamOutputUnknown,
    _InvokeModelWithBidirectionalStreamOutputDeserializer,
)
from aws_sdk_signers import URI, AsyncSigV4Signer, AWSRequest, Field, Fields
from smithy_aws_core.aio.protocols import RestJsonClientProtocol
from smithy_aws_core.auth.sigv4 import SigV4AuthScheme
from smithy_aws_core.identity import AWSCredentialsIdentity, StaticCredentialsResolver
from smithy_aws_event_stream.aio import AWSEventPublisher, AWSEventReceiver, SigningConfig
from smithy_aws_event_stream.events import EventMessage
from smithy_aws_event_stream.exceptions import UnmodeledEventError
from smithy_core.aio.types import AsyncBytesReader

from novasonic.errors import SignatureError
from novasonic.wire import (
    STREAM_EXCEPTIONS,
    ChunkSignatureVerifier,
    Credentials,
    FrameDecoder,
    decode_chunk,
    decode_message,
    encode_chunk,
    encode_error,
    encode_exception,
    encode_message,
    verify_request,
)

REGION = "us-east-1"
HOST = f"bedrock-runtime.{REGION}.amazonaws.com"
PATH = "/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream"
LONG_TERM = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
SESSION = Credentials("ASIAEXAMPLE", "c2Vzc2lvbi1zZWNyZXQ", "IQoJb3JpZ2luX2VjEXAMPLETOKEN")
EVENTS = [
    b'{"event":{"sessionStart":{"inferenceConfiguration":{"maxTokens":1024}}}}',
    b'{"event":{"promptStart":{"promptName":"p1"}}}',
    b'{"event":{"audioInput":{"promptName":"p1","contentName":"a1","content":"AAAA"}}}',
    b'{"event":{"sessionEnd":{}}}',
]
CODEC = RestJsonClientProtocol(_PROTOCOL_SETTINGS).payload_codec


class Collector:
    """The AsyncWriter the publisher writes encoded frames to."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data


def lookup(*known: Credentials):
    table = {c.access_key_id: c for c in known}
    return table.get


def sdk_identity(creds: Credentials) -> AWSCredentialsIdentity:
    return AWSCredentialsIdentity(
        access_key_id=creds.access_key_id,
        secret_access_key=creds.secret_access_key,
        session_token=creds.session_token,
    )


async def sdk_sign_request(creds: Credentials, region: str = REGION) -> AWSRequest:
    """Sign a request shaped like the SDK's (protocol.md 4.1) with the SDK's signer."""
    request = AWSRequest(
        destination=URI(host=HOST, path=PATH),
        method="POST",
        body=None,
        fields=Fields([Field(name="Content-Type", values=["application/vnd.amazon.eventstream"])]),
    )
    signer = SigV4AuthScheme(service="bedrock").signer()
    return await signer.sign(  # type: ignore[no-any-return]
        request=request,
        identity=sdk_identity(creds),
        properties={"region": region, "service": "bedrock"},
    )


def h2_headers(signed: AWSRequest) -> list[tuple[str, str]]:
    """What the fake server sees: pseudo-headers plus the signed request's fields."""
    headers = [(":method", "POST"), (":scheme", "https"), (":path", PATH + "?")]
    headers += [(":authority", HOST)]
    headers += [(f.name.lower(), f.as_string()) for f in signed.fields]
    return headers + [("user-agent", "aws-sdk-python/0.12.0"), ("accept", "*/*")]


def verify_sdk_request(signed: AWSRequest, *known: Credentials):
    """verify_request on what the server saw, at the moment the request was signed."""
    return verify_request(
        "POST", PATH + "?", h2_headers(signed), lookup(*known), region=REGION, now=signed_at(signed)
    )


def signed_at(signed: AWSRequest) -> datetime:
    amz = signed.fields["X-Amz-Date"].as_string()
    return datetime.strptime(amz, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


async def sdk_input_stream(
    signed: AWSRequest, creds: Credentials, events: list[bytes], region: str = REGION
) -> bytes:
    """Send ``events`` and close through the SDK's signing publisher; return the bytes."""
    scheme = SigV4AuthScheme(service="bedrock")
    signing = SigningConfig(
        signer=scheme.event_signer(request=signed),  # type: ignore[arg-type]
        signing_properties={"region": region, "service": "bedrock"},
        identity_resolver=StaticCredentialsResolver(sdk_identity(creds)),
        identity_properties={},
    )
    out = Collector()
    publisher = AWSEventPublisher(payload_codec=CODEC, async_writer=out, signing_config=signing)
    for event in events:
        part = BidirectionalInputPayloadPart(bytes_=event)
        await publisher.send(InvokeModelWithBidirectionalStreamInputChunk(value=part))
    await publisher.close()
    return bytes(out.data)


async def sdk_session(creds: Credentials = LONG_TERM):
    signed = await sdk_sign_request(creds)
    stream = await sdk_input_stream(signed, creds, EVENTS)
    return signed, stream


def verify_all(auth, creds: Credentials, stream: bytes) -> list[bytes]:
    verifier = ChunkSignatureVerifier(auth, creds)
    events = []
    for outer in FrameDecoder().feed(stream):
        inner = verifier.verify(outer)
        if inner:
            events.append(decode_chunk(decode_message(inner)))
    assert verifier.finished
    return events


# --- serialisation ----------------------------------------------------------------------


async def test_encode_chunk_is_byte_identical_to_the_sdk_serializer() -> None:
    out = Collector()
    publisher = AWSEventPublisher(payload_codec=CODEC, async_writer=out)
    for event in EVENTS + [b"", "héllo ✓".encode()]:
        out.data.clear()
        part = BidirectionalInputPayloadPart(bytes_=event)
        await publisher.send(InvokeModelWithBidirectionalStreamInputChunk(value=part))
        assert bytes(out.data) == encode_chunk(event)


# --- request signature --------------------------------------------------------------------


async def test_sdk_request_verifies() -> None:
    signed = await sdk_sign_request(LONG_TERM)
    auth = verify_sdk_request(signed, LONG_TERM)
    assert auth.access_key_id == LONG_TERM.access_key_id
    assert auth.signed_headers == ("content-type", "host", "x-amz-content-sha256", "x-amz-date")
    assert auth.signature == signed.fields["Authorization"].as_string().rsplit("=", 1)[1]
    assert auth.scope == f"{auth.amz_date[:8]}/{REGION}/bedrock/aws4_request"
    assert not auth.session_token


async def test_sdk_canonical_uri_double_encodes_the_colon() -> None:
    signed = await sdk_sign_request(LONG_TERM)
    canonical = await AsyncSigV4Signer().canonical_request(
        signing_properties={"region": REGION, "service": "bedrock"}, request=signed
    )
    assert canonical.splitlines()[1] == PATH.replace("%3A", "%253A")
    assert canonical.splitlines()[-1] == "STREAMING-AWS4-HMAC-SHA256-EVENTS"


async def test_wrong_secret_is_bad_signature() -> None:
    signed = await sdk_sign_request(LONG_TERM)
    impostor = Credentials(LONG_TERM.access_key_id, "not-the-secret")
    with pytest.raises(SignatureError) as info:
        verify_sdk_request(signed, impostor)
    assert info.value.reason == "bad-signature"


async def test_stale_request_date() -> None:
    signed = await sdk_sign_request(LONG_TERM)
    args = ("POST", PATH + "?", h2_headers(signed), lookup(LONG_TERM))
    verify_request(*args, region=REGION, now=signed_at(signed) + timedelta(minutes=4))
    with pytest.raises(SignatureError) as info:
        verify_request(*args, region=REGION, now=signed_at(signed) + timedelta(minutes=6))
    assert info.value.reason == "stale-date"
    with pytest.raises(SignatureError) as info:
        verify_request(*args, region=REGION, now=signed_at(signed) - timedelta(minutes=6))
    assert info.value.reason == "stale-date"


async def test_wrong_region_in_scope() -> None:
    signed = await sdk_sign_request(LONG_TERM, region="us-west-2")
    with pytest.raises(SignatureError) as info:
        verify_sdk_request(signed, LONG_TERM)
    assert info.value.reason == "bad-scope"
    assert "us-west-2" in str(info.value)


async def test_session_token_present_missing_and_mismatched() -> None:
    signed = await sdk_sign_request(SESSION)
    headers = h2_headers(signed)
    now = signed_at(signed)
    assert ("x-amz-security-token", SESSION.session_token) in headers
    auth = verify_request("POST", PATH + "?", headers, lookup(SESSION), region=REGION, now=now)
    assert auth.session_token and "x-amz-security-token" in auth.signed_headers

    # A client that has the session secret but forgot the token signs without it.
    long_term = Credentials(SESSION.access_key_id, SESSION.secret_access_key)
    forgot = await sdk_sign_request(long_term)
    mismatched = [(n, "other" if n == "x-amz-security-token" else v) for n, v in headers]
    for hdrs, creds, needle in [
        (h2_headers(forgot), SESSION, "missing"),
        (mismatched, SESSION, "does not match"),
        (headers, long_term, "has no session token"),
    ]:
        with pytest.raises(SignatureError) as info:
            verify_request("POST", PATH + "?", hdrs, lookup(creds), region=REGION, now=now)
        assert info.value.reason == "unknown-key"
        assert needle in str(info.value)
        assert SESSION.session_token not in str(info.value)

    # Stripping the signed token header on the way is a malformed request.
    stripped = [(n, v) for n, v in headers if n != "x-amz-security-token"]
    with pytest.raises(SignatureError) as info:
        verify_request("POST", PATH + "?", stripped, lookup(SESSION), region=REGION, now=now)
    assert info.value.reason == "malformed-auth"


# --- event-signature chain ----------------------------------------------------------------


async def test_sdk_chain_verifies_including_the_end_frame() -> None:
    signed, stream = await sdk_session()
    auth = verify_sdk_request(signed, LONG_TERM)
    frames = FrameDecoder().feed(stream)
    assert [sorted(f.headers) for f in frames] == [[":chunk-signature", ":date"]] * 5
    assert len(frames[-1].encode()) == 83 and frames[-1].payload == b""
    for outer in frames[:-1]:
        assert len(outer.encode()) == 83 + len(outer.payload)  # 67 bytes of outer headers
    assert verify_all(auth, LONG_TERM, stream) == EVENTS


async def test_sdk_chain_with_session_credentials() -> None:
    signed, stream = await sdk_session(SESSION)
    auth = verify_sdk_request(signed, SESSION)
    assert verify_all(auth, SESSION, stream) == EVENTS


async def _auth_and_frames(creds: Credentials = LONG_TERM):
    signed, stream = await sdk_session(creds)
    return verify_sdk_request(signed, creds), FrameDecoder().feed(stream)


def _first_failure(
    auth, creds: Credentials, frames: list[EventMessage]
) -> tuple[int, SignatureError]:
    verifier = ChunkSignatureVerifier(auth, creds)
    for index, outer in enumerate(frames):
        try:
            verifier.verify(outer)
        except SignatureError as exc:
            with pytest.raises(SignatureError) as again:  # stays failed
                verifier.verify(frames[0])
            assert again.value is exc
            return index, exc
    raise AssertionError("every frame verified")


async def test_chunk_with_wrong_secret() -> None:
    auth, frames = await _auth_and_frames()
    wrong = Credentials(LONG_TERM.access_key_id, "not-the-secret")
    index, exc = _first_failure(auth, wrong, frames)
    assert (index, exc.reason) == (0, "bad-chunk-signature")


async def test_tampered_payload_byte_with_valid_crcs() -> None:
    auth, frames = await _auth_and_frames()
    inner = decode_message(frames[2].payload)
    evil = inner.payload.replace(b'"bytes":"', b'"bytes":"X', 1)[:-2] + b'"}'
    outer = EventMessage(headers=frames[2].headers, payload=encode_message(inner.headers, evil))
    tampered = decode_message(outer.encode())  # CRCs are valid: only the signature can tell
    index, exc = _first_failure(auth, LONG_TERM, frames[:2] + [tampered] + frames[3:])
    assert (index, exc.reason) == (2, "bad-chunk-signature")
    assert "signed frame #2" in str(exc)


@pytest.mark.parametrize(
    ("order", "failing"),
    [([0, 2, 1, 3, 4], 1), ([0, 1, 3, 4], 2), ([1, 2, 3, 4], 0), ([0, 1, 2, 4], 3)],
    ids=["reordered", "dropped-middle", "dropped-first", "dropped-last-event"],
)
async def test_broken_chain(order: list[int], failing: int) -> None:
    auth, frames = await _auth_and_frames()
    index, exc = _first_failure(auth, LONG_TERM, [frames[i] for i in order])
    assert (index, exc.reason) == (failing, "bad-chunk-signature")


async def test_unsigned_frame_is_missing_chunk_signature() -> None:
    auth, _ = await _auth_and_frames()
    verifier = ChunkSignatureVerifier(auth, LONG_TERM)
    with pytest.raises(SignatureError) as info:
        verifier.verify(decode_message(encode_chunk(EVENTS[0])))
    assert info.value.reason == "missing-chunk-signature"


async def test_stale_chunk_date() -> None:
    auth, frames = await _auth_and_frames()
    verifier = ChunkSignatureVerifier(auth, LONG_TERM, max_skew=timedelta(minutes=5))
    date = frames[0].headers[":date"]
    assert isinstance(date, datetime)
    verifier.verify(frames[0], now=date + timedelta(minutes=1))
    with pytest.raises(SignatureError) as info:
        verifier.verify(frames[1], now=date + timedelta(minutes=10))
    assert info.value.reason == "stale-date"


# --- output frames through the SDK's receiver --------------------------------------------


async def sdk_receive(data: bytes):
    receiver = AWSEventReceiver(
        payload_codec=CODEC,
        source=AsyncBytesReader(data),
        deserializer=_InvokeModelWithBidirectionalStreamOutputDeserializer().deserialize,
    )
    return await receiver.receive()


async def test_sdk_reads_our_chunk() -> None:
    result = await sdk_receive(encode_chunk(EVENTS[1]))
    assert isinstance(result, InvokeModelWithBidirectionalStreamOutputChunk)
    assert result.value.bytes_ == EVENTS[1]


@pytest.mark.parametrize("member", sorted(STREAM_EXCEPTIONS))
async def test_sdk_raises_the_modeled_exception(member: str) -> None:
    sdk_class = getattr(models, STREAM_EXCEPTIONS[member].sdk_class)
    with pytest.raises(sdk_class) as info:
        await sdk_receive(encode_exception(member, "RequestId=abc : nope"))
    assert info.value.message == "RequestId=abc : nope"
    assert info.value.fault == STREAM_EXCEPTIONS[member].fault


async def test_sdk_reads_model_stream_error_extras() -> None:
    data = encode_exception(
        "modelStreamErrorException", "m", originalStatusCode=503, originalMessage="upstream"
    )
    with pytest.raises(models.ModelStreamErrorException) as info:
        await sdk_receive(data)
    assert (info.value.original_status_code, info.value.original_message) == (503, "upstream")


async def test_sdk_raises_key_error_for_the_capitalised_member() -> None:
    bad = EventMessage(
        headers={
            ":message-type": "exception",
            ":exception-type": "ValidationException",
            ":content-type": "application/json",
        },
        payload=b'{"message":"x"}',
    )
    with pytest.raises(KeyError):
        await sdk_receive(bad.encode())


async def test_sdk_raises_unmodeled_error() -> None:
    with pytest.raises(UnmodeledEventError) as info:
        await sdk_receive(encode_error("InternalFailure", "broken"))
    assert (info.value.code, info.value.message) == ("InternalFailure", "broken")


async def test_sdk_yields_unknown_for_other_event_types() -> None:
    data = encode_message(
        {":message-type": "event", ":event-type": "newThing", ":content-type": "application/json"},
        b"{}",
    )
    result = await sdk_receive(data)
    assert isinstance(result, InvokeModelWithBidirectionalStreamOutputUnknown)
