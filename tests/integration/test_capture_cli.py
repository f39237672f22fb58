"""``nova-capture`` as a real subprocess: ready file, env file, progress while recording, a clean
stop on SIGTERM, refusing to overwrite, appending; and scrubbing: no credential or signature in
any file it writes or in its log, even at debug level, with every kind of audio kept."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from fakeserver import FakeNovaSonic
from novasonic.cassette import AudioInRecord, AudioOutRecord, CassetteSecretError, diff_cassettes, load_cassette
from novasonic.events import TextInput
from tests.helpers import factories as f
from tests.helpers.responders import EchoResponder
from tests.helpers.sessions import collect, send_all
from tools.capture import CaptureProxy, Upstream
from tools.sdk_driver.reenact import replay_cassette

ROOT = Path(__file__).resolve().parents[2]


async def stop_client(play: asyncio.Task) -> None:
    """The proxy went away under the client: how (and how fast) it notices is the SDK's business."""
    try:
        await asyncio.wait_for(asyncio.shield(play), 3.0)
    except BaseException:
        play.cancel()
        await asyncio.gather(play, return_exceptions=True)


async def reenact(info: dict, path: Path) -> list:
    """The client side of the cassette at ``path``, re-enacted against the endpoint in ``info``."""
    return await replay_cassette(SimpleNamespace(info=lambda: info), load_cassette(path))  # type: ignore[arg-type]
TOOL = ROOT / "cassettes" / "nova2_tool_call.jsonl"
TIMEOUT = 30.0
SIGNATURE = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


class Capture:
    """``python -m tools.capture`` with a ready file, stopped (SIGTERM) and awaited at exit."""

    def __init__(self, tmp: Path, upstream_info: dict, out: Path, *extra: str) -> None:
        self.tmp = tmp
        up = tmp / "upstream.json"
        up.write_text(json.dumps(upstream_info))
        self.ready = tmp / "proxy.json"
        self.ready.unlink(missing_ok=True)
        self.stderr_path = tmp / "capture.stderr"
        self.argv = [sys.executable, "-m", "tools.capture", "--out", str(out), "--upstream-ready-file", str(up),
                     "--ready-file", str(self.ready), *extra]
        self.proc: subprocess.Popen | None = None

    async def __aenter__(self) -> Capture:
        self._err = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._err)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while not self.ready.exists():
            if self.proc.poll() is not None or loop.time() > deadline:
                raise AssertionError(f"nova-capture did not start: {self.stderr}")
            await asyncio.sleep(0.02)
        self.info = json.loads(self.ready.read_text())
        return self

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=TIMEOUT)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)
        self._err.close()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


async def test_records_reports_progress_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "tool.jsonl"
    env_file = tmp_path / "proxy.env"
    async with FakeNovaSonic(cassette=TOOL, speed=math.inf) as fake:
        async with Capture(tmp_path, fake.info(), out, "--env-file", str(env_file), "--progress", "on",
                           "--meta", "test=cli") as cap:
            assert {"endpoint", "ca_file", "region", "access_key_id", "secret_access_key", "pid", "out"} <= set(cap.info)
            assert cap.info["upstream"] == fake.endpoint
            env = dict(re.findall(r"^export (\w+)=(\S+)$", env_file.read_text(), re.M))
            assert env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == cap.info["endpoint"]
            assert env["SSL_CERT_FILE"] == cap.info["ca_file"]
            await reenact(cap.info, TOOL)
            await asyncio.sleep(0.6)  # one progress tick after the stream ended
            assert cap.stop() == 0
        assert fake.replay is not None and fake.replay.all_played
    err = cap.stderr
    progress = [line for line in err.splitlines() if line.startswith("nova-capture: 1 stream")]
    assert progress, err
    assert re.search(r"events \d+ up / \d+ down \| audio \d+\.\d s in / \d+\.\d s out", progress[-1])
    assert "wrote " + str(out) in err
    captured = load_cassette(out)
    assert diff_cassettes(load_cassette(TOOL), captured).equal
    assert captured.header.meta["test"] == "cli" and captured.header.meta["captured_by"] == "nova-capture"


