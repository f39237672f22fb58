"""The scripted responder and the VAD, without the network (``tests.helpers.responder_ctx``).

Input goes through the real rules (``InputMachine``); output is checked as event sequences
(against the shapes of the real captures, protocol.md §2.2) and as turns (``OutputTracker``).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeserver.audio import (
    DEFAULT_ENDPOINT_SILENCE_MS,
    VAD_THRESHOLD_RMS,
    SpeechEnd,
    SpeechStart,
    VoiceActivityDetector,
    frame_rms,
    noise,
    silence,
    synth_speech,
)
from fakeserver.responders import (
    Script,
    ScriptedConfig,
    ScriptedResponder,
    ToolCallScript,
    TurnScript,
    UserInput,
    default_script,
)
from novasonic.events import (
    BARGE_IN_TEXT,
    AudioOutput,
    CompletionEnd,
    CompletionStart,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    TextOutput,
    ToolUse,
    UsageEvent,
    UserSpeechEnd,
    UserSpeechStart,
)
from novasonic.models import NOVA_2_5_SONIC, NOVA_2_SONIC, NOVA_SONIC_1
from novasonic.rules import BargeIn, ToolCallRequested, ToolResultDelivered
from tests.helpers import factories as f
from tests.helpers.captures import capture_path, load_capture
from tests.helpers.responder_ctx import (
    FakeContext,
    names,
    opening,
    pcm_frames,
    silence_frames,
    speech_frames,
    track,
)

GYM = "i usually go to gym after work."
ROUTINE = "That’s a great routine."
LONG = "Here is a rather long answer that keeps going for quite a while, so you can interrupt it."


def of(events: list[OutputEvent], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def audio_blocks(events: list[OutputEvent]) -> list[list[AudioOutput]]:
    """The audioOutput chunks of each AUDIO block, in order."""
    blocks: list[list[AudioOutput]] = []
    open_ids: set[str] = set()
    for e in events:
        if isinstance(e, OutputContentStart) and str(e.type) == "AUDIO":
            open_ids.add(e.content_id)
            blocks.append([])
        elif isinstance(e, AudioOutput):
            assert e.content_id in open_ids, "audio outside its block"
            blocks[-1].append(e)
        elif isinstance(e, OutputContentEnd) and str(e.type) == "AUDIO":
            open_ids.discard(e.content_id)
    return blocks


async def start(model: str = NOVA_2_SONIC, script: Any = None, *, ctx_kw: dict[str, Any] | None = None,
                open_kw: dict[str, Any] | None = None, **options: Any) -> tuple[FakeContext, Any]:
    ctx = FakeContext(model, **(ctx_kw or {}))
    stream = ScriptedResponder(script, **options).open_stream(ctx)
    await ctx.send_all(stream, opening(nova1=model == NOVA_SONIC_1, **(open_kw or {})))
    return ctx, stream


async def utterance(ctx: FakeContext, stream: Any, speech_ms: float = 1920, silence_ms: float = 1600,
                    seed: int = 1, frame_ms: float = 32) -> None:
    await ctx.send_all(stream, speech_frames(speech_ms, seed=seed, frame_ms=frame_ms)
                       + silence_frames(silence_ms, frame_ms=frame_ms))


async def finish(ctx: FakeContext, stream: Any) -> None:
    await stream.wait_flushed()
    await ctx.close(stream)


def check_ids(events: list[OutputEvent], session_id: str = "sess-1", prompt_name: str = f.PROMPT) -> None:
    for e in events:
        d = e.to_dict()
        assert d["sessionId"] == session_id
        assert d["promptName"] == prompt_name
        if not isinstance(e, UserSpeechStart | UserSpeechEnd):
            assert d["completionId"]


def check_usage(events: list[OutputEvent]) -> None:
    prev = (0, 0, 0, 0)
    for u in of(events, UsageEvent):
        d, t = u.details.delta, u.details.total
        delta = (d.input.speech_tokens, d.input.text_tokens, d.output.speech_tokens, d.output.text_tokens)
        total = (t.input.speech_tokens, t.input.text_tokens, t.output.speech_tokens, t.output.text_tokens)
        assert total == tuple(a + b for a, b in zip(prev, delta, strict=True))
        assert u.total_input_tokens == total[0] + total[1]
        assert u.total_output_tokens == total[2] + total[3]
        assert u.total_tokens == sum(total)
        prev = total


def without_usage(seq: list[str]) -> list[str]:
    return [n for n in seq if n != "usageEvent"]


# --- audio helpers and the VAD --------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 24000])
def test_synth_speech_is_deterministic_loud_and_exact(rate: int) -> None:
    pcm = synth_speech(1265, rate, seed=7)
    assert pcm == synth_speech(1265, rate, seed=7)
    assert pcm != synth_speech(1265, rate, seed=8)
    assert len(pcm) == 2 * round(1265 * rate / 1000)
    win = 2 * rate * 40 // 1000
    rms = [frame_rms(pcm[o : o + win]) for o in range(0, len(pcm) - win + 1, win)]
    assert min(rms) > 3 * VAD_THRESHOLD_RMS
    assert silence(100, rate) == bytes(2 * rate // 10)
    assert frame_rms(noise(500, rate)) < VAD_THRESHOLD_RMS


def feed_in_frames(vad: VoiceActivityDetector, pcm: bytes, frame_ms: float, rate: int = 16000) -> list[Any]:
    step = 2 * int(rate * frame_ms / 1000)
    out: list[Any] = []
    for o in range(0, len(pcm), step):
        out.extend(vad.feed(pcm[o : o + step], rate))
    return out


def test_vad_matches_the_capture_offsets() -> None:
    """OME-N1: speech 0–1920 ms, end-point detected at 2400 (MEDIUM / default = 480 ms)."""
    pcm = synth_speech(1920, 16000, 1) + silence(1600)
    events = feed_in_frames(VoiceActivityDetector(), pcm, 32)
    assert events == [SpeechStart(0.0, 80.0), SpeechEnd(0.0, 1920.0, 2400.0)]
    assert DEFAULT_ENDPOINT_SILENCE_MS == 480


@pytest.mark.parametrize("frame_ms", [10, 20, 32, 100, 250])
def test_vad_is_independent_of_frame_size(frame_ms: float) -> None:
    pcm = silence(400) + synth_speech(1000, 16000, 2) + silence(200) + synth_speech(600, 16000, 3) + silence(1000)
    events = feed_in_frames(VoiceActivityDetector(), pcm, frame_ms)
    # the 200 ms pause is shorter than the end-point silence: one utterance
    assert events == [SpeechStart(400.0, 480.0), SpeechEnd(400.0, 2200.0, 2680.0)]


@pytest.mark.parametrize(("sensitivity", "delay"), [("HIGH", 320), ("MEDIUM", 480), ("LOW", 640), (None, 480)])
def test_vad_sensitivity(sensitivity: str | None, delay: float) -> None:
    vad = VoiceActivityDetector.for_sensitivity(sensitivity)
    events = feed_in_frames(vad, synth_speech(800, 16000, 4) + silence(1000), 32)
    assert events[-1] == SpeechEnd(0.0, 800.0, 800.0 + delay)
    custom = VoiceActivityDetector.for_sensitivity("HIGH", endpoint_silence_ms={"HIGH": 200})
    assert custom.endpoint_silence_ms == 200


def test_vad_ignores_clicks_and_noise_and_flushes() -> None:
    vad = VoiceActivityDetector()
    pcm = noise(480) + synth_speech(40, 16000, 5) + noise(520, seed=1) + synth_speech(500, 16000, 6)
    events = feed_in_frames(vad, pcm, 32)
    assert events == [SpeechStart(1040.0, 1120.0)]
    assert vad.in_speech and vad.speech_start_ms == 1040.0
    assert vad.flush() == [SpeechEnd(1040.0, 1520.0, 1520.0, flushed=True)]  # the incomplete window is dropped
    assert not vad.in_speech


def test_vad_follows_explicit_times_and_rates() -> None:
    vad = VoiceActivityDetector()
    ev = vad.feed(synth_speech(200, 24000, 1), 24000, at_ms=1000.0)
    assert ev == [SpeechStart(1000.0, 1080.0)]
    ev = vad.feed(silence(600, 24000), 24000)
    assert ev == [SpeechEnd(1000.0, 1200.0, 1680.0)]


# --- script data -------------------------------------------------------------------------------------


def test_script_data_normalises_sentences() -> None:
    t = TurnScript("hi", "Hello there.", follow_up="Done.")
    assert t.reply == ("Hello there.",) and t.follow_up == ("Done.",)
    call = ToolCallScript("getDate", {"a": 1}, filler=["One moment."])
    assert call.filler == ("One moment.",)
    with pytest.raises(TypeError):
        TurnScript("hi", [1])  # type: ignore[list-item]
    s = Script([t], default=None)
    assert s.turn_for(UserInput("speech", "", 0)) is t
    assert s.turn_for(UserInput("speech", "", 1)) is None
    assert default_script().turn_for(UserInput("speech", "", 5)).reply == ("I heard you.",)  # type: ignore[union-attr]


def test_config_validation() -> None:
    with pytest.raises(TypeError, match="nope"):
        ScriptedResponder(nope=1)
    with pytest.raises(ValueError):
        ScriptedConfig(pacing="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ScriptedConfig(barge_in_variant="other")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ScriptedConfig(barge_in_audio_stop="TOOL_USE")
    assert ScriptedConfig(barge_in_variant="pipecat").audio_stop_on_barge_in == "END_TURN"
    assert ScriptedConfig().audio_stop_on_barge_in == "PARTIAL_TURN"
    r = ScriptedResponder(None, ScriptedConfig(chunk_ms=20), lead_ms=0)
    assert r.config.chunk_ms == 20 and r.config.lead_ms == 0


# --- Nova 2: a plain audio turn ---------------------------------------------------------------------------


CAPTURE_A = [
    "userSpeechStart", "completionStart", "userSpeechEnd",
    "cs(TEXT USER FINAL)", "textOutput", "ce(TEXT PARTIAL_TURN)",
    "cs(TEXT ASSISTANT SPECULATIVE)", "textOutput", "ce(TEXT PARTIAL_TURN)",
    "cs(AUDIO ASSISTANT)", "AUDIO", "ce(AUDIO END_TURN)",
    "completionEnd",
]


def shape(events: list[OutputEvent]) -> list[str]:
    return ["AUDIO" if n.startswith("audio×") else n for n in without_usage(names(events))]


async def test_nova2_audio_turn_matches_capture_a() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [ROUTINE])]), final_text=False)
    await utterance(ctx, s)
    await finish(ctx, s)
    ev = ctx.emitted
    assert shape(ev) == CAPTURE_A
    # usage first (system prompt when the audio block opened), like OME-N1
    assert isinstance(ev[0], UsageEvent) and ev[0].details.delta.input.text_tokens > 0
    (start_ev,) = of(ev, UserSpeechStart)
    (end_ev,) = of(ev, UserSpeechEnd)
    assert (start_ev.input_audio_offset_ms, end_ev.input_audio_offset_ms, end_ev.input_audio_detection_offset_ms) == (
        0, 1920, 2400)
    starts = of(ev, OutputContentStart)
    assert [str(c.generation_stage) for c in starts if str(c.type) == "TEXT"] == ["FINAL", "SPECULATIVE"]
    assert starts[0].additional_model_fields == '{"generationStage":"FINAL"}'
    assert starts[1].additional_model_fields == '{"generationStage":"SPECULATIVE"}'
    audio_start = starts[2]
    assert audio_start.additional_model_fields is None
    assert audio_start.audio_output_configuration.to_dict() == {
        "channelCount": 1, "encoding": "base64", "mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16}
    assert [t.content for t in of(ev, TextOutput)] == [GYM, ROUTINE]
    (block,) = audio_blocks(ev)
    pcm = b"".join(a.pcm for a in block)
    duration_ms = 55 * len(ROUTINE)
    assert len(pcm) == 2 * 16 * duration_ms  # 16 samples per ms
    assert pcm == synth_speech(duration_ms, 16000, seed=__import__("zlib").crc32(ROUTINE.encode()))
    assert {len(a.pcm) for a in block[:-1]} == {1280}  # 40 ms @ 16 kHz
    assert frame_rms(pcm) > VAD_THRESHOLD_RMS
    check_ids(ev)
    check_usage(ev)
    # one completion id everywhere; fresh content ids per block
    assert len({e.completion_id for e in ev if hasattr(e, "completion_id")}) == 1
    assert len({c.content_id for c in starts}) == len(starts)
    tracker, _ = track(ev)
    (turn,) = tracker.turns
    assert (turn.user_text, turn.assistant_text, turn.interrupted) == (GYM, ROUTINE, False)
    assert (turn.user_speech_start_ms, turn.user_speech_end_ms, turn.user_speech_detected_ms) == (0, 1920, 2400)
    assert turn.audio_ms == duration_ms
    assert tracker.usage_total.total == ev[-2].total_tokens  # last usage before completionEnd


@pytest.mark.parametrize("capture", ["nova2-asr-turn.events.json", "nova2-tool-turn.events.json"])
async def test_shape_matches_the_real_captures(capture: str) -> None:
    """Same event names in the same order as the real Nova 2 captures (the completionStart /
    userSpeechEnd order varies in the service; ours is OME-N1's and OME-TOOL's)."""
    real = [e for e in load_capture(capture) if not isinstance(e, UsageEvent)]
    if capture.startswith("nova2-tool"):
        call = ToolCallScript("report_pronunciation_coaching", {"target_form": "x"},
                              filler=["Great! Say this after me.", "Now you repeat that sentence for me."])
        script = Script([TurnScript("i think i found three very useful videos.", tool_call=call)])
    else:
        script = Script([TurnScript("hello", ["Sorry, that part sounds a bit unclear."])])
    ctx, s = await start(script=script, final_text=False, completion_end_while_tool_pending=True)
    await utterance(ctx, s, silence_ms=5000)
    await finish(ctx, s)
    ours = shape(ctx.emitted)
    theirs = shape(real)
    if capture.startswith("nova2-asr"):
        assert theirs[1:3] == ["userSpeechEnd", "completionStart"]
        theirs[1:3] = ["completionStart", "userSpeechEnd"]
    else:
        ours = [n for n in ours if n != "AUDIO"]  # the recorder left out this capture's audioOutput events
    assert ours == theirs


async def test_multi_sentence_turn_final_text_after_audio() -> None:
    """§2.2 B: per sentence SPECULATIVE + AUDIO (PARTIAL_TURN, last END_TURN), then FINAL blocks
    (first END_TURN, later PARTIAL_TURN)."""
    ctx, s = await start(script=Script([TurnScript(GYM, ["One.", "Two two.", "Three three three."])]))
    await utterance(ctx, s, silence_ms=4000)
    await finish(ctx, s)
    seq = without_usage(names(ctx.emitted))
    body = seq[seq.index("ce(TEXT PARTIAL_TURN)") + 1 :]
    assert body == [
        "cs(TEXT ASSISTANT SPECULATIVE)", "textOutput", "ce(TEXT PARTIAL_TURN)", "cs(AUDIO ASSISTANT)", "audio×8",
        "ce(AUDIO PARTIAL_TURN)",
        "cs(TEXT ASSISTANT SPECULATIVE)", "textOutput", "ce(TEXT PARTIAL_TURN)", "cs(AUDIO ASSISTANT)", "audio×11",
        "ce(AUDIO PARTIAL_TURN)",
        "cs(TEXT ASSISTANT SPECULATIVE)", "textOutput", "ce(TEXT PARTIAL_TURN)", "cs(AUDIO ASSISTANT)", "audio×25",
        "ce(AUDIO END_TURN)",
        "cs(TEXT ASSISTANT FINAL)", "textOutput", "ce(TEXT END_TURN)",
        "cs(TEXT ASSISTANT FINAL)", "textOutput", "ce(TEXT PARTIAL_TURN)",
        "cs(TEXT ASSISTANT FINAL)", "textOutput", "ce(TEXT PARTIAL_TURN)",
        "completionEnd",
    ]
    check_usage(ctx.emitted)
    tracker, _ = track(ctx.emitted)
    (turn,) = tracker.turns
    assert turn.assistant_final == turn.assistant_speculative == "One. Two two. Three three three."
    assert turn.audio_blocks == 3


async def test_turns_in_order_then_default_and_new_completion_per_turn() -> None:
    script = Script([TurnScript("first.", ["Reply one."]), TurnScript("second.", ["Reply two."])],
                    default=TurnScript("more.", ["Default reply."]))
    ctx, s = await start(script=script)
    for seed in (1, 2, 3):
        await utterance(ctx, s, speech_ms=800, silence_ms=2000, seed=seed)
    await finish(ctx, s)
    tracker, _ = track(ctx.emitted)
    assert [(t.user_text, t.assistant_text) for t in tracker.turns] == [
        ("first.", "Reply one."), ("second.", "Reply two."), ("more.", "Default reply.")]
    starts = of(ctx.emitted, CompletionStart)
    ends = of(ctx.emitted, CompletionEnd)
    assert len(starts) == len(ends) == 3
    assert len({c.completion_id for c in starts}) == 3
    # every event between a completionStart and its end carries that completion's id
    current = None
    for e in ctx.emitted:
        if isinstance(e, CompletionStart):
            current = e.completion_id
        elif hasattr(e, "completion_id") and not isinstance(e, UsageEvent):
            assert e.completion_id == current
    check_usage(ctx.emitted)


async def test_one_completion_over_turns_when_not_ended_after_turn() -> None:
    ctx, s = await start(script=Script([TurnScript("a.", ["One."]), TurnScript("b.", ["Two."])]),
                         completion_end_after_turn=False)
    await utterance(ctx, s, speech_ms=600, silence_ms=1500, seed=1)
    await utterance(ctx, s, speech_ms=600, silence_ms=1500, seed=2)
    await ctx.send(s, f.content_end("mic"))
    await ctx.send(s, f.prompt_end())
    await finish(ctx, s)
    assert len(of(ctx.emitted, CompletionStart)) == 1
    assert names(ctx.emitted)[-1] == "completionEnd"  # at prompt end
    assert len(track(ctx.emitted)[0].turns) == 2


async def test_unscripted_utterance_gets_no_answer() -> None:
    ctx, s = await start(script=Script([], default=None))
    await utterance(ctx, s)
    await finish(ctx, s)
    assert without_usage(names(ctx.emitted)) == ["userSpeechStart", "completionStart", "userSpeechEnd", "completionEnd"]


async def test_dynamic_script_function() -> None:
    seen: list[UserInput] = []

    def script(user: UserInput) -> TurnScript | None:
        seen.append(user)
        if user.kind == "text":
            return TurnScript(reply=[f"You typed {user.text}"])
        return TurnScript(f"utterance {user.index}", [f"Answer {user.index}."])

    ctx, s = await start(script=script)
    await utterance(ctx, s, speech_ms=640, silence_ms=1500)
    await ctx.send_all(s, f.interactive_text_block("t1", "pizza"))
    await ctx.send_all(s, silence_frames(2000))
    await finish(ctx, s)
    assert [(u.kind, u.text, u.index) for u in seen] == [("speech", "", 0), ("text", "pizza", 1)]
    assert (seen[0].start_ms, seen[0].end_ms) == (0.0, 640.0)
    tracker, _ = track(ctx.emitted)
    assert [(t.user_text, t.assistant_text) for t in tracker.turns] == [
        ("utterance 0", "Answer 0."), ("", "You typed pizza")]


# --- Nova Sonic 1 ----------------------------------------------------------------------------------


async def test_nova1_shape() -> None:
    """No userSpeech events; completionStart when the turn starts; 24 kHz audio in 1920 B chunks
    (SQ); no completionEnd until the prompt ends."""
    ctx, s = await start(NOVA_SONIC_1, Script([TurnScript(GYM, [ROUTINE, "Keep going."])]),
                         open_kw={"out_rate": 24000})
    await utterance(ctx, s, silence_ms=4000)
    seq = without_usage(names(ctx.emitted))
    assert "userSpeechStart" not in seq and "userSpeechEnd" not in seq
    assert seq[:4] == ["completionStart", "cs(TEXT USER FINAL)", "textOutput", "ce(TEXT PARTIAL_TURN)"]
    assert "completionEnd" not in seq
    assert isinstance(ctx.emitted[0], UsageEvent)
    blocks = audio_blocks(ctx.emitted)
    assert len(blocks) == 2
    assert {len(a.pcm) for a in blocks[0][:-1]} == {1920}
    assert next(c for c in of(ctx.emitted, OutputContentStart) if str(c.type) == "AUDIO").sample_rate_hertz == 24000
    await ctx.send(s, f.content_end("mic"))
    await ctx.send(s, f.prompt_end())
    await finish(ctx, s)
    assert names(ctx.emitted)[-1] == "completionEnd"
    check_ids(ctx.emitted)
    check_usage(ctx.emitted)
    tracker, _ = track(ctx.emitted, sample_rate=24000)
    (turn,) = tracker.turns
    assert turn.user_text == GYM and turn.assistant_final == f"{ROUTINE} Keep going."


async def test_nova1_ignores_interactive_text() -> None:
    ctx, s = await start(NOVA_SONIC_1, Script([TurnScript("x", ["Should not be said."])]))
    await ctx.send_all(s, silence_frames(320))
    before = list(ctx.emitted)
    await ctx.send_all(s, f.interactive_text_block("t1", "hello?"))
    await ctx.send_all(s, silence_frames(2000))
    await finish(ctx, s)
    assert ctx.emitted == before  # only the system-prompt usage event
    assert all(isinstance(e, UsageEvent) for e in ctx.emitted)


# --- interactive text (Nova 2+) ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", [NOVA_2_SONIC, NOVA_2_5_SONIC])
async def test_interactive_text_turn(model: str) -> None:
    ctx, s = await start(model, Script([TurnScript("ignored for text", ["It is sunny."])]))
    await ctx.send_all(s, silence_frames(320))
    await ctx.send_all(s, f.interactive_text_block("t1", "What's the weather?"))
    await ctx.send_all(s, silence_frames(2000))
    await finish(ctx, s)
    seq = without_usage(names(ctx.emitted))
    assert seq == [
        "completionStart", "cs(TEXT USER FINAL)", "textOutput", "ce(TEXT PARTIAL_TURN)",
        "cs(TEXT ASSISTANT SPECULATIVE)", "textOutput", "ce(TEXT PARTIAL_TURN)", "cs(AUDIO ASSISTANT)", "audio×17",
        "ce(AUDIO END_TURN)", "cs(TEXT ASSISTANT FINAL)", "textOutput", "ce(TEXT END_TURN)", "completionEnd",
    ]
    assert of(ctx.emitted, TextOutput)[0].content == ""  # pipecat #4042
    tracker, _ = track(ctx.emitted)
    assert tracker.turns[0].assistant_text == "It is sunny."


async def test_interactive_text_echo_and_text_only_stream() -> None:
    """No audio block at all: playback falls back to the scaled clock and still completes."""
    ctx, s = await start(script=Script([TurnScript(reply=["Sure, here you go."])]),
                         open_kw={"audio": False}, interactive_text_transcript="echo")
    await ctx.send_all(s, f.interactive_text_block("t1", "Tell me a joke"))
    await s.wait_idle()
    await finish(ctx, s)
    tracker, _ = track(ctx.emitted)
    (turn,) = tracker.turns
    assert (turn.user_text, turn.assistant_text) == ("Tell me a joke", "Sure, here you go.")
    assert names(ctx.emitted)[-1] == "completionEnd"


async def test_interactive_text_can_require_an_open_audio_block() -> None:
    ctx, s = await start(script=Script([TurnScript(reply=["Hi."])]), open_kw={"audio": False},
                         interactive_text_requires_audio=True)
    await ctx.send_all(s, f.interactive_text_block("t1", "hello"))
    await s.wait_idle()
    await finish(ctx, s)
    assert ctx.emitted == []


# --- tools ---------------------------------------------------------------------------------------------


def tool_ids(events: list[OutputEvent]) -> list[str]:
    return [t.tool_use_id for t in of(events, ToolUse)]


async def test_tool_call_result_follow_up_nova2() -> None:
    call = ToolCallScript("getWeather", {"city": "Paris"}, filler=["Let me check."])
    script = Script([TurnScript("weather in paris?", tool_call=call,
                                follow_up=lambda r: [f"It is {r['temp']} degrees in Paris."])])
    ctx, s = await start(script=script, open_kw={"tools": [f.tool("getWeather")]})
    await utterance(ctx, s, silence_ms=2000)
    seq = without_usage(names(ctx.emitted))
    i = seq.index("cs(TOOL TOOL)")
    assert seq[i - 3 : i] == ["cs(TEXT USER FINAL)", "textOutput", "ce(TEXT PARTIAL_TURN)"]
    assert seq[i + 1 : i + 3] == ["toolUse", "ce(TOOL TOOL_USE)"]
    # Nova 2: the filler is spoken while the tool runs (capture D)
    assert seq[i + 3 : i + 6] == ["cs(TEXT ASSISTANT SPECULATIVE)", "textOutput", "ce(TEXT PARTIAL_TURN)"]
    assert "completionEnd" not in seq  # a result is owed
    (use,) = of(ctx.emitted, ToolUse)
    assert json.loads(use.content) == {"city": "Paris"} and use.content == '{"city":"Paris"}'
    assert use.tool_name == "getWeather" and str(use.role) == "TOOL"
    tool_start = next(c for c in of(ctx.emitted, OutputContentStart) if str(c.type) == "TOOL")
    assert tool_start.tool_use_output_configuration.media_type == "application/json"
    n_before = len(ctx.emitted)
    await ctx.send_all(s, f.tool_result_block("r1", use.tool_use_id, {"temp": 21}))
    await ctx.send_all(s, silence_frames(4000))
    await finish(ctx, s)
    after = without_usage(names(ctx.emitted[n_before:]))
    assert after[:3] == ["cs(TEXT ASSISTANT SPECULATIVE)", "textOutput", "ce(TEXT PARTIAL_TURN)"]
    assert after[-1] == "completionEnd"
    tracker, records = track(ctx.emitted, tool_results=[use.tool_use_id])
    (turn,) = tracker.turns
    assert turn.user_text == "weather in paris?"
    assert turn.assistant_final == "Let me check. It is 21 degrees in Paris."
    (tc,) = turn.tool_calls
    assert (tc.name, tc.arguments, tc.requested, tc.resolved) == ("getWeather", {"city": "Paris"}, True, True)
    assert len([r for r in records if isinstance(r, ToolCallRequested)]) == 1
    check_usage(ctx.emitted)


async def test_tool_call_nova1_waits_silently() -> None:
    call = ToolCallScript("getDateTool", {}, filler=["Not spoken on Nova 1."])
    script = Script([TurnScript("what day is it?", tool_call=call, follow_up=["It is Monday."])])
    ctx, s = await start(NOVA_SONIC_1, script, open_kw={"tools": [f.tool()]})
    await utterance(ctx, s, silence_ms=2000)
    seq = without_usage(names(ctx.emitted))
    assert seq[-3:] == ["cs(TOOL TOOL)", "toolUse", "ce(TOOL TOOL_USE)"]
    (tid,) = tool_ids(ctx.emitted)
    assert s.pending_tool_use_ids == (tid,)
    await ctx.send_all(s, f.tool_result_block("r1", tid, {"day": "Monday"}))
    await ctx.send_all(s, silence_frames(2000))
    await finish(ctx, s)
    texts = [t.content for t in of(ctx.emitted, TextOutput)]
    assert "Not spoken on Nova 1." not in texts
    assert texts[-1] == "It is Monday."
    assert s.pending_tool_use_ids == ()


async def test_double_encoded_arguments() -> None:
    call = ToolCallScript("t", {"x": 1})
    ctx, s = await start(script=Script([TurnScript("go", tool_call=call)]), double_encode_arguments=True)
    await utterance(ctx, s)
    await finish(ctx, s)
    (use,) = of(ctx.emitted, ToolUse)
    assert json.loads(use.content) == '{"x":1}'
    assert use.arguments == {"x": 1}  # decode_tool_arguments peels the extra layer


async def test_chained_tools_with_filler_between() -> None:
    """LiveKit #4887: tool A → speech → tool B (chosen from A's result) → speech → answer."""

    def second(result: dict[str, Any]) -> ToolCallScript:
        return ToolCallScript("getForecast", {"station": result["station"]}, filler=["Almost there."])

    first = ToolCallScript("findStation", {"city": "Oslo"}, filler=["Let me look that up."], then_tool_call=second)
    script = Script([TurnScript("forecast for oslo?", tool_call=first,
                                follow_up=lambda r: [f"Expect {r['sky']} skies."])])
    ctx, s = await start(script=script)
    await utterance(ctx, s, silence_ms=2000)
    (tid_a,) = tool_ids(ctx.emitted)
    await ctx.send_all(s, f.tool_result_block("r1", tid_a, {"station": "OSL-1"}))
    await ctx.send_all(s, silence_frames(2000))
    tid_a2, tid_b = tool_ids(ctx.emitted)
    assert tid_a2 == tid_a
    uses = of(ctx.emitted, ToolUse)
    assert (uses[1].tool_name, uses[1].arguments) == ("getForecast", {"station": "OSL-1"})
    await ctx.send_all(s, f.tool_result_block("r2", tid_b, {"sky": "clear"}))
    await ctx.send_all(s, silence_frames(2000))
    await finish(ctx, s)
    spec = [t.content for t in of(ctx.emitted, TextOutput) if t.content in
            ("Let me look that up.", "Almost there.", "Expect clear skies.")]
    assert spec[::2] == ["Let me look that up.", "Almost there.", "Expect clear skies."]  # SPECULATIVE, FINAL pairs
    seq = without_usage(names(ctx.emitted))
    # each segment ends with END_TURN audio then its FINAL text; tool B comes after A's filler
    assert seq.count("ce(AUDIO END_TURN)") == 3
    assert seq.index("cs(TOOL TOOL)") < seq.index("ce(AUDIO END_TURN)") < len(seq) - 1 - seq[::-1].index("cs(TOOL TOOL)")
    assert seq[-1] == "completionEnd" and seq.count("completionEnd") == 1
    tracker, _ = track(ctx.emitted, tool_results=[tid_a, tid_b])
    (turn,) = tracker.turns
    assert [c.name for c in turn.tool_calls] == ["findStation", "getForecast"]
    assert all(c.resolved for c in turn.tool_calls)
    assert turn.assistant_final == "Let me look that up. Almost there. Expect clear skies."


