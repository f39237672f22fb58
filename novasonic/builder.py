"""``EventBuilder``: the input events of one Nova Sonic session, built right (protocol.md §1).

One builder covers one stream: ``sessionStart`` → one prompt (``promptStart``, the SYSTEM block,
chat history, the AUDIO block, interactive text, tool results) → ``promptEnd`` → ``sessionEnd``.
Every method returns a list of typed input events (``novasonic.events``) in the order they must
be sent; nothing here does I/O.

>>> from novasonic.builder import EventBuilder, sequential_names
>>> b = EventBuilder("amazon.nova-2-sonic-v1:0", name_factory=sequential_names())
>>> events = b.start("You are terse.", [("user", "hi"), ("assistant", "hello")])
>>> [e.EVENT_NAME for e in events][:5]
['sessionStart', 'promptStart', 'contentStart', 'textInput', 'contentEnd']
>>> len(events), b.prompt_name, events[2].content_name
(11, 'n1', 'n2')

What the builder decides (each choice documented where it is made):

- **Model generations** (``novasonic.models``): Nova Sonic 1 gets the flat
  ``sessionStart.endpointingSensitivity`` (what LiveKit sends for v1), Nova 2 / 2.5 the nested
  ``turnDetectionConfiguration``; with ``endpointing=None`` neither key is sent (service default).
  ``interactive_text`` refuses Nova Sonic 1, where typed text does not start a response.
- **Names**: ``promptName`` and every ``contentName`` come from ``name_factory`` (default: UUID4
  strings, what the docs use). When ``prompt_name`` is not given it is the *first* name drawn from
  the factory, so an injected factory makes a whole session deterministic
  (``sequential_names()``). A TOOL block's contentName is always a fresh name, never the toolUseId.
- **Chat history** (protocol.md §1.6, DOC D-HIST; see ``prepare_history``).
- **Tool results** are always a string holding a JSON object (protocol.md §1.4; see
  ``encode_tool_result``).

State kept: whether the AUDIO block is open (and its contentName) and whether the session was
closed. That is all the builder needs to produce a correct ``close()``; misuse of those two raises
``BuilderError``. Every other ordering rule (SYSTEM first, history before audio, no audio while a
text block is open, known toolUseIds, …) is checked by ``novasonic.rules.InputMachine`` and is
deliberately *not* repeated here: the builder also serves tests that send wrong sequences on
purpose.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from .errors import HistoryLimitError, NovaSonicError
from .events import (
    AudioInput,
    AudioOutputConfiguration,
    ContentEnd,
    ContentStart,
    EndpointingSensitivity,
    InferenceConfiguration,
    InputEvent,
    PromptEnd,
    PromptStart,
    Role,
    SampleRate,
    SessionEnd,
    SessionStart,
    TextInput,
    TextOutputConfiguration,
    Tool,
    ToolChoice,
    ToolConfiguration,
    ToolResult,
    ToolUseOutputConfiguration,
    TurnDetectionConfiguration,
)
from .models import ModelInfo, model_info

__all__ = [
    "EventBuilder",
    "BuilderError",
    "HistoryLimits",
    "Message",
    "AssistantFirst",
    "OnOverflow",
    "RESUME_TEXT",
    "DEFAULT_INFERENCE",
    "prepare_history",
    "split_utf8",
    "encode_tool_result",
    "sequential_names",
    "uuid_names",
]

#: The USER message put in front of a history that starts with ASSISTANT when
#: ``assistant_first="prepend-user"`` (the text LiveKit uses when it restarts a session).
RESUME_TEXT = "[Resuming conversation]"

#: What every sample sends (protocol.md §1.1: AS, LK, OME-SPIKE).
DEFAULT_INFERENCE = InferenceConfiguration(max_tokens=1024, top_p=0.9, temperature=0.7)

AssistantFirst = Literal["drop", "prepend-user"]
OnOverflow = Literal["drop-oldest", "raise"]

#: Bytes of the widest UTF-8 character; a piece limit below it could not hold every text.
_MAX_UTF8_CHAR = 4


class BuilderError(NovaSonicError):
    """The builder was used in a way it cannot honour (audio sent with no AUDIO block open, a
    second AUDIO block, anything after ``close()``, interactive text on Nova Sonic 1, …)."""


# --- names ------------------------------------------------------------------------------------------


def uuid_names() -> Callable[[], str]:
    """The default name factory: a fresh UUID4 string per call."""
    return lambda: str(uuid.uuid4())


def sequential_names(prefix: str = "n") -> Callable[[], str]:
    """A deterministic name factory for tests: ``n1``, ``n2``, … (the prompt name is ``n1`` when
    the builder draws it from the factory)."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


