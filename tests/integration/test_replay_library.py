"""Every shipped cassette (``cassettes/*.jsonl``) replays to the STOCK SDK client, twice, with the
same service event sequence — the recorded one — and nothing left unused.

The client re-enacts each cassette's recorded client side (``tests.helpers.cassette_client``):
its own names (the replay rebinds them), the toolUseIds it received, microphone frames at the
recorded positions, one new client per recorded stream.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fakeserver import FakeNovaSonic
from novasonic.cassette import load_cassette
from tests.helpers.cassette_client import replay_cassette
from tests.helpers.replay_cassettes import collect_client_garbage  # noqa: F401 (autouse fixture)
from tests.helpers.replay_cassettes import normalised

LIBRARY = Path(__file__).resolve().parents[2] / "cassettes"
CASSETTES = sorted(LIBRARY.glob("*.jsonl"))


@pytest.mark.skipif(not CASSETTES, reason="no shipped cassettes in cassettes/ yet")
@pytest.mark.parametrize("path", CASSETTES, ids=[p.stem for p in CASSETTES])
async def test_shipped_cassette_replays_identically_twice(path: Path) -> None:
    cassette = load_cassette(path)
    recorded = [normalised(s.server_events()) for s in cassette]
    for _ in range(2):
        async with FakeNovaSonic(cassette=cassette, speed=math.inf) as fake:
            runs = await replay_cassette(fake, cassette)
            assert fake.replay is not None
            report = fake.replay.report()
        assert report.all_played, report
        assert [normalised(r.events) for r in runs] == recorded
        for run in runs:  # every event carries this client's promptName, not the recorded one
            assert all(getattr(e, "prompt_name", "m-").startswith("m-") for e in run.events)
