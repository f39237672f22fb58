"""novasonic.events: typed input/output events, parsers and helpers (protocol.md §1, §2).

Input events are strict (the service rejects what it does not know, §1.1); output events are
tolerant (the service adds events and fields without notice, §2.1).
"""

from __future__ import annotations

import base64
import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import novasonic.events as ev
from novasonic.errors import EventDecodeError, EventError, EventValidationError
from novasonic.events import (
    BARGE_IN_TEXT,
    INPUT_EVENTS,
    OUTPUT_EVENTS,
    AudioInput,
    AudioOutput,
    CompletionEnd,
    CompletionStart,
    ContentEnd,
    ContentStart,
    ContentType,
    EndpointingSensitivity,
    GenerationStage,
    InferenceConfiguration,
    InputEvent,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    PromptEnd,
    PromptStart,
    Role,
    SampleRate,
    SessionEnd,
    SessionStart,
    StopReason,
    TextInput,
    TextOutput,
    Tool,
    ToolChoice,
    ToolResult,
    ToolUse,
    UnknownOutputEvent,
    UsageEvent,
    UserSpeechEnd,
    UserSpeechStart,
    decode_tool_arguments,
    is_barge_in,
    parse_input,
    parse_output,
)
from novasonic.events.audio import b64_decoded_len, b64_to_pcm, describe_b64_audio, pcm_duration_ms, pcm_to_b64

# --- samples: one wire document per input event variant (protocol.md §1) ----------------------------

SCHEMA = json.dumps({"type": "object", "properties": {}, "required": []}, separators=(",", ":"))
PCM = bytes(range(256)) * 4  # 1024 bytes = 32 ms at 16 kHz
PCM_B64 = base64.b64encode(PCM).decode()

INPUT_SAMPLES: dict[str, tuple[type[InputEvent], dict[str, Any]]] = {
    "sessionStart-nested": (SessionStart, {"sessionStart": {
        "inferenceConfiguration": {"maxTokens": 1024, "topP": 0.9, "temperature": 0.7},
        "turnDetectionConfiguration": {"endpointingSensitivity": "MEDIUM"}}}),
    "sessionStart-flat": (SessionStart, {"sessionStart": {
        "inferenceConfiguration": {"maxTokens": 1024, "topP": 0.9, "temperature": 0.7},
        "endpointingSensitivity": "HIGH"}}),
    "sessionStart-empty": (SessionStart, {"sessionStart": {}}),
    "promptStart": (PromptStart, {"promptStart": {
        "promptName": "6544ae5b-33e2-4c92-8f3c-1725c81846ac",
        "textOutputConfiguration": {"mediaType": "text/plain"},
        "audioOutputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 24000, "sampleSizeBits": 16,
                                     "channelCount": 1, "voiceId": "matthew", "encoding": "base64",
                                     "audioType": "SPEECH"},
        "toolUseOutputConfiguration": {"mediaType": "application/json"},
        "toolConfiguration": {"tools": [{"toolSpec": {"name": "getDateTool", "description": "Get date",
                                                      "inputSchema": {"json": SCHEMA}}}],
                              "toolChoice": {"auto": {}}}}}),
    "promptStart-minimal": (PromptStart, {"promptStart": {
        "promptName": "P",
        "audioOutputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16,
                                     "channelCount": 1, "voiceId": "tiffany", "encoding": "base64",
                                     "audioType": "SPEECH"}}}),
    "contentStart-system": (ContentStart, {"contentStart": {
        "promptName": "P", "contentName": "C1", "type": "TEXT", "interactive": False, "role": "SYSTEM",
        "textInputConfiguration": {"mediaType": "text/plain"}}}),
    "contentStart-history": (ContentStart, {"contentStart": {
        "promptName": "P", "contentName": "C2", "type": "TEXT", "interactive": False, "role": "ASSISTANT",
        "textInputConfiguration": {"mediaType": "text/plain"}}}),
    "contentStart-interactive": (ContentStart, {"contentStart": {
        "promptName": "P", "contentName": "C7", "type": "TEXT", "interactive": True, "role": "USER",
        "textInputConfiguration": {"mediaType": "text/plain"}}}),
    "contentStart-audio": (ContentStart, {"contentStart": {
        "promptName": "P", "contentName": "A1", "type": "AUDIO", "interactive": True, "role": "USER",
        "audioInputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16,
                                    "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"}}}),
    "contentStart-tool": (ContentStart, {"contentStart": {
        "promptName": "P", "contentName": "T1", "type": "TOOL", "interactive": False, "role": "TOOL",
        "toolResultInputConfiguration": {"toolUseId": "fb0a993c-6798-4574-ade9-077667ec3336", "type": "TEXT",
                                         "textInputConfiguration": {"mediaType": "text/plain"}}}}),
    "textInput": (TextInput, {"textInput": {"promptName": "P", "contentName": "C1",
                                            "content": "You are a friendly assistant. Ünïcödé ✓ 한국어"}}),
    "audioInput": (AudioInput, {"audioInput": {"promptName": "P", "contentName": "A1", "content": PCM_B64}}),
    "toolResult": (ToolResult, {"toolResult": {"promptName": "P", "contentName": "T1",
                                               "content": "{\"date\":\"2025-07-15\"}"}}),
    "contentEnd": (ContentEnd, {"contentEnd": {"promptName": "P", "contentName": "A1"}}),
    "promptEnd": (PromptEnd, {"promptEnd": {"promptName": "P"}}),
    "sessionEnd": (SessionEnd, {"sessionEnd": {}}),
}

IDS = {"completionId": "05fa5ec3-418b-4a50-a1e7-b7bbb1022f0b", "promptName": "3812a285-a99f-44f0-8ab6-a34b03c43c92",
       "sessionId": "6f78c3e2-bb09-4c01-aae8-cb95a17565cd"}
NO_COMPLETION = {k: v for k, v in IDS.items() if k != "completionId"}

