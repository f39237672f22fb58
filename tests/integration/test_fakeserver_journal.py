"""The per-stream journal (fakeserver/journal.py) after real SDK sessions: client events with their
service times and verdicts, SigV4 verdicts, what the server sent, how each stream ended; audio is
summarised (bytes, frames) unless ``keep_audio``; no secret ever lands in it.
"""

from __future__ import annotations

import logging

from fakeserver.config import generate_credentials
from novasonic.events import AudioInput
from novasonic.wire import Credentials
from tests.helpers import factories as f
from tests.helpers.responders import EchoResponder, TalkResponder
from tests.helpers.sessions import NOVA2, collect, exchange, opening, send_all, wait_ended, wait_streams


async def _session(fake, open_session, events=None) -> list:
    d = await open_session(fake)
    await send_all(d, events or exchange(frames=4))
    await d.close_input()
    got, exc = await collect(d)
    assert exc is None
    return got


async def test_journal_of_a_completed_stream(start_fake, open_session) -> None:
    fake = await start_fake(TalkResponder(chunks=3, chunk_bytes=960))
    sent = exchange(frames=4)
    received = await _session(fake, open_session, sent)
    j = await wait_ended(fake)

    assert (j.index, j.model_id, j.region, j.access_key_id) == (0, NOVA2, fake.region, fake.access_key_id)
    assert (j.auth, j.chunk_signature, j.chunks_verified) == ("ok", "ok", len(sent) + 1)  # + the end frame
    assert (j.status, j.input_finished, j.end) == (200, True, "completed")

    # Client side: every event in order, with non-decreasing service times, all accepted.
    assert j.client_names() == [e.EVENT_NAME for e in sent]
    assert [c.verdict for c in j.client] == ["accepted"] * len(sent)
    times = [c.t for c in j.client]
    assert times == sorted(times) and times[0] >= 0
    non_audio = [e for e in sent if not isinstance(e, AudioInput)]
    assert j.client_events() == non_audio  # typed events, equal to what the client sent
    assert j.client_events("promptStart") == [sent[1]]

    # Audio is summarised: no audio event kept, but bytes and frames counted.
    audio = [c for c in j.client if c.name == "audioInput"]
    assert len(audio) == j.audio_in_frames == 4
    assert all(c.event is None and c.n_bytes == 1024 for c in audio)
    assert j.audio_in_bytes == 4 * 1024 and j.summary()["audio_in_ms"] == 128.0

    # Server side: exactly what the SDK received, as typed events, with audio bytes counted.
    assert [s.kind for s in j.server] == ["event"] * len(received)
    assert [e.to_json() for e in j.server_events()] == [e.to_json() for e in received]
    assert j.server_names() == [e.EVENT_NAME for e in received]
    assert j.audio_out_bytes == 3 * 960
    assert j.exceptions == []
    assert j.summary() == {
        "index": 0, "conn": j.connection_id, "stream": j.stream_id, "model": NOVA2, "auth": "ok", "status": 200,
        "client_events": len(sent), "audio_in_ms": 128.0, "server_events": len(received), "end": "completed",
    }


async def test_keep_audio_keeps_the_audio_events(start_fake, open_session) -> None:
    fake = await start_fake(keep_audio=True)
    sent = exchange(frames=2)
    await _session(fake, open_session, sent)
    j = await wait_ended(fake)
    kept = j.client_events("audioInput")
    assert kept == [e for e in sent if isinstance(e, AudioInput)]
    assert [c.n_bytes for c in j.client if c.name == "audioInput"] == [1024, 1024]


async def test_journal_of_a_failed_stream_and_the_order_of_streams(start_fake, open_session) -> None:
    fake = await start_fake()
    bad = await open_session(fake)
    await send_all(bad, [*opening(), f.audio_start(), f.text_input("sys", "late")])
    _, exc = await collect(bad)
    assert exc is not None
    await _session(fake, open_session)
    first, second = await wait_streams(fake, 2)

    assert [s.index for s in fake.journal] == [0, 1] and len(fake.journal) == 2 and fake.journal.opened == 2
    assert fake.journal[0] is first and fake.journal.last() is second
    assert first.end == "exception:validationException" and second.end == "completed"
    assert [c.verdict for c in first.client][-2:] == ["accepted", "content-not-open"]
    assert [(s.kind, s.name) for s in first.server] == [("exception", "validationException")]
    assert first.exceptions[0].message == exc.message
    assert first.input_finished is False


async def test_journal_is_bounded(start_fake, open_session) -> None:
    fake = await start_fake(max_journal_streams=2)
    for _ in range(3):
        await _session(fake, open_session)
    await wait_ended(fake)
    assert fake.journal.opened == 3 and len(fake.journal) == 2
    assert [s.index for s in fake.journal] == [1, 2]


async def test_no_secret_in_the_journal_or_the_log(start_fake, open_session, caplog) -> None:
    c = generate_credentials()
    creds = Credentials(c.access_key_id, c.secret_access_key, "session-token-value")
    fake = await start_fake(EchoResponder(), credentials=(creds,))
    with caplog.at_level(logging.DEBUG, logger="fakeserver"):
        await _session(fake, open_session)
        j = await wait_ended(fake)
    dump = repr(fake.journal.streams) + repr(j.summary()) + caplog.text
    assert c.access_key_id in dump  # the key id is not a secret
    assert c.secret_access_key not in dump and "session-token-value" not in dump
    assert "Signature=" not in dump


async def test_one_log_line_per_stream(start_fake, open_session, caplog) -> None:
    fake = await start_fake()
    with caplog.at_level(logging.INFO, logger="fakeserver.streams"):
        await _session(fake, open_session)
        await _session(fake, open_session)
        await wait_streams(fake, 2)
        await fake.close()  # handlers log as they finish; closing waits for them
    lines = [r.getMessage() for r in caplog.records if r.name == "fakeserver.streams"]
    assert len(lines) == 2
    assert all(line.startswith("stream {'index': ") and "'end': 'completed'" in line for line in lines)
