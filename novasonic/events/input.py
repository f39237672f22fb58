"""Client → service events (protocol.md §1).

Strict models: unknown keys are errors and primitive values are not coerced. Where the spec does
not say whether a member is required (UNK), members with a single documented value
(``mediaType``, ``encoding``, ``audioType``, ``sampleSizeBits``, ``channelCount``) default to that
value, so a client that leaves them out still validates while what we send is always complete.
Rules that depend on the model generation (flat vs nested endpointing, voice sets) live in
``novasonic.rules``, not here, because an event does not know its model.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BeforeValidator, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from .audio import b64_decoded_len, b64_to_pcm, pcm_to_b64
from .base import (
    ContentType,
    EndpointingSensitivity,
    InputEvent,
    InputPart,
    Lenient,
    Role,
    SampleRate,
)

__all__ = [
    "InferenceConfiguration",
    "TurnDetectionConfiguration",
    "SessionStart",
    "TextOutputConfiguration",
    "AudioOutputConfiguration",
    "ToolUseOutputConfiguration",
    "ToolInputSchema",
    "ToolSpec",
    "Tool",
    "ToolChoiceTool",
    "ToolChoice",
    "ToolConfiguration",
    "PromptStart",
    "TextInputConfiguration",
    "AudioInputConfiguration",
    "ToolResultInputConfiguration",
    "ContentStart",
    "TextInput",
    "AudioInput",
    "ToolResult",
    "ContentEnd",
    "PromptEnd",
    "SessionEnd",
    "INPUT_EVENTS",
]

Name = Annotated[str, Field(min_length=1)]


def ExactInt(value: int) -> Any:  # noqa: N802 - reads like a type
    """The JSON integer ``value`` and nothing else. ``Literal[16]`` alone lets ``16.0`` and (for
    ``Literal[1]``) ``true`` through, because they compare equal to the integer."""

    def check(v: Any) -> Any:
        if type(v) is not int:
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": value})
        return v

    return Annotated[Literal[value], BeforeValidator(check)]  # type: ignore[valid-type]


Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


# --- sessionStart (§1.1) -------------------------------------------------------------------------


class InferenceConfiguration(InputPart):
    """``maxTokens`` ≥ 1 (LiveKit caps at 10000; the service's maximum is UNK, so no upper bound
    is enforced here); ``topP`` and ``temperature`` in [0, 1] (DOC)."""

    max_tokens: Annotated[int, Field(ge=1)] | None = None
    top_p: Unit | None = None
    temperature: Unit | None = None


class TurnDetectionConfiguration(InputPart):
    """Nova 2 and later (DOC D-N2-IN, D-TURN)."""

    endpointing_sensitivity: Lenient(EndpointingSensitivity)


class SessionStart(InputEvent):
    """First event of a stream. ``endpointing_sensitivity`` is the flat Nova Sonic 1 form (LiveKit
    sends it for v1 only); the nested ``turn_detection_configuration`` is the Nova 2+ form. Which
    one a model accepts is a rule (``novasonic.rules``), not a schema matter."""

    EVENT_NAME: ClassVar[str] = "sessionStart"

    inference_configuration: InferenceConfiguration | None = None
    turn_detection_configuration: TurnDetectionConfiguration | None = None
    endpointing_sensitivity: Lenient(EndpointingSensitivity) | None = None


# --- promptStart (§1.2) --------------------------------------------------------------------------


class TextOutputConfiguration(InputPart):
    media_type: Literal["text/plain"] = "text/plain"


class AudioOutputConfiguration(InputPart):
    """``voice_id`` may be missing or empty here: the service answers that with its own text
    ("Received invalid voiceId: value must not be empty"), which the rules produce."""

    media_type: Literal["audio/lpcm"] = "audio/lpcm"
    sample_rate_hertz: Lenient(SampleRate) = SampleRate.HZ_24000
    sample_size_bits: ExactInt(16) = 16
    channel_count: ExactInt(1) = 1
    voice_id: str | None = None
    encoding: Literal["base64"] = "base64"
    audio_type: Literal["SPEECH"] = "SPEECH"


class ToolUseOutputConfiguration(InputPart):
    media_type: Literal["application/json"] = "application/json"


class ToolInputSchema(InputPart):
    """The JSON Schema of a tool's arguments, as a JSON **string** (what every working client sends;
    the object form is reported to fail with "Unable to parse input chunk", protocol.md §1.2)."""

    json_schema: str = Field(alias="json")

    @classmethod
    def from_schema(cls, schema: dict[str, Any]) -> Self:
        import json

        return cls(json=json.dumps(schema, separators=(",", ":")))


class ToolSpec(InputPart):
    name: Name
    description: str
    input_schema: ToolInputSchema


class Tool(InputPart):
    tool_spec: ToolSpec

    @classmethod
    def define(cls, name: str, description: str, schema: dict[str, Any] | None = None) -> Self:
        schema = schema if schema is not None else {"type": "object", "properties": {}, "required": []}
        return cls(
            tool_spec=ToolSpec(name=name, description=description, input_schema=ToolInputSchema.from_schema(schema))
        )


class ToolChoiceTool(InputPart):
    name: Name


class ToolChoice(InputPart):
    """Exactly one of ``{"auto":{}}`` (default), ``{"any":{}}``, ``{"tool":{"name":…}}`` (DOC D-TOOL)."""

    auto: dict[str, Any] | None = None
    any: dict[str, Any] | None = None
    tool: ToolChoiceTool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [k for k in ("auto", "any", "tool") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(f"toolChoice must hold exactly one of auto, any, tool (got {chosen or 'none'})")
        if (self.auto or self.any) and (self.auto not in (None, {}) or self.any not in (None, {})):
            raise ValueError("toolChoice auto/any must be an empty object")
        return self

    @classmethod
    def auto_(cls) -> Self:
        return cls(auto={})

    @classmethod
    def any_(cls) -> Self:
        return cls(any={})

    @classmethod
    def named(cls, name: str) -> Self:
        return cls(tool=ToolChoiceTool(name=name))


class ToolConfiguration(InputPart):
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None


class PromptStart(InputEvent):
    EVENT_NAME: ClassVar[str] = "promptStart"

    prompt_name: Name
    text_output_configuration: TextOutputConfiguration | None = None
    audio_output_configuration: AudioOutputConfiguration
    tool_use_output_configuration: ToolUseOutputConfiguration | None = None
    tool_configuration: ToolConfiguration | None = None


# --- contentStart (§1.3) -------------------------------------------------------------------------


class TextInputConfiguration(InputPart):
    media_type: Literal["text/plain"] = "text/plain"


class AudioInputConfiguration(InputPart):
    media_type: Literal["audio/lpcm"] = "audio/lpcm"
    sample_rate_hertz: Lenient(SampleRate) = SampleRate.HZ_16000
    sample_size_bits: ExactInt(16) = 16
    channel_count: ExactInt(1) = 1
    audio_type: Literal["SPEECH"] = "SPEECH"
    encoding: Literal["base64"] = "base64"


class ToolResultInputConfiguration(InputPart):
    tool_use_id: Name
    type: Literal["TEXT"] = "TEXT"
    text_input_configuration: TextInputConfiguration = Field(default_factory=TextInputConfiguration)


_CONFIG_FOR_TYPE = {
    ContentType.TEXT: "text_input_configuration",
    ContentType.AUDIO: "audio_input_configuration",
    ContentType.TOOL: "tool_result_input_configuration",
}


class ContentStart(InputEvent):
    """One class for the TEXT, AUDIO and TOOL variants; the configuration member must match
    ``type`` (TEXT → textInputConfiguration, AUDIO → audioInputConfiguration, TOOL →
    toolResultInputConfiguration). Use the ``text``/``audio``/``tool_result`` constructors."""

    EVENT_NAME: ClassVar[str] = "contentStart"

    prompt_name: Name
    content_name: Name
    type: Lenient(ContentType)
    interactive: bool
    role: Lenient(Role)
    text_input_configuration: TextInputConfiguration | None = None
    audio_input_configuration: AudioInputConfiguration | None = None
    tool_result_input_configuration: ToolResultInputConfiguration | None = None

    @model_validator(mode="after")
    def _config_matches_type(self) -> Self:
        wanted = _CONFIG_FOR_TYPE[self.type]
        present = [name for name in _CONFIG_FOR_TYPE.values() if getattr(self, name) is not None]
        if present != [wanted]:
            got = [to_camel(p) for p in present] or "none"
            raise ValueError(f"contentStart of type {self.type.value} needs exactly {to_camel(wanted)} (got {got})")
        return self

    @classmethod
    def text(cls, prompt_name: str, content_name: str, role: Role, *, interactive: bool = False) -> Self:
        return cls(
            prompt_name=prompt_name,
            content_name=content_name,
            type=ContentType.TEXT,
            interactive=interactive,
            role=role,
            text_input_configuration=TextInputConfiguration(),
        )

    @classmethod
    def audio(cls, prompt_name: str, content_name: str, *, sample_rate_hertz: int = 16000) -> Self:
        return cls(
            prompt_name=prompt_name,
            content_name=content_name,
            type=ContentType.AUDIO,
            interactive=True,
            role=Role.USER,
            audio_input_configuration=AudioInputConfiguration(sample_rate_hertz=SampleRate(sample_rate_hertz)),
        )

    @classmethod
    def tool_result(cls, prompt_name: str, content_name: str, tool_use_id: str) -> Self:
        return cls(
            prompt_name=prompt_name,
            content_name=content_name,
            type=ContentType.TOOL,
            interactive=False,
            role=Role.TOOL,
            tool_result_input_configuration=ToolResultInputConfiguration(tool_use_id=tool_use_id),
        )


# --- content events (§1.4, §1.5) -----------------------------------------------------------------


class TextInput(InputEvent):
    EVENT_NAME: ClassVar[str] = "textInput"

    prompt_name: Name
    content_name: Name
    content: str


class AudioInput(InputEvent):
    """``content`` is base64 of 16-bit little-endian mono PCM. The repr shows the byte count, never
    the base64 (user voice does not belong in logs)."""

    EVENT_NAME: ClassVar[str] = "audioInput"

    prompt_name: Name
    content_name: Name
    content: str

    @classmethod
    def from_pcm(cls, prompt_name: str, content_name: str, pcm: bytes) -> Self:
        return cls(prompt_name=prompt_name, content_name=content_name, content=pcm_to_b64(pcm))

    @property
    def pcm(self) -> bytes:
        return b64_to_pcm(self.content)

    @property
    def pcm_len(self) -> int:
        return b64_decoded_len(self.content)

    def __repr_args__(self):  # type: ignore[override]
        for k, v in super().__repr_args__():
            yield (k, f"<{self.pcm_len} bytes>" if k == "content" else v)


class ToolResult(InputEvent):
    """``content`` must be a string holding a JSON object (protocol.md §1.4); the rules check it."""

    EVENT_NAME: ClassVar[str] = "toolResult"

    prompt_name: Name
    content_name: Name
    content: str


class ContentEnd(InputEvent):
    EVENT_NAME: ClassVar[str] = "contentEnd"

    prompt_name: Name
    content_name: Name


class PromptEnd(InputEvent):
    EVENT_NAME: ClassVar[str] = "promptEnd"

    prompt_name: Name


class SessionEnd(InputEvent):
    EVENT_NAME: ClassVar[str] = "sessionEnd"


INPUT_EVENTS: dict[str, type[InputEvent]] = {
    cls.EVENT_NAME: cls
    for cls in (
        SessionStart,
        PromptStart,
        ContentStart,
        TextInput,
        AudioInput,
        ToolResult,
        ContentEnd,
        PromptEnd,
        SessionEnd,
    )
}


def new_name() -> str:
    """A fresh UUID4 string, the form the docs use for promptName/contentName."""
    return str(uuid.uuid4())
