"""Lightweight load generator for the fake server: N real-time Nova Sonic sessions, raw ``h2``.

::

    python -m tools.bench.load_client --ready-file READY.json --streams 100 --duration 20 \
        --out client.json [--per-conn 100] [--start-at EPOCH] [--ramp 2] [--proc-index 0 --procs 1]

Why not the stock SDK: awscrt + smithy cost several times more CPU per stream than the server
itself, so on a 2-core machine the client would be the bottleneck. This client speaks the same
bytes with far less work: ``ssl`` (ALPN h2, trusting only the fake's CA from the ready file) and
``h2``, many streams multiplexed over a few connections (``--per-conn``, default 100).

Each stream (one session) is signed exactly like the SDK: the request with
``novasonic.wire.sign_request`` (SigV4, ``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-EVENTS``)
and every frame with a per-stream ``novasonic.wire.ChunkSigner`` chained from the request
signature, ``:date`` = the wall clock at the moment of signing (= sending). The server verifies
both. Each stream uses its own access key id (the fake allows 20 concurrent streams per key), so
the server must run with ``--accept-any-key-id``; the secret is the published one.

What a stream sends (Nova 2 Sonic, events from ``novasonic.builder.EventBuilder``):

1. ``sessionStart``, ``promptStart``, the SYSTEM text block, the AUDIO ``contentStart`` (16 kHz);
2. ``audioInput`` frames of 32 ms (512 samples, 1024 bytes) at **real time** (wall clock, one
   frame every 32 ms on a fixed schedule, never bunched to catch up) for ``--duration`` seconds:
   a repeating pattern of ``--speech-ms`` of ``fakeserver.audio.synth_speech`` then
   ``--silence-ms`` of silence, so the scripted responder's VAD detects an utterance in every
   cycle and answers with assistant audio (paced by the input audio);
3. the close sequence (AUDIO ``contentEnd``, ``promptEnd``, ``sessionEnd``), the signed empty
   frame and END_STREAM; then it waits (bounded) for the server to end the response.

Streams start spread evenly over ``--ramp`` seconds from ``--start-at`` (a shared wall-clock time,
so several client processes interleave). Everything is bounded: the run lasts ``start-at + ramp +
duration`` plus at most ``--drain-timeout`` seconds, then the process exits by itself.

Output frames are decoded with ``FrameDecoder`` + ``decode_output``; audioOutput bytes (decoded
PCM) and events are counted per stream. The JSON written to ``--out`` has:

``streams``/``held``/``failures``
    a stream is *held* when it got HTTP 200, sent every frame, received no exception/error
    frame and no reset, and the server ended it normally after the client's close;
``audio_out_bytes``, ``out_events``, ``in_frames``
    totals;
``send_lateness``
    histogram of (actual send time - scheduled time) per audio frame: whether this process kept
    real time (if not, the run is invalid at that load; the harness reports it);
``speech_end_rtt``
    client-observed round trip per utterance: ``userSpeechEnd`` arrival minus the send time of
    the audio frame that completed the end-point (the frame holding the
    ``inputAudioDetectionOffsetMs`` sample), i.e. the time the server took to react to that
    frame, seen from the client (includes this client's own scheduling delays); recorded for
    utterances ending after the ramp (every stream started, +0.5 s);
``first_audio_rtt``
    same start, until the first ``audioOutput`` of the reply arrived.

Pure client, loopback only: it connects to the endpoint in the ready file, which the fake server
binds to loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import heapq
import json
import math
import os
import ssl
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from fakeserver.audio import silence, synth_speech
from novasonic.builder import EventBuilder, sequential_names
from novasonic.errors import NovaSonicError
from novasonic.wire import (
    ChunkFrame,
    ChunkSigner,
    Credentials,
    ErrorFrame,
    ExceptionFrame,
    FrameDecoder,
    decode_output,
    encode_chunk,
    sign_request,
)

from ._stats import Histogram

__all__ = ["main", "run"]

MODEL_ID = "amazon.nova-2-sonic-v1:0"
EVENTSTREAM = "application/vnd.amazon.eventstream"
FRAME_MS = 32.0
FRAME_S = FRAME_MS / 1000.0
RATE = 16000
FRAME_BYTES = int(RATE * FRAME_MS / 1000) * 2  # 1024
SYSTEM_PROMPT = "You are a load-test peer. Answer briefly."
LOOPBACK = ("localhost", "127.0.0.1", "::1")
STREAM_WINDOW = 1 << 20


# ------------------------------------------------------------------------------------------ payloads


class Payloads:
    """Inner chunk messages, encoded once per process (every stream sends the same events; names
    are per-stream-scoped on the server, so sharing them is fine)."""

    def __init__(self, speech_ms: float, silence_ms: float) -> None:
        for name, ms in (("speech", speech_ms), ("silence", silence_ms)):
            if ms <= 0 or abs(ms / FRAME_MS - round(ms / FRAME_MS)) > 1e-9:
                raise ValueError(f"--{name}-ms must be a positive multiple of {FRAME_MS:g} ms (got {ms:g})")
        b = EventBuilder(MODEL_ID, name_factory=sequential_names("bench"))
        start = b.start(SYSTEM_PROMPT) + b.audio_start()
        pcm = synth_speech(speech_ms, RATE, seed=7) + silence(silence_ms, RATE)
        frames = b.audio_frames(pcm, frame_ms=FRAME_MS)
        assert all(len(f.pcm) == FRAME_BYTES for f in frames)
        close = b.close()
        self.start = [encode_chunk(e.to_bytes()) for e in start]
        self.audio = [encode_chunk(f.to_bytes()) for f in frames]
        self.close = [encode_chunk(e.to_bytes()) for e in close]


# ------------------------------------------------------------------------------------------ streams


class Stream:
    """One session on one HTTP/2 stream."""

    __slots__ = (
        "conn", "index", "key_id", "sid", "signer", "start_t", "n_frames", "next_frame", "phase",
        "decoder", "status", "ended", "reset", "errors", "audio_out_bytes", "out_events",
        "send_times", "pending_rtt", "closed_input", "pending", "done_t", "stop",
    )

    def __init__(self, conn: Connection, index: int, key_id: str, start_t: float, n_frames: int) -> None:
        self.conn = conn
        self.index = index
        self.key_id = key_id
        self.sid: int | None = None
        self.signer: ChunkSigner | None = None
        self.start_t = start_t
        self.n_frames = n_frames
        self.next_frame = 0
        self.phase = "idle"  # idle -> audio -> closing -> waiting -> done
        self.decoder = FrameDecoder()
        self.status: int | None = None
        self.ended = False
        self.reset: int | None = None
        self.errors: list[str] = []
        self.audio_out_bytes = 0
        self.out_events = 0
        self.send_times: list[float] = []
        self.pending_rtt: float | None = None  # send time of the end-point frame awaiting first audio
        self.closed_input = False
        self.pending: list[bytes] = []  # frames waiting for flow-control window
        self.done_t: float | None = None
        self.stop = False

    @property
    def failed(self) -> bool:
        return bool(self.errors) or self.reset is not None or (self.status is not None and self.status != 200)

    def held(self) -> bool:
        return (
            self.status == 200
            and not self.failed
            and self.ended
            and self.closed_input
            and self.next_frame >= self.n_frames
        )


class Connection(asyncio.Protocol):
    """One TLS + HTTP/2 connection carrying up to ``--per-conn`` streams."""

    def __init__(self, client: LoadClient) -> None:
        self.client = client
        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self.lost: str | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.dirty = False

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_obj = transport.get_extra_info("ssl_object")
        if ssl_obj is None or ssl_obj.selected_alpn_protocol() != "h2":
            self.lost = "ALPN h2 not negotiated"
            transport.close()
            return
        self.h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window((1 << 31) - 1 - self.h2.inbound_flow_control_window)
        self.flush()
        if not self.ready.done():
            self.ready.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._lose(f"h2 protocol error: {exc}")
            return
        now = time.monotonic()
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                st = self.streams.get(ev.stream_id)
                if ev.flow_controlled_length:
                    try:
                        self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    except h2.exceptions.ProtocolError:
                        pass
                if st is not None and ev.data:
                    self.client.on_data(st, ev.data, now)
            elif isinstance(ev, h2.events.ResponseReceived):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    for name, value in ev.headers or ():
                        if name == b":status":
                            st.status = int(value)
            elif isinstance(ev, h2.events.StreamEnded):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st.ended = True
                    self.client.on_stream_done(st, now)
            elif isinstance(ev, h2.events.StreamReset):
                st = self.streams.get(ev.stream_id)
                if st is not None:
                    st.reset = int(ev.error_code)
                    st.errors.append(f"rst:{int(ev.error_code)}")
                    self.client.on_stream_done(st, now)
            elif isinstance(ev, h2.events.WindowUpdated):
                self._drain_pending(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self._lose(f"GOAWAY {ev.error_code}")
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"connection lost: {exc!r}" if exc else "connection closed")

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
        now = time.monotonic()
        for st in self.streams.values():
            if st.done_t is None:
                if not st.ended:
                    st.errors.append(f"conn:{why}")
                self.client.on_stream_done(st, now)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))

    # --- sending
    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        self.dirty = False

    def open_stream(self, st: Stream, headers: list[tuple[bytes, bytes]]) -> None:
        sid = self.h2.get_next_available_stream_id()
        st.sid = sid
        self.streams[sid] = st
        self.h2.send_headers(sid, headers)
        self.dirty = True

    def send_frame(self, st: Stream, data: bytes, end_stream: bool = False) -> None:
        assert st.sid is not None
        if st.pending or self.h2.local_flow_control_window(st.sid) < len(data):
            st.pending.append(data)
            if end_stream:
                st.pending.append(b"")
            return
        self.h2.send_data(st.sid, data, end_stream=end_stream)
        self.dirty = True

    def _drain_pending(self, stream_id: int) -> None:
        targets = [self.streams[stream_id]] if stream_id in self.streams else list(self.streams.values())
        for st in targets:
            while st.pending and st.sid is not None:
                data = st.pending[0]
                if data == b"":
                    self.h2.end_stream(st.sid)
                    st.pending.pop(0)
                    continue
                if self.h2.local_flow_control_window(st.sid) < len(data):
                    break
                end = len(st.pending) > 1 and st.pending[1] == b""
                self.h2.send_data(st.sid, data, end_stream=end)
                st.pending.pop(0)
                if end:
                    st.pending.pop(0)


# ------------------------------------------------------------------------------------------ client


class LoadClient:
    def __init__(self, args: argparse.Namespace, ready: dict[str, Any]) -> None:
        self.args = args
        self.ready = ready
        endpoint = ready["endpoint"]
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        if host not in LOOPBACK:
            raise SystemExit(f"refusing to load a non-loopback endpoint {endpoint!r}")
        self.host = host
        self.port = parts.port or 443
        self.authority = f"{host}:{self.port}"
        self.region = ready["region"]
        self.secret = ready["secret_access_key"]
        self.path = f"/model/{quote(MODEL_ID, safe='')}/invoke-with-bidirectional-stream"
        self.url = f"https://{self.authority}{self.path}"
        self.payloads = Payloads(args.speech_ms, args.silence_ms)
        self.n_frames = max(1, int(round(args.duration / FRAME_S)))
        self.connections: list[Connection] = []
        self.streams: list[Stream] = []
        self.heap: list[tuple[float, int, Stream]] = []
        self.outstanding = 0
        self.all_done = asyncio.Event()
        self.lateness = Histogram()
        self.speech_end_rtt = Histogram()
        self.first_audio_rtt = Histogram()
        self.in_frames = 0
        self.exceptions: dict[str, int] = {}
        self.steady_after = math.inf  # monotonic time after which round trips are recorded

    # --- receiving
    def on_data(self, st: Stream, data: bytes, now: float) -> None:
        try:
            messages = st.decoder.feed(data)
        except NovaSonicError as exc:
            st.errors.append(f"frame:{exc}")
            return
        for msg in messages:
            try:
                frame = decode_output(msg)
            except NovaSonicError as exc:
                st.errors.append(f"envelope:{exc}")
                continue
            if isinstance(frame, ChunkFrame):
                st.out_events += 1
                doc = json.loads(frame.event_json)["event"]
                if "audioOutput" in doc:
                    content = doc["audioOutput"]["content"]
                    st.audio_out_bytes += len(base64.b64decode(content))
                    if st.pending_rtt is not None:
                        self.first_audio_rtt.add(now - st.pending_rtt)
                        st.pending_rtt = None
                elif "userSpeechEnd" in doc:
                    detected = doc["userSpeechEnd"].get("inputAudioDetectionOffsetMs")
                    if isinstance(detected, (int, float)):
                        k = max(0, math.ceil(detected / FRAME_MS) - 1)
                        if k < len(st.send_times) and st.send_times[k] >= self.steady_after:
                            sent = st.send_times[k]
                            self.speech_end_rtt.add(now - sent)
                            st.pending_rtt = sent
            elif isinstance(frame, ExceptionFrame):
                key = f"exception:{frame.member}"
                st.errors.append(f"{key}: {frame.message}")
                self.exceptions[key] = self.exceptions.get(key, 0) + 1
            elif isinstance(frame, ErrorFrame):
                key = f"error:{frame.code}"
                st.errors.append(f"{key}: {frame.message}")
                self.exceptions[key] = self.exceptions.get(key, 0) + 1

    def on_stream_done(self, st: Stream, now: float) -> None:
        if st.done_t is not None:
            return
        st.done_t = now
        st.stop = True
        self.outstanding -= 1
        if self.outstanding <= 0:
            self.all_done.set()

    # --- sending
    def _sign(self, st: Stream, inner: bytes) -> bytes:
        assert st.signer is not None
        return st.signer.sign(inner, date=datetime.now(UTC)).encode()

    def _open(self, st: Stream) -> None:
        creds = Credentials(st.key_id, self.secret)
        signed = sign_request(
            "POST", self.url, {"content-type": EVENTSTREAM}, creds, region=self.region, now=datetime.now(UTC)
        )
        seed = signed["authorization"].rpartition("Signature=")[2]
        st.signer = ChunkSigner(seed, creds, region=self.region)
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", self.authority.encode()),
            (b":path", (self.path + "?").encode()),  # the SDK adds a trailing '?'
        ] + [(k.encode(), v.encode()) for k, v in signed.items()]
        st.conn.open_stream(st, headers)
        for inner in self.payloads.start:
            st.conn.send_frame(st, self._sign(st, inner))
        st.phase = "audio"

    def _close(self, st: Stream) -> None:
        for inner in self.payloads.close:
            st.conn.send_frame(st, self._sign(st, inner))
        st.conn.send_frame(st, self._sign(st, b""), end_stream=True)
        st.closed_input = True
        st.phase = "waiting"

    def _step(self, st: Stream, now: float) -> float | None:
        """Do what ``st`` has due now; return when it is next due (None: nothing more to send)."""
        if st.stop or st.conn.lost is not None:
            return None
        if st.phase == "idle":
            self._open(st)
            return st.start_t
        if st.phase == "audio":
            k = st.next_frame
            due = st.start_t + k * FRAME_S
            self.lateness.add(now - due)
            audio = self.payloads.audio
            st.send_times.append(now)
            st.conn.send_frame(st, self._sign(st, audio[k % len(audio)]))
            self.in_frames += 1
            st.next_frame = k + 1
            if st.next_frame >= st.n_frames:
                st.phase = "closing"
                return st.start_t + st.next_frame * FRAME_S
            return st.start_t + st.next_frame * FRAME_S
        if st.phase == "closing":
            self._close(st)
            return None
        return None

    async def run(self) -> dict[str, Any]:
        args = self.args
        loop = asyncio.get_running_loop()
        ctx = ssl.create_default_context(cafile=self.ready["ca_file"])
        ctx.set_alpn_protocols(["h2"])
        n_conns = max(1, math.ceil(args.streams / args.per_conn))
        for _ in range(n_conns):
            conn = Connection(self)
            await loop.create_connection(lambda c=conn: c, self.host, self.port, ssl=ctx, server_hostname="localhost")
            await asyncio.wait_for(conn.ready, 10.0)
            self.connections.append(conn)

        # Schedule: global stream g of G starts at start_at + ramp * g / G (processes interleave).
        start_at_wall = args.start_at if args.start_at is not None else time.time() + 0.5
        mono0 = time.monotonic() + (start_at_wall - time.time())
        total = args.procs_streams or args.streams
        seq = 0
        for i in range(args.streams):
            g = args.proc_index + i * args.procs if args.procs_streams else i
            start_t = mono0 + args.ramp * g / max(1, total)
            conn = self.connections[i % n_conns]
            key_id = f"AKIABENCH{os.getpid()}X{i:05d}"
            st = Stream(conn, i, key_id, start_t, self.n_frames)
            self.streams.append(st)
            heapq.heappush(self.heap, (start_t - 0.1, seq, st))  # open 100 ms before the first frame
            seq += 1
        self.outstanding = len(self.streams)
        # Round trips are recorded once every stream of the run has started (+0.5 s): during the
        # ramp this client is busy opening streams, which would be charged to the server.
        self.steady_after = mono0 + args.ramp + 0.5

        hard_end = mono0 + args.ramp + args.duration + args.drain_timeout + 5.0
        while self.heap:
            now = time.monotonic()
            if now > hard_end:
                break
            due = self.heap[0][0]
            if due > now:
                await asyncio.sleep(due - now)
                continue
            touched: set[Connection] = set()
            while self.heap and self.heap[0][0] <= now:
                _, _, st = heapq.heappop(self.heap)
                nxt = self._step(st, now)
                touched.add(st.conn)
                if nxt is not None:
                    seq += 1
                    heapq.heappush(self.heap, (nxt, seq, st))
                now = time.monotonic()
            for conn in touched:
                if conn.lost is None:
                    conn.flush()
        # Wait (bounded) for the server to end every stream after the close sequence.
        remaining = max(0.1, min(args.drain_timeout, hard_end - time.monotonic()))
        try:
            await asyncio.wait_for(self.all_done.wait(), remaining)
        except TimeoutError:
            pass
        for conn in self.connections:
            if conn.lost is None and conn.transport is not None:
                try:
                    conn.h2.close_connection()
                    conn.flush()
                except h2.exceptions.ProtocolError:
                    pass
                conn.transport.close()
        await asyncio.sleep(0.05)
        return self.report()

    def report(self) -> dict[str, Any]:
        held = [s for s in self.streams if s.held()]
        failures: dict[str, int] = {}
        for s in self.streams:
            if s.held():
                continue
            if s.errors:
                why = s.errors[0].split(":", 2)[:2]
                key = ":".join(why)
            elif s.status not in (None, 200):
                key = f"http:{s.status}"
            elif not s.ended:
                key = "not-ended"
            else:
                key = "incomplete"
            failures[key] = failures.get(key, 0) + 1
        return {
            "pid": os.getpid(),
            "streams": len(self.streams),
            "held": len(held),
            "failures": failures,
            "exceptions": self.exceptions,
            "connections": len(self.connections),
            "in_frames": self.in_frames,
            "audio_out_bytes": sum(s.audio_out_bytes for s in self.streams),
            "out_events": sum(s.out_events for s in self.streams),
            "send_lateness": self.lateness.to_json(),
            "speech_end_rtt": self.speech_end_rtt.to_json(),
            "first_audio_rtt": self.first_audio_rtt.to_json(),
        }


# ------------------------------------------------------------------------------------------ CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench.load_client", description=__doc__.split("\n")[0])
    p.add_argument("--ready-file", type=Path, required=True, help="the fake server's ready file")
    p.add_argument("--streams", type=int, required=True, help="sessions this process runs")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of audio per session (real time)")
    p.add_argument("--per-conn", type=int, default=100, help="streams per HTTP/2 connection")
    p.add_argument("--start-at", type=float, help="wall-clock time (epoch s) of the first stream's first frame")
    p.add_argument("--ramp", type=float, default=2.0, help="seconds over which stream starts are spread")
    p.add_argument("--proc-index", type=int, default=0, help="this process's index among --procs")
    p.add_argument("--procs", type=int, default=1, help="client processes sharing the run")
    p.add_argument("--procs-streams", type=int, default=0, help="total streams over all processes (interleaving)")
    p.add_argument("--speech-ms", type=float, default=1280.0, help="speech per cycle (multiple of 32)")
    p.add_argument("--silence-ms", type=float, default=1600.0, help="silence per cycle (multiple of 32)")
    p.add_argument("--drain-timeout", type=float, default=15.0, help="max seconds to wait for the server to end streams")
    p.add_argument("--out", type=Path, help="write the JSON report here (default: stdout)")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    ready = json.loads(args.ready_file.read_text())
    if args.streams < 1 or args.per_conn < 1 or args.duration <= 0:
        raise SystemExit("--streams, --per-conn and --duration must be positive")
    if args.duration > 600:
        raise SystemExit("--duration is capped at 600 s")
    client = LoadClient(args, ready)
    return asyncio.run(client.run())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = run(args)
    text = json.dumps(report)
    if args.out:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
