"""The service's error texts, word for word (protocol.md §3.2), with where each one was seen.

Every text is a REP (reported by third parties, not in the AWS docs). The tag after each constant
says who saw it and on what trigger. Where the spec says the service's text for a broken rule is
not known (UNK), the rules use ``RulesConfig.unknown_text`` (``GENERIC_INVALID`` by default) and
mark the violation ``confident=False``.

The ``RequestId=<id> : `` prefix
--------------------------------
The spec says messages "usually start with ``RequestId=<uuid> : ``", but only two texts were
actually seen with it: ``DUPLICATE_SYSTEM`` (tigy32/Tyde) and ``TOOL_RESPONSE_PARSING``
(livekit/agents #2874: ``Validation error: RequestId=… : Tool Response parsing error``; the
``Validation error:`` part is the client's own wording). Every other text was quoted without it,
and client code matches them as substrings, so it does not matter to clients either way.
``RulesConfig.prefix_request_id`` picks the policy (``PREFIX_OBSERVED`` by default), and
``service_text`` applies it.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CHAT_HISTORY_BEFORE_AUDIO",
    "GENERIC_INVALID",
    "EMPTY_VOICE",
    "UNPARSABLE_CHUNK",
    "FIRST_CONTENT_SYSTEM",
    "DUPLICATE_SYSTEM",
    "TOOL_RESPONSE_PARSING",
    "TIMED_OUT_INPUT",
    "RST_531",
    "SYSTEM_INSTABILITY",
    "INVALID_EVENT_BYTES",
    "KNOWN_TEXTS",
    "SEEN_WITH_REQUEST_ID",
    "PrefixPolicy",
    "PREFIX_NEVER",
    "PREFIX_OBSERVED",
    "PREFIX_ALWAYS",
    "with_request_id",
    "service_text",
]

#: audioInput while any TEXT block (history or interactive) is open.
#: REP LK realtime_model.py l.620/2052/2319; livekit/agents PR #6720, issue #5626.
CHAT_HISTORY_BEFORE_AUDIO = "Chat history should be sent completely before streaming audio."

#: The generic schema/validation answer. Seen for: flat endpointingSensitivity on Nova 2
#: (livekit/agents #6200), unsupported JSON-Schema keywords in a tool's inputSchema, audioInput
#: while a toolResult is owed on Nova 2.5, unknown fields in general. REP. Also the stand-in for
#: every rule whose real text is UNK.
GENERIC_INVALID = "Invalid input request, please fix your input and try again."

#: promptStart with a missing or empty audioOutputConfiguration.voiceId. REP (protocol.md §1.2).
EMPTY_VOICE = "Received invalid voiceId: value must not be empty"

#: inputSchema.json sent as an object instead of a JSON string (REP, hackathon feedback); assumed
#: for any chunk whose JSON does not parse.
UNPARSABLE_CHUNK = "Unable to parse input chunk"

#: First content block of a prompt is not the SYSTEM text block. REP tigy32/Tyde AwsNovaProvider.
FIRST_CONTENT_SYSTEM = "First content must have SYSTEM role"

#: A second SYSTEM block in one prompt. REP tigy32/Tyde (seen with the RequestId prefix).
DUPLICATE_SYSTEM = (
    "Error(s):\nError 1 : Duplicate SYSTEM content. SYSTEM content can only be provided once per prompt."
)

#: toolResult.content is not a string holding a JSON object. REP livekit/agents #2874 (seen with
#: the RequestId prefix); LK l.1645 treats it as recoverable, other reports say the stream ends.
TOOL_RESPONSE_PARSING = "Tool Response parsing error"

#: No input events for ≈55–60 s. REP gravityai README, Nova 2.5 report, strands. Timer: see
#: ``Limits.idle_input_timeout_s``; enforced by the fake server's clock, not by the machine.
TIMED_OUT_INPUT = "Timed out waiting for input events"

#: Long inactivity (≈175–180 s of silence; strands also links it to the 8-minute limit), delivered
#: as a validationException. REP LK l.85 ``RECOVERABLE_VALIDATION_ERROR_MESSAGES``.
RST_531 = "InternalErrorCode=531::RST_STREAM closed stream. HTTP/2 error code: NO_ERROR"

#: Transient service fault (validationException, fault client, status 400 in the SDK).
#: REP livekit/agents #6010, PR #6042; LK l.86.
SYSTEM_INSTABILITY = "System instability detected. Please retry your request."

#: Malformed chunk (type assumed validationException). REP pipecat #3387. The wire layer answers
#: a chunk envelope it cannot decode with this; JSON-level failures use ``UNPARSABLE_CHUNK``.
INVALID_EVENT_BYTES = "Invalid event bytes"

#: name → text, for tables and docs.
KNOWN_TEXTS: dict[str, str] = {
    "CHAT_HISTORY_BEFORE_AUDIO": CHAT_HISTORY_BEFORE_AUDIO,
    "GENERIC_INVALID": GENERIC_INVALID,
    "EMPTY_VOICE": EMPTY_VOICE,
    "UNPARSABLE_CHUNK": UNPARSABLE_CHUNK,
    "FIRST_CONTENT_SYSTEM": FIRST_CONTENT_SYSTEM,
    "DUPLICATE_SYSTEM": DUPLICATE_SYSTEM,
    "TOOL_RESPONSE_PARSING": TOOL_RESPONSE_PARSING,
    "TIMED_OUT_INPUT": TIMED_OUT_INPUT,
    "RST_531": RST_531,
    "SYSTEM_INSTABILITY": SYSTEM_INSTABILITY,
    "INVALID_EVENT_BYTES": INVALID_EVENT_BYTES,
}

#: The texts that were actually seen with the ``RequestId=<id> : `` prefix (see module doc).
SEEN_WITH_REQUEST_ID: frozenset[str] = frozenset({DUPLICATE_SYSTEM, TOOL_RESPONSE_PARSING})

PrefixPolicy = Literal["never", "observed", "always"]
PREFIX_NEVER: PrefixPolicy = "never"
PREFIX_OBSERVED: PrefixPolicy = "observed"
PREFIX_ALWAYS: PrefixPolicy = "always"


def with_request_id(text: str, request_id: str) -> str:
    """``RequestId=<request_id> : <text>``, the service's prefixed form."""
    return f"RequestId={request_id} : {text}"


def service_text(text: str, request_id: str | None, policy: PrefixPolicy = PREFIX_OBSERVED) -> str:
    """The text as the service would send it under ``policy``.

    ``never``: ``text`` unchanged. ``observed``: prefixed only for ``SEEN_WITH_REQUEST_ID``.
    ``always``: every text prefixed. Without a ``request_id`` the text is never prefixed.
    """
    if request_id is None or policy == PREFIX_NEVER:
        return text
    if policy == PREFIX_ALWAYS or text in SEEN_WITH_REQUEST_ID:
        return with_request_id(text, request_id)
    return text
