"""The real Nova 2 Sonic output captures in ``tests/data/captures`` (copied from ``shared/captures``) against novasonic.events.

Every event in both files must parse to a known event type (never ``UnknownOutputEvent``) and
re-serialise to the same JSON: equal after ``json.loads``, and byte-for-byte equal to the compact,
key-sorted form the service sends (protocol.md §2.0).

Audio placeholders. The recorder did not keep the audio:

- ``nova2-asr-turn.events.json`` replaced each ``audioOutput`` with ``{"audioOutput": {"bytes": N}}``
  (59 of them, inside the one AUDIO block). ``N`` is the size of the decoded PCM (3416 bytes for
  most chunks, 3372 first, 8576 last, matching protocol.md §2.1 "OME-PRE logged 3416 … 8576").
  ``expand`` turns each placeholder into a real ``AudioOutput`` holding N bytes of PCM and the
  ids of the *enclosing* AUDIO ``contentStart`` (completionId, contentId, promptName, sessionId)
  with role ASSISTANT, which is what the service sends for every audio chunk (§2.1). Those
  expanded events round-trip too, but they are not compared with the file (the file has no audio).
- ``nova2-tool-turn.events.json`` left the audio out entirely and kept only the counts
  (``audioOutput_omitted``: 101 frames, 355 248 base64 characters; ``usageEvent_omitted``: 21);
  its AUDIO blocks therefore go straight from ``contentStart`` to ``contentEnd``. Those counts are
  checked as facts; nothing is invented for them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from novasonic.events import (
    AudioOutput,
    CompletionEnd,
    CompletionStart,
    ContentType,
    GenerationStage,
    OutputContentEnd,
    OutputContentStart,
    OutputEvent,
    Role,
    StopReason,
    TextOutput,
    ToolUse,
    UnknownOutputEvent,
    UserSpeechEnd,
    UserSpeechStart,
    is_barge_in,
    parse_output,
)
from tests.helpers.captures import CAPTURE_FILES, capture_path

ASR = "nova2-asr-turn.events.json"
TOOL = "nova2-tool-turn.events.json"



def load_doc(name: str) -> dict[str, Any]:
    return json.loads(capture_path(name).read_text(encoding="utf-8"))


def raw_events(name: str) -> list[dict[str, Any]]:
    return load_doc(name)[CAPTURE_FILES[name]]


def is_placeholder(raw: dict[str, Any]) -> bool:
    ((name, payload),) = raw.items()
    return name == "audioOutput" and set(payload) == {"bytes"}


def pcm_pattern(n: int, seed: int) -> bytes:
    """Deterministic non-silent PCM (zeros would hide offset mistakes in base64 handling)."""
    return bytes((seed + i * 7) % 256 for i in range(n))


def expand(raw: list[dict[str, Any]]) -> list[OutputEvent]:
    """Parse a capture, turning each ``{"audioOutput": {"bytes": N}}`` placeholder into an
    ``AudioOutput`` with N bytes of PCM and the ids of the enclosing AUDIO contentStart."""
    out: list[OutputEvent] = []
    audio_start: OutputContentStart | None = None
    for i, item in enumerate(raw):
        if is_placeholder(item):
            assert audio_start is not None, "audio placeholder outside an AUDIO block"
            out.append(
                AudioOutput.from_pcm(
                    pcm_pattern(item["audioOutput"]["bytes"], i),
                    completion_id=audio_start.completion_id,
                    content_id=audio_start.content_id,
                    prompt_name=audio_start.prompt_name,
                    session_id=audio_start.session_id,
                    role=Role.ASSISTANT,
                )
            )
            continue
        event = parse_output(item)
        if isinstance(event, OutputContentStart) and event.type is ContentType.AUDIO:
            audio_start = event
        elif isinstance(event, OutputContentEnd) and audio_start is not None and event.content_id == audio_start.content_id:
            audio_start = None
        out.append(event)
    assert audio_start is None, "capture ends inside an AUDIO block"
    return out


def compact_sorted(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# --- every event parses and round-trips -----------------------------------------------------------


@pytest.mark.parametrize("name", [ASR, TOOL])
def test_every_capture_event_parses_to_a_known_type_and_round_trips(name: str) -> None:
    seen = 0
    for raw in raw_events(name):
        if is_placeholder(raw):
            continue
        event = parse_output(raw)  # bare {"<name>": {...}} form, as recorded
        assert not isinstance(event, UnknownOutputEvent), raw
        assert event.EVENT_NAME == next(iter(raw))
        assert not event.model_extra, f"unexpected added fields in a real capture: {event.model_extra}"
        wire = {"event": raw}
        assert parse_output(wire) == event == parse_output(json.dumps(wire, ensure_ascii=False).encode())
        assert json.loads(event.to_json()) == wire
        assert event.to_json() == compact_sorted(wire)  # the service's own byte form
        assert parse_output(event.to_json()) == event
        seen += 1
    assert seen > 10


@pytest.mark.parametrize("name", [ASR, TOOL])
def test_expanded_capture_round_trips(name: str) -> None:
    events = expand(raw_events(name))
    for event in events:
        back = parse_output(event.to_bytes())
        assert back == event
        assert json.loads(back.to_json()) == event.to_envelope()
    assert not any(is_barge_in(e) for e in events)  # no barge-in in either capture


def test_asr_audio_placeholders_expand_to_audio_with_the_enclosing_ids() -> None:
    raw = raw_events(ASR)
    events = expand(raw)
    assert len(events) == len(raw)
    sizes = [r["audioOutput"]["bytes"] for r in raw if is_placeholder(r)]
    assert len(sizes) == 59
    assert sizes[0] == 3372 and sizes[-1] == 8576 and set(sizes[1:-1]) == {3416}

    starts = [e for e in events if isinstance(e, OutputContentStart) and e.type is ContentType.AUDIO]
    assert len(starts) == 1
    start = starts[0]
    audio = [e for e in events if isinstance(e, AudioOutput)]
    assert [a.pcm_len for a in audio] == sizes
    for a in audio:
        assert (a.completion_id, a.content_id, a.prompt_name, a.session_id) == (
            start.completion_id, start.content_id, start.prompt_name, start.session_id)
        assert a.role is Role.ASSISTANT
        assert len(a.pcm) == a.pcm_len

    # all audio sits between the AUDIO contentStart and its contentEnd (END_TURN)
    i_start = events.index(start)
    i_end = next(i for i, e in enumerate(events) if isinstance(e, OutputContentEnd) and e.content_id == start.content_id)
    assert all(i_start < events.index(a) < i_end for a in audio)
    assert events[i_end].stop_reason is StopReason.END_TURN and events[i_end].type is ContentType.AUDIO

    total = sum(sizes)
    assert total == 206_660
    assert sum(a.duration_ms(start.sample_rate_hertz) for a in audio) == pytest.approx(6458.125)


def test_tool_capture_audio_was_left_out_with_counts() -> None:
    doc = load_doc(TOOL)
    assert doc["audioOutput_omitted"]["frames"] == 101
    assert doc["audioOutput_omitted"]["base64_chars"] == 355_248
    assert doc["usageEvent_omitted"] == 21
    raw = raw_events(TOOL)
    assert not any(next(iter(r)) in ("audioOutput", "usageEvent") for r in raw)
    # 355 248 base64 characters are 266 436 bytes of PCM, ≈8.3 s at 16 kHz
    assert doc["audioOutput_omitted"]["base64_chars"] * 3 // 4 == 266_436
    events = expand(raw)
    for i, e in enumerate(events):  # each AUDIO contentStart is followed directly by its contentEnd
        if isinstance(e, OutputContentStart) and e.type is ContentType.AUDIO:
            nxt = events[i + 1]
            assert isinstance(nxt, OutputContentEnd) and nxt.content_id == e.content_id


# --- facts of the captures -----------------------------------------------------------------------


def names_of(events: list[OutputEvent]) -> list[str]:
    return [e.EVENT_NAME for e in events]


@pytest.mark.parametrize("name", [ASR, TOOL])
def test_audio_content_start_has_no_additional_model_fields_and_no_voice(name: str) -> None:
    raw_audio_starts = [r["contentStart"] for r in raw_events(name)
                        if "contentStart" in r and r["contentStart"]["type"] == "AUDIO"]
    assert raw_audio_starts
    for raw in raw_audio_starts:
        assert "additionalModelFields" not in raw
        assert "voiceId" not in raw["audioOutputConfiguration"]
        event = parse_output({"contentStart": raw})
        assert event.additional_model_fields is None
        assert event.generation_stage is None
        assert event.role is Role.ASSISTANT
        assert event.sample_rate_hertz == 16000
        cfg = event.audio_output_configuration
        assert (cfg.channel_count, cfg.encoding, cfg.media_type, cfg.sample_size_bits) == (1, "base64", "audio/lpcm", 16)


@pytest.mark.parametrize("name", [ASR, TOOL])
def test_text_blocks_generation_stages(name: str) -> None:
    events = expand(raw_events(name))
    text_starts = [e for e in events if isinstance(e, OutputContentStart) and e.type is ContentType.TEXT]
    user = [e for e in text_starts if e.role is Role.USER]
    assistant = [e for e in text_starts if e.role is Role.ASSISTANT]
    assert user and assistant
    assert all(e.generation_stage is GenerationStage.FINAL for e in user)  # USER transcripts are FINAL
    assert all(e.generation_stage is GenerationStage.SPECULATIVE for e in assistant)
    assert all(isinstance(e.additional_model_fields, str) for e in text_starts)  # a JSON *string*


@pytest.mark.parametrize("name", [ASR, TOOL])
def test_ids_are_consistent(name: str) -> None:
    events = expand(raw_events(name))
    assert len({e.prompt_name for e in events}) == 1
    assert len({e.session_id for e in events}) == 1
    completion_ids = {e.completion_id for e in events if hasattr(e, "completion_id")}
    assert len(completion_ids) == 1  # one completionId for the whole prompt (§2.0)
    # userSpeechStart/End carry no completionId
    speech = [e for e in events if isinstance(e, (UserSpeechStart, UserSpeechEnd))]
    assert speech and all("completionId" not in json.loads(e.to_json())["event"][e.EVENT_NAME] for e in speech)
    # every content event sits in the block its contentStart opened
    open_id = None
    for e in events:
        if isinstance(e, OutputContentStart):
            assert open_id is None
            open_id = e.content_id
        elif isinstance(e, (TextOutput, AudioOutput, ToolUse)):
            assert e.content_id == open_id
        elif isinstance(e, OutputContentEnd):
            assert e.content_id == open_id
            open_id = None
    assert open_id is None


def test_asr_capture_order_user_speech_end_before_completion_start() -> None:
    events = expand(raw_events(ASR))
    order = names_of(events)
    assert order[:3] == ["userSpeechStart", "userSpeechEnd", "completionStart"]
    assert order.index("userSpeechEnd") < order.index("completionStart")
    assert order[-1] == "completionEnd"
    end = events[-1]
    assert isinstance(end, CompletionEnd) and end.stop_reason is StopReason.END_TURN


def test_asr_capture_speech_offsets_and_korean_transcript() -> None:
    events = expand(raw_events(ASR))
    start = next(e for e in events if isinstance(e, UserSpeechStart))
    end = next(e for e in events if isinstance(e, UserSpeechEnd))
    assert start.input_audio_offset_ms == 0
    assert (end.input_audio_offset_ms, end.input_audio_detection_offset_ms) == (3080, 3600)
    transcript = next(e for e in events if isinstance(e, TextOutput) and e.role is Role.USER)
    assert transcript.content == "아이싱크 아이파운드 쓰리 베리 유스풀 비디오즈"
    assert transcript.content in transcript.to_json()  # written literally, not \\u-escaped
    answer = next(e for e in events if isinstance(e, TextOutput) and e.role is Role.ASSISTANT)
    assert answer.content.startswith("Sorry, that part sounds a bit unclear.")


def test_tool_capture_order_and_tool_use() -> None:
    events = expand(raw_events(TOOL))
    order = names_of(events)
    assert order[:3] == ["userSpeechStart", "completionStart", "userSpeechEnd"]  # the other order here
    tool_start_i = next(i for i, e in enumerate(events)
                        if isinstance(e, OutputContentStart) and e.type is ContentType.TOOL)
    tool_start = events[tool_start_i]
    assert tool_start.role is Role.TOOL
    assert tool_start.tool_use_output_configuration.media_type == "application/json"
    assert tool_start.additional_model_fields is None

    tool_use = events[tool_start_i + 1]
    assert isinstance(tool_use, ToolUse)
    assert tool_use.tool_name == "report_pronunciation_coaching"
    assert tool_use.tool_use_id == "fb0a993c-6798-4574-ade9-077667ec3336"
    assert tool_use.role is Role.TOOL
    args = tool_use.arguments
    assert isinstance(args, dict)
    assert args["target_form"] == "I think I found three very useful videos."
    assert args == {"target_form": "I think I found three very useful videos.",
                    "spoken_form": "[awaiting user repetition]", "outcome": "pending"}
    assert isinstance(tool_use.content, str)  # arguments travel as a JSON string

    tool_end = events[tool_start_i + 2]
    assert isinstance(tool_end, OutputContentEnd)
    assert tool_end.stop_reason is StopReason.TOOL_USE and tool_end.type is ContentType.TOOL
    assert not is_barge_in(tool_end)

    # Nova 2 async tools: the model kept talking (two SPECULATIVE sentences, each with AUDIO) with no toolResult
    after = events[tool_start_i + 3:]
    assert sum(isinstance(e, OutputContentStart) and e.type is ContentType.AUDIO for e in after) == 2
    assert isinstance(events[-1], CompletionEnd) and events[-1].stop_reason is StopReason.END_TURN
    assert [e.stop_reason for e in events if isinstance(e, OutputContentEnd) and e.type is ContentType.AUDIO] == [
        StopReason.PARTIAL_TURN, StopReason.END_TURN]


def test_tool_capture_speech_offsets() -> None:
    events = expand(raw_events(TOOL))
    end = next(e for e in events if isinstance(e, UserSpeechEnd))
    assert (end.input_audio_offset_ms, end.input_audio_detection_offset_ms) == (2480, 2760)
    assert end.input_audio_detection_offset_ms > end.input_audio_offset_ms


def test_completion_start_precedes_content() -> None:
    for name in (ASR, TOOL):
        events = expand(raw_events(name))
        first_content = next(i for i, e in enumerate(events) if isinstance(e, OutputContentStart))
        assert any(isinstance(e, CompletionStart) for e in events[:first_content])
