"""Routing at open: wrong path, method or content type get the service's HTTP-level error shape
(``x-amzn-errortype`` + JSON ``message``), before any event is read; the trailing ``?`` the SDK
adds and a percent-encoded model id are accepted."""

from __future__ import annotations

import pytest

from novasonic.wire import Credentials
from tests.helpers.raw_client import RawClient
from tests.helpers.sessions import exchange, wait_ended


def _creds(fake) -> Credentials:
    return Credentials(fake.access_key_id, fake.secret_access_key)


@pytest.mark.parametrize(
    ("method", "path", "status", "errortype"),
    [
        ("POST", "/model/amazon.nova-2-sonic-v1%3A0/invoke", 404, "UnknownOperationException"),
        ("POST", "/models/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream", 404, "UnknownOperationException"),
        ("GET", "/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream?", 404, "UnknownOperationException"),
        ("POST", "/model/amazon.titan-text-v1/invoke-with-bidirectional-stream?", 400, "ValidationException"),
    ],
)
async def test_wrong_route_gets_http_error_shape(start_fake, method: str, path: str, status: int, errortype: str) -> None:
    fake = await start_fake()
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(_creds(fake), region=fake.region, path=path, method=method)
        got, frames = await s.response()
    finally:
        await raw.close()
    assert got == status and frames == []
    assert s.headers["x-amzn-errortype"].split(":", 1)[0] == errortype
    assert s.headers["x-amzn-requestid"]
    assert isinstance(s.json_body()["message"], str) and s.json_body()["message"]
    j = await wait_ended(fake)
    assert j.end == f"http:{status}" and j.client == []


async def test_missing_content_type_is_a_validation_error(start_fake) -> None:
    fake = await start_fake()
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(_creds(fake), region=fake.region, extra_headers={"content-type": "application/json"})
        got, _ = await s.response()
    finally:
        await raw.close()
    assert got == 400
    assert s.headers["x-amzn-errortype"].startswith("ValidationException:")
    assert "application/vnd.amazon.eventstream" in s.json_body()["message"]


@pytest.mark.parametrize("suffix", ["", "?"])
async def test_operation_path_with_and_without_trailing_question_mark(start_fake, suffix: str) -> None:
    fake = await start_fake()
    raw = await RawClient.connect(fake.port, fake.ca_file)
    try:
        s = await raw.open(
            _creds(fake), region=fake.region,
            path=f"/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream{suffix}",
        )
        for ev in exchange():
            await s.send_event(ev)
        await s.end_input()
        status, _ = await s.response()
    finally:
        await raw.close()
    assert status == 200
    j = await wait_ended(fake)
    assert (j.model_id, j.end) == ("amazon.nova-2-sonic-v1:0", "completed")