async def test_sigterm_mid_stream_closes_the_cassette_with_the_stream_cut(tmp_path: Path) -> None:
    out = tmp_path / "cut.jsonl"
    async with FakeNovaSonic(cassette=TOOL, speed=2.0) as fake:  # the answer takes seconds to come
        async with Capture(tmp_path, fake.info(), out, "--progress", "off") as cap:
            play = asyncio.create_task(reenact(cap.info, TOOL))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT
            while not (out.exists() and b"completionStart" in out.read_bytes()):
                assert loop.time() < deadline
                await asyncio.sleep(0.02)
            assert cap.stop() == 0
            await stop_client(play)
    stream = load_cassette(out)[0]
    assert stream.end_reason == "proxy-shutdown"


async def test_an_existing_cassette_is_refused_and_append_adds_streams(tmp_path: Path) -> None:
    out = tmp_path / "tool.jsonl"
    out.write_bytes(TOOL.read_bytes())
    async with FakeNovaSonic(cassette=TOOL, speed=math.inf) as fake:
        refused = subprocess.run(
            [sys.executable, "-m", "tools.capture", "--out", str(out), "--upstream", fake.endpoint,
             "--upstream-ca", fake.ca_file], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
            env={**os.environ, "AWS_ACCESS_KEY_ID": fake.access_key_id, "AWS_SECRET_ACCESS_KEY": fake.secret_access_key})
        assert refused.returncode == 2 and "exists" in refused.stderr
        assert out.read_bytes() == TOOL.read_bytes()  # nothing lost
        async with Capture(tmp_path, fake.info(), out, "--append", "--progress", "off") as cap:
            await reenact(cap.info, TOOL)
            assert cap.stop() == 0
    both = load_cassette(out)
    assert len(both) == 2
    assert not diff_cassettes(load_cassette(TOOL), both).equal  # one stream more
    assert load_cassette(out, validate=True)[0].end_reason == "completed"
    assert [e.EVENT_NAME for e in both[1].server_events()] == [e.EVENT_NAME for e in both[0].server_events()]


