"""Rebinding: the recording's names and ids ↔ the ones of the live stream (design §4).

Two kinds of identifiers never compare literally between a cassette and a replay:

- **client names** (``promptName``, ``contentName``): each client chooses its own (UUIDs,
  counters). A recorded name is *bound* to the live client's name when the event that
  introduces it (``promptStart``, ``contentStart``) is matched; from then on the replay checks
  that the client keeps using the bound name, and every service event it emits carries the
  client's ``promptName``, not the recorded one.
- **service ids** (``sessionId``, ``completionId``, ``contentId``, ``toolUseId``): the replay
  emits either the recorded ids (``ids="recorded"``, the default: a replay is then greppable in
  the cassette) or fresh ones (``ids="fresh"``: a new id per recorded id, drawn from the stream's
  id generator, ``sessionId`` = the stream's session id). Either way the mapping is kept both
  ways, so the client's later references (the ``toolUseId`` of its toolResult) are mapped back
  to the recorded id before they are compared.

No I/O, no asyncio: a plain mapping object the matchers and the engine share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from novasonic.events import OutputEvent
from novasonic.events.output import UnknownOutputEvent

__all__ = ["IdMode", "Bindings", "SERVICE_ID_FIELDS"]

IdMode: TypeAlias = Literal["recorded", "fresh"]

#: Output-event fields holding service-chosen ids (python name, wire name).
SERVICE_ID_FIELDS: tuple[tuple[str, str], ...] = (
    ("session_id", "sessionId"),
    ("completion_id", "completionId"),
    ("content_id", "contentId"),
    ("tool_use_id", "toolUseId"),
)


class Bindings:
    """Recorded ↔ live names and ids of one replayed stream."""

    def __init__(self, ids: IdMode = "recorded", *, new_id: Callable[[], str] | None = None,
                 session_id: str | None = None) -> None:
        if ids not in ("recorded", "fresh"):
            raise ValueError(f"ids must be 'recorded' or 'fresh' (got {ids!r})")
        if ids == "fresh" and new_id is None:
            raise ValueError("ids='fresh' needs an id generator (new_id)")
        self.ids_mode: IdMode = ids
        self._new_id = new_id
        self._session_id = session_id
        self._prompt: dict[str, str] = {}
        self._prompt_back: dict[str, str] = {}
        self._content: dict[str, str] = {}
        self._content_back: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        self._ids_back: dict[str, str] = {}
        #: Recorded toolUseId → emitted toolUseId, in the order they were emitted.
        self.tool_ids: dict[str, str] = {}

    # --- client names -----------------------------------------------------------------------------
    def client_prompt(self, recorded: str) -> str | None:
        return self._prompt.get(recorded)

    def recorded_prompt(self, client: str) -> str | None:
        return self._prompt_back.get(client)

    def client_content(self, recorded: str) -> str | None:
        return self._content.get(recorded)

    def recorded_content(self, client: str) -> str | None:
        return self._content_back.get(client)

    def bind_prompt(self, recorded: str, client: str) -> None:
        self._prompt[recorded] = client
        self._prompt_back[client] = recorded

    def bind_content(self, recorded: str, client: str) -> None:
        old = self._content.get(recorded)
        if old is not None:
            self._content_back.pop(old, None)
        self._content[recorded] = client
        self._content_back[client] = recorded

    # --- service ids ------------------------------------------------------------------------------
    def out_id(self, field: str, recorded: str) -> str:
        """The id to emit for the recorded id ``recorded`` (allocated on first use)."""
        got = self._ids.get(recorded)
        if got is not None:
            return got
        if self.ids_mode == "recorded":
            live = recorded
        elif field == "session_id" and self._session_id is not None:
            live = self._session_id
        else:
            assert self._new_id is not None
            live = self._new_id()
        self._ids[recorded] = live
        self._ids_back.setdefault(live, recorded)
        if field == "tool_use_id":
            self.tool_ids[recorded] = live
        return live

    def emitted_id(self, recorded: str) -> str | None:
        """The id emitted for ``recorded`` so far (None: not emitted yet)."""
        return self._ids.get(recorded)

    def recorded_id(self, live: str) -> str | None:
        """The recorded id a live id stands for (None: the replay never emitted it)."""
        return self._ids_back.get(live)

    # --- output events ----------------------------------------------------------------------------
    def rebind_output(self, event: OutputEvent) -> OutputEvent:
        """``event`` as this stream emits it: the client's promptName, the live service ids."""
        if isinstance(event, UnknownOutputEvent):
            payload = self._rebind_payload(event.payload)
            return event if payload is event.payload else event.model_copy(update={"payload": payload})
        update: dict[str, Any] = {}
        prompt = getattr(event, "prompt_name", None)
        if isinstance(prompt, str):
            live = self._prompt.get(prompt)
            if live is not None and live != prompt:
                update["prompt_name"] = live
        for name, _wire in SERVICE_ID_FIELDS:
            value = getattr(event, name, None)
            if isinstance(value, str):
                live = self.out_id(name, value)
                if live != value:
                    update[name] = live
        return event.model_copy(update=update) if update else event

    def _rebind_payload(self, payload: dict[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        changed = False
        for key, value in payload.items():
            if not isinstance(value, str):
                continue
            live: str | None = None
            if key == "promptName":
                live = self._prompt.get(value)
            elif key == "contentName":
                live = self._content.get(value)
            else:
                for name, wire in SERVICE_ID_FIELDS:
                    if key == wire:
                        live = self.out_id(name, value)
            if live is not None and live != value:
                out[key] = live
                changed = True
        return out if changed else payload

    def __repr__(self) -> str:
        return (f"Bindings(ids={self.ids_mode!r}, prompts={self._prompt}, contents={len(self._content)}, "
                f"service_ids={len(self._ids)})")
