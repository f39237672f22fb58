"""``nova-cassette diff`` as a real subprocess: exit 0 equal, 1 different, 2 error (like diff(1))."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.cassettes import USER_1, Variant, run, write_conversation


@pytest.fixture
def a(tmp_path: Path) -> Path:
    return write_conversation(tmp_path / "a.jsonl")


def test_copy_with_other_ids_names_and_times_is_equal(a: Path, tmp_path: Path) -> None:
    b = write_conversation(tmp_path / "b.jsonl", Variant(ids="renamed", t_scale=2.5, t_offset=1.0, flush_often=True,
                                                         extra_silence_frames=2))
    assert "renamed" in b.read_text() and "renamed" not in a.read_text()
    r = run("diff", a, b, script=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == f"no semantic differences between {a} and {b} (ids, names, times and audio positions ignored)\n"
    assert r.stderr == ""
    j = run("diff", a, b, "--json")
    assert j.returncode == 0 and json.loads(j.stdout)["equal"] is True


def test_changed_transcript_missing_tool_call_and_extra_stream(a: Path, tmp_path: Path) -> None:
    b = write_conversation(tmp_path / "b.jsonl", Variant(ids="b", user_text="what's the weather in london",
                                                         tool_call=False, extra_stream=True))
    r = run("diff", a, b)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == [f"--- {a}", f"+++ {b}"]
    # the changed transcript, as a -/+ pair naming the field and the lines
    assert f'- textOutput USER "{USER_1}"  (differs: content)  (line 13)' in lines
    assert "+ textOutput USER \"what's the weather in london\"  (differs: content)  (line 13)" in lines
    # the missing tool call: the TOOL block of the service and the toolResult block of the client
    assert any(x.startswith('- toolUse getWeather #toolUse1 {"city":"Paris"}') for x in lines)
    assert any(x.startswith("- contentStart #contentId2 TOOL TOOL") for x in lines)
    assert any(x.startswith('- toolResult #content3 {"c":21,"sky":"clear"}') for x in lines)
    # the extra stream
    assert any(x.startswith(f"@@ stream 2: only in {b} (") and "serviceUnavailableException" in x for x in lines)
    assert any(x.startswith("+ exception serviceUnavailableException (via stream)") for x in lines)
    # unchanged context around a change, unchanged streams not shown
    assert "  contentStart #contentId1 TEXT USER FINAL" in lines
    assert not any(x.startswith("@@ stream 1") for x in lines)
    assert lines[-1] == "# 1 changed, 7 removed, 5 added"


def test_json_output(a: Path, tmp_path: Path) -> None:
    b = write_conversation(tmp_path / "b.jsonl", Variant(ids="b", user_text="hi", tool_call=False, extra_stream=True))
    r = run("diff", a, b, "--json")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["equal"] is False and (d["a"], d["b"]) == (str(a), str(b))
    assert d["options"] == {"timing": False, "time_tolerance_s": 0.05, "audio_tolerance_ms": 40.0, "ignore": []}
    assert [s["status"] for s in d["streams"]] == ["changed", "same", "only_b"]
    s0 = d["streams"][0]["changes"]
    changed = [c for c in s0 if c["op"] == "changed"]
    assert [(c["lane"], c["a"]["kind"], c["fields"], c["a"]["data"]["content"], c["b"]["data"]["content"])
            for c in changed] == [("service", "textOutput", ["content"], USER_1, "hi")]
    removed = {(c["lane"], c["a"]["kind"]) for c in s0 if c["op"] == "removed"}
    assert ("service", "toolUse") in removed and ("client", "toolResult") in removed
    tool_use = next(c["a"] for c in s0 if c["op"] == "removed" and c["a"]["kind"] == "toolUse")
    assert tool_use["data"]["toolUseId"] == "#toolUse1" and tool_use["data"]["content"] == {"city": "Paris"}
    assert tool_use["line"] == 17 and tool_use["summary"].startswith("toolUse getWeather #toolUse1")
    assert d["counts"] == {"removed": 7, "added": 5, "changed": 1, "header": 0}
    assert d["streams"][2]["end"] == {"a": None, "b": "exception:serviceUnavailableException"}


def test_timing_and_tolerances(a: Path, tmp_path: Path) -> None:
    b = write_conversation(tmp_path / "b.jsonl", Variant(t_scale=1.5))
    assert run("diff", a, b).returncode == 0
    r = run("diff", a, b, "--timing", "-U", "0")
    assert r.returncode == 1
    assert "(differs: t)" in r.stdout and " @ t=" in r.stdout
    assert not any(x.startswith(" ") for x in r.stdout.splitlines())  # -U 0: no context lines
    assert run("diff", a, b, "--timing", "--time-tolerance", "5").returncode == 0


def test_ignore(a: Path, tmp_path: Path) -> None:
    b = write_conversation(tmp_path / "b.jsonl", Variant(voice="tiffany"))
    r = run("diff", a, b)
    assert r.returncode == 1
    assert "@@ header @@\n- voice: matthew\n+ voice: tiffany\n" in r.stdout
    assert run("diff", a, b, "--ignore", "voice,voiceId").returncode == 0
    assert run("diff", a, b, "--ignore", "voice", "--ignore", "voiceId").returncode == 0


def test_errors_exit_2_with_one_line(a: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    r = run("diff", a, missing)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"nova-cassette: error: {missing}: no cassette at this path")
    assert len(r.stderr.splitlines()) == 1

    corrupt = tmp_path / "corrupt.jsonl"
    lines = a.read_text().splitlines()
    lines[6] = lines[6][:20]
    corrupt.write_text("\n".join(lines) + "\n")
    r = run("diff", corrupt, a)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(f"nova-cassette: error: {corrupt}:7: not a JSON line")
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr

    for bad in (["diff", a], ["diff", a, a, "--time-tolerance", "-1"], ["diff", a, a, "-U", "x"]):
        r = run(*bad)
        assert r.returncode == 2 and "usage: nova-cassette diff" in r.stderr


def test_one_conversation_recorded_at_two_speeds_is_equal(recorded_at_two_speeds: tuple[Path, Path]) -> None:
    """The stock SDK client against the fake server, at infinite speed and at 30×: other
    promptName/contentNames, all times 0 vs real ones, other microphone frame counts."""
    fast, paced = recorded_at_two_speeds
    assert fast.read_text().count('"t":0,') > paced.read_text().count('"t":0,')
    r = run("diff", fast, paced)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("diff", fast, paced, "--timing")
    assert r.returncode == 1 and "(differs: " in r.stdout
