"""Event-stream frames <-> bytes, push style (protocol.md 4.2).

The byte layout, the CRCs and the header codec all come from
``smithy_aws_event_stream.events``; this module only adds what a push-driven
peer (an HTTP/2 server handing us DATA frames of arbitrary size) needs:

* :class:`FrameDecoder` buffers bytes, checks each 12-byte prelude as soon as it
  is complete (prelude CRC first, then smithy's length limits) so a corrupt or
  oversize length is refused before the body is buffered, then slices exactly
  ``total_length`` bytes and hands them to :meth:`Event.decode`, which checks the
  message CRC and decodes the headers.
* Every failure is a :class:`~novasonic.errors.FrameError` whose ``kind`` is one of
  ``prelude-crc``, ``message-crc``, ``truncated``, ``oversize``, ``headers``.

Sans-IO: no sockets, no asyncio.
"""

from __future__ import annotations

import struct
from binascii import crc32
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from io import BytesIO

from smithy_aws_event_stream.events import (
    HEADER_VALUE,
    MAX_HEADER_VALUE_BYTE_LENGTH,
    MAX_HEADERS_LENGTH,
    MAX_PAYLOAD_LENGTH,
    Event,
    EventHeaderEncoder,
    EventMessage,
    EventPrelude,
)
from smithy_aws_event_stream.exceptions import (
    ChecksumMismatch,
    EventError,
    InvalidHeadersLength,
    InvalidPayloadLength,
)

from ..errors import FrameError

__all__ = [
    "PRELUDE_LENGTH",
    "MIN_FRAME_LENGTH",
    "MAX_FRAME_LENGTH",
    "FrameDecoder",
    "encode_message",
    "decode_message",
    "wire_timestamp",
]

PRELUDE_LENGTH = 12
"""``total_length`` (u32) + ``headers_length`` (u32) + prelude CRC (u32)."""

MIN_FRAME_LENGTH = PRELUDE_LENGTH + 4
"""A frame with no headers and no payload: prelude plus the trailing message CRC."""

