"""The catalogue of input rules: id → the service's text, its confidence, the source, the switch.

``InputMachine`` raises every violation through this table, so the list below is complete by
construction and the package docstring is generated from it (``describe_rules``).

``text=None`` means the spec marks the service's text UNK: the violation carries
``RulesConfig.unknown_text`` (GENERIC_INVALID by default) and ``confident=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import texts as T

__all__ = ["Rule", "RULES", "rule", "describe_rules"]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    #: The service's text, or None where it is UNK.
    text: str | None
    #: What is checked, in one line.
    summary: str
    #: protocol.md section and the source tag of the *rule* (not of the text).
    source: str
    #: The ``RulesConfig`` switch that turns the rule off, if any.
    switch: str | None = None
    #: True when ``text`` is a guess (the spec says "assumed"): used, but ``confident=False``.
    assumed: bool = False

    @property
    def confident(self) -> bool:
        return self.text is not None and not self.assumed


_RULES = (
    # --- order of the session (§3.1 rule 1, §1.5) -------------------------------------------------
    Rule("session-not-started", None, "any event before sessionStart", "§3.1.1 DOC D-FLOW"),
    Rule("session-already-started", None, "a second sessionStart", "§3.1.1 DOC D-FLOW"),
    Rule("session-ended", None, "any event after sessionEnd", "§3.1.9 DOC"),
    Rule("session-end-with-open-prompt", None, "sessionEnd while a prompt is open",
         "§1.5 DOC shutdown order", "reject_session_end_with_open_prompt"),
    # --- sessionStart (§1.1) ----------------------------------------------------------------------
    Rule("flat-endpointing-on-nova2", T.GENERIC_INVALID,
         "flat sessionStart.endpointingSensitivity on Nova 2 / 2.5", "§1.1 REP livekit #6200",
         "reject_flat_endpointing_on_nova2"),
    Rule("turn-detection-on-nova1", None, "turnDetectionConfiguration on Nova Sonic 1",
         "§0, §1.1 (v1 has no such key; unknown keys are rejected, REP)", "reject_turn_detection_on_nova1"),
    # --- promptStart (§1.2, §1.9) -----------------------------------------------------------------
    Rule("prompt-not-open", None, "content event or promptEnd with no open prompt", "§3.1.1 DOC D-FLOW"),
    Rule("prompt-already-open", None, "promptStart while a prompt is open", "§3.1 DOC D-FLOW"),
    Rule("prompt-restart", None, "promptStart after promptEnd (when disallowed)", "UNK",
         "allow_new_prompt_after_prompt_end"),
    Rule("prompt-name-reused", None, "promptStart reusing the name of an ended prompt", "UNK"),
    Rule("prompt-name-mismatch", None, "an event naming another promptName than the open prompt",
         "§3.1.5 DOC"),
    Rule("voice-empty", T.EMPTY_VOICE, "voiceId missing or empty", "§1.2 REP"),
    Rule("voice-unknown", None, "voiceId not in the model's voice list", "§1.9 DOC lists",
         "reject_unknown_voice"),
    Rule("tool-name-duplicate", None, "two tools with the same name", "UNK", "reject_bad_tool_configuration"),
    Rule("tool-choice-unknown-tool", None, "toolChoice.tool.name not among the tools", "§1.2 DOC D-TOOL",
         "reject_bad_tool_configuration"),
    Rule("tool-schema-invalid", None, "inputSchema.json is a string but not a JSON object",
         "§1.2 DOC (a JSON-Schema string)", "reject_invalid_input_schema"),
    Rule("tool-schema-unsupported-keyword", T.GENERIC_INVALID,
         "anyOf / default / additionalProperties / title in a tool schema", "§1.2 REP",
         "reject_unsupported_schema_keywords"),
    # --- content blocks (§1.3, §3.1 rules 2, 5) ---------------------------------------------------
    Rule("first-content-not-system", T.FIRST_CONTENT_SYSTEM, "first block of a prompt is not TEXT/SYSTEM",
         "§1.3a REP tigy32/Tyde"),
    Rule("duplicate-system", T.DUPLICATE_SYSTEM, "a second SYSTEM block in a prompt", "§1.3a REP tigy32/Tyde"),
    Rule("system-not-text", None, "a SYSTEM-role block whose type is not TEXT", "§1.3a DOC"),
    Rule("system-interactive", None, "SYSTEM block with interactive: true (when disallowed)",
         "§1.3a REP AS Node sample sends it", "allow_interactive_system_block"),
    Rule("content-role-mismatch", None,
         "role does not fit the type (AUDIO needs USER; TOOL type ⇔ TOOL role)", "§1.3 DOC"),
    Rule("content-name-reused", None, "contentStart with a contentName already used in the prompt",
         "§1.0 D-XMOD 'new contentName per message'"),
    Rule("content-not-open", None, "content event naming a contentName not started or already ended",
         "§3.1.5 DOC"),
    Rule("content-overlap", None, "a TEXT/TOOL block opened while another TEXT/TOOL block is open "
         "(or AUDIO while AUDIO is open)", "UNK", "reject_overlapping_blocks"),
    Rule("content-type-mismatch", None,
         "textInput outside a TEXT block, audioInput outside AUDIO, toolResult outside TOOL", "§1.4 DOC"),
    Rule("prompt-end-with-open-content", None, "promptEnd while blocks are open", "§1.5 DOC shutdown order",
         "reject_prompt_end_with_open_content"),
    Rule("prompt-without-audio", None, "Nova Sonic 1: promptEnd of a prompt with no AUDIO block",
         "§3.1.7 REP litellm #31924", "require_audio_block_on_nova1_prompt_end"),
    # --- chat history (§1.6, §3.1 rule 3) ---------------------------------------------------------
    Rule("history-after-audio", None, "a history block after audio started", "§1.6 DOC D-HIST"),
    Rule("history-not-user-first", None, "history starting with ASSISTANT", "§1.6 REP LK, AS",
         "require_history_user_first"),
    Rule("history-not-alternating", None, "two history messages of the same role in a row", "§1.6 REP LK, AS",
         "require_history_alternation"),
    Rule("history-input-too-large", None, "one history textInput over Limits.history_text_input_bytes",
         "§1.6 DOC D-HIST 1 KB"),
    Rule("history-too-large", None, "history over Limits.history_total_bytes", "§1.6 DOC D-HIST 40 KB"),
    Rule("history-too-many-messages", None, "more history blocks than Limits.history_max_messages",
         "§1.6 (LK caps at 40; off by default)"),
    # --- audio (§1.4, §1.7, §3.1 rule 4) ----------------------------------------------------------
    Rule("audio-while-text-open", T.CHAT_HISTORY_BEFORE_AUDIO, "audioInput while any TEXT block is open",
         "§3.1.4 REP LK PR #6720, #5626"),
    Rule("audio-not-base64", None, "audioInput content that is not base64", "§1.4 DOC"),
    Rule("audio-input-too-large", None, "one audioInput over Limits.max_audio_input_bytes (off by default)",
         "§1.4 UNK"),
    Rule("audio-while-tool-result-owed", T.GENERIC_INVALID,
         "audioInput while a requested tool result is unsent (when disallowed)", "§1.8 REP Nova 2.5",
         "allow_audio_while_tool_result_owed"),
    # --- tool results (§1.4, §1.8, §3.1 rule 6) ---------------------------------------------------
    Rule("tool-result-unknown-id", None, "TOOL block for a toolUseId the service did not send",
         "§3.1.6 DOC D-TOOL", "reject_unknown_tool_use_id"),
    Rule("tool-result-duplicate", None, "a second result for a toolUseId", "UNK", "reject_duplicate_tool_result"),
    Rule("tool-result-not-json-object", T.TOOL_RESPONSE_PARSING,
         "toolResult content that is not a JSON-object string", "§1.4 REP livekit #2874"),
    Rule("tool-result-too-large", None, "one toolResult over Limits.max_tool_result_bytes (off by default)",
         "§3.3 UNK"),
    # --- decoding (check_parse_error) -------------------------------------------------------------
    Rule("unparsable-chunk", T.UNPARSABLE_CHUNK, "chunk that is not UTF-8 JSON",
         "§3.2 (the text is assumed for any JSON failure)", assumed=True),
    Rule("input-schema-object", T.UNPARSABLE_CHUNK, "inputSchema.json sent as an object, not a string",
         "§1.2 REP hackathon feedback"),
    Rule("unknown-input-event", None, "an input event name the service does not define (e.g. connectionEnd)",
         "§1.5 REP ST"),
    Rule("invalid-event-unknown-field", T.GENERIC_INVALID, "an unknown field in a known event", "§1.1 REP"),
    Rule("invalid-event", None, "any other schema error (missing member, bad value, bad envelope)",
         "§1 DOC shapes"),
    # --- the errored state --------------------------------------------------------------------------
    Rule("machine-errored", None, "any event after a violation; repeats the first violation's text and "
         "confidence and has it as __cause__", "h11 ERROR state"),
)

RULES: dict[str, Rule] = {r.id: r for r in _RULES}


def rule(rule_id: str) -> Rule:
    return RULES[rule_id]


def describe_rules() -> str:
    """One line per rule: id, confidence, text (or UNK), summary, source, switch."""
    lines = []
    for r in _RULES:
        text = repr(r.text) if r.text is not None else "RulesConfig.unknown_text"
        tag = "known" if r.confident else ("assumed" if r.assumed else "UNK")
        if r.id == "machine-errored":
            text, tag = "the first violation's", "as the first"
        switch = f" [switch: {r.switch}]" if r.switch else ""
        lines.append(f"- ``{r.id}`` ({tag}): {r.summary}. Text: {text}. Source: {r.source}.{switch}")
    return "\n".join(lines)
