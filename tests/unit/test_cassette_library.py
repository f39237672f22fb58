"""The shipped cassette library (``cassettes/``): every file loads with rule validation and shows
what its scenario claims, checked fact by fact against the spec and the captures.

Nothing is regenerated here (that is ``tests/integration/test_cassette_gen.py``): these tests read
the committed files, so a hand edit, a stale file or a generator change that breaks a scenario's
point fails here with the fact that no longer holds.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fakeserver.faults import DEFAULT_EXCEPTION_TEXTS
from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    Cassette,
    CassetteStream,
    ClientEventRecord,
    ExceptionRecord,
    NoteRecord,
    ServerEventRecord,
    load_cassette,
)
from novasonic.events import (
    BARGE_IN_TEXT,
    ContentEnd,
    ContentStart,
    OutputContentEnd,
    OutputContentStart,
    PromptEnd,
    PromptStart,
    SessionEnd,
    SessionStart,
    TextInput,
    TextOutput,
    ToolResult,
    ToolUse,
    UserSpeechEnd,
    UserSpeechStart,
)
from novasonic.models import NOVA_SONIC_1
from novasonic.rules import Limits, OutputTracker, texts
from tools.cassette_gen import RESTART_ERRORS, SCENARIOS
from tools.cassette_gen.generate import check_listing, content_bytes
from tools.cassette_gen.recorder import GET_WEATHER, LIVEKIT_SYSTEM_PROMPT
from tools.sdk_driver import shape

LIBRARY = Path(__file__).resolve().parents[2] / "cassettes"
LIMITS = Limits()

#: The names agreed in notes/interfaces.md (``<variant>``/``<error>`` expanded), plus the one
#: this library adds (``nova2_silence_timeout``: the other idle timeout, the 531 after 175 s).
AGREED = {
    "nova2_audio_turn", "nova2_text_turn", "nova2_tool_call", "nova2_chained_tools",
    "nova2_barge_in_spec", "nova2_barge_in_pipecat", "nova2_barge_in_silent",
    "nova2_history_resume",
    *(f"nova2_restart_{e}" for e in ("throttling", "model_timeout", "model_stream_error", "internal_server",
                                      "rst_531", "system_instability")),
    "nova2_stream_age_limit", "nova2_idle_timeout", "nova2_silence_timeout",
    "nova1_audio_turn", "agent_demo",
}


@cache
def cassette(name: str) -> Cassette:
    return load_cassette(LIBRARY / f"{name}.jsonl")  # validate=True: every client event vs the rules


def service_shape(stream: CassetteStream, *, usage: bool = False) -> list[str]:
    return shape(stream.server_events(), usage=usage)


def client_events(stream: CassetteStream) -> list[Any]:
    return [r.event for r in stream.records if isinstance(r, ClientEventRecord)]


def server_records(stream: CassetteStream) -> list[ServerEventRecord]:
    return [r for r in stream.records if isinstance(r, ServerEventRecord)]


def exception_of(stream: CassetteStream) -> ExceptionRecord:
    (exc,) = [r for r in stream.records if isinstance(r, ExceptionRecord)]
    return exc


def speech_segments(stream: CassetteStream) -> list[tuple[float, float]]:
    """Speech segments of the user's audio, adjacent pieces (split across records) merged."""
    out: list[tuple[float, float]] = []
    for r in stream.records:
        if isinstance(r, AudioInRecord):
            assert r.segments is not None, "the generator keeps the user's speech segments"
            for kind, a, b in r.segments:
                if kind != "speech":
                    continue
                if out and abs(out[-1][1] - a) < 1e-6:
                    out[-1] = (out[-1][0], b)
                else:
                    out.append((a, b))
    return out


def tracker_of(stream: CassetteStream) -> OutputTracker:
    t = OutputTracker()
    for ev in stream.server_events():
        t.feed(ev)
    t.close()
    return t


