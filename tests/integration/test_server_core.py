"""The fake server's transport core against the STOCK aws_sdk_bedrock_runtime client (awscrt, HTTP/2, TLS).

No Nova logic here: handlers speak raw HTTP/2 + event-stream frames. What these tests pin down
about the stock client is summarised in fakeserver/http_errors.py and fakeserver/tls.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import h2.config
import h2.connection
import pytest
from aws_sdk_bedrock_runtime import models
from smithy_aws_event_stream.events import Event, EventMessage
from smithy_core.exceptions import CallError
from smithy_core.aio.interfaces.eventstream import EventReceiver

from fakeserver.http_errors import HTTP_ERRORS, send_http_error
from fakeserver.server import FakeServerCore, NonLoopbackBindError
from fakeserver.stream import ServerStream, StreamReset
from fakeserver.tls import TlsMaterial, client_ssl_context, client_ssl_env, generate_tls
from tests.helpers.sdk import input_chunk, make_client, open_stream

REGION = "us-east-1"
AKID = "AKIDFAKESERVERTEST"
SECRET = "fake-secret-access-key"
TIMEOUT = 20.0
EVENTSTREAM = [("content-type", "application/vnd.amazon.eventstream"), ("x-amzn-requestid", "req-ok")]

StreamHandler = Callable[[ServerStream], Awaitable[None]]


# ---------------------------------------------------------------------------- fixtures/helpers


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return generate_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def trust_ca(tls: TlsMaterial, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in client_ssl_env(tls.ca_file).items():
        monkeypatch.setenv(key, value)


@asynccontextmanager
async def serving(tls: TlsMaterial, handler: StreamHandler, **kwargs: object) -> AsyncIterator[FakeServerCore]:
    core = FakeServerCore(ssl_context=tls.server_context(), handler=handler, **kwargs)  # type: ignore[arg-type]
    await core.start()
    try:
        yield core
    finally:
        await core.close(grace=0.2)


@asynccontextmanager
async def sdk_client(core: FakeServerCore):
    client = await make_client(core.endpoint, REGION, AKID, SECRET)
    try:
        yield client
    finally:
        await client.close()


def output_chunk(event: dict) -> bytes:
    """One encoded output message exactly as the service frames a chunk (protocol.md §4.5)."""
    inner = base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()
    return EventMessage(
        headers={":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"},
        payload=json.dumps({"bytes": inner}).encode(),
    ).encode()


def exception_frame(member: str, message: str) -> bytes:
    return EventMessage(
        headers={":message-type": "exception", ":exception-type": member, ":content-type": "application/json"},
        payload=json.dumps({"message": message}).encode(),
    ).encode()


def decode_input_frames(body: bytes) -> list[bytes]:
    """Unwrap the SDK's signed outer frames; return each inner chunk's event bytes (b"" = end frame)."""
    source = io.BytesIO(body)
    out: list[bytes] = []
    while (outer := Event.decode(source)) is not None:
        assert set(outer.message.headers) == {":date", ":chunk-signature"}
        if not outer.message.payload:
            out.append(b"")
            continue
        inner = Event.decode(io.BytesIO(outer.message.payload))
        assert inner is not None
        assert inner.message.headers[":event-type"] == "chunk"
        out.append(base64.b64decode(json.loads(inner.message.payload)["bytes"]))
    return out


GOAWAY = 0x7


def frame_types(data: bytes) -> list[int]:
    """Types of the HTTP/2 frames in ``data`` (raw server bytes)."""
    types, i = [], 0
    while i + 9 <= len(data):
        types.append(data[i + 3])
        i += 9 + int.from_bytes(data[i : i + 3], "big")
    return types


async def read_all(stream: ServerStream) -> bytes:
    parts = []
    while (data := await stream.receive()) is not None:
        parts.append(data)
    return b"".join(parts)


async def receive_all(receiver: EventReceiver) -> list[bytes]:
    got = []
    while (event := await asyncio.wait_for(receiver.receive(), TIMEOUT)) is not None:
        got.append(event.value.bytes_)
    return got


# ---------------------------------------------------------------------------- HTTP-level errors

MODELED = [name for name, kind in HTTP_ERRORS.items() if kind.modeled]
UNMODELED = [name for name, kind in HTTP_ERRORS.items() if not kind.modeled]


@pytest.mark.parametrize("error_type", MODELED)
async def test_http_error_raises_modeled_exception(tls: TlsMaterial, error_type: str) -> None:
    calls = []

    async def handler(stream: ServerStream) -> None:
        calls.append(stream.request.path)
        await send_http_error(stream, error_type, f"boom {error_type}", request_id="req-123")

    async with serving(tls, handler) as core, sdk_client(core) as client:
        stream = await open_stream(client)
        with pytest.raises(getattr(models, error_type)) as info:
            await asyncio.wait_for(stream.await_output(), TIMEOUT)
    exc = info.value
    assert type(exc) is getattr(models, error_type)
    assert exc.message == f"boom {error_type}"
    assert exc.response_metadata.request_id == "req-123"
    assert exc.response_metadata.http_status_code == HTTP_ERRORS[error_type].status
    assert calls == ["/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream?"]  # no SDK retry


@pytest.mark.parametrize("error_type", UNMODELED)
async def test_unmodeled_auth_error_raises_call_error(tls: TlsMaterial, error_type: str) -> None:
    async def handler(stream: ServerStream) -> None:
        await send_http_error(stream, error_type)

    async with serving(tls, handler) as core, sdk_client(core) as client:
        stream = await open_stream(client)
        with pytest.raises(CallError) as info:
            await asyncio.wait_for(stream.await_output(), TIMEOUT)
    assert type(info.value) is CallError
    assert info.value.message == (
        "Unknown error for operation com.amazonaws.bedrockruntime#InvokeModelWithBidirectionalStream"
        f" - status: {HTTP_ERRORS[error_type].status} - id: com.amazonaws.bedrockruntime#{error_type}"
    )
    assert info.value.fault == "client"


def test_unknown_http_error_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown HTTP error type 'Nope'"):
        asyncio.run(send_http_error(None, "Nope"))  # type: ignore[arg-type]


async def test_ssl_cert_file_is_read_when_the_transport_is_built(
    tls: TlsMaterial, monkeypatch: pytest.MonkeyPatch
) -> None:
    """awscrt reads SSL_CERT_FILE in AWSCRTHTTPClient(); the SDK shares that transport across its
    config copies, so removing the variable afterwards changes nothing."""

    async def handler(stream: ServerStream) -> None:
        await send_http_error(stream, "ValidationException", "trusted")

    async with serving(tls, handler) as core:
        client = await make_client(core.endpoint, REGION, AKID, SECRET, ca_file=tls.ca_file)
        monkeypatch.delenv("SSL_CERT_FILE")
        try:
            stream = await open_stream(client)
            with pytest.raises(models.ValidationException, match="trusted"):
                await asyncio.wait_for(stream.await_output(), TIMEOUT)
        finally:
            await client.close()


# ---------------------------------------------------------------------------- raw duplex


async def test_duplex_round_trip(tls: TlsMaterial) -> None:
    seen: dict[str, object] = {}

    async def handler(stream: ServerStream) -> None:
        seen["request"] = stream.request
        first = await stream.receive()  # hold the 200 until input arrives, like the service
        assert first
        await stream.send_headers(200, EVENTSTREAM)
        await stream.send_data(output_chunk({"event": {"completionStart": {"sessionId": "s1"}}}))
        body = first + await read_all(stream)
        seen["inputs"] = decode_input_frames(body)
        seen["client_ended"] = stream.client_ended
        await stream.send_data(output_chunk({"event": {"completionEnd": {"sessionId": "s1"}}}))
        await stream.end()

    events = [b'{"event":{"sessionStart":{}}}', b'{"event":{"promptStart":{}}}', b"x" * 5000]
    async with serving(tls, handler) as core, sdk_client(core) as client:
        stream = await open_stream(client)
        for data in events:
            await stream.input_stream.send(input_chunk(data))
        output, receiver = await asyncio.wait_for(stream.await_output(), TIMEOUT)
        first = await asyncio.wait_for(receiver.receive(), TIMEOUT)
        assert isinstance(first, models.InvokeModelWithBidirectionalStreamOutputChunk)
        assert json.loads(first.value.bytes_) == {"event": {"completionStart": {"sessionId": "s1"}}}
        await stream.input_stream.close()
        rest = await receive_all(receiver)
    assert [json.loads(b) for b in rest] == [{"event": {"completionEnd": {"sessionId": "s1"}}}]
    assert output.response_metadata.request_id == "req-ok"
    assert seen["inputs"] == [*events, b""]  # the empty signed frame marks the end of input
    assert seen["client_ended"] is True
    request = seen["request"]
    assert request.method == "POST"
    assert request.path == "/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream?"
    assert request.authority == f"localhost:{core.port}"
    assert request.header("x-amz-content-sha256") == "STREAMING-AWS4-HMAC-SHA256-EVENTS"
    assert request.header("authorization").startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")


async def test_exception_frame_raises_modeled_exception(tls: TlsMaterial) -> None:
    async def handler(stream: ServerStream) -> None:
        await stream.receive()
        await stream.send_headers(200, EVENTSTREAM)
        await stream.send_data(output_chunk({"event": {"completionStart": {}}}))
        await stream.send_data(exception_frame("validationException", "x"), end_stream=True)

    async with serving(tls, handler) as core, sdk_client(core) as client:
        stream = await open_stream(client)
        await stream.input_stream.send(input_chunk(b"{}"))
        _, receiver = await asyncio.wait_for(stream.await_output(), TIMEOUT)
        assert await asyncio.wait_for(receiver.receive(), TIMEOUT) is not None
        with pytest.raises(models.ValidationException) as info:
            await asyncio.wait_for(receiver.receive(), TIMEOUT)
    assert info.value.message == "x"


async def test_large_upload_and_download_respect_flow_control(tls: TlsMaterial) -> None:
    big = b"y" * 1_000_000  # one 1.3 MB output message: many frames, several window waits

    async def handler(stream: ServerStream) -> None:
        body = await read_all(stream)  # ~2.8 MB of signed frames, far above the 256 KiB window
        inputs = decode_input_frames(body)
        await stream.send_headers(200, EVENTSTREAM)
        await stream.send_data(output_chunk({"count": len(inputs), "size": sum(map(len, inputs))}))
        inner = base64.b64encode(big).decode()
        message = EventMessage(
            headers={":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"},
            payload=json.dumps({"bytes": inner}).encode(),
        ).encode()
        await stream.send_data(message, end_stream=True)

    async with serving(tls, handler) as core, sdk_client(core) as client:
        stream = await open_stream(client)
        for _ in range(256):
            await stream.input_stream.send(input_chunk(b"a" * 8192))
        await stream.input_stream.close()
        await asyncio.wait_for(stream.await_output(), TIMEOUT)
        got = await receive_all(stream.output_stream)
    assert json.loads(got[0]) == {"count": 257, "size": 256 * 8192}
    assert got[1] == big


# ---------------------------------------------------------------------------- resets, GOAWAY, drops


async def _serve_then(tls: TlsMaterial, fault: Callable[[ServerStream], None]) -> tuple[list[object], bool]:
    """Answer 200 + one chunk, then apply ``fault``; return what the client received after it,
    and whether a new stream on the same client still works."""

    streams_seen = 0

    async def handler(stream: ServerStream) -> None:
        nonlocal streams_seen
        streams_seen += 1
        await stream.receive()
        await stream.send_headers(200, EVENTSTREAM)
        await stream.send_data(output_chunk({"event": {"n": 1}}))
        if streams_seen == 1:
            await asyncio.sleep(0.05)
            fault(stream)
            await asyncio.sleep(10)
        await read_all(stream)
        await stream.end()

    async with serving(tls, handler) as core, sdk_client(core) as client:
        stream = await open_stream(client)
        await stream.input_stream.send(input_chunk(b"{}"))
        _, receiver = await asyncio.wait_for(stream.await_output(), TIMEOUT)
        assert await asyncio.wait_for(receiver.receive(), TIMEOUT) is not None
        after = [await asyncio.wait_for(receiver.receive(), TIMEOUT)]
        # The same client opens a fresh stream (a new connection after GOAWAY/abort).
        again = await open_stream(client)
        await again.input_stream.send(input_chunk(b"{}"))
        await again.input_stream.close()
        await asyncio.wait_for(again.await_output(), TIMEOUT)
        works = len(await receive_all(again.output_stream)) == 1
    return after, works


@pytest.mark.parametrize("error_code", [0, 2, 8])  # NO_ERROR, INTERNAL_ERROR, CANCEL
async def test_server_reset_ends_client_output_with_none(tls: TlsMaterial, error_code: int) -> None:
    after, works = await _serve_then(tls, lambda s: s.reset(error_code))
    assert after == [None] and works


@pytest.mark.parametrize("error_code", [0, 2])
async def test_goaway_ends_client_output_with_none(tls: TlsMaterial, error_code: int) -> None:
    after, works = await _serve_then(tls, lambda s: s.goaway(error_code))
    assert after == [None] and works


async def test_abrupt_connection_drop_ends_client_output_with_none(tls: TlsMaterial) -> None:
    after, works = await _serve_then(tls, lambda s: s.abort_connection())
    assert after == [None] and works


async def test_client_reset_reaches_handler_after_buffered_data(tls: TlsMaterial) -> None:
    """The SDK never resets on its own; a raw h2 client's RST_STREAM reaches the handler as
    StreamReset, after the data that arrived before it."""
    go = asyncio.Event()
    outcome: list[object] = []

    async def handler(stream: ServerStream) -> None:
        await go.wait()  # let DATA and RST_STREAM both arrive before reading
        outcome.append(await stream.receive())
        try:
            await stream.receive()
        except StreamReset as exc:
            outcome.append(exc)

    async with serving(tls, handler) as core:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", core.port, ssl=client_ssl_context(tls.ca_file), server_hostname="localhost"
        )
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":path", "/x"), (":scheme", "https"), (":authority", "localhost")])
        conn.send_data(1, b"hello")
        conn.reset_stream(1, 8)
        writer.write(conn.data_to_send())
        await asyncio.sleep(0.2)
        go.set()
        for _ in range(100):
            if len(outcome) == 2:
                break
            await asyncio.sleep(0.05)
        writer.close()
    assert outcome[0] == b"hello"
    assert isinstance(outcome[1], StreamReset) and outcome[1].error_code == 8


# ---------------------------------------------------------------------------- isolation


async def test_handler_errors_stay_in_their_stream(tls: TlsMaterial, caplog: pytest.LogCaptureFixture) -> None:
    async def handler(stream: ServerStream) -> None:
        first = await stream.receive()
        assert first is not None
        kind = decode_input_frames(first)[0]
        if kind == b"raise-before-headers":
            raise RuntimeError("handler bug before headers")
        if kind == b"return-silently":
            return
        await stream.send_headers(200, EVENTSTREAM)
        await stream.send_data(output_chunk({"event": {"n": 1}}))
        if kind == b"raise-after-headers":
            raise RuntimeError("handler bug after headers")
        await read_all(stream)
        await stream.end()

    async def run(kind: bytes) -> object:
        stream = await open_stream(client)
        await stream.input_stream.send(input_chunk(kind))
        try:
            _, receiver = await asyncio.wait_for(stream.await_output(), TIMEOUT)
            return await receive_all(receiver)
        except Exception as exc:
            return exc

    async with serving(tls, handler) as core, sdk_client(core) as client:
        # Open the healthy stream first: the CRT pool has no lock, so concurrent first calls
        # would each dial their own connection. Afterwards every stream shares this one.
        healthy = await open_stream(client)
        await healthy.input_stream.send(input_chunk(b"healthy"))
        _, healthy_output = await asyncio.wait_for(healthy.await_output(), TIMEOUT)
        before, silent, after = await asyncio.gather(
            run(b"raise-before-headers"),
            run(b"return-silently"),
            run(b"raise-after-headers"),
        )
        assert len(core.connections) == 1
        await healthy.input_stream.close()
        healthy_got = await receive_all(healthy_output)
    assert isinstance(before, models.InternalServerException)
    assert isinstance(silent, models.InternalServerException)
    assert after == [b'{"event":{"n":1}}']  # then RST_STREAM INTERNAL_ERROR -> None
    assert healthy_got == [b'{"event":{"n":1}}']
    assert "handler bug before headers" in caplog.text and "handler bug after headers" in caplog.text


async def test_misbehaving_clients_do_not_disturb_a_healthy_stream(tls: TlsMaterial) -> None:
    release = asyncio.Event()

    async def handler(stream: ServerStream) -> None:
        await stream.receive()
        await stream.send_headers(200, EVENTSTREAM)
        await stream.send_data(output_chunk({"event": {"n": 1}}))
        await release.wait()
        await read_all(stream)
        await stream.send_data(output_chunk({"event": {"n": 2}}), end_stream=True)

    async def raw(ssl_ctx: ssl.SSLContext | None, payload: bytes, abort: bool = False) -> bytes:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", core.port, ssl=ssl_ctx, server_hostname="localhost" if ssl_ctx else None
        )
        writer.write(payload)
        if abort:
            writer.transport.abort()
            return b""
        try:
            return await asyncio.wait_for(reader.read(-1), TIMEOUT)
        except (ConnectionError, ssl.SSLError):
            return b""
        finally:
            writer.close()

    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    async with serving(tls, handler) as core, sdk_client(core) as client:
        stream = await open_stream(client)
        await stream.input_stream.send(input_chunk(b"{}"))
        _, receiver = await asyncio.wait_for(stream.await_output(), TIMEOUT)
        assert await asyncio.wait_for(receiver.receive(), TIMEOUT) is not None

        tls_ctx = client_ssl_context(tls.ca_file)
        plain_junk, tls_junk, bad_frames, _, http1 = await asyncio.gather(
            raw(None, b"\x16\x03\x01garbage that is not a TLS handshake" * 50),
            raw(tls_ctx, b"\x00\xff not an HTTP/2 preface \xff" * 100),
            raw(tls_ctx, preface + b"\x00\x00\x04\x00\x00\x00\x00\x00\x01junk" * 20),  # DATA on an idle stream
            raw(tls_ctx, preface, abort=True),
            raw(client_ssl_context(tls.ca_file, alpn=("http/1.1",)), b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"),
        )
        assert plain_junk == b""  # TLS handshake failed: the socket is just closed
        assert frame_types(tls_junk)[-1] == GOAWAY  # SETTINGS, WINDOW_UPDATE, GOAWAY, close
        assert frame_types(bad_frames)[-1] == GOAWAY
        assert http1.startswith(b"HTTP/1.1 505")

        await stream.input_stream.send(input_chunk(b"{}"))
        await stream.input_stream.close()
        release.set()
        assert [json.loads(b) for b in await receive_all(receiver)] == [{"event": {"n": 2}}]


async def test_fifty_concurrent_sdk_streams(tls: TlsMaterial) -> None:
    async def handler(stream: ServerStream) -> None:
        first = await stream.receive()
        await stream.send_headers(200, EVENTSTREAM)
        inputs = decode_input_frames((first or b"") + await read_all(stream))
        for item in inputs[:-1]:
            await stream.send_data(output_chunk({"echo": item.decode()}))
        await stream.end()

    async def session(client, n: int) -> list[bytes]:
        stream = await open_stream(client)
        for i in range(3):
            await stream.input_stream.send(input_chunk(f"{n}-{i}".encode()))
            await asyncio.sleep(0.01)
        await stream.input_stream.close()
        await asyncio.wait_for(stream.await_output(), TIMEOUT)
        return await receive_all(stream.output_stream)

    async with serving(tls, handler) as core:
        clients = [await make_client(core.endpoint, REGION, AKID, SECRET) for _ in range(5)]
        try:
            for client in clients:  # one connection per client, then 10 multiplexed streams each
                await session(client, 0)
            results = await asyncio.wait_for(
                asyncio.gather(*(session(clients[n % 5], n) for n in range(50))), 60
            )
            assert len(core.connections) == 5
        finally:
            for client in clients:
                await client.close()
    for n, got in enumerate(results):
        assert [json.loads(b)["echo"] for b in got] == [f"{n}-{i}" for i in range(3)]


async def test_close_cancels_open_handlers_and_ends_client_streams(tls: TlsMaterial) -> None:
    cancelled = asyncio.Event()

    async def handler(stream: ServerStream) -> None:
        await stream.receive()
        await stream.send_headers(200, EVENTSTREAM)
        await stream.send_data(output_chunk({"event": {"n": 1}}))
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    core = FakeServerCore(ssl_context=tls.server_context(), handler=handler)
    await core.start()
    idle_reader, idle_writer = await asyncio.open_connection(  # TLS up, never sends a byte
        "127.0.0.1", core.port, ssl=client_ssl_context(tls.ca_file), server_hostname="localhost"
    )
    async with sdk_client(core) as client:
        stream = await open_stream(client)
        await stream.input_stream.send(input_chunk(b"{}"))
        _, receiver = await asyncio.wait_for(stream.await_output(), TIMEOUT)
        assert await asyncio.wait_for(receiver.receive(), TIMEOUT) is not None
        await asyncio.wait_for(core.close(grace=0.1), TIMEOUT)
        assert cancelled.is_set()
        assert await asyncio.wait_for(receiver.receive(), TIMEOUT) is None
        assert core.connections == []
        assert await asyncio.wait_for(idle_reader.read(), TIMEOUT) == b""  # closed, nothing sent
    idle_writer.close()


# ---------------------------------------------------------------------------- binding


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_non_loopback_bind_refused_without_flag(tls: TlsMaterial, host: str) -> None:
    async def handler(stream: ServerStream) -> None: ...

    with pytest.raises(NonLoopbackBindError, match="allow_non_loopback=True"):
        FakeServerCore(ssl_context=tls.server_context(), handler=handler, host=host)


async def test_loopback_and_explicit_non_loopback_binds(tls: TlsMaterial) -> None:
    async def handler(stream: ServerStream) -> None: ...

    for host in ("127.0.0.1", "localhost"):
        core = FakeServerCore(ssl_context=tls.server_context(), handler=handler, host=host)
        await core.start()
        assert core.endpoint == f"https://localhost:{core.port}"
        await core.close()
    core = FakeServerCore(ssl_context=tls.server_context(), handler=handler, host="0.0.0.0", allow_non_loopback=True)
    await core.start()
    assert core.endpoint == f"https://0.0.0.0:{core.port}"
    await core.close()