async def test_completion_may_end_while_a_tool_result_is_owed() -> None:
    """OME-TOOL: completionEnd after the filler, result still owed; the follow-up opens a new completion."""
    call = ToolCallScript("t", filler=["Working on it."])
    ctx, s = await start(script=Script([TurnScript("go", tool_call=call, follow_up=["Done."])]),
                         completion_end_while_tool_pending=True)
    await utterance(ctx, s, silence_ms=2500)
    assert names(ctx.emitted)[-1] == "completionEnd"
    (tid,) = tool_ids(ctx.emitted)
    await ctx.send_all(s, f.tool_result_block("r1", tid, {"ok": True}))
    await ctx.send_all(s, silence_frames(2000))
    await finish(ctx, s)
    starts = of(ctx.emitted, CompletionStart)
    assert len(starts) == 2 and starts[0].completion_id != starts[1].completion_id
    assert names(ctx.emitted)[-1] == "completionEnd"
    assert [t.content for t in of(ctx.emitted, TextOutput)][-1] == "Done."


async def test_later_turn_answered_while_a_tool_result_is_owed() -> None:
    script = Script([TurnScript("slow tool", tool_call=ToolCallScript("slow"), follow_up=["Slow done."]),
                     TurnScript("meanwhile", ["Meanwhile answer."])])
    ctx, s = await start(NOVA_SONIC_1, script)
    await utterance(ctx, s, speech_ms=600, silence_ms=1500, seed=1)
    await utterance(ctx, s, speech_ms=600, silence_ms=2000, seed=2)
    (tid,) = tool_ids(ctx.emitted)
    await ctx.send_all(s, f.tool_result_block("r1", tid, {"ok": True}))
    await ctx.send_all(s, silence_frames(2000))
    await finish(ctx, s)
    finals = [t.content for t in of(ctx.emitted, TextOutput)]
    assert finals.index("Meanwhile answer.") < finals.index("Slow done.")


