"""OutputTracker: real captures, the Nova 1 per-sentence pattern, barge-in variants, tools, usage."""

from __future__ import annotations

from typing import Any

import pytest

from novasonic.events import BARGE_IN_TEXT
from novasonic.rules import (
    AssistantText,
    AudioChunk,
    AudioEnded,
    BargeIn,
    CompletionEnded,
    CompletionStarted,
    OutputTracker,
    TokenUsage,
    ToolCallRequested,
    ToolCallResolved,
    Turn,
    TurnEnded,
    TurnStarted,
    Usage,
    UserSpeechEnded,
    UserSpeechStarted,
    UserTranscript,
    join_text,
)
from tests.helpers import factories as f
from tests.helpers.captures import capture_path, load_capture


def feed_all(tracker: OutputTracker, events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for e in events:
        out.extend(tracker.feed(e))
    return out


def kinds(records: list[Any], *types: type) -> list[Any]:
    return [r for r in records if isinstance(r, types)]


# --- the real captures -----------------------------------------------------------------------------


def test_capture_asr_turn() -> None:
    events = load_capture("nova2-asr-turn.events.json")
    t = OutputTracker()
    records = feed_all(t, events) + t.close()
    (turn,) = t.turns
    assert turn.user_text == "아이싱크 아이파운드 쓰리 베리 유스풀 비디오즈"
    assert turn.assistant_speculative == (
        "Sorry, that part sounds a bit unclear. Could you please repeat or clarify your request?"
    )
    assert turn.assistant_final == "" and turn.assistant_text == turn.assistant_speculative
    # 3372 + 57 × 3416 + 8576 bytes of 16 kHz PCM
    assert (turn.audio_blocks, turn.audio_bytes) == (1, 206660)
    assert turn.audio_ms == pytest.approx(206660 / 2 / 16000 * 1000) == pytest.approx(6458.125)
    assert (turn.user_speech_start_ms, turn.user_speech_end_ms, turn.user_speech_detected_ms) == (0, 3080, 3600)
    assert turn.completion_id == "a32c993d-a1b4-493d-b8fb-7e70d383a657"
    assert not turn.interrupted and turn.tool_calls == ()
    assert len(kinds(records, AudioChunk)) == 59
    # userSpeechEnd before completionStart in this capture; the turn ends at completionEnd
    order = [type(r) for r in records if not isinstance(r, AudioChunk)]
    assert order == [TurnStarted, UserSpeechStarted, UserSpeechEnded, CompletionStarted, UserTranscript,
                     AssistantText, AudioEnded, TurnEnded, CompletionEnded]
    assert t.completions == ("a32c993d-a1b4-493d-b8fb-7e70d383a657",)


def test_capture_tool_turn() -> None:
    events = load_capture("nova2-tool-turn.events.json")
    t = OutputTracker()
    records = feed_all(t, events)
    (turn,) = t.turns
    assert turn.user_text == "i think i found three very useful videos."
    assert turn.assistant_speculative == (
        "Great! Let's work on that sentence. Say this after me: \"I think I found three very useful videos.\""
        " \n\nNow you repeat that sentence for me."
    )
    # the recorder dropped all 101 audioOutput events of this capture: two blocks, no audio
    assert (turn.audio_blocks, turn.audio_bytes, turn.audio_ms) == (2, 0, 0.0)
    (call,) = turn.tool_calls
    assert call.tool_use_id == "fb0a993c-6798-4574-ade9-077667ec3336"
    assert call.name == "report_pronunciation_coaching"
    assert call.arguments == {
        "target_form": "I think I found three very useful videos.",
        "spoken_form": "[awaiting user repetition]",
        "outcome": "pending",
    }
    assert call.requested and not call.resolved
    (req,) = kinds(records, ToolCallRequested)
    assert (req.tool_use_id, req.name, req.arguments) == (call.tool_use_id, call.name, call.arguments)
    # requested only once the TOOL block ended (stopReason TOOL_USE)
    idx = records.index(req)
    assert isinstance(records[idx - 1], UserTranscript)
    assert t.pending_tool_calls == (call,)
    assert t.tool_result_sent(call.tool_use_id) == [ToolCallResolved(tool_use_id=call.tool_use_id)]
    assert t.tool_result_sent(call.tool_use_id) == []
    assert t.pending_tool_calls == () and t.turns[0].tool_calls[0].resolved
    assert (turn.user_speech_end_ms, turn.user_speech_detected_ms) == (2480, 2760)


# --- Nova 1 per-sentence pattern (§2.2 B) ---------------------------------------------------------


def nova1_turn(user: str, sentences: list[str], *, prefix: str, chunks: int = 3) -> list[Any]:
    """USER FINAL, then per sentence SPECULATIVE + AUDIO (1920 B chunks @24 kHz), the last AUDIO
    END_TURN, then the FINAL repeats after all audio (first END_TURN, later PARTIAL_TURN)."""
    events: list[Any] = [*f.out_text_block(f"{prefix}-u", "USER", "FINAL", user)]
    events.append(f.usage_event(in_text=2813))
    for i, s in enumerate(sentences):
        events += f.out_text_block(f"{prefix}-s{i}", "ASSISTANT", "SPECULATIVE", s)
        last = i == len(sentences) - 1
        events += f.out_audio_block(f"{prefix}-a{i}", *([1920] * chunks), stop="END_TURN" if last else "PARTIAL_TURN",
                                    sample_rate=24000)
        events.append(f.usage_event(out_speech=20))
    for i, s in enumerate(sentences):
        events += f.out_text_block(f"{prefix}-f{i}", "ASSISTANT", "FINAL", s,
                                   stop="END_TURN" if i == 0 else "PARTIAL_TURN")
    return events


def test_nova1_per_sentence_final_after_audio() -> None:
    t = OutputTracker()
    events = [f.usage_event(in_text=22), f.usage_event(in_speech=150), f.completion_start()]
    events += nova1_turn("hello there", ["Hi!", " How can I help?"], prefix="t0")
    events += nova1_turn("what time is it", ["It is noon."], prefix="t1", chunks=2)
    records = feed_all(t, events) + t.close()
    first, second = t.turns
    assert first.user_text == "hello there"
    assert first.assistant_speculative == "Hi! How can I help?"
    assert first.assistant_final == "Hi! How can I help?"
    assert first.audio_blocks == 2 and first.audio_bytes == 6 * 1920
    assert first.audio_ms == pytest.approx(6 * 40.0)  # 1920 B = 40 ms at 24 kHz
    # usage before the first turn is credited to it
    assert first.usage == TokenUsage(input_speech=150, input_text=22 + 2813, output_speech=40)
    assert second.user_text == "what time is it" and second.assistant_final == "It is noon."
    assert second.audio_ms == pytest.approx(80.0)
    assert not first.interrupted and not second.interrupted
    finals = [r.text for r in kinds(records, AssistantText) if r.stage == "FINAL"]
    assert finals == ["Hi!", " How can I help?", "It is noon."]
    assert [r.turn.index for r in kinds(records, TurnEnded)] == [0, 1]
    assert t.usage_delta_sum == TokenUsage(150, 22 + 2 * 2813, 60, 0)


def test_nova2_multi_turn_split_user_transcript() -> None:
    """OME-MT: one completion over two turns; the second utterance is split over two USER blocks."""
    t = OutputTracker()
    events = [f.completion_start(), f.user_speech_start(0), f.user_speech_end(1900)]
    events += f.out_text_block("u1", "USER", "FINAL", "i had a meeting yesterday.")
    events += f.out_text_block("s1", "ASSISTANT", "SPECULATIVE", "That is good! Can you tell me more?")
    events += f.out_audio_block("a1", 3200, stop="PARTIAL_TURN")
    events += f.out_text_block("s2", "ASSISTANT", "SPECULATIVE", "  For example, was it about work?")
    events += f.out_audio_block("a2", 3200, stop="END_TURN")
    events += f.out_text_block("f1", "ASSISTANT", "FINAL", "That is good! Can you tell me more?", stop="END_TURN")
    events += f.out_text_block("f2", "ASSISTANT", "FINAL", "  For example, was it about work?")
    events += [f.user_speech_start(9000), f.user_speech_end(11000)]
    events += f.out_text_block("u2a", "USER", "FINAL", "i'm going to go the")
    events += f.out_text_block("u2b", "USER", "FINAL", "art gallery")
    events += f.out_text_block("s3", "ASSISTANT", "SPECULATIVE", "Nice!")
    events += f.out_audio_block("a3", 1600, stop="END_TURN")
    records = feed_all(t, events) + t.close()
    first, second = t.turns
    assert first.assistant_final == first.assistant_speculative == (
        "That is good! Can you tell me more?  For example, was it about work?")
    assert (first.audio_blocks, first.audio_ms) == (2, pytest.approx(200.0))
    assert second.user_text == "i'm going to go the art gallery"
    assert (second.user_speech_start_ms, second.user_speech_end_ms) == (9000, 11000)
    assert second.assistant_text == "Nice!"
    transcripts = [r.transcript for r in kinds(records, UserTranscript)]
    assert transcripts[-1] == "i'm going to go the art gallery"
    assert not kinds(records, BargeIn)
    assert t.completion_id == f.COMPLETION_ID and first.completion_id == f.COMPLETION_ID


def test_late_final_is_credited_to_the_previous_turn() -> None:
    t = OutputTracker()
    events = [f.completion_start(), *f.out_text_block("u1", "USER", "FINAL", "first question")]
    events += f.out_text_block("s1", "ASSISTANT", "SPECULATIVE", "First answer.")
    events += f.out_audio_block("a1", 3200, stop="END_TURN")
    events += f.out_text_block("u2", "USER", "FINAL", "second question")
    events += f.out_text_block("f1", "ASSISTANT", "FINAL", "First answer.", stop="END_TURN")  # late
    events += f.out_text_block("s2", "ASSISTANT", "SPECULATIVE", "Second answer.")
    feed_all(t, events)
    t.close()
    first, second = t.turns
    assert first.assistant_final == "First answer."
    assert second.assistant_final == "" and second.assistant_speculative == "Second answer."


def test_interactive_text_turn_with_empty_user_transcript() -> None:
    """§2.2 C: a typed-text turn shows an empty USER transcript."""
    t = OutputTracker()
    events = [f.completion_start(), *f.out_text_block("u", "USER", "FINAL", "")]
    events += f.out_text_block("s", "ASSISTANT", "SPECULATIVE", "Sunny today.")
    events += f.out_audio_block("a", 1000, stop="END_TURN")
    feed_all(t, events)
    t.close()
    (turn,) = t.turns
    assert (turn.user_text, turn.assistant_text) == ("", "Sunny today.")
    assert turn.user_speech_start_ms is None


# --- barge-in (§2.2 E) -------------------------------------------------------------------------------


def _answer_then(interruption: list[Any]) -> list[Any]:
    events = [f.completion_start(), f.user_speech_start(0), f.user_speech_end(1500)]
    events += f.out_text_block("u1", "USER", "FINAL", "tell me a long story")
    events += f.out_text_block("s1", "ASSISTANT", "SPECULATIVE", "Once upon a time there was a dragon.")
    events += [f.out_audio_start("a1"), f.out_audio("a1", 3200), f.out_audio("a1", 3200)]
    events += interruption
    events += [f.user_speech_end(13000)]
    events += f.out_text_block("u2", "USER", "FINAL", "stop please")
    events += f.out_text_block("s2", "ASSISTANT", "SPECULATIVE", "Sure.")
    events += f.out_audio_block("a2", 1600, stop="END_TURN")
    return events


def documented_variant(audio_stop: str) -> list[Any]:
    """DOC/samples: userSpeechStart, audio ends, FINAL spoken-so-far text + marker, ce INTERRUPTED."""
    return [
        f.user_speech_start(11760),
        f.out_content_end("a1", "AUDIO", audio_stop),
        *f.out_text_block("f1", "ASSISTANT", "FINAL", "Once upon a time", BARGE_IN_TEXT, stop="INTERRUPTED"),
    ]


FIELD_VARIANT = [  # Nova 2 field test: only userSpeechStart, every contentEnd PARTIAL_TURN
    f.user_speech_start(11760),
    f.out_content_end("a1", "AUDIO", "PARTIAL_TURN"),
]


@pytest.mark.parametrize("audio_stop", ["PARTIAL_TURN", "INTERRUPTED"])
@pytest.mark.parametrize("speech_is_barge_in", [True, False])
def test_barge_in_documented_variant(audio_stop: str, speech_is_barge_in: bool) -> None:
    t = OutputTracker(user_speech_is_barge_in=speech_is_barge_in)
    records = feed_all(t, _answer_then(documented_variant(audio_stop))) + t.close()
    first, second = t.turns
    assert first.interrupted and not second.interrupted
    barge = kinds(records, BargeIn)
    assert len(barge) == 1 and barge[0].turn_index == 0  # once per turn, however many signals
    expected = "user-speech" if speech_is_barge_in else ("stop-reason" if audio_stop == "INTERRUPTED" else "marker")
    assert barge[0].reason == expected == first.barge_in_reason
    assert first.assistant_final == "Once upon a time"  # the marker is not text
    assert BARGE_IN_TEXT not in first.assistant_speculative + first.assistant_final
    assert first.audio_bytes == 6400
    assert (second.user_text, second.user_speech_start_ms, second.user_speech_end_ms) == ("stop please", 11760, 13000)
    assert second.assistant_text == "Sure."


def test_barge_in_field_variant_user_speech_only() -> None:
    t = OutputTracker()
    records = feed_all(t, _answer_then(FIELD_VARIANT)) + t.close()
    first, second = t.turns
    assert first.interrupted and first.barge_in_reason == "user-speech"
    assert [b.turn_index for b in kinds(records, BargeIn)] == [0]
    assert second.user_text == "stop please" and not second.interrupted


def test_barge_in_field_variant_can_be_switched_off() -> None:
    t = OutputTracker(user_speech_is_barge_in=False)
    records = feed_all(t, _answer_then(FIELD_VARIANT)) + t.close()
    assert not kinds(records, BargeIn) and not t.turns[0].interrupted


def test_barge_in_inferred_when_audio_was_already_sent() -> None:
    """All audio delivered (block ended PARTIAL_TURN), then the user speaks: the turn never
    reached END_TURN, so the next user transcript marks it interrupted."""
    t = OutputTracker()
    interruption = [f.out_content_end("a1", "AUDIO", "PARTIAL_TURN"), f.user_speech_start(11760)]
    records = feed_all(t, _answer_then(interruption))
    (barge,) = kinds(records, BargeIn)
    assert (barge.turn_index, barge.reason) == (0, "user-speech-inferred")
    assert records.index(barge) < next(i for i, r in enumerate(records) if isinstance(r, TurnEnded))


def test_no_barge_in_after_a_finished_answer() -> None:
    t = OutputTracker()
    finished = [f.out_content_end("a1", "AUDIO", "END_TURN"), f.user_speech_start(11760)]
    records = feed_all(t, _answer_then(finished)) + t.close()
    assert not kinds(records, BargeIn)
    assert not any(turn.interrupted for turn in t.turns)


def test_barge_in_marker_inside_text() -> None:
    """litellm #38253: the marker inside the ASSISTANT text stream."""
    t = OutputTracker()
    events = [f.completion_start(), *f.out_text_block("u", "USER", "FINAL", "question")]
    events += f.out_text_block("s", "ASSISTANT", "SPECULATIVE", f"the answer{BARGE_IN_TEXT}okay here is the answer")
    records = feed_all(t, events)
    (barge,) = kinds(records, BargeIn)
    assert barge.reason == "marker"
    turn = t.current_turn
    assert turn is not None and turn.interrupted
    assert turn.assistant_speculative == "the answer okay here is the answer"


def test_barge_in_marker_with_trailing_newline() -> None:
    t = OutputTracker()
    events = [*f.out_text_block("s", "ASSISTANT", "FINAL", "Hello", BARGE_IN_TEXT + "\n")]
    records = feed_all(t, events)
    assert len(kinds(records, BargeIn)) == 1
    assert t.current_turn is not None and t.current_turn.assistant_final == "Hello"


# --- usage, unknown events, odd input -------------------------------------------------------------------


def test_usage_deltas_and_totals() -> None:
    t = OutputTracker()
    records = feed_all(t, [
        f.usage_event(in_text=22, total=(0, 22, 0, 0)),
        f.usage_event(in_speech=150, total=(150, 22, 0, 0)),
        f.user_speech_start(0),
        f.usage_event(out_text=9, out_speech=8, total=(150, 22, 8, 9)),
    ])
    usages = kinds(records, Usage)
    assert [u.delta.total for u in usages] == [22, 150, 17]
    assert usages[-1].total == TokenUsage(150, 22, 8, 9) == t.usage_total
    assert t.usage_total.total == 189 and t.usage_total.input == 172 and t.usage_total.output == 17
    assert t.current_turn is not None and t.current_turn.usage == TokenUsage(150, 22, 8, 9)


def test_unknown_events_are_counted_and_ignored() -> None:
    t = OutputTracker()
    events = [f.unknown_output("somethingNew"), f.completion_start(), f.unknown_output("somethingNew"),
              f.unknown_output("other")]
    events += f.out_text_block("u", "USER", "FINAL", "hi")
    records = feed_all(t, events)
    assert t.unknown_events == {"somethingNew": 2, "other": 1}
    assert t.events_seen == len(events)
    assert kinds(records, UserTranscript)[0].text == "hi"


def test_content_without_start_uses_defaults() -> None:
    t = OutputTracker(default_output_sample_rate=24000)
    records = feed_all(t, [f.out_audio("ghost", 4800)])
    (chunk,) = kinds(records, AudioChunk)
    assert (chunk.sample_rate_hertz, chunk.duration_ms) == (24000, pytest.approx(100.0))
    assert t.audio_ms == pytest.approx(100.0)
    assert t.feed(f.out_content_end("never-started", "TEXT")) == []


def test_completion_end_ends_the_turn_and_tool_use_double_encoded() -> None:
    t = OutputTracker()
    events = [f.completion_start()]
    events += f.out_tool_block("tc", "tool-1", "lookup", '"{\\"q\\": \\"x\\"}"')  # a JSON string of a JSON string
    events.append(f.completion_end())
    records = feed_all(t, events)
    (req,) = kinds(records, ToolCallRequested)
    assert req.arguments == {"q": "x"}
    assert isinstance(records[-2], TurnEnded) and isinstance(records[-1], CompletionEnded)
    assert t.current_turn is None and t.close() == []
    assert isinstance(t.turns[0], Turn)


def test_feed_rejects_input_events() -> None:
    with pytest.raises(TypeError):
        OutputTracker().feed(f.session_end())  # type: ignore[arg-type]


def test_join_text() -> None:
    assert join_text(["i'm going to go the", "art gallery"]) == "i'm going to go the art gallery"
    assert join_text(["Hi!", " How"]) == "Hi! How"
    assert join_text(["", "a", "", "b"]) == "a b"
    assert join_text([]) == ""
