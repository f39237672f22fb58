"""``nova-cassette timeline`` as a real subprocess: a self-contained, well-formed HTML file whose
SVG holds the expected elements, and a valid PNG read back with matplotlib and Pillow."""

from __future__ import annotations

import html.parser
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli.cassettes import EXCEPTION_MESSAGE, USER_2, Variant, run, write_conversation
from tests.cli.conftest import Recorded

SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"
NASTY = 'what\'s <b>the</b> weather & "more" <script>alert(1)</script>'
VOID = {"meta", "br", "img", "hr", "input", "link"}


class TagBalance(html.parser.HTMLParser):
    """Parses like a browser's tokenizer; checks every non-void element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.texts: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)  # <rect .../> inside SVG

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def parse_html(path: Path) -> tuple[ET.Element, TagBalance]:
    text = path.read_text("utf-8")
    assert text.startswith("<!DOCTYPE html>\n")
    root = ET.fromstring(text.split("\n", 1)[1])  # well-formed XML (XHTML with inline SVG)
    checker = TagBalance()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    return root, checker


def groups(root: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("data-kind") == kind]


def title(g: ET.Element) -> str:
    t = g.find(f"{SVG}title")
    assert t is not None and t.text
    return t.text


def labels(g: ET.Element) -> list[str]:
    return [t.text or "" for t in g.iter(f"{SVG}text")]


def test_html_timeline_has_the_expected_elements_and_is_well_formed(tmp_path: Path) -> None:
    cassette = write_conversation(tmp_path / "call.jsonl", Variant(user_text=NASTY))
    out = tmp_path / "out" / "timeline.html"
    r = run("timeline", cassette, "--out", out, script=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == f"wrote {out} (HTML, 2 stream(s), time axis)\n"
    root, checker = parse_html(out)
    assert root.tag == f"{XHTML}html"
    svgs = list(root.iter(f"{SVG}svg"))
    assert len(svgs) == 2  # one per stream
    s0, s1 = svgs

    # user speech: the two utterances (320–1120 ms and the one the barge-in continues)
    speech = groups(s0, "speech")
    assert len(speech) == 2 and "audio 320–1120 ms" in title(speech[0])
    for g in speech:
        rect = g.find(f"{SVG}rect")
        assert rect is not None and float(rect.get("width", "0")) > 10
    # the transcripts, escaped and readable again once parsed
    user_texts = [title(g) for g in groups(s0, "user-text")]
    assert user_texts == [f"user said: {NASTY}", f"user said: {USER_2}"]
    # assistant audio and text (the second answer cut where the user barged in), the tool call
    # with its label, the barge-in, the end
    a1, a2 = groups(s0, "assistant-audio")
    assert "320 ms" in title(a1) and "until the barge-in" in title(a2)
    (cut,) = groups(s0, "interrupted")
    assert labels(cut) == ["interrupted"] and "not played (barge-in)" in title(cut)
    assert any("Clear skies, 21 degrees." in title(g) for g in groups(s0, "assistant-text"))
    (tool,) = groups(s0, "tool-call")
    assert labels(tool) == ['getWeather({"city":"Paris"}) → {"sky":"clear","c":21}']
    assert "tool call getWeather (tu-a)" in title(tool)
    (barge,) = groups(s0, "barge-in")
    assert labels(barge) == ["barge-in"]
    assert [labels(g) for g in groups(s0, "transport")] == [["end-input (client)"]]
    assert [labels(g) for g in groups(s0, "end")] == [["end: completed"]]
    # the throttled stream: the exception label and its message
    (exc,) = groups(s1, "exception")
    assert labels(exc) == ["throttlingException"] and EXCEPTION_MESSAGE in title(exc)
    assert [labels(g) for g in groups(s1, "end")] == [["end: exception:throttlingException"]]

    # self-contained: no script, no external asset; the text is escaped
    text = out.read_text("utf-8")
    assert "<script" not in text and "src=" not in text and "href=" not in text and "@import" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not (checker.tags & {"script", "img", "link", "iframe", "object"})
    # the event table lists every record
    rows = list(root.iter(f"{XHTML}tr"))
    assert any("EXCEPTION throttlingException" in "".join(r.itertext()) for r in rows)


def test_one_stream_and_the_audio_axis(tmp_path: Path) -> None:
    cassette = write_conversation(tmp_path / "call.jsonl")
    out = tmp_path / "s1.html"
    r = run("timeline", cassette, "--out", out, "--stream", "1", "--axis", "audio")
    assert r.returncode == 0, r.stderr
    root, _ = parse_html(out)
    (svg,) = root.iter(f"{SVG}svg")
    assert groups(svg, "exception") and not groups(svg, "speech")
    assert any("s of user audio" in (t.text or "") for t in svg.iter(f"{SVG}text"))


def test_recorded_session_timeline(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "rich.html"
    r = run("timeline", recorded.path, "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    root, _ = parse_html(out)
    (svg,) = root.iter(f"{SVG}svg")
    assert len(groups(svg, "speech")) >= 3
    (tool,) = groups(svg, "tool-call")
    assert labels(tool)[0].startswith('get_weather({"city":"Paris"}) → {"temperature":21}')
    assert len(groups(svg, "barge-in")) == 1
    # three answers; where the story's audio is cut depends on how fast the client streamed
    assert len({title(g).split(":")[0] for g in groups(svg, "assistant-audio") + groups(svg, "interrupted")}) == 3
    assert any("Once upon a time" in title(g) for g in groups(svg, "assistant-text"))
    assert [labels(g) for g in groups(svg, "end")] == [["end: completed"]]


def test_png_timeline(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "rich.png"
    r = run("timeline", recorded.path, "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == f"wrote {out} (PNG, 1 stream(s), time axis)\n"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg
    import numpy as np
    from PIL import Image

    img = mpimg.imread(out)
    assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 1000
    # not blank: the timeline's colours are there (orange assistant audio, blue speech)
    rgb = (img[:, :, :3] * 255).round().astype(int).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(rgb, axis=0)}
    assert (0xF0, 0xA0, 0x30) in colours and (0x3D, 0x7F, 0xD9) in colours
    with Image.open(out) as im:
        im.verify()
        assert im.format == "PNG" and im.size == (img.shape[1], img.shape[0])


def test_png_without_matplotlib_is_a_clear_error(tmp_path: Path) -> None:
    cassette = write_conversation(tmp_path / "call.jsonl")
    code = ("import sys; sys.modules['matplotlib'] = None; from tools.cassette_cli.main import main; "
            "sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "t.png"
    r = run("timeline", cassette, "--out", out, python=["-c", code])
    assert r.returncode == 2 and not out.exists()
    (line,) = r.stderr.splitlines()
    assert line.startswith("nova-cassette: error: PNG output needs matplotlib") and "--out FILE.html" in line


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "{tmp}/t.svg"], "cannot tell the format from the name"),
        (["--out", "{tmp}/t.html", "--stream", "9"], "there is no stream 9"),
    ],
)
def test_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    cassette = write_conversation(tmp_path / "call.jsonl")
    r = run("timeline", cassette, *(x.format(tmp=tmp_path) for x in extra))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    missing = tmp_path / "nope.jsonl"
    r = run("timeline", missing, "--out", tmp_path / "x.html")
    assert r.returncode == 2 and r.stderr.startswith(f"nova-cassette: error: {missing}: no cassette at this path")