async def test_results_for_unknown_ids_are_ignored() -> None:
    ctx, s = await start(script=Script([TurnScript("go", tool_call=ToolCallScript("t"), follow_up=["Done."])]))
    await utterance(ctx, s)
    n = len(ctx.emitted)
    fake = ToolResultDelivered(prompt_name=f.PROMPT, content_name="r9", tool_use_id="not-ours", result={"a": 1})
    await s.on_event(f.content_end("r9"), [fake])
    await s.wait_flushed()
    assert len(ctx.emitted) == n
    await finish(ctx, s)


# --- barge-in ----------------------------------------------------------------------------------------------


def barge_in_pcm() -> bytes:
    """User speaks 0–1920 ms, silence until 3520, speaks again 3520–4320, then silence."""
    return (synth_speech(1920, 16000, 1) + silence(1600) + synth_speech(800, 16000, 9) + silence(2500))


async def barge_in_run(model: str = NOVA_2_SONIC, *, frame_ms: float = 32, speed: float = math.inf,
                       tail_ms: float = 0, **options: Any) -> FakeContext:
    script = Script([TurnScript(GYM, [LONG, "A second sentence never said."]), TurnScript("stop.", ["Okay."])])
    ctx, s = await start(model, script, ctx_kw={"speed": speed}, **options)
    await ctx.send_all(s, pcm_frames(barge_in_pcm() + silence(tail_ms), frame_ms=frame_ms))
    await finish(ctx, s)
    return ctx


