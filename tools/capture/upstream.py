"""The proxy's client side: one stream to the upstream service through the STOCK SDK client.

The proxy re-signs nothing itself: each upstream stream is an ordinary
``InvokeModelWithBidirectionalStream`` made by the unmodified ``aws_sdk_bedrock_runtime`` client on
the CRT transport (``novasonic.transport``), signed with the *upstream* credentials. The upstream is
real Bedrock for a region (the SDK resolves the regional endpoint; credentials from the boto3
chain), or any endpoint + CA (the fake server, a staging endpoint) with explicit credentials.

What the SDK does not tell, and how it is found out
---------------------------------------------------
The stock client reports three different upstream endings the same way, ``receive() -> None``:
END_STREAM, RST_STREAM and a closed connection (GOAWAY, close or a TCP reset). It also hides the
HTTP status and the ``x-amzn-errortype``/``x-amzn-requestid`` headers of an HTTP error. The proxy
needs both to relay and record what the service did, so it looks at the CRT stream under the SDK:
the transport's ``_await_response(crt_stream)`` (smithy-http 0.6: where a CRT stream becomes a
response) is wrapped on the one transport object the client uses, and the stream is handed to
the :class:`UpstreamStream` that opened it through a context variable (the SDK sends the request
in the caller's task or a task created from it, so the variable is visible there). The CRT
stream's completion future then says ``RST_STREAM received`` / ``connection closed``, or nothing
yet while the peer's END_STREAM already arrived. Without the CRT stream (a future SDK that does
not call ``_await_response``) everything still works; endings are then all ``end-stream`` and
HTTP errors use the status of :data:`fakeserver.http_errors.HTTP_ERRORS`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.models import InvokeModelWithBidirectionalStreamOutputChunk
from smithy_aws_event_stream.exceptions import EventError, UnmodeledEventError
from smithy_core.exceptions import CallError

from fakeserver.http_errors import BEDROCK_NAMESPACE, HTTP_ERRORS
from novasonic.session.credentials import Boto3Credentials, CredentialsProvider, StaticCredentials
from novasonic.transport import DuplexEvents, make_client, open_duplex
from novasonic.wire import STREAM_EXCEPTIONS

__all__ = [
    "Upstream",
    "UpstreamStream",
    "UpstreamHttpError",
    "UpstreamException",
    "UpstreamErrorFrame",
    "UpstreamCorruptFrame",
    "UpstreamLost",
    "UpstreamUnreachable",
    "Ending",
    "bedrock_endpoint",
]

_SDK_CLASS_TO_MEMBER = {e.sdk_class: e for e in STREAM_EXCEPTIONS.values()}
_CALL_ERROR = re.compile(r"status: (?P<status>\d{3}) - id: (?:[\w.]+#)?(?P<type>\w+)")

#: The CRT stream of the request being sent in this context (see the module doc).
_CRT_STREAM: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("nova_capture_crt_stream", default=None)


def bedrock_endpoint(region: str) -> str:
    """The public Bedrock Runtime endpoint of ``region`` (what the SDK resolves by itself)."""
    return f"https://bedrock-runtime.{region}.amazonaws.com"


# --------------------------------------------------------------------------- upstream outcomes


class UpstreamHttpError(Exception):
    """The upstream answered the request with an HTTP error instead of the event stream."""

    def __init__(self, error_type: str, status: int, message: str | None, *, namespace: str,
                 request_id: str | None, modeled: bool) -> None:
        super().__init__(f"HTTP {status} {error_type}: {message}")
        self.error_type = error_type
        self.status = status
        self.message = message
        self.namespace = namespace
        self.request_id = request_id
        self.modeled = modeled


class UpstreamException(Exception):
    """A modeled in-stream exception (``member`` = the lower-camel union member)."""

    def __init__(self, member: str, message: str, extra: dict[str, Any]) -> None:
        super().__init__(f"{member}: {message}")
        self.member = member
        self.message = message
        self.extra = extra


class UpstreamErrorFrame(Exception):
    """An unmodeled error message (``:message-type: error``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class UpstreamCorruptFrame(Exception):
    """A frame the SDK could not decode (bad CRC, bad lengths or headers)."""


class UpstreamLost(Exception):
    """The upstream stream failed below the event stream (connection closed, reset, TLS...)."""


class UpstreamUnreachable(Exception):
    """The upstream could not be asked at all (no credentials, connection refused, TLS failure)."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How the upstream's output ended without an exception.

    ``action``: ``end-stream`` (the peer's END_STREAM), ``rst`` (RST_STREAM received) or ``close``
    (the connection closed: GOAWAY, close or reset; the CRT does not tell them apart)."""

    action: Literal["end-stream", "rst", "close"]
    detail: str | None = None


# --------------------------------------------------------------------------- the upstream


@dataclass
class Upstream:
    """Where and how the proxy forwards: ``endpoint`` (None: real Bedrock in ``region``), the CA
    to trust (None: the system trust store) and the credentials the stock client signs with."""

    region: str = "us-east-1"
    endpoint: str | None = None
    ca_file: str | None = None
    credentials: CredentialsProvider | None = None
    """None: the boto3 default chain, resolved once by :meth:`prepare` (see there)."""
    _clients: dict[tuple[str, str, str | None], AsyncBedrockRuntimeClient] = field(default_factory=dict, repr=False)

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Upstream:
        """From a fake server's ready-file document / ``FakeNovaSonic.info()`` (or a proxy's)."""
        creds = StaticCredentials(info["access_key_id"], info["secret_access_key"], info.get("session_token"))
        return cls(region=info.get("region", "us-east-1"), endpoint=info["endpoint"], ca_file=info.get("ca_file"),
                   credentials=creds)

    @classmethod
    def from_ready_file(cls, path: str | os.PathLike[str]) -> Upstream:
        try:
            info = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the upstream ready file {path}: {exc}") from None
        missing = [k for k in ("endpoint", "access_key_id", "secret_access_key") if k not in info]
        if missing:
            raise ValueError(f"the upstream ready file {path} lacks {', '.join(missing)}")
        return cls.from_info(info)

    @property
    def is_bedrock(self) -> bool:
        return self.endpoint is None

    def describe(self) -> str:
        """Where requests go, for logs and cassette metadata (never a credential)."""
        return bedrock_endpoint(self.region) if self.endpoint is None else self.endpoint

    async def prepare(self) -> None:
        """Resolve the credentials now (fail early, with a clear message, when there are none).

        The default chain is resolved *once*, at start: a boto3 session is created and asked for
        credentials before anything else can change the environment (the pytest plugin then
        points the test's environment at the proxy's own test credentials; refreshable
        credentials keep refreshing through the same boto3 object)."""
        if self.credentials is None:
            import boto3

            session = await asyncio.to_thread(boto3.Session)
            await asyncio.to_thread(session.get_credentials)  # botocore caches the resolved object
            self.credentials = Boto3Credentials(session=session)
        try:
            await self.credentials.get_credentials()
        except Exception as exc:
            raise UpstreamUnreachable(
                f"no credentials for the upstream {self.describe()}: {exc}. Set AWS credentials (environment, "
                "profile, SSO...) for real Bedrock, or give the upstream's credentials explicitly"
            ) from exc

    async def secrets(self) -> tuple[str, ...]:
        """The credential values that must never be written anywhere (cassette guard)."""
        if self.credentials is None:
            return ()
        try:
            c = await self.credentials.get_credentials()
        except Exception:
            return ()
        return tuple(v for v in (c.access_key_id, c.secret_access_key, c.session_token) if v)

    async def _client(self) -> AsyncBedrockRuntimeClient:
        if self.credentials is None:
            await self.prepare()
        assert self.credentials is not None
        try:
            c = await self.credentials.get_credentials()
        except Exception as exc:
            raise UpstreamUnreachable(f"no credentials for the upstream {self.describe()}: {exc}") from exc
        key = (c.access_key_id, c.secret_access_key, c.session_token)
        client = self._clients.get(key)
        if client is None:
            self._clients.clear()  # credentials rotated: the old client is not used again
            client = await make_client(region=self.region, endpoint=self.endpoint, access_key_id=c.access_key_id,
                                       secret_access_key=c.secret_access_key, session_token=c.session_token,
                                       ca_file=self.ca_file)
            _observe_crt_streams(client)
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close the SDK clients this upstream made (bounded: a client's close can hang)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                await asyncio.wait_for(client.close(), 5.0)
            except Exception:
                pass

    async def open(self, model_id: str) -> UpstreamStream:
        """Start the upstream stream (returns before the upstream answers)."""
        client = await self._client()
        holder: list[Any] = []
        token = _CRT_STREAM.set(holder)
        try:
            duplex = await open_duplex(client, model_id)
        except Exception as exc:
            raise UpstreamUnreachable(f"cannot open a stream to {self.describe()}: {exc!r}") from exc
        finally:
            _CRT_STREAM.reset(token)
        return UpstreamStream(duplex, holder)


def _observe_crt_streams(client: AsyncBedrockRuntimeClient) -> None:
    """Wrap the client's transport so the CRT stream of each request reaches its opener."""
    transport = client._config.transport  # noqa: SLF001 - shared by the config copies (tls.py)
    if transport is None or getattr(transport, "_nova_capture_observed", False):
        return
    original = getattr(transport, "_await_response", None)
    if original is None:
        return

    async def await_response(stream: Any) -> Any:
        holder = _CRT_STREAM.get()
        if holder is not None and not holder:
            holder.append(stream)
        return await original(stream)

    transport._await_response = await_response  # type: ignore[method-assign]
    transport._nova_capture_observed = True  # also exempts it from the pytest plugin's Bedrock guard


# --------------------------------------------------------------------------- one stream


class UpstreamStream:
    """One upstream ``InvokeModelWithBidirectionalStream``: raw event JSON in and out."""

    def __init__(self, duplex: DuplexEvents, crt_holder: list[Any]) -> None:
        self.duplex = duplex
        self._crt = crt_holder
        self._receiver: Any = None
        self.request_id: str | None = None

    @property
    def crt_stream(self) -> Any:
        return self._crt[0] if self._crt else None

    async def send(self, event_json: bytes) -> None:
        await self.duplex.send(event_json)

    async def close_input(self) -> None:
        await self.duplex.close_input()

    async def response(self) -> None:
        """Wait for the upstream's response headers. Raises :class:`UpstreamHttpError` for an HTTP
        error, :class:`UpstreamUnreachable` when no response came at all."""
        try:
            _, self._receiver = await self.duplex.await_output()
        except CallError as exc:  # modeled (ServiceError subclasses) and unmodeled HTTP errors
            raise await self._http_error(exc) from exc
        except Exception as exc:
            raise UpstreamUnreachable(f"the upstream did not answer: {exc!r}") from exc
        self.request_id = await self._header("x-amzn-requestid")

    async def _header(self, name: str) -> str | None:
        crt = self.crt_stream
        if crt is None:
            return None
        try:
            headers = await asyncio.wait_for(crt.get_response_headers(), 1.0)
        except Exception:
            return None
        for key, value in headers:
            if key.lower() == name:
                return value
        return None

    async def _http_error(self, exc: CallError) -> UpstreamHttpError:
        status: int | None = None
        crt = self.crt_stream
        if crt is not None:
            try:
                status = await asyncio.wait_for(crt.get_response_status_code(), 1.0)
            except Exception:
                status = None
        errortype = await self._header("x-amzn-errortype")
        request_id = await self._header("x-amzn-requestid")
        name, _, namespace = (errortype or "").partition(":")
        message: str | None = getattr(exc, "message", None) or None
        modeled = type(exc).__name__ != "CallError"
        if modeled:
            name = name or type(exc).__name__
        else:  # "Unknown error for operation ... - status: 403 - id: ...#UnrecognizedClientException"
            m = _CALL_ERROR.search(str(exc))
            if m is not None:
                name = name or m.group("type")
                status = status or int(m.group("status"))
            known = HTTP_ERRORS.get(name)
            message = known.default_message if known is not None else None  # the SDK does not surface it
        known = HTTP_ERRORS.get(name)
        if status is None:
            status = known.status if known is not None else 500
        if not namespace:
            namespace = known.namespace if known is not None else BEDROCK_NAMESPACE
        return UpstreamHttpError(name or "UnknownError", status, message, namespace=namespace,
                                 request_id=request_id, modeled=modeled)

    async def receive(self) -> bytes | None:
        """The next output event's JSON bytes, ``None`` when the output ended without an exception
        (then :meth:`ending` says how). Raises the ``Upstream*`` errors above."""
        try:
            item = await self._receiver.receive()
        except UnmodeledEventError as exc:
            raise UpstreamErrorFrame(getattr(exc, "code", "UnknownError"), getattr(exc, "message", str(exc))) from exc
        except EventError as exc:
            raise UpstreamCorruptFrame(str(exc)) from exc
        except CallError as exc:
            spec = _SDK_CLASS_TO_MEMBER.get(type(exc).__name__)
            if spec is None:
                raise UpstreamLost(f"unexpected SDK error {exc!r}") from exc
            extra = {}
            for wire in spec.extra_fields:  # originalStatusCode -> original_status_code
                attr = re.sub(r"(?<!^)(?=[A-Z])", "_", wire).lower()
                value = getattr(exc, attr, None)
                if value is not None:
                    extra[wire] = value
            raise UpstreamException(spec.member, getattr(exc, "message", "") or "", extra) from exc
        except Exception as exc:
            raise UpstreamLost(self._crt_error() or repr(exc)) from exc
        if item is None:
            return None
        if isinstance(item, InvokeModelWithBidirectionalStreamOutputChunk):
            return item.value.bytes_ or b""
        raise UpstreamLost(f"unknown output union member {type(item).__name__} (update the SDK)")

    def _crt_error(self) -> str | None:
        crt = self.crt_stream
        fut = getattr(crt, "_completion_future", None)
        if fut is None or not fut.done() or fut.cancelled():
            return None
        exc = fut.exception()
        return None if exc is None else f"{getattr(exc, 'name', type(exc).__name__)}: {getattr(exc, 'message', exc)}"

    def ending(self) -> Ending:
        """How the output ended (after :meth:`receive` returned None)."""
        crt = self.crt_stream
        fut = getattr(crt, "_completion_future", None)
        if fut is None or not fut.done() or fut.cancelled():
            return Ending("end-stream")
        exc = fut.exception()
        if exc is None:
            return Ending("end-stream")
        name = getattr(exc, "name", "")
        if "RST_STREAM" in name:
            return Ending("rst", name)
        return Ending("close", name or repr(exc))

    async def close(self, timeout: float = 2.0) -> None:
        """Close the upstream stream (bounded: the SDK's close can hang after a reset)."""
        try:
            await asyncio.wait_for(self.duplex.close(), timeout)
        except (TimeoutError, Exception):
            pass
