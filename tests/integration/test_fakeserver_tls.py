"""TLS material: a user-supplied certificate, key and CA instead of the per-run trustme CA, and
the CA published to clients; the stock SDK trusts it through ``crt_transport(ca_file)``."""

from __future__ import annotations

import ssl

import pytest

from fakeserver import FakeNovaSonic
from fakeserver.tls import generate_tls, load_tls
from tests.helpers.responders import SilentResponder
from tests.helpers.sessions import collect, exchange, send_all, wait_ended


async def test_user_supplied_certificate_is_served(tmp_path, open_session) -> None:
    material = generate_tls(tmp_path / "mine")  # stands in for certificates a user brings
    fake = FakeNovaSonic(
        responder=SilentResponder(),
        tls=(str(material.cert_file), str(material.key_file), str(material.ca_file)),
    )
    async with fake:
        assert fake.ca_file == str(material.ca_file)
        assert fake.tls_dir is None  # nothing generated, nothing to clean up
        d = await open_session(fake)
        await send_all(d, exchange())
        await d.close_input()
        events, exc = await collect(d)
        assert exc is None and events == []
        assert (await wait_ended(fake)).end == "completed"
    assert material.cert_file.exists()  # the user's files are left alone


def test_load_tls_reports_missing_files(tmp_path) -> None:
    material = generate_tls(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.pem"):
        load_tls(material.cert_file, tmp_path / "nope.pem", material.ca_file)


def test_load_tls_rejects_a_key_that_does_not_match(tmp_path) -> None:
    a, b = generate_tls(tmp_path / "a"), generate_tls(tmp_path / "b")
    with pytest.raises(ssl.SSLError):
        load_tls(a.cert_file, b.key_file, a.ca_file)
