"""The semantic diff engine (``novasonic.cassette.diff``) on cassettes written by ``CassetteWriter``.

What it must ignore (ids and names rebound by order of appearance, times, audio positions, how
audio runs were cut, a few more microphone frames) and what it must find (a changed transcript,
a missing tool call, an extra stream, a tool result answering another call, timing beyond the
tolerance), with the structured result the capture proxy tests use.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from novasonic.cassette import (
    Cassette,
    CassetteHeader,
    CassetteWriter,
    DiffOptions,
    diff_cassettes,
    read_cassette,
)
from novasonic.cassette.diff import ID_KEYS, stream_items
from novasonic.models import NOVA_2_SONIC
from tests.cli.cassettes import USER_1, USER_2, Variant, write_conversation
from tests.helpers import factories as f

# --- helpers ------------------------------------------------------------------------------------


def load_text(text: str) -> Cassette:
    return read_cassette(text, validate=False)


def write(tmp: Path, name: str, variant: Variant = Variant()) -> Cassette:
    path = write_conversation(tmp / f"{name}.jsonl", variant)
    return read_cassette(path.read_bytes(), path=path, validate=False)


def ids_in(text: str) -> list[tuple[str, str]]:
    """Every (namespace, value) id in a cassette text, in order of first appearance."""
    seen: dict[tuple[str, str], None] = {}

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ID_KEYS and isinstance(v, str):
                    seen.setdefault((ID_KEYS[k], v), None)
                else:
                    walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    for line in text.splitlines()[1:]:
        walk(json.loads(line))
    return list(seen)


def rename(text: str, mapping: dict[tuple[str, str], str]) -> str:
    """Rewrite every id of a cassette text through ``mapping`` (the file stays a valid cassette:
    ids left out because they did not change stay left out, since the mapping is injective)."""

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: (mapping.get((ID_KEYS[k], v), v) if k in ID_KEYS and isinstance(v, str) else walk(v))
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    head, *lines = text.splitlines()
    return "\n".join([head, *(json.dumps(walk(json.loads(x)), separators=(",", ":")) for x in lines)]) + "\n"


def scale_times(text: str, factor: float) -> str:
    """Every time of a cassette (t, t1, t0, chunk offsets) times ``factor``: order is kept."""
    head, *lines = text.splitlines()
    out = [head]
    for x in lines:
        obj = json.loads(x)
        for k in ("t", "t1", "t0"):
            if isinstance(obj.get(k), int | float):
                obj[k] = round(obj[k] * factor, 3)
        if "dt" in obj:
            dt = obj["dt"]
            obj["dt"] = round(dt * factor) if isinstance(dt, int) else [
                [round(v[0] * factor), v[1]] if isinstance(v, list) else round(v * factor) for v in dt]
        out.append(json.dumps(obj, separators=(",", ":")))
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def base_text() -> str:
    with tempfile.TemporaryDirectory() as d:
        return write_conversation(Path(d) / "base.jsonl").read_text("utf-8")


@pytest.fixture(scope="module")
def other_text() -> str:
    """Another conversation: a different transcript, no tool call."""
    with tempfile.TemporaryDirectory() as d:
        return write_conversation(Path(d) / "other.jsonl", Variant(user_text="hello there", tool_call=False)).read_text()


# --- what is ignored ------------------------------------------------------------------------------


def test_a_cassette_equals_itself(base_text: str) -> None:
    d = diff_cassettes(load_text(base_text), load_text(base_text))
    assert d.equal and d.changes() == [] and d.header == []
    assert d.counts() == {"removed": 0, "added": 0, "changed": 0, "header": 0}
    assert [s.status for s in d.streams] == ["same", "same"]
    assert d.render() == ""


def test_other_ids_times_run_cuts_and_more_microphone_silence_are_equal(tmp_path: Path) -> None:
    a = write(tmp_path, "a")
    b = write(tmp_path, "b", Variant(ids="other", t_scale=1.7, t_offset=0.25, flush_often=True,
                                     extra_silence_frames=4))
    # the copy really is different on disk: other ids, times and audio_in records
    assert ids_in(a.path.read_text()) != ids_in(b.path.read_text())  # type: ignore[union-attr]
    assert len(b[0].records) > len(a[0].records)
    d = diff_cassettes(a, b)
    assert d.equal, d.render()
    # ... but not with --timing: the times are 1.7 times longer and the microphone ran 128 ms more
    timed = diff_cassettes(a, b, DiffOptions(timing=True))
    assert not timed.equal
    fields = {x for c in timed.changes() for x in c.fields}
    assert {"t", "ms"} <= fields and all(c.op == "changed" for c in timed.changes())
    # with tolerances wide enough it is equal again
    wide = DiffOptions(timing=True, time_tolerance_s=10.0, audio_tolerance_ms=500.0)
    assert diff_cassettes(a, b, wide).equal


def test_tool_arguments_are_compared_as_json(tmp_path: Path) -> None:
    def one(path: Path, args: str) -> Cassette:
        with CassetteWriter(path, CassetteHeader(model_id=NOVA_2_SONIC)) as w:
            w.write_client(0, 0.0, None, f.session_start())
            w.write_server(0, 0.1, None, f.completion_start())
            for ev in f.out_tool_block("t1", "tu-1", "getWeather", args):
                w.write_server(0, 0.2, None, ev)
            w.end_stream(0, 0.3, "completed")
        return read_cassette(path.read_bytes(), path=path, validate=False)

    a = one(tmp_path / "a.jsonl", '{"city": "Paris", "units": "C"}')
    b = one(tmp_path / "b.jsonl", '{"units":"C","city":"Paris"}')
    assert diff_cassettes(a, b).equal
    c = one(tmp_path / "c.jsonl", json.dumps('{"city": "Paris", "units": "C"}'))  # double-encoded: a real difference
    d = diff_cassettes(a, c)
    (change,) = d.changes()
    assert (change.lane, change.op, change.a.kind, change.fields) == ("service", "changed", "toolUse", ("content",))  # type: ignore[union-attr]


# --- what is found ------------------------------------------------------------------------------


def test_changed_transcript_is_one_changed_event(tmp_path: Path) -> None:
    a = write(tmp_path, "a")
    b = write(tmp_path, "b", Variant(ids="x", user_text="what's the weather in london"))
    d = diff_cassettes(a, b)
    assert not d.equal
    (change,) = d.changes()
    assert (change.stream, change.lane, change.op, change.fields) == (0, "service", "changed", ("content",))
    assert change.a is not None and change.b is not None
    assert change.a.kind == "textOutput" and change.a.data["content"] == USER_1
    assert change.b.data["content"] == "what's the weather in london"
    assert change.a.line == change.b.line  # same place in both files
    text = d.render()
    assert f'- textOutput USER "{USER_1}"' in text and '+ textOutput USER "what\'s the weather in london"' in text
    assert text.startswith("--- ") and "\n+++ " in text and "@@ stream 0 service" in text
    js = d.to_dict()
    assert js["equal"] is False and js["counts"] == {"removed": 0, "added": 0, "changed": 1, "header": 0}
    (s0c,) = js["streams"][0]["changes"]
    assert s0c["a"]["data"]["contentId"] == s0c["b"]["data"]["contentId"]  # same symbol on both sides
    assert s0c["a"]["data"]["contentId"].startswith("#contentId")
    json.dumps(js)  # plain JSON


def test_missing_tool_call_is_named_on_both_lanes(tmp_path: Path) -> None:
    d = diff_cassettes(write(tmp_path, "a"), write(tmp_path, "b", Variant(tool_call=False)))
    removed = {(c.lane, c.a.kind) for c in d.changes() if c.op == "removed"}  # type: ignore[union-attr]
    assert {("service", "toolUse"), ("service", "contentStart"), ("service", "contentEnd"),
            ("client", "toolResult"), ("client", "contentStart"), ("client", "contentEnd")} <= removed
    assert not [c for c in d.changes() if c.op == "added"]
    # the content blocks after the missing one are still matched (ids are bound by structure,
    # not by their rank), so nothing else changed
    assert not [c for c in d.changes() if c.op == "changed"]
    text = d.render()
    assert '- toolUse getWeather #toolUse1 {"city":"Paris"}' in text
    assert "- toolResult #content3" in text


def test_extra_stream_is_only_in_b(tmp_path: Path) -> None:
    d = diff_cassettes(write(tmp_path, "a"), write(tmp_path, "b", Variant(extra_stream=True)))
    assert [s.status for s in d.streams] == ["same", "same", "only_b"]
    s2 = d.streams[2]
    assert s2.end_a is None and s2.end_b == "exception:serviceUnavailableException"
    kinds = [(c.lane, c.b.kind) for c in s2.changes()]  # type: ignore[union-attr]
    assert ("service", "exception") in kinds and ("client", "promptStart") in kinds
    assert all(c.op == "added" for c in s2.changes())
    assert "@@ stream 2: only in" in d.render()
    reverse = diff_cassettes(write(tmp_path, "c", Variant(extra_stream=True)), write(tmp_path, "d"))
    assert reverse.streams[2].status == "only_a"


def test_header_voice_and_ignore(tmp_path: Path) -> None:
    a, b = write(tmp_path, "a"), write(tmp_path, "b", Variant(voice="tiffany"))
    d = diff_cassettes(a, b)
    assert [(h.key, h.a, h.b) for h in d.header] == [("voice", "matthew", "tiffany")]
    (change,) = d.changes()  # promptStart's audioOutputConfiguration.voiceId
    assert change.fields == ("audioOutputConfiguration.voiceId",)
    assert "@@ header @@" in d.render() and "- voice: matthew" in d.render()
    assert diff_cassettes(a, b, DiffOptions(ignore=frozenset({"voice", "voiceId"}))).equal


def test_ignore_event_names_and_lanes(tmp_path: Path) -> None:
    a, b = write(tmp_path, "a"), write(tmp_path, "b", Variant(tool_call=False))
    assert not diff_cassettes(a, b, DiffOptions(ignore=frozenset({"client"}))).equal
    only_service = diff_cassettes(a, b, DiffOptions(ignore=frozenset({"service"})))
    assert {c.lane for c in only_service.changes()} == {"client"}
    items = stream_items(a[0], a.header, DiffOptions(ignore=frozenset({"usageEvent"})))
    assert "usageEvent" not in [x.kind for x in items["service"]]
    assert "usageEvent" in [x.kind for x in stream_items(a[0], a.header)["service"]]


def test_a_tool_result_for_another_call_breaks_the_binding(tmp_path: Path) -> None:
    """Two tool calls; B answers them in the opposite order. Every event is the same but for
    which call each result answers: the diff must say so (ids compared by structure)."""

    def two_calls(path: Path, order: tuple[str, str]) -> Cassette:
        with CassetteWriter(path, CassetteHeader(model_id=NOVA_2_SONIC)) as w:
            t = [0.0]

            def c(*evs: Any) -> None:
                for ev in evs:
                    t[0] += 0.01
                    w.write_client(0, t[0], None, ev)

            def s(*evs: Any) -> None:
                for ev in evs:
                    t[0] += 0.01
                    w.write_server(0, t[0], None, ev)

            tools = [f.tool("a"), f.tool("b")]
            c(f.session_start(), f.prompt_start(tools=tools), *f.system_block(), *f.interactive_text_block("u", "hi"))
            s(f.completion_start(), *f.out_tool_block("t1", "tu-1", "a", {}), *f.out_tool_block("t2", "tu-2", "b", {}))
            c(*f.tool_result_block("r1", order[0], {"ok": 1}), *f.tool_result_block("r2", order[1], {"ok": 1}))
            c(f.prompt_end(), f.session_end())
            w.end_stream(0, t[0] + 0.01, "completed")
        return read_cassette(path.read_bytes(), path=path, validate=False)

    a = two_calls(tmp_path / "a.jsonl", ("tu-1", "tu-2"))
    b = two_calls(tmp_path / "b.jsonl", ("tu-2", "tu-1"))
    d = diff_cassettes(a, b)
    assert not d.equal
    changed = [c for c in d.changes() if c.op == "changed"]
    assert changed and all(c.lane == "client" and c.a.kind == "contentStart" for c in changed)  # type: ignore[union-attr]
    assert all(c.fields == ("toolResultInputConfiguration.toolUseId",) for c in changed)
    text = d.render()
    assert "- contentStart #content3 TOOL TOOL result for #toolUse1" in text
    assert "+ contentStart #content3 TOOL TOOL result for #toolUse2" in text


def test_timing_tolerance_is_a_bound(tmp_path: Path) -> None:
    base = write_conversation(tmp_path / "a.jsonl").read_text("utf-8")
    a, b = load_text(base), load_text(scale_times(base, 1.02))  # the last time (~3.3 s) moves ~65 ms
    assert diff_cassettes(a, b).equal
    assert not diff_cassettes(a, b, DiffOptions(timing=True, time_tolerance_s=0.05)).equal
    assert diff_cassettes(a, b, DiffOptions(timing=True, time_tolerance_s=0.1)).equal


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="time_tolerance_s"):
        DiffOptions(time_tolerance_s=-1)
    with pytest.raises(ValueError, match="audio_tolerance_ms"):
        DiffOptions(audio_tolerance_ms=float("nan"))


def test_items_collapse_audio_and_expand_usage(tmp_path: Path) -> None:
    a = write(tmp_path, "a")
    service = [x.kind for x in stream_items(a[0], a.header)["service"]]
    # the first assistant audio block: 3 chunks, the usage event the writer kept inside the run, 5 chunks
    k = service.index("audioOutput")
    assert service[k:k + 3] == ["audioOutput", "usageEvent", "audioOutput"]
    client = stream_items(a[0], a.header)["client"]
    audio = [x for x in client if x.kind == "audioInput"]
    assert [x.timing["frames"] for x in audio] == [50, 50]  # cut only by the toolResult block
    assert audio[0].timing["speech"] == [[320.0, 1120.0]]
    assert [x.data.get("content") for x in stream_items(a[0], a.header)["service"] if x.kind == "textOutput"][:1] == [USER_1]
    assert USER_2 in [x.data.get("content") for x in stream_items(a[0], a.header)["service"]]


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_renaming_ids_never_changes_the_diff(base_text: str, other_text: str, data: st.DataObject) -> None:
    ids = ids_in(base_text)
    values = [v for _, v in ids]
    # a permutation of the cassette's own ids (swaps are the hard case) or fresh names
    if data.draw(st.booleans(), label="permute"):
        new = data.draw(st.permutations(values), label="perm")
    else:
        new = data.draw(st.lists(st.text("abcdefghij-0123456789", min_size=1, max_size=10), min_size=len(values),
                                 max_size=len(values), unique=True), label="fresh")
    mapping = dict(zip(ids, new))
    renamed = rename(base_text, mapping)
    assert len(ids) >= 15  # prompt, 3 content names, session, completion, 10 content ids, toolUse
    if any(old[1] != v for old, v in mapping.items()):
        assert renamed != base_text and ids_in(renamed) != ids
    assert diff_cassettes(load_text(base_text), load_text(renamed)).equal

    # and a real difference is reported identically whatever the names
    other = other_text
    other_ids = ids_in(other)
    other_new = data.draw(st.permutations([v for _, v in other_ids]), label="perm_b")
    before = diff_cassettes(load_text(base_text), load_text(other)).to_dict()
    after = diff_cassettes(load_text(renamed), load_text(rename(other, dict(zip(other_ids, other_new))))).to_dict()
    assert after == before


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(factor=st.floats(min_value=0.1, max_value=10.0))
def test_scaling_times_never_changes_the_default_diff(base_text: str, factor: float) -> None:
    assert diff_cassettes(load_text(base_text), load_text(scale_times(base_text, factor))).equal
