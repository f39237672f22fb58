"""Drive a ``novasonic.session.NovaSonicSession`` against a running ``FakeNovaSonic`` (real parts:
the session's stock SDK client on CRT over loopback TLS + HTTP/2).

::

    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async with SessionDriver(fake, model_id=NOVA_2_SONIC) as d:
            await d.silence(320)
            await d.speak(1500)
            await d.silence_until(lambda: d.count(TurnEnded) >= 1)
        assert d.session.state is SessionState.CLOSED

The driver records every session event (``d.events``) and pushes microphone-like audio
(``speak``/``silence``, any rate and channel count). Every wait is bounded and fails with the
events seen so far.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from fakeserver import FakeNovaSonic
from fakeserver.audio import silence as silence_pcm
from fakeserver.audio import synth_speech
from novasonic.session import NovaSonicSession, SessionOptions, StaticCredentials
from novasonic.session import events as E

__all__ = ["SessionDriver", "options_for", "FRAME_MS", "to_stereo"]

FRAME_MS = 32.0
DEFAULT_TIMEOUT = 20.0
#: Pushing faster than the stream sends would only fill (and trim) the session's audio buffer;
#: the driver waits while more than this is buffered, like a real-time microphone would.
MAX_BACKLOG_MS = 256.0


def options_for(fake: FakeNovaSonic, **kw: Any) -> SessionOptions:
    """Session options pointing at ``fake`` (endpoint, CA, region, published credentials)."""
    kw.setdefault("credentials", StaticCredentials(fake.access_key_id, fake.secret_access_key, fake.session_token))
    return SessionOptions(endpoint=fake.endpoint, ca_file=fake.ca_file, region=fake.region, **kw)


def to_stereo(pcm: bytes) -> bytes:
    mono = np.frombuffer(pcm, dtype="<i2")
    return np.repeat(mono, 2).astype("<i2").tobytes()


class SessionDriver:
    def __init__(self, fake: FakeNovaSonic, *, clock: Any = None, history: Any = (), timeout: float = DEFAULT_TIMEOUT,
                 options: SessionOptions | None = None, **option_kw: Any) -> None:
        self.fake = fake
        self.session = NovaSonicSession(options or options_for(fake, **option_kw), clock=clock)
        self.history = history
        self.timeout = timeout
        self.events: list[E.SessionEvent] = []
        self._changed = asyncio.Event()
        self.session.on(self._record)
        self.audio_ms_pushed = 0.0

    def _record(self, ev: E.SessionEvent) -> None:
        self.events.append(ev)
        self._changed.set()

    async def __aenter__(self) -> SessionDriver:
        await asyncio.wait_for(self.session.start(history=self.history), self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.wait_for(self.session.aclose(), self.timeout)

    # --- views ---------------------------------------------------------------------------------

    def of[T](self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    def count(self, kind: type) -> int:
        return sum(1 for e in self.events if isinstance(e, kind))

    def summary(self) -> list[str]:
        out = []
        for e in self.events:
            if isinstance(e, (E.ServiceEvent, E.AudioChunk, E.Usage)):
                continue
            out.append(f"{type(e).__name__}@{e.stream_index}")
        return out

    # --- audio ---------------------------------------------------------------------------------

    async def push(self, pcm: bytes, *, rate: int = 16000, channels: int = 1, chunk_ms: float = FRAME_MS,
                   pace: float = 0.0) -> None:
        """Push ``pcm`` in ``chunk_ms`` pieces as a microphone would, yielding between pieces."""
        step = int(rate * chunk_ms / 1000) * 2 * channels
        for i in range(0, len(pcm), step):
            self.session.push_audio(pcm[i:i + step], sample_rate=rate, num_channels=channels)
            self.audio_ms_pushed += len(pcm[i:i + step]) / (2 * channels) / rate * 1000
            await self._yield(pace)

    async def speak(self, ms: float, *, seed: int = 1, rate: int = 16000, channels: int = 1, pace: float = 0.0) -> None:
        pcm = synth_speech(ms, rate, seed=seed)
        await self.push(to_stereo(pcm) if channels == 2 else pcm, rate=rate, channels=channels, pace=pace)

    async def silence(self, ms: float, *, rate: int = 16000, pace: float = 0.0) -> None:
        await self.push(silence_pcm(ms, rate), rate=rate, pace=pace)

    async def silence_until(self, predicate: Callable[[], bool], *, what: str = "condition", max_ms: float = 60_000,
                            pace: float = 0.0, chunk_ms: float = FRAME_MS) -> None:
        """Stream silence (a quiet microphone) until ``predicate()`` holds (bounded in audio and
        in wall time)."""
        frame = silence_pcm(chunk_ms, 16000)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        sent = 0.0
        while not predicate():
            if sent >= max_ms or loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what} after {sent:.0f} ms of silence; "
                                     f"events: {self.summary()}")
            if self.session.closed:
                raise AssertionError(f"the session closed before {what}: {self.session.error!r}; {self.summary()}")
            self.session.push_audio(frame)
            sent += chunk_ms
            self.audio_ms_pushed += chunk_ms
            await self._yield(pace)

    async def _yield(self, pace: float) -> None:
        await asyncio.sleep(pace)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while self.session.buffered_audio_ms > MAX_BACKLOG_MS and not self.session.closed:
            if loop.time() > deadline:
                raise AssertionError(f"the session sent no audio for {self.timeout} s; events: {self.summary()}")
            await asyncio.sleep(0.001)

    async def wait_for(self, predicate: Callable[[], bool], *, what: str = "condition",
                       timeout: float | None = None) -> None:
        """Wait (bounded) without pushing audio; re-checked on every event and every 5 ms."""
        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.005)

        try:
            await asyncio.wait_for(loop(), timeout or self.timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; events: {self.summary()}") from None