def interrupted_part(events: list[OutputEvent]) -> list[str]:
    seq = without_usage(names(events))
    i = seq.index("cs(AUDIO ASSISTANT)")
    j = i + seq[i:].index("userSpeechEnd") if "userSpeechEnd" in seq[i:] else i + seq[i:].index("cs(TEXT USER FINAL)")
    return seq[i:j]


# Reply audio starts at the end-point (2400 ms) with a 300 ms lead: chunk k is due at 2100 + 40k.
# The second utterance starts at 3520 and is detected at 3600, so chunks 0..37 precede the barge-in.
CHUNKS_BEFORE_BARGE_IN = 38


def spoken_prefix() -> str:
    n_chunks = math.ceil(55 * len(LONG) / 40)
    words = LONG.split()
    return " ".join(words[: int(len(words) * CHUNKS_BEFORE_BARGE_IN / n_chunks)])


async def test_barge_in_spec_variant() -> None:
    ctx = await barge_in_run()
    assert interrupted_part(ctx.emitted) == [
        "cs(AUDIO ASSISTANT)", f"audio×{CHUNKS_BEFORE_BARGE_IN}",
        "userSpeechStart", "ce(AUDIO PARTIAL_TURN)",
        "cs(TEXT ASSISTANT FINAL)", "textOutput", "textOutput", "ce(TEXT INTERRUPTED)",
    ]
    texts = [t.content for t in of(ctx.emitted, TextOutput)]
    i = texts.index(BARGE_IN_TEXT)
    assert texts[i - 1] == spoken_prefix() and spoken_prefix()
    assert "A second sentence never said." not in texts
    (second_start,) = [e for e in of(ctx.emitted, UserSpeechStart) if e.input_audio_offset_ms]
    assert second_start.input_audio_offset_ms == 3520
    assert [e.input_audio_offset_ms for e in of(ctx.emitted, UserSpeechEnd)] == [1920, 4320]
    tracker, records = track(ctx.emitted)
    first, second = tracker.turns
    assert first.interrupted and first.barge_in_reason == "user-speech"
    assert first.assistant_final == spoken_prefix()
    assert (second.user_text, second.assistant_text, second.interrupted) == ("stop.", "Okay.", False)
    assert len([r for r in records if isinstance(r, BargeIn)]) == 1
    # the completion stays open over the barge-in and ends after the second turn
    assert len(of(ctx.emitted, CompletionStart)) == 1 and names(ctx.emitted)[-1] == "completionEnd"
    check_usage(ctx.emitted)


