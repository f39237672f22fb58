"""``parse_input`` / ``parse_output``: bytes, str or mapping → typed event (design §8 contract).

Accepted shapes: ``{"event": {"<name>": {...}}}`` (the wire form). ``parse_output`` also accepts
the bare ``{"<name>": {...}}`` form that capture logs use (shared/captures).

Keys are matched by their wire (camelCase) names only: ``prompt_name`` is an unknown field of an
input event (the service would reject it) and an added key of an output event, even though the
models accept the snake_case names when built from Python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..errors import EventDecodeError, EventValidationError
from .base import InputEvent, OutputEvent
from .input import INPUT_EVENTS
from .output import OUTPUT_EVENTS, UnknownOutputEvent

__all__ = ["parse_input", "parse_output", "split_envelope"]

Data = bytes | bytearray | memoryview | str | Mapping[str, Any]


def _load(data: Data) -> Any:
    if isinstance(data, Mapping):
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventDecodeError(f"event is not UTF-8: {exc}") from None
    if not isinstance(data, str):
        raise EventDecodeError(f"expected bytes, str or a mapping, got {type(data).__name__}")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise EventDecodeError(f"event is not JSON: {exc}") from None


def split_envelope(data: Data, *, allow_bare: bool = False) -> tuple[str, Any]:
    """Return ``(event_name, payload)`` from one event document; raise ``EventDecodeError``."""
    doc = _load(data)
    if not isinstance(doc, Mapping):
        raise EventDecodeError(f'expected a JSON object {{"event": {{...}}}}, got {type(doc).__name__}')
    if "event" in doc:
        if len(doc) != 1:
            extra = sorted(k for k in doc if k != "event")
            raise EventDecodeError(f'unexpected top-level keys next to "event": {extra}')
        inner = doc["event"]
    elif allow_bare:
        inner = doc
    else:
        raise EventDecodeError(f'missing top-level "event" key (keys: {sorted(doc)})')
    if not isinstance(inner, Mapping) or len(inner) != 1:
        shown = sorted(inner) if isinstance(inner, Mapping) else type(inner).__name__
        raise EventDecodeError(f'"event" must hold exactly one named event, got {shown}')
    ((name, payload),) = inner.items()
    return name, payload


def _errors(exc: ValidationError, name: str) -> list[tuple[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in ("event", name, *err["loc"]))
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        out.append((loc, msg))
    return out


def parse_input(data: Data) -> InputEvent:
    """Parse one client → service event strictly.

    Raises ``EventDecodeError`` when the data is not one JSON event document and
    ``EventValidationError`` for an unknown input event name, an unknown field or a bad value.
    """
    name, payload = split_envelope(data)
    cls = INPUT_EVENTS.get(name)
    if cls is None:
        known = ", ".join(INPUT_EVENTS)
        raise EventValidationError(name, [(f"event.{name}", f"unknown input event (known: {known})")])
    if not isinstance(payload, Mapping):
        raise EventValidationError(name, [(f"event.{name}", "must be a JSON object")])
    try:
        return cls.model_validate(payload, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise EventValidationError(name, _errors(exc, name)) from None


def parse_output(data: Data) -> OutputEvent:
    """Parse one service → client event tolerantly.

    Unknown event names give ``UnknownOutputEvent`` (never an exception); added fields are kept.
    A known event with a missing required member or a wrong type still raises
    ``EventValidationError``: that is a broken service (or fake), not a new feature.
    """
    name, payload = split_envelope(data, allow_bare=True)
    cls = OUTPUT_EVENTS.get(name)
    if cls is None or not isinstance(payload, Mapping):
        if cls is not None:
            raise EventValidationError(name, [(f"event.{name}", "must be a JSON object")])
        return UnknownOutputEvent(name=name, payload=payload if isinstance(payload, Mapping) else {"value": payload})
    try:
        return cls.model_validate(payload, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise EventValidationError(name, _errors(exc, name)) from None