MAX_FRAME_LENGTH = MIN_FRAME_LENGTH + MAX_HEADERS_LENGTH + MAX_PAYLOAD_LENGTH
"""The largest frame smithy's limits allow (128 KiB of headers, 16 MiB of payload)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Everything smithy's header decoder can raise on hostile bytes whose CRC is
# nevertheless valid: unknown type code (KeyError), a fixed-size value cut short
# (struct.error), bad UTF-8 or a short UUID (ValueError), a timestamp outside
# datetime's range (ValueError/OverflowError/OSError), duplicates and length
# limits (smithy EventError).
_HEADER_DECODE_ERRORS = (EventError, KeyError, struct.error, ValueError, OverflowError, OSError)


class _PreludeAccepted(Exception):
    """Raised by :class:`_PreludeReader` when smithy asks for bytes past the prelude."""


class _PreludeReader:
    """A ``BytesReader`` that holds only the 12 prelude bytes.

    :meth:`Event.decode` reads the prelude, validates its CRC, builds an
    :class:`EventPrelude` (whose ``__post_init__`` enforces the size limits) and
    only then asks for the body. Reaching that read means smithy accepted the
    prelude, so the reader stops the decode there. This reuses smithy's checks
    without buffering the body.
    """

    def __init__(self, prelude: bytes) -> None:
        self._data = prelude
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if self._pos >= PRELUDE_LENGTH:
            raise _PreludeAccepted
        end = PRELUDE_LENGTH if size < 0 else min(self._pos + size, PRELUDE_LENGTH)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk


def _check_prelude(prelude: bytes, where: str) -> EventPrelude:
    """Validate a complete 12-byte prelude with smithy and return it."""
    total_length, headers_length, crc = struct.unpack("!III", prelude)
    try:
        Event.decode(_PreludeReader(prelude))
    except _PreludeAccepted:
        pass
    except ChecksumMismatch as exc:
        raise FrameError(
            f"{where}: prelude CRC check failed ({exc}; expected = value in the frame, "
            f"calculated = CRC32 of bytes 0-7); lengths not trusted",
            kind="prelude-crc",
        ) from exc
    except (InvalidHeadersLength, InvalidPayloadLength) as exc:
        raise FrameError(
            f"{where}: frame too large: total_length={total_length}, "
            f"headers_length={headers_length} ({exc})",
            kind="oversize",
        ) from exc
    else:  # pragma: no cover - smithy always reads past the prelude
        raise AssertionError("smithy Event.decode returned without reading the body")
    if headers_length > total_length - MIN_FRAME_LENGTH:
        raise FrameError(
            f"{where}: inconsistent prelude: total_length={total_length} cannot hold the "
            f"12-byte prelude, headers_length={headers_length} and the 4-byte message CRC",
            kind="headers",
        )
    return EventPrelude(total_length=total_length, headers_length=headers_length, crc=crc)


def wire_timestamp(value: datetime) -> datetime:
    """A datetime that smithy's encoder writes as the same millisecond ``value`` holds.

    A timestamp header carries integer milliseconds. smithy decodes them through a
    float and encodes with ``int(value.timestamp() * 1000)``, which truncates to one
    millisecond less for about 0.6 % of decoded values. Recover the exact millisecond
    and add half a millisecond so the truncation lands on it.
    """
    millis = round((value - _EPOCH) / timedelta(milliseconds=1))
    nudge = timedelta(microseconds=500 if millis >= 0 else -500)
    return _EPOCH + timedelta(milliseconds=millis) + nudge


def _encode_headers(headers: Mapping[str, HEADER_VALUE]) -> bytes:
    """Encode a decoded header mapping back to the exact bytes it came from."""
    encoder = EventHeaderEncoder()
    encoder.encode_headers(
        {k: wire_timestamp(v) if isinstance(v, datetime) else v for k, v in headers.items()}
    )
    return encoder.get_result()


def _decode_frame(frame: bytes, prelude: EventPrelude, where: str) -> EventMessage:
    """Decode exactly one frame whose prelude has already been validated."""
    try:
        event = Event.decode(BytesIO(frame))
    except ChecksumMismatch as exc:
        raise FrameError(
            f"{where}: message CRC check failed ({exc}; expected = value in the last 4 bytes, "
            f"calculated = CRC32 over the frame seeded with the prelude CRC)",
            kind="message-crc",
        ) from exc
    except _HEADER_DECODE_ERRORS as exc:
        raise FrameError(
            f"{where}: malformed header block ({type(exc).__name__}: {exc})", kind="headers"
        ) from exc
    if event is None:  # pragma: no cover - frame is never empty here
        raise FrameError(f"{where}: no frame", kind="truncated")
    message = event.message
    # smithy slices string/byte-array names and values without checking that the
    # declared length fits, so a length running past the header block decodes short
    # instead of failing. A well-formed block re-encodes to exactly its own bytes.
    header_block = frame[PRELUDE_LENGTH : PRELUDE_LENGTH + prelude.headers_length]
    try:
        reencoded = _encode_headers(message.headers)
    except _HEADER_DECODE_ERRORS as exc:
        raise FrameError(
            f"{where}: malformed header block ({type(exc).__name__}: {exc})", kind="headers"
        ) from exc
    if reencoded != header_block:
        raise FrameError(
            f"{where}: malformed header block: a name or value length runs past the "
            f"{prelude.headers_length}-byte header block (decoded headers re-encode to "
            f"{len(reencoded)} different bytes)",
            kind="headers",
        )
    return message


# --- fast path ---------------------------------------------------------------------------------
#
# Every frame of a session goes through this module twice on the fake server (outer signed frame,
# inner chunk), so the general path above (smithy's decoder behind a BytesIO, an exception to stop
# the prelude check, the header re-encode) dominated its CPU under load. The fast path below
# decodes the frames that are plainly well formed — both CRCs right, sizes within smithy's limits,
# only string / byte-array / timestamp headers, every length inside the header block, no
# duplicates, valid UTF-8 — into exactly the EventMessage smithy builds. Anything else returns
# None and goes through the checked path, which then gives the same result or the exact error.

_PRELUDE_STRUCT = struct.Struct("!III")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_ONE_MS = timedelta(milliseconds=1)


def _fast_prelude(buffer: bytes | bytearray) -> EventPrelude | None:
    """The prelude at the start of ``buffer`` (≥ 12 bytes) if smithy would accept it, else None."""
    total_length, headers_length, crc = _PRELUDE_STRUCT.unpack_from(buffer, 0)
    if (
        crc32(buffer[:8]) != crc
        or headers_length > MAX_HEADERS_LENGTH
        or total_length - headers_length - MIN_FRAME_LENGTH > MAX_PAYLOAD_LENGTH
        or headers_length > total_length - MIN_FRAME_LENGTH
    ):
        return None
    return EventPrelude(total_length=total_length, headers_length=headers_length, crc=crc)


def _fast_decode_frame(frame: bytes, prelude: EventPrelude) -> EventMessage | None:
    """Decode one complete frame (``len(frame) == prelude.total_length``) or return None."""
    end_of_message = len(frame) - 4
    if crc32(memoryview(frame)[8:end_of_message], prelude.crc) != _U32.unpack_from(frame, end_of_message)[0]:
        return None
    end = PRELUDE_LENGTH + prelude.headers_length
    pos = PRELUDE_LENGTH
    headers: dict[str, HEADER_VALUE] = {}
    try:
        while pos < end:
            key_end = pos + 1 + frame[pos]
            if key_end >= end:  # the key and the type byte must fit
                return None
            key = frame[pos + 1 : key_end].decode("utf-8")
            kind = frame[key_end]
            pos = key_end + 1
            value: HEADER_VALUE
            if kind == 7 or kind == 6:  # string, byte array
                if pos + 2 > end:
                    return None
                length = (frame[pos] << 8) | frame[pos + 1]
                value_end = pos + 2 + length
                if length > MAX_HEADER_VALUE_BYTE_LENGTH or value_end > end:
                    return None
                raw = frame[pos + 2 : value_end]
                value = raw.decode("utf-8") if kind == 7 else raw
                pos = value_end
            elif kind == 8:  # timestamp: ms since the epoch, decoded as smithy does
                if pos + 8 > end:
                    return None
                millis = _I64.unpack_from(frame, pos)[0]
                value = datetime.fromtimestamp(millis / 1000, tz=UTC)
                if round((value - _EPOCH) / _ONE_MS) != millis:  # would not re-encode to itself
                    return None
                pos += 8
            else:
                return None
            if key in headers:
                return None
            headers[key] = value
    except (UnicodeDecodeError, ValueError, OverflowError, OSError):
        return None
    return EventMessage(headers=headers, payload=frame[end:end_of_message])


class FrameDecoder:
    """Push-style decoder for a stream of event-stream frames (protocol.md 4.2).

    Feed bytes as they arrive and get back every message that became complete::

        decoder = FrameDecoder()
        for message in decoder.feed(data):
            ...
        decoder.eof()  # at end of stream: raises if a frame was cut short

    Partial frames stay buffered across calls. The prelude is checked as soon as
    its 12 bytes are buffered, so a bad CRC or an oversize length is reported
    before the body arrives. After any :class:`FrameError` the decoder is
    *errored*: every later call raises the same error.

    :meth:`feed` raises as soon as it meets a bad frame, so messages that precede
    the bad frame in the same call are not returned. When those matter (a server
    that must act on every good frame before failing), use :meth:`receive_data`
    and iterate the decoder instead; iteration yields each good message and
    raises only when it reaches the bad one.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._prelude: EventPrelude | None = None
        self._error: FrameError | None = None
        self._offset = 0  # stream offset of self._buffer[0]
        self._frames = 0  # frames decoded so far

    @property
    def buffered(self) -> int:
        """Number of bytes received but not yet returned as messages."""
        return len(self._buffer)

    @property
    def frames_decoded(self) -> int:
        """Number of messages decoded so far."""
        return self._frames

    @property
    def error(self) -> FrameError | None:
        """The error that put the decoder in the errored state, if any."""
        return self._error

    def receive_data(self, data: bytes) -> None:
        """Buffer ``data`` without decoding it."""
        if self._error is not None:
            raise self._error
        self._buffer += data

    def feed(self, data: bytes) -> list[EventMessage]:
        """Buffer ``data`` and return every message it completes, in order."""
        self.receive_data(data)
        return list(self)

    def __iter__(self) -> Iterator[EventMessage]:
        """Yield buffered complete messages; stop when more bytes are needed."""
        while (message := self.next_message()) is not None:
            yield message

    def next_message(self) -> EventMessage | None:
        """Decode and remove the next complete message, or return ``None`` if more
        bytes are needed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_message()
        except FrameError as exc:
            self._error = exc
            raise

    def eof(self) -> None:
        """Declare the end of the byte stream.

        Raises :class:`FrameError` (``truncated``) if any received bytes have not
        been returned as messages, i.e. the stream ended inside a frame. Call it
        after draining the decoder (:meth:`feed` always drains).
        """
        if self._error is not None:
            raise self._error
        if not self._buffer:
            return
        where = self._where()
        if self._prelude is None:
            detail = f"{len(self._buffer)} of the {PRELUDE_LENGTH} prelude bytes"
        else:
            detail = (
                f"{len(self._buffer)} of {self._prelude.total_length} bytes "
                f"(total_length from the prelude)"
            )
        self._error = FrameError(
            f"{where}: stream ended inside a frame: got {detail}", kind="truncated"
        )
        raise self._error

    def _where(self) -> str:
        return f"frame #{self._frames} at stream offset {self._offset}"

    def _next_message(self) -> EventMessage | None:
        if self._prelude is None:
            if len(self._buffer) < PRELUDE_LENGTH:
                return None
            self._prelude = _fast_prelude(self._buffer) or _check_prelude(
                bytes(self._buffer[:PRELUDE_LENGTH]), self._where()
            )
        total = self._prelude.total_length
        if len(self._buffer) < total:
            return None
        frame = bytes(self._buffer[:total])
        message = _fast_decode_frame(frame, self._prelude)
        if message is None:
            message = _decode_frame(frame, self._prelude, self._where())
        del self._buffer[:total]
        self._offset += total
        self._frames += 1
        self._prelude = None
        return message


def encode_message(headers: Mapping[str, HEADER_VALUE], payload: bytes = b"") -> bytes:
    """Encode one frame with smithy's encoder. Header order is the mapping's order.

    Integer header sizes follow smithy: ``Byte``/``Short``/``Long`` wrappers, plain
    ``int`` is 32-bit. Limit or type problems raise :class:`FrameError`
    (``oversize`` or ``headers``).
    """
    try:
        return EventMessage(headers=dict(headers), payload=payload).encode()
    except (InvalidHeadersLength, InvalidPayloadLength) as exc:
        raise FrameError(f"cannot encode frame: {exc}", kind="oversize") from exc
    except EventError as exc:
        raise FrameError(f"cannot encode frame: {exc}", kind="headers") from exc


def decode_message(data: bytes) -> EventMessage:
    """Decode ``data`` that must hold exactly one complete frame.

    Used for the inner message carried in a signed outer frame (protocol.md 4.3).
    Fewer bytes than the prelude announces raise ``truncated``; bytes left over
    after the frame raise ``oversize`` (the data is larger than the frame).
    """
    if type(data) is bytes and len(data) >= PRELUDE_LENGTH:
        fast_prelude = _fast_prelude(data)
        if fast_prelude is not None and fast_prelude.total_length == len(data):
            message = _fast_decode_frame(data, fast_prelude)
            if message is not None:
                return message
    if len(data) < PRELUDE_LENGTH:
        raise FrameError(
            f"single frame: got {len(data)} of the {PRELUDE_LENGTH} prelude bytes", kind="truncated"
        )
    prelude = _check_prelude(data[:PRELUDE_LENGTH], "single frame")
    if len(data) < prelude.total_length:
        raise FrameError(
            f"single frame: got {len(data)} of {prelude.total_length} bytes", kind="truncated"
        )
    if len(data) > prelude.total_length:
        raise FrameError(
            f"single frame: {len(data) - prelude.total_length} bytes follow the "
            f"{prelude.total_length}-byte frame",
            kind="oversize",
        )
    return _decode_frame(data, prelude, "single frame")