OUTPUT_SAMPLES: dict[str, tuple[type[OutputEvent], dict[str, Any]]] = {
    "completionStart": (CompletionStart, {"completionStart": dict(IDS)}),
    "userSpeechStart": (UserSpeechStart, {"userSpeechStart": {"inputAudioOffsetMs": 0, **NO_COMPLETION}}),
    "userSpeechEnd": (UserSpeechEnd, {"userSpeechEnd": {"inputAudioDetectionOffsetMs": 2400,
                                                        "inputAudioOffsetMs": 1920, **NO_COMPLETION}}),
    "contentStart-text": (OutputContentStart, {"contentStart": {
        "additionalModelFields": "{\"generationStage\":\"FINAL\"}", **IDS, "contentId": "c-1", "role": "USER",
        "textOutputConfiguration": {"mediaType": "text/plain"}, "type": "TEXT"}}),
    "contentStart-audio": (OutputContentStart, {"contentStart": {
        "audioOutputConfiguration": {"channelCount": 1, "encoding": "base64", "mediaType": "audio/lpcm",
                                     "sampleRateHertz": 16000, "sampleSizeBits": 16},
        **IDS, "contentId": "c-2", "role": "ASSISTANT", "type": "AUDIO"}}),
    "contentStart-tool": (OutputContentStart, {"contentStart": {
        **IDS, "contentId": "c-3", "role": "TOOL", "toolUseOutputConfiguration": {"mediaType": "application/json"},
        "type": "TOOL"}}),
    "textOutput": (TextOutput, {"textOutput": {**IDS, "content": "That’s a great routine.", "contentId": "c-1",
                                               "role": "ASSISTANT"}}),
    "audioOutput": (AudioOutput, {"audioOutput": {**IDS, "content": PCM_B64, "contentId": "c-2",
                                                  "role": "ASSISTANT"}}),
    "toolUse": (ToolUse, {"toolUse": {**IDS, "content": "{\"target_form\":\"x\",\"outcome\":\"pending\"}",
                                      "contentId": "c-3", "role": "TOOL", "toolName": "report",
                                      "toolUseId": "fb0a993c-6798-4574-ade9-077667ec3336"}}),
    "contentEnd": (OutputContentEnd, {"contentEnd": {**IDS, "contentId": "c-3", "stopReason": "TOOL_USE",
                                                     "type": "TOOL"}}),
    "completionEnd": (CompletionEnd, {"completionEnd": {**IDS, "stopReason": "END_TURN"}}),
    "usageEvent": (UsageEvent, {"usageEvent": {**IDS, "details": {
        "delta": {"input": {"speechTokens": 0, "textTokens": 22}, "output": {"speechTokens": 0, "textTokens": 0}},
        "total": {"input": {"speechTokens": 0, "textTokens": 22}, "output": {"speechTokens": 0, "textTokens": 0}}},
        "totalInputTokens": 22, "totalOutputTokens": 0, "totalTokens": 22}}),
}


def envelope(doc: dict[str, Any]) -> dict[str, Any]:
    return {"event": doc}


