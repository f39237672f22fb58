"""Every way a client can diverge from a cassette, seen through the STOCK SDK client: the stream
ends with an in-stream error (or the rules' own exception), and ``fake.replay.report()`` says what
was expected, what came, the closest recorded candidates and how to fix it. A client that ends
early leaves unused interactions in the report instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from aws_sdk_bedrock_runtime import models

from fakeserver import FakeNovaSonic
from fakeserver.replay import ReplayResponder
from novasonic.events import ToolUse
from novasonic.models import NOVA_SONIC_1
from tests.helpers import factories as f
from tests.helpers.conversation import Conversation
from tests.helpers.replay_cassettes import collect_client_garbage  # noqa: F401 (autouse fixture)
from tests.helpers.replay_cassettes import (
    IDS,
    WEATHER,
    Tape,
    cached,
    record,
    text_turn_tape,
    tool_conversation,
)
from tests.helpers.sessions import collect, send_all, wait_ended

MISMATCH_TEXT = "Cassette replay mismatch"


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay-mismatch")


async def tool_cassette(d: Path) -> Path:
    return await cached(d, "tool", lambda p: record(p, tool_conversation))


def replay_of(fake: FakeNovaSonic) -> ReplayResponder:
    assert fake.replay is not None
    return fake.replay


async def until_tool_use(conv: Conversation) -> ToolUse:
    await conv.silence(320)
    await conv.speak(1200)
    await conv.silence_until(lambda: conv.count("toolUse") >= 1, what="the toolUse")
    return next(e for e in conv.events if isinstance(e, ToolUse))


async def stream_error(conv: Conversation) -> BaseException:
    """The exception that ended the conversation's output stream (bounded wait)."""
    with pytest.raises(Exception) as info:
        await conv.wait_reader()
    return info.value


# --------------------------------------------------------------------------- wrong content type / role


async def test_wrong_block_type_ends_the_stream_with_a_readable_report(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake, tools=[WEATHER]) as conv:
            await until_tool_use(conv)
            await conv.interactive_text("what about london?")  # instead of the tool result
            exc = await stream_error(conv)
        j = await wait_ended(fake)
        replay = replay_of(fake)
    assert isinstance(exc, models.ValidationException)
    assert exc.message.startswith(MISMATCH_TEXT)
    (m,) = replay.mismatches
    assert m.kind == "unexpected-event"
    assert m.expected is not None and f"line {m.expected.line}" in exc.message
    assert "contentStart TOOL/TOOL" in exc.message and "contentStart TEXT/USER" in exc.message
    assert [x.matcher for x in m.failures] == ["content_kind"]
    assert 'type "TEXT", recorded "TOOL"' in str(m.failures[0])
    assert m.candidates[0].step is m.expected  # the expected event is shown among the closest
    assert j.end == "exception:validationException"
    report = replay.report()
    assert not report.all_played and not replay.all_played
    text = str(report)
    for needle in ("MISMATCH 1", "expected (line", "received: contentStart TEXT/USER", "matchers that failed",
                   "closest recorded client events", "how to fix", "UNUSED", "not reached"):
        assert needle in text, text


# --------------------------------------------------------------------------- wrong event type, extra events


async def test_an_event_the_recording_does_not_have_is_an_unexpected_event(tmp_path: Path) -> None:
    path = text_turn_tape(tmp_path / "text.jsonl")
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake) as conv:
            await conv.silence(320)
            # The recorded text block has one textInput; this client splits it in two.
            await conv.send(*conv.builder.interactive_text("hello there", split_bytes=5))
            exc = await stream_error(conv)
        replay = replay_of(fake)
    assert isinstance(exc, models.ValidationException) and exc.message.startswith(MISMATCH_TEXT)
    (m,) = replay.mismatches
    assert m.kind == "unexpected-event"
    assert [x.matcher for x in m.failures] == ["event_type"]
    assert str(m.failures[0]) == 'event_type: event "textInput", recorded "contentEnd"'
    assert any("no such event ahead" in h for h in m.hints)


