"""Every error family raises its exception class with its code."""

import os
import pickle
import re
import threading
import time

import pytest

import mtlspop
from mtlspop import _errors, _ffi
from conftest import RESOURCE


def test_invalid_argument(emulator):
    cases = [
        (lambda: mtlspop.ManagedIdentityClient(ca_file="/nonexistent/ca.pem"), "invalid_argument"),
        (lambda: mtlspop.ManagedIdentityClient(imds_endpoint="ftp://x"),
         "invalid_managed_identity_endpoint"),
        (lambda: mtlspop.ManagedIdentityClient(key=mtlspop.TPMKey(device="")), "invalid_argument"),
        (lambda: mtlspop.ManagedIdentityClient(key="hsm"), "invalid_argument"),
    ]
    for make, code in cases:
        with pytest.raises(mtlspop.InvalidArgumentError) as e:
            make()
        assert e.value.code == code
        assert e.value.rc == _ffi.E_INVALID_ARG
        assert isinstance(e.value, ValueError)
        assert e.value.message.startswith("mtlspop: ")


def test_tpm_error_is_unsupported(emulator, closed_port, tmp_path):
    """The library files tpm_error under MTLSPOP_E_UNSUPPORTED: so does the exception class."""
    key = mtlspop.TPMKey(device=f"tcp://127.0.0.1:{closed_port}", state_dir=tmp_path)
    with pytest.raises(mtlspop.UnsupportedError) as e:
        mtlspop.ManagedIdentityClient(mtls_pop=True, key=key)
    assert e.value.code == "tpm_error" and e.value.rc == _ffi.E_UNSUPPORTED
    assert type(e.value) is mtlspop.UnsupportedError


def test_identity_error(emulator):
    unknown = mtlspop.UserAssigned(client_id="00000000-0000-0000-0000-000000000000")
    with mtlspop.ManagedIdentityClient(unknown) as client:
        with pytest.raises(mtlspop.IdentityError) as e:
            client.acquire_token(RESOURCE)
    assert e.value.code == "managed_identity_request_failed"
    assert e.value.status == 400
    assert len(e.value.correlation_id) == 36
    assert e.value.correlation_id in str(e.value)
    assert e.value.rc == _ffi.E_IDENTITY


def test_pop_not_supported(emulator_v1):
    with mtlspop.ManagedIdentityClient(imds_endpoint=emulator_v1.urls["imds"],
                                       mtls_pop=True) as client:
        with pytest.raises(mtlspop.PoPNotSupportedError) as e:
            client.acquire_token(RESOURCE)
        assert e.value.code == "mtls_pop_token_not_supported_in_imds_v1"
        assert client.acquire_token(RESOURCE, mtls_pop=False).token_type == "Bearer"


def test_managed_identity_unreachable(emulator, closed_port):
    with mtlspop.ManagedIdentityClient(imds_endpoint=f"http://127.0.0.1:{closed_port}") as c:
        with pytest.raises(mtlspop.ManagedIdentityUnavailableError) as e:
            c.acquire_token(RESOURCE)
    assert e.value.code == "managed_identity_unreachable_network"
    assert isinstance(e.value, mtlspop.NetworkError)


def test_unsupported(emulator, fake_imds, monkeypatch):
    """Cloud Shell (MSI_ENDPOINT alone) has no user-assigned identities."""
    srv = fake_imds(500, b"{}")
    monkeypatch.setenv("MSI_ENDPOINT", srv.url + "/oauth2/token")
    with mtlspop.ManagedIdentityClient(mtlspop.UserAssigned(client_id="x")) as c:
        with pytest.raises(mtlspop.UnsupportedError) as e:
            c.acquire_token(RESOURCE)
    assert e.value.code == "user_assigned_managed_identity_not_supported"
    assert e.value.rc == _ffi.E_UNSUPPORTED
    assert not srv.requests  # refused before asking


def test_protocol_error(emulator, fake_imds):
    srv = fake_imds(200, b"this is not json", "text/plain")
    with mtlspop.ManagedIdentityClient(imds_endpoint=srv.url) as c:
        with pytest.raises(mtlspop.ProtocolError) as e:
            c.acquire_token(RESOURCE)
    assert e.value.code == "managed_identity_response_parse_failure"
    assert "this is not json" not in str(e.value)  # never a response body


