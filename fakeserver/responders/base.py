"""The responder seam: "what does the service send back" (design §6, httpx MockTransport style).

The stream handler owns the wire, the signatures, the protocol rules, the limits, the faults and
the journal. For each accepted client event it calls the stream's responder, which answers by
calling ``ctx.emit(output_event)``. Responders never see bytes, frames or HTTP/2.

::

    class Responder(Protocol):
        def open_stream(self, ctx: StreamContext) -> StreamResponder: ...

    class StreamResponder(Protocol):
        async def on_event(self, event, facts) -> None: ...   # quick; spawn long work with ctx.spawn
        async def on_input_end(self) -> None: ...             # client finished; return when output is done
        async def aclose(self) -> None: ...                    # stream is over (any reason): stop
        # optional hooks (looked up with getattr):
        async def on_open(self) -> None: ...                   # admitted, nothing read yet (HTTP errors here)
        async def on_rejected(self, event, rule, message) -> None: ...  # the rules rejected a client event

Besides ``emit`` and ``fail``, the context can end a stream every other way the service does:
``error_frame`` (unmodeled error), ``http_error`` (before the response headers only),
``transport`` (rst, goaway, end-stream, close, reset) and ``emit(event, corrupt="message")``.

Time: responders wait with ``ctx.sleep(service_seconds)`` (the scaled clock) or, better,
``ctx.wait_audio_ms(ms)`` (input-audio time: how much user audio has arrived), which makes
behaviour identical at any speed and on any machine as long as the client streams audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from novasonic.events import InputEvent, OutputEvent
from novasonic.models import ModelInfo
from novasonic.rules import Fact

from ..clock import ScaledClock

__all__ = ["StreamContext", "Responder", "StreamResponder"]


class StreamContext(Protocol):
    """What a responder may see and do for one stream (implemented by the handler)."""

    model: ModelInfo
    clock: ScaledClock
    session_id: str
    """The service-chosen session id echoed in every output event."""
    stream_index: int
    """Global order of this stream on the server (0, 1, ...)."""

    @property
    def prompt_name(self) -> str | None: ...

    @property
    def audio_ms(self) -> float:
        """Input audio received so far on this stream, in ms at the audio block's rate."""
        ...

    @property
    def closed(self) -> bool: ...

    @property
    def input_ended(self) -> bool:
        """The client ended its input (empty signed frame or END_STREAM)."""
        ...

    @property
    def end_reason(self) -> str | None:
        """How the stream ended (``completed``, ``exception:<member>``, ...); None while it runs."""
        ...

    def new_id(self) -> str:
        """A fresh service-side id (completionId, contentId, toolUseId); deterministic per stream."""
        ...

    async def emit(self, event: OutputEvent, *, corrupt: str | None = None) -> bool:
        """Send one output event; False (and nothing sent) once the stream is closed.
        ``corrupt="prelude"|"message"``: send it with that CRC broken, then end the stream."""
        ...

    async def fail(self, member: str, message: str, **extra: Any) -> None:
        """End the stream with an in-stream modeled exception (``validationException``, ...)."""
        ...

    async def error_frame(self, code: str, message: str) -> None:
        """End the stream with an unmodeled error message (``:error-code``/``:error-message``)."""
        ...

    async def http_error(self, error_type: str, message: str | None = None, *, status: int | None = None) -> bool:
        """Answer with an HTTP error instead of the event stream; False once headers were sent."""
        ...

    async def transport(self, action: str, code: int | None = None, *, how: str | None = None) -> None:
        """End the stream at the transport level: rst, goaway, end-stream, close or reset."""
        ...

    async def sleep(self, service_seconds: float) -> None: ...

    async def wait_audio_ms(self, ms: float) -> bool:
        """Wait until ``audio_ms >= ms``; False if the stream closes or input ends first."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as part of this stream: cancelled when the stream ends, errors reported."""
        ...


class StreamResponder(Protocol):
    async def on_event(self, event: InputEvent, facts: Sequence[Fact]) -> None: ...

    async def on_input_end(self) -> None: ...

    async def aclose(self) -> None: ...


class Responder(Protocol):
    def open_stream(self, ctx: StreamContext) -> StreamResponder: ...