def compact(obj: Any, *, sort_keys: bool = False) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def with_change(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy of ``doc`` (``{"name": {...}}``) with ``value`` set at dotted ``path`` below the event
    name (``audioOutputConfiguration.sampleRateHertz``, ``toolConfiguration.tools.0.toolSpec.x``).
    ``value is DELETE`` removes the key."""
    doc = copy.deepcopy(doc)
    ((_, node),) = doc.items()
    *parents, last = path.split(".")
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()


def validation_error(doc: dict[str, Any]) -> EventValidationError:
    with pytest.raises(EventValidationError) as info:
        parse_input(envelope(doc))
    return info.value


# --- both directions: the three accepted data forms, compact JSON, round trips -----------------------


@pytest.mark.parametrize("key", INPUT_SAMPLES)
def test_input_event_parses_from_bytes_str_and_mapping(key: str) -> None:
    cls, doc = INPUT_SAMPLES[key]
    text = json.dumps(envelope(doc), ensure_ascii=False, indent=2)  # whitespace and key order do not matter
    from_str = parse_input(text)
    from_bytes = parse_input(text.encode("utf-8"))
    from_bytearray = parse_input(bytearray(text.encode("utf-8")))
    from_memoryview = parse_input(memoryview(text.encode("utf-8")))
    from_mapping = parse_input(envelope(doc))
    assert type(from_str) is cls
    assert from_str == from_bytes == from_bytearray == from_memoryview == from_mapping
    assert from_str.EVENT_NAME == next(iter(doc))
    assert INPUT_EVENTS[from_str.EVENT_NAME] is cls


@pytest.mark.parametrize("key", INPUT_SAMPLES)
def test_input_event_to_json_is_compact_and_round_trips(key: str) -> None:
    _, doc = INPUT_SAMPLES[key]
    event = parse_input(envelope(doc))
    raw = event.to_json()
    assert raw == compact(json.loads(raw))  # compact: no spaces after separators
    assert json.loads(raw) == envelope(doc)  # JSON-equivalent to what was parsed (samples are complete)
    assert event.to_bytes() == raw.encode("utf-8")
    assert event.to_envelope() == envelope(doc)
    assert parse_input(raw) == event
    assert parse_input(event.to_bytes()) == event


def test_input_json_keeps_non_ascii_text_literally() -> None:
    _, doc = INPUT_SAMPLES["textInput"]
    raw = parse_input(envelope(doc)).to_json()
    assert "한국어" in raw and "\\u" not in raw


@pytest.mark.parametrize("key", OUTPUT_SAMPLES)
def test_output_event_parses_from_bytes_str_mapping_and_bare_form(key: str) -> None:
    cls, doc = OUTPUT_SAMPLES[key]
    text = json.dumps(envelope(doc), ensure_ascii=False)
    parsed = [
        parse_output(text),
        parse_output(text.encode("utf-8")),
        parse_output(envelope(doc)),
        parse_output(doc),  # the bare {"<name>": {...}} form of capture logs
        parse_output(json.dumps(doc)),
    ]
    assert all(type(p) is cls for p in parsed)
    assert all(p == parsed[0] for p in parsed)
    assert OUTPUT_EVENTS[parsed[0].EVENT_NAME] is cls


@pytest.mark.parametrize("key", OUTPUT_SAMPLES)
def test_output_event_to_json_is_compact_sorted_and_round_trips(key: str) -> None:
    _, doc = OUTPUT_SAMPLES[key]
    event = parse_output(envelope(doc))
    raw = event.to_json()
    # the raw string itself is compact with sorted keys, as the service sends it (protocol.md §2.0)
    assert raw == compact(envelope(doc), sort_keys=True)
    assert raw == compact(json.loads(raw), sort_keys=True)
    assert json.loads(raw) == envelope(doc)
    assert parse_output(raw) == event


def test_output_to_json_sorts_keys_at_every_level() -> None:
    event = parse_output(envelope(OUTPUT_SAMPLES["usageEvent"][1]))
    raw = event.to_json()
    assert raw.index('"completionId"') < raw.index('"details"') < raw.index('"promptName"') < raw.index('"totalTokens"')
    assert raw.index('"delta"') < raw.index('"total"')
    assert raw.index('"speechTokens"') < raw.index('"textTokens"')


# --- input strictness ------------------------------------------------------------------------------

UNKNOWN_FIELD_CASES = [
    ("sessionStart-nested", "foo", "event.sessionStart.foo"),
    ("sessionStart-nested", "inferenceConfiguration.foo", "event.sessionStart.inferenceConfiguration.foo"),
    ("sessionStart-nested", "turnDetectionConfiguration.foo",
     "event.sessionStart.turnDetectionConfiguration.foo"),
    ("promptStart", "foo", "event.promptStart.foo"),
    ("promptStart", "textOutputConfiguration.foo", "event.promptStart.textOutputConfiguration.foo"),
    ("promptStart", "audioOutputConfiguration.foo", "event.promptStart.audioOutputConfiguration.foo"),
    ("promptStart", "toolUseOutputConfiguration.foo", "event.promptStart.toolUseOutputConfiguration.foo"),
    ("promptStart", "toolConfiguration.foo", "event.promptStart.toolConfiguration.foo"),
    ("promptStart", "toolConfiguration.tools.0.foo", "event.promptStart.toolConfiguration.tools.0.foo"),
    ("promptStart", "toolConfiguration.tools.0.toolSpec.foo",
     "event.promptStart.toolConfiguration.tools.0.toolSpec.foo"),
    ("promptStart", "toolConfiguration.tools.0.toolSpec.inputSchema.foo",
     "event.promptStart.toolConfiguration.tools.0.toolSpec.inputSchema.foo"),
    ("promptStart", "toolConfiguration.toolChoice.foo", "event.promptStart.toolConfiguration.toolChoice.foo"),
    ("contentStart-system", "foo", "event.contentStart.foo"),
    ("contentStart-system", "textInputConfiguration.foo", "event.contentStart.textInputConfiguration.foo"),
    ("contentStart-audio", "audioInputConfiguration.foo", "event.contentStart.audioInputConfiguration.foo"),
    ("contentStart-tool", "toolResultInputConfiguration.foo",
     "event.contentStart.toolResultInputConfiguration.foo"),
    ("contentStart-tool", "toolResultInputConfiguration.textInputConfiguration.foo",
     "event.contentStart.toolResultInputConfiguration.textInputConfiguration.foo"),
    ("textInput", "foo", "event.textInput.foo"),
    ("audioInput", "foo", "event.audioInput.foo"),
    ("toolResult", "foo", "event.toolResult.foo"),
    ("contentEnd", "foo", "event.contentEnd.foo"),
    ("promptEnd", "foo", "event.promptEnd.foo"),
    ("sessionEnd", "foo", "event.sessionEnd.foo"),
    # snake_case spellings are not the wire names: unknown on the wire (the models accept them only
    # when built from Python)
    ("promptEnd", "prompt_name", "event.promptEnd.prompt_name"),
    ("promptStart", "toolConfiguration.tools.0.toolSpec.inputSchema.json_schema",
     "event.promptStart.toolConfiguration.tools.0.toolSpec.inputSchema.json_schema"),
]


@pytest.mark.parametrize(("key", "path", "location"), UNKNOWN_FIELD_CASES)
def test_input_unknown_field_anywhere_names_its_location(key: str, path: str, location: str) -> None:
    _, doc = INPUT_SAMPLES[key]
    exc = validation_error(with_change(doc, path, "x"))
    assert f"{location}: unknown field" in str(exc)
    assert (location, "unknown field") in exc.errors
    assert exc.event_name == next(iter(doc))
    assert isinstance(exc, EventError) and isinstance(exc, ValueError)


def test_snake_case_spelling_is_rejected_even_when_it_is_the_only_spelling() -> None:
    exc = validation_error({"promptEnd": {"prompt_name": "P"}})
    assert ("event.promptEnd.promptName", "Field required") in exc.errors
    assert ("event.promptEnd.prompt_name", "unknown field") in exc.errors
    # Python construction by field name still works
    assert PromptEnd(prompt_name="P").to_json() == '{"event":{"promptEnd":{"promptName":"P"}}}'


COERCION_CASES = [
    ("contentStart-system", "interactive", "true"),
    ("contentStart-system", "interactive", 1),
    ("contentStart-audio", "audioInputConfiguration.sampleRateHertz", "16000"),
    ("contentStart-audio", "audioInputConfiguration.sampleRateHertz", 16000.0),
    ("contentStart-audio", "audioInputConfiguration.sampleRateHertz", True),
    ("promptStart", "audioOutputConfiguration.sampleRateHertz", "24000"),
    ("promptStart", "audioOutputConfiguration.sampleRateHertz", 24000.0),
    ("promptStart", "audioOutputConfiguration.sampleSizeBits", "16"),
    ("promptStart", "audioOutputConfiguration.channelCount", True),
    ("promptStart", "audioOutputConfiguration.sampleSizeBits", 16.0),
    ("contentStart-audio", "audioInputConfiguration.channelCount", 1.0),
    ("sessionStart-nested", "inferenceConfiguration.maxTokens", "1024"),
    ("sessionStart-nested", "inferenceConfiguration.maxTokens", 1024.0),
    ("sessionStart-nested", "inferenceConfiguration.maxTokens", True),
    ("sessionStart-nested", "inferenceConfiguration.topP", "0.9"),
    ("sessionStart-nested", "inferenceConfiguration.temperature", True),
    ("textInput", "content", 5),
    ("textInput", "promptName", 5),
    ("toolResult", "content", {"date": "2025-07-15"}),  # must be a JSON *string*
    ("contentStart-system", "role", 1),
    ("contentStart-system", "type", ["TEXT"]),
    ("promptStart", "toolConfiguration.tools.0.toolSpec.inputSchema.json", {"type": "object"}),  # §1.2 object form
]


@pytest.mark.parametrize(("key", "path", "value"), COERCION_CASES)
def test_input_refuses_type_coercion(key: str, path: str, value: Any) -> None:
    _, doc = INPUT_SAMPLES[key]
    exc = validation_error(with_change(doc, path, value))
    location = f"event.{next(iter(doc))}.{path}"
    assert any(loc == location for loc, _ in exc.errors), exc.errors


def test_integer_valued_float_accepted_for_unit_interval_but_not_for_integers() -> None:
    # JSON numbers 1 and 0 are valid topP/temperature (floats accept integers); integers refuse floats.
    _, doc = INPUT_SAMPLES["sessionStart-nested"]
    event = parse_input(envelope(with_change(doc, "inferenceConfiguration.topP", 1)))
    assert event.inference_configuration.top_p == 1.0
    validation_error(with_change(doc, "inferenceConfiguration.maxTokens", 1.5))


VALUE_CASES_REJECTED = [
    ("contentStart-audio", "audioInputConfiguration.sampleRateHertz", 44100),
    ("contentStart-audio", "audioInputConfiguration.sampleRateHertz", 0),
    ("promptStart", "audioOutputConfiguration.sampleRateHertz", 22050),
    ("promptStart", "audioOutputConfiguration.sampleSizeBits", 8),
    ("promptStart", "audioOutputConfiguration.channelCount", 2),
    ("promptStart", "audioOutputConfiguration.mediaType", "audio/wav"),
    ("promptStart", "audioOutputConfiguration.encoding", "hex"),
    ("promptStart", "audioOutputConfiguration.audioType", "MUSIC"),
    ("promptStart", "textOutputConfiguration.mediaType", "text/html"),
    ("promptStart", "toolUseOutputConfiguration.mediaType", "text/plain"),
    ("promptStart", "promptName", ""),
    ("promptStart", "toolConfiguration.tools.0.toolSpec.name", ""),
    ("sessionStart-nested", "inferenceConfiguration.topP", 1.01),
    ("sessionStart-nested", "inferenceConfiguration.topP", -0.1),
    ("sessionStart-nested", "inferenceConfiguration.temperature", 1.5),
    ("sessionStart-nested", "inferenceConfiguration.temperature", -1),
    ("sessionStart-nested", "inferenceConfiguration.temperature", float("nan")),
    ("sessionStart-nested", "inferenceConfiguration.topP", float("inf")),
    ("sessionStart-nested", "inferenceConfiguration.maxTokens", 0),
    ("sessionStart-nested", "inferenceConfiguration.maxTokens", -1),
    ("sessionStart-nested", "turnDetectionConfiguration.endpointingSensitivity", "medium"),
    ("sessionStart-nested", "turnDetectionConfiguration.endpointingSensitivity", "VERY_HIGH"),
    ("sessionStart-flat", "endpointingSensitivity", "LOWEST"),
    ("contentStart-system", "role", "user"),
    ("contentStart-system", "role", "BOT"),
    ("contentStart-system", "role", "SYSTEM_SPEECH"),  # UNK in the spec; not accepted
    ("contentStart-system", "type", "VIDEO"),
    ("contentStart-system", "contentName", ""),
    ("contentStart-tool", "toolResultInputConfiguration.type", "JSON"),
    ("contentStart-tool", "toolResultInputConfiguration.toolUseId", ""),
    ("textInput", "contentName", ""),
]


@pytest.mark.parametrize(("key", "path", "value"), VALUE_CASES_REJECTED)
def test_input_value_sets_and_ranges_rejected(key: str, path: str, value: Any) -> None:
    _, doc = INPUT_SAMPLES[key]
    exc = validation_error(with_change(doc, path, value))
    location = f"event.{next(iter(doc))}.{path}"
    assert any(loc == location for loc, _ in exc.errors), exc.errors


VALUE_CASES_ACCEPTED = [
    *[("contentStart-audio", "audioInputConfiguration.sampleRateHertz", r) for r in (8000, 16000, 24000)],
    *[("promptStart", "audioOutputConfiguration.sampleRateHertz", r) for r in (8000, 16000, 24000)],
    *[("sessionStart-nested", "inferenceConfiguration.topP", v) for v in (0, 0.0, 0.5, 1.0)],
    *[("sessionStart-nested", "inferenceConfiguration.temperature", v) for v in (0, 1, 0.7)],
    *[("sessionStart-nested", "inferenceConfiguration.maxTokens", v) for v in (1, 1024, 100_000)],
    *[("sessionStart-nested", "turnDetectionConfiguration.endpointingSensitivity", v) for v in ("HIGH", "MEDIUM", "LOW")],
    *[("sessionStart-flat", "endpointingSensitivity", v) for v in ("HIGH", "MEDIUM", "LOW")],
    *[("contentStart-system", "role", r) for r in ("SYSTEM", "USER", "ASSISTANT", "TOOL")],
    ("contentStart-system", "interactive", True),  # the AWS Node sample does it (§1.3a)
    ("promptStart", "audioOutputConfiguration.voiceId", ""),  # the rules answer with the service's text
    ("promptStart", "audioOutputConfiguration.voiceId", DELETE),
    ("textInput", "content", ""),
]


@pytest.mark.parametrize(("key", "path", "value"), VALUE_CASES_ACCEPTED)
def test_input_value_sets_and_ranges_accepted(key: str, path: str, value: Any) -> None:
    _, doc = INPUT_SAMPLES[key]
    changed = with_change(doc, path, value)
    event = parse_input(envelope(changed))
    assert json.loads(event.to_json()) == envelope(changed)


def test_enum_fields_parse_to_enum_members() -> None:
    e = parse_input(envelope(INPUT_SAMPLES["contentStart-audio"][1]))
    assert e.type is ContentType.AUDIO and e.role is Role.USER
    assert e.audio_input_configuration.sample_rate_hertz is SampleRate.HZ_16000
    s = parse_input(envelope(INPUT_SAMPLES["sessionStart-nested"][1]))
    assert s.turn_detection_configuration.endpointing_sensitivity is EndpointingSensitivity.MEDIUM


@pytest.mark.parametrize(
    "choice",
    [{}, {"auto": {}, "any": {}}, {"auto": {}, "tool": {"name": "t"}}, {"auto": {"x": 1}}, {"any": {"x": 1}},
     {"tool": {}}, {"tool": {"name": ""}}, {"tool": {"name": "t", "x": 1}}, {"auto": None}],
)
def test_tool_choice_must_be_exactly_one_of_auto_any_tool(choice: dict[str, Any]) -> None:
    _, doc = INPUT_SAMPLES["promptStart"]
    exc = validation_error(with_change(doc, "toolConfiguration.toolChoice", choice))
    assert all(loc.startswith("event.promptStart.toolConfiguration.toolChoice") for loc, _ in exc.errors)


@pytest.mark.parametrize("choice", [{"auto": {}}, {"any": {}}, {"tool": {"name": "getDateTool"}}])
def test_tool_choice_valid_forms(choice: dict[str, Any]) -> None:
    _, doc = INPUT_SAMPLES["promptStart"]
    changed = with_change(doc, "toolConfiguration.toolChoice", choice)
    event = parse_input(envelope(changed))
    assert json.loads(event.to_json()) == envelope(changed)


def test_tool_choice_constructors() -> None:
    assert ToolChoice.auto_().to_dict() == {"auto": {}}
    assert ToolChoice.any_().to_dict() == {"any": {}}
    assert ToolChoice.named("t").to_dict() == {"tool": {"name": "t"}}
    with pytest.raises(ValueError):
        ToolChoice()


def test_tool_define_sends_input_schema_as_a_json_string() -> None:
    tool = Tool.define("lookup", "Look up", {"type": "object", "properties": {"q": {"type": "string"}}})
    spec = tool.to_dict()["toolSpec"]
    assert isinstance(spec["inputSchema"]["json"], str)
    assert json.loads(spec["inputSchema"]["json"])["properties"] == {"q": {"type": "string"}}


@pytest.mark.parametrize(
    ("content_type", "config_key", "config"),
    [
        ("TEXT", "audioInputConfiguration", {}),
        ("TEXT", "toolResultInputConfiguration", {"toolUseId": "t"}),
        ("AUDIO", "textInputConfiguration", {}),
        ("AUDIO", "toolResultInputConfiguration", {"toolUseId": "t"}),
        ("TOOL", "textInputConfiguration", {}),
        ("TOOL", "audioInputConfiguration", {}),
    ],
)
def test_content_start_configuration_must_match_type(content_type: str, config_key: str, config: dict) -> None:
    doc = {"contentStart": {"promptName": "P", "contentName": "C", "type": content_type, "interactive": False,
                            "role": "USER", config_key: config}}
    exc = validation_error(doc)
    assert exc.errors[0][0] == "event.contentStart"
    assert f"contentStart of type {content_type}" in exc.errors[0][1]


def test_content_start_needs_exactly_one_configuration() -> None:
    base = INPUT_SAMPLES["contentStart-system"][1]
    missing = validation_error(with_change(base, "textInputConfiguration", DELETE))
    assert "got none" in str(missing)
    both = validation_error(with_change(base, "audioInputConfiguration", {}))
    assert "audioInputConfiguration" in str(both)


def test_content_start_constructors_match_the_spec_examples() -> None:
    assert ContentStart.text("P", "C1", Role.SYSTEM).to_envelope() == envelope(INPUT_SAMPLES["contentStart-system"][1])
    assert ContentStart.text("P", "C7", Role.USER, interactive=True).to_envelope() == envelope(
        INPUT_SAMPLES["contentStart-interactive"][1])
    assert ContentStart.audio("P", "A1").to_envelope() == envelope(INPUT_SAMPLES["contentStart-audio"][1])
    assert ContentStart.tool_result("P", "T1", "fb0a993c-6798-4574-ade9-077667ec3336").to_envelope() == envelope(
        INPUT_SAMPLES["contentStart-tool"][1])
    assert ContentStart.audio("P", "A", sample_rate_hertz=8000).audio_input_configuration.sample_rate_hertz == 8000


def test_input_defaults_fill_single_valued_members() -> None:
    """Members with one documented value default to it, so what we send is complete."""
    doc = {"contentStart": {"promptName": "P", "contentName": "A1", "type": "AUDIO", "interactive": True,
                            "role": "USER", "audioInputConfiguration": {}}}
    event = parse_input(envelope(doc))
    assert event.to_envelope() == envelope(INPUT_SAMPLES["contentStart-audio"][1])


def test_missing_required_input_member() -> None:
    exc = validation_error({"textInput": {"promptName": "P", "contentName": "C"}})
    assert ("event.textInput.content", "Field required") in exc.errors
    exc = validation_error({"promptStart": {"promptName": "P"}})
    assert any(loc == "event.promptStart.audioOutputConfiguration" for loc, _ in exc.errors)


def test_validation_error_lists_every_problem() -> None:
    exc = validation_error({"textInput": {"promptName": 1, "contentName": "", "content": "x", "foo": 1}})
    locations = {loc for loc, _ in exc.errors}
    assert locations == {"event.textInput.promptName", "event.textInput.contentName", "event.textInput.foo"}
    assert str(exc).startswith("invalid textInput event: ")


# --- envelope shapes ---------------------------------------------------------------------------------

DECODE_ERRORS = [
    b"not json",
    "not json",
    "",
    b"\xff\xfe{}",  # not UTF-8
    '{"event":{"sessionEnd":{}}',  # truncated
    "[]",
    "42",
    '"sessionEnd"',
    "null",
    "{}",  # missing "event"
    '{"sessionEnd":{}}',  # bare form: only parse_output accepts it
    '{"event":{}}',
    '{"event":{"sessionEnd":{},"promptEnd":{"promptName":"P"}}}',  # two events
    '{"event":{"sessionEnd":{}},"extra":1}',  # extra top-level key
    '{"event":[]}',
    '{"event":"sessionEnd"}',
    '{"event":null}',
]


@pytest.mark.parametrize("data", DECODE_ERRORS)
def test_input_decode_errors(data: bytes | str) -> None:
    with pytest.raises(EventDecodeError):
        parse_input(data)


def test_decode_error_for_non_data_argument() -> None:
    with pytest.raises(EventDecodeError):
        parse_input(42)  # type: ignore[arg-type]
    with pytest.raises(EventDecodeError):
        parse_output(None)  # type: ignore[arg-type]


OUTPUT_DECODE_ERRORS = [d for d in DECODE_ERRORS if d != '{"sessionEnd":{}}'] + ['{"a":{},"b":{}}']


@pytest.mark.parametrize("data", OUTPUT_DECODE_ERRORS)
def test_output_decode_errors(data: bytes | str) -> None:
    """Same shapes as for input, except that the bare ``{"<name>": {...}}`` form is accepted."""
    with pytest.raises(EventDecodeError):
        parse_output(data)


def test_decode_error_messages_say_what_is_wrong() -> None:
    with pytest.raises(EventDecodeError, match="not UTF-8"):
        parse_input(b"\xff")
    with pytest.raises(EventDecodeError, match="not JSON"):
        parse_input("{")
    with pytest.raises(EventDecodeError, match='missing top-level "event"'):
        parse_input("{}")
    with pytest.raises(EventDecodeError, match=r"unexpected top-level keys.*extra"):
        parse_input('{"event":{"sessionEnd":{}},"extra":1}')
    with pytest.raises(EventDecodeError, match="exactly one named event"):
        parse_input('{"event":{"a":{},"b":{}}}')


@pytest.mark.parametrize("name", ["connectionEnd", "completionStart", "audioOutput", "SessionEnd", "foo"])
def test_unknown_input_event_name_is_a_validation_error(name: str) -> None:
    with pytest.raises(EventValidationError) as info:
        parse_input({"event": {name: {}}})
    assert info.value.event_name == name
    assert info.value.errors[0][0] == f"event.{name}"
    assert "unknown input event" in str(info.value)


@pytest.mark.parametrize("payload", [[], None, "x", 1])
def test_input_payload_must_be_an_object(payload: Any) -> None:
    with pytest.raises(EventValidationError, match="must be a JSON object"):
        parse_input({"event": {"sessionEnd": payload}})


@pytest.mark.parametrize("payload", [[], None, "x", 1])
def test_known_output_payload_must_be_an_object(payload: Any) -> None:
    with pytest.raises(EventValidationError, match="must be a JSON object"):
        parse_output({"event": {"completionStart": payload}})


# --- output tolerance ---------------------------------------------------------------------------------


def test_unknown_output_event_keeps_raw_payload_and_reserialises() -> None:
    doc = {"event": {"futureEvent": {"b": 1, "a": {"nested": [1, 2, None]}, "c": None}}}
    event = parse_output(json.dumps(doc))
    assert isinstance(event, UnknownOutputEvent)
    assert event.name == "futureEvent"
    assert event.payload == doc["event"]["futureEvent"]
    assert json.loads(event.to_json()) == doc
    assert event.to_json() == compact(doc, sort_keys=True)
    assert parse_output(event.to_json()) == event
    assert parse_output(doc["event"]) == event  # bare form too
    assert not is_barge_in(event)


def test_unknown_output_event_with_non_object_payload() -> None:
    event = parse_output('{"event":{"futureEvent":5}}')
    assert isinstance(event, UnknownOutputEvent) and event.name == "futureEvent"
    assert event.payload == {"value": 5}


def test_output_tolerates_added_fields_and_keeps_them() -> None:
    doc = copy.deepcopy(OUTPUT_SAMPLES["contentStart-text"][1])
    doc["contentStart"]["newTopLevel"] = {"z": 1, "a": [True, None]}
    doc["contentStart"]["nullField"] = None
    doc["contentStart"]["textOutputConfiguration"]["addedNested"] = "yes"
    doc["contentStart"]["textOutputConfiguration"]["addedNull"] = None
    event = parse_output(envelope(doc))
    assert event.model_extra == {"newTopLevel": {"z": 1, "a": [True, None]}, "nullField": None}
    assert event.text_output_configuration.model_extra == {"addedNested": "yes", "addedNull": None}
    raw = event.to_json()
    assert json.loads(raw) == envelope(doc)  # added keys, null-valued ones included, come back
    assert raw == compact(envelope(doc), sort_keys=True)
    assert parse_output(raw) == event


def test_output_snake_case_key_is_an_added_key_not_an_alias() -> None:
    doc = {"completionStart": {**IDS, "completion_id": "other"}}
    event = parse_output(doc)
    assert event.completion_id == IDS["completionId"]
    assert event.model_extra == {"completion_id": "other"}
    assert json.loads(event.to_json()) == envelope(doc)


@pytest.mark.parametrize("event_name", ["contentEnd", "completionEnd"])
def test_unknown_stop_reason_is_kept_as_a_string(event_name: str) -> None:
    doc = copy.deepcopy(OUTPUT_SAMPLES[event_name][1])
    doc[event_name]["stopReason"] = "SOMETHING_NEW"
    event = parse_output(doc)
    assert event.stop_reason == "SOMETHING_NEW"
    assert not isinstance(event.stop_reason, StopReason)
    assert json.loads(event.to_json()) == envelope(doc)


def test_known_stop_reason_role_and_type_parse_to_enums() -> None:
    end = parse_output(OUTPUT_SAMPLES["contentEnd"][1])
    assert end.stop_reason is StopReason.TOOL_USE and end.type is ContentType.TOOL
    text = parse_output(OUTPUT_SAMPLES["textOutput"][1])
    assert text.role is Role.ASSISTANT


def test_unknown_role_and_type_values_are_kept_as_strings() -> None:
    doc = copy.deepcopy(OUTPUT_SAMPLES["contentStart-text"][1])
    doc["contentStart"]["role"] = "NARRATOR"
    doc["contentStart"]["type"] = "VIDEO"
    event = parse_output(doc)
    assert (event.role, event.type) == ("NARRATOR", "VIDEO")
    assert json.loads(event.to_json()) == envelope(doc)


def test_known_output_event_missing_required_member_is_a_validation_error() -> None:
    doc = copy.deepcopy(OUTPUT_SAMPLES["textOutput"][1])
    del doc["textOutput"]["content"]
    with pytest.raises(EventValidationError) as info:
        parse_output(doc)
    assert ("event.textOutput.content", "Field required") in info.value.errors


def test_output_defaults_when_members_are_absent() -> None:
    usage = parse_output({"usageEvent": dict(IDS)})
    assert usage.total_tokens == 0 and usage.details.delta.input.text_tokens == 0
    end = parse_output({"completionEnd": dict(IDS)})
    assert end.stop_reason is StopReason.END_TURN


# --- helpers -----------------------------------------------------------------------------------------


def content_start(amf: str | None) -> OutputContentStart:
    return OutputContentStart(completion_id="c", prompt_name="p", session_id="s", content_id="x", role=Role.ASSISTANT,
                              type=ContentType.TEXT, additional_model_fields=amf)


@pytest.mark.parametrize(
    ("amf", "stage"),
    [
        ('{"generationStage":"SPECULATIVE"}', GenerationStage.SPECULATIVE),
        ('{"generationStage":"FINAL"}', GenerationStage.FINAL),
        ('{ "generationStage" : "FINAL", "other": 1 }', GenerationStage.FINAL),
        (None, None),
        ("", None),
        ("{}", None),
        ("not json", None),
        ("[1, 2]", None),
        ('"FINAL"', None),
        ('{"generationStage":5}', None),
        ('{"generationStage":["FINAL"]}', None),
        ('{"generationStage":null}', None),
    ],
)
def test_generation_stage(amf: str | None, stage: GenerationStage | None) -> None:
    assert content_start(amf).generation_stage == stage
    if stage is not None:
        assert content_start(amf).generation_stage is stage


def test_generation_stage_unknown_value_kept_as_string() -> None:
    assert content_start('{"generationStage":"DRAFT"}').generation_stage == "DRAFT"


def test_additional_model_fields_is_a_json_string_on_the_wire() -> None:
    event = parse_output(OUTPUT_SAMPLES["contentStart-text"][1])
    assert event.additional_model_fields == '{"generationStage":"FINAL"}'
    assert '"additionalModelFields":"{\\"generationStage\\":\\"FINAL\\"}"' in event.to_json()


def text_output(content: str) -> TextOutput:
    return TextOutput(completion_id="c", prompt_name="p", session_id="s", content_id="x", role=Role.ASSISTANT,
                      content=content)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{ "interrupted" : true }', True),
        ('{ "interrupted" : true }\n', True),  # older LiveKit saw a trailing newline (§2.2 E)
        ('{"interrupted":true}', False),  # the marker is the exact text
        ('{ "interrupted" : false }', False),
        ('answer{ "interrupted" : true }okay', False),
        ("interrupted", False),
        ("", False),
    ],
)
def test_barge_in_text(content: str, expected: bool) -> None:
    event = text_output(content)
    assert event.is_barge_in is expected
    assert is_barge_in(event) is expected
    assert ev.is_barge_in(parse_output(event.to_json())) is expected


def test_barge_in_constant() -> None:
    assert BARGE_IN_TEXT == '{ "interrupted" : true }'


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("INTERRUPTED", True), ("END_TURN", False), ("PARTIAL_TURN", False), ("TOOL_USE", False), ("NEW", False)],
)
def test_barge_in_stop_reason(stop: str, expected: bool) -> None:
    event = OutputContentEnd(completion_id="c", prompt_name="p", session_id="s", content_id="x", stop_reason=stop,
                             type=ContentType.AUDIO)
    assert event.is_interrupted is expected
    assert is_barge_in(event) is expected


def test_other_events_are_not_barge_in() -> None:
    for key, (_, doc) in OUTPUT_SAMPLES.items():
        if key not in ("contentEnd", "textOutput"):
            assert not is_barge_in(parse_output(doc))
    # a completionEnd INTERRUPTED is not a barge-in signal (only content blocks are)
    assert not is_barge_in(CompletionEnd(completion_id="c", prompt_name="p", session_id="s", stop_reason="INTERRUPTED"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"target_form":"x","n":1}', {"target_form": "x", "n": 1}),
        (json.dumps(json.dumps({"a": [1, 2]})), {"a": [1, 2]}),  # double-encoded (REP LK)
        ("{}", {}),
        ("[1,2]", [1, 2]),
        ('"plain text"', "plain text"),  # a JSON string that is not JSON inside stays a string
        ("null", None),
    ],
)
def test_decode_tool_arguments(content: str, expected: Any) -> None:
    assert decode_tool_arguments(content) == expected
    tool_use = ToolUse(completion_id="c", prompt_name="p", session_id="s", content_id="x", tool_name="t",
                       tool_use_id="u", content=content)
    assert tool_use.arguments == expected


def test_decode_tool_arguments_peels_one_layer_only() -> None:
    triple = json.dumps(json.dumps(json.dumps({"a": 1})))
    assert decode_tool_arguments(triple) == json.dumps({"a": 1})


@pytest.mark.parametrize("content", ["not json", "", "{bad", "{'a': 1}"])
def test_decode_tool_arguments_non_json_raises_value_error(content: str) -> None:
    with pytest.raises(ValueError):
        decode_tool_arguments(content)


# --- audio ---------------------------------------------------------------------------------------------


def test_audio_input_pcm_round_trip() -> None:
    event = AudioInput.from_pcm("P", "A1", PCM)
    assert event.content == PCM_B64
    assert event.pcm == PCM
    assert event.pcm_len == len(PCM)
    assert parse_input(event.to_json()).pcm == PCM


@pytest.mark.parametrize(
    ("n_bytes", "rate", "ms"),
    [(1024, 16000, 32.0), (32000, 16000, 1000.0), (1920, 24000, 40.0), (48000, 24000, 1000.0),
     (3416, 16000, 106.75), (32, 16000, 1.0), (0, 16000, 0.0), (16000, 8000, 1000.0)],
)
def test_audio_output_duration(n_bytes: int, rate: int, ms: float) -> None:
    event = AudioOutput.from_pcm(b"\x01\x02" * (n_bytes // 2), completion_id="c", prompt_name="p", session_id="s",
                                 content_id="x")
    assert event.pcm_len == n_bytes
    assert len(event.pcm) == n_bytes
    assert event.duration_ms(rate) == pytest.approx(ms)
    assert pcm_duration_ms(n_bytes, rate) == pytest.approx(ms)
    assert event.role is Role.ASSISTANT


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 1023, 1024, 3416])
def test_b64_decoded_len_matches_decoding(n: int) -> None:
    data = bytes(i % 251 for i in range(n))
    encoded = pcm_to_b64(data)
    assert b64_decoded_len(encoded) == n
    assert b64_to_pcm(encoded) == data


def test_b64_to_pcm_rejects_bad_base64() -> None:
    with pytest.raises(ValueError, match="not valid base64"):
        b64_to_pcm("not base64!")


def test_describe_b64_audio() -> None:
    assert describe_b64_audio(pcm_to_b64(b"\x00" * 1920), 24000) == "<1920 bytes, 40 ms @ 24000 Hz>"
    assert describe_b64_audio(pcm_to_b64(b"\x00" * 10), None) == "<10 bytes>"


def test_reprs_never_contain_base64_audio() -> None:
    pcm = bytes(range(256)) * 20
    b64 = pcm_to_b64(pcm)
    events = [
        AudioInput.from_pcm("P", "A1", pcm),
        AudioOutput.from_pcm(pcm, completion_id="c", prompt_name="p", session_id="s", content_id="x"),
        parse_input({"event": {"audioInput": {"promptName": "P", "contentName": "A", "content": b64}}}),
        parse_output({"audioOutput": {**IDS, "content": b64, "contentId": "x", "role": "ASSISTANT"}}),
    ]
    for event in events:
        for text in (repr(event), str(event), f"{event!r}", repr([event]), repr({"e": event})):
            assert b64 not in text
            assert b64[:40] not in text
            assert f"<{len(pcm)} bytes>" in text


def test_validation_error_does_not_echo_audio() -> None:
    b64 = pcm_to_b64(bytes(range(256)) * 20)
    with pytest.raises(EventValidationError) as info:
        parse_input({"event": {"audioInput": {"promptName": "P", "contentName": "A", "content": b64, "x": 1}}})
    assert b64[:40] not in str(info.value) and b64[:40] not in repr(info.value)


# --- hypothesis: generated valid events round-trip ----------------------------------------------------

def model(cls: type, **fields: st.SearchStrategy) -> st.SearchStrategy:
    """Like ``st.builds`` for a pydantic model, by field name only (``st.builds`` would also fill the
    camelCase alias parameters of the model's signature)."""
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


names = st.text(min_size=1, max_size=40)
texts = st.text(max_size=200)
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
rates = st.sampled_from(list(SampleRate))
sensitivities = st.sampled_from(list(EndpointingSensitivity))
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20) | st.floats(
    allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
schemas = st.fixed_dictionaries(
    {"type": st.just("object"),
     "properties": st.dictionaries(st.text(min_size=1, max_size=10),
                                   st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "boolean"])}),
                                   max_size=3)}
)

