"""TPMKey: binding keys in a TPM (swtpm over TCP), the "key" provider of the configuration."""

import os
import shutil
import socket
import subprocess
import time

import pytest

import mtlspop
from conftest import RESOURCE, decode_jwt


def _free_port_pair():
    for _ in range(50):
        s1, s2 = socket.socket(), socket.socket()
        try:
            s1.bind(("127.0.0.1", 0))
            port = s1.getsockname()[1]
            s2.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
        finally:
            s1.close()
            s2.close()
    pytest.skip("no free pair of loopback ports for swtpm")


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory):
    if not shutil.which("swtpm"):
        print("SKIP TPM: swtpm is not installed (ci/tpm.sh installs it)")
        pytest.skip("swtpm is not installed")
    state = tmp_path_factory.mktemp("swtpm")
    port = _free_port_pair()
    proc = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
         "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
         "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
         "--flags", "not-need-init,startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.skip("swtpm exited at start")
            time.sleep(0.05)
    # swtpm serves one connection at a time; the probe above used it up and closed.
    yield f"tcp://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_pop_token_with_a_tpm_key(emulator, swtpm, tmp_path):
    key = mtlspop.TPMKey(device=swtpm, state_dir=tmp_path / "keys")
    with mtlspop.ManagedIdentityClient(mtls_pop=True, key=key) as client:
        r = client.acquire_token(RESOURCE)
        assert r.token_type == "mtls_pop"
        assert decode_jwt(r.access_token)["cnf"]["x5t#S256"] == r.binding_certificate_thumbprint
        assert client.acquire_token(RESOURCE).token_source == "cache"
        resp = client.call(r, "GET", emulator.urls["resource"])  # TLS signed inside the TPM
        assert resp.status == 200
        assert resp.json()["x5t#S256"] == r.binding_certificate_thumbprint
    assert os.listdir(tmp_path / "keys")  # the key blob persists for the next process
