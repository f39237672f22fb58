"""The session's turn view and conversation record, over every stream of a session.

``TurnView`` feeds each stream's output events to that stream's ``novasonic.rules.OutputTracker``
(the one definition of turns, barge-in and tool calls) and turns its records into session events
(``novasonic.session.events``) with session-wide turn indexes. It also keeps what a recycle or a
restart needs:

- the conversation: messages given at start / ``update_history``, typed texts as they were sent,
  and every turn (user transcript or typed text, then the assistant's FINAL text, else its
  SPECULATIVE text). ``history()`` gives it as ``novasonic.builder.Message`` items; the builder's
  ``prepare_history`` then enforces the service's rules (first USER, alternation, limits) when
  the next stream starts. Tool calls are not part of it: chat history holds USER/ASSISTANT text
  only (protocol.md §1.6);
- the quiet-point facts: last assistant/user output time, open assistant AUDIO blocks, user
  speech in progress, tool calls owed on the current stream.

Sans-IO: the caller passes the time (``now``) with each event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from ..builder import Message, MessageLike, _as_message
from ..events import AudioOutput, ContentType, OutputContentEnd, OutputContentStart, OutputEvent, Role, UsageEvent
from ..rules import OutputTracker, Record, TokenUsage, Turn
from ..rules import output_tracker as R
from . import events as E

__all__ = ["TurnView"]


@dataclass(slots=True)
class _StreamTurns:
    index: int
    tracker: OutputTracker
    offset: int
    ended: bool = False


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?")


class TurnView:
    def __init__(self, *, output_sample_rate: int = 24000) -> None:
        self.output_sample_rate = output_sample_rate
        self._streams: dict[int, _StreamTurns] = {}
        self._current: _StreamTurns | None = None
        self._next_offset = 0
        self._generation_started: set[int] = set()
        #: ("msg", Message) | ("typed", str) | ("resent", str) | ("turn", stream_index, local_index)
        self._entries: list[tuple] = []
        self.session_usage = TokenUsage()
        self.last_output_at: float | None = None
        self.user_speaking = False
        self._open_audio: set[str] = set()

    # --- streams --------------------------------------------------------------------------------

    def begin_stream(self, stream_index: int) -> None:
        st = _StreamTurns(stream_index, OutputTracker(default_output_sample_rate=self.output_sample_rate),
                          self._next_offset)
        self._streams[stream_index] = st
        self._current = st
        self._open_audio.clear()
        self.user_speaking = False
        self.last_output_at = None

    def end_stream(self, stream_index: int, cut_by: str) -> list[E.SessionEvent]:
        """The stream is over: its turn in progress ends (``TurnEnded(cut_by=...)``)."""
        st = self._streams.get(stream_index)
        if st is None or st.ended:
            return []
        st.ended = True
        out = self._convert(st, st.tracker.close(), None, cut_by=cut_by)
        self._next_offset = max(self._next_offset, st.offset + len(st.tracker.turns))
        if self._current is st:
            self._current = None
            self._open_audio.clear()
            self.user_speaking = False
        return out

    # --- output ---------------------------------------------------------------------------------

    def feed(self, stream_index: int, event: OutputEvent, now: float) -> list[E.SessionEvent]:
        st = self._streams.get(stream_index)
        if st is None or st.ended:
            return []
        if st is self._current:
            self._note(event, now)
        return self._convert(st, st.tracker.feed(event), event)

    def _note(self, event: OutputEvent, now: float) -> None:
        if not isinstance(event, UsageEvent):
            self.last_output_at = now
        if isinstance(event, OutputContentStart) and event.type == ContentType.AUDIO and event.role != Role.USER:
            self._open_audio.add(event.content_id)
        elif isinstance(event, OutputContentEnd):
            self._open_audio.discard(event.content_id)

    def _convert(self, st: _StreamTurns, records: list[Record], event: OutputEvent | None,
                 cut_by: str | None = None) -> list[E.SessionEvent]:
        out: list[E.SessionEvent] = []
        si = st.index
        for rec in records:
            if isinstance(rec, R.TurnStarted):
                self._entries.append(("turn", si, rec.turn_index))
                out.append(E.TurnStarted(stream_index=si, turn_index=st.offset + rec.turn_index))
            elif isinstance(rec, R.TurnEnded):
                turn = dataclasses.replace(rec.turn, index=st.offset + rec.turn.index)
                out.append(E.TurnEnded(stream_index=si, turn=turn, cut_by=cut_by))
            elif isinstance(rec, R.UserSpeechStarted):
                if st is self._current:
                    self.user_speaking = True
                out.append(E.UserSpeechStarted(stream_index=si, offset_ms=rec.offset_ms))
            elif isinstance(rec, R.UserSpeechEnded):
                if st is self._current:
                    self.user_speaking = False
                out.append(E.UserSpeechEnded(stream_index=si, offset_ms=rec.offset_ms,
                                             detection_offset_ms=rec.detection_offset_ms))
            elif isinstance(rec, R.UserTranscript):
                if st is self._current:
                    self.user_speaking = False
                out.append(E.UserTranscript(stream_index=si, turn_index=st.offset + rec.turn_index, text=rec.text,
                                            transcript=rec.transcript))
            elif isinstance(rec, R.AssistantText):
                out.extend(self._generation(si, st.offset + rec.turn_index))
                out.append(E.AssistantText(stream_index=si, turn_index=st.offset + rec.turn_index, stage=rec.stage,
                                           text=rec.text))
            elif isinstance(rec, R.AudioChunk):
                g = st.offset + rec.turn_index
                out.extend(self._generation(si, g))
                pcm = event.pcm if isinstance(event, AudioOutput) else b""
                out.append(E.AudioChunk(stream_index=si, turn_index=g, content_id=rec.content_id, pcm=pcm,
                                        sample_rate=rec.sample_rate_hertz, duration_ms=rec.duration_ms))
            elif isinstance(rec, R.AudioEnded):
                out.append(E.AudioEnded(stream_index=si, turn_index=st.offset + rec.turn_index,
                                        content_id=rec.content_id, stop_reason=rec.stop_reason,
                                        duration_ms=rec.duration_ms))
            elif isinstance(rec, R.ToolCallRequested):
                g = st.offset + rec.turn_index
                out.extend(self._generation(si, g))
                out.append(E.ToolCall(stream_index=si, turn_index=g, tool_use_id=rec.tool_use_id, name=rec.name,
                                      arguments=rec.arguments))
            elif isinstance(rec, R.BargeIn):
                out.append(E.BargeIn(stream_index=si, turn_index=st.offset + rec.turn_index, reason=rec.reason))
            elif isinstance(rec, R.Usage):
                self.session_usage = self.session_usage + rec.delta
                out.append(E.Usage(stream_index=si, delta=rec.delta, total=rec.total,
                                   session_total=self.session_usage))
            # CompletionStarted / CompletionEnded / ToolCallResolved: the raw ServiceEvent says it all
        return out

    def _generation(self, stream_index: int, turn_index: int) -> list[E.SessionEvent]:
        if turn_index in self._generation_started:
            return []
        self._generation_started.add(turn_index)
        return [E.GenerationStarted(stream_index=stream_index, turn_index=turn_index)]

    # --- tools ----------------------------------------------------------------------------------

    def tool_result_sent(self, stream_index: int, tool_use_id: str) -> None:
        st = self._streams.get(stream_index)
        if st is not None:
            st.tracker.tool_result_sent(tool_use_id)

    @property
    def owed_tool_calls(self) -> tuple[R.ToolCall, ...]:
        """Tool calls of the current stream whose result was not sent yet."""
        return self._current.tracker.pending_tool_calls if self._current else ()

    # --- quiet point ----------------------------------------------------------------------------

    def quiet(self, now: float, quiet_s: float) -> bool:
        """No assistant audio playing, no user speech, no tool result owed, and no output (other
        than usage) for ``quiet_s``."""
        if self._open_audio or self.user_speaking or self.owed_tool_calls:
            return False
        return self.last_output_at is None or now - self.last_output_at >= quiet_s

    # --- conversation ---------------------------------------------------------------------------

    def set_history(self, messages: Iterable[MessageLike]) -> None:
        """Replace the conversation with ``messages`` (validated: USER/ASSISTANT text)."""
        self._entries = [("msg", _as_message(m)) for m in messages]

    def add_typed(self, text: str, *, resent: bool = False) -> None:
        """Typed USER text as it was sent. ``resent``: text already in the conversation, sent
        again as input to a new stream (``unanswered_user_input``); it adds no message, it only
        keeps the service's echo of it from being counted twice."""
        self._entries.append(("resent" if resent else "typed", text))

    def unanswered_user_input(self) -> bool:
        """The conversation ends with user input that came in this session (speech or typed
        text) and got no assistant text. History given to ``set_history`` does not count."""
        for entry in reversed(self._entries):
            kind = entry[0]
            if kind == "msg":
                return False
            if kind == "typed":
                return True
            if kind == "turn":
                turn = self._turn(entry[1], entry[2])
                if turn is None:
                    continue
                if turn.assistant_text.strip():
                    return False
                if turn.user_text.strip():
                    return True
        return False

    def history(self) -> list[Message]:
        """The conversation so far, oldest first (unprepared: the builder applies the rules)."""
        out: list[Message] = []
        last_typed: str | None = None
        for entry in self._entries:
            kind = entry[0]
            if kind == "msg":
                out.append(entry[1])
                last_typed = None
            elif kind == "typed":
                out.append(Message.user(entry[1]))
                last_typed = entry[1]
            elif kind == "resent":
                last_typed = entry[1]
            else:
                turn = self._turn(entry[1], entry[2])
                if turn is None:
                    continue
                user = turn.user_text.strip()
                if user and (last_typed is None or _norm(user) != _norm(last_typed)):
                    out.append(Message.user(user))
                answer = turn.assistant_text.strip()
                if answer:
                    out.append(Message.assistant(answer))
                last_typed = None
        return out

    def _turn(self, stream_index: int, local_index: int) -> Turn | None:
        st = self._streams.get(stream_index)
        if st is None:
            return None
        turns = st.tracker.all_turns
        return turns[local_index] if local_index < len(turns) else None

    @property
    def turns(self) -> list[Turn]:
        """Every turn of the session (session-wide indexes), the one in progress last."""
        out = []
        for st in self._streams.values():
            out.extend(dataclasses.replace(t, index=st.offset + t.index) for t in st.tracker.all_turns)
        return out
