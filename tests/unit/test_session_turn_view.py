"""TurnView: session events from output events over several streams, the carried conversation,
and the quiet-point facts (sans-IO, fed with typed output events)."""

from __future__ import annotations

from novasonic.session import events as E
from novasonic.session.turns import TurnView
from tests.helpers import factories as f


def feed(view: TurnView, stream: int, events: list, now: float = 0.0) -> list[E.SessionEvent]:
    out: list[E.SessionEvent] = []
    for ev in events:
        out.extend(view.feed(stream, ev, now))
    return out


def turn_events(user: str, answer: str, n: int, *, stop: str = "END_TURN") -> list:
    return [
        f.user_speech_start(0), f.user_speech_end(1000, 1480),
        *f.out_text_block(f"u{n}", "USER", "FINAL", user),
        *f.out_text_block(f"s{n}", "ASSISTANT", "SPECULATIVE", answer),
        *f.out_audio_block(f"a{n}", 3200, 3200, stop=stop),
        *f.out_text_block(f"f{n}", "ASSISTANT", "FINAL", answer, stop="END_TURN"),
        f.completion_end(),
    ]


def test_events_and_session_wide_turn_indexes() -> None:
    view = TurnView(output_sample_rate=16000)
    view.set_history([("user", "hi"), ("assistant", "hello")])
    view.begin_stream(0)
    out0 = feed(view, 0, [f.usage_event(in_text=22), f.completion_start(), *turn_events("one.", "First.", 0)])
    view.end_stream(0, "recycle")
    view.begin_stream(1)
    out1 = feed(view, 1, [f.completion_start(), *turn_events("two.", "Second.", 1)])
    types0 = [type(e).__name__ for e in out0]
    assert types0[:3] == ["Usage", "TurnStarted", "UserSpeechStarted"]
    assert types0.count("GenerationStarted") == 1 and types0.count("AudioChunk") == 2
    assert types0[-1] == "TurnEnded"
    chunk = next(e for e in out0 if isinstance(e, E.AudioChunk))
    assert (len(chunk.pcm), chunk.sample_rate, chunk.duration_ms) == (3200, 16000, 100.0)
    ended = [e for e in out0 + out1 if isinstance(e, E.TurnEnded)]
    assert [(e.stream_index, e.turn.index, e.turn.user_text, e.turn.assistant_text) for e in ended] == [
        (0, 0, "one.", "First."), (1, 1, "two.", "Second.")]
    assert [e.turn_index for e in out1 if isinstance(e, E.GenerationStarted)] == [1]
    assert [(m.role.value, m.text) for m in view.history()] == [
        ("USER", "hi"), ("ASSISTANT", "hello"), ("USER", "one."), ("ASSISTANT", "First."),
        ("USER", "two."), ("ASSISTANT", "Second.")]
    assert view.session_usage.input_text == 22
    assert [t.index for t in view.turns] == [0, 1]


def test_turn_in_progress_is_cut_and_carried() -> None:
    view = TurnView()
    view.begin_stream(0)
    feed(view, 0, [f.completion_start(), f.user_speech_start(0), f.user_speech_end(900, 1380),
                   *f.out_text_block("u", "USER", "FINAL", "tell me a story."),
                   *f.out_text_block("s", "ASSISTANT", "SPECULATIVE", "Once upon a time"),
                   f.out_audio_start("a"), f.out_audio("a", 3200)])
    out = view.end_stream(0, "restart")
    (ended,) = [e for e in out if isinstance(e, E.TurnEnded)]
    assert ended.cut_by == "restart" and ended.turn.assistant_text == "Once upon a time"
    assert [m.text for m in view.history()] == ["tell me a story.", "Once upon a time"]
    assert view.end_stream(0, "restart") == []  # once


def test_typed_text_is_not_repeated_by_its_echo() -> None:
    view = TurnView()
    view.begin_stream(0)
    view.add_typed("What is the capital of France?")
    feed(view, 0, [f.completion_start(), *f.out_text_block("u", "USER", "FINAL", "what is the capital of france"),
                   *f.out_text_block("s", "ASSISTANT", "SPECULATIVE", "Paris."), f.completion_end()])
    view.add_typed("And of Spain?")
    feed(view, 0, [f.completion_start(), *f.out_text_block("u2", "USER", "FINAL", ""),
                   *f.out_text_block("s2", "ASSISTANT", "SPECULATIVE", "Madrid."), f.completion_end()])
    assert [m.text for m in view.history()] == ["What is the capital of France?", "Paris.", "And of Spain?", "Madrid."]


def test_barge_in_and_tool_calls() -> None:
    view = TurnView()
    view.begin_stream(0)
    out = feed(view, 0, [f.completion_start(), *f.out_text_block("u", "USER", "FINAL", "weather?"),
                         *f.out_tool_block("t", "tool-1", "get_weather", {"city": "Oslo"})])
    (call,) = [e for e in out if isinstance(e, E.ToolCall)]
    assert (call.tool_use_id, call.name, call.arguments) == ("tool-1", "get_weather", {"city": "Oslo"})
    assert [c.tool_use_id for c in view.owed_tool_calls] == ["tool-1"]
    assert not view.quiet(100.0, 1.0)  # a result is owed
    view.tool_result_sent(0, "tool-1")
    assert view.owed_tool_calls == ()
    out = feed(view, 0, [f.out_audio_start("a"), f.out_audio("a", 3200), f.user_speech_start(2000),
                         f.out_content_end("a", "AUDIO")])
    assert [e.reason for e in out if isinstance(e, E.BargeIn)] == ["user-speech"]


def test_quiet_point() -> None:
    view = TurnView()
    view.begin_stream(0)
    assert view.quiet(0.0, 1.0)  # nothing happened: a silent user is quiet
    feed(view, 0, [f.user_speech_start(0)], now=1.0)
    assert not view.quiet(10.0, 1.0)  # the user is speaking
    feed(view, 0, [f.user_speech_end(900, 1380), f.completion_start(),
                   *f.out_text_block("u", "USER", "FINAL", "hi"), f.out_audio_start("a"), f.out_audio("a", 320)],
         now=2.0)
    assert not view.quiet(10.0, 1.0)  # assistant audio block open
    feed(view, 0, [f.out_content_end("a", "AUDIO", "END_TURN")], now=3.0)
    assert not view.quiet(3.5, 1.0) and view.quiet(4.0, 1.0)
    feed(view, 0, [f.usage_event(out_speech=5)], now=5.0)
    assert view.quiet(5.0, 1.0)  # usage is not activity
