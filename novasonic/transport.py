"""The transport seam: the stock ``aws_sdk_bedrock_runtime`` client on the CRT (HTTP/2) transport.

Bedrock, the fake server and the capture proxy differ only in endpoint and trust (design §2,
httpx's transport seam). Nothing here is patched: it is the client an application builds.

- ``endpoint``: argument, else ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (resolved by the SDK itself),
  else the regional Bedrock endpoint.
- trust: ``SSL_CERT_FILE`` in the environment (awscrt reads it when the TLS context is created),
  or ``ca_file=`` here, which gives the transport its own TLS context trusting only that CA (no
  process-wide environment change; uses the transport's ``_tls_ctx`` attribute — checked against
  smithy-http 0.6).
- credentials: static (``credentials=``) or the SDK's default chain.
- The SDK's default transport (aiohttp) cannot do duplex; the CRT transport is always passed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from awscrt import io as crt_io
from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
    InvokeModelWithBidirectionalStreamOutputChunk,
)
from smithy_http.aio.crt import AWSCRTHTTPClient

from .events import InputEvent, OutputEvent, parse_output

__all__ = [
    "crt_transport",
    "make_client",
    "open_duplex",
    "DuplexEvents",
    "client_from_info",
]


def crt_transport(ca_file: str | os.PathLike[str] | None = None) -> AWSCRTHTTPClient:
    """A CRT HTTP client; with ``ca_file`` its TLS context trusts exactly that CA."""
    transport = AWSCRTHTTPClient()
    if ca_file is not None:
        opts = crt_io.TlsContextOptions()
        opts.override_default_trust_store_from_path(None, os.fspath(ca_file))
        transport._tls_ctx = crt_io.ClientTlsContext(opts)  # noqa: SLF001 - documented seam
    return transport


async def make_client(
    *,
    region: str | None = None,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> AsyncBedrockRuntimeClient:
    """The stock async Bedrock Runtime client on the CRT transport."""
    kwargs: dict[str, Any] = {"transport": crt_transport(ca_file), **overrides}
    if region is not None:
        kwargs["region"] = region
    if endpoint is not None:
        kwargs["endpoint_uri"] = endpoint
    if access_key_id is not None:
        kwargs["aws_access_key_id"] = access_key_id
        kwargs["aws_secret_access_key"] = secret_access_key
        if session_token is not None:
            kwargs["aws_session_token"] = session_token
    config = await AsyncBedrockRuntimeConfig.resolve(**kwargs)
    return AsyncBedrockRuntimeClient(config=config)


async def client_from_info(info: Mapping[str, Any], *, use_env_trust: bool = False) -> AsyncBedrockRuntimeClient:
    """A client for a fake server's ready-file document / ``FakeNovaSonic.info()``."""
    return await make_client(
        region=info["region"],
        endpoint=info["endpoint"],
        access_key_id=info["access_key_id"],
        secret_access_key=info["secret_access_key"],
        session_token=info.get("session_token"),
        ca_file=None if use_env_trust else info["ca_file"],
    )


class DuplexEvents:
    """Typed events over one SDK duplex stream: ``send(InputEvent)``, ``receive() -> OutputEvent``.

    SDK exceptions (``ValidationException``, ...) propagate unchanged from :meth:`receive`.
    """

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._output: Any = None

    async def send(self, event: InputEvent | bytes) -> None:
        data = event if isinstance(event, bytes) else event.to_bytes()
        await self.stream.input_stream.send(
            InvokeModelWithBidirectionalStreamInputChunk(value=BidirectionalInputPayloadPart(bytes_=data))
        )

    async def close_input(self) -> None:
        await self.stream.input_stream.close()

    async def await_output(self) -> Any:
        if self._output is None:
            self._output = await self.stream.await_output()
        return self._output

    async def receive(self) -> OutputEvent | None:
        """Next output event, ``None`` at the end of the stream."""
        _, output_stream = await self.await_output()
        item = await output_stream.receive()
        if item is None:
            return None
        if isinstance(item, InvokeModelWithBidirectionalStreamOutputChunk):
            return parse_output(item.value.bytes_ or b"")
        raise TypeError(f"unexpected output stream member {type(item).__name__}")

    async def close(self) -> None:
        try:
            await self.stream.close()
        except Exception:
            pass


async def open_duplex(client: AsyncBedrockRuntimeClient, model_id: str) -> DuplexEvents:
    """Start ``InvokeModelWithBidirectionalStream``. Returns before the service answers."""
    stream = await client.invoke_model_with_bidirectional_stream(
        InvokeModelWithBidirectionalStreamOperationInput(model_id=model_id)
    )
    return DuplexEvents(stream)
