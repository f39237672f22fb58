"""AWS credentials for the session's streams.

Each stream is opened with credentials asked from a ``CredentialsProvider`` at that moment, so
a recycle or a restart signs with fresh ones. The session also asks the provider for the expiry
and recycles before it (``RecyclePolicy.credentials_margin_s``), so a stream never outlives the
credentials that signed it (upstream: PR #4250, #5484).

- ``Credentials``: the key pair, optional session token and expiry (aware UTC datetime or None).
  Its repr never shows the secret or the token.
- ``StaticCredentials``: fixed credentials (tests, fake servers).
- ``CachedCredentials(fetch, margin_s=180, clock=...)``: calls ``fetch`` (sync or async) once and
  reuses the result until ``margin_s`` before its expiry; concurrent callers share one fetch.
- ``Boto3Credentials()``: the boto3 default chain (environment, shared files, SSO, container and
  instance roles…) through ``CachedCredentials``; the blocking boto3 call runs in a thread.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from .clock import Clock, SystemClock

__all__ = [
    "Credentials",
    "CredentialsProvider",
    "StaticCredentials",
    "CachedCredentials",
    "Boto3Credentials",
    "CredentialsError",
    "default_credentials",
]


class CredentialsError(Exception):
    """No usable credentials (nothing in the chain, or an incomplete key pair)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiry: datetime | None = None

    def __post_init__(self) -> None:
        if not self.access_key_id or not self.secret_access_key:
            raise CredentialsError("credentials need an access key id and a secret access key")
        if self.expiry is not None and self.expiry.tzinfo is None:
            object.__setattr__(self, "expiry", self.expiry.replace(tzinfo=UTC))

    def seconds_left(self, now: datetime) -> float | None:
        """Seconds until expiry (None: does not expire)."""
        return None if self.expiry is None else (self.expiry - now).total_seconds()


@runtime_checkable
class CredentialsProvider(Protocol):
    async def get_credentials(self) -> Credentials: ...


class StaticCredentials:
    def __init__(self, access_key_id: str, secret_access_key: str, session_token: str | None = None,
                 expiry: datetime | None = None) -> None:
        self._creds = Credentials(access_key_id, secret_access_key, session_token, expiry)

    async def get_credentials(self) -> Credentials:
        return self._creds

    def __repr__(self) -> str:
        return f"StaticCredentials({self._creds.access_key_id!r})"


Fetch = Callable[[], "Credentials | Awaitable[Credentials]"]


class CachedCredentials:
    """Caches what ``fetch`` returns until ``margin_s`` before its expiry (forever without one)."""

    def __init__(self, fetch: Fetch, *, margin_s: float = 180.0, clock: Clock | None = None) -> None:
        if margin_s < 0:
            raise ValueError("margin_s must be >= 0")
        self._fetch = fetch
        self.margin_s = margin_s
        self.clock: Clock = clock or SystemClock()
        self._cached: Credentials | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _fresh(self, creds: Credentials | None) -> bool:
        if creds is None:
            return False
        left = creds.seconds_left(self.clock.utcnow())
        return left is None or left > self.margin_s

    async def get_credentials(self) -> Credentials:
        if self._fresh(self._cached):
            assert self._cached is not None
            return self._cached
        async with self._lock:
            if not self._fresh(self._cached):
                result = self._fetch()
                if inspect.isawaitable(result):
                    result = await result
                if not isinstance(result, Credentials):
                    raise CredentialsError(f"the credentials fetch returned {type(result).__name__}, not Credentials")
                self.fetches += 1
                self._cached = result
            assert self._cached is not None
            return self._cached

    def invalidate(self) -> None:
        self._cached = None


class Boto3Credentials(CachedCredentials):
    """The boto3 default credential chain, cached until ``margin_s`` before expiry."""

    def __init__(self, *, session: Any = None, profile: str | None = None, margin_s: float = 180.0,
                 clock: Clock | None = None) -> None:
        self._session = session
        self._profile = profile
        super().__init__(self._load, margin_s=margin_s, clock=clock)

    async def _load(self) -> Credentials:
        return await asyncio.to_thread(self._load_sync)

    def _load_sync(self) -> Credentials:
        try:
            import boto3
        except ImportError as exc:  # pragma: no cover - boto3 is a dependency
            raise CredentialsError("boto3 is not installed; pass credentials=StaticCredentials(...)") from exc
        session = self._session or boto3.Session(profile_name=self._profile)
        found = session.get_credentials()
        if found is None:
            raise CredentialsError("no AWS credentials found in the boto3 chain (environment, shared files, roles)")
        frozen = found.get_frozen_credentials()
        expiry = getattr(found, "_expiry_time", None)  # RefreshableCredentials only
        if not frozen.access_key or not frozen.secret_key:
            raise CredentialsError("the AWS credentials found are incomplete")
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None,
                           expiry if isinstance(expiry, datetime) else None)


def default_credentials(clock: Clock | None = None, margin_s: float = 180.0) -> CredentialsProvider:
    return Boto3Credentials(clock=clock, margin_s=margin_s)