inference = model(
    InferenceConfiguration,
    max_tokens=st.none() | st.integers(min_value=1, max_value=100_000),
    top_p=st.none() | unit,
    temperature=st.none() | unit,
)


@st.composite
def session_starts(draw: st.DrawFn) -> SessionStart:
    form = draw(st.sampled_from(["none", "flat", "nested"]))
    sens = draw(sensitivities)
    return SessionStart(
        inference_configuration=draw(st.none() | inference),
        endpointing_sensitivity=sens if form == "flat" else None,
        turn_detection_configuration=ev.TurnDetectionConfiguration(endpointing_sensitivity=sens)
        if form == "nested" else None,
    )


tools = st.builds(Tool.define, names, texts, schemas)


@st.composite
def prompt_starts(draw: st.DrawFn) -> PromptStart:
    tool_list = draw(st.lists(tools, max_size=3))
    choice = draw(st.none() | st.sampled_from([ToolChoice.auto_(), ToolChoice.any_()]) | st.builds(ToolChoice.named, names))
    configuration = draw(st.none() | st.just(ev.ToolConfiguration(tools=tool_list, tool_choice=choice)))
    return PromptStart(
        prompt_name=draw(names),
        text_output_configuration=draw(st.none() | st.just(ev.TextOutputConfiguration())),
        audio_output_configuration=ev.AudioOutputConfiguration(
            sample_rate_hertz=draw(rates), voice_id=draw(st.none() | st.text(max_size=10))
        ),
        tool_use_output_configuration=draw(st.none() | st.just(ev.ToolUseOutputConfiguration())),
        tool_configuration=configuration,
    )


