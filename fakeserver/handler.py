"""One ``InvokeModelWithBidirectionalStream`` request, answered as the service would.

For each HTTP/2 stream: route and model id → SigV4 request signature → per-key concurrency →
faults at open → hold HTTP 200 until the first input event → then, per client frame: event-stream
framing, chunk-signature chain, chunk envelope, strict event parsing, the shared protocol rules
(``novasonic.rules.InputMachine``) → journal → responder. Output events go out through
:meth:`StreamSession.emit`; a violation, a limit or a fault ends the stream with the in-stream
exception the service uses (lower-camel ``:exception-type``), or a transport action.

Limits run on the server's scaled clock (stream age, idle input) or on input-audio time (a run of
silent audio), so a compressed clock makes an 8-minute test take seconds.

Besides ``emit``/``fail``, a responder may end the stream the other ways the service does
(cassette replay needs each of them, as recorded): ``http_error`` (an HTTP error instead of the
event stream, before the response headers), ``error_frame`` (an unmodeled error message),
``transport`` (RST_STREAM, GOAWAY, END_STREAM, connection close/reset) and ``emit(...,
corrupt=...)`` (a frame with a broken CRC, then the end of the stream). Two optional responder
hooks: ``on_open()`` runs once the stream is admitted, before any input is read (an HTTP error
at open is answered there), and ``on_rejected(event, rule, message)`` is told about each client
event the protocol rules reject (the handler still answers it with the service's exception).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from novasonic.errors import EnvelopeError, EventError, FrameError, ProtocolViolation, SignatureError
from novasonic.events import AudioInput, InputEvent, OutputEvent, UsageEvent, parse_input
from novasonic.models import MODELS, ModelInfo
from novasonic.rules import AudioReceived, Fact, InputMachine, texts
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

from .audio import SILENCE_RMS, frame_rms
from .clock import ScaledClock
from .config import ServerConfig
from .faults import DEFAULT_EXCEPTION_TEXTS, Action, Fault, FaultPlan
from .http_errors import BEDROCK_NAMESPACE, HTTP_ERRORS, HttpErrorType, send_http_error
from .journal import Journal, StreamJournal
from .responders.base import Responder, StreamResponder
from .stream import ServerStream, StreamReset, TransportError

__all__ = ["StreamHandler", "StreamSession", "ROUTE", "EVENTSTREAM", "auth_error_answer"]

log = logging.getLogger("fakeserver.handler")

#: ``POST /model/{modelId}/invoke-with-bidirectional-stream`` (+ the SDK's trailing ``?``).
ROUTE = re.compile(r"^/model/(?P<model>[^/?]+)/invoke-with-bidirectional-stream(?:\?.*)?$")
EVENTSTREAM = "application/vnd.amazon.eventstream"


class _StreamOver(Exception):
    """Internal: the stream has ended (by us, a fault or the client); stop reading."""


class StreamHandler:
    """The ``Handler`` given to :class:`~fakeserver.server.FakeServerCore`: one per server."""

    def __init__(
        self,
        config: ServerConfig,
        responder: Responder,
        *,
        clock: ScaledClock | None = None,
        journal: Journal | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.config = config
        self.responder = responder
        self.clock = clock if clock is not None else ScaledClock(config.speed)
        self.journal = journal if journal is not None else Journal(max_streams=config.max_journal_streams, keep_audio=config.keep_audio)
        self.faults = faults if faults is not None else FaultPlan()
        self.active_per_key: Counter[str] = Counter()
        self.sessions: set[StreamSession] = set()
        self.shutting_down = False
        """Set by the owner before it closes the server: streams cut by the shutdown then end as
        ``server-shutdown``, not ``connection-lost`` (the connection is lost because we close it)."""
        self._stream_log = logging.getLogger("fakeserver.streams")

    async def __call__(self, stream: ServerStream) -> None:
        session = StreamSession(self, stream)
        self.sessions.add(session)
        try:
            await session.serve()
        finally:
            self.sessions.discard(session)
            self._stream_log.info("stream %s", session.journal.summary())


class StreamSession:
    """Serves one stream; also the :class:`~fakeserver.responders.base.StreamContext` its
    responder sees."""

    def __init__(self, handler: StreamHandler, stream: ServerStream) -> None:
        self.h = handler
        self.config = handler.config
        self.stream = stream
        self.clock = handler.clock
        self.journal: StreamJournal = handler.journal.open_stream(stream.connection_id, stream.stream_id)
        self.stream_index = self.journal.index
        seed = self.config.seed
        self._rng = random.Random(f"{seed}:{self.stream_index}") if seed is not None else random.SystemRandom()
        self.session_id = self.new_id()
        self.request_id = self.new_id()
        self.model: ModelInfo = MODELS["amazon.nova-2-sonic-v1:0"]  # replaced once routed
        self.machine: InputMachine | None = None
        self.responder: StreamResponder | None = None
        self._t0 = self.clock.now()
        self._last_input_t = self._t0
        self._closed = False
        self._input_ended = False
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._done = asyncio.Event()
        self._wake_watchdog = asyncio.Event()
        self._audio_ms = 0.0
        self._audio_waiters: list[tuple[float, asyncio.Future[bool]]] = []
        self._silent_run_ms = 0.0
        self._client_counts: Counter[str] = Counter()
        self._client_total = 0
        self._server_counts: Counter[str] = Counter()
        self._drip_s = 0.0
        self._corrupt_next: str | None = None
        self._faults: list[tuple[int, Fault]] = handler.faults.for_stream(self.stream_index)
        self._key: str | None = None
        """The access key whose concurrency slot this stream holds (set when the slot is taken)."""
        self._verifier: ChunkSignatureVerifier | None = None
        self._decoder = FrameDecoder()
        self._over_concurrency = False

    # ------------------------------------------------------------------ StreamContext

    @property
    def prompt_name(self) -> str | None:
        return self.machine.prompt_name if self.machine else None

    @property
    def audio_ms(self) -> float:
        return self._audio_ms

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def input_ended(self) -> bool:
        return self._input_ended

    @property
    def end_reason(self) -> str | None:
        """How the stream ended (the journal's ``end``), None while it runs."""
        return self.journal.end

    def now(self) -> float:
        """Service seconds since this stream opened."""
        return self.clock.now() - self._t0

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    async def sleep(self, service_seconds: float) -> None:
        await self.clock.sleep(service_seconds)

    async def wait_audio_ms(self, ms: float) -> bool:
        if self._audio_ms >= ms:
            return True
        if self._closed or self._input_ended:
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._audio_waiters.append((ms, fut))
        return await fut

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, (TransportError, _StreamOver)):
            log.error("stream %d: task %s failed", self.stream_index, task.get_name(), exc_info=exc)
            if not self._closed:
                self.spawn(self._internal_error(exc))

    async def emit(self, event: OutputEvent, *, corrupt: str | None = None) -> bool:
        """Send one output event (applying server-side faults first). ``corrupt``
        (``"prelude"``/``"message"``): send it with that CRC broken, then end the stream."""
        if self._closed:
            return False
        name = event.EVENT_NAME or getattr(event, "name", "unknown")
        if corrupt is not None:
            if corrupt not in ("prelude", "message"):
                raise ValueError(f"corrupt must be 'prelude' or 'message' (got {corrupt!r})")
            self._corrupt_next = corrupt
        fault = self._match_faults("server", name, self._server_counts[name] + 1)
        if fault is not None and fault.action.kind == "corrupt":
            self._corrupt_next = fault.action.part  # this very event goes out corrupted (below)
        elif fault is not None:
            await self._apply(fault.action)
            if fault.action.terminal:
                return False
        async with self._write_lock:
            if self._closed:
                return False
            if self._drip_s:
                await self.clock.sleep(self._drip_s)
                if self._closed:
                    return False
            await self._ensure_headers()
            frame = encode_chunk(event.to_bytes())
            if self._corrupt_next is not None:
                frame = _corrupt(frame, self._corrupt_next)
            self._server_counts[name] += 1
            if self.machine is not None:
                self.machine.note_output(event)
            self.journal.record_server_event(self.now(), event)
            try:
                await self.stream.send_data(frame)
            except TransportError as exc:
                self._finish(_ended_by(exc))
                return False
            if self._corrupt_next is not None:
                self._corrupt_next = None
                self.journal.record_server(self.now(), "transport", "corrupt-frame")
                await self._end_stream("fault:corrupt" if corrupt is None else "responder:corrupt")
                return False
        return True

    async def fail(self, member: str, message: str, **extra: Any) -> None:
        """End the stream with an in-stream modeled exception."""
        async with self._write_lock:
            if self._closed:
                return
            try:
                await self._ensure_headers()
                await self.stream.send_data(encode_exception(member, message, **extra))
                await self.stream.end()
            except TransportError:
                pass
            self.journal.record_server(self.now(), "exception", member, message)
            self._finish(f"exception:{member}")

    async def error_frame(self, code: str, message: str) -> None:
        """End the stream with an unmodeled error message (``:message-type: error``); the SDK
        raises it as an ``UnmodeledEventError``-style error carrying ``code`` and ``message``."""
        async with self._write_lock:
            if self._closed:
                return
            try:
                await self._ensure_headers()
                await self.stream.send_data(encode_error(code, message))
                await self.stream.end()
            except TransportError:
                pass
            self.journal.record_server(self.now(), "error", code, message)
            self._finish(f"error:{code}")

    async def http_error(self, error_type: str, message: str | None = None, *, status: int | None = None) -> bool:
        """Answer with an HTTP error instead of the event stream (``ThrottlingException``, ...).
        Only possible before the response headers went out: False (nothing sent) after them.
        A type outside :data:`~fakeserver.http_errors.HTTP_ERRORS` is sent as an unmodeled error
        with ``status`` (default 500)."""
        if self._closed or self.stream.headers_sent:
            return False
        await self._http_error(error_type, message, status=status)
        return True

    async def transport(self, action: str, code: int | None = None, *, how: str | None = None) -> None:
        """End the stream at the transport level: ``rst`` (RST_STREAM ``code``), ``goaway``
        (GOAWAY ``code`` on the connection, which then closes), ``end-stream`` (END_STREAM
        without an exception), ``close`` (the connection closes: GOAWAY NO_ERROR and close) or
        ``reset`` (the TCP connection is dropped). ``how`` is the journal's end reason
        (default ``responder:<action>``)."""
        how = how or f"responder:{action}"
        if action == "end-stream":
            await self._end_stream(how)
            return
        if action not in ("rst", "goaway", "close", "reset"):
            raise ValueError(f"unknown transport action {action!r}: use rst, goaway, end-stream, close or reset")
        async with self._write_lock:
            if self._closed:
                return
            self.journal.record_server(self.now(), "transport", action, None if code is None else str(code))
            if action == "rst":
                self.stream.reset(code or 0)
            elif action in ("goaway", "close"):
                self.stream.goaway(code or 0)
            else:
                self.stream.abort_connection()
            self._finish(how)

    # ------------------------------------------------------------------ serving

    async def serve(self) -> None:
        try:
            if not await self._open():
                return
            self.spawn(self._read_loop(), name=f"read-{self.stream_index}")
            self.spawn(self._watchdog(), name=f"watchdog-{self.stream_index}")
            await self._done.wait()
        except asyncio.CancelledError:
            # Only the connection's teardown cancels a handler: the client went away, or the
            # server is closing (``_finish`` tells the two apart by ``shutting_down``).
            self._finish("connection-lost")
            raise
        except Exception as exc:  # e.g. the responder's open_stream raised
            log.error("stream %d: handler failed", self.stream_index, exc_info=exc)
            await self._internal_error(exc)
        finally:
            await self._cleanup()

    async def _internal_error(self, exc: BaseException) -> None:
        """A bug in the fake (mostly its responder): answer as the service does for its own faults,
        HTTP 500 before the response headers, ``internalServerException`` after them."""
        if self._closed:
            return
        message = f"fake server responder failed: {exc!r}"
        if self.stream.headers_sent:
            await self.fail("internalServerException", message)
        else:
            await self._http_error("InternalServerException", message)

    async def _open(self) -> bool:
        """Route, authenticate, admit. False when the stream was answered with an HTTP error."""
        req = self.stream.request
        m = ROUTE.match(req.path)
        if req.method != "POST" or m is None:
            return await self._http_error(
                "UnknownOperationException", f"{req.method} {req.path} is not an operation of this service"
            )
        model_id = urllib.parse.unquote(m.group("model"))
        self.journal.model_id = model_id
        if model_id not in MODELS:
            return await self._http_error("ValidationException", self.config.unknown_model_message)
        self.model = MODELS[model_id]
        ctype = req.header("content-type")
        if ctype != EVENTSTREAM:
            return await self._http_error(
                "ValidationException", f"Unsupported content type {ctype!r}; expected {EVENTSTREAM}"
            )

        if self.config.verify_signatures:
            try:
                auth = verify_request(
                    req.method,
                    req.path,
                    [(":authority", req.authority), *req.headers],
                    self.config.lookup,
                    region=self.config.region,
                    now=datetime.now(UTC),
                    max_skew=self.config.max_clock_skew,
                )
            except SignatureError as exc:
                self.journal.auth = exc.reason
                log.info("stream %d: signature rejected (%s): %s", self.stream_index, exc.reason, exc)
                return await self._auth_error(exc)
            creds = self.config.lookup(auth.access_key_id)
            assert creds is not None
            self._verifier = ChunkSignatureVerifier(auth, creds)
            key = auth.access_key_id
            self.journal.access_key_id = auth.access_key_id
            self.journal.region = auth.region
            self.journal.auth = "ok"
        else:
            key = "anonymous"
            self.journal.auth = "anonymous"

        # The slot is taken even when refused: _cleanup gives back whatever _key holds.
        limit = self.config.limits.max_concurrent_streams_per_key
        over = self.h.active_per_key[key] >= limit
        self.h.active_per_key[key] += 1
        self._key = key
        if over and self.config.concurrency_error == "http":
            return await self._http_error(
                "ThrottlingException", f"Too many concurrent streams for this account ({limit} allowed)."
            )
        self._over_concurrency = over

        fault = self._match_faults("open", None, 1)
        while fault is not None:
            if fault.action.kind == "http":
                return await self._http_error(fault.action.member or "InternalServerException", fault.action.message)
            await self._apply(fault.action)
            if self._closed:  # a terminal fault (exception, rst, end, ...) already answered
                return False
            fault = self._match_faults("open", None, 1)

        self.machine = InputMachine(self.model.model_id, self.config.rules, self.config.limits, request_id=self.request_id)
        self.responder = self.h.responder.open_stream(self)
        on_open = getattr(self.responder, "on_open", None)
        if on_open is not None:
            await on_open()  # may answer the stream itself (an HTTP error, an exception)
            if self._closed:
                return False
        if not self.config.hold_headers_until_first_event:
            await self._ensure_headers()
        return True

    async def _http_error(self, error_type: str, message: str | None, *, status: int | None = None) -> bool:
        kind = HTTP_ERRORS.get(error_type) or HttpErrorType(error_type, status or 500, BEDROCK_NAMESPACE, modeled=False)
        try:
            await send_http_error(self.stream, kind, message, request_id=self.request_id, status=status)
        except TransportError:
            pass
        self.journal.status = status or kind.status
        self.journal.record_server(self.now(), "http", error_type, message)
        self._finish(f"http:{self.journal.status}")
        return False

    async def _auth_error(self, exc: SignatureError) -> bool:
        return await self._http_error(*auth_error_answer(exc))

    async def _ensure_headers(self) -> None:
        if self.stream.headers_sent:
            return
        self.journal.status = 200
        await self.stream.send_headers(
            200, [("content-type", EVENTSTREAM), ("x-amzn-requestid", self.request_id)]
        )

    async def _read_loop(self) -> None:
        try:
            while not self._closed:
                data = await self.stream.receive()
                if data is None:
                    await self._on_input_end("end-stream")
                    return
                try:
                    outers = self._decoder.feed(data)
                except FrameError as exc:
                    self.journal.record_rejected(self.now(), "(undecodable)", "invalid-event-bytes")
                    await self._reject("invalid-event-bytes", texts.INVALID_EVENT_BYTES, str(exc))
                    return
                for outer in outers:
                    if self._closed:
                        return
                    await self._on_frame(outer)
        except TransportError as exc:
            self._finish(_ended_by(exc))
        except _StreamOver:
            pass

    async def _on_frame(self, outer: Any) -> None:
        if self._verifier is not None:
            try:
                payload = self._verifier.verify(outer)
            except SignatureError as exc:
                self.journal.chunk_signature = exc.reason
                # In-stream signature failures are not in the output union: the service's answer
                # is UNK; the fake sends the unmodeled error form, which the SDK raises as
                # UnmodeledEventError (documented in README).
                await self.error_frame("InvalidSignatureException", f"Chunk signature verification failed: {exc}")
                raise _StreamOver from None
            self.journal.chunks_verified = self._verifier.frames_verified
        else:
            # Unsigned clients send the inner message directly; signed ones wrap it.
            payload = outer.payload if ":chunk-signature" in outer.headers else outer.encode()
        if payload == b"":
            await self._on_input_end("end-frame")
            return
        try:
            event_json = decode_chunk(decode_message(payload))
        except (FrameError, EnvelopeError) as exc:
            self.journal.record_rejected(self.now(), "(undecodable)", "invalid-event-bytes")
            await self._reject("invalid-event-bytes", texts.INVALID_EVENT_BYTES, str(exc))
            raise _StreamOver from None
        assert self.machine is not None
        try:
            event = parse_input(event_json)
        except EventError as exc:
            violation = self.machine.check_parse_error(exc)
            self.machine.fail(violation)
            # No typed event exists, but the journal still shows what broke which rule.
            self.journal.record_rejected(self.now(), violation.event_name or "(unparsable)", violation.rule)
            await self._tell_rejected(None, violation)
            await self._violation(violation, str(exc))
            raise _StreamOver from None
        # No need to wake the watchdog: it re-reads _last_input_t when its current wait (until the
        # previous idle deadline) ends, so the limit fires at the same moment; waking it on every
        # event cost a task switch and a timer per audio frame.
        self._last_input_t = self.clock.now()
        await self._ensure_headers_for_first_event()
        if self._over_concurrency:
            await self.fail("throttlingException", DEFAULT_THROTTLE_TEXT)
            raise _StreamOver
        try:
            facts = self.machine.feed(event)
        except ProtocolViolation as violation:
            self.journal.record_client(self.now(), event, verdict=violation.rule)
            await self._tell_rejected(event, violation)
            await self._violation(violation, None)
            raise _StreamOver from None
        self.journal.record_client(self.now(), event)
        self._client_counts[event.EVENT_NAME] += 1
        self._client_total += 1
        if isinstance(event, AudioInput) and self._on_audio(event, facts):
            # Stop here: no later event (even one already buffered) may be accepted.
            await self.fail("validationException", texts.RST_531)
            raise _StreamOver
        assert self.responder is not None
        await self.responder.on_event(event, facts)
        fault = self._match_faults("client", event.EVENT_NAME, self._client_counts[event.EVENT_NAME])
        if fault is None:
            fault = self._match_faults("client-events", None, self._client_total)
        if fault is not None:
            await self._apply(fault.action)
        if self._closed:
            raise _StreamOver

    async def _tell_rejected(self, event: InputEvent | None, violation: ProtocolViolation) -> None:
        """Tell a responder with the optional ``on_rejected`` hook (the cassette replay reports
        it); the handler answers the violation itself right after."""
        hook = getattr(self.responder, "on_rejected", None)
        if hook is None:
            return
        try:
            await hook(event, violation.rule, violation.message)
        except Exception:
            log.exception("stream %d: responder on_rejected failed", self.stream_index)

    async def _ensure_headers_for_first_event(self) -> None:
        if not self.stream.headers_sent:
            async with self._write_lock:
                if not self._closed:
                    await self._ensure_headers()

    def _on_audio(self, event: AudioInput, facts: Sequence[Fact]) -> bool:
        """Advance audio time and wake its waiters; True once the silent run reaches its limit."""
        for fact in facts:
            if isinstance(fact, AudioReceived):
                self._audio_ms = fact.total_ms
                if frame_rms(event.pcm) < SILENCE_RMS:
                    self._silent_run_ms += fact.duration_ms
                else:
                    self._silent_run_ms = 0.0
        if self._audio_waiters:
            ready = [w for w in self._audio_waiters if w[0] <= self._audio_ms]
            if ready:
                self._audio_waiters = [w for w in self._audio_waiters if w[0] > self._audio_ms]
                for _, fut in ready:
                    if not fut.done():
                        fut.set_result(True)
        return self._silent_run_ms >= self.config.limits.silent_audio_timeout_s * 1000.0

    async def _on_input_end(self, how: str) -> None:
        if self._input_ended:
            if how == "end-stream":
                await self._complete()
            return
        self._input_ended = True
        self.journal.input_finished = True
        self._release_audio_waiters()
        if self._over_concurrency:  # input ended before any event: still refused
            await self.fail("throttlingException", DEFAULT_THROTTLE_TEXT)
            return
        if self.responder is not None:
            try:
                grace = self.clock.to_wall(self.config.input_end_grace_s)
                await asyncio.wait_for(self.responder.on_input_end(), timeout=max(grace, self.config.input_end_wall_floor_s))
            except TimeoutError:
                log.warning("stream %d: responder did not finish after input end", self.stream_index)
        await self._complete()

    async def _complete(self) -> None:
        async with self._write_lock:
            if self._closed:
                return
            try:
                await self._ensure_headers()
                await self.stream.end()
            except TransportError:
                pass
            self._finish("completed")

    async def _reject(self, rule: str, text: str, detail: str | None) -> None:
        violation = ProtocolViolation(text, rule=rule, confident=False)
        if self.machine is not None:
            self.machine.fail(violation)
        await self._violation(violation, detail)

    async def _violation(self, v: ProtocolViolation, detail: str | None) -> None:
        log.info("stream %d: %s%s", self.stream_index, v, f" ({detail})" if detail else "")
        await self.fail(v.exception_type, v.message)

    # ------------------------------------------------------------------ limits and time faults

    async def _watchdog(self) -> None:
        if self.clock.unlimited:
            # Service time does not advance on an infinite clock: no limit can expire and no
            # ``t=`` fault can fire (FakeNovaSonic refuses that combination up front).
            return
        limits = self.config.limits
        while not self._closed:
            now = self.clock.now()
            age_deadline = self._t0 + limits.max_stream_age_s
            idle_deadline = self._last_input_t + limits.idle_input_timeout_s
            if now >= age_deadline:
                await self.fail("modelTimeoutException", DEFAULT_AGE_TEXT)
                return
            if now >= idle_deadline and not self._input_ended:
                await self.fail("validationException", texts.TIMED_OUT_INPUT)
                return
            fault = self._match_faults("time", None, 0, now=now - self._t0)
            if fault is not None:
                await self._apply(fault.action)
                continue
            next_t = min(age_deadline, idle_deadline if not self._input_ended else age_deadline)
            for _, f in self._faults:
                if f.trigger.kind == "time":
                    next_t = min(next_t, self._t0 + f.trigger.seconds)
            self._wake_watchdog.clear()
            wait = self.clock.to_wall(max(next_t - now, 0.0))
            try:
                await asyncio.wait_for(self._wake_watchdog.wait(), timeout=max(wait, 0.001))
            except TimeoutError:
                pass

    # ------------------------------------------------------------------ faults

    def _match_faults(self, kind: str, name: str | None, count: int, *, now: float | None = None) -> Fault | None:
        for fault_id, fault in self._faults:
            t = fault.trigger
            if t.kind != kind:
                continue
            if kind == "time":
                if now is None or now < t.seconds:
                    continue
            elif kind in ("client", "server"):
                if t.name != name or t.nth != count:
                    continue
            elif kind == "client-events":
                if t.nth != count:
                    continue
            if self.h.faults.try_fire(fault_id):
                # A fault fires at most once per stream (its trigger names one point of the stream);
                # ``times`` limits the firings across the server. Keeping an unlimited fault
                # (times=0) in the stream's list made 'open' and 't=' triggers match again at
                # once: delay-headers@open@times=0 delayed forever, drip@t=N@times=0 spun the
                # watchdog without yielding and froze the whole server.
                self._faults = [(i, f) for i, f in self._faults if i != fault_id]
                self.journal.record_server(self.now(), "fault", str(fault))
                return fault
        return None

    async def _apply(self, action: Action) -> None:
        kind = action.kind
        if kind == "exception":
            assert action.member is not None
            await self.fail(action.member, action.exception_text(), **dict(action.extra))
        elif kind == "delay-headers":
            await self.clock.sleep(action.seconds)
        elif kind == "drip":
            self._drip_s = action.seconds
        elif kind == "corrupt":
            self._corrupt_next = action.part
            # The next output frame goes out corrupted; if nothing else is due, send one now.
            await self.emit(_filler_event(self))
        elif kind in ("rst", "goaway"):
            await self.transport(kind, action.code, how=f"fault:{kind}")
        elif kind == "end":
            await self._end_stream("fault:end")
        elif kind == "http":  # only valid at open; handled there
            raise AssertionError("http fault outside open")

    async def _end_stream(self, how: str) -> None:
        """Abrupt END_STREAM (no exception). Caller may hold the write lock."""
        if self._closed:
            return
        try:
            if not self.stream.headers_sent:
                await self._ensure_headers()
            await self.stream.end()
        except TransportError:
            pass
        self.journal.record_server(self.now(), "transport", "end-stream")
        self._finish(how)

    # ------------------------------------------------------------------ teardown

    def _finish(self, how: str) -> None:
        if self._closed:
            return
        if how == "connection-lost" and self.h.shutting_down:
            how = "server-shutdown"
        self._closed = True
        self.journal.end = how
        self._release_audio_waiters()
        self._wake_watchdog.set()
        self._done.set()

    def _release_audio_waiters(self) -> None:
        waiters, self._audio_waiters = self._audio_waiters, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_result(False)

    async def _cleanup(self) -> None:
        self._finish(self.journal.end or "completed")
        tasks = list(self._tasks)  # serve() runs in the connection's handler task, never in _tasks
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.responder is not None:
            try:
                await self.responder.aclose()
            except Exception:
                log.exception("stream %d: responder aclose failed", self.stream_index)
        if self._key is not None:
            self.h.active_per_key[self._key] -= 1
            if self.h.active_per_key[self._key] <= 0:
                del self.h.active_per_key[self._key]
        if not self.stream.ended and not self.stream.locally_reset:
            # Nothing sent an end (e.g. shutdown): reset so the client is not left waiting.
            try:
                self.stream.reset(0)
            except Exception:
                pass


