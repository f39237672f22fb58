"""A hand-driven HTTP/2 client for what the stock SDK never sends: tampered or out-of-chain signed
frames, a stale ``x-amz-date``, garbage, a stream that is opened and abandoned.

It speaks the same wire as the SDK (protocol.md §4.1–4.4): ``h2`` over an ``ssl`` socket that
trusts the fake's CA (ALPN ``h2``), the request signed with ``novasonic.wire.sign_request`` and
every input frame signed with ``ChunkSigner`` — unless a test deliberately does otherwise.

::

    raw = await RawClient.connect(fake.port, fake.ca_file)
    stream = await raw.open(creds, region=fake.region)            # HEADERS (signed request)
    await stream.send_event(b'{"event":{"sessionStart":{}}}')      # a correctly signed frame
    await stream.send_bytes(stream.sign(inner)[:-1] + b"\\x00")     # anything at all
    status, frames = await stream.response()                       # HTTP status + decoded output
    await raw.close()
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from fakeserver.tls import client_ssl_context
from novasonic.wire import (
    ChunkSigner,
    Credentials,
    FrameDecoder,
    decode_output,
    encode_chunk,
    parse_authorization,
    sign_request,
)
from novasonic.wire.envelope import OutputFrame

__all__ = ["RawClient", "RawStream", "DEFAULT_MODEL", "EVENTSTREAM"]

DEFAULT_MODEL = "amazon.nova-2-sonic-v1:0"
EVENTSTREAM = "application/vnd.amazon.eventstream"
TIMEOUT = 10.0


@dataclass
class RawStream:
    client: RawClient
    stream_id: int
    signer: ChunkSigner | None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset_code: int | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _headers_seen: asyncio.Event = field(default_factory=asyncio.Event)

    # ---------------------------------------------------------------- sending
    def sign(self, inner: bytes, *, date: datetime | None = None) -> bytes:
        """The signed outer frame for ``inner`` (advances the signature chain)."""
        assert self.signer is not None, "stream was opened unsigned"
        return self.signer.sign(inner, date=date or datetime.now(UTC)).encode()

    async def send_bytes(self, data: bytes, *, end_stream: bool = False) -> None:
        self.client.conn.send_data(self.stream_id, data, end_stream=end_stream)
        await self.client.flush()

    async def send_event(self, event: bytes | Mapping[str, Any] | Any) -> None:
        """One event (JSON bytes, a ``{"event": ...}`` mapping or a typed ``InputEvent``), signed."""
        await self.send_bytes(self.sign(encode_chunk(_event_bytes(event))))

    async def end_input(self) -> None:
        """The signed empty frame, then END_STREAM (what ``input_stream.close()`` does)."""
        await self.send_bytes(self.sign(b""), end_stream=True)

    # ---------------------------------------------------------------- receiving
    async def wait_headers(self, timeout: float = TIMEOUT) -> int | None:
        await asyncio.wait_for(self._headers_seen.wait(), timeout)
        return self.status

    async def response(self, timeout: float = TIMEOUT) -> tuple[int | None, list[OutputFrame]]:
        """Wait for the end of the response (END_STREAM, reset or connection loss)."""
        await asyncio.wait_for(self._done.wait(), timeout)
        return self.status, self.frames()

    def frames(self) -> list[OutputFrame]:
        """The body decoded as event-stream output (empty for an HTTP error's JSON body)."""
        if self.headers.get("content-type") != EVENTSTREAM:
            return []
        decoder = FrameDecoder()
        return [decode_output(m) for m in decoder.feed(bytes(self.body))]

    def json_body(self) -> dict[str, Any]:
        return json.loads(bytes(self.body))


class RawClient:
    """One TLS + HTTP/2 connection to the fake server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.streams: dict[int, RawStream] = {}
        self.terminated: asyncio.Event = asyncio.Event()
        """Set on the server's GOAWAY and when the connection is gone."""
        self.eof: asyncio.Event = asyncio.Event()
        """Set when the connection is gone (the server closed it, or it broke)."""
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @classmethod
    async def connect(cls, port: int, ca_file: str, *, host: str = "127.0.0.1") -> RawClient:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=client_ssl_context(ca_file), server_hostname="localhost"
        )
        self = cls(reader, writer)
        self.port = port
        self.conn.initiate_connection()
        await self.flush()
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        return self

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def open(
        self,
        credentials: Credentials | None,
        *,
        region: str,
        model_id: str = DEFAULT_MODEL,
        now: datetime | None = None,
        extra_headers: Mapping[str, str] | None = None,
        path: str | None = None,
        method: str = "POST",
    ) -> RawStream:
        """Send the request HEADERS, signed like the SDK signs them (``credentials=None``: unsigned).
        ``path``/``method`` override the operation's (to test routing)."""
        if path is None:
            path = f"/model/{model_id.replace(':', '%3A')}/invoke-with-bidirectional-stream"
        authority = f"localhost:{self.port}"
        base = {"content-type": EVENTSTREAM, **(extra_headers or {})}
        signer = None
        if credentials is not None:
            signed = sign_request(
                method, f"https://{authority}{path}", base, credentials, region=region, now=now or datetime.now(UTC)
            )
            seed = parse_authorization(signed["authorization"]).signature
            signer = ChunkSigner(seed, credentials, region=region)
            headers = {**base, **signed}
        else:
            headers = base
        sid = self.conn.get_next_available_stream_id()
        stream = RawStream(self, sid, signer)
        self.streams[sid] = stream
        self.conn.send_headers(
            sid,
            [(":method", method), (":scheme", "https"), (":authority", authority), (":path", path),
             *((k, v) for k, v in headers.items() if k != "host")],
        )
        await self.flush()
        return stream

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    break
                for ev in events:
                    self._on_event(ev)
                await self.flush()
        except (ConnectionError, OSError):
            pass
        finally:
            self.terminated.set()
            self.eof.set()
            for s in self.streams.values():
                s._headers_seen.set()
                s._done.set()

    def _on_event(self, ev: h2.events.Event) -> None:
        stream = self.streams.get(getattr(ev, "stream_id", 0) or 0)
        match ev:
            case h2.events.ResponseReceived() if stream is not None:
                hdrs = dict(ev.headers)
                stream.status = int(hdrs.pop(":status"))
                stream.headers = hdrs
                stream._headers_seen.set()
            case h2.events.DataReceived() if stream is not None:
                stream.body += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            case h2.events.StreamEnded() if stream is not None:
                stream.ended = True
                stream._headers_seen.set()
                stream._done.set()
            case h2.events.StreamReset() if stream is not None:
                stream.reset_code = ev.error_code
                stream._headers_seen.set()
                stream._done.set()
            case h2.events.ConnectionTerminated():
                self.terminated.set()
            case _:
                pass

    def abort(self) -> None:
        """Vanish: drop the TCP connection without RST_STREAM, GOAWAY or TLS close_notify."""
        self.writer.transport.abort()
        if self._task is not None:
            self._task.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if not self.writer.is_closing():
            try:
                self.conn.close_connection()
                self.writer.write(self.conn.data_to_send())
            except Exception:
                pass
            self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except Exception:
            pass


def _event_bytes(event: Any) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, Mapping):
        return json.dumps(event, separators=(",", ":")).encode()
    return event.to_bytes()
