"""One-line descriptions of events and records, for mismatch reports and logs.

Short and readable (``contentStart TOOL/TOOL toolUseId=tu-1``, ``textInput "what's the weath…"``),
never the audio itself.
"""

from __future__ import annotations

import json
from typing import Any

from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    ClientEventRecord,
    ExceptionRecord,
    Record,
    ServerEventRecord,
    TransportRecord,
)
from novasonic.events import (
    AudioInput,
    ContentStart,
    InputEvent,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    PromptStart,
    SessionStart,
    TextInput,
    TextOutput,
    ToolResult,
    ToolUse,
)

__all__ = ["describe_event", "describe_record", "shorten", "event_json"]


def shorten(text: str, n: int = 40) -> str:
    """``text`` cut to ``n`` characters (with an ellipsis), quoted, newlines shown as ``⏎``."""
    t = text.replace("\n", "⏎")
    return json.dumps(t if len(t) <= n else t[: n - 1] + "…", ensure_ascii=False)


def _v(x: Any) -> str:
    return "" if x is None else str(x)


def describe_event(event: InputEvent | OutputEvent | None) -> str:
    """``<eventName> <the fields that identify it>``."""
    if event is None:
        return "(nothing)"
    name = event.EVENT_NAME or getattr(event, "name", "unknown")
    if isinstance(event, ContentStart):
        extra = f" toolUseId={event.tool_result_input_configuration.tool_use_id}" if (
            event.tool_result_input_configuration is not None) else ""
        return (f"{name} {_v(event.type)}/{_v(event.role)} interactive={str(event.interactive).lower()}"
                f" contentName={event.content_name}{extra}")
    if isinstance(event, TextInput):
        return f"{name} contentName={event.content_name} {shorten(event.content)}"
    if isinstance(event, ToolResult):
        return f"{name} contentName={event.content_name} {shorten(event.content)}"
    if isinstance(event, AudioInput):
        return f"{name} contentName={event.content_name} ({event.pcm_len} bytes)"
    if isinstance(event, PromptStart):
        tools = [t.tool_spec.name for t in (event.tool_configuration.tools if event.tool_configuration else [])]
        voice = event.audio_output_configuration.voice_id
        return f"{name} promptName={event.prompt_name} voice={voice} tools={tools}"
    if isinstance(event, SessionStart):
        return f"{name}"
    if isinstance(event, OutputContentStart):
        stage = event.generation_stage
        return f"{name} {_v(event.type)}/{_v(event.role)}" + (f" {stage}" if stage else "")
    if isinstance(event, OutputContentEnd):
        return f"{name} {_v(event.type)} {_v(event.stop_reason)}"
    if isinstance(event, TextOutput):
        return f"{name} {_v(event.role)} {shorten(event.content)}"
    if isinstance(event, ToolUse):
        return f"{name} {event.tool_name} toolUseId={event.tool_use_id}"
    prompt = getattr(event, "prompt_name", None)
    content = getattr(event, "content_name", None)
    parts = [name]
    if content is not None:
        parts.append(f"contentName={content}")
    elif prompt is not None and isinstance(event, InputEvent):
        parts.append(f"promptName={prompt}")
    return " ".join(parts)


def describe_record(record: Record) -> str:
    """A record as the reader of a report needs it (kind, event, line)."""
    if isinstance(record, ClientEventRecord | ServerEventRecord):
        text = describe_event(record.event)
        if isinstance(record, ClientEventRecord) and record.verdict:
            text += f" (rejected: {record.verdict})"
        return text
    if isinstance(record, AudioOutRecord):
        return f"audioOutput ×{record.n_chunks} ({record.duration_ms:.0f} ms)"
    if isinstance(record, AudioInRecord):
        return f"audioInput ×{record.n_frames} ({record.duration_ms:.0f} ms)"
    if isinstance(record, ExceptionRecord):
        via = {"stream": "in-stream exception", "error": "error frame", "http": f"HTTP {record.status or ''}".strip()}
        return f"{via[record.via]} {record.name}"
    if isinstance(record, TransportRecord):
        return f"transport {record.action}" + (f" {record.code}" if record.code is not None else "")
    return type(record).__name__


def event_json(event: InputEvent | OutputEvent, limit: int = 300) -> str:
    """The event's wire JSON, shortened (audio content is left out)."""
    d = event.to_dict()
    if "content" in d and isinstance(event, AudioInput):
        d["content"] = f"<{event.pcm_len} bytes>"
    text = json.dumps({event.EVENT_NAME or "event": d}, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"
