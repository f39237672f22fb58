"""``fakeserver.replay.plan``: a cassette stream as the replay walks it (pure data, no server)."""

from __future__ import annotations

import json
from pathlib import Path

from fakeserver.replay import build_plan
from fakeserver.replay.report import Mismatch, ReplayReport, UnusedInteraction, summarize_steps
from novasonic.builder import EventBuilder, sequential_names
from novasonic.cassette import load_cassette
from novasonic.events import TextInput
from novasonic.models import NOVA_SONIC_1
from tests.helpers import factories as f
from tests.helpers.replay_cassettes import IDS, Tape, audio_turn_tape, text_turn_tape


def plan_of(path: Path, stream: int = 0):
    cassette = load_cassette(path)
    return build_plan(cassette[stream], cassette.header)


def test_steps_follow_the_file_order_with_audio_runs_as_chunks(tmp_path: Path) -> None:
    plan = plan_of(text_turn_tape(tmp_path / "t.jsonl", chunks=6))
    kinds = [s.kind for s in plan.steps]
    assert kinds[:9] == ["expect"] * 9  # start block (6) and the text block (3); audio_in is no step
    assert kinds[-4:] == ["expect", "expect", "expect", "input_end"]
    chunks = [s for s in plan.steps if s.kind == "chunk"]
    assert [(c.chunk, c.offset, c.size) for c in chunks] == [(k, 1920 * k, 1920) for k in range(6)]
    assert [round(c.t, 3) for c in chunks] == [0.62, 0.66, 0.7, 0.74, 0.78, 0.82]
    assert {c.a for c in chunks} == {320.0}  # no user audio flowed during the answer
    # Interactions alternate: start + text (0), the answer (still 0: the client spoke first), shutdown (1).
    assert plan.steps[0].interaction == 0 and chunks[0].interaction == 0 and plan.steps[-1].interaction == 1
    assert plan.model_id == "amazon.nova-2-sonic-v1:0" and plan.end_reason == "completed"
    assert plan.first_line == 2 and plan.interruptions == {}
    assert plan.n_client == 13 and plan.n_server == len(plan.steps) - 13


def test_chunks_take_their_audio_position_from_the_microphone_timeline(tmp_path: Path) -> None:
    plan = plan_of(audio_turn_tape(tmp_path / "a.jsonl", chunks=8))
    chunks = [s for s in plan.steps if s.kind == "chunk"]
    nxt = next(s for s in plan.steps if s.index > chunks[-1].index)
    positions = [c.a for c in chunks]
    assert positions[0] == chunks[0].record.a  # type: ignore[union-attr]
    assert positions == sorted(positions) and positions[-1] <= nxt.a
    # A live microphone: each chunk 32 ms later heard 32 ms more audio (one frame).
    assert [round(b - a) for a, b in zip(positions[1:-1], positions[2:])] == [32] * 6


def test_an_untimed_run_is_spread_over_the_audio_until_the_next_record(tmp_path: Path) -> None:
    t = Tape(tmp_path / "u.jsonl")
    t.open()
    t.start()
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.audio(64)
    t.server(f.out_audio_start("aud", sample_rate=24000, **ids))
    for _ in range(4):
        t.server(f.out_audio("aud", 960, **ids))  # all at the same instant (an infinite clock)
    t.audio(320)
    t.server(f.out_content_end("aud", "AUDIO", "END_TURN", **ids))
    t.close_client()
    t.end()
    chunks = [s for s in plan_of(t.save()).steps if s.kind == "chunk"]
    assert [c.a for c in chunks] == [64.0, 144.0, 224.0, 304.0]


def barge_tape(path: Path, variant: str, model: str = "amazon.nova-2-sonic-v1:0") -> Path:
    t = Tape(path, model_id=model)
    t.open()
    t.start()
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.audio(320)
    t.audio_out("aud", 4, end=False, **ids)
    t.audio(96, speech=True)
    if variant == "speech-start":  # Nova 2: userSpeechStart, then the AUDIO block ends PARTIAL_TURN
        t.server(f.user_speech_start(416).model_copy(update={"prompt_name": ids["prompt_name"]}),
                 f.out_content_end("aud", "AUDIO", "PARTIAL_TURN", **ids))
    elif variant == "interrupted":
        t.server(f.out_content_end("aud", "AUDIO", "INTERRUPTED", **ids))
    elif variant == "marker":  # Nova Sonic 1: no speech events; the FINAL text carries the marker
        t.server(f.out_content_end("aud", "AUDIO", "END_TURN", **ids),
                 *f.out_text_block("fin", "ASSISTANT", "FINAL", "Once", '{ "interrupted" : true }',
                                   stop="INTERRUPTED", **ids))
    elif variant == "backchannel":  # speech heard, but the assistant kept talking
        t.server(f.user_speech_start(416).model_copy(update={"prompt_name": ids["prompt_name"]}),
                 f.out_audio("aud", 1920, **ids), f.out_content_end("aud", "AUDIO", "END_TURN", **ids))
    else:  # an uninterrupted answer; the user speaks afterwards
        t.server(f.out_content_end("aud", "AUDIO", "END_TURN", **ids),
                 f.user_speech_start(416).model_copy(update={"prompt_name": ids["prompt_name"]}))
    t.close_client()
    t.end()
    return t.save()


