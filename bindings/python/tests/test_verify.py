"""The resource side: verify() accepts a bound token only with its certificate."""

import pytest

import mtlspop
from conftest import RESOURCE


@pytest.fixture(scope="module")
def pop(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        yield client.acquire_token(RESOURCE)


@pytest.fixture
def verifier(emulator):
    return mtlspop.Verifier(audiences=[RESOURCE], issuer=emulator.urls["issuer"],
                            jwks_url=emulator.urls["jwks"], ca_file=emulator.ca_file)


def test_verify_good(emulator, pop, verifier):
    claims = verifier.verify(pop.authorization_header(), pop.binding_certificate_pem)
    assert claims.token_type == "mtls_pop"
    assert claims.binding_certificate_thumbprint == pop.binding_certificate_thumbprint
    assert claims.subject == emulator.system_assigned["object_id"]
    assert claims.client_id == emulator.system_assigned["client_id"]
    assert claims.claims["aud"] == RESOURCE
    # The module function, with the certificate as bytes.
    again = mtlspop.verify(pop.authorization_header(), pop.binding_certificate_pem.encode(),
                           audiences=RESOURCE, jwks_url=emulator.urls["jwks"],
                           ca_file=emulator.ca_file)
    assert again == claims


def test_verify_bad(emulator, pop, verifier):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as other_client:
        other = other_client.acquire_token(RESOURCE)
    assert other.binding_certificate_thumbprint != pop.binding_certificate_thumbprint
    header, payload, signature = pop.access_token.split(".")
    tampered = f"mtls_pop {header}.{payload}.{signature[:-4]}AAAA"
    cases = {
        "another certificate": (pop.authorization_header(), other.binding_certificate_pem),
        "no certificate": (pop.authorization_header(), None),
        "tampered": (tampered, pop.binding_certificate_pem),
        "garbage": ("mtls_pop not-a-jwt", pop.binding_certificate_pem),
        "no scheme": (pop.access_token, pop.binding_certificate_pem),
        "NUL": (pop.authorization_header() + "\x00x", pop.binding_certificate_pem),
        "lone surrogate": (pop.authorization_header() + "\udcff", pop.binding_certificate_pem),
    }
    for name, (authorization, cert) in cases.items():
        with pytest.raises(mtlspop.InvalidTokenError) as e:
            verifier.verify(authorization, cert)
        assert e.value.code == "invalid_token", name
        assert pop.access_token not in str(e.value), name
        assert pop.access_token not in repr(e.value), name
    wrong_audience = mtlspop.Verifier(audiences="api://someone-else",
                                      jwks_url=emulator.urls["jwks"], ca_file=emulator.ca_file)
    with pytest.raises(mtlspop.InvalidTokenError):
        wrong_audience.verify(pop.authorization_header(), pop.binding_certificate_pem)


def test_verify_bearer(emulator, verifier):
    with mtlspop.ManagedIdentityClient() as client:
        bearer = client.acquire_token(RESOURCE)
    with pytest.raises(mtlspop.InvalidTokenError):
        verifier.verify(bearer.authorization_header())
    lenient = mtlspop.Verifier(audiences=[RESOURCE], jwks_url=emulator.urls["jwks"],
                               ca_file=emulator.ca_file, allow_unbound=True)
    claims = lenient.verify(bearer.authorization_header())
    assert claims.token_type == "Bearer" and claims.binding_certificate_thumbprint == ""


def test_verify_configuration_errors(emulator, pop, closed_port):
    with pytest.raises(mtlspop.InvalidArgumentError) as e:
        mtlspop.verify(pop.authorization_header(), pop.binding_certificate_pem, audiences=[])
    assert e.value.code == "invalid_argument"
    with pytest.raises(mtlspop.InvalidArgumentError):
        mtlspop.verify(pop.authorization_header(), "not a pem", audiences=RESOURCE,
                       jwks_url=emulator.urls["jwks"], ca_file=emulator.ca_file)
    with pytest.raises(mtlspop.NetworkError):
        mtlspop.verify(pop.authorization_header(), pop.binding_certificate_pem,
                       audiences=RESOURCE, jwks_url=f"https://127.0.0.1:{closed_port}/keys")