async def test_barge_in_pipecat_variant() -> None:
    """client-behaviours #22: AUDIO contentEnd END_TURN before FINAL TEXT contentEnd INTERRUPTED."""
    ctx = await barge_in_run(barge_in_variant="pipecat")
    assert interrupted_part(ctx.emitted) == [
        "cs(AUDIO ASSISTANT)", f"audio×{CHUNKS_BEFORE_BARGE_IN}",
        "userSpeechStart", "ce(AUDIO END_TURN)",
        "cs(TEXT ASSISTANT FINAL)", "textOutput", "textOutput", "ce(TEXT INTERRUPTED)",
    ]
    tracker, _ = track(ctx.emitted)
    assert tracker.turns[0].interrupted and tracker.turns[1].user_text == "stop."


async def test_barge_in_silent_variant_and_explicit_stop() -> None:
    ctx = await barge_in_run(barge_in_variant="silent")
    assert interrupted_part(ctx.emitted) == [
        "cs(AUDIO ASSISTANT)", f"audio×{CHUNKS_BEFORE_BARGE_IN}", "userSpeechStart", "ce(AUDIO PARTIAL_TURN)"]
    assert BARGE_IN_TEXT not in [t.content for t in of(ctx.emitted, TextOutput)]
    tracker, _ = track(ctx.emitted)
    assert tracker.turns[0].interrupted  # inferred from userSpeechStart during audio
    ctx = await barge_in_run(barge_in_audio_stop="INTERRUPTED", barge_in_marker=False)
    assert interrupted_part(ctx.emitted)[3:] == [
        "ce(AUDIO INTERRUPTED)", "cs(TEXT ASSISTANT FINAL)", "textOutput", "ce(TEXT INTERRUPTED)"]