async def test_no_upstream_credentials_is_a_clear_set_up_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    r = subprocess.run([sys.executable, "-m", "tools.capture", "--out", str(tmp_path / "x.jsonl")],
                       cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert r.returncode == 2
    assert "no credentials for the upstream https://bedrock-runtime.us-east-1.amazonaws.com" in r.stderr
    assert not (tmp_path / "x.jsonl").exists()


# --------------------------------------------------------------------------- scrubbing


async def test_no_credential_or_signature_in_any_written_file_or_the_debug_log(tmp_path: Path) -> None:
    out = tmp_path / "rec" / "tool.jsonl"
    out.parent.mkdir()
    async with FakeNovaSonic(cassette=TOOL, speed=math.inf) as fake:
        upstream_secrets = [fake.access_key_id, fake.secret_access_key]
        async with Capture(tmp_path, fake.info(), out, "--log-level", "debug", "--user-audio", "sidecar",
                           "--assistant-audio", "sidecar", "--progress", "on") as cap:
            proxy_secrets = [cap.info["access_key_id"], cap.info["secret_access_key"]]
            await reenact(cap.info, TOOL)
            assert cap.stop() == 0
    written = sorted(out.parent.iterdir())
    assert [p.name for p in written] == ["tool.audio", "tool.jsonl"]  # the cassette and its audio sidecar
    stream = load_cassette(out)[0]
    kept = [r for r in stream.records if isinstance(r, AudioInRecord | AudioOutRecord) and stream.has_audio(r)]
    assert {type(r) for r in kept} == {AudioInRecord, AudioOutRecord}  # both voices really are in the sidecar
    blobs = {p.name: p.read_bytes() for p in written}
    sidecar = blobs["tool.audio"]
    blobs["tool.audio (decompressed)"] = _inflate_all(sidecar)
    blobs["stderr"] = cap.stderr_path.read_bytes()
    for name, data in blobs.items():
        for secret in (*upstream_secrets, *proxy_secrets):
            assert secret.encode() not in data, f"a credential is in {name}"
        assert SIGNATURE.search(data) is None, f"a signature-like hex string is in {name}"
        assert re.search(rb"(Signature|Credential)=[0-9A-Za-z]", data) is None, f"a SigV4 value is in {name}"
        assert re.search(rb"(AKIA|ASIA)[A-Z0-9]{16}", data) is None, f"an access key id is in {name}"
        assert b":chunk-signature" not in data, f"a chunk signature header is in {name}"
    # The stderr log is not empty: the test would pass vacuously otherwise.
    assert b"DEBUG" in blobs["stderr"] and b"nova-capture: 1 stream" in blobs["stderr"]


def _inflate_all(data: bytes) -> bytes:
    """Concatenated zlib streams (the sidecar's blobs) → their raw PCM."""
    out, rest = [], data
    while rest:
        d = zlib.decompressobj()
        out.append(d.decompress(rest))
        rest = d.unused_data
    return b"".join(out)


async def test_a_secret_inside_an_event_stops_the_recording_not_the_relay(tmp_path: Path, open_session) -> None:
    out = tmp_path / "leak.jsonl"
    async with FakeNovaSonic(speed=math.inf, responder=EchoResponder()) as fake:
        async with CaptureProxy(out, upstream=Upstream.from_info(fake.info())) as proxy:
            d = await open_session(proxy)
            leaky = f"my key is {fake.secret_access_key}"
            await send_all(d, [f.session_start(nested="MEDIUM"), f.prompt_start(),
                               *f.system_block(leaky), f.audio_start(), *f.audio_frames(count=3)])
            first = await asyncio.wait_for(d.receive(), 10)  # the relay goes on
            assert first is not None
            await send_all(d, [f.content_end("mic"), f.prompt_end(), f.session_end()])
            await d.close_input()
            events, exc = await collect(d)
            assert exc is None
            assert any(isinstance(e, TextInput) for e in fake.journal.last().client_events())
        assert isinstance(proxy.error, CassetteSecretError)
    text = out.read_bytes() if out.exists() else b""
    assert fake.secret_access_key.encode() not in text


@pytest.mark.parametrize("bad", [["--upstream-ca", "x.pem"], ["--meta", "novalue"]])
def test_usage_errors_exit_2(tmp_path: Path, bad: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "tools.capture", "--out", str(tmp_path / "x.jsonl"), *bad],
                       cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 2 and "error:" in r.stderr


def test_the_log_filter_redacts_what_third_party_debug_logs_show() -> None:
    import logging

    from tools.capture.logs import RedactingFilter

    key, secret, sig = "AKIAABCDEFGHIJKLMNOP", "s3cr3t/Value+xyz", "0123456789abcdef" * 4
    lines = [
        f"Decoded (b'authorization', b'AWS4-HMAC-SHA256 Credential={key}/20261124/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={sig}')",
        "EventMessage(headers={':date': 1, ':chunk-signature': b'\\xa9e\\'\\xafuN'}, payload=b'')",
        f"fields=[('X-Amz-Security-Token', 'FwoGZXIvYXdz')] secret={secret} bare {sig}",
    ]
    f = RedactingFilter(lambda: [secret])
    for text in lines:
        record = logging.LogRecord("hpack", logging.DEBUG, __file__, 1, "%s", (text,), None)
        assert f.filter(record)
        out = record.getMessage()
        for leaked in (key, secret, sig, "FwoGZXIvYXdz", "\\xa9e"):
            assert leaked not in out, (leaked, out)
        assert "[redacted]" in out
