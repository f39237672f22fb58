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
