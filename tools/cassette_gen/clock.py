"""``DrivenClock``: service time that moves with the streamed audio, and otherwise only on demand.

The fake server reads its time from a ``ScaledClock`` (``fakeserver.clock``): journal times,
the stream-age and idle-input limits, and the responder's clock pacing. On a real scaled clock
those times depend on how fast the machine ran the conversation, so two generations of the same
scenario would differ in every ``t``. This clock instead *follows the audio position of the
current stream* (``follow(source)``, where ``source`` is the stream's ``audio_ms``: how much
input audio the server has accepted), as a live microphone's time passes; time without input
passes only when the generator says so (``advance``), e.g. for a muted microphone.

Consequences, all deterministic:

- a microphone frame is journalled at the time its audio starts (the handler records it before
  counting its audio); whatever it causes (answers, the silent-audio limit) happens at the time
  it ends, so ``t`` equals the audio position ``a`` throughout a recording;
- the stream-age and idle limits fire at exact times: the driver never streams past a deadline
  and waits for the stream to end there, so the handler's watchdog (which polls with wall-clock
  waits of ``to_wall(remaining)``) always sees the same time, however late it wakes;
- ``sleep(s)`` returns once the clock reached ``now + s`` (checked on ``wake``/``advance``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

from fakeserver.clock import ScaledClock

__all__ = ["DrivenClock"]


class DrivenClock(ScaledClock):
    """A ``ScaledClock`` driven by the current stream's audio and by :meth:`advance`."""

    def __init__(self, *, wall_speed: float = 1000.0) -> None:
        super().__init__(wall_speed)  # the speed only scales the watchdog's wall-clock polls
        self._base = 0.0
        self._source: Callable[[], float] | None = None
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def unlimited(self) -> bool:
        return False

    def now(self) -> float:
        return self._base + (self._source() / 1000.0 if self._source is not None else 0.0)

    def follow(self, source: Callable[[], float]) -> None:
        """From now on, time also moves with ``source()`` (ms of audio; a new stream's position)."""
        now = self.now()
        self._source = source
        self._base = now - source() / 1000.0

    async def sleep(self, service_seconds: float) -> None:
        if service_seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now() + service_seconds, next(self._order), fut))
        await fut

    async def sleep_until(self, service_time: float) -> None:
        await self.sleep(service_time - self.now())

    def advance(self, seconds: float) -> int:
        """Let ``seconds`` pass without audio; wake the sleepers now due. Returns how many woke."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds})")
        self._base += seconds
        return self.wake()

    def wake(self) -> int:
        """Wake the sleepers whose time has come (call after the audio position moved)."""
        now = self.now()
        woken = 0
        while self._sleepers and self._sleepers[0][0] <= now + 1e-9:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
                woken += 1
        return woken

    def __repr__(self) -> str:
        return f"DrivenClock(now={self.now():.3f})"
