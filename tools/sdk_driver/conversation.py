"""Drive one conversation with the STOCK SDK client against a running ``FakeNovaSonic``.

Real parts only: ``novasonic.transport`` (stock ``aws_sdk_bedrock_runtime`` client on the CRT
transport, loopback TLS + HTTP/2, SigV4), ``EventBuilder`` for the input events, a reader task
that parses every output event, feeds an ``OutputTracker`` and rebuilds the content blocks::

    async with FakeNovaSonic(script=script, speed=math.inf, seed=1) as fake:
        async with Conversation(fake, NOVA_2_SONIC, on_tool_call=lambda call: {...}) as conv:
            await conv.silence(320)
            await conv.speak(1500)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1)
            result = await conv.close()
        assert result.journal.end == "completed"

Every wait is bounded (``timeout``, default 20 s) so a bug fails the test instead of hanging it,
and streaming silence "until" something happens never sends more than ``max_frames`` frames.

``history`` (messages for ``EventBuilder.history``) is sent after the SYSTEM block, as a client
resuming a conversation on a new stream does (after a recycle or a restart). The reader task
starts before the first event is sent (it waits for the response headers, which the service
sends once input arrives), so no output event can queue up unread while the start block goes
out.

Subclasses may override ``send`` and ``_send_frame`` (both are the only paths by which events
leave), e.g. ``tools.cassette_gen`` runs conversations in lock-step with the server.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fakeserver import FakeNovaSonic
from fakeserver.audio import silence as silence_pcm
from fakeserver.audio import synth_speech
from fakeserver.journal import StreamJournal
from novasonic.builder import EventBuilder
from novasonic.events import (
    AudioOutput,
    CompletionEnd,
    InputEvent,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    PromptStart,
    TextOutput,
    Tool,
    ToolUse,
    UsageEvent,
)
from novasonic.models import NOVA_2_SONIC
from novasonic.rules import OutputTracker, Record, ToolCallRequested
from novasonic.transport import DuplexEvents, client_from_info, open_duplex

__all__ = [
    "DEFAULT_TIMEOUT",
    "FRAME_MS",
    "Block",
    "Conversation",
    "ConversationResult",
    "ToolHandler",
    "shape",
    "check_usage",
]

DEFAULT_TIMEOUT = 20.0
FRAME_MS = 32.0

#: Called for each tool call once its TOOL block ended (``ToolCallRequested``); returns the result
#: (a dict, anything ``encode_tool_result`` takes, or an awaitable of that).
ToolHandler = Callable[[ToolCallRequested], Any]


@dataclass(slots=True)
class Block:
    """One output content block, rebuilt from contentStart … contentEnd."""

    content_id: str
    type: str
    role: str
    stage: str | None
    sample_rate_hertz: int | None
    texts: list[str] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    audio_events: int = 0
    tool_uses: list[ToolUse] = field(default_factory=list)
    stop_reason: str | None = None
    #: Index in ``Conversation.events`` of the contentStart / contentEnd.
    start_index: int = -1
    end_index: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def ended(self) -> bool:
        return self.stop_reason is not None


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def shape(events: Iterable[OutputEvent], *, usage: bool = False, collapse_audio: bool = True) -> list[str]:
    """A compact description of an output sequence for order assertions.

    ``contentStart`` → ``cs:TYPE:ROLE[:STAGE]``, ``contentEnd`` → ``ce:TYPE:STOP``, ``textOutput``
    → ``text:ROLE``, runs of ``audioOutput`` → one ``audio`` (``collapse_audio``),
    ``completionEnd`` → ``completionEnd:STOP``; ``usageEvent`` left out unless ``usage``.
    """
    out: list[str] = []
    for ev in events:
        if isinstance(ev, UsageEvent):
            if usage:
                out.append("usage")
            continue
        if isinstance(ev, OutputContentStart):
            token = f"cs:{_s(ev.type)}:{_s(ev.role)}"
            if ev.generation_stage is not None:
                token += f":{_s(ev.generation_stage)}"
        elif isinstance(ev, OutputContentEnd):
            token = f"ce:{_s(ev.type)}:{_s(ev.stop_reason)}"
        elif isinstance(ev, TextOutput):
            token = f"text:{_s(ev.role)}"
        elif isinstance(ev, AudioOutput):
            token = "audio"
            if collapse_audio and out and out[-1] == "audio":
                continue
        elif isinstance(ev, CompletionEnd):
            token = f"completionEnd:{_s(ev.stop_reason)}"
        else:
            token = ev.EVENT_NAME or getattr(ev, "name", "unknown")
        out.append(token)
    return out


def check_usage(events: Sequence[OutputEvent]) -> dict[str, int]:
    """Assert the usage events are self-consistent; return the final totals.

    Every event: ``totalTokens = totalInputTokens + totalOutputTokens`` and the totals equal the
    detail totals; each running total is the previous one plus the delta (so the sum of the
    deltas equals the last total) and never decreases.
    """
    totals = {"in_speech": 0, "in_text": 0, "out_speech": 0, "out_text": 0}
    n = 0
    for ev in events:
        if not isinstance(ev, UsageEvent):
            continue
        n += 1
        d, t = ev.details.delta, ev.details.total
        totals["in_speech"] += d.input.speech_tokens
        totals["in_text"] += d.input.text_tokens
        totals["out_speech"] += d.output.speech_tokens
        totals["out_text"] += d.output.text_tokens
        assert min(d.input.speech_tokens, d.input.text_tokens, d.output.speech_tokens, d.output.text_tokens) >= 0, ev
        assert (t.input.speech_tokens, t.input.text_tokens, t.output.speech_tokens, t.output.text_tokens) == (
            totals["in_speech"], totals["in_text"], totals["out_speech"], totals["out_text"]
        ), f"usage event {n}: running total is not the sum of the deltas: {ev}"
        assert ev.total_input_tokens == t.input.speech_tokens + t.input.text_tokens, ev
        assert ev.total_output_tokens == t.output.speech_tokens + t.output.text_tokens, ev
        assert ev.total_tokens == ev.total_input_tokens + ev.total_output_tokens, ev
    totals["events"] = n
    totals["input"] = totals["in_speech"] + totals["in_text"]
    totals["output"] = totals["out_speech"] + totals["out_text"]
    totals["total"] = totals["input"] + totals["output"]
    return totals


@dataclass(slots=True)
class ConversationResult:
    events: list[OutputEvent]
    tracker: OutputTracker
    journal: StreamJournal
    records: list[Record]
    blocks: list[Block]
    tool_results: list[tuple[str, Any]]

    def names(self) -> list[str]:
        return [e.EVENT_NAME for e in self.events]

    def shape(self, **kwargs: Any) -> list[str]:
        return shape(self.events, **kwargs)


class Conversation:
    """One stream: stock client → fake server. See the module doc.

    ``builder_kwargs`` go to :class:`EventBuilder` (``output_sample_rate``, ``endpointing``,
    ``name_factory``, ...). ``client``: share an already built client (it is then not closed).
    ``on_tool_call``: answers tool calls from the reader task, right after the TOOL contentEnd,
    with ``builder.tool_result``; ``None`` leaves them unanswered.
    """

    def __init__(
        self,
        fake: FakeNovaSonic,
        model_id: str = NOVA_2_SONIC,
        *,
        system_prompt: str = "You are a helpful assistant.",
        history: Iterable[Any] = (),
        tools: Sequence[Tool] = (),
        on_tool_call: ToolHandler | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        frame_ms: float = FRAME_MS,
        client: Any = None,
        **builder_kwargs: Any,
    ) -> None:
        self.fake = fake
        self.model_id = model_id
        self.system_prompt = system_prompt
        self.history = list(history)
        self.builder = EventBuilder(model_id, tools=tools, **builder_kwargs)
        self.on_tool_call = on_tool_call
        self.timeout = timeout
        self.frame_ms = frame_ms
        self.client: Any = client
        self._own_client = client is None
        self.duplex: DuplexEvents | None = None
        self.tracker = OutputTracker(default_output_sample_rate=int(self.builder.output_sample_rate))
        self.events: list[OutputEvent] = []
        self.records: list[Record] = []
        self.blocks: list[Block] = []
        self.open_blocks: dict[str, Block] = {}
        self.tool_results: list[tuple[str, Any]] = []
        self.frames_sent = 0
        self.audio_ms_sent = 0.0
        self.reader_error: BaseException | None = None
        self.ended = False
        self._reader: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._journal: StreamJournal | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> Conversation:
        """Open the stream, start the reader, send the start block (sessionStart, promptStart,
        SYSTEM, the history if any) and open the AUDIO block."""
        if self.client is None:
            self.client = await asyncio.wait_for(client_from_info(self.fake.info()), self.timeout)
        self.duplex = await asyncio.wait_for(open_duplex(self.client, self.model_id), self.timeout)
        self._reader = asyncio.create_task(self._read(), name=f"conversation-reader-{self.builder.prompt_name}")
        await self.send(*self.builder.start(self.system_prompt, self.history))
        await self.send(*self.builder.audio_start())
        return self

    async def close(self) -> ConversationResult:
        """The documented shutdown: audio contentEnd, promptEnd, sessionEnd, close the input; then
        wait for the end of the output stream and for the server to record how the stream ended."""
        assert self.duplex is not None, "open() first"
        if not self.builder.closed:
            await self.send(*self.builder.close())
        await asyncio.wait_for(self.duplex.close_input(), self.timeout)
        await self.wait_reader()
        journal = await self.wait_journal_end()
        await self._release()
        return self.result(journal)

    async def abort(self) -> None:
        """Tear everything down without the graceful shutdown (used on test failure)."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.duplex is not None:
            try:
                await asyncio.wait_for(self.duplex.close(), 5.0)
            except (Exception, asyncio.CancelledError):
                pass
        await self._release()

    async def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._own_client and self.client is not None:
            try:
                await asyncio.wait_for(self.client.close(), 5.0)
            except Exception:
                pass

    async def __aenter__(self) -> Conversation:
        try:
            return await self.open()
        except BaseException:
            await self.abort()
            raise

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None or not self._closed:
            # A test that did not call close() (or failed) must not leave the stream running.
            await self.abort()

    def result(self, journal: StreamJournal | None = None) -> ConversationResult:
        j = journal or self.journal
        assert j is not None, "the server has no journal for this stream"
        return ConversationResult(self.events, self.tracker, j, self.records, self.blocks, self.tool_results)

    # --- sending -------------------------------------------------------------------------------

    async def send(self, *events: InputEvent) -> None:
        """Send events in order, atomically (no other send of this conversation in between: a
        TEXT or TOOL block is never split by audio frames)."""
        assert self.duplex is not None, "open() first"
        async with self._send_lock:
            for ev in events:
                await asyncio.wait_for(self.duplex.send(ev), self.timeout)

    async def stream_pcm(self, pcm: bytes, *, pace: float | None = None) -> int:
        """Send ``pcm`` as ``frame_ms`` audioInput frames; ``pace``: wall seconds to sleep after each
        frame (None: as fast as possible, yielding to the loop between frames). Returns frames sent."""
        frames = self.builder.audio_frames(pcm, frame_ms=self.frame_ms)
        for frame in frames:
            await self._send_frame(frame)
            await asyncio.sleep(pace or 0)
        return len(frames)

    async def _send_frame(self, frame: InputEvent) -> None:
        await self.send(frame)
        self.frames_sent += 1
        self.audio_ms_sent += frame.pcm_len * 1000.0 / (2 * int(self.builder.input_sample_rate))  # type: ignore[attr-defined]

    async def speak(self, ms: float, *, seed: int = 1, pace: float | None = None) -> int:
        """``ms`` of synthetic speech (``fakeserver.audio.synth_speech``)."""
        return await self.stream_pcm(synth_speech(ms, int(self.builder.input_sample_rate), seed=seed), pace=pace)

    async def silence(self, ms: float, *, pace: float | None = None) -> int:
        return await self.stream_pcm(silence_pcm(ms, int(self.builder.input_sample_rate)), pace=pace)

    async def silence_until(
        self,
        predicate: Callable[[], bool],
        *,
        max_frames: int = 1000,
        pace: float | None = None,
        what: str = "condition",
    ) -> int:
        """Stream silence frames (as a microphone would) until ``predicate()`` holds, at most
        ``max_frames`` frames; then wait (bounded) for output already due. Returns the frames
        sent. Fails (AssertionError) when the condition is not met."""
        frame_pcm = silence_pcm(self.frame_ms, int(self.builder.input_sample_rate))
        sent = 0
        while not predicate() and sent < max_frames:
            self._raise_if_dead()
            await self._send_frame(self.builder.audio(frame_pcm))
            sent += 1
            await asyncio.sleep(pace or 0)
        if not predicate():
            await self.wait_until(predicate, what=f"{what} (after {sent} silence frames)")
        return sent

    async def interactive_text(self, text: str, *, force: bool = False) -> None:
        """Typed USER input while the audio block stays open (contentStart/textInput/contentEnd
        sent together, no audio in between)."""
        await self.send(*self.builder.interactive_text(text, force=force))

    # --- waiting -------------------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float | None = None,
                         what: str = "condition") -> None:
        """Wait (bounded) until ``predicate()`` holds, re-checked after every output event."""
        def ready() -> bool:
            return predicate() or self.ended

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout or self.timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; output so far: {shape(self.events)}") from None
        if not predicate():
            self._raise_if_dead()
            raise AssertionError(f"the output stream ended before {what}; output: {shape(self.events)}")

    async def wait_reader(self) -> None:
        assert self._reader is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), self.timeout)
        except TimeoutError:
            raise AssertionError(f"the output stream did not end; output so far: {shape(self.events)}") from None
        if self.reader_error is not None:
            raise self.reader_error

    async def wait_journal_end(self) -> StreamJournal:
        """The server records ``end`` right after it ends the stream; wait (bounded) for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            j = self.journal
            if j is not None and j.end is not None:
                return j
            if loop.time() > deadline:
                raise AssertionError(f"the server journal did not record the end of the stream: {j and j.summary()}")
            await asyncio.sleep(0.005)

    async def wait_server_caught_up(self) -> StreamJournal:
        """Wait (bounded) until the server journalled every audio frame sent so far."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            j = self.journal
            if j is not None and j.audio_in_frames >= self.frames_sent:
                return j
            if loop.time() > deadline:
                raise AssertionError(f"the server did not receive the {self.frames_sent} frames sent: {j and j.summary()}")
            self._raise_if_dead()
            await asyncio.sleep(0.005)

    def _raise_if_dead(self) -> None:
        if self.reader_error is not None:
            raise AssertionError(f"the output stream failed: {self.reader_error!r}") from self.reader_error

    # --- reading -------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.duplex is not None
        try:
            while (ev := await self.duplex.receive()) is not None:
                self.events.append(ev)
                self._track_block(ev)
                records = self.tracker.feed(ev)
                self.records.extend(records)
                for rec in records:
                    if isinstance(rec, ToolCallRequested) and self.on_tool_call is not None:
                        await self._answer_tool(rec)
                async with self._changed:
                    self._changed.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported through wait_* / close()
            self.reader_error = exc
        finally:
            self.ended = True
            self.records.extend(self.tracker.close())
            async with self._changed:
                self._changed.notify_all()

    async def _answer_tool(self, call: ToolCallRequested) -> None:
        assert self.on_tool_call is not None
        result = self.on_tool_call(call)
        if inspect.isawaitable(result):
            result = await result
        await self.send(*self.builder.tool_result(call.tool_use_id, result))
        self.tool_results.append((call.tool_use_id, result))
        self.records.extend(self.tracker.tool_result_sent(call.tool_use_id))

    def _track_block(self, ev: OutputEvent) -> None:
        index = len(self.events) - 1
        if isinstance(ev, OutputContentStart):
            stage = ev.generation_stage
            block = Block(ev.content_id, _s(ev.type), _s(ev.role), None if stage is None else _s(stage),
                          ev.sample_rate_hertz, start_index=index)
            self.open_blocks[ev.content_id] = block
            self.blocks.append(block)
        elif isinstance(ev, (TextOutput, AudioOutput, ToolUse)):
            block = self.open_blocks.get(ev.content_id)
            if block is None:
                return
            if isinstance(ev, TextOutput):
                block.texts.append(ev.content)
            elif isinstance(ev, AudioOutput):
                block.audio.extend(ev.pcm)
                block.audio_events += 1
            else:
                block.tool_uses.append(ev)
        elif isinstance(ev, OutputContentEnd):
            block = self.open_blocks.pop(ev.content_id, None)
            if block is not None:
                block.stop_reason = _s(ev.stop_reason)
                block.end_index = index

    # --- views ---------------------------------------------------------------------------------

    @property
    def journal(self) -> StreamJournal | None:
        """This stream's server journal (found by the promptName this conversation sent)."""
        if self._journal is None:
            for sj in self.fake.journal:
                for ce in sj.client:
                    if isinstance(ce.event, PromptStart) and ce.event.prompt_name == self.builder.prompt_name:
                        self._journal = sj
                        break
                if self._journal is not None:
                    break
        return self._journal

    def names(self) -> list[str]:
        return [e.EVENT_NAME for e in self.events]

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.EVENT_NAME == name)

    def ended_blocks(self, *, type: str | None = None, role: str | None = None, stage: str | None = None) -> list[Block]:
        return [
            b for b in self.blocks
            if b.ended and (type is None or b.type == type) and (role is None or b.role == role)
            and (stage is None or b.stage == stage)
        ]

    def assistant_texts(self, stage: str) -> list[str]:
        return [b.text for b in self.ended_blocks(type="TEXT", role="ASSISTANT", stage=stage)]

