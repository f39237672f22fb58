"""Scripted conversations through the STOCK SDK client over loopback TLS + HTTP/2 (real parts, no mocks).

Each test starts a ``FakeNovaSonic`` with a ``Script``, talks to it with the unmodified
``aws_sdk_bedrock_runtime`` client (``novasonic.transport``, SigV4-signed frames, CRT HTTP/2) via
``tests.helpers.conversation.Conversation``, and checks the output against the shapes of
protocol.md §2.2 (sequences A–E), the ``OutputTracker``'s turns and the server journal.

Speeds: ``math.inf`` unless a test is about pacing; the responder paces assistant audio in
input-audio time ("audio" pacing), so the client drives playback by streaming (silent) frames, as
a microphone would. No test asserts wall-clock durations.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.audio import pcm_samples
from fakeserver.responders import Script, ScriptedConfig, ScriptedResponder, ToolCallScript, TurnScript
from novasonic.builder import sequential_names
from novasonic.events import (
    BARGE_IN_TEXT,
    AudioOutput,
    ContentStart,
    TextOutput,
    Tool,
    ToolUse,
    UserSpeechEnd,
    UserSpeechStart,
)
from novasonic.models import NOVA_2_5_SONIC, NOVA_2_SONIC, NOVA_SONIC_1
from novasonic.rules import ToolCallRequested
from tests.helpers.conversation import Conversation, ConversationResult, check_usage, shape

VAD_GRANULARITY_MS = 40  # every offset the service reports is a multiple of 40 ms (fakeserver.audio)
LEAD_SILENCE_MS = 320
SPEECH_MS = 1500
DEFAULTS = ScriptedConfig()

WEATHER = Tool.define(
    "get_weather", "Current weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
FIND_CITY = Tool.define(
    "find_city", "Resolve a place description to a city",
    {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)


# --------------------------------------------------------------------------- helpers


def sentence_audio_bytes(sentence: str, rate: int, cfg: ScriptedConfig = DEFAULTS) -> int:
    """PCM bytes the scripted responder synthesises for one sentence (see ``ScriptedStream._speak``)."""
    return 2 * pcm_samples(max(cfg.min_sentence_ms, cfg.ms_per_char * len(sentence.strip())), rate)


def assert_journal_ok(result: ConversationResult, model_id: str) -> None:
    """The server saw a clean session: SigV4 ok, every client event accepted, the documented
    start and shutdown, no exception, and it sent exactly what the client received."""
    j = result.journal
    assert j.model_id == model_id
    assert j.auth == "ok" and j.chunk_signature == "ok" and j.chunks_verified > 0
    assert j.status == 200
    assert j.end == "completed", j.summary()
    assert j.input_finished
    assert j.exceptions == []
    rejected = [(c.name, c.verdict) for c in j.client if c.verdict != "accepted"]
    assert rejected == []
    names = j.client_names()
    assert names[:7] == ["sessionStart", "promptStart", "contentStart", "textInput", "contentEnd",
                         "contentStart", "audioInput"]
    assert names[-3:] == ["contentEnd", "promptEnd", "sessionEnd"]
    assert j.server_names() == result.names()


def speech_offsets_ok(start_ms: int, end_ms: int, detected_ms: int, *, speech_from: float, speech_to: float) -> None:
    for v in (start_ms, end_ms, detected_ms):
        assert v % VAD_GRANULARITY_MS == 0, (start_ms, end_ms, detected_ms)
    assert abs(start_ms - speech_from) <= VAD_GRANULARITY_MS
    assert abs(end_ms - speech_to) <= VAD_GRANULARITY_MS
    # end-point detected once the default end-point silence (480 ms, OME-N1) followed the speech
    assert detected_ms - end_ms == DEFAULTS.default_endpoint_silence_ms


async def one_audio_turn(
    model_id: str, reply: list[str], *, rate: int, user: str = "i usually go to gym after work.", seed: int = 11
) -> ConversationResult:
    script = Script([TurnScript(user, reply)])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=seed) as fake:
        async with Conversation(fake, model_id, output_sample_rate=rate) as conv:
            await conv.silence(LEAD_SILENCE_MS)
            await conv.speak(SPEECH_MS)
            n_final = len(reply)
            if NOVA_SONIC_1 == model_id:
                # Nova Sonic 1: no completionEnd until the prompt ends; wait for the FINAL texts
                await conv.silence_until(
                    lambda: len(conv.ended_blocks(type="TEXT", role="ASSISTANT", stage="FINAL")) >= n_final,
                    what="the FINAL assistant texts",
                )
                assert conv.count("completionEnd") == 0
            else:
                await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="completionEnd")
            return await conv.close()


def check_assistant_blocks(result: ConversationResult, reply: list[str], rate: int) -> None:
    """Per sentence: SPECULATIVE text then its AUDIO block at the requested rate; then the FINAL
    texts (first END_TURN, others PARTIAL_TURN) under their own contentIds."""
    blocks = [b for b in result.blocks if b.role == "ASSISTANT"]
    spec = [b for b in blocks if b.type == "TEXT" and b.stage == "SPECULATIVE"]
    final = [b for b in blocks if b.type == "TEXT" and b.stage == "FINAL"]
    audio = [b for b in blocks if b.type == "AUDIO"]
    assert [b.text for b in spec] == reply
    assert [b.text for b in final] == reply
    assert [b.stop_reason for b in spec] == ["PARTIAL_TURN"] * len(reply)
    assert [b.stop_reason for b in final] == ["END_TURN"] + ["PARTIAL_TURN"] * (len(reply) - 1)
    assert [b.stop_reason for b in audio] == ["PARTIAL_TURN"] * (len(reply) - 1) + ["END_TURN"]
    assert {b.content_id for b in spec}.isdisjoint(b.content_id for b in final)
    for sentence, s, a in zip(reply, spec, audio, strict=True):
        assert s.end_index is not None and s.end_index < a.start_index  # text before its audio
        assert a.sample_rate_hertz == rate
        assert len(a.audio) > 0 and len(a.audio) % 2 == 0
        assert len(a.audio) == sentence_audio_bytes(sentence, rate)
        assert a.audio_events == math.ceil(len(a.audio) / (2 * pcm_samples(DEFAULTS.chunk_ms, rate)))
    last_audio_end = max(b.end_index or 0 for b in audio)
    assert all(b.start_index > last_audio_end for b in final)  # FINAL after all the audio (§2.2 B)
    for ev in result.events:
        if isinstance(ev, AudioOutput):
            assert ev.pcm_len > 0 and ev.pcm_len % 2 == 0


# --------------------------------------------------------------------------- 1. sequence A, Nova 2


@pytest.mark.parametrize("rate", [16000, 24000])
async def test_nova2_audio_turn_has_the_shape_of_sequence_a(rate: int) -> None:
    user, reply = "i usually go to gym after work.", ["That's a great routine."]
    result = await one_audio_turn(NOVA_2_SONIC, reply, rate=rate, user=user)

    assert result.shape() == [
        "userSpeechStart", "completionStart", "userSpeechEnd",
        "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:END_TURN",
        "completionEnd:END_TURN",
    ]
    # the system prompt is billed before anything else (OME-N1)
    assert result.names()[0] == "usageEvent"
    start = next(e for e in result.events if isinstance(e, UserSpeechStart))
    end = next(e for e in result.events if isinstance(e, UserSpeechEnd))
    speech_offsets_ok(start.input_audio_offset_ms, end.input_audio_offset_ms, end.input_audio_detection_offset_ms,
                      speech_from=LEAD_SILENCE_MS, speech_to=LEAD_SILENCE_MS + SPEECH_MS)
    user_blocks = [b for b in result.blocks if b.role == "USER"]
    assert [(b.text, b.stage, b.stop_reason) for b in user_blocks] == [(user, "FINAL", "PARTIAL_TURN")]
    check_assistant_blocks(result, reply, rate)

    # every event of the stream carries the same ids
    assert len({e.session_id for e in result.events}) == 1
    assert {e.prompt_name for e in result.events} == {result.journal.client_events("promptStart")[0].prompt_name}
    assert len({getattr(e, "completion_id", None) for e in result.events if hasattr(e, "completion_id")}) == 1

    totals = check_usage(result.events)
    assert totals["in_text"] > 0 and totals["in_speech"] > 0 and totals["out_speech"] > 0 and totals["out_text"] > 0
    turn, = result.tracker.turns
    assert turn.user_text == user
    assert turn.assistant_speculative == turn.assistant_final == reply[0]
    assert turn.audio_blocks == 1 and turn.audio_bytes == sentence_audio_bytes(reply[0], rate)
    assert turn.interrupted is False and turn.tool_calls == ()
    assert (turn.user_speech_start_ms, turn.user_speech_end_ms) == (start.input_audio_offset_ms, end.input_audio_offset_ms)
    assert result.tracker.usage_total.total == totals["total"] == result.tracker.usage_delta_sum.total
    assert_journal_ok(result, NOVA_2_SONIC)


# --------------------------------------------------------------------------- 2. Nova 2.5 and Nova Sonic 1


async def test_nova25_audio_turn() -> None:
    user, reply = "what should i cook tonight?", ["How about a risotto?", "It takes about thirty minutes."]
    result = await one_audio_turn(NOVA_2_5_SONIC, reply, rate=24000, user=user)

    assert result.shape()[:6] == [
        "userSpeechStart", "completionStart", "userSpeechEnd", "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
    ]
    assert result.shape()[-1] == "completionEnd:END_TURN"
    # Nova 2.5: one USER textOutput per utterance; each sentence twice (SPECULATIVE + FINAL)
    assert [e.content for e in result.events if isinstance(e, TextOutput) and e.role == "USER"] == [user]
    check_assistant_blocks(result, reply, 24000)
    start = next(e for e in result.events if isinstance(e, UserSpeechStart))
    end = next(e for e in result.events if isinstance(e, UserSpeechEnd))
    speech_offsets_ok(start.input_audio_offset_ms, end.input_audio_offset_ms, end.input_audio_detection_offset_ms,
                      speech_from=LEAD_SILENCE_MS, speech_to=LEAD_SILENCE_MS + SPEECH_MS)
    check_usage(result.events)
    turn, = result.tracker.turns
    assert turn.user_text == user and turn.assistant_final == " ".join(reply) and turn.audio_blocks == 2
    assert_journal_ok(result, NOVA_2_5_SONIC)


async def test_nova_sonic_1_audio_turn_sequence_b() -> None:
    user, reply = "hello there", ["Hi!", "How can I help you today?"]
    result = await one_audio_turn(NOVA_SONIC_1, reply, rate=24000, user=user)

    names = result.names()
    assert "userSpeechStart" not in names and "userSpeechEnd" not in names
    assert result.shape() == [
        "completionStart",
        "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "completionEnd:END_TURN",  # only once the prompt ended (checked before close in one_audio_turn)
    ]
    check_assistant_blocks(result, reply, 24000)
    check_usage(result.events)
    turn, = result.tracker.turns
    assert turn.user_text == user and turn.assistant_final == "Hi! How can I help you today?"
    assert turn.user_speech_start_ms is None
    assert_journal_ok(result, NOVA_SONIC_1)
    # the completionEnd went out after the client's promptEnd
    j = result.journal
    assert j.server_names()[-1] == "completionEnd"


async def test_nova2_two_turns_each_in_its_own_completion() -> None:
    script = Script([TurnScript("one", ["First answer."]), TurnScript("two", ["Second answer."])])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=2) as fake:
        async with Conversation(fake, NOVA_2_SONIC) as conv:
            for i in range(2):
                await conv.silence(LEAD_SILENCE_MS)
                await conv.speak(1000, seed=i + 1)
                await conv.silence_until(lambda i=i: conv.count("completionEnd") >= i + 1, what=f"completionEnd {i}")
            result = await conv.close()

    one_turn = [
        "userSpeechStart", "completionStart", "userSpeechEnd",
        "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:END_TURN",
        "completionEnd:END_TURN",
    ]
    assert result.shape() == one_turn * 2
    t0, t1 = result.tracker.turns
    assert (t0.user_text, t0.assistant_text, t1.user_text, t1.assistant_text) == ("one", "First answer.", "two", "Second answer.")
    assert t0.completion_id != t1.completion_id
    assert (t0.completion_id, t1.completion_id) == result.tracker.completions
    assert t1.user_speech_start_ms is not None and t1.user_speech_start_ms > t0.user_speech_detected_ms
    check_usage(result.events)
    assert_journal_ok(result, NOVA_2_SONIC)


@pytest.mark.parametrize(("sensitivity", "endpoint_ms"), [("HIGH", 320), ("MEDIUM", 480), ("LOW", 640)])
async def test_endpointing_sensitivity_sets_the_end_point_delay(sensitivity: str, endpoint_ms: int) -> None:
    script = Script(default=TurnScript("hi", ["Hello."]))
    async with FakeNovaSonic(script=script, speed=math.inf, seed=3) as fake:
        async with Conversation(fake, NOVA_2_5_SONIC, endpointing=sensitivity) as conv:
            await conv.silence(LEAD_SILENCE_MS)
            await conv.speak(1000)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="completionEnd")
            result = await conv.close()
    end = next(e for e in result.events if isinstance(e, UserSpeechEnd))
    assert abs(end.input_audio_offset_ms - (LEAD_SILENCE_MS + 1000)) <= VAD_GRANULARITY_MS
    assert end.input_audio_detection_offset_ms - end.input_audio_offset_ms == endpoint_ms
    session_start = result.journal.client_events("sessionStart")[0]
    assert session_start.to_dict()["turnDetectionConfiguration"] == {"endpointingSensitivity": sensitivity}
    assert_journal_ok(result, NOVA_2_5_SONIC)


# --------------------------------------------------------------------------- 3. interactive text


@pytest.mark.parametrize("transcript_mode", ["empty", "echo"])
async def test_nova2_interactive_text_is_answered(transcript_mode: str) -> None:
    typed, reply = "What's the weather like?", ["It is sunny today."]
    responder = ScriptedResponder(Script([TurnScript("unused for typed text", reply)]),
                                  interactive_text_transcript=transcript_mode)
    async with FakeNovaSonic(responder=responder, speed=math.inf, seed=5) as fake:
        async with Conversation(fake, NOVA_2_SONIC) as conv:
            await conv.silence(LEAD_SILENCE_MS)
            await conv.interactive_text(typed)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="the answer to the typed text")
            result = await conv.close()

    # §2.2 C: no userSpeechStart/End for typed input; an (empty by default) USER FINAL transcript
    assert result.shape() == [
        "completionStart",
        "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:END_TURN",
        "completionEnd:END_TURN",
    ]
    expected_user = "" if transcript_mode == "empty" else typed
    assert [b.text for b in result.blocks if b.role == "USER"] == [expected_user]
    turn, = result.tracker.turns
    assert turn.user_text == expected_user and turn.assistant_text == reply[0] and turn.audio_bytes > 0
    check_usage(result.events)
    assert_journal_ok(result, NOVA_2_SONIC)
    # the typed block went in while the audio block stayed open, audio frames on both sides of it
    names = result.journal.client_names()
    i = names.index("textInput", 4)
    assert names[i - 1: i + 2] == ["contentStart", "textInput", "contentEnd"]
    assert names[i - 2] == "audioInput" and names[i + 2] == "audioInput"
    assert result.journal.client_events("textInput")[-1].content == typed


async def test_nova_sonic_1_does_not_answer_interactive_text() -> None:
    script = Script(default=TurnScript("anything", ["This must not be said."]))
    async with FakeNovaSonic(script=script, speed=math.inf, seed=5) as fake:
        async with Conversation(fake, NOVA_SONIC_1) as conv:
            await conv.silence(LEAD_SILENCE_MS)
            await conv.interactive_text("What's the weather like?", force=True)
            await conv.silence(2000)  # a bounded amount of silence: 63 frames
            journal = await conv.wait_server_caught_up()
            assert journal.audio_in_frames == conv.frames_sent
            result = await conv.close()

    # only the system-prompt usage: no completion, no transcript, no assistant output
    assert result.names() == ["usageEvent"]
    assert result.tracker.turns == ()
    assert_journal_ok(result, NOVA_SONIC_1)  # the typed block itself is accepted by the rules
    starts = [e for e in result.journal.client_events("contentStart") if isinstance(e, ContentStart)]
    assert any(str(e.role) == "USER" and e.type == "TEXT" for e in starts)


# --------------------------------------------------------------------------- 4. tools


@pytest.mark.parametrize("model_id", [NOVA_2_SONIC, NOVA_SONIC_1])
async def test_tool_call_answered_after_tool_content_end(model_id: str) -> None:
    calls: list[ToolCallRequested] = []

    def answer(call: ToolCallRequested) -> dict[str, Any]:
        calls.append(call)
        return {"temperature": 21, "sky": "sunny"}

    follow_up = "It is 21 degrees and sunny in Paris."
    script = Script([TurnScript(
        "what's the weather in paris",
        # filler is spoken on Nova 2+ only (async tools): given to Nova Sonic 1, which must
        # wait silently for the result, it must not be heard
        tool_call=ToolCallScript("get_weather", {"city": "Paris"}, filler=() if model_id == NOVA_2_SONIC else ["Hmm."]),
        follow_up=lambda r: [f"It is {r['temperature']} degrees and {r['sky']} in Paris."],
    )])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=9) as fake:
        async with Conversation(fake, model_id, tools=[WEATHER], on_tool_call=answer) as conv:
            await conv.silence(LEAD_SILENCE_MS)
            await conv.speak(SPEECH_MS)
            await conv.silence_until(lambda: conv.assistant_texts("FINAL") == [follow_up], what="the follow-up")
            if model_id == NOVA_2_SONIC:
                await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="completionEnd")
            else:
                assert conv.count("completionEnd") == 0  # Nova Sonic 1: only once the prompt ends
            result = await conv.close()

    # §2.2 D: the TOOL block follows the USER transcript; the answer comes after the result
    speech = ["userSpeechStart", "completionStart", "userSpeechEnd"] if model_id == NOVA_2_SONIC else ["completionStart"]
    assert result.shape() == [
        *speech,
        "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
        "cs:TOOL:TOOL", "toolUse", "ce:TOOL:TOOL_USE",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:END_TURN",
        "completionEnd:END_TURN",
    ]
    tool_use = next(e for e in result.events if isinstance(e, ToolUse))
    assert tool_use.tool_name == "get_weather" and tool_use.arguments == {"city": "Paris"}
    assert [c.tool_use_id for c in calls] == [tool_use.tool_use_id]
    assert calls[0].arguments == {"city": "Paris"}
    assert [b.text for b in result.blocks if b.stage == "SPECULATIVE"] == [follow_up]

    # the journal: toolResult accepted, for the toolUseId the server issued, after the TOOL block
    j = result.journal
    tool_events = [(c.name, c.verdict) for c in j.client if c.name == "toolResult"]
    assert tool_events == [("toolResult", "accepted")]
    tool_start = next(e for e in j.client_events("contentStart")
                      if isinstance(e, ContentStart) and e.tool_result_input_configuration is not None)
    assert tool_start.tool_result_input_configuration.tool_use_id == tool_use.tool_use_id
    assert tool_start.content_name != tool_use.tool_use_id
    result_event = j.client_events("toolResult")[0]
    assert result_event.content == '{"temperature":21,"sky":"sunny"}'
    assert_journal_ok(result, model_id)

    turn, = result.tracker.turns
    call, = turn.tool_calls
    assert call.requested and call.resolved and call.name == "get_weather"
    assert turn.assistant_text == follow_up
    check_usage(result.events)


async def test_chained_tool_calls_with_filler_on_nova2() -> None:
    def answer(call: ToolCallRequested) -> dict[str, Any]:
        if call.name == "find_city":
            return {"city": "Paris"}
        assert call.name == "get_weather"
        return {"temperature": 19, "city": call.arguments["city"]}

    script = Script([TurnScript(
        "how warm is it in the capital of france",
        tool_call=ToolCallScript(
            "find_city", {"q": "capital of France"}, filler=["Let me look that up."],
            then_tool_call=lambda r: ToolCallScript("get_weather", {"city": r["city"]}, filler=["Checking the weather now."]),
        ),
        follow_up=lambda r: [f"It is {r['temperature']} degrees in {r['city']}."],
    )])
    async with FakeNovaSonic(script=script, speed=math.inf, seed=21) as fake:
        async with Conversation(fake, NOVA_2_SONIC, tools=[FIND_CITY, WEATHER], on_tool_call=answer) as conv:
            await conv.silence(LEAD_SILENCE_MS)
            await conv.speak(SPEECH_MS)
            # from here on: silence only, no more user speech
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1, max_frames=1500, what="the follow-up")
            result = await conv.close()

    tool_uses = [e for e in result.events if isinstance(e, ToolUse)]
    assert [(t.tool_name, t.arguments) for t in tool_uses] == [
        ("find_city", {"q": "capital of France"}), ("get_weather", {"city": "Paris"}),  # 2nd from the 1st result
    ]
    assert result.names().count("userSpeechStart") == 1  # the second call needed no user speech
    assert result.names().count("completionStart") == 1
    s = result.shape()
    tools_at = [i for i, t in enumerate(s) if t == "toolUse"]
    spec_texts = [b.text for b in result.blocks if b.stage == "SPECULATIVE"]
    assert spec_texts == ["Let me look that up.", "Checking the weather now.", "It is 19 degrees in Paris."]
    # filler speech (text + audio, a segment ending END_TURN) between the two calls, and after the second
    between = s[tools_at[0]:tools_at[1]]
    assert "cs:AUDIO:ASSISTANT" in between and "ce:AUDIO:END_TURN" in between
    assert "cs:AUDIO:ASSISTANT" in s[tools_at[1]:]
    assert s[-1] == "completionEnd:END_TURN"

    j = result.journal
    assert [(c.name, c.verdict) for c in j.client if c.name == "toolResult"] == [("toolResult", "accepted")] * 2
    answered = [e.tool_result_input_configuration.tool_use_id for e in j.client_events("contentStart")
                if isinstance(e, ContentStart) and e.tool_result_input_configuration is not None]
    assert answered == [t.tool_use_id for t in tool_uses]
    assert_journal_ok(result, NOVA_2_SONIC)
    # between the first toolResult and the end, the client sent only silence (no new speech turn)
    turn, = result.tracker.turns
    assert [c.name for c in turn.tool_calls] == ["find_city", "get_weather"]
    assert all(c.requested and c.resolved for c in turn.tool_calls)
    assert "19" in turn.assistant_speculative.split("It is ")[-1]
    check_usage(result.events)


# --------------------------------------------------------------------------- 5. barge-in


LONG_REPLY = "Once upon a time there was a very long story that kept going on and on for quite a while."


@pytest.mark.parametrize("variant", ["spec", "pipecat"])
async def test_barge_in_cuts_the_audio_and_the_new_utterance_is_answered(variant: str) -> None:
    rate = 24000
    script = Script([
        TurnScript("tell me a story", [LONG_REPLY]),
        TurnScript("stop please", ["Okay, I will stop."]),
    ])
    responder = ScriptedResponder(script, pacing="audio", barge_in_variant=variant)
    async with FakeNovaSonic(responder=responder, speed=math.inf, seed=4) as fake:
        async with Conversation(fake, NOVA_2_SONIC, output_sample_rate=rate) as conv:
            await conv.silence(LEAD_SILENCE_MS)
            await conv.speak(1200)
            # silence while the reply plays (a little slower than the server, to react in time) ...
            await conv.silence_until(lambda: conv.count("audioOutput") >= 3, max_frames=300, pace=0.002,
                                     what="assistant audio")
            # ... then the user talks over it
            await conv.speak(800, seed=2)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="the answer to the barge-in")
            result = await conv.close()

    events, s = result.events, result.shape()
    speech_starts = [i for i, e in enumerate(events) if isinstance(e, UserSpeechStart)]
    assert len(speech_starts) == 2
    barge = shape(events[speech_starts[1]:])
    audio_stop = "PARTIAL_TURN" if variant == "spec" else "END_TURN"
    assert barge[:3] == ["userSpeechStart", f"ce:AUDIO:{audio_stop}", "cs:TEXT:ASSISTANT:FINAL"]
    k = barge.index("ce:TEXT:INTERRUPTED")
    assert set(barge[3:k]) == {"text:ASSISTANT"}
    assert barge[k + 1: k + 3] == ["userSpeechEnd", "cs:TEXT:USER:FINAL"]
    assert s.count("ce:TEXT:INTERRUPTED") == 1

    first_audio = next(b for b in result.blocks if b.type == "AUDIO")
    assert first_audio.stop_reason == audio_stop
    assert 3 <= first_audio.audio_events and 0 < len(first_audio.audio) < sentence_audio_bytes(LONG_REPLY, rate)
    assert first_audio.end_index is not None and first_audio.end_index > speech_starts[1]
    interrupted = next(b for b in result.blocks if b.stop_reason == "INTERRUPTED")
    assert interrupted.type == "TEXT" and interrupted.role == "ASSISTANT" and interrupted.stage == "FINAL"
    assert interrupted.texts[-1] == BARGE_IN_TEXT
    spoken_so_far = interrupted.texts[:-1]
    assert all(LONG_REPLY.startswith(t) for t in spoken_so_far)
    # no FINAL text of the full interrupted sentence
    assert LONG_REPLY not in [b.text for b in result.blocks if b.stage == "FINAL"]

    t0, t1 = result.tracker.turns
    assert t0.user_text == "tell me a story" and t0.interrupted
    assert t1.user_text == "stop please" and not t1.interrupted
    assert t1.assistant_final == "Okay, I will stop." and t1.audio_blocks == 1
    assert s[-1] == "completionEnd:END_TURN"
    check_usage(result.events)
    assert_journal_ok(result, NOVA_2_SONIC)


# --------------------------------------------------------------------------- 6. determinism


DET_SCRIPT = Script([
    TurnScript("tell me a story", [LONG_REPLY]),
    TurnScript("stop please", ["Okay, I will stop."]),
])


async def det_run(speed: float) -> ConversationResult:
    """A fixed input (the barge-in at a fixed input-audio offset) on a fresh server with seed 5."""
    # audio_stall_s=None: playback follows the input audio only, never the clock, so a loaded CI
    # machine cannot shift chunk releases (the input itself is the same in every run).
    responder = ScriptedResponder(DET_SCRIPT, pacing="audio", audio_stall_s=None)
    pace = None if math.isinf(speed) else (0.032 / speed)
    async with FakeNovaSonic(responder=responder, speed=speed, seed=5) as fake:
        async with Conversation(fake, NOVA_2_SONIC, name_factory=sequential_names("det")) as conv:
            await conv.silence(LEAD_SILENCE_MS, pace=pace)
            await conv.speak(1200, pace=pace)
            await conv.silence(1000, pace=pace)
            await conv.speak(800, seed=2, pace=pace)
            await conv.silence_until(lambda: conv.count("completionEnd") >= 1, pace=pace, what="the end of turn 2")
            return await conv.close()


def audio_before_barge_in(result: ConversationResult) -> int:
    starts = [i for i, e in enumerate(result.events) if isinstance(e, UserSpeechStart)]
    assert len(starts) == 2
    return sum(1 for e in result.events[: starts[1]] if isinstance(e, AudioOutput))


async def test_same_seed_same_conversation_same_output() -> None:
    a = await det_run(math.inf)
    b = await det_run(math.inf)
    paced = await det_run(50.0)

    assert [e.to_json() for e in a.events] == [e.to_json() for e in b.events]
    assert paced.names() == a.names()
    n = audio_before_barge_in(a)
    assert n > 0 and audio_before_barge_in(paced) == n == audio_before_barge_in(b)
    assert [e.to_json() for e in paced.events] == [e.to_json() for e in a.events]
    # and it is a real barge-in conversation
    assert "ce:TEXT:INTERRUPTED" in a.shape()
    assert [t.interrupted for t in a.tracker.turns] == [True, False]


# --------------------------------------------------------------------------- 7. concurrency


async def test_twenty_concurrent_conversations_on_one_server() -> None:
    n = 20
    script = Script(default=TurnScript("hello.", ["Hi there, nice to hear you."]))

    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async def one(i: int) -> ConversationResult:
            async with Conversation(fake, NOVA_2_SONIC, timeout=30.0) as conv:
                await conv.silence(LEAD_SILENCE_MS)
                await conv.speak(1000 + 40 * (i % 5), seed=i + 1)
                await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what=f"conversation {i}")
                return await conv.close()

        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 90.0)
        streams = fake.journal.streams

    assert len(streams) == n and {s.end for s in streams} == {"completed"}
    assert len({id(r.journal) for r in results}) == n
    assert len({r.events[0].session_id for r in results}) == n
    for i, r in enumerate(results):
        turn, = r.tracker.turns
        assert turn.user_text == "hello." and turn.assistant_final == "Hi there, nice to hear you.", i
        end = next(e for e in r.events if isinstance(e, UserSpeechEnd))
        assert abs(end.input_audio_offset_ms - (LEAD_SILENCE_MS + 1000 + 40 * (i % 5))) <= VAD_GRANULARITY_MS
        assert r.shape()[-1] == "completionEnd:END_TURN"
        assert_journal_ok(r, NOVA_2_SONIC)
