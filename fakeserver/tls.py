"""TLS material for the fake server: a per-run CA, a server certificate, the server SSL context.

awscrt reaches HTTP/2 only through TLS with ALPN ``h2`` (protocol.md §4.7), so the fake server is
always TLS. Each run gets its own throw-away CA made with ``trustme``; the server certificate
covers ``localhost``, ``127.0.0.1`` and ``::1``. The CA is written to ``<directory>/ca.pem`` and
published as :attr:`TlsMaterial.ca_file`; clients trust it, nothing else does.

How the stock client trusts the CA
----------------------------------
awscrt (``smithy_http.aio.crt.AWSCRTHTTPClient``) builds its TLS context with the default trust
store (``ClientTlsContext(TlsContextOptions())``). Its libcrypto (aws-lc) honours the
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` environment variables, **read when that client TLS context is
created, i.e. in** ``AWSCRTHTTPClient()``. Each context keeps the trust it was built with: setting
the variable after the transport exists has no effect (the TLS handshake then fails — slowly:
awscrt hangs for a long time instead of failing fast), and unsetting it later does not break a
transport built while it was set. The SDK deep-copies its config on first use but shares the
transport object (``AsyncAwsConfig.__deepcopy__`` memoises it), so no second context is built.
(``AWSCRTHTTPClient.__deepcopy__`` *would* build a new context, reading the variable again.)
tests/integration/test_server_core.py pins the "unset later still works" half; the "set too late
fails" half was checked by hand (it only fails after a long hang, too slow for the suite).

So: merge :func:`client_ssl_env` into ``os.environ`` (or a child process's environment) before
constructing ``AWSCRTHTTPClient()``. ``SSL_CERT_FILE`` *replaces* the system trust store for the
contexts built while it is set (Python's ``ssl.create_default_context()`` honours it too), which is
what a test against a fake server wants.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = [
    "DEFAULT_HOSTNAMES",
    "TlsMaterial",
    "generate_tls",
    "load_tls",
    "server_ssl_context",
    "client_ssl_context",
    "client_ssl_env",
]

#: Names the generated server certificate is valid for.
DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

CA_FILENAME = "ca.pem"
CERT_FILENAME = "server-cert.pem"
KEY_FILENAME = "server-key.pem"


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """Where the fake server's certificate, key and the CA clients must trust live on disk."""

    ca_file: Path
    """PEM file of the CA clients must trust (published to clients, e.g. in the ready file)."""
    cert_file: Path
    """PEM server certificate chain (leaf first)."""
    key_file: Path
    """PEM private key of the server certificate."""

    def server_context(self) -> ssl.SSLContext:
        """The server :class:`ssl.SSLContext` for this material (see :func:`server_ssl_context`)."""
        return server_ssl_context(self.cert_file, self.key_file)


def generate_tls(directory: str | os.PathLike[str], hostnames: tuple[str, ...] = DEFAULT_HOSTNAMES) -> TlsMaterial:
    """Make a fresh CA and a server certificate for ``hostnames``; write them into ``directory``.

    Files: ``ca.pem`` (the CA certificate only, never its key), ``server-cert.pem``,
    ``server-key.pem`` (mode 0600). The CA key lives only in memory and is discarded.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="novasonic fakeserver test CA")
    leaf = ca.issue_cert(*hostnames)
    ca_file = out / CA_FILENAME
    cert_file = out / CERT_FILENAME
    key_file = out / KEY_FILENAME
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key_file.touch(mode=0o600, exist_ok=True)
    key_file.chmod(0o600)
    leaf.private_key_pem.write_to_path(str(key_file))
    return TlsMaterial(ca_file=ca_file, cert_file=cert_file, key_file=key_file)


def load_tls(
    cert_file: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    ca_file: str | os.PathLike[str],
) -> TlsMaterial:
    """Use a user-supplied certificate, key and CA; fails early if they do not load together."""
    material = TlsMaterial(ca_file=Path(ca_file), cert_file=Path(cert_file), key_file=Path(key_file))
    for path in (material.ca_file, material.cert_file, material.key_file):
        if not path.is_file():
            raise FileNotFoundError(f"TLS file not found: {path}")
    material.server_context()  # raises ssl.SSLError if the key does not match the certificate
    return material


def server_ssl_context(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """Server context: TLS 1.2+, ALPN ``["h2"]`` only (awscrt offers ``h2, http/1.1`` and takes h2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # RFC 9113 §9.2: HTTP/2 over TLS 1.2 needs no compression/renegotiation; OpenSSL's defaults
    # already disable both. Ciphers stay at the library's secure default.
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(certfile=os.fspath(cert_file), keyfile=os.fspath(key_file))
    return ctx


def client_ssl_context(ca_file: str | os.PathLike[str], alpn: tuple[str, ...] = ("h2",)) -> ssl.SSLContext:
    """A Python client context trusting only ``ca_file`` (for our own raw-socket tools and tests)."""
    ctx = ssl.create_default_context(cafile=os.fspath(ca_file))
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def client_ssl_env(ca_file: str | os.PathLike[str]) -> dict[str, str]:
    """Environment that makes awscrt (and Python's default ssl contexts) trust ``ca_file``.

    Merge it into ``os.environ`` *before* ``AWSCRTHTTPClient()`` is constructed (awscrt reads it
    when the transport's TLS context is created), or into a child process's environment.
    """
    return {"SSL_CERT_FILE": os.fspath(ca_file)}
