"""Public type aliases and defaults of the LiveKit plugin (the same names as
``livekit.plugins.aws.experimental.realtime``, so an agent can switch import lines only).

The voice lists are the catalogue's (``novasonic.models``); a voice outside the model's list is
refused when the ``RealtimeModel`` is built, not when the service rejects the first stream.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "TURN_DETECTION",
    "MODALITIES",
    "REALTIME_MODELS",
    "SONIC1_VOICES",
    "SONIC2_VOICES",
    "DEFAULT_VOICE",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_TOP_P",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_TOOL_TEMPERATURE",
    "DEFAULT_TOOL_TOP_P",
    "DEFAULT_REGION",
    "DEFAULT_GENERATE_REPLY_TIMEOUT",
    "DEFAULT_INSTRUCTIONS",
    "OUTPUT_SAMPLE_RATE",
]

TURN_DETECTION = Literal["HIGH", "MEDIUM", "LOW"]
MODALITIES = Literal["audio", "mixed"]
REALTIME_MODELS = Literal[
    "amazon.nova-sonic-v1:0",
    "amazon.nova-2-sonic-v1:0",
    "amazon.nova-2-5-sonic",
]

SONIC1_VOICES = Literal[
    "matthew", "tiffany", "amy", "lupe", "carlos", "ambre", "florian", "greta", "lennart", "beatrice", "lorenzo",
]
SONIC2_VOICES = Literal[
    "matthew", "tiffany", "amy", "olivia", "lupe", "carlos", "ambre", "florian", "tina", "lennart", "beatrice",
    "lorenzo", "carolina", "leo", "arjun", "kiara",
]

DEFAULT_VOICE = "tiffany"
#: Inference defaults (what every sample sends). Sonic's temperature/top_p read "1.0 = most
#: deterministic"; with tools and nothing given, both default to 1.0 instead (greedy decoding
#: recommended for tool use; the upstream plugin does the same, per session here).
DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TOOL_TEMPERATURE = 1.0
DEFAULT_TOOL_TOP_P = 1.0
DEFAULT_REGION = "us-east-1"
DEFAULT_GENERATE_REPLY_TIMEOUT = 10.0
#: Assistant audio rate asked for in ``promptStart``.
OUTPUT_SAMPLE_RATE = 24000

#: SYSTEM prompt used when the agent gives none (the service needs a SYSTEM block per prompt).
DEFAULT_INSTRUCTIONS = (
    "You are a friendly voice assistant. Speak naturally and keep answers short, as in a spoken "
    "conversation: no lists, no markup. Reply in the language the user speaks. When you use a tool, "
    "say briefly that you are checking. If you do not know something, say so."
)