async def test_barge_in_nova1_uses_the_marker() -> None:
    ctx = await barge_in_run(NOVA_SONIC_1)
    part = interrupted_part(ctx.emitted)
    assert part == ["cs(AUDIO ASSISTANT)", f"audio×{CHUNKS_BEFORE_BARGE_IN}", "ce(AUDIO PARTIAL_TURN)",
                    "cs(TEXT ASSISTANT FINAL)", "textOutput", "textOutput", "ce(TEXT INTERRUPTED)"]
    tracker, _ = track(ctx.emitted)
    assert tracker.turns[0].interrupted and tracker.turns[0].barge_in_reason in ("marker", "stop-reason")
    assert tracker.turns[1].user_text == "stop."


async def test_barge_in_disabled_queues_the_next_turn() -> None:
    ctx = await barge_in_run(barge_in=False, tail_ms=5000)
    assert BARGE_IN_TEXT not in [t.content for t in of(ctx.emitted, TextOutput)]
    tracker, _ = track(ctx.emitted)
    assert [t.user_text for t in tracker.turns] == [GYM, "stop."]
    assert "A second sentence never said." in tracker.turns[0].assistant_final


@pytest.mark.parametrize("frame_ms", [20, 32, 100])
@pytest.mark.parametrize("speed", [math.inf, 1.0, 1000.0])
async def test_barge_in_point_is_the_same_at_any_speed_and_frame_size(frame_ms: float, speed: float) -> None:
    ctx = await barge_in_run(frame_ms=frame_ms, speed=speed)
    assert interrupted_part(ctx.emitted)[1] == f"audio×{CHUNKS_BEFORE_BARGE_IN}"


