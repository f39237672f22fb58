"""Loading: a killed writer's file stays usable; everything else that is wrong names its line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from novasonic.cassette import (
    AudioInRecord,
    CassetteAudioError,
    CassetteError,
    CassetteFormatError,
    CassetteHeader,
    CassetteNotFoundError,
    CassetteVersionError,
    CassetteWarning,
    CassetteWriter,
    ServerEventRecord,
    WriterOptions,
    load_cassette,
    read_cassette,
)
from novasonic.events import TextOutput
from novasonic.models import NOVA_2_SONIC
from tests.helpers import factories as f
from tests.unit.test_cassette_conversation import conversation, record

HEADER = CassetteHeader(model_id=NOVA_2_SONIC, source="scripted")
HEAD = json.dumps({"novasonic_cassette": 1, "model": NOVA_2_SONIC, "source": "scripted"})


def small(path: Path, **opts: Any) -> Path:
    """A short valid cassette: opening, 20 microphone frames, an answer, the end."""
    with CassetteWriter(path, HEADER, WriterOptions(**opts)) as w:
        for i, ev in enumerate([f.session_start(), f.prompt_start(), *f.system_block(), f.audio_start("mic")]):
            w.write_client(0, i / 1000, None, ev)
        for k in range(20):
            w.write_client(0, 0.1 + k * 0.032, None, f.audio_input("mic"))
            if k == 10:
                w.write_server(0, 0.45, None, f.completion_start())
                w.write_server(0, 0.46, None, f.user_speech_start(0))
                w.flush()
        for i, ev in enumerate([*f.out_text_block("x1", "ASSISTANT", "FINAL", "hello", "there"), *f.out_audio_block(
                "a1", 1920, 1920, 640, sample_rate=24000)]):
            w.write_server(0, 0.8 + i / 100, None, ev)
        w.write_client(0, 1.0, None, f.content_end("mic"))
        w.end_stream(0, 1.1, "completed")
    return path


def load_text(text: str, **kw: Any) -> Any:
    return read_cassette(text, path="mem.jsonl", **kw)


# --- a killed writer ----------------------------------------------------------------------------------


def test_every_cut_of_the_file_loads_its_complete_prefix(tmp_path: Path) -> None:
    full = small(tmp_path / "full.jsonl", user_audio="sidecar", assistant_audio="sidecar").read_bytes()
    (tmp_path / "cut.audio").write_bytes((tmp_path / "full.audio").read_bytes())
    header_end = full.index(b"\n") + 1
    n_lines = full.count(b"\n")
    for cut in range(header_end, len(full) + 1):
        data = full[:cut]
        p = tmp_path / "cut.jsonl"
        p.write_bytes(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c = load_cassette(p)
        complete = data.count(b"\n")
        # A last line that only lost its newline is a whole record and is kept.
        whole_tail = not data.endswith(b"\n") and full[cut:cut + 1] == b"\n"
        torn = not data.endswith(b"\n") and not whole_tail
        records = sum(len(s.records) for s in c)
        assert records == complete - 1 + whole_tail, cut
        assert any("incomplete" in w for w in c.warnings) == torn, cut
        assert all(issubclass(w.category, CassetteWarning) for w in caught)
        if complete == n_lines:
            assert c[0].end_reason == "completed"
        for s in c:  # whatever survived is usable
            s.server_events()
            s.client_events()


def test_truncated_tail_warns_and_names_the_line(tmp_path: Path) -> None:
    p = small(tmp_path / "c.jsonl")
    data = p.read_bytes()
    p.write_bytes(data[:-25])
    with pytest.warns(CassetteWarning, match=r"c\.jsonl: line \d+ is incomplete"):
        c = load_cassette(p)
    assert c[0].end is None


def test_a_killed_capture_without_a_truncated_line_still_loads(tmp_path: Path) -> None:
    """The writer died between two flushes: no end record, and audio positions past the audio
    that made it to disk are tolerated (with a warning)."""
    p = tmp_path / "killed.jsonl"
    items = conversation(minute_s=8.0)
    w = CassetteWriter(p, HEADER)
    record(p, items[: len(items) // 2], writer=w, end=None, flush="bursts-keep-runs")
    w._file.close()  # the process dies: the pending runs never reach the file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = load_cassette(p)
    assert c[0].end is None and c[0].server_events()


def test_resume_repairs_a_torn_tail_and_appends_a_stream(tmp_path: Path) -> None:
    p = small(tmp_path / "c.jsonl")
    p.write_bytes(p.read_bytes()[:-10])
    w = CassetteWriter.resume(p)
    w.write_client(1, 0.0, None, f.session_start())
    w.end_stream(1, 0.1, "completed")
    w.close()
    c = load_cassette(p)
    assert len(c) == 2 and c.warnings == [] and c[1].end_reason == "completed"
    with pytest.raises(ValueError, match="next is 2"):
        CassetteWriter.resume(p).open_stream(5)


def test_writer_refuses_to_overwrite(tmp_path: Path) -> None:
    p = small(tmp_path / "c.jsonl")
    with pytest.raises(FileExistsError):
        CassetteWriter(p, HEADER)
    CassetteWriter(p, HEADER, overwrite=True).close()
    assert len(load_cassette(p)) == 0


# --- lines that are wrong -------------------------------------------------------------------------------


def test_corrupt_line_in_the_middle_names_it(tmp_path: Path) -> None:
    p = small(tmp_path / "c.jsonl")
    lines = p.read_text().splitlines()
    lines[5] = lines[5][: len(lines[5]) // 2]  # a torn line followed by more lines
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(CassetteFormatError) as err:
        load_cassette(p)
    assert err.value.line == 6 and "c.jsonl:6: not a JSON line" in str(err.value)
    assert "how to fix" in str(err.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"k":"telemetry","s":0,"t":1}', "unknown record kind 'telemetry' (known: (none: event), stream, audio_in"),
        ("not json at all", "not a JSON line"),
        ("[1, 2, 3]", "a record must be a JSON object, got list"),
        ('"just a string"', "a record must be a JSON object, got str"),
        ('{"s":0,"d":"s","t":1,"t":2,"e":{"completionStart":{}}}', "duplicate key 't'"),
        ('{"s":0,"d":"s","t":NaN,"e":{"completionStart":{}}}', "NaN is not valid JSON"),
        ('{"s":0,"d":"x","t":1,"e":{"completionStart":{}}}', '"d" (direction) must be "c" or "s"'),
        ('{"s":-1,"d":"c","t":1,"e":{"sessionStart":{}}}', '"s" (stream index) must be an integer >= 0'),
        ('{"s":0,"d":"c","t":"soon","e":{"sessionStart":{}}}', "bad client event record: t: Input should be a valid number"),
        ('{"s":0,"d":"c","t":1,"extra":1,"e":{"sessionStart":{}}}', "extra: unknown field"),
        ('{"s":0,"d":"c","t":1,"e":{"sessionStart":{"bogus":1}}}', "bad client event: invalid sessionStart event"),
        ('{"s":0,"d":"c","t":1,"e":{"sessionStart":{}},"v":7}', "v: Input should be a valid string"),
        ('{"s":0,"d":"c","t":1,"e":{"audioInput":{}}}', "audioInput events belong in audio_in records"),
        ('{"s":0,"d":"s","t":1,"e":{"textOutput":{"content":"x","role":"USER"}}}',
         "textOutput.sessionId is left out, but no earlier service event of stream 0 gave it"),
        ('{"s":0,"d":"s","t":1,"u":[1,2,3]}', '"u" (usage) must be a list of 8 integers'),
        ('{"k":"audio_in","s":0,"d":"c","t":1,"t1":1,"hz":16000,"n":1,"sz":1024}', "needs \"e\" (the template event)"),
        ('{"k":"audio_in","s":0,"d":"c","t":1,"t1":1,"n":2,"hz":16000,"sz":[1024],'
         '"e":{"audioInput":{"promptName":"p","contentName":"m"}}}', 'bad "sz" (chunk sizes): holds 1 values, expected 2'),
        ('{"k":"audio_in","s":0,"d":"c","t":1,"t1":1,"ms":99,"hz":16000,"sz":[1024],'
         '"e":{"audioInput":{"promptName":"p","contentName":"m"}}}', '"ms" says 99 but the chunk sizes hold 32 ms'),
        ('{"k":"audio_in","s":0,"d":"c","t":1,"t1":1,"hz":16000,"sz":[1024],"seg":[["talking",0,32]],'
         '"e":{"audioInput":{"promptName":"p","contentName":"m"}}}', "seg.0.0: Input should be 'speech' or 'silence'"),
        ('{"k":"audio_in","s":0,"d":"c","t":1,"t1":1,"hz":16000,"sz":[1024],"seg":[["speech",0,20]],'
         '"e":{"audioInput":{"promptName":"p","contentName":"m"}}}', "segments end at 20"),
        ('{"k":"transport","s":0,"d":"s","t":1,"action":"explode"}', "action: Input should be 'rst'"),
        ('{"k":"exception","s":0,"d":"s","t":1,"name":""}', "name: String should have at least 1 character"),
        ('{"k":"audio_out","s":0,"d":"s","t":1,"hz":24000,"sz":[2,2],"dt":[-5],'
         '"e":{"audioOutput":{"completionId":"c","contentId":"x","promptName":"p","sessionId":"s"}}}',
         '"dt" (chunk gaps) must not be negative'),
        ('{"novasonic_cassette":1}', "a second cassette header"),
    ],
)
def test_bad_records_name_their_line(line: str, message: str) -> None:
    text = "\n".join([HEAD, '{"k":"stream","s":0}', line, ""])
    with pytest.raises(CassetteFormatError) as err:
        load_text(text, validate=False)
    assert err.value.line == 3
    assert message in str(err.value), str(err.value)
    assert str(err.value).startswith("mem.jsonl:3: ")


@pytest.mark.parametrize(
    ("header", "error", "message"),
    [
        ('{"novasonic_cassette":2,"source":"captured"}', CassetteVersionError, "format version 2 is not supported"),
        ('{"novasonic_cassette":0}', CassetteVersionError, "format version 0 is not supported"),
        ('{"novasonic_cassette":"1"}', CassetteFormatError, "must be an integer format version"),
        ('{"novasonic_cassette":true}', CassetteFormatError, "must be an integer format version"),
        ('{"s":0,"d":"c","t":0,"e":{"sessionStart":{}}}', CassetteFormatError, "missing cassette header (the first line is a record)"),
        ('{"format":"vcr"}', CassetteFormatError, "missing cassette header"),
        ('{"novasonic_cassette":1,"source":"recorded"}', CassetteFormatError, "bad header: source"),
        ('{"novasonic_cassette":1,"colour":"blue"}', CassetteFormatError, "colour: unknown field"),
    ],
)
def test_bad_headers(header: str, error: type[CassetteError], message: str) -> None:
    with pytest.raises(error) as err:
        load_text(header + "\n")
    assert err.value.line == 1 and message in str(err.value)
    if error is CassetteVersionError and "2" in header:
        assert "upgrade novasonic-toolkit" in str(err.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CassetteFormatError, match="empty file: missing cassette header"):
        load_text("")
    with pytest.raises(CassetteNotFoundError, match="no cassette at this path") as err:
        load_cassette(tmp_path / "nope.jsonl")
    assert isinstance(err.value, FileNotFoundError)


def test_blank_lines_and_crlf_are_tolerated() -> None:
    text = HEAD + "\r\n\r\n" + '{"k":"stream","s":0}\r\n' + '{"s":0,"d":"c","t":0,"e":{"sessionStart":{}}}\n'
    c = load_text(text)
    assert len(c[0].records) == 2 and c[0].records[1].line == 4


# --- loading is safe: only plain data --------------------------------------------------------------------


def test_python_tags_and_object_hints_are_plain_strings() -> None:
    evil = [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/name:builtins.eval",
        "{{ __import__('os').system('id') }}",
        '<__main__.Evil object at 0x1>',
    ]
    header = json.dumps({"novasonic_cassette": 1, "model": NOVA_2_SONIC, "source": "scripted",
                         "meta": {"tag": evil[0], "__class__": "os.system", "nested": {"py/object": "subprocess.Popen"}}})
    body = [
        '{"k":"stream","s":0,"meta":{"!!python/object":"x"}}',
        '{"s":0,"d":"s","t":0,"e":{"completionStart":{"completionId":"c","promptName":"p","sessionId":"s"}}}',
        *(json.dumps({"s": 0, "d": "s", "t": 0.1, "e": {"textOutput": {"content": e, "contentId": "x",
                                                                       "role": "ASSISTANT"}}}) for e in evil),
        '{"k":"note","s":0,"text":"!!binary |\\n  R0lGODlh"}',
    ]
    c = load_text("\n".join([header, *body, ""]))
    assert c.header.meta == {"tag": evil[0], "__class__": "os.system", "nested": {"py/object": "subprocess.Popen"}}
    texts = [r.event.content for r in c[0].records if isinstance(r, ServerEventRecord) and isinstance(r.event, TextOutput)]
    assert texts == evil
    assert all(type(x) is str for x in texts)


# --- structure ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "bad_line", "message"),
    [
        (['{"k":"stream","s":1}'], 2, "stream 1 appears before stream 0"),
        (['{"s":0,"d":"c","t":0,"e":{"sessionStart":{}}}', '{"k":"stream","s":0}'], 3,
         "the stream record of stream 0 must come before its other records"),
        (['{"k":"stream","s":0}', '{"k":"stream","s":0}'], 3, "a second stream record for stream 0"),
        (['{"k":"end","s":0,"t":1,"how":"completed"}', '{"k":"note","s":0,"text":"late"}'], 3,
         "stream 0 already ended (line 2)"),
        (['{"s":0,"d":"c","t":2,"e":{"sessionStart":{}}}', '{"s":0,"d":"c","t":1,"e":{"sessionEnd":{}}}'], 3,
         "time goes backwards: t=1.0 after t=2.0 (line 2) in the client records of stream 0"),
        (['{"s":0,"d":"c","t":0,"a":500,"e":{"sessionStart":{}}}'], 2,
         "client event at a=500.0 ms, but the audio sent before it is 0 ms"),
        (['{"k":"audio_in","s":0,"d":"c","t":0,"t1":0,"a":32,"hz":16000,"sz":1024,"n":1,'
          '"e":{"audioInput":{"promptName":"p","contentName":"m"}}}'], 2,
         "audio_in starts at a=32.0 ms, but stream 0's earlier audio_in records hold 0 ms"),
        (['{"s":0,"d":"s","t":0,"a":100,"e":{"completionStart":{"completionId":"c","promptName":"p","sessionId":"s"}}}',
          '{"s":0,"d":"s","t":1,"a":50,"e":{"completionStart":{}}}'], 3,
         "the service's audio position goes backwards: a=50.0 after a=100.0 (line 2)"),
        (['{"s":0,"d":"s","t":0,"a":100,"e":{"completionStart":{"completionId":"c","promptName":"p","sessionId":"s"}}}',
          '{"k":"end","s":0,"t":1,"how":"completed"}'], 2,
         "says 100.0 ms of user audio had arrived, but the stream's audio_in records hold 0 ms"),
    ],
)
def test_structure_errors_name_their_line(lines: list[str], bad_line: int, message: str) -> None:
    with pytest.raises(CassetteFormatError) as err:
        load_text("\n".join([HEAD, *lines, ""]), validate=False)
    assert err.value.line == bad_line and message in str(err.value), str(err.value)


def test_audio_positions_may_be_left_out_of_hand_written_cassettes() -> None:
    text = "\n".join([
        HEAD,
        '{"k":"audio_in","s":0,"d":"c","t":0,"t1":0.3,"hz":16000,"n":10,"sz":1024,'
        '"e":{"audioInput":{"promptName":"p","contentName":"m"}}}',
        '{"s":0,"d":"s","t":0.4,"e":{"userSpeechStart":{"inputAudioOffsetMs":0,"promptName":"p","sessionId":"s"}}}',
        '{"k":"audio_in","s":0,"d":"c","t":0.4,"t1":0.5,"n":2,"sz":1024}', "",
    ])
    c = load_text(text, validate=False)
    recs = c[0].records
    assert [r.a for r in recs] == [0, 320, 320]
    assert isinstance(recs[2], AudioInRecord) and recs[2].sample_rate == 16000 and recs[2].template.content_name == "m"


# --- the audio sidecar ------------------------------------------------------------------------------------------


def test_missing_or_short_sidecar_names_the_line(tmp_path: Path) -> None:
    p = small(tmp_path / "c.jsonl", assistant_audio="sidecar")
    sidecar = tmp_path / "c.audio"
    first_audio_line = next(i for i, x in enumerate(p.read_text().splitlines(), 1) if '"pcm"' in x)
    data = sidecar.read_bytes()
    sidecar.write_bytes(data[:-1])
    with pytest.raises(CassetteAudioError) as err:
        load_cassette(p)
    assert err.value.line is not None and err.value.line >= first_audio_line and "c.audio" in str(err.value)
    sidecar.unlink()
    with pytest.raises(CassetteAudioError, match="keep c.audio next to the cassette"):
        load_cassette(p)


def test_corrupt_sidecar_is_detected_when_read(tmp_path: Path) -> None:
    p = small(tmp_path / "c.jsonl", user_audio="sidecar")
    sidecar = tmp_path / "c.audio"
    data = bytearray(sidecar.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sidecar.write_bytes(bytes(data))
    c = load_cassette(p)
    with pytest.raises(CassetteAudioError) as err:
        c[0].client_events()
    assert err.value.line is not None
    assert "CRC mismatch" in str(err.value) or "does not decompress" in str(err.value)


def test_inline_audio_that_is_not_base64() -> None:
    text = "\n".join([
        HEAD,
        '{"k":"audio_in","s":0,"d":"c","t":0,"t1":0,"hz":16000,"sz":[4],"pcm":{"b64":"***","crc":"00000000"},'
        '"e":{"audioInput":{"promptName":"p","contentName":"m"}}}', "",
    ])
    c = load_text(text, validate=False)
    with pytest.raises(CassetteAudioError, match="mem.jsonl:2: inline audio is not valid base64"):
        c[0].client_events()
