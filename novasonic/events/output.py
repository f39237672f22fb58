"""Service → client events (protocol.md §2).

Tolerant models: keys the service adds are accepted and kept (``model_extra``) and serialised
back. Enumerated values (``role``, ``type``, ``stopReason``) parse to the enum when known and stay
plain strings when the service sends a value we have not seen, so a new stop reason never breaks
a parser. Unknown *event names* are handled by ``parse_output`` (``UnknownOutputEvent``).
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field

from .audio import b64_decoded_len, b64_to_pcm, pcm_duration_ms, pcm_to_b64
from .base import (
    ContentType,
    GenerationStage,
    OutputEvent,
    OutputPart,
    Role,
    StopReason,
)

__all__ = [
    "BARGE_IN_TEXT",
    "CompletionStart",
    "UserSpeechStart",
    "UserSpeechEnd",
    "TextOutputConfigurationOut",
    "AudioOutputConfigurationOut",
    "ToolUseOutputConfigurationOut",
    "OutputContentStart",
    "TextOutput",
    "AudioOutput",
    "ToolUse",
    "OutputContentEnd",
    "CompletionEnd",
    "TokenCounts",
    "UsageDirection",
    "UsageDetails",
    "UsageEvent",
    "UnknownOutputEvent",
    "OUTPUT_EVENTS",
    "decode_tool_arguments",
]

#: The barge-in marker text, exactly as the service sends it (protocol.md §2.1, DOC D-BARGE).
BARGE_IN_TEXT = '{ "interrupted" : true }'



def _known_or_str[E: enum.Enum](enum_cls: type[E]) -> Any:
    """``enum_cls`` member when the value is known, the plain string otherwise."""

    def convert(value: Any) -> Any:
        try:
            return enum_cls(value)
        except ValueError:
            return value

    return Annotated[enum_cls | str, BeforeValidator(convert)]


RoleValue = _known_or_str(Role)
TypeValue = _known_or_str(ContentType)
StopValue = _known_or_str(StopReason)


class _Ids(OutputEvent):
    prompt_name: str
    session_id: str


class _CompletionIds(_Ids):
    completion_id: str


class CompletionStart(_CompletionIds):
    EVENT_NAME: ClassVar[str] = "completionStart"


class UserSpeechStart(_Ids):
    """Nova 2+: the user started speaking at ``input_audio_offset_ms`` of input audio (CAP OME)."""

    EVENT_NAME: ClassVar[str] = "userSpeechStart"

    input_audio_offset_ms: int


class UserSpeechEnd(_Ids):
    """Nova 2+: speech ended at ``input_audio_offset_ms``; the end-point was detected at
    ``input_audio_detection_offset_ms`` (≈ the endpointing pause later)."""

    EVENT_NAME: ClassVar[str] = "userSpeechEnd"

    input_audio_detection_offset_ms: int
    input_audio_offset_ms: int


class TextOutputConfigurationOut(OutputPart):
    media_type: str = "text/plain"


class AudioOutputConfigurationOut(OutputPart):
    """As the service echoes it: no voiceId (CAP OME-N1)."""

    channel_count: int = 1
    encoding: str = "base64"
    media_type: str = "audio/lpcm"
    sample_rate_hertz: int
    sample_size_bits: int = 16


class ToolUseOutputConfigurationOut(OutputPart):
    media_type: str = "application/json"


class OutputContentStart(_CompletionIds):
    """Start of a TEXT, AUDIO or TOOL block. ``additional_model_fields`` is a JSON *string*
    (``{"generationStage":"FINAL"}``) on TEXT blocks; use ``generation_stage``."""

    EVENT_NAME: ClassVar[str] = "contentStart"

    additional_model_fields: str | None = None
    content_id: str
    role: RoleValue
    type: TypeValue
    text_output_configuration: TextOutputConfigurationOut | None = None
    audio_output_configuration: AudioOutputConfigurationOut | None = None
    tool_use_output_configuration: ToolUseOutputConfigurationOut | None = None

    @property
    def generation_stage(self) -> GenerationStage | str | None:
        """``SPECULATIVE``/``FINAL`` from ``additionalModelFields``; ``None`` when absent or unreadable."""
        if not self.additional_model_fields:
            return None
        try:
            fields = json.loads(self.additional_model_fields)
        except ValueError:
            return None
        stage = fields.get("generationStage") if isinstance(fields, dict) else None
        if not isinstance(stage, str):
            return None
        try:
            return GenerationStage(stage)
        except ValueError:
            return stage

    @property
    def sample_rate_hertz(self) -> int | None:
        cfg = self.audio_output_configuration
        return cfg.sample_rate_hertz if cfg else None


class TextOutput(_CompletionIds):
    EVENT_NAME: ClassVar[str] = "textOutput"

    content: str
    content_id: str
    role: RoleValue

    @property
    def is_barge_in(self) -> bool:
        """True for the barge-in marker (exact text; older clients saw a trailing newline)."""
        return self.content.strip() == BARGE_IN_TEXT


class AudioOutput(_CompletionIds):
    """Base64 16-bit mono PCM at the rate of the enclosing AUDIO contentStart."""

    EVENT_NAME: ClassVar[str] = "audioOutput"

    content: str
    content_id: str
    role: RoleValue = Role.ASSISTANT

    @property
    def pcm(self) -> bytes:
        return b64_to_pcm(self.content)

    @property
    def pcm_len(self) -> int:
        return b64_decoded_len(self.content)

    def duration_ms(self, sample_rate_hertz: int) -> float:
        return pcm_duration_ms(self.pcm_len, sample_rate_hertz)

    @classmethod
    def from_pcm(cls, pcm: bytes, **ids: Any) -> AudioOutput:
        return cls(content=pcm_to_b64(pcm), **ids)

    def __repr_args__(self):  # type: ignore[override]
        for k, v in super().__repr_args__():
            yield (k, f"<{self.pcm_len} bytes>" if k == "content" else v)


def decode_tool_arguments(content: str) -> Any:
    """Decode ``toolUse.content``: a JSON string of the arguments, sometimes double-encoded (a JSON
    string holding a JSON string, REP LK ``test_nova_sonic_tool_args.py``). Peels at most one extra
    layer, and only when the inner value is itself JSON. Raises ``ValueError`` if not JSON."""
    value = json.loads(content)
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            return value
        return inner
    return value


class ToolUse(_CompletionIds):
    EVENT_NAME: ClassVar[str] = "toolUse"

    content: str
    content_id: str
    role: RoleValue = Role.TOOL
    tool_name: str
    tool_use_id: str

    @property
    def arguments(self) -> Any:
        """The decoded arguments (see ``decode_tool_arguments``)."""
        return decode_tool_arguments(self.content)


class OutputContentEnd(_CompletionIds):
    EVENT_NAME: ClassVar[str] = "contentEnd"

    content_id: str
    stop_reason: StopValue
    type: TypeValue

    @property
    def is_interrupted(self) -> bool:
        return self.stop_reason == StopReason.INTERRUPTED


class CompletionEnd(_CompletionIds):
    EVENT_NAME: ClassVar[str] = "completionEnd"

    stop_reason: StopValue = StopReason.END_TURN


class TokenCounts(OutputPart):
    speech_tokens: int = 0
    text_tokens: int = 0


class UsageDirection(OutputPart):
    input: TokenCounts = Field(default_factory=TokenCounts)
    output: TokenCounts = Field(default_factory=TokenCounts)


class UsageDetails(OutputPart):
    delta: UsageDirection = Field(default_factory=UsageDirection)
    total: UsageDirection = Field(default_factory=UsageDirection)


class UsageEvent(_CompletionIds):
    """``total*`` are running totals for the prompt, ``details.delta`` the increment (CAP OME-N1)."""

    EVENT_NAME: ClassVar[str] = "usageEvent"

    details: UsageDetails = Field(default_factory=UsageDetails)
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    total_tokens: int = 0


class UnknownOutputEvent(OutputEvent):
    """An output event whose name we do not know, kept verbatim (``name`` and ``payload``)."""

    EVENT_NAME: ClassVar[str] = ""

    name: str
    payload: dict[str, Any]

    def to_envelope(self) -> dict[str, Any]:
        return {"event": {self.name: self.payload}}


OUTPUT_EVENTS: dict[str, type[OutputEvent]] = {
    cls.EVENT_NAME: cls
    for cls in (
        CompletionStart,
        UserSpeechStart,
        UserSpeechEnd,
        OutputContentStart,
        TextOutput,
        AudioOutput,
        ToolUse,
        OutputContentEnd,
        CompletionEnd,
        UsageEvent,
    )
}