content_starts = st.one_of(
    st.builds(ContentStart.text, names, names, st.sampled_from(list(Role)), interactive=st.booleans()),
    st.builds(ContentStart.audio, names, names, sample_rate_hertz=st.sampled_from([8000, 16000, 24000])),
    st.builds(ContentStart.tool_result, names, names, names),
)

json_object_strings = st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(
    lambda d: json.dumps(d, ensure_ascii=False))

input_events = st.one_of(
    session_starts(),
    prompt_starts(),
    content_starts,
    model(TextInput, prompt_name=names, content_name=names, content=texts),
    st.builds(AudioInput.from_pcm, names, names, st.binary(max_size=512)),
    model(ToolResult, prompt_name=names, content_name=names, content=json_object_strings),
    model(ContentEnd, prompt_name=names, content_name=names),
    model(PromptEnd, prompt_name=names),
    st.just(SessionEnd()),
)


@settings(max_examples=300, deadline=None)
@given(input_events)
def test_hypothesis_input_round_trip(event: InputEvent) -> None:
    raw = event.to_json()
    assert parse_input(raw) == event
    assert parse_input(event.to_bytes()) == event
    assert parse_input(json.loads(raw)) == event
    assert json.loads(parse_input(raw).to_json()) == json.loads(raw)
    assert raw == compact(json.loads(raw))


