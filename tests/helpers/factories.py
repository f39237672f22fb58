"""Small factories for typed Nova Sonic events, for tests.

Input factories return one event, or a list for a whole block (start, inputs, end). Output
factories take the ids as keywords with fixed defaults, so a test only names what it cares about.
Everything returned is a typed model from ``novasonic.events``.
"""

from __future__ import annotations

import json
from typing import Any

from novasonic.events import (
    AudioInput,
    AudioOutput,
    CompletionEnd,
    CompletionStart,
    ContentEnd,
    ContentStart,
    EndpointingSensitivity,
    InferenceConfiguration,
    InputEvent,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    PromptEnd,
    PromptStart,
    Role,
    SessionEnd,
    SessionStart,
    TextInput,
    TextOutput,
    Tool,
    ToolChoice,
    ToolConfiguration,
    ToolResult,
    ToolUse,
    TurnDetectionConfiguration,
    UsageEvent,
    UserSpeechEnd,
    UserSpeechStart,
    parse_output,
)
from novasonic.events.input import AudioOutputConfiguration, TextOutputConfiguration, ToolUseOutputConfiguration

PROMPT = "p1"
SESSION_ID = "s-1"
COMPLETION_ID = "c-1"

# --- input ---------------------------------------------------------------------------------------


def session_start(*, nested: str | None = None, flat: str | None = None) -> SessionStart:
    """sessionStart with the sample inference values; ``nested`` / ``flat`` set the endpointing form."""
    return SessionStart(
        inference_configuration=InferenceConfiguration(max_tokens=1024, top_p=0.9, temperature=0.7),
        turn_detection_configuration=(
            TurnDetectionConfiguration(endpointing_sensitivity=EndpointingSensitivity(nested)) if nested else None
        ),
        endpointing_sensitivity=EndpointingSensitivity(flat) if flat else None,
    )


def tool(name: str = "getDateTool", schema: dict[str, Any] | str | None = None, description: str = "a tool") -> Tool:
    """A tool; ``schema`` may be a dict (encoded) or the raw inputSchema.json string."""
    if isinstance(schema, str):
        return Tool.model_validate(
            {"toolSpec": {"name": name, "description": description, "inputSchema": {"json": schema}}}
        )
    return Tool.define(name, description, schema)


def prompt_start(
    prompt_name: str = PROMPT,
    *,
    voice: str | None = "matthew",
    tools: list[Tool] | None = None,
    tool_choice: ToolChoice | None = None,
    sample_rate: int = 24000,
) -> PromptStart:
    return PromptStart(
        prompt_name=prompt_name,
        text_output_configuration=TextOutputConfiguration(),
        audio_output_configuration=AudioOutputConfiguration(sample_rate_hertz=sample_rate, voice_id=voice),
        tool_use_output_configuration=ToolUseOutputConfiguration(),
        tool_configuration=ToolConfiguration(tools=tools, tool_choice=tool_choice) if tools is not None else None,
    )


def text_start(content_name: str, role: Role | str, *, interactive: bool = False, prompt_name: str = PROMPT) -> ContentStart:
    return ContentStart.text(prompt_name, content_name, Role(role), interactive=interactive)


def text_input(content_name: str, text: str, *, prompt_name: str = PROMPT) -> TextInput:
    return TextInput(prompt_name=prompt_name, content_name=content_name, content=text)


def content_end(content_name: str, *, prompt_name: str = PROMPT) -> ContentEnd:
    return ContentEnd(prompt_name=prompt_name, content_name=content_name)


def text_block(content_name: str, role: Role | str, *texts: str, interactive: bool = False,
               prompt_name: str = PROMPT) -> list[InputEvent]:
    return [
        text_start(content_name, role, interactive=interactive, prompt_name=prompt_name),
        *(text_input(content_name, t, prompt_name=prompt_name) for t in texts),
        content_end(content_name, prompt_name=prompt_name),
    ]


