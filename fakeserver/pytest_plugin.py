"""pytest plugin: Nova Sonic cassettes the pytest-recording way (entry point ``pytest11``: ``novasonic``).

::

    @pytest.mark.nova_cassette                       # cassettes/<module>/<test>.jsonl next to the test
    async def test_weather(nova_sonic):
        agent = make_agent()                          # builds its client from the environment
        ...                                           # (the fixture pointed it at the fake server)
        assert nova_sonic.journal.last().end == "completed"

    @pytest.mark.nova_cassette("weather_paris", speed=4.0, match_on=["default", "text"])
    def test_other(nova_sonic): ...

    pytest --record-mode=once                         # record what is missing, through the capture proxy

What a test gets
----------------
``nova_sonic`` (function scope; also started automatically for a test with the marker) yields a
:class:`NovaSonic`: ``endpoint``, ``ca_file``, ``region``, ``access_key_id``,
``secret_access_key``, ``env`` (already applied to ``os.environ`` for the test and restored
after it, unless ``apply_env=False``), ``info()``, ``client()`` (a stock SDK client for it),
``journal`` (every stream: client events, service frames, how it ended), ``mode`` (``replay``,
``record``, ``new_episodes`` or ``disabled``), ``record_mode`` and ``cassette`` (a
:class:`NovaCassette`: ``path``, ``all_played``, ``play_count``, ``report()``, ``len()``,
``load()``). Each test gets its own server on its own port (port 0, its own throw-away CA):
nothing is shared between tests, so ``pytest -n N`` (xdist) works unchanged.
``nova_fake_server`` (session scope, one per xdist worker) is a plain scripted fake server for
tests that need a Nova endpoint but no cassette.

Servers run in a background thread with their own event loop, so the fixtures are plain
(synchronous) fixtures that work for sync tests, pytest-asyncio and anyio tests, and tests that
start the agent in a subprocess (give it ``nova_sonic.env``).

Record modes (pytest-recording's names and meanings; default ``none``)
-----------------------------------------------------------------------
============== ===========================================================================
``none``        replay only; a missing cassette fails the test (how to record it is said)
``once``        record when the cassette does not exist, else replay
``new_episodes`` replay the recorded streams in order; streams the test opens beyond them go
                live through the capture proxy and are appended to the cassette. A stream
                that diverges from its recording is a replay mismatch, not a new episode: a
                conversation cannot be continued live from the middle of a recorded one
``all``         record everything again; the new recording replaces the cassette when the test
                ends (until then the old one is kept, the new one is ``<name>.jsonl.recording``)
``rewrite``     delete the cassette (and its audio sidecar), then record
============== ===========================================================================

Recording goes through :class:`tools.capture.CaptureProxy` to the real service (region from
``--nova-region``/``AWS_REGION``, boto3 credential chain), or to any endpoint given by
``--nova-upstream URL [--nova-upstream-ca FILE]`` or ``--nova-upstream-ready-file FILE`` (a fake
server's ready file), or the ini keys ``nova_upstream``, ``nova_upstream_ca``,
``nova_upstream_ready_file``.

Where the record mode comes from, highest first: ``--record-mode`` on the command line; the
marker's ``record_mode=``; the ``nova_config`` fixture; pytest-recording's ``vcr_config``
fixture; the ini key ``nova_record_mode``; ``none``. (pytest-recording 0.14 lets ``vcr_config``
beat the command line; users expect the command line to win, so here it does.) The option
``--record-mode`` is pytest-recording's when it is installed (never registered twice); this
plugin registers the same option only when pytest-recording is not there.
``--disable-recording`` (pytest-recording) switches the fixtures off: no server, no environment
change, no guard: the test talks to whatever its client is configured for.

Cassette paths: ``<test dir>/cassettes/<module>/<[Class.]test>.jsonl``, through pytest-recording's
``vcr_cassette_dir`` and ``default_cassette_name`` fixtures when it is installed (so
``@pytest.mark.default_cassette`` and conftest overrides apply), else computed the same way.
Characters not allowed in file names become ``-``; names longer than 150 characters are cut
and get an 8-character hash. ``nova_cassette("name")`` names the cassette (relative to the
cassette directory; ``.jsonl`` added when there is no suffix); ``nova_cassette_dir`` and
``nova_cassette_name`` fixtures can be overridden too.

Marker/config keys: ``record_mode``, ``speed`` (replay speed, default ``math.inf``: as fast as
causality allows; ini ``nova_speed``), ``match_on``, ``replay_config``, ``strict`` (default
True: a replay that did not play every recorded interaction fails the test at teardown with
the replay report; ini ``nova_strict``), ``apply_env``, ``upstream``, ``upstream_ca``,
``upstream_ready_file``, ``region``, ``user_audio``, ``assistant_audio``, ``meta``.

Never reaching AWS by accident
------------------------------
The stock client's CRT transport opens its sockets in native code, so socket-level guards
(pytest-recording's ``--block-network``) do not see it. While a ``nova_sonic`` fixture is active
(and for every test when ``--block-network`` or ``@pytest.mark.block_network`` is used), the
Python-level entry points of the SDK's HTTP transports (``smithy_http``'s CRT and aiohttp
clients' ``send``) refuse requests to a ``bedrock*.amazonaws.com`` host with
:class:`NovaSonicNetworkBlocked` (the SDK may wrap it; its message says what to do); nothing on
the wire is touched. If the client swallows that error (retries, logs), a ``nova_sonic`` test
still fails at teardown with the same message. The capture proxy's own upstream client is the
one exception while recording.
(The upstream livekit-plugins-aws hard-codes the regional URL and is caught by this guard in
replay mode: give it a client that honours ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, e.g.
``novasonic.livekit``.)

This module imports only the standard library and pytest at load time: it is loaded by every
pytest run in an environment where the toolkit is installed and must cost nothing when unused.
Being an adapter (design §2), it sits above both ``fakeserver`` and ``tools.capture`` and imports
them when a fixture runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import re
import threading
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "RECORD_MODES",
    "NovaSonic",
    "NovaCassette",
    "NovaSonicNetworkBlocked",
    "nova_sonic",
    "nova_fake_server",
    "nova_config",
    "nova_cassette_dir",
    "nova_cassette_name",
    "nova_record_mode",
]

RECORD_MODES = ("once", "new_episodes", "none", "all", "rewrite")
MARKER = "nova_cassette"
CONFIG_KEYS = frozenset({
    "record_mode", "speed", "match_on", "replay_config", "strict", "apply_env", "upstream", "upstream_ca",
    "upstream_ready_file", "region", "user_audio", "assistant_audio", "meta",
})
_FORBIDDEN = r"<>?%*:|\"'/\\"
_MAX_NAME = 150
_START_TIMEOUT = 30.0
_BEDROCK_HOST = re.compile(r"(^|\.)bedrock[a-z0-9-]*(\.[a-z0-9-]+)*\.amazonaws\.com(\.cn)?\.?$", re.I)
_ENV_DROP = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")

_report_key = pytest.StashKey[dict[str, pytest.TestReport]]()
_recorded_key = pytest.StashKey[list[str]]()


class NovaSonicNetworkBlocked(RuntimeError):
    """A client tried to reach a real Bedrock endpoint while a Nova Sonic fixture was in charge."""


# =========================================================================== options


def _recording_registered(pm: pytest.PytestPluginManager) -> bool:
    return pm.has_plugin("recording") or pm.has_plugin("pytest_recording.plugin")


def _add_record_mode(parser: pytest.Parser) -> None:
    parser.getgroup("recording").addoption(
        "--record-mode", action="store", default=None, choices=RECORD_MODES,
        help='Record mode of Nova Sonic cassettes (pytest-recording\'s names; default "none"). '
             "Registered by the novasonic plugin because pytest-recording is not installed.",
    )


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("novasonic", "Nova Sonic cassettes (fakeserver.pytest_plugin)")
    group.addoption("--nova-upstream", metavar="URL", default=None,
                    help="record against this https:// endpoint instead of real Bedrock")
    group.addoption("--nova-upstream-ca", metavar="FILE", default=None, help="CA file for --nova-upstream")
    group.addoption("--nova-upstream-ready-file", metavar="FILE", default=None,
                    help="record against the server described by this ready file (endpoint, CA, keys)")
    group.addoption("--nova-region", default=None, help="AWS region to record in (default: AWS_REGION, us-east-1)")
    parser.addini("nova_record_mode", "Default record mode of Nova Sonic cassettes (lowest priority)", default="")
    parser.addini("nova_speed", "Replay speed of Nova Sonic cassettes (default inf: as fast as causality allows)",
                  default="")
    parser.addini("nova_strict", "Fail a test whose replay did not play every recorded interaction",
                  type="bool", default=True)
    parser.addini("nova_upstream", "Endpoint to record against instead of real Bedrock", default="")
    parser.addini("nova_upstream_ca", "CA file for nova_upstream", default="")
    parser.addini("nova_upstream_ready_file", "Ready file of the server to record against", default="")
    parser.addini("nova_region", "AWS region to record in", default="")
    # --record-mode belongs to pytest-recording; adding it a second time crashes pytest. Decide
    # once every command-line and entry-point plugin is registered (pytest_load_initial_conftests)
    # unless that moment has passed (this plugin was named in a conftest's pytest_plugins).
    if not _recording_registered(pluginmanager) and getattr(pluginmanager, "_conftest_plugins", None):
        _add_record_mode(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    if not _recording_registered(early_config.pluginmanager):
        with contextlib.suppress(ValueError):  # already added (conftest path above)
            _add_record_mode(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name=None, **config): run the test against a fake Nova Sonic server replaying the cassette "
        "(or record it, per --record-mode); keys: " + ", ".join(sorted(CONFIG_KEYS)),
    )
    config.stash[_recorded_key] = []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_report_key, {})[report.when] = report
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    recorded = config.stash.get(_recorded_key, [])
    if recorded:
        terminalreporter.write_sep("-", "Nova Sonic cassettes recorded")
        for line in recorded:
            terminalreporter.write_line(line)


# =========================================================================== configuration


@pytest.fixture
def nova_config() -> dict[str, Any]:
    """Shared settings for every Nova Sonic cassette of its scope (override in a conftest);
    the marker's keywords go over it."""
    return {}


