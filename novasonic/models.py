"""Catalogue of Nova Sonic model ids and what differs between generations (protocol.md §0, §1.9).

Data only. The rules, the builder, the fake server and the session all ask this module, so a new
model id is added in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import UnknownModelError

__all__ = [
    "Generation",
    "ModelInfo",
    "NOVA_SONIC_1",
    "NOVA_2_SONIC",
    "NOVA_2_5_SONIC",
    "MODELS",
    "SONIC1_VOICES",
    "SONIC2_VOICES",
    "model_info",
]


class Generation(enum.StrEnum):
    NOVA_SONIC_1 = "nova-sonic-1"
    NOVA_2 = "nova-2"
    NOVA_2_5 = "nova-2.5"


# protocol.md §1.9 (DOC D-V1VOICE, LK SONIC1_VOICES)
SONIC1_VOICES: frozenset[str] = frozenset(
    {"tiffany", "matthew", "amy", "ambre", "florian", "beatrice", "lorenzo", "greta", "lennart", "lupe", "carlos"}
)
# protocol.md §1.9 (DOC D-LANG, LK SONIC2_VOICES); Nova 2.5 assumed the same (LK).
SONIC2_VOICES: frozenset[str] = frozenset(
    {
        "tiffany", "matthew", "amy", "olivia", "kiara", "arjun", "ambre", "florian", "beatrice",
        "lorenzo", "tina", "lennart", "lupe", "carlos", "carolina", "leo",
    }
)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What one model id accepts and does.

    ``turn_detection`` is ``"flat"`` when ``sessionStart.endpointingSensitivity`` is the form
    (Nova Sonic 1, kept by LiveKit) and ``"nested"`` for ``turnDetectionConfiguration``.
    """

    model_id: str
    generation: Generation
    voices: frozenset[str]
    turn_detection: str  # "flat" | "nested"
    interactive_text: bool  # interactive USER text starts a response (D-XMOD; litellm #31924 for v1)
    user_speech_events: bool  # userSpeechStart / userSpeechEnd are sent (CAP OME)
    async_tools: bool  # model keeps talking while a tool runs (D-TOOL)
    default_voice: str = "matthew"

    @property
    def is_nova_1(self) -> bool:
        return self.generation is Generation.NOVA_SONIC_1


NOVA_SONIC_1 = "amazon.nova-sonic-v1:0"
NOVA_2_SONIC = "amazon.nova-2-sonic-v1:0"
NOVA_2_5_SONIC = "amazon.nova-2-5-sonic"

MODELS: dict[str, ModelInfo] = {
    NOVA_SONIC_1: ModelInfo(NOVA_SONIC_1, Generation.NOVA_SONIC_1, SONIC1_VOICES, "flat", False, False, False),
    NOVA_2_SONIC: ModelInfo(NOVA_2_SONIC, Generation.NOVA_2, SONIC2_VOICES, "nested", True, True, True),
    NOVA_2_5_SONIC: ModelInfo(NOVA_2_5_SONIC, Generation.NOVA_2_5, SONIC2_VOICES, "nested", True, True, True),
}


def model_info(model_id: str) -> ModelInfo:
    """Return the catalogue entry for ``model_id``.

    Accepts the bare ids above. Region-prefixed inference-profile ids (``us.amazon.nova-2-sonic-v1:0``)
    are not supported by the service for Nova 2 (protocol.md §0) and are rejected here too.
    """
    try:
        return MODELS[model_id]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise UnknownModelError(f"unknown Nova Sonic model id {model_id!r}; known: {known}") from None
