"""The real AsyncBedrockRuntimeClient over awscrt (TLS, ALPN h2) against a test capture
server; novasonic.wire must accept exactly what it sends (protocol.md 4.1-4.5, 4.7)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import trustme
from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
    InvokeModelWithBidirectionalStreamOutputChunk,
)
from smithy_aws_core.identity import AWSCredentialsIdentity, StaticCredentialsResolver
from smithy_http.aio.crt import AWSCRTHTTPClient

from novasonic.wire import (
    ChunkSignatureVerifier,
    Credentials,
    FrameDecoder,
    decode_chunk,
    decode_message,
    encode_chunk,
    verify_request,
)
from tests.helpers.sdk_capture_server import CaptureServer

REGION = "us-east-1"
MODEL = "amazon.nova-2-sonic-v1:0"
EVENTS = [
    b'{"event":{"sessionStart":{}}}',
    b'{"event":{"audioInput":{"promptName":"p","contentName":"a","content":"AAAA"}}}',
    b'{"event":{"sessionEnd":{}}}',
]
REPLY = b'{"event":{"completionEnd":{}}}'


@pytest.mark.parametrize(
    "creds",
    [Credentials("AKIDCAPTURE", "capture-secret"), Credentials("ASIACAPTURE", "s2", "tok-123")],
    ids=["long-term", "session"],
)
async def test_real_sdk_bytes_verify(
    creds: Credentials, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # read by awscrt's default trust store

    async with CaptureServer(ca, reply=encode_chunk(REPLY)) as server:
        config = await AsyncBedrockRuntimeConfig.resolve(
            config_file_path=str(tmp_path / "no-config"),  # hermetic: ignore ~/.aws
            credentials_file_path=str(tmp_path / "no-credentials"),
            endpoint_uri=server.url,
            region=REGION,
            aws_credentials_identity_resolver=StaticCredentialsResolver(
                AWSCredentialsIdentity(
                    access_key_id=creds.access_key_id,
                    secret_access_key=creds.secret_access_key,
                    session_token=creds.session_token,
                )
            ),
            transport=AWSCRTHTTPClient(),
        )
        client = AsyncBedrockRuntimeClient(config=config)
        started = datetime.now(UTC)
        async with asyncio.timeout(20):
            stream = await client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id=MODEL)
            )
            for event in EVENTS:
                chunk = InvokeModelWithBidirectionalStreamInputChunk(
                    value=BidirectionalInputPayloadPart(bytes_=event)
                )
                await stream.input_stream.send(chunk)
            await stream.input_stream.close()
            _, output = await stream.await_output()
            received = await output.receive()
            await server.streams[0].ended.wait()

    assert isinstance(received, InvokeModelWithBidirectionalStreamOutputChunk)
    assert received.value.bytes_ == REPLY

    captured = server.streams[0]
    headers = dict(captured.headers)
    assert headers[":path"] == "/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream?"
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    assert "content-length" not in headers

    auth = verify_request(
        headers[":method"],
        headers[":path"],
        captured.headers,
        {creds.access_key_id: creds}.get,
        region=REGION,
        now=started,
    )
    assert auth.session_token == (creds.session_token is not None)

    verifier = ChunkSignatureVerifier(auth, creds)
    decoder = FrameDecoder()
    events = []
    for outer in decoder.feed(bytes(captured.body)):
        inner = verifier.verify(outer)
        if inner:
            events.append(decode_chunk(decode_message(inner)))
    decoder.eof()
    assert verifier.finished
    assert events == EVENTS
