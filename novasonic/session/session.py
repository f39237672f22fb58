"""``NovaSonicSession``: the lifecycle of one conversation over successive streams.

States::

    NEW ─start()─▶ STARTING ─▶ ACTIVE ⇄ RECYCLING / RESTARTING
                        │          │
                        ▼          ▼ aclose()
                      FAILED ◀── CLOSING ─▶ CLOSED

One lifecycle task (``_run``) serialises everything that replaces a stream: it waits for a
trigger — a stream failure, a recycle that is due (age, credentials, an update, ``recycle()``) —
and handles it to the end before looking at the next. ``aclose()`` cancels it and closes what is
left. Every task the session starts is owned and awaited (no fire-and-forget).

Recycle (graceful): the outbox stops feeding the old stream, the old stream sends its close
block (audio contentEnd, promptEnd, sessionEnd) and is read to its end (bounded by
``drain_timeout_s``); then the conversation so far is snapshotted and a new stream opened with it
as chat history. Input arriving meanwhile waits in the outbox for the new stream.

Restart (after a retryable error): the old stream's writer and reader are cancelled and awaited
first, then the new stream is opened after the backoff delay; attempts are counted until a
stream proves healthy (``RestartPolicy``).

Tool results for a call made on a stream that has since been replaced cannot be sent as a
``toolResult`` (the service scopes toolUseIds to their stream, client-behaviours #27): they are
sent to the new stream as interactive USER text (``TOOL_RESULT_TEXT``) so the model can still
use them and answer (Nova 2+). On Nova Sonic 1 (no interactive text) the call fails with
``ToolResultUndeliverable``; recycles there wait for owed results before closing the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..audio import VAD_THRESHOLD_RMS, frame_rms
from ..builder import EventBuilder, Message, MessageLike, encode_tool_result, prepare_history
from ..errors import ProtocolViolation
from ..events import InputEvent, OutputEvent, Role
from ..rules import InputMachine, TokenUsage, Turn
from ..transport import make_client
from . import events as E
from .audio_input import INPUT_SAMPLE_RATE, AudioInputPump
from .clock import Clock, SystemClock
from .credentials import Boto3Credentials, CredentialsProvider
from .errors import (
    RestartsExhausted,
    SessionClosedError,
    SessionNotStartedError,
    StreamBroken,
    ToolResultUndeliverable,
    UnsupportedInput,
    describe,
    is_retryable,
)
from .options import SessionOptions, ToolLike
from .outbox import AudioItem, Item, Outbox, TextItem, ToolResultItem
from .stream import SonicStream
from .turns import TurnView

__all__ = ["NovaSonicSession", "SessionState", "TOOL_RESULT_TEXT"]

log = logging.getLogger(__name__)

#: How a tool result crosses to a new stream (interactive USER text, Nova 2+).
TOOL_RESULT_TEXT = "[Result of the {name} tool call {tool_use_id}] {content}"

_UNSET: Any = object()


class SessionState(enum.StrEnum):
    NEW = "new"
    STARTING = "starting"
    ACTIVE = "active"
    RECYCLING = "recycling"
    RESTARTING = "restarting"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


_OPEN_STATES = frozenset({SessionState.STARTING, SessionState.ACTIVE, SessionState.RECYCLING,
                          SessionState.RESTARTING})


@dataclass(slots=True)
class _Recycle:
    reason: str
    forced: bool


@dataclass(slots=True)
class _Update:
    at: float
    reason: str
    version: int
    futures: list[asyncio.Future[None]] = field(default_factory=list)


class _EventIterator:
    """``session.events()``: every event from subscription on, ending after ``Closed``."""

    def __init__(self, session: NovaSonicSession) -> None:
        self._queue: asyncio.Queue[E.SessionEvent] = asyncio.Queue()
        self._done = False
        self._session = session
        session._iterators.add(self)
        if session._closed_event is not None:
            self._queue.put_nowait(session._closed_event)

    def _put(self, event: E.SessionEvent) -> None:
        if not self._done:
            self._queue.put_nowait(event)

    def __aiter__(self) -> _EventIterator:
        return self

    async def __anext__(self) -> E.SessionEvent:
        if self._done:
            raise StopAsyncIteration
        event = await self._queue.get()
        if isinstance(event, E.Closed):
            self._done = True
            self._session._iterators.discard(self)
        return event

    async def aclose(self) -> None:
        self._done = True
        self._session._iterators.discard(self)


class NovaSonicSession:
    """See the package doc (``novasonic.session``) for the API and the lifecycle decisions."""

    def __init__(self, options: SessionOptions | None = None, *, clock: Clock | None = None, **overrides: Any) -> None:
        opts = options if options is not None else SessionOptions()
        if overrides:
            opts = opts.replace(**overrides)
        self._options = opts
        self._options_version = 0
        self.clock: Clock = clock or SystemClock()
        self._credentials: CredentialsProvider = opts.credentials or Boto3Credentials(
            clock=self.clock, margin_s=opts.recycle.credentials_margin_s
        )
        self._pump = AudioInputPump(frame_ms=opts.frame_ms)
        self._outbox = Outbox(max_audio_bytes=int(INPUT_SAMPLE_RATE * 2 * opts.max_buffered_audio_ms / 1000))
        self._view = TurnView(output_sample_rate=opts.output_sample_rate)
        self._state = SessionState.NEW
        self._stream: SonicStream | None = None
        self._alive: set[SonicStream] = set()
        self._next_index = 0
        self._attempts = 0
        self._failures: list[tuple[SonicStream, BaseException]] = []
        self._update: _Update | None = None
        self._recycle_requested: _Update | None = None
        self._wake = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._start_task: asyncio.Task[None] | None = None
        self._tool_calls: dict[str, E.ToolCall] = {}
        self._tool_answered: set[str] = set()
        self._iterators: weakref.WeakSet[_EventIterator] = weakref.WeakSet()
        self._callbacks: list[Callable[[E.SessionEvent], None]] = []
        self._closed_event: E.Closed | None = None
        self._closed = asyncio.Event()
        self._error: BaseException | None = None
        self._finishing = False
        self._opened_once = False
        self._history_updated = False
        self._last_input_speech_at: float | None = None
        self._finish_task: asyncio.Task[None] | None = None

    # --- views ---------------------------------------------------------------------------------

    @property
    def options(self) -> SessionOptions:
        return self._options

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def stream_index(self) -> int | None:
        """Index of the current stream (None between streams and before start)."""
        return self._stream.index if self._stream is not None else None

    @property
    def current_stream(self) -> SonicStream | None:
        return self._stream

    @property
    def history(self) -> list[Message]:
        """The conversation as it would be carried into a new stream now (rules applied)."""
        return prepare_history(self._view.history(), self._options.history_limits)

    @property
    def turns(self) -> list[Turn]:
        return self._view.turns

    @property
    def usage(self) -> TokenUsage:
        return self._view.session_usage

    @property
    def pending_tool_calls(self) -> tuple[E.ToolCall, ...]:
        return tuple(c for i, c in self._tool_calls.items() if i not in self._tool_answered)

    @property
    def closed(self) -> bool:
        return self._state in (SessionState.CLOSED, SessionState.FAILED)

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def buffered_audio_ms(self) -> float:
        """Audio pushed and not yet sent (16 kHz mono), in milliseconds."""
        return self._outbox.audio_bytes / (INPUT_SAMPLE_RATE * 2) * 1000

    @property
    def dropped_audio_bytes(self) -> int:
        """16 kHz PCM dropped because no stream could take it for ``max_buffered_audio_ms``."""
        return self._outbox.dropped_audio_bytes

    # --- events --------------------------------------------------------------------------------

    def events(self) -> AsyncIterator[E.SessionEvent]:
        return _EventIterator(self)

    def on(self, callback: Callable[[E.SessionEvent], None]) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def _emit(self, event: E.SessionEvent) -> None:
        if isinstance(event, E.Closed):
            self._closed_event = event
        for it in list(self._iterators):
            it._put(event)
        for cb in list(self._callbacks):
            try:
                cb(event)
            except Exception:  # noqa: BLE001 - a listener's bug must not break the session
                log.exception("session event callback failed for %s", type(event).__name__)

    # --- start / close -------------------------------------------------------------------------

    async def start(self, *, history: Iterable[MessageLike] = ()) -> None:
        if self._state is not SessionState.NEW:
            raise RuntimeError(f"start() can be called once (session is {self._state})")
        messages = list(history)
        if messages or not self._history_updated:  # else: what update_history() gave before start
            self._view.set_history(messages)
        self._state = SessionState.STARTING
        self._start_task = asyncio.create_task(self._connect("start", None), name="novasonic-session-start")
        try:
            await asyncio.shield(self._start_task)
        except asyncio.CancelledError:
            if self._start_task.done() and self._start_task.cancelled() and self._state is SessionState.CLOSING:
                await self.wait_closed()
                raise SessionClosedError("the session was closed while starting") from None
            self._start_task.cancel()
            await asyncio.gather(self._start_task, return_exceptions=True)
            await self._finish(None)
            raise
        except BaseException as exc:
            await self._finish(exc)
            raise
        finally:
            self._start_task = None
        if self._state is not SessionState.STARTING:  # closed meanwhile
            raise SessionClosedError("the session was closed while starting")
        self._state = SessionState.ACTIVE
        self._run_task = asyncio.create_task(self._run(), name="novasonic-session-lifecycle")

    async def __aenter__(self) -> NovaSonicSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def aclose(self) -> None:
        if self._state in (SessionState.CLOSED, SessionState.FAILED):
            return
        if self._finish_task is not None:
            await asyncio.shield(self._finish_task)
            return
        if self._state is SessionState.CLOSING:
            await self.wait_closed()
            return
        previous = self._state
        self._state = SessionState.CLOSING
        if previous is SessionState.NEW:
            await self._finish(None)
            return
        try:
            await self._close_gracefully()
        except asyncio.CancelledError:
            # The caller gave up (e.g. ``wait_for(aclose(), t)``): close hard rather than leave the
            # session CLOSING forever with its stream's tasks running (a later aclose() or
            # wait_closed() would never return).
            await self._finish(None)
            raise
        await self._finish(None)

    async def _close_gracefully(self) -> None:
        for task in (self._start_task, self._run_task):
            if task is not None and task is not asyncio.current_task() and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for frame in self._pump.flush():
            self._outbox.put(AudioItem(frame))
        stream = self._stream
        if stream is not None and not stream.failed and not stream.closing:
            policy = self._options
            await stream.close(drain=True, write_timeout=policy.restart.send_timeout_s * 2,
                               read_timeout=policy.recycle.drain_timeout_s)
            self._emit_all(self._view.end_stream(stream.index, "close"))

    async def _finish(self, error: BaseException | None) -> None:
        """End everything: streams, tasks, pending calls; then ``Closed``. Runs once, in its own
        task, so a caller being cancelled cannot leave it half done."""
        if self._finish_task is None:
            self._finishing = True
            self._finish_task = asyncio.create_task(self._finish_now(error), name="novasonic-session-finish")
        await asyncio.shield(self._finish_task)

    async def _finish_now(self, error: BaseException | None) -> None:
        current = asyncio.current_task()
        for task in (self._start_task, self._run_task):
            if task is not None and task is not current and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for stream in list(self._alive):
            await stream.abort()
            self._emit_all(self._view.end_stream(stream.index, "close"))
        self._alive.clear()
        self._stream = None
        self._outbox.consumer = None
        closed = SessionClosedError(
            "the session is closed" if error is None else f"the session failed: {describe(error)}"
        )
        self._outbox.fail_all(closed)
        for upd in (self._update, self._recycle_requested):
            if upd is not None:
                for fut in upd.futures:
                    if not fut.done():
                        fut.set_exception(closed)
        self._update = self._recycle_requested = None
        self._error = error
        self._state = SessionState.FAILED if error is not None else SessionState.CLOSED
        if error is not None:
            self._emit(E.SessionError(stream_index=self._last_index(), error=error, recoverable=False))
        self._emit(E.Closed(stream_index=self._last_index(), error=error))
        self._closed.set()

    def _last_index(self) -> int:
        return max(0, self._next_index - 1)

    # --- input ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state in (SessionState.CLOSING, SessionState.CLOSED, SessionState.FAILED):
            raise SessionClosedError(f"the session is {self._state}")

    def push_audio(self, audio: Any, sample_rate: int | None = None, num_channels: int | None = None) -> None:
        self._check_open()
        frames = self._pump.push(audio, sample_rate, num_channels)
        if any(frame_rms(f) >= VAD_THRESHOLD_RMS for f in frames):
            # the user may be talking before the service says so: not a quiet point (recycle)
            self._last_input_speech_at = self.clock.monotonic()
        for frame in frames:
            self._outbox.put(AudioItem(frame))

    async def send_text(self, text: str) -> None:
        self._check_open()
        if not isinstance(text, str) or not text.strip():
            raise ValueError("send_text needs a non-empty string")
        model = self._options.model
        if not model.interactive_text:
            raise UnsupportedInput(
                f"{model.model_id} does not answer interactive text (Nova Sonic 1 only answers speech); "
                "push the user's input as audio"
            )
        await self._submit(TextItem(text))

    async def send_tool_result(self, tool_use_id: str, result: Any) -> None:
        self._check_open()
        if not isinstance(tool_use_id, str) or not tool_use_id:
            raise ValueError("tool_use_id must be a non-empty string")
        await self._submit(ToolResultItem(tool_use_id, result))

    async def _submit(self, item: TextItem | ToolResultItem) -> None:
        if self._state is SessionState.NEW:
            raise SessionNotStartedError("call start() before sending text or tool results")
        item.future = asyncio.get_running_loop().create_future()
        self._outbox.put(item)
        await item.future

    def interrupt(self) -> None:
        """No-op: Nova Sonic takes no client-side interruption; barge-in comes from the audio."""

    # --- updates -------------------------------------------------------------------------------

    async def update_instructions(self, instructions: str) -> None:
        await self._apply_update({"instructions": instructions}, "update")

    async def update_tools(self, tools: Iterable[ToolLike], *, tool_choice: Any = _UNSET) -> None:
        tools = tuple(tools)
        changes: dict[str, Any] = {"tools": tools}
        if tool_choice is not _UNSET:
            changes["tool_choice"] = tool_choice
        else:
            current = self._options.tool_choice
            try:
                self._options.replace(tools=tools)
            except ValueError:
                current = None  # it named a tool that is gone (or there are no tools left)
            changes["tool_choice"] = current
        await self._apply_update(changes, "update")

    async def update_options(self, **changes: Any) -> None:
        """Any ``SessionOptions`` fields (validated now); applied by a recycle (``credentials``,
        ``frame_ms`` and ``max_buffered_audio_ms`` take effect at once)."""
        await self._apply_update(changes, "update")

    async def update_history(self, history: Iterable[MessageLike]) -> None:
        """Replace the conversation carried into the next stream, and recycle onto it."""
        self._check_open()
        messages = list(history)
        probe = TurnView()
        probe.set_history(messages)  # validates before anything changes
        self._start_block(self._options, probe.history())  # and the rules accept it
        self._view.set_history(messages)
        self._history_updated = True
        await self._apply_update({}, "update")

    async def recycle(self) -> None:
        """Recycle now: at the next quiet point, forced after ``update_max_wait_s``."""
        await self._apply_update({}, "requested")

    async def _apply_update(self, changes: dict[str, Any], reason: str) -> None:
        self._check_open()
        if changes:
            opts = self._options.replace(**changes)  # raises on bad input, nothing changed
            # what the next stream would start with must pass the rules now: a refused update
            # fails this call (ProtocolViolation), not the session after its old stream is gone
            self._start_block(opts, self._view.history())
            self._options = opts
            if changes.get("credentials") is not None:
                self._credentials = opts.credentials
            if "max_buffered_audio_ms" in changes:
                self._outbox.max_audio_bytes = int(INPUT_SAMPLE_RATE * 2 * opts.max_buffered_audio_ms / 1000)
            if "frame_ms" in changes:
                self._pump.set_frame_ms(opts.frame_ms)  # no short frame mid-stream
        # every request counts, so only a stream opened after it (with what it changed) answers it
        self._options_version += 1
        if self._state is SessionState.NEW:
            return
        fut = asyncio.get_running_loop().create_future()
        if self._update is None:
            self._update = _Update(self.clock.monotonic(), reason, self._options_version)
        else:
            self._update.version = self._options_version
            if reason == "update":
                self._update.reason = reason
        self._update.futures.append(fut)
        self._wake.set()
        await fut

    # --- the lifecycle loop --------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                trigger = await self._next_trigger()
                if isinstance(trigger, _Recycle):
                    await self._recycle(trigger)
                else:
                    stream, error = trigger
                    await self._restart(stream, error)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - fatal: the session ends with this error
            self._state = SessionState.CLOSING
            await self._finish(exc)

    async def _next_trigger(self) -> _Recycle | tuple[SonicStream, BaseException]:
        while True:
            while self._failures:
                stream, error = self._failures.pop(0)
                if stream is self._stream:
                    return stream, error
            now = self.clock.monotonic()
            due, wait = self._recycle_plan(now)
            if due is not None:
                return due
            self._wake.clear()
            await self._sleep_or_wake(wait)

    async def _sleep_or_wake(self, seconds: float | None) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds)) if seconds is not None else None
        try:
            await asyncio.wait([t for t in (waiter, sleeper) if t is not None], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, sleeper):
                if t is not None and not t.done():
                    t.cancel()
            await asyncio.gather(*(t for t in (waiter, sleeper) if t is not None), return_exceptions=True)

    def _recycle_plan(self, now: float) -> tuple[_Recycle | None, float | None]:
        """A recycle due now, or how long until the plan should be looked at again."""
        stream = self._stream
        if stream is None or stream.closing:
            return None, None
        pol = self._options.recycle
        windows: list[tuple[str, float, float]] = []  # (reason, quiet from, forced at)
        if pol.enabled:
            windows.append(("age", stream.opened_at + pol.after_s, stream.opened_at + pol.deadline_s))
            if stream.credentials_expire_at is not None:
                floor = stream.opened_at + pol.min_age_s
                windows.append(("credentials",
                                max(stream.credentials_expire_at - pol.credentials_margin_s, floor),
                                max(stream.credentials_expire_at - pol.credentials_margin_s / 2, floor)))
        if self._update is not None:
            windows.append((self._update.reason, self._update.at + pol.coalesce_s,
                            self._update.at + max(pol.update_max_wait_s, pol.coalesce_s)))
        if not windows:
            return None, None
        for reason, _, forced_at in windows:
            if now >= forced_at:
                return _Recycle(reason, True), None
        soft = [w for w in windows if now >= w[1]]
        if soft and self._quiet(now):
            return _Recycle(soft[0][0], False), None
        next_times = [t for w in windows for t in w[1:] if t > now]
        wait = min(next_times) - now if next_times else None
        if soft:
            poll = max(0.005, min(pol.quiet_s / 4, 0.1))
            wait = poll if wait is None else min(wait, poll)
        return None, wait

    def _quiet(self, now: float) -> bool:
        """The service's view (``TurnView.quiet``) and no speech in the user's own audio for
        ``quiet_s`` (the service reports speech only once it detected it)."""
        quiet_s = self._options.recycle.quiet_s
        if self._last_input_speech_at is not None and now - self._last_input_speech_at < quiet_s:
            return False
        return self._view.quiet(now, quiet_s)

    # --- opening streams -----------------------------------------------------------------------

    async def _connect(self, reason: str, error: BaseException | None) -> None:
        """Open a stream; retry retryable failures per ``RestartPolicy`` (``error``: the failure
        that made this a restart)."""
        policy = self._options.restart
        while True:
            if error is not None:
                if not is_retryable(error):
                    raise error
                self._attempts += 1
                if self._attempts > policy.max_attempts:
                    raise RestartsExhausted(self._attempts - 1, error)
                delay = policy.delay(self._attempts)
                self._emit(E.Restarting(stream_index=self._last_index(), error=error, attempt=self._attempts,
                                        max_attempts=policy.max_attempts, delay_s=delay))
                await self.clock.sleep(delay)
                reason = "restart"
            try:
                await self._open_stream(reason)
                return
            except (ProtocolViolation, SessionClosedError, asyncio.CancelledError):
                raise
            except TimeoutError:
                # no response within open_timeout_s: like a stream that broke, worth a new attempt
                error = StreamBroken(f"opening a stream timed out after {self._options.restart.open_timeout_s:g} s")
                log.debug("%s", error)
            except Exception as exc:  # noqa: BLE001 - classified at the top of the loop
                log.debug("opening a stream failed: %s", describe(exc))
                error = exc

    @staticmethod
    def _start_block(opts: SessionOptions, history: list[Message]) -> tuple[EventBuilder, InputMachine,
                                                                             list[InputEvent]]:
        """The start block of a stream with ``opts`` and ``history``, accepted by a fresh
        ``InputMachine``: input the service would refuse raises ``ProtocolViolation`` here, with
        its text. ``update_*`` call it on the new options before changing anything."""
        builder = EventBuilder(
            opts.model_id, voice=opts.voice, output_sample_rate=opts.output_sample_rate,
            input_sample_rate=INPUT_SAMPLE_RATE, inference=opts.inference, endpointing=opts.endpointing,
            tools=opts.tool_list(), tool_choice=opts.tool_choice, history_limits=opts.history_limits,
        )
        start_events = [*builder.start(opts.instructions, history), *builder.audio_start()]
        machine = InputMachine(opts.model_id)
        for event in start_events:
            machine.feed(event)
        return builder, machine, start_events

    def _unanswered_input(self, opts: SessionOptions, history: list[Message]) -> TextItem | None:
        """When a stream replaces another and the conversation ends with user input that got no
        answer (the old stream broke or was recycled right after the user's question), that last
        USER message is sent to the new stream as interactive text rather than carried as chat
        history, which the model does not answer (LiveKit and Pipecat do the same). Not on Nova
        Sonic 1 (no interactive text) and not while a tool result is owed (the result, carried as
        text, makes the model go on). History given to ``start``/``update_history`` is never re-sent."""
        if not self._opened_once or not opts.model.interactive_text or self.pending_tool_calls:
            return None
        if not self._view.unanswered_user_input():
            return None
        prepared = prepare_history(history, opts.history_limits)
        if not prepared or prepared[-1].role is not Role.USER:
            return None
        return TextItem(prepared[-1].text, origin="resent")

    async def _open_stream(self, reason: str) -> SonicStream:
        opts = self._options
        version = self._options_version
        index = self._next_index
        self._next_index += 1
        creds = await self._credentials.get_credentials()
        history = self._view.history()
        resend = self._unanswered_input(opts, history)
        if resend is not None:
            history = prepare_history(history, opts.history_limits)[:-1]
        builder, machine, start_events = self._start_block(opts, history)
        carried = len(prepare_history(history, opts.history_limits))
        client = await asyncio.wait_for(
            make_client(region=opts.resolved_region(), endpoint=opts.endpoint, access_key_id=creds.access_key_id,
                        secret_access_key=creds.secret_access_key, session_token=creds.session_token,
                        ca_file=opts.ca_file),
            opts.restart.open_timeout_s,
        )
        stream = SonicStream(
            index=index, reason=reason, client=client, model_id=opts.model_id, builder=builder, machine=machine,
            start_events=start_events, outbox=self._outbox, clock=self.clock,
            send_timeout=opts.restart.send_timeout_s, on_output=self._on_output, on_failure=self._on_failure,
            on_sent=self._on_sent, on_refused=self._on_refused, foreign_tool_result=self._foreign_tool_result,
        )
        self._alive.add(stream)
        self._view.begin_stream(index)
        try:
            await stream.open(opts.restart.open_timeout_s)
            left = creds.seconds_left(self.clock.utcnow())
            if left is not None:
                stream.credentials_expire_at = stream.opened_at + left
            self._stream = stream
            if resend is not None:
                self._outbox.put_front(resend)
            self._outbox.consumer = stream
            self._outbox.notify()
            await stream.wait_started(opts.restart.open_timeout_s)
        except BaseException:
            if self._stream is stream:
                self._stream = None
                self._outbox.consumer = None
            await stream.abort()
            if resend is not None:
                self._outbox.discard(resend)  # the next attempt works it out again
            self._alive.discard(stream)
            self._view.end_stream(index, reason)
            raise
        self._opened_once = True
        self._emit(E.StreamOpened(stream_index=index, reason=reason, prompt_name=stream.prompt_name,  # type: ignore[arg-type]
                                  history_messages=carried))
        if self._update is not None and self._update.version <= version:
            done, self._update = self._update, None
            for fut in done.futures:
                if not fut.done():
                    fut.set_result(None)
        return stream

    # --- replacing streams ---------------------------------------------------------------------

    async def _retire(self, stream: SonicStream, cut_by: str) -> None:
        """Cancel the stream's tasks and wait for them (no second writer), then release it."""
        if self._stream is stream:
            self._stream = None
        if self._outbox.consumer is stream:
            self._outbox.consumer = None
        await stream.abort()
        self._alive.discard(stream)
        self._emit_all(self._view.end_stream(stream.index, cut_by))

    async def _restart(self, stream: SonicStream, error: BaseException) -> None:
        self._state = SessionState.RESTARTING
        if self.clock.monotonic() - stream.opened_at >= self._options.restart.healthy_after_s:
            self._attempts = 0
        await self._retire(stream, "restart")
        await self._connect("restart", error)
        self._state = SessionState.ACTIVE

    async def _recycle(self, trigger: _Recycle) -> None:
        self._state = SessionState.RECYCLING
        old = self._stream
        assert old is not None
        self._outbox.consumer = None  # from now on input waits for the new stream
        self._stream = None
        self._emit(E.Recycling(stream_index=old.index, reason=trigger.reason, forced=trigger.forced))
        pol = self._options
        await old.close(drain=False, write_timeout=pol.restart.send_timeout_s,
                        read_timeout=pol.recycle.drain_timeout_s)
        self._alive.discard(old)
        self._emit_all(self._view.end_stream(old.index, "recycle"))
        await self._connect("recycle", None)
        new = self._stream
        assert new is not None
        self._emit(E.Recycled(stream_index=new.index, previous_stream_index=old.index, reason=trigger.reason,
                              forced=trigger.forced))
        self._state = SessionState.ACTIVE

    # --- stream callbacks ----------------------------------------------------------------------

    def _on_output(self, stream: SonicStream, event: OutputEvent) -> None:
        self._emit(E.ServiceEvent(stream_index=stream.index, event=event))
        derived = self._view.feed(stream.index, event, self.clock.monotonic())
        for ev in derived:
            if isinstance(ev, E.ToolCall):
                self._tool_calls[ev.tool_use_id] = ev
            elif isinstance(ev, E.TurnEnded) and ev.cut_by is None and stream is self._stream:
                turn = ev.turn
                if turn.audio_blocks or turn.assistant_text:
                    self._attempts = 0  # the stream answered: it is healthy
        self._emit_all(derived)

    def _on_failure(self, stream: SonicStream, error: BaseException) -> None:
        self._failures.append((stream, error))
        self._wake.set()

    def _on_sent(self, stream: SonicStream, item: Item, as_tool_block: bool) -> None:
        if isinstance(item, TextItem):
            self._view.add_typed(item.text, resent=item.origin == "resent")
        elif isinstance(item, ToolResultItem):
            self._tool_answered.add(item.tool_use_id)
            call = self._tool_calls.get(item.tool_use_id)
            if call is not None:
                self._view.tool_result_sent(call.stream_index, item.tool_use_id)
            if not as_tool_block:
                self._view.add_typed(self._tool_result_text(item))

    def _on_refused(self, stream: SonicStream, item: Item, error: BaseException) -> None:
        """Input refused before sending (the caller gets ``error`` too); the session goes on."""
        self._emit(E.SessionError(stream_index=stream.index, error=error, recoverable=True))

    def _foreign_tool_result(self, stream: SonicStream, item: ToolResultItem) -> str | None:
        call = self._tool_calls.get(item.tool_use_id)
        if call is None or call.stream_index == stream.index:
            return None  # unknown to the session: the rules answer it (unknown toolUseId)
        if item.tool_use_id in self._tool_answered:
            raise ValueError(f"a result for tool call {item.tool_use_id} was already sent")
        if not self._options.model.interactive_text:
            raise ToolResultUndeliverable(
                f"the {call.name} call {item.tool_use_id} came on stream {call.stream_index}, which is gone, and "
                f"{self._options.model_id} takes no interactive text to carry its result to the new stream"
            )
        return self._tool_result_text(item)

    def _tool_result_text(self, item: ToolResultItem) -> str:
        call = self._tool_calls.get(item.tool_use_id)
        return TOOL_RESULT_TEXT.format(name=call.name if call else "tool", tool_use_id=item.tool_use_id,
                                       content=encode_tool_result(item.result))

    def _emit_all(self, events: Iterable[E.SessionEvent]) -> None:
        for ev in events:
            self._emit(ev)