def test_network_error(emulator, closed_port):
    with mtlspop.ManagedIdentityClient() as c:
        r = c.acquire_token(RESOURCE)
        with pytest.raises(mtlspop.NetworkError) as e:
            c.call(r, "GET", f"https://127.0.0.1:{closed_port}/")
    assert e.value.code == "network_error" and e.value.rc == _ffi.E_NETWORK


def test_timeouts(emulator, blackhole):
    with mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=0.3) as c:
        t0 = time.monotonic()
        with pytest.raises(mtlspop.RequestTimeoutError) as e:
            c.acquire_token(RESOURCE)
        assert time.monotonic() - t0 < 10
    assert e.value.code == "request_timeout" and isinstance(e.value, TimeoutError)
    with mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=60) as c:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            c.acquire_token(RESOURCE, timeout=0.2)
        assert time.monotonic() - t0 < 10


def test_canceled_by_close(emulator, blackhole):
    client = mtlspop.ManagedIdentityClient(imds_endpoint=blackhole, timeout=60)
    outcome = []

    def blocked():
        try:
            client.acquire_token(RESOURCE)
        except BaseException as e:  # noqa: BLE001
            outcome.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    client.close()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    assert isinstance(outcome[0], mtlspop.CanceledError) and outcome[0].code == "canceled"


def test_closed_client(emulator):
    client = mtlspop.ManagedIdentityClient()
    r = client.acquire_token(RESOURCE)
    client.close()
    client.close()  # idempotent
    assert client.closed and "closed" in repr(client)
    for use in (lambda: client.acquire_token(RESOURCE),
                lambda: client.acquire_token(RESOURCE, mtls_pop=True),
                lambda: client.call(r, "GET", emulator.urls["resource"])):
        with pytest.raises(mtlspop.ClosedError) as e:
            use()
        assert e.value.code == "client_closed"
    with mtlspop.ManagedIdentityClient() as c:
        pass
    with pytest.raises(mtlspop.ClosedError):
        c.acquire_token(RESOURCE)


def test_invalid_token(emulator):
    with pytest.raises(mtlspop.InvalidTokenError) as e:
        mtlspop.verify("mtls_pop x.y.z", None, audiences=RESOURCE,
                       jwks_url=emulator.urls["jwks"], ca_file=emulator.ca_file)
    assert e.value.code == "invalid_token" and e.value.rc == _ffi.E_INVALID_TOKEN


def test_the_status_picks_the_class():
    """The class is the status's; the code only narrows it, within that status."""
    unknown = _errors.error(-99, None)
    assert type(unknown) is mtlspop.MtlsPopError and unknown.code == "unknown" and unknown.rc == -99
    # A status without an error object still gets its class.
    bare = _errors.error(_ffi.E_UNSUPPORTED, None)
    assert type(bare) is mtlspop.UnsupportedError and bare.rc == _ffi.E_UNSUPPORTED
    forked = _errors.error(_ffi.E_FORKED, None)
    assert type(forked) is mtlspop.ForkedError and forked.code == "forked"
    with pytest.raises(mtlspop.OutOfMemoryError):
        _errors._check(_ffi.E_NOMEM, None)
    _errors._check(_ffi.OK, None)
    # Codes this package does not know get the class of their status, whatever it is.
    assert _errors._class_of(_ffi.E_IDENTITY, "some_future_code") is mtlspop.IdentityError
    assert _errors._class_of(_ffi.E_PROTOCOL, "some_future_code") is mtlspop.ProtocolError
    assert _errors._class_of(_ffi.E_UNSUPPORTED, "tpm_error") is mtlspop.UnsupportedError
    # A narrower class applies only under the status it belongs to.
    assert (_errors._class_of(_ffi.E_UNSUPPORTED, "mtls_pop_not_supported_for_environment")
            is mtlspop.PoPNotSupportedError)
    assert (_errors._class_of(_ffi.E_IDENTITY, "mtls_pop_not_supported_for_environment")
            is mtlspop.IdentityError)
    assert (_errors._class_of(_ffi.E_NETWORK, "managed_identity_unreachable_network")
            is mtlspop.ManagedIdentityUnreachableError)


