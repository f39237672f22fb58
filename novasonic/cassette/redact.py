"""Redaction: the one place that decides what may never reach a cassette.

Every writer (``CassetteWriter``, ``cassette_from_journal``, the capture proxy to come) passes
headers, metadata and free text through these functions, so there is a single list to review
(httpx ``_obfuscate_sensitive_headers``; scrubbing on by default, unlike VCR.py's opt-in filters).

- ``redact_mapping(mapping)``: a copy of a header/metadata mapping, recursively, where every
  sensitive key's value is replaced by ``"[redacted]"`` and every string is passed through
  ``redact_text``. Sensitive keys: SigV4 and credential headers (``authorization``,
  ``x-amz-security-token``, ``x-amz-date``, ``x-amz-content-sha256``, the event-stream
  ``:chunk-signature`` and ``:date``), access key ids, secret keys, session tokens, and any key
  whose name says secret, password, signature, credential or …token.
- ``redact_text(text)``: removes secrets recognisable by their shape from free text (access key
  ids ``AKIA…``/``ASIA…``, ``Signature=<hex>``, ``Credential=<id>/…``, ``Bearer <token>``,
  ``aws_secret_access_key = …`` assignments).
- ``assert_clean(text, secrets)``: the self-check. Raises ``CassetteSecretError`` naming the
  line if any of the given secret values (the credentials used while recording) appears in the
  text. ``CassetteWriter(options=WriterOptions(secrets=...))`` runs it on every line before it
  is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import CassetteSecretError

__all__ = ["REDACTED", "SENSITIVE_KEYS", "is_sensitive_key", "redact_text", "redact_mapping", "assert_clean"]

REDACTED = "[redacted]"

#: Exact header/metadata names that never reach a cassette (compared lower-case, ``_`` → ``-``).
SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-amz-security-token",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-credential",
        "x-amz-signature",
        ":chunk-signature",
        ":date",
        "aws-access-key-id",
        "access-key-id",
        "accesskeyid",
        "key-id",
        "aws-secret-access-key",
        "secret-access-key",
        "secretaccesskey",
        "aws-session-token",
        "session-token",
        "sessiontoken",
        "security-token",
        "cookie",
        "set-cookie",
    }
)
_SENSITIVE_PARTS = ("secret", "password", "passwd", "signature", "credential", "authorization", "access-key")

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # AWS access key ids (long-term AKIA…, temporary ASIA…, and the other documented prefixes).
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b"), REDACTED),
    # SigV4 pieces as they appear in an Authorization header or a presigned URL.
    (re.compile(r"(Signature=)[0-9a-fA-F]{16,}"), r"\1" + REDACTED),
    (re.compile(r"(X-Amz-Signature=)[0-9a-fA-F]{16,}", re.I), r"\1" + REDACTED),
    (re.compile(r"(Credential=)[^,\s&]+"), r"\1" + REDACTED),
    (re.compile(r"(X-Amz-Security-Token=)[^&\s]+", re.I), r"\1" + REDACTED),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + REDACTED),
    # key = value / key: value assignments of secrets in logs or config dumps.
    (
        re.compile(
            r"((?:aws_)?(?:secret_access_key|session_token|security_token)\s*[=:]\s*[\"']?)[^\s\"',;]+",
            re.I,
        ),
        r"\1" + REDACTED,
    ),
)


def _norm(key: str) -> str:
    return key.strip().lower().replace("_", "-")


def is_sensitive_key(key: str) -> bool:
    """True for a header or metadata name whose value must not be recorded."""
    k = _norm(key)
    if k in SENSITIVE_KEYS:
        return True
    if any(part in k for part in _SENSITIVE_PARTS):
        return True
    # ``x-amz-security-token``, ``session-token``, ``access-token``, ``id-token``… but not
    # ``max-tokens`` or ``total-tokens``.
    return k.endswith("token") or k.endswith("key-id")


def redact_text(text: str) -> str:
    """``text`` with secrets recognisable by their shape replaced by ``[redacted]``."""
    for pattern, repl in _TEXT_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return value


def redact_mapping(mapping: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A redacted copy of a header or metadata mapping (or of ``(name, value)`` pairs).

    Sensitive keys keep their name with the value ``"[redacted]"`` (a reviewer sees that the
    header existed); nested mappings and lists are redacted recursively; strings go through
    ``redact_text``. Keys are made strings.
    """
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    out: dict[str, Any] = {}
    for key, value in items:
        key = str(key)
        out[key] = REDACTED if is_sensitive_key(key) else _redact_value(value)
    return out


def _mask(secret: str) -> str:
    return f"{secret[:4]}…({len(secret)} chars)" if len(secret) > 6 else f"({len(secret)} chars)"


def assert_clean(text: str, secrets: Iterable[str | None], *, first_line: int = 1, path: str | None = None) -> None:
    """Raise ``CassetteSecretError`` if any of ``secrets`` occurs in ``text``.

    Empty/None secrets and secrets shorter than 4 characters are ignored (they would match
    everywhere). The error names the 1-based line (counted from ``first_line``) and shows only
    the first characters of the secret.
    """
    wanted = [s for s in secrets if s and len(s) >= 4]
    if not wanted:
        return
    for offset, line in enumerate(text.split("\n")):
        for secret in wanted:
            if secret in line:
                raise CassetteSecretError(
                    f"a secret ({_mask(secret)}) would be written to the cassette",
                    line=first_line + offset,
                    path=path,
                    hint="pass credentials and signed headers through redact_mapping()/redact_text(); "
                    "never put them in events, notes or metadata",
                )
