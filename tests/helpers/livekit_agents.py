"""Agents and journal readers shared by the LiveKit plugin tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from livekit.agents import Agent, ChatContext, ToolError, function_tool

from fakeserver import StreamJournal

__all__ = ["WeatherAgent", "PlainAgent", "text_blocks", "tool_results", "WEATHER"]

WEATHER = {"Paris": ("sunny", 21), "Rome": ("sunny", 26), "Lisbon": ("sunny", 24)}


class PlainAgent(Agent):
    def __init__(self, instructions: str = "You are a test assistant.", *, chat_ctx: ChatContext | None = None,
                 greeting: str | None = None) -> None:
        super().__init__(instructions=instructions, chat_ctx=chat_ctx)
        self.greeting = greeting

    async def on_enter(self) -> None:
        if self.greeting:
            self.session.generate_reply(instructions=self.greeting)


class WeatherAgent(Agent):
    """``get_weather(location)``; ``mode`` picks what it returns: ``dict`` (a dict), ``text``
    (a plain string), ``error`` (raises ToolError). ``gate``: an event the tool waits for (a slow
    tool)."""

    def __init__(self, *, mode: str = "dict", gate: asyncio.Event | None = None,
                 instructions: str = "You are a weather assistant.") -> None:
        super().__init__(instructions=instructions)
        self.mode = mode
        self.gate = gate
        self.calls: list[str] = []
        self.started = asyncio.Event()

    @function_tool
    async def get_weather(self, location: str) -> Any:
        """Current weather for a city."""
        self.calls.append(location)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        sky, celsius = WEATHER.get(location, ("cloudy", 15))
        if self.mode == "error":
            raise ToolError(f"no weather station in {location}")
        if self.mode == "text":
            return f"{sky}, {celsius} degrees"
        return {"location": location, "sky": sky, "celsius": celsius}


def text_blocks(j: StreamJournal) -> list[tuple[str, bool, str]]:
    """(role, interactive, text) of every TEXT block the client sent on a stream."""
    out: list[tuple[str, bool, str]] = []
    current: list[Any] | None = None
    for c in j.client:
        ev = c.event
        if c.name == "contentStart" and str(ev.type) == "TEXT":
            current = [str(ev.role), bool(ev.interactive), ""]
        elif c.name == "textInput" and current is not None:
            current[2] += ev.content
        elif c.name == "contentEnd" and current is not None:
            out.append((current[0], current[1], current[2]))
            current = None
    return out


def tool_results(j: StreamJournal) -> list[tuple[str, Any]]:
    """(toolUseId, decoded content) of every toolResult the client sent on a stream."""
    ids = {c.event.content_name: c.event.tool_result_input_configuration.tool_use_id
           for c in j.client if c.name == "contentStart" and str(c.event.type) == "TOOL"}
    return [(ids.get(ev.content_name, "?"), json.loads(ev.content)) for ev in j.client_events("toolResult")]