def test_recorded_barge_ins_are_found_in_each_form(tmp_path: Path) -> None:
    for variant, model in [("speech-start", None), ("interrupted", None), ("marker", NOVA_SONIC_1)]:
        plan = plan_of(barge_tape(tmp_path / f"{variant}.jsonl", variant, *([model] if model else [])))
        (cid, index), = plan.interruptions.items()
        step = plan.steps[index]
        assert cid == "aud"
        expected = "userSpeechStart" if variant == "speech-start" else "contentEnd AUDIO"
        assert step.describe().startswith(expected), (variant, step)
        # Where the recorded user started: the event's offset, else the recorded speech segment
        # (40 ms windows: the speech that starts at 416 ms makes the 400–440 window speech).
        assert plan.interruption_speech_ms[cid] == (416.0 if variant == "speech-start" else 400.0)
    for variant in ("none", "backchannel"):
        assert plan_of(barge_tape(tmp_path / f"{variant}.jsonl", variant)).interruptions == {}


def test_http_errors_corrupt_frames_and_client_transport(tmp_path: Path) -> None:
    t = Tape(tmp_path / "x.jsonl")
    t.open()
    t.client(t.b.session_start()[0])  # sent while the HTTP error was on its way
    t.exception("ServiceUnavailableException", "busy", via="http", status=503)
    t.end("http:503")
    t.open()
    t.start()
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.server(f.completion_start(**ids), f.completion_end(**ids))
    t.transport("corrupt-frame", detail="prelude")
    t.transport("end-stream")
    t.end("fault:corrupt")
    t.open()
    t.start()
    t.transport("rst", direction="c")
    t.end("client-reset")
    cassette = load_cassette(t.save())
    http, corrupt, reset = (build_plan(s, cassette.header) for s in cassette)
    assert http.steps == [] and http.http_error is not None and http.http_error.status == 503
    assert [s.kind for s in corrupt.steps][-2:] == ["event", "event"]  # no transport step left
    assert corrupt.steps[-1].corrupt == "prelude" and corrupt.steps[-2].corrupt is None
    assert [s.kind for s in reset.steps] == ["expect"] * 6  # a client rst is nothing to wait for


def test_report_texts(tmp_path: Path) -> None:
    plan = plan_of(text_turn_tape(tmp_path / "t.jsonl", chunks=6))
    answer = [s for s in plan.steps if not s.is_client]
    text = summarize_steps(answer)
    assert "audioOutput ×6" in text and text.count("audioOutput") == 1
    assert summarize_steps(answer, limit=4).endswith("more)")
    expected = next(s for s in plan.steps if s.kind == "expect" and isinstance(s.record.event, TextInput))
    b = EventBuilder("amazon.nova-2-sonic-v1:0", name_factory=sequential_names("x"))
    received = b.session_start()[0]
    m = Mismatch(kind="unexpected-event", connection=0, cassette_stream=0, expected=expected, received=received,
                 hints=("re-record",), client_event_number=8, audio_ms=320.0, cassette="t.jsonl")
    assert m.summary().startswith("Cassette replay mismatch on cassette stream 0: expected textInput")
    assert f"(line {expected.line})" in m.summary() and "received sessionStart" in m.summary()
    rendered = m.render()
    for needle in ("client event #8: unexpected event (at 320 ms of user audio)", f"expected (line {expected.line})",
                   '"textInput":{', "received: sessionStart", "how to fix:", "- re-record"):
        assert needle in rendered, rendered
    extra = Mismatch(kind="extra-stream", connection=2, cassette_stream=None, expected=None, received=None,
                     cassette="t.jsonl")
    assert "this is stream 3 on this server, but the cassette t.jsonl records 2 stream(s)" in extra.summary()
    report = ReplayReport("t.jsonl", 1, mismatches=[m], unused=[
        UnusedInteraction(0, tuple(s for s in plan.steps[-4:]), tuple(answer[:3]), "not reached: test")])
    out = str(report)
    assert out.startswith("Cassette replay of t.jsonl (1 stream): 1 mismatch, 1 unused interaction")
    assert "MISMATCH 1: stream 0 (connection 0)" in out and "UNUSED: stream 0, lines" in out
    assert not report.all_played
    json.dumps(report.render())  # plain text
