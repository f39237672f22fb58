"""Sans-IO Nova Sonic protocol rules, shared by the client session and the fake server.

One implementation of every rule (design.md §2, h11 ``_state.py``): the session checks an event
before sending it, the fake server feeds every event it receives, and both get the same verdict
and the same service text. Nothing here does I/O or reads a clock.

- ``InputMachine(model_id, config=RulesConfig(), limits=Limits(), request_id=None)``:
  ``check(event) -> ProtocolViolation | None`` (pure), ``feed(event) -> list[Fact]`` (raises
  ``ProtocolViolation``; then terminal ``ERRORED``), ``note_output(event)`` /
  ``note_tool_use(id)`` (the service's toolUse), ``check_parse_error(exc)``, ``fail(violation)``.
- ``OutputTracker()``: ``feed(output_event) -> list[Record]``, ``tool_result_sent(id)``,
  ``close()``; ``turns``, ``current_turn``, ``pending_tool_calls``, ``usage_total``.
- ``texts``: the service's error texts; ``Limits``: the service's limits; ``RulesConfig``: the
  switches for every behaviour the spec marks unknown.

Rules (generated from ``catalogue.RULES``; "UNK" rules answer ``RulesConfig.unknown_text``, by
default GENERIC_INVALID, with ``confident=False``):

"""

from . import texts
from .catalogue import RULES, Rule, describe_rules
from .config import DEFAULT_UNSUPPORTED_SCHEMA_KEYWORDS, RulesConfig
from .facts import (
    AudioBlockClosed,
    AudioBlockOpened,
    AudioReceived,
    ContentClosed,
    Fact,
    HistoryMessageReceived,
    InteractiveTextSubmitted,
    PromptEnded,
    PromptStarted,
    SessionEnded,
    SessionStarted,
    SystemPromptReceived,
    ToolResultDelivered,
)
from .input_machine import BlockInfo, BlockKind, InputMachine, Phase, State, transition_table, violation_for_parse_error
from .limits import BYTES_PER_SAMPLE, ENDPOINTING_PAUSE_S, Limits, pcm_ms
from .output_tracker import (
    AssistantText,
    AudioChunk,
    AudioEnded,
    BargeIn,
    CompletionEnded,
    CompletionStarted,
    OutputTracker,
    Record,
    TokenUsage,
    ToolCall,
    ToolCallRequested,
    ToolCallResolved,
    Turn,
    TurnEnded,
    TurnStarted,
    Usage,
    UserSpeechEnded,
    UserSpeechStarted,
    UserTranscript,
    join_text,
)
from .texts import service_text, with_request_id

__doc__ = (__doc__ or "") + describe_rules() + "\n"

__all__ = [
    "texts",
    "service_text",
    "with_request_id",
    "Rule",
    "RULES",
    "describe_rules",
    "RulesConfig",
    "DEFAULT_UNSUPPORTED_SCHEMA_KEYWORDS",
    "Limits",
    "BYTES_PER_SAMPLE",
    "ENDPOINTING_PAUSE_S",
    "pcm_ms",
    "InputMachine",
    "State",
    "Phase",
    "BlockKind",
    "BlockInfo",
    "transition_table",
    "violation_for_parse_error",
    "Fact",
    "SessionStarted",
    "PromptStarted",
    "SystemPromptReceived",
    "HistoryMessageReceived",
    "InteractiveTextSubmitted",
    "AudioBlockOpened",
    "AudioReceived",
    "AudioBlockClosed",
    "ToolResultDelivered",
    "ContentClosed",
    "PromptEnded",
    "SessionEnded",
    "OutputTracker",
    "Turn",
    "ToolCall",
    "TokenUsage",
    "Record",
    "CompletionStarted",
    "CompletionEnded",
    "TurnStarted",
    "TurnEnded",
    "UserSpeechStarted",
    "UserSpeechEnded",
    "UserTranscript",
    "AssistantText",
    "AudioChunk",
    "AudioEnded",
    "ToolCallRequested",
    "ToolCallResolved",
    "BargeIn",
    "Usage",
    "join_text",
]
