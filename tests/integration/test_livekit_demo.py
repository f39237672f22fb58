"""``make demo`` (``python -m novasonic.demo``) as a real subprocess: part 3 runs the LiveKit agent
on the replayed ``agent_demo`` cassette (tool call, barge-in) and writes the assistant's audio."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_agent_conversation_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SSL_CERT_FILE"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "novasonic.demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    part3 = out[out.index("== 3."):]
    assert "answering from the cassette agent_demo.jsonl (replayed)" in part3
    assert "SCRIPTED" not in part3
    assert "[user]      what's the weather in lisbon today?" in part3
    assert "[tool]      get_weather(location='Lisbon')" in part3
    assert "[barge-in]" in part3 and "[user]      thanks, that's all i needed." in part3
    assert "replay: every recorded interaction played" in part3
    wav = tmp_path / "out" / "demo-agent-assistant.wav"
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() / w.getframerate() > 2.0
    assert (tmp_path / "out" / "demo-assistant.wav").exists(), "part 2 of the demo still runs"