def _optional_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        return None


@pytest.fixture(scope="module")
def nova_cassette_dir(request: pytest.FixtureRequest) -> str:
    """``<test dir>/cassettes/<module>``: pytest-recording's ``vcr_cassette_dir`` when installed."""
    shared = _optional_fixture(request, "vcr_cassette_dir")
    if shared is not None:
        return str(shared)
    path = Path(str(request.node.path))
    return str(path.parent / "cassettes" / path.stem)


def safe_name(name: str) -> str:
    """A file-name-safe cassette name: forbidden characters → ``-``; long names cut + hashed."""
    for ch in _FORBIDDEN:
        name = name.replace(ch, "-")
    if len(name) > _MAX_NAME:
        digest = hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
        name = f"{name[:_MAX_NAME - 9]}-{digest}"
    return name


@pytest.fixture
def nova_cassette_name(request: pytest.FixtureRequest) -> str:
    """``[Class.]test_name``: pytest-recording's ``default_cassette_name`` when installed (it
    honours ``@pytest.mark.default_cassette``)."""
    shared = _optional_fixture(request, "default_cassette_name")
    if shared is not None:
        return safe_name(str(shared))
    marker = request.node.get_closest_marker("default_cassette")
    if marker is not None and marker.args:
        return safe_name(str(marker.args[0]))
    cls = request.cls
    return safe_name(f"{cls.__name__}.{request.node.name}" if cls is not None else request.node.name)


