"""Library logs reach the `mtlspop` logger, without secrets; nothing prints a token."""

import logging

import mtlspop
from conftest import RESOURCE, wait_until


def test_logs_forwarded_without_secrets(emulator, caplog):
    caplog.set_level(logging.DEBUG, logger="mtlspop")
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        r = client.acquire_token(RESOURCE)
        client.call(r, "GET", emulator.urls["resource"])

    def records():
        return [rec for rec in caplog.records if rec.name == "mtlspop"]

    assert wait_until(lambda: any("minted binding certificate" in rec.getMessage()
                                  for rec in records()), 10)
    recs = records()
    assert any(rec.levelno == logging.DEBUG for rec in recs)
    assert all(isinstance(getattr(rec, "mtlspop_fields", None), dict) for rec in recs)
    minted = next(rec for rec in recs if "minted binding certificate" in rec.getMessage())
    assert minted.levelno == logging.INFO
    assert minted.mtlspop_fields["x5t#S256"] == r.binding_certificate_thumbprint
    token_parts = r.access_token.split(".")
    for rec in recs:
        text = rec.getMessage() + repr(rec.args) + repr(rec.__dict__)
        assert r.access_token not in text
        assert token_parts[2] not in text  # not even the signature
        assert token_parts[1] not in text
        assert "PRIVATE KEY" not in text


def test_logger_level_governs_what_is_delivered(emulator, caplog):
    caplog.set_level(logging.ERROR, logger="mtlspop")
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        client.acquire_token(RESOURCE)
    assert not [rec for rec in caplog.records
                if rec.name == "mtlspop" and rec.levelno < logging.ERROR]


def test_no_token_in_repr_or_str(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        r = client.acquire_token(RESOURCE)
        texts = [repr(r), str(r), repr(client), str(client), repr([r]), str({"r": r})]
    for text in texts:
        assert r.access_token not in text
