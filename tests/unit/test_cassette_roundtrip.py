"""Write → load round trips: every record kind, the compact forms, and a Hypothesis property."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    CassetteHeader,
    CassetteWriter,
    ClientEventRecord,
    EndRecord,
    ExceptionRecord,
    NoteRecord,
    ServerEventRecord,
    StreamRecord,
    TransportRecord,
    WriterOptions,
    load_cassette,
    read_cassette,
    save_cassette,
)
from novasonic.cassette.audio import compact_ints, expand_ints, segments_of
from novasonic.events import AudioInput, AudioOutput, UsageEvent, parse_output, pcm_to_b64
from novasonic.models import NOVA_2_SONIC
from tests.helpers import factories as f

HEADER = CassetteHeader(model_id=NOVA_2_SONIC, voice="matthew", region="us-east-1", source="scripted",
                        meta={"test": "roundtrip"})
PROMPT = f.PROMPT


def opening() -> list[Any]:
    return [f.session_start(nested="MEDIUM"), f.prompt_start(), *f.system_block(), f.audio_start("mic")]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines()]


def tone(n_bytes: int, amplitude: int = 3000) -> bytes:
    import numpy as np

    n = n_bytes // 2
    x = (np.sin(np.arange(n) * 2 * np.pi * 200 / 16000) * amplitude).astype("<i2")
    return x.tobytes()


# --- every record kind ------------------------------------------------------------------------------


def test_header_and_stream_records(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CassetteWriter(path, HEADER) as w:
        w.open_stream(0, t0=0.0, model_id=NOVA_2_SONIC, region="us-east-1", meta={"note": "first"})
        w.write_client(0, 0.0, None, f.session_start())
        w.end_stream(0, 0.5, "completed", input_finished=True)
    first = lines(path)[0]
    assert list(first)[0] == "novasonic_cassette" and first["novasonic_cassette"] == 1
    assert first["ids"] == "recorded" and first["audio"]["user"] == "segments"
    c = load_cassette(path)
    h = c.header
    assert (h.model_id, h.voice, h.region, h.source, h.meta) == (NOVA_2_SONIC, "matthew", "us-east-1", "scripted",
                                                                 {"test": "roundtrip"})
    assert h.input_rate == 16000 and h.output_rate == 24000 and h.toolkit and h.created.endswith("Z")
    s = c[0]
    assert s.start == StreamRecord(stream=0, t0=0.0, model_id=NOVA_2_SONIC, region="us-east-1", meta={"note": "first"})
    assert s.end == EndRecord(stream=0, t=0.5, reason="completed", input_finished=True)
    assert s.start.line == 2 and s.end.line == 4


def test_client_and_server_events(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    client = [*opening(), f.content_end("mic"), *f.interactive_text_block("typed", "hello"),
              *f.tool_result_block("tr", "tool-1"), f.prompt_end(), f.session_end()]
    server = [
        f.completion_start(), f.user_speech_start(0), f.user_speech_end(1920),
        *f.out_text_block("u1", "USER", "FINAL", "hi there"),
        *f.out_tool_block("tc", "tool-1", "getDateTool", {"tz": "UTC"}),
        f.usage_event(in_text=3), f.usage_event(in_text=3, total=(1, 2, 3, 4)),
        f.unknown_output("brandNewEvent", {"x": [1, 2], "sessionId": "s-1"}),
        parse_output({"event": {"textOutput": {"completionId": "c-1", "content": "x", "contentId": "u1",
                                               "promptName": PROMPT, "role": "ASSISTANT", "sessionId": "s-1",
                                               "addedByService": None}}}),
        f.completion_end(),
    ]
    with CassetteWriter(path, HEADER) as w:
        for i, ev in enumerate(client[:5]):
            w.write_client(0, i * 0.01, None, ev)
        for i, ev in enumerate(server[:-1]):
            w.write_server(0, 0.1 + i * 0.01, None, ev)
        for i, ev in enumerate(client[5:]):
            w.write_client(0, 0.5 + i * 0.01, None, ev)
        w.write_server(0, 0.9, None, server[-1])
    s = load_cassette(path)[0]
    assert s.client_events() == client
    assert s.server_events() == server
    assert all(isinstance(r, ClientEventRecord | ServerEventRecord | StreamRecord) for r in s.records)


def test_service_ids_are_written_when_they_change(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    server = [
        f.user_speech_start(0),  # sessionId, promptName; no completionId
        f.completion_start(),  # completionId appears
        *f.out_text_block("u1", "USER", "FINAL", "hi"),
        f.completion_start(completion_id="c-2"),  # a new completion
        f.user_speech_end(100),
    ]
    with CassetteWriter(path, HEADER) as w:
        w.write_client(0, 0.0, None, f.session_start())
        for i, ev in enumerate(server):
            w.write_server(0, 0.1 + i / 100, None, ev)
    body = [x["e"] for x in lines(path)[3:]]
    assert body[0] == {"userSpeechStart": {"inputAudioOffsetMs": 0, "promptName": PROMPT, "sessionId": "s-1"}}
    assert body[1] == {"completionStart": {"completionId": "c-1"}}
    assert "contentId" in body[2]["contentStart"] and "contentId" not in body[3]["textOutput"]
    assert body[5] == {"completionStart": {"completionId": "c-2"}}
    assert body[6] == {"userSpeechEnd": {"inputAudioDetectionOffsetMs": 580, "inputAudioOffsetMs": 100}}
    assert load_cassette(path)[0].server_events() == server


def test_usage_compact_form_and_its_fallbacks(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    plain = f.usage_event(in_text=22)
    other_ids = f.usage_event(in_text=1, completion_id="c-other")
    not_sums = UsageEvent.model_validate({**plain.to_dict(), "totalTokens": 999}, by_alias=True)
    added = UsageEvent.model_validate({**plain.to_dict(), "newCounter": 5}, by_alias=True)
    server = [f.completion_start(), plain, other_ids, not_sums, added]
    with CassetteWriter(path, HEADER) as w:
        w.write_client(0, 0.0, None, f.session_start())
        for i, ev in enumerate(server):
            w.write_server(0, 0.1 + i / 100, None, ev)
    got = lines(path)[4:]
    assert got[0]["u"] == [0, 22, 0, 0, 0, 22, 0, 0]
    assert all("e" in x and "u" not in x for x in got[1:])
    assert load_cassette(path)[0].server_events() == server


@pytest.mark.parametrize("user_audio", ["segments", "sidecar", "inline"])
def test_audio_in_records(tmp_path: Path, user_audio: str) -> None:
    path = tmp_path / "c.jsonl"
    frames = [AudioInput.from_pcm(PROMPT, "mic", bytes(1024)) for _ in range(10)]
    frames += [AudioInput.from_pcm(PROMPT, "mic", tone(1024)) for _ in range(20)]
    frames += [AudioInput.from_pcm(PROMPT, "mic", bytes(512))]
    with CassetteWriter(path, HEADER, WriterOptions(user_audio=user_audio)) as w:  # type: ignore[arg-type]
        for i, ev in enumerate(opening()):
            w.write_client(0, i / 1000, None, ev)
        for i, fr in enumerate(frames):
            w.write_client(0, 0.1 + i * 0.032, None, fr)
        w.write_client(0, 1.2, None, f.content_end("mic"))
    c = load_cassette(path)
    (rec,) = [r for r in c[0].records if isinstance(r, AudioInRecord)]
    assert rec.sizes == (1024,) * 30 + (512,) and rec.sample_rate == 16000
    assert rec.duration_ms == pytest.approx(976) and rec.a == 0 and rec.t == 0.1 and rec.t_end == pytest.approx(1.06)
    assert rec.segments == (("silence", 0, 320), ("speech", 320, 960), ("silence", 960, 976))
    raw = next(x for x in lines(path) if x.get("k") == "audio_in")
    assert raw["sz"] == [[1024, 30], 512] and raw["n"] == 31 and raw["ms"] == 976
    if user_audio == "segments":
        assert rec.pcm is None and "pcm" not in raw
        assert [e.pcm_len for e in c[0].client_events()[6:-1]] == [len(x.pcm) for x in frames]
    else:
        assert rec.pcm is not None and rec.pcm.in_sidecar == (user_audio == "sidecar")
        assert c[0].client_events()[6:-1] == frames
    assert (tmp_path / "c.audio").exists() == (user_audio == "sidecar")


@pytest.mark.parametrize("assistant_audio", ["elided", "sidecar", "inline"])
def test_audio_out_records_with_usage_inside(tmp_path: Path, assistant_audio: str) -> None:
    path = tmp_path / "c.jsonl"
    chunks = [f.out_audio("a1", 1920) for _ in range(5)] + [f.out_audio("a1", 640)]
    chunks = [AudioOutput.from_pcm(tone(c.pcm_len), **{k: getattr(c, k) for k in
                                                       ("content_id", "session_id", "prompt_name", "completion_id")})
              for c in chunks]
    tick = f.usage_event(out_speech=20)
    server = [f.completion_start(), f.out_audio_start("a1", sample_rate=24000), *chunks[:3], tick, *chunks[3:],
              f.out_content_end("a1", "AUDIO", "END_TURN")]
    times = [0.1, 0.1, 0.12, 0.15, 0.19, 0.19, 0.2, 0.2, 0.3, 0.4]
    with CassetteWriter(path, HEADER, WriterOptions(assistant_audio=assistant_audio)) as w:  # type: ignore[arg-type]
        w.write_client(0, 0.0, None, f.session_start())
        for t, ev in zip(times, server):
            w.write_server(0, t, None, ev)
    c = load_cassette(path)
    (rec,) = [r for r in c[0].records if isinstance(r, AudioOutRecord)]
    assert rec.sizes == (1920,) * 5 + (640,) and rec.sample_rate == 24000
    assert rec.offsets_ms == (0, 30, 70, 80, 80, 180) and rec.t == 0.12
    assert [k for k, _ in rec.usage] == [3]
    raw = next(x for x in lines(path) if x.get("k") == "audio_out")
    assert raw["dt"] == [30, 40, 10, 0, 100] and raw["u"] == [[3, [0, 0, 20, 0, 0, 0, 20, 0]]]
    expected = server if assistant_audio != "elided" else [
        ev.model_copy(update={"content": pcm_to_b64(bytes(ev.pcm_len))})
        if isinstance(ev, AudioOutput) else ev for ev in server]
    assert c[0].server_events() == expected
    expanded = c[0].expand(rec)
    assert [t for t, _ in expanded][3] == pytest.approx(0.19)  # the usage tick at its chunk's time


def test_exception_transport_note_records(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CassetteWriter(path, HEADER) as w:
        w.write_client(0, 0.0, None, f.session_start())
        w.write_note(0, 0.05, "fault fired: rst after 1 event")
        w.write_transport(0, 0.1, None, "goaway", code=0, detail="server shutting down")
        w.write_exception(0, 0.2, None, "throttlingException", "Too many requests", extra={"retryAfter": 1})
        w.end_stream(0, 0.2, "exception:throttlingException")
        w.write_transport(1, 0.0, None, "rst", direction="c", code=8)
        w.write_exception(1, 0.0, None, "ValidationException", "bad model", via="http", status=400)
        w.write_exception(1, 0.1, None, "InternalFailure", "boom", via="error")
        w.write_transport(1, 0.2, None, "end-input", direction="c")
        w.write_transport(1, 0.3, None, "end-stream")
        w.write_note(1, None, "no time")
    c = load_cassette(path)
    r0, r1 = c[0].records[1:], c[1].records[1:]  # after the stream records the writer adds
    assert isinstance(c[1].records[0], StreamRecord) and c[1].model_id == NOVA_2_SONIC
    assert r0[1] == NoteRecord(stream=0, t=0.05, text="fault fired: rst after 1 event")
    assert r0[2] == TransportRecord(stream=0, direction="s", t=0.1, a=0, action="goaway", code=0,
                                    detail="server shutting down")
    assert r0[3] == ExceptionRecord(stream=0, t=0.2, a=0, name="throttlingException", message="Too many requests",
                                    extra={"retryAfter": 1})
    assert r1[0] == TransportRecord(stream=1, direction="c", t=0.0, a=0, action="rst", code=8)
    assert r1[1].via == "http" and r1[1].status == 400 and r1[2].via == "error"
    assert r1[-1] == NoteRecord(stream=1, text="no time")
    assert c[1].end is None
    assert [len(b.after) for b in c[1].bursts()] == [1, 1]


def test_continuation_records_after_flush(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CassetteWriter(path, HEADER) as w:
        for i, ev in enumerate(opening()):
            w.write_client(0, i / 1000, None, ev)
        w.write_server(0, 0.01, None, f.out_audio_start("a1", sample_rate=24000))
        for k in range(6):
            w.write_client(0, 0.1 + k * 0.032, None, f.audio_input("mic"))
            w.write_server(0, 0.1 + k * 0.032, None, f.out_audio("a1", 960))
            if k == 2:
                w.flush()
    raw = [x for x in lines(path) if x.get("k") in ("audio_in", "audio_out")]
    assert [x["k"] for x in raw] == ["audio_in", "audio_out", "audio_in", "audio_out"]
    assert "e" in raw[0] and "e" in raw[1] and "hz" in raw[1]
    assert "e" not in raw[2] and "e" not in raw[3] and "hz" not in raw[2] and "hz" not in raw[3]
    s = load_cassette(path)[0]
    assert [len(r.sizes) for r in s.records if isinstance(r, AudioOutRecord)] == [3, 3]
    assert len([e for e in s.server_events() if isinstance(e, AudioOutput)]) == 6
    assert [r.a for r in s.records if isinstance(r, AudioInRecord)] == [0, 96]


def test_a_audio_in_run_ends_with_a_client_event_and_a_long_run_splits(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CassetteWriter(path, HEADER, WriterOptions(audio_in_split_ms=320)) as w:
        for i, ev in enumerate(opening()):
            w.write_client(0, i / 1000, None, ev)
        for k in range(30):
            w.write_client(0, 0.1 + k * 0.032, None, f.audio_input("mic"))
            if k % 5 == 4:
                w.write_server(0, 0.1 + k * 0.032, None, f.usage_event(in_speech=1))
    s = load_cassette(path)[0]
    runs = [r for r in s.records if isinstance(r, AudioInRecord)]
    assert [r.n_frames for r in runs] == [10, 10, 10]
    assert [r.a for r in runs] == [0, 320, 640]
    ticks = [r for r in s.records if isinstance(r, ServerEventRecord)]
    assert [r.a for r in ticks] == [160, 320, 480, 640, 800, 960]


def test_save_cassette_round_trip(tmp_path: Path) -> None:
    from tests.unit.test_cassette_conversation import conversation, header, record

    items = conversation(minute_s=12.0)
    src = tmp_path / "src.jsonl"
    record(src, items, WriterOptions(user_audio="sidecar", assistant_audio="sidecar"), flush="bursts")
    a = load_cassette(src)
    dst = save_cassette(a, tmp_path / "dst.jsonl")
    b = load_cassette(dst)
    assert list(b.records()) == list(a.records())  # same blobs in the same order: same sidecar offsets too
    assert b[0].client_events() == a[0].client_events()
    assert (tmp_path / "dst.audio").stat().st_size == (tmp_path / "src.audio").stat().st_size
    # Saving under a policy that keeps no audio drops it.
    c = load_cassette(save_cassette(a, tmp_path / "lean.jsonl",
                                    options=WriterOptions(user_audio="segments", assistant_audio="elided")))
    assert all(getattr(r, "pcm", None) is None for r in c.records())
    assert not (tmp_path / "lean.audio").exists()
    assert c.size_bytes < a.size_bytes
    assert header().model_id == c.header.model_id


# --- audio helpers ------------------------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=5000), max_size=60))
def test_compact_ints_round_trip(values: list[int]) -> None:
    packed = compact_ints(values)
    assert expand_ints(packed, count=len(values)) == values
    assert len(json.dumps(packed)) <= len(json.dumps(values)) + 1


def test_segments_do_not_depend_on_frame_sizes() -> None:
    pcm = bytes(8000) + tone(16000) + bytes(3200) + tone(6400) + bytes(12800)
    whole = segments_of(pcm, 16000, 100.0)
    from novasonic.cassette import Segmenter

    seg = Segmenter(16000, 100.0)
    for i in range(0, len(pcm), 777):  # odd sizes, even an odd byte count
        seg.feed(pcm[i:i + 777])
    assert seg.segments() == whole
    # 250 ms silence, 500 ms tone, 100 ms silence, 200 ms tone, 400 ms silence, from 100 ms on, in
    # 40 ms windows: a window partly voiced is voiced; the 100 ms pause (80 ms of silent windows) is
    # shorter than min_silence_ms, so it is part of the speech.
    assert whole == [("silence", 100, 340), ("speech", 340, 1180), ("silence", 1180, 1550)]


# --- Hypothesis: any sequence of writes reads back -------------------------------------------------

_TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """A random mix of client events, audio frames, service events, audio chunks, usage ticks,
    exceptions, transport actions, notes and flushes over one or two streams."""
    ops: list[tuple[Any, ...]] = []
    n_streams = draw(st.integers(1, 2))
    for s in range(n_streams):
        t = 0.0
        for i in range(draw(st.integers(1, 40))):
            t += draw(st.sampled_from([0.0, 0.001, 0.02, 0.5]))
            # A stream's first operation writes to it (a flush alone opens nothing, and the writer
            # rightly refuses stream 1 when stream 0 was never written).
            kind = draw(st.sampled_from(["client", "audio_in", "server", "audio_out", "usage", "exception",
                                         "transport", "note"] + (["flush"] if i else [])))
            if kind == "client":
                ev = draw(st.sampled_from([f.session_start(), f.prompt_start(), f.content_end("mic"),
                                           f.text_input("sys", "x")]))
                ops.append(("c", s, t, ev.model_copy(update={"content": draw(_TEXTS)}) if hasattr(ev, "content")
                            else ev))
            elif kind == "audio_in":
                size = draw(st.sampled_from([0, 2, 640, 1024, 1025]))
                loud = draw(st.booleans())
                ops.append(("c", s, t, AudioInput.from_pcm(PROMPT, draw(st.sampled_from(["mic", "mic2"])),
                                                           tone(size) if loud else bytes(size))))
            elif kind == "server":
                ev = draw(st.sampled_from([
                    f.completion_start(), f.completion_start(completion_id="c-2"), f.user_speech_start(10),
                    f.out_text_block("t1", "USER", "FINAL", "x")[1], f.out_audio_start("a2", sample_rate=16000),
                    f.unknown_output("later", {"n": 1}), f.out_tool_use("tc", "tu-1", "tool", {"a": 1}),
                ]))
                ops.append(("s", s, t, ev))
            elif kind == "audio_out":
                cid = draw(st.sampled_from(["a1", "a2"]))
                ops.append(("s", s, t, AudioOutput.from_pcm(tone(draw(st.sampled_from([2, 960, 1920]))),
                                                            **{**f._ids(), "content_id": cid})))
            elif kind == "usage":
                ops.append(("s", s, t, f.usage_event(out_speech=draw(st.integers(0, 50)),
                                                     completion_id=draw(st.sampled_from(["c-1", "c-2"])))))
            elif kind == "exception":
                ops.append(("x", s, t, draw(st.sampled_from(["validationException", "modelTimeoutException"])),
                            draw(_TEXTS)))
            elif kind == "transport":
                ops.append(("tr", s, t, draw(st.sampled_from(["rst", "goaway", "close"])), draw(st.sampled_from("cs"))))
            elif kind == "note":
                ops.append(("note", s, t, draw(_TEXTS)))
            else:
                ops.append(("flush",))
    return ops


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations(), audio=st.sampled_from([("segments", "elided"), ("sidecar", "sidecar"), ("inline", "inline")]))
def test_any_sequence_round_trips(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]],
                                  audio: tuple[str, str]) -> None:
    path = tmp_path_factory.mktemp("h") / "c.jsonl"
    want: dict[int, dict[str, list[Any]]] = {}
    with CassetteWriter(path, HEADER, WriterOptions(user_audio=audio[0], assistant_audio=audio[1])) as w:  # type: ignore[arg-type]
        for op in ops:
            if op[0] == "flush":
                w.flush()
                continue
            kind, s = op[0], op[1]
            bucket = want.setdefault(s, {"c": [], "s": [], "other": []})
            if kind == "c":
                w.write_client(s, op[2], None, op[3])
                bucket["c"].append(op[3])
            elif kind == "s":
                w.write_server(s, op[2], None, op[3])
                bucket["s"].append(op[3])
            elif kind == "x":
                w.write_exception(s, op[2], None, op[3], op[4])
                bucket["other"].append(("exception", op[3], op[4]))
            elif kind == "tr":
                w.write_transport(s, op[2], None, op[3], direction=op[4])
                bucket["other"].append(("transport", op[3], op[4]))
            else:
                w.write_note(s, op[2], op[3])
                bucket["other"].append(("note", op[3]))
    c = load_cassette(path, validate=False)
    assert len(c) == len(want)
    full = audio[0] != "segments"
    for s, stream in enumerate(c):
        got_c = stream.client_events()
        assert len(got_c) == len(want[s]["c"])
        for a, b in zip(want[s]["c"], got_c):
            if isinstance(a, AudioInput) and not full:
                assert (a.pcm_len, a.content_name) == (b.pcm_len, b.content_name)
            else:
                assert a == b
        got_s = stream.server_events()
        if audio[1] == "elided":
            assert [(type(e), e.pcm_len if isinstance(e, AudioOutput) else e) for e in got_s] == \
                   [(type(e), e.pcm_len if isinstance(e, AudioOutput) else e) for e in want[s]["s"]]
        else:
            assert got_s == want[s]["s"]
        other = []
        for r in stream.records:
            if isinstance(r, ExceptionRecord):
                other.append(("exception", r.name, r.message))
            elif isinstance(r, TransportRecord):
                other.append(("transport", r.action, r.direction))
            elif isinstance(r, NoteRecord):
                other.append(("note", r.text))
        assert other == want[s]["other"]
        # The text form reads back to the same records.
    again = read_cassette(path.read_bytes(), path=path, validate=False)
    assert [r.model_dump() for r in again.records()] == [r.model_dump() for r in c.records()]
