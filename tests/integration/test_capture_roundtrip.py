"""Capture proxy round trip: shipped cassette → replaying fake → proxy → STOCK SDK client.

The fake server replays a shipped cassette; the capture proxy sits in front of it (the proxy's
own upstream client is the stock SDK client too); ``tools.sdk_driver.reenact`` drives the proxy with
the cassette's client side through the stock SDK client (CRT, loopback TLS + HTTP/2, SigV4; its own
client names, tool results for the toolUseIds it received). The
cassette the proxy writes must be *semantically equal* to the original (``diff_cassettes``:
ids, names, times and audio positions ignored), the replay must have played everything, and the
new cassette must load (validated against the protocol rules).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fakeserver import FakeNovaSonic
from novasonic.cassette import diff_cassettes, load_cassette
from tools.capture import CaptureProxy, Upstream
from tools.sdk_driver.reenact import replay_cassette

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "cassettes"

# Each shows something different: a tool call (causal gate on toolUse), a barge-in (cut audio),
# two streams with an in-stream exception in between, a history resume, Nova Sonic 1, a
# service-side limit exception, and the demo's cassette. The long limit cassettes (8-minute age,
# 175 s of silence) play the same way but stream minutes of audio; they are left to the benchmark
# tooling.
CASES = [
    "nova2_tool_call",
    "nova2_barge_in_spec",
    "nova2_restart_throttling",
    "nova2_history_resume",
    "nova1_audio_turn",
    "nova2_idle_timeout",
    "agent_demo",
]


async def recapture(src: Path, out: Path) -> tuple[bool, str, list]:
    async with FakeNovaSonic(cassette=src, speed=math.inf) as fake:
        async with CaptureProxy(out, upstream=Upstream.from_info(fake.info())) as proxy:
            runs = await replay_cassette(proxy, load_cassette(src))  # type: ignore[arg-type]
            assert proxy.stats.streams == len(load_cassette(src))
        assert proxy.error is None
        assert fake.replay is not None
        return fake.replay.all_played, str(fake.replay.report()), runs


@pytest.mark.parametrize("name", CASES)
async def test_recaptured_shipped_cassette_is_semantically_equal(tmp_path: Path, name: str) -> None:
    src = SHIPPED / f"{name}.jsonl"
    out = tmp_path / f"{name}.jsonl"
    all_played, report, streams = await recapture(src, out)
    assert all_played, report
    original, captured = load_cassette(src), load_cassette(out)  # validated against the rules
    diff = diff_cassettes(original, captured)
    assert diff.equal, diff.render()
    assert captured.header.source == "captured"
    assert captured.header.voice == original.header.voice
    assert len(captured) == len(original)
    # What the client saw is what the recording says the service sent.
    for played, stream in zip(streams, original):
        assert [e.EVENT_NAME for e in played.events if e.EVENT_NAME != "audioOutput"] == \
               [e.EVENT_NAME for e in stream.server_events() if e.EVENT_NAME != "audioOutput"]
        assert (played.error is None) == (not (stream.end_reason or "").startswith("exception:"))


async def test_the_diff_notices_a_difference_in_the_recapture(tmp_path: Path) -> None:
    """The equality above is not vacuous: a recapture of another conversation differs."""
    out = tmp_path / "tool.jsonl"
    await recapture(SHIPPED / "nova2_tool_call.jsonl", out)
    diff = diff_cassettes(load_cassette(SHIPPED / "nova2_chained_tools.jsonl"), load_cassette(out))
    assert not diff.equal
    assert "toolUse" in diff.render() or "toolResult" in diff.render()


async def test_captured_streams_keep_time_and_audio_positions(tmp_path: Path) -> None:
    out = tmp_path / "tool.jsonl"
    await recapture(SHIPPED / "nova2_tool_call.jsonl", out)
    stream = load_cassette(out)[0]
    assert stream.start is not None and stream.start.t0 == 0
    assert stream.end_reason == "completed" and stream.end.input_finished is True
    for records in (stream.client_records, stream.server_records):  # per direction, time never goes back
        times = [r.t for r in records]
        assert times == sorted(times) and times[0] >= 0
    assert stream.server_records[-1].t > stream.client_records[0].t
    original = load_cassette(SHIPPED / "nova2_tool_call.jsonl")[0]
    assert stream.audio_in_ms == pytest.approx(original.audio_in_ms)
    tool_use = next(r for r in stream.server_records if getattr(r, "event", None) is not None
                    and r.event.EVENT_NAME == "toolUse")
    assert 0 < tool_use.a <= stream.audio_in_ms  # the service answered after hearing the question
