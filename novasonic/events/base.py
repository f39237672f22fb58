"""Base classes and value sets shared by input and output events (protocol.md §1, §2).

Every wire event is a frozen pydantic model whose Python fields are snake_case and whose wire
names are the service's lower-camel keys. ``EVENT_NAME`` is the key inside ``{"event": {...}}``.

Input models are strict (unknown keys are errors, no type coercion: ``"true"`` is not a bool),
because the service rejects what it does not know (protocol.md §1.1). Output models tolerate
added keys and keep them (``model_extra``), because the service adds events and fields without
notice (``userSpeechStart`` appeared undocumented, §2.1).
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_serializer
from pydantic_core import PydanticCustomError
from pydantic.alias_generators import to_camel

__all__ = [
    "Role",
    "ContentType",
    "StopReason",
    "GenerationStage",
    "EndpointingSensitivity",
    "SampleRate",
    "InputEvent",
    "OutputEvent",
    "Lenient",
    "WireModel",
    "InputPart",
    "OutputPart",
]


class Role(enum.StrEnum):
    SYSTEM = "SYSTEM"
    USER = "USER"
    ASSISTANT = "ASSISTANT"
    TOOL = "TOOL"


class ContentType(enum.StrEnum):
    TEXT = "TEXT"
    AUDIO = "AUDIO"
    TOOL = "TOOL"


class StopReason(enum.StrEnum):
    PARTIAL_TURN = "PARTIAL_TURN"
    END_TURN = "END_TURN"
    INTERRUPTED = "INTERRUPTED"
    TOOL_USE = "TOOL_USE"


class GenerationStage(enum.StrEnum):
    SPECULATIVE = "SPECULATIVE"
    FINAL = "FINAL"


class EndpointingSensitivity(enum.StrEnum):
    """End-of-turn pause: HIGH ≈1.5 s, MEDIUM ≈1.75 s, LOW ≈2 s (DOC D-TURN)."""

    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class SampleRate(enum.IntEnum):
    HZ_8000 = 8000
    HZ_16000 = 16000
    HZ_24000 = 24000


def Lenient[T](tp: type[T]) -> Any:  # noqa: N802 - reads like a type
    """A field type that accepts the enum's wire value even in strict models.

    Only the wire value's own JSON type is accepted: a string for a ``StrEnum`` and an integer
    (not a bool, a float or a numeric string) for an ``IntEnum``. Pydantic's lax enum validation
    alone would coerce ``"16000"`` and ``16000.0`` into ``SampleRate.HZ_16000``.
    """
    wire_type: type = int if issubclass(tp, int) else str

    def same_json_type(value: Any) -> Any:
        if isinstance(value, tp):
            return value
        if not isinstance(value, wire_type) or isinstance(value, bool):
            allowed = ", ".join(repr(m.value) for m in tp)  # type: ignore[attr-defined]
            raise PydanticCustomError(
                "enum", "Input should be one of {allowed} (got a {got})", {"allowed": allowed, "got": type(value).__name__}
            )
        return value

    return Annotated[tp, Field(strict=False), BeforeValidator(same_json_type)]


class WireModel(BaseModel):
    """Common behaviour: camelCase aliases, frozen, dict/JSON views without ``None`` members."""

    model_config = ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire mapping of this model (aliases, ``None`` members left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class InputPart(WireModel):
    """A strict nested part of an input event."""

    model_config = ConfigDict(extra="forbid", strict=True)


class OutputPart(WireModel):
    """A tolerant nested part of an output event (added keys are kept)."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _keep_null_extras(self, handler: Any) -> Any:
        # ``to_dict`` drops ``None`` members (``exclude_none``), which is right for declared
        # optional fields but would lose an *added* key the service sent as ``null``; keep those,
        # so re-serialising an output event gives back what was received.
        data = handler(self)
        if isinstance(data, dict) and self.model_extra:
            for key, value in self.model_extra.items():
                if value is None and key not in data:
                    data[key] = None
        return data


class _Event:
    EVENT_NAME: ClassVar[str]
    SORT_KEYS: ClassVar[bool] = False

    def to_envelope(self) -> dict[str, Any]:
        """``{"event": {"<name>": {...}}}``, the JSON document carried by one chunk."""
        return {"event": {self.EVENT_NAME: self.to_dict()}}  # type: ignore[attr-defined]

    def to_json(self) -> str:
        """Compact JSON of the envelope (output events with sorted keys, as the service sends)."""
        return json.dumps(
            self.to_envelope(), separators=(",", ":"), sort_keys=self.SORT_KEYS, ensure_ascii=False
        )

    def to_bytes(self) -> bytes:
        return self.to_json().encode("utf-8")


class InputEvent(_Event, InputPart):
    """Base of the client → service events."""


class OutputEvent(_Event, OutputPart):
    """Base of the service → client events."""

    SORT_KEYS: ClassVar[bool] = True
