"""The service's limits as one frozen, documented, configurable value (protocol.md §3.3, §1.4, §4.2).

Each field cites its source and confidence tag. ``None`` means "the service has no known limit";
such a limit is not enforced unless a test sets it.

Who enforces what:

- ``InputMachine`` (this package): the chat-history limits and the optional size limits on one
  ``audioInput`` / ``toolResult``. They depend only on the events.
- The fake server on its scaled clock: ``max_stream_age_s``, ``idle_input_timeout_s``,
  ``silent_audio_timeout_s``, ``max_concurrent_streams_per_key`` (time and connection counts are
  I/O; this package never reads a clock).
- The wire layer: ``max_event_payload_bytes`` and the header limits (smithy's own constants).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..audio import BYTES_PER_SAMPLE, pcm_ms

__all__ = ["Limits", "BYTES_PER_SAMPLE", "ENDPOINTING_PAUSE_S", "pcm_ms"]


#: End-of-turn pause for each ``endpointingSensitivity`` (DOC D-TURN). The default when the key
#: is absent is UNK (every sample sends MEDIUM).
ENDPOINTING_PAUSE_S: dict[str, float] = {"HIGH": 1.5, "MEDIUM": 1.75, "LOW": 2.0}


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Every limit of the service, with the spec's value as the default."""

    # --- chat history (DOC D-HIST, protocol.md §1.6) ---------------------------------------------
    #: Total UTF-8 bytes of all chat-history textInput contents in one prompt. DOC D-HIST "40 KB".
    history_total_bytes: int | None = 40 * 1024
    #: UTF-8 bytes of one history textInput (longer messages are split over several textInputs in
    #: the same block). DOC D-HIST "1 KB per textInput".
    history_text_input_bytes: int | None = 1024
    #: Number of history messages (blocks). The service documents no limit (None); LiveKit caps
    #: at 40 (LK ``MAX_MESSAGES``) and strands at 200 KB in total (REP ST). Set it to model them.
    history_max_messages: int | None = None

    # --- time (enforced by the fake server's clock) ----------------------------------------------
    #: Connection lifetime. SRC SDK client.py l.511–512 "remains open for 8 minutes"; DOC. LiveKit
    #: rotates sessions at 6 min (LK ``MAX_SESSION_DURATION_SECONDS``).
    max_stream_age_s: float = 480.0
    #: No input events at all → ``TIMED_OUT_INPUT``. REP; the reported range is 55–60 s (UNK which).
    idle_input_timeout_s: float = 55.0
    #: Only silence streamed → ``RST_531``. REP LK (≈3 min) / strands ("silent for 175 seconds");
    #: the range is 175–180 s (UNK which).
    silent_audio_timeout_s: float = 175.0

    # --- connections ------------------------------------------------------------------------------
    #: Concurrent InvokeModelWithBidirectionalStream sessions per account and region, not
    #: adjustable. REP (Bedrock quotas; aws-samples/generative-ai-use-cases PR #1013). How the
    #: service reports going over it is UNK.
    max_concurrent_streams_per_key: int = 20

    # --- transport (SRC ES smithy_aws_event_stream/events.py l.36–38) ----------------------------
    #: Event-stream payload cap (``MAX_PAYLOAD_LENGTH``), 16 MiB.
    max_event_payload_bytes: int = 16 * 1024 * 1024
    #: Event-stream headers cap (``MAX_HEADERS_LENGTH``), 128 KiB.
    max_headers_bytes: int = 128 * 1024
    #: One header value (``MAX_HEADER_VALUE_BYTE_LENGTH``), 32 KiB − 1.
    max_header_value_bytes: int = 32 * 1024 - 1

    # --- audio facts (DOC D-N2-IN / D-N1-IN / D-OUT) ---------------------------------------------
    #: Sample rates accepted for input audio and for output audio (DOC). Whether Nova Sonic 1
    #: accepts 8 k / 24 k *input* is UNK (its samples always use 16 k). The event schema enforces
    #: this set already.
    input_sample_rates: tuple[int, ...] = (8000, 16000, 24000)
    output_sample_rates: tuple[int, ...] = (8000, 16000, 24000)
    #: Recommended audioInput frame, ≈32 ms (16 kHz → 512 samples = 1024 bytes). DOC D-N2-IN.
    recommended_frame_ms: float = 32.0
    #: Decoded bytes of one audioInput. No documented maximum (UNK); the transport cap applies.
    max_audio_input_bytes: int | None = None
    #: Bytes of one toolResult content. Not documented (UNK).
    max_tool_result_bytes: int | None = None
    #: Trailing silence OME-SPIKE streams after an utterance so endpointing fires (CAP/REP).
    trailing_silence_ms: float = 1600.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                ok = all(isinstance(v, int) and v > 0 for v in value)
            else:
                ok = (value is None and "None" in str(f.type)) or (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
                )
            if not ok:
                raise ValueError(f"Limits.{f.name} must be positive{' or None' if 'None' in str(f.type) else ''}, "
                                 f"got {value!r}")

    def recommended_frame_bytes(self, sample_rate_hertz: int = 16000) -> int:
        """Bytes of one recommended frame at ``sample_rate_hertz`` (1024 at 16 kHz)."""
        return int(sample_rate_hertz * self.recommended_frame_ms / 1000) * BYTES_PER_SAMPLE
