"""Load the real output captures (``tests/data/captures``, copied from ``shared/captures``) as typed output events.

The recorder left ``{"audioOutput": {"bytes": N}}`` placeholders instead of audio; they are
expanded into real ``AudioOutput`` events with N bytes of zero PCM and the ids of the enclosing
AUDIO ``contentStart``. The files are vendored so the tests that use them always run
(override the directory with ``NOVASONIC_CAPTURES``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from novasonic.events import AudioOutput, OutputEvent, parse_output

CAPTURES = Path(os.environ.get("NOVASONIC_CAPTURES", Path(__file__).resolve().parents[1] / "data" / "captures"))

#: file → key holding the event list
CAPTURE_FILES = {
    "nova2-asr-turn.events.json": "p1k_events",
    "nova2-tool-turn.events.json": "events",
}


def capture_path(name: str) -> Path:
    return CAPTURES / name


def load_capture(name: str) -> list[OutputEvent]:
    doc = json.loads(capture_path(name).read_text(encoding="utf-8"))
    return expand(doc[CAPTURE_FILES[name]])


def expand(raw_events: list[dict[str, Any]]) -> list[OutputEvent]:
    out: list[OutputEvent] = []
    audio_ids: dict[str, Any] | None = None
    for raw in raw_events:
        ((name, payload),) = raw.items()
        if name == "audioOutput" and set(payload) == {"bytes"}:
            if audio_ids is None:
                raise ValueError("audioOutput placeholder outside an AUDIO block")
            out.append(AudioOutput.from_pcm(b"\x00" * payload["bytes"], role="ASSISTANT", **audio_ids))
            continue
        event = parse_output(raw)
        if name == "contentStart" and payload.get("type") == "AUDIO":
            audio_ids = {
                "completion_id": payload["completionId"],
                "content_id": payload["contentId"],
                "prompt_name": payload["promptName"],
                "session_id": payload["sessionId"],
            }
        elif name == "contentEnd" and audio_ids is not None and payload.get("contentId") == audio_ids["content_id"]:
            audio_ids = None
        out.append(event)
    return out