# --- chat history -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryLimits:
    """Chat-history limits the builder keeps to (protocol.md §1.6).

    ``text_input_bytes``: UTF-8 bytes per ``textInput`` (DOC D-HIST "1 KB per textInput"); longer
    messages are split into several textInputs inside one block. ``total_bytes``: all history
    text of the prompt (DOC D-HIST "40 KB"). ``max_messages``: history messages (blocks); the
    service documents none, LiveKit keeps 40. ``None`` turns a limit off.
    """

    text_input_bytes: int | None = 1024
    total_bytes: int | None = 40 * 1024
    max_messages: int | None = None

    def __post_init__(self) -> None:
        if self.text_input_bytes is not None and self.text_input_bytes < _MAX_UTF8_CHAR:
            raise ValueError(f"text_input_bytes must be at least {_MAX_UTF8_CHAR} (one UTF-8 character)")
        if self.total_bytes is not None and self.total_bytes < 0:
            raise ValueError("total_bytes must not be negative")
        if self.max_messages is not None and self.max_messages < 0:
            raise ValueError("max_messages must not be negative")


@dataclass(frozen=True, slots=True)
class Message:
    """One chat-history message. ``role`` is USER or ASSISTANT."""

    role: Role
    text: str

    def __post_init__(self) -> None:
        role = _history_role(self.role)
        object.__setattr__(self, "role", role)
        if not isinstance(self.text, str):
            raise TypeError(f"message text must be a str, got {type(self.text).__name__}")

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(Role.USER, text)

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls(Role.ASSISTANT, text)

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


MessageLike = Message | tuple[Role | str, str] | Mapping[str, Any]


def _history_role(role: Any) -> Role:
    try:
        value = Role(role.upper() if isinstance(role, str) else role)
    except ValueError:
        raise ValueError(f"history role must be USER or ASSISTANT, got {role!r}") from None
    if value not in (Role.USER, Role.ASSISTANT):
        raise ValueError(f"history role must be USER or ASSISTANT, got {value.value}")
    return value