async def test_skipped_recorded_events_are_reported_missing(tmp_path: Path) -> None:
    t = Tape(tmp_path / "split.jsonl")
    t.open()
    t.start()
    t.audio(320)
    t.client(*t.b.interactive_text("hello there", split_bytes=5))  # recorded: two textInputs
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.server(f.completion_start(**ids), *f.out_text_block("x", "ASSISTANT", "FINAL", "Hi!", stop="END_TURN", **ids),
             f.completion_end(**ids))
    t.close_client()
    t.end()
    path = t.save()
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake) as conv:
            await conv.silence(320)
            await conv.interactive_text("hello there")  # one textInput, then contentEnd
            exc = await stream_error(conv)
        replay = replay_of(fake)
    assert isinstance(exc, models.ValidationException)
    (m,) = replay.mismatches
    assert m.kind == "missing-event"
    assert m.expected is not None and m.expected.describe().startswith("textInput")
    hint = next(h for h in m.hints if "skipped" in h)
    # "hello there" in 5-byte pieces: three textInputs recorded, the client's contentEnd after one.
    assert "skipped 2 recorded client event(s)" in hint and f"line {m.expected.line + 1}: textInput" in hint
    assert m.candidates[0].step is m.expected  # shown first, then the closest: the contentEnd two later
    assert [(c.distance, c.failures) for c in m.candidates[1:2]] == [(2, ())]


def cut_off_tape(path: Path) -> Path:
    """A text turn whose recorded client vanished after the answer (no shutdown)."""
    t = Tape(path)
    t.open()
    t.start()
    t.audio(64)
    t.client(*t.b.interactive_text("hi"))
    ids = {**IDS, "prompt_name": t.b.prompt_name}
    t.server(f.completion_start(**ids), *f.out_text_block("x", "ASSISTANT", "FINAL", "Hi!", stop="END_TURN", **ids),
             f.completion_end(**ids))
    t.end("connection-lost")
    return t.save()


async def test_a_client_event_beyond_the_recording_is_an_extra_event(tmp_path: Path) -> None:
    path = cut_off_tape(tmp_path / "cut.jsonl")
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake) as conv:
            await conv.silence(64)
            await conv.interactive_text("hi")
            await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
            await conv.interactive_text("and another thing")
            exc = await stream_error(conv)
        replay = replay_of(fake)
    assert isinstance(exc, models.ValidationException) and "expected nothing more from the client" in exc.message
    (m,) = replay.mismatches
    assert m.kind == "extra-event" and m.expected is None
    assert "the recording's client sent nothing more" in " ".join(m.hints)


async def test_a_shutdown_beyond_the_recording_is_accepted(tmp_path: Path) -> None:
    path = cut_off_tape(tmp_path / "cut.jsonl")
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake) as conv:
            await conv.silence(64)
            await conv.interactive_text("hi")
            await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
            result = await conv.close()
        replay = replay_of(fake)
        assert replay.all_played, replay.report()
    assert result.journal.end == "completed"
    assert any("goes beyond the recording" in n for n in replay.report().notes)


# --------------------------------------------------------------------------- early end, unknown tool id


async def test_a_client_that_ends_early_leaves_unused_interactions(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake, tools=[WEATHER]) as conv:
            await until_tool_use(conv)
            result = await conv.close()  # never answers the tool: the documented shutdown
        replay = replay_of(fake)
        report = replay.report()
    assert result.journal.end == "completed"  # no error: ending early is not a mismatch
    assert report.mismatches == [] and not report.all_played, str(report)
    (u,) = report.unused
    assert "skipped" in u.reason
    assert [s.describe().split()[0] for s in u.client] == ["contentStart", "toolResult", "contentEnd"]
    assert u.client[0].describe().startswith("contentStart TOOL/TOOL")
    assert any(s.kind == "chunk" for s in u.server) and u.server[-1].describe() == "completionEnd"
    text = str(report)
    assert "UNUSED: stream 0, lines" in text and "client events not received: contentStart TOOL/TOOL" in text
    assert "audioOutput ×" in text


async def test_unknown_tool_use_id_is_rejected_by_the_rules_and_reported(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake, tools=[WEATHER]) as conv:
            tool_use = await until_tool_use(conv)
            await conv.send(*conv.builder.tool_result("not-a-tool-use-id", {"sky": "clear"}))
            exc = await stream_error(conv)
        j = await wait_ended(fake)
        replay = replay_of(fake)
    # The service's own answer (the rules' text), not the replay's: the real service rejects it too.
    assert isinstance(exc, models.ValidationException) and MISMATCH_TEXT not in exc.message
    assert j.client[-1].verdict != "accepted"
    (m,) = replay.mismatches
    assert m.kind == "rejected" and m.rule == j.client[-1].verdict
    names = [x.matcher for x in m.failures]
    assert names[0] == "rules" and "tool_use_id" in names
    tid = next(x for x in m.failures if x.matcher == "tool_use_id")
    assert "'not-a-tool-use-id' (the replay never sent that id)" in tid.message
    assert tool_use.tool_use_id in tid.message
    assert any(tool_use.tool_use_id in h and "toolUseIds this replay sent" in h for h in m.hints)


