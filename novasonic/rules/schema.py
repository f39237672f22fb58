"""Checks on a tool's ``inputSchema.json`` string (protocol.md §1.2). Pure functions, no state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

__all__ = ["load_schema_object", "find_keywords"]

# Keywords whose value is a map of *names* to subschemas (the names are not keywords).
_NAMED_SUBSCHEMAS = frozenset({"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"})
# Keywords whose value is one subschema.
_ONE_SUBSCHEMA = frozenset(
    {"items", "additionalItems", "additionalProperties", "contains", "not", "if", "then", "else",
     "propertyNames", "unevaluatedItems", "unevaluatedProperties"}
)
# Keywords whose value is a list of subschemas.
_LIST_SUBSCHEMAS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})


def load_schema_object(text: str) -> dict[str, Any] | None:
    """The schema as a dict, or ``None`` when ``text`` is not JSON or not a JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def find_keywords(schema: Any, keywords: frozenset[str], path: str = "$") -> Iterator[str]:
    """Yield the JSON path of every use of one of ``keywords`` as a schema keyword.

    Walks the schema structurally, so a *property* called ``title`` is not a keyword use, while
    ``{"properties": {"x": {"title": "X"}}}`` is.
    """
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        here = f"{path}.{key}"
        if key in keywords:
            yield here
        if key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
            for name, sub in value.items():
                yield from find_keywords(sub, keywords, f"{here}.{name}")
        elif key in _ONE_SUBSCHEMA and isinstance(value, dict):
            yield from find_keywords(value, keywords, here)
        elif key in _LIST_SUBSCHEMAS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from find_keywords(sub, keywords, f"{here}[{i}]")
