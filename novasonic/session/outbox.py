"""The session's outbox: user input waiting for a stream's writer.

Items (``AudioItem``, ``TextItem``, ``ToolResultItem``) are queued in order. Exactly one stream
at a time is the *consumer*; only its writer takes items, one at a time, and sends each item
whole (a TEXT or TOOL block is one item), so nothing can interleave a block. Between streams
nobody consumes and items wait (audio bounded by ``max_audio_bytes``, oldest dropped).

Text and tool-result items carry a future answered when the item was sent (or failed), so
``send_text``/``send_tool_result`` return only once their events are on the wire. The outbox is
fed from sync code (``push_audio``), so waiting uses plain futures, not a Condition.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AudioItem", "TextItem", "ToolResultItem", "Item", "Outbox"]


@dataclass(eq=False, slots=True)
class AudioItem:
    pcm: bytes


@dataclass(eq=False, slots=True)
class _Answered:
    future: asyncio.Future[None] | None = field(default=None, kw_only=True)

    def resolve(self) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_exception(exc)

    @property
    def cancelled(self) -> bool:
        return self.future is not None and self.future.cancelled()


@dataclass(eq=False, slots=True)
class TextItem(_Answered):
    text: str
    #: "user" (send_text) or "resent" (unanswered user input sent again to a new stream).
    origin: str = "user"


@dataclass(eq=False, slots=True)
class ToolResultItem(_Answered):
    tool_use_id: str
    result: Any


Item = AudioItem | TextItem | ToolResultItem


class Outbox:
    def __init__(self, *, max_audio_bytes: int) -> None:
        self.max_audio_bytes = max_audio_bytes
        self._items: deque[Item] = deque()
        self._audio_bytes = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.consumer: object | None = None
        self.dropped_audio_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def audio_bytes(self) -> int:
        return self._audio_bytes

    def put(self, item: Item) -> None:
        self._items.append(item)
        if isinstance(item, AudioItem):
            self._audio_bytes += len(item.pcm)
            self._trim_audio()
        self.notify()

    def put_front(self, item: Item) -> None:
        """Give back an item a writer took but could not finish (its stream died)."""
        self._items.appendleft(item)
        if isinstance(item, AudioItem):
            self._audio_bytes += len(item.pcm)
        self.notify()

    def discard(self, item: Item) -> None:
        """Remove ``item`` if it is still waiting."""
        try:
            self._items.remove(item)
        except ValueError:
            return
        if isinstance(item, AudioItem):
            self._audio_bytes -= len(item.pcm)

    def take(self) -> Item | None:
        while self._items:
            item = self._items.popleft()
            if isinstance(item, AudioItem):
                self._audio_bytes -= len(item.pcm)
            elif item.cancelled:
                continue  # the caller gave up before it was sent: do not send it
            return item
        return None

    def has_control_items(self) -> bool:
        return any(not isinstance(i, AudioItem) for i in self._items)

    def fail_all(self, exc: BaseException) -> None:
        """Answer every waiting call with ``exc`` and drop the audio."""
        while self._items:
            item = self._items.popleft()
            if not isinstance(item, AudioItem):
                item.fail(exc)
        self._audio_bytes = 0
        self.notify()

    def _trim_audio(self) -> None:
        if self._audio_bytes <= self.max_audio_bytes:
            return
        kept: deque[Item] = deque()
        for item in self._items:
            if isinstance(item, AudioItem) and self._audio_bytes > self.max_audio_bytes:
                self._audio_bytes -= len(item.pcm)
                self.dropped_audio_bytes += len(item.pcm)
                continue
            kept.append(item)
        self._items = kept

    # --- waiting -------------------------------------------------------------------------------

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def changed(self) -> None:
        """Return at the next ``put``/``notify``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