# --------------------------------------------------------------------------- matchers


async def test_default_matchers_ignore_prompt_and_tool_schema_strict_ones_do_not(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)
    other = dict(system_prompt="You are a weather bot. Be brief.")
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        await tool_conversation(fake, **other)
        assert replay_of(fake).all_played, replay_of(fake).report()

    async with FakeNovaSonic(cassette=path, speed=math.inf, match_on=("default", "system_prompt")) as fake:
        async with Conversation(fake, tools=[WEATHER], **other) as conv:
            exc = await stream_error(conv)
        replay = replay_of(fake)
    assert isinstance(exc, models.ValidationException) and MISMATCH_TEXT in exc.message
    (m,) = replay.mismatches
    assert m.expected is not None and m.expected.describe().startswith("textInput")
    assert [x.matcher for x in m.failures] == ["system_prompt"]
    assert '"You are a weather bot. Be brief.", recorded "You are a helpful assistant."' in m.failures[0].message
    assert any("leave system_prompt out of match_on" in h for h in m.hints)
    assert replay.match_on == ("event_type", "model", "content_kind", "names", "tool_use_id", "system_prompt")


async def test_a_custom_matcher_can_fail_a_replay(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)

    def city_is_paris(received, recorded, ctx):
        if received.EVENT_NAME == "toolResult" and "paris" not in received.content.lower():
            raise AssertionError("the tool result does not mention Paris")

    async with FakeNovaSonic(cassette=path, speed=math.inf, match_on=("default", city_is_paris)) as fake:
        async with Conversation(fake, tools=[WEATHER], on_tool_call=lambda call: {"city": "London"}) as conv:
            await until_tool_use(conv)
            exc = await stream_error(conv)
        replay = replay_of(fake)
    assert isinstance(exc, models.ValidationException)
    (m,) = replay.mismatches
    assert [str(x) for x in m.failures] == ["city_is_paris: the tool result does not mention Paris"]


async def test_wrong_model_is_a_mismatch_at_session_start(cassette_dir: Path) -> None:
    path = await tool_cassette(cassette_dir)
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake, NOVA_SONIC_1) as conv:
            exc = await stream_error(conv)
        replay = replay_of(fake)
    assert isinstance(exc, models.ValidationException)
    (m,) = replay.mismatches
    assert [x.matcher for x in m.failures] == ["model"]
    assert NOVA_SONIC_1 in m.failures[0].message and "amazon.nova-2-sonic-v1:0" in m.failures[0].message


# --------------------------------------------------------------------------- streams


async def test_a_stream_beyond_the_cassette_gets_an_error(tmp_path: Path, open_session) -> None:
    path = text_turn_tape(tmp_path / "one.jsonl")
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        async with Conversation(fake) as conv:
            await conv.silence(320)
            await conv.interactive_text("hello there")
            await conv.wait_until(lambda: conv.count("completionEnd") >= 1, what="the answer")
            await conv.close()
        second = await open_session(fake)
        await send_all(second, [f.session_start(nested="MEDIUM")])
        events, exc = await collect(second)
        replay = replay_of(fake)
        j = await wait_ended(fake, 1)
    assert events == [] and isinstance(exc, models.ValidationException)
    assert "this is stream 2 on this server, but the cassette" in exc.message and "records 1 stream(s)" in exc.message
    (m,) = replay.mismatches
    assert m.kind == "extra-stream" and m.connection == 1
    assert j.end == "exception:validationException"
    assert "the client opened more streams than the cassette has" in str(replay.report())


async def test_a_recorded_rejection_replays_as_the_rules_answer(tmp_path: Path, open_session) -> None:
    t = Tape(tmp_path / "rejected.jsonl")
    t.open()
    b = t.b
    t.client(*b.session_start(), *b.prompt_start())
    t.w.write_client(0, 0.01, None, b.audio_start()[0], verdict="first-content-not-system")
    t.exception("validationException", "First content must have SYSTEM role")
    t.end("exception:validationException")
    path = t.save()
    async with FakeNovaSonic(cassette=path, speed=math.inf) as fake:
        d = await open_session(fake)
        await send_all(d, [f.session_start(nested="MEDIUM"), f.prompt_start(), f.audio_start()])
        events, exc = await collect(d)
        replay = replay_of(fake)
        assert replay.all_played, replay.report()
    assert events == [] and isinstance(exc, models.ValidationException)
    assert exc.message == "First content must have SYSTEM role"
