"""``SonicStream``: one ``InvokeModelWithBidirectionalStream`` of a session — its client, its
``EventBuilder`` and ``InputMachine``, one writer task and one reader task.

Writer: sends the start block (sessionStart … history, the AUDIO contentStart), waits for the
service's response, then takes items from the session ``Outbox`` one at a time while this
stream is the outbox's consumer. Each item becomes its events (one ``audioInput``, a whole
interactive-text block, a whole tool-result block), is checked with the stream's
``InputMachine`` (on a copy for multi-event blocks, so a refused block leaves the machine
usable) and sent; the item's caller is answered. On ``close()`` it sends the close block (audio
``contentEnd``, ``promptEnd``, ``sessionEnd``) and closes the input; it takes nothing after that.

Reader: waits for the response (HTTP errors surface here), then hands every typed output event
to the session, after telling the machine about ``toolUse`` ids.

Failure (an exception from the service, bad bytes, a send that fails or times out, the output
ending while the stream was not closing) is reported once through ``on_failure``; the session
decides what to do. ``abort()`` cancels both tasks and waits for them (so a restarted session
never has two writers), gives back an item that was not completely sent, and releases the
client. Sends are bounded by ``send_timeout`` (after an RST_STREAM, sends hang, protocol.md §4.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..builder import EventBuilder
from ..events import InputEvent, OutputEvent, ToolUse
from ..rules import InputMachine
from ..transport import DuplexEvents, open_duplex
from .clock import Clock
from .errors import StreamBroken, describe
from .outbox import AudioItem, Item, Outbox, TextItem, ToolResultItem

__all__ = ["SonicStream"]

log = logging.getLogger(__name__)

#: ``(stream, item) -> text | None``: text carrying a tool result whose call came on an earlier
#: stream (None: not such a result); may raise ``ToolResultUndeliverable``.
#: awscrt's task that feeds the HTTP/2 request body (one per stream).
_CRT_BODY_WRITER = "_set_request_body_generator"


def _consume_result(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished SDK task's exception. awscrt's request-body task fails with
    ``AWS_ERROR_HTTP_STREAM_HAS_COMPLETED`` whenever the service ends a stream before the client
    closed its input (every in-stream error), and nobody awaits that task: asyncio would log
    "Task exception was never retrieved" for every restart."""
    if not task.cancelled():
        task.exception()


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _bounded(coro: Any, timeout: float, what: str) -> None:
    """Run ``coro`` in its own task and wait at most ``timeout`` for it, without ever cancelling
    the caller (``asyncio.wait_for`` would, and an SDK call that swallows the cancellation would
    then hang the caller forever). A task still running then is cancelled and given a moment."""
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=0.5)
            if not done:
                log.warning("%s did not finish; leaving it", what)
                return
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s failed: %s", what, describe(task.exception()))


ForeignToolResult = Callable[["SonicStream", ToolResultItem], "str | None"]