# output strategies: added keys start with "x" so they never collide with a declared member
extra_keys = st.from_regex(r"x[A-Za-z0-9_]{0,8}", fullmatch=True)
extras = st.dictionaries(extra_keys, json_values, max_size=3)
stops = st.sampled_from(list(StopReason)) | st.from_regex(r"[A-Z_]{1,12}", fullmatch=True)
roles_out = st.sampled_from(list(Role)) | st.from_regex(r"[A-Z]{1,8}", fullmatch=True)
types_out = st.sampled_from(list(ContentType)) | st.from_regex(r"[A-Z]{1,8}", fullmatch=True)
offsets = st.integers(min_value=0, max_value=10**7)
counts = model(ev.TokenCounts, speech_tokens=offsets, text_tokens=offsets)
directions = model(ev.UsageDirection, input=counts, output=counts)


@st.composite
def ids(draw: st.DrawFn, completion: bool = True) -> dict[str, Any]:
    out = {"prompt_name": draw(names), "session_id": draw(names)}
    if completion:
        out["completion_id"] = draw(names)
    return out


@st.composite
def output_content_starts(draw: st.DrawFn) -> OutputContentStart:
    kind = draw(st.sampled_from(["TEXT", "AUDIO", "TOOL"]))
    fields: dict[str, Any] = {**draw(ids()), "content_id": draw(names), "role": draw(roles_out), "type": kind}
    if kind == "TEXT":
        stage = draw(st.sampled_from(list(GenerationStage)))
        fields["additional_model_fields"] = draw(st.none() | st.just(json.dumps({"generationStage": stage.value})))
        fields["text_output_configuration"] = ev.TextOutputConfigurationOut()
    elif kind == "AUDIO":
        fields["audio_output_configuration"] = ev.AudioOutputConfigurationOut(
            sample_rate_hertz=draw(st.sampled_from([8000, 16000, 24000])), **draw(extras))
    else:
        fields["tool_use_output_configuration"] = ev.ToolUseOutputConfigurationOut()
    return OutputContentStart(**fields, **draw(extras))


