"""Cassette replay through the STOCK SDK client over loopback TLS/HTTP/2 (real FakeNovaSonic).

Cassettes are either recorded here (a real conversation with the scripted responder, converted
from the journal) or written by hand with exact times (``tests/helpers/replay_cassettes.py``).
Clients behave "open loop" where determinism is asserted: what they send depends on audio
positions, not on when output arrived. Speeds are ``math.inf`` except where pacing is the point;
no test asserts a wall-clock duration (pacing is checked as lower bounds on service time).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from aws_sdk_bedrock_runtime import models
from smithy_aws_event_stream.exceptions import ChecksumMismatch, UnmodeledEventError

from fakeserver import FakeNovaSonic
from fakeserver.audio import synth_speech
from fakeserver.replay import ReplayConfig
from novasonic.cassette import Cassette, WriterOptions, load_cassette
from novasonic.events import AudioOutput, OutputContentEnd, ToolUse
from tests.helpers import factories as f
from tests.helpers.conversation import Conversation, ConversationResult
from tests.helpers.replay_cassettes import collect_client_garbage  # noqa: F401 (autouse fixture)
from tests.helpers.replay_cassettes import (
    BARGE_SCRIPT,
    IDS,
    Tape,
    audio_turn_tape,
    cached,
    normalised,
    record,
    text_turn_tape,
    tool_conversation,
)
from tests.helpers.sessions import collect, send_all, wait_ended, wait_streams

BARGE_GAP_MS = 1500  # silence between the question and the interruption, in the recording


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay-sdk")


async def tool_cassette(d: Path) -> Path:
    return await cached(d, "tool", lambda p: record(p, tool_conversation))


async def barge_conversation(fake: FakeNovaSonic, gap_ms: float = BARGE_GAP_MS) -> ConversationResult:
    """Ask, wait ``gap_ms`` (the answer plays meanwhile), speak again (a barge-in when the answer
    is still playing), then listen to the answer to that."""
    async with Conversation(fake) as conv:
        await conv.silence(320)
        await conv.speak(1184)
        await conv.silence(gap_ms)
        await conv.speak(800, seed=2)
        await conv.silence_until(
            lambda: len(conv.assistant_texts("FINAL")) >= 2 and conv.events[-1].EVENT_NAME == "completionEnd",
            what="the answer after the barge-in")
        await conv.silence(160)
        return await conv.close()


async def barge_cassette(d: Path) -> Path:
    return await cached(d, "barge", lambda p: record(p, barge_conversation, script=BARGE_SCRIPT))


def recorded_events(path: Path, stream: int = 0) -> list[str]:
    return normalised(load_cassette(path)[stream].server_events())


# --------------------------------------------------------------------------- determinism, rebinding


async def test_replay_twice_gives_identical_server_events_with_client_names_rebound(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)
    runs = []
    for _ in range(2):
        async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
            result = await tool_conversation(fake)
            assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
            runs.append(result)
            # Every emitted event carries this client's promptName (its own UUID), never the recorded one.
            prompt = result.journal.client_events("promptStart")[0].prompt_name  # type: ignore[union-attr]
            assert {getattr(e, "prompt_name", prompt) for e in result.events} == {prompt}
            assert result.journal.end == "completed" and result.journal.exceptions == []
    a, b = (normalised(r.events) for r in runs)
    assert a == b
    assert a == recorded_events(path)  # and it is the recorded conversation
    # Recorded ids are re-issued (ids="recorded", the default): the cassette is greppable.
    recorded_tool = next(e for e in load_cassette(path)[0].server_events() if isinstance(e, ToolUse))
    assert [e.tool_use_id for e in runs[0].events if isinstance(e, ToolUse)] == [recorded_tool.tool_use_id]


async def test_fresh_ids_are_bound_back_when_the_client_answers_the_tool(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)
    recorded_tool = next(e for e in load_cassette(path)[0].server_events() if isinstance(e, ToolUse))
    async with FakeNovaSonic(cassette=path, speed=math.inf, seed=7, replay_config=ReplayConfig(ids="fresh")) as fake:
        result = await tool_conversation(fake)
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
        stream = fake.replay.streams[0]
    live_tool = next(e for e in result.events if isinstance(e, ToolUse))
    assert live_tool.tool_use_id != recorded_tool.tool_use_id
    assert stream.bindings.tool_ids == {recorded_tool.tool_use_id: live_tool.tool_use_id}
    # The client answered the fresh id; the replay mapped it back and released the follow-up.
    assert result.tool_results[0][0] == live_tool.tool_use_id
    assert result.blocks[-1].stage == "FINAL" and result.events[-1].EVENT_NAME == "completionEnd"
    ids = {e.session_id for e in result.events if hasattr(e, "session_id")}
    assert len(ids) == 1 and ids != {recorded_tool.session_id}
    assert normalised(result.events) == recorded_events(path)


# --------------------------------------------------------------------------- speed and audio time


async def text_turn(fake: FakeNovaSonic) -> ConversationResult:
    async with Conversation(fake) as conv:
        await conv.silence(320)
        await conv.interactive_text("hello there")
        await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
        return await conv.close()


@pytest.mark.parametrize("speed", [1.0, 20.0, math.inf])
async def test_speeds_give_the_same_events_and_keep_recorded_spacing(tmp_path: Path, speed: float) -> None:
    delay_s, dt_s = 0.3, 0.04
    path = text_turn_tape(tmp_path / "text.jsonl", delay_s=delay_s, dt_ms=dt_s * 1000)
    async with FakeNovaSonic(cassette=path, speed=speed) as fake:
        result = await text_turn(fake)
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
        stream = fake.replay.streams[0]
    assert normalised(result.events) == recorded_events(path)
    if math.isinf(speed):
        return
    # Service time (the scaled clock): the answer came no earlier than the recorded delay after
    # the text, and the chunks no closer than their recorded spacing.
    text_end = max(i for i in stream.arrivals if stream.steps[i].kind == "expect" and stream.steps[i].t < 0.5)
    arrived = stream.arrivals[text_end][0] - stream.t0
    first = stream.released[0]
    assert first.t - arrived >= delay_s - 0.002, (first, arrived)
    chunks = [r.t for r in stream.released if r.what.startswith("audioOutput")]
    assert len(chunks) == 6
    assert all(b - a >= dt_s - 0.002 for a, b in zip(chunks, chunks[1:])), chunks


async def spoken_turn(fake: FakeNovaSonic) -> ConversationResult:
    async with Conversation(fake) as conv:
        await conv.silence(320)
        await conv.speak(1184)
        await conv.silence_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
        await conv.silence(320)
        return await conv.close()


async def test_audio_gated_timing_is_identical_at_different_speeds(tmp_path: Path) -> None:
    path = audio_turn_tape(tmp_path / "audio.jsonl")
    cassette = load_cassette(path)
    positions = {}
    for speed in (math.inf, 20.0):
        async with FakeNovaSonic(cassette=cassette, speed=speed) as fake:
            result = await spoken_turn(fake)
            assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
            stream = fake.replay.streams[0]
        assert normalised(result.events) == recorded_events(path)
        positions[speed] = [(r.step, r.audio_ms) for r in stream.released]
        # Every service step waited for its recorded audio position (the client's audio is
        # counted from its audio contentStart, recorded at 0).
        assert all(r.audio_ms >= stream.steps[r.step].a for r in stream.released)
    assert positions[math.inf] == positions[20.0]
    # userSpeechStart was recorded at 416 ms: released on the first frame at or past it.
    assert positions[math.inf][0][1] == 416


# --------------------------------------------------------------------------- barge-in


async def test_barge_in_cuts_recorded_audio_and_continues_with_the_recorded_interruption(cassette_dir: Path) -> None:
    path = await barge_cassette(cassette_dir)
    recorded = load_cassette(path)[0].server_events()
    rec_norm = normalised(recorded)

    # The same client: no cut, the recorded conversation.
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        same = await barge_conversation(fake)
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
        assert fake.replay.streams[0].cuts == []
    assert normalised(same.events) == rec_norm

    # A client that interrupts 300 ms earlier: the assistant's audio is cut there, the recorded
    # interruption events follow, then the rest of the conversation. Twice: the same cut.
    runs = []
    for _ in range(2):
        async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
            early = await barge_conversation(fake, gap_ms=BARGE_GAP_MS - 300)
            assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
            cuts = fake.replay.streams[0].cuts
        assert len(cuts) == 1 and cuts[0].chunks > 0
        runs.append((normalised(early.events), cuts[0]))
    (events, cut), (events2, cut2) = runs
    assert events == events2 and cut == cut2

    block = cut.content_id
    n_recorded = sum(1 for e in recorded if isinstance(e, AudioOutput) and e.content_id == block)
    assert len(rec_norm) - len(events) == cut.chunks
    assert sum(1 for e in early.events if isinstance(e, AudioOutput) and e.content_id == block) == n_recorded - cut.chunks
    # After the last chunk of the block: exactly the recorded interruption and what followed.
    last_rec = max(i for i, e in enumerate(recorded) if isinstance(e, AudioOutput) and e.content_id == block)
    last_live = max(i for i, e in enumerate(early.events) if isinstance(e, AudioOutput) and e.content_id == block)
    assert early.shape()[early.shape().index("audio") + 1:][:6] == [
        "userSpeechStart", "ce:AUDIO:PARTIAL_TURN", "cs:TEXT:ASSISTANT:FINAL", "text:ASSISTANT", "text:ASSISTANT",
        "ce:TEXT:INTERRUPTED"]
    assert events[last_live + 1:] == rec_norm[last_rec + 1:]
    assert any(isinstance(e, OutputContentEnd) and e.content_id == block for e in early.events)


# --------------------------------------------------------------------------- multi-stream, recorded faults


def throttled_then_good(path: Path) -> Path:
    """Stream 0: throttled right after sessionStart. Stream 1: a text turn."""
    t = Tape(path)
    t.open()
    t.client(t.b.session_start()[0])
    t.exception("throttlingException", "Too many requests, please wait before trying again.")
    t.end("exception:throttlingException")
    t.open()
    t.start()
    t.audio(64)
    t.client(*t.b.interactive_text("hi"))
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.server(f.completion_start(**ids), *f.out_text_block("u", "USER", "FINAL", "", **ids),
             *f.out_text_block("x", "ASSISTANT", "FINAL", "Hello!", stop="END_TURN", **ids), f.completion_end(**ids))
    t.close_client()
    t.end()
    return t.save()


async def test_each_new_stream_takes_the_next_recorded_stream(tmp_path: Path, open_session) -> None:
    path = throttled_then_good(tmp_path / "multi.jsonl")
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        first = await open_session(fake)
        await send_all(first, [f.session_start(nested="MEDIUM"), f.prompt_start()])
        events, exc = await collect(first)
        assert events == [] and type(exc) is models.ThrottlingException
        assert exc.message == "Too many requests, please wait before trying again."

        async with Conversation(fake) as conv:  # the client's retry: a new connection, stream 1
            await conv.silence(64)
            await conv.interactive_text("hi")
            await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
            result = await conv.close()
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
        j0, j1 = await wait_streams(fake, 2)
    assert j0.end == "exception:throttlingException"
    assert j1.end == "completed"
    assert [b.text for b in result.blocks if b.role == "ASSISTANT" and b.stage == "FINAL"] == ["Hello!"]
    assert j1.connection_id != j0.connection_id


async def test_recorded_http_error_at_open(tmp_path: Path, open_session) -> None:
    t = Tape(tmp_path / "http.jsonl")
    t.open()
    t.exception("ThrottlingException", "Rate exceeded", via="http", status=429)
    t.end("http:429")
    path = t.save()
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        d = await open_session(fake)
        await send_all(d, [f.session_start(nested="MEDIUM")])
        with pytest.raises(models.ThrottlingException) as info:
            await d.await_output()
        assert info.value.message == "Rate exceeded"
        j = await wait_ended(fake)
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
    assert j.status == 429 and j.end == "http:429" and j.client == []


def answer_then(path: Path, action: str, **kw) -> Path:
    """The start block and three frames, then completionStart and two audio chunks, then ``action``."""
    t = Tape(path)
    t.open()
    t.start()
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.audio(96)
    t.server(f.completion_start(**ids))
    t.audio_out("aud", 2, end=False, audio_flows=False, **ids)
    if action in ("exception", "error"):
        t.exception("modelStreamErrorException" if action == "exception" else "InternalFailure", "Model stream broke",
                    via="stream" if action == "exception" else "error")
        t.end(f"{action}")
    else:
        t.transport(action, **kw)
        if action == "corrupt-frame":
            t.transport("end-stream")
        t.end(f"fault:{action}")
    return t.save()


@pytest.mark.parametrize(
    ("action", "kw", "end", "error"),
    [
        ("rst", {"code": 2}, "responder:rst", None),
        ("goaway", {"code": 0}, "responder:goaway", None),
        ("end-stream", {}, "responder:end-stream", None),
        ("close", {}, "responder:close", None),
        ("reset", {}, "responder:reset", None),  # the TCP connection dropped: the SDK just ends
        ("exception", {}, "exception:modelStreamErrorException", models.ModelStreamErrorException),
        ("error", {}, "error:InternalFailure", UnmodeledEventError),
        ("corrupt-frame", {"detail": "message"}, "responder:corrupt", ChecksumMismatch),
    ],
)
async def test_recorded_stream_endings_are_replayed(tmp_path: Path, open_session, action, kw, end, error) -> None:
    path = answer_then(tmp_path / f"{action}.jsonl", action, **kw)
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        d = await open_session(fake)
        await send_all(d, [f.session_start(nested="MEDIUM"), f.prompt_start(), *f.system_block(), f.audio_start(),
                           *f.audio_frames(count=3)])
        events, exc = await collect(d)
        j = await wait_ended(fake)
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
    names = [e.EVENT_NAME for e in events]
    if action == "corrupt-frame":  # the last chunk went out corrupted: the SDK drops it and raises
        assert names == ["completionStart", "contentStart", "audioOutput"]
    else:
        assert names == ["completionStart", "contentStart", "audioOutput", "audioOutput"]
    if error is None:
        assert exc is None  # rst / goaway / END_STREAM / close / reset: the output stream just ends
    else:
        assert isinstance(exc, error), exc
        if action == "exception":
            assert exc.message == "Model stream broke"
        if action == "error":
            assert (exc.code, exc.message) == ("InternalFailure", "Model stream broke")
    assert j.end == end


async def test_replay_accepts_a_loaded_cassette_and_reports_its_streams(tmp_path: Path) -> None:
    cassette: Cassette = load_cassette(text_turn_tape(tmp_path / "t.jsonl"))
    async with FakeNovaSonic(cassette=cassette, speed=math.inf) as fake:
        await text_turn(fake)
        assert fake.replay is not None
        report = fake.replay.report()
        assert fake.info()["cassette"] == str(cassette.path)
    assert report.all_played and report.mismatches == [] and report.unused == []
    assert "0 mismatches, 0 unused interactions" in str(report)
    assert report.streams[0].played == report.streams[0].total


@pytest.mark.parametrize("where", ["inline", "sidecar", "elided"])
async def test_assistant_audio_is_replayed_as_stored_or_synthesised_in_the_recorded_sizes(
        tmp_path: Path, where: str) -> None:
    voice = synth_speech(400, 24000, seed=9)
    sizes = [4800, 4800, 4800, 4800, len(voice) - 4 * 4800]
    t = Tape(tmp_path / f"{where}.jsonl", options=WriterOptions(assistant_audio=where))  # type: ignore[arg-type]
    t.open()
    t.start()
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.audio(64)
    t.client(*t.b.interactive_text("talk"))
    t.server(f.completion_start(**ids), f.out_audio_start("aud", sample_rate=24000, **ids))
    offset = 0
    for n in sizes:
        t.server(AudioOutput.from_pcm(voice[offset: offset + n], content_id="aud", **ids))
        offset += n
    t.server(f.out_content_end("aud", "AUDIO", "END_TURN", **ids), f.completion_end(**ids))
    t.close_client()
    t.end()
    path = t.save()
    assert (path.with_suffix(".audio").exists()) == (where == "sidecar")

    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake) as conv:
            await conv.silence(64)
            await conv.interactive_text("talk")
            await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
            # More microphone audio than the recording has is fine (clients stream all the time).
            await conv.silence(2000)
            result = await conv.close()
        assert fake.replay is not None and fake.replay.all_played, fake.replay.report()
    chunks = [e.pcm for e in result.events if isinstance(e, AudioOutput)]
    assert [len(c) for c in chunks] == sizes
    if where == "elided":  # synthesised: not silence, deterministic
        assert b"".join(chunks) != bytes(len(voice)) and b"".join(chunks) != voice
    else:
        assert b"".join(chunks) == voice
