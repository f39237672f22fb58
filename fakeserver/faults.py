"""Fault injection: what to break, at which point of which stream.

A :class:`Fault` pairs a *trigger* (when) with an *action* (what), optionally limited to some
streams (``streams={0}`` = only the first stream the server sees — handy for "fail, then the
client's restart succeeds"). A :class:`FaultPlan` is a list of faults; each fires at most
``times`` times (default once; 0 = no limit) across the server, and at most once per stream.

Triggers
    ``open``                     before the response headers (HTTP-level faults, header delay)
    ``client:<name>[#n]``        when the n-th client event named ``name`` has been accepted
    ``client-events:<n>``        after the n-th accepted client event (any name)
    ``server:<name>[#n]``        just before the n-th server event named ``name`` would be sent
    ``t=<seconds>``              at that service time after the stream opened (scaled clock)

Actions
    ``<member>[:message]``       one of the six in-stream exceptions (``throttlingException``,
                                 ``modelStreamErrorException``, ...): sent, then the stream ends
    ``http:<Type>[:message]``    HTTP-level error at open (``ModelNotReadyException``,
                                 ``ThrottlingException``, ``AccessDeniedException``,
                                 ``ServiceUnavailableException``, ...); trigger must be ``open``
    ``corrupt[:prelude|message]`` a frame whose prelude or message CRC is wrong, then stream end
    ``rst[:code]``               RST_STREAM (the SDK's receive() then returns None)
    ``goaway[:code]``            GOAWAY on the connection, then close it
    ``end``                      abrupt END_STREAM (no exception, mid-answer)
    ``delay-headers:<seconds>``  hold the response headers that long (service seconds)
    ``drip:<seconds>``           from now on, wait that long (service seconds) before each frame

The same spec strings work on the CLI (``--fault 'modelStreamErrorException@server:audioOutput#3'``)
and in Python (``Fault.parse(...)``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from novasonic.rules import texts
from novasonic.wire import STREAM_EXCEPTIONS

from .http_errors import HTTP_ERRORS

__all__ = [
    "Trigger",
    "Action",
    "Fault",
    "FaultPlan",
    "DEFAULT_EXCEPTION_TEXTS",
    "TERMINAL_ACTIONS",
]

#: Default message per in-stream member when a fault names none. Where a Nova-specific text is
#: known it is used (REP, cited); otherwise the Bedrock-wide text for that exception (REP).
DEFAULT_EXCEPTION_TEXTS: dict[str, str] = {
    # client-behaviours.md #30 (aws-samples/amazon-nova-samples#147): seen at the 8-minute limit.
    "modelTimeoutException": "Model has timed out in processing the request.",
    "throttlingException": "Too many requests, please wait before trying again.",
    "modelStreamErrorException": "The model encountered an error while processing the stream.",
    "internalServerException": "The server encountered an internal error while processing the request.",
    "serviceUnavailableException": "Service is temporarily unavailable. Please try again later.",
    "validationException": texts.GENERIC_INVALID,
}

TERMINAL_ACTIONS = frozenset({"exception", "http", "corrupt", "rst", "goaway", "end"})


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str  # open | client | client-events | server | time
    name: str | None = None
    nth: int = 1
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Trigger:
        text = text.strip()
        if text == "open":
            return cls("open")
        if m := re.fullmatch(r"t=([0-9.]+)", text):
            return cls("time", seconds=float(m.group(1)))
        if m := re.fullmatch(r"client-events:(\d+)", text):
            return cls("client-events", nth=int(m.group(1)))
        if m := re.fullmatch(r"(client|server):([A-Za-z]+)(?:#(\d+))?", text):
            return cls(m.group(1), name=m.group(2), nth=int(m.group(3) or 1))
        raise ValueError(
            f"bad fault trigger {text!r}: use open, t=<seconds>, client-events:<n>, client:<event>[#n] or server:<event>[#n]"
        )

    def __str__(self) -> str:
        if self.kind == "open":
            return "open"
        if self.kind == "time":
            return f"t={self.seconds:g}"
        if self.kind == "client-events":
            return f"client-events:{self.nth}"
        return f"{self.kind}:{self.name}#{self.nth}"


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # exception | http | corrupt | rst | goaway | end | delay-headers | drip
    member: str | None = None  # in-stream member or HTTP error type
    message: str | None = None
    code: int = 0
    seconds: float = 0.0
    part: str = "message"
    extra: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Action:
        head, _, arg = text.strip().partition(":")
        if head in STREAM_EXCEPTIONS:
            return cls.exception(head, arg or None)
        if head == "http":
            typ, _, msg = arg.partition(":")
            return cls.http(typ, msg or None)
        if head == "corrupt":
            return cls("corrupt", part=arg or "message")
        if head in ("rst", "goaway"):
            return cls(head, code=int(arg or 0))
        if head == "end":
            return cls("end")
        if head in ("delay-headers", "drip"):
            return cls(head, seconds=float(arg))
        known = ", ".join(sorted(STREAM_EXCEPTIONS))
        raise ValueError(
            f"bad fault action {text!r}: use one of {known}, http:<Type>, corrupt[:prelude|message], "
            "rst[:code], goaway[:code], end, delay-headers:<s>, drip:<s>"
        )

    @classmethod
    def exception(cls, member: str, message: str | None = None, **extra: Any) -> Action:
        if member not in STREAM_EXCEPTIONS:
            raise ValueError(f"{member!r} is not an in-stream exception member; known: {sorted(STREAM_EXCEPTIONS)}")
        return cls("exception", member=member, message=message, extra=tuple(sorted(extra.items())))

    @classmethod
    def http(cls, error_type: str, message: str | None = None) -> Action:
        if error_type not in HTTP_ERRORS:
            raise ValueError(f"unknown HTTP error type {error_type!r}; known: {sorted(HTTP_ERRORS)}")
        return cls("http", member=error_type, message=message)

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_ACTIONS

    def exception_text(self) -> str:
        assert self.member is not None
        return self.message or DEFAULT_EXCEPTION_TEXTS.get(self.member, texts.GENERIC_INVALID)

    def __str__(self) -> str:
        if self.kind == "exception":
            return f"{self.member}" + (f":{self.message}" if self.message else "")
        if self.kind == "http":
            return f"http:{self.member}" + (f":{self.message}" if self.message else "")
        if self.kind == "corrupt":
            return f"corrupt:{self.part}"
        if self.kind in ("rst", "goaway"):
            return f"{self.kind}:{self.code}"
        if self.kind in ("delay-headers", "drip"):
            return f"{self.kind}:{self.seconds:g}"
        return self.kind


@dataclass(frozen=True, slots=True)
class Fault:
    trigger: Trigger
    action: Action
    streams: frozenset[int] | None = None
    """Stream indexes (server-wide order, from 0) the fault applies to; None = every stream."""
    times: int = 1
    """How many times the fault may fire across the server (0 = unlimited). Within one stream a
    fault fires at most once: its trigger names a single point of the stream."""

    def __post_init__(self) -> None:
        if self.times < 0:
            raise ValueError(f"times must be >= 0 (0 = unlimited), got {self.times}")
        if self.trigger.nth < 1 and self.trigger.kind in ("client", "server", "client-events"):
            raise ValueError(f"event counts start at 1 (got #{self.trigger.nth} in {self.trigger})")
        if self.action.kind == "http" and self.trigger.kind != "open":
            raise ValueError(f"an HTTP-level error can only be injected at 'open', not at {self.trigger}")
        if self.action.kind == "delay-headers" and self.trigger.kind != "open":
            raise ValueError("delay-headers only makes sense at 'open'")

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``ACTION@TRIGGER[@streams=0,1][@times=N]``, e.g. ``rst@server:audioOutput#2@streams=0``."""
        parts = spec.split("@")
        if len(parts) < 2:
            raise ValueError(f"bad fault {spec!r}: expected ACTION@TRIGGER (e.g. 'throttlingException@client:audioInput#50')")
        action, trigger = Action.parse(parts[0]), Trigger.parse(parts[1])
        streams: frozenset[int] | None = None
        times = 1
        for opt in parts[2:]:
            key, _, value = opt.partition("=")
            if key == "streams":
                streams = frozenset(int(x) for x in value.split(",") if x)
            elif key == "times":
                times = int(value)
            else:
                raise ValueError(f"bad fault option {opt!r} in {spec!r}: use streams=0,1 or times=N")
        return cls(trigger, action, streams, times)

    def applies_to(self, stream_index: int) -> bool:
        return self.streams is None or stream_index in self.streams

    def __str__(self) -> str:
        s = f"{self.action}@{self.trigger}"
        if self.streams is not None:
            s += "@streams=" + ",".join(str(i) for i in sorted(self.streams))
        if self.times != 1:
            s += f"@times={self.times}"
        return s


@dataclass
class FaultPlan:
    """Faults for a server, with the server-wide count of how often each fired."""

    faults: list[Fault] = field(default_factory=list)
    fired: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: list[str] | tuple[str, ...]) -> FaultPlan:
        return cls([Fault.parse(s) for s in specs])

    def add(self, fault: Fault | str) -> Fault:
        f = Fault.parse(fault) if isinstance(fault, str) else fault
        self.faults.append(f)
        return f

    def for_stream(self, stream_index: int) -> list[tuple[int, Fault]]:
        return [(i, f) for i, f in enumerate(self.faults) if f.applies_to(stream_index)]

    def try_fire(self, fault_id: int) -> bool:
        """Claim one firing of fault ``fault_id``; False when it has fired ``times`` times already."""
        f = self.faults[fault_id]
        n = self.fired.get(fault_id, 0)
        if f.times and n >= f.times:
            return False
        self.fired[fault_id] = n + 1
        return True