def texts_of(stream: CassetteStream, role: str, stage: str | None = None) -> list[str]:
    """Text of each TEXT block of ``role`` (and ``stage``), in order."""
    blocks: dict[str, list[str]] = {}
    order: list[str] = []
    for ev in stream.server_events():
        if isinstance(ev, OutputContentStart) and str(ev.type) == "TEXT" and str(ev.role) == role and (
            stage is None or str(ev.generation_stage) == stage
        ):
            blocks[ev.content_id] = []
            order.append(ev.content_id)
        elif isinstance(ev, TextOutput) and ev.content_id in blocks:
            blocks[ev.content_id].append(ev.content)
    return ["".join(blocks[c]) for c in order]


STORY_FIRST = "Once upon a time, a lighthouse keeper lived alone on a rocky island far out at sea."
TOOL_SCENARIOS = {"nova2_tool_call", "nova2_chained_tools", "agent_demo"}


def final_block_outputs(stream: CassetteStream) -> list[list[str]]:
    """The textOutputs of each ASSISTANT FINAL block, block by block."""
    blocks: dict[str, list[str]] = {}
    for ev in stream.server_events():
        if isinstance(ev, OutputContentStart) and str(ev.role) == "ASSISTANT" and str(ev.generation_stage) == "FINAL":
            blocks[ev.content_id] = []
        elif isinstance(ev, TextOutput) and ev.content_id in blocks:
            blocks[ev.content_id].append(ev.content)
    return list(blocks.values())


def history_of(stream: CassetteStream) -> list[tuple[str, str]]:
    """(role, text) of the non-interactive USER/ASSISTANT TEXT blocks the client sent."""
    out: list[tuple[str, str]] = []
    role = None
    for ev in client_events(stream):
        if isinstance(ev, ContentStart) and str(ev.type) == "TEXT" and not ev.interactive and str(ev.role) in (
            "USER", "ASSISTANT"
        ):
            role = str(ev.role)
            out.append((role, ""))
        elif isinstance(ev, TextInput) and role is not None:
            out[-1] = (role, out[-1][1] + ev.content)
        elif isinstance(ev, ContentEnd):
            role = None
    return out


# --- the library as a whole ----------------------------------------------------------------------------


def test_the_library_is_exactly_the_agreed_names_and_every_scenario_has_its_file() -> None:
    on_disk = {p.stem for p in LIBRARY.glob("*.jsonl")}
    assert set(SCENARIOS) == AGREED
    assert on_disk == AGREED


def test_the_readme_lists_the_committed_cassettes_as_the_generator_writes_it() -> None:
    assert check_listing(LIBRARY) == []
    readme = (LIBRARY / "README.md").read_text(encoding="utf-8")
    for name in SCENARIOS:
        assert f"`{name}.jsonl`" in readme


