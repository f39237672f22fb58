"""Loading validates each stream's client events against ``novasonic.rules.InputMachine``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from novasonic.cassette import CassetteHeader, CassetteRulesError, CassetteWriter, WriterOptions, load_cassette
from novasonic.models import NOVA_2_SONIC, NOVA_SONIC_1
from novasonic.rules import Limits
from tests.helpers import factories as f

HEADER = CassetteHeader(model_id=NOVA_2_SONIC, source="scripted")


def opening() -> list[Any]:
    return [f.session_start(nested="MEDIUM"), f.prompt_start(), *f.system_block(), f.audio_start("mic")]


def write(path: Path, steps: list[tuple[str, Any]], header: CassetteHeader = HEADER, **kw: Any) -> Path:
    """``steps``: ("c", event) | ("c!", (event, verdict)) | ("s", event) | ("frames", n)."""
    with CassetteWriter(path, header, WriterOptions(**kw)) as w:
        t = 0.0
        for kind, x in steps:
            t += 0.01
            if kind == "c":
                w.write_client(0, t, None, x)
            elif kind == "c!":
                w.write_client(0, t, None, x[0], verdict=x[1])
            elif kind == "s":
                w.write_server(0, t, None, x)
            else:
                for _ in range(x):
                    w.write_client(0, t, None, f.audio_input("mic"))
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, x in enumerate(path.read_text().splitlines(), 1) if needle in x)


def test_a_valid_session_loads(tmp_path: Path) -> None:
    steps = [*(("c", e) for e in opening()), ("frames", 20), ("s", f.completion_start()),
             *(("s", e) for e in f.out_tool_block("t1", "tool-1", "getDateTool", {})), ("frames", 5),
             *(("c", e) for e in f.tool_result_block("tr", "tool-1")), ("frames", 5),
             ("c", f.content_end("mic")), ("c", f.prompt_end()), ("c", f.session_end())]
    c = load_cassette(write(tmp_path / "ok.jsonl", steps))
    assert c[0].audio_in_ms == pytest.approx(30 * 32)


def test_a_broken_rule_names_the_line_and_the_rule(tmp_path: Path) -> None:
    steps = [("c", f.session_start()), ("c", f.text_input("nope", "hello"))]
    p = write(tmp_path / "bad.jsonl", steps)
    with pytest.raises(CassetteRulesError) as err:
        load_cassette(p)
    e = err.value
    assert e.line == line_of(p, '"textInput"') and e.violation is not None and e.violation.rule == "prompt-not-open"
    assert f"bad.jsonl:{e.line}: textInput breaks protocol rule 'prompt-not-open'" in str(e)
    assert "how to fix" in str(e)
    assert load_cassette(p, validate=False)[0].client_events()[1].content == "hello"


def test_a_tool_result_needs_the_recorded_tool_use(tmp_path: Path) -> None:
    base = [*(("c", e) for e in opening()), ("frames", 3)]
    result = [("c", e) for e in f.tool_result_block("tr", "tool-9")]
    p = write(tmp_path / "no-tool-use.jsonl", base + result)
    with pytest.raises(CassetteRulesError, match="tool-result-unknown-id") as err:
        load_cassette(p)
    assert err.value.line == line_of(p, '"toolResultInputConfiguration"')
    tool = [("s", e) for e in f.out_tool_block("t9", "tool-9", "getDateTool", {})]
    load_cassette(write(tmp_path / "with-tool-use.jsonl", base + tool + result))


def test_audio_frames_are_checked_and_the_audio_in_line_is_named(tmp_path: Path) -> None:
    steps = [("c", f.session_start()), ("c", f.prompt_start()), *(("c", e) for e in f.system_block()[:2]),
             ("c", f.audio_start("mic")), ("frames", 4)]  # audio while the SYSTEM text block is open
    p = write(tmp_path / "audio.jsonl", steps)
    with pytest.raises(CassetteRulesError) as err:
        load_cassette(p)
    assert err.value.violation is not None and err.value.violation.rule == "audio-while-text-open"
    assert err.value.line == line_of(p, '"audio_in"') and "audioInput frame 1 of this run" in str(err.value)


def test_audio_limits_count_the_recorded_frame_sizes(tmp_path: Path) -> None:
    p = write(tmp_path / "big.jsonl", [*(("c", e) for e in opening()), ("frames", 3)])
    load_cassette(p)
    with pytest.raises(CassetteRulesError, match="audio-input-too-large"):
        load_cassette(p, limits=Limits(max_audio_input_bytes=512))


def test_a_recorded_rejection_is_expected(tmp_path: Path) -> None:
    good = [("c", f.session_start()), ("c!", (f.text_input("nope", "x"), "prompt-not-open")),
            ("s", f.completion_start())]
    load_cassette(write(tmp_path / "rejected.jsonl", good))

    wrong_rule = [("c", f.session_start()), ("c!", (f.text_input("nope", "x"), "session-ended"))]
    p = write(tmp_path / "wrong.jsonl", wrong_rule)
    with pytest.raises(CassetteRulesError, match="recorded as rejected by rule 'session-ended', but the rules "
                                                 "reject it by 'prompt-not-open'") as err:
        load_cassette(p)
    assert err.value.line == line_of(p, '"textInput"')

    accepted = [("c!", (f.session_start(), "session-not-started"))]
    with pytest.raises(CassetteRulesError, match="but the rules accept it"):
        load_cassette(write(tmp_path / "accepted.jsonl", accepted))


def test_a_rejected_audio_frame_ends_its_run(tmp_path: Path) -> None:
    path = tmp_path / "frame.jsonl"
    with CassetteWriter(path, HEADER) as w:
        for i, ev in enumerate([f.session_start(), f.prompt_start(), *f.system_block()[:2], f.audio_start("mic")]):
            w.write_client(0, i / 100, None, ev)
        w.write_client(0, 0.1, None, f.audio_input("mic"), verdict="audio-while-text-open")
        w.write_exception(0, 0.11, None, "validationException", "Chat history should be sent completely before "
                                                                "streaming audio.")
        w.end_stream(0, 0.12, "exception:validationException")
    c = load_cassette(path)
    assert c[0].end_reason == "exception:validationException"


def test_the_model_comes_from_the_stream_or_the_header(tmp_path: Path) -> None:
    # Nova Sonic 1 rejects the nested turnDetectionConfiguration (rule turn-detection-on-nova1).
    steps = [("c", f.session_start(nested="HIGH"))]
    load_cassette(write(tmp_path / "n2.jsonl", steps))
    with pytest.raises(CassetteRulesError, match="turn-detection-on-nova1"):
        load_cassette(write(tmp_path / "n1.jsonl", steps, header=CassetteHeader(model_id=NOVA_SONIC_1)))
    with pytest.raises(CassetteRulesError, match="unknown Nova Sonic model id 'amazon.titan'") as err:
        load_cassette(write(tmp_path / "unknown.jsonl", steps, header=CassetteHeader(model_id="amazon.titan")))
    assert err.value.line == 2
    with pytest.warns(UserWarning, match="rules not checked"):
        no_model = load_cassette(write(tmp_path / "none.jsonl", steps, header=CassetteHeader()))
    assert any("rules not checked" in w for w in no_model.warnings)
