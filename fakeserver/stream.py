"""One HTTP/2 request stream as a handler sees it: :class:`Request`, :class:`ServerStream`, errors.

The handler API is deliberately small (read DATA, send HEADERS/DATA, end, reset, GOAWAY). All
HTTP/2 state lives in :mod:`fakeserver.connection`, which feeds each stream and performs the
sends; this module holds only the per-stream buffer and the handler-facing surface.

Errors (all :class:`TransportError`)::

    TransportError
    ├── StreamReset      the client reset this stream (RST_STREAM); ``error_code`` says why
    ├── StreamClosed     we cannot send: the response already ended, or we reset the stream
    └── ConnectionLost   the connection is gone (EOF, protocol error, GOAWAY, server shutdown)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Request",
    "ServerStream",
    "Handler",
    "TransportError",
    "StreamReset",
    "StreamClosed",
    "ConnectionLost",
]


class TransportError(Exception):
    """Base of the errors a handler sees from its stream."""


class StreamReset(TransportError):
    """The client sent RST_STREAM for this stream."""

    def __init__(self, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} reset by the client (HTTP/2 error code {error_code})")
        self.stream_id = stream_id
        self.error_code = error_code


class StreamClosed(TransportError):
    """The stream can no longer send: the response has ended or the server reset it."""


class ConnectionLost(TransportError):
    """The HTTP/2 connection carrying the stream is gone."""


@dataclass(frozen=True, slots=True)
class Request:
    """The request head of one stream, as received (nothing decoded or normalised)."""

    method: str
    path: str
    """Raw ``:path``: still percent-encoded; the SDK adds a trailing ``?`` (protocol.md §4.1)."""
    authority: str
    scheme: str
    headers: tuple[tuple[str, str], ...]
    """Regular headers in arrival order; names are lower-case (HTTP/2 requires it)."""

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None


class _StreamOwner(Protocol):
    """What a stream needs from its connection (implemented by ``H2ServerConnection``)."""

    def stream_send_headers(self, stream: ServerStream, headers: list[tuple[str, str]], end_stream: bool) -> None: ...
    async def stream_send_data(self, stream: ServerStream, data: bytes, end_stream: bool) -> None: ...
    async def drain(self) -> None: ...
    def stream_reset(self, stream: ServerStream, error_code: int) -> None: ...
    def stream_consumed(self, stream: ServerStream, size: int) -> None: ...
    def goaway(self, error_code: int = 0) -> None: ...
    def abort(self) -> None: ...


class ServerStream:
    """One HTTP/2 request stream. Created by the connection; handed to the handler.

    Incoming DATA is buffered per stream and acknowledged to flow control when the handler reads
    it (so a handler that stops reading slows only its own client, and a reading handler never
    stalls a long upload).
    """

    __slots__ = (
        "request",
        "connection_id",
        "stream_id",
        "_owner",
        "_chunks",
        "_readable",
        "_window",
        "_send_lock",
        "_eof",
        "_reset_code",
        "_lost",
        "headers_sent",
        "ended",
        "locally_reset",
    )

    def __init__(self, owner: _StreamOwner, request: Request, connection_id: int, stream_id: int) -> None:
        self.request = request
        self.connection_id = connection_id
        self.stream_id = stream_id
        self._owner = owner
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._readable = asyncio.Event()
        self._window = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._eof = False
        self._reset_code: int | None = None
        self._lost: ConnectionLost | None = None
        #: True once response HEADERS went out.
        self.headers_sent = False
        #: True once the response ended (END_STREAM sent).
        self.ended = False
        #: True once the server (handler or core) reset this stream.
        self.locally_reset = False

    def __repr__(self) -> str:
        return (
            f"<ServerStream conn={self.connection_id} id={self.stream_id} "
            f"{self.request.method} {self.request.path} headers_sent={self.headers_sent} ended={self.ended}>"
        )

    # ------------------------------------------------------------------ handler API

    async def receive(self) -> bytes | None:
        """Next DATA payload from the client; ``None`` once the client ended its side.

        Data that arrived before a reset is still delivered; then :class:`StreamReset` is raised.
        Raises :class:`ConnectionLost` if the connection died.
        """
        while not self._chunks:
            if self._reset_code is not None:
                raise StreamReset(self.stream_id, self._reset_code)
            if self._eof:
                return None
            if self._lost is not None:
                raise self._lost
            self._readable.clear()
            await self._readable.wait()
        data, flow_len = self._chunks.popleft()
        self._owner.stream_consumed(self, flow_len)
        return data

    @property
    def client_ended(self) -> bool:
        """True once the client sent END_STREAM (buffered data may still be unread)."""
        return self._eof

    async def send_headers(
        self, status: int, headers: list[tuple[str, str]] | None = None, end_stream: bool = False
    ) -> None:
        """Send the response head (``:status`` is added). Names must be lower-case."""
        if self.headers_sent:
            raise StreamClosed(f"stream {self.stream_id}: response headers already sent")
        self._check_can_send()
        self._owner.stream_send_headers(self, [(":status", str(status)), *(headers or [])], end_stream)
        await self._owner.drain()

    async def send_data(self, data: bytes, end_stream: bool = False) -> None:
        """Send DATA, waiting for the client's flow-control window and splitting into frames."""
        if not self.headers_sent:
            raise StreamClosed(f"stream {self.stream_id}: send_headers() must come before send_data()")
        self._check_can_send()
        await self._owner.stream_send_data(self, data, end_stream)

    async def end(self) -> None:
        """End the response (END_STREAM on an empty DATA frame)."""
        await self.send_data(b"", end_stream=True)

    def reset(self, error_code: int = 0) -> None:
        """Send RST_STREAM with ``error_code`` (0 = NO_ERROR). Idempotent; no-op once closed."""
        self._owner.stream_reset(self, error_code)

    def goaway(self, error_code: int = 0) -> None:
        """Send GOAWAY on the whole connection, then close it (all its streams end)."""
        self._owner.goaway(error_code)

    def abort_connection(self) -> None:
        """Drop the TCP connection abruptly: no GOAWAY, no TLS close_notify."""
        self._owner.abort()

    # ------------------------------------------------------------------ connection side

    def _check_can_send(self) -> None:
        if self._lost is not None:
            raise self._lost
        if self._reset_code is not None:
            raise StreamReset(self.stream_id, self._reset_code)
        if self.locally_reset or self.ended:
            raise StreamClosed(f"stream {self.stream_id} is closed (ended={self.ended}, reset={self.locally_reset})")

    def _feed_data(self, data: bytes, flow_len: int) -> None:
        self._chunks.append((data, flow_len))
        self._readable.set()

    def _feed_eof(self) -> None:
        self._eof = True
        self._readable.set()

    def _feed_reset(self, error_code: int) -> None:
        self._reset_code = error_code
        self._readable.set()
        self._window.set()

    def _feed_lost(self, exc: ConnectionLost) -> None:
        if self._lost is None:
            self._lost = exc
        self._readable.set()
        self._window.set()

    def _drop_buffered(self) -> int:
        """Forget unread data; return its flow-controlled size (to acknowledge it)."""
        size = sum(flow_len for _, flow_len in self._chunks)
        self._chunks.clear()
        return size


Handler = Callable[[ServerStream], Awaitable[None]]
"""A coroutine function serving one request stream. It owns the stream until it returns."""
