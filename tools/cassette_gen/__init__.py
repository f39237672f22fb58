"""The scripted generator of the shipped cassette library (``cassettes/``).

Each scenario runs for real and is recorded from the fake server's journal:

=================  ==========================================================================
``scenarios``      the library: one ``Scenario`` per cassette (what it shows, its sources, the
                   script, faults and limits, and the client's steps)
``recorder``       ``Recorder`` (fake server + scripted responder + driven clock, one stock SDK
                   client) and ``AgentProfile`` (what a LiveKit agent sends)
``lockstep``       ``LockstepConversation``: the SDK driver in lock-step with the server, so the
                   recording is byte-for-byte repeatable
``clock``          ``DrivenClock``: service time that moves with the streamed audio
``generate``       record → ``cassette_from_journal`` → validated file; ``check`` for drift
``readme``         ``cassettes/README.md`` (generated)
``cli``            ``python -m tools.cassette_gen --out DIR | --check DIR | --list [--only A,B] [--jobs N]``
=================  ==========================================================================

Use::

    from tools.cassette_gen import SCENARIOS, generate, check
    generate("cassettes")                    # every scenario; unchanged files are not rewritten
    report = check("cassettes")              # regenerate elsewhere and compare
    assert report.ok, report.render()

Imports point downward: ``fakeserver`` (server, scripted responder, faults, journal),
``novasonic`` (events, builder, cassette format), ``tools.sdk_driver`` (the SDK conversation
driver). Nothing here imports ``tests``.
"""

from .generate import CheckReport, Generated, check, content_bytes, generate, header_for, select
from .scenarios import BARGE_IN_VARIANTS, RESTART_ERRORS, SCENARIOS, Scenario, scenario_names

__all__ = [
    "SCENARIOS",
    "Scenario",
    "scenario_names",
    "BARGE_IN_VARIANTS",
    "RESTART_ERRORS",
    "generate",
    "check",
    "select",
    "content_bytes",
    "header_for",
    "Generated",
    "CheckReport",
]