def _as_message(item: MessageLike) -> Message:
    if isinstance(item, Message):
        return item
    if isinstance(item, Mapping):
        text = item.get("text", item.get("content"))
        return Message(item["role"], text)  # type: ignore[arg-type]
    if isinstance(item, tuple) and len(item) == 2:
        return Message(*item)  # type: ignore[arg-type]
    raise TypeError(f"a history message is a Message, a (role, text) tuple or a mapping; got {item!r}")


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes each, never inside a
    character. ``"".join(pieces) == text``. An empty text gives ``[""]``."""
    if max_bytes < _MAX_UTF8_CHAR:
        raise ValueError(f"max_bytes must be at least {_MAX_UTF8_CHAR}")
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return [text]
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # continuation byte: back off
            end -= 1
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    return pieces


def prepare_history(
    messages: Iterable[MessageLike],
    limits: HistoryLimits = HistoryLimits(),
    *,
    assistant_first: AssistantFirst = "drop",
    on_overflow: OnOverflow = "drop-oldest",
) -> list[Message]:
    """Turn a transcript into the messages the service accepts as chat history (protocol.md §1.6).

    In order:

    1. Messages whose text is empty or only whitespace are dropped.
    2. Consecutive messages of the same role are merged, joined with ``"\\n"``; the result
       alternates USER/ASSISTANT (LiveKit does the same).
    3. The history must start with USER (REP LK, AWS session-continuation sample). A leading
       ASSISTANT message is dropped (``assistant_first="drop"``, the default: nothing invented is
       put in the model's context), or a USER ``RESUME_TEXT`` message is put in front of it
       (``"prepend-user"``, what LiveKit does when it restarts a session, which keeps the
       assistant's last words).
    4. Limits (``HistoryLimits``): over ``total_bytes`` or ``max_messages``, either the **oldest**
       messages are dropped until it fits (``on_overflow="drop-oldest"``, the default: the most
       recent context matters most) or ``HistoryLimitError`` is raised (``"raise"``). After
       dropping, step 3 is applied again, so the history still starts with USER (a
       ``RESUME_TEXT`` message counts against the limits like any other). A single message larger
       than ``total_bytes`` on its own is dropped as a whole, which can leave the history empty.

    Splitting into ≤ ``text_input_bytes`` pieces happens when the events are built
    (``EventBuilder.history``); it does not change the byte count.
    """
    if assistant_first not in ("drop", "prepend-user"):
        raise ValueError(f"assistant_first must be 'drop' or 'prepend-user', got {assistant_first!r}")
    if on_overflow not in ("drop-oldest", "raise"):
        raise ValueError(f"on_overflow must be 'drop-oldest' or 'raise', got {on_overflow!r}")

    merged: list[Message] = []
    for item in messages:
        msg = _as_message(item)
        if not msg.text.strip():
            continue
        if merged and merged[-1].role is msg.role:
            merged[-1] = Message(msg.role, merged[-1].text + "\n" + msg.text)
        else:
            merged.append(msg)

    def user_first(msgs: list[Message]) -> list[Message]:
        if msgs and msgs[0].role is Role.ASSISTANT:
            return msgs[1:] if assistant_first == "drop" else [Message.user(RESUME_TEXT), *msgs]
        return msgs

    def overflow(msgs: list[Message]) -> str | None:
        total = sum(m.n_bytes for m in msgs)
        if limits.total_bytes is not None and total > limits.total_bytes:
            return f"chat history is {total} bytes, over the limit of {limits.total_bytes} bytes"
        if limits.max_messages is not None and len(msgs) > limits.max_messages:
            return f"chat history has {len(msgs)} messages, over the limit of {limits.max_messages}"
        return None

    result = user_first(merged)
    if (why := overflow(result)) is not None and on_overflow == "raise":
        rule = "history-too-large" if "bytes" in why else "history-too-many-messages"
        raise HistoryLimitError(why, rule=rule, event_name="textInput", state="building chat history")
    kept = merged
    while result and overflow(result) is not None:
        kept = kept[1:]  # the oldest transcript message goes; user_first re-applies step 3
        result = user_first(kept)
    return result


# --- tool results -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


def encode_tool_result(result: Any, *, key: str = "result") -> str:
    """``toolResult.content`` for a tool's return value: always a string holding a JSON object
    (anything else gets "Tool Response parsing error", protocol.md §1.4, §3.2).

    - ``BaseException`` → ``{"error": "<str(exc)>"}`` (the exception type's name when the message
      is empty); DOC D-TOOL says to always send a result, also on error.
    - a mapping (or a pydantic model / dataclass, dumped first) → that object as JSON;
    - a ``str`` that already holds a JSON object → passed through unchanged;
    - anything else (another ``str``, a list, a number, a bool, ``None``) → ``{key: value}``.

    ``key`` defaults to ``"result"`` (LiveKit uses ``"tool_result"``): the neutral word pairs with
    ``"error"``, and does not repeat the block type the model already sees. Values JSON cannot
    encode (datetimes, sets…) are written with ``str()``.
    """
    if isinstance(result, BaseException):
        return _dumps({"error": str(result) or type(result).__name__})
    if isinstance(result, BaseModel) or (dataclasses.is_dataclass(result) and not isinstance(result, type)):
        result = _jsonable(result)
    if isinstance(result, Mapping):
        return _dumps(dict(result))
    if isinstance(result, str):
        try:
            decoded = json.loads(result)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            return result
    return _dumps({key: result})


# --- the builder ------------------------------------------------------------------------------------


class EventBuilder:
    """Builds the input events of one session for ``model_id`` (see the module docstring).

    ``voice``: the voiceId (default: the model's default voice). ``output_sample_rate`` /
    ``input_sample_rate``: 8000, 16000 or 24000. ``inference``: ``sessionStart``'s
    inferenceConfiguration (default 1024 / 0.9 / 0.7). ``endpointing``: HIGH / MEDIUM / LOW or
    ``None`` (not sent). ``tools`` / ``tool_choice``: see ``prompt_start``. ``prompt_name`` /
    ``name_factory``: see "Names" in the module docstring. ``history_limits``,
    ``assistant_first``, ``on_overflow``: see ``prepare_history``. ``tool_result_key``: see
    ``encode_tool_result``.
    """

    def __init__(
        self,
        model_id: str,
        *,
        voice: str | None = None,
        output_sample_rate: int = 24000,
        input_sample_rate: int = 16000,
        inference: InferenceConfiguration | None = DEFAULT_INFERENCE,
        endpointing: EndpointingSensitivity | str | None = None,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice | str | None = None,
        prompt_name: str | None = None,
        name_factory: Callable[[], str] | None = None,
        history_limits: HistoryLimits = HistoryLimits(),
        assistant_first: AssistantFirst = "drop",
        on_overflow: OnOverflow = "drop-oldest",
        tool_result_key: str = "result",
    ):
        self._model = model_info(model_id)
        self.voice = voice if voice is not None else self._model.default_voice
        self.output_sample_rate = SampleRate(output_sample_rate)
        self.input_sample_rate = SampleRate(input_sample_rate)
        self.inference = inference
        self.endpointing = EndpointingSensitivity(endpointing) if endpointing is not None else None
        self.tools = tuple(tools)
        for tool in self.tools:
            if not isinstance(tool, Tool):
                raise TypeError(f"tools must be novasonic.events.Tool instances (Tool.define(...)), got {tool!r}")
        self.tool_choice = self._tool_choice(tool_choice)
        if self.tool_choice is not None and not self.tools:
            raise ValueError("tool_choice given without tools")
        self._names = name_factory if name_factory is not None else uuid_names()
        self.prompt_name = prompt_name if prompt_name is not None else self._names()
        self.history_limits = history_limits
        self.assistant_first = assistant_first
        self.on_overflow = on_overflow
        self.tool_result_key = tool_result_key
        self._audio_name: str | None = None
        self._closed = False

    # --- views --------------------------------------------------------------------------------------

    @property
    def model(self) -> ModelInfo:
        return self._model

    @property
    def audio_content_name(self) -> str | None:
        """contentName of the open AUDIO block, or None."""
        return self._audio_name

    @property
    def audio_open(self) -> bool:
        return self._audio_name is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def new_name(self) -> str:
        """A fresh contentName from the factory."""
        return self._names()

    # --- session and prompt ------------------------------------------------------------------------

    def session_start(self) -> list[InputEvent]:
        """``[sessionStart]``. Endpointing goes flat on Nova Sonic 1 and nested on Nova 2 / 2.5
        (protocol.md §0, §1.1; ``ModelInfo.turn_detection``)."""
        self._check_open()
        flat = nested = None
        if self.endpointing is not None:
            if self._model.turn_detection == "flat":
                flat = self.endpointing
            else:
                nested = TurnDetectionConfiguration(endpointing_sensitivity=self.endpointing)
        return [
            SessionStart(
                inference_configuration=self.inference,
                turn_detection_configuration=nested,
                endpointing_sensitivity=flat,
            )
        ]

    def prompt_start(self) -> list[InputEvent]:
        """``[promptStart]`` with text, audio (voice, output rate) and tool-use output configurations.

        ``toolConfiguration`` is sent only when tools were given (pipecat and strands do the
        same; LiveKit sends ``"tools": []``): an empty tool list says nothing, and leaving the
        key out is the form every sample without tools uses. ``toolChoice``: ``None`` leaves the
        key out (the service default is auto), ``"auto"`` → ``{"auto":{}}``, ``"any"`` →
        ``{"any":{}}``, any other string → ``{"tool":{"name":…}}`` (pass
        ``ToolChoice.named("auto")`` for a tool literally called "auto").
        """
        self._check_open()
        tool_configuration = None
        if self.tools:
            tool_configuration = ToolConfiguration(tools=list(self.tools), tool_choice=self.tool_choice)
        return [
            PromptStart(
                prompt_name=self.prompt_name,
                text_output_configuration=TextOutputConfiguration(),
                audio_output_configuration=AudioOutputConfiguration(
                    sample_rate_hertz=self.output_sample_rate, voice_id=self.voice
                ),
                tool_use_output_configuration=ToolUseOutputConfiguration(),
                tool_configuration=tool_configuration,
            )
        ]

    def system(self, text: str) -> list[InputEvent]:
        """The SYSTEM block: contentStart(TEXT, SYSTEM, interactive false) → textInput → contentEnd.
        Sent as one textInput: the 1 KB limit is documented for chat history only."""
        self._check_open()
        return self._text_block(Role.SYSTEM, [text], interactive=False)

    def history(
        self,
        messages: Iterable[MessageLike],
        *,
        assistant_first: AssistantFirst | None = None,
        on_overflow: OnOverflow | None = None,
    ) -> list[InputEvent]:
        """Chat-history blocks (non-interactive USER/ASSISTANT TEXT), after ``prepare_history``.
        Each message is one block; a message over ``text_input_bytes`` becomes several textInputs
        inside that block (split on character boundaries). Empty input gives ``[]``."""
        self._check_open()
        prepared = prepare_history(
            messages,
            self.history_limits,
            assistant_first=assistant_first or self.assistant_first,
            on_overflow=on_overflow or self.on_overflow,
        )
        per_input = self.history_limits.text_input_bytes
        out: list[InputEvent] = []
        for msg in prepared:
            pieces = split_utf8(msg.text, per_input) if per_input is not None else [msg.text]
            out.extend(self._text_block(msg.role, pieces, interactive=False))
        return out

    def start(self, system_prompt: str, history: Iterable[MessageLike] = ()) -> list[InputEvent]:
        """``session_start() + prompt_start() + system(system_prompt) + history(history)``."""
        return [*self.session_start(), *self.prompt_start(), *self.system(system_prompt), *self.history(history)]

    # --- audio ----------------------------------------------------------------------------------------

    def audio_start(self) -> list[InputEvent]:
        """``[contentStart(AUDIO, USER, interactive)]`` at ``input_sample_rate``. The block usually
        stays open for the whole prompt (protocol.md §1.3d)."""
        self._check_open()
        if self._audio_name is not None:
            raise BuilderError(f"the AUDIO block {self._audio_name!r} is already open")
        name = self._names()
        self._audio_name = name
        return [ContentStart.audio(self.prompt_name, name, sample_rate_hertz=int(self.input_sample_rate))]

    def audio(self, pcm: bytes | bytearray | memoryview) -> AudioInput:
        """One ``audioInput`` with ``pcm`` (16-bit little-endian mono, no header) in the open
        AUDIO block. Raises ``BuilderError`` when no AUDIO block is open and ``ValueError`` for an
        odd number of bytes (not whole 16-bit samples)."""
        self._check_open()
        if self._audio_name is None:
            raise BuilderError("no AUDIO block is open: call audio_start() first")
        data = bytes(pcm)
        if len(data) % 2:
            raise ValueError(f"16-bit PCM has an even number of bytes, got {len(data)}")
        return AudioInput.from_pcm(self.prompt_name, self._audio_name, data)

    def audio_frames(self, pcm: bytes | bytearray | memoryview, *, frame_ms: float = 32.0) -> list[AudioInput]:
        """``pcm`` cut into ``frame_ms`` frames (≈32 ms recommended, DOC D-N2-IN; 1024 bytes at
        16 kHz), one ``audioInput`` each; the last frame may be shorter."""
        frame_bytes = max(2, int(int(self.input_sample_rate) * frame_ms / 1000) * 2)
        data = bytes(pcm)
        return [self.audio(data[i : i + frame_bytes]) for i in range(0, len(data), frame_bytes)]

    def audio_end(self) -> list[InputEvent]:
        """``[contentEnd]`` of the open AUDIO block."""
        self._check_open()
        if self._audio_name is None:
            raise BuilderError("no AUDIO block is open")
        name, self._audio_name = self._audio_name, None
        return [ContentEnd(prompt_name=self.prompt_name, content_name=name)]

    # --- interactive text and tools -------------------------------------------------------------------

    def interactive_text(self, text: str, *, split_bytes: int | None = None, force: bool = False) -> list[InputEvent]:
        """Typed USER input (cross-modal, Nova 2+, protocol.md §1.7): contentStart(TEXT, USER,
        interactive true) → textInput → contentEnd with a fresh contentName. Do not send audio
        while these three are in flight (pause the microphone, send them, resume).

        Nova Sonic 1 raises ``BuilderError``: interactive text does not start a response there
        (REP litellm #31924); ``force=True`` builds the events anyway (for tests of that case).

        The text goes in **one** textInput by default: the 1 KB per textInput limit is documented
        for chat history, not for interactive input, and one textInput is what the samples send.
        ``split_bytes=N`` splits it like history instead.
        """
        self._check_open()
        if not self._model.interactive_text and not force:
            raise BuilderError(
                f"interactive text does not start a response on Nova Sonic 1 ({self._model.model_id}); "
                "send the user's input as audio (or pass force=True to build the events anyway)"
            )
        if not text:
            raise ValueError("interactive text must not be empty")
        pieces = split_utf8(text, split_bytes) if split_bytes is not None else [text]
        return self._text_block(Role.USER, pieces, interactive=True)

    def tool_result(self, tool_use_id: str, result: Any) -> list[InputEvent]:
        """The TOOL block answering ``tool_use_id``: contentStart(TOOL, TOOL,
        toolResultInputConfiguration.toolUseId) → toolResult → contentEnd. ``result`` is encoded by
        ``encode_tool_result`` (an exception becomes ``{"error": …}``). The contentName is a fresh
        name, never the toolUseId (protocol.md §1.3e)."""
        self._check_open()
        if not tool_use_id:
            raise ValueError("tool_use_id must not be empty")
        name = self._names()
        for _ in range(3):
            if name != tool_use_id:
                break
            name = self._names()
        else:
            raise BuilderError(f"the name factory keeps returning the toolUseId {tool_use_id!r}")
        content = encode_tool_result(result, key=self.tool_result_key)
        return [
            ContentStart.tool_result(self.prompt_name, name, tool_use_id),
            ToolResult(prompt_name=self.prompt_name, content_name=name, content=content),
            ContentEnd(prompt_name=self.prompt_name, content_name=name),
        ]

    # --- the end --------------------------------------------------------------------------------------

    def close(self) -> list[InputEvent]:
        """The documented shutdown (protocol.md §1.5): the AUDIO ``contentEnd`` if that block is
        open, ``promptEnd``, ``sessionEnd``. The builder is closed afterwards."""
        self._check_open()
        out = self.audio_end() if self._audio_name is not None else []
        out.append(PromptEnd(prompt_name=self.prompt_name))
        out.append(SessionEnd())
        self._closed = True
        return out

    # --- helpers --------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BuilderError("the session was closed (close() already returned promptEnd and sessionEnd)")

    def _text_block(self, role: Role, pieces: list[str], *, interactive: bool) -> list[InputEvent]:
        name = self._names()
        return [
            ContentStart.text(self.prompt_name, name, role, interactive=interactive),
            *(TextInput(prompt_name=self.prompt_name, content_name=name, content=p) for p in pieces),
            ContentEnd(prompt_name=self.prompt_name, content_name=name),
        ]

    @staticmethod
    def _tool_choice(choice: ToolChoice | str | None) -> ToolChoice | None:
        if choice is None or isinstance(choice, ToolChoice):
            return choice
        if not isinstance(choice, str) or not choice:
            raise ValueError(f"tool_choice must be 'auto', 'any', a tool name or a ToolChoice, got {choice!r}")
        if choice == "auto":
            return ToolChoice.auto_()
        if choice == "any":
            return ToolChoice.any_()
        return ToolChoice.named(choice)
