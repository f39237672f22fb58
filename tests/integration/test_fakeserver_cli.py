"""``python -m fakeserver serve`` as a real process (design §8 contract), with a stock SDK client in
another real process configured only through environment variables (tests/helpers/env_client.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from novasonic.wire import Credentials
from tests.helpers import factories as f
from tests.helpers.raw_client import RawClient
from tests.helpers.responders import EchoResponder

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
EXIT_TIMEOUT = 15.0


def child_env(**extra: str) -> dict[str, str]:
    """The parent's environment without any AWS/TLS settings (so only what the test sets counts)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SSL_CERT"))}
    env.update(extra)
    return env


class Server:
    def __init__(self, proc: asyncio.subprocess.Process, ready: Path) -> None:
        self.proc, self.ready = proc, ready
        self.doc: dict[str, Any] = {}
        self.stderr = ""
        self.stdout = ""

    async def wait_ready(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while not self.ready.exists():
            if self.proc.returncode is not None or loop.time() > deadline:
                out, err = await self.finish()
                raise AssertionError(f"server did not become ready (rc={self.proc.returncode}): {err}")
            await asyncio.sleep(0.05)
        self.doc = json.loads(self.ready.read_text())
        return self.doc

    async def finish(self, sig: int | None = None) -> tuple[str, str]:
        if sig is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)
        out, err = await asyncio.wait_for(self.proc.communicate(), EXIT_TIMEOUT)
        self.stdout, self.stderr = out.decode(), err.decode()
        return self.stdout, self.stderr

    def client_env(self) -> dict[str, str]:
        d = self.doc
        return child_env(
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=d["endpoint"],
            SSL_CERT_FILE=d["ca_file"],
            AWS_ACCESS_KEY_ID=d["access_key_id"],
            AWS_SECRET_ACCESS_KEY=d["secret_access_key"],
            AWS_REGION=d["region"],
        )


async def run_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fakeserver", *args, cwd=ROOT, env=child_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def serving(tmp_path: Path, *extra: str) -> AsyncIterator[Server]:
    ready = tmp_path / "ready" / "fake.json"
    proc = await run_cli("serve", "--port", "0", "--ready-file", str(ready), "--speed", "50", "--seed", "1", *extra)
    server = Server(proc, ready)
    try:
        await server.wait_ready()
        yield server
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def env_client(env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    """Run tests/helpers/env_client.py with exactly ``env``; return (exit code, its JSON, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.helpers.env_client", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().strip().splitlines()
    assert lines, f"client printed nothing (rc={proc.returncode}): {err.decode()[-3000:]}"
    return proc.returncode, json.loads(lines[-1]), err.decode()


def stream_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "fakeserver.streams: stream {" in line]


async def test_serve_ready_file_env_client_and_sigterm(tmp_path: Path) -> None:
    async with serving(tmp_path) as server:
        doc = server.doc
        assert {"endpoint", "ca_file", "region", "access_key_id", "secret_access_key"} <= set(doc)
        assert doc["endpoint"] == f"https://localhost:{doc['port']}" and doc["port"] > 0
        assert Path(doc["ca_file"]).is_file() and doc["region"] == "us-east-1"
        assert doc["speed"] == 50 and doc["pid"] == server.proc.pid
        assert not list(server.ready.parent.glob("*.tmp"))  # written atomically

        rc, result, err = await env_client(server.client_env())
        assert (rc, result["error"]) == (0, None), err[-3000:]
        # The default (scripted) responder answered the utterance with a whole turn.
        assert "completionStart" in result["events"] and "audioOutput" in result["events"]

        out, err = await server.finish(signal.SIGTERM)
    assert server.proc.returncode == 0, err
    lines = stream_lines(err)
    assert len(lines) == 1 and "'end': 'completed'" in lines[0] and "'auth': 'ok'" in lines[0]
    assert json.loads(out.strip().splitlines()[0]) == doc  # the same document on stdout
    assert doc["secret_access_key"] not in err


async def test_sigterm_with_an_open_stream_exits_cleanly(tmp_path: Path) -> None:
    async with serving(tmp_path) as server:
        doc = server.doc
        raw = await RawClient.connect(doc["port"], doc["ca_file"])
        try:
            s = await raw.open(Credentials(doc["access_key_id"], doc["secret_access_key"]), region=doc["region"])
            await s.send_event(f.session_start())
            assert await s.wait_headers() == 200
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(raw.terminated.wait(), EXIT_TIMEOUT)  # GOAWAY first ...
            assert not raw.eof.is_set()
            await asyncio.wait_for(raw.eof.wait(), EXIT_TIMEOUT)  # ... the close after the grace period
        finally:
            await raw.close()
        _, err = await server.finish()
    assert server.proc.returncode == 0, err
    lines = stream_lines(err)
    assert len(lines) == 1 and "'end': 'server-shutdown'" in lines[0], err


async def test_sigint_exits_cleanly(tmp_path: Path) -> None:
    async with serving(tmp_path) as server:
        _, err = await server.finish(signal.SIGINT)
    assert server.proc.returncode == 0, err
    assert "stopping (0 streams served)" in err and "Traceback" not in err


async def test_fault_option_reaches_the_server(tmp_path: Path) -> None:
    async with serving(tmp_path, "--fault", "http:ModelNotReadyException@open@streams=0") as server:
        rc, first, _ = await env_client(server.client_env())
        assert rc == 1 and first["error"].startswith("ModelNotReadyException: ")
        rc, second, err = await env_client(server.client_env())  # the fault was scoped to stream 0
        assert (rc, second["error"]) == (0, None), err[-3000:]
        _, err = await server.finish(signal.SIGTERM)
    assert server.proc.returncode == 0
    assert [("'end': 'http:429'" in x, "'end': 'completed'" in x) for x in stream_lines(err)] == [
        (True, False), (False, True)
    ]


async def test_non_loopback_host_needs_the_flag(tmp_path: Path) -> None:
    proc = await run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--ready-file", str(tmp_path / "r.json"))
    out, err = await asyncio.wait_for(proc.communicate(), EXIT_TIMEOUT)
    assert proc.returncode == 2
    text = err.decode()
    assert text.startswith("error: refusing to bind the fake server to non-loopback address '0.0.0.0'")
    assert "--allow-non-loopback" in text and "Traceback" not in text
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("nonsense", "bad fault 'nonsense': expected ACTION@TRIGGER"),
        ("rst@whenever", "bad fault trigger 'whenever'"),
        ("http:ThrottlingException@server:audioOutput#1", "an HTTP-level error can only be injected at 'open'"),
    ],
)
async def test_bad_fault_is_a_usage_error(fault: str, expected: str) -> None:
    proc = await run_cli("serve", "--fault", fault)
    out, err = await asyncio.wait_for(proc.communicate(), EXIT_TIMEOUT)
    text = err.decode()
    assert proc.returncode == 2
    assert text.startswith("usage: python -m fakeserver serve")
    assert f"argument --fault: {expected}" in text


async def test_fake_env_configures_a_client_process(start_fake) -> None:
    """``FakeNovaSonic.env`` is all a client process needs (endpoint, CA, credentials, region)."""
    fake = await start_fake(EchoResponder())
    rc, result, err = await env_client(child_env(**fake.env))
    assert (rc, result["error"]) == (0, None), err[-3000:]
    assert result["events"] == ["completionStart", "contentStart", "textOutput", "contentEnd"]
    assert fake.journal.last().end == "completed"
