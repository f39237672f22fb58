"""A client that re-enacts the *client side* of a cassette with the STOCK SDK client.

For each recorded stream (one new client and connection each, as a restarting agent does), it
sends what the recorded client sent, in the recorded order and at the recorded audio positions:

- microphone frames of the recorded sizes, voice-like PCM where the recorded segments say the
  user spoke and silence elsewhere (so the fake's silent-audio limit sees what it saw then);
- each recorded client event once its audio position is reached *and* every service event the
  recording shows before it has been received (causal order, whatever the speed);
- its own names (``m-`` + the recorded promptName/contentName: the replay must rebind them) and,
  in tool results, the toolUseId it actually received for the recorded one (matched by order);
- the end of input when the recorded client ended its input.

It stops sending when the output stream ends (an exception, a reset), as a client would.
``replay_cassette(fake, cassette)`` runs every stream and returns what each received.
"""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field
from typing import Any

from fakeserver import FakeNovaSonic
from fakeserver.audio import synth_speech
from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    Cassette,
    CassetteStream,
    ClientEventRecord,
    ServerEventRecord,
    TransportRecord,
)
from novasonic.events import AudioInput, ContentStart, InputEvent, OutputEvent, ToolUse
from novasonic.transport import client_from_info, open_duplex

__all__ = ["StreamRun", "replay_cassette", "run_stream"]

TIMEOUT = 60.0


@dataclass(slots=True)
class StreamRun:
    events: list[OutputEvent] = field(default_factory=list)
    error: BaseException | None = None
    sent_events: int = 0
    sent_frames: int = 0


def _rename(event: InputEvent, tool_ids: dict[str, str]) -> InputEvent:
    update: dict[str, Any] = {}
    for name in ("prompt_name", "content_name"):
        value = getattr(event, name, None)
        if isinstance(value, str):
            update[name] = f"m-{value}"
    if isinstance(event, ContentStart) and event.tool_result_input_configuration is not None:
        cfg = event.tool_result_input_configuration
        update["tool_result_input_configuration"] = cfg.model_copy(
            update={"tool_use_id": tool_ids.get(cfg.tool_use_id, cfg.tool_use_id)})
    return event.model_copy(update=update) if update else event


class _Audio:
    """The recorded microphone: frames in order, with their end positions and PCM."""

    def __init__(self, stream: CassetteStream) -> None:
        self.frames: list[tuple[float, AudioInput]] = []
        self.ends: list[float] = []
        speech = [(s, e) for r in stream.records if isinstance(r, AudioInRecord) and r.segments
                  for kind, s, e in r.segments if kind == "speech"]
        voice = synth_speech(1000.0, 16000, seed=5)
        for r in sorted((r for r in stream.records if isinstance(r, AudioInRecord)), key=lambda r: r.a):
            pos = r.a
            for size in r.sizes:
                ms = size / 2 / r.sample_rate * 1000.0
                talking = any(s < pos + ms and e > pos for s, e in speech)
                if talking:
                    offset = (int(pos * r.sample_rate / 1000) * 2) % (len(voice) - size)
                    pcm = voice[offset: offset + size]
                else:
                    pcm = bytes(size)
                pos += ms
                frame = AudioInput.from_pcm(r.template.prompt_name, r.template.content_name, pcm)
                self.frames.append((pos, frame))
                self.ends.append(pos)

    def upto(self, start: int, a: float) -> int:
        """Index after the last frame that ends at or before ``a``."""
        return max(start, bisect.bisect_right(self.ends, a + 0.05))


async def run_stream(info: dict[str, Any], stream: CassetteStream, model_id: str) -> StreamRun:
    run = StreamRun()
    audio = _Audio(stream)
    plan: list[tuple[float, InputEvent, int]] = []
    server_seen = 0
    end_input = False
    recorded_tools: list[str] = []
    for r in stream.records:
        if isinstance(r, ServerEventRecord):
            server_seen += 1
            if isinstance(r.event, ToolUse):
                recorded_tools.append(r.event.tool_use_id)
        elif isinstance(r, AudioOutRecord):
            server_seen += r.n_chunks + len(r.usage)
        elif isinstance(r, ClientEventRecord):
            plan.append((r.a, r.event, server_seen))
        elif isinstance(r, TransportRecord) and r.direction == "c" and r.action == "end-input":
            end_input = True
    end = stream.end
    end_input = end_input or bool(end is not None and end.input_finished)

    client = await asyncio.wait_for(client_from_info(info), TIMEOUT)
    changed = asyncio.Event()
    done = asyncio.Event()
    try:
        duplex = await asyncio.wait_for(open_duplex(client, model_id), TIMEOUT)

        async def read() -> None:
            try:
                while (ev := await duplex.receive()) is not None:
                    run.events.append(ev)
                    changed.set()
            except Exception as exc:  # noqa: BLE001 - what the stream ended with
                run.error = exc
            finally:
                done.set()
                changed.set()

        reader = asyncio.create_task(read())

        def tool_ids() -> dict[str, str]:
            live = [e.tool_use_id for e in run.events if isinstance(e, ToolUse)]
            return dict(zip(recorded_tools, live))

        async def wait_for(n: int) -> None:
            while len(run.events) < n and not done.is_set():
                changed.clear()
                await asyncio.wait_for(changed.wait(), TIMEOUT)

        sent = 0
        try:
            for a, event, n_before in plan:
                upto = audio.upto(sent, a)
                for _, frame in audio.frames[sent:upto]:
                    if done.is_set():
                        break
                    await asyncio.wait_for(duplex.send(_rename(frame, {})), TIMEOUT)
                    run.sent_frames += 1
                sent = upto
                await wait_for(n_before)
                if done.is_set():
                    break
                await asyncio.wait_for(duplex.send(_rename(event, tool_ids())), TIMEOUT)
                run.sent_events += 1
            if not done.is_set():
                for _, frame in audio.frames[sent:]:
                    await asyncio.wait_for(duplex.send(_rename(frame, {})), TIMEOUT)
                    run.sent_frames += 1
                if end_input:
                    await asyncio.wait_for(duplex.close_input(), TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - sending into a stream the server ended
            if not done.is_set():
                raise AssertionError(f"sending failed while the stream was open: {exc!r}") from exc
        await asyncio.wait_for(asyncio.shield(reader), TIMEOUT)
        try:
            await asyncio.wait_for(duplex.close(), 5)
        except Exception:  # noqa: BLE001
            pass
    finally:
        try:
            await asyncio.wait_for(client.close(), 5)
        except Exception:  # noqa: BLE001
            pass
    return run


async def replay_cassette(fake: FakeNovaSonic, cassette: Cassette) -> list[StreamRun]:
    """Every recorded stream, one after the other, each on a new client."""
    runs = []
    for stream in cassette:
        model = stream.model_id or cassette.header.model_id
        assert model is not None
        runs.append(await run_stream(fake.info(), stream, model))
    return runs
