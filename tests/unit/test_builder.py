"""novasonic.builder.EventBuilder: the input events of one session (protocol.md §1)."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from novasonic.builder import (
    DEFAULT_INFERENCE,
    RESUME_TEXT,
    BuilderError,
    EventBuilder,
    HistoryLimits,
    Message,
    encode_tool_result,
    prepare_history,
    sequential_names,
    split_utf8,
)
from novasonic.errors import HistoryLimitError, ProtocolViolation, UnknownModelError
from novasonic.events import (
    AudioInput,
    ContentStart,
    InferenceConfiguration,
    InputEvent,
    PromptEnd,
    Role,
    SessionEnd,
    TextInput,
    Tool,
    ToolChoice,
    ToolResult,
    ToolUse,
    parse_input,
)
from novasonic.models import NOVA_2_5_SONIC, NOVA_2_SONIC, NOVA_SONIC_1

ALL_MODELS = [NOVA_SONIC_1, NOVA_2_SONIC, NOVA_2_5_SONIC]
NOVA2_MODELS = [NOVA_2_SONIC, NOVA_2_5_SONIC]


def builder(model_id: str = NOVA_2_SONIC, **kwargs: Any) -> EventBuilder:
    kwargs.setdefault("name_factory", sequential_names())
    return EventBuilder(model_id, **kwargs)


def wire(events: list[InputEvent]) -> list[dict[str, Any]]:
    return [json.loads(e.to_json()) for e in events]


def names(events: list[InputEvent]) -> list[str]:
    return [e.EVENT_NAME for e in events]


def history_blocks(events: list[InputEvent]) -> list[tuple[str, list[str]]]:
    """``[(role, [textInput contents…]), …]`` of the TEXT blocks in ``events``."""
    blocks: list[tuple[str, list[str]]] = []
    for e in events:
        if isinstance(e, ContentStart):
            blocks.append((e.role.value, []))
        elif isinstance(e, TextInput):
            blocks[-1][1].append(e.content)
    return blocks


# --- names ---------------------------------------------------------------------------------------------


def test_names_come_from_the_injected_factory() -> None:
    b = builder()
    assert b.prompt_name == "n1"
    events = b.start("sys", [("user", "hi")]) + b.audio_start()
    assert [e.content_name for e in events if isinstance(e, ContentStart)] == ["n2", "n3", "n4"]
    assert {e.prompt_name for e in events if hasattr(e, "prompt_name")} == {"n1"}
    assert b.audio_content_name == "n4"


def test_explicit_prompt_name_is_not_drawn_from_the_factory() -> None:
    b = builder(prompt_name="P")
    assert b.prompt_name == "P"
    assert b.system("x")[0].content_name == "n1"


def test_default_names_are_uuids() -> None:
    import uuid

    b = EventBuilder(NOVA_2_SONIC)
    uuid.UUID(b.prompt_name)
    first = b.system("x")[0].content_name
    second = b.system("y")[0].content_name
    uuid.UUID(first)
    assert first != second != b.prompt_name


def test_sequential_names_prefix() -> None:
    f = sequential_names("c-")
    assert [f(), f(), f()] == ["c-1", "c-2", "c-3"]


def test_unknown_model_is_rejected() -> None:
    with pytest.raises(UnknownModelError):
        EventBuilder("us.amazon.nova-2-sonic-v1:0")


# --- sessionStart: exact JSON per generation -------------------------------------------------------------

INFERENCE = {"maxTokens": 1024, "topP": 0.9, "temperature": 0.7}


def test_session_start_nova_sonic_1_uses_the_flat_endpointing_key() -> None:
    events = builder(NOVA_SONIC_1, endpointing="MEDIUM").session_start()
    assert [e.to_json() for e in events] == [
        '{"event":{"sessionStart":{"inferenceConfiguration":{"maxTokens":1024,"topP":0.9,"temperature":0.7},'
        '"endpointingSensitivity":"MEDIUM"}}}'
    ]


@pytest.mark.parametrize("model_id", NOVA2_MODELS)
def test_session_start_nova_2_uses_turn_detection_configuration(model_id: str) -> None:
    events = builder(model_id, endpointing="HIGH").session_start()
    assert [e.to_json() for e in events] == [
        '{"event":{"sessionStart":{"inferenceConfiguration":{"maxTokens":1024,"topP":0.9,"temperature":0.7},'
        '"turnDetectionConfiguration":{"endpointingSensitivity":"HIGH"}}}}'
    ]


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_session_start_without_endpointing_sends_neither_key(model_id: str) -> None:
    assert wire(builder(model_id).session_start()) == [{"event": {"sessionStart": {"inferenceConfiguration": INFERENCE}}}]


def test_session_start_inference_configuration() -> None:
    custom = InferenceConfiguration(max_tokens=2048, top_p=0.5, temperature=0.1)
    assert wire(builder(inference=custom).session_start()) == [
        {"event": {"sessionStart": {"inferenceConfiguration": {"maxTokens": 2048, "topP": 0.5, "temperature": 0.1}}}}
    ]
    assert wire(builder(inference=None).session_start()) == [{"event": {"sessionStart": {}}}]
    assert DEFAULT_INFERENCE.to_dict() == INFERENCE


def test_bad_endpointing_value() -> None:
    with pytest.raises(ValueError):
        builder(endpointing="medium")


# --- promptStart ---------------------------------------------------------------------------------------

AUDIO_OUT = {"mediaType": "audio/lpcm", "sampleRateHertz": 24000, "sampleSizeBits": 16, "channelCount": 1,
             "voiceId": "matthew", "encoding": "base64", "audioType": "SPEECH"}


def test_prompt_start_without_tools_has_no_tool_configuration() -> None:
    assert wire(builder().prompt_start()) == [{"event": {"promptStart": {
        "promptName": "n1",
        "textOutputConfiguration": {"mediaType": "text/plain"},
        "audioOutputConfiguration": AUDIO_OUT,
        "toolUseOutputConfiguration": {"mediaType": "application/json"},
    }}}]


GET_DATE = Tool.define("getDateTool", "Get date")
TOOL_JSON = {"toolSpec": {"name": "getDateTool", "description": "Get date",
                          "inputSchema": {"json": '{"type":"object","properties":{},"required":[]}'}}}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"auto": {}}),
        ("any", {"any": {}}),
        ("getDateTool", {"tool": {"name": "getDateTool"}}),
        (ToolChoice.named("auto"), {"tool": {"name": "auto"}}),
        (ToolChoice.any_(), {"any": {}}),
    ],
)
def test_prompt_start_tool_configuration(choice: Any, expected: dict[str, Any] | None) -> None:
    (event,) = wire(builder(tools=[GET_DATE], tool_choice=choice).prompt_start())
    config = event["event"]["promptStart"]["toolConfiguration"]
    assert config["tools"] == [TOOL_JSON]
    if expected is None:
        assert "toolChoice" not in config
    else:
        assert config["toolChoice"] == expected


def test_tool_choice_without_tools_is_an_error() -> None:
    with pytest.raises(ValueError, match="without tools"):
        builder(tool_choice="auto")


@pytest.mark.parametrize("bad", ["", 5])
def test_bad_tool_choice(bad: Any) -> None:
    with pytest.raises(ValueError):
        builder(tools=[GET_DATE], tool_choice=bad)


def test_tools_must_be_tool_models() -> None:
    with pytest.raises(TypeError):
        builder(tools=[{"name": "x"}])  # type: ignore[list-item]


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_prompt_start_voice_and_rate(model_id: str) -> None:
    b = builder(model_id)
    assert b.prompt_start()[0].audio_output_configuration.voice_id == b.model.default_voice
    cfg = builder(model_id, voice="tiffany", output_sample_rate=16000).prompt_start()[0].audio_output_configuration
    assert (cfg.voice_id, cfg.sample_rate_hertz) == ("tiffany", 16000)


def test_bad_sample_rate() -> None:
    with pytest.raises(ValueError):
        builder(output_sample_rate=44100)
    with pytest.raises(ValueError):
        builder(input_sample_rate=22050)


# --- SYSTEM block --------------------------------------------------------------------------------------


def test_system_block_exact_json() -> None:
    assert wire(builder(prompt_name="P").system("You are a friendly assistant.")) == [
        {"event": {"contentStart": {"promptName": "P", "contentName": "n1", "type": "TEXT", "interactive": False,
                                    "role": "SYSTEM", "textInputConfiguration": {"mediaType": "text/plain"}}}},
        {"event": {"textInput": {"promptName": "P", "contentName": "n1", "content": "You are a friendly assistant."}}},
        {"event": {"contentEnd": {"promptName": "P", "contentName": "n1"}}},
    ]


def test_long_system_prompt_is_one_text_input() -> None:
    events = builder().system("x" * 5000)
    assert names(events) == ["contentStart", "textInput", "contentEnd"]


# --- history -----------------------------------------------------------------------------------------------


def test_history_blocks_exact_json() -> None:
    events = builder(prompt_name="P").history([("USER", "hi"), ("ASSISTANT", "hello")])
    assert wire(events) == [
        {"event": {"contentStart": {"promptName": "P", "contentName": "n1", "type": "TEXT", "interactive": False,
                                    "role": "USER", "textInputConfiguration": {"mediaType": "text/plain"}}}},
        {"event": {"textInput": {"promptName": "P", "contentName": "n1", "content": "hi"}}},
        {"event": {"contentEnd": {"promptName": "P", "contentName": "n1"}}},
        {"event": {"contentStart": {"promptName": "P", "contentName": "n2", "type": "TEXT", "interactive": False,
                                    "role": "ASSISTANT", "textInputConfiguration": {"mediaType": "text/plain"}}}},
        {"event": {"textInput": {"promptName": "P", "contentName": "n2", "content": "hello"}}},
        {"event": {"contentEnd": {"promptName": "P", "contentName": "n2"}}},
    ]


def test_history_accepts_messages_tuples_and_mappings() -> None:
    events = builder().history([
        Message.user("a"),
        ("assistant", "b"),
        {"role": "user", "content": "c"},
        {"role": Role.ASSISTANT, "text": "d"},
        Message(Role.USER, "e"),
    ])
    assert history_blocks(events) == [("USER", ["a"]), ("ASSISTANT", ["b"]), ("USER", ["c"]),
                                      ("ASSISTANT", ["d"]), ("USER", ["e"])]


@pytest.mark.parametrize("role", ["SYSTEM", "TOOL", "bot", 3])
def test_history_rejects_other_roles(role: Any) -> None:
    with pytest.raises(ValueError, match="USER or ASSISTANT"):
        builder().history([(role, "x")])


def test_history_rejects_malformed_items() -> None:
    with pytest.raises(TypeError):
        builder().history(["just text"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Message(Role.USER, 5)  # type: ignore[arg-type]


def test_history_empty() -> None:
    assert builder().history([]) == []
    assert builder().history([("user", ""), ("assistant", "  \n")]) == []


def test_history_merges_consecutive_same_role_and_drops_empty() -> None:
    events = builder().history([
        ("user", "first"), ("user", ""), ("user", "second"),
        ("assistant", "a1"), ("assistant", "   "), ("assistant", "a2"),
        ("user", "third"),
    ])
    assert history_blocks(events) == [("USER", ["first\nsecond"]), ("ASSISTANT", ["a1\na2"]), ("USER", ["third"])]


def test_empty_message_between_same_roles_does_not_break_alternation() -> None:
    # the empty ASSISTANT message is dropped first, so the two USER messages merge
    prepared = prepare_history([("user", "a"), ("assistant", ""), ("user", "b")])
    assert prepared == [Message.user("a\nb")]


def test_history_leading_assistant_dropped_by_default() -> None:
    events = builder().history([("assistant", "welcome back"), ("assistant", "still me"), ("user", "hi"),
                                ("assistant", "hello")])
    assert history_blocks(events) == [("USER", ["hi"]), ("ASSISTANT", ["hello"])]


def test_history_only_assistant_gives_nothing_by_default() -> None:
    assert builder().history([("assistant", "hello")]) == []


def test_history_leading_assistant_prepend_user() -> None:
    events = builder(assistant_first="prepend-user").history([("assistant", "welcome back"), ("user", "hi")])
    assert history_blocks(events) == [("USER", [RESUME_TEXT]), ("ASSISTANT", ["welcome back"]), ("USER", ["hi"])]
    # per-call override
    events = builder().history([("assistant", "x")], assistant_first="prepend-user")
    assert history_blocks(events) == [("USER", [RESUME_TEXT]), ("ASSISTANT", ["x"])]


def test_bad_history_options() -> None:
    with pytest.raises(ValueError):
        prepare_history([], assistant_first="keep")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        prepare_history([], on_overflow="truncate")  # type: ignore[arg-type]


def test_history_splits_long_messages_within_one_block() -> None:
    text = "x" * 2500
    events = builder().history([("user", text)])
    assert names(events) == ["contentStart", "textInput", "textInput", "textInput", "contentEnd"]
    ((role, pieces),) = history_blocks(events)
    assert [len(p) for p in pieces] == [1024, 1024, 452]
    assert "".join(pieces) == text
    assert len({e.content_name for e in events}) == 1  # one block


@pytest.mark.parametrize("char", ["é", "한", "😀"])  # 2, 3 and 4 UTF-8 bytes
def test_history_split_never_cuts_a_multibyte_character(char: str) -> None:
    width = len(char.encode())
    text = "a" * (1024 - width + 1) + char + "b" * 10  # the character straddles byte 1024
    ((_, pieces),) = history_blocks(builder().history([("user", text)]))
    assert pieces == ["a" * (1024 - width + 1), char + "b" * 10]
    assert all(len(p.encode()) <= 1024 for p in pieces)
    assert "".join(pieces) == text


def test_history_split_exact_fit() -> None:
    text = "é" * 512  # exactly 1024 bytes
    ((_, pieces),) = history_blocks(builder().history([("user", text)]))
    assert pieces == [text]
    ((_, pieces),) = history_blocks(builder().history([("user", text + "é")]))
    assert pieces == [text, "é"]


def test_split_utf8() -> None:
    assert split_utf8("", 4) == [""]
    assert split_utf8("abc", 4) == ["abc"]
    assert split_utf8("😀😀", 4) == ["😀", "😀"]
    assert split_utf8("a😀", 4) == ["a", "😀"]
    with pytest.raises(ValueError):
        split_utf8("abc", 3)


@given(st.text(max_size=300), st.integers(min_value=4, max_value=64))
def test_split_utf8_property(text: str, limit: int) -> None:
    pieces = split_utf8(text, limit)
    assert "".join(pieces) == text
    assert all(len(p.encode("utf-8")) <= limit for p in pieces)
    assert all(pieces) or pieces == [""]
    # greedy: each piece but the last is full up to the next character
    for piece, following in zip(pieces, pieces[1:]):
        assert len(piece.encode()) + len(following[0].encode()) > limit


def test_history_limits_are_configurable() -> None:
    b = builder(history_limits=HistoryLimits(text_input_bytes=10, total_bytes=None))
    ((_, pieces),) = history_blocks(b.history([("user", "0123456789abcdefghij_")]))
    assert pieces == ["0123456789", "abcdefghij", "_"]
    b = builder(history_limits=HistoryLimits(text_input_bytes=None, total_bytes=None))
    ((_, pieces),) = history_blocks(b.history([("user", "x" * 5000)]))
    assert pieces == ["x" * 5000]


@pytest.mark.parametrize("kwargs", [{"text_input_bytes": 3}, {"total_bytes": -1}, {"max_messages": -1}])
def test_history_limits_validation(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        HistoryLimits(**kwargs)


def transcript(n: int, size: int, *, first: str = "user") -> list[tuple[str, str]]:
    roles = ["user", "assistant"] if first == "user" else ["assistant", "user"]
    return [(roles[i % 2], f"{i:04d}" + "x" * (size - 4)) for i in range(n)]


def test_history_total_limit_drops_oldest_first() -> None:
    msgs = transcript(51, 1000)  # 51 000 bytes > 40 960; USER first and last
    prepared = prepare_history(msgs)
    total = sum(m.n_bytes for m in prepared)
    assert total <= 40 * 1024
    assert prepared[0].role is Role.USER  # USER first is kept
    assert prepared[-1].text == msgs[-1][1]  # the newest message survives
    texts = [m.text for m in prepared]
    assert texts == [t for _, t in msgs[-len(prepared):]]  # a suffix of the transcript
    # 40 messages would fit (40 000 bytes) but the 40-message suffix starts with ASSISTANT: 39 remain
    assert len(prepared) == 39


def test_history_total_limit_keeps_user_first_with_prepend_user() -> None:
    msgs = transcript(51, 1000)
    prepared = prepare_history(msgs, assistant_first="prepend-user")
    assert prepared[0] == Message.user(RESUME_TEXT)
    assert len(prepared) == 41  # the marker and the 40 newest messages (40 023 bytes)
    assert sum(m.n_bytes for m in prepared) <= 40 * 1024
    assert [m.text for m in prepared[1:]] == [t for _, t in msgs[-(len(prepared) - 1):]]
    assert prepared[1].role is Role.ASSISTANT


def test_history_total_limit_counts_utf8_bytes() -> None:
    msgs = [("user", "é" * 600), ("assistant", "é" * 600)]  # 1200 bytes each, 600 characters
    assert len(prepare_history(msgs, HistoryLimits(total_bytes=2400))) == 2
    assert prepare_history(msgs, HistoryLimits(total_bytes=2399)) == []  # only ASSISTANT would remain: dropped


def test_history_message_larger_than_total_is_dropped() -> None:
    prepared = prepare_history([("user", "x" * 50_000)])
    assert prepared == []


def test_history_overflow_raise() -> None:
    with pytest.raises(HistoryLimitError) as info:
        builder(on_overflow="raise").history(transcript(50, 1000))
    exc = info.value
    assert isinstance(exc, ProtocolViolation)
    assert exc.rule == "history-too-large"
    assert "50000 bytes" in exc.message and "40960" in exc.message
    # per-call override
    with pytest.raises(HistoryLimitError):
        builder().history(transcript(50, 1000), on_overflow="raise")
    # under the limit nothing is raised
    assert builder(on_overflow="raise").history(transcript(4, 100))


def test_history_max_messages() -> None:
    limits = HistoryLimits(max_messages=4)
    assert len(prepare_history(transcript(10, 10), limits)) == 4  # the 4 newest, USER first
    prepared = prepare_history(transcript(11, 10), limits)
    assert len(prepared) == 3  # the 4-message suffix starts with ASSISTANT
    assert prepared[0].role is Role.USER
    with pytest.raises(HistoryLimitError) as info:
        prepare_history(transcript(10, 10), limits, on_overflow="raise")
    assert info.value.rule == "history-too-many-messages"


roles = st.sampled_from(["user", "assistant", "USER", "ASSISTANT"])
messages = st.lists(st.tuples(roles, st.text(max_size=60) | st.sampled_from(["", " ", "é" * 30, "😀" * 20])),
                    max_size=30)


@settings(max_examples=200, deadline=None)
@given(messages, st.sampled_from(["drop", "prepend-user"]), st.integers(4, 40), st.integers(0, 400))
def test_prepared_history_invariants(msgs: list[tuple[str, str]], first: str, per_input: int, total: int) -> None:
    limits = HistoryLimits(text_input_bytes=per_input, total_bytes=total)
    prepared = prepare_history(msgs, limits, assistant_first=first)  # type: ignore[arg-type]
    assert sum(m.n_bytes for m in prepared) <= total
    if prepared:
        assert prepared[0].role is Role.USER
    assert all(a.role is not b.role for a, b in zip(prepared, prepared[1:]))  # alternates
    assert all(m.text.strip() for m in prepared)
    events = builder(history_limits=limits, assistant_first=first).history(msgs)
    blocks = history_blocks(events)
    assert [(r, "".join(p)) for r, p in blocks] == [(m.role.value, m.text) for m in prepared]
    assert all(len(piece.encode()) <= per_input for _, pieces in blocks for piece in pieces)


# --- audio ------------------------------------------------------------------------------------------------


def test_audio_block() -> None:
    b = builder(prompt_name="P")
    assert wire(b.audio_start()) == [{"event": {"contentStart": {
        "promptName": "P", "contentName": "n1", "type": "AUDIO", "interactive": True, "role": "USER",
        "audioInputConfiguration": {"mediaType": "audio/lpcm", "sampleRateHertz": 16000, "sampleSizeBits": 16,
                                    "channelCount": 1, "audioType": "SPEECH", "encoding": "base64"}}}}]
    assert b.audio_open and b.audio_content_name == "n1"
    frame = b.audio(b"\x01\x00" * 512)
    assert isinstance(frame, AudioInput)
    assert (frame.prompt_name, frame.content_name, frame.pcm) == ("P", "n1", b"\x01\x00" * 512)
    assert wire(b.audio_end()) == [{"event": {"contentEnd": {"promptName": "P", "contentName": "n1"}}}]
    assert not b.audio_open and b.audio_content_name is None


def test_audio_input_sample_rate() -> None:
    event = builder(input_sample_rate=24000).audio_start()[0]
    assert event.audio_input_configuration.sample_rate_hertz == 24000


def test_audio_misuse() -> None:
    b = builder()
    with pytest.raises(BuilderError, match="audio_start"):
        b.audio(b"\x00\x00")
    with pytest.raises(BuilderError, match="no AUDIO block"):
        b.audio_end()
    b.audio_start()
    with pytest.raises(BuilderError, match="already open"):
        b.audio_start()
    with pytest.raises(ValueError, match="even number"):
        b.audio(b"\x00")
    b.audio_end()
    with pytest.raises(BuilderError):
        b.audio(b"\x00\x00")


def test_audio_accepts_bytes_like() -> None:
    b = builder()
    b.audio_start()
    assert b.audio(bytearray(b"\x01\x02")).pcm == b"\x01\x02"
    assert b.audio(memoryview(b"\x01\x02")).pcm == b"\x01\x02"
    assert b.audio(b"").pcm == b""


@pytest.mark.parametrize(("rate", "frame"), [(16000, 1024), (24000, 1536), (8000, 512)])
def test_audio_frames_are_32ms(rate: int, frame: int) -> None:
    b = builder(input_sample_rate=rate)
    b.audio_start()
    pcm = bytes(range(256)) * 20  # 5120 bytes
    frames = b.audio_frames(pcm)
    assert all(f.pcm_len == frame for f in frames[:-1])
    assert 0 < frames[-1].pcm_len <= frame
    assert b"".join(f.pcm for f in frames) == pcm
    assert [f.pcm_len for f in b.audio_frames(pcm, frame_ms=100)][0] == rate // 10 * 2


# --- interactive text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", NOVA2_MODELS)
def test_interactive_text_exact_json(model_id: str) -> None:
    assert wire(builder(model_id, prompt_name="P").interactive_text("What's the weather?")) == [
        {"event": {"contentStart": {"promptName": "P", "contentName": "n1", "type": "TEXT", "interactive": True,
                                    "role": "USER", "textInputConfiguration": {"mediaType": "text/plain"}}}},
        {"event": {"textInput": {"promptName": "P", "contentName": "n1", "content": "What's the weather?"}}},
        {"event": {"contentEnd": {"promptName": "P", "contentName": "n1"}}},
    ]


def test_interactive_text_refused_on_nova_sonic_1() -> None:
    b = builder(NOVA_SONIC_1)
    with pytest.raises(BuilderError) as info:
        b.interactive_text("hello")
    assert "does not start a response on Nova Sonic 1" in str(info.value)
    assert NOVA_SONIC_1 in str(info.value)
    events = b.interactive_text("hello", force=True)
    assert names(events) == ["contentStart", "textInput", "contentEnd"]


def test_interactive_text_is_not_split_by_default() -> None:
    b = builder()
    assert names(b.interactive_text("x" * 3000)) == ["contentStart", "textInput", "contentEnd"]
    events = b.interactive_text("é" * 1000, split_bytes=1024)
    assert [len(e.content.encode()) for e in events if isinstance(e, TextInput)] == [1024, 976]


def test_interactive_text_fresh_name_each_time_and_not_empty() -> None:
    b = builder()
    assert b.interactive_text("a")[0].content_name != b.interactive_text("b")[0].content_name
    with pytest.raises(ValueError):
        b.interactive_text("")


# --- tool results -----------------------------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    temp_c: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"date": "2025-07-15"}, {"date": "2025-07-15"}),
        ({}, {}),
        ({"nested": {"list": [1, None, True]}}, {"nested": {"list": [1, None, True]}}),
        ([1, 2, 3], {"result": [1, 2, 3]}),
        ("sunny", {"result": "sunny"}),
        ("", {"result": ""}),
        ("[1, 2]", {"result": "[1, 2]"}),  # JSON, but not an object: wrapped as a string
        ('"quoted"', {"result": '"quoted"'}),
        ("42", {"result": "42"}),
        (42, {"result": 42}),
        (2.5, {"result": 2.5}),
        (True, {"result": True}),
        (None, {"result": None}),
        (ValueError("city not found"), {"error": "city not found"}),
        (TimeoutError(), {"error": "TimeoutError"}),
        (Weather(city="Oslo", temp_c=-3.5), {"city": "Oslo", "temp_c": -3.5}),
        (Point(1, 2), {"x": 1, "y": 2}),
        ({"when": datetime.date(2025, 7, 15)}, {"when": "2025-07-15"}),
        ({"ünï": "한국어"}, {"ünï": "한국어"}),
    ],
)
def test_tool_result_encoding(result: Any, expected: dict[str, Any]) -> None:
    content = encode_tool_result(result)
    assert json.loads(content) == expected
    events = builder().tool_result("tu-1", result)
    assert json.loads(events[1].content) == expected


def test_json_object_string_passes_through_unchanged() -> None:
    raw = '{ "date" : "2025-07-15",\n "spaces": true }'
    assert encode_tool_result(raw) == raw
    assert builder().tool_result("tu-1", raw)[1].content == raw


def test_tool_result_key_is_configurable() -> None:
    assert json.loads(encode_tool_result("x", key="tool_result")) == {"tool_result": "x"}
    events = builder(tool_result_key="tool_result").tool_result("tu-1", [1])
    assert json.loads(events[1].content) == {"tool_result": [1]}
    # errors always use "error"
    assert json.loads(encode_tool_result(RuntimeError("boom"), key="tool_result")) == {"error": "boom"}


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
))
def test_tool_result_is_always_a_json_object_string(value: Any) -> None:
    content = encode_tool_result(value)
    assert isinstance(json.loads(content), dict)
    ToolResult(prompt_name="P", content_name="C", content=content)


def test_tool_result_block_exact_json() -> None:
    assert wire(builder(prompt_name="P").tool_result("fb0a993c", {"ok": True})) == [
        {"event": {"contentStart": {"promptName": "P", "contentName": "n1", "type": "TOOL", "interactive": False,
                                    "role": "TOOL", "toolResultInputConfiguration": {
                                        "toolUseId": "fb0a993c", "type": "TEXT",
                                        "textInputConfiguration": {"mediaType": "text/plain"}}}}},
        {"event": {"toolResult": {"promptName": "P", "contentName": "n1", "content": '{"ok":true}'}}},
        {"event": {"contentEnd": {"promptName": "P", "contentName": "n1"}}},
    ]


def test_tool_result_content_name_is_never_the_tool_use_id() -> None:
    drawn = iter(["P", "tu-1", "fresh"])
    b = EventBuilder(NOVA_2_SONIC, name_factory=lambda: next(drawn))
    events = b.tool_result("tu-1", {})
    assert {e.content_name for e in events} == {"fresh"}
    stubborn = EventBuilder(NOVA_2_SONIC, prompt_name="P", name_factory=lambda: "tu-1")
    with pytest.raises(BuilderError):
        stubborn.tool_result("tu-1", {})


def test_tool_result_needs_an_id() -> None:
    with pytest.raises(ValueError):
        builder().tool_result("", {})


# --- start and close ----------------------------------------------------------------------------------------


def test_start_is_the_concatenation() -> None:
    history = [("user", "hi"), ("assistant", "hello")]
    a = builder(endpointing="LOW").start("sys", history)
    b = builder(endpointing="LOW")
    assert a == b.session_start() + b.prompt_start() + b.system("sys") + b.history(history)
    assert names(builder().start("sys")) == ["sessionStart", "promptStart", "contentStart", "textInput", "contentEnd"]


def test_close_without_audio() -> None:
    b = builder(prompt_name="P")
    assert wire(b.close()) == [{"event": {"promptEnd": {"promptName": "P"}}}, {"event": {"sessionEnd": {}}}]
    assert b.closed


def test_close_with_audio_open_ends_the_audio_block_first() -> None:
    b = builder(prompt_name="P")
    b.audio_start()
    assert wire(b.close()) == [
        {"event": {"contentEnd": {"promptName": "P", "contentName": "n1"}}},
        {"event": {"promptEnd": {"promptName": "P"}}},
        {"event": {"sessionEnd": {}}},
    ]
    assert not b.audio_open


def test_close_after_audio_end() -> None:
    b = builder()
    b.audio_start()
    b.audio_end()
    assert [type(e) for e in b.close()] == [PromptEnd, SessionEnd]


def test_nothing_after_close() -> None:
    b = builder()
    b.close()
    calls = [b.close, b.session_start, b.prompt_start, lambda: b.system("x"), lambda: b.history([]), b.audio_start,
             lambda: b.audio(b""), b.audio_end, lambda: b.interactive_text("x"), lambda: b.tool_result("t", {}),
             lambda: b.start("x")]
    for call in calls:
        with pytest.raises(BuilderError, match="closed"):
            call()


def test_every_built_event_is_valid_on_the_wire() -> None:
    b = builder(endpointing="MEDIUM", tools=[GET_DATE], tool_choice="any")
    events = b.start("sys", transcript(6, 2000)) + b.audio_start() + [b.audio(b"\x00" * 1024)]
    events += b.interactive_text("hi") + b.tool_result("tu", ValueError("x")) + b.close()
    for event in events:
        assert parse_input(event.to_json()) == event


# --- the rules accept what the builder builds -------------------------------------------------------------

rules = pytest.importorskip("novasonic.rules")


def tool_use(tool_use_id: str, prompt_name: str) -> ToolUse:
    return ToolUse(completion_id="c-1", prompt_name=prompt_name, session_id="s-1", content_id="tool-block",
                   content='{"city":"Oslo"}', tool_name="get_weather", tool_use_id=tool_use_id)


def full_session(model_id: str, machine: Any, **kwargs: Any) -> list[InputEvent]:
    """Feed a whole session into ``machine`` and return what was fed."""
    weather = Tool.define("get_weather", "Weather for a city",
                          {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    b = EventBuilder(model_id, endpointing="MEDIUM", tools=[weather], tool_choice="auto", **kwargs)
    history = [
        ("assistant", "Welcome back!"),  # leading ASSISTANT: dropped
        ("user", "What's the weather like?"),
        ("user", "In Oslo, please."),  # merged with the previous USER message
        ("assistant", "Let me check. " + "é" * 700),  # 1400+ bytes: split into two textInputs
        ("user", ""),  # dropped
        ("user", "Thanks! " + "한" * 400),
    ]
    sent: list[InputEvent] = []

    def send(events: list[InputEvent] | InputEvent) -> None:
        for event in events if isinstance(events, list) else [events]:
            machine.feed(event)
            sent.append(event)

    send(b.start("You are a weather assistant.", history))
    send(b.audio_start())
    send(b.audio_frames(b"\x00\x01" * 16000))  # 1 s of audio at 16 kHz in 32 ms frames
    if b.model.interactive_text:
        send(b.interactive_text("And tomorrow?"))  # audio paused while the text block is open
        send(b.audio_frames(b"\x00\x00" * 1600))
    machine.note_output(tool_use("tool-use-1", b.prompt_name))  # the service asks for a tool
    send(b.tool_result("tool-use-1", {"city": "Oslo", "forecast": "rain"}))
    send(b.audio(b"\x00\x00" * 512))
    machine.note_output(tool_use("tool-use-2", b.prompt_name))
    send(b.tool_result("tool-use-2", ConnectionError("weather service down")))
    send(b.close())
    return sent


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_rules_accept_a_full_builder_session(model_id: str) -> None:
    machine = rules.InputMachine(model_id)
    sent = full_session(model_id, machine)
    assert machine.state is rules.State.CLOSED
    assert machine.error is None
    assert machine.answered_tool_use_ids == {"tool-use-1", "tool-use-2"}
    assert machine.pending_tool_use_ids == ()
    kinds = names(sent)
    assert kinds[:2] == ["sessionStart", "promptStart"] and kinds[-2:] == ["promptEnd", "sessionEnd"]
    interactive_text = [e for e in sent if isinstance(e, ContentStart) and e.interactive and e.role is Role.USER
                        and e.type.value == "TEXT"]
    assert len(interactive_text) == (0 if model_id == NOVA_SONIC_1 else 1)
    assert sum(isinstance(e, ToolResult) for e in sent) == 2
    assert sum(isinstance(e, AudioInput) for e in sent) >= 32


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_rules_facts_match_what_the_builder_meant(model_id: str) -> None:
    machine = rules.InputMachine(model_id)
    b = EventBuilder(model_id, name_factory=sequential_names())
    facts = []
    history = [("user", "a" * 1500), ("assistant", "b"), ("assistant", "c"), ("user", "d")]
    for event in b.start("sys", history) + b.audio_start() + [b.audio(b"\x00" * 1024)]:
        facts.extend(machine.feed(event))
    received = [f for f in facts if isinstance(f, rules.HistoryMessageReceived)]
    assert [(f.role, f.text) for f in received] == [("USER", "a" * 1500), ("ASSISTANT", "b\nc"), ("USER", "d")]
    assert machine.system_prompt == "sys"
    for event in b.close():
        machine.feed(event)
    assert machine.state is rules.State.CLOSED


@pytest.mark.parametrize("model_id", ALL_MODELS)
def test_rules_accept_a_trimmed_40kb_history(model_id: str) -> None:
    machine = rules.InputMachine(model_id)
    b = EventBuilder(model_id)
    for event in b.start("sys", transcript(60, 1500)) + b.audio_start() + [b.audio(b"\x00" * 1024)] + b.close():
        machine.feed(event)
    assert machine.state is rules.State.CLOSED


def test_rules_reject_an_untrimmed_history_that_the_builder_would_trim() -> None:
    """Cross-check: the limits the builder keeps to are the ones the rules enforce."""
    machine = rules.InputMachine(NOVA_2_SONIC)
    big = EventBuilder(NOVA_2_SONIC, history_limits=HistoryLimits(total_bytes=None))
    with pytest.raises(ProtocolViolation) as info:
        for event in big.start("sys", transcript(60, 1000)):
            machine.feed(event)
    assert info.value.rule == "history-too-large"


@settings(max_examples=60, deadline=None)
@given(messages, st.sampled_from(["drop", "prepend-user"]), st.sampled_from(ALL_MODELS))
def test_rules_accept_any_prepared_history(msgs: list[tuple[str, str]], first: str, model_id: str) -> None:
    machine = rules.InputMachine(model_id)
    b = EventBuilder(model_id, assistant_first=first)  # type: ignore[arg-type]
    for event in b.start("sys", msgs) + b.audio_start() + [b.audio(b"\x00\x00")] + b.close():
        machine.feed(event)
    assert machine.state is rules.State.CLOSED


def test_rules_agree_interactive_text_does_not_start_a_response_on_nova_1() -> None:
    machine = rules.InputMachine(NOVA_SONIC_1)
    b = EventBuilder(NOVA_SONIC_1)
    facts = []
    for event in b.start("sys") + b.audio_start() + b.interactive_text("hi", force=True):
        facts.extend(machine.feed(event))
    (submitted,) = [f for f in facts if isinstance(f, rules.InteractiveTextSubmitted)]
    assert submitted.starts_response is False
