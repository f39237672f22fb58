"""One server-side HTTP/2 connection driven under asyncio (the httpcore ``http2.py`` habits).

* One task per connection reads the socket and feeds ``h2``; events are dispatched by stream id
  into per-stream buffers (:class:`~fakeserver.stream.ServerStream`); no task per frame.
* ``data_to_send()`` is flushed after every ``receive_data`` and after every send.
* Sending DATA waits for the client's flow-control window (stream and connection) and splits the
  payload into ``max_outbound_frame_size`` pieces.
* Received DATA is acknowledged when the handler reads it; unread data of a finished or dead
  stream is acknowledged at once, so one stuck stream never starves the connection window.
* One handler task per request stream. A handler that raises is logged; its stream gets a 500
  (if no headers went out yet) or RST_STREAM INTERNAL_ERROR; other streams are untouched.
* Any connection failure (EOF, garbage, h2 protocol error, client GOAWAY) is stored, given to
  every waiting stream as :class:`~fakeserver.stream.ConnectionLost`, and the connection's handler
  tasks are cancelled. Nothing leaves the connection.
"""

from __future__ import annotations

import asyncio
import logging

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from h2.windows import LARGEST_FLOW_CONTROL_WINDOW

from .http_errors import send_http_error
from .stream import ConnectionLost, Handler, Request, ServerStream, StreamClosed, StreamReset

__all__ = ["H2ServerConnection", "STREAM_WINDOW", "READ_SIZE"]

log = logging.getLogger("fakeserver.connection")

#: Client preface every HTTP/2 connection starts with (RFC 9113 §3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Per-stream receive window. The connection window is opened to the maximum; memory stays
#: bounded by streams x this value since data is acked on read.
#:
#: It is *not* advertised through SETTINGS_INITIAL_WINDOW_SIZE: a stream the client opens before
#: our SETTINGS arrive starts at the protocol default (65,535), and awscrt does not always apply
#: the SETTINGS delta to such a stream (seen with the stock SDK: the client stopped after exactly
#: 65,535 bytes while h2 believed it had granted 256 KiB and waited for 128 KiB before sending a
#: WINDOW_UPDATE — a deadlock for large audio frames). So SETTINGS keep the default, and each new
#: stream gets an explicit WINDOW_UPDATE raising it to this value: the same on both sides whatever
#: the order of SETTINGS and HEADERS.
STREAM_WINDOW = 256 * 1024
#: The HTTP/2 default initial stream window (RFC 9113 §6.5.2), which SETTINGS leave unchanged.
DEFAULT_STREAM_WINDOW = 65_535
#: Bytes read from the socket per call.
READ_SIZE = 64 * 1024
#: Header list limit we advertise (SETTINGS_MAX_HEADER_LIST_SIZE).
MAX_HEADER_LIST_SIZE = 64 * 1024

