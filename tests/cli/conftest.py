"""Cassettes recorded from real sessions for the CLI tests: the stock SDK client (CRT, loopback
TLS + HTTP/2) against ``FakeNovaSonic`` with a scripted responder, written with
``cassette_from_journal`` keeping all audio (user audio in the sidecar too, by explicit option).

Recorded once per test session (each bounded, at infinite or high clock speed).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, ScriptedResponder, ToolCallScript, TurnScript
from novasonic.cassette import CassetteHeader, WriterOptions, cassette_from_journal
from novasonic.events import Tool
from novasonic.models import NOVA_2_SONIC
from novasonic.rules import ToolCallRequested
from tests.helpers.conversation import Conversation, ConversationResult

BOUND_S = 60.0
STORY = "Once upon a time there was a very long story that kept going on and on for quite a while."
WEATHER = Tool.define("get_weather", "The weather in a city.",
                      {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
KEEP_ALL = WriterOptions(user_audio="sidecar", assistant_audio="sidecar")


@dataclass
class Recorded:
    path: Path
    result: ConversationResult


async def _record_rich() -> tuple[list[Any], ConversationResult]:
    """A tool call (get_weather, answered), then a story the user interrupts (barge-in)."""
    script = Script([
        TurnScript("what's the weather in paris", tool_call=ToolCallScript("get_weather", {"city": "Paris"}),
                   follow_up=lambda r: [f"It is {r['temperature']} degrees in Paris."]),
        TurnScript("tell me a story", [STORY]),
        TurnScript("stop please", ["Okay, I will stop."]),
    ])

    def answer(call: ToolCallRequested) -> dict[str, Any]:
        return {"temperature": 21}

    responder = ScriptedResponder(script, pacing="audio")
    # A finite speed: at math.inf every journal time is 0, and cassette_from_journal, which puts the
    # client first on equal times, would write the toolResult before the toolUse it answers.
    async with FakeNovaSonic(responder=responder, speed=30.0, seed=11, keep_audio=True) as fake:
        async with Conversation(fake, NOVA_2_SONIC, tools=[WEATHER], on_tool_call=answer,
                                output_sample_rate=24000) as conv:
            await conv.silence(320)
            await conv.speak(1200)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1, max_frames=1500, what="the answer")
            await conv.speak(1000, seed=3)
            before = conv.count("audioOutput")
            await conv.silence_until(lambda: conv.count("audioOutput") >= before + 3, max_frames=300, pace=0.002,
                                     what="the story's audio")
            await conv.speak(800, seed=2)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 2, max_frames=1500,
                                     what="the answer to the barge-in")
            result = await conv.close()
        return list(fake.journal.streams), result


async def _record_simple(speed: float) -> list[Any]:
    script = Script([TurnScript("what's the weather", ["It is sunny."])])
    async with FakeNovaSonic(script=script, speed=speed, seed=3, keep_audio=True) as fake:
        async with Conversation(fake, NOVA_2_SONIC) as conv:
            await conv.silence(320)
            await conv.speak(1200)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="completionEnd")
            await conv.close()
        return list(fake.journal.streams)


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    streams, result = asyncio.run(asyncio.wait_for(_record_rich(), BOUND_S))
    path = tmp_path_factory.mktemp("recorded") / "rich.jsonl"
    cassette_from_journal(streams, CassetteHeader(source="captured", voice="matthew"), path, options=KEEP_ALL)
    return Recorded(path, result)


@pytest.fixture(scope="session")
def recorded_at_two_speeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same one-turn conversation recorded at infinite speed and at 30× (other ids, times,
    frame counts)."""
    d = tmp_path_factory.mktemp("speeds")
    out = []
    for name, speed in (("fast", math.inf), ("paced", 30.0)):
        streams = asyncio.run(asyncio.wait_for(_record_simple(speed), BOUND_S))
        path = d / f"{name}.jsonl"
        cassette_from_journal(streams, CassetteHeader(source="captured", voice="matthew"), path)
        out.append(path)
    return out[0], out[1]