def auth_error_answer(exc: SignatureError) -> tuple[str, str | None]:
    """The HTTP error (type, message) the service answers a request-signature failure with
    (also used by the capture proxy, which checks its clients' signatures the same way)."""
    if exc.reason == "unknown-key":
        return "UnrecognizedClientException", None
    if exc.reason == "stale-date":
        return "InvalidSignatureException", f"Signature expired: {exc}"
    if exc.reason == "missing-auth":
        return "AccessDeniedException", "Missing Authentication Token"
    return "InvalidSignatureException", None


DEFAULT_AGE_TEXT = DEFAULT_EXCEPTION_TEXTS["modelTimeoutException"]
DEFAULT_THROTTLE_TEXT = DEFAULT_EXCEPTION_TEXTS["throttlingException"]


def _ended_by(exc: TransportError) -> str:
    """The journal's ``end`` for a stream the transport took away."""
    return "client-reset" if isinstance(exc, StreamReset) else "connection-lost"


def _corrupt(frame: bytes, part: str) -> bytes:
    """Flip one bit of the prelude CRC (``prelude``) or the message CRC (``message``)."""
    b = bytearray(frame)
    idx = 8 if part == "prelude" else len(b) - 1
    b[idx] ^= 0x01
    return bytes(b)


def _filler_event(session: StreamSession) -> OutputEvent:
    """A harmless usage event to carry a corrupted frame when no other output is due."""
    return UsageEvent(
        completion_id=session.new_id(), prompt_name=session.prompt_name or "", session_id=session.session_id
    )

