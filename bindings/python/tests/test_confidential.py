"""ConfidentialClient: the seeds' flows against the emulator's default app — vanilla mTLS PoP,
calling the resource with the binding certificate, two-leg FIC — and its errors."""

from __future__ import annotations

import base64
import hashlib
import ssl
from typing import Any, Callable, Dict

import pytest

import mtlspop
from conftest import Emulator


def _app(emu: Emulator) -> Dict[str, Any]:
    return emu.info["app"]


def _thumbprint(pem: str) -> str:
    der = ssl.PEM_cert_to_DER_cert(pem)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def test_vanilla_mtls_pop_and_call(emulator_require_pop: Emulator, jwt: Callable[[str], Dict[str, Any]]) -> None:
    emu = emulator_require_pop
    app = _app(emu)
    scope = emu.urls["resource_id"] + "/.default"
    with mtlspop.ConfidentialClient(app["authority"], app["client_id"], certificate=(app["cert_file"], app["key_file"]),
                                    mtls_endpoint=app["mtls_endpoint"], mtls_pop=True,
                                    ca_file=emu.ca_file) as cc:
        result = cc.acquire_token_for_client([scope])
        assert result.token_type == "mtls_pop"
        assert result.binding_certificate_pem is not None
        assert jwt(result.access_token)["cnf"]["x5t#S256"] == _thumbprint(result.binding_certificate_pem)
        assert jwt(result.access_token)["appid"] == app["client_id"]
        assert cc.acquire_token_for_client(scope).token_source == "cache"
        response = cc.call(result, "GET", emu.urls["resource"])
        assert response.status == 200
        bearer = cc.acquire_token_for_client(scope, mtls_pop=False)
        assert bearer.token_type == "Bearer" and bearer.binding_certificate_pem is None
        assert cc.call(bearer, "GET", emu.urls["resource"]).status == 401  # the resource requires PoP
        assert "redacted" in repr(result) and result.access_token not in repr(result)


def test_two_leg_fic(emulator: Emulator, jwt: Callable[[str], Dict[str, Any]]) -> None:
    app = _app(emulator)
    scope = emulator.urls["resource_id"] + "/.default"
    with mtlspop.ConfidentialClient(app["authority"], app["client_id"], federated=mtlspop.FromManagedIdentity(),
                                    mtls_endpoint=app["mtls_endpoint"], mtls_pop=True) as cc:
        result = cc.acquire_token_for_client(scope)
        assert result.token_type == "mtls_pop"
        # Bound to leg 1's certificate: one the identity platform issued to the managed
        # identity (not the app's), whose key stays in the library.
        assert result.binding_certificate_pem is not None
        assert jwt(result.access_token)["cnf"]["x5t#S256"] == _thumbprint(result.binding_certificate_pem)
        assert b"managedidentitysnissuer" in ssl.PEM_cert_to_DER_cert(result.binding_certificate_pem)
        assert jwt(result.access_token)["appid"] == app["client_id"]
        assert cc.call(result, "GET", emulator.urls["resource"]).status == 200


@pytest.mark.parametrize("pop", [True, False])
def test_two_leg_fic_with_a_confidential_leg_1(emulator: Emulator, jwt: Callable[[str], Dict[str, Any]],
                                               pop: bool) -> None:
    """Leg 1 another app (here the default app, with its certificate, which the emulator's
    default app trusts as a federated credential): its token for api://AzureADTokenExchange is
    leg 2's assertion, and with PoP the final token is bound to leg 1's certificate."""
    app = _app(emulator)
    scope = emulator.urls["resource_id"] + "/.default"
    cert = (app["cert_file"], app["key_file"])
    leg1 = mtlspop.FromConfidentialClient(app["authority"], app["client_id"], certificate=cert,
                                          mtls_endpoint=app["mtls_endpoint"], mtls_pop=pop)
    assert app["client_id"] in repr(leg1)
    with mtlspop.ConfidentialClient(app["authority"], app["client_id"], federated=leg1,
                                    mtls_endpoint=app["mtls_endpoint"], mtls_pop=pop) as cc:
        result = cc.acquire_token_for_client(scope)
        assert result.token_type == ("mtls_pop" if pop else "Bearer")
        assert jwt(result.access_token)["appid"] == app["client_id"]
        if pop:
            assert result.binding_certificate_pem is not None
            with open(app["cert_file"]) as f:
                app_der = ssl.PEM_cert_to_DER_cert(f.read())
            assert ssl.PEM_cert_to_DER_cert(result.binding_certificate_pem) == app_der
            assert jwt(result.access_token)["cnf"]["x5t#S256"] == _thumbprint(result.binding_certificate_pem)
        assert cc.call(result, "GET", emulator.urls["resource"]).status == 200


def test_errors(emulator: Emulator) -> None:
    app = _app(emulator)
    scope = emulator.urls["resource_id"] + "/.default"
    with mtlspop.ConfidentialClient(app["authority"], app["client_id"], secret="not-the-secret") as cc:
        with pytest.raises(mtlspop.MtlsPopError) as e:
            cc.acquire_token_for_client(scope)
        assert e.value.code == "invalid_client"
        with pytest.raises(mtlspop.InvalidArgumentError) as e2:
            cc.acquire_token_for_client(scope, mtls_pop=True)
        assert e2.value.code == "mtls_certificate_not_provided"
        assert "not-the-secret" not in str(e.value) and "not-the-secret" not in repr(cc)
    # How many credentials a client may have is the library's rule, and its error.
    for credentials in ({}, {"secret": "s", "federated": mtlspop.FromManagedIdentity()}):
        with pytest.raises(mtlspop.InvalidArgumentError) as e1:
            mtlspop.ConfidentialClient(app["authority"], app["client_id"], **credentials)  # type: ignore[arg-type]
        assert "exactly one of config.certificate, config.secret and config.federated" in e1.value.message
    with pytest.raises(mtlspop.InvalidArgumentError) as e1:
        mtlspop.ConfidentialClient("", app["client_id"], secret="s")
    assert "config.authority" in e1.value.message
    with pytest.raises(TypeError):
        mtlspop.ConfidentialClient(app["authority"], app["client_id"], certificate=app["cert_file"])  # type: ignore[arg-type]
    with pytest.raises(mtlspop.InvalidArgumentError) as e3:
        mtlspop.ConfidentialClient("https://login.microsoftonline.com/common", "x",
                                   certificate=(app["cert_file"], app["key_file"]), mtls_pop=True).acquire_token_for_client(scope)
    assert e3.value.code == "missing_tenanted_authority"


def test_readme_example_runs(emulator_require_pop: Emulator, tmp_path: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    info = tmp_path / "emu.json"
    info.write_text(json.dumps(emulator_require_pop.info))
    example = os.path.join(os.environ["MTLSPOP_SOURCE_ROOT"], "bindings", "python", "examples", "confidential.py")
    out = subprocess.run([sys.executable, example, str(info)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, **emulator_require_pop.env})
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("resource: 200") == 2 and "two-leg:  mtls_pop" in out.stdout
