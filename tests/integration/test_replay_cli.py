"""``python -m fakeserver serve --cassette PATH`` as a real process, and cassette loading errors
at start (in the process and in ``FakeNovaSonic``): the loader's message, naming the line."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import warnings
from pathlib import Path

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.audio import silence
from novasonic import transport
from novasonic.builder import EventBuilder
from novasonic.cassette import CassetteFormatError, CassetteNotFoundError, CassetteWarning
from novasonic.events import CompletionEnd
from novasonic.models import NOVA_2_SONIC
from tests.helpers.conversation import Conversation
from tests.helpers.replay_cassettes import collect_client_garbage  # noqa: F401 (autouse fixture)
from tests.helpers.replay_cassettes import text_turn_tape
from tests.helpers.sessions import collect

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SSL_CERT"))}


async def serve(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fakeserver", "serve", "--port", "0", *args, cwd=ROOT, env=child_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def wait_ready(proc: asyncio.subprocess.Process, ready: Path) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not ready.exists():
        if proc.returncode is not None or loop.time() > deadline:
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"server not ready (rc={proc.returncode}): {err.decode()}")
        await asyncio.sleep(0.05)
    return json.loads(ready.read_text())


async def test_serve_cassette_replays_to_a_stock_client(tmp_path: Path) -> None:
    cassette = text_turn_tape(tmp_path / "text.jsonl")
    ready = tmp_path / "ready.json"
    proc = await serve("--cassette", str(cassette), "--speed", "inf", "--ready-file", str(ready))
    try:
        doc = await wait_ready(proc, ready)
        for key in ("endpoint", "ca_file", "region", "access_key_id", "secret_access_key"):
            assert doc[key], key
        assert doc["cassette"] == str(cassette)

        client = await transport.client_from_info(doc)
        try:
            d = await asyncio.wait_for(transport.open_duplex(client, NOVA_2_SONIC), TIMEOUT)
            b = EventBuilder(NOVA_2_SONIC)
            for ev in [*b.start("You are a helpful assistant."), *b.audio_start(),
                       *b.audio_frames(silence(320, 16000)), *b.interactive_text("hello there")]:
                await asyncio.wait_for(d.send(ev), TIMEOUT)
            answer = []
            while not answer or not isinstance(answer[-1], CompletionEnd):
                ev = await asyncio.wait_for(d.receive(), TIMEOUT)
                assert ev is not None, answer
                answer.append(ev)
            for ev in b.close():
                await asyncio.wait_for(d.send(ev), TIMEOUT)
            await asyncio.wait_for(d.close_input(), TIMEOUT)
            rest, exc = await collect(d)
        finally:
            await asyncio.wait_for(client.close(), 5)
        assert exc is None and rest == []
        assert [e.EVENT_NAME for e in answer].count("audioOutput") == 6
        assert {getattr(e, "prompt_name", b.prompt_name) for e in answer} == {b.prompt_name}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, err.decode()
    assert "0 mismatches, 0 unused interactions" in err.decode()


def corrupt(tmp_path: Path) -> tuple[Path, int]:
    path = text_turn_tape(tmp_path / "bad.jsonl")
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"sessionStart"', '"sessionStart" oops')
    path.write_text("\n".join(lines) + "\n")
    return path, 3


def truncated_mid_file(tmp_path: Path) -> tuple[Path, int]:
    """A line cut short with more lines after it (a killed writer resumed without repair)."""
    path = text_turn_tape(tmp_path / "cut.jsonl")
    lines = path.read_text().splitlines()
    lines[4] = lines[4][: len(lines[4]) // 2]
    path.write_text("\n".join(lines) + "\n")
    return path, 5


@pytest.mark.parametrize("make", [corrupt, truncated_mid_file], ids=["corrupt", "truncated"])
async def test_a_broken_cassette_stops_serve_with_the_line(tmp_path: Path, make) -> None:
    path, line = make(tmp_path)
    ready = tmp_path / "ready.json"
    proc = await serve("--cassette", str(path), "--ready-file", str(ready))
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert f"{path}:{line}: not a JSON line" in err.decode(), err.decode()
    assert "error: cannot replay the cassette" in err.decode()
    assert not ready.exists() and out == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cassette", "missing.jsonl"], "missing.jsonl: no cassette at this path"),
        (["--cassette", "{cassette}", "--match-on", "default,nope"], "unknown matcher 'nope'; known: default, event_type"),
        (["--match-on", "text"], "--match-on and --replay-ids need --cassette"),
    ],
)
async def test_serve_refuses_bad_replay_options(tmp_path: Path, args: list[str], message: str) -> None:
    cassette = text_turn_tape(tmp_path / "ok.jsonl")
    proc = await serve(*[a.format(cassette=cassette) for a in args])
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2
    assert message in err.decode(), err.decode()


async def test_fake_novasonic_raises_the_loader_error_at_start(tmp_path: Path) -> None:
    path, line = corrupt(tmp_path)
    with pytest.raises(CassetteFormatError) as info:
        async with FakeNovaSonic(cassette=path, speed=math.inf):
            pass
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}: not a JSON line")
    with pytest.raises(CassetteNotFoundError, match="no cassette at this path"):
        FakeNovaSonic(cassette=tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="either cassette= or responder="):
        FakeNovaSonic(cassette=path, script=object())


async def test_a_truncated_last_line_warns_and_replays_what_is_complete(tmp_path: Path) -> None:
    path = text_turn_tape(tmp_path / "tail.jsonl")
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # the `end` record is torn off mid-line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fake = FakeNovaSonic(cassette=path, speed=math.inf)
    assert any(issubclass(w.category, CassetteWarning) and "incomplete and was ignored" in str(w.message)
               for w in caught)
    async with fake:
        async with Conversation(fake) as conv:
            await conv.silence(320)
            await conv.interactive_text("hello there")
            await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
            await conv.close()
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
