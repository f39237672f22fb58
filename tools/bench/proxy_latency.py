"""Added latency of the capture proxy, per event, in both directions (prints p50/p99).

::

    .venv/bin/python -m tools.bench.proxy_latency                  # 2 rounds x 600 frames per mode
    .venv/bin/python -m tools.bench.proxy_latency --frames 300 --rounds 1 --burst 3 --json out/proxy.json

Three processes, all on loopback: the upstream (a fake server with a time-stamping responder),
the capture proxy (``python -m tools.capture``, exactly as a user runs it, recording to a
temporary cassette), and the client (this process: the stock SDK client on CRT). Each run streams
``--frames`` microphone frames (32 ms of 16 kHz PCM, one every ``--interval-ms``); the first
bytes of each frame carry the client's send time. For every frame the upstream answers with
``--burst`` ``audioOutput`` chunks (1920 bytes, as Nova's 40 ms chunks at 24 kHz) whose first bytes
carry the frame's send time, the upstream's receive time and the chunk's send time.

Measured, with ``CLOCK_MONOTONIC`` (system-wide, so the three processes share it):

- **up**: client sends a frame → the upstream's handler has it (SDK signing, the CRT, the proxy's
  decode/verify/forward, the upstream's decode/verify/rules);
- **down**: the upstream sends a chunk → the client's SDK hands it over (the proxy's receive, relay
  and, off the hot path, its recording).

The first ``--warmup`` frames of each run are not measured (they wait for the connection, the
stream and the upstream's 200). Each round runs the same traffic *directly* against the upstream and *through the proxy*; the
added latency is the difference of the two distributions at each percentile (p50, p99). Rounds
alternate the order to cancel drift. A shared machine (CI, other jobs) shows up in both modes;
the figures are what this machine did while the script ran.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._stats import Histogram

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "amazon.nova-2-sonic-v1:0"
FRAME_BYTES = 1024  # 32 ms at 16 kHz
CHUNK_BYTES = 1920  # 40 ms at 24 kHz
_STAMP = struct.Struct("<qqqqq")  # frame send, upstream receive, chunk send, frame index, chunk index
_FRAME = struct.Struct("<qq")  # frame send, frame index


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# --------------------------------------------------------------------------- upstream role


def _stamp_responder(burst: int) -> Any:
    from novasonic.events import AudioInput, AudioOutput, CompletionStart, OutputContentStart

    class Stream:
        def __init__(self, ctx: Any) -> None:
            self.ctx = ctx
            self.content_id = ctx.new_id()
            self.completion_id = ctx.new_id()
            self.started = False

        async def on_event(self, event: Any, facts: Any) -> None:
            if not isinstance(event, AudioInput):
                return
            received = now_ns()
            pcm = event.pcm
            sent, index = _FRAME.unpack_from(pcm) if len(pcm) >= _FRAME.size else (0, 0)
            ids = {"prompt_name": self.ctx.prompt_name or "", "session_id": self.ctx.session_id,
                   "completion_id": self.completion_id}
            if not self.started:
                self.started = True
                await self.ctx.emit(CompletionStart(**ids))
                await self.ctx.emit(OutputContentStart.model_validate({
                    "contentId": self.content_id, "role": "ASSISTANT", "type": "AUDIO",
                    "promptName": ids["prompt_name"], "sessionId": ids["session_id"],
                    "completionId": ids["completion_id"],
                    "audioOutputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 24000,
                                                 "sampleSizeBits": 16, "channelCount": 1, "encoding": "base64"}}))
            for k in range(burst):
                stamp = _STAMP.pack(sent, received, now_ns(), index, k) + bytes(CHUNK_BYTES - _STAMP.size)
                await self.ctx.emit(AudioOutput(content=base64.b64encode(stamp).decode(), content_id=self.content_id,
                                                role="ASSISTANT", **ids))

        async def on_input_end(self) -> None:
            return None

        async def aclose(self) -> None:
            return None

    class Responder:
        def open_stream(self, ctx: Any) -> Stream:
            return Stream(ctx)

    return Responder()


async def _upstream(ready: Path, burst: int) -> None:
    import signal

    from fakeserver import FakeNovaSonic

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with FakeNovaSonic(responder=_stamp_responder(burst)) as fake:
        gc.freeze()
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(json.dumps(fake.info()))
        os.replace(tmp, ready)
        await stop.wait()


# --------------------------------------------------------------------------- client role


async def _client_run(info: dict[str, Any], frames: int, interval_ms: float, burst: int,
                      warmup: int) -> tuple[Histogram, Histogram]:
    from novasonic.builder import EventBuilder
    from novasonic.events import parse_output
    from novasonic.events.audio import b64_to_pcm, pcm_to_b64
    from novasonic.transport import client_from_info, open_duplex

    up, down = Histogram(), Histogram()
    client = await client_from_info(info)
    duplex = await open_duplex(client, MODEL)
    b = EventBuilder(MODEL)
    expected = (frames + warmup) * burst
    got = 0
    done = asyncio.Event()

    async def reader() -> None:
        nonlocal got
        _, output = await duplex.await_output()
        while True:
            item = await output.receive()
            arrived = now_ns()
            if item is None:
                break
            raw = item.value.bytes_ or b""
            if b'"audioOutput"' not in raw:
                continue
            ev = parse_output(raw)
            pcm = b64_to_pcm(ev.content)  # type: ignore[attr-defined]
            sent, received, chunk_sent, index, k = _STAMP.unpack_from(pcm)
            if sent and index >= warmup:
                if k == 0:  # one up-latency sample per frame
                    up.add((received - sent) / 1e9)
                down.add((arrived - chunk_sent) / 1e9)
            got += 1
            if got >= expected:
                done.set()
        done.set()

    task = asyncio.create_task(reader())
    for ev in (*b.start("Latency benchmark."), *b.audio_start()):
        await duplex.send(ev)
    template = b.audio(bytes(FRAME_BYTES))
    loop = asyncio.get_running_loop()
    next_t = loop.time()
    for index in range(frames + warmup):
        next_t += interval_ms / 1000.0
        pcm = _FRAME.pack(now_ns(), index) + bytes(FRAME_BYTES - _FRAME.size)
        await duplex.send(template.model_copy(update={"content": pcm_to_b64(pcm)}))
        delay = next_t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        for ev in (*b.audio_end(), *b.close()):
            try:
                await duplex.send(ev)
            except Exception:
                break
        try:
            await asyncio.wait_for(duplex.close_input(), 5)
            await asyncio.wait_for(task, 10)
        except Exception:
            task.cancel()
        try:
            await asyncio.wait_for(duplex.close(), 2)
        except Exception:
            pass
    return up, down


# --------------------------------------------------------------------------- orchestration


def _start(argv: list[str], ready: Path, what: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.kill()
            raise SystemExit(f"{what} did not start: {err}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="proxy_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=600, help="microphone frames per run (default 600)")
    p.add_argument("--interval-ms", type=float, default=20.0, help="between frames (default 20: 1.6x real time)")
    p.add_argument("--burst", type=int, default=1, help="audioOutput chunks answered per frame (default 1)")
    p.add_argument("--warmup", type=int, default=25,
                   help="frames sent first and not measured (stream set-up, the upstream's 200; default 25)")
    p.add_argument("--rounds", type=int, default=2, help="direct + proxied runs, order alternating (default 2)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--role", choices=["upstream"], help=argparse.SUPPRESS)
    p.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not (1 <= args.frames <= 100_000 and 1 <= args.burst <= 50 and 1 <= args.rounds <= 20):
        p.error("--frames 1..100000, --burst 1..50, --rounds 1..20")
    if args.role == "upstream":
        asyncio.run(_upstream(args.ready_file, args.burst))
        return 0

    with tempfile.TemporaryDirectory(prefix="proxy-latency-") as tmp_s:
        tmp = Path(tmp_s)
        upstream, up_info = _start([sys.executable, "-m", "tools.bench.proxy_latency", "--role", "upstream",
                                    "--ready-file", str(tmp / "upstream.json"), "--burst", str(args.burst)],
                                   tmp / "upstream.json", "the upstream")
        proxy = None
        try:
            proxy, proxy_info = _start([sys.executable, "-m", "tools.capture", "--out", str(tmp / "bench.jsonl"),
                                        "--upstream-ready-file", str(tmp / "upstream.json"),
                                        "--ready-file", str(tmp / "proxy.json"), "--progress", "off"],
                                       tmp / "proxy.json", "the capture proxy")
            hist = {m: (Histogram(), Histogram()) for m in ("direct", "proxied")}
            gc.freeze()
            for r in range(args.rounds):
                order = ("direct", "proxied") if r % 2 == 0 else ("proxied", "direct")
                for mode in order:
                    info = up_info if mode == "direct" else proxy_info
                    u, d = asyncio.run(_client_run(info, args.frames, args.interval_ms, args.burst, args.warmup))
                    hist[mode][0].merge(u)
                    hist[mode][1].merge(d)
                    print(f"round {r + 1} {mode:8s} up p50 {_ms(u.percentile(50))} p99 {_ms(u.percentile(99))} ms | "
                          f"down p50 {_ms(d.percentile(50))} p99 {_ms(d.percentile(99))} ms ({d.n} chunks)",
                          file=sys.stderr, flush=True)
        finally:
            if proxy is not None:
                _stop(proxy)
            _stop(upstream)
        size = (tmp / "bench.jsonl").stat().st_size if (tmp / "bench.jsonl").exists() else 0

    rows = {}
    print(f"\ncapture proxy added latency per event ({args.rounds} rounds x {args.frames} frames, "
          f"{args.burst} chunk(s) per frame, one frame every {args.interval_ms:g} ms; cassette {size / 1024:.0f} KB)")
    print(f"{'direction':10s} {'direct p50':>11s} {'direct p99':>11s} {'proxied p50':>12s} {'proxied p99':>12s} "
          f"{'added p50':>10s} {'added p99':>10s}  (ms)")
    for i, direction in enumerate(("up", "down")):
        d, pr = hist["direct"][i], hist["proxied"][i]
        d50, d99, p50, p99 = d.percentile(50), d.percentile(99), pr.percentile(50), pr.percentile(99)
        a50 = None if d50 is None or p50 is None else p50 - d50
        a99 = None if d99 is None or p99 is None else p99 - d99
        rows[direction] = {"direct": d.summary_ms(), "proxied": pr.summary_ms(),
                           "added_p50_ms": None if a50 is None else round(a50 * 1000, 3),
                           "added_p99_ms": None if a99 is None else round(a99 * 1000, 3)}
        print(f"{direction:10s} {_ms(d50):>11s} {_ms(d99):>11s} {_ms(p50):>12s} {_ms(p99):>12s} "
              f"{_ms(a50):>10s} {_ms(a99):>10s}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k not in ("json", "role",
                                                                                                  "ready_file")},
                                         "cpus": os.cpu_count(), "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
