"""Logs that never show a credential or a signature, whatever the level.

At debug level, third-party libraries log what they send and receive: ``hpack`` the decoded
request headers (``authorization: AWS4-HMAC-SHA256 Credential=AKIA…, Signature=…``), the SDK its
whole request. :class:`RedactingFilter` rewrites every record before any handler formats it:
the toolkit's single redaction policy (``novasonic.cassette.redact_text``: key ids,
``Signature=``, ``Credential=``, tokens), every 64-hex-digit run (SigV4 and chunk signatures), and
the exact credential values in play (the proxy's test keys, the upstream's keys and token).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from novasonic.cassette import REDACTED, redact_text

__all__ = ["RedactingFilter", "install_redaction"]

_HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
_TOKEN_HEADER = re.compile(r"(x-amz-security-token['\"]?\s*[,:=]\s*b?['\"]?)[^'\"\s,)]+", re.I)
#: ``':chunk-signature': b'\\xa9e…'`` in the SDK's repr of a signed frame.
_CHUNK_SIGNATURE = re.compile(r"""(chunk-signature['"]?\s*[:=]\s*)b?(['"])(?:\\.|(?!\2).)*\2""")


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        clean = _CHUNK_SIGNATURE.sub(r"\1" + REDACTED, text)
        clean = _TOKEN_HEADER.sub(r"\1" + REDACTED, _HEX64.sub(REDACTED, redact_text(clean)))
        for secret in self._secrets():
            if secret:
                clean = clean.replace(secret, REDACTED)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            exc_text = _HEX64.sub(REDACTED, redact_text(record.exc_text))
            for secret in self._secrets():
                if secret:
                    exc_text = exc_text.replace(secret, REDACTED)
            record.exc_text = exc_text
        record.msg, record.args = clean, None
        return True


def install_redaction(secrets: Callable[[], Iterable[str]] = tuple) -> RedactingFilter:
    """Put a :class:`RedactingFilter` on every handler of the root logger."""
    f = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(f)
    return f
