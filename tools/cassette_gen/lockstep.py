"""Run a conversation in lock-step with the fake server, so the recording is deterministic.

The scripted responder's *output* is already a function of its input (it paces assistant audio
in input-audio time). What a plain run leaves to chance is the **interleaving**: the server's
output pump, the client's reader and the microphone loop are separate tasks, so how many
microphone frames the server had received when it sent an event (the cassette's audio position
``a``), or where a toolResult falls among the audio frames, depends on scheduling. A cassette
shipped in the repo must come out byte-identical on every run, so here every client event is
sent alone and followed by a *sync*:

1. the server accepted and processed it (``GateResponder`` counts the events its wrapped
   responder handled; a closed stream releases the wait);
2. the responder handed everything it generated to the wire (``ScriptedStream.wait_flushed``);
3. the client's reader received every event the server journalled;
4. tool calls the client has seen are answered once their (driven) latency has passed.

A client TEXT or TOOL block (``contentStart``, ``textInput``/``toolResult``, ``contentEnd``)
reaches the responder as a whole at its ``contentEnd`` (``GateStream``): a real client sends the
three back to back, so the answer to a tool result or a typed text follows the whole block.

Time is a ``DrivenClock`` that follows the audio position of the current stream on the server,
as a live microphone's time passes (a frame is journalled at the time its audio starts, what it
causes at the time it ends); time without input passes only when the driver says so
(``pass_time``). Journal times therefore equal the audio position, and limits (stream age, idle
input) fire at exact, repeatable times.

Runs of silence while the server is *quiet* (``ScriptedStream.quiet``: nothing generating, the
VAD outside any utterance) and no tool answer is due cannot change anything on either side, so
they are sent as a batch and synced once at the end: an 8-minute microphone stream then costs a
few seconds instead of a round trip per frame. A batch never crosses a point where the server
could act on its own: it stops at the stream-age deadline and at the frame that completes the
silent-audio limit (the server processes frames in order, so the limit still fires at the same
frame, and the driven clock still gives every frame the same time).

Real parts throughout: the stock SDK client over loopback TLS/HTTP/2 with SigV4 (the inherited
``Conversation``), the fake server's rules, limits, faults and journal.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from fakeserver import FakeNovaSonic
from fakeserver.journal import StreamJournal
from fakeserver.responders import ScriptedResponder
from fakeserver.responders.scripted import ScriptedStream
from novasonic.audio import SILENCE_RMS, frame_rms
from novasonic.events import AudioInput, ContentEnd, ContentStart, ContentType, InputEvent
from novasonic.rules import Fact, ToolCallRequested
from tools.sdk_driver.conversation import Conversation, shape

from .clock import DrivenClock

__all__ = ["GateResponder", "GateStream", "LockstepConversation", "ToolAnswer"]

#: Answers one tool call (a dict, or anything ``encode_tool_result`` accepts; may be awaitable).
ToolAnswer = Callable[[ToolCallRequested], Any]


class _Waiters:
    """Futures released when a predicate becomes true (checked on every ``notify``)."""

    def __init__(self) -> None:
        self._items: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    async def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        if predicate():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        item = (predicate, fut)
        self._items.append(item)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise AssertionError(f"lock-step: timed out waiting for {what}") from None
        finally:
            if item in self._items:
                self._items.remove(item)

    def notify(self) -> None:
        for predicate, fut in list(self._items):
            if not fut.done() and predicate():
                fut.set_result(None)


class GateStream:
    """Wraps one ``ScriptedStream``: counts the events it processed, knows when the stream
    closed, and hands a client TEXT or TOOL block to the responder only once it is complete.

    A real client sends a block's ``contentStart``/``textInput``|``toolResult``/``contentEnd``
    back to back; the service answers a tool result or a typed text once the block is in.
    Delivering the block at its ``contentEnd`` keeps the answer after the whole block in the
    journal (never between ``toolResult`` and its ``contentEnd``), whatever the scheduling.
    """

    def __init__(self, inner: ScriptedStream, gate: GateResponder) -> None:
        self.inner = inner
        self.gate = gate
        self.processed = 0
        self.closed = False
        self._block: str | None = None
        self._held: list[tuple[InputEvent, Sequence[Fact]]] = []

    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None:
        try:
            if isinstance(event, ContentStart) and event.type != ContentType.AUDIO and self._block is None:
                self._block = event.content_name
            if self._block is not None:
                self._held.append((event, facts))
                if isinstance(event, ContentEnd) and event.content_name == self._block:
                    held, self._held, self._block = self._held, [], None
                    for ev, fs in held:
                        await self.inner.on_event(ev, fs)
            else:
                await self.inner.on_event(event, facts)
        finally:
            if self.gate.clock is not None:
                self.gate.clock.wake()
            self.processed += 1
            self.gate.waiters.notify()

    async def on_input_end(self) -> None:
        await self.inner.on_input_end()

    async def aclose(self) -> None:
        self.closed = True
        try:
            await self.inner.aclose()
        finally:
            self.gate.waiters.notify()


class GateResponder:
    """A ``Responder`` around a ``ScriptedResponder`` that lets the driver wait for the server.
    With a ``clock``, each new stream makes the clock follow that stream's audio position."""

    def __init__(self, inner: ScriptedResponder, clock: DrivenClock | None = None) -> None:
        self.inner = inner
        self.clock = clock
        self.streams: dict[int, GateStream] = {}
        self.waiters = _Waiters()

    def open_stream(self, ctx: Any) -> GateStream:
        if self.clock is not None:
            self.clock.follow(lambda: ctx.audio_ms)
        stream = GateStream(self.inner.open_stream(ctx), self)
        self.streams[ctx.stream_index] = stream
        self.waiters.notify()
        return stream

    async def stream(self, index: int, timeout: float) -> GateStream:
        await self.waiters.wait(lambda: index in self.streams, timeout, f"the server to open stream {index}")
        return self.streams[index]


