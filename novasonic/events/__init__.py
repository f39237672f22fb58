"""Typed Nova Sonic events: pydantic models of every input and output event, and the parsers.

>>> from novasonic.events import parse_output
>>> ev = parse_output('{"event":{"completionStart":{"completionId":"c","promptName":"p","sessionId":"s"}}}')
>>> type(ev).__name__, ev.completion_id
('CompletionStart', 'c')
"""

from .audio import b64_to_pcm, pcm_duration_ms, pcm_to_b64
from .base import (
    ContentType,
    EndpointingSensitivity,
    GenerationStage,
    InputEvent,
    OutputEvent,
    Role,
    SampleRate,
    StopReason,
)
from .input import *  # noqa: F403
from .input import INPUT_EVENTS, new_name
from .output import *  # noqa: F403
from .output import BARGE_IN_TEXT, OUTPUT_EVENTS, decode_tool_arguments
from .parse import parse_input, parse_output, split_envelope

from . import input as _input, output as _output

__all__ = [
    "ContentType",
    "EndpointingSensitivity",
    "GenerationStage",
    "InputEvent",
    "OutputEvent",
    "Role",
    "SampleRate",
    "StopReason",
    "parse_input",
    "parse_output",
    "split_envelope",
    "new_name",
    "b64_to_pcm",
    "pcm_to_b64",
    "pcm_duration_ms",
    "is_barge_in",
    *_input.__all__,
    *_output.__all__,
]


def is_barge_in(event: OutputEvent) -> bool:
    """True for the barge-in signals: the ``{ "interrupted" : true }`` text or an INTERRUPTED stop."""
    if isinstance(event, TextOutput):  # noqa: F405
        return event.is_barge_in
    if isinstance(event, OutputContentEnd):  # noqa: F405
        return event.is_interrupted
    return False
