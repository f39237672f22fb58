"""Run a LiveKit ``AgentSession`` with this project's ``novasonic.livekit.RealtimeModel`` against a
``FakeNovaSonic`` — real parts end to end: the agent framework, the plugin, ``novasonic.session``,
the stock SDK client on CRT, loopback TLS + HTTP/2, the fake server. No room, no LiveKit server:
the microphone and speaker are ``novasonic.livekit.testing``'s.

::

    async with FakeNovaSonic(script=script, speed=math.inf) as fake:
        async with AgentHarness(fake, WeatherAgent()) as h:
            await h.say(1500)
            await h.wait_for(lambda: h.assistant_messages(), what="an answer")
        assert h.errors == []

The harness records the AgentSession's events (``h.events``: conversation items, tool
executions, transcriptions, errors, metrics, states) and the realtime session's errors. Every
wait is bounded and fails with what happened so far.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from livekit.agents import Agent, AgentSession, llm
from livekit.agents.voice import events as ev

from fakeserver import FakeNovaSonic
from novasonic.livekit import RealtimeModel, RealtimeSession
from novasonic.session import StaticCredentials

from .livekit_io import MicInput, SpeakerOutput, TranscriptOutput, speak

__all__ = ["AgentHarness", "model_for", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 30.0


def model_for(fake: FakeNovaSonic, **kw: Any) -> RealtimeModel:
    """A ``RealtimeModel`` pointed at ``fake`` by configuration only (endpoint, CA, credentials)."""
    kw.setdefault("credentials", StaticCredentials(fake.access_key_id, fake.secret_access_key, fake.session_token))
    kw.setdefault("region", fake.region)
    factory = kw.pop("factory", RealtimeModel)
    return factory(endpoint=fake.endpoint, ca_file=fake.ca_file, **kw)


class AgentHarness:
    def __init__(self, fake: FakeNovaSonic, agent: Agent, *, model: llm.RealtimeModel | None = None,
                 mic: MicInput | None | bool = True, mic_speed: float = 20.0,
                 output: SpeakerOutput | None = None, timeout: float = DEFAULT_TIMEOUT,
                 session_kw: dict[str, Any] | None = None, **model_kw: Any) -> None:
        self.fake = fake
        self.agent = agent
        self.model: llm.RealtimeModel = model or model_for(fake, **model_kw)
        if mic is True:
            mic = MicInput(speed=mic_speed)
        self.mic: MicInput | None = mic or None
        self.output = output or SpeakerOutput()
        self.transcript = TranscriptOutput()
        self.timeout = timeout
        kw = {"vad": None, "aec_warmup_duration": None, "turn_handling": {"turn_detection": "realtime_llm"},
              **(session_kw or {})}
        self.session: AgentSession = AgentSession(llm=self.model, **kw)
        self.events: list[Any] = []
        self.rt_errors: list[llm.RealtimeModelError] = []
        self._changed = asyncio.Event()
        self._rt: RealtimeSession | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> AgentHarness:
        s = self.session
        if self.mic is not None:
            s.input.audio = self.mic
        s.output.audio = self.output
        s.output.transcription = self.transcript
        for name in ("conversation_item_added", "function_tools_executed", "user_input_transcribed", "error",
                     "metrics_collected", "agent_state_changed", "user_state_changed", "speech_created", "close"):
            s.on(name, self._record)
        await asyncio.wait_for(s.start(self.agent), self.timeout)
        rt = self.rt
        if self.mic is not None and isinstance(rt, RealtimeSession):
            self.mic.backlog = lambda: rt.buffered_audio_ms if not rt.session.closed else 0.0
        rt.on("error", self._rt_error)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self.mic is not None:
            self.mic.close()
        try:
            await asyncio.wait_for(self.session.aclose(), self.timeout)
        finally:
            await asyncio.wait_for(self.model.aclose(), self.timeout)

    @property
    def rt(self) -> RealtimeSession:
        """The plugin's session of the current agent activity (the last one after close). With
        another realtime model (the upstream plugin), its session object."""
        activity = self.session._activity
        if activity is not None and activity.realtime_llm_session is not None:
            self._rt = activity.realtime_llm_session  # type: ignore[assignment]
        assert self._rt is not None, "no realtime session yet"
        return self._rt

    # --- recording -------------------------------------------------------------------------------

    def _record(self, event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    def _rt_error(self, error: llm.RealtimeModelError) -> None:
        self.rt_errors.append(error)
        self._changed.set()

    def of[T](self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    def items(self, role: str | None = None) -> list[llm.ChatMessage]:
        out = [e.item for e in self.of(ev.ConversationItemAddedEvent) if isinstance(e.item, llm.ChatMessage)]
        return [m for m in out if role is None or m.role == role]

    def assistant_messages(self) -> list[llm.ChatMessage]:
        return self.items("assistant")

    def assistant_texts(self) -> list[str]:
        return [m.text_content or "" for m in self.assistant_messages()]

    def user_texts(self) -> list[str]:
        return [m.text_content or "" for m in self.items("user")]

    def tool_calls(self) -> list[llm.FunctionCall]:
        return [c for e in self.of(ev.FunctionToolsExecutedEvent) for c in e.function_calls]

    def tool_outputs(self) -> list[llm.FunctionCallOutput]:
        return [o for e in self.of(ev.FunctionToolsExecutedEvent) for o in e.function_call_outputs]

    def errors(self) -> list[ev.ErrorEvent]:
        return self.of(ev.ErrorEvent)

    def states(self) -> list[str]:
        return [e.new_state for e in self.of(ev.AgentStateChangedEvent)]

    def summary(self) -> list[str]:
        out = []
        for e in self.events:
            if isinstance(e, ev.ConversationItemAddedEvent) and isinstance(e.item, llm.ChatMessage):
                out.append(f"{e.item.role}:{(e.item.text_content or '')[:40]!r}{' (interrupted)' if e.item.interrupted else ''}")
            elif isinstance(e, ev.FunctionToolsExecutedEvent):
                out.append(f"tools:{[c.name for c in e.function_calls]}")
            elif isinstance(e, ev.ErrorEvent):
                out.append(f"error:{e.error!r}"[:160])
            elif isinstance(e, ev.AgentStateChangedEvent):
                out.append(f"agent:{e.new_state}")
        streams = [s.summary() for s in self.fake.journal.streams]
        return out + [f"streams: {streams}"]

    # --- waiting ---------------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], Any], *, what: str = "condition",
                       timeout: float | None = None) -> None:
        async def loop() -> None:
            while not predicate():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.01)

        try:
            await asyncio.wait_for(loop(), timeout or self.timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; {self.summary()}") from None

    async def say(self, ms: float, *, seed: int = 1, at_ms: float | None = None) -> None:
        """The user speaks ``ms`` of (synthetic) speech; returns once it has been played."""
        assert self.mic is not None, "no microphone"
        await asyncio.wait_for(speak(self.mic, ms, seed=seed, at_ms=at_ms), self.timeout)
