"""Secrets never enter a cassette: one redaction policy, applied by every writer, and a self-check."""

from __future__ import annotations

from pathlib import Path

import pytest

from novasonic.cassette import (
    REDACTED,
    CassetteError,
    CassetteHeader,
    CassetteSecretError,
    CassetteWriter,
    WriterOptions,
    assert_clean,
    is_sensitive_key,
    load_cassette,
    redact_mapping,
    redact_text,
)
from novasonic.models import NOVA_2_SONIC
from tests.helpers import factories as f

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
TEMP_KEY_ID = "ASIAZ3MHALF2EXAMPLE0"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampletoken"
SIGNATURE = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
AUTH = (f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20260101/us-east-1/bedrock/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={SIGNATURE}")
SECRETS = (KEY_ID, TEMP_KEY_ID, SECRET, TOKEN, SIGNATURE)

HEADERS = {
    "Authorization": AUTH,
    "X-Amz-Security-Token": TOKEN,
    "x-amz-date": "20260101T000000Z",
    "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-EVENTS",
    ":chunk-signature": SIGNATURE,
    ":date": "2026-01-01T00:00:00Z",
    "content-type": "application/vnd.amazon.eventstream",
}


@pytest.mark.parametrize(
    "key",
    ["authorization", "Authorization", "x-amz-security-token", "X-Amz-Date", "x_amz_date", ":chunk-signature",
     ":date", "aws_access_key_id", "access_key_id", "AccessKeyId", "aws_secret_access_key", "secret", "db_password",
     "session_token", "x-amz-signature", "Cookie", "api_key_id"],
)
def test_sensitive_keys(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["content-type", "max_tokens", "totalTokens", "model", "region", "date_of_test"])
def test_ordinary_keys(key: str) -> None:
    assert not is_sensitive_key(key)


def test_redact_mapping_is_recursive_and_keeps_names() -> None:
    meta = {"headers": HEADERS, "list": [{"secret_access_key": SECRET}, f"id {KEY_ID}"], "max_tokens": 1024,
            "note": AUTH}
    out = redact_mapping(meta)
    assert out["headers"]["Authorization"] == REDACTED and out["headers"][":chunk-signature"] == REDACTED
    assert out["headers"]["content-type"] == "application/vnd.amazon.eventstream"
    assert out["list"] == [{"secret_access_key": REDACTED}, f"id {REDACTED}"]
    assert out["max_tokens"] == 1024
    assert KEY_ID not in out["note"] and SIGNATURE not in out["note"] and "SignedHeaders=host" in out["note"]
    assert meta["headers"]["Authorization"] == AUTH  # the input is not modified
    assert redact_mapping([("Authorization", "x")]) == {"Authorization": REDACTED}


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"key {KEY_ID} used", KEY_ID),
        (f"temporary {TEMP_KEY_ID}", TEMP_KEY_ID),
        (AUTH, SIGNATURE),
        (f"https://x/?X-Amz-Signature={SIGNATURE}&X-Amz-Security-Token={TOKEN}", TOKEN),
        (f"Authorization: Bearer {TOKEN}", TOKEN),
        (f"aws_secret_access_key = {SECRET}", SECRET),
        (f"AWS_SESSION_TOKEN: '{TOKEN}'", TOKEN),
    ],
)
def test_redact_text(text: str, secret: str) -> None:
    assert secret not in redact_text(text)
    assert REDACTED in redact_text(text)


def test_assert_clean_names_the_line() -> None:
    assert_clean("all fine\nnothing here", SECRETS)
    assert_clean("short ok", ["ab", "", None])
    with pytest.raises(CassetteSecretError) as err:
        assert_clean(f"line one\nline two has {SECRET} in it", SECRETS, first_line=10, path="c.jsonl")
    assert err.value.line == 11 and "c.jsonl:11" in str(err.value)
    assert SECRET not in str(err.value) and "wJal…" in str(err.value)


def test_no_secret_passed_to_a_writer_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    header = CassetteHeader(model_id=NOVA_2_SONIC, meta={"request_headers": HEADERS, "access_key_id": KEY_ID,
                                                        "creds": {"aws_secret_access_key": SECRET}, "why": AUTH})
    with CassetteWriter(path, header, WriterOptions(user_audio="sidecar")) as w:
        w.open_stream(0, meta={"headers": HEADERS, "key": f"used {TEMP_KEY_ID}", "session_token": TOKEN})
        w.write_client(0, 0.0, None, f.session_start())
        w.write_note(0, 0.1, f"signed with {AUTH}")
        w.write_transport(0, 0.2, None, "rst", code=2, detail=f"Signature={SIGNATURE}")
        w.write_exception(0, 0.3, None, "validationException", f"bad key {KEY_ID}",
                          extra={"x-amz-security-token": TOKEN})
    text = path.read_text("utf-8")
    assert_clean(text, SECRETS)
    for s in SECRETS:
        assert s not in text
    c = load_cassette(path)
    assert c.header.meta["request_headers"]["Authorization"] == REDACTED  # type: ignore[index]
    assert c.header.meta["access_key_id"] == REDACTED
    assert c[0].start is not None and c[0].start.meta["session_token"] == REDACTED


def test_the_writer_refuses_a_line_that_holds_a_given_secret(tmp_path: Path) -> None:
    """A secret the redaction cannot recognise (it has no telltale shape) is still caught when the
    writer is told the recording's credentials."""
    path = tmp_path / "c.jsonl"
    odd_secret = "correct-horse-battery-staple"
    w = CassetteWriter(path, CassetteHeader(model_id=NOVA_2_SONIC), WriterOptions(secrets=(odd_secret, SECRET)))
    w.write_client(0, 0.0, None, f.session_start())
    w.flush()
    with pytest.raises(CassetteSecretError) as err:
        w.write_server(0, 0.1, None, f.out_text_block("x", "USER", "FINAL", f"my password is {odd_secret}")[1])
    assert err.value.line is not None
    with pytest.raises(CassetteError, match="failed earlier"):
        w.write_client(0, 0.2, None, f.session_end())
    w.close()
    text = path.read_text("utf-8")
    assert odd_secret not in text
    assert len(load_cassette(path)[0].records) == 2  # stream + sessionStart: what was written before stays
    with pytest.raises(CassetteSecretError):
        CassetteWriter(tmp_path / "h.jsonl", CassetteHeader(meta={"x": odd_secret}), WriterOptions(secrets=(odd_secret,)))
    assert not (tmp_path / "h.jsonl").exists()
