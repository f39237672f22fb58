"""``Recorder``: one scenario's fake server, driven clock and lock-step client streams.

What the *client* sends is what a LiveKit agent with the AWS realtime plugin sends
(``AgentProfile``, checked against livekit-plugins-aws 1.8.9 ``realtime_model.py``/``events.py``):

- ``sessionStart`` with ``inferenceConfiguration`` 1024 / 0.9 / 0.7 and, on Nova 2,
  ``turnDetectionConfiguration.endpointingSensitivity`` MEDIUM (flat ``endpointingSensitivity``
  on Nova Sonic 1, as LiveKit sends it for v1 only);
- ``promptStart`` with text, audio (voice ``tiffany``, 24 kHz LPCM) and tool-use output
  configurations, and the ``get_weather`` tool spec in the tool scenarios;
- the SYSTEM text block, then, on a resumed stream, the chat history (USER first, alternating);
- one interactive AUDIO block (16 kHz) kept open for the whole stream, streaming 32 ms frames
  continuously: silence between utterances, as a live microphone does;
- tool results as TOOL content blocks (a JSON object string), interactive text as its own
  USER TEXT block while the microphone is paused for those three events;
- the documented shutdown (audio ``contentEnd``, ``promptEnd``, ``sessionEnd``, end of input).

Names (``promptName``/``contentName``) are UUIDs, as LiveKit uses, drawn from a seeded generator;
the server's ids come from the fake's seeded id generator: one seed fixes the whole cassette.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from fakeserver import FakeNovaSonic
from fakeserver.faults import Fault
from fakeserver.journal import StreamJournal
from fakeserver.responders import Script, ScriptedConfig, ScriptedResponder
from novasonic.builder import Message
from novasonic.events import Tool
from novasonic.models import model_info
from novasonic.rules import Limits, Turn
from novasonic.transport import client_from_info

from .clock import DrivenClock
from .lockstep import GateResponder, LockstepConversation, ToolAnswer

__all__ = [
    "AgentProfile",
    "Recorder",
    "GET_WEATHER",
    "LIVEKIT_SYSTEM_PROMPT",
    "seeded_uuid_names",
    "Recorded",
    "history_from_turns",
]

#: The tool every tool scenario offers (LiveKit sends ``inputSchema.json`` as a JSON string).
GET_WEATHER = Tool.define(
    "get_weather",
    "Get the current weather for a location.",
    {"type": "object", "properties": {"location": {"type": "string", "description": "City name"}},
     "required": ["location"]},
)

LIVEKIT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Keep your answers short and natural for spoken "
    "conversation. Use the tools you are given when they help."
)


def seeded_uuid_names(seed: str) -> Callable[[], str]:
    """UUID4-shaped names from a seeded generator (what LiveKit sends, but repeatable)."""
    rng = random.Random(seed)
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class AgentProfile:
    """What the client sends at the start of a stream (see the module doc)."""

    model_id: str
    voice: str = "tiffany"
    output_rate: int = 24000
    input_rate: int = 16000
    endpointing: str = "MEDIUM"
    system_prompt: str = LIVEKIT_SYSTEM_PROMPT
    tools: tuple[Tool, ...] = ()

    def conversation_kwargs(self) -> dict[str, Any]:
        return {
            "voice": self.voice,
            "output_sample_rate": self.output_rate,
            "input_sample_rate": self.input_rate,
            "endpointing": self.endpointing,
            "tools": self.tools,
            "system_prompt": self.system_prompt,
        }


def history_from_turns(turns: Iterable[Turn]) -> list[Message]:
    """The chat context a client resends on a new stream: each turn's user transcript and the
    assistant's text (SPECULATIVE, what LiveKit keeps), empty ones dropped, consecutive
    same-role messages merged; the builder then enforces USER first (protocol.md §1.6)."""
    msgs: list[Message] = []
    for turn in turns:
        for role, text in (("user", turn.user_text), ("assistant", turn.assistant_speculative or turn.assistant_final)):
            text = text.strip()
            if not text:
                continue
            if msgs and msgs[-1].role.value.lower() == role:
                prev = msgs.pop()
                text = f"{prev.text} {text}"
            msgs.append(Message.user(text) if role == "user" else Message.assistant(text))
    return msgs


@dataclass(frozen=True)
class Recorded:
    """What a scenario run produced: the server's journals (stream order) and the credentials
    the client signed with (the writer refuses any line that contains them)."""

    journals: list[StreamJournal]
    secrets: tuple[str, ...]


@dataclass
class Recorder:
    """A fake server with the scripted responder on a driven clock, and lock-step streams.

    Turns of the script continue across the streams (``share_turns_across_streams``): a client
    that resumes on a new stream continues the same conversation.
    """

    seed: int
    script: Script
    config: ScriptedConfig
    faults: Sequence[Fault | str] = ()
    limits: Limits | None = None
    timeout: float = 30.0
    fake: FakeNovaSonic = field(init=False)
    clock: DrivenClock = field(init=False)
    gate: GateResponder = field(init=False)
    client: Any = field(init=False, default=None)
    _next_stream: int = field(init=False, default=0)

    async def __aenter__(self) -> Recorder:
        self.clock = DrivenClock()
        self.gate = GateResponder(ScriptedResponder(self.script, self.config, share_turns_across_streams=True), self.clock)
        overrides: dict[str, Any] = {"seed": self.seed, "keep_audio": True, "speed": self.clock.speed}
        if self.limits is not None:
            overrides["limits"] = self.limits
        self.fake = FakeNovaSonic(responder=self.gate, faults=tuple(self.faults), **overrides)
        # The server reads time from this clock (set before start: the handler takes it then).
        self.fake.clock = self.clock
        await self.fake.start()
        try:
            self.client = await client_from_info(self.fake.info())
        except BaseException:
            await self.fake.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if self.client is not None:
                try:
                    await self.client.close()
                except Exception:
                    pass
        finally:
            await self.fake.close()

    def conversation(
        self,
        profile: AgentProfile,
        *,
        history: Iterable[Message] = (),
        answer_tool: ToolAnswer | None = None,
        tool_latency_ms: float = 0.0,
    ) -> LockstepConversation:
        """The next stream (index 0, 1, … in order), as ``profile``'s client opens it."""
        index = self._next_stream
        self._next_stream += 1
        model_info(profile.model_id)  # a clear error for an unknown model id
        return LockstepConversation(
            self.fake, self.gate, self.clock, index, profile.model_id,
            answer_tool=answer_tool, tool_latency_ms=tool_latency_ms, history=list(history),
            client=self.client, timeout=self.timeout,
            name_factory=seeded_uuid_names(f"{self.seed}:names:{index}"),
            **profile.conversation_kwargs(),
        )

    def journals(self) -> list[StreamJournal]:
        return sorted(self.fake.journal.streams, key=lambda sj: sj.index)

    def recorded(self) -> Recorded:
        return Recorded(self.journals(), (self.fake.access_key_id, self.fake.secret_access_key))
