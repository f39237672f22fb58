"""novasonic.wire.sigv4: request verification reasons, chunk chain, signer parity
(protocol.md 4.1, 4.4). Bytes from the full SDK publisher are in test_wire_sdk.py."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest
from aws_sdk_signers import URI, AsyncEventSigner, AsyncSigV4Signer, AWSRequest, Field, Fields
from hypothesis import given, settings
from hypothesis import strategies as st
from smithy_aws_event_stream.events import EventHeaderDecoder, EventHeaderEncoder, EventMessage

from novasonic.errors import SignatureError
from novasonic.wire import (
    ChunkSignatureVerifier,
    ChunkSigner,
    Credentials,
    FrameDecoder,
    date_header_block,
    decode_message,
    encode_chunk,
    parse_authorization,
    sign_request,
    verify_request,
)

REGION = "eu-north-1"
HOST = f"bedrock-runtime.{REGION}.amazonaws.com"
PATH = "/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream"
URL = f"https://{HOST}{PATH}"
NOW = datetime(2025, 6, 30, 23, 59, 58, 250000, tzinfo=UTC)
CREDS = Credentials("AKIDTEST", "s3cr3t/key+value")
CONTENT_TYPE = {"content-type": "application/vnd.amazon.eventstream"}


def signed_headers(creds: Credentials = CREDS, now: datetime = NOW, **kw: str) -> dict[str, str]:
    region = kw.get("region", REGION)
    headers = sign_request("POST", URL, CONTENT_TYPE, creds, region=region, now=now)
    return {":authority": HOST, ":path": PATH + "?", **headers}


def verify(headers: dict[str, str], *, path: str = PATH + "?", now: datetime = NOW, creds=CREDS):
    return verify_request(
        "POST", path, headers, {creds.access_key_id: creds}.get, region=REGION, now=now
    )


def reason_of(headers: dict[str, str], **kw) -> str:
    with pytest.raises(SignatureError) as info:
        verify(headers, **kw)
    return info.value.reason


# --- credentials and parsing ---------------------------------------------------------------


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials("AKIDX", "the-secret", "the-token")
    for text in (repr(creds), str(creds), repr([creds])):
        assert "AKIDX" in text and "the-secret" not in text and "the-token" not in text
    assert "session_token=None" in repr(Credentials("AKIDX", "the-secret"))


def test_parse_authorization() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=" + "ab" * 32
    )
    auth = parse_authorization(header)
    assert auth.access_key_id == "AKID"
    assert auth.scope == "20250101/us-east-1/bedrock/aws4_request"
    assert auth.signed_headers == ("content-type", "host", "x-amz-date")


def _auth(
    credential: str = "A/20250101/r/s/aws4_request", signed: str = "host", sig: str = "0" * 64
) -> str:
    return f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={sig}"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc",
        "AWS4-HMAC-SHA256 Credential=A/20250101/r/s/aws4_request, SignedHeaders=host",
        _auth(credential="A/20250101/r/aws4_request"),
        _auth(credential="A/2025-01-01/r/s/aws4_request"),
        _auth(signed="Host"),
        _auth(sig="XYZ"),
        _auth(sig="0" * 64 + ", Extra=1"),
        _auth(sig="0" * 64 + ", Signature=" + "1" * 64),
    ],
)
def test_malformed_authorization(value: str) -> None:
    with pytest.raises(SignatureError) as info:
        parse_authorization(value)
    assert info.value.reason == "malformed-auth"


# --- request verification reasons ------------------------------------------------------------


def test_sign_request_round_trip_and_shape() -> None:
    headers = signed_headers()
    assert headers["x-amz-date"] == "20250630T235958Z"
    assert headers["x-amz-content-sha256"] == "STREAMING-AWS4-HMAC-SHA256-EVENTS"
    assert "x-amz-security-token" not in headers
    auth = verify(headers)
    assert auth.date == NOW.replace(microsecond=0)
    assert auth.scope == f"20250630/{REGION}/bedrock/aws4_request"


async def test_sign_request_matches_the_sdk_signer() -> None:
    request = AWSRequest(
        destination=URI(host=HOST, path=PATH),
        method="POST",
        body=None,
        fields=Fields([Field(name="Content-Type", values=[CONTENT_TYPE["content-type"]])]),
    )
    sdk = await AsyncSigV4Signer().sign(
        request=request,
        identity=CREDS.identity(),
        properties={"region": REGION, "service": "bedrock", "date": "20250630T235958Z"},
    )
    assert signed_headers()["authorization"] == sdk.fields["Authorization"].as_string()


def test_headers_as_bytes_pairs_like_h2() -> None:
    pairs = [(k.encode(), v.encode()) for k, v in signed_headers().items()]
    assert verify_request(
        "POST", PATH + "?", pairs, {CREDS.access_key_id: CREDS}.get, region=REGION, now=NOW
    ).access_key_id == CREDS.access_key_id


def test_missing_auth() -> None:
    headers = signed_headers()
    del headers["authorization"]
    assert reason_of(headers) == "missing-auth"


@pytest.mark.parametrize("amz_date", [None, "2025-06-30T23:59:58Z", "20251399T000000Z"])
def test_bad_amz_date_is_malformed(amz_date: str | None) -> None:
    headers = signed_headers()
    if amz_date is None:
        del headers["x-amz-date"]
    else:
        headers["x-amz-date"] = amz_date
    assert reason_of(headers) == "malformed-auth"


def test_unknown_key() -> None:
    other = Credentials("AKIDOTHER", "x")
    with pytest.raises(SignatureError) as info:
        verify(signed_headers(other), creds=CREDS)
    assert info.value.reason == "unknown-key" and "AKIDOTHER" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (f"/{REGION}/bedrock/", "/us-east-1/bedrock/"),
        (f"/{REGION}/bedrock/", f"/{REGION}/s3/"),
        ("/aws4_request", "/aws4_reqest"),
        ("Credential=AKIDTEST/20250630", "Credential=AKIDTEST/20250629"),
    ],
    ids=["region", "service", "terminator", "date"],
)
def test_bad_scope(old: str, new: str) -> None:
    headers = signed_headers()
    headers["authorization"] = headers["authorization"].replace(old, new)
    assert reason_of(headers) == "bad-scope"


def test_stale_date_both_directions() -> None:
    headers = signed_headers()
    assert reason_of(headers, now=NOW + timedelta(minutes=5, seconds=2)) == "stale-date"
    assert reason_of(headers, now=NOW - timedelta(minutes=5, seconds=2)) == "stale-date"
    verify(headers, now=NOW + timedelta(minutes=4))


@pytest.mark.parametrize(
    "change",
    [
        lambda h: h.update({"content-type": "application/json"}),
        lambda h: h.update({":authority": "evil.example.com"}),
        lambda h: h.update({"authorization": h["authorization"][:-1] + "0"}),
    ],
    ids=["signed-header-value", "host", "signature"],
)
def test_tampering_is_bad_signature(change) -> None:
    headers = signed_headers()
    change(headers)
    assert reason_of(headers) == "bad-signature"


def test_path_tampering_and_single_encoding_are_bad_signatures() -> None:
    headers = signed_headers()
    assert reason_of(headers, path=PATH.replace("sonic-v1", "sonic-v2") + "?") == "bad-signature"
    # A path sent with a raw colon canonicalises to %3A, not %253A: different signature.
    assert reason_of(headers, path=PATH.replace("%3A", ":") + "?") == "bad-signature"
    verify(headers, path=PATH)  # the trailing '?' (empty query) does not matter


def test_unsigned_host_is_malformed() -> None:
    headers = signed_headers()
    headers["authorization"] = headers["authorization"].replace(";host;", ";")
    assert reason_of(headers) == "malformed-auth"


def test_unsigned_extra_headers_are_ignored() -> None:
    headers = signed_headers()
    headers["user-agent"] = "anything"
    headers["x-amzn-trace-id"] = "Root=1"
    verify(headers)


# --- chunk chain --------------------------------------------------------------------------


def chain(dates: list[datetime], payloads: list[bytes], creds: Credentials = CREDS):
    headers = signed_headers(creds, now=dates[0])
    auth = verify(headers, now=dates[0], creds=creds)
    signer = ChunkSigner(auth.signature, creds, region=REGION)
    frames = [signer.sign(p, date=d) for p, d in zip(payloads, dates)]
    return auth, frames


async def test_chunk_signer_matches_sdk_event_signer() -> None:
    seed = "ab" * 32
    sdk_signer = AsyncEventSigner(
        initial_signature=seed.encode(), event_encoder_cls=EventHeaderEncoder
    )
    ours = ChunkSigner(seed, CREDS, region=REGION)
    for payload in [encode_chunk(b'{"event":{"sessionEnd":{}}}'), b""]:
        message = EventMessage() if not payload else decode_message(payload)
        sign = sdk_signer.sign_empty if not payload else sdk_signer.sign
        sdk = await sign(
            event=message,
            identity=CREDS.identity(),
            properties={"region": REGION, "service": "bedrock"},
        )
        date = sdk.headers[":date"]  # the SDK stamps now(); reuse its exact datetime
        assert isinstance(date, datetime)
        mine = ours.sign(sdk.payload, date=date)
        assert mine.headers == sdk.headers
        assert mine.encode() == sdk.encode()


def test_chain_round_trip_across_midnight_utc() -> None:
    dates = [NOW + timedelta(milliseconds=700 * i) for i in range(6)]
    assert dates[0].day != dates[-1].day  # scope date changes mid-stream
    payloads = [encode_chunk(b'{"event":{"n":%d}}' % i) for i in range(5)] + [b""]
    auth, frames = chain(dates, payloads)
    wire = b"".join(f.encode() for f in frames)
    verifier = ChunkSignatureVerifier(auth, CREDS)
    assert [verifier.verify(m) for m in FrameDecoder().feed(wire)] == payloads
    assert verifier.finished and verifier.frames_verified == 6


def test_frames_after_end_are_refused() -> None:
    auth, frames = chain([NOW], [b""])
    signer = ChunkSigner(auth.signature, CREDS, region=REGION)
    signer.sign_end(date=NOW)
    with pytest.raises(RuntimeError):
        signer.sign(b"x", date=NOW)
    verifier = ChunkSignatureVerifier(auth, CREDS)
    assert verifier.verify(frames[0]) == b""
    with pytest.raises(SignatureError) as info:
        verifier.verify(frames[0])
    assert info.value.reason == "bad-chunk-signature" and "end-of-input" in str(info.value)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({":date": NOW}, "missing-chunk-signature"),
        ({":chunk-signature": b"x" * 32}, "missing-chunk-signature"),
        ({":date": NOW, ":chunk-signature": b"x" * 31}, "bad-chunk-signature"),
        ({":date": NOW, ":chunk-signature": "x" * 32}, "bad-chunk-signature"),
        ({":date": "now", ":chunk-signature": b"x" * 32}, "bad-chunk-signature"),
        ({":date": NOW, ":chunk-signature": b"x" * 32, "extra": "1"}, "bad-chunk-signature"),
    ],
)
def test_malformed_outer_frames(headers: dict, reason: str) -> None:
    auth, _ = chain([NOW], [b""])
    with pytest.raises(SignatureError) as info:
        ChunkSignatureVerifier(auth, CREDS).verify(EventMessage(headers=headers, payload=b"p"))
    assert info.value.reason == reason


def test_verifier_argument_checks() -> None:
    auth, frames = chain([NOW], [b""])
    with pytest.raises(ValueError):
        ChunkSignatureVerifier(auth, Credentials("AKIDOTHER", "x"))
    with pytest.raises(ValueError):
        ChunkSignatureVerifier(auth, CREDS, max_skew=timedelta(minutes=1)).verify(frames[0])


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_date_header_block_reproduces_the_wire_bytes(millis: int) -> None:
    raw = b"\x05:date\x08" + struct.pack("!q", millis)
    decoded = EventHeaderDecoder(raw).decode_headers()[":date"]
    assert isinstance(decoded, datetime)
    assert date_header_block(decoded) == raw
