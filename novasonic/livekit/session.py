"""``RealtimeSession``: LiveKit's ``llm.RealtimeSession`` on top of ``novasonic.session``.

Everything about streams — opening, the start block, history, audio framing and resampling,
recycling before the 8-minute limit or credential expiry, restarting after retryable errors,
one writer per stream, the protocol rules, the graceful close — is ``NovaSonicSession``'s. This
module only translates: LiveKit calls → session calls, session events → LiveKit events. It
subscribes with ``NovaSonicSession.on`` (a synchronous callback: no extra task, no queue).

Start-up
    The session object opens no stream until the agent framework has given it the instructions,
    the chat context and the tools (``AgentActivity`` sends all three right after ``session()``),
    or ``config_wait`` (0.5 s) has passed. The chat context given before the first stream is the
    chat history (USER/ASSISTANT text; the builder merges same-role messages, strips a leading
    ASSISTANT message and keeps the newest messages within the service's limits, so a long or
    assistant-first history starts cleanly, upstream #4899/#2740). Audio pushed meanwhile is
    buffered by the session.

Generations (what the framework plays and when it runs tools)
    A generation opens at the first assistant output of a turn (SPECULATIVE text, audio or a tool
    call) and holds one assistant message (one per turn however many sentences/blocks Nova
    sends, upstream #4855) and the turn's function calls. It closes:

    - at an assistant AUDIO ``contentEnd`` ``END_TURN`` (or ``INTERRUPTED``);
    - at *any* AUDIO ``contentEnd`` while a tool result of the turn is still owed: the model is
      waiting for it, and the framework sends tool results only once the speech before them has
      played, so keeping this speech open would stall the result until the user speaks again
      (upstream #4887, chained tools with speech in between);
    - right after a tool call (so the framework runs the tool and sends the result; speech that
      follows opens the next generation);
    - at barge-in, at ``completionEnd``, at the end of the turn, when its stream ends
      (recycle/restart/close).

    Speech that starts while a tool result of the turn is owed (Nova 2 keeps talking while a tool
    runs: "Let me check…") is *held* — buffered, not yet announced — until the framework has sent
    the result, or for at most ``tool_speech_hold`` (1 s). The framework sends tool results only
    after every speech announced before has finished playing; announcing the filler at once would
    make the result wait for the filler's end (and for the user, when the model does not finish
    the filler before it has the result, upstream #4887). Held, the result goes out as soon as
    the tool returns, the model prepares the answer while the filler plays, and the filler still
    plays first. A tool slower than the hold gets its filler played while it runs.

    A generation answering ``generate_reply`` (typed text, instructions) is given to that call's
    future (``user_initiated=True``); any other is announced with ``generation_created``
    (``user_initiated=False``), which the framework schedules as a new speech. Typed user text
    sent through ``update_chat_ctx`` expects the reply the framework asks for right after; if no
    ``generate_reply`` claims the answer within ``UNCLAIMED_REPLY_GRACE_S``, it is announced as a
    server-initiated generation instead, so it is never lost.

Barge-in
    ``userSpeechStart`` → ``input_speech_started`` (the framework stops playback at once),
    ``userSpeechEnd`` → ``input_speech_stopped``. A barge-in (the ``{ "interrupted" : true }``
    text, an INTERRUPTED stop reason, or user speech over open assistant audio, whichever the
    model version sends) closes the turn's generation, drops the rest of its audio and marks its
    assistant message ``interrupted`` in ``chat_ctx``. Nova Sonic 1 sends no speech events:
    ``input_speech_started``/``stopped`` are derived from the barge-in and the user transcript.

User transcription
    Each USER transcript piece → ``input_audio_transcription_completed`` (``is_final=False``, the
    turn's text so far); the final one when the assistant starts answering the turn (or the turn
    ends). Empty transcripts and echoes of typed text are not reported (typed text is already in
    the framework's context).

``generate_reply``
    Nova 2+/``mixed``: ``instructions`` are sent as interactive USER text and the future resolves
    with the generation that answers it; without instructions it resolves with the answer to the
    typed text just sent, else with the next generation. Either way it fails with
    ``llm.RealtimeError`` after ``generate_reply_timeout`` (no future that never resolves).
    Nova Sonic 1 / ``audio``: a completed, empty generation (the model only answers speech).

``update_chat_ctx``
    New USER messages are typed input (interactive text, Nova 2+; on Nova Sonic 1 a
    ``RealtimeError`` says the model cannot take them); new function-call outputs are the results
    of pending tool calls (errors as ``{"error": ...}``, strings wrapped as JSON). A result whose
    stream has been replaced meanwhile is carried to the new stream by the session. Other items
    are kept in ``chat_ctx`` only (mutable_chat_context is False).

``update_instructions`` / ``update_tools``
    Before the first stream: part of its start block. After: the service takes them only at a
    stream start, so a real change recycles the stream at the next quiet point; the call does not
    wait for that (it may come from inside a tool, whose result the quiet point waits for), and
    every change requested before the recycle happens shares it (one recycle for a burst,
    upstream #6812). An unchanged tool set or text recycles nothing.

Errors (``error`` events, ``llm.RealtimeModelError``)
    ``recoverable=True``: a retryable stream error (a restart follows), input refused before
    sending (the rules). ``recoverable=False``: restarts exhausted ("Max restart attempts
    exceeded"), a non-retryable service error, a failed start — the session is over.

No-ops (documented): ``interrupt`` (Nova Sonic has no client-side interruption; barge-in comes
from the user's audio), ``clear_audio``, ``commit_audio``, ``truncate``, ``push_video``,
``update_options`` (Nova Sonic takes the tool choice only at a stream start; per-response tool
choice is not supported).

Every task this object starts is owned and finished by ``aclose()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from livekit import rtc
from livekit.agents import APIConnectionError, APIError, APIStatusError, llm
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import is_given

from ..errors import ProtocolViolation
from ..events import CompletionEnd
from ..session import NovaSonicSession, RestartsExhausted, SessionClosedError, ToolDefinition, UnsupportedInput
from ..session import events as E
from ..session.errors import describe
from .convert import (
    function_call_arguments,
    history_from_chat_ctx,
    tool_choice_option,
    tool_definitions,
    tool_output_payload,
    tools_signature,
    usage_metrics,
)
from .generation import Generation
from .types import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOOL_TEMPERATURE,
    DEFAULT_TOOL_TOP_P,
    DEFAULT_TOP_P,
)

if TYPE_CHECKING:
    from .model import RealtimeModel

__all__ = ["RealtimeSession", "UNCLAIMED_REPLY_GRACE_S"]

log = logging.getLogger("novasonic.livekit")

#: How long the answer to typed text waits for ``generate_reply`` to claim it before it is
#: announced as a server-initiated generation.
UNCLAIMED_REPLY_GRACE_S = 0.3


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?")


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved (a reply nobody awaits must not log at GC)."""
    if not fut.cancelled():
        fut.exception()


