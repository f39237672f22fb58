"""SessionOptions, RecyclePolicy, RestartPolicy: validated up front, clear errors."""

from __future__ import annotations

import pytest

from novasonic.errors import UnknownModelError
from novasonic.models import NOVA_2_SONIC, NOVA_SONIC_1
from novasonic.session import RecyclePolicy, RestartPolicy, SessionOptions, ToolDefinition

WEATHER = ToolDefinition("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}})


def test_defaults() -> None:
    o = SessionOptions()
    assert o.model_id == NOVA_2_SONIC
    assert (o.max_tokens, o.top_p, o.temperature) == (1024, 0.9, 0.7)
    assert o.endpointing == "MEDIUM" and o.output_sample_rate == 24000
    assert (o.recycle.after_s, o.recycle.deadline_s, o.recycle.max_stream_age_s) == (360, 450, 480)


def test_tools_and_tool_choice() -> None:
    o = SessionOptions(tools=(WEATHER, {"name": "b", "description": "B", "parameters": {"type": "object"}}),
                       tool_choice="required")
    assert o.tool_choice == "any"
    assert [t.tool_spec.name for t in o.tool_list()] == ["get_weather", "b"]
    assert SessionOptions(tools=(WEATHER,), tool_choice="get_weather").tool_choice == "get_weather"


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"model_id": "amazon.nova-9"}, UnknownModelError, "unknown Nova Sonic model"),
    ({"instructions": " "}, ValueError, "SYSTEM prompt"),
    ({"tool_choice": "auto"}, ValueError, "without tools"),
    ({"tools": (WEATHER,), "tool_choice": "nope"}, ValueError, "names no tool"),
    ({"tools": (WEATHER, WEATHER)}, ValueError, "unique"),
    ({"voice": "nobody"}, ValueError, "not a voice"),
    ({"model_id": NOVA_SONIC_1, "voice": "olivia"}, ValueError, "not a voice"),
    ({"endpointing": "FAST"}, ValueError, "FAST"),
    ({"output_sample_rate": 44100}, ValueError, "44100"),
    ({"temperature": 1.5}, ValueError, "temperature"),
])
def test_bad_options_fail_at_construction(kw: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        SessionOptions(**kw)


def test_recycle_policy_order_and_scaling() -> None:
    with pytest.raises(ValueError, match="after_s <= deadline_s < max_stream_age_s"):
        RecyclePolicy(after_s=400, deadline_s=300)
    with pytest.raises(ValueError, match="after_s <= deadline_s < max_stream_age_s"):
        RecyclePolicy(deadline_s=480)
    p = RecyclePolicy.for_max_age(8.0)
    assert (p.after_s, p.deadline_s, p.max_stream_age_s) == (6.0, 7.5, 8.0)


def test_restart_backoff() -> None:
    p = RestartPolicy()
    assert [p.delay(n) for n in (1, 2, 3, 4, 5)] == [0.0, 1.0, 3.0, 9.0, 10.0]
    with pytest.raises(ValueError, match="max_attempts"):
        RestartPolicy(max_attempts=-1)
    with pytest.raises(ValueError, match="multiplier"):
        RestartPolicy(multiplier=0)


def test_tool_definition_checks_its_schema() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        ToolDefinition("")
    with pytest.raises(ValueError, match="JSON-serialisable"):
        ToolDefinition("x", parameters={"type": object()})
    assert WEATHER.to_tool().tool_spec.input_schema.json_schema.startswith('{"type":"object"')
