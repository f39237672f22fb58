"""TEST-ONLY capture server: records what the stock SDK sends on one HTTP/2 stream.

Not the fake server (that lives in ``fakeserver/``). A throwaway asyncio + TLS
(ALPN h2) + ``h2`` server that answers every request with HTTP 200, records the
request headers and the raw request body bytes, and when the client ends its
stream replies with the given output bytes and ends the stream too
(protocol.md 4.1, 4.7, 4.8). Used to check that novasonic.wire accepts the bytes
of a real ``AsyncBedrockRuntimeClient`` over awscrt.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import trustme


@dataclass
class CapturedStream:
    """One request as received: headers in wire order and the concatenated DATA bytes."""

    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class CaptureServer:
    """``async with CaptureServer(ca, reply) as server:`` then point the SDK at ``server.url``."""

    def __init__(self, ca: trustme.CA, reply: bytes = b"") -> None:
        self.reply = reply
        self.streams: list[CapturedStream] = []
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(self._ssl)
        self._ssl.set_alpn_protocols(["h2"])
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    async def __aenter__(self) -> CaptureServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:  # the CRT client keeps its connection open
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, CapturedStream] = {}
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    self._handle(conn, streams, event)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _handle(
        self,
        conn: h2.connection.H2Connection,
        streams: dict[int, CapturedStream],
        event: h2.events.Event,
    ) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = [(_text(n), _text(v)) for n, v in event.headers or []]
            stream = streams[event.stream_id] = CapturedStream(headers)
            self.streams.append(stream)
            response = [
                (":status", "200"),
                ("content-type", "application/vnd.amazon.eventstream"),
                ("x-amzn-requestid", "capture-1"),
            ]
            conn.send_headers(event.stream_id, response)
        elif isinstance(event, h2.events.DataReceived):
            streams[event.stream_id].body += event.data or b""
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream = streams[event.stream_id]
            stream.ended.set()
            if self.reply:
                conn.send_data(event.stream_id, self.reply)
            conn.end_stream(event.stream_id)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value
