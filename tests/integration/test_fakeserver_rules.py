"""Protocol violations against the STOCK SDK client: the fake answers each broken rule of
protocol.md §3 with the service's in-stream ``validationException`` and its exact text, which the
SDK raises from ``receive()`` as ``aws_sdk_bedrock_runtime.models.ValidationException`` with
``.message`` set; the stream then ends, and the journal names the rule the offending event broke.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_sdk_bedrock_runtime.models import ValidationException

from novasonic.events import OutputEvent, Role, ToolUse
from novasonic.rules import texts
from tests.helpers import factories as f
from tests.helpers.responders import TOOL_USE_ID, ToolResponder
from tests.helpers.sessions import NOVA1, NOVA2, collect, exchange, opening, receive_n, send_all, wait_ended

AUDIO = [f.audio_start(), f.audio_input()]


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _prompt_with_schema_object() -> bytes:
    doc = json.loads(f.prompt_start(tools=[f.tool()]).to_bytes())
    spec = doc["event"]["promptStart"]["toolConfiguration"]["tools"][0]["toolSpec"]
    spec["inputSchema"]["json"] = {"type": "object", "properties": {}}
    return _raw(doc)


def _session_start_with_unknown_field() -> bytes:
    doc = json.loads(f.session_start().to_bytes())
    doc["event"]["sessionStart"]["unexpectedField"] = 1
    return _raw(doc)


@dataclass
class Case:
    """``before`` is sent (and accepted); then ``bad`` breaks ``rule`` and the SDK raises with
    ``text`` (``{rid}`` = the stream's request id, for the texts seen with the RequestId prefix)."""

    before: list[Any]
    bad: Any
    rule: str
    text: str
    model: str = NOVA2
    bad_name: str | None = None
    tool: bool = False  # a ToolResponder asks for TOOL_USE_ID when the audio block opens


START = opening()
CASES: dict[str, Case] = {
    "first-content-not-system": Case(
        [f.session_start(), f.prompt_start()], f.text_start("u1", Role.USER),
        "first-content-not-system", texts.FIRST_CONTENT_SYSTEM,
    ),
    "duplicate-system": Case(
        START, f.text_start("sys2", Role.SYSTEM), "duplicate-system", "RequestId={rid} : " + texts.DUPLICATE_SYSTEM,
    ),
    "history-after-audio": Case(
        [*START, *AUDIO], f.text_start("h1", Role.USER), "history-after-audio", texts.GENERIC_INVALID,
    ),
    "audio-inside-open-text-block": Case(
        [*START, f.audio_start(), f.text_start("typed", Role.USER, interactive=True)], f.audio_input(),
        "audio-while-text-open", texts.CHAT_HISTORY_BEFORE_AUDIO,
    ),
    "unknown-content-name": Case(
        START, f.text_input("never-started", "hi"), "content-not-open", texts.GENERIC_INVALID,
    ),
    "ended-content-name": Case(START, f.text_input("sys", "again"), "content-not-open", texts.GENERIC_INVALID),
    "wrong-prompt-name": Case(
        START, f.text_start("u1", Role.USER, prompt_name="other-prompt"), "prompt-name-mismatch", texts.GENERIC_INVALID,
    ),
    "tool-result-unknown-id": Case(
        [*START, *AUDIO], f.tool_result_start("t1", "no-such-tool-use"), "tool-result-unknown-id",
        texts.GENERIC_INVALID,
    ),
    "tool-result-already-answered": Case(
        [*START, *AUDIO, *f.tool_result_block("t1", TOOL_USE_ID)], f.tool_result_start("t2", TOOL_USE_ID),
        "tool-result-duplicate", texts.GENERIC_INVALID, tool=True,
    ),
    "tool-result-not-json": Case(
        [*START, *AUDIO, f.tool_result_start("t1", TOOL_USE_ID)], f.tool_result("t1", "sunny, 21 degrees"),
        "tool-result-not-json-object", "RequestId={rid} : " + texts.TOOL_RESPONSE_PARSING, tool=True,
    ),
    "event-after-session-end": Case(
        [*START, *AUDIO, f.content_end("mic"), f.prompt_end(), f.session_end()], f.prompt_start("p2"),
        "session-ended", texts.GENERIC_INVALID,
    ),
    "flat-endpointing-on-nova2": Case(
        [], f.session_start(flat="MEDIUM"), "flat-endpointing-on-nova2", texts.GENERIC_INVALID,
    ),
    "nested-endpointing-on-nova1": Case(
        [], f.session_start(nested="MEDIUM"), "turn-detection-on-nova1", texts.GENERIC_INVALID, model=NOVA1,
    ),
    "empty-voice-id": Case([f.session_start()], f.prompt_start(voice=""), "voice-empty", texts.EMPTY_VOICE),
    "missing-voice-id": Case([f.session_start()], f.prompt_start(voice=None), "voice-empty", texts.EMPTY_VOICE),
    "unknown-field": Case(
        [], _session_start_with_unknown_field(), "invalid-event-unknown-field", texts.GENERIC_INVALID,
        bad_name="sessionStart",
    ),
    "non-json-chunk": Case(
        START, b"this is not JSON {", "unparsable-chunk", texts.UNPARSABLE_CHUNK, bad_name="(unparsable)",
    ),
    "input-schema-json-object": Case(
        [f.session_start()], _prompt_with_schema_object(), "input-schema-object", texts.UNPARSABLE_CHUNK,
        bad_name="promptStart",
    ),
    "connection-end": Case(
        [*START, *AUDIO], _raw({"event": {"connectionEnd": {}}}), "unknown-input-event", texts.GENERIC_INVALID,
        bad_name="connectionEnd",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_violation_raises_validation_exception_with_service_text(start_fake, open_session, name: str) -> None:
    case = CASES[name]
    fake = await start_fake(ToolResponder() if case.tool else None)
    d = await open_session(fake, model=case.model)

    received: list[OutputEvent] = []
    for ev in case.before:
        await send_all(d, [ev])
        if case.tool and getattr(ev, "EVENT_NAME", "") == "contentStart" and ev.type == "AUDIO":
            # completionStart, TOOL contentStart, toolUse, contentEnd: the id is answerable now.
            received += await receive_n(d, 4)
            assert any(isinstance(e, ToolUse) and e.tool_use_id == TOOL_USE_ID for e in received)
    await send_all(d, [case.bad])
    output, _ = await d.await_output()
    rid = output.response_metadata.request_id
    events, exc = await collect(d)

    assert type(exc) is ValidationException, (exc, events)
    assert exc.message == case.text.format(rid=rid)
    assert await collect(d) == ([], None)  # the stream is over: receive() now returns None

    j = await wait_ended(fake)
    assert j.end == "exception:validationException"
    assert j.exceptions[-1].message == exc.message
    offending = j.client[-1]
    assert offending.verdict == case.rule
    assert offending.name == (case.bad_name or case.bad.EVENT_NAME)
    assert all(c.verdict == "accepted" for c in j.client[:-1])
    assert len(j.client) == len(case.before) + 1


@pytest.mark.parametrize("model", [NOVA1, NOVA2, "amazon.nova-2-5-sonic"])
async def test_a_correct_session_is_accepted_for_every_model(start_fake, open_session, model: str) -> None:
    fake = await start_fake()
    d = await open_session(fake, model=model)
    await send_all(d, exchange(model=model))
    await d.close_input()
    assert await collect(d) == ([], None)
    j = await wait_ended(fake)
    assert (j.model_id, j.end) == (model, "completed")
    assert {c.verdict for c in j.client} == {"accepted"}


async def test_unknown_model_is_an_http_validation_error(start_fake, open_session) -> None:
    fake = await start_fake()
    d = await open_session(fake, model="amazon.nova-3-sonic-v9:0")
    with pytest.raises(ValidationException) as info:
        await d.await_output()
    assert info.value.message == fake.config.unknown_model_message
    assert (await wait_ended(fake)).status == 400


async def test_rules_are_per_stream_and_a_clean_session_completes(start_fake, open_session) -> None:
    """A violation on one stream does not leak into the next one of the same server."""
    fake = await start_fake()
    bad = await open_session(fake)
    await send_all(bad, [f.session_start(flat="HIGH")])
    _, exc = await collect(bad)
    assert isinstance(exc, ValidationException)

    good = await open_session(fake)
    await send_all(good, [*opening(), *AUDIO, f.content_end("mic"), f.prompt_end(), f.session_end()])
    await good.close_input()
    assert await collect(good) == ([], None)
    j = await wait_ended(fake, 1)
    assert j.end == "completed" and j.input_finished
    assert {c.verdict for c in j.client} == {"accepted"}
