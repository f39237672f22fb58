"""One LiveKit *generation*: the streams the agent framework reads for one stretch of assistant
output (``llm.GenerationCreatedEvent``: a message stream and a function stream).

A generation holds at most one ``llm.MessageGeneration`` (text + audio of one assistant message,
created lazily at the first text or audio) and any number of function calls. Closing it closes
every stream, which is what lets the framework finish the speech, run the tools and send their
results; so *when* a generation closes is the plugin's main decision (see
``novasonic.livekit.session``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Literal

from livekit import rtc
from livekit.agents import llm, utils

__all__ = ["Generation"]

_MODALITIES: list[Literal["text", "audio"]] = ["audio", "text"]


class Generation:
    """The channels of one generation. Sends after ``close()`` are dropped."""

    def __init__(self, *, turn_index: int, stream_index: int) -> None:
        self.response_id = f"nova-{uuid.uuid4().hex[:12]}"
        self.turn_index = turn_index
        self.stream_index = stream_index
        self.message_ch: utils.aio.Chan[llm.MessageGeneration] = utils.aio.Chan()
        self.function_ch: utils.aio.Chan[llm.FunctionCall] = utils.aio.Chan()
        self.message_id: str | None = None
        self._text_ch: utils.aio.Chan[str] | None = None
        self._audio_ch: utils.aio.Chan[rtc.AudioFrame] | None = None
        self.text = ""
        self.function_calls: list[llm.FunctionCall] = []
        self.audio_ms = 0.0
        self.created_at = time.time()
        self.first_token_at: float | None = None
        self.completed_at: float | None = None
        self.closed = False
        #: Set once the framework was given this generation (event emitted / future resolved).
        self.announced = False
        self.event: llm.GenerationCreatedEvent | None = None

    def make_event(self, *, user_initiated: bool) -> llm.GenerationCreatedEvent:
        self.event = llm.GenerationCreatedEvent(
            message_stream=self.message_ch,
            function_stream=self.function_ch,
            user_initiated=user_initiated,
            response_id=self.response_id,
        )
        return self.event

    # --- content ---------------------------------------------------------------------------------

    def _ensure_message(self) -> None:
        if self.message_id is not None or self.closed:
            return
        self.message_id = f"{self.response_id}-msg"
        self._text_ch = utils.aio.Chan()
        self._audio_ch = utils.aio.Chan()
        modalities: asyncio.Future[list[Literal["text", "audio"]]] = asyncio.get_running_loop().create_future()
        modalities.set_result(list(_MODALITIES))
        self.message_ch.send_nowait(
            llm.MessageGeneration(
                message_id=self.message_id,
                text_stream=self._text_ch,
                audio_stream=self._audio_ch,
                modalities=modalities,
            )
        )

    @property
    def has_message(self) -> bool:
        return self.message_id is not None

    def push_text(self, text: str) -> str:
        """Stream ``text`` (a sentence of SPECULATIVE text); returns the piece actually sent
        (a space is put between sentences so the transcript reads naturally)."""
        if self.closed or not text:
            return ""
        self._ensure_message()
        piece = text if not self.text or self.text[-1].isspace() or text[0].isspace() else " " + text
        self.text += piece
        if self.first_token_at is None:
            self.first_token_at = time.time()
        assert self._text_ch is not None
        self._text_ch.send_nowait(piece)
        return piece

    def push_audio(self, pcm: bytes, sample_rate: int) -> None:
        if self.closed or not pcm:
            return
        self._ensure_message()
        if self.first_token_at is None:
            self.first_token_at = time.time()
        samples = len(pcm) // 2
        self.audio_ms += samples * 1000.0 / sample_rate
        assert self._audio_ch is not None
        self._audio_ch.send_nowait(
            rtc.AudioFrame(data=pcm, sample_rate=sample_rate, num_channels=1, samples_per_channel=samples)
        )

    def push_function_call(self, call: llm.FunctionCall) -> None:
        if self.closed:
            return
        self.function_calls.append(call)
        self.function_ch.send_nowait(call)

    # --- end -------------------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.completed_at = time.time()
        for ch in (self._text_ch, self._audio_ch, self.message_ch, self.function_ch):
            if ch is not None and not ch.closed:
                ch.close()
