"""``cassette_from_journal`` with hand-filled ``fakeserver.journal.StreamJournal`` objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakeserver.journal import Journal
from novasonic.cassette import (
    AudioInRecord,
    AudioOutRecord,
    CassetteHeader,
    ExceptionRecord,
    NoteRecord,
    TransportRecord,
    WriterOptions,
    cassette_from_journal,
)
from novasonic.events import AudioInput
from novasonic.models import NOVA_2_SONIC
from tests.helpers import factories as f
from tests.unit.test_cassette_conversation import speech_pcm

HEADER = CassetteHeader(source="captured")


def fill(journal: Journal, *, reject: bool = False) -> None:
    sj = journal.open_stream(connection_id=1, stream_id=1)
    sj.model_id, sj.region, sj.access_key_id, sj.auth, sj.status = NOVA_2_SONIC, "us-east-1", "AKIAIOSFODNN7EXAMPLE", "ok", 200
    t = 0.0
    for ev in [f.session_start(nested="MEDIUM"), f.prompt_start(), *f.system_block(), f.audio_start("mic")]:
        sj.record_client(t, ev)
        t += 0.001
    pcm = bytes(6400) + speech_pcm(640, seed=3) + bytes(9600)
    for k in range(0, len(pcm), 1024):
        sj.record_client(0.1 + k / 32000, AudioInput.from_pcm(f.PROMPT, "mic", pcm[k:k + 1024]))
        if k == 20 * 1024:  # the service answers while the microphone keeps streaming
            sj.record_server_event(0.1 + k / 32000, f.completion_start())
            for ev in f.out_audio_block("a1", 1920, 1920, 960, sample_rate=24000):
                sj.record_server_event(0.1 + k / 32000 + 0.001, ev)
    sj.record_server(1.5, "fault", "rst after server:contentEnd#1")
    if reject:
        if hasattr(sj, "record_rejected"):  # input that did not even parse has no typed event
            sj.record_rejected(1.505, "(unparsable)", "unparsable-chunk")
        sj.record_client(1.51, f.text_input("sys", "late"), verdict="content-not-open")
        sj.record_server(1.52, "exception", "validationException", "Invalid input request, please fix your input and try again.")
        sj.end = "exception:validationException"
    else:
        sj.record_client(1.51, f.content_end("mic"))
        sj.record_server(1.52, "transport", "rst", "2")
        sj.end = "fault:rst"
    sj.input_finished = not reject


@pytest.mark.parametrize("keep_audio", [False, True])
def test_a_journal_becomes_a_cassette(tmp_path: Path, keep_audio: bool) -> None:
    journal = Journal(keep_audio=keep_audio)
    fill(journal)
    fill(journal, reject=True)
    c = cassette_from_journal(journal.streams, HEADER, tmp_path / "j.jsonl",
                              options=WriterOptions(user_audio="sidecar"))
    text = (tmp_path / "j.jsonl").read_text()
    assert "AKIAIOSFODNN7EXAMPLE" not in text
    assert c.header.model_id == NOVA_2_SONIC and c.header.region == "us-east-1"
    assert len(c) == 2 and [s.end_reason for s in c] == ["fault:rst", "exception:validationException"]
    s0 = c[0]
    assert s0.start is not None and s0.start.meta == {"auth": "ok", "status": 200, "chunk_chain": "ok"}
    runs = [r for r in s0.records if isinstance(r, AudioInRecord)]
    assert s0.audio_in_ms == pytest.approx((6400 + 20480 + 9600) / 32)
    # The service's events carry the audio position at which they were sent.
    (out,) = [r for r in s0.records if isinstance(r, AudioOutRecord)]
    assert out.a == pytest.approx(21 * 32)  # sent right after the 21st frame (same t: client first) and out.sample_rate == 24000 and out.sizes == (1920, 1920, 960)
    if keep_audio:
        assert all(r.segments is not None and r.pcm is not None for r in runs)
        speech = [(s, e) for r in runs for k, s, e in r.segments or () if k == "speech"]
        assert speech and abs(speech[0][0] - 200) <= 40
    else:  # a journal without audio knows frame sizes only
        assert all(r.segments is None and r.pcm is None for r in runs)
        assert [r.template.content_name for r in runs] == ["mic"] * len(runs)
    notes = [r.text for r in s0.records if isinstance(r, NoteRecord)]
    assert notes == ["fault: rst after server:contentEnd#1"]
    (rst,) = [r for r in s0.records if isinstance(r, TransportRecord)]
    assert (rst.action, rst.code) == ("rst", 2)
    assert c[0].end is not None and c[0].end.input_finished is True
    s1 = c[1]
    (exc,) = [r for r in s1.records if isinstance(r, ExceptionRecord)]
    assert exc.name == "validationException" and exc.via == "stream"
    assert any(getattr(r, "verdict", None) == "content-not-open" for r in s1.records)
    notes1 = [r.text for r in s1.records if isinstance(r, NoteRecord)]
    assert "client (unparsable) (rejected: unparsable-chunk)" in notes1 or not hasattr(journal.streams[1],
                                                                                     "record_rejected")
