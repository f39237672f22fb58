"""CPU per second of streamed audio: this project's LiveKit plugin (``novasonic.livekit``) vs the
upstream one (``livekit-plugins-aws`` 1.8.9), same fake server, same conversation, one run.

::

    python -m tools.bench.plugin_cpu                       # 30 s of audio per run, real time, 2 rounds
    python -m tools.bench.plugin_cpu --seconds 20 --rounds 1 --speed 2
    python -m tools.bench.plugin_cpu --cassette cassettes/agent_demo.jsonl --speed 4

What runs
    For each plugin in turn (alternating, ``--rounds`` times each): a fresh fake server process
    (``FakeNovaSonic``, scripted responder by default: every utterance is answered with two
    spoken sentences, about 4.5 s of 24 kHz audio; or a cassette replayed) and a client process: a
    LiveKit ``AgentSession`` (no room; ``novasonic.livekit.testing``'s microphone and speaker)
    with the plugin, a 48 kHz microphone that speaks 1.5 s every 6 s and streams silence
    otherwise, at ``--speed`` times real time (default 1: a real call), and a speaker that
    "plays" at the same pace. The upstream plugin takes its endpoint from the region only
    (``https://bedrock-runtime.us-east-1.amazonaws.com``, hard-coded), so everything runs in a
    private user+network namespace (``unshare``) whose ``/etc/hosts`` sends that name to
    127.0.0.1, where the fake listens on :443 with a certificate from a throw-away CA
    (``SSL_CERT_FILE``); both plugins connect to that same URL with the fake's test keys.

What is measured
    The client process's CPU time (user + sys, ``getrusage``) from the first audio frame to the
    end of ``--seconds`` of microphone audio (start-up and imports excluded), divided by the
    seconds of audio streamed: **CPU seconds per audio second** (×100 = % of one core for one
    call). It includes everything in the client: the agent framework, the plugin, the AWS SDK
    (SigV4 per frame), the CRT transport. The server's CPU is not counted. Also printed: turns
    answered and assistant audio received (the two plugins must do the same work), and the
    other processes' CPU during each run, since this machine is shared.

The ratio printed at the end is ours / upstream (goal: ≤ 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOST = "bedrock-runtime.us-east-1.amazonaws.com"
MIC_RATE = 48000
UTTERANCE_MS = 1500.0
CYCLE_MS = 6000.0


# --- the namespace -------------------------------------------------------------------------------


def _in_namespace() -> bool:
    try:
        return HOST in Path("/etc/hosts").read_text()
    except OSError:
        return False


def _reexec_in_namespace(argv: list[str]) -> int:
    for tool in ("unshare", "ip", "mount"):
        if shutil.which(tool) is None:
            print(f"plugin_cpu: needs {tool} (the upstream plugin can only be redirected by host name)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        hosts = Path(tmp) / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {HOST}\n")
        script = ('ip link set lo up && mount --bind "$1" /etc/hosts && shift && '
                  'exec "$0" -m tools.bench.plugin_cpu "$@"')
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SSL_CERT_FILE"}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "--mount", "sh", "-c", script,
                               sys.executable, str(hosts), *argv], cwd=ROOT, env=env)
        return proc.returncode


# --- server process ------------------------------------------------------------------------------


def _bench_script() -> Any:
    from fakeserver.responders import Script, TurnScript

    return Script((), default=TurnScript("tell me something.", [
        "Here is something interesting about octopuses.",
        "They have three hearts and blue blood.",
    ]))


async def _serve(tls_dir: str, ready: str, speed: float, cassette: str | None) -> None:
    import trustme

    from fakeserver import FakeNovaSonic

    ca = trustme.CA(organization_name="plugin_cpu bench CA")
    leaf = ca.issue_cert(HOST, "localhost", "127.0.0.1")
    cert, key, ca_file = (os.path.join(tls_dir, n) for n in ("cert.pem", "key.pem", "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(cert)
    for pem in leaf.cert_chain_pems[1:]:
        pem.write_to_path(cert, append=True)
    leaf.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(ca_file)
    kw: dict[str, Any] = {"cassette": cassette} if cassette else {"script": _bench_script()}
    # keep_audio False and a small journal: the server's memory must not grow with the runs
    async with FakeNovaSonic(tls=(cert, key, ca_file), port=443, speed=speed, max_journal_streams=8, **kw) as fake:
        Path(ready).write_text(json.dumps({**fake.info(), "ca_file": ca_file}))
        while True:
            await asyncio.sleep(3600)


# --- client process ------------------------------------------------------------------------------


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _machine_cpu() -> float:
    """CPU seconds used by the whole machine so far (/proc/stat), to show interference."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = sum(int(x) for i, x in enumerate(fields) if i not in (3, 4))  # minus idle, iowait
    return ticks / os.sysconf("SC_CLK_TCK")


