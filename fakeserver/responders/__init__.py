"""Responders: what the fake service answers (design §6).

- ``Responder`` / ``StreamResponder`` / ``StreamContext``: the seam (``base``).
- ``ScriptedResponder``: behaviour from a ``Script`` of ``TurnScript``/``ToolCallScript`` (or a
  function of ``UserInput``), with VAD, per-model output sequences, audio-time pacing and
  barge-in (``scripted``). ``default_script()`` is what the server answers without a cassette.
"""

from .base import Responder, StreamContext, StreamResponder
from .scripted import (
    BargeInVariant,
    Pacing,
    Script,
    ScriptedConfig,
    ScriptedResponder,
    ScriptedStream,
    ScriptFn,
    ToolCallScript,
    TurnScript,
    UserInput,
    default_script,
)

__all__ = [
    "Responder",
    "StreamResponder",
    "StreamContext",
    "ScriptedResponder",
    "ScriptedStream",
    "ScriptedConfig",
    "Script",
    "ScriptFn",
    "TurnScript",
    "ToolCallScript",
    "UserInput",
    "Pacing",
    "BargeInVariant",
    "default_script",
]
