"""Fixtures: the emulator (`mtlspop emulator`) as a subprocess, and servers that misbehave.

The tests run against the installed wheel (ci/python.sh test), never the source tree. The C ABI
reads the environment when a client is created, so the session fixture applies the emulator's
environment to os.environ before any client exists; fixtures for other sources change it only
for the duration of one test.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import select
import socket
import subprocess
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

CLI = os.environ.get("MTLSPOP_CLI", "")
RESOURCE = "api://mtlspop-emulator"

# Variables that select a managed-identity source; none may leak in from the outside.
SOURCE_VARS = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT",
    "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)


class Emulator:
    """`mtlspop emulator ARGS...`, running until stop(); `info` is the line it printed."""

    def __init__(self, *args: str) -> None:
        if not CLI or not os.access(CLI, os.X_OK):
            pytest.fail(f"MTLSPOP_CLI ({CLI!r}) is not the mtlspop binary; run ci/python.sh test")
        self.proc = subprocess.Popen(
            [CLI, "emulator", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.stop()
            pytest.fail(f"mtlspop emulator {' '.join(args)} did not start")
        self.info: Dict[str, Any] = json.loads(line)

    @property
    def env(self) -> Dict[str, str]:
        return self.info["env"]

    @property
    def urls(self) -> Dict[str, str]:
        return self.info["urls"]

    @property
    def ca_file(self) -> str:
        return self.env["SSL_CERT_FILE"]

    @property
    def system_assigned(self) -> Dict[str, str]:
        return self.info["identities"]["system_assigned"]

    @property
    def user_assigned(self) -> Dict[str, str]:
        return self.info["identities"]["user_assigned"][0]

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The default emulator (IMDS with v2, i.e. mTLS PoP), its environment applied."""
    saved = {k: os.environ.get(k) for k in (*SOURCE_VARS, "SSL_CERT_FILE")}
    for k in SOURCE_VARS:
        os.environ.pop(k, None)
    emu = Emulator()
    os.environ.update(emu.env)
    yield emu
    emu.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def emulator_v1(emulator: Emulator) -> Iterator[Emulator]:
    """An emulator of a host without IMDSv2 (no mTLS PoP); reach it with imds_endpoint=."""
    emu = Emulator("--imds-v1-only")
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def emulator_require_pop(emulator: Emulator) -> Iterator[Emulator]:
    """An emulator whose sample resource refuses unbound Bearer tokens."""
    emu = Emulator("--require-pop")
    yield emu
    emu.stop()


def decode_jwt(token: str) -> Dict[str, Any]:
    """The payload of a JWT (no verification: that is what mtlspop.verify is for)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
def jwt() -> Callable[[str], Dict[str, Any]]:
    return decode_jwt


# ------------------------------------------------------------------------------------------
# servers that misbehave


@pytest.fixture
def blackhole() -> Iterator[str]:
    """http://127.0.0.1:PORT of a socket that completes TCP handshakes and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FakeIMDS:
    """A loopback HTTP server answering every request with one canned response."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.requests: List[Tuple[str, str]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self._answer()

            def _answer(self) -> None:
                fake.requests.append((self.command, self.path))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_imds() -> Iterator[Callable[..., FakeIMDS]]:
    servers: List[FakeIMDS] = []

    def start(status: int, body: bytes, content_type: str = "application/json") -> FakeIMDS:
        srv = FakeIMDS(status, body, content_type)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


@pytest.fixture
def source_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[Emulator], None]:
    """Applies another source's emulator environment for one test (restored afterwards)."""

    def apply(emu: Emulator) -> None:
        for k in SOURCE_VARS:
            monkeypatch.delenv(k, raising=False)
        for k, v in emu.env.items():
            monkeypatch.setenv(k, v)

    return apply


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def until() -> Callable[..., bool]:
    return wait_until


def pytest_report_header(config: pytest.Config) -> Optional[str]:
    import mtlspop

    return f"mtlspop {mtlspop.__version__} from {os.path.dirname(mtlspop.__file__)}"
