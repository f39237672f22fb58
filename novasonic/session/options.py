"""Options of a ``NovaSonicSession``: what to say to the model, where to connect, and the lifecycle
policies (recycle, restart), all frozen and validated up front (a typo fails at construction, not
minutes later inside a recycle).

Times are **seconds on the session's clock** (``novasonic.session.clock``; wall time by default),
so a test can shorten every limit without touching the code: e.g. a fake server whose streams
live 8 s and a session that recycles at 6 s.

Defaults and where they come from:

- ``max_tokens=1024, top_p=0.9, temperature=0.7``: what every sample sends (protocol.md §1.1).
- ``endpointing="MEDIUM"``: what the samples send (the service default when the key is absent is
  UNK); ``None`` leaves the key out. Flat for Nova Sonic 1, nested for Nova 2+ (the builder).
- ``voice=None``: the model's default voice (``novasonic.models``).
- Recycle at 6 minutes (LiveKit's ``MAX_SESSION_DURATION_SECONDS``) when the conversation is
  quiet, at 7.5 minutes whatever happens (the service ends streams at 8 minutes), and 3 minutes
  before the credentials expire (LiveKit's margin).
- Restart: 3 attempts, delays 0 s / 1 s / 3 s (LiveKit's backoff), capped at 10 s.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..builder import DEFAULT_INFERENCE, HistoryLimits
from ..events import EndpointingSensitivity, InferenceConfiguration, SampleRate, Tool, ToolChoice
from ..models import NOVA_2_SONIC, ModelInfo, model_info

__all__ = [
    "ToolDefinition",
    "ToolLike",
    "RecyclePolicy",
    "RestartPolicy",
    "SessionOptions",
    "DEFAULT_INSTRUCTIONS",
    "DEFAULT_REGION",
]

#: The SYSTEM prompt when none is given (the service requires a SYSTEM block in every prompt).
DEFAULT_INSTRUCTIONS = "You are a helpful voice assistant. Keep your answers short and conversational."
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool the model may call: ``name``, ``description`` and the JSON Schema of its arguments
    (an object schema; ``{"type": "object", "properties": {}}`` when omitted)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("ToolDefinition.name must be a non-empty string")
        if not isinstance(self.parameters, Mapping):
            raise TypeError(f"ToolDefinition.parameters must be a JSON Schema mapping, got {type(self.parameters).__name__}")
        try:
            json.dumps(dict(self.parameters))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ToolDefinition.parameters of {self.name!r} is not JSON-serialisable: {exc}") from None

    def to_tool(self) -> Tool:
        return Tool.define(self.name, self.description, dict(self.parameters))


#: What ``tools=`` accepts: ``ToolDefinition``, a ``novasonic.events.Tool``, or a mapping
#: ``{"name", "description", "parameters"|"input_schema"|"schema"}``.
ToolLike = ToolDefinition | Tool | Mapping[str, Any]


def as_tool(item: ToolLike) -> Tool:
    if isinstance(item, Tool):
        return item
    if isinstance(item, ToolDefinition):
        return item.to_tool()
    if isinstance(item, Mapping):
        schema = item.get("parameters", item.get("input_schema", item.get("schema")))
        return ToolDefinition(
            str(item.get("name", "")), str(item.get("description", "")),
            schema if schema is not None else {"type": "object", "properties": {}},
        ).to_tool()
    raise TypeError(f"a tool is a ToolDefinition, a novasonic.events.Tool or a mapping; got {item!r}")


def _positive(name: str, value: float, *, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecyclePolicy:
    """When a stream is replaced by a new one carrying the conversation (proactive recycle).

    - From ``after_s`` of stream age the session recycles at the first **quiet point**: no
      assistant answer in progress (the last one ended, or no output for ``quiet_s``), no tool
      result owed, no user speech in progress. A silent user is quiet: the recycle does not wait
      for an assistant turn that never comes (upstream defect: recycle waiting forever).
    - At ``deadline_s`` it recycles whatever is happening (must be below the service's 8-minute
      limit, ``max_stream_age_s``).
    - Credentials that expire move both points earlier: quiet recycle from
      ``expiry - credentials_margin_s``, forced at ``expiry - credentials_margin_s / 2``.
    - ``update_*`` calls recycle at the next quiet point within ``update_max_wait_s`` (forced
      then); calls within ``coalesce_s`` of each other make one recycle.
    - ``drain_timeout_s``: how long the old stream may take to end after ``sessionEnd``.
    - ``min_age_s``: a credential-driven recycle never happens before this stream age (fresh
      credentials that are already close to expiry must not cause a recycle loop).
    - ``enabled=False``: never recycle on age/credentials (``update_*`` still recycles).
    """

    enabled: bool = True
    after_s: float = 360.0
    deadline_s: float = 450.0
    max_stream_age_s: float = 480.0
    quiet_s: float = 1.0
    credentials_margin_s: float = 180.0
    update_max_wait_s: float = 3.0
    coalesce_s: float = 0.15
    drain_timeout_s: float = 2.0
    min_age_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("after_s", "deadline_s", "max_stream_age_s"):
            _positive(f"RecyclePolicy.{name}", getattr(self, name))
        for name in ("quiet_s", "credentials_margin_s", "update_max_wait_s", "coalesce_s", "drain_timeout_s",
                     "min_age_s"):
            _positive(f"RecyclePolicy.{name}", getattr(self, name), zero_ok=True)
        if not self.after_s <= self.deadline_s < self.max_stream_age_s:
            raise ValueError(
                "RecyclePolicy needs after_s <= deadline_s < max_stream_age_s "
                f"(got {self.after_s}, {self.deadline_s}, {self.max_stream_age_s})"
            )

    @classmethod
    def for_max_age(cls, max_stream_age_s: float, **kw: Any) -> RecyclePolicy:
        """The default proportions (75 % / 93.75 % of the limit) for another stream lifetime, e.g.
        ``RecyclePolicy.for_max_age(8.0)`` recycles from 6 s, forced at 7.5 s."""
        return cls(after_s=max_stream_age_s * 0.75, deadline_s=max_stream_age_s * 0.9375,
                   max_stream_age_s=max_stream_age_s, **kw)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """Restart after a retryable error (``novasonic.session.errors.is_retryable``).

    Attempt ``n`` (1-based) waits ``delay(n)``: ``first_delay_s`` for the first, then
    ``base_delay_s * multiplier ** (n - 2)``, capped at ``max_delay_s`` (0 s, 1 s, 3 s, 9 s…).
    After ``max_attempts`` consecutive failed attempts the session fails with
    ``RestartsExhausted``. The count starts again once a stream has completed an assistant turn
    or stayed up ``healthy_after_s``.
    """

    max_attempts: int = 3
    first_delay_s: float = 0.0
    base_delay_s: float = 1.0
    multiplier: float = 3.0
    max_delay_s: float = 10.0
    healthy_after_s: float = 30.0
    #: Bound on each send to the SDK stream (after an RST_STREAM sends hang, protocol.md §4.5).
    send_timeout_s: float = 10.0
    #: Bound on opening a stream (client, request, first response).
    open_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or isinstance(self.max_attempts, bool) or self.max_attempts < 0:
            raise ValueError(f"RestartPolicy.max_attempts must be an int >= 0, got {self.max_attempts!r}")
        for name in ("first_delay_s", "base_delay_s", "max_delay_s", "healthy_after_s"):
            _positive(f"RestartPolicy.{name}", getattr(self, name), zero_ok=True)
        _positive("RestartPolicy.multiplier", self.multiplier)
        _positive("RestartPolicy.send_timeout_s", self.send_timeout_s)
        _positive("RestartPolicy.open_timeout_s", self.open_timeout_s)

    def delay(self, attempt: int) -> float:
        if attempt <= 1:
            return min(self.first_delay_s, self.max_delay_s)
        return min(self.base_delay_s * self.multiplier ** (attempt - 2), self.max_delay_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOptions:
    """Everything a session needs; see the module doc for the defaults.

    Connection: ``region`` (else ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else us-east-1),
    ``endpoint`` (else ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, read by the SDK, else the regional
    Bedrock endpoint), ``ca_file`` (a CA bundle trusted by this session's transport only; else
    ``SSL_CERT_FILE`` / the system store). ``credentials``: a
    ``novasonic.session.CredentialsProvider`` (default: the boto3 chain, cached until shortly
    before expiry).

    Model: ``model_id``, ``voice``, ``instructions`` (the SYSTEM prompt), ``tools``,
    ``tool_choice`` (``"auto"``, ``"any"``/``"required"``, a tool name, or None = not sent),
    ``temperature``/``top_p``/``max_tokens``, ``endpointing`` (HIGH/MEDIUM/LOW/None),
    ``output_sample_rate`` (8000/16000/24000), ``history_limits`` (chat history sent at each
    stream start: 1 KB per textInput, 40 KB total by default).

    Audio: pushed audio is resampled to 16 kHz mono and sent in ``frame_ms`` frames.
    ``max_buffered_audio_ms``: audio held while no stream can take it (between streams); older
    audio is dropped beyond it.
    """

    model_id: str = NOVA_2_SONIC
    voice: str | None = None
    instructions: str = DEFAULT_INSTRUCTIONS
    tools: tuple[ToolLike, ...] = ()
    tool_choice: str | ToolChoice | None = None
    temperature: float = DEFAULT_INFERENCE.temperature
    top_p: float = DEFAULT_INFERENCE.top_p
    max_tokens: int = DEFAULT_INFERENCE.max_tokens
    endpointing: EndpointingSensitivity | str | None = "MEDIUM"
    output_sample_rate: int = 24000
    history_limits: HistoryLimits = HistoryLimits()

    region: str | None = None
    endpoint: str | None = None
    ca_file: str | os.PathLike[str] | None = None
    credentials: Any = None  # CredentialsProvider | None (typed loosely: no import cycle)

    frame_ms: float = 32.0
    max_buffered_audio_ms: float = 3000.0

    recycle: RecyclePolicy = RecyclePolicy()
    restart: RestartPolicy = RestartPolicy()

    def __post_init__(self) -> None:
        model_info(self.model_id)  # UnknownModelError with the known ids
        if not isinstance(self.instructions, str) or not self.instructions.strip():
            raise ValueError("instructions must be a non-empty string (the service requires a SYSTEM prompt)")
        object.__setattr__(self, "tools", tuple(self.tools))
        tools = [as_tool(t) for t in self.tools]
        names = [t.tool_spec.name for t in tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique, got {names}")
        if isinstance(self.tool_choice, str) and self.tool_choice == "required":
            object.__setattr__(self, "tool_choice", "any")
        if self.tool_choice is not None and not tools:
            raise ValueError("tool_choice given without tools")
        if isinstance(self.tool_choice, str) and self.tool_choice not in ("auto", "any") and self.tool_choice not in names:
            raise ValueError(f"tool_choice {self.tool_choice!r} names no tool; tools: {names}")
        InferenceConfiguration(max_tokens=self.max_tokens, top_p=self.top_p, temperature=self.temperature)
        if self.endpointing is not None:
            object.__setattr__(self, "endpointing", EndpointingSensitivity(str(self.endpointing).upper()))
        SampleRate(self.output_sample_rate)
        _positive("frame_ms", self.frame_ms)
        _positive("max_buffered_audio_ms", self.max_buffered_audio_ms, zero_ok=True)
        if self.voice is not None and self.voice not in self.model.voices:
            raise ValueError(f"voice {self.voice!r} is not a voice of {self.model_id}; known: {sorted(self.model.voices)}")

    # --- derived --------------------------------------------------------------------------------

    @property
    def model(self) -> ModelInfo:
        return model_info(self.model_id)

    @property
    def inference(self) -> InferenceConfiguration:
        return InferenceConfiguration(max_tokens=self.max_tokens, top_p=self.top_p, temperature=self.temperature)

    def tool_list(self) -> list[Tool]:
        return [as_tool(t) for t in self.tools]

    def resolved_region(self) -> str:
        return self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION

    def replace(self, **changes: Any) -> SessionOptions:
        return replace(self, **changes)