def _marker_config(request: pytest.FixtureRequest) -> tuple[str | None, dict[str, Any]]:
    """The closest marker wins per key (pytest-recording's merge order)."""
    name: str | None = None
    merged: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            if len(marker.args) > 1:
                raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one cassette name (got {marker.args!r})")
            name = str(marker.args[0])
        merged.update(marker.kwargs)
    unknown = set(merged) - CONFIG_KEYS
    if unknown:
        raise pytest.UsageError(f"@pytest.mark.{MARKER}: unknown keys {sorted(unknown)}; known: {sorted(CONFIG_KEYS)}")
    return name, merged


def _settings(request: pytest.FixtureRequest) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    name, marker = _marker_config(request)
    config = dict(request.getfixturevalue("nova_config") or {})
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise pytest.UsageError(f"nova_config: unknown keys {sorted(unknown)}; known: {sorted(CONFIG_KEYS)}")
    return name, marker, config


def resolve_record_mode(request: pytest.FixtureRequest) -> str:
    """Command line > marker > ``nova_config`` > ``vcr_config`` > ini ``nova_record_mode`` > ``none``."""
    _, marker, config = _settings(request)
    vcr = _optional_fixture(request, "vcr_config") or {}
    ini = str(request.config.getini("nova_record_mode") or "").strip()
    for source, value in (
        ("--record-mode", request.config.getoption("record_mode", default=None)),
        (f"@pytest.mark.{MARKER}(record_mode=...)", marker.get("record_mode")),
        ("nova_config", config.get("record_mode")),
        ("vcr_config", vcr.get("record_mode") if isinstance(vcr, Mapping) else None),
        ("nova_record_mode (ini)", ini or None),
    ):
        if value is not None:
            mode = getattr(value, "value", value)  # a vcr.record_mode.RecordMode enum works too
            if mode not in RECORD_MODES:
                raise pytest.UsageError(f"{source}: record mode {mode!r} is not one of {', '.join(RECORD_MODES)}")
            return str(mode)
    return "none"