class LockstepConversation(Conversation):
    """A ``Conversation`` that syncs with the server after every event (see the module doc).

    ``stream_index``: the server-wide index this stream will get (streams are opened one after
    the other). ``answer_tool``: answers each tool call ``tool_latency_ms`` of driven time after
    the client saw its TOOL ``contentEnd`` (the agent running the function); ``None`` leaves
    calls unanswered.
    """

    def __init__(
        self,
        fake: FakeNovaSonic,
        gate: GateResponder,
        clock: DrivenClock,
        stream_index: int,
        model_id: str,
        *,
        answer_tool: ToolAnswer | None = None,
        tool_latency_ms: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(fake, model_id, on_tool_call=None, **kwargs)
        self.gate = gate
        self.clock = clock
        self.stream_index = stream_index
        self.answer_tool = answer_tool
        self.tool_latency_ms = tool_latency_ms
        self.sent = 0
        self._seen_calls: dict[str, tuple[float, ToolCallRequested]] = {}
        self._answered: set[str] = set()
        self._gate_stream: GateStream | None = None
        self._syncing = False
        #: Driven time when the stream opened (the server's stream age counts from here).
        self.t_open: float | None = None
        #: Silent audio sent since the last frame with sound (the server's 531 limit counts it).
        self.silent_run_ms = 0.0
        #: Largest batch of silent frames sent without a sync.
        self.max_batch = 512

    async def open(self) -> LockstepConversation:
        self.t_open = self.clock.now()
        await super().open()
        return self

    # --- the two paths by which events leave ----------------------------------------------------

    async def send(self, *events: InputEvent) -> None:
        assert self.duplex is not None, "open() first"
        for ev in events:
            if self.server_closed:
                raise AssertionError(f"lock-step: the server ended the stream; cannot send {ev.EVENT_NAME}")
            await asyncio.wait_for(self.duplex.send(ev), self.timeout)
            self.sent += 1
            await self.sync()

    async def _send_frame(self, frame: InputEvent) -> None:
        self._count_silence(frame)
        await super()._send_frame(frame)

    def _count_silence(self, frame: InputEvent) -> None:
        assert isinstance(frame, AudioInput)
        if frame_rms(frame.pcm) < SILENCE_RMS:
            self.silent_run_ms += self._frame_ms(frame)
        else:
            self.silent_run_ms = 0.0

    def _frame_ms(self, frame: AudioInput) -> float:
        return frame.pcm_len * 1000.0 / (2 * int(self.builder.input_sample_rate))

    # --- batches of silence -------------------------------------------------------------------------

    async def stream_pcm(self, pcm: bytes, *, pace: float | None = None) -> int:
        """Send ``pcm`` as frames of ``frame_ms``, the last one padded with silence: a microphone
        sends frames of one size, whatever the speech inside them."""
        frame_bytes = 2 * int(int(self.builder.input_sample_rate) * self.frame_ms / 1000)
        pcm = bytes(pcm) + bytes(-len(pcm) % frame_bytes)
        frames = self.builder.audio_frames(pcm, frame_ms=self.frame_ms)
        i = 0
        while i < len(frames):
            n = self._batchable(frames[i:])
            if n > 1:
                await self._send_batch(frames[i : i + n])
                i += n
            else:
                await self._send_frame(frames[i])
                i += 1
        return len(frames)

    async def silence_until(self, predicate: Callable[[], bool], *, max_frames: int = 1000,
                            pace: float | None = None, what: str = "condition") -> int:
        frame = self.builder.audio(bytes(2 * int(int(self.builder.input_sample_rate) * self.frame_ms / 1000)))
        sent = 0
        while not predicate() and sent < max_frames:
            if self.reader_error is not None or self.server_closed:
                break
            n = self._batchable([frame] * min(self.max_batch, max_frames - sent))
            if n > 1:
                await self._send_batch([frame] * n)
                sent += n
            else:
                await self._send_frame(frame)
                sent += 1
        if not predicate():
            await self.wait_until(predicate, what=f"{what} (after {sent} silence frames)")
        return sent

    def _batchable(self, frames: Sequence[InputEvent]) -> int:
        """How many of ``frames`` (from the first) may go out as one batch (see the module doc)."""
        gs = self._gate_stream
        if gs is None or len(frames) < 2 or not gs.inner.quiet or self._tool_answer_pending() or self.server_closed:
            return 0
        limits = self.fake.config.limits
        n = 0
        t = self.clock.now()
        run = self.silent_run_ms
        deadline = (self.t_open or 0.0) + limits.max_stream_age_s
        for frame in frames[: self.max_batch]:
            assert isinstance(frame, AudioInput)
            if frame_rms(frame.pcm) >= SILENCE_RMS:
                break
            ms = self._frame_ms(frame)
            if t + ms / 1000.0 > deadline + 1e-9:
                break  # the server's watchdog may act at the deadline: stop there
            n += 1
            t += ms / 1000.0
            run += ms
            if run >= limits.silent_audio_timeout_s * 1000.0:
                break  # this frame completes the silent-audio limit: the server ends the stream
        return n

    def _tool_answer_pending(self) -> bool:
        if self.answer_tool is None:
            return False
        requested = {r.tool_use_id for r in self.records if isinstance(r, ToolCallRequested)}
        return bool(requested - self._answered)

    async def _send_batch(self, frames: Sequence[InputEvent]) -> None:
        assert self.duplex is not None
        for frame in frames:
            assert isinstance(frame, AudioInput)
            await asyncio.wait_for(self.duplex.send(frame), self.timeout)
            self.sent += 1
            self.frames_sent += 1
            ms = self._frame_ms(frame)
            self.audio_ms_sent += ms
            self.silent_run_ms += ms
        await self.sync()

    # --- sync ------------------------------------------------------------------------------------

    @property
    def server_journal(self) -> StreamJournal | None:
        for sj in self.fake.journal:
            if sj.index == self.stream_index:
                return sj
        return None

    @property
    def server_closed(self) -> bool:
        sj = self.server_journal
        return sj is not None and sj.end is not None

    async def sync(self) -> None:
        """Wait until the server processed everything sent and the client received everything
        the server sent; then answer the tool calls that are due."""
        if self._gate_stream is None:
            self._gate_stream = await self.gate.stream(self.stream_index, self.timeout)
        gs = self._gate_stream
        sent = self.sent
        await self.gate.waiters.wait(lambda: gs.processed >= sent or gs.closed or self.server_closed,
                                     self.timeout, f"the server to process client event {sent}")
        await asyncio.wait_for(gs.inner.wait_flushed(), self.timeout)
        await self._client_caught_up()
        if not self._syncing:
            self._syncing = True
            try:
                await self._answer_due_tools()
            finally:
                self._syncing = False

    async def _client_caught_up(self) -> None:
        sj = self.server_journal
        assert sj is not None

        def caught_up() -> bool:
            return self.ended or len(self.events) >= sum(1 for f in sj.server if f.kind == "event")

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(caught_up), self.timeout)
        except TimeoutError:
            raise AssertionError(
                f"lock-step: the client did not receive what the server sent; client has {shape(self.events)}"
            ) from None

    async def _answer_due_tools(self) -> None:
        if self.answer_tool is None:
            return
        now = self.clock.now()
        for rec in self.records:
            if isinstance(rec, ToolCallRequested) and rec.tool_use_id not in self._seen_calls:
                self._seen_calls[rec.tool_use_id] = (now, rec)
        for tool_use_id, (seen_at, call) in list(self._seen_calls.items()):
            if tool_use_id in self._answered or self.server_closed:
                continue
            if now + 1e-9 < seen_at + self.tool_latency_ms / 1000.0:
                continue
            self._answered.add(tool_use_id)
            result = self.answer_tool(call)
            if inspect.isawaitable(result):
                result = await result
            await self.send(*self.builder.tool_result(tool_use_id, result))
            self.tool_results.append((tool_use_id, result))
            self.records.extend(self.tracker.tool_result_sent(tool_use_id))

    # --- time without input ------------------------------------------------------------------------

    async def pass_time(self, seconds: float) -> None:
        """Let ``seconds`` of driven time pass without sending anything (a muted microphone)."""
        self.clock.advance(seconds)
        await self.sync()

    async def wait_server_end(self) -> StreamJournal:
        """Wait (bounded) until the server ended this stream (a limit or a fault)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not self.server_closed:
            if loop.time() > deadline:
                raise AssertionError(f"lock-step: the server did not end stream {self.stream_index}")
            await asyncio.sleep(0.002)
        sj = self.server_journal
        assert sj is not None
        return sj

    async def finish(self) -> StreamJournal:
        """End the stream as a client would: the documented shutdown when the stream is still
        open; when the server ended it (an exception), just tear the old stream down, as a client
        does before it restarts (nothing sent after the exception reaches the service)."""
        if not self.server_closed:
            await self.close()
        else:
            await self.wait_reader_quietly()
            await self.abort()
        sj = self.server_journal
        assert sj is not None and sj.end is not None
        return sj

    async def wait_reader_quietly(self) -> None:
        """Wait for the reader to stop (it ends with the server's exception, which is expected)."""
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), self.timeout)
            except TimeoutError:
                raise AssertionError("lock-step: the output stream did not end after the server closed it") from None
