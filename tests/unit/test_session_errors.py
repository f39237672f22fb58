"""Which errors restart the session (with the SDK's own exception classes)."""

from __future__ import annotations

import pytest
from aws_sdk_bedrock_runtime import models as m
from smithy_aws_event_stream.exceptions import ChecksumMismatch, InvalidEventBytes, UnmodeledEventError

from novasonic.session import RestartsExhausted, StreamBroken, is_retryable

RETRYABLE = [
    m.ThrottlingException(message="Too many requests"),
    m.ModelTimeoutException(message="Model has timed out in processing the request."),
    m.ModelStreamErrorException(message="stream error"),
    m.ModelNotReadyException(message="not ready"),
    m.ModelErrorException(message="model error"),
    m.ServiceUnavailableException(message="unavailable"),
    m.InternalServerException(message="internal"),
    m.ValidationException(message="RequestId=x : InternalErrorCode=531::RST_STREAM closed stream. "
                                  "HTTP/2 error code: NO_ERROR"),
    m.ValidationException(message="System instability detected. Please retry your request."),
    InvalidEventBytes(),
    ChecksumMismatch(1, 2),
    StreamBroken("the output stream ended"),
]
FATAL = [
    m.ValidationException(message="Invalid input request, please fix your input and try again."),
    m.ValidationException(message="Tool Response parsing error"),
    m.AccessDeniedException(message="denied"),
    m.ResourceNotFoundException(message="no model"),
    UnmodeledEventError("code", "message"),
    RestartsExhausted(3, m.ThrottlingException(message="x")),
    ValueError("bug"),
]


@pytest.mark.parametrize("exc", RETRYABLE, ids=lambda e: type(e).__name__)
def test_retryable(exc: BaseException) -> None:
    assert is_retryable(exc)


@pytest.mark.parametrize("exc", FATAL, ids=lambda e: type(e).__name__)
def test_not_retryable(exc: BaseException) -> None:
    assert not is_retryable(exc)


def test_exhaustion_names_the_last_error() -> None:
    e = RestartsExhausted(3, m.ThrottlingException(message="Too many requests"))
    assert "3 restart attempt(s)" in str(e) and "ThrottlingException: Too many requests" in str(e)