def _status_code(exc: BaseException) -> int:
    name = type(exc).__name__
    if name == "ValidationException" or isinstance(exc, (ProtocolViolation, UnsupportedInput)):
        return 400
    if name == "ThrottlingException":
        return 429
    if name == "AccessDeniedException":
        return 403
    return 500


def _request_id(exc: BaseException) -> str | None:
    message = str(getattr(exc, "message", None) or exc)
    head = message.split(" ", 1)[0]
    if head.startswith("RequestId="):
        return head.split("=", 1)[1] or None
    return None


def _api_error(exc: BaseException, *, message: str | None = None, retryable: bool) -> APIError:
    text = message or describe(exc)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return APIConnectionError(text, retryable=retryable)
    return APIStatusError(text, status_code=_status_code(exc), request_id=_request_id(exc), body=exc,
                          retryable=retryable)


async def _no_items() -> AsyncIterator[Any]:
    return
    yield  # an empty async generator


@dataclass(slots=True)
class _UserTurn:
    turn_index: int
    item_id: str
    transcript: str = ""
    final: bool = False


@dataclass(slots=True, eq=False)
class _ReplySlot:
    """A reply the framework expects (``generate_reply`` or typed text)."""

    future: asyncio.Future[llm.GenerationCreatedEvent]
    claimed: bool
    generation: Generation | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def cancel_timers(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()


class RealtimeSession(llm.RealtimeSession[Literal["novasonic_session_event"]]):
    """See the module doc. Made by ``RealtimeModel.session()``; needs a running event loop.

    Extra event: ``novasonic_session_event`` carries every ``novasonic.session`` event except
    audio chunks, for applications that want the lower level (stream recycles, raw service
    events, turns)."""

    def __init__(self, realtime_model: RealtimeModel) -> None:
        super().__init__(realtime_model)
        self._rm = realtime_model
        self._loop = asyncio.get_running_loop()
        self._session = NovaSonicSession(realtime_model.session_options, clock=realtime_model._clock)
        self._unsubscribe = self._session.on(self._on_event)
        self._text_input = realtime_model.text_input
        #: Nova 2+ report user speech start/end; Nova Sonic 1 does not.
        self._speech_events = not self._session.options.model.is_nova_1

        self._instructions: str | None = None
        self._chat_ctx = llm.ChatContext.empty()
        self._known_ids: set[str] = set()
        self._tools = llm.ToolContext.empty()
        self._tool_defs: tuple[ToolDefinition, ...] = ()
        self._got = {"instructions": False, "chat_ctx": False, "tools": False}
        self._configured = asyncio.Event()
        self._started = asyncio.Event()
        self._start_error: BaseException | None = None

        self._tasks: set[asyncio.Task[Any]] = set()
        self._gen: Generation | None = None
        self._last_gen: Generation | None = None
        self._messages: dict[int, list[llm.ChatMessage]] = {}  # turn index → assistant messages
        self._users: dict[int, _UserTurn] = {}
        self._typed_recent: deque[str] = deque(maxlen=8)
        self._reply: _ReplySlot | None = None
        self._pending_tools: dict[str, int] = {}  # tool_use_id → turn index
        self._barged: set[int] = set()
        self._held: list[Generation] = []
        self._hold_timer: asyncio.TimerHandle | None = None
        self._speech_active = False
        self._closing = False
        self._closed = False
        self._fatal_reported = False
        self._created = time.perf_counter()
        self._warned_options = False

        self._spawn(self._start(), "novasonic-livekit-start")

    # --- views -----------------------------------------------------------------------------------

    @property
    def chat_ctx(self) -> llm.ChatContext:
        return self._chat_ctx.copy()

    @property
    def tools(self) -> llm.ToolContext:
        return self._tools.copy()

    @property
    def session(self) -> NovaSonicSession:
        """The underlying ``novasonic.session.NovaSonicSession`` (streams, turns, usage)."""
        return self._session

    @property
    def buffered_audio_ms(self) -> float:
        """Pushed audio not yet sent (see ``NovaSonicSession.buffered_audio_ms``)."""
        return self._session.buffered_audio_ms

    # --- tasks -----------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("novasonic.livekit task %s failed", task.get_name(), exc_info=exc)

    # --- start -----------------------------------------------------------------------------------

    def _mark(self, what: str) -> None:
        self._got[what] = True
        if all(self._got.values()):
            self._configured.set()

    def _desired_options(self) -> dict[str, Any]:
        defs = self._tool_defs
        names = [d.name for d in defs]
        rm = self._rm
        greedy = bool(defs)
        instructions = self._instructions if self._instructions and self._instructions.strip() else DEFAULT_INSTRUCTIONS
        return {
            "instructions": instructions,
            "tools": defs,
            "tool_choice": tool_choice_option(rm._tool_choice, names),
            "temperature": rm.temperature if is_given(rm.temperature)
            else (DEFAULT_TOOL_TEMPERATURE if greedy else DEFAULT_TEMPERATURE),
            "top_p": rm.top_p if is_given(rm.top_p) else (DEFAULT_TOOL_TOP_P if greedy else DEFAULT_TOP_P),
        }

    def _changed_options(self) -> dict[str, Any]:
        want = self._desired_options()
        have = self._session.options
        changes: dict[str, Any] = {}
        if want["instructions"] != have.instructions:
            changes["instructions"] = want["instructions"]
        if tools_signature(want["tools"]) != tools_signature(have.tools):  # type: ignore[arg-type]
            changes["tools"] = want["tools"]
        if want["tool_choice"] != have.tool_choice:
            changes["tool_choice"] = want["tool_choice"]
        for key in ("temperature", "top_p"):
            if want[key] != getattr(have, key):
                changes[key] = want[key]
        if "tools" in changes or "tool_choice" in changes:
            changes["tool_choice"] = want["tool_choice"]  # validated together with the tools
        return changes

    async def _start(self) -> None:
        if not self._configured.is_set():
            try:
                await asyncio.wait_for(self._configured.wait(), self._rm._config_wait)
            except TimeoutError:
                missing = [k for k, v in self._got.items() if not v]
                log.debug("starting without %s (not given within %.1f s)", ", ".join(missing), self._rm._config_wait)
        t0 = time.perf_counter()
        try:
            changes = self._changed_options()
            if changes:
                await self._session.update_options(**changes)  # before start(): applied to the first stream
            await self._session.start(history=history_from_chat_ctx(self._chat_ctx))
        except SessionClosedError as exc:
            self._start_error = exc
        except Exception as exc:  # noqa: BLE001 - reported as an error event
            self._start_error = exc
            if not self._session.closed:  # options refused before the session began
                self._report_fatal(exc)
                await self._session.aclose()
        else:
            self._report_connection_acquired(time.perf_counter() - t0)
        finally:
            self._started.set()
        if self._start_error is None:
            self._apply_later()  # updates that came while the first stream was opening

    async def _ensure_started(self) -> None:
        if not self._started.is_set():
            await self._started.wait()
        if self._start_error is not None:
            raise llm.RealtimeError(f"the Nova Sonic session did not start: {describe(self._start_error)}")
        if self._closing or self._session.closed:
            raise llm.RealtimeError("the Nova Sonic session is closed")

    # --- configuration from the framework --------------------------------------------------------

    async def update_instructions(self, instructions: str) -> None:
        self._instructions = instructions
        self._mark("instructions")
        self._apply_later()

    async def update_tools(self, tools: list[llm.Tool]) -> None:
        self._tools = llm.ToolContext(tools)
        self._tool_defs = tool_definitions(self._tools)
        self._mark("tools")
        self._apply_later()

    def _apply_later(self) -> None:
        """After the first stream: ask the session for the changed options (one recycle for a
        burst; the call is not awaited here, see the module doc)."""
        if not self._started.is_set() or self._start_error is not None or self._closing:
            return
        changes = self._changed_options()
        if changes:
            log.debug("options changed (%s): recycling the stream", ", ".join(sorted(changes)))
            self._spawn(self._apply(changes), "novasonic-livekit-update")

    async def _apply(self, changes: dict[str, Any]) -> None:
        try:
            await self._session.update_options(**changes)
        except SessionClosedError:
            pass
        except Exception as exc:  # noqa: BLE001 - e.g. a tool schema the options refuse
            self._emit_error(exc, recoverable=True)

    def update_options(self, *, tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN) -> None:
        """No-op: Nova Sonic takes the tool choice only in a stream's ``promptStart``."""
        if is_given(tool_choice) and not self._warned_options:
            self._warned_options = True
            log.warning("Nova Sonic cannot change the tool choice during a session; ignored")

    async def update_chat_ctx(self, chat_ctx: llm.ChatContext) -> None:
        ctx = chat_ctx.copy(exclude_handoff=True, exclude_instructions=True, exclude_empty_message=True,
                            exclude_config_update=True)
        if not self._started.is_set() and not self._got["chat_ctx"]:
            self._chat_ctx = ctx
            self._known_ids = {item.id for item in ctx.items}
            self._mark("chat_ctx")
            return
        self._mark("chat_ctx")
        sends: list[tuple[str, Any]] = []
        for item in ctx.items:
            if item.id in self._known_ids:
                continue
            self._known_ids.add(item.id)
            self._chat_ctx.items.append(item)
            if item.type == "function_call_output":
                if self._pending_tools.pop(item.call_id, None) is not None:
                    sends.append(("tool", item))
                else:
                    log.debug("function output for %s: not a pending Nova Sonic tool call, not sent", item.call_id)
            elif item.type == "message" and item.role == "user":
                text = (item.text_content or "").strip()
                if text:
                    sends.append(("text", text))
        first_error: BaseException | None = None
        for kind, value in sends:
            try:
                if kind == "tool":
                    await self._send_tool_result(value)
                else:
                    await self._send_user_text(value)
            except llm.RealtimeError as exc:
                first_error = first_error or exc
        if self._held and not any(self._owes_tool_result(g.turn_index) for g in self._held):
            self._release_held()  # the results are out: the speech held meanwhile may play now
        if first_error is not None:
            raise first_error

    async def _send_tool_result(self, output: llm.FunctionCallOutput) -> None:
        await self._ensure_started()
        try:
            await self._session.send_tool_result(output.call_id, tool_output_payload(output))
        except Exception as exc:  # noqa: BLE001 - surfaced to the caller as RealtimeError
            raise llm.RealtimeError(f"the result of tool call {output.call_id} was not sent: {describe(exc)}") from exc

    async def _send_user_text(self, text: str) -> None:
        if not self._text_input:
            raise llm.RealtimeError(
                f"{self._rm.model} (modalities={self._rm.modalities!r}) does not take typed text; "
                "the message is kept in the chat context only (use Nova 2 with modalities='mixed')"
            )
        await self._ensure_started()
        self._expect_reply()
        self._typed_recent.append(_norm(text))
        try:
            await self._session.send_text(text)
        except Exception as exc:  # noqa: BLE001
            raise llm.RealtimeError(f"typed text was not sent: {describe(exc)}") from exc

    # --- replies ---------------------------------------------------------------------------------

    def _expect_reply(self) -> _ReplySlot:
        """The slot for the answer to typed text (unclaimed until ``generate_reply``)."""
        slot = self._reply
        if slot is not None and not slot.future.done():
            return slot
        slot = _ReplySlot(self._loop.create_future(), claimed=False)
        slot.future.add_done_callback(_retrieve)
        slot.timers.append(self._loop.call_later(self._rm._generate_reply_timeout, self._expire_unclaimed, slot))
        self._reply = slot
        return slot

    def _expire_unclaimed(self, slot: _ReplySlot) -> None:
        if not slot.claimed and self._reply is slot:
            self._drop_slot(slot)

    def _drop_slot(self, slot: _ReplySlot) -> None:
        slot.cancel_timers()
        if self._reply is slot:
            self._reply = None
        if not slot.future.done():
            slot.future.cancel()

    def _claim(self, slot: _ReplySlot) -> asyncio.Future[llm.GenerationCreatedEvent]:
        slot.claimed = True
        slot.cancel_timers()
        if slot.generation is not None:  # the answer already started: hand it over now
            gen, slot.generation = slot.generation, None
            self._resolve(slot, gen)
        else:
            slot.timers.append(self._loop.call_later(self._rm._generate_reply_timeout, self._timeout, slot))
        return slot.future

    def _timeout(self, slot: _ReplySlot) -> None:
        if not slot.future.done():
            slot.future.set_exception(llm.RealtimeError(
                f"generate_reply timed out after {self._rm._generate_reply_timeout:g} s waiting for the model to answer"
            ))
        if self._reply is slot:
            self._reply = None

    def _resolve(self, slot: _ReplySlot, gen: Generation) -> None:
        slot.cancel_timers()
        if self._reply is slot:
            self._reply = None
        gen.announced = True
        event = gen.make_event(user_initiated=True)
        if not slot.future.done():
            slot.future.set_result(event)
        else:  # cancelled by the caller meanwhile: nobody will read it unless announced
            self.emit("generation_created", gen.make_event(user_initiated=False))

    def generate_reply(
        self,
        *,
        instructions: NotGivenOr[str] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        tools: NotGivenOr[list[llm.Tool]] = NOT_GIVEN,
    ) -> asyncio.Future[llm.GenerationCreatedEvent]:
        if is_given(tool_choice) or is_given(tools):
            log.debug("per-response tools/tool_choice are not supported by Nova Sonic; ignored")
        fut: asyncio.Future[llm.GenerationCreatedEvent]
        if not self._text_input:
            if is_given(instructions):
                log.warning("%s answers only speech: generate_reply(instructions=...) produces no reply",
                            self._rm.model)
            fut = self._loop.create_future()
            fut.set_result(llm.GenerationCreatedEvent(message_stream=_no_items(), function_stream=_no_items(),
                                                      user_initiated=True))
            return fut
        if self._closing or self._session.closed:
            fut = self._loop.create_future()
            fut.set_exception(llm.RealtimeError("the Nova Sonic session is closed"))
            fut.add_done_callback(_retrieve)
            return fut
        text = instructions.strip() if is_given(instructions) and isinstance(instructions, str) else ""
        if text:
            old = self._reply
            if old is not None and not old.claimed and old.generation is None:
                slot = old  # typed text just sent: its answer is this reply
            else:
                slot = _ReplySlot(self._loop.create_future(), claimed=False)
                slot.future.add_done_callback(_retrieve)
                if old is not None and old.generation is not None and not old.claimed:
                    self._release(old)
                self._reply = slot
            fut = self._claim(slot)
            self._spawn(self._send_instructions(text, slot), "novasonic-livekit-instructions")
            return fut
        slot = self._reply
        if slot is None or slot.future.done() or slot.claimed:
            slot = _ReplySlot(self._loop.create_future(), claimed=False)
            slot.future.add_done_callback(_retrieve)
            self._reply = slot
        return self._claim(slot)

    async def _send_instructions(self, text: str, slot: _ReplySlot) -> None:
        try:
            await self._ensure_started()
            self._typed_recent.append(_norm(text))
            await self._session.send_text(text)
        except asyncio.CancelledError:
            if not slot.future.done():
                slot.future.set_exception(llm.RealtimeError("the Nova Sonic session closed before the reply"))
            raise
        except Exception as exc:  # noqa: BLE001 - the caller's future carries it
            slot.cancel_timers()
            if self._reply is slot:
                self._reply = None
            if not slot.future.done():
                err = exc if isinstance(exc, llm.RealtimeError) else llm.RealtimeError(
                    f"generate_reply: the instructions were not sent: {describe(exc)}")
                slot.future.set_exception(err)

    def _release(self, slot: _ReplySlot) -> None:
        """An unclaimed answer: announce it as a server-initiated generation."""
        slot.cancel_timers()
        if self._reply is slot:
            self._reply = None
        gen, slot.generation = slot.generation, None
        if not slot.future.done():
            slot.future.cancel()
        if gen is not None and not gen.announced:
            gen.announced = True
            self.emit("generation_created", gen.make_event(user_initiated=False))

    # --- audio and no-ops ------------------------------------------------------------------------

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        if self._closing:
            return
        try:
            self._session.push_audio(frame)
        except SessionClosedError:
            pass

    def push_video(self, frame: rtc.VideoFrame) -> None:
        """No-op: Nova Sonic takes no video."""

    def commit_audio(self) -> None:
        """No-op: Nova Sonic detects the end of the user's turn itself."""

    def clear_audio(self) -> None:
        """No-op: audio already sent cannot be withdrawn."""

    def interrupt(self) -> None:
        """No-op: Nova Sonic has no client-side interruption; it stops by itself when the user
        speaks over it (barge-in), which this plugin reports as ``input_speech_started``."""

    def truncate(
        self,
        *,
        message_id: str,
        modalities: list[Literal["text", "audio"]],
        audio_end_ms: int,
        audio_transcript: NotGivenOr[str] = NOT_GIVEN,
    ) -> None:
        """No-op: Nova Sonic keeps its own record of what was said (``message_truncation`` False)."""

    # --- close -----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close gracefully: pending text and tool results are sent, then the stream is closed
        (audio ``contentEnd``, ``promptEnd``, ``sessionEnd``); every task is finished."""
        if self._closing:
            await self._session.wait_closed()
            return
        self._closing = True
        try:
            await self._session.aclose()
        finally:
            tasks = [t for t in self._tasks if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._shutdown_state()
            self._unsubscribe()

    def _shutdown_state(self) -> None:
        self._closed = True
        self._close_gen()
        self._release_held()
        slot = self._reply
        if slot is not None:
            slot.cancel_timers()
            self._reply = None
            if slot.generation is not None and not slot.generation.announced:
                slot.generation.close()
            if not slot.future.done():
                slot.future.set_exception(llm.RealtimeError("the Nova Sonic session closed before the reply"))

    # --- errors ----------------------------------------------------------------------------------

    def _emit_error(self, exc: BaseException, *, recoverable: bool, message: str | None = None) -> None:
        self.emit("error", llm.RealtimeModelError(
            timestamp=time.time(), label=self._rm.label,
            error=_api_error(exc, message=message, retryable=recoverable), recoverable=recoverable,
        ))

    def _report_fatal(self, exc: BaseException) -> None:
        if self._fatal_reported:
            return
        self._fatal_reported = True
        message = None
        if isinstance(exc, RestartsExhausted):
            message = f"Max restart attempts exceeded ({exc.attempts}): {describe(exc.last_error)}"
        self._emit_error(exc, recoverable=False, message=message)

    # --- session events → LiveKit ----------------------------------------------------------------

    def _on_event(self, ev: E.SessionEvent) -> None:
        if self._closed:
            return
        if isinstance(ev, E.AudioChunk):  # the hot path
            if ev.turn_index not in self._barged:
                self._generation_for(ev.turn_index, ev.stream_index).push_audio(ev.pcm, ev.sample_rate)
            return
        if isinstance(ev, E.ServiceEvent):
            if isinstance(ev.event, CompletionEnd):
                self._close_gen()
            return
        self.emit("novasonic_session_event", ev)
        match ev:
            case E.UserSpeechStarted():
                self._speech_started()
            case E.UserSpeechEnded():
                self._speech_stopped()
            case E.UserTranscript():
                self._on_transcript(ev)
            case E.GenerationStarted():
                self._finalize_user(ev.turn_index)
            case E.AssistantText():
                self._on_assistant_text(ev)
            case E.AudioEnded():
                gen = self._gen
                if gen is not None and gen.turn_index == ev.turn_index and gen.stream_index == ev.stream_index and (
                    ev.stop_reason in ("END_TURN", "INTERRUPTED") or self._owes_tool_result(ev.turn_index)
                ):
                    self._close_gen()
            case E.ToolCall():
                self._on_tool_call(ev)
            case E.BargeIn():
                self._on_barge_in(ev)
            case E.Usage():
                self._on_usage(ev)
            case E.TurnEnded():
                self._finalize_user(ev.turn.index)
                if self._gen is not None and self._gen.turn_index == ev.turn.index:
                    self._close_gen()
            case E.StreamOpened():
                if ev.reason != "start":
                    self.emit("session_reconnected", llm.RealtimeSessionReconnectedEvent())
            case E.Restarting():
                self._close_gen()
                self._emit_error(ev.error, recoverable=True, message=(
                    f"{describe(ev.error)} (restarting the stream: attempt {ev.attempt} of {ev.max_attempts})"))
            case E.SessionError():
                if ev.recoverable:
                    self._emit_error(ev.error, recoverable=True)
                else:
                    self._report_fatal(ev.error)
            case E.Closed():
                self._shutdown_state()

    # user side

    def _speech_started(self) -> None:
        if not self._speech_active:
            self._speech_active = True
            self.emit("input_speech_started", llm.InputSpeechStartedEvent())

    def _speech_stopped(self) -> None:
        if self._speech_active:
            self._speech_active = False
            self.emit("input_speech_stopped", llm.InputSpeechStoppedEvent(user_transcription_enabled=True))

    def _user_turn(self, turn_index: int) -> _UserTurn:
        user = self._users.get(turn_index)
        if user is None:
            user = self._users[turn_index] = _UserTurn(turn_index, f"nova-user-{uuid.uuid4().hex[:12]}")
        return user

    def _on_transcript(self, ev: E.UserTranscript) -> None:
        transcript = ev.transcript.strip()
        if not transcript:
            return  # the empty USER block Nova 2 sends for typed text
        norm = _norm(transcript)
        if norm in self._typed_recent:
            self._typed_recent.remove(norm)
            return  # an echo of typed text, already in the framework's context
        user = self._user_turn(ev.turn_index)
        if not self._speech_events:
            self._speech_started()  # Nova Sonic 1: the transcript is the only sign of speech
        user.transcript = transcript
        if user.final:  # a late piece: the final transcript grows
            self._emit_final(user)
            return
        self.emit("input_audio_transcription_completed", llm.InputTranscriptionCompleted(
            item_id=user.item_id, transcript=transcript, is_final=False))

    def _finalize_user(self, turn_index: int) -> None:
        user = self._users.get(turn_index)
        if user is None or user.final or not user.transcript:
            return
        if not self._speech_events:
            self._speech_stopped()
        user.final = True
        self._emit_final(user)

    def _emit_final(self, user: _UserTurn) -> None:
        self.emit("input_audio_transcription_completed", llm.InputTranscriptionCompleted(
            item_id=user.item_id, transcript=user.transcript, is_final=True))
        existing = self._chat_ctx.get_by_id(user.item_id)
        if existing is not None and existing.type == "message":
            existing.content = [user.transcript]
            return
        msg = llm.ChatMessage(role="user", content=[user.transcript], id=user.item_id)
        self._known_ids.add(msg.id)
        self._insert_before_turn_messages(user.turn_index, msg)

    def _insert_before_turn_messages(self, turn_index: int, msg: llm.ChatMessage) -> None:
        """The user message goes before the assistant messages of its turn (a late transcript)."""
        first = next(iter(self._messages.get(turn_index, ())), None)
        items = self._chat_ctx.items
        if first is not None and first in items:
            items.insert(items.index(first), msg)
        else:
            items.append(msg)

    # assistant side

    def _generation_for(self, turn_index: int, stream_index: int) -> Generation:
        gen = self._gen
        if gen is not None and (gen.turn_index != turn_index or gen.stream_index != stream_index):
            self._close_gen()
            gen = None
        if gen is None:
            gen = self._open_gen(turn_index, stream_index)
        return gen

    def _open_gen(self, turn_index: int, stream_index: int) -> Generation:
        self._finalize_user(turn_index)
        gen = Generation(turn_index=turn_index, stream_index=stream_index)
        self._gen = self._last_gen = gen
        if self._owes_tool_result(turn_index) and self._rm._tool_speech_hold > 0:
            self._held.append(gen)  # see "Speech that starts while a tool result ... is held"
            if self._hold_timer is None:
                self._hold_timer = self._loop.call_later(self._rm._tool_speech_hold, self._release_held)
            return gen
        self._announce(gen)
        return gen

    def _release_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        held, self._held = self._held, []
        for gen in held:
            if gen.turn_index in self._barged or self._closed:
                gen.close()  # interrupted before it could be played
            else:
                self._announce(gen)

    def _announce(self, gen: Generation) -> None:
        slot = self._reply
        if slot is not None and not slot.future.done() and slot.generation is None:
            if slot.claimed:
                self._resolve(slot, gen)
            else:  # typed text's answer: wait briefly for generate_reply to claim it
                slot.generation = gen
                slot.cancel_timers()
                slot.timers.append(self._loop.call_later(UNCLAIMED_REPLY_GRACE_S, self._release, slot))
        else:
            gen.announced = True
            self.emit("generation_created", gen.make_event(user_initiated=False))

    def _close_gen(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            gen.close()

    def _assistant_message(self, gen: Generation) -> llm.ChatMessage | None:
        if gen.message_id is None:
            return None
        msgs = self._messages.setdefault(gen.turn_index, [])
        if msgs and msgs[-1].id == gen.message_id:
            return msgs[-1]
        msg = llm.ChatMessage(role="assistant", content=[gen.text], id=gen.message_id)
        msgs.append(msg)
        self._known_ids.add(msg.id)
        self._chat_ctx.items.append(msg)
        return msg

    def _on_assistant_text(self, ev: E.AssistantText) -> None:
        if ev.stage == "SPECULATIVE":
            if ev.turn_index in self._barged:
                return
            gen = self._generation_for(ev.turn_index, ev.stream_index)
            gen.push_text(ev.text)
            msg = self._assistant_message(gen)
            if msg is not None:
                msg.content = [gen.text]
        elif ev.turn_index in self._barged and ev.text.strip():
            # FINAL text of an interrupted turn: what was actually said before the barge-in
            msgs = self._messages.get(ev.turn_index)
            if msgs:
                msgs[-1].content = [ev.text.strip()]

    def _owes_tool_result(self, turn_index: int) -> bool:
        return any(t == turn_index for t in self._pending_tools.values())

    def _on_tool_call(self, ev: E.ToolCall) -> None:
        gen = self._generation_for(ev.turn_index, ev.stream_index)
        call = llm.FunctionCall(call_id=ev.tool_use_id, name=ev.name, arguments=function_call_arguments(ev.arguments))
        self._pending_tools[ev.tool_use_id] = ev.turn_index
        self._known_ids.add(call.id)
        self._chat_ctx.items.append(call)
        gen.push_function_call(call)
        self._close_gen()  # the framework runs the tool once the generation is over

    def _on_barge_in(self, ev: E.BargeIn) -> None:
        self._barged.add(ev.turn_index)
        self._speech_started()  # the framework stops playback (no-op if userSpeechStart said so)
        if self._gen is not None and self._gen.turn_index == ev.turn_index:
            self._close_gen()
        for msg in self._messages.get(ev.turn_index, ()):
            msg.interrupted = True

    def _on_usage(self, ev: E.Usage) -> None:
        gen = self._gen or self._last_gen
        self.emit("metrics_collected", usage_metrics(
            ev.delta, label=self._rm.label, request_id=gen.response_id if gen else "",
            model=self._rm.model, provider=self._rm.provider,
            created_at=gen.created_at if gen else None, first_token_at=gen.first_token_at if gen else None,
            completed_at=gen.completed_at if gen else None,
        ))