@st.composite
def output_events(draw: st.DrawFn) -> OutputEvent:
    which = draw(st.sampled_from(sorted(OUTPUT_EVENTS) + ["unknown"]))
    x = draw(extras)
    if which == "completionStart":
        return CompletionStart(**draw(ids()), **x)
    if which == "userSpeechStart":
        return UserSpeechStart(**draw(ids(completion=False)), input_audio_offset_ms=draw(offsets), **x)
    if which == "userSpeechEnd":
        return UserSpeechEnd(**draw(ids(completion=False)), input_audio_offset_ms=draw(offsets),
                             input_audio_detection_offset_ms=draw(offsets), **x)
    if which == "contentStart":
        return draw(output_content_starts())
    if which == "textOutput":
        return TextOutput(**draw(ids()), content=draw(texts | st.just(BARGE_IN_TEXT)), content_id=draw(names),
                          role=draw(roles_out), **x)
    if which == "audioOutput":
        return AudioOutput.from_pcm(draw(st.binary(max_size=512)), **draw(ids()), content_id=draw(names), **x)
    if which == "toolUse":
        return ToolUse(**draw(ids()), content=draw(json_object_strings), content_id=draw(names),
                       tool_name=draw(names), tool_use_id=draw(names), **x)
    if which == "contentEnd":
        return OutputContentEnd(**draw(ids()), content_id=draw(names), stop_reason=draw(stops), type=draw(types_out),
                                **x)
    if which == "completionEnd":
        return CompletionEnd(**draw(ids()), stop_reason=draw(stops), **x)
    if which == "usageEvent":
        return UsageEvent(**draw(ids()), details=ev.UsageDetails(delta=draw(directions), total=draw(directions)),
                          total_input_tokens=draw(offsets), total_output_tokens=draw(offsets),
                          total_tokens=draw(offsets), **x)
    name = draw(st.from_regex(r"z[A-Za-z]{0,10}", fullmatch=True))  # never a known name
    return UnknownOutputEvent(name=name, payload=draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)))


@settings(max_examples=400, deadline=None)
@given(output_events())
def test_hypothesis_output_round_trip(event: OutputEvent) -> None:
    raw = event.to_json()
    back = parse_output(raw)
    assert back == event
    assert type(back) is type(event)
    assert json.loads(back.to_json()) == json.loads(raw) == event.to_envelope()
    assert back.to_json() == raw
    assert raw == compact(json.loads(raw), sort_keys=True)  # compact and sorted, at every level


@given(output_events())
def test_hypothesis_output_bare_form(event: OutputEvent) -> None:
    assert parse_output(event.to_envelope()["event"]) == event


def test_float_json_round_trip_is_exact() -> None:
    # json floats round-trip exactly, which the hypothesis equality above relies on
    for value in (0.1, 0.7, 0.9, 1e-300, 0.30000000000000004):
        assert json.loads(json.dumps(value)) == value
    assert not math.isnan(json.loads(json.dumps(0.5)))


def test_samples_cover_every_event_type() -> None:
    assert {cls for cls, _ in INPUT_SAMPLES.values()} == set(INPUT_EVENTS.values())
    assert {cls for cls, _ in OUTPUT_SAMPLES.values()} == set(OUTPUT_EVENTS.values())
