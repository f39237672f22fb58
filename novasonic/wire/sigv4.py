"""SigV4 for the bidirectional stream: request signature and event-signature chain
(protocol.md 4.1, 4.3, 4.4).

Verification does not reimplement SigV4. It re-runs the code the stock SDK
uses, ``aws_sdk_signers.AsyncSigV4Signer`` for the request and the building
blocks of ``aws_sdk_signers.AsyncEventSigner`` for each frame, on the received
inputs, and compares the results with :func:`hmac.compare_digest`.

Those methods are ``async def`` but never suspend: they hash strings and await
only each other. :func:`_run_sync` drives such a coroutine to completion without
an event loop, so this module stays sans-IO. ``AsyncEventSigner.sign`` itself
cannot be reused for verification or deterministic signing because it always
stamps ``datetime.now()``; its private helpers ``_scope``,
``_event_string_to_sign`` and ``_sign_event`` are used instead. The tests check
the results against the real SDK signers, so a change in those helpers is caught.

Facts worth knowing (checked against aws_sdk_signers 0.4):

* The SDK signs the already percent-encoded path and the signer quotes it again:
  ``%3A`` in ``:path`` becomes ``%253A`` in the canonical URI.
* The event signer gets no fixed date: every frame is signed with its own
  ``:date``, and the credential scope (and so the signing key) uses that frame's
  day. A session that crosses midnight UTC changes scope mid-stream.
* The string to sign hashes the ``:date`` header block exactly as sent. smithy's
  timestamp decode/encode round trip loses a millisecond for about 0.6 % of values,
  so the block is rebuilt from the exact millisecond (:func:`date_header_block`).
"""

from __future__ import annotations

import hmac
import re
import struct
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aws_sdk_signers import (
    URI,
    AsyncEventSigner,
    AsyncSigV4Signer,
    AWSCredentialIdentity,
    AWSRequest,
    Field,
    Fields,
    SigV4SigningProperties,
)
from aws_sdk_signers.signers import EVENT_STREAM_HASH, SIGV4_TIMESTAMP_FORMAT
from smithy_aws_event_stream.events import EventHeaderEncoder, EventMessage

from ..errors import SignatureError
from .frames import wire_timestamp

__all__ = [
    "ALGORITHM",
    "EVENT_STREAM_HASH",
    "DEFAULT_MAX_SKEW",
    "Credentials",
    "CredentialsLookup",
    "Headers",
    "AuthorizationHeader",
    "parse_authorization",
    "RequestAuth",
    "verify_request",
    "sign_request",
    "date_header_block",
    "ChunkSignatureVerifier",
    "ChunkSigner",
]

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_MAX_SKEW = timedelta(minutes=5)
"""How far ``x-amz-date`` may be from the verifier's clock (AWS allows 5 minutes)."""

