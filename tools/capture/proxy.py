"""``CaptureProxy``: a recording proxy a client points at exactly like the fake server.

::

    async with CaptureProxy("call.jsonl") as proxy:         # upstream: real Bedrock, boto3 chain
        os.environ.update(proxy.env)                        # endpoint, CA, test keys, region
        ...                                                 # run the agent
    # call.jsonl: every stream, both directions, with times and audio positions

    async with FakeNovaSonic(cassette="cassettes/nova2_tool_call.jsonl") as fake:
        async with CaptureProxy("copy.jsonl", upstream=Upstream.from_info(fake.info())) as proxy:
            ...                                             # any endpoint + CA + keys as upstream

Same fields as ``FakeNovaSonic``: ``endpoint``, ``ca_file``, ``region``, ``access_key_id``,
``secret_access_key``, ``env``, ``info()`` (the ready-file document), ``journal``; plus ``stats``
(live figures), ``path`` and ``error`` (why the recording stopped, if it did).

The listening side is the fake server's core (TLS with a throw-away CA, ALPN h2, loopback only
unless ``allow_non_loopback``); clients sign with the proxy's own published test keys, which it
verifies like the fake does (request and every chunk). The upstream side is the stock SDK client
signing with the upstream's keys (:mod:`tools.capture.upstream`). What is relayed and recorded,
stream by stream: :mod:`tools.capture.relay`; how it is written: :mod:`tools.capture.recorder`.

``replay_first=(upstream, n)``: the first ``n`` streams go to that upstream and are *not*
recorded, later streams go to ``upstream`` and are appended (``append=True``): the pytest
plugin's ``new_episodes`` mode (a fake server replaying the cassette serves the recorded streams,
the live service the new ones).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fakeserver.config import generate_credentials
from fakeserver.journal import Journal
from fakeserver.server import FakeServerCore
from fakeserver.tls import TlsMaterial, generate_tls, load_tls
from novasonic.cassette import CassetteHeader, WriterOptions
from novasonic.session.credentials import CredentialsProvider, StaticCredentials
from novasonic.wire import Credentials

from .recorder import CaptureStats, Recorder
from .relay import RelayHandler
from .upstream import Upstream

__all__ = ["CaptureProxy"]

log = logging.getLogger("tools.capture")


class CaptureProxy:
    """Relay and record. ``out``: the cassette to write (refused if it exists, unless
    ``overwrite=True`` or ``append=True``). ``upstream``: None (real Bedrock in ``region``), a URL
    (with ``upstream_ca`` and ``upstream_credentials``, default the boto3 chain) or an
    :class:`Upstream`. ``user_audio``/``assistant_audio``/``options``: how audio is stored (default:
    no voice, assistant audio elided; docs/cassette-format.md §6). ``meta``: plain data for the
    cassette header (redacted)."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        upstream: str | Upstream | None = None,
        upstream_ca: str | os.PathLike[str] | None = None,
        upstream_credentials: CredentialsProvider | tuple[str, str] | tuple[str, str, str | None] | None = None,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        allow_non_loopback: bool = False,
        tls: tuple[str, str, str] | None = None,
        options: WriterOptions | None = None,
        user_audio: str | None = None,
        assistant_audio: str | None = None,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
        append: bool = False,
        replay_first: tuple[Upstream, int] | None = None,
    ) -> None:
        if isinstance(upstream, Upstream):
            self.upstream = upstream
        else:
            creds: CredentialsProvider | None
            if upstream_credentials is None or isinstance(upstream_credentials, CredentialsProvider):
                creds = upstream_credentials
            else:
                creds = StaticCredentials(*upstream_credentials)
            self.upstream = Upstream(region=region, endpoint=upstream,
                                     ca_file=os.fspath(upstream_ca) if upstream_ca is not None else None,
                                     credentials=creds)
        if self.upstream.endpoint is not None and not self.upstream.endpoint.startswith("https://"):
            raise ValueError(f"the upstream must be an https:// URL (got {self.upstream.endpoint!r}): the service "
                             "protocol needs HTTP/2, which the client only speaks over TLS")
        if overwrite and append:
            raise ValueError("overwrite=True and append=True contradict each other")
        over = {k: v for k, v in (("user_audio", user_audio), ("assistant_audio", assistant_audio)) if v is not None}
        if options is not None and over:
            raise ValueError("give options= or user_audio=/assistant_audio=, not both")
        self.options = options if options is not None else WriterOptions(**over)  # type: ignore[arg-type]
        self.path = Path(out)
        self.credentials: Credentials = generate_credentials()
        self.journal = Journal()
        self.replay_first = replay_first
        header = CassetteHeader(source="captured", region=self.upstream.region,
                                meta={"captured_by": "nova-capture", "upstream": self.upstream.describe(), **(meta or {})})
        self._secrets: tuple[str, ...] = ()
        self.recorder = Recorder(self.path, header=header, options=self.options, journal=self.journal,
                                 secrets=self._all_secrets, resume=append, overwrite=overwrite)
        self._host = host
        self._port = port
        self._allow_non_loopback = allow_non_loopback
        self._tls_arg = tls
        self._tmpdir: str | None = None
        self.tls: TlsMaterial | None = None
        self.handler: RelayHandler | None = None
        self.core: FakeServerCore | None = None

    def _all_secrets(self) -> tuple[str, ...]:
        return (self.credentials.access_key_id, self.credentials.secret_access_key, *self._secrets)

    # ------------------------------------------------------------------ routing

    def upstream_for(self, stream_index: int) -> Upstream:
        if self.replay_first is not None and stream_index < self.replay_first[1]:
            return self.replay_first[0]
        return self.upstream

    def records(self, stream_index: int) -> bool:
        return self.replay_first is None or stream_index >= self.replay_first[1]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> CaptureProxy:
        try:
            await self.upstream.prepare()  # no credentials: fail now, with the reason
            self._secrets = await self.upstream.secrets()
            if self.replay_first is not None:
                await self.replay_first[0].prepare()
            if self._tls_arg is not None:
                self.tls = load_tls(*self._tls_arg)
            else:
                self._tmpdir = tempfile.mkdtemp(prefix="nova-capture-")
                self.tls = generate_tls(self._tmpdir)
            self.handler = RelayHandler(self)
            core = FakeServerCore(ssl_context=self.tls.server_context(), handler=self.handler, host=self._host,
                                  port=self._port, allow_non_loopback=self._allow_non_loopback)
            await core.start()
        except BaseException:
            await self.close()
            raise
        self.core = core
        log.info("capture proxy on %s → %s, recording to %s", core.endpoint, self.upstream.describe(), self.path)
        return self

    async def close(self, grace: float = 1.0) -> None:
        """Stop: streams still open are cut (recorded as ``proxy-shutdown``), the cassette closed."""
        if self.handler is not None:
            self.handler.shutting_down = True
        if self.core is not None:
            await self.core.close(grace)
            self.core = None
        self.recorder.close()
        await self.upstream.aclose()
        if self.replay_first is not None:
            await self.replay_first[0].aclose()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def __aenter__(self) -> CaptureProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ what clients need

    def _running(self) -> FakeServerCore:
        if self.core is None:
            raise RuntimeError("CaptureProxy is not running (use 'async with CaptureProxy(...) as proxy:')")
        return self.core

    @property
    def endpoint(self) -> str:
        return self._running().endpoint

    @property
    def port(self) -> int:
        return self._running().port

    @property
    def ca_file(self) -> str:
        assert self.tls is not None, "not started"
        return os.fspath(self.tls.ca_file)

    @property
    def region(self) -> str:
        return self.upstream.region

    @property
    def access_key_id(self) -> str:
        return self.credentials.access_key_id

    @property
    def secret_access_key(self) -> str:
        return self.credentials.secret_access_key

    @property
    def session_token(self) -> str | None:
        return None

    @property
    def stats(self) -> CaptureStats:
        return self.recorder.stats

    @property
    def error(self) -> BaseException | None:
        """Why the recording stopped early (a refused secret, a full disk), else None."""
        return self.recorder.error

    def info(self) -> dict[str, Any]:
        """The ready-file document: the fake server's fields plus ``out`` and ``upstream``."""
        return {
            "endpoint": self.endpoint,
            "ca_file": self.ca_file,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "port": self.port,
            "out": os.fspath(self.path),
            "upstream": self.upstream.describe(),
        }

    @property
    def env(self) -> dict[str, str]:
        """Environment that points an unmodified client (SDK, LiveKit plugin) at this proxy."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.endpoint,
            "SSL_CERT_FILE": self.ca_file,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
