"""``nova-cassette`` (``python -m tools.cassette_cli``) run as a real subprocess on cassettes
written here with ``CassetteWriter``.

Exit codes under test: 0 ok, 1 invalid cassette (validate), 2 trouble (usage error; a missing,
unreadable or corrupt cassette for inspect; a file validate cannot read).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from novasonic.cassette import CassetteHeader, CassetteWriter
from novasonic.events import BARGE_IN_TEXT
from novasonic.models import NOVA_2_SONIC
from tests.cli.cassettes import KEEP_AUDIO, run
from tests.cli.cassettes import write_conversation as write_cli_conversation
from tests.helpers import factories as f

USER_1 = "what's the weather in paris"
REPLY_1 = "Clear skies, 21 degrees."
USER_2 = "tell me a long story"
REPLY_2 = "Once upon a time there was a dragon"


def write_conversation(path: Path) -> Path:
    """Two streams. Stream 0: a turn with a tool call (getWeather, resolved by a toolResult) and a
    spoken reply, then a turn the user interrupts (barge-in marker, INTERRUPTED), then the client
    closes. Stream 1: throttled at once."""
    header = CassetteHeader(model_id=NOVA_2_SONIC, voice="matthew", region="us-east-1", source="scripted")
    with CassetteWriter(path, header) as w:
        t = 0.0

        def client(*events: object) -> None:
            nonlocal t
            for ev in events:
                t += 0.001
                w.write_client(0, t, None, ev)  # type: ignore[arg-type]

        def server(*events: object) -> None:
            nonlocal t
            for ev in events:
                t += 0.001
                w.write_server(0, t, None, ev)  # type: ignore[arg-type]

        def mic(n: int) -> None:
            nonlocal t
            for _ in range(n):
                t += 0.032
                w.write_client(0, t, None, f.audio_input("mic"))

        tools = [f.tool("getWeather", {"type": "object", "properties": {"city": {"type": "string"}}})]
        client(f.session_start(), f.prompt_start(tools=tools), *f.system_block(), f.audio_start("mic"))
        mic(10)
        server(f.completion_start(), f.user_speech_start(100))
        mic(20)
        server(f.user_speech_end(700),
               *f.out_text_block("u1", "USER", "FINAL", USER_1),
               *f.out_tool_block("tool1", "tu-1", "getWeather", {"city": "Paris"}))
        w.flush()
        client(*f.tool_result_block("r1", "tu-1", {"sky": "clear", "c": 21}))
        server(*f.out_text_block("x1", "ASSISTANT", "SPECULATIVE", REPLY_1),
               *f.out_audio_block("a1", 1920, 1920, 640, sample_rate=24000, stop="END_TURN"),
               *f.out_text_block("x2", "ASSISTANT", "FINAL", REPLY_1, stop="END_TURN"))
        w.flush()
        mic(20)
        server(f.user_speech_start(1700))
        mic(20)
        server(f.user_speech_end(2300),
               *f.out_text_block("u2", "USER", "FINAL", USER_2),
               *f.out_text_block("x3", "ASSISTANT", "SPECULATIVE", REPLY_2),
               f.out_audio_start("a2", sample_rate=24000), f.out_audio("a2", 1920), f.out_audio("a2", 1920))
        mic(5)
        server(f.user_speech_start(2500),
               *f.out_text_block("x4", "ASSISTANT", "FINAL", BARGE_IN_TEXT),
               f.out_content_end("a2", "AUDIO", "INTERRUPTED"))
        mic(5)
        client(f.content_end("mic"), f.prompt_end(), f.session_end())
        w.write_transport(0, t + 0.001, None, "end-input", direction="c")
        w.end_stream(0, t + 0.002, "completed", input_finished=True)

        w.write_client(1, 0.0, None, f.session_start())
        w.write_exception(1, 0.01, None, "throttlingException", "Too many requests, please wait.")
        w.end_stream(1, 0.01, "exception:throttlingException")
    return path


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    return write_conversation(tmp_path / "call.jsonl")


# --- inspect ---------------------------------------------------------------------------------------


def test_inspect_text_shows_header_turns_tool_call_and_barge_in(cassette: Path) -> None:
    r = run("inspect", cassette)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for text in (NOVA_2_SONIC, "matthew", "us-east-1", "scripted", "16000 Hz", "24000 Hz",
                 f'"{USER_1}"', f'"{REPLY_1}"', f'"{USER_2}"', "getWeather", '"city": "Paris"', "[resolved]",
                 "BARGE-IN", "throttlingException", "end-input", "KB per conversation-minute",
                 "ended: completed, input finished", "ended: exception:throttlingException"):
        assert text in out, f"{text!r} not in:\n{out}"
    assert BARGE_IN_TEXT not in out  # the marker is cut out of the reply


def test_inspect_json_has_the_right_counts(cassette: Path) -> None:
    r = run("inspect", cassette, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    h = d["header"]
    assert (h["format_version"], h["model"], h["voice"], h["region"], h["source"]) == (
        1, NOVA_2_SONIC, "matthew", "us-east-1", "scripted")
    assert (h["input_rate"], h["output_rate"]) == (16000, 24000)
    assert d["size_bytes"] == cassette.stat().st_size and d["kb_per_minute"] > 0
    assert len(d["streams"]) == 2
    s0, s1 = d["streams"]

    assert s0["end"] == "completed" and s0["input_finished"] is True
    assert s0["events"]["audio_input_frames"] == 80
    # 6 opening (sessionStart, promptStart, 3 SYSTEM, mic contentStart) + 3 tool result + 3 closing
    assert s0["events"]["client"] == 12 + 80
    assert s0["user_audio_ms"] == 80 * 32
    assert s0["user_speech_ms"] is not None
    assert s0["events"]["audio_output_chunks"] == 5
    assert s0["assistant_audio_ms"] == pytest.approx((1920 * 4 + 640) / 48, abs=0.1)

    turns = s0["turns"]
    assert [t["user_text"] for t in turns] == [USER_1, USER_2]
    assert turns[0]["assistant_text"] == REPLY_1
    assert turns[0]["tool_calls"] == [{"name": "getWeather", "tool_use_id": "tu-1", "arguments": {"city": "Paris"},
                                       "requested": True, "resolved": True}]
    assert turns[0]["interrupted"] is False
    assert turns[1]["assistant_text"] == REPLY_2 and turns[1]["interrupted"] is True
    assert s0["transport"] == [{"t": pytest.approx(s0["transport"][0]["t"]), "a": 2560.0, "direction": "client",
                                "action": "end-input", "code": None, "detail": None,
                                "line": s0["transport"][0]["line"]}]
    assert s0["exceptions"] == []

    assert s1["end"] == "exception:throttlingException"
    assert [e["name"] for e in s1["exceptions"]] == ["throttlingException"]
    assert s1["events"]["client"] == 1 and s1["turns"] == []


# --- validate --------------------------------------------------------------------------------------


def test_validate_ok(cassette: Path, tmp_path: Path) -> None:
    other = write_conversation(tmp_path / "other.jsonl")
    r = run("validate", cassette, other)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"OK {cassette} (2 streams, ") and lines[0].endswith(" events)")
    assert lines[1].startswith(f"OK {other} ")
    assert r.stderr == ""


def test_validate_corrupt_line_in_the_middle_names_it(cassette: Path, tmp_path: Path) -> None:
    lines = cassette.read_text().splitlines()
    lines[5] = lines[5][: len(lines[5]) // 2]
    cassette.write_text("\n".join(lines) + "\n")
    good = write_conversation(tmp_path / "good.jsonl")
    r = run("validate", cassette, good)
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[0].startswith(f"INVALID {cassette}:6: not a JSON line")
    assert "(" in out[0] and "delete the broken line" in out[0]  # the hint
    assert out[1].startswith(f"OK {good} ")  # the other files are still checked


def test_inspect_corrupt_cassette_is_one_error_line_exit_2(cassette: Path) -> None:
    lines = cassette.read_text().splitlines()
    lines[5] = "{not json"
    cassette.write_text("\n".join(lines) + "\n")
    r = run("inspect", cassette)
    assert r.returncode == 2
    assert r.stderr.startswith(f"nova-cassette: error: {cassette}:6: not a JSON line")
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr and r.stdout == ""


def test_validate_truncated_last_line_is_ok_with_a_warning(cassette: Path) -> None:
    data = cassette.read_bytes().rstrip(b"\n")
    cut = data.rfind(b"\n")
    cassette.write_bytes(data[: cut + 1 + (len(data) - cut) // 2])  # the last line, torn, no newline
    r = run("validate", cassette)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"OK {cassette} (2 streams, ")
    assert f"WARNING {cassette}: line " in r.stderr and "incomplete" in r.stderr


def test_validate_missing_file_is_an_error_and_the_others_are_still_checked(tmp_path: Path, cassette: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"novasonic_cassette": 1}\n{"k": "nonsense", "s": 0}\n')
    r = run("validate", missing, broken, cassette)
    assert r.returncode == 2  # trouble (a file that cannot be read) wins over "invalid"
    out = r.stdout.splitlines()
    assert out[0].startswith(f"ERROR {missing}: no cassette at this path (")
    assert out[1].startswith(f"INVALID {broken}:2: ")
    assert out[2].startswith(f"OK {cassette} ")
    assert run("validate", broken, cassette).returncode == 1
    r = run("inspect", missing)
    assert r.returncode == 2 and r.stderr.startswith(f"nova-cassette: error: {missing}: no cassette at this path")
    r = run("inspect", tmp_path)
    assert r.returncode == 2 and "is a directory" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args",
    [(), ("frobnicate",), ("validate",), ("inspect",), ("inspect", "a.jsonl", "--yaml")],
)
def test_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    r = run(*args)
    assert r.returncode == 2
    assert "usage: nova-cassette" in r.stderr


def test_help_exits_0() -> None:
    r = run("--help", script=True)  # the installed console script
    assert r.returncode == 0, r.stderr
    assert all(cmd in r.stdout for cmd in ("inspect", "validate", "diff", "audio", "timeline"))


def test_inspect_says_how_much_audio_is_kept(tmp_path: Path) -> None:
    elided = write_cli_conversation(tmp_path / "elided.jsonl")
    kept = write_cli_conversation(tmp_path / "kept.jsonl", options=KEEP_AUDIO)
    d = json.loads(run("inspect", elided, "--json").stdout)["streams"][0]
    assert d["user_audio_kept_ms"] == 0 and d["assistant_audio_kept_ms"] == 0
    assert d["user_audio_ms"] == 3200 and d["assistant_audio_ms"] == 800
    r = run("inspect", kept)
    d = json.loads(run("inspect", kept, "--json").stdout)
    s0 = d["streams"][0]
    assert s0["user_audio_kept_ms"] == 3200 and s0["assistant_audio_kept_ms"] == 800
    assert d["sidecar_bytes"] == (tmp_path / "kept.audio").stat().st_size > 0
    assert "user 3200 ms (speech 1760 ms; kept), assistant 800 ms (kept)" in r.stdout
    assert "(speech 1760 ms; not kept), assistant 800 ms (not kept)" in run("inspect", elided).stdout


def test_inspect_a_cassette_that_breaks_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "rude.jsonl"
    with CassetteWriter(path, CassetteHeader(model_id=NOVA_2_SONIC)) as w:
        w.write_client(0, 0.0, None, f.session_start())
        w.write_client(0, 0.1, None, f.text_input("nowhere", "hello"))  # no promptStart, no contentStart
        w.end_stream(0, 0.2, "completed")
    r = run("inspect", path)
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"nova-cassette: error: {path}:4: textInput breaks protocol rule ")
    assert "`nova-cassette inspect --no-rules` shows the cassette anyway" in line
    r = run("inspect", path, "--no-rules")
    assert r.returncode == 0 and "ended: completed" in r.stdout
    assert run("validate", path).stdout.startswith(f"INVALID {path}:4: textInput breaks protocol rule ")
