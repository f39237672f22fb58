"""Helpers for driving the STOCK SDK client (``novasonic.transport``) against a ``FakeNovaSonic``.

Every wait has a timeout (a hung client must fail the test, not the CI job); none of them asserts
how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from fakeserver import FakeNovaSonic, StreamJournal
from novasonic.events import InputEvent, OutputEvent
from novasonic.transport import DuplexEvents

from . import factories as f

__all__ = [
    "TIMEOUT",
    "NOVA1",
    "NOVA2",
    "send_all",
    "collect",
    "receive_n",
    "wait_ended",
    "wait_streams",
    "opening",
    "exchange",
]

TIMEOUT = 10.0
NOVA1 = "amazon.nova-sonic-v1:0"
NOVA2 = "amazon.nova-2-sonic-v1:0"


async def send_all(d: DuplexEvents, events: Iterable[InputEvent | bytes]) -> None:
    for ev in events:
        await asyncio.wait_for(d.send(ev), TIMEOUT)


async def collect(d: DuplexEvents, *, limit: int = 10_000) -> tuple[list[OutputEvent], BaseException | None]:
    """Receive until the stream ends (``None``) or the SDK raises; return (events, exception)."""
    got: list[OutputEvent] = []
    try:
        for _ in range(limit):
            ev = await asyncio.wait_for(d.receive(), TIMEOUT)
            if ev is None:
                return got, None
            got.append(ev)
    except TimeoutError:
        raise
    except Exception as exc:  # what the SDK raises is what the test checks
        return got, exc
    raise AssertionError(f"stream did not end after {limit} events")


async def receive_n(d: DuplexEvents, n: int) -> list[OutputEvent]:
    out = []
    for _ in range(n):
        ev = await asyncio.wait_for(d.receive(), TIMEOUT)
        assert ev is not None, f"stream ended after {out}"
        out.append(ev)
    return out


async def wait_ended(fake: FakeNovaSonic, index: int = -1, timeout: float = TIMEOUT) -> StreamJournal:
    """The journal of stream ``index`` once the server has recorded how it ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        streams = fake.journal.streams
        if streams and (j := streams[index]).end is not None:
            return j
        if loop.time() > deadline:
            raise AssertionError(f"stream {index} did not end; journal: {[s.summary() for s in streams]}")
        await asyncio.sleep(0.01)


async def wait_streams(fake: FakeNovaSonic, n: int, timeout: float = TIMEOUT) -> list[StreamJournal]:
    """Wait until ``n`` streams have opened and ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        streams = fake.journal.streams
        if len(streams) >= n and all(s.end is not None for s in streams[:n]):
            return streams
        if loop.time() > deadline:
            raise AssertionError(f"{n} streams did not end; journal: {[s.summary() for s in streams]}")
        await asyncio.sleep(0.01)


def opening(*, model: str = NOVA2, prompt: str = f.PROMPT) -> list[InputEvent]:
    """sessionStart, promptStart, the SYSTEM block: what every session starts with."""
    nested = "MEDIUM" if model != NOVA1 else None
    flat = "MEDIUM" if model == NOVA1 else None
    return [f.session_start(nested=nested, flat=flat), f.prompt_start(prompt), *f.system_block(prompt_name=prompt)]


def exchange(*, model: str = NOVA2, frames: int = 3) -> list[InputEvent]:
    """A whole short session: opening, an AUDIO block with ``frames`` silent frames, the shutdown."""
    return [
        *opening(model=model),
        f.audio_start(),
        *f.audio_frames(count=frames),
        f.content_end("mic"),
        f.prompt_end(),
        f.session_end(),
    ]
