"""``python -m fakeserver serve`` with latency probes, for the benchmark only.

::

    python -m tools.bench.instrumented_server --stats-file STATS.json [--cprofile OUT.prof] -- \
        serve --port 0 --ready-file READY.json --speed 1 --accept-any-key-id ...

Runs the unmodified server (``fakeserver.cli.main`` with the arguments after ``--``) after
wrapping three of its methods with timers. Nothing in ``fakeserver`` knows about this: the probes
cost nothing when the server runs normally, and the server code measured is the shipped code.
When the server exits (SIGTERM/SIGINT, handled by the CLI) the statistics are written to
``--stats-file`` as JSON histograms (see ``tools/bench/_stats.py``).

What is measured (all times on the machine's clocks; client and server share the wall clock):

``in_latency`` — the **added event latency** of the benchmark
    for every client event: the moment the server's handler *finished* with it (frame decoded,
    chunk signature verified, envelope and event parsed, protocol rules fed, journal written,
    responder run — including any output it queued) minus the moment the client signed and sent
    it (the frame's signed ``:date`` header, the wall clock at signing, which the load client
    takes right before writing the frame to its socket). It therefore includes loopback transit,
    kernel buffering, the server event loop's queueing (waiting behind other streams' work) and
    the processing itself. ``:date`` has millisecond resolution and is truncated, so each value
    over-states the latency by 0-1 ms (conservative).
``in_processing``
    the handler's own time per event (``StreamSession._on_frame``, start to end, wall clock).
``out_latency``
    for every output event of the scripted responder: from the moment it was generated (put in
    the responder's outbox) until its bytes were handed to the transport (``emit`` returned:
    encoded, journalled, written, ``drain`` done) — the server-side delay added to assistant
    audio and text.
``loop_lag``
    how late a 5 ms ``asyncio.sleep`` in the server's loop wakes up (event-loop saturation).
``gc_pause``
    duration of every garbage collection (from ``gc.callbacks``).

Probes hook ``StreamSession._on_frame``, ``StreamSession.emit`` and ``ScriptedStream._out``; if a
refactor removes one, this script stops with an error instead of measuring nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ._stats import Histogram

__all__ = ["main", "install_probes", "STATS"]

STATS: dict[str, Histogram] = {
    "in_latency": Histogram(),
    "in_processing": Histogram(),
    "out_latency": Histogram(),
    "loop_lag": Histogram(),
    "gc_pause": Histogram(),
}
COUNTS: dict[str, int] = {"in_events": 0, "in_events_undated": 0, "out_events": 0}
LAG_PERIOD_S = 0.005


def install_probes() -> None:
    from fakeserver import cli
    from fakeserver.handler import StreamSession
    from fakeserver.responders.scripted import ScriptedStream

    for owner, name in ((StreamSession, "_on_frame"), (StreamSession, "emit"), (ScriptedStream, "_out"), (cli, "_serve")):
        if not callable(getattr(owner, name, None)):
            raise SystemExit(f"instrumented_server: {owner.__name__}.{name} not found; update tools/bench/instrumented_server.py")

    in_latency, in_processing, out_latency = STATS["in_latency"], STATS["in_processing"], STATS["out_latency"]
    wall = time.time
    # id(event) -> (event, time generated); holding the event keeps its id from being reused by a
    # later object when a stream closes with events still in its outbox.
    generated: dict[int, tuple[Any, float]] = {}

    orig_on_frame = StreamSession._on_frame

    async def _on_frame(self: Any, outer: Any) -> None:
        t0 = wall()
        try:
            await orig_on_frame(self, outer)
        finally:
            t1 = wall()
            in_processing.add(t1 - t0)
            date = outer.headers.get(":date")
            if isinstance(date, datetime):
                in_latency.add(t1 - date.timestamp())
                COUNTS["in_events"] += 1
            else:
                COUNTS["in_events_undated"] += 1

    orig_out = ScriptedStream._out

    def _out(self: Any, event: Any) -> None:
        generated[id(event)] = (event, wall())
        orig_out(self, event)

    orig_emit = StreamSession.emit

    async def emit(self: Any, event: Any) -> bool:
        try:
            return await orig_emit(self, event)
        finally:
            entry = generated.pop(id(event), None)
            if entry is not None and entry[0] is event:
                out_latency.add(wall() - entry[1])
                COUNTS["out_events"] += 1

    orig_serve = cli._serve

    async def _serve(args: Any) -> int:
        lag = STATS["loop_lag"]

        async def monitor() -> None:
            perf = time.perf_counter
            while True:
                t = perf()
                await asyncio.sleep(LAG_PERIOD_S)
                lag.add(perf() - t - LAG_PERIOD_S)

        task = asyncio.get_running_loop().create_task(monitor())
        try:
            return await orig_serve(args)
        finally:
            task.cancel()

    StreamSession._on_frame = _on_frame  # type: ignore[method-assign]
    StreamSession.emit = emit  # type: ignore[method-assign]
    ScriptedStream._out = _out  # type: ignore[method-assign]
    cli._serve = _serve  # type: ignore[assignment]

    gc_hist = STATS["gc_pause"]
    gc_start: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            gc_hist.add(time.perf_counter() - gc_start[0])

    gc.callbacks.append(on_gc)


class SamplingProfiler:
    """A statistical profiler with no dependencies: ``ITIMER_PROF`` fires every ``interval`` s of
    CPU time and the signal handler (run by the main thread between bytecodes) records the
    interrupted stack. Far less distortion than cProfile for code made of many small calls.
    Writes collapsed stacks (``frame;frame;frame count``, flame-graph input)."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.stacks: dict[str, int] = {}

    def _sample(self, signum: int, frame: Any) -> None:
        parts = []
        f = frame
        while f is not None:
            code = f.f_code
            parts.append(f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}")
            f = f.f_back
        key = ";".join(reversed(parts))
        self.stacks[key] = self.stacks.get(key, 0) + 1

    def start(self) -> None:
        import signal

        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self, path: Path) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        with open(path, "w") as f:
            for key, count in sorted(self.stacks.items(), key=lambda kv: -kv[1]):
                f.write(f"{key} {count}\n")


def write_stats(path: Path) -> None:
    ru = os.times()
    doc = {
        "pid": os.getpid(),
        "cpu_user_s": ru.user,
        "cpu_system_s": ru.system,
        "counts": COUNTS,
        "hist": {k: h.to_json() for k, h in STATS.items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        i = argv.index("--")
        own, server_argv = argv[:i], argv[i + 1 :]
    else:
        own, server_argv = argv, ["serve"]
    p = argparse.ArgumentParser(prog="python -m tools.bench.instrumented_server")
    p.add_argument("--stats-file", type=Path, required=True)
    p.add_argument("--cprofile", type=Path, help="also profile the whole server run with cProfile into this file")
    p.add_argument("--sample-profile", type=Path, help="statistical profile (collapsed stacks) into this file")
    args = p.parse_args(own)
    install_probes()
    from fakeserver.cli import main as server_main

    profiler = cProfile.Profile() if args.cprofile else None
    sampler = SamplingProfiler() if args.sample_profile else None
    try:
        if profiler is not None:
            profiler.enable()
        if sampler is not None:
            sampler.start()
        rc = server_main(server_argv)
    finally:
        if sampler is not None:
            sampler.stop(args.sample_profile)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.cprofile))
        write_stats(args.stats_file)
    return rc


if __name__ == "__main__":
    sys.exit(main())
