"""The shipped cassettes (``cassettes/``) replayed to a real ``AgentSession`` running the
``novasonic.livekit`` plugin: the plugin must drive every recorded interaction to its end (the
replay is strict: a diverging client gets an in-stream error and a report), and the agent must
see what the recording says (transcripts, tool calls, answers, barge-in).

The microphone streams silence all the time and speaks where the recorded user spoke (the replay
is timed by the client's audio position)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fakeserver import FakeNovaSonic
from novasonic.livekit import RealtimeModel
from novasonic.session import RestartPolicy
from tests.helpers.livekit_agents import PlainAgent, WeatherAgent
from tests.helpers.livekit_harness import AgentHarness
from tests.helpers.livekit_io import SpeakerOutput, speak, user_speech

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes"
FAST_RESTART = RestartPolicy(max_attempts=3, first_delay_s=0.0, base_delay_s=0.01, max_delay_s=0.05)


@dataclass
class Case:
    name: str
    tools: bool = False
    typed: str | None = None
    nova1: bool = False
    #: Substrings expected in the assistant messages, in order.
    answers: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)
    interrupted: bool = False


CASES = [
    Case("nova2_audio_turn", answers=["great routine"], users=["i usually go to gym after work."]),
    Case("nova2_text_turn", typed="Can you recommend a good book?", answers=[""]),
    Case("nova2_tool_call", tools=True, tool_calls=["Paris"],
         answers=["Let me check the weather in Paris.", "sunny and 21 degrees"]),
    Case("nova2_chained_tools", tools=True, tool_calls=["Paris", "Rome"],
         answers=["Let me check Paris first.", "And now Rome.", "Rome is warmer"]),
    *(Case(f"nova2_barge_in_{v}", interrupted=True, answers=["Once upon a time", "Sure, I’ll stop"])
      for v in ("spec", "pipecat", "silent")),
    Case("agent_demo", tools=True, tool_calls=["Lisbon"], interrupted=True,
         users=["what's the weather in lisbon today?", "thanks, that's all i needed."],
         answers=["Let me check.", "sunny in Lisbon", "You’re welcome"]),
    Case("nova1_audio_turn", nova1=True, answers=[""]),
]


def service_done(fake: FakeNovaSonic, streams: int) -> bool:
    """The replay is waiting for the client: every recorded service event not sent yet follows
    a client event not received yet (the client's own close, at the end)."""
    rep = fake.replay.report()
    return len(rep.streams) >= streams and not rep.mismatches and all(u.client for u in rep.unused)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_replay_shipped_cassette(case: Case) -> None:
    path = CASSETTES / f"{case.name}.jsonl"
    kw = {"factory": RealtimeModel.with_nova_sonic_1} if case.nova1 else {}
    agent = WeatherAgent() if case.tools else PlainAgent()
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with AgentHarness(fake, agent, output=SpeakerOutput(playout_speed=10.0), **kw) as h:
            for i, (start, end) in enumerate(user_speech(path)):
                speak(h.mic, end - start, at_ms=start, seed=i + 1)
            if case.typed:
                await h.wait_for(lambda: h.rt.session.state == "active", what="the stream")
                h.session.generate_reply(user_input=case.typed)
            await h.wait_for(lambda: service_done(fake, 1), what="the whole recording")
            await h.wait_for(lambda: len(h.assistant_messages()) >= len(case.answers), what="the answers")
        report = fake.replay.report()
    assert report.all_played, str(report)
    texts = h.assistant_texts()
    assert len(texts) == len(case.answers), texts
    for want, got in zip(case.answers, texts):
        assert want in got, (want, got)
    if case.users:
        assert h.user_texts() == case.users
    if case.tools:
        assert agent.calls == case.tool_calls
    assert any(m.interrupted for m in h.assistant_messages()) == case.interrupted
    assert [e for e in h.errors() if not e.error.recoverable] == []


@pytest.mark.parametrize("name", sorted(p.stem for p in CASSETTES.glob("nova2_restart_*.jsonl")))
async def test_replay_restart_cassettes(name: str) -> None:
    """An error mid-answer, then the recorded second stream: the plugin restarts, carries the
    conversation, and the user is answered on the new stream."""
    path = CASSETTES / f"{name}.jsonl"
    second = user_speech(path, 1)
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with AgentHarness(fake, PlainAgent(), restart=FAST_RESTART) as h:
            for i, (start, end) in enumerate(user_speech(path)):
                speak(h.mic, end - start, at_ms=start, seed=i + 1)
            await h.wait_for(lambda: len(fake.journal.streams) >= 2, what="the restart")
            base = h.mic.played_ms
            for i, (start, end) in enumerate(second):
                speak(h.mic, end - start, at_ms=base + start, seed=10 + i)
            await h.wait_for(lambda: service_done(fake, 2), what="the whole recording")
            await h.wait_for(lambda: len(h.assistant_messages()) >= 2, what="the answers")
        report = fake.replay.report()
    assert report.all_played, str(report)
    assert len(fake.journal.streams) == 2
    assert [e.error.recoverable for e in h.errors()] == [True]
    assert len(h.assistant_messages()) == 2 and len(h.user_texts()) == 2
