"""The cassette generator (``python -m tools.cassette_gen``): deterministic, and ``--check`` catches
drift with a clear message. Real parts: the generator runs each scenario with the stock SDK client
against ``FakeNovaSonic``; ``--check`` and the CLI run as real subprocesses.

The full ``--check`` of the committed library is split into groups (one subprocess each, so each
test stays well inside the per-test timeout and xdist can spread them); a guard test makes sure
every scenario is in a group.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.cassette_gen import SCENARIOS, content_bytes, generate
from tools.cassette_gen.clock import DrivenClock
from tools.cassette_gen.generate import check_listing

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "cassettes"
#: Wall-clock bound for one generator subprocess (each group records well under a minute).
SUBPROCESS_BOUND_S = 110.0

CHECK_GROUPS: dict[str, list[str]] = {
    "turns_and_tools": ["nova2_audio_turn", "nova2_text_turn", "nova2_tool_call", "nova2_chained_tools",
                        "nova1_audio_turn", "agent_demo"],
    "barge_in_resume_idle": ["nova2_barge_in_spec", "nova2_barge_in_pipecat", "nova2_barge_in_silent",
                             "nova2_history_resume", "nova2_idle_timeout"],
    "restarts": [n for n in SCENARIOS if n.startswith("nova2_restart_")],
    "silence_timeout": ["nova2_silence_timeout"],
    "stream_age_limit": ["nova2_stream_age_limit"],
}


def run_gen(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tools.cassette_gen", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=SUBPROCESS_BOUND_S)


# --- --check on the committed library -----------------------------------------------------------------


def test_the_check_groups_cover_every_scenario_once() -> None:
    names = [n for group in CHECK_GROUPS.values() for n in group]
    assert sorted(names) == sorted(SCENARIOS) and len(names) == len(set(names))


@pytest.mark.parametrize("group", list(CHECK_GROUPS))
def test_check_passes_on_the_committed_library(group: str) -> None:
    """Regenerating these scenarios gives exactly the committed files (the CI drift check)."""
    proc = run_gen("--check", str(LIBRARY), "--only", ",".join(CHECK_GROUPS[group]), "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"cassette library up to date ({len(CHECK_GROUPS[group])} cassettes checked)" in proc.stdout


def test_check_fails_on_a_tampered_copy_with_a_clear_message(tmp_path: Path) -> None:
    lib = tmp_path / "cassettes"
    shutil.copytree(LIBRARY, lib)
    tool_call = lib / "nova2_tool_call.jsonl"
    text = tool_call.read_text(encoding="utf-8")
    assert text.count("It’s sunny and 21 degrees") == 2
    tool_call.write_text(text.replace("It’s sunny and 21 degrees", "It’s rainy and 12 degrees"), encoding="utf-8")
    # a different created/toolkit alone is not drift (they are not content)
    audio_turn = lib / "nova2_audio_turn.jsonl"
    first, _, rest = audio_turn.read_bytes().partition(b"\n")
    header = json.loads(first)
    header.update(created="2000-01-01T00:00:00Z", toolkit="0.0.1")
    audio_turn.write_bytes(json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" + rest)

    proc = run_gen("--check", str(lib), "--only", "nova2_tool_call,nova2_audio_turn", "-q")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr
    assert "cassette library drift: 1 problem(s)" in err
    assert f"{tool_call}: the conversation differs from what the generator records now" in err
    assert '- textOutput ASSISTANT "It’s rainy and 12 degrees in Paris right now."' in err
    assert '+ textOutput ASSISTANT "It’s sunny and 21 degrees in Paris right now."' in err
    assert "nova2_audio_turn" not in err
    assert "fix: python -m tools.cassette_gen --out <dir>" in err


def test_check_reports_a_format_only_difference_by_line(tmp_path: Path) -> None:
    """Same conversation, different bytes (here an id): still drift, shown as the first line that differs."""
    lib = tmp_path / "cassettes"
    shutil.copytree(LIBRARY, lib)
    path = lib / "nova2_text_turn.jsonl"
    lines = path.read_text(encoding="utf-8").split("\n")
    k = next(i for i, line in enumerate(lines) if '"sessionId"' in line)
    session_id = json.loads(lines[k])["e"]["usageEvent"]["sessionId"]
    path.write_text("\n".join(lines).replace(session_id, "00000000-0000-4000-8000-000000000000"), encoding="utf-8")
    proc = run_gen("--check", str(lib), "--only", "nova2_text_turn", "-q")
    assert proc.returncode == 1
    assert f"{path}:{k + 1}: differs from the generator's output (same conversation" in proc.stderr
    assert "00000000-0000-4000-8000-000000000000" in proc.stderr


def test_the_listing_check_finds_missing_extra_and_stale(tmp_path: Path) -> None:
    lib = tmp_path / "cassettes"
    shutil.copytree(LIBRARY, lib)
    assert check_listing(lib) == []
    (lib / "README.md").write_text((lib / "README.md").read_text(encoding="utf-8") + "\nhand edit\n", encoding="utf-8")
    assert check_listing(lib) == [f"{lib / 'README.md'}: stale (it does not list the committed cassettes as generated)"]
    shutil.copy(lib / "agent_demo.jsonl", lib / "my_own.jsonl")
    (lib / "nova2_idle_timeout.jsonl").unlink()
    problems = check_listing(lib)
    assert f"{lib / 'my_own.jsonl'}: not made by the generator (no scenario of that name)" in problems
    assert f"{lib}: cassettes missing: nova2_idle_timeout" in problems


# --- generating ---------------------------------------------------------------------------------------


def test_generation_is_deterministic_and_unchanged_files_are_not_rewritten(tmp_path: Path) -> None:
    names = ["nova2_text_turn", "nova2_restart_throttling"]
    a, b = tmp_path / "a", tmp_path / "b"
    first = generate(a, names, jobs=2)
    assert [g.status for g in first] == ["new"] * 2
    written = {n: (a / f"{n}.jsonl").read_bytes() for n in names}
    # the same content as the committed library (created/toolkit aside), and as a second fresh run
    generate(b, names, jobs=1)
    for n in names:
        assert content_bytes(written[n]) == content_bytes((LIBRARY / f"{n}.jsonl").read_bytes()), n
        assert content_bytes(written[n]) == content_bytes((b / f"{n}.jsonl").read_bytes()), n
    # regenerating over an up-to-date directory leaves every byte (created included) as it was
    again = generate(a, names)
    assert [g.status for g in again] == ["unchanged"] * 2
    assert {n: (a / f"{n}.jsonl").read_bytes() for n in names} == written
    # a file whose content changed is rewritten, with a new created
    path = a / "nova2_text_turn.jsonl"
    first_line, _, rest = written["nova2_text_turn"].partition(b"\n")
    header = json.loads(first_line)
    header["created"] = "2000-01-01T00:00:00Z"
    path.write_bytes(json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
                     + rest.replace(b"Captain Whiskers", b"Sir Purrcival"))
    (g,) = generate(a, ["nova2_text_turn"])
    assert g.status == "updated"
    assert content_bytes(path.read_bytes()) == content_bytes(written["nova2_text_turn"])
    assert json.loads(path.read_bytes().partition(b"\n")[0])["created"] != "2000-01-01T00:00:00Z"
    assert not list(a.glob(".*.tmp")), "no temporary file left behind"


def test_cli_usage_errors_and_list() -> None:
    proc = run_gen("--check", str(LIBRARY), "--only", "nova2_audio_turn,no_such_scenario")
    assert proc.returncode == 2
    assert "error: unknown scenario(s): no_such_scenario" in proc.stderr
    proc = run_gen("--list")
    assert proc.returncode == 0
    assert [line.split()[0] for line in proc.stdout.splitlines()] == list(SCENARIOS)
    proc = run_gen("--out", "x", "--jobs", "0")
    assert proc.returncode == 2 and "--jobs must be >= 1" in proc.stderr


# --- the pieces ----------------------------------------------------------------------------------------


async def test_driven_clock_moves_with_the_audio_and_on_demand() -> None:
    clock = DrivenClock()
    assert clock.now() == 0.0 and not clock.unlimited
    audio = {"ms": 0.0}
    clock.follow(lambda: audio["ms"])
    woke: list[float] = []

    async def sleeper(s: float) -> None:
        await clock.sleep(s)
        woke.append(clock.now())

    task = asyncio.ensure_future(sleeper(0.1))
    await asyncio.sleep(0)
    audio["ms"] = 64.0
    assert clock.wake() == 0 and clock.now() == 0.064
    audio["ms"] = 128.0
    assert clock.wake() == 1
    await asyncio.wait_for(task, 1.0)
    assert woke == [0.128]
    clock.advance(55.0)
    assert clock.now() == pytest.approx(55.128)
    # a new stream: time continues from where it was, with the new stream's audio
    clock.follow(lambda: 0.0)
    assert clock.now() == pytest.approx(55.128)
    with pytest.raises(ValueError):
        clock.advance(-1.0)


def test_the_generator_and_the_driver_do_not_import_tests() -> None:
    for package in ("tools/cassette_gen", "tools/sdk_driver"):
        for path in (ROOT / package).glob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n == "tests" or n.startswith("tests.") for n in names), (path, names)