# The class of each status: what a caller catches for it.
FAMILIES = {
    _ffi.E_INVALID_ARG: mtlspop.InvalidArgumentError,
    _ffi.E_FORKED: mtlspop.ForkedError,
    _ffi.E_TIMEOUT: mtlspop.RequestTimeoutError,
    _ffi.E_CANCELED: mtlspop.CanceledError,
    _ffi.E_CLOSED: mtlspop.ClosedError,
    _ffi.E_NETWORK: mtlspop.NetworkError,
    _ffi.E_IDENTITY: mtlspop.IdentityError,
    _ffi.E_PROTOCOL: mtlspop.ProtocolError,
    _ffi.E_UNSUPPORTED: mtlspop.UnsupportedError,
    _ffi.E_INVALID_TOKEN: mtlspop.InvalidTokenError,
    _ffi.E_NOT_FOUND: mtlspop.MtlsPopError,
    _ffi.E_NOMEM: mtlspop.OutOfMemoryError,
    _ffi.E_INTERNAL: mtlspop.InternalError,
}


def test_every_documented_code_has_the_class_of_its_status():
    """The codes include/mtlspop.h lists per status map to the family of that status."""
    codes = {
        _ffi.E_INVALID_ARG: [
            "invalid_argument", "invalid_managed_identity_id_type",
            "invalid_managed_identity_endpoint", "mtls_certificate_not_provided",
            "missing_tenanted_authority"],
        _ffi.E_TIMEOUT: ["request_timeout"],
        _ffi.E_CANCELED: ["canceled"],
        _ffi.E_CLOSED: ["client_closed"],
        _ffi.E_NETWORK: ["network_error", "managed_identity_unreachable_network"],
        _ffi.E_IDENTITY: [
            "managed_identity_request_failed", "invalid_client", "sts_error",
            "attestation_failed", "service_not_available", "a_code_the_header_does_not_list"],
        _ffi.E_PROTOCOL: [
            "managed_identity_response_parse_failure", "invalid_managed_identity_response",
            "invalid_token_response", "token_type_mismatch", "token_type_missing",
            "response_too_large", "invalid_certificate"],
        _ffi.E_UNSUPPORTED: [
            "mtls_pop_token_not_supported_in_imds_v1", "mtls_pop_not_supported_for_environment",
            "user_assigned_managed_identity_not_supported",
            "user_assigned_managed_identity_not_configurable_at_runtime",
            "missing_managed_identity_env_var", "managed_identity_all_sources_unavailable",
            "tpm_error"],
        _ffi.E_INVALID_TOKEN: ["invalid_token"],
        _ffi.E_NOT_FOUND: ["not_cached"],
        _ffi.E_INTERNAL: ["internal_error"],
    }
    for rc, names in codes.items():
        for code in names:
            assert issubclass(_errors._class_of(rc, code), FAMILIES[rc]), (rc, code)


def test_the_header_statuses_and_their_codes():
    """The same, read from include/mtlspop.h itself: its numbers are _ffi's, and every code it
    lists under a status gets that status's class."""
    header = os.environ.get("MTLSPOP_HEADER")
    if not header:
        pytest.skip("MTLSPOP_HEADER is not set (ci/python.sh test sets it)")
    with open(header, encoding="utf-8") as f:
        text = f.read()
    enum = text[text.index("typedef enum mtlspop_status {"):text.index("} mtlspop_status;")]
    entries = re.split(r"(?=\bMTLSPOP_(?:OK|E_[A-Z_]+)\s*=)", enum)[1:]
    seen = 0
    for entry in entries:
        name, number = re.match(r"MTLSPOP_(OK|E_[A-Z_]+)\s*=\s*(-?\d+)", entry).groups()
        assert getattr(_ffi, name) == int(number), name
        for code in re.findall(r'"([a-z0-9_]+)"', entry):
            assert issubclass(_errors._class_of(int(number), code), FAMILIES[int(number)]), code
            seen += 1
    assert len(entries) == 14 and seen > 30


def test_errors_pickle_with_their_attributes():
    e = mtlspop.RequestTimeoutError("mtlspop: request_timeout: x", code="request_timeout",
                                    status=0, correlation_id="abc", rc=_ffi.E_TIMEOUT)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is mtlspop.RequestTimeoutError
    assert (back.code, back.correlation_id, back.rc, str(back)) == (
        "request_timeout", "abc", _ffi.E_TIMEOUT, str(e))