def system_block(text: str = "You are a friendly assistant.", *, content_name: str = "sys",
                 interactive: bool = False, prompt_name: str = PROMPT) -> list[InputEvent]:
    return text_block(content_name, Role.SYSTEM, text, interactive=interactive, prompt_name=prompt_name)


def history_block(content_name: str, role: Role | str, *texts: str, prompt_name: str = PROMPT) -> list[InputEvent]:
    return text_block(content_name, role, *texts, prompt_name=prompt_name)


def interactive_text_block(content_name: str, text: str, *, prompt_name: str = PROMPT) -> list[InputEvent]:
    return text_block(content_name, Role.USER, text, interactive=True, prompt_name=prompt_name)


def audio_start(content_name: str = "mic", *, sample_rate: int = 16000, prompt_name: str = PROMPT) -> ContentStart:
    return ContentStart.audio(prompt_name, content_name, sample_rate_hertz=sample_rate)


def audio_input(content_name: str = "mic", *, ms: float = 32, sample_rate: int = 16000,
                prompt_name: str = PROMPT) -> AudioInput:
    """``ms`` of 16-bit silence at ``sample_rate``."""
    n = int(sample_rate * ms / 1000) * 2
    return AudioInput.from_pcm(prompt_name, content_name, b"\x00" * n)


def audio_frames(content_name: str = "mic", *, count: int = 3, ms: float = 32, sample_rate: int = 16000,
                 prompt_name: str = PROMPT) -> list[InputEvent]:
    return [audio_input(content_name, ms=ms, sample_rate=sample_rate, prompt_name=prompt_name) for _ in range(count)]


def tool_result_start(content_name: str, tool_use_id: str, *, prompt_name: str = PROMPT) -> ContentStart:
    return ContentStart.tool_result(prompt_name, content_name, tool_use_id)


def tool_result(content_name: str, content: Any = None, *, prompt_name: str = PROMPT) -> ToolResult:
    """``content``: a str is sent as is, anything else JSON-encoded (default ``{"ok": true}``)."""
    if content is None:
        content = {"ok": True}
    if not isinstance(content, str):
        content = json.dumps(content)
    return ToolResult(prompt_name=prompt_name, content_name=content_name, content=content)


def tool_result_block(content_name: str, tool_use_id: str, content: Any = None, *,
                      prompt_name: str = PROMPT) -> list[InputEvent]:
    return [
        tool_result_start(content_name, tool_use_id, prompt_name=prompt_name),
        tool_result(content_name, content, prompt_name=prompt_name),
        content_end(content_name, prompt_name=prompt_name),
    ]


def prompt_end(prompt_name: str = PROMPT) -> PromptEnd:
    return PromptEnd(prompt_name=prompt_name)


def session_end() -> SessionEnd:
    return SessionEnd()


# --- output --------------------------------------------------------------------------------------


def _ids(**over: Any) -> dict[str, Any]:
    ids = {"prompt_name": PROMPT, "session_id": SESSION_ID, "completion_id": COMPLETION_ID}
    ids.update(over)
    return ids


def completion_start(**ids: Any) -> CompletionStart:
    return CompletionStart(**_ids(**ids))


def completion_end(stop_reason: str = "END_TURN", **ids: Any) -> CompletionEnd:
    return CompletionEnd(stop_reason=stop_reason, **_ids(**ids))


def user_speech_start(offset_ms: int = 0) -> UserSpeechStart:
    return UserSpeechStart(prompt_name=PROMPT, session_id=SESSION_ID, input_audio_offset_ms=offset_ms)


def user_speech_end(offset_ms: int, detection_offset_ms: int | None = None) -> UserSpeechEnd:
    return UserSpeechEnd(
        prompt_name=PROMPT, session_id=SESSION_ID, input_audio_offset_ms=offset_ms,
        input_audio_detection_offset_ms=detection_offset_ms if detection_offset_ms is not None else offset_ms + 480,
    )


