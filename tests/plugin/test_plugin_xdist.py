"""``pytest -n 2`` (pytest-xdist, a real subprocess): every test gets its own fake server, the
replays and recordings of different workers do not meet, and the session server is one per
worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from novasonic.cassette import diff_cassettes, load_cassette
from tests.plugin.inner import CONFTEST, INI

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "cassettes"
TESTS = ["test_a", "test_b", "test_c", "test_d"]


def test_replays_and_a_recording_run_side_by_side_on_two_workers(
    pytester: pytest.Pytester, cassette_in: Callable[..., Path], upstream: Callable[[str], Path]
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    for test in TESTS:
        cassette_in(pytester, "nova2_text_turn", "test_par", test)
    out = pytester.path / "seen"
    out.mkdir()
    body = "\n".join(f'''
@pytest.mark.nova_cassette
def {name}(nova_sonic, nova_fake_server, worker_id):
    play("nova2_text_turn")
    assert nova_sonic.all_played, nova_sonic.report()
    (OUT / "{name}.json").write_text(json.dumps({{"endpoint": nova_sonic.endpoint, "worker": worker_id,
                                                 "session_server": nova_fake_server.endpoint}}))
''' for name in TESTS)
    pytester.makepyfile(test_par=f'''
import json
from pathlib import Path
import pytest
from conftest import play

OUT = Path({str(out)!r})
{body}

@pytest.mark.nova_cassette(record_mode="once")
def test_recorded(nova_sonic):
    assert nova_sonic.mode == "record"
    play("nova2_text_turn")
''')
    env = {**os.environ}
    env.pop("PYTEST_ADDOPTS", None)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-n", "2", "-q",
         f"--nova-upstream-ready-file={upstream('nova2_text_turn')}"],
        cwd=pytester.path, env=env, capture_output=True, text=True, timeout=110,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 passed" in r.stdout
    seen = [json.loads((out / f"{name}.json").read_text()) for name in TESTS]
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}
    assert len({s["endpoint"] for s in seen}) == len(TESTS)  # a server per test
    per_worker = {}
    for s in seen:
        per_worker.setdefault(s["worker"], set()).add(s["session_server"])
    assert all(len(v) == 1 for v in per_worker.values())  # one session server per worker ...
    assert len(set().union(*per_worker.values())) == 2  # ... and not shared between workers
    recorded = pytester.path / "cassettes" / "test_par" / "test_recorded.jsonl"
    assert diff_cassettes(load_cassette(SHIPPED / "nova2_text_turn.jsonl"), load_cassette(recorded)).equal
