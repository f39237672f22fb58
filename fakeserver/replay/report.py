"""What a replay tells the test: mismatches and unused recorded interactions (VCR.py 9.x style).

``ReplayReport`` is what ``fake.replay.report()`` returns; ``str(report)`` is meant to be read in
a failed assertion (``assert fake.replay.all_played, fake.replay.report()``)::

    Cassette replay of cassettes/nova2_tool_call.jsonl: 1 mismatch, 1 unused interaction

    MISMATCH 1: stream 0 (connection 0), client event #9: unexpected event
      expected  (line 31): contentStart TOOL/TOOL interactive=false contentName=… toolUseId=tu-1
      received           : contentStart TEXT/USER interactive=true contentName=8f0c…
      matchers that failed:
        content_kind: type "TEXT", recorded "TOOL"; role "USER", recorded "TOOL"; interactive true, recorded false
      closest recorded client events:
        line 31 (expected here)  contentStart TOOL/TOOL …       failed: content_kind
        line 52 (6 events later) contentStart TEXT/USER …       matches
      how to fix:
        - the client sends events the recording has later ...

    UNUSED: stream 0, lines 31–58 (not reached: the stream ended at the mismatch)
      client: contentStart TOOL/TOOL …, toolResult …, contentEnd …
      server: contentStart TEXT/ASSISTANT SPECULATIVE, textOutput …, audioOutput ×30, completionEnd
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from novasonic.events import InputEvent

from .describe import describe_event, event_json
from .matchers import MatcherFailure
from .plan import Step

__all__ = ["MismatchKind", "Candidate", "Mismatch", "UnusedInteraction", "StreamSummary", "ReplayReport",
           "summarize_steps"]

MismatchKind: TypeAlias = Literal["unexpected-event", "missing-event", "extra-event", "rejected", "extra-stream"]

_KIND_TEXT = {
    "unexpected-event": "unexpected event",
    "missing-event": "recorded client events missing (the client skipped them)",
    "extra-event": "client event beyond the recording",
    "rejected": "client event rejected by the protocol rules",
    "extra-stream": "stream beyond the recording",
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A recorded client event close to what was received. ``distance``: client events after
    the expected one (negative: before; 0: the expected one)."""

    step: Step
    distance: int
    failures: tuple[MatcherFailure, ...]
    played: bool = False

    def render(self) -> str:
        n = abs(self.distance)
        where = ("expected here" if n == 0 else
                 f"{n} client event{'s' if n != 1 else ''} {'later' if self.distance > 0 else 'earlier'}")
        if self.played:
            where += ", already played"
        verdict = "matches" if not self.failures else "failed: " + ", ".join(f.matcher for f in self.failures)
        return f"line {self.step.line} ({where}): {self.step.describe()}  [{verdict}]"


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The client did not do what the recording did. The replay ended the stream with an
    in-stream error (``validationException``) — except for ``rejected``, which the protocol rules
    answered with the service's own exception."""

    kind: MismatchKind
    connection: int
    """Order of the replayed stream on the server (0 = the first stream the replay served)."""
    cassette_stream: int | None
    expected: Step | None
    received: InputEvent | None
    failures: tuple[MatcherFailure, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    hints: tuple[str, ...] = ()
    client_event_number: int | None = None
    """1-based count of the client's non-audio events on this stream, this one included."""
    audio_ms: float = 0.0
    rule: str | None = None
    cassette: str | None = None

    def summary(self) -> str:
        """One paragraph: what the in-stream error says."""
        where = f"cassette stream {self.cassette_stream}" if self.cassette_stream is not None else "no cassette stream"
        if self.kind == "extra-stream":
            return (f"Cassette replay mismatch: this is stream {self.connection + 1} on this server, but the "
                    f"cassette{_of(self.cassette)} records {self.connection} stream(s). See the replay report.")
        exp = (f"expected {self.expected.describe()} (line {self.expected.line})" if self.expected is not None
               else "expected nothing more from the client")
        first = f" {self.failures[0]}." if self.failures else ""
        return (f"Cassette replay mismatch on {where}: {exp}, received {describe_event(self.received)}.{first} "
                "See the replay report (fake.replay.report()).")

    def render(self) -> str:
        lines = []
        head = f"stream {self.cassette_stream} (connection {self.connection})" if self.cassette_stream is not None \
            else f"connection {self.connection}"
        if self.client_event_number is not None:
            head += f", client event #{self.client_event_number}"
        lines.append(f"{head}: {_KIND_TEXT[self.kind]} (at {self.audio_ms:.0f} ms of user audio)")
        if self.kind != "extra-stream":
            if self.expected is not None:
                lines.append(f"  expected (line {self.expected.line}): {self.expected.describe()}")
                rec = getattr(self.expected.record, "event", None)
                if rec is not None:
                    lines.append(f"           {event_json(rec)}")
            else:
                lines.append("  expected: nothing more (the recording's client sent no further events on this stream)")
            if self.received is not None:
                lines.append(f"  received: {describe_event(self.received)}")
                lines.append(f"           {event_json(self.received)}")
            if self.rule:
                lines.append(f"  rejected by the protocol rules: [{self.rule}]")
            if self.failures:
                lines.append("  matchers that failed:")
                lines.extend(f"    {f}" for f in self.failures)
            if self.candidates:
                lines.append("  closest recorded client events:")
                lines.extend(f"    {c.render()}" for c in self.candidates)
        else:
            lines.append(f"  the cassette{_of(self.cassette)} has no stream {self.connection}")
        if self.hints:
            lines.append("  how to fix:")
            lines.extend(f"    - {h}" for h in self.hints)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _of(path: str | None) -> str:
    return f" {path}" if path else ""


def summarize_steps(steps: Sequence[Step], limit: int = 12) -> str:
    """``a, b, audioOutput ×30, c`` (runs of chunks of one record collapsed)."""
    items: list[str] = []
    i = 0
    while i < len(steps):
        s = steps[i]
        if s.kind == "chunk":
            j = i
            while j + 1 < len(steps) and steps[j + 1].kind == "chunk" and steps[j + 1].record is s.record:
                j += 1
            n = j - i + 1
            items.append(f"audioOutput ×{n}")
            i = j + 1
            continue
        items.append(s.describe())
        i += 1
    if len(items) > limit:
        items = items[: limit - 1] + [f"… ({len(items) - limit + 1} more)"]
    return ", ".join(items)


@dataclass(frozen=True, slots=True)
class UnusedInteraction:
    """Recorded client events not received and/or service events not sent, of one interaction
    (client events, then the service's answer) of one cassette stream."""

    cassette_stream: int
    client: tuple[Step, ...]
    server: tuple[Step, ...]
    reason: str

    AFTER_MISMATCH = "not reached: the stream ended at the mismatch"

    @property
    def lines(self) -> tuple[int | None, int | None]:
        ls = [s.line for s in (*self.client, *self.server) if s.line is not None]
        return (min(ls), max(ls)) if ls else (None, None)

    @property
    def after_mismatch(self) -> bool:
        return self.reason == self.AFTER_MISMATCH

    def render(self, *, brief: bool = False) -> str:
        a, b = self.lines
        where = f"lines {a}–{b}" if a is not None and a != b else (f"line {a}" if a is not None else "")
        out = [f"stream {self.cassette_stream}, {where} ({self.reason})"]
        if brief:
            return out[0]
        if self.client:
            out.append(f"  client events not received: {summarize_steps(self.client)}")
        if self.server:
            out.append(f"  service events not sent:    {summarize_steps(self.server)}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """One replayed stream: steps played (client and service, barge-in cuts included) of its total,
    and how the server says it ended."""

    connection: int
    cassette_stream: int | None
    played: int
    total: int
    cut_chunks: int
    ended: str | None


@dataclass(slots=True)
class ReplayReport:
    """Everything a replay found. ``all_played``: no mismatch, and every recorded interaction of
    every cassette stream was played."""

    cassette: str | None
    n_streams: int
    streams: list[StreamSummary] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    unused: list[UnusedInteraction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def all_played(self) -> bool:
        return not self.mismatches and not self.unused

    @property
    def ok(self) -> bool:
        return self.all_played

    def render(self) -> str:
        name = self.cassette or "(in-memory cassette)"
        counts = (f"{len(self.mismatches)} mismatch{'es' if len(self.mismatches) != 1 else ''}, "
                  f"{len(self.unused)} unused interaction{'s' if len(self.unused) != 1 else ''}")
        played = "; ".join(
            f"stream {s.cassette_stream}: {s.played}/{s.total} steps"
            + (f", {s.cut_chunks} chunks cut by barge-in" if s.cut_chunks else "")
            + (f", ended {s.ended}" if s.ended else "")
            for s in self.streams if s.cassette_stream is not None)
        out = [f"Cassette replay of {name} ({self.n_streams} stream{'s' if self.n_streams != 1 else ''}): {counts}"]
        if played:
            out.append(f"  played: {played}")
        for i, m in enumerate(self.mismatches, 1):
            out.append("")
            out.append(f"MISMATCH {i}: {m.render()}")
        for u in self.unused:
            out.append("")
            out.append(f"UNUSED: {u.render(brief=u.after_mismatch)}")
        if any(not u.after_mismatch for u in self.unused):
            out.append("")
            out.append("  how to fix unused interactions: the client did less than the recorded one (it ended early, "
                       "or sent less audio than the recording has: service events wait for the recorded audio "
                       "position). Keep the client going until the recorded answers arrive (stream audio, e.g. "
                       "silence, as a microphone does), or re-record the cassette.")
        if self.notes:
            out.append("")
            out.append("notes:")
            out.extend(f"  - {n}" for n in self.notes)
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()
