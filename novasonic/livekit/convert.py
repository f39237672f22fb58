"""Pure conversions between LiveKit's types and ``novasonic.session``'s (no I/O, no state).

- tools: ``llm.FunctionTool`` / ``llm.RawFunctionTool`` → ``ToolDefinition`` (provider tools are
  skipped: Nova Sonic only calls functions), with the schema cleaned of the JSON-Schema keywords
  the service reportedly refuses with "Invalid input request" (``title``, ``default``,
  ``additionalProperties``; ``anyOf`` of one type and null, i.e. ``Optional[X]``, becomes that
  type) — LiveKit's generated schemas carry ``title`` on every object and property (protocol.md
  §1.2); a stable *signature* of a tool set, so an update that changes nothing recycles nothing;
- tool choice: ``"auto"`` → auto, ``"required"`` → any, a named function → that tool, ``"none"`` /
  ``None`` → not sent (Nova Sonic has no "none");
- chat context → chat history: USER/ASSISTANT text messages only (function calls, their outputs,
  handoffs and instructions are not history the service takes, protocol.md §1.6); the session's
  builder then merges, strips a leading ASSISTANT message and applies the size limits;
- a ``FunctionCallOutput`` → what ``NovaSonicSession.send_tool_result`` takes (errors as
  ``{"error": ...}``; a plain string is wrapped there as ``{"result": ...}``, so a tool returning
  a string never causes "Tool Response parsing error", upstream #4348);
- tool-call arguments → the JSON string ``llm.FunctionCall.arguments`` expects (the session has
  already peeled a double encoding, upstream #5411);
- token usage → ``RealtimeModelMetrics`` (missing usage fields count as 0 instead of raising).
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from livekit.agents import llm
from livekit.agents.metrics import RealtimeModelMetrics
from livekit.agents.metrics.base import Metadata

from ..builder import Message
from ..rules import TokenUsage
from ..session import ToolDefinition

__all__ = [
    "tool_definitions",
    "clean_schema",
    "tools_signature",
    "tool_choice_option",
    "history_from_chat_ctx",
    "tool_output_payload",
    "function_call_arguments",
    "usage_metrics",
]

_NO_DESCRIPTION = "No description provided"


def tool_definitions(tools: Iterable[llm.Tool]) -> tuple[ToolDefinition, ...]:
    """The function tools of ``tools`` as session tool definitions (other tools skipped)."""
    ctx = tools if isinstance(tools, llm.ToolContext) else llm.ToolContext(list(tools))
    out: list[ToolDefinition] = []
    for name, tool in ctx.function_tools.items():
        if isinstance(tool, llm.FunctionTool):
            description = tool.info.description
            schema = llm.utils.build_legacy_openai_schema(tool, internally_tagged=True)["parameters"]
        elif isinstance(tool, llm.RawFunctionTool):
            raw = tool.info.raw_schema
            description = raw.get("description")
            schema = raw.get("parameters", raw.get("input_schema", {"type": "object", "properties": {}}))
        else:  # pragma: no cover - ToolContext.function_tools holds only these two
            continue
        out.append(ToolDefinition(name, description or _NO_DESCRIPTION, clean_schema(schema)))
    return tuple(out)


#: Keywords dropped from every schema object (protocol.md §1.2, "reportedly give Invalid input").
_DROPPED_KEYWORDS = frozenset({"title", "default", "additionalProperties"})
#: Keywords whose value maps names to schemas (the names are data, not keywords).
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})


def clean_schema(schema: Any) -> Any:
    """A copy of ``schema`` without the refused keywords (see the module doc)."""
    if isinstance(schema, list):
        return [clean_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        else:
            out[key] = clean_schema(value)
    variants = out.get("anyOf")
    if isinstance(variants, list):
        non_null = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        if len(non_null) == 1 and isinstance(non_null[0], dict) and len(non_null) < len(variants):
            del out["anyOf"]
            out = {**non_null[0], **out}
    return out


def tools_signature(tools: Sequence[ToolDefinition]) -> tuple[tuple[str, str, str], ...]:
    """What the service sees of a tool set (order-insensitive): equal signatures, no recycle."""
    return tuple(sorted((t.name, t.description, json.dumps(dict(t.parameters), sort_keys=True)) for t in tools))


def tool_choice_option(choice: Any, tool_names: Iterable[str]) -> str | None:
    """LiveKit ``ToolChoice`` → ``SessionOptions.tool_choice`` (None: not sent).

    A named function that is not among the tools is not sent either (the choice would be
    refused); a tool choice without tools likewise."""
    names = set(tool_names)
    if not names or choice is None or choice == "none":
        return None
    if choice == "auto":
        return "auto"
    if choice == "required":
        return "any"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return name if name in names else None
    return None


def history_from_chat_ctx(chat_ctx: llm.ChatContext) -> list[Message]:
    """USER/ASSISTANT text messages of ``chat_ctx``, oldest first (unprepared)."""
    out: list[Message] = []
    for item in chat_ctx.items:
        if item.type != "message" or item.role not in ("user", "assistant"):
            continue
        text = (item.text_content or "").strip()
        if text:
            out.append(Message.user(text) if item.role == "user" else Message.assistant(text))
    return out


def tool_output_payload(output: llm.FunctionCallOutput) -> Any:
    """What to send as the tool result of ``output``.

    LiveKit turns a tool's return value into ``str(value)``, so a tool returning a dict arrives
    as its Python repr (``{'sky': 'sunny'}``), which is not JSON. Such a repr is read back with
    ``ast.literal_eval`` (literals only, nothing is executed) and sent as the JSON object it was;
    any other string is sent as text (the session wraps it as ``{"result": ...}``).
    """
    if output.is_error:
        return {"error": str(output.output)}
    text = output.output
    if isinstance(text, str) and text[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return text
            if isinstance(value, (dict, list)):
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    return text
                return value
    return text


def function_call_arguments(arguments: Any) -> str:
    """``FunctionCall.arguments`` (a JSON string) from the session's decoded arguments."""
    if isinstance(arguments, str):
        return arguments  # not JSON: given as received, the tool's argument parsing reports it
    return json.dumps(arguments)


def usage_metrics(
    delta: TokenUsage,
    *,
    label: str,
    request_id: str,
    model: str,
    provider: str,
    created_at: float | None = None,
    first_token_at: float | None = None,
    completed_at: float | None = None,
) -> RealtimeModelMetrics:
    """One ``RealtimeModelMetrics`` for a usage *delta* (wall-clock timestamps, seconds)."""
    ttft = first_token_at - created_at if created_at is not None and first_token_at is not None else -1.0
    duration = completed_at - created_at if created_at is not None and completed_at is not None else 0.0
    total = delta.total
    return RealtimeModelMetrics(
        label=label,
        request_id=request_id,
        timestamp=time.time(),
        duration=max(0.0, duration),
        ttft=ttft,
        cancelled=False,
        input_tokens=delta.input,
        output_tokens=delta.output,
        total_tokens=total,
        tokens_per_second=total / duration if duration > 0 else 0.0,
        input_token_details=RealtimeModelMetrics.InputTokenDetails(
            audio_tokens=delta.input_speech, text_tokens=delta.input_text
        ),
        output_token_details=RealtimeModelMetrics.OutputTokenDetails(
            audio_tokens=delta.output_speech, text_tokens=delta.output_text
        ),
        metadata=Metadata(model_name=model, model_provider=provider),
    )
