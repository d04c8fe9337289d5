"""Acquiring tokens: PoP and Bearer, every identity selector, the cache."""

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

import mtlspop
from conftest import RESOURCE, decode_jwt


def test_pop_token(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        r = client.acquire_token(RESOURCE)
    assert r.token_type == "mtls_pop" and r.is_pop
    assert r.token_source == "identity_provider"
    assert r.binding_certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert r.binding_certificate_thumbprint
    claims = decode_jwt(r.access_token)
    assert claims["cnf"]["x5t#S256"] == r.binding_certificate_thumbprint
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == emulator.system_assigned["object_id"]
    assert r.authorization_header() == f"mtls_pop {r.access_token}"
    now = datetime.now(timezone.utc)
    assert r.expires_on.tzinfo is not None and r.expires_on.utcoffset() == timedelta(0)
    assert now < r.expires_on < now + timedelta(days=2)
    assert r.refresh_on is None or now < r.refresh_on < r.expires_on
    assert abs(r.expires_on.timestamp() - claims["exp"]) <= 1


def test_bearer_token(emulator):
    with mtlspop.ManagedIdentityClient() as client:
        r = client.acquire_token(RESOURCE)
    assert r.token_type == "Bearer" and not r.is_pop
    assert r.binding_certificate_pem is None and r.binding_certificate_thumbprint is None
    assert "cnf" not in decode_jwt(r.access_token)
    assert r.authorization_header() == f"Bearer {r.access_token}"


def test_per_call_token_type_override(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=False) as client:
        assert client.acquire_token(RESOURCE, mtls_pop=True).token_type == "mtls_pop"
        assert client.acquire_token(RESOURCE).token_type == "Bearer"
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        assert client.acquire_token(RESOURCE, mtls_pop=False).token_type == "Bearer"


@pytest.mark.parametrize("selector", ["client_id", "resource_id", "object_id"])
@pytest.mark.parametrize("pop", [False, True])
def test_user_assigned_selectors(emulator, selector, pop):
    uami = emulator.user_assigned
    identity = mtlspop.UserAssigned(**{selector: uami[selector]})
    with mtlspop.ManagedIdentityClient(identity, mtls_pop=pop) as client:
        r = client.acquire_token(RESOURCE)
    claims = decode_jwt(r.access_token)
    assert claims["sub"] == uami["object_id"]
    assert claims.get("appid", claims.get("azp")) == uami["client_id"]
    assert r.token_type == ("mtls_pop" if pop else "Bearer")


def test_user_assigned_takes_exactly_one_id():
    with pytest.raises(mtlspop.InvalidArgumentError):
        mtlspop.UserAssigned()
    with pytest.raises(mtlspop.InvalidArgumentError):
        mtlspop.UserAssigned(client_id="a", object_id="b")
    with pytest.raises(TypeError):
        mtlspop.UserAssigned(client_id=42)  # type: ignore[arg-type]
    # What an id may be is the library's to say: an empty one is refused by it, with its error.
    mtlspop.UserAssigned(client_id=" ")
    with pytest.raises(mtlspop.InvalidArgumentError) as e:
        mtlspop.ManagedIdentityClient(mtlspop.UserAssigned(client_id=""))
    assert e.value.code == "invalid_argument" and "config.identity.id" in e.value.message


@pytest.mark.parametrize("pop", [False, True])
def test_cache_hit(emulator, pop):
    with mtlspop.ManagedIdentityClient(mtls_pop=pop) as client:
        first = client.acquire_token(RESOURCE)
        second = client.acquire_token(RESOURCE)
        third = client.acquire_token(RESOURCE + "/.default")
    assert first.token_source == "identity_provider"
    assert second.token_source == "cache"
    assert third.token_source == "cache"
    assert second.access_token == first.access_token
    assert second.binding_certificate_pem == first.binding_certificate_pem
    assert dataclasses.replace(second, token_source="identity_provider") == first


def test_force_refresh_and_claims_fetch(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        first = client.acquire_token(RESOURCE)
        forced = client.acquire_token(RESOURCE, force_refresh=True)
        assert forced.token_source == "identity_provider"
        assert forced.binding_certificate_thumbprint == first.binding_certificate_thumbprint
        # The cache now serves the refreshed token.
        again = client.acquire_token(RESOURCE)
        assert again.token_source == "cache" and again.access_token == forced.access_token
        challenged = client.acquire_token(
            RESOURCE, claims='{"access_token":{"nbf":{"essential":true,"value":"1"}}}')
        assert challenged.token_source == "identity_provider"


def test_results_are_frozen_and_redacted(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        r = client.acquire_token(RESOURCE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.access_token = "x"  # type: ignore[misc]
    for text in (repr(r), str(r), f"{r}", f"{r!r}", "%s" % (r,)):
        assert r.access_token not in text
        assert r.access_token[:20] not in text
        assert "<redacted>" in text
        assert r.binding_certificate_thumbprint in text


def test_many_resources_one_binding_certificate(emulator):
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        results = [client.acquire_token(f"api://many-{i}") for i in range(5)]
    assert len({r.binding_certificate_thumbprint for r in results}) == 1
    assert len({r.access_token for r in results}) == 5


def test_threads_share_a_client(emulator):
    import threading

    errors = []
    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        client.acquire_token(RESOURCE)

        def worker():
            try:
                for _ in range(2000):
                    r = client.acquire_token(RESOURCE)
                    assert r.token_source == "cache" and r.token_type == "mtls_pop"
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors


def test_handles_are_released(emulator):
    import gc

    gc.collect()
    before = mtlspop.live_objects()
    client = mtlspop.ManagedIdentityClient(mtls_pop=True)
    results = [client.acquire_token(RESOURCE) for _ in range(10)]
    results.append(client.acquire_token(RESOURCE, force_refresh=True))
    client.call(results[0], "GET", emulator.urls["resource"])
    with pytest.raises(mtlspop.InvalidArgumentError):
        client.acquire_token("")
    client.close()
    del results, client
    gc.collect()
    assert mtlspop.live_objects() == before


def test_bad_arguments(emulator):
    with mtlspop.ManagedIdentityClient() as client:
        with pytest.raises(mtlspop.InvalidArgumentError) as e:
            client.acquire_token("")
        assert e.value.code == "invalid_argument"
        with pytest.raises(mtlspop.InvalidArgumentError):
            client.acquire_token("api://x\x00y")
        with pytest.raises(mtlspop.InvalidArgumentError):
            client.acquire_token("api://\udcff")
        with pytest.raises(TypeError):
            client.acquire_token(b"api://x")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client.acquire_token(RESOURCE, mtls_pop="yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client.acquire_token(RESOURCE, timeout="5")  # type: ignore[arg-type]
        with pytest.raises(mtlspop.InvalidArgumentError):  # JSON has no NaN
            client.acquire_token(RESOURCE, timeout=float("nan"))
        # Values of the right type go to the library, which refuses them with its own error.
        for use in (lambda: client.acquire_token(RESOURCE, timeout=0),
                    lambda: client.acquire_token(RESOURCE, timeout=86400.001)):
            with pytest.raises(mtlspop.InvalidArgumentError) as e:
                use()
            assert "options.timeout_ms" in e.value.message, e.value.message
        with pytest.raises(mtlspop.InvalidArgumentError) as e:
            client.acquire_token("x" * ((1 << 20) + 1))
        assert "MTLSPOP_MAX_INPUT" in e.value.message, e.value.message
    with pytest.raises(TypeError):
        mtlspop.ManagedIdentityClient("system")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mtlspop.ManagedIdentityClient(key=42)  # type: ignore[arg-type]
    with pytest.raises(mtlspop.InvalidArgumentError) as e:
        mtlspop.ManagedIdentityClient(key="hsm")  # type: ignore[arg-type]
    assert "config.key.provider" in e.value.message, e.value.message
    with pytest.raises(mtlspop.InvalidArgumentError) as e:
        mtlspop.ManagedIdentityClient(timeout=-1)
    assert "config.timeout_ms" in e.value.message, e.value.message
