"""A capture proxy killed with SIGKILL mid-stream leaves a cassette readable up to its last
complete event (``nova-capture`` as a real subprocess; the STOCK SDK client drives it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

from fakeserver import FakeNovaSonic
from novasonic.cassette import AudioInRecord, CassetteWarning, ClientEventRecord, load_cassette
from tools.sdk_driver.reenact import run_stream

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "cassettes" / "agent_demo.jsonl"
TIMEOUT = 30.0


def start_capture(tmp: Path, upstream_info: dict, out: Path) -> tuple[subprocess.Popen, dict]:
    up = tmp / "upstream.json"
    up.write_text(json.dumps(upstream_info))
    ready = tmp / "proxy.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.capture", "--out", str(out), "--upstream-ready-file", str(up),
         "--ready-file", str(ready), "--progress", "off"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    return proc, ready


async def stop_client(play: asyncio.Task) -> None:
    """The client lost its connection: how (and how fast) it notices is the SDK's business."""
    try:
        await asyncio.wait_for(asyncio.shield(play), 3.0)
    except BaseException:
        play.cancel()
        await asyncio.gather(play, return_exceptions=True)


async def wait_for(predicate, what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_sigkill_mid_stream_leaves_a_readable_prefix(tmp_path: Path) -> None:
    out = tmp_path / "killed.jsonl"
    # The replay at 4x real time: the conversation takes seconds, so the kill lands mid-way.
    async with FakeNovaSonic(cassette=DEMO, speed=4.0) as fake:
        proc, ready = start_capture(tmp_path, fake.info(), out)
        try:
            await wait_for(ready.exists, "the proxy's ready file")
            info = json.loads(ready.read_text())
            demo = load_cassette(DEMO)
            play = asyncio.create_task(run_stream(info, demo[0], demo.header.model_id))
            await wait_for(lambda: out.exists() and b'"toolUse"' in out.read_bytes(), "a recorded toolUse")
            assert not play.done()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            await stop_client(play)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        killed = load_cassette(out)  # validated against the protocol rules, up to where it stops
    assert len(killed) == 1
    stream = killed[0]
    assert stream.end is None  # incomplete: the recorder died before the stream ended
    original = load_cassette(DEMO)[0]
    names = [e.EVENT_NAME for e in stream.server_events()]
    assert "toolUse" in names and names == [e.EVENT_NAME for e in original.server_events()][: len(names)]
    client = [r.event.EVENT_NAME for r in stream.records if isinstance(r, ClientEventRecord)]
    expected = [r.event.EVENT_NAME for r in original.records if isinstance(r, ClientEventRecord)]
    assert client == expected[: len(client)] and client[:2] == ["sessionStart", "promptStart"]
    assert stream.audio_in_ms < original.audio_in_ms or not any(isinstance(r, AudioInRecord) for r in stream.records)


async def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path: Path) -> None:
    """What a kill in the middle of a write would leave: the prefix before it still loads."""
    src = load_cassette(DEMO)
    lines = DEMO.read_bytes().splitlines(keepends=True)
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"".join(lines[:30]) + lines[30][: len(lines[30]) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        c = load_cassette(torn)
    assert any(issubclass(w.category, CassetteWarning) for w in caught)
    assert c.header.model_id == src.header.model_id and len(c[0].records) == 29  # every complete line but the header
