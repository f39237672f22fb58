"""The scaled clock shared by the service limits, the responders and (later) cassette replay.

Service time runs ``speed`` times faster than wall time: with ``speed=60`` the 8-minute stream
limit fires after 8 wall seconds and a 2-second assistant reply is paced out in 33 ms. Tests stay
fast by compressing time, never by skipping behaviour.

``speed=math.inf`` means "as fast as causality allows": every sleep returns at once (after
yielding to the loop once, so other tasks still interleave in a stable order).
"""

from __future__ import annotations

import asyncio
import math
import time

__all__ = ["ScaledClock"]


class ScaledClock:
    def __init__(self, speed: float = 1.0) -> None:
        if not (speed > 0):
            raise ValueError(f"speed must be > 0 (got {speed!r}); use math.inf for 'as fast as possible'")
        self.speed = float(speed)
        self._t0 = time.monotonic()

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.speed)

    def now(self) -> float:
        """Service seconds since the clock was made (0 forever when speed is infinite)."""
        if self.unlimited:
            return 0.0
        return (time.monotonic() - self._t0) * self.speed

    def to_wall(self, service_seconds: float) -> float:
        """Wall seconds that ``service_seconds`` of service time take."""
        if self.unlimited:
            return 0.0
        return max(0.0, service_seconds) / self.speed

    async def sleep(self, service_seconds: float) -> None:
        await asyncio.sleep(self.to_wall(service_seconds))

    async def sleep_until(self, service_time: float) -> None:
        await self.sleep(service_time - self.now())

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed:g})"
