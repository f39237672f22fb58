"""The fake server's transport core: asyncio + ssl (ALPN ``h2``) + ``h2``, no Nova logic.

::

    core = FakeServerCore(ssl_context=generate_tls(tmp).server_context(), handler=my_handler)
    await core.start()            # binds 127.0.0.1, port 0 by default
    core.endpoint                 # "https://localhost:<port>"
    ...
    await core.close()            # GOAWAY to every connection, short grace, then cancel

Each accepted connection is served by :class:`~fakeserver.connection.H2ServerConnection`; each
request stream goes to ``handler(stream)`` (see :mod:`fakeserver.stream`). Failures stay inside
their connection: a garbage client, a TLS failure or an abrupt disconnect never affects others.

Binding: loopback only unless ``allow_non_loopback=True``. The fake accepts the credentials it
publishes to anyone who can reach it; exposing it on a network must be a deliberate choice.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import ssl

from .connection import H2ServerConnection
from .stream import Handler

__all__ = ["FakeServerCore", "NonLoopbackBindError", "DEFAULT_MAX_CONCURRENT_STREAMS"]

log = logging.getLogger("fakeserver.server")

#: SETTINGS_MAX_CONCURRENT_STREAMS per connection (h2's own default is 100). The service allows
#: 20 sessions per account; the fake is generous so benchmarks can push many streams.
DEFAULT_MAX_CONCURRENT_STREAMS = 500
#: Seconds a client may take for the TLS handshake.
TLS_HANDSHAKE_TIMEOUT = 10.0
#: Seconds to wait for the client's TLS close_notify when closing.
TLS_SHUTDOWN_TIMEOUT = 2.0


class NonLoopbackBindError(ValueError):
    """Raised when asked to bind a non-loopback address without ``allow_non_loopback=True``."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: refuse unless explicitly allowed


class FakeServerCore:
    """Listen on TLS, speak HTTP/2, hand every request stream to ``handler``."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        allow_non_loopback: bool = False,
    ) -> None:
        if not _is_loopback(host) and not allow_non_loopback:
            raise NonLoopbackBindError(
                f"refusing to bind the fake server to non-loopback address {host!r}: anyone who can reach it "
                "can use the published test credentials. Pass allow_non_loopback=True "
                "(CLI: --allow-non-loopback) if you really mean it."
            )
        if ssl_context.verify_mode is not ssl.CERT_NONE and ssl_context.check_hostname:
            raise ValueError("ssl_context must be a server context (ssl.PROTOCOL_TLS_SERVER)")
        self.host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._handler = handler
        self._max_concurrent_streams = max_concurrent_streams
        self._server: asyncio.Server | None = None
        self._connections: dict[int, H2ServerConnection] = {}
        self._connection_tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._port: int | None = None

    # ------------------------------------------------------------------ public

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """``https://localhost:<port>`` for loopback binds (the certificate covers localhost)."""
        host = "localhost" if _is_loopback(self.host) else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def connections(self) -> list[H2ServerConnection]:
        """Live connections (for fault injection and tests)."""
        return list(self._connections.values())

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("server already started")
        self._server = await asyncio.start_server(
            self._on_client,
            host=self.host,
            port=self._requested_port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
            ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
            family=socket.AF_UNSPEC,
            reuse_address=True,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        bound = ", ".join(str(s.getsockname()) for s in self._server.sockets)
        log.info("fake server listening on %s (%s)", self.endpoint, bound)

    async def close(self, grace: float = 1.0) -> None:
        """Stop listening; GOAWAY every connection; after ``grace`` seconds close them (cancelling handlers)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        conns = list(self._connections.values())
        if conns:
            await asyncio.gather(*(c.shutdown(grace) for c in conns), return_exceptions=True)
        if self._connection_tasks:
            await asyncio.wait(list(self._connection_tasks), timeout=grace + 5.0)
        for task in list(self._connection_tasks):
            task.cancel()
        if self._connection_tasks:
            await asyncio.gather(*self._connection_tasks, return_exceptions=True)
        try:
            # Only sockets still in their TLS handshake can remain (asyncio 3.12 offers no way to
            # close them); ssl_handshake_timeout drops them.
            await asyncio.wait_for(server.wait_closed(), timeout=1.0)
        except asyncio.TimeoutError:
            log.debug("fake server closed; sockets still in TLS handshake are left to the handshake timeout")

    async def __aenter__(self) -> FakeServerCore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ connections

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted while closing
            writer.transport.abort()
            return
        conn_id = next(self._ids)
        conn = H2ServerConnection(
            reader, writer, self._handler, connection_id=conn_id, max_concurrent_streams=self._max_concurrent_streams
        )
        task = asyncio.current_task()
        assert task is not None
        self._connections[conn_id] = conn
        self._connection_tasks.add(task)
        log.debug("connection %d from %s", conn_id, conn.peer)
        try:
            await conn.run()
        except Exception:  # a bug in the connection driver must not reach asyncio's handler
            log.exception("connection %d: driver failed", conn_id)
            writer.transport.abort()
        finally:
            self._connections.pop(conn_id, None)
            self._connection_tasks.discard(task)
