"""An in-memory ``StreamContext`` for responder tests (no network, no handler).

``FakeContext`` feeds input events through the real rules (``InputMachine``) and hands the facts
to a responder, records what the responder emits, and gives deterministic ids (``id-0001``, ...).
Audio time is the input audio the test fed (``machine.audio_ms_received``).

::

    ctx = FakeContext(NOVA_2_SONIC)
    stream = ScriptedResponder(script).open_stream(ctx)
    await ctx.send_all(stream, opening(ctx))
    await ctx.send_all(stream, speech_frames(1920) + silence_frames(800))
    await stream.wait_flushed()
    names(ctx.emitted)
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

from fakeserver.audio import silence, synth_speech
from fakeserver.clock import ScaledClock
from novasonic.events import AudioInput, InputEvent, OutputEvent
from novasonic.models import NOVA_2_SONIC, model_info
from novasonic.rules import Fact, InputMachine, OutputTracker, Record

from . import factories as f

__all__ = [
    "FakeContext",
    "opening",
    "speech_frames",
    "silence_frames",
    "pcm_frames",
    "names",
    "track",
]


class FakeContext:
    """A ``StreamContext`` whose audio time is advanced by the events the test feeds."""

    def __init__(self, model_id: str = NOVA_2_SONIC, *, speed: float = math.inf, session_id: str = "sess-1",
                 stream_index: int = 0, machine: InputMachine | None = None) -> None:
        self.model = model_info(model_id)
        self.clock = ScaledClock(speed)
        self.session_id = session_id
        self.stream_index = stream_index
        self.machine = machine if machine is not None else InputMachine(model_id)
        self.emitted: list[OutputEvent] = []
        self.failures: list[tuple[str, str, dict[str, Any]]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.errors: list[BaseException] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._input_ended = False
        self._audio_changed = asyncio.Event()

    # --- StreamContext -----------------------------------------------------------------------------

    @property
    def prompt_name(self) -> str | None:
        return self.machine.prompt_name

    @property
    def audio_ms(self) -> float:
        return self.machine.audio_ms_received

    @property
    def closed(self) -> bool:
        return self._closed

    def new_id(self) -> str:
        return f"id-{next(self._ids):04d}"

    async def emit(self, event: OutputEvent) -> bool:
        if self._closed:
            return False
        self.emitted.append(event)
        self.machine.note_output(event)
        return True

    async def fail(self, member: str, message: str, **extra: Any) -> None:
        self.failures.append((member, message, extra))
        self._closed = True

    async def sleep(self, service_seconds: float) -> None:
        await self.clock.sleep(service_seconds)

    async def wait_audio_ms(self, ms: float) -> bool:
        while self.audio_ms < ms:
            if self._closed or self._input_ended:
                return False
            self._audio_changed.clear()
            await self._audio_changed.wait()
        return True

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())  # type: ignore[arg-type]

    # --- driving -----------------------------------------------------------------------------------

    async def send(self, responder: Any, event: InputEvent, *, flush: bool = True) -> list[Fact]:
        """Feed ``event`` to the rules, then to ``responder``; return the facts. With ``flush``, wait
        until the responder emitted what it generated (when it offers ``wait_flushed``)."""
        facts = self.machine.feed(event)
        self._audio_changed.set()
        await responder.on_event(event, facts)
        if flush:
            await self.flush(responder)
        return facts

    async def send_all(self, responder: Any, events: Iterable[InputEvent], *, flush: bool = True) -> None:
        for event in events:
            await self.send(responder, event, flush=False)
        if flush:
            await self.flush(responder)

    async def flush(self, responder: Any) -> None:
        wait = getattr(responder, "wait_flushed", None)
        if wait is not None:
            await wait()

    async def end_input(self, responder: Any) -> None:
        self._input_ended = True
        self._audio_changed.set()
        await responder.on_input_end()

    async def close(self, responder: Any | None = None) -> None:
        self._closed = True
        if responder is not None:
            await responder.aclose()
        for task in self.tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.errors:
            raise self.errors[0]


# --- input helpers ---------------------------------------------------------------------------------------


def opening(*, sensitivity: str | None = None, tools: list[Any] | None = None, out_rate: int = 16000,
            in_rate: int = 16000, nova1: bool = False, audio: bool = True) -> list[InputEvent]:
    """sessionStart, promptStart, SYSTEM block and (``audio``) the audio contentStart ``mic``."""
    events: list[InputEvent] = [
        f.session_start(flat=sensitivity) if nova1 else f.session_start(nested=sensitivity),
        f.prompt_start(tools=tools, sample_rate=out_rate),
        *f.system_block("You are a friendly assistant."),
    ]
    if audio:
        events.append(f.audio_start("mic", sample_rate=in_rate))
    return events


def pcm_frames(pcm: bytes, *, frame_ms: float = 32, rate: int = 16000, content_name: str = "mic") -> list[AudioInput]:
    step = int(rate * frame_ms / 1000) * 2
    return [AudioInput.from_pcm(f.PROMPT, content_name, pcm[o : o + step]) for o in range(0, len(pcm), step)]


def speech_frames(ms: float, *, seed: int = 1, frame_ms: float = 32, rate: int = 16000) -> list[AudioInput]:
    return pcm_frames(synth_speech(ms, rate, seed), frame_ms=frame_ms, rate=rate)


def silence_frames(ms: float, *, frame_ms: float = 32, rate: int = 16000) -> list[AudioInput]:
    return pcm_frames(silence(ms, rate), frame_ms=frame_ms, rate=rate)


# --- output helpers --------------------------------------------------------------------------------------


def names(events: Sequence[OutputEvent], *, collapse_audio: bool = True) -> list[str]:
    """Event names with block details: ``cs(TEXT USER FINAL)``, ``audio×N``, ``ce(AUDIO END_TURN)``..."""
    out: list[str] = []
    for ev in events:
        name = ev.EVENT_NAME
        d = ev.to_dict()
        if name == "contentStart":
            stage = getattr(ev, "generation_stage", None)
            label = f"cs({d['type']} {d['role']}{' ' + str(stage) if stage else ''})"
        elif name == "contentEnd":
            label = f"ce({d['type']} {d['stopReason']})"
        elif name == "audioOutput":
            label = "audio"
        else:
            label = name
        if collapse_audio and label == "audio" and out and out[-1].startswith("audio"):
            n = int(out[-1].partition("×")[2] or 1)
            out[-1] = f"audio×{n + 1}"
        else:
            out.append(label)
    return [x if x != "audio" else "audio×1" for x in out]


def track(events: Sequence[OutputEvent], *, tool_results: Iterable[str] = (), sample_rate: int = 16000
          ) -> tuple[OutputTracker, list[Record]]:
    """Feed ``events`` to an ``OutputTracker`` (then ``close()``); ``tool_results`` are marked sent."""
    tracker = OutputTracker(default_output_sample_rate=sample_rate)
    records: list[Record] = []
    for ev in events:
        records.extend(tracker.feed(ev))
    for tid in tool_results:
        records.extend(tracker.tool_result_sent(tid))
    records.extend(tracker.close())
    return tracker, records
