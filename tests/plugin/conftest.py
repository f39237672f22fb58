"""The pytest plugin (``fakeserver.pytest_plugin``) tested with ``pytester``: inner pytest runs in
a temporary directory, in this process (``runpytest``) or in a subprocess (xdist, plugin loading).

``pytest_plugins = ["pytester"]`` is only allowed in the root conftest, so the plugin is
registered from here instead. Fixtures:

- ``cassette_in(pytester, name, module, test)``: copies a shipped cassette to the default path
  ``cassettes/<module>/<test>.jsonl`` of an inner test;
- ``upstream(cassette)``: ``python -m fakeserver serve --cassette ...`` as the recording upstream;
  returns its ready file (for ``--nova-upstream-ready-file``). Stopped at teardown.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# In-process inner runs (``runpytest``) restore ``sys.modules`` afterwards; numpy (and the CRT)
# cannot be imported twice in one process, so everything the inner runs use is imported here,
# before any snapshot is taken.
import fakeserver.api  # noqa: F401,E402
import fakeserver.pytest_plugin  # noqa: F401,E402
import novasonic.transport  # noqa: F401,E402
import tools.capture  # noqa: F401,E402
import tools.sdk_driver.reenact  # noqa: F401,E402

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "cassettes"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@pytest.fixture
def cassette_in() -> Callable[..., Path]:
    def copy(pytester: pytest.Pytester, name: str, module: str, test: str) -> Path:
        dest = pytester.path / "cassettes" / module / f"{test}.jsonl"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHIPPED / f"{name}.jsonl", dest)
        return dest

    return copy


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    procs: list[subprocess.Popen] = []

    def start(cassette: str) -> Path:
        ready = tmp_path / f"upstream-{len(procs)}.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "fakeserver", "serve", "--cassette", str(SHIPPED / f"{cassette}.jsonl"),
             "--speed", "inf", "--ready-file", str(ready), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the upstream fake server did not start"
            time.sleep(0.05)
        return ready

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
