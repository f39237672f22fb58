"""``FakeNovaSonic`` lifecycle edge cases (no client needed)."""

from __future__ import annotations

import os

import pytest

from fakeserver import FakeNovaSonic


async def test_failed_start_removes_the_generated_tls_directory() -> None:
    """A refused bind must not leave the fresh CA (and its private key) behind in /tmp."""
    fake = FakeNovaSonic(host="0.0.0.0")
    with pytest.raises(ValueError, match="non-loopback"):
        await fake.start()
    assert fake.tls is not None
    assert not os.path.exists(fake.tls.ca_file)
    assert fake.tls_dir is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"concurrency_error": "tcp"}, "concurrency_error"),
        ({"max_journal_streams": 0}, "max_journal_streams"),
        ({"speed": 0}, "speed"),
        ({"input_end_grace_s": -1}, "input_end_grace_s"),
    ],
)
def test_server_config_rejects_bad_values(overrides, message) -> None:
    from fakeserver import ServerConfig

    with pytest.raises(ValueError, match=message):
        ServerConfig(**overrides)


@pytest.mark.parametrize(("spec", "message"), [("rst@client:audioInput@times=-1", "times must be"), ("rst@client:audioInput#0", "start at 1")])
def test_fault_rejects_bad_counts(spec, message) -> None:
    from fakeserver import Fault

    with pytest.raises(ValueError, match=message):
        Fault.parse(spec)
