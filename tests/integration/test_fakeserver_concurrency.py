"""Many sessions at once, and misbehaving clients next to a healthy STOCK SDK stream."""

from __future__ import annotations

import asyncio
import ssl

from aws_sdk_bedrock_runtime.models import ValidationException

from fakeserver.tls import client_ssl_context
from novasonic.rules import Limits, texts
from novasonic.wire import Credentials
from tests.helpers import factories as f
from tests.helpers.raw_client import RawClient
from tests.helpers.responders import ECHO_TEXT, EchoResponder
from tests.helpers.sessions import TIMEOUT, collect, exchange, opening, receive_n, send_all, wait_ended, wait_streams

N = 50


async def test_fifty_concurrent_sdk_streams_complete(start_fake, open_session, client_for) -> None:
    fake = await start_fake(EchoResponder(), limits=Limits(max_concurrent_streams_per_key=N))
    clients = [await client_for(fake) for _ in range(5)]

    async def one(n: int) -> list[str]:
        d = await open_session(fake, client=clients[n % len(clients)])
        await send_all(d, exchange(frames=2))
        await d.close_input()
        events, exc = await collect(d)
        assert exc is None, (n, exc)
        return [e.EVENT_NAME for e in events]

    results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(N))), 60)
    assert all(r == ["completionStart", "contentStart", "textOutput", "contentEnd"] for r in results)
    journals = await wait_streams(fake, N)
    assert len(journals) == N and {j.end for j in journals} == {"completed"}
    assert sorted(j.index for j in journals) == list(range(N))
    assert len({s.ctx.session_id for s in fake.responder.streams}) == N  # every stream its own session


def _frame_types(data: bytes) -> list[int]:
    """Types of the HTTP/2 frames in raw server bytes."""
    types, i = [], 0
    while i + 9 <= len(data):
        types.append(data[i + 3])
        i += 9 + int.from_bytes(data[i : i + 3], "big")
    return types


async def _raw_junk(port: int, ssl_ctx: ssl.SSLContext | None, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl_ctx, server_hostname="localhost" if ssl_ctx else None
    )
    writer.write(payload)
    try:
        return await asyncio.wait_for(reader.read(-1), TIMEOUT)
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        writer.close()


async def test_misbehaving_clients_do_not_disturb_a_healthy_stream(start_fake, open_session) -> None:
    fake = await start_fake(EchoResponder(), limits=Limits(max_concurrent_streams_per_key=3))
    creds = Credentials(fake.access_key_id, fake.secret_access_key)

    healthy = await open_session(fake)
    await send_all(healthy, [*opening(), f.audio_start()])
    assert [e.EVENT_NAME for e in await receive_n(healthy, 1)] == ["completionStart"]

    # 0. a half-sent TLS record that never completes (kept open until the end of the test).
    _, stalled = await asyncio.open_connection("127.0.0.1", fake.port)
    stalled.write(b"\x16\x03\x01\x20\x00" + b"\x00" * 100)
    # 1. plaintext HTTP on the TLS port; 2. garbage inside TLS instead of the HTTP/2 preface.
    plain, tls_junk = await asyncio.gather(
        _raw_junk(fake.port, None, b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"),
        _raw_junk(fake.port, client_ssl_context(fake.ca_file), b"\x00\xffGET / nonsense\r\n" * 64),
    )
    assert plain == b""
    assert _frame_types(tls_junk)[0] == 0x4 and _frame_types(tls_junk)[-1] == 0x7  # SETTINGS ... GOAWAY

    # 3. a well-signed stream whose body is garbage: that stream alone gets "Invalid event bytes".
    junk_client = await RawClient.connect(fake.port, fake.ca_file)
    junk = await junk_client.open(creds, region=fake.region)
    await junk.send_bytes(b"\x00\x00\x00\x10garbage, not an event-stream frame" * 4)
    status, frames = await junk.response()
    await junk_client.close()
    assert status == 200 and len(frames) == 1 and frames[0].member == "validationException"
    assert frames[0].message == texts.INVALID_EVENT_BYTES

    # 4. a client that opens a stream, sends one event and vanishes (no RST_STREAM, no GOAWAY).
    ghost_client = await RawClient.connect(fake.port, fake.ca_file)
    ghost = await ghost_client.open(creds, region=fake.region)
    await ghost.send_event(f.session_start())
    assert await ghost.wait_headers() == 200
    ghost_client.abort()

    # The healthy stream carries on and completes.
    await send_all(healthy, f.audio_frames(count=3))
    await send_all(healthy, [f.content_end("mic"), f.prompt_end(), f.session_end()])
    await healthy.close_input()
    events, exc = await collect(healthy)
    assert exc is None and [e.EVENT_NAME for e in events] == ["contentStart", "textOutput", "contentEnd"]
    assert events[1].content == ECHO_TEXT

    j_healthy, j_junk, j_ghost = await wait_streams(fake, 3)
    assert j_healthy.end == "completed" and j_healthy.audio_in_frames == 3
    assert j_junk.end == "exception:validationException"
    assert [(c.name, c.verdict) for c in j_junk.client] == [("(undecodable)", "invalid-event-bytes")]
    assert j_ghost.end == "connection-lost" and j_ghost.client_names() == ["sessionStart"]

    # Nothing leaked: every concurrency slot of the key is free again (3 streams fit at once).
    held = []
    for _ in range(3):
        d = await open_session(fake)
        await send_all(d, [*opening(), f.audio_start()])
        await receive_n(d, 1)
        held.append(d)
    assert fake.handler.active_per_key[fake.access_key_id] == 3
    stalled.close()


async def test_a_violation_on_one_stream_leaves_its_neighbours_alone(start_fake, open_session, client_for) -> None:
    """Two streams multiplexed on one SDK connection: one breaks a rule, the other completes."""
    fake = await start_fake(EchoResponder())
    client = await client_for(fake)
    good = await open_session(fake, client=client)
    await send_all(good, [*opening(), f.audio_start()])
    await receive_n(good, 1)
    bad = await open_session(fake, client=client)
    await send_all(bad, [*opening(), f.audio_start(), f.audio_input(), f.text_start("late", "USER")])
    _, exc = await collect(bad)
    assert isinstance(exc, ValidationException)

    await send_all(good, [f.audio_input(), f.content_end("mic"), f.prompt_end(), f.session_end()])
    await good.close_input()
    events, exc = await collect(good)
    assert exc is None and len(events) == 3
    j_good, j_bad = await wait_streams(fake, 2)
    assert j_good.connection_id == j_bad.connection_id
    assert (j_good.end, j_bad.end) == ("completed", "exception:validationException")
    assert (await wait_ended(fake, 1)).client[-1].verdict == "history-after-audio"