_HANDLER_FAILED = "The fake server's stream handler failed; see the server log."
_HTTP1_REFUSAL = (
    b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: 64\r\n\r\nThis fake Bedrock endpoint speaks HTTP/2 only (TLS ALPN \"h2\").\n"
)


class H2ServerConnection:
    """Serve one accepted TLS connection until it ends. Use :meth:`run`; streams call the rest."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        *,
        connection_id: int,
        max_concurrent_streams: int,
    ) -> None:
        self.connection_id = connection_id
        self.peer = writer.get_extra_info("peername")
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        # Replacing local_settings before initiate_connection() makes these values current at once
        # (h2 docs); they go out in our first SETTINGS frame.
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            },
        )
        self._streams: dict[int, ServerStream] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._window_waiters: set[int] = set()
        self._lost: ConnectionLost | None = None
        self._closing = False
        self._initiated = False  # our SETTINGS went out; before that no frame may be sent
        self.goaway_sent = False

    def __repr__(self) -> str:
        return f"<H2ServerConnection id={self.connection_id} peer={self.peer} streams={len(self._streams)}>"

    @property
    def active_streams(self) -> int:
        return len(self._tasks)

    # ------------------------------------------------------------------ read loop

    async def run(self) -> None:
        """Read and dispatch until the connection ends; then cancel this connection's handlers."""
        reason = "connection closed"
        try:
            first = await self._check_h2_negotiated()
            if first is None:
                return
            self._h2.initiate_connection()
            self._initiated = True
            self._h2.increment_flow_control_window(LARGEST_FLOW_CONTROL_WINDOW - self._h2.inbound_flow_control_window)
            self._flush()
            data = first
            while not self._closing:
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.ProtocolError as exc:
                    log.info("connection %d: HTTP/2 protocol error from %s: %s", self.connection_id, self.peer, exc)
                    reason = f"protocol error: {exc}"
                    self._goaway_after_protocol_error(exc)
                    break
                for event in events:
                    self._dispatch(event)
                self._flush()
                if self._closing:
                    break
                data = await self._reader.read(READ_SIZE)
                if not data:
                    reason = "connection closed" if self._closing else "client closed the connection"
                    break
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            reason = f"connection error: {exc!r}"
            log.debug("connection %d: %s", self.connection_id, reason)
        finally:
            await self._teardown(reason)

    def _goaway_after_protocol_error(self, exc: h2.exceptions.ProtocolError) -> None:
        """h2 usually queued GOAWAY already; a bad preface leaves that to us (RFC 9113 §3.4)."""
        try:
            self._h2.close_connection(error_code=getattr(exc, "error_code", ErrorCodes.PROTOCOL_ERROR))
        except h2.exceptions.ProtocolError:
            pass  # already terminated by h2
        self.goaway_sent = True
        self._flush()

    async def _check_h2_negotiated(self) -> bytes | None:
        """Return the first bytes if this is HTTP/2; else refuse HTTP/1.x politely and return None."""
        ssl_object = self._writer.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        first = await self._reader.read(READ_SIZE)
        if not first:
            return None
        if alpn == "h2" or first.startswith(PREFACE[: len(first)]):
            return first
        log.info("connection %d: %s did not negotiate h2 (ALPN %r); answering 505", self.connection_id, self.peer, alpn)
        self._writer.write(_HTTP1_REFUSAL)
        return None

    def _dispatch(self, event: h2.events.Event) -> None:
        match event:
            case h2.events.RequestReceived():
                self._on_request(event)
            case h2.events.DataReceived():
                self._on_data(event)
            case h2.events.StreamEnded():
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream._feed_eof()
            case h2.events.StreamReset():
                stream = self._streams.get(event.stream_id)
                if stream is not None and event.remote_reset:
                    stream._feed_reset(event.error_code)  # buffered data is still readable
            case h2.events.WindowUpdated():
                self._wake_window_waiters(event.stream_id)
            case h2.events.RemoteSettingsChanged():
                self._wake_window_waiters(0)
            case h2.events.ConnectionTerminated():
                # After a client GOAWAY h2 refuses every further send, so the connection is over.
                log.debug("connection %d: client GOAWAY (code %s)", self.connection_id, event.error_code)
                self._closing = True
            case _:
                pass  # settings ACKs, pings (h2 answers them), priority, trailers: nothing to do

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        if self.goaway_sent:  # opened after our GOAWAY: refused, the client may retry elsewhere
            self._h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        pseudo: dict[str, str] = {}
        regular: list[tuple[str, str]] = []
        for name, value in event.headers or ():
            name_s = name.decode() if isinstance(name, bytes) else name
            value_s = value.decode() if isinstance(value, bytes) else value
            if name_s.startswith(":"):
                pseudo[name_s] = value_s
            else:
                regular.append((name_s, value_s))
        request = Request(
            method=pseudo.get(":method", ""),
            path=pseudo.get(":path", ""),
            authority=pseudo.get(":authority", ""),
            scheme=pseudo.get(":scheme", ""),
            headers=tuple(regular),
        )
        stream = ServerStream(self, request, self.connection_id, sid)
        if event.stream_ended is not None:
            stream._feed_eof()
        else:
            try:  # see STREAM_WINDOW: grant the window explicitly, not through SETTINGS
                self._h2.increment_flow_control_window(STREAM_WINDOW - DEFAULT_STREAM_WINDOW, stream_id=sid)
            except h2.exceptions.ProtocolError:
                pass
        self._streams[sid] = stream
        name = f"fakeserver-c{self.connection_id}-s{sid}"
        self._tasks[sid] = asyncio.create_task(self._run_handler(stream), name=name)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        sid = event.stream_id
        stream = self._streams.get(sid)
        size = event.flow_controlled_length or 0
        if stream is not None and event.data and sid in self._tasks:
            stream._feed_data(event.data, size)
        elif size:
            self._acknowledge(sid, size)  # nobody will read it: give the window back now

    # ------------------------------------------------------------------ handlers

    async def _run_handler(self, stream: ServerStream) -> None:
        sid = stream.stream_id
        try:
            await self._handler(stream)
        except asyncio.CancelledError:
            raise
        except (StreamReset, ConnectionLost) as exc:
            log.debug("connection %d stream %d: handler stopped: %s", self.connection_id, sid, exc)
        except Exception:
            log.exception(
                "connection %d stream %d: handler failed (%s %s)",
                self.connection_id, sid, stream.request.method, stream.request.path,
            )
            await self._fail_stream(stream)
        else:
            await self._finish_stream(stream)
        finally:
            self._tasks.pop(sid, None)
            self._streams.pop(sid, None)
            self._window_waiters.discard(sid)
            self._release_buffered(stream)
            if not self._closing:
                self._flush()

    async def _fail_stream(self, stream: ServerStream) -> None:
        """After a handler error: 500 InternalServerException if nothing was sent, else RST_STREAM."""
        if self._lost is not None or stream.ended or stream.locally_reset or stream._reset_code is not None:
            return
        if not stream.headers_sent:
            try:
                await send_http_error(stream, "InternalServerException", _HANDLER_FAILED)
                return
            except Exception:  # the stream went away meanwhile; fall back to a reset
                pass
        self.stream_reset(stream, ErrorCodes.INTERNAL_ERROR)

    async def _finish_stream(self, stream: ServerStream) -> None:
        """A handler returned: complete whatever it left open."""
        sid = stream.stream_id
        if self._lost is not None or stream.ended or stream.locally_reset or stream._reset_code is not None:
            return
        try:
            if not stream.headers_sent:
                log.error("connection %d stream %d: handler returned without answering", self.connection_id, sid)
                await self._fail_stream(stream)
            else:
                await stream.end()
        except (StreamClosed, StreamReset, ConnectionLost):
            pass

    # ------------------------------------------------------------------ stream operations

    def stream_send_headers(self, stream: ServerStream, headers: list[tuple[str, str]], end_stream: bool) -> None:
        try:
            self._h2.send_headers(stream.stream_id, headers, end_stream=end_stream)
        except h2.exceptions.StreamClosedError as exc:
            raise self._send_error(stream, exc) from exc
        except h2.exceptions.ProtocolError as exc:  # invalid headers (e.g. upper-case names): a handler bug
            if self._lost is not None:
                raise self._lost from exc
            raise ValueError(f"stream {stream.stream_id}: h2 refused the response headers: {exc}") from exc
        stream.headers_sent = True
        stream.ended = end_stream
        self._flush()

    async def stream_send_data(self, stream: ServerStream, data: bytes, end_stream: bool) -> None:
        if not data and not end_stream:
            return
        async with stream._send_lock:  # an event-stream message split over frames must not interleave
            await self._send_data_locked(stream, data, end_stream)
        await self.drain()

    async def _send_data_locked(self, stream: ServerStream, data: bytes, end_stream: bool) -> None:
        sid = stream.stream_id
        view = memoryview(data)
        while True:
            stream._check_can_send()
            try:
                window = self._h2.local_flow_control_window(sid)
                size = min(window, self._h2.max_outbound_frame_size, len(view))
                if size == 0 and len(view) > 0:
                    await self._wait_for_window(stream)
                    continue
                last = size == len(view)
                self._h2.send_data(sid, view[:size].tobytes(), end_stream=end_stream and last)
            except h2.exceptions.ProtocolError as exc:
                raise self._send_error(stream, exc) from exc
            view = view[size:]
            if end_stream and last:
                stream.ended = True
            self._flush()
            if last:
                break

    async def _wait_for_window(self, stream: ServerStream) -> None:
        stream._window.clear()
        self._window_waiters.add(stream.stream_id)
        try:
            await stream._window.wait()
        finally:
            self._window_waiters.discard(stream.stream_id)

    def _wake_window_waiters(self, stream_id: int) -> None:
        waiting = self._window_waiters if stream_id == 0 else self._window_waiters & {stream_id}
        for sid in waiting:
            stream = self._streams.get(sid)
            if stream is not None:
                stream._window.set()

    def _send_error(self, stream: ServerStream, exc: Exception) -> Exception:
        """Map an h2 refusal to send into the handler-facing error."""
        if self._lost is not None:
            return self._lost
        if stream._reset_code is not None:
            return StreamReset(stream.stream_id, stream._reset_code)
        return StreamClosed(f"stream {stream.stream_id}: cannot send: {exc}")

    async def drain(self) -> None:
        if self._lost is not None:
            raise self._lost
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(f"connection {self.connection_id}: write failed: {exc!r}") from exc

    def stream_reset(self, stream: ServerStream, error_code: int) -> None:
        if stream.locally_reset or self._lost is not None:
            return
        stream.locally_reset = True
        try:
            self._h2.reset_stream(stream.stream_id, error_code)
        except h2.exceptions.ProtocolError:
            return  # already closed on both sides
        stream._window.set()
        self._release_buffered(stream)
        self._flush()

    def stream_consumed(self, stream: ServerStream, size: int) -> None:
        if size and self._lost is None:
            self._acknowledge(stream.stream_id, size)
            self._flush()

    def _acknowledge(self, stream_id: int, size: int) -> None:
        try:
            self._h2.acknowledge_received_data(size, stream_id)
        except h2.exceptions.ProtocolError:
            pass  # connection already closing

    def _release_buffered(self, stream: ServerStream) -> None:
        size = stream._drop_buffered()
        if size and self._lost is None:
            self._acknowledge(stream.stream_id, size)

    # ------------------------------------------------------------------ connection control

    def goaway(self, error_code: int = 0) -> None:
        """Send GOAWAY (last stream = highest seen), then close the connection."""
        self.send_goaway(error_code)
        self._close_now()

    def send_goaway(self, error_code: int = 0) -> None:
        """Send GOAWAY but keep serving the streams already open (graceful shutdown)."""
        if self.goaway_sent or self._lost is not None or not self._initiated:
            return
        self.goaway_sent = True
        try:
            self._h2.close_connection(error_code=error_code, last_stream_id=self._h2.highest_inbound_stream_id)
        except h2.exceptions.ProtocolError:
            return
        self._flush()

    def abort(self) -> None:
        """Drop the connection without GOAWAY or TLS close_notify."""
        self._closing = True
        self._writer.transport.abort()
        self._reader.feed_eof()

    async def shutdown(self, grace: float) -> None:
        """Graceful close: GOAWAY, give open streams ``grace`` seconds, then close and cancel."""
        self.send_goaway(ErrorCodes.NO_ERROR)
        tasks = list(self._tasks.values())
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        self._close_now()

    def _close_now(self) -> None:
        """Close the socket (after queued bytes) and wake the read loop so teardown runs now."""
        self._closing = True
        transport = self._writer.transport
        if not transport.is_closing():
            transport.pause_reading()  # no data_received after the EOF we feed below
            self._writer.close()
        self._reader.feed_eof()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _teardown(self, reason: str) -> None:
        self._closing = True
        self._lost = ConnectionLost(f"connection {self.connection_id}: {reason}")
        for stream in self._streams.values():
            stream._feed_lost(self._lost)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self._writer.is_closing():
            self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), timeout=2.0)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            self._writer.transport.abort()
        except Exception:  # ssl shutdown errors: the socket is gone either way
            self._writer.transport.abort()
        log.debug("connection %d ended: %s", self.connection_id, reason)
