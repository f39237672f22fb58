"""Per-connection, per-stream record of what happened, for test assertions and the capture tool.

Each stream gets a :class:`StreamJournal`: the request (model, key id — never the signature or a
token), the SigV4 verdicts, every decoded client event with its time on the scaled clock, every
frame the server sent (events, in-stream exceptions, transport actions such as RST_STREAM), and
how the stream ended.

Audio is user voice and large: an ``audioInput`` is journalled as a :class:`ClientEvent` whose
``event`` is kept only when ``keep_audio`` is set; ``n_bytes``/``duration_ms`` are always there.
The journal is bounded (``max_streams``) so a long-running server does not grow without limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from novasonic.events import AudioInput, AudioOutput, InputEvent, OutputEvent

__all__ = ["ClientEvent", "ServerFrame", "StreamJournal", "Journal"]


@dataclass(slots=True)
class ClientEvent:
    """One decoded client event. ``t`` is service seconds since the stream opened."""

    t: float
    name: str
    event: InputEvent | None
    n_bytes: int = 0
    """Decoded PCM bytes for audioInput (0 otherwise)."""
    verdict: str = "accepted"
    """``accepted`` or the broken rule's id (``first-content-not-system``, ...)."""
    seq: int = 0
    """Order among all of the stream's records, client and server together (``t`` ties at
    infinite speed, where service time does not advance)."""


@dataclass(slots=True)
class ServerFrame:
    """One thing the server sent or did. ``kind``: ``event`` | ``exception`` (modeled, in-stream) |
    ``error`` (unmodeled, in-stream) | ``http`` (HTTP-level error) | ``transport`` (RST_STREAM,
    GOAWAY, END_STREAM, corrupt frame) | ``fault`` (an injected fault fired; ``name`` is its spec)."""

    t: float
    kind: str
    name: str
    event: OutputEvent | None = None
    message: str | None = None
    n_bytes: int = 0
    seq: int = 0
    """Order among all of the stream's records, client and server together."""


@dataclass(slots=True)
class StreamJournal:
    index: int
    """Global order of the stream on this server (0, 1, ...): stream N of a multi-stream test."""
    connection_id: int
    stream_id: int
    model_id: str | None = None
    access_key_id: str | None = None
    region: str | None = None
    auth: str = "pending"
    """``ok``, ``anonymous`` (checks off) or the SignatureError reason."""
    chunks_verified: int = 0
    chunk_signature: str = "ok"
    """``ok`` or the chunk-chain failure reason."""
    status: int | None = None
    """HTTP status sent (200 once the first event arrived; an error status for HTTP-level errors)."""
    client: list[ClientEvent] = field(default_factory=list)
    server: list[ServerFrame] = field(default_factory=list)
    input_finished: bool = False
    """The client sent the empty signed frame / END_STREAM."""
    end: str | None = None
    """How the stream ended: ``completed``, ``exception:<member>``, ``error:<code>``,
    ``http:<status>``, ``client-reset``, ``connection-lost``, ``fault:<action>``, ``server-shutdown``."""
    keep_audio: bool = False
    _seq: int = 0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    # --- recording --------------------------------------------------------------------------
    def record_client(self, t: float, event: InputEvent, verdict: str = "accepted") -> None:
        n = event.pcm_len if isinstance(event, AudioInput) else 0
        kept = event if (self.keep_audio or not isinstance(event, AudioInput)) else None
        self.client.append(ClientEvent(t, event.EVENT_NAME, kept, n, verdict, self._next()))

    def record_rejected(self, t: float, name: str, verdict: str) -> None:
        """A client event that could not be decoded or parsed (no typed event exists): ``name`` is
        its wire name when known (``connectionEnd``), else ``"(unparsable)"``; ``verdict`` the rule."""
        self.client.append(ClientEvent(t, name, None, 0, verdict, self._next()))

    def record_server_event(self, t: float, event: OutputEvent) -> None:
        n = event.pcm_len if isinstance(event, AudioOutput) else 0
        name = event.EVENT_NAME or getattr(event, "name", "unknown")
        self.server.append(ServerFrame(t, "event", name, event, None, n, self._next()))

    def record_server(self, t: float, kind: str, name: str, message: str | None = None) -> None:
        self.server.append(ServerFrame(t, kind, name, None, message, 0, self._next()))

    # --- reading ----------------------------------------------------------------------------
    def client_events(self, name: str | None = None) -> list[InputEvent]:
        """Client events (audio only if ``keep_audio``), optionally of one wire name."""
        return [c.event for c in self.client if c.event is not None and (name is None or c.name == name)]

    def client_names(self) -> list[str]:
        return [c.name for c in self.client]

    def server_events(self, name: str | None = None) -> list[OutputEvent]:
        return [s.event for s in self.server if s.event is not None and (name is None or s.name == name)]

    def server_names(self) -> list[str]:
        return [s.name for s in self.server]

    @property
    def audio_in_bytes(self) -> int:
        return sum(c.n_bytes for c in self.client)

    @property
    def audio_in_frames(self) -> int:
        return sum(1 for c in self.client if c.name == "audioInput")

    @property
    def audio_out_bytes(self) -> int:
        return sum(s.n_bytes for s in self.server)

    @property
    def exceptions(self) -> list[ServerFrame]:
        return [s for s in self.server if s.kind in ("exception", "error")]

    def summary(self) -> dict[str, Any]:
        """A one-line-per-stream view (also used for the server log)."""
        return {
            "index": self.index,
            "conn": self.connection_id,
            "stream": self.stream_id,
            "model": self.model_id,
            "auth": self.auth,
            "status": self.status,
            "client_events": len(self.client),
            "audio_in_ms": round(self.audio_in_bytes / 32, 1),  # assumes 16 kHz 16-bit mono
            "server_events": len(self.server),
            "end": self.end,
        }


class Journal:
    """All streams of a server, in the order they opened (bounded to ``max_streams``)."""

    def __init__(self, *, max_streams: int = 10_000, keep_audio: bool = False) -> None:
        self._streams: deque[StreamJournal] = deque(maxlen=max_streams)
        self._next_index = 0
        self.keep_audio = keep_audio

    def open_stream(self, connection_id: int, stream_id: int) -> StreamJournal:
        sj = StreamJournal(self._next_index, connection_id, stream_id, keep_audio=self.keep_audio)
        self._next_index += 1
        self._streams.append(sj)
        return sj

    @property
    def streams(self) -> list[StreamJournal]:
        return list(self._streams)

    @property
    def opened(self) -> int:
        """Streams opened since start (including ones dropped from the bounded list)."""
        return self._next_index

    def __iter__(self) -> Iterator[StreamJournal]:
        return iter(list(self._streams))

    def __len__(self) -> int:
        return len(self._streams)

    def __getitem__(self, i: int) -> StreamJournal:
        return list(self._streams)[i]

    def last(self) -> StreamJournal:
        if not self._streams:
            raise IndexError("no stream has been opened on this server yet")
        return self._streams[-1]