class SonicStream:
    def __init__(
        self,
        *,
        index: int,
        reason: str,
        client: Any,
        model_id: str,
        builder: EventBuilder,
        machine: InputMachine,
        start_events: Sequence[InputEvent],
        outbox: Outbox,
        clock: Clock,
        send_timeout: float,
        on_output: Callable[[SonicStream, OutputEvent], None],
        on_failure: Callable[[SonicStream, BaseException], None],
        on_sent: Callable[[SonicStream, Item, bool], None],
        on_refused: Callable[[SonicStream, Item, BaseException], None],
        foreign_tool_result: ForeignToolResult,
    ) -> None:
        self.index = index
        self.reason = reason
        self.client = client
        self.model_id = model_id
        self.builder = builder
        self.machine = machine
        self.start_events = list(start_events)
        self.outbox = outbox
        self.clock = clock
        self.send_timeout = send_timeout
        self._on_output = on_output
        self._on_failure = on_failure
        self._on_sent = on_sent
        self._on_refused = on_refused
        self._foreign_tool_result = foreign_tool_result

        self.duplex: DuplexEvents | None = None
        self.opened_at = clock.monotonic()
        self.credentials_expire_at: float | None = None
        self.tool_ids: set[str] = set()
        self.sent: list[str] = []  # names of the events sent, in order
        self.current: Item | None = None
        self.error: BaseException | None = None
        self.closing = False
        self.session_end_sent = False
        self.input_closed = False
        self._transport_tasks: list[asyncio.Task[Any]] = []
        self._tasks_before: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.output_ended = False
        self._drain = False
        self._abandoned = False
        self._ready = asyncio.Event()
        self._start_sent = asyncio.Event()
        self._progress = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SonicStream(index={self.index}, prompt={self.builder.prompt_name!r}, reason={self.reason!r})"

    @property
    def prompt_name(self) -> str:
        return self.builder.prompt_name

    @property
    def failed(self) -> bool:
        return self.error is not None

    # --- lifecycle ----------------------------------------------------------------------------

    async def open(self, timeout: float) -> None:
        """Start the request and the two tasks (returns before the service answers)."""
        self.opened_at = self.clock.monotonic()
        self._tasks_before = weakref.WeakSet(asyncio.all_tasks())
        self.duplex = await asyncio.wait_for(open_duplex(self.client, self.model_id), timeout)
        self._find_transport_tasks()
        self._reader = asyncio.create_task(self._read(), name=f"novasonic-reader-{self.index}")
        self._writer = asyncio.create_task(self._write(), name=f"novasonic-writer-{self.index}")

    async def wait_started(self, timeout: float) -> None:
        """Return once the start block is sent and the service answered; raise the failure."""
        async with asyncio.timeout(timeout):
            while True:
                if self.error is not None:
                    raise self.error
                if self._ready.is_set() and self._start_sent.is_set():
                    return
                self._progress.clear()
                await self._progress.wait()

    def request_close(self, *, drain: bool) -> None:
        """Stop taking input (``drain``: after the outbox is empty) and send the close block."""
        self.closing = True
        self._drain = self._drain or drain
        self.outbox.notify()

    async def close(self, *, drain: bool, write_timeout: float, read_timeout: float) -> None:
        """Graceful end: close block, input closed, output read to its end (each bounded), then
        ``abort()`` releases whatever is left."""
        self.request_close(drain=drain)
        try:
            if self._writer is not None:
                await asyncio.wait_for(asyncio.shield(self._writer), write_timeout)
            if self._reader is not None and self.session_end_sent:
                await asyncio.wait_for(asyncio.shield(self._reader), read_timeout)
        except TimeoutError:
            log.debug("stream %d did not end in time; aborting it", self.index)
        except Exception:  # noqa: BLE001 - the tasks record their own errors
            pass
        await self.abort()

    async def abort(self) -> None:
        """Cancel writer and reader, wait for both, give back an unfinished item, release the
        stream and the client. Idempotent."""
        self._abandoned = True
        self._find_transport_tasks()
        tasks = [t for t in (self._writer, self._reader) if t is not None]
        for t in tasks:
            if not t.done():
                t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        item, self.current = self.current, None
        if item is not None and not isinstance(item, AudioItem) and not item.cancelled and not (
            item.future is not None and item.future.done()
        ):
            self.outbox.put_front(item)
        if self.duplex is not None:
            duplex, self.duplex = self.duplex, None
            await _bounded(self._close_transport(duplex), 2.0, f"closing stream {self.index}")
        if self.client is not None:
            client, self.client = self.client, None
            await _bounded(client.close(), 2.0, f"closing the client of stream {self.index}")
        pending = [t for t in self._transport_tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)
            for t in pending:
                if not t.done():
                    await _bounded(_cancel(t), 1.0, "stopping the SDK's request-body task")
        self._transport_tasks = []

    def _find_transport_tasks(self) -> None:
        """awscrt's request-body task of this stream: created by the SDK while the request
        starts (after ``open`` returned, in the SDK's own task), found among the tasks that
        appeared since. Another session opening at the same moment could contribute its own
        such task; all this does is retrieve a finished task's exception, harmless for it."""
        for t in asyncio.all_tasks():
            if t in self._tasks_before or t in self._transport_tasks:
                continue
            if getattr(t.get_coro(), "__qualname__", "").endswith(_CRT_BODY_WRITER):
                self._transport_tasks.append(t)
                t.add_done_callback(_consume_result)

    async def _close_transport(self, duplex: DuplexEvents) -> None:
        """Release the SDK stream without ever waiting on a peer that is gone.

        smithy-core's ``DuplexEventStream.close()`` flushes the input buffer first, which waits
        forever once the service reset the stream (nobody consumes it any more; protocol.md §4.5:
        after an RST_STREAM sends and close hang), and it awaits the response when there is none.
        So: when the input was not closed cleanly, close the input buffer *without* flushing
        (the SDK's own ``close(flush=False)``), then close the output stream if it exists.
        """
        sdk_stream = duplex.stream
        if not self.input_closed:
            provider = getattr(getattr(sdk_stream, "input_stream", None), "_writer", None)
            close = getattr(provider, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close(flush=False)
        output = getattr(sdk_stream, "output_stream", None)
        if output is not None:
            with contextlib.suppress(Exception):
                await output.close()

    # --- failure --------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self.error is not None:
            return
        self.error = exc
        self._progress.set()
        self.outbox.notify()
        if self._abandoned or self.closing:
            log.debug("stream %d: error while closing: %s", self.index, describe(exc))
            return
        self._on_failure(self, exc)

    # --- writer ---------------------------------------------------------------------------------

    async def _send(self, event: InputEvent) -> None:
        assert self.duplex is not None
        try:
            await asyncio.wait_for(self.duplex.send(event), self.send_timeout)
        except TimeoutError:
            raise StreamBroken(f"sending {event.EVENT_NAME} timed out after {self.send_timeout:g} s") from None
        self.sent.append(event.EVENT_NAME)

    async def _write(self) -> None:
        try:
            for event in self.start_events:
                await self._send(event)
            self._start_sent.set()
            self._progress.set()
            while not self._ready.is_set():
                if self.error is not None:
                    return
                self._progress.clear()
                await self._progress.wait()
            while (item := await self._next_item()) is not None:
                self.current = item
                try:
                    events, as_tool_block = self._events_for(item)
                except Exception as exc:  # noqa: BLE001 - refused input goes back to its caller
                    self.current = None
                    if isinstance(item, AudioItem):
                        raise
                    item.fail(exc)
                    self._on_refused(self, item, exc)
                    continue
                for event in events:
                    await self._send(event)
                self.current = None
                if not isinstance(item, AudioItem):
                    self._on_sent(self, item, as_tool_block)
                    item.resolve()
            if self.error is not None:
                return
            for event in self.builder.close():
                self.machine.feed(event)
                await self._send(event)
            self.session_end_sent = True
            assert self.duplex is not None
            try:
                await asyncio.wait_for(self.duplex.close_input(), self.send_timeout)
            except TimeoutError:
                raise StreamBroken("closing the input stream timed out") from None
            self.input_closed = True
        except asyncio.CancelledError:
            raise
        except StreamBroken as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the session
            broken = StreamBroken(f"sending failed: {describe(exc)}")
            broken.__cause__ = exc
            self._fail(broken)

    async def _next_item(self) -> Item | None:
        while True:
            if self.error is not None:
                return None
            mine = self.outbox.consumer is self
            if mine and (not self.closing or self._drain):
                item = self.outbox.take()
                if item is not None:
                    return item
            if self.closing:
                return None
            await self.outbox.changed()

    def _events_for(self, item: Item) -> tuple[list[InputEvent], bool]:
        """The events for ``item``, already accepted by the machine."""
        as_tool_block = False
        if isinstance(item, AudioItem):
            events: list[InputEvent] = [self.builder.audio(item.pcm)]
        elif isinstance(item, TextItem):
            events = self.builder.interactive_text(item.text)
        else:
            text = None if item.tool_use_id in self.tool_ids else self._foreign_tool_result(self, item)
            if text is None:
                events = self.builder.tool_result(item.tool_use_id, item.result)
                as_tool_block = True
            else:
                events = self.builder.interactive_text(text)
        self._accept(events)
        return events, as_tool_block

    def _accept(self, events: list[InputEvent]) -> None:
        if len(events) == 1:
            violation = self.machine.check(events[0])
            if violation is not None:
                raise violation
            self.machine.feed(events[0])
            return
        trial = copy.deepcopy(self.machine)
        for event in events:
            trial.feed(event)  # raises the violation; the real machine is untouched
        for event in events:
            self.machine.feed(event)

    # --- reader ---------------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self.duplex is not None
        try:
            await self.duplex.await_output()
            self._find_transport_tasks()
            self._ready.set()
            self._progress.set()
            while (event := await self.duplex.receive()) is not None:
                self.machine.note_output(event)
                if isinstance(event, ToolUse):
                    self.tool_ids.add(event.tool_use_id)
                self._on_output(self, event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the session
            self._fail(exc)
            return
        self.output_ended = True
        if not self.session_end_sent:
            self._fail(StreamBroken("the service ended the output stream while the session was using it"))
