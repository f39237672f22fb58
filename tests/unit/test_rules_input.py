"""InputMachine: every rule accepts and rejects, exact service texts, errored state, purity."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from novasonic.errors import EventDecodeError, EventValidationError, ProtocolViolation
from novasonic.events import AudioInput, ContentStart, ContentType, Role, ToolChoice, parse_input
from novasonic.events.input import AudioInputConfiguration, TextInputConfiguration
from novasonic.rules import (
    RULES,
    AudioBlockClosed,
    AudioBlockOpened,
    AudioReceived,
    ContentClosed,
    HistoryMessageReceived,
    InputMachine,
    InteractiveTextSubmitted,
    Limits,
    Phase,
    PromptEnded,
    PromptStarted,
    RulesConfig,
    SessionEnded,
    SessionStarted,
    State,
    SystemPromptReceived,
    ToolResultDelivered,
    texts,
    transition_table,
    violation_for_parse_error,
)
from tests.helpers import factories as f

N1 = "amazon.nova-sonic-v1:0"
N2 = "amazon.nova-2-sonic-v1:0"
N25 = "amazon.nova-2-5-sonic"
MODELS = [N1, N2, N25]

GENERIC = texts.GENERIC_INVALID


@dataclass(frozen=True)
class Note:
    """A prefix step: the service sent toolUse ``tool_use_id``."""

    tool_use_id: str


def make(model: str = N2, cfg: dict[str, Any] | None = None, limits: dict[str, Any] | None = None,
         **kw: Any) -> InputMachine:
    return InputMachine(model, RulesConfig(**(cfg or {})), Limits(**(limits or {})), **kw)


def run(m: InputMachine, steps: list[Any]) -> list[Any]:
    facts: list[Any] = []
    for step in steps:
        if isinstance(step, Note):
            m.note_tool_use(step.tool_use_id, "tool")
        else:
            facts.extend(m.feed(step))
    return facts


# --- prefixes -------------------------------------------------------------------------------------

S = [f.session_start()]
P = S + [f.prompt_start()]
SYS = P + f.system_block()
AUD = SYS + [f.audio_start()]
LIVE = AUD + [f.audio_input()]
TOOL = AUD + [Note("t1")]
FULL_N2 = LIVE + [f.content_end("mic"), f.prompt_end(), f.session_end()]


@dataclass(frozen=True)
class Case:
    id: str
    prefix: list[Any]
    event: Any
    rule: str | None = None  # None: accepted
    text: str | None = None
    confident: bool | None = None
    model: str = N2
    cfg: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)


def bad(id: str, prefix: list[Any], event: Any, rule: str, text: str, confident: bool, **kw: Any) -> Case:
    return Case(id, prefix, event, rule, text, confident, **kw)


def ok(id: str, prefix: list[Any], event: Any, **kw: Any) -> Case:
    return Case(id, prefix, event, **kw)


def _content_start(type_: str, role: str, name: str = "x", interactive: bool = True) -> ContentStart:
    cfg: dict[str, Any] = {}
    if type_ == "TEXT":
        cfg["text_input_configuration"] = TextInputConfiguration()
    elif type_ == "AUDIO":
        cfg["audio_input_configuration"] = AudioInputConfiguration()
    else:
        from novasonic.events.input import ToolResultInputConfiguration

        cfg["tool_result_input_configuration"] = ToolResultInputConfiguration(tool_use_id="t1")
    return ContentStart(prompt_name=f.PROMPT, content_name=name, type=ContentType(type_), role=Role(role),
                        interactive=interactive, **cfg)


def _schema(**extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"x": {"type": "string"}}, "required": [], **extra}


H1 = f.history_block("h1", "USER", "hello")
BIG = "x" * 1024

CASES = [
    # order of the session
    bad("before-session-start", [], f.prompt_start(), "session-not-started", GENERIC, False),
    bad("audio-before-session-start", [], f.audio_input(), "session-not-started", GENERIC, False),
    ok("session-start-first", [], f.session_start()),
    bad("second-session-start", S, f.session_start(), "session-already-started", GENERIC, False),
    bad("second-session-start-in-prompt", SYS, f.session_start(), "session-already-started", GENERIC, False),
    ok("prompt-after-session-start", S, f.prompt_start()),
    bad("after-session-end", FULL_N2, f.prompt_start("p9"), "session-ended", GENERIC, False),
    bad("session-end-twice", FULL_N2, f.session_end(), "session-ended", GENERIC, False),
    bad("session-end-open-prompt-strict", SYS, f.session_end(), "session-end-with-open-prompt", GENERIC, False,
        cfg={"reject_session_end_with_open_prompt": True}),
    ok("session-end-open-prompt-default", SYS, f.session_end()),
    ok("session-end-after-prompt-end", SYS + [f.prompt_end()], f.session_end()),
    # sessionStart shape per model
    bad("flat-endpointing-nova2", [], f.session_start(flat="MEDIUM"), "flat-endpointing-on-nova2", GENERIC, True),
    bad("flat-endpointing-nova25", [], f.session_start(flat="HIGH"), "flat-endpointing-on-nova2", GENERIC, True,
        model=N25),
    ok("flat-endpointing-nova1", [], f.session_start(flat="MEDIUM"), model=N1),
    ok("nested-endpointing-nova2", [], f.session_start(nested="LOW")),
    ok("flat-endpointing-nova2-switch-off", [], f.session_start(flat="MEDIUM"),
       cfg={"reject_flat_endpointing_on_nova2": False}),
    bad("nested-on-nova1", [], f.session_start(nested="LOW"), "turn-detection-on-nova1", GENERIC, False, model=N1),
    ok("nested-on-nova1-switch-off", [], f.session_start(nested="LOW"), model=N1,
       cfg={"reject_turn_detection_on_nova1": False}),
    # prompts
    bad("content-without-prompt", S, f.text_start("sys", "SYSTEM"), "prompt-not-open", GENERIC, False),
    bad("prompt-end-without-prompt", S, f.prompt_end(), "prompt-not-open", GENERIC, False),
    bad("content-after-prompt-end", SYS + [f.prompt_end()], f.audio_start(), "prompt-not-open", GENERIC, False),
    bad("prompt-while-prompt-open", SYS, f.prompt_start("p2"), "prompt-already-open", GENERIC, False),
    ok("second-prompt-after-prompt-end", SYS + [f.prompt_end()], f.prompt_start("p2")),
    bad("second-prompt-disallowed", SYS + [f.prompt_end()], f.prompt_start("p2"), "prompt-restart", GENERIC, False,
        cfg={"allow_new_prompt_after_prompt_end": False}),
    bad("prompt-name-reused", SYS + [f.prompt_end()], f.prompt_start("p1"), "prompt-name-reused", GENERIC, False),
    bad("content-start-other-prompt", SYS, f.text_start("h1", "USER", prompt_name="other"), "prompt-name-mismatch",
        GENERIC, False),
    bad("text-input-other-prompt", SYS + [f.text_start("h1", "USER")], f.text_input("h1", "x", prompt_name="other"),
        "prompt-name-mismatch", GENERIC, False),
    bad("prompt-end-other-prompt", SYS, f.prompt_end("other"), "prompt-name-mismatch", GENERIC, False),
    ok("prompt-end-same-prompt", SYS, f.prompt_end()),
    # voice
    bad("voice-empty", S, f.prompt_start(voice=""), "voice-empty", texts.EMPTY_VOICE, True),
    bad("voice-missing", S, f.prompt_start(voice=None), "voice-empty", texts.EMPTY_VOICE, True),
    bad("voice-empty-even-when-unknown-allowed", S, f.prompt_start(voice=""), "voice-empty", texts.EMPTY_VOICE, True,
        cfg={"reject_unknown_voice": False}),
    bad("voice-not-nova1", S, f.prompt_start(voice="olivia"), "voice-unknown", GENERIC, False, model=N1),
    bad("voice-made-up", S, f.prompt_start(voice="bob"), "voice-unknown", GENERIC, False, model=N25),
    ok("voice-nova2", S, f.prompt_start(voice="olivia")),
    ok("voice-nova1", S, f.prompt_start(voice="greta"), model=N1),
    ok("voice-unknown-switch-off", S, f.prompt_start(voice="olivia"), model=N1, cfg={"reject_unknown_voice": False}),
    # tools
    bad("tool-name-duplicate", S, f.prompt_start(tools=[f.tool("a"), f.tool("a")]), "tool-name-duplicate", GENERIC,
        False),
    ok("tool-names-distinct", S, f.prompt_start(tools=[f.tool("a"), f.tool("b")])),
    ok("tools-empty-list", S, f.prompt_start(tools=[])),
    bad("tool-choice-unknown", S, f.prompt_start(tools=[f.tool("a")], tool_choice=ToolChoice.named("b")),
        "tool-choice-unknown-tool", GENERIC, False),
    ok("tool-choice-known", S, f.prompt_start(tools=[f.tool("a")], tool_choice=ToolChoice.named("a"))),
    ok("tool-choice-any", S, f.prompt_start(tools=[f.tool("a")], tool_choice=ToolChoice.any_())),
    ok("tool-config-switch-off", S, f.prompt_start(tools=[f.tool("a"), f.tool("a")]),
       cfg={"reject_bad_tool_configuration": False}),
    bad("tool-schema-not-json", S, f.prompt_start(tools=[f.tool("a", "{not json")]), "tool-schema-invalid", GENERIC,
        False),
    bad("tool-schema-json-string", S, f.prompt_start(tools=[f.tool("a", '"object"')]), "tool-schema-invalid",
        GENERIC, False),
    ok("tool-schema-invalid-switch-off", S, f.prompt_start(tools=[f.tool("a", "{not json")]),
       cfg={"reject_invalid_input_schema": False}),
    *(
        bad(f"tool-schema-{kw}", S, f.prompt_start(tools=[f.tool("a", schema)]), "tool-schema-unsupported-keyword",
            GENERIC, True)
        for kw, schema in [
            ("anyOf", {"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}),
            ("default", {"type": "object", "properties": {"x": {"type": "string", "default": "d"}}}),
            ("additionalProperties", _schema(additionalProperties=False)),
            ("title", _schema(title="Args")),
            ("nested-items", {"type": "object", "properties": {"x": {"type": "array", "items": {"title": "T"}}}}),
        ]
    ),
    ok("tool-schema-property-named-title", S, f.prompt_start(
        tools=[f.tool("a", {"type": "object", "properties": {"title": {"type": "string"},
                                                              "default": {"type": "string"}}})])),
    ok("tool-schema-keywords-switch-off", S, f.prompt_start(tools=[f.tool("a", _schema(title="Args"))]),
       cfg={"reject_unsupported_schema_keywords": False}),
    # first block, SYSTEM
    bad("first-block-user", P, f.text_start("h1", "USER"), "first-content-not-system", texts.FIRST_CONTENT_SYSTEM,
        True),
    bad("first-block-audio", P, f.audio_start(), "first-content-not-system", texts.FIRST_CONTENT_SYSTEM, True),
    ok("first-block-system", P, f.text_start("sys", "SYSTEM")),
    ok("first-block-system-interactive", P, f.text_start("sys", "SYSTEM", interactive=True)),
    bad("system-interactive-disallowed", P, f.text_start("sys", "SYSTEM", interactive=True), "system-interactive",
        GENERIC, False, cfg={"allow_interactive_system_block": False}),
    bad("duplicate-system", SYS, f.text_start("sys2", "SYSTEM"), "duplicate-system", texts.DUPLICATE_SYSTEM, True),
    bad("duplicate-system-after-audio", LIVE, f.text_start("sys2", "SYSTEM"), "duplicate-system",
        texts.DUPLICATE_SYSTEM, True),
    bad("system-audio-block", P, _content_start("AUDIO", "SYSTEM"), "system-not-text", GENERIC, False),
    # block shapes
    bad("audio-assistant", SYS, _content_start("AUDIO", "ASSISTANT"), "content-role-mismatch", GENERIC, False),
    bad("text-tool-role", SYS, _content_start("TEXT", "TOOL"), "content-role-mismatch", GENERIC, False),
    bad("tool-user-role", SYS, _content_start("TOOL", "USER"), "content-role-mismatch", GENERIC, False),
    ok("audio-user", SYS, _content_start("AUDIO", "USER")),
    bad("content-name-reused", SYS, f.text_start("sys", "USER"), "content-name-reused", GENERIC, False),
    bad("content-name-reused-open", AUD, f.text_start("mic", "USER"), "content-name-reused", GENERIC, False),
    ok("content-name-new", SYS, f.text_start("h1", "USER")),
    ok("content-name-reused-in-new-prompt", SYS + [f.prompt_end(), f.prompt_start("p2")],
       f.text_start("sys", "SYSTEM", prompt_name="p2")),
    bad("text-input-never-started", SYS, f.text_input("nope", "x"), "content-not-open", GENERIC, False),
    bad("text-input-ended-block", SYS, f.text_input("sys", "x"), "content-not-open", GENERIC, False),
    bad("content-end-never-started", SYS, f.content_end("nope"), "content-not-open", GENERIC, False),
    bad("content-end-twice", SYS, f.content_end("sys"), "content-not-open", GENERIC, False),
    bad("audio-input-ended-block", AUD + [f.content_end("mic")], f.audio_input(), "content-not-open", GENERIC, False),
    ok("text-input-open-block", SYS + [f.text_start("h1", "USER")], f.text_input("h1", "x")),
    bad("text-overlap", P + [f.text_start("sys", "SYSTEM")], f.text_start("h1", "USER"), "content-overlap", GENERIC,
        False),
    bad("audio-overlap", AUD, f.audio_start("mic2"), "content-overlap", GENERIC, False),
    bad("tool-overlap-text", TOOL + [f.text_start("t", "USER", interactive=True)], f.tool_result_start("r1", "t1"),
        "content-overlap", GENERIC, False),
    ok("text-next-to-audio", AUD, f.text_start("t", "USER", interactive=True)),
    ok("tool-next-to-audio", TOOL, f.tool_result_start("r1", "t1")),
    ok("overlap-switch-off", AUD, f.audio_start("mic2"), cfg={"reject_overlapping_blocks": False}),
    bad("text-input-in-audio", AUD, f.text_input("mic", "x"), "content-type-mismatch", GENERIC, False),
    bad("tool-result-in-text", SYS + [f.text_start("h1", "USER")], f.tool_result("h1"), "content-type-mismatch",
        GENERIC, False),
    bad("audio-in-tool", TOOL + [f.tool_result_start("r1", "t1")], f.audio_input("r1"), "content-type-mismatch",
        GENERIC, False),
    bad("text-input-in-tool", TOOL + [f.tool_result_start("r1", "t1")], f.text_input("r1", "{}"),
        "content-type-mismatch", GENERIC, False),
    # promptEnd
    ok("prompt-end-with-open-audio", LIVE, f.prompt_end()),
    bad("prompt-end-with-open-audio-strict", LIVE, f.prompt_end(), "prompt-end-with-open-content", GENERIC, False,
        cfg={"reject_prompt_end_with_open_content": True}),
    bad("nova1-prompt-without-audio", SYS, f.prompt_end(), "prompt-without-audio", GENERIC, False, model=N1),
    ok("nova1-prompt-with-audio", LIVE + [f.content_end("mic")], f.prompt_end(), model=N1),
    ok("nova1-prompt-without-audio-switch-off", SYS, f.prompt_end(), model=N1,
       cfg={"require_audio_block_on_nova1_prompt_end": False}),
    ok("nova2-prompt-without-audio", SYS, f.prompt_end()),
    # chat history
    ok("history-after-system", SYS, f.text_start("h1", "USER")),
    ok("history-after-audio-block-before-audio-input", AUD, f.text_start("h1", "USER")),
    bad("history-after-audio-block-strict", AUD, f.text_start("h1", "USER"), "history-after-audio", GENERIC, False,
        cfg={"history_ends_at_audio_block": True}),
    bad("history-after-audio-input", LIVE, f.text_start("h1", "USER"), "history-after-audio", GENERIC, False),
    bad("history-after-audio-input-closed", LIVE + [f.content_end("mic")], f.text_start("h1", "ASSISTANT"),
        "history-after-audio", GENERIC, False),
    ok("interactive-text-after-audio", LIVE, f.text_start("t1", "USER", interactive=True)),
    bad("history-assistant-first", SYS, f.text_start("h1", "ASSISTANT"), "history-not-user-first", GENERIC, False),
    ok("history-assistant-first-switch-off", SYS, f.text_start("h1", "ASSISTANT"),
       cfg={"require_history_user_first": False}),
    bad("history-user-user", SYS + H1, f.text_start("h2", "USER"), "history-not-alternating", GENERIC, False),
    ok("history-user-assistant", SYS + H1, f.text_start("h2", "ASSISTANT")),
    ok("history-user-user-switch-off", SYS + H1, f.text_start("h2", "USER"),
       cfg={"require_history_alternation": False}),
    bad("history-input-1025", SYS + [f.text_start("h1", "USER")], f.text_input("h1", BIG + "x"),
        "history-input-too-large", GENERIC, False),
    bad("history-input-multibyte", SYS + [f.text_start("h1", "USER")], f.text_input("h1", "é" * 513),
        "history-input-too-large", GENERIC, False),
    ok("history-input-1024", SYS + [f.text_start("h1", "USER")], f.text_input("h1", BIG)),
    ok("system-text-over-1k", P + [f.text_start("sys", "SYSTEM")], f.text_input("sys", BIG * 3)),
    ok("interactive-text-over-1k", AUD + [f.text_start("t", "USER", interactive=True)], f.text_input("t", BIG * 3)),
    ok("history-40k", SYS + [f.text_start("h1", "USER")] + [f.text_input("h1", BIG)] * 39, f.text_input("h1", BIG)),
    bad("history-over-40k", SYS + [f.text_start("h1", "USER")] + [f.text_input("h1", BIG)] * 40,
        f.text_input("h1", "x"), "history-too-large", GENERIC, False),
    bad("history-too-many", SYS + H1 + f.history_block("h2", "ASSISTANT", "hi"), f.text_start("h3", "USER"),
        "history-too-many-messages", GENERIC, False, limits={"history_max_messages": 2}),
    ok("history-many-unlimited", SYS + H1 + f.history_block("h2", "ASSISTANT", "hi"), f.text_start("h3", "USER")),
    # audio
    bad("audio-while-interactive-text-open", AUD + [f.text_start("t", "USER", interactive=True)], f.audio_input(),
        "audio-while-text-open", texts.CHAT_HISTORY_BEFORE_AUDIO, True),
    bad("audio-while-history-open", AUD + [f.text_start("h1", "USER")], f.audio_input(), "audio-while-text-open",
        texts.CHAT_HISTORY_BEFORE_AUDIO, True),
    bad("audio-while-system-open", P + [f.text_start("sys", "SYSTEM"), f.audio_start()], f.audio_input(),
        "audio-while-text-open", texts.CHAT_HISTORY_BEFORE_AUDIO, True, cfg={"reject_overlapping_blocks": False}),
    ok("audio-after-text-closed", AUD + f.interactive_text_block("t", "hi"), f.audio_input()),
    bad("audio-not-base64", AUD, AudioInput(prompt_name=f.PROMPT, content_name="mic", content="!!not base64"),
        "audio-not-base64", GENERIC, False),
    ok("audio-empty-frame", AUD, AudioInput(prompt_name=f.PROMPT, content_name="mic", content="")),
    bad("audio-too-large", AUD, f.audio_input(ms=64), "audio-input-too-large", GENERIC, False,
        limits={"max_audio_input_bytes": 1024}),
    ok("audio-at-limit", AUD, f.audio_input(ms=32), limits={"max_audio_input_bytes": 1024}),
    ok("audio-while-tool-owed-default", TOOL, f.audio_input()),
    bad("audio-while-tool-owed-strict", TOOL, f.audio_input(), "audio-while-tool-result-owed", GENERIC, True,
        cfg={"allow_audio_while_tool_result_owed": False}),
    ok("audio-after-tool-answered-strict", TOOL + f.tool_result_block("r1", "t1"), f.audio_input(),
       cfg={"allow_audio_while_tool_result_owed": False}),
    # tool results
    bad("tool-result-unknown-id", AUD, f.tool_result_start("r1", "t-unknown"), "tool-result-unknown-id", GENERIC,
        False),
    ok("tool-result-known-id", TOOL, f.tool_result_start("r1", "t1")),
    ok("tool-result-unknown-id-switch-off", AUD, f.tool_result_start("r1", "t-unknown"),
       cfg={"reject_unknown_tool_use_id": False}),
    bad("tool-result-second-block", TOOL + f.tool_result_block("r1", "t1"), f.tool_result_start("r2", "t1"),
        "tool-result-duplicate", GENERIC, False),
    bad("tool-result-second-in-block", TOOL + [f.tool_result_start("r1", "t1"), f.tool_result("r1")],
        f.tool_result("r1"), "tool-result-duplicate", GENERIC, False),
    ok("tool-result-duplicate-switch-off", TOOL + f.tool_result_block("r1", "t1"), f.tool_result_start("r2", "t1"),
       cfg={"reject_duplicate_tool_result": False}),
    *(
        bad(f"tool-result-{label}", TOOL + [f.tool_result_start("r1", "t1")], f.tool_result("r1", content),
            "tool-result-not-json-object", texts.TOOL_RESPONSE_PARSING, True)
        for label, content in [("not-json", "sunny"), ("array", "[1, 2]"), ("string", '"{\\"a\\": 1}"'),
                               ("number", "42"), ("empty", "")]
    ),
    ok("tool-result-object", TOOL + [f.tool_result_start("r1", "t1")], f.tool_result("r1", {"date": "2025-07-15"})),
    bad("tool-result-too-large", TOOL + [f.tool_result_start("r1", "t1")], f.tool_result("r1", {"a": "x" * 20}),
        "tool-result-too-large", GENERIC, False, limits={"max_tool_result_bytes": 16}),
]


def _prepare(case: Case) -> InputMachine:
    m = make(case.model, case.cfg, case.limits)
    run(m, case.prefix)
    return m


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule(case: Case) -> None:
    m = _prepare(case)
    verdict = m.check(case.event)
    if case.rule is None:
        assert verdict is None, f"{case.id}: unexpected {verdict!r} {getattr(verdict, '__notes__', '')}"
        m.feed(case.event)
        assert m.state is not State.ERRORED
        return
    assert verdict is not None, f"{case.id}: accepted"
    assert (verdict.rule, verdict.message, verdict.exception_type, verdict.confident) == (
        case.rule, case.text, "validationException", case.confident
    )
    assert verdict.event_name == case.event.EVENT_NAME
    with pytest.raises(ProtocolViolation) as info:
        m.feed(case.event)
    v = info.value
    assert (v.rule, v.message, v.exception_type, v.confident) == (case.rule, case.text, "validationException",
                                                                  case.confident)
    assert m.state is State.ERRORED and m.error is v


def test_every_rule_is_exercised() -> None:
    covered = {c.rule for c in CASES if c.rule}
    covered |= {"machine-errored", "unparsable-chunk", "input-schema-object", "unknown-input-event",
                "invalid-event-unknown-field", "invalid-event"}  # tested below
    assert covered == set(RULES)


def test_rule_confidence_matches_catalogue() -> None:
    for c in CASES:
        if c.rule:
            assert RULES[c.rule].confident is c.confident, c.id


# --- whole sessions ------------------------------------------------------------------------------


def _full_session(model: str) -> list[Any]:
    nova1 = model == N1
    voice = "tiffany"
    return [
        f.session_start(flat="MEDIUM") if nova1 else f.session_start(nested="HIGH"),
        f.prompt_start(voice=voice, tools=[f.tool("getDateTool")], tool_choice=ToolChoice.auto_()),
        *f.system_block("Be brief."),
        *f.history_block("h1", "USER", "What is the capital of France?"),
        *f.history_block("h2", "ASSISTANT", "Paris. ", "It is also the largest city."),
        f.audio_start("mic"),
        *f.audio_frames("mic", count=50),
        Note("tool-1"),
        *f.tool_result_block("r1", "tool-1", {"date": "2025-07-15"}),
        *f.audio_frames("mic", count=10),
        *f.interactive_text_block("t1", "And Germany?"),
        *f.audio_frames("mic", count=5),
        f.content_end("mic"),
        f.prompt_end(),
        f.session_end(),
    ]


@pytest.mark.parametrize("model", MODELS)
def test_full_valid_session(model: str) -> None:
    m = make(model)
    facts = run(m, _full_session(model))
    assert m.state is State.CLOSED and m.error is None
    kinds = [type(x) for x in facts]
    assert kinds[0] is SessionStarted and kinds[-1] is SessionEnded
    ss = facts[0]
    assert ss.endpointing_sensitivity == ("MEDIUM" if model == N1 else "HIGH")
    assert ss.max_tokens == 1024
    ps = next(x for x in facts if isinstance(x, PromptStarted))
    assert (ps.voice_id, ps.tool_names, ps.tool_choice, ps.output_sample_rate_hertz) == (
        "tiffany", ("getDateTool",), "auto", 24000)
    assert next(x for x in facts if isinstance(x, SystemPromptReceived)).text == "Be brief."
    hist = [x for x in facts if isinstance(x, HistoryMessageReceived)]
    assert [(h.role, h.text, h.index) for h in hist] == [
        ("USER", "What is the capital of France?", 0),
        ("ASSISTANT", "Paris. It is also the largest city.", 1),
    ]
    tr = next(x for x in facts if isinstance(x, ToolResultDelivered))
    assert (tr.tool_use_id, tr.result) == ("tool-1", {"date": "2025-07-15"})
    it = next(x for x in facts if isinstance(x, InteractiveTextSubmitted))
    assert it.text == "And Germany?"
    assert it.starts_response is (model != N1)
    audio = [x for x in facts if isinstance(x, AudioReceived)]
    assert len(audio) == 65 and audio[0].n_bytes == 1024 and audio[0].duration_ms == pytest.approx(32.0)
    assert audio[-1].total_ms == pytest.approx(65 * 32.0)
    assert m.audio_ms_received == pytest.approx(65 * 32.0) and m.audio_bytes_received == 65 * 1024
    closed = next(x for x in facts if isinstance(x, AudioBlockClosed))
    assert (closed.n_bytes, closed.implicit) == (65 * 1024, False)
    assert closed.duration_ms == pytest.approx(2080.0)
    pe = next(x for x in facts if isinstance(x, PromptEnded))
    assert pe.open_blocks == () and pe.unanswered_tool_use_ids == ()


def test_properties_follow_the_prompt() -> None:
    m = make()
    assert (m.state, m.prompt_name, m.phase, m.open_blocks) == (State.IDLE, None, None, ())
    run(m, P)
    assert (m.state, m.prompt_name, m.phase) == (State.PROMPT_OPEN, "p1", Phase.NEEDS_SYSTEM)
    run(m, f.system_block("sys text") + f.history_block("h1", "USER", "hello"))
    assert (m.phase, m.system_prompt, m.history_bytes, m.history_messages) == (Phase.HISTORY, "sys text", 5, 1)
    run(m, [f.audio_start("mic", sample_rate=24000), Note("t1"), Note("t2")])
    (blk,) = m.open_blocks
    assert (blk.content_name, blk.kind, blk.sample_rate_hertz) == ("mic", "audio", 24000)
    assert m.pending_tool_use_ids == ("t1", "t2")
    run(m, [f.audio_input(ms=100, sample_rate=24000)])
    assert m.phase is Phase.LIVE and m.audio_ms_received == pytest.approx(100.0)
    run(m, f.tool_result_block("r1", "t2"))
    assert m.pending_tool_use_ids == ("t1",) and m.answered_tool_use_ids == {"t2"}
    assert m.model_info.model_id == N2


def test_audio_block_facts_and_rates() -> None:
    m = make()
    run(m, SYS)
    facts = m.feed(f.audio_start("mic", sample_rate=8000))
    assert facts == [AudioBlockOpened(prompt_name="p1", content_name="mic", sample_rate_hertz=8000)]
    (fact,) = m.feed(f.audio_input(ms=250, sample_rate=8000))
    assert fact.n_bytes == 4000 and fact.duration_ms == pytest.approx(250.0)


def test_prompt_end_closes_open_blocks_implicitly() -> None:
    m = make()
    run(m, LIVE + [Note("t9")])
    facts = m.feed(f.prompt_end())
    assert isinstance(facts[0], AudioBlockClosed) and facts[0].implicit
    assert isinstance(facts[1], ContentClosed) and facts[1].implicit
    assert facts[-1] == PromptEnded(prompt_name="p1", open_blocks=("mic",), unanswered_tool_use_ids=("t9",))
    assert m.state is State.SESSION_OPEN and m.prompt_name is None


def test_session_end_with_open_prompt_ends_it() -> None:
    m = make()
    run(m, SYS)
    facts = m.feed(f.session_end())
    assert isinstance(facts[-2], PromptEnded) and facts[-1] == SessionEnded(open_prompt="p1")
    assert m.state is State.CLOSED


def test_nova1_interactive_text_is_accepted_but_does_not_start_a_response() -> None:
    m = make(N1)
    facts = run(m, AUD + f.interactive_text_block("t1", "hello"))
    (it,) = [x for x in facts if isinstance(x, InteractiveTextSubmitted)]
    assert it.starts_response is False and it.text == "hello"


def test_note_output_registers_tool_use() -> None:
    m = make()
    run(m, AUD)
    m.note_output(f.completion_start())  # ignored
    m.note_output(f.out_tool_use("c9", "tool-7", "getDateTool", {}))
    assert m.pending_tool_use_ids == ("tool-7",)
    run(m, f.tool_result_block("r1", "tool-7"))
    assert m.pending_tool_use_ids == ()


def test_feed_rejects_untyped_input() -> None:
    m = make()
    with pytest.raises(TypeError):
        m.feed({"sessionStart": {}})  # type: ignore[arg-type]


# --- errored state -------------------------------------------------------------------------------


def test_errored_state_cites_the_first_error() -> None:
    m = make()
    run(m, P)
    with pytest.raises(ProtocolViolation) as first:
        m.feed(f.text_start("h1", "USER"))
    assert m.state is State.ERRORED
    for event in (f.text_start("sys", "SYSTEM"), f.prompt_end(), f.session_end(), f.session_start()):
        v = m.check(event)
        assert v is not None and v.rule == "machine-errored"
        assert v.message == texts.FIRST_CONTENT_SYSTEM and v.confident is True
        assert v.__cause__ is first.value
        with pytest.raises(ProtocolViolation) as later:
            m.feed(event)
        assert later.value.rule == "machine-errored" and later.value.__cause__ is first.value
        assert "first-content-not-system" in "".join(later.value.__notes__)
    assert m.error is first.value


def test_fail_enters_errored_state() -> None:
    m = make()
    run(m, S)
    v = m.check_parse_error(_decode_error(b"{nope"))
    assert m.state is State.SESSION_OPEN  # check_parse_error is pure
    m.fail(v)
    assert m.state is State.ERRORED and m.error is v
    m.fail(m.check_parse_error(_decode_error(b"\xff")))  # no-op once errored
    assert m.error is v
    with pytest.raises(ProtocolViolation) as info:
        m.feed(f.prompt_start())
    assert info.value.message == texts.UNPARSABLE_CHUNK and info.value.__cause__ is v


def test_violation_names_state_and_detail() -> None:
    m = make()
    run(m, SYS)
    v = m.check(f.text_input("ghost", "x"))
    assert v is not None
    assert "PROMPT_OPEN" in v.state and "p1" in v.state
    assert v.event_name == "textInput"
    assert "'ghost' was never started" in v.__notes__[0]


# --- RequestId prefix ------------------------------------------------------------------------------


def test_request_id_prefix_observed_policy() -> None:
    m = make(request_id="rid-1")
    run(m, SYS)
    dup = m.check(f.text_start("sys2", "SYSTEM"))
    assert dup is not None and dup.message == "RequestId=rid-1 : " + texts.DUPLICATE_SYSTEM
    generic = m.check(f.text_input("ghost", "x"))
    assert generic is not None and generic.message == GENERIC  # not seen with the prefix


def test_request_id_prefix_policies() -> None:
    always = make(cfg={"prefix_request_id": "always"}, request_id="r")
    assert always.check(f.prompt_start()).message == f"RequestId=r : {GENERIC}"  # type: ignore[union-attr]
    never = make(cfg={"prefix_request_id": "never"}, request_id="r")
    run(never, SYS + [Note("t1"), f.audio_start(), f.tool_result_start("r1", "t1")])
    assert never.check(f.tool_result("r1", "x")).message == texts.TOOL_RESPONSE_PARSING  # type: ignore[union-attr]
    no_id = make()
    run(no_id, SYS)
    assert no_id.check(f.text_start("s2", "SYSTEM")).message == texts.DUPLICATE_SYSTEM  # type: ignore[union-attr]


def test_with_request_id() -> None:
    assert texts.with_request_id("Tool Response parsing error", "69aacc09") == (
        "RequestId=69aacc09 : Tool Response parsing error")
    assert texts.service_text(GENERIC, None, "always") == GENERIC


def test_custom_unknown_text() -> None:
    m = make(cfg={"unknown_text": "nope"})
    v = m.check(f.prompt_start())
    assert v is not None and (v.message, v.confident) == ("nope", False)
    run(m, S)
    known = m.check(f.prompt_start(voice=""))
    assert known is not None and known.message == texts.EMPTY_VOICE


# --- parse errors -------------------------------------------------------------------------------


def _decode_error(data: Any) -> Exception:
    with pytest.raises((EventDecodeError, EventValidationError)) as info:
        parse_input(data)
    return info.value


PARSE_CASES = [
    ("not-json", b"{nope", "unparsable-chunk", texts.UNPARSABLE_CHUNK, False, None),
    ("not-utf8", b"\xff\xfe", "unparsable-chunk", texts.UNPARSABLE_CHUNK, False, None),
    ("schema-object", {"event": {"promptStart": {
        "promptName": "p", "audioOutputConfiguration": {"voiceId": "matthew"},
        "toolConfiguration": {"tools": [{"toolSpec": {"name": "a", "description": "d",
                                                      "inputSchema": {"json": {"type": "object"}}}}]}}}},
     "input-schema-object", texts.UNPARSABLE_CHUNK, True, "promptStart"),
    ("connection-end", {"event": {"connectionEnd": {}}}, "unknown-input-event", GENERIC, False, "connectionEnd"),
    ("unknown-field", {"event": {"sessionEnd": {"foo": 1}}}, "invalid-event-unknown-field", GENERIC, True,
     "sessionEnd"),
    ("bad-value", {"event": {"contentStart": {"promptName": "p", "contentName": "c", "type": "VIDEO",
                                              "interactive": False, "role": "USER"}}},
     "invalid-event", GENERIC, False, "contentStart"),
    ("no-envelope", {"sessionEnd": {}}, "invalid-event", GENERIC, False, None),
]


@pytest.mark.parametrize("data,rule,text,confident,event_name", [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_check_parse_error(data: Any, rule: str, text: str, confident: bool, event_name: str | None) -> None:
    exc = _decode_error(data)
    v = violation_for_parse_error(exc)  # type: ignore[arg-type]
    assert (v.rule, v.message, v.exception_type, v.confident, v.event_name) == (
        rule, text, "validationException", confident, event_name)
    m = make(request_id="rid")
    assert m.check_parse_error(exc).rule == rule  # type: ignore[arg-type]


def test_check_parse_error_rejects_other_exceptions() -> None:
    with pytest.raises(TypeError):
        violation_for_parse_error(ValueError("x"))  # type: ignore[arg-type]


def test_valid_parse_round_trip_reaches_the_machine() -> None:
    m = make()
    for event in _full_session(N2):
        if isinstance(event, Note):
            m.note_tool_use(event.tool_use_id)
            continue
        m.feed(parse_input(event.to_bytes()))
    assert m.state is State.CLOSED


# --- tables ---------------------------------------------------------------------------------------


def test_transition_table_is_complete() -> None:
    rows = transition_table()
    assert len(rows) == len(State) * 9
    assert (State.IDLE, "sessionStart", State.SESSION_OPEN) in rows
    assert (State.PROMPT_OPEN, "promptEnd", State.SESSION_OPEN) in rows
    assert (State.SESSION_OPEN, "textInput", "prompt-not-open") in rows
    assert (State.CLOSED, "sessionEnd", "session-ended") in rows
    for _, _, target in rows:
        assert isinstance(target, State) or target in RULES


def test_package_docstring_lists_every_rule() -> None:
    import novasonic.rules as rules

    for rule_id in RULES:
        assert f"``{rule_id}``" in (rules.__doc__ or "")


# --- purity and agreement (hypothesis) ---------------------------------------------------------------


def _snapshot(m: InputMachine) -> str:
    return repr({k: v for k, v in vars(m).items()})


ALPHABET: list[Any] = [
    f.session_start(),
    f.session_start(flat="MEDIUM"),
    f.session_start(nested="HIGH"),
    f.prompt_start(),
    f.prompt_start("p2"),
    f.prompt_start(voice=""),
    f.prompt_start(voice="olivia"),
    f.text_start("sys", "SYSTEM"),
    f.text_start("sys", "SYSTEM", interactive=True),
    f.text_input("sys", "be nice"),
    f.content_end("sys"),
    f.text_start("h1", "USER"),
    f.text_start("h2", "ASSISTANT"),
    f.text_input("h1", "hello"),
    f.text_input("h1", BIG + "x"),
    f.text_input("h2", "hi"),
    f.content_end("h1"),
    f.content_end("h2"),
    f.text_start("t1", "USER", interactive=True),
    f.text_input("t1", "typed"),
    f.content_end("t1"),
    f.audio_start("mic"),
    f.audio_start("mic", prompt_name="p2"),
    f.audio_input("mic"),
    f.audio_input("mic", prompt_name="p2"),
    f.content_end("mic"),
    f.tool_result_start("r1", "t1"),
    f.tool_result("r1"),
    f.tool_result("r1", "nope"),
    f.content_end("r1"),
    f.prompt_end(),
    f.prompt_end("p2"),
    f.session_end(),
    Note("t1"),
]


EVENTS = [e for e in ALPHABET if not isinstance(e, Note)]


def _step(m: InputMachine, step: Any) -> None:
    """Feed one step and check that check() agreed with feed() and changed nothing."""
    if isinstance(step, Note):
        m.note_tool_use(step.tool_use_id)
        return
    before = _snapshot(m)
    verdict = m.check(step)
    assert _snapshot(m) == before, "check() changed the machine"
    try:
        m.feed(step)
    except ProtocolViolation as v:
        assert verdict is not None, f"check accepted what feed rejected: {v}"
        assert (v.rule, v.message, v.confident) == (verdict.rule, verdict.message, verdict.confident)
        assert m.state is State.ERRORED
    else:
        assert verdict is None, f"check rejected what feed accepted: {verdict}"
        assert m.state is not State.ERRORED


@settings(max_examples=200, deadline=None)
@given(model=st.sampled_from(MODELS), steps=st.lists(st.sampled_from(ALPHABET), max_size=30))
def test_random_sequences_only_raise_protocol_violations(model: str, steps: list[Any]) -> None:
    m = make(model)
    for step in steps:
        _step(m, step)


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(MODELS), strict=st.booleans(), data=st.data())
def test_mostly_valid_random_walks(model: str, strict: bool, data: st.DataObject) -> None:
    """Walks that usually pick an event check() accepts, so they get deep into prompts; every
    step still compares check() with feed()."""
    cfg = {"allow_audio_while_tool_result_owed": not strict, "reject_prompt_end_with_open_content": strict,
           "history_ends_at_audio_block": strict, "reject_overlapping_blocks": not strict}
    m = make(model, cfg)
    for _ in range(data.draw(st.integers(0, 60), label="length")):
        before = _snapshot(m)
        accepted = [e for e in EVENTS if m.check(e) is None]
        assert _snapshot(m) == before
        going_on = [e for e in accepted if e.EVENT_NAME not in ("promptEnd", "sessionEnd")]
        roll = data.draw(st.integers(0, 19), label="roll")
        if going_on and roll < 15:
            step = data.draw(st.sampled_from(going_on + [Note("t1")]), label="valid step")
        elif accepted and roll < 17:
            step = data.draw(st.sampled_from(accepted), label="valid or ending step")
        else:
            step = data.draw(st.sampled_from(ALPHABET), label="any step")
        _step(m, step)


def test_check_has_no_side_effect_on_accepting_or_rejecting() -> None:
    m = make()
    run(m, SYS)
    before = _snapshot(m)
    assert m.check(f.audio_start()) is None
    assert m.check(f.text_start("sys2", "SYSTEM")) is not None
    assert m.check(f.text_input("sys", "late")) is not None
    assert _snapshot(m) == before
    assert m.open_blocks == ()


def test_json_dumps_of_facts_is_not_needed_but_reprs_hide_results() -> None:
    fact = ToolResultDelivered(prompt_name="p", content_name="c", tool_use_id="t", result={"secret": 1})
    assert "secret" not in repr(fact)
    assert json.dumps(fact.result) == '{"secret": 1}'


# --- config and limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{"reject_unknown_voice": 1}, {"prefix_request_id": "sometimes"},
                                {"unknown_text": ""}])
def test_config_rejects_bad_values(kw: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        RulesConfig(**kw)


@pytest.mark.parametrize("kw", [{"history_total_bytes": 0}, {"max_stream_age_s": None}, {"idle_input_timeout_s": -1}])
def test_limits_reject_bad_values(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Limits(**kw)


def test_limit_defaults_match_the_spec() -> None:
    lim = Limits()
    assert (lim.history_total_bytes, lim.history_text_input_bytes, lim.history_max_messages) == (40960, 1024, None)
    assert (lim.max_stream_age_s, lim.idle_input_timeout_s, lim.silent_audio_timeout_s) == (480, 55, 175)
    assert (lim.max_concurrent_streams_per_key, lim.max_event_payload_bytes) == (20, 16 * 1024 * 1024)
    assert lim.recommended_frame_bytes(16000) == 1024


def test_history_limits_can_be_lifted() -> None:
    m = make(limits={"history_text_input_bytes": None, "history_total_bytes": None})
    run(m, SYS + [f.text_start("h1", "USER")])
    assert m.check(f.text_input("h1", BIG * 50)) is None