# --- determinism, pacing, ending ----------------------------------------------------------------------------


async def full_session() -> list[str]:
    call = ToolCallScript("lookup", {"q": "x"}, filler=["One moment."])
    script = Script([TurnScript(GYM, [ROUTINE]), TurnScript("look it up", tool_call=call, follow_up=["Found it."]),
                     TurnScript(GYM, [LONG]), TurnScript("stop.", ["Okay."])])
    ctx, s = await start(script=script)
    await utterance(ctx, s, silence_ms=3000)
    await utterance(ctx, s, seed=2, silence_ms=1500)
    (tid,) = tool_ids(ctx.emitted)
    await ctx.send_all(s, f.tool_result_block("r1", tid, {"found": True}))
    await ctx.send_all(s, silence_frames(2000))
    await ctx.send_all(s, f.interactive_text_block("t1", "hello"))
    await ctx.send_all(s, pcm_frames(barge_in_pcm()))
    await ctx.send(s, f.content_end("mic"))
    await ctx.send(s, f.prompt_end())
    await ctx.send(s, f.session_end())
    await finish(ctx, s)
    return [e.to_json() for e in ctx.emitted]


async def test_same_input_same_output() -> None:
    first = await full_session()
    second = await full_session()
    assert first == second
    assert len(first) > 100


async def test_burst_pacing_sends_everything_at_once() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [LONG])]), pacing="burst")
    await utterance(ctx, s, silence_ms=480)  # stop streaming right at the end-point
    await s.wait_flushed()
    assert names(ctx.emitted)[-1] == "completionEnd"
    await finish(ctx, s)


async def test_realtime_pacing_completes_on_the_clock() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [ROUTINE])]), pacing="realtime")
    await utterance(ctx, s, silence_ms=480)
    await s.wait_idle()
    assert names(ctx.emitted)[-1] == "completionEnd"
    await finish(ctx, s)


async def test_realtime_pacing_takes_scaled_clock_time() -> None:
    """At speed 20 a 1.265 s sentence (300 ms released at once) takes ≥ 965/20 ms of wall time."""
    import time

    ctx, s = await start(script=Script([TurnScript(reply=[ROUTINE])]), pacing="realtime",
                         ctx_kw={"speed": 20.0}, open_kw={"audio": False})
    t0 = time.monotonic()
    await ctx.send_all(s, f.interactive_text_block("t1", "hi"))
    await s.wait_idle()
    assert time.monotonic() - t0 >= (55 * len(ROUTINE) - 300 - 40) / 1000 / 20
    assert names(ctx.emitted)[-1] == "completionEnd"
    await finish(ctx, s)