@pytest.fixture
def nova_record_mode(request: pytest.FixtureRequest) -> str:
    """This test's record mode (see the module doc for the precedence)."""
    return resolve_record_mode(request)


# =========================================================================== the guard


class _Guard:
    """Refuses SDK requests to real Bedrock hosts while active (see the module doc)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owners: list[Any] = []
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        targets = []
        with contextlib.suppress(ImportError):
            from smithy_http.aio.crt import AWSCRTHTTPClient

            targets.append(AWSCRTHTTPClient)
        with contextlib.suppress(ImportError):
            from smithy_http.aio.aiohttp import AIOHTTPClient

            targets.append(AIOHTTPClient)
        for cls in targets:
            if not getattr(cls.send, "_nova_guarded", False):
                cls.send = _guarded(cls.send)

    def check(self, transport: Any, request: Any) -> None:
        owners = self.owners
        if not owners or getattr(transport, "_nova_capture_observed", False):
            return
        dest = getattr(request, "destination", None)
        host = str(getattr(dest, "host", "") or "")
        if not _BEDROCK_HOST.search(host):
            return
        owner = owners[-1]
        url = f"{getattr(dest, 'scheme', 'https')}://{host}"
        error = NovaSonicNetworkBlocked(owner.blocked_message(url))
        owner.violations.append(str(error))
        raise error

    def push(self, owner: Any) -> None:
        self.install()
        with self.lock:
            self.owners.append(owner)

    def pop(self, owner: Any) -> None:
        with self.lock:
            if owner in self.owners:
                self.owners.remove(owner)


_GUARD = _Guard()


def _guarded(original: Any) -> Any:
    """``send`` that asks the guard first (nothing else changes: same arguments, same result)."""

    async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        _GUARD.check(self, request)
        return await original(self, request, *args, **kwargs)

    send._nova_guarded = True  # type: ignore[attr-defined]
    send.__wrapped__ = original  # type: ignore[attr-defined]
    return send


class _BlockNetworkOwner:
    """The guard's owner for a test run with ``--block-network`` / ``@pytest.mark.block_network``."""

    def __init__(self) -> None:
        self.violations: list[str] = []

    def blocked_message(self, url: str) -> str:
        return (f"network access is blocked (--block-network / @pytest.mark.block_network): this test tried to "
                f"reach the real Bedrock endpoint {url}. Use the nova_sonic fixture (a fake server replaying "
                "a cassette) or allow the network for this test.")


