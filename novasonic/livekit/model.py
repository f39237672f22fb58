"""``RealtimeModel``: the LiveKit ``llm.RealtimeModel`` for Amazon Nova Sonic.

Light-weight: it validates and keeps the options and makes a ``RealtimeSession`` per
``session()``; it also keeps every session it made, so ``aclose()`` closes them all (upstream's
``aclose`` did nothing).

Constructor arguments and defaults are the upstream plugin's (``livekit-plugins-aws``
``experimental.realtime``): ``model="amazon.nova-2-sonic-v1:0"``, ``modalities="mixed"``,
``voice="tiffany"``, ``temperature=0.7``, ``top_p=0.9``, ``max_tokens=1024`` (temperature and top_p
default to 1.0 when tools are declared and they were not given), ``tool_choice=None``,
``region`` (else ``AWS_REGION``/``AWS_DEFAULT_REGION``, else ``us-east-1``),
``turn_detection="MEDIUM"``, ``generate_reply_timeout=10.0``.

Keyword-only additions (all optional; the defaults talk to the real service):

- ``endpoint``: Bedrock runtime URL. Default: ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (honoured, unlike
  upstream 1.8.9, which hard-codes the regional URL), else the regional endpoint.
- ``ca_file``: a CA bundle this plugin's transport trusts (else ``SSL_CERT_FILE`` / system store).
- ``credentials``: a ``novasonic.session.CredentialsProvider`` (default: the boto3 chain, cached
  until 3 minutes before expiry; a stream is recycled before its credentials expire).
- ``recycle`` / ``restart``: ``RecyclePolicy`` / ``RestartPolicy``. Default recycle: from 6 minutes
  (``LK_SESSION_MAX_DURATION`` seconds when that variable is set, as upstream) at a quiet point,
  forced at 7.5 minutes; a tool/instructions update waits up to 20 s for a quiet point.
- ``clock``: the session clock (tests compress every timer with it).
- ``config_wait``: how long a new session waits for the agent's instructions, chat context and
  tools before opening its first stream without them (the framework sends all three at once;
  upstream waits 500 ms too).
- ``tool_speech_hold``: how long speech the model starts while a tool runs is held back so the
  tool's result can be sent first (``novasonic.livekit.session``, "Generations"); 0 disables.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import TYPE_CHECKING, Any

from livekit.agents import llm
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import is_given

from ..builder import HistoryLimits
from ..errors import UnknownModelError
from ..models import NOVA_2_5_SONIC, NOVA_2_SONIC, NOVA_SONIC_1, model_info
from ..session import Clock, CredentialsProvider, RecyclePolicy, RestartPolicy, SessionOptions
from .types import (
    DEFAULT_GENERATE_REPLY_TIMEOUT,
    DEFAULT_INSTRUCTIONS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    DEFAULT_VOICE,
    MODALITIES,
    OUTPUT_SAMPLE_RATE,
    REALTIME_MODELS,
    SONIC1_VOICES,
    SONIC2_VOICES,
    TURN_DETECTION,
)

if TYPE_CHECKING:
    from .session import RealtimeSession

__all__ = ["RealtimeModel"]

log = logging.getLogger("novasonic.livekit")

#: Longest wait for a quiet point before a tools/instructions update recycles the stream anyway.
UPDATE_MAX_WAIT_S = 20.0
#: Chat-history messages carried into a stream (upstream keeps 40; the newest are kept).
MAX_HISTORY_MESSAGES = 40


def _default_recycle() -> RecyclePolicy:
    raw = os.environ.get("LK_SESSION_MAX_DURATION")
    if not raw:
        return RecyclePolicy(update_max_wait_s=UPDATE_MAX_WAIT_S)
    try:
        after = float(raw)
    except ValueError:
        raise ValueError(f"LK_SESSION_MAX_DURATION must be a number of seconds, got {raw!r}") from None
    if not 0 < after < 480:
        raise ValueError(f"LK_SESSION_MAX_DURATION must be between 0 and 480 s (the stream limit), got {raw!r}")
    return RecyclePolicy(after_s=after, deadline_s=max(after, min(after * 1.25, 450.0)),
                         update_max_wait_s=UPDATE_MAX_WAIT_S)


class RealtimeModel(llm.RealtimeModel):
    """Amazon Nova Sonic speech-to-speech for LiveKit agents (see the module doc)."""

    def __init__(
        self,
        *,
        model: REALTIME_MODELS | str = NOVA_2_SONIC,
        modalities: MODALITIES = "mixed",
        voice: NotGivenOr[SONIC1_VOICES | SONIC2_VOICES | str] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        top_p: NotGivenOr[float] = NOT_GIVEN,
        max_tokens: NotGivenOr[int] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN,
        region: NotGivenOr[str] = NOT_GIVEN,
        turn_detection: TURN_DETECTION = "MEDIUM",
        generate_reply_timeout: float = DEFAULT_GENERATE_REPLY_TIMEOUT,
        endpoint: str | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        credentials: CredentialsProvider | None = None,
        recycle: RecyclePolicy | None = None,
        restart: RestartPolicy | None = None,
        clock: Clock | None = None,
        config_wait: float = 0.5,
        tool_speech_hold: float = 1.0,
    ) -> None:
        super().__init__(
            capabilities=llm.RealtimeCapabilities(
                message_truncation=False,
                turn_detection=True,
                user_transcription=True,
                auto_tool_reply_generation=True,
                audio_output=True,
                manual_function_calls=False,
                per_response_tool_choice=False,
            )
        )
        try:
            info = model_info(model)
        except UnknownModelError as exc:
            raise ValueError(str(exc)) from None
        if modalities not in ("audio", "mixed"):
            raise ValueError(f"modalities must be 'audio' or 'mixed', got {modalities!r}")
        if str(turn_detection).upper() not in ("HIGH", "MEDIUM", "LOW"):
            raise ValueError(f"turn_detection must be 'HIGH', 'MEDIUM' or 'LOW', got {turn_detection!r}")
        if isinstance(generate_reply_timeout, bool) or not isinstance(generate_reply_timeout, (int, float)) \
                or not generate_reply_timeout > 0:
            raise ValueError(f"generate_reply_timeout must be a positive number of seconds, got {generate_reply_timeout!r}")
        if not config_wait >= 0:
            raise ValueError(f"config_wait must be >= 0, got {config_wait!r}")
        if not tool_speech_hold >= 0:
            raise ValueError(f"tool_speech_hold must be >= 0, got {tool_speech_hold!r}")
        if modalities == "mixed" and not info.interactive_text:
            log.warning("%s takes no text input: modalities='mixed' behaves as 'audio'", model)

        self._model = model
        self._modalities: MODALITIES = modalities
        self._generate_reply_timeout = float(generate_reply_timeout)
        self._config_wait = float(config_wait)
        self._tool_speech_hold = float(tool_speech_hold)
        self._clock = clock
        #: As given (NOT_GIVEN kept), for the "greedy with tools" defaults.
        self.temperature = temperature
        self.top_p = top_p
        self._tool_choice: llm.ToolChoice | None = tool_choice if is_given(tool_choice) else None
        # Everything the session options need except instructions/tools (per session); validated
        # now so a bad voice or region fails here, not in the first stream.
        self._base_options = SessionOptions(
            model_id=model,
            voice=voice if is_given(voice) else DEFAULT_VOICE,
            instructions=DEFAULT_INSTRUCTIONS,
            temperature=temperature if is_given(temperature) else DEFAULT_TEMPERATURE,
            top_p=top_p if is_given(top_p) else DEFAULT_TOP_P,
            max_tokens=max_tokens if is_given(max_tokens) else DEFAULT_MAX_TOKENS,
            endpointing=str(turn_detection).upper(),
            output_sample_rate=OUTPUT_SAMPLE_RATE,
            history_limits=HistoryLimits(max_messages=MAX_HISTORY_MESSAGES),
            region=region if is_given(region) else None,
            endpoint=endpoint,
            ca_file=ca_file,
            credentials=credentials,
            recycle=recycle if recycle is not None else _default_recycle(),
            restart=restart if restart is not None else RestartPolicy(),
        )
        self._sessions: weakref.WeakSet[RealtimeSession] = weakref.WeakSet()

    # --- factories -------------------------------------------------------------------------------

    @classmethod
    def with_nova_sonic_1(
        cls,
        *,
        voice: NotGivenOr[SONIC1_VOICES | str] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        top_p: NotGivenOr[float] = NOT_GIVEN,
        max_tokens: NotGivenOr[int] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN,
        region: NotGivenOr[str] = NOT_GIVEN,
        turn_detection: TURN_DETECTION = "MEDIUM",
        generate_reply_timeout: float = DEFAULT_GENERATE_REPLY_TIMEOUT,
        **extra: Any,
    ) -> RealtimeModel:
        """Nova Sonic 1 (``amazon.nova-sonic-v1:0``): audio input only. ``extra``: the
        constructor's keyword-only additions (``endpoint``, ``credentials``, ...)."""
        return cls(model=NOVA_SONIC_1, modalities="audio", voice=voice, temperature=temperature, top_p=top_p,
                   max_tokens=max_tokens, tool_choice=tool_choice, region=region, turn_detection=turn_detection,
                   generate_reply_timeout=generate_reply_timeout, **extra)

    @classmethod
    def with_nova_sonic_2(
        cls,
        *,
        voice: NotGivenOr[SONIC2_VOICES | str] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        top_p: NotGivenOr[float] = NOT_GIVEN,
        max_tokens: NotGivenOr[int] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN,
        region: NotGivenOr[str] = NOT_GIVEN,
        turn_detection: TURN_DETECTION = "MEDIUM",
        generate_reply_timeout: float = DEFAULT_GENERATE_REPLY_TIMEOUT,
        **extra: Any,
    ) -> RealtimeModel:
        """Nova 2 Sonic (``amazon.nova-2-sonic-v1:0``): audio and typed text input."""
        return cls(model=NOVA_2_SONIC, modalities="mixed", voice=voice, temperature=temperature, top_p=top_p,
                   max_tokens=max_tokens, tool_choice=tool_choice, region=region, turn_detection=turn_detection,
                   generate_reply_timeout=generate_reply_timeout, **extra)

    @classmethod
    def with_nova_sonic_2_5(
        cls,
        *,
        voice: NotGivenOr[SONIC2_VOICES | str] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        top_p: NotGivenOr[float] = NOT_GIVEN,
        max_tokens: NotGivenOr[int] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice | None] = NOT_GIVEN,
        region: NotGivenOr[str] = NOT_GIVEN,
        turn_detection: TURN_DETECTION = "MEDIUM",
        generate_reply_timeout: float = DEFAULT_GENERATE_REPLY_TIMEOUT,
        **extra: Any,
    ) -> RealtimeModel:
        """Nova 2.5 Sonic (``amazon.nova-2-5-sonic``): audio and typed text input."""
        return cls(model=NOVA_2_5_SONIC, modalities="mixed", voice=voice, temperature=temperature, top_p=top_p,
                   max_tokens=max_tokens, tool_choice=tool_choice, region=region, turn_detection=turn_detection,
                   generate_reply_timeout=generate_reply_timeout, **extra)

    # --- properties ------------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._model

    @property
    def modalities(self) -> MODALITIES:
        """``"audio"``: audio input only; ``"mixed"``: audio and typed text (Nova 2+)."""
        return self._modalities

    @property
    def provider(self) -> str:
        return "Amazon"

    @property
    def text_input(self) -> bool:
        """True when typed text and ``generate_reply(instructions=...)`` reach the model."""
        return self._modalities == "mixed" and model_info(self._model).interactive_text

    @property
    def session_options(self) -> SessionOptions:
        """The options every new session starts from (instructions and tools come per session)."""
        return self._base_options

    @property
    def sessions(self) -> list[RealtimeSession]:
        """Sessions made by ``session()`` that are still referenced."""
        return list(self._sessions)

    # --- sessions --------------------------------------------------------------------------------

    def session(self, *, turn_detection_disabled: bool = False) -> RealtimeSession:
        """A new ``RealtimeSession``. Nova Sonic's turn detection cannot be switched off
        (``can_disable_turn_detection`` is False), so ``turn_detection_disabled`` is ignored."""
        from .session import RealtimeSession

        sess = RealtimeSession(self)
        self._sessions.add(sess)
        return sess

    async def aclose(self) -> None:
        """Close every session this model made."""
        for sess in list(self._sessions):
            await sess.aclose()
