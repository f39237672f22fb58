"""One client stream relayed to the upstream: the proxy's stream handler.

The listening side is the fake server's transport core (``fakeserver.server.FakeServerCore``:
asyncio + TLS/ALPN h2 + ``h2``); this module is the handler it calls for each request stream.

Per stream::

    route (POST /model/{id}/invoke-with-bidirectional-stream)   else the service's 404
    client's SigV4 request signature, with the proxy's test keys else the service's 403 (same
                                                                 answer as the fake server)
    upstream stream opened (stock SDK client, upstream keys)     else HTTP 502, not recorded
    two pumps, until both are done:
      client → upstream   frames decoded, chunk signatures verified, event JSON forwarded
                          as is (re-signed by the SDK); the client's end of input is the
                          upstream's end of input
      upstream → client   the upstream's response headers decide ours: its HTTP error is
                          relayed as the same HTTP error (status, x-amzn-errortype, message,
                          request id), its 200 as our 200; then every output event is relayed
                          byte for byte, in-stream exceptions as the same exception, unmodeled
                          error frames as the same error frame, a corrupt frame as a corrupt
                          frame, END_STREAM / RST_STREAM / a closed connection as the same

Like the fake server, the proxy answers the service's way when *the client* breaks the wire
(a bad chunk signature: the unmodeled ``InvalidSignatureException`` error frame; undecodable
bytes: ``validationException``); nothing else is judged here: the upstream is the authority on
what the client sends (the proxy enforces no protocol rules, so a capture shows what the
service really accepts and rejects).

Stream endings (journal ``end`` and the cassette's ``end`` record): ``completed`` (the upstream
ended its output after the client's input ended), ``exception:<member>``, ``error:<code>``,
``http:<status>``, ``upstream:end-stream`` / ``upstream:rst`` / ``upstream:close`` (the upstream
ended early), ``upstream:corrupt-frame``, ``upstream:lost``, ``client-reset``,
``connection-lost``, ``proxy-shutdown``, ``client:bad-signature``, ``client:invalid-bytes``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fakeserver.handler import EVENTSTREAM, ROUTE, auth_error_answer
from fakeserver.http_errors import HTTP_ERRORS, HttpErrorType, send_http_error
from fakeserver.stream import ConnectionLost, ServerStream, StreamReset, TransportError
from novasonic.errors import EnvelopeError, FrameError, SignatureError
from novasonic.rules import texts
from novasonic.wire import (
    ChunkSignatureVerifier,
    FrameDecoder,
    decode_chunk,
    decode_message,
    encode_chunk,
    encode_error,
    encode_exception,
    verify_request,
)

from .recorder import StreamRecording
from .upstream import (
    UpstreamCorruptFrame,
    UpstreamErrorFrame,
    UpstreamException,
    UpstreamHttpError,
    UpstreamLost,
    UpstreamStream,
    UpstreamUnreachable,
)

if TYPE_CHECKING:
    from .proxy import CaptureProxy

__all__ = ["RelayHandler", "RelayStream", "BAD_GATEWAY"]

log = logging.getLogger("tools.capture")

#: What the client gets when the upstream could not be asked at all (not a service answer).
BAD_GATEWAY = HttpErrorType("CaptureProxyUpstreamError", 502, "http://novasonic-toolkit/capture-proxy/", modeled=False)
#: Sent to the client when the upstream's connection closed under the stream.
_INTERNAL_ERROR = 2


class RelayHandler:
    """The ``Handler`` given to ``FakeServerCore``: one per proxy."""

    def __init__(self, proxy: CaptureProxy) -> None:
        self.proxy = proxy
        self.active: set[RelayStream] = set()
        self.shutting_down = False

    async def __call__(self, stream: ServerStream) -> None:
        relay = RelayStream(self, stream)
        self.active.add(relay)
        try:
            await relay.run()
        finally:
            self.active.discard(relay)


class _Done(Exception):
    """Internal: this pump is finished (the stream ended one way or another)."""


class RelayStream:
    def __init__(self, handler: RelayHandler, stream: ServerStream) -> None:
        self.h = handler
        self.proxy = handler.proxy
        self.stream = stream
        self.journal = self.proxy.journal.open_stream(stream.connection_id, stream.stream_id)
        self.t_open = time.monotonic()
        self.rec: StreamRecording | None = None
        self.up: UpstreamStream | None = None
        self.verifier: ChunkSignatureVerifier | None = None
        self.input_ended = False
        self.ended = False
        self._write_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._done = asyncio.Event()

    # ------------------------------------------------------------------ open

    async def run(self) -> None:
        try:
            if not await self._open():
                return
            self._tasks = [
                asyncio.create_task(self._client_to_upstream(), name=f"capture-up-{self.journal.index}"),
                asyncio.create_task(self._upstream_to_client(), name=f"capture-down-{self.journal.index}"),
            ]
            await self._done.wait()
        except asyncio.CancelledError:
            self._finish("proxy-shutdown" if self.h.shutting_down else "connection-lost")
            raise
        finally:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.up is not None:
                await self.up.close()
            if not self.ended:
                self._finish("proxy-shutdown" if self.h.shutting_down else "connection-lost")
            if not self.stream.ended and not self.stream.locally_reset:
                try:
                    self.stream.reset(0)
                except Exception:
                    pass

    async def _open(self) -> bool:
        req = self.stream.request
        m = ROUTE.match(req.path)
        if req.method != "POST" or m is None:
            await self._local_http_error("UnknownOperationException",
                                         f"{req.method} {req.path} is not an operation of this service")
            return False
        model_id = urllib.parse.unquote(m.group("model"))
        self.journal.model_id = model_id
        self.journal.region = self.proxy.region
        creds = self.proxy.credentials
        try:
            auth = verify_request(
                req.method, req.path, [(":authority", req.authority), *req.headers],
                lambda key: creds if key == creds.access_key_id else None,
                region=self.proxy.region, now=datetime.now(UTC),
            )
        except SignatureError as exc:
            self.journal.auth = exc.reason
            log.warning("stream %d refused: the client's signature does not match the proxy's test credentials "
                        "(%s). Point the client at the proxy with its env/ready file.", self.journal.index, exc.reason)
            await self._local_http_error(*auth_error_answer(exc))
            return False
        self.journal.auth = "ok"
        self.journal.access_key_id = auth.access_key_id
        self.verifier = ChunkSignatureVerifier(auth, creds)
        upstream = self.proxy.upstream_for(self.journal.index)
        self.rec = self.proxy.recorder.open_stream(self.journal, model_id=model_id, region=upstream.region,
                                                   t_open=self.t_open)
        if not self.proxy.records(self.journal.index):
            self.rec.discard(None)  # replayed, already in the cassette: journal only
        try:
            self.up = await upstream.open(model_id)
        except UpstreamUnreachable as exc:
            await self._bad_gateway(str(exc))
            return False
        return True

    async def _local_http_error(self, error_type: str, message: str | None) -> None:
        """An HTTP error the proxy answers itself (bad route, bad signature), as the fake does."""
        kind = HTTP_ERRORS[error_type]
        try:
            await send_http_error(self.stream, kind, message)
        except TransportError:
            pass
        self.journal.status = kind.status
        self.journal.record_server(0.0, "http", error_type, message)
        self.journal.end = f"http:{kind.status}"
        self.ended = True

    async def _bad_gateway(self, why: str) -> None:
        log.error("stream %d: %s", self.journal.index, why)
        try:
            async with self._write_lock:
                if not self.stream.headers_sent:
                    await send_http_error(self.stream, BAD_GATEWAY, f"nova-capture: {why}")
        except TransportError:
            pass
        self.journal.status = BAD_GATEWAY.status
        if self.rec is not None:
            self.rec.discard(why)
        self._finish("upstream-unreachable")

    # ------------------------------------------------------------------ client → upstream

    async def _client_to_upstream(self) -> None:
        assert self.up is not None and self.verifier is not None
        decoder = FrameDecoder()
        try:
            while not self.ended:
                data = await self.stream.receive()
                if data is None:
                    await self._client_input_end()
                    return
                try:
                    outers = decoder.feed(data)
                except FrameError as exc:
                    await self._client_broke("client:invalid-bytes", str(exc))
                    return
                for outer in outers:
                    try:
                        payload = self.verifier.verify(outer)
                    except SignatureError as exc:
                        self.journal.chunk_signature = exc.reason
                        await self._client_bad_signature(exc)
                        return
                    self.journal.chunks_verified = self.verifier.frames_verified
                    if payload == b"":
                        await self._client_input_end()
                        continue
                    try:
                        event_json = decode_chunk(decode_message(payload))
                    except (FrameError, EnvelopeError) as exc:
                        await self._client_broke("client:invalid-bytes", str(exc))
                        return
                    t = self._now()
                    if not self.input_ended:
                        await self.up.send(event_json)
                    if self.rec is not None:
                        self.rec.client(t, event_json)
        except StreamReset:
            self._finish("client-reset")
        except ConnectionLost:
            self._finish("connection-lost")
        except _Done:
            pass
        except Exception as exc:  # the upstream refused input (its stream is over): the down pump reports it
            if not self.ended:
                log.debug("stream %d: forwarding stopped: %r", self.journal.index, exc)

    async def _client_input_end(self) -> None:
        if self.input_ended:
            return
        self.input_ended = True
        self.journal.input_finished = True
        if self.rec is not None:
            self.rec.input_end(self._now())
        assert self.up is not None
        try:
            await self.up.close_input()
        except Exception as exc:
            log.debug("stream %d: closing the upstream input failed: %r", self.journal.index, exc)

    async def _client_bad_signature(self, exc: SignatureError) -> None:
        """As the fake server answers it: the unmodeled error frame (in-stream failures of the
        signature chain are not in the output union)."""
        await self._send_final(encode_error("InvalidSignatureException", f"Chunk signature verification failed: {exc}"))
        self.journal.record_server(self._now(), "error", "InvalidSignatureException", str(exc))
        if self.rec is not None:
            self.rec.note(self._now(), f"the client's chunk signature failed ({exc.reason}): stream cut by the proxy")
        self._finish("client:bad-signature")

    async def _client_broke(self, how: str, detail: str) -> None:
        await self._send_final(encode_exception("validationException", texts.INVALID_EVENT_BYTES))
        self.journal.record_server(self._now(), "exception", "validationException", texts.INVALID_EVENT_BYTES)
        if self.rec is not None:
            self.rec.note(self._now(), f"the client sent bytes that do not decode ({detail[:200]}): stream cut by the proxy")
        self._finish(how)

    # ------------------------------------------------------------------ upstream → client

    async def _upstream_to_client(self) -> None:
        up = self.up
        assert up is not None
        try:
            try:
                await up.response()
            except UpstreamHttpError as exc:
                await self._relay_http_error(exc)
                return
            except UpstreamUnreachable as exc:
                await self._bad_gateway(str(exc))
                return
            if self.rec is not None:
                self.rec.commit(200, up.request_id)
            await self._send_headers(up.request_id)
            while True:
                try:
                    raw = await up.receive()
                except UpstreamException as exc:
                    await self._relay_exception(exc)
                    return
                except UpstreamErrorFrame as exc:
                    t = self._now()
                    await self._send_final(encode_error(exc.code, exc.message))
                    self._record_exception(t, exc.code, exc.message, via="error")
                    self._finish(f"error:{exc.code}")
                    return
                except UpstreamCorruptFrame as exc:
                    await self._relay_corrupt(str(exc))
                    return
                except UpstreamLost as exc:
                    await self._relay_lost(str(exc))
                    return
                if raw is None:
                    await self._relay_ending()
                    return
                t = self._now()
                await self._send(encode_chunk(raw))
                if self.rec is not None:
                    self.rec.server(t, raw)
        except TransportError as exc:
            self._finish("client-reset" if isinstance(exc, StreamReset) else "connection-lost")
        except _Done:
            pass

    async def _send_headers(self, request_id: str | None) -> None:
        headers = [("content-type", EVENTSTREAM)]
        if request_id:
            headers.append(("x-amzn-requestid", request_id))
        async with self._write_lock:
            self.journal.status = 200
            await self.stream.send_headers(200, headers)

    async def _send(self, frame: bytes) -> None:
        try:
            await self.stream.send_data(frame)
        except TransportError as exc:
            self._finish("client-reset" if isinstance(exc, StreamReset) else "connection-lost")
            raise _Done from None

    async def _send_final(self, frame: bytes | None) -> None:
        """Send ``frame`` (if any) and END_STREAM; the client may be gone already."""
        async with self._write_lock:
            try:
                if not self.stream.headers_sent:
                    await self.stream.send_headers(200, [("content-type", EVENTSTREAM)])
                if frame is not None:
                    await self.stream.send_data(frame)
                await self.stream.end()
            except TransportError:
                pass

    async def _relay_http_error(self, exc: UpstreamHttpError) -> None:
        t = self._now()
        kind = HttpErrorType(exc.error_type, exc.status, exc.namespace, modeled=exc.modeled)
        try:
            await send_http_error(self.stream, kind, exc.message, request_id=exc.request_id, status=exc.status)
        except TransportError:
            pass
        self.journal.status = exc.status
        if self.rec is not None:
            self.rec.commit(exc.status, exc.request_id)
        self._record_exception(t, exc.error_type, exc.message, via="http", status=exc.status)
        self._finish(f"http:{exc.status}")

    async def _relay_exception(self, exc: UpstreamException) -> None:
        t = self._now()
        await self._send_final(encode_exception(exc.member, exc.message, **exc.extra))
        self._record_exception(t, exc.member, exc.message, via="stream", extra=exc.extra or None)
        self._finish(f"exception:{exc.member}")

    async def _relay_corrupt(self, detail: str) -> None:
        """The client gets a frame with a broken message CRC, as it would from the service."""
        t = self._now()
        frame = bytearray(encode_chunk(b'{"event":{}}'))
        frame[-1] ^= 0x01
        await self._send_final(bytes(frame))
        if self.rec is not None:
            self.rec.transport(t, "corrupt-frame", detail=detail[:200])
            self.rec.transport(t, "end-stream")
        self._finish("upstream:corrupt-frame")

    async def _relay_ending(self) -> None:
        assert self.up is not None
        ending = self.up.ending()
        t = self._now()
        if ending.action == "end-stream":
            await self._send_final(None)
            if self.input_ended:
                self._finish("completed")
                return
            if self.rec is not None:
                self.rec.transport(t, "end-stream")
            self._finish("upstream:end-stream")
            return
        if self.rec is not None:
            self.rec.transport(t, ending.action, detail=ending.detail)
        if ending.action == "rst":
            self.stream.reset(_INTERNAL_ERROR)
        else:  # the upstream's connection closed: so does the client's (GOAWAY, then close)
            self.stream.goaway(0)
        self._finish(f"upstream:{ending.action}")

    async def _relay_lost(self, detail: str) -> None:
        t = self._now()
        log.warning("stream %d: the upstream stream failed: %s", self.journal.index, detail)
        if self.rec is not None:
            self.rec.transport(t, "reset", detail=detail[:200])
        self.stream.reset(_INTERNAL_ERROR)
        self._finish("upstream:lost")

    def _record_exception(self, t: float, name: str, message: str | None, **kw: object) -> None:
        if self.rec is not None:
            self.rec.exception(t, name, message, **kw)  # type: ignore[arg-type]
        else:
            kind = {"stream": "exception", "error": "error", "http": "http"}[str(kw.get("via", "stream"))]
            self.journal.record_server(t, kind, name, message)

    # ------------------------------------------------------------------ end

    def _now(self) -> float:
        """Seconds since the stream opened (the cassette's ``t``)."""
        return time.monotonic() - self.t_open

    def _finish(self, how: str) -> None:
        if self.ended:
            return
        if how == "connection-lost" and self.h.shutting_down:  # lost because the proxy closes it
            how = "proxy-shutdown"
        self.ended = True
        if self.rec is not None:
            self.rec.end(self._now(), how)
        else:
            self.journal.end = how
        self._done.set()
