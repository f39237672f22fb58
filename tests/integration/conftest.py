"""Fixtures for the fake server against the STOCK SDK client over loopback TLS + HTTP/2.

- ``start_fake(responder=None, **overrides)``: a running ``FakeNovaSonic`` (``SilentResponder`` by
  default; ``overrides`` are ``ServerConfig`` fields such as ``speed=``, ``limits=``, ``faults=``).
  Every server started is closed at teardown.
- ``client_for(fake, **creds)``: a stock ``AsyncBedrockRuntimeClient`` on the CRT transport that
  trusts the fake's CA through ``ca_file=`` (no process-wide ``SSL_CERT_FILE``); credentials
  default to the published ones. Closed at teardown.
- ``open_session(fake, model=..., client=None)``: ``novasonic.transport.DuplexEvents`` on a new
  (or the given) client. Closed at teardown, with a timeout (after a reset the SDK's close hangs).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient

from fakeserver import FakeNovaSonic
from fakeserver.responders.base import Responder
from novasonic import transport
from novasonic.transport import DuplexEvents
from tests.helpers.responders import SilentResponder
from tests.helpers.sessions import NOVA2

_UNSET: Any = object()

StartFake = Callable[..., Awaitable[FakeNovaSonic]]
ClientFor = Callable[..., Awaitable[AsyncBedrockRuntimeClient]]
OpenSession = Callable[..., Awaitable[DuplexEvents]]


@pytest.fixture
async def start_fake() -> AsyncIterator[StartFake]:
    started: list[FakeNovaSonic] = []

    async def start(responder: Responder | None = None, **overrides: Any) -> FakeNovaSonic:
        fake = FakeNovaSonic(responder=responder if responder is not None else SilentResponder(), **overrides)
        await fake.start()
        started.append(fake)
        return fake

    yield start
    for fake in reversed(started):
        await fake.close()


@pytest.fixture
async def client_for() -> AsyncIterator[ClientFor]:
    clients: list[AsyncBedrockRuntimeClient] = []

    async def make(
        fake: FakeNovaSonic,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = _UNSET,
        region: str | None = None,
    ) -> AsyncBedrockRuntimeClient:
        client = await transport.make_client(
            region=region or fake.region,
            endpoint=fake.endpoint,
            access_key_id=access_key_id or fake.access_key_id,
            secret_access_key=secret_access_key or fake.secret_access_key,
            session_token=fake.session_token if session_token is _UNSET else session_token,
            ca_file=fake.ca_file,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        try:
            await asyncio.wait_for(client.close(), 5)
        except Exception:
            pass


@pytest.fixture
async def open_session(client_for: ClientFor) -> AsyncIterator[OpenSession]:
    sessions: list[DuplexEvents] = []

    async def open_(
        fake: FakeNovaSonic, *, model: str = NOVA2, client: AsyncBedrockRuntimeClient | None = None, **creds: Any
    ) -> DuplexEvents:
        if client is None:
            client = await client_for(fake, **creds)
        d = await asyncio.wait_for(transport.open_duplex(client, model), 10)
        sessions.append(d)
        return d

    yield open_
    for d in sessions:
        try:
            await asyncio.wait_for(d.close(), 2)
        except (Exception, asyncio.TimeoutError):
            pass
