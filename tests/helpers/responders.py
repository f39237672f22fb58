"""Small responders for fake-server tests that do not need the scripted responder's realism.

All follow ``fakeserver.responders.base`` (``open_stream(ctx)`` → ``on_event`` / ``on_input_end``
/ ``aclose``) and answer only through ``ctx.emit``, so everything they send goes through the
handler's faults, journal and framing exactly like a real responder's output.

- :class:`SilentResponder` answers nothing (protocol-rule, auth and limit tests).
- :class:`EchoResponder` sends ``completionStart`` and a USER FINAL text block (``"echo"``) when the
  AUDIO block opens: one quick answer proving the stream is alive.
- :class:`TalkResponder` answers the AUDIO block with a whole assistant turn: ``completionStart``,
  an AUDIO block of ``chunks`` ``audioOutput`` events, ``completionEnd`` (for ``server:audioOutput#n``
  faults and "the answer is cut mid-way" tests). ``on_input_end`` waits for the turn.
- :class:`ToolResponder` asks for a tool when the AUDIO block opens (TOOL block with ``toolUse``
  id ``tool_use_id``), and acknowledges each delivered result with an ASSISTANT text block.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fakeserver.responders.base import StreamContext
from novasonic.events import (
    CompletionEnd,
    CompletionStart,
    ContentStart,
    ContentType,
    InputEvent,
    OutputEvent,
    ToolResult,
)
from novasonic.rules import Fact

from . import factories as f

__all__ = ["SilentResponder", "EchoResponder", "TalkResponder", "ToolResponder", "ECHO_TEXT", "TOOL_USE_ID"]

ECHO_TEXT = "echo"
TOOL_USE_ID = "tooluse-0001"


def _ids(ctx: StreamContext, completion_id: str) -> dict[str, Any]:
    return {"prompt_name": ctx.prompt_name or "", "session_id": ctx.session_id, "completion_id": completion_id}


def _is_audio_start(event: InputEvent) -> bool:
    return isinstance(event, ContentStart) and event.type == ContentType.AUDIO


class _Base:
    def __init__(self, ctx: StreamContext) -> None:
        self.ctx = ctx
        self.events: list[InputEvent] = []

    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None:
        self.events.append(event)

    async def on_input_end(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def emit_all(self, events: Sequence[OutputEvent]) -> bool:
        for ev in events:
            if not await self.ctx.emit(ev):
                return False
        return True


class SilentResponder:
    """Answers nothing; ``streams`` keeps each stream's responder (its ``events``) for assertions."""

    def __init__(self) -> None:
        self.streams: list[_Base] = []

    def open_stream(self, ctx: StreamContext) -> _Base:
        s = _Base(ctx)
        self.streams.append(s)
        return s


class _Echo(_Base):
    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None:
        await super().on_event(event, facts)
        if _is_audio_start(event):
            cid = self.ctx.new_id()
            ids = _ids(self.ctx, cid)
            await self.emit_all(
                [CompletionStart(**ids), *f.out_text_block(self.ctx.new_id(), "USER", "FINAL", ECHO_TEXT, **ids)]
            )


class EchoResponder(SilentResponder):
    def open_stream(self, ctx: StreamContext) -> _Base:
        s = _Echo(ctx)
        self.streams.append(s)
        return s


class _Talk(_Base):
    def __init__(self, ctx: StreamContext, chunks: int, chunk_bytes: int, interval_s: float) -> None:
        super().__init__(ctx)
        self.chunks, self.chunk_bytes, self.interval_s = chunks, chunk_bytes, interval_s
        self.task: asyncio.Task[Any] | None = None

    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None:
        await super().on_event(event, facts)
        if _is_audio_start(event) and self.task is None:
            # ids now: the prompt may have ended by the time the task runs
            self.task = self.ctx.spawn(self._turn(_ids(self.ctx, self.ctx.new_id())), name="talk")

    async def _turn(self, ids: dict[str, Any]) -> None:
        content_id = self.ctx.new_id()
        if not await self.emit_all([CompletionStart(**ids), f.out_audio_start(content_id, **ids)]):
            return
        for _ in range(self.chunks):
            if self.interval_s:
                await self.ctx.sleep(self.interval_s)
            if not await self.ctx.emit(f.out_audio(content_id, self.chunk_bytes, **ids)):
                return
        await self.emit_all([f.out_content_end(content_id, "AUDIO", "END_TURN", **ids), CompletionEnd(**ids)])

    async def on_input_end(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)


class TalkResponder(SilentResponder):
    """One assistant audio turn of ``chunks`` × ``chunk_bytes`` when the AUDIO block opens,
    ``interval_s`` service seconds apart."""

    def __init__(self, chunks: int = 5, chunk_bytes: int = 640, interval_s: float = 0.0) -> None:
        super().__init__()
        self.chunks, self.chunk_bytes, self.interval_s = chunks, chunk_bytes, interval_s

    def open_stream(self, ctx: StreamContext) -> _Base:
        s = _Talk(ctx, self.chunks, self.chunk_bytes, self.interval_s)
        self.streams.append(s)
        return s


class _Tool(_Base):
    def __init__(self, ctx: StreamContext, tool_use_id: str, tool_name: str) -> None:
        super().__init__(ctx)
        self.tool_use_id, self.tool_name = tool_use_id, tool_name
        self.completion_id = ctx.new_id()

    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None:
        await super().on_event(event, facts)
        ids = _ids(self.ctx, self.completion_id)
        if _is_audio_start(event):
            await self.emit_all(
                [
                    CompletionStart(**ids),
                    *f.out_tool_block(self.ctx.new_id(), self.tool_use_id, self.tool_name, {"q": 1}, **ids),
                ]
            )
        elif isinstance(event, ToolResult):
            await self.emit_all(f.out_text_block(self.ctx.new_id(), "ASSISTANT", "FINAL", "got it", **ids))


class ToolResponder(SilentResponder):
    def __init__(self, tool_use_id: str = TOOL_USE_ID, tool_name: str = "getDateTool") -> None:
        super().__init__()
        self.tool_use_id, self.tool_name = tool_use_id, tool_name

    def open_stream(self, ctx: StreamContext) -> _Base:
        s = _Tool(ctx, self.tool_use_id, self.tool_name)
        self.streams.append(s)
        return s