@pytest.fixture(autouse=True)
def _nova_guard_and_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    """Starts ``nova_sonic`` for tests with the marker; guards ``--block-network`` runs."""
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("nova_sonic")
    blocking = request.node.get_closest_marker("block_network") is not None or \
        bool(request.config.getoption("block_network", default=False))
    if not blocking:
        yield
        return
    owner = _BlockNetworkOwner()  # like pytest-recording's block: the error is raised, nothing more
    _GUARD.push(owner)
    try:
        yield
    finally:
        _GUARD.pop(owner)


# =========================================================================== running servers


class _LoopThread:
    """An event loop in a daemon thread: servers live there, whatever the test's own loop is."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = _START_TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


class NovaCassette:
    """The cassette of a test, VCR-style: ``path``, ``all_played``, ``play_count``, ``report()``."""

    def __init__(self, path: Path, mode: str, replay: Any = None) -> None:
        self.path = path
        self.mode = mode
        self._replay = replay

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def recording(self) -> bool:
        return self.mode in ("record", "new_episodes")

    def load(self) -> Any:
        from novasonic.cassette import load_cassette

        return load_cassette(self.path)

    def __len__(self) -> int:
        return len(self.load()) if self.exists else 0

    @property
    def play_count(self) -> int:
        """Recorded streams the replay served so far (0 when recording)."""
        if self._replay is None:
            return 0
        return sum(1 for s in self._replay.report().streams if s.cassette_stream is not None)

    @property
    def all_played(self) -> bool:
        """Every recorded interaction was played and nothing mismatched (True when recording)."""
        return True if self._replay is None or self.mode == "new_episodes" else bool(self._replay.all_played)

    def report(self) -> Any:
        """The replay report (``str()`` is readable), or a one-line note when recording."""
        if self._replay is None:
            return f"{self.path}: recorded ({self.mode}), nothing replayed"
        return self._replay.report()

    def __repr__(self) -> str:
        return f"NovaCassette({str(self.path)!r}, mode={self.mode!r})"


class NovaSonic:
    """What a test needs to talk to the fake server / capture proxy of its cassette."""

    def __init__(self, *, mode: str, record_mode: str, cassette: NovaCassette, server: Any = None,
                 fake: Any = None, proxy: Any = None) -> None:
        self.mode = mode
        self.record_mode = record_mode
        self.cassette = cassette
        self.server = server
        self.fake = fake
        self.proxy = proxy
        self.violations: list[str] = []

    def _need(self) -> Any:
        if self.server is None:
            raise RuntimeError("recording is disabled (--disable-recording): there is no Nova Sonic server")
        return self.server

    @property
    def endpoint(self) -> str:
        return str(self._need().endpoint)

    @property
    def ca_file(self) -> str:
        return str(self._need().ca_file)

    @property
    def region(self) -> str:
        return str(self._need().region)

    @property
    def access_key_id(self) -> str:
        return str(self._need().access_key_id)

    @property
    def secret_access_key(self) -> str:
        return str(self._need().secret_access_key)

    @property
    def session_token(self) -> str | None:
        return None

    @property
    def env(self) -> dict[str, str]:
        return dict(self._need().env) if self.server is not None else {}

    def info(self) -> dict[str, Any]:
        return dict(self._need().info())

    @property
    def journal(self) -> Any:
        return self._need().journal

    @property
    def all_played(self) -> bool:
        return self.cassette.all_played

    def report(self) -> Any:
        return self.cassette.report()

    async def client(self) -> Any:
        """A stock ``aws_sdk_bedrock_runtime`` client (CRT) for this server, trusting its CA."""
        from novasonic.transport import client_from_info

        return await client_from_info(self.info())

    def blocked_message(self, url: str) -> str:
        if self.mode == "replay":
            what = (f"Nova Sonic replay (record mode {self.record_mode!r}, cassette {self.cassette.path}): this test "
                    f"tried to reach the real Bedrock endpoint {url}. A replay never goes to AWS.")
        else:
            what = (f"Nova Sonic recording (record mode {self.record_mode!r}): this test tried to reach {url} "
                    "directly instead of through the capture proxy, so it would not be recorded.")
        return (what + " Build the client from the environment (this fixture set AWS_ENDPOINT_URL_BEDROCK_RUNTIME, "
                "SSL_CERT_FILE and test credentials) or from nova_sonic.endpoint / nova_sonic.info()"
                + ("; to record a new cassette run with --record-mode=once." if self.mode == "replay" else "."))

    def __repr__(self) -> str:
        where = self.server.endpoint if self.server is not None else "-"
        return f"NovaSonic(mode={self.mode!r}, record_mode={self.record_mode!r}, endpoint={where!r})"


def _failed(item: pytest.Item) -> bool:
    reports = item.stash.get(_report_key, {})
    return any(r.failed for r in reports.values())


def _float(value: Any, what: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{what}: {value!r} is not a number") from None
    if not f > 0:
        raise pytest.UsageError(f"{what}: must be > 0 (inf: as fast as causality allows)")
    return f


def _cassette_path(request: pytest.FixtureRequest, name: str | None) -> Path:
    directory = Path(request.getfixturevalue("nova_cassette_dir"))
    if name is None:
        name = request.getfixturevalue("nova_cassette_name")
    path = Path(name)
    if not path.is_absolute():
        path = directory / path
    if not path.suffix:
        path = path.with_name(path.name + ".jsonl")
    return path


def _upstream(request: pytest.FixtureRequest, cfg: Mapping[str, Any]) -> Any:
    """Where a recording goes: command line > marker/config > ini > real Bedrock."""
    from tools.capture import Upstream

    opt = request.config.getoption
    ini = request.config.getini
    ready = opt("nova_upstream_ready_file") or cfg.get("upstream_ready_file") or ini("nova_upstream_ready_file")
    url = opt("nova_upstream") or cfg.get("upstream") or ini("nova_upstream")
    ca = opt("nova_upstream_ca") or cfg.get("upstream_ca") or ini("nova_upstream_ca")
    region = (opt("nova_region") or cfg.get("region") or ini("nova_region") or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    if ready:
        return Upstream.from_ready_file(ready)
    return Upstream(region=region, endpoint=url or None, ca_file=ca or None)


def _writer_options(cfg: Mapping[str, Any]) -> Any:
    from novasonic.cassette import WriterOptions

    over = {k: cfg[k] for k in ("user_audio", "assistant_audio") if cfg.get(k)}
    return WriterOptions(**over)


@pytest.fixture
def nova_sonic(request: pytest.FixtureRequest, nova_record_mode: str) -> Iterator[NovaSonic]:
    """A fake Nova Sonic server replaying this test's cassette, or the capture proxy recording it
    (see the module doc). The environment points an unmodified client at it during the test."""
    name, marker, config = _settings(request)
    cfg: dict[str, Any] = {**config, **marker}
    path = _cassette_path(request, name)
    mode = nova_record_mode
    if request.config.getoption("disable_recording", default=False):
        yield NovaSonic(mode="disabled", record_mode=mode, cassette=NovaCassette(path, "disabled"))
        return

    exists = path.exists()
    if mode == "none" and not exists:
        pytest.fail(
            f"Nova Sonic cassette not found: {path} (record mode 'none' replays only). Record it with "
            f"--record-mode=once (against real Bedrock, or --nova-upstream/--nova-upstream-ready-file).",
            pytrace=False,
        )
    if mode in ("none", "once") and exists:
        kind = "replay"
    elif mode == "new_episodes" and exists:
        kind = "new_episodes"
    else:
        kind = "record"

    strict = cfg.get("strict", request.config.getini("nova_strict"))
    speed = _float(cfg.get("speed", request.config.getini("nova_speed") or math.inf), "speed")
    runner = _LoopThread(f"nova-sonic-{request.node.name}"[:60])
    fake = proxy = None
    target = path
    try:
        if kind in ("replay", "new_episodes"):
            from fakeserver import FakeNovaSonic

            kwargs: dict[str, Any] = {"cassette": path, "speed": speed}
            if cfg.get("match_on") is not None:
                kwargs["match_on"] = cfg["match_on"]
            if cfg.get("replay_config") is not None:
                kwargs["replay_config"] = cfg["replay_config"]
            fake = FakeNovaSonic(**kwargs)  # loads (and validates) the cassette: its errors name the line
            runner.run(fake.start())
        if kind in ("record", "new_episodes"):
            from tools.capture import CaptureProxy, Upstream

            upstream = _upstream(request, cfg)
            meta = {"test": request.node.nodeid, **(cfg.get("meta") or {})}
            proxy_kwargs: dict[str, Any] = {"upstream": upstream, "options": _writer_options(cfg), "meta": meta}
            if kind == "new_episodes":
                assert fake is not None
                proxy_kwargs.update(append=True, replay_first=(Upstream.from_info(fake.info()), _stream_count(path)))
            elif mode == "all" and exists:
                target = path.with_name(path.name + ".recording")
                _remove_cassette(target)
                proxy_kwargs["overwrite"] = True
            else:  # once (missing), rewrite, all (missing), new_episodes (missing)
                _remove_cassette(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            proxy = CaptureProxy(target, **proxy_kwargs)
            runner.run(proxy.start())
    except BaseException:
        with contextlib.suppress(Exception):
            if proxy is not None:
                runner.run(proxy.close())
            if fake is not None:
                runner.run(fake.close())
        runner.stop()
        raise

    server = proxy if proxy is not None else fake
    cassette = NovaCassette(path, kind, replay=fake.replay if fake is not None else None)
    nova = NovaSonic(mode=kind, record_mode=mode, cassette=cassette, server=server, fake=fake, proxy=proxy)
    mp = pytest.MonkeyPatch()
    if cfg.get("apply_env", True):
        for key in _ENV_DROP:
            mp.delenv(key, raising=False)
        for key, value in nova.env.items():
            mp.setenv(key, value)
    _GUARD.push(nova)
    try:
        yield nova
    finally:
        _GUARD.pop(nova)
        mp.undo()
        problems: list[str] = []
        try:
            if proxy is not None:
                runner.run(proxy.close())
                if proxy.error is not None:
                    problems.append(f"the recording of {path} failed: {proxy.error}")
            if fake is not None:
                runner.run(fake.close())
        finally:
            runner.stop()
        if proxy is not None:
            if target != path and target.exists():
                _replace_cassette(target, path)
            line = f"{path} ({mode}): {proxy.stats.line()}" if path.exists() else \
                f"{path} ({mode}): nothing recorded (no stream reached the upstream)"
            request.config.stash.setdefault(_recorded_key, []).append(line)
        test_failed = _failed(request.node)
        if nova.violations and not test_failed:
            problems.insert(0, nova.violations[0])
        if kind == "replay" and strict and not test_failed and fake is not None and not fake.replay.all_played:
            problems.append(f"the test did not play its whole cassette (strict; strict=False allows it):\n"
                            f"{fake.replay.report()}")
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


def _stream_count(path: Path) -> int:
    from novasonic.cassette import load_cassette

    return len(load_cassette(path, validate=False))


def _remove_cassette(path: Path) -> None:
    from novasonic.cassette import sidecar_path_for

    for p in (path, sidecar_path_for(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _replace_cassette(new: Path, path: Path) -> None:
    """``all``: the fresh recording takes the cassette's place (sidecar included)."""
    from novasonic.cassette import sidecar_path_for

    new_side, old_side = sidecar_path_for(new), sidecar_path_for(path)
    os.replace(new, path)
    if new_side.exists():
        os.replace(new_side, old_side)
    else:
        with contextlib.suppress(FileNotFoundError):
            old_side.unlink()


@pytest.fixture(scope="session")
def nova_fake_server() -> Iterator[Any]:
    """One scripted fake Nova Sonic server per test session (per xdist worker): ``endpoint``,
    ``ca_file``, ``env``, ``info()``, ``journal``. For tests that need an endpoint, not a cassette."""
    from fakeserver import FakeNovaSonic

    runner = _LoopThread("nova-fake-server")
    fake = FakeNovaSonic()
    try:
        runner.run(fake.start())
        yield fake
    finally:
        with contextlib.suppress(Exception):
            runner.run(fake.close())
        runner.stop()
