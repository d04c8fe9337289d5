"""Calling a resource with a token: mTLS with the binding certificate, and the 401 case."""

import json

import pytest

import mtlspop
from conftest import RESOURCE


def test_call_with_pop_token(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        r = client.acquire_token(RESOURCE)
        resp = client.call(r, "GET", emulator.urls["resource"],
                           headers={"Accept": "application/json", "X-Test": ["a", "b"]})
    assert resp.status == 200 and resp.ok
    body = resp.json()
    assert body["token_type"] == "mtls_pop"
    assert body["x5t#S256"] == r.binding_certificate_thumbprint
    assert "application/json" in resp.header("content-type")
    assert resp.header("X-Absent") is None
    assert "Content-Type" in resp.headers
    assert json.loads(resp.text) == body
    assert repr(resp) == f"Response(status=200, body=<{len(resp.body)} bytes>)"


def test_call_with_bearer_token(emulator):
    with mtlspop.ManagedIdentityClient() as client:
        r = client.acquire_token(RESOURCE)
        resp = client.call(r, "POST", emulator.urls["resource"], body=b"\x00\x01binary",
                           timeout=10)
    assert resp.status == 200
    assert resp.json()["token_type"] == "Bearer"


def test_bearer_refused_where_pop_is_required(emulator_require_pop):
    emu = emulator_require_pop
    with mtlspop.ManagedIdentityClient(imds_endpoint=emu.urls["imds"], ca_file=emu.ca_file) as c:
        bearer = c.acquire_token(RESOURCE)
        resp = c.call(bearer, "GET", emu.urls["resource"])
        assert resp.status == 401 and not resp.ok
        assert resp.header("WWW-Authenticate")
        assert bearer.access_token not in resp.text
        pop = c.acquire_token(RESOURCE, mtls_pop=True)
        assert c.call(pop, "GET", emu.urls["resource"]).status == 200


def test_result_outlives_its_client(emulator):
    c1 = mtlspop.ManagedIdentityClient(mtls_pop=True)
    r = c1.acquire_token(RESOURCE)
    c1.close()
    with mtlspop.ManagedIdentityClient() as c2:
        resp = c2.call(r, "GET", emulator.urls["resource"])
    assert resp.status == 200 and resp.json()["token_type"] == "mtls_pop"


def test_call_errors(emulator, closed_port):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        r = client.acquire_token(RESOURCE)
        with pytest.raises(mtlspop.NetworkError) as e:
            client.call(r, "GET", f"https://127.0.0.1:{closed_port}/")
        assert e.value.code == "network_error"
        assert isinstance(e.value, ConnectionError)
        assert r.access_token not in str(e.value)
        with pytest.raises(mtlspop.InvalidArgumentError):
            client.call(r, "GET", f"http://127.0.0.1:{closed_port}/")  # the token never in clear
        with pytest.raises(TypeError):
            client.call(r, "GET", emulator.urls["resource"], body=42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client.call("token", "GET", emulator.urls["resource"])  # type: ignore[arg-type]
        copied = mtlspop.AuthenticationResult(
            access_token=r.access_token, token_type=r.token_type, expires_on=r.expires_on,
            refresh_on=None, token_source="cache")
        with pytest.raises(mtlspop.InvalidArgumentError):
            client.call(copied, "GET", emulator.urls["resource"])
