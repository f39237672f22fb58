"""Build the STOCK ``aws_sdk_bedrock_runtime`` client against a (fake) endpoint.

No patching: the same client an application would build, pointed at ``endpoint`` and trusting the
fake server's CA through ``SSL_CERT_FILE`` (awscrt reads it when ``AWSCRTHTTPClient()`` creates its
TLS context; the SDK shares that transport across config copies, so setting it just before the
transport is built is enough — see fakeserver/tls.py).
"""

from __future__ import annotations

import os

from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInput,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
    InvokeModelWithBidirectionalStreamOperationOutput,
    InvokeModelWithBidirectionalStreamOutput,
)
from smithy_core.aio.eventstream import DuplexEventStream

from novasonic import transport

__all__ = ["DuplexStream", "make_client", "open_stream", "input_chunk"]

DuplexStream = DuplexEventStream[
    InvokeModelWithBidirectionalStreamInput,
    InvokeModelWithBidirectionalStreamOutput,
    InvokeModelWithBidirectionalStreamOperationOutput,
]

DEFAULT_MODEL_ID = "amazon.nova-2-sonic-v1:0"


async def make_client(
    endpoint: str,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    *,
    ca_file: str | os.PathLike[str] | None = None,
) -> AsyncBedrockRuntimeClient:
    """A stock client for ``endpoint`` with static credentials on the CRT (HTTP/2) transport.

    If ``ca_file`` is given, ``SSL_CERT_FILE`` is set in ``os.environ`` (and left set) before the
    transport is created, so awscrt trusts that CA. Close the client with ``await client.close()``.
    """
    if ca_file is not None:
        os.environ["SSL_CERT_FILE"] = os.fspath(ca_file)
    return await transport.make_client(
        region=region,
        endpoint=endpoint,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
    )


async def open_stream(client: AsyncBedrockRuntimeClient, model_id: str = DEFAULT_MODEL_ID) -> DuplexStream:
    """Start ``InvokeModelWithBidirectionalStream`` (returns before the service answers)."""
    return await client.invoke_model_with_bidirectional_stream(
        InvokeModelWithBidirectionalStreamOperationInput(model_id=model_id)
    )


def input_chunk(data: bytes) -> InvokeModelWithBidirectionalStreamInputChunk:
    """One input chunk as the SDK expects it (``data`` is the event JSON bytes)."""
    return InvokeModelWithBidirectionalStreamInputChunk(value=BidirectionalInputPayloadPart(bytes_=data))