@pytest.mark.parametrize("name", sorted(AGREED))
def test_each_cassette_loads_validated_and_is_a_scripted_recording_of_its_scenario(name: str) -> None:
    c = cassette(name)
    s = SCENARIOS[name]
    h = c.header
    assert c.warnings == []
    assert (h.source, h.model_id, h.voice, h.input_rate, h.output_rate) == ("scripted", s.model_id, "tiffany",
                                                                              16000, 24000)
    assert h.meta["scenario"] == name and h.meta["demonstrates"] == s.title and h.meta["seed"] == s.seed
    assert h.meta["grounded_in"] and h.meta["generator"] == "python -m tools.cassette_gen"
    dt.datetime.fromisoformat(h.created.replace("Z", "+00:00"))
    # the default compact audio policy: no PCM anywhere, no sidecar
    assert (h.audio.user, h.audio.assistant, h.sidecar, c.sidecar_bytes) == ("segments", "elided", None, 0)
    assert not any(isinstance(r, AudioInRecord | AudioOutRecord) and r.pcm is not None for r in c.records())
    # no credentials or signatures (the writer refused the recording's keys line by line)
    text = (LIBRARY / f"{name}.jsonl").read_text(encoding="utf-8")
    assert not re.search(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b", text)
    assert "Signature=" not in text and "Credential=" not in text


@pytest.mark.parametrize("name", sorted(AGREED))
def test_each_stream_starts_and_streams_as_a_livekit_agent_does(name: str) -> None:
    """sessionStart (inference config, model-appropriate turn detection), promptStart (voice,
    24 kHz, the get_weather spec where tools are used), SYSTEM, history (resumed streams only),
    one interactive AUDIO block of 32 ms frames; a completed stream closes as documented."""
    c = cassette(name)
    for i, st in enumerate(c):
        events = client_events(st)
        session, prompt, sys_start, sys_text, sys_end = events[:5]
        assert isinstance(session, SessionStart)
        inference = session.inference_configuration
        assert inference is not None and (inference.max_tokens, inference.top_p, inference.temperature) == (1024, 0.9,
                                                                                                            0.7)
        if c.header.model_id == NOVA_SONIC_1:
            assert str(session.endpointing_sensitivity) == "MEDIUM" and session.turn_detection_configuration is None
        else:
            assert session.endpointing_sensitivity is None
            assert str(session.turn_detection_configuration.endpointing_sensitivity) == "MEDIUM"
        assert isinstance(prompt, PromptStart)
        out = prompt.audio_output_configuration
        assert (out.voice_id, out.sample_rate_hertz) == ("tiffany", 24000)
        tools = prompt.tool_configuration.tools if prompt.tool_configuration else []
        assert [t.tool_spec.name for t in tools] == (["get_weather"] if name in TOOL_SCENARIOS else [])
        if tools:
            assert tools[0] == GET_WEATHER and isinstance(json.loads(tools[0].tool_spec.input_schema.json_schema), dict)
        assert isinstance(sys_start, ContentStart) and str(sys_start.role) == "SYSTEM"
        assert isinstance(sys_text, TextInput) and sys_text.content == LIVEKIT_SYSTEM_PROMPT
        assert isinstance(sys_end, ContentEnd)
        audio_starts = [e for e in events if isinstance(e, ContentStart) and str(e.type) == "AUDIO"]
        assert len(audio_starts) == 1, "one AUDIO block for the whole stream"
        assert audio_starts[0].interactive and audio_starts[0].audio_input_configuration.sample_rate_hertz == 16000
        # everything between SYSTEM and the AUDIO block is chat history (none on a first stream)
        between = events[5: events.index(audio_starts[0])]
        assert (len(between) > 0) == (i > 0), (i, [e.EVENT_NAME for e in between])
        runs = [r for r in st.records if isinstance(r, AudioInRecord)]
        assert all(set(r.sizes) == {1024} for r in runs), "32 ms frames at 16 kHz"
        if st.end_reason == "completed":
            assert st.end.input_finished
            tail = events[-3:]
            assert isinstance(tail[0], ContentEnd) and tail[0].content_name == audio_starts[0].content_name
            assert isinstance(tail[1], PromptEnd) and isinstance(tail[2], SessionEnd)
        else:
            assert not any(isinstance(e, PromptEnd | SessionEnd) for e in events)


@pytest.mark.parametrize("name", sorted(AGREED))
def test_times_follow_the_streamed_audio(name: str) -> None:
    """The driven clock: a service event's time is its audio position (t·1000 == a) unless the
    microphone was silent on purpose (the idle timeout)."""
    for st in cassette(name):
        for r in st.records:
            if isinstance(r, ServerEventRecord | ExceptionRecord | AudioOutRecord) and name != "nova2_idle_timeout":
                assert r.a == pytest.approx(r.t * 1000.0, abs=0.5), r


def test_size_budget() -> None:
    """25 KB per conversation-minute: met by the library as a whole and by every cassette longer
    than a minute (short ones carry a fixed ~3 KB per stream, reported in the README)."""
    total = sum(cassette(n).size_bytes for n in AGREED)
    minutes = sum(cassette(n).duration_s for n in AGREED) / 60
    assert total / 1024 / minutes <= 25.0
    for n in AGREED:
        c = cassette(n)
        if c.duration_s >= 60:
            assert c.bytes_per_minute() / 1024 <= 25.0, (n, c.bytes_per_minute() / 1024)
        assert c.size_bytes <= 32 * 1024, n


# --- scenario by scenario ------------------------------------------------------------------------------


def test_nova2_audio_turn_is_sequence_a() -> None:
    (st,) = cassette("nova2_audio_turn")
    s = service_shape(st)
    assert s == [
        "userSpeechStart", "completionStart", "userSpeechEnd",
        "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:AUDIO:ASSISTANT", "audio", "ce:AUDIO:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "completionEnd:END_TURN",
    ]
    # OME-N1: speech 0–1920 ms, end-point detected at 2400 ms (MEDIUM), same transcript
    (end,) = [e for e in st.server_events() if isinstance(e, UserSpeechEnd)]
    assert (end.input_audio_offset_ms, end.input_audio_detection_offset_ms) == (1920, 2400)
    assert speech_segments(st) == [(0.0, 1920.0)]
    assert texts_of(st, "USER") == ["i usually go to gym after work."]
    assert texts_of(st, "ASSISTANT", "SPECULATIVE") == texts_of(st, "ASSISTANT", "FINAL")
    # Nova 2 chunks: 106.75 ms (OME-PRE 3416 B at 16 kHz) = 5124 B at 24 kHz
    outs = [r for r in st.records if isinstance(r, AudioOutRecord)]
    assert outs and all(r.sample_rate == 24000 and max(r.sizes) == 5124 for r in outs)
    # usage: first the system prompt, running totals consistent (check_usage would raise otherwise)
    assert service_shape(st, usage=True)[0] == "usage"


def test_nova2_text_turn_is_sequence_c() -> None:
    (st,) = cassette("nova2_text_turn")
    events = client_events(st)
    i = next(k for k, e in enumerate(events) if isinstance(e, ContentStart) and e.interactive and str(e.type) == "TEXT")
    block = events[i: i + 3]
    assert str(block[0].role) == "USER" and isinstance(block[1], TextInput) and isinstance(block[2], ContentEnd)
    assert block[1].content == "Suggest a name for my new cat."
    # no audio frame inside the text block; the microphone streamed before and after it
    recs = [r for r in st.records if isinstance(r, ClientEventRecord | AudioInRecord)]
    j = next(k for k, r in enumerate(recs) if isinstance(r, ClientEventRecord) and r.event is block[0])
    assert all(isinstance(r, ClientEventRecord) for r in recs[j: j + 3])
    assert isinstance(recs[j - 1], AudioInRecord) and any(isinstance(r, AudioInRecord) for r in recs[j + 3:])
    assert speech_segments(st) == []  # nothing was spoken
    s = service_shape(st)
    assert "userSpeechStart" not in s and "userSpeechEnd" not in s
    assert s[:4] == ["completionStart", "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN"]
    assert texts_of(st, "USER") == [""]  # pipecat #4042: typed input gets an empty USER transcript
    assert s.count("cs:AUDIO:ASSISTANT") == 2 and s[-1] == "completionEnd:END_TURN"
    # the answer comes after the whole text block (file order is causal for non-audio records)
    block_end = next(r for r in st.records if isinstance(r, ClientEventRecord) and r.event is block[2])
    first_answer = next(r for r in server_records(st) if r.t >= block_end.t and not r.event.EVENT_NAME == "usageEvent")
    assert st.records.index(first_answer) > st.records.index(block_end)


def _tool_flow(st: CassetteStream) -> list[tuple[str, Any]]:
    """File-order view of the tool exchange: ('use', ToolUse), ('result', (toolUseId, content)),
    ('say', text of an ASSISTANT SPECULATIVE block), ('audio', None) per assistant AUDIO block."""
    flow: list[tuple[str, Any]] = []
    pending_tool_id: dict[str, str] = {}
    spec_blocks: set[str] = set()
    for r in st.records:
        if isinstance(r, ServerEventRecord):
            ev = r.event
            if isinstance(ev, ToolUse):
                flow.append(("use", ev))
            elif isinstance(ev, OutputContentStart) and str(ev.type) == "AUDIO":
                flow.append(("audio", None))
            elif isinstance(ev, OutputContentStart) and str(ev.generation_stage) == "SPECULATIVE":
                spec_blocks.add(ev.content_id)
            elif isinstance(ev, TextOutput) and ev.content_id in spec_blocks:
                flow.append(("say", ev.content))
        elif isinstance(r, ClientEventRecord):
            ev = r.event
            if isinstance(ev, ContentStart) and ev.tool_result_input_configuration is not None:
                pending_tool_id[ev.content_name] = ev.tool_result_input_configuration.tool_use_id
            elif isinstance(ev, ToolResult):
                flow.append(("result", (pending_tool_id[ev.content_name], json.loads(ev.content))))
    return flow


def test_nova2_tool_call_has_tool_use_then_result_then_speech() -> None:
    (st,) = cassette("nova2_tool_call")
    flow = _tool_flow(st)
    kinds = [k for k, _ in flow]
    use = flow[kinds.index("use")][1]
    assert (use.tool_name, json.loads(use.content)) == ("get_weather", {"location": "Paris"})
    # capture D: TOOL block right after the USER transcript, ending TOOL_USE; Nova 2 keeps talking
    s = service_shape(st)
    k = s.index("cs:TOOL:TOOL")
    assert s[k - 3: k] == ["cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN"]
    assert s[k + 1: k + 3] == ["toolUse", "ce:TOOL:TOOL_USE"]
    result_at = kinds.index("result")
    assert flow[result_at][1] == (use.tool_use_id, {"location": "Paris", "temperature_c": 21, "conditions": "sunny"})
    assert kinds.index("use") < kinds.index("say") < result_at  # the filler, while the tool runs
    after = [v for k, v in flow[result_at:] if k == "say"]
    assert after == ["It’s sunny and 21 degrees in Paris right now."]
    assert "audio" in kinds[result_at:]
    assert s[-1] == "completionEnd:END_TURN" and s.count("completionEnd:END_TURN") == 1
    (turn,) = tracker_of(st).turns
    assert [(c.name, c.requested) for c in turn.tool_calls] == [("get_weather", True)]
    # the result went out 480 ms (driven time) after the TOOL contentEnd, as a TOOL block
    tool_end = next(r for r in server_records(st) if isinstance(r.event, OutputContentEnd) and str(r.event.type) == "TOOL")
    result = next(r for r in st.records if isinstance(r, ClientEventRecord) and isinstance(r.event, ToolResult))
    assert result.t - tool_end.t == pytest.approx(0.48)


def test_nova2_chained_tools_have_speech_between_the_calls_and_no_new_user_audio() -> None:
    (st,) = cassette("nova2_chained_tools")
    flow = _tool_flow(st)
    kinds = [k for k, _ in flow]
    uses = [v for k, v in flow if k == "use"]
    assert [(u.tool_name, json.loads(u.content)["location"]) for u in uses] == [("get_weather", "Paris"),
                                                                               ("get_weather", "Rome")]
    first, second = (i for i, k in enumerate(kinds) if k == "use")
    between = kinds[first + 1: second]
    assert "say" in between and "audio" in between and "result" in between  # speech between the calls
    results = [v for k, v in flow if k == "result"]
    assert [r[0] for r in results] == [u.tool_use_id for u in uses]
    assert [r[1]["location"] for r in results] == ["Paris", "Rome"]
    last_result = max(i for i, k in enumerate(kinds) if k == "result")
    assert [v for k, v in flow[last_result:] if k == "say"] == [
        "Rome is warmer today: twenty-six degrees, against twenty-one in Paris."]
    # livekit #4887: the user said nothing after the question, the results were still delivered
    (speech,) = speech_segments(st)
    first_use = next(r for r in server_records(st) if isinstance(r.event, ToolUse))
    assert speech[1] <= first_use.a
    assert service_shape(st)[-1] == "completionEnd:END_TURN"


def _barge_in(name: str) -> tuple[CassetteStream, list[str], int]:
    (st,) = cassette(name)
    s = service_shape(st)
    starts = [i for i, tok in enumerate(s) if tok == "userSpeechStart"]
    assert len(starts) == 2
    return st, s, starts[1]


def _barge_in_common(st: CassetteStream, s: list[str], k: int) -> None:
    # the user spoke over the assistant's audio: the second utterance starts before that AUDIO block ends
    speech = speech_segments(st)
    assert len(speech) == 2
    audio_end = next(r for r in server_records(st) if isinstance(r.event, OutputContentEnd) and str(r.event.type) == "AUDIO")
    story_start = next(r for r in server_records(st) if isinstance(r.event, OutputContentStart) and str(r.event.type) == "AUDIO")
    assert story_start.a < speech[1][0] < audio_end.a
    assert s[k - 2: k] == ["cs:AUDIO:ASSISTANT", "audio"], "interrupted while the first AUDIO block played"
    # the rest of the story is dropped; the interruption is answered as the next turn
    assert texts_of(st, "ASSISTANT", "SPECULATIVE") == [
        STORY_FIRST, "Sure, I’ll stop there."]
    assert texts_of(st, "USER") == ["tell me a story about a lighthouse.", "okay, stop. that's enough."]
    first, second = tracker_of(st).turns
    assert first.interrupted and not second.interrupted
    assert s[-1] == "completionEnd:END_TURN"


def test_nova2_barge_in_spec_variant() -> None:
    st, s, k = _barge_in("nova2_barge_in_spec")
    assert s[k: k + 7] == ["userSpeechStart", "ce:AUDIO:PARTIAL_TURN", "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT",
                           "text:ASSISTANT", "ce:TEXT:INTERRUPTED", "userSpeechEnd"]
    spoken, marker = final_block_outputs(st)[0]
    assert marker == BARGE_IN_TEXT  # exact, with its spaces (§2.1)
    assert spoken and STORY_FIRST.startswith(spoken) and spoken != STORY_FIRST  # the words spoken so far
    _barge_in_common(st, s, k)


def test_nova2_barge_in_pipecat_variant_ends_audio_end_turn_before_text_interrupted() -> None:
    st, s, k = _barge_in("nova2_barge_in_pipecat")
    assert s[k: k + 2] == ["userSpeechStart", "ce:AUDIO:END_TURN"]
    assert s.index("ce:AUDIO:END_TURN") < s.index("ce:TEXT:INTERRUPTED")
    assert final_block_outputs(st)[0][-1] == BARGE_IN_TEXT
    _barge_in_common(st, s, k)


def test_nova2_barge_in_silent_variant_has_no_marker_and_no_interrupted() -> None:
    st, s, k = _barge_in("nova2_barge_in_silent")
    assert s[k: k + 3] == ["userSpeechStart", "ce:AUDIO:PARTIAL_TURN", "userSpeechEnd"]
    assert not any("INTERRUPTED" in tok for tok in s)
    assert all(BARGE_IN_TEXT not in t for t in texts_of(st, "ASSISTANT"))
    _barge_in_common(st, s, k)


def test_nova2_history_resume_second_stream_starts_with_the_history() -> None:
    first, second = cassette("nova2_history_resume")
    assert (first.end_reason, second.end_reason) == ("completed", "completed")
    assert history_of(first) == []
    assert history_of(second) == [
        ("USER", "what's a good stretch for my lower back?"),
        ("ASSISTANT", "Try a gentle knee-to-chest stretch. Hold it for about thirty seconds."),
    ]
    # the history comes before any audio on stream 1
    first_audio = next(r for r in second.records if isinstance(r, AudioInRecord))
    last_history = [r for r in second.records if isinstance(r, ClientEventRecord) and isinstance(r.event, TextInput)][-1]
    assert second.records.index(last_history) < second.records.index(first_audio)
    assert texts_of(second, "USER") == ["how many times should i do it?"]
    assert service_shape(first)[-1] == service_shape(second)[-1] == "completionEnd:END_TURN"


@pytest.mark.parametrize("suffix", sorted(RESTART_ERRORS))
def test_nova2_restart_after_a_retryable_error_mid_answer(suffix: str) -> None:
    member, message, _ = RESTART_ERRORS[suffix]
    first, second = cassette(f"nova2_restart_{suffix}")
    assert first.end_reason == f"exception:{member}" and second.end_reason == "completed"
    exc = exception_of(first)
    assert (exc.via, exc.name, exc.message) == ("stream", member, message)
    # mid-answer: the answer's text went out and its AUDIO block is open (chunks sent, no contentEnd)
    s = service_shape(first)
    assert s[-5:] == ["cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
                      "cs:AUDIO:ASSISTANT", "audio"]
    chunks = [e for e in first.server_events() if e.EVENT_NAME == "audioOutput"]
    assert len(chunks) == 3
    assert "completionEnd:END_TURN" not in s
    assert server_records(first)[-1].a <= exc.a
    notes = [r.text for r in first.records if isinstance(r, NoteRecord)]
    assert notes and notes[0].startswith(f"fault: {member}")  # the injection is marked for reviewers
    # stream 1: the restart resumes with the history (the question and the partial answer)
    assert history_of(second) == [("USER", texts_of(first, "USER")[0]),
                                  ("ASSISTANT", texts_of(first, "ASSISTANT", "SPECULATIVE")[0])]
    assert texts_of(second, "USER") == ["sorry, you cut out. what was that?"]
    assert service_shape(second)[-1] == "completionEnd:END_TURN"


def test_the_two_retryable_validation_texts_are_the_ones_livekit_restarts_on() -> None:
    assert RESTART_ERRORS["rst_531"][:2] == ("validationException", texts.RST_531)
    assert RESTART_ERRORS["system_instability"][:2] == ("validationException", texts.SYSTEM_INSTABILITY)
    assert RESTART_ERRORS["throttling"][1] == DEFAULT_EXCEPTION_TEXTS["throttlingException"]


def test_nova2_stream_age_limit_ends_at_exactly_eight_minutes_then_resumes() -> None:
    first, second = cassette("nova2_stream_age_limit")
    exc = exception_of(first)
    assert first.end_reason == "exception:modelTimeoutException"
    assert (exc.t, exc.message) == (LIMITS.max_stream_age_s, "Model has timed out in processing the request.")
    # the microphone streamed all 8 minutes: 480 s of audio, contiguous
    assert first.audio_in_ms == pytest.approx(LIMITS.max_stream_age_s * 1000)
    speech = speech_segments(first)
    assert len(speech) == 4 and len(texts_of(first, "USER")) == 4
    gaps = [b[0] - a[1] for a, b in zip(speech, speech[1:], strict=False)] + [LIMITS.max_stream_age_s * 1000 - speech[-1][1]]
    assert max(gaps) < LIMITS.silent_audio_timeout_s * 1000, "no silence run reaches the 531 limit first"
    assert service_shape(first).count("completionEnd:END_TURN") == 4
    history = history_of(second)
    assert [r for r, _ in history] == ["USER", "ASSISTANT"] * 4
    assert [t for r, t in history if r == "USER"] == texts_of(first, "USER")
    assert second.end_reason == "completed" and service_shape(second)[-1] == "completionEnd:END_TURN"


def test_nova2_idle_timeout_after_55_s_without_input_events() -> None:
    (st,) = cassette("nova2_idle_timeout")
    exc = exception_of(st)
    assert (exc.name, exc.message, exc.t) == ("validationException", texts.TIMED_OUT_INPUT, LIMITS.idle_input_timeout_s)
    assert not any(isinstance(r, AudioInRecord) for r in st.records)
    last_input = [r for r in st.records if isinstance(r, ClientEventRecord)][-1]
    assert isinstance(last_input.event, ContentStart) and str(last_input.event.type) == "AUDIO"
    assert exc.t - last_input.t == LIMITS.idle_input_timeout_s


def test_nova2_silence_timeout_after_175_s_of_silent_frames_then_restart() -> None:
    first, second = cassette("nova2_silence_timeout")
    exc = exception_of(first)
    assert (exc.name, exc.message) == ("validationException", texts.RST_531)
    (speech,) = speech_segments(first)
    silent_ms = exc.a - speech[1]
    assert LIMITS.silent_audio_timeout_s * 1000 - 40 <= silent_ms <= LIMITS.silent_audio_timeout_s * 1000 + 40
    assert history_of(second)[0] == ("USER", "can you remind me to water the plants?")
    assert second.end_reason == "completed"


def test_nova1_audio_turn_per_sentence_blocks_and_final_after_audio() -> None:
    (st,) = cassette("nova1_audio_turn")
    assert st.model_id == NOVA_SONIC_1
    s = service_shape(st)
    assert "userSpeechStart" not in s and "userSpeechEnd" not in s  # Nova 1 has none
    sentence = ["cs:TEXT:ASSISTANT:SPECULATIVE", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN", "cs:AUDIO:ASSISTANT", "audio"]
    assert s == [
        "completionStart", "cs:TEXT:USER:FINAL", "text:USER", "ce:TEXT:PARTIAL_TURN",
        *sentence, "ce:AUDIO:PARTIAL_TURN", *sentence, "ce:AUDIO:PARTIAL_TURN", *sentence, "ce:AUDIO:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:END_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "ce:TEXT:PARTIAL_TURN",
        "completionEnd:END_TURN",
    ]
    assert texts_of(st, "ASSISTANT", "FINAL") == texts_of(st, "ASSISTANT", "SPECULATIVE")
    assert len(texts_of(st, "ASSISTANT", "FINAL")) == 3
    # SQ: 1920-byte chunks (40 ms at 24 kHz)
    outs = [r for r in st.records if isinstance(r, AudioOutRecord)]
    assert all(r.sample_rate == 24000 and max(r.sizes) == 1920 for r in outs)
    # no completionEnd before the prompt ends: it follows the client's promptEnd
    prompt_end = next(r for r in st.records if isinstance(r, ClientEventRecord) and isinstance(r.event, PromptEnd))
    completion_end = next(r for r in server_records(st) if r.event.EVENT_NAME == "completionEnd")
    assert st.records.index(completion_end) > st.records.index(prompt_end)


def test_agent_demo_has_audio_in_a_get_weather_call_and_a_barge_in() -> None:
    (st,) = cassette("agent_demo")
    flow = _tool_flow(st)
    use = next(v for k, v in flow if k == "use")
    assert (use.tool_name, json.loads(use.content)) == ("get_weather", {"location": "Lisbon"})
    assert next(v for k, v in flow if k == "result")[0] == use.tool_use_id
    assert len(speech_segments(st)) == 2
    s = service_shape(st)
    assert "ce:TEXT:INTERRUPTED" in s and s[-1] == "completionEnd:END_TURN"
    k = [i for i, tok in enumerate(s) if tok == "userSpeechStart"][1]
    assert s[k: k + 2] == ["userSpeechStart", "ce:AUDIO:PARTIAL_TURN"]
    first, second = tracker_of(st).turns
    assert first.interrupted and [c.name for c in first.tool_calls] == ["get_weather"]
    assert second.user_text == "thanks, that's all i needed." and not second.interrupted
    # interrupted in the follow-up's second sentence, after the tool result
    result = next(r for r in st.records if isinstance(r, ClientEventRecord) and isinstance(r.event, ToolResult))
    barge = [r for r in server_records(st) if isinstance(r.event, UserSpeechStart)][1]
    assert st.records.index(result) < st.records.index(barge)


# --- generator helpers that need no recording ---------------------------------------------------------------


def test_content_bytes_ignores_only_created_and_toolkit() -> None:
    data = (LIBRARY / "nova2_audio_turn.jsonl").read_bytes()
    first, _, rest = data.partition(b"\n")
    header = json.loads(first)
    header["created"], header["toolkit"] = "1999-01-01T00:00:00Z", "9.9.9"
    changed_meta = dict(header, meta={**header["meta"], "seed": 0})
    dump = lambda h: json.dumps(h, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" + rest  # noqa: E731
    assert content_bytes(dump(header)) == content_bytes(data)
    assert content_bytes(dump(changed_meta)) != content_bytes(data)
    assert content_bytes(data.replace(b"gym", b"pool")) != content_bytes(data)
