"""Managed-identity sources other than IMDS: App Service and Azure Arc."""

import os

import pytest

import mtlspop
from conftest import RESOURCE, Emulator, decode_jwt


@pytest.fixture(scope="module")
def appservice(emulator):
    emu = Emulator("--source", "appservice")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def arc(emulator):
    if os.geteuid() != 0:
        print("SKIP Azure Arc: the Arc key directory /var/opt/azcmagent/tokens needs root")
        pytest.skip("Azure Arc needs root: its key directory is /var/opt/azcmagent/tokens")
    emu = Emulator("--source", "arc", "--arc-key-dir", "/var/opt/azcmagent/tokens")
    yield emu
    emu.stop()


def test_app_service(appservice, source_env):
    source_env(appservice)
    with mtlspop.ManagedIdentityClient() as client:
        r = client.acquire_token(RESOURCE)
        assert r.token_type == "Bearer" and r.token_source == "identity_provider"
        assert decode_jwt(r.access_token)["sub"] == appservice.system_assigned["object_id"]
        assert client.acquire_token(RESOURCE).token_source == "cache"
        with pytest.raises(mtlspop.PoPNotSupportedError) as e:
            client.acquire_token(RESOURCE, mtls_pop=True)
        assert e.value.code == "mtls_pop_not_supported_for_environment"
        assert client.call(r, "GET", appservice.urls["resource"]).status == 200
    uami = appservice.user_assigned
    with mtlspop.ManagedIdentityClient(mtlspop.UserAssigned(client_id=uami["client_id"])) as c:
        assert decode_jwt(c.acquire_token(RESOURCE).access_token)["sub"] == uami["object_id"]


def test_azure_arc(arc, source_env):
    source_env(arc)
    with mtlspop.ManagedIdentityClient() as client:
        r = client.acquire_token(RESOURCE)
        assert r.token_type == "Bearer"
        assert decode_jwt(r.access_token)["sub"] == arc.system_assigned["object_id"]
        assert client.acquire_token(RESOURCE).token_source == "cache"
        with pytest.raises(mtlspop.PoPNotSupportedError):
            client.acquire_token(RESOURCE, mtls_pop=True)