async def test_audio_pacing_waits_for_audio_then_falls_back_when_it_stalls() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [LONG])]), audio_stall_wall_floor_s=0.02)
    await utterance(ctx, s, silence_ms=480)
    await s.wait_flushed()
    released = len(audio_blocks(ctx.emitted)[0])
    assert released == 300 // 40 + 1  # only the lead: audio time has not moved past the end-point
    await s.wait_idle()  # the client stopped streaming: the clock takes over after the stall
    assert names(ctx.emitted)[-1] == "completionEnd"
    await finish(ctx, s)


async def test_audio_pacing_follows_input_audio() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [LONG])]), audio_stall_s=None)
    await utterance(ctx, s, silence_ms=480)
    for extra_ms in (400, 800):
        await ctx.send_all(s, silence_frames(400))
        await s.wait_flushed()
        assert len(audio_blocks(ctx.emitted)[0]) == (300 + extra_ms) // 40 + 1
    await finish(ctx, s)


async def test_prompt_end_stops_generation() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [LONG, "More."])]))
    await utterance(ctx, s, silence_ms=800)
    await ctx.send(s, f.content_end("mic"))
    await ctx.send(s, f.prompt_end())
    await s.wait_flushed()
    n = len(ctx.emitted)
    await ctx.send(s, f.session_end())
    await ctx.end_input(s)
    await finish(ctx, s)
    assert len(ctx.emitted) == n
    assert "More." not in [t.content for t in of(ctx.emitted, TextOutput)]
    assert "completionEnd" not in names(ctx.emitted)  # an AUDIO block was still open


async def test_audio_block_closed_mid_utterance_ends_the_utterance() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [ROUTINE])]))
    await ctx.send_all(s, speech_frames(960))
    await ctx.send(s, f.content_end("mic"))
    await s.wait_idle()  # no audio block: the clock paces the reply
    await finish(ctx, s)
    (end,) = of(ctx.emitted, UserSpeechEnd)
    assert (end.input_audio_offset_ms, end.input_audio_detection_offset_ms) == (960, 960)
    assert names(ctx.emitted)[-1] == "completionEnd"


async def test_input_end_is_bounded_with_a_tool_result_owed() -> None:
    ctx, s = await start(script=Script([TurnScript("go", tool_call=ToolCallScript("t"), follow_up=["Never."])]))
    await utterance(ctx, s)
    await ctx.end_input(s)  # returns: the result can no longer arrive
    await finish(ctx, s)
    assert "Never." not in [t.content for t in of(ctx.emitted, TextOutput)]


async def test_closed_stream_stops_everything() -> None:
    ctx, s = await start(script=Script([TurnScript(GYM, [LONG])]))
    await utterance(ctx, s, silence_ms=800)
    await s.wait_flushed()
    ctx._closed = True  # the handler closed the stream: emit now returns False
    n = len(ctx.emitted)
    await ctx.send_all(s, silence_frames(3000))
    await s.wait_idle()
    assert len(ctx.emitted) == n
    await ctx.close(s)


async def test_shared_turns_across_streams() -> None:
    responder = ScriptedResponder(Script([TurnScript("a.", ["One."]), TurnScript("b.", ["Two."])]),
                                  share_turns_across_streams=True)
    texts = []
    for i in range(2):
        ctx = FakeContext(session_id=f"sess-{i}", stream_index=i)
        s = responder.open_stream(ctx)
        await ctx.send_all(s, opening())
        await utterance(ctx, s, speech_ms=600, silence_ms=1500)
        await finish(ctx, s)
        texts.append(track(ctx.emitted)[0].turns[0].user_text)
        check_ids(ctx.emitted, session_id=f"sess-{i}")
    assert texts == ["a.", "b."]


# --- invariants under random conversations ------------------------------------------------------------------


def check_well_formed(events: list[OutputEvent]) -> None:
    """Blocks balanced and not interleaved wrongly, audio only inside its block, completions alternate."""
    from novasonic.events import parse_output

    open_blocks: dict[str, str] = {}
    completion_open = False
    for e in events:
        assert parse_output(e.to_json()) == e
        if isinstance(e, CompletionStart):
            assert not completion_open
            completion_open = True
        elif isinstance(e, CompletionEnd):
            assert completion_open and not open_blocks
            completion_open = False
        elif isinstance(e, OutputContentStart):
            assert completion_open and e.content_id not in open_blocks
            open_blocks[e.content_id] = str(e.type)
        elif isinstance(e, OutputContentEnd):
            assert open_blocks.pop(e.content_id) == str(e.type)
        elif isinstance(e, AudioOutput | TextOutput | ToolUse):
            assert e.content_id in open_blocks
    assert not open_blocks


@settings(max_examples=25, deadline=None)
@given(
    segments=st.lists(st.tuples(st.integers(0, 60), st.integers(2, 80)), min_size=1, max_size=5),
    model=st.sampled_from([NOVA_SONIC_1, NOVA_2_SONIC]),
    variant=st.sampled_from(["spec", "pipecat", "silent"]),
    frame_ms=st.sampled_from([20, 32, 64]),
)
def test_random_conversations_are_well_formed(segments: list[tuple[int, int]], model: str, variant: str,
                                              frame_ms: int) -> None:
    """Speech of 0–2400 ms and pauses of 80–3200 ms (40 ms steps), any barge-in variant."""

    async def run() -> list[OutputEvent]:
        script = Script([], default=TurnScript("something.", ["First sentence of the answer.", "Second one."]))
        ctx, s = await start(model, script, barge_in_variant=variant)
        pcm = b"".join(synth_speech(40 * a, 16000, i) + silence(40 * b) for i, (a, b) in enumerate(segments))
        await ctx.send_all(s, pcm_frames(pcm, frame_ms=frame_ms))
        await ctx.send(s, f.content_end("mic"))
        await s.wait_idle()
        await ctx.send(s, f.prompt_end())
        await ctx.send(s, f.session_end())
        await ctx.end_input(s)
        await finish(ctx, s)
        return ctx.emitted

    events = asyncio.run(run())
    check_well_formed(events)
    check_usage(events)
    tracker, _ = track(events)
    answered = [t for t in tracker.turns if t.user_text]
    assert len(answered) == len(of(events, UserSpeechEnd)) or model == NOVA_SONIC_1
    for turn in answered:
        assert turn.assistant_text
