"""``FakeNovaSonic``: the fake server as an async context manager (design §8 contract).

::

    async with FakeNovaSonic(speed=60) as fake:
        os.environ.update(fake.env)          # endpoint, CA, credentials, region for the stock SDK
        ...                                  # run the agent / client under test
        assert fake.journal.last().end == "completed"

Fields: ``endpoint``, ``ca_file``, ``region``, ``access_key_id``, ``secret_access_key``,
``journal`` (per-stream record), ``faults`` (add more while running), ``info()`` (the ready-file
JSON), ``env`` (environment for a client process), ``replay`` (the cassette replay, when serving
one).

Cassette replay (``fakeserver.replay``)::

    async with FakeNovaSonic(cassette="cassettes/nova2_tool_call.jsonl", speed=math.inf) as fake:
        ...
        assert fake.replay.all_played, fake.replay.report()
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from novasonic.cassette import Cassette

from .clock import ScaledClock
from .config import ServerConfig
from .faults import Fault, FaultPlan
from .handler import StreamHandler
from .journal import Journal
from .replay import ReplayConfig, ReplayResponder
from .responders.base import Responder
from .responders.scripted import ScriptedResponder
from .server import FakeServerCore
from .tls import TlsMaterial, generate_tls, load_tls

__all__ = ["FakeNovaSonic"]


class FakeNovaSonic:
    """A running fake Nova Sonic endpoint on loopback TLS + HTTP/2.

    ``responder``: what to answer (default: the scripted responder with ``script`` or the default
    script). ``cassette``: replay this cassette (a path or a loaded ``Cassette``) instead;
    ``match_on`` (matcher names or callables, see ``fakeserver.replay.matchers``) and
    ``replay_config`` (a :class:`~fakeserver.replay.ReplayConfig`) tune it, and ``replay`` is
    the :class:`~fakeserver.replay.ReplayResponder` (``report()``, ``mismatches``, ``all_played``).
    The cassette is loaded (and validated against the server's rules) here: a missing, corrupt or
    truncated cassette raises the loader's error, naming the line. ``faults``: fault spec strings
    or :class:`Fault` objects. ``config``: a full :class:`ServerConfig`; keyword overrides
    (``speed=``, ``region=``, ``limits=``, ...) are applied on top. ``tls``: user-supplied
    ``(cert_file, key_file, ca_file)``; default a fresh trustme CA in a temporary directory
    removed on exit.
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        script: Any = None,
        cassette: str | os.PathLike[str] | Cassette | None = None,
        match_on: Any = None,
        replay_config: ReplayConfig | None = None,
        faults: list[str | Fault] | tuple[str | Fault, ...] = (),
        config: ServerConfig | None = None,
        tls: tuple[str, str, str] | None = None,
        **overrides: Any,
    ) -> None:
        cfg = config or ServerConfig()
        if overrides:
            cfg = replace(cfg, **overrides)
        self.config = cfg
        self.clock = ScaledClock(cfg.speed)
        self.journal = Journal(max_streams=cfg.max_journal_streams, keep_audio=cfg.keep_audio)
        self.faults = FaultPlan([])
        for f in faults:
            self.add_fault(f)
        self.replay: ReplayResponder | None = None
        if cassette is not None:
            if responder is not None or script is not None:
                raise ValueError("give either cassette= or responder=/script=, not both")
            self.replay = ReplayResponder(
                cassette, match_on=match_on, config=replay_config,
                load_options={"rules_config": cfg.rules, "limits": cfg.limits},
            )
            responder = self.replay
        elif match_on is not None or replay_config is not None:
            raise ValueError("match_on= and replay_config= need cassette=")
        self.responder: Responder = responder if responder is not None else ScriptedResponder(script)
        self._tls_arg = tls
        self._tmpdir: str | None = None
        self.tls: TlsMaterial | None = None
        self.handler: StreamHandler | None = None
        self.core: FakeServerCore | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeNovaSonic:
        try:
            if self._tls_arg is not None:
                self.tls = load_tls(*self._tls_arg)
            else:
                self._tmpdir = tempfile.mkdtemp(prefix="fakenovasonic-")
                self.tls = generate_tls(self._tmpdir)
            self.handler = StreamHandler(
                self.config, self.responder, clock=self.clock, journal=self.journal, faults=self.faults
            )
            core = FakeServerCore(
                ssl_context=self.tls.server_context(),
                handler=self.handler,
                host=self.config.host,
                port=self.config.port,
                allow_non_loopback=self.config.allow_non_loopback,
            )
            await core.start()
        except BaseException:
            await self.close()  # e.g. a refused bind: do not leave the generated CA key behind
            raise
        self.core = core
        return self

    async def close(self) -> None:
        if self.handler is not None:
            self.handler.shutting_down = True
        if self.core is not None:
            await self.core.close()
            self.core = None
            if self.replay is not None:
                report = self.replay.report()
                if not report.all_played:
                    logging.getLogger("fakeserver.replay").warning("%s", report)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    async def __aenter__(self) -> FakeNovaSonic:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ what clients need

    def _running(self) -> FakeServerCore:
        if self.core is None:
            raise RuntimeError("FakeNovaSonic is not running (use 'async with FakeNovaSonic() as fake:')")
        return self.core

    @property
    def endpoint(self) -> str:
        return self._running().endpoint

    @property
    def port(self) -> int:
        return self._running().port

    @property
    def ca_file(self) -> str:
        assert self.tls is not None
        return os.fspath(self.tls.ca_file)

    @property
    def region(self) -> str:
        return self.config.region

    @property
    def access_key_id(self) -> str:
        return self.config.published_credentials.access_key_id

    @property
    def secret_access_key(self) -> str:
        return self.config.published_credentials.secret_access_key

    @property
    def session_token(self) -> str | None:
        return self.config.published_credentials.session_token

    def info(self) -> dict[str, Any]:
        """The ready-file document (design §8): endpoint, CA, region and accepted credentials."""
        doc: dict[str, Any] = {
            "endpoint": self.endpoint,
            "ca_file": self.ca_file,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "port": self.port,
            "speed": self.config.speed,
        }
        if self.replay is not None:
            doc["cassette"] = self.replay.path
        if self.session_token:
            doc["session_token"] = self.session_token
        return doc

    @property
    def env(self) -> dict[str, str]:
        """Environment that points an unmodified client (SDK, LiveKit plugin) at this server."""
        env = {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.endpoint,
            "SSL_CERT_FILE": self.ca_file,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def add_fault(self, fault: str | Fault) -> Fault:
        """Add a fault (while running, it applies to streams opened afterwards).

        A ``t=<seconds>`` trigger needs a finite ``speed``: on an infinite clock service time
        never advances, so such a fault could never fire (a ``ValueError`` says so).
        """
        f = Fault.parse(fault) if isinstance(fault, str) else fault
        if f.trigger.kind == "time" and self.clock.unlimited:
            raise ValueError(
                f"fault {f} uses a time trigger, but speed is infinite (service time never advances); "
                "use a finite speed, or a client:/server:/client-events: trigger"
            )
        return self.faults.add(f)

    @property
    def tls_dir(self) -> Path | None:
        return Path(self._tmpdir) if self._tmpdir else None