_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_HEX_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def _run_sync[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (aws_sdk_signers' hashing helpers)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("aws_sdk_signers coroutine suspended; it now needs an event loop")


@dataclass(frozen=True)
class Credentials:
    """AWS credentials. The repr never shows the secret or the session token."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        token = "None" if self.session_token is None else "'<redacted>'"
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"secret_access_key='<redacted>', session_token={token})"
        )

    def identity(self) -> AWSCredentialIdentity:
        """The aws_sdk_signers identity for these credentials."""
        return AWSCredentialIdentity(
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            session_token=self.session_token,
        )


type CredentialsLookup = Callable[[str], Credentials | None]
"""Maps an access key id to its credentials, or ``None`` if the key is unknown."""


@dataclass(frozen=True)
class AuthorizationHeader:
    """The parts of an ``authorization: AWS4-HMAC-SHA256 ...`` header value."""

    access_key_id: str
    date: str  # YYYYMMDD
    region: str
    service: str
    terminator: str  # "aws4_request"
    signed_headers: tuple[str, ...]
    signature: str  # 64 lowercase hex

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def _malformed(message: str) -> SignatureError:
    return SignatureError(message, reason="malformed-auth")


def parse_authorization(value: str) -> AuthorizationHeader:
    """Parse ``AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request,
    SignedHeaders=a;b, Signature=<hex>``. Raises :class:`SignatureError`
    (``malformed-auth``) if it does not have that shape."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _malformed(f"authorization algorithm is {algorithm!r}, expected {ALGORITHM!r}")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, item_value = item.strip().partition("=")
        if not sep or key in parts:
            raise _malformed(f"authorization component {item.strip()!r} is not a unique key=value")
        parts[key] = item_value
    missing = {"Credential", "SignedHeaders", "Signature"} - parts.keys()
    if missing or len(parts) != 3:
        raise _malformed(
            f"authorization needs exactly Credential, SignedHeaders and Signature; "
            f"got {sorted(parts)}"
        )
    credential = parts["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise _malformed(
            f"Credential must be AKID/YYYYMMDD/region/service/aws4_request, "
            f"got {len(credential)} parts"
        )
    if not re.fullmatch(r"\d{8}", credential[1]):
        raise _malformed(f"Credential scope date {credential[1]!r} is not YYYYMMDD")
    signed = tuple(parts["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.fullmatch(name) for name in signed):
        raise _malformed(
            f"SignedHeaders {parts['SignedHeaders']!r} is not a ;-list of lowercase names"
        )
    signature = parts["Signature"]
    if not _HEX_SIGNATURE.fullmatch(signature):
        raise _malformed(f"Signature is not 64 lowercase hex digits ({len(signature)} chars)")
    akid, date, region, service, terminator = credential
    return AuthorizationHeader(akid, date, region, service, terminator, signed, signature)


@dataclass(frozen=True)
class RequestAuth:
    """A verified request signature: what the event-signature chain starts from.

    It holds no signing key on purpose: aws_sdk_signers derives keys only inside
    private methods, and the SDK's event signer derives a fresh key from each
    frame's own ``:date`` (the scope day can change mid-stream), so
    :class:`ChunkSignatureVerifier` takes the :class:`Credentials` instead.
    """

    access_key_id: str
    signature: str
    """Hex ``Signature=`` of the request: the seed ("prior signature") of the chain."""
    amz_date: str
    """``x-amz-date`` (``YYYYMMDDTHHMMSSZ``) the request was signed with."""
    region: str
    service: str
    signed_headers: tuple[str, ...]
    session_token: bool
    """Whether the request carried (and signed) ``x-amz-security-token``."""

    @property
    def scope(self) -> str:
        """Credential scope of the request: ``YYYYMMDD/region/service/aws4_request``."""
        return f"{self.amz_date[:8]}/{self.region}/{self.service}/aws4_request"

    @property
    def date(self) -> datetime:
        return datetime.strptime(self.amz_date, SIGV4_TIMESTAMP_FORMAT).replace(tzinfo=UTC)


type Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
"""Received headers: a mapping, or (name, value) pairs as ``h2`` delivers them."""


def _header_map(headers: Headers) -> dict[str, str]:
    """Lowercase names; repeated headers joined with ``,`` as the signer does."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        name_str = name.decode("latin-1") if isinstance(name, bytes) else name
        value_str = value.decode("latin-1") if isinstance(value, bytes) else value
        result.setdefault(name_str.lower(), []).append(value_str)
    return {name: ",".join(values) for name, values in result.items()}


def _signer_request(method: str, host: str, path: str, fields: Mapping[str, str]) -> AWSRequest:
    path_only, _, query = path.partition("?")
    return AWSRequest(
        destination=URI(scheme="https", host=host, path=path_only, query=query or None),
        method=method,
        body=None,
        fields=Fields([Field(name=name, values=[value]) for name, value in fields.items()]),
    )


def _resign(
    request: AWSRequest, credentials: Credentials, properties: SigV4SigningProperties
) -> AWSRequest:
    return _run_sync(
        AsyncSigV4Signer().sign(
            request=request, identity=credentials.identity(), properties=properties
        )
    )


def verify_request(
    method: str,
    path: str,
    headers: Headers,
    credentials_lookup: CredentialsLookup,
    *,
    region: str,
    service: str = "bedrock",
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> RequestAuth:
    """Verify the SigV4 signature of a received request (protocol.md 4.1).

    ``path`` is the raw ``:path`` as received (still percent-encoded, including
    any ``?query``); ``headers`` the received headers (HTTP/2 pseudo-headers
    allowed: ``:authority`` stands in for ``host``); ``now`` the server's clock
    (timezone-aware). The request is re-signed with aws_sdk_signers'
    ``AsyncSigV4Signer`` over the headers named in ``SignedHeaders`` and the
    signatures compared.

    Checks, in this order, with the :class:`SignatureError` reason raised:

    1. ``missing-auth``: no authorization header.
    2. ``malformed-auth``: unparseable authorization, missing or invalid ``x-amz-date``.
    3. ``bad-scope``: scope day differs from ``x-amz-date``, wrong region or
       service, terminator not ``aws4_request``.
    4. ``stale-date``: ``x-amz-date`` more than ``max_skew`` away from ``now``.
    5. ``malformed-auth``: ``host`` or ``x-amz-date`` not signed, or a signed
       header absent from the request.
    6. ``unknown-key``: ``credentials_lookup`` returns ``None``, *or* the
       ``x-amz-security-token`` is missing, unexpected or different from the
       credentials' session token (AWS answers both with
       UnrecognizedClientException, "The security token included in the
       request is invalid").
    7. ``bad-signature``: the re-computed signature differs.
    """
    fields = _header_map(headers)
    raw_auth = fields.get("authorization")
    if raw_auth is None:
        raise SignatureError("request has no authorization header", reason="missing-auth")
    auth = parse_authorization(raw_auth)
    amz_date = fields.get("x-amz-date")
    if amz_date is None or not _AMZ_DATE.fullmatch(amz_date):
        raise _malformed(f"x-amz-date is {amz_date!r}, expected YYYYMMDDTHHMMSSZ")
    try:
        signed_at = datetime.strptime(amz_date, SIGV4_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise _malformed(f"x-amz-date {amz_date!r} is not a valid date") from exc

    expected_scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    if auth.scope != expected_scope:
        raise SignatureError(
            f"credential scope {auth.scope!r} does not match expected {expected_scope!r}",
            reason="bad-scope",
        )
    skew = abs(now - signed_at)
    if skew > max_skew:
        raise SignatureError(
            f"x-amz-date {amz_date} is {skew} away from the server clock "
            f"{now.strftime(SIGV4_TIMESTAMP_FORMAT)} (max {max_skew})",
            reason="stale-date",
        )

    if "host" not in fields and ":authority" in fields:
        fields["host"] = fields[":authority"]
    for required in ("host", "x-amz-date"):
        if required not in auth.signed_headers:
            raise _malformed(f"{required} is not in SignedHeaders {';'.join(auth.signed_headers)}")
    absent = [name for name in auth.signed_headers if name not in fields]
    if absent:
        raise _malformed(f"signed header(s) {absent} are not in the request")

    credentials = credentials_lookup(auth.access_key_id)
    if credentials is None:
        raise SignatureError(f"unknown access key id {auth.access_key_id!r}", reason="unknown-key")
    token = fields.get("x-amz-security-token")
    if credentials.session_token is None and token is not None:
        raise SignatureError(
            f"x-amz-security-token sent, but {auth.access_key_id!r} has no session token",
            reason="unknown-key",
        )
    if credentials.session_token is not None and (
        token is None or not hmac.compare_digest(token.encode(), credentials.session_token.encode())
    ):
        state = "missing" if token is None else "does not match"
        raise SignatureError(
            f"x-amz-security-token {state} for session credentials {auth.access_key_id!r}",
            reason="unknown-key",
        )

    signed_fields = {name: fields[name] for name in auth.signed_headers}
    request = _signer_request(method, fields["host"], path, signed_fields)
    properties = SigV4SigningProperties(region=region, service=service, date=amz_date)
    resigned = parse_authorization(
        _resign(request, credentials, properties).fields["Authorization"].as_string()
    )
    if not hmac.compare_digest(resigned.signature, auth.signature):
        detail = ""
        if resigned.signed_headers != auth.signed_headers:
            detail = (
                f"; client signed {';'.join(auth.signed_headers)} but the signer would sign "
                f"{';'.join(resigned.signed_headers)}"
            )
        raise SignatureError(
            f"request signature mismatch for {auth.access_key_id!r}: got {auth.signature}, "
            f"computed {resigned.signature} over {method} {path!r} (canonical URI is the "
            f"path quoted again){detail}",
            reason="bad-signature",
        )
    return RequestAuth(
        access_key_id=auth.access_key_id,
        signature=auth.signature,
        amz_date=amz_date,
        region=region,
        service=service,
        signed_headers=auth.signed_headers,
        session_token=token is not None,
    )


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    *,
    region: str,
    service: str = "bedrock",
    now: datetime,
) -> dict[str, str]:
    """Sign a request the way the SDK does; return the headers to send.

    ``url`` is the full URL with the path already percent-encoded (for Nova Sonic
    ``https://host/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream``).
    With ``content-type: application/vnd.amazon.eventstream`` the signer adds
    ``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-EVENTS``. The result
    (lowercase names) adds ``x-amz-date``, ``authorization`` and, for session
    credentials, ``x-amz-security-token``; ``host`` is signed but not returned
    unless given (HTTP/2 sends it as ``:authority``).
    """
    parts = urlsplit(url)
    request = AWSRequest(
        destination=URI(
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port,
            path=parts.path or "/",
            query=parts.query or None,
        ),
        method=method,
        body=None,
        fields=Fields([Field(name=name, values=[value]) for name, value in headers.items()]),
    )
    properties = SigV4SigningProperties(
        region=region, service=service, date=now.strftime(SIGV4_TIMESTAMP_FORMAT)
    )
    signed = _resign(request, credentials, properties)
    return {field.name.lower(): field.as_string() for field in signed.fields}


_DATE_HEADER_PREFIX = b"\x05:date\x08"  # key length, key, timestamp type
_I64 = struct.Struct("!q")


def date_header_block(date: datetime) -> bytes:
    """The encoded ``:date`` header block, as sent, for a ``:date`` value decoded
    from a frame (see :func:`~novasonic.wire.frames.wire_timestamp`).

    The same bytes ``EventHeaderEncoder.encode_timestamp(":date", ...)`` writes (key length,
    key, type 8, big-endian int64 of ``int(timestamp() * 1000)``), built directly: this runs for
    every received frame."""
    return _DATE_HEADER_PREFIX + _I64.pack(int(wire_timestamp(date).timestamp() * 1000))


class _ChunkChain:
    """The event-signature computation of ``AsyncEventSigner`` (protocol.md 4.4).

    The string to sign always comes from the SDK's ``_event_string_to_sign``. The final HMAC is
    the SDK's ``_sign_event`` split in two: its signing-key derivation (four HMACs over the
    secret, day, region and service, with the SDK's own ``_hash``) depends only on the day, so
    it is done once per day and kept; each frame then costs one HMAC instead of five. The first
    frame of each day is also signed by ``_sign_event`` itself and the two results compared; if
    they ever differed (a changed SDK), the chain falls back to ``_sign_event`` for every frame.
    """

    def __init__(self, credentials: Credentials, region: str, service: str) -> None:
        self._identity = credentials.identity()
        self._region = region
        self._service = service
        self._signer = AsyncEventSigner(initial_signature=b"", event_encoder_cls=EventHeaderEncoder)
        self._day: str | None = None
        self._scope_str = ""
        self._signing_key: bytes | None = None
        self._split_key_ok = True

    def _derive_key(self, day: str) -> bytes:
        """``_sign_event``'s key derivation for ``day`` (YYYYMMDD), with the SDK's ``_hash``."""
        h = self._signer._hash  # pyright: ignore[reportPrivateUsage]
        secret = self._identity.secret_access_key.encode("utf-8")
        k_date = h(b"AWS4" + secret, day.encode("utf-8"))
        k_region = h(k_date, self._region.encode("utf-8"))
        k_service = h(k_region, self._service.encode("utf-8"))
        return h(k_service, b"aws4_request")

    def signature(self, *, date: datetime, date_block: bytes, prior: str, payload: bytes) -> bytes:
        timestamp = date.strftime(SIGV4_TIMESTAMP_FORMAT)
        new_day = timestamp[:8] != self._day
        if new_day:
            self._scope_str = self._signer._scope(  # pyright: ignore[reportPrivateUsage]
                SigV4SigningProperties(region=self._region, service=self._service, date=timestamp)
            )
            self._signing_key = self._derive_key(timestamp[:8])
            self._day = timestamp[:8]
        string_to_sign = _run_sync(
            self._signer._event_string_to_sign(  # pyright: ignore[reportPrivateUsage]
                timestamp=timestamp,
                scope=self._scope_str,
                encoded_headers=date_block,
                payload=payload,
                prior_signature=prior.encode("ascii"),
            )
        )
        if self._split_key_ok and not new_day:
            assert self._signing_key is not None
            return hmac.digest(self._signing_key, string_to_sign.encode("utf-8"), "sha256")
        properties = SigV4SigningProperties(region=self._region, service=self._service, date=timestamp)
        signature = _run_sync(
            self._signer._sign_event(  # pyright: ignore[reportPrivateUsage]
                identity=self._identity,
                timestamp=timestamp,
                string_to_sign=string_to_sign,
                properties=properties,
            )
        )
        if new_day and self._split_key_ok:
            assert self._signing_key is not None
            split = hmac.digest(self._signing_key, string_to_sign.encode("utf-8"), "sha256")
            self._split_key_ok = hmac.compare_digest(split, signature)
        return signature


class ChunkSignatureVerifier:
    """Verifies the signed outer frames of one request, in order (protocol.md 4.3-4.4).

    Seeded with the request signature; each :meth:`verify` checks one outer frame
    (headers ``:date`` and ``:chunk-signature`` only), advances the chain and
    returns the payload: the encoded inner message, or ``b""`` for the final
    frame that ends client input. Once a frame fails, every later call raises the
    same :class:`SignatureError`.
    """

    def __init__(
        self,
        request_auth: RequestAuth,
        credentials: Credentials,
        *,
        max_skew: timedelta | None = None,
    ) -> None:
        if credentials.access_key_id != request_auth.access_key_id:
            raise ValueError(
                f"credentials are for {credentials.access_key_id!r}, "
                f"the request was signed by {request_auth.access_key_id!r}"
            )
        self._chain = _ChunkChain(credentials, request_auth.region, request_auth.service)
        self._prior = request_auth.signature
        self._max_skew = max_skew
        self._error: SignatureError | None = None
        self._verified = 0
        self._finished = False

    @property
    def prior_signature(self) -> str:
        """Hex signature of the last verified frame (the request's before the first)."""
        return self._prior

    @property
    def frames_verified(self) -> int:
        return self._verified

    @property
    def finished(self) -> bool:
        """True once the empty-payload end-of-input frame has been verified."""
        return self._finished

    def verify(self, outer: EventMessage, *, now: datetime | None = None) -> bytes:
        """Check one outer frame and return its payload.

        ``now`` is required when the verifier has a ``max_skew``: a ``:date`` further
        than that from ``now`` raises ``stale-date``.
        """
        if self._error is not None:
            raise self._error
        try:
            payload = self._verify(outer, now)
        except SignatureError as exc:
            self._error = exc
            raise
        return payload

    def _fail(self, message: str, reason: str = "bad-chunk-signature") -> SignatureError:
        return SignatureError(f"signed frame #{self._verified}: {message}", reason=reason)

    def _verify(self, outer: EventMessage, now: datetime | None) -> bytes:
        if self._finished:
            raise self._fail("frame after the end-of-input (empty payload) frame")
        headers = outer.headers
        missing = [name for name in (":date", ":chunk-signature") if name not in headers]
        if missing:
            raise self._fail(
                f"missing {' and '.join(missing)} (headers: {sorted(headers)}); "
                "was the frame sent unsigned?",
                reason="missing-chunk-signature",
            )
        if len(headers) != 2:
            extra = sorted(set(headers) - {":date", ":chunk-signature"})
            raise self._fail(f"unexpected extra headers {extra} (only :date and :chunk-signature)")
        date, signature = headers[":date"], headers[":chunk-signature"]
        if not isinstance(date, datetime):
            raise self._fail(f":date must be a timestamp header, got {type(date).__name__}")
        if not isinstance(signature, bytes) or len(signature) != 32:
            got = (
                f"{len(signature)} bytes"
                if isinstance(signature, bytes)
                else type(signature).__name__
            )
            raise self._fail(f":chunk-signature must be 32 raw bytes, got {got}")
        if self._max_skew is not None:
            if now is None:
                raise ValueError("verify() needs now= when the verifier has a max_skew")
            skew = abs(now - date)
            if skew > self._max_skew:
                raise self._fail(
                    f":date {date.isoformat()} is {skew} from now {now.isoformat()} "
                    f"(max {self._max_skew})",
                    reason="stale-date",
                )
        expected = self._chain.signature(
            date=date, date_block=date_header_block(date), prior=self._prior, payload=outer.payload
        )
        if not hmac.compare_digest(expected, signature):
            raise self._fail(
                f"chunk signature mismatch: got {signature.hex()}, computed {expected.hex()} "
                f"(:date {date.isoformat()}, prior {self._prior}, payload {len(outer.payload)} "
                "bytes); wrong key, tampered frame, or a frame dropped or reordered"
            )
        self._prior = expected.hex()
        self._verified += 1
        self._finished = not outer.payload
        return outer.payload


class ChunkSigner:
    """Signs outer frames like the SDK's ``AsyncEventSigner``, with an explicit date.

    For tests and the capture proxy. ``sign(inner_bytes, date=...)`` returns the
    outer :class:`EventMessage` (``:date``, ``:chunk-signature``); ``sign(b"")``
    (or :meth:`sign_end`) makes the end-of-input frame, after which signing stops.
    """

    def __init__(
        self,
        seed_signature: str,
        credentials: Credentials,
        *,
        region: str,
        service: str = "bedrock",
    ) -> None:
        self._chain = _ChunkChain(credentials, region, service)
        self._prior = seed_signature
        self._finished = False

    @property
    def prior_signature(self) -> str:
        return self._prior

    def sign(self, payload: bytes, *, date: datetime) -> EventMessage:
        """Sign ``payload`` (an encoded inner message, or ``b""`` to end input)."""
        if self._finished:
            raise RuntimeError("cannot sign after the end-of-input frame")
        encoder = EventHeaderEncoder()
        encoder.encode_headers({":date": date})  # exactly what the outer frame will carry
        signature = self._chain.signature(
            date=date, date_block=encoder.get_result(), prior=self._prior, payload=payload
        )
        self._prior = signature.hex()
        self._finished = not payload
        return EventMessage(headers={":date": date, ":chunk-signature": signature}, payload=payload)

    def sign_end(self, *, date: datetime) -> EventMessage:
        """The signed empty frame that ends client input."""
        return self.sign(b"", date=date)