def out_text_block(content_id: str, role: str, stage: str | None, *texts: str, stop: str = "PARTIAL_TURN",
                   **ids: Any) -> list[OutputEvent]:
    """cs(TEXT role stage) → textOutput × len(texts) → ce(stop)."""
    start = OutputContentStart(
        additional_model_fields=json.dumps({"generationStage": stage}, separators=(",", ":")) if stage else None,
        content_id=content_id, role=role, type="TEXT",
        text_output_configuration={"mediaType": "text/plain"}, **_ids(**ids),
    )
    body = [TextOutput(content=t, content_id=content_id, role=role, **_ids(**ids)) for t in texts]
    end = OutputContentEnd(content_id=content_id, stop_reason=stop, type="TEXT", **_ids(**ids))
    return [start, *body, end]


def out_audio_start(content_id: str, *, sample_rate: int = 16000, **ids: Any) -> OutputContentStart:
    return OutputContentStart(
        content_id=content_id, role="ASSISTANT", type="AUDIO",
        audio_output_configuration={"sampleRateHertz": sample_rate}, **_ids(**ids),
    )


def out_audio(content_id: str, n_bytes: int, **ids: Any) -> AudioOutput:
    return AudioOutput.from_pcm(b"\x00" * n_bytes, content_id=content_id, **_ids(**ids))


def out_content_end(content_id: str, type_: str, stop: str = "PARTIAL_TURN", **ids: Any) -> OutputContentEnd:
    return OutputContentEnd(content_id=content_id, stop_reason=stop, type=type_, **_ids(**ids))


def out_audio_block(content_id: str, *chunks: int, stop: str = "PARTIAL_TURN", sample_rate: int = 16000,
                    **ids: Any) -> list[OutputEvent]:
    return [
        out_audio_start(content_id, sample_rate=sample_rate, **ids),
        *(out_audio(content_id, n, **ids) for n in chunks),
        out_content_end(content_id, "AUDIO", stop, **ids),
    ]


def out_tool_use(content_id: str, tool_use_id: str, name: str, arguments: Any, **ids: Any) -> ToolUse:
    content = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolUse(content=content, content_id=content_id, tool_name=name, tool_use_id=tool_use_id, **_ids(**ids))


def out_tool_block(content_id: str, tool_use_id: str, name: str, arguments: Any, **ids: Any) -> list[OutputEvent]:
    start = OutputContentStart(
        content_id=content_id, role="TOOL", type="TOOL",
        tool_use_output_configuration={"mediaType": "application/json"}, **_ids(**ids),
    )
    return [start, out_tool_use(content_id, tool_use_id, name, arguments, **ids),
            out_content_end(content_id, "TOOL", "TOOL_USE", **ids)]


def usage_event(*, in_text: int = 0, in_speech: int = 0, out_text: int = 0, out_speech: int = 0,
                total: tuple[int, int, int, int] | None = None, **ids: Any) -> UsageEvent:
    """A usageEvent with the given delta; ``total`` = (in_speech, in_text, out_speech, out_text)."""
    t = total or (in_speech, in_text, out_speech, out_text)
    details = {
        "delta": {"input": {"speechTokens": in_speech, "textTokens": in_text},
                  "output": {"speechTokens": out_speech, "textTokens": out_text}},
        "total": {"input": {"speechTokens": t[0], "textTokens": t[1]},
                  "output": {"speechTokens": t[2], "textTokens": t[3]}},
    }
    return UsageEvent(
        details=details, total_input_tokens=t[0] + t[1], total_output_tokens=t[2] + t[3],
        total_tokens=sum(t), **_ids(**ids),
    )


def unknown_output(name: str = "somethingNew", payload: dict[str, Any] | None = None) -> OutputEvent:
    return parse_output({"event": {name: payload or {"x": 1}}})
