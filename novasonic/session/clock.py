"""The session's clock: every timer of a session (recycle, backoff, health, credential expiry)
reads this, so tests can run them on compressed or manual time.

``Clock`` is a protocol: ``monotonic()`` (seconds, only differences matter), ``sleep(seconds)``
and ``utcnow()`` (an aware UTC datetime, compared with credential expiry times).
``SystemClock`` is wall time. ``ManualClock`` only moves when told (``advance``), for unit
tests of timers.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "ManualClock"]


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def utcnow(self) -> datetime: ...


class SystemClock:
    """Wall time (``time.monotonic``, ``asyncio.sleep``, ``datetime.now(UTC)``)."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """Time that moves only through ``advance(seconds)``; sleepers wake when their time comes."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = 0.0
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._now

    def utcnow(self) -> datetime:
        return self._start + timedelta(seconds=self._now)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, fut))
        try:
            await fut
        finally:
            self._sleepers = [(t, f) for t, f in self._sleepers if f is not fut]

    async def advance(self, seconds: float) -> None:
        """Move time forward and let every sleeper that is due run."""
        self._now += seconds
        for due, fut in list(self._sleepers):
            if due <= self._now and not fut.done():
                fut.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)

    @property
    def sleepers(self) -> int:
        return len(self._sleepers)
