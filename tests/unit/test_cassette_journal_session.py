"""A real ``FakeNovaSonic`` session (stock SDK, loopback TLS + HTTP/2) written as a cassette.

Kept apart from the unit tests of ``cassette_from_journal``: it drives another team's server and
helpers, so it is bounded (one audio turn, infinite speed, every wait with a timeout) and only
checks what the cassette promises: it loads and validates, it holds what the client received,
and no credential of the session reaches it.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path


from fakeserver import FakeNovaSonic
from fakeserver.responders import Script, TurnScript
from novasonic.cassette import AudioInRecord, AudioOutRecord, CassetteHeader, WriterOptions, assert_clean, cassette_from_journal
from novasonic.events import AudioOutput
from novasonic.models import NOVA_2_SONIC
from tests.helpers.conversation import Conversation

BOUND_S = 60.0


async def test_a_fake_server_session_becomes_a_valid_cassette(tmp_path: Path) -> None:
    script = Script([TurnScript("what's the weather", ["It is sunny."])])

    async def run() -> tuple[list, object, tuple[str, str]]:
        async with FakeNovaSonic(script=script, speed=math.inf, seed=3, keep_audio=True) as fake:
            async with Conversation(fake, NOVA_2_SONIC) as conv:
                await conv.silence(320)
                await conv.speak(1200)
                await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="completionEnd")
                result = await conv.close()
            return fake.journal.streams, result, (fake.access_key_id, fake.secret_access_key)

    streams, result, creds = await asyncio.wait_for(run(), BOUND_S)
    path = tmp_path / "session.jsonl"
    c = cassette_from_journal(streams, CassetteHeader(source="captured", voice="matthew"), path,
                              options=WriterOptions(assistant_audio="sidecar"))
    assert_clean(path.read_text("utf-8"), creds)
    assert len(c) == 1 and c[0].end_reason == "completed" and c.header.model_id == NOVA_2_SONIC
    assert c[0].server_events() == result.events  # type: ignore[attr-defined]
    received_audio = sum(e.pcm_len for e in result.events if isinstance(e, AudioOutput))  # type: ignore[attr-defined]
    assert received_audio > 0
    assert sum(r.n_bytes for r in c[0].records if isinstance(r, AudioOutRecord)) == received_audio
    speech = [(s, e) for r in c[0].records if isinstance(r, AudioInRecord) for k, s, e in r.segments or ()
              if k == "speech"]
    assert speech and abs(speech[0][0] - 320) <= 40 and abs(speech[-1][1] - 1520) <= 80


async def test_a_tool_call_at_infinite_speed_keeps_its_causal_order(tmp_path: Path) -> None:
    """Every journal time is 0 at speed=inf: the shared journal sequence, not time, must order the
    client's toolResult after the toolUse it answers (else the cassette breaks the rules)."""
    from fakeserver.responders import ToolCallScript
    from novasonic.cassette import ClientEventRecord, ServerEventRecord
    from novasonic.events import Tool, ToolResult, ToolUse

    weather = Tool.define("get_weather", "Weather for a city",
                          {"type": "object", "properties": {"city": {"type": "string"}}})
    script = Script([TurnScript("weather in paris", ["One moment."],
                                tool_call=ToolCallScript("get_weather", {"city": "Paris"}),
                                follow_up=lambda r: [f"It is {r['sky']}."])])

    async def run() -> list:
        async with FakeNovaSonic(script=script, speed=math.inf, seed=5) as fake:
            async with Conversation(fake, NOVA_2_SONIC, tools=[weather], on_tool_call=lambda call: {"sky": "clear"}) as conv:
                await conv.silence(320)
                await conv.speak(1000)
                await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="completionEnd")
                await conv.close()
            return fake.journal.streams

    streams = await asyncio.wait_for(run(), BOUND_S)
    assert all(t.t == 0.0 for t in streams[0].client)  # the premise: time cannot order anything
    c = cassette_from_journal(streams, CassetteHeader(source="scripted"), tmp_path / "tool.jsonl")
    order = [type(r.event).__name__ for r in c[0].records
             if isinstance(r, (ClientEventRecord, ServerEventRecord)) and isinstance(r.event, (ToolUse, ToolResult))]
    assert order == ["ToolUse", "ToolResult"]
