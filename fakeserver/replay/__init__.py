"""Cassette replay: the fake server answers a client from a recorded conversation (design §4).

::

    from fakeserver import FakeNovaSonic

    async with FakeNovaSonic(cassette="cassettes/nova2_tool_call.jsonl", speed=math.inf) as fake:
        ...                                                   # run the client under test
        assert fake.replay.all_played, fake.replay.report()  # mismatches and unused interactions

Replay is *reactive* (each recorded burst of service events waits for the client events that
preceded it, matched by the ``match_on`` matchers with names and ids rebound), *audio-timed*
(service events wait for the audio position they were recorded at, counted in bytes of client
audio, not wall time), *deterministic* (the service events always go out in the recorded order)
and *strict* (a diverging client gets an in-stream error and a readable report). Each new stream
takes the next stream of the cassette; recorded exceptions, error frames, HTTP errors and
transport actions are replayed as recorded, and a client that speaks during a recorded barge-in
cuts the assistant's audio there.

=============  ================================================================================
``engine``     ``ReplayResponder`` (the responder; ``fake.replay``), ``ReplayStream`` (one stream),
               ``ReplayConfig`` (ids, barge-in, elided audio, audio stall)
``plan``       a cassette stream as a flat list of steps (no I/O)
``matchers``   VCR-style matchers, the registry, ``DEFAULT_MATCH_ON``, ``register_matcher``
``bindings``   client names and service ids, recorded ↔ live
``report``     ``ReplayReport``, ``Mismatch``, ``UnusedInteraction``
``describe``   one-line descriptions of events and records
=============  ================================================================================

Design notes and the decisions taken where the issue was silent: ``docs/replay.md``.
"""

from .bindings import Bindings, IdMode
from .engine import Release, ReplayConfig, ReplayResponder, ReplayStream
from .matchers import (
    DEFAULT_MATCH_ON,
    MATCHERS,
    MatchContext,
    Matcher,
    MatcherFailure,
    register_matcher,
    resolve_matchers,
)
from .plan import Step, StreamPlan, build_plan
from .report import Candidate, Mismatch, ReplayReport, UnusedInteraction

__all__ = [
    "ReplayResponder",
    "ReplayStream",
    "ReplayConfig",
    "Release",
    "ReplayReport",
    "Mismatch",
    "Candidate",
    "UnusedInteraction",
    "DEFAULT_MATCH_ON",
    "MATCHERS",
    "Matcher",
    "MatchContext",
    "MatcherFailure",
    "register_matcher",
    "resolve_matchers",
    "Bindings",
    "IdMode",
    "Step",
    "StreamPlan",
    "build_plan",
]
