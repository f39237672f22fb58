"""``fakeserver.replay.matchers`` and ``bindings``: what counts as the same client event, and how
names and ids are rebound (pure functions, no server)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from fakeserver.replay import DEFAULT_MATCH_ON, MATCHERS, Bindings, MatchContext, register_matcher, resolve_matchers
from fakeserver.replay.matchers import run_matchers
from novasonic.builder import EventBuilder, sequential_names
from novasonic.events import ContentStart, InferenceConfiguration, PromptStart, Tool, ToolUse
from novasonic.models import NOVA_2_SONIC
from tests.helpers import factories as f

TOOL = Tool.define("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}})


def builder(prefix: str, **kw: Any) -> EventBuilder:
    return EventBuilder(NOVA_2_SONIC, name_factory=sequential_names(prefix), **kw)


def ctx(bindings: Bindings | None = None, **kw: Any) -> MatchContext:
    return MatchContext(bindings or Bindings(), model_id=NOVA_2_SONIC, recorded_model_id=NOVA_2_SONIC, **kw)


def failures(received, recorded, context: MatchContext, match_on: Any = None) -> list[str]:
    return [str(x) for x in run_matchers(resolve_matchers(match_on), received, recorded, context)]


# --------------------------------------------------------------------------- registry


def test_resolve_matchers() -> None:
    assert tuple(n for n, _ in resolve_matchers(None)) == DEFAULT_MATCH_ON
    assert DEFAULT_MATCH_ON == ("event_type", "model", "content_kind", "names", "tool_use_id")
    names = [n for n, _ in resolve_matchers("text, default")]
    assert names == ["event_type", "text", "model", "content_kind", "names", "tool_use_id"]

    def mine(received, recorded, c):  # noqa: ANN001
        return None

    assert [n for n, _ in resolve_matchers(["exact", mine, "exact"])] == ["event_type", "exact", "mine"]
    with pytest.raises(ValueError, match=r"unknown matcher 'nope'; known: default, event_type, model"):
        resolve_matchers(["nope"])
    with pytest.raises(TypeError, match="matcher names or callables"):
        resolve_matchers([42])  # type: ignore[list-item]


def test_register_matcher() -> None:
    def always_fails(received, recorded, c):  # noqa: ANN001
        return False

    register_matcher("always_fails_for_test", always_fails)
    try:
        b = builder("a")
        ev = b.session_start()[0]
        assert failures(ev, ev, ctx(), ["always_fails_for_test"]) == ["always_fails_for_test: differs"]
        with pytest.raises(ValueError, match="exists; pass replace=True"):
            register_matcher("always_fails_for_test", always_fails)
        register_matcher("always_fails_for_test", lambda *a: None, replace=True)
        assert failures(ev, ev, ctx(), ["always_fails_for_test"]) == []
    finally:
        MATCHERS.pop("always_fails_for_test", None)
    with pytest.raises(ValueError, match="reserved"):
        register_matcher("default", always_fails)
    with pytest.raises(ValueError, match="bad matcher name"):
        register_matcher("has space", always_fails)


def test_event_type_first_and_broken_matchers_are_failures() -> None:
    b = builder("a")
    start, prompt = b.session_start()[0], b.prompt_start()[0]
    assert failures(start, prompt, ctx()) == ['event_type: event "sessionStart", recorded "promptStart"']

    def broken(received, recorded, c):  # noqa: ANN001
        raise KeyError("oops")

    assert failures(start, start, ctx(), ["default", broken]) == ["broken: the matcher raised KeyError('oops')"]


# --------------------------------------------------------------------------- built-ins


def test_content_kind_and_model() -> None:
    rec, live = builder("r"), builder("l")
    rec.start("sys")
    live.start("sys")
    text = live.interactive_text("hi")[0]
    tool = rec.tool_result("tu-1", {"x": 1})[0]
    assert failures(text, tool, ctx()) == [
        'content_kind: type "TEXT", recorded "TOOL"; role "USER", recorded "TOOL"; interactive true, recorded false']
    other_model = MatchContext(Bindings(), model_id="amazon.nova-sonic-v1:0", recorded_model_id=NOVA_2_SONIC)
    s = rec.session_start()[0]
    assert failures(s, s, other_model) == [
        'model: model "amazon.nova-sonic-v1:0", recorded "amazon.nova-2-sonic-v1:0"']


def test_names_follow_the_bindings_both_ways() -> None:
    b = Bindings()
    b.bind_prompt("p-rec", "p-live")
    b.bind_content("sys-rec", "sys-live")
    b.bind_content("mic-rec", "mic-live")
    c = ctx(b)
    assert failures(f.content_end("mic-live", prompt_name="p-live"), f.content_end("mic-rec", prompt_name="p-rec"),
                    c) == []
    wrong = failures(f.content_end("sys-live", prompt_name="p-live"), f.content_end("mic-rec", prompt_name="p-rec"), c)
    assert wrong == ["names: contentName 'sys-live', which stands for the recorded 'sys-rec'; the recording has "
                     "this event in block 'mic-rec', bound to 'mic-live'"]
    # A recorded block never introduced (skipped): the client's bound name still cannot stand for it.
    assert failures(f.content_end("mic-live", prompt_name="p-live"), f.content_end("tool-rec", prompt_name="p-rec"),
                    c)[0].startswith("names: contentName 'mic-live', which stands for the recorded 'mic-rec'")
    assert failures(f.content_end("mic-live", prompt_name="p-other"), f.content_end("mic-rec", prompt_name="p-rec"),
                    c)[0].startswith("names: promptName 'p-other'")


def test_tool_use_id_is_compared_through_the_ids_the_replay_sent() -> None:
    fresh = itertools.count(1)
    b = Bindings("fresh", new_id=lambda: f"live-{next(fresh)}", session_id="sess")
    rec, live = builder("r"), builder("l")
    recorded = rec.tool_result("tu-rec", {"x": 1})[0]
    assert failures(live.tool_result("live-1", {"x": 1})[0], recorded, ctx(b)) == [
        "tool_use_id: toolUseId 'live-1': the recording answers 'tu-rec' here, which the replay has not sent yet"]
    b.rebind_output(f.out_tool_use("cont", "tu-rec", "get_weather", {}))
    sent = b.tool_ids["tu-rec"]
    assert sent.startswith("live-") and list(b.tool_ids) == ["tu-rec"]
    assert failures(live.tool_result(sent, {"x": 1})[0], recorded, ctx(b)) == []
    assert failures(live.tool_result("tu-rec", {"x": 1})[0], recorded, ctx(b)) == [
        f"tool_use_id: toolUseId 'tu-rec' (the replay never sent that id); expected {sent!r} (the recorded 'tu-rec')"]


def test_opt_in_matchers() -> None:
    rec, live = builder("r", tools=[TOOL]), builder("l")
    r_session, r_prompt, r_sys_start, r_sys, *_ = rec.start("be brief")
    l_session, l_prompt, l_sys_start, l_sys, *_ = live.start("be verbose")
    b = Bindings()
    b.bind_content(r_sys_start.content_name, l_sys_start.content_name)
    c = ctx(b, recorded_blocks={r_sys_start.content_name: r_sys_start},
            client_blocks={l_sys_start.content_name: l_sys_start})
    lenient = [l_session, l_prompt, l_sys]
    for got, want in zip(lenient, [r_session, r_prompt, r_sys]):
        assert failures(got, want, c) == [], got  # the defaults ignore prompt, tools, parameters
    assert failures(l_sys, r_sys, c, ["system_prompt"]) == [
        'system_prompt: system prompt "be verbose", recorded "be brief"']
    assert failures(l_sys, r_sys, c, ["text"]) == []  # "text" is for USER/ASSISTANT blocks
    assert failures(l_prompt, r_prompt, c, ["tools"])[0].startswith("tools: toolConfiguration null, recorded")
    assert failures(l_prompt, r_prompt, c, ["voice"]) == []
    other_voice = PromptStart.model_validate({**l_prompt.to_dict(), "audioOutputConfiguration": {
        **l_prompt.audio_output_configuration.to_dict(), "voiceId": "tiffany"}})
    assert failures(other_voice, r_prompt, c, ["voice"]) == ['voice: voiceId "tiffany", recorded "matthew"']
    hot = l_session.model_copy(update={"inference_configuration": InferenceConfiguration(max_tokens=9)})
    assert failures(hot, r_session, c, ["inference"])[0].startswith('inference: inferenceConfiguration {"maxTokens": 9}')
    assert failures(l_session, r_session, c, ["endpointing"]) == []


def test_tool_result_content_is_compared_as_json_and_exact_after_rebinding() -> None:
    rec, live = builder("r"), builder("l")
    r_start, r_result, _ = rec.tool_result("tu-1", {"a": 1, "b": [1, 2]})
    l_start, l_result, _ = live.tool_result("tu-1", {"b": [1, 2], "a": 1})
    b = Bindings()
    b.bind_prompt(rec.prompt_name, live.prompt_name)
    b.out_id("tool_use_id", "tu-1")
    c = ctx(b)
    assert failures(l_result.model_copy(update={"content": '{"b":[1, 2],  "a":1}'}), r_result, c,
                    ["tool_result_content"]) == []
    assert failures(l_result.model_copy(update={"content": '{"a":2}'}), r_result, c, ["tool_result_content"]) == [
        'tool_result_content: tool result {"a": 2}, recorded {"a": 1, "b": [1, 2]}']
    assert failures(l_start, r_start, c, ["exact"]) == []  # names and ids mapped back before comparing
    b.bind_content(r_start.content_name, l_start.content_name)
    same_content = l_result.model_copy(update={"content": r_result.content})
    assert failures(same_content, r_result, c, ["exact"]) == []
    assert failures(l_result, r_result, c, ["exact"])[0].startswith("exact: differs in content:")


# --------------------------------------------------------------------------- bindings


def test_rebind_output_recorded_and_fresh_ids() -> None:
    event = f.out_tool_use("cont-1", "tu-1", "get_weather", {"city": "Paris"}, prompt_name="p-rec")
    recorded = Bindings()
    recorded.bind_prompt("p-rec", "p-live")
    out = recorded.rebind_output(event)
    assert isinstance(out, ToolUse)
    assert (out.prompt_name, out.tool_use_id, out.content_id, out.session_id) == ("p-live", "tu-1", "cont-1",
                                                                                   f.SESSION_ID)
    assert recorded.tool_ids == {"tu-1": "tu-1"} and recorded.recorded_id("tu-1") == "tu-1"

    fresh_ids = itertools.count(1)
    fresh = Bindings("fresh", new_id=lambda: f"new-{next(fresh_ids)}", session_id="live-session")
    out = fresh.rebind_output(event)
    assert out.session_id == "live-session" and out.prompt_name == "p-rec"  # unbound prompt: as recorded
    assert {out.completion_id, out.content_id, out.tool_use_id} == {"new-1", "new-2", "new-3"}
    again = fresh.rebind_output(event)
    assert (again.content_id, again.tool_use_id) == (out.content_id, out.tool_use_id)  # one mapping per id
    assert fresh.recorded_id(out.tool_use_id) == "tu-1" and fresh.emitted_id("tu-1") == out.tool_use_id
    unknown = f.unknown_output("newThing", {"promptName": "p-rec", "contentId": "cont-1", "n": 1})
    fresh.bind_prompt("p-rec", "p-live")
    payload = fresh.rebind_output(unknown).payload  # type: ignore[attr-defined]
    assert payload == {"promptName": "p-live", "contentId": out.content_id, "n": 1}
    with pytest.raises(ValueError, match="needs an id generator"):
        Bindings("fresh")


def test_content_start_kinds_are_read_leniently() -> None:
    # Lenient enum fields compare by value whatever their Python type.
    a = ContentStart.model_validate({"promptName": "p", "contentName": "c", "type": "AUDIO", "interactive": True,
                                     "role": "USER", "audioInputConfiguration": {}})
    assert failures(a, a, ctx()) == []
