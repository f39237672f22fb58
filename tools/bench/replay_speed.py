"""Replay speed over the shipped library: recorded conversation time ÷ wall time.

Each cassette in ``cassettes/`` is replayed by ``FakeNovaSonic(cassette=..., speed=math.inf)`` to
a client that re-enacts the recorded client side with the stock SDK client on CRT over loopback
TLS/HTTP/2 (``tools.sdk_driver.reenact``), one server per cassette, sequentially. Prints one row
per cassette and the total. Conversation time is the cassette's recorded duration (the sum of its
streams' ends); the server start and TLS set-up are counted in the wall time.

    python -m tools.bench.replay_speed [--dir cassettes] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path

from fakeserver import FakeNovaSonic
from novasonic.cassette import load_cassette
from tools.sdk_driver.reenact import replay_cassette


def _duration_s(cassette) -> float:
    total = 0.0
    for s in cassette:
        end = s.end
        total += end.t if end is not None else max((getattr(r, "t", 0.0) or 0.0) for r in s.records)
    return total


async def _one(path: Path) -> tuple[float, float, bool]:
    cassette = load_cassette(path)
    t0 = time.perf_counter()
    async with FakeNovaSonic(cassette=cassette, speed=math.inf) as fake:
        await replay_cassette(fake, cassette)
        played = fake.replay.all_played
    return _duration_s(cassette), time.perf_counter() - t0, played


async def main_async(directory: Path, rounds: int) -> int:
    paths = sorted(directory.glob("*.jsonl"))
    if not paths:
        print(f"no cassettes in {directory}", file=sys.stderr)
        return 2
    conv_total = wall_total = 0.0
    print(f"{'cassette':34} {'conv s':>8} {'wall s':>8} {'speed':>8}  all played")
    for _ in range(rounds):
        for p in paths:
            conv, wall, played = await _one(p)
            conv_total += conv
            wall_total += wall
            print(f"{p.stem:34} {conv:8.1f} {wall:8.2f} {conv / wall:7.0f}×  {played}")
    print(f"{'TOTAL':34} {conv_total:8.1f} {wall_total:8.2f} {conv_total / wall_total:7.0f}×")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("cassettes"))
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    raise SystemExit(asyncio.run(main_async(a.dir, a.rounds)))


if __name__ == "__main__":
    main()
