"""Frozen configuration of a fake server (h2 ``config.py`` style: validated values, safe defaults).

Every value the spec marks unknown (UNK) is a field here or in ``novasonic.rules.RulesConfig`` /
``novasonic.rules.Limits``, with the spec's best guess as default.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from novasonic.rules import Limits, RulesConfig
from novasonic.wire import Credentials

__all__ = ["ServerConfig", "generate_credentials"]


def generate_credentials() -> Credentials:
    """A fresh test key pair shaped like AWS's (20-char ``AKIA…`` id, 40-char secret)."""
    alphabet = string.ascii_uppercase + string.digits
    akid = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = "".join(secrets.choice(string.ascii_letters + string.digits + "+/") for _ in range(40))
    return Credentials(akid, secret)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    allow_non_loopback: bool = False
    """Binding anything but loopback needs this (the published credentials are not a secret)."""
    region: str = "us-east-1"
    credentials: tuple[Credentials, ...] = field(default_factory=lambda: (generate_credentials(),))
    """Accepted credentials; the first is published (ready file, ``FakeNovaSonic``)."""
    accept_any_key_id: bool = False
    """Accept any access key id, as long as the request and every chunk are signed with the first
    credentials' secret (the signature chain is still checked)."""
    verify_signatures: bool = True
    """Off: no SigV4 checks at all (unsigned/bearer clients). The journal then says ``anonymous``."""
    max_clock_skew: timedelta = timedelta(minutes=5)
    speed: float = 1.0
    """Scaled clock: service seconds per wall second (``math.inf``: as fast as causality allows)."""
    limits: Limits = field(default_factory=Limits)
    rules: RulesConfig = field(default_factory=RulesConfig)
    hold_headers_until_first_event: bool = True
    """The service sends HTTP 200 only once input events arrive (protocol.md §3.1 rule 10)."""
    concurrency_error: Literal["http", "stream"] = "http"
    """How going over ``limits.max_concurrent_streams_per_key`` is answered (UNK): an HTTP 429
    ThrottlingException at open, or an in-stream ``throttlingException`` after the first event."""
    unknown_model_message: str = "The provided model identifier is invalid."
    """Bedrock's text for an unknown model id (REP, InvokeModel)."""
    keep_audio: bool = False
    """Journal the audioInput events themselves (user voice, large); counts are always kept."""
    seed: int | None = None
    """Seed for service-side ids (sessionId, completionId, contentId, toolUseId, request ids);
    None = random. With a seed, ids depend only on the stream's index and its events."""
    input_end_grace_s: float = 30.0
    """Service seconds the responder may take to finish after the client's input ended."""
    input_end_wall_floor_s: float = 2.0
    """...but never less than this many wall seconds: on a fast clock (``math.inf``) the grace is
    0 wall seconds, and a responder still sending its last events (a replayed answer after
    ``sessionEnd``) must not be cut off by a busy machine."""
    max_journal_streams: int = 10_000

    def __post_init__(self) -> None:
        if not self.credentials:
            raise ValueError("ServerConfig.credentials must hold at least one key pair")
        if not (self.speed > 0):
            raise ValueError(f"speed must be > 0 (got {self.speed})")
        if self.concurrency_error not in ("http", "stream"):
            raise ValueError(f"concurrency_error must be 'http' or 'stream' (got {self.concurrency_error!r})")
        if self.max_journal_streams < 1:
            raise ValueError(f"max_journal_streams must be >= 1 (got {self.max_journal_streams})")
        if self.input_end_grace_s < 0:
            raise ValueError(f"input_end_grace_s must be >= 0 (got {self.input_end_grace_s})")
        if self.input_end_wall_floor_s < 0:
            raise ValueError(f"input_end_wall_floor_s must be >= 0 (got {self.input_end_wall_floor_s})")

    @property
    def published_credentials(self) -> Credentials:
        return self.credentials[0]

    def lookup(self, access_key_id: str) -> Credentials | None:
        for c in self.credentials:
            if c.access_key_id == access_key_id:
                return c
        if self.accept_any_key_id:
            first = self.credentials[0]
            return Credentials(access_key_id, first.secret_access_key, first.session_token)
        return None
