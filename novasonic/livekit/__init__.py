"""``novasonic.livekit``: Amazon Nova Sonic as a LiveKit Agents realtime model.

The same public API as the upstream plugin (``livekit.plugins.aws.experimental.realtime``,
livekit-plugins-aws 1.8.9), built on ``novasonic.session`` (which owns the streams, recycles,
restarts and protocol rules)::

    from livekit.agents import Agent, AgentSession, function_tool
    from novasonic.livekit import RealtimeModel

    class Assistant(Agent):
        def __init__(self) -> None:
            super().__init__(instructions="You are a helpful voice assistant.")

        @function_tool
        async def get_weather(self, location: str) -> dict:
            \"\"\"Current weather for a city.\"\"\"
            return {"location": location, "sky": "sunny", "celsius": 21}

    session = AgentSession(llm=RealtimeModel.with_nova_sonic_2(voice="tiffany"), vad=None)
    await session.start(Assistant(), room=ctx.room)

``RealtimeModel(model=..., modalities=..., voice=..., temperature=..., top_p=..., max_tokens=...,
tool_choice=..., region=..., turn_detection=..., generate_reply_timeout=...)`` with the upstream
defaults, ``with_nova_sonic_1()`` / ``with_nova_sonic_2()`` / ``with_nova_sonic_2_5()``,
``model``, ``modalities``, ``provider``, ``session()``, ``aclose()``; keyword-only additions
(``endpoint``, ``ca_file``, ``credentials``, ``recycle``, ``restart``, ``clock``, ``config_wait``)
are described in ``novasonic.livekit.model``. ``RealtimeSession`` behaviour (generations, tools,
barge-in, typed text, errors, no-ops) is described in ``novasonic.livekit.session``.

Pointing at something other than the real service: ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` and
``SSL_CERT_FILE`` (or ``endpoint=`` / ``ca_file=``), credentials from the usual AWS chain (or
``credentials=novasonic.session.StaticCredentials(...)``).
"""

from .model import RealtimeModel
from .session import RealtimeSession
from .types import MODALITIES, REALTIME_MODELS, SONIC1_VOICES, SONIC2_VOICES, TURN_DETECTION

__all__ = [
    "RealtimeModel",
    "RealtimeSession",
    "MODALITIES",
    "REALTIME_MODELS",
    "SONIC1_VOICES",
    "SONIC2_VOICES",
    "TURN_DETECTION",
]
