"""Credentials: cached until shortly before expiry (ManualClock), boto3 chain, secrets hidden."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from novasonic.session import Boto3Credentials, CachedCredentials, Credentials, CredentialsError, ManualClock


async def test_cached_until_margin_before_expiry() -> None:
    clock = ManualClock()
    calls: list[int] = []

    async def fetch() -> Credentials:
        calls.append(1)
        await asyncio.sleep(0)
        return Credentials(f"AKID{len(calls)}", "secret", "token", clock.utcnow() + timedelta(seconds=600))

    provider = CachedCredentials(fetch, margin_s=180, clock=clock)
    first = await asyncio.gather(*(provider.get_credentials() for _ in range(5)))
    assert {c.access_key_id for c in first} == {"AKID1"} and len(calls) == 1  # one shared fetch
    await clock.advance(419)
    assert (await provider.get_credentials()).access_key_id == "AKID1"
    await clock.advance(2)  # now 179 s before expiry: inside the margin
    assert (await provider.get_credentials()).access_key_id == "AKID2"
    assert provider.fetches == 2


async def test_static_credentials_from_a_sync_fetch_never_expire() -> None:
    clock = ManualClock()
    provider = CachedCredentials(lambda: Credentials("AKID", "secret"), clock=clock)
    await provider.get_credentials()
    await clock.advance(10**6)
    await provider.get_credentials()
    assert provider.fetches == 1


async def test_boto3_chain_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "envtoken")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    creds = await Boto3Credentials().get_credentials()
    assert (creds.access_key_id, creds.secret_access_key, creds.session_token) == (
        "AKIAENVEXAMPLE", "envsecret", "envtoken")
    assert creds.expiry is None


async def test_boto3_chain_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(CredentialsError, match="no AWS credentials"):
        await Boto3Credentials().get_credentials()


def test_repr_hides_secrets_and_incomplete_pairs_fail() -> None:
    c = Credentials("AKID", "s3cr3t", "t0ken")
    assert "s3cr3t" not in repr(c) and "t0ken" not in repr(c)
    with pytest.raises(CredentialsError):
        Credentials("AKID", "")
