"""HTTP-level error answers in the service's shape (protocol.md §4.6): one table, one function.

Before the event stream opens, Bedrock answers errors as a plain restJson1 error response::

    :status 400
    x-amzn-errortype: ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/
    x-amzn-requestid: <uuid>
    content-type: application/json

    {"message":"..."}

What the STOCK client (aws_sdk_bedrock_runtime 0.12, restJson1 via smithy_http/smithy_aws_core)
raises from ``await stream.await_output()`` — checked by tests/integration/test_server_core.py:

* The error type is read from ``x-amzn-errortype`` (text after the first ``:`` dropped) and
  matched *by shape name* against the operation's error schemas. The 11 names in the
  ``InvokeModelWithBidirectionalStream`` error registry (models.py ``INVOKE_MODEL_WITH_BIDIRECTIONAL_STREAM``)
  raise the class of the same name from ``aws_sdk_bedrock_runtime.models`` with ``.message`` =
  the body's ``message``, and ``.response_metadata.request_id`` from ``x-amzn-requestid``.
  The HTTP status does not select the class; the table keeps the service's statuses anyway.
* Any other name (``UnrecognizedClientException``, ``InvalidSignatureException``,
  ``ExpiredTokenException``: the AWS-wide SigV4/credential failures, namespace
  ``com.amazon.coral.service``) is *unmodeled*: the client raises
  ``smithy_core.exceptions.CallError`` whose message is
  ``"Unknown error for operation com.amazonaws.bedrockruntime#InvokeModelWithBidirectionalStream
  - status: 403 - id: com.amazonaws.bedrockruntime#UnrecognizedClientException"``; the body's
  message text is **not** surfaced (``fault="client"``, not retry-safe).
* The SDK never retries this operation (its input is an event stream), so a 429/503 reaches the
  caller on the first attempt and the handler sees exactly one request.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from types import MappingProxyType

from .stream import ServerStream

__all__ = ["HttpErrorType", "HTTP_ERRORS", "BEDROCK_NAMESPACE", "CORAL_NAMESPACE", "send_http_error"]

BEDROCK_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
CORAL_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"


@dataclass(frozen=True, slots=True)
class HttpErrorType:
    """One HTTP-level error the service can answer before the stream opens."""

    name: str
    status: int
    namespace: str = BEDROCK_NAMESPACE
    modeled: bool = True
    """True if the stock client maps it to ``aws_sdk_bedrock_runtime.models.<name>``; else ``CallError``."""
    default_message: str = ""

    @property
    def errortype_header(self) -> str:
        return f"{self.name}:{self.namespace}"


def _table(*types: HttpErrorType) -> MappingProxyType[str, HttpErrorType]:
    return MappingProxyType({t.name: t for t in types})


#: Every HTTP-level error, by type name. Texts of the AWS-wide auth errors are AWS's usual ones.
#: Where no text was seen, the default is the error's description in the Bedrock Runtime API
#: reference (DOC; the service's own wording is UNK) so that an injected fault never arrives with
#: an empty ``.message``.
HTTP_ERRORS = _table(
    HttpErrorType(
        "ValidationException", 400,
        default_message="Input validation failed. Check your request parameters and retry the request.",
    ),
    HttpErrorType(
        "AccessDeniedException", 403, default_message="You don't have access to the model with the specified model ID."
    ),
    HttpErrorType("ResourceNotFoundException", 404, default_message="The specified resource ARN was not found."),
    HttpErrorType(
        "ModelTimeoutException", 408,
        default_message="The request took too long to process. Processing time exceeded the model timeout length.",
    ),
    HttpErrorType("ThrottlingException", 429, default_message="Too many requests, please wait before trying again."),
    HttpErrorType(
        "ModelNotReadyException", 429,
        default_message="The model specified in the request is not ready to serve inference requests.",
    ),
    HttpErrorType(
        "ServiceQuotaExceededException", 400, default_message="Your request exceeds the service quota for your account."
    ),
    HttpErrorType(
        "ModelErrorException", 424, default_message="The request failed due to an error while processing the model."
    ),
    HttpErrorType("ModelStreamErrorException", 424, default_message="An error occurred while streaming the response."),
    HttpErrorType("InternalServerException", 500, default_message="The server encountered an internal error."),
    HttpErrorType("ServiceUnavailableException", 503, default_message="Service unavailable. Please try again later."),
    HttpErrorType(
        "UnrecognizedClientException", 403, CORAL_NAMESPACE, modeled=False,
        default_message="The security token included in the request is invalid.",
    ),
    HttpErrorType(
        "InvalidSignatureException", 403, CORAL_NAMESPACE, modeled=False,
        default_message=(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
        ),
    ),
    HttpErrorType(
        "UnknownOperationException", 404, CORAL_NAMESPACE, modeled=False,
        default_message="The requested operation is not supported by this service.",
    ),
    HttpErrorType(
        "ExpiredTokenException", 403, CORAL_NAMESPACE, modeled=False,
        default_message="The security token included in the request is expired",
    ),
)


async def send_http_error(
    stream: ServerStream,
    error_type: str | HttpErrorType,
    message: str | None = None,
    *,
    request_id: str | None = None,
    status: int | None = None,
    extra_headers: list[tuple[str, str]] | None = None,
) -> str:
    """Answer ``stream`` with the HTTP-level error ``error_type`` (a key of :data:`HTTP_ERRORS`, or
    an :class:`HttpErrorType` for an error outside the table, e.g. one a cassette recorded).

    ``message`` defaults to the table's text; ``status`` overrides the table's status (e.g. a
    ``ThrottlingException`` answered as 400). Returns the request id used. The stream is ended;
    DATA the client still sends is discarded by the connection.
    """
    try:
        kind = error_type if isinstance(error_type, HttpErrorType) else HTTP_ERRORS[error_type]
    except KeyError:
        raise ValueError(f"unknown HTTP error type {error_type!r}; known: {', '.join(HTTP_ERRORS)}") from None
    rid = request_id or str(uuid.uuid4())
    body = json.dumps({"message": kind.default_message if message is None else message}, separators=(",", ":")).encode()
    headers = [
        ("x-amzn-requestid", rid),
        ("x-amzn-errortype", kind.errortype_header),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        *(extra_headers or []),
    ]
    await stream.send_headers(status or kind.status, headers)
    await stream.send_data(body, end_stream=True)
    return rid