async def _client(plugin: str, seconds: float, speed: float, cassette: str | None) -> dict[str, Any]:
    from livekit.agents import Agent, AgentSession

    from fakeserver.audio import synth_speech
    from novasonic.livekit.testing import MicInput, SpeakerOutput

    if plugin == "ours":
        from novasonic.livekit import RealtimeModel

        model = RealtimeModel()  # the same defaults as upstream; endpoint/region/keys from the environment
    else:
        from livekit.plugins.aws.experimental.realtime import RealtimeModel as Upstream

        model = Upstream()
    mic = MicInput(sample_rate=MIC_RATE, speed=speed)
    speaker = SpeakerOutput(playout_speed=speed)
    session = AgentSession(llm=model, vad=None, aec_warmup_duration=None,
                           turn_handling={"turn_detection": "realtime_llm"})
    session.input.audio, session.output.audio = mic, speaker
    answered: list[str] = []
    session.on("conversation_item_added",
               lambda e: answered.append(e.item.text_content or "") if getattr(e.item, "role", "") == "assistant" else None)
    await session.start(Agent(instructions="You are a benchmark assistant."))
    if cassette:
        sys.path.insert(0, str(ROOT))
        from tests.helpers.livekit_io import user_speech

        plan = user_speech(cassette)
    else:
        plan = [(at, at + UTTERANCE_MS) for at in
                (500.0 + k * CYCLE_MS for k in range(int(seconds * 1000 // CYCLE_MS) + 1))]
    for i, (start, end) in enumerate(plan):
        mic.play(synth_speech(end - start, 16000, seed=i + 1), sample_rate=16000, at_ms=start)
    loop = asyncio.get_running_loop()
    while mic.played_ms < 100:  # the first frames: everything is imported and connected
        await asyncio.sleep(0.01)
    c0, m0, w0, a0 = _cpu(), _machine_cpu(), loop.time(), mic.played_ms
    deadline = w0 + seconds / speed * 3 + 30
    while mic.played_ms - a0 < seconds * 1000 and loop.time() < deadline:
        await asyncio.sleep(0.05)
    c1, m1, w1, a1 = _cpu(), _machine_cpu(), loop.time(), mic.played_ms
    out_s = sum(s.duration for s in speaker.segments)
    await asyncio.wait_for(session.aclose(), 30)
    audio_s = (a1 - a0) / 1000
    return {
        "plugin": plugin, "audio_s": audio_s, "wall_s": w1 - w0, "cpu_s": c1 - c0,
        "cpu_per_audio_s": (c1 - c0) / audio_s if audio_s else math.nan,
        "other_cpu_s": max(0.0, (m1 - m0) - (c1 - c0)), "turns_answered": len(answered),
        "assistant_audio_s": out_s,
    }


def _run_client(plugin: str, info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": info["access_key_id"], "AWS_SECRET_ACCESS_KEY": info["secret_access_key"],
                "AWS_REGION": info["region"], "AWS_DEFAULT_REGION": info["region"], "SSL_CERT_FILE": info["ca_file"],
                "PYTHONPATH": str(ROOT)})
    cmd = [sys.executable, "-m", "tools.bench.plugin_cpu", "client", "--plugin", plugin,
           "--seconds", str(args.seconds), "--speed", str(args.speed)]
    if args.cassette:
        cmd += ["--cassette", args.cassette]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=args.seconds / args.speed * 3 + 120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{plugin} client failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


class _Server:
    """One fake server process (a fresh one per run: a cassette replays once, and every run
    starts from the same state)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = tempfile.TemporaryDirectory()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> dict[str, Any]:
        ready = Path(self.tmp.name) / "ready.json"
        cmd = [sys.executable, "-m", "tools.bench.plugin_cpu", "serve", "--tls-dir", self.tmp.name,
               "--ready", str(ready), "--speed", str(self.args.speed)]
        if self.args.cassette:
            cmd += ["--cassette", self.args.cassette]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        t_end = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > t_end:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.05)
        time.sleep(0.05)  # the file is written in one call; let it land
        return json.loads(ready.read_text())

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.tmp.cleanup()


def _bench(args: argparse.Namespace) -> int:
    order = ["ours", "upstream"] * args.rounds
    if args.upstream_first:
        order = ["upstream", "ours"] * args.rounds
    print(f"plugin_cpu: {args.seconds:g} s of microphone audio per run at {args.speed:g}x real time, "
          f"{'cassette ' + args.cassette if args.cassette else 'scripted responder'}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'plugin':<9} {'audio s':>8} {'cpu s':>7} {'cpu/audio s':>12} {'turns':>6} {'asst audio s':>13} {'others cpu s':>13}")
    rows: list[dict[str, Any]] = []
    for plugin in order:
        with _Server(args) as info:
            row = _run_client(plugin, info, args)
        rows.append(row)
        print(f"{row['plugin']:<9} {row['audio_s']:>8.1f} {row['cpu_s']:>7.2f} {row['cpu_per_audio_s']:>12.4f} "
              f"{row['turns_answered']:>6} {row['assistant_audio_s']:>13.1f} {row['other_cpu_s']:>13.1f}", flush=True)
    med = {p: statistics.median(r["cpu_per_audio_s"] for r in rows if r["plugin"] == p) for p in ("ours", "upstream")}
    ratio = med["ours"] / med["upstream"]
    print(f"median CPU per audio second: ours {med['ours'] * 1000:.1f} ms, upstream {med['upstream'] * 1000:.1f} ms "
          f"(% of one core per call: {med['ours'] * 100:.1f} vs {med['upstream'] * 100:.1f})")
    print(f"ratio ours/upstream = {ratio:.2f}x  (goal <= 0.5x: {'met' if ratio <= 0.5 else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "median": med, "ratio": ratio}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m tools.bench.plugin_cpu", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode")
    s = sub.add_parser("serve", help=argparse.SUPPRESS)
    s.add_argument("--tls-dir", required=True)
    s.add_argument("--ready", required=True)
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--cassette")
    c = sub.add_parser("client", help=argparse.SUPPRESS)
    c.add_argument("--plugin", choices=("ours", "upstream"), required=True)
    for p in (ap, c):
        p.add_argument("--seconds", type=float, default=30.0, help="microphone audio per run (default 30)")
        p.add_argument("--speed", type=float, default=1.0, help="audio seconds per wall second (default 1)")
        p.add_argument("--cassette", help="replay this cassette instead of the scripted responder")
    ap.add_argument("--rounds", type=int, default=2, help="runs per plugin, alternating (default 2)")
    ap.add_argument("--upstream-first", action="store_true")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.mode == "serve":
        asyncio.run(_serve(args.tls_dir, args.ready, args.speed, args.cassette))
        return 0
    if args.mode == "client":
        print(json.dumps(asyncio.run(_client(args.plugin, args.seconds, args.speed, args.cassette))), flush=True)
        return 0
    if not _in_namespace():
        return _reexec_in_namespace(argv)
    if args.cassette:
        args.cassette = str(Path(args.cassette).resolve())
    return _bench(args)


if __name__ == "__main__":
    sys.exit(main())
