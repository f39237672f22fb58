"""``RulesConfig``: one switch for every behaviour of the service the spec is unsure about.

Each default is the spec's recommendation, or, where the spec gives none, the choice explained
next to the field. Switches only make rules stricter or looser; they never change the text of a
rule whose text is known. Rules whose text is UNK answer with ``unknown_text`` and
``confident=False``.

The guiding line for defaults: reject what the service is reported to reject, and what every
working client avoids; accept what a working official sample does (a fake stricter than the
service would fail clients that work in production).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .texts import GENERIC_INVALID, PREFIX_OBSERVED, PrefixPolicy

__all__ = ["RulesConfig", "DEFAULT_UNSUPPORTED_SCHEMA_KEYWORDS"]

#: JSON-Schema keywords reported to give GENERIC_INVALID in a tool's inputSchema (REP, §1.2).
DEFAULT_UNSUPPORTED_SCHEMA_KEYWORDS: frozenset[str] = frozenset({"anyOf", "default", "additionalProperties", "title"})


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesConfig:
    """Strictness switches of ``InputMachine`` (and the texts it answers with)."""

    # --- sessionStart (§1.1) ----------------------------------------------------------------------
    #: Flat ``sessionStart.endpointingSensitivity`` on Nova 2 / 2.5 → GENERIC_INVALID.
    #: REP livekit/agents #6200 (it used to be ignored; it is rejected now).
    reject_flat_endpointing_on_nova2: bool = True
    #: Nested ``turnDetectionConfiguration`` on Nova Sonic 1 → unknown_text. UNK: v1 documents no
    #: such key and the service rejects unknown keys (REP), so reject by default.
    reject_turn_detection_on_nova1: bool = True

    # --- promptStart (§1.2, §1.9) -----------------------------------------------------------------
    #: A voiceId not in the model's voice list → unknown_text (the service's text is UNK, §1.9).
    reject_unknown_voice: bool = True
    #: inputSchema.json strings that do not hold a JSON object → unknown_text. The object *form*
    #: (not a string at all) cannot reach the machine; see ``check_parse_error``.
    reject_invalid_input_schema: bool = True
    #: Schema keywords in ``unsupported_schema_keywords`` anywhere in a tool schema → GENERIC_INVALID
    #: (REP; the text is known for this trigger).
    reject_unsupported_schema_keywords: bool = True
    unsupported_schema_keywords: frozenset[str] = DEFAULT_UNSUPPORTED_SCHEMA_KEYWORDS
    #: Two tools with the same name, or toolChoice naming a tool not in the list → unknown_text (UNK).
    reject_bad_tool_configuration: bool = True
    #: A new promptStart after promptEnd in the same session. UNK; the event flow allows it
    #: (sessionStart → promptStart … promptEnd → sessionEnd nests prompts inside a session), so allow.
    #: The new prompt must use a new promptName.
    allow_new_prompt_after_prompt_end: bool = True

    # --- content blocks (§1.3, §3.1) --------------------------------------------------------------
    #: SYSTEM block with ``interactive: true``: the official Node sample sends it and it works
    #: (REP AS websocket-nodejs), so allow.
    allow_interactive_system_block: bool = True
    #: A TEXT/TOOL block opened while another TEXT/TOOL block is open, or an AUDIO block while
    #: another AUDIO block is open → unknown_text. UNK; no client does either (every sample closes
    #: one text block before the next), so reject. A TEXT or TOOL block next to the open AUDIO
    #: block is normal (cross-modal §1.7, tool results §1.8) and always allowed.
    reject_overlapping_blocks: bool = True
    #: promptEnd while content blocks are still open. UNK; the documented shutdown closes the audio
    #: block first, but a promptEnd ends the prompt either way, so allow (the blocks are closed
    #: implicitly and listed in the ``PromptEnded`` fact).
    reject_prompt_end_with_open_content: bool = False
    #: sessionEnd while a prompt is open. UNK; allow for the same reason.
    reject_session_end_with_open_prompt: bool = False
    #: Nova Sonic 1: promptEnd of a prompt that never opened an AUDIO block → unknown_text.
    #: REP litellm #31924 ("a prompt with no audio content is rejected"; the text is UNK).
    require_audio_block_on_nova1_prompt_end: bool = True

    # --- chat history (§1.6, §3.1 rule 3) ---------------------------------------------------------
    #: History (non-interactive USER/ASSISTANT text) must start with USER. REP LK and the AWS
    #: session-continuation sample.
    require_history_user_first: bool = True
    #: History must alternate USER/ASSISTANT. Same source and confidence as "USER first" (REP LK,
    #: AS). Rejecting by default matches what Bedrock's other conversation APIs do and what LiveKit
    #: guarantees by merging consecutive messages; a client sending two USER messages in a row is
    #: the client a strict fake should catch. Turn off to accept unmerged transcripts.
    require_history_alternation: bool = True
    #: When the history window closes. False (default): at the first audioInput, the wording of
    #: DOC D-HIST and §3.1 rule 3. True: already at the first AUDIO contentStart.
    history_ends_at_audio_block: bool = False

    # --- tools (§1.8, §3.1 rule 6) ----------------------------------------------------------------
    #: audioInput while a requested tool result has not been sent. Conflicting reports: the AWS
    #: sample does it and it works; a Nova 2.5 report got GENERIC_INVALID. Default allow.
    allow_audio_while_tool_result_owed: bool = True
    #: A TOOL block for a toolUseId the service never asked for → unknown_text (DOC requires the
    #: id; the text is UNK).
    reject_unknown_tool_use_id: bool = True
    #: A second TOOL block (or a second toolResult) for an id already answered → unknown_text (UNK).
    reject_duplicate_tool_result: bool = True

    # --- texts ------------------------------------------------------------------------------------
    #: The text used for every rule whose real text the spec marks UNK (violation.confident=False).
    unknown_text: str = GENERIC_INVALID
    #: When to prefix ``RequestId=<id> : `` (needs a request id given to the machine); see texts.py.
    prefix_request_id: PrefixPolicy = PREFIX_OBSERVED

    def __post_init__(self) -> None:
        # Validated like h2's config options: a typo'd value fails here, not deep in a rule.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise TypeError(f"RulesConfig.{f.name} must be a bool, got {value!r}")
        if self.prefix_request_id not in ("never", "observed", "always"):
            raise ValueError(f"RulesConfig.prefix_request_id must be never/observed/always, got {self.prefix_request_id!r}")
        if not isinstance(self.unknown_text, str) or not self.unknown_text:
            raise ValueError("RulesConfig.unknown_text must be a non-empty string")
        if not isinstance(self.unsupported_schema_keywords, frozenset):
            raise TypeError("RulesConfig.unsupported_schema_keywords must be a frozenset")
