"""Compatibility: the UNMODIFIED upstream LiveKit AWS plugin (``livekit-plugins-aws`` 1.8.9,
``livekit.plugins.aws.experimental.realtime.RealtimeModel``) completes a tool-call turn in a real
``AgentSession`` against the fake server, replaying the shipped ``nova2_tool_call`` cassette (and
the scripted responder), redirected by configuration only.

Upstream hard-codes ``endpoint_uri=https://bedrock-runtime.{region}.amazonaws.com`` as an explicit
config value, and an explicit value beats ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (pinned below), so
the endpoint variable cannot redirect it. The test therefore runs it in a private network
namespace (``unshare --user --map-root-user --net --mount``: loopback only, no privileges needed
outside it) whose ``/etc/hosts`` maps that host name to 127.0.0.1, where the fake listens on port
443 with a certificate for it from a throw-away CA trusted via ``SSL_CERT_FILE``; credentials are
the fake's test keys in ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``. The plugin is neither
modified nor patched, and is constructed with no argument. See ``tests/helpers/livekit_upstream.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig

ROOT = Path(__file__).resolve().parents[2]
HOST = "bedrock-runtime.us-east-1.amazonaws.com"


def _namespaces_available() -> str | None:
    """None when a user+network+mount namespace can be made here, else why not."""
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "--mount", "true"],
                           capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        return f"unprivileged user/network namespaces are not available: {probe.stderr.strip()}"
    return None


def run_upstream(tmp_path: Path, *args: str) -> dict:
    reason = _namespaces_available()
    if reason is not None:
        pytest.skip(f"the upstream plugin can only be redirected by host name here, and {reason}")
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {HOST}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SSL_CERT_FILE"}
    env["PYTHONPATH"] = str(ROOT)
    script = ('ip link set lo up && mount --bind "$1" /etc/hosts && shift && '
              'exec "$0" -m tests.helpers.livekit_upstream "$@"')
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--net", "--mount", "sh", "-c", script,
         sys.executable, str(hosts), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=100,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


def check_tool_turn(out: dict) -> None:
    assert "wait_error" not in out, out.get("wait_error")
    assert out["calls"] == ["Paris"]
    assert len(out["tool_results"]) == 1
    assert len(out["assistant"]) == 2 and "Paris" in out["assistant"][-1]
    assert out["audio_frames_out"] > 0
    assert out["rejected"] == [] and out["errors"] == []
    assert out["streams"][0]["auth"] == "ok" and out["streams"][0]["model"] == "amazon.nova-2-sonic-v1:0"


def test_upstream_plugin_replays_the_tool_call_cassette(tmp_path: Path) -> None:
    out = run_upstream(tmp_path, "--cassette", str(ROOT / "cassettes" / "nova2_tool_call.jsonl"))
    check_tool_turn(out)
    assert out["replay_all_played"], out["replay_report"]
    assert "sunny and 21 degrees" in out["assistant"][-1]


def test_upstream_plugin_tool_turn_with_the_scripted_responder(tmp_path: Path) -> None:
    out = run_upstream(tmp_path)
    check_tool_turn(out)
    # upstream sends a dict-returning tool's result as its Python repr wrapped in "tool_result"
    # (LiveKit stringifies tool output with str()); this plugin sends the JSON object instead
    assert json.loads(out["tool_results"][0]) == {"tool_result": "{'location': 'Paris', 'temperature_c': 21, 'sky': 'sunny'}"}


async def test_an_explicit_endpoint_beats_the_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the endpoint variable cannot redirect upstream 1.8.9 (it passes ``endpoint_uri``)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "https://localhost:1")
    explicit = await AsyncBedrockRuntimeConfig.resolve(endpoint_uri=f"https://{HOST}", region="us-east-1")
    from_env = await AsyncBedrockRuntimeConfig.resolve(region="us-east-1")
    assert str(explicit.endpoint_uri) == f"https://{HOST}"
    assert str(from_env.endpoint_uri) == "https://localhost:1"
