"""Source of the inner projects' ``conftest.py``: ``play(name)`` re-enacts a shipped cassette's
client side (``tools.sdk_driver.reenact``, the STOCK SDK client) against whatever *the environment*
points at (endpoint, CA, credentials, region: what the ``nova_sonic`` fixture applied)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = f'''
import asyncio
import os
from pathlib import Path

from novasonic.cassette import load_cassette
from tools.sdk_driver.reenact import run_stream

SHIPPED = Path({str(ROOT / "cassettes")!r})


def play(name):
    """Every stream of the shipped cassette NAME; returns the list of StreamRun."""
    env = os.environ  # nothing but the environment
    info = {{"endpoint": env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"], "ca_file": env["SSL_CERT_FILE"],
            "region": env["AWS_REGION"], "access_key_id": env["AWS_ACCESS_KEY_ID"],
            "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}}
    cassette = load_cassette(SHIPPED / f"{{name}}.jsonl")

    async def run():
        return [await run_stream(info, s, s.model_id or cassette.header.model_id) for s in cassette]
    return asyncio.run(run())
'''

#: The inner projects' ini: quiet about things that are not under test. (Inner runs in this process
#: find the toolkit already imported, so pytest cannot assertion-rewrite the plugin's distribution.)
INI = """[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    ignore::pytest.PytestAssertRewriteWarning
"""
