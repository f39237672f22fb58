"""A synthetic, realistic one-minute Nova 2 conversation through the cassette writer and loader.

``conversation()`` builds what a capture proxy would see, in time order: a microphone streaming
32 ms frames for the whole minute (speech at four turns), and the service's answers the way the
captures show them (protocol.md §2.2 A/B/D): usage events before and during the answer (one every
13 audio chunks), userSpeechStart/End, the USER transcript, per sentence a SPECULATIVE text block
and an AUDIO block of 40 ms chunks with send-time jitter, the FINAL texts, and a tool call with
the client's toolResult in the third turn. Other cassette tests import it.

The size test prints the measured bytes per conversation-minute (run with ``-s`` to see it).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    CassetteHeader,
    CassetteWriter,
    ServerEventRecord,
    WriterOptions,
    load_cassette,
)
from novasonic.events import (
    AudioInput,
    AudioOutput,
    CompletionStart,
    ContentEnd,
    ContentStart,
    InferenceConfiguration,
    InputEvent,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    PromptStart,
    Role,
    SessionStart,
    TextInput,
    TextOutput,
    Tool,
    ToolConfiguration,
    ToolResult,
    ToolUse,
    TurnDetectionConfiguration,
    UsageEvent,
    UserSpeechEnd,
    UserSpeechStart,
)
from novasonic.events.input import AudioOutputConfiguration, TextOutputConfiguration, ToolUseOutputConfiguration
from novasonic.models import NOVA_2_SONIC

BUDGET_BYTES_PER_MINUTE = 25 * 1024
FRAME_MS = 32
TURN_STARTS_MS = [1000, 16000, 31000, 46000]
SPEECH_MS = [3500, 2500, 4000, 3000]
ANSWER_MS = [6000, 5000, 7000, 5000]
MIC = "mic-7f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b"


@dataclass(frozen=True)
class Item:
    t: float
    side: str  # "c" | "s"
    event: InputEvent | OutputEvent


def speech_pcm(ms: float, seed: int, rate: int = 16000) -> bytes:
    """Voice-like PCM (a harmonic tone under a syllable envelope), far above the threshold."""
    n = int(rate * ms / 1000)
    t = np.arange(n) / rate
    f0 = np.random.default_rng(seed).uniform(100, 200)
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 5))
    env = 0.4 + 0.6 * np.sin(np.pi * 4.5 * t) ** 2
    return np.clip(x * env * 5000, -32768, 32767).astype("<i2").tobytes()


def conversation(*, seed: int = 1, jitter_ms: float = 3.0, minute_s: float = 60.0) -> list[Item]:
    rng = random.Random(seed)

    def uid() -> str:
        return "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                               rng.getrandbits(16), rng.getrandbits(48))

    prompt, session, completion = uid(), uid(), uid()
    ids = dict(session_id=session, prompt_name=prompt, completion_id=completion)
    raw: list[tuple[float, int, str, object]] = []

    def add(t: float, side: str, ev: object) -> None:
        raw.append((round(t, 4), len(raw), side, ev))

    tools = ToolConfiguration(tools=[Tool.define("getWeather", "Weather for a city", {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])
    add(0.0, "c", SessionStart(
        inference_configuration=InferenceConfiguration(max_tokens=1024, top_p=0.9, temperature=0.7),
        turn_detection_configuration=TurnDetectionConfiguration(endpointing_sensitivity="MEDIUM")))
    add(0.001, "c", PromptStart(
        prompt_name=prompt, text_output_configuration=TextOutputConfiguration(),
        audio_output_configuration=AudioOutputConfiguration(sample_rate_hertz=24000, voice_id="matthew"),
        tool_use_output_configuration=ToolUseOutputConfiguration(), tool_configuration=tools))
    add(0.002, "c", ContentStart.text(prompt, "system", Role.SYSTEM))
    add(0.003, "c", TextInput(prompt_name=prompt, content_name="system", content="You are a friendly assistant."))
    add(0.004, "c", ContentEnd(prompt_name=prompt, content_name="system"))
    add(0.005, "c", ContentStart.audio(prompt, MIC))

    t0 = 0.1
    voices = {i: speech_pcm(d, seed=i) for i, d in enumerate(SPEECH_MS)}
    silence = bytes(1024)
    for k in range(int(minute_s * 1000 / FRAME_MS)):
        a = k * FRAME_MS
        pcm = silence
        for i, (s, d) in enumerate(zip(TURN_STARTS_MS, SPEECH_MS)):
            if s <= a < s + d:
                off = (a - s) * 32
                pcm = voices[i][off:off + 1024].ljust(1024, b"\0")
        add(t0 + a / 1000 + rng.uniform(0, 0.004), "c", AudioInput.from_pcm(prompt, MIC, pcm))

    totals = [0, 0, 0, 0]

    def usage(t: float, delta: list[int]) -> None:
        for i in range(4):
            totals[i] += delta[i]
        details = {
            "delta": {"input": {"speechTokens": delta[0], "textTokens": delta[1]},
                      "output": {"speechTokens": delta[2], "textTokens": delta[3]}},
            "total": {"input": {"speechTokens": totals[0], "textTokens": totals[1]},
                      "output": {"speechTokens": totals[2], "textTokens": totals[3]}},
        }
        add(t, "s", UsageEvent(details=details, total_input_tokens=totals[0] + totals[1],
                               total_output_tokens=totals[2] + totals[3], total_tokens=sum(totals), **ids))

    def text_block(t: float, role: str, stage: str, text: str, stop: str = "PARTIAL_TURN") -> float:
        cid = uid()
        fields = json.dumps({"generationStage": stage}, separators=(",", ":"))
        add(t, "s", OutputContentStart(additional_model_fields=fields, content_id=cid, role=role, type="TEXT",
                                       text_output_configuration={"mediaType": "text/plain"}, **ids))
        add(t + 0.001, "s", TextOutput(content=text, content_id=cid, role=role, **ids))
        add(t + 0.002, "s", OutputContentEnd(content_id=cid, stop_reason=stop, type="TEXT", **ids))
        return t + 0.003

    sentences = ["That’s a great question, let me think about it for a second.", "Here is what I found for you."]
    for turn, (start, spoken, answer) in enumerate(zip(TURN_STARTS_MS, SPEECH_MS, ANSWER_MS)):
        ts = t0 + start / 1000
        usage(ts + 0.05, [0, 1, 0, 0])
        add(ts + 0.2, "s", UserSpeechStart(prompt_name=prompt, session_id=session, input_audio_offset_ms=start))
        usage(ts + 0.25, [60, 0, 0, 0])
        usage(ts + 0.26, [0, 43, 0, 0])
        if turn == 0:
            add(ts + 0.3, "s", CompletionStart(**ids))
        end = start + spoken
        te = t0 + (end + 480) / 1000
        add(te, "s", UserSpeechEnd(prompt_name=prompt, session_id=session, input_audio_offset_ms=end,
                                   input_audio_detection_offset_ms=end + 480))
        t = text_block(te + 0.05, "USER", "FINAL", "what's the weather like in seattle today")
        usage(t, [0, 1, 0, 0])
        usage(t + 0.001, [0, 286, 0, 9])
        t += 0.3
        if turn == 2:
            cid, tool_use_id = uid(), uid()
            add(t, "s", OutputContentStart(content_id=cid, role="TOOL", type="TOOL",
                                           tool_use_output_configuration={"mediaType": "application/json"}, **ids))
            add(t + 0.001, "s", ToolUse(content='{"city":"Seattle"}', content_id=cid, tool_name="getWeather",
                                        tool_use_id=tool_use_id, **ids))
            add(t + 0.002, "s", OutputContentEnd(content_id=cid, stop_reason="TOOL_USE", type="TOOL", **ids))
            tc, name = t + 0.4, "tool-" + uid()
            add(tc, "c", ContentStart.tool_result(prompt, name, tool_use_id))
            add(tc + 0.001, "c", ToolResult(prompt_name=prompt, content_name=name, content='{"forecast":"rain"}'))
            add(tc + 0.002, "c", ContentEnd(prompt_name=prompt, content_name=name))
            t = tc + 0.5
        for j, sentence in enumerate(sentences):
            t = text_block(t, "ASSISTANT", "SPECULATIVE", sentence)
            usage(t, [0, 0, 8, 12])
            cid = uid()
            add(t, "s", OutputContentStart(content_id=cid, role="ASSISTANT", type="AUDIO",
                                           audio_output_configuration={"sampleRateHertz": 24000}, **ids))
            n = int(answer / 2 / 40)
            for c in range(n):
                t += 0.02 + rng.uniform(-jitter_ms, jitter_ms) / 1000
                add(t, "s", AudioOutput.from_pcm(bytes(1920 if c < n - 1 else 640), content_id=cid, **ids))
                if c % 13 == 12:
                    usage(t + 0.0005, [0, 0, 20, 0])
            add(t + 0.01, "s", OutputContentEnd(content_id=cid, stop_reason="END_TURN" if j else "PARTIAL_TURN",
                                                type="AUDIO", **ids))
            t += 0.02
        for j, sentence in enumerate(sentences):
            t = text_block(t + 0.01, "ASSISTANT", "FINAL", sentence, stop="PARTIAL_TURN" if j else "END_TURN")
        usage(t, [0, 0, 7, 6])
    raw.sort(key=lambda x: (x[0], x[1]))
    items = [Item(t, side, ev) for t, _, side, ev in raw]  # type: ignore[arg-type]
    end_t = items[-1].t
    items.append(Item(end_t + 0.01, "c", ContentEnd(prompt_name=prompt, content_name=MIC)))
    return items


def header(**over: object) -> CassetteHeader:
    base = dict(model_id=NOVA_2_SONIC, voice="matthew", input_rate=16000, output_rate=24000, region="us-east-1",
                source="scripted")
    base.update(over)
    return CassetteHeader(**base)  # type: ignore[arg-type]


def record(path: Path, items: list[Item], options: WriterOptions | None = None, *, flush: str = "none",
           stream: int = 0, writer: CassetteWriter | None = None, end: str | None = "completed") -> None:
    """Feed ``items`` to a writer like a capture proxy. ``flush``: ``none`` (only at the end),
    ``bursts`` (``flush()`` once the service has been quiet for 200 ms), ``bursts-keep-runs``
    (the same with ``flush(runs=False)``)."""
    w = writer if writer is not None else CassetteWriter(path, header(), options)
    last_server: float | None = None
    for it in items:
        if flush != "none" and last_server is not None and it.t - last_server >= 0.2:
            w.flush(runs=flush == "bursts")
            last_server = None
        if it.side == "c":
            w.write_client(stream, it.t, None, it.event)  # type: ignore[arg-type]
        else:
            w.write_server(stream, it.t, None, it.event)  # type: ignore[arg-type]
            last_server = it.t
    if end is not None:
        w.end_stream(stream, items[-1].t + 0.01, end)
    if writer is None:
        w.close()


@pytest.fixture(scope="module")
def items() -> list[Item]:
    return conversation()


# --- size ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flush", ["none", "bursts-keep-runs", "bursts"])
def test_size_per_conversation_minute(tmp_path: Path, items: list[Item], flush: str,
                                      record_property: pytest.RecordProperty) -> None:
    path = tmp_path / "minute.jsonl"
    record(path, items, flush=flush)
    c = load_cassette(path)
    per_minute = c.bytes_per_minute()
    record_property("bytes_per_minute", round(per_minute))
    print(f"\ncassette size, default options, flush={flush}: {c.size_bytes} bytes for {c.duration_s:.1f} s "
          f"= {per_minute / 1024:.1f} KB per conversation-minute ({sum(len(s.records) for s in c)} records "
          f"for {len(items)} events)")
    assert 59.9 < c.duration_s < 60.5
    if flush == "bursts":
        # Every burst flush cuts the pending audio runs into one more record each.
        assert per_minute <= BUDGET_BYTES_PER_MINUTE * 1.1
    else:
        assert per_minute <= BUDGET_BYTES_PER_MINUTE


def test_size_with_audio_kept_is_mostly_the_sidecar(tmp_path: Path, items: list[Item]) -> None:
    path = tmp_path / "minute.jsonl"
    record(path, items, WriterOptions(user_audio="sidecar", assistant_audio="sidecar"))
    c = load_cassette(path)
    assert c.size_bytes <= BUDGET_BYTES_PER_MINUTE * 1.1
    raw_pcm = 60 * 16000 * 2
    assert 0 < c.sidecar_bytes < raw_pcm
    print(f"\nwith full audio in the sidecar: {c.size_bytes} bytes of text + {c.sidecar_bytes} bytes of audio "
          f"(raw user PCM: {raw_pcm})")


# --- the minute, read back ------------------------------------------------------------------------


@pytest.mark.parametrize("flush", ["none", "bursts"])
def test_events_read_back_exactly(tmp_path: Path, items: list[Item], flush: str) -> None:
    path = tmp_path / "minute.jsonl"
    record(path, items, flush=flush)
    stream = load_cassette(path)[0]
    assert stream.server_events() == [it.event for it in items if it.side == "s"]
    client = [it.event for it in items if it.side == "c"]
    got = stream.client_events()
    assert len(got) == len(client)
    for want, have in zip(client, got):
        if isinstance(want, AudioInput):  # segments only: the frame sizes and ids survive, not the voice
            assert have.pcm_len == want.pcm_len
            assert (have.prompt_name, have.content_name) == (want.prompt_name, want.content_name)
        else:
            assert have == want


def test_full_audio_reads_back_exactly(tmp_path: Path, items: list[Item]) -> None:
    path = tmp_path / "minute.jsonl"
    record(path, items, WriterOptions(user_audio="sidecar", assistant_audio="sidecar"), flush="bursts")
    stream = load_cassette(path)[0]
    assert stream.client_events() == [it.event for it in items if it.side == "c"]
    assert stream.server_events() == [it.event for it in items if it.side == "s"]


def test_timing_and_audio_positions_survive(tmp_path: Path, items: list[Item]) -> None:
    path = tmp_path / "minute.jsonl"
    record(path, items)
    stream = load_cassette(path)[0]
    got: list[tuple[float, object]] = []
    for r in stream.records:
        if isinstance(r, ServerEventRecord | AudioOutRecord):
            got.extend(stream.expand(r))
    want = [it for it in items if it.side == "s"]
    assert len(got) == len(want)
    for (t, ev), it in zip(got, want):
        # ms precision; a usage tick kept inside an audio run takes its chunk's time (≤ 1 ms earlier here)
        slack = 0.0021 if isinstance(ev, UsageEvent) else 0.0011
        assert abs(t - it.t) <= slack, (ev, t, it.t)
    # userSpeechEnd was sent once the end-point (speech end + 480 ms) had been heard.
    for r in stream.records:
        if isinstance(r, ServerEventRecord) and isinstance(r.event, UserSpeechEnd):
            assert abs(r.a - r.event.input_audio_detection_offset_ms) <= FRAME_MS + 5


def test_speech_segments_find_the_turns(tmp_path: Path, items: list[Item]) -> None:
    path = tmp_path / "minute.jsonl"
    record(path, items)
    stream = load_cassette(path)[0]
    speech = [(s, e) for r in stream.records if isinstance(r, AudioInRecord) for k, s, e in r.segments or () if
              k == "speech"]
    # Records may cut an utterance in two; join touching pieces.
    joined: list[list[float]] = []
    for s, e in speech:
        if joined and abs(joined[-1][1] - s) < 1:
            joined[-1][1] = e
        else:
            joined.append([s, e])
    assert len(joined) == len(TURN_STARTS_MS)
    for (s, e), start, spoken in zip(joined, TURN_STARTS_MS, SPEECH_MS):
        assert abs(s - start) <= 40 and abs(e - (start + spoken)) <= 80
    assert stream.audio_in_ms == pytest.approx(60000, abs=1)
    assert stream.speech_ms == pytest.approx(sum(SPEECH_MS), abs=200)


def test_bursts_follow_the_conversation(tmp_path: Path, items: list[Item]) -> None:
    path = tmp_path / "minute.jsonl"
    record(path, items)
    stream = load_cassette(path)[0]
    # Split only by client events: before the toolResult, after it (and the final contentEnd).
    coarse = stream.bursts()
    assert [len(b.after) for b in coarse] == [6, 3]
    # Split at the service's pauses too: per turn speech start, speech end + transcript, answer.
    fine = stream.bursts(max_gap_s=0.25)
    firsts = [type(b.records[0].event).__name__ for b in fine if isinstance(b.records[0], ServerEventRecord)]
    assert firsts.count("UsageEvent") >= 4 and firsts.count("UserSpeechEnd") == 4
    assert all(b.a <= nb.a for b, nb in zip(fine, fine[1:]))
    answer = next(b for b in fine if any(isinstance(r, AudioOutRecord) for r in b.records))
    assert answer.t_end > answer.t


def test_two_streams_recycle(tmp_path: Path) -> None:
    items = conversation(minute_s=20.0)
    path = tmp_path / "recycle.jsonl"
    with CassetteWriter(path, header()) as w:
        w.open_stream(0, t0=0.0)
        record(path, [i for i in items if i.t < 20.0], writer=w, stream=0, end="recycled")
        w.open_stream(1, t0=20.5, meta={"why": "session recycle"})
        record(path, [i for i in items if i.t < 20.0], writer=w, stream=1, end="completed")
    c = load_cassette(path)
    assert len(c) == 2
    assert [s.end_reason for s in c] == ["recycled", "completed"]
    assert c[1].t0 == 20.5 and c[1].start is not None and c[1].start.meta == {"why": "session recycle"}
    assert c[0].server_events() == c[1].server_events()
    assert c.duration_s == pytest.approx(20.5 + c[1].duration_s)
    assert c.summary()["streams"] == 2
