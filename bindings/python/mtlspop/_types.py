"""The values of the API: identities, key providers, results, responses and claims."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Literal, Mapping, Optional, Sequence, Tuple, Union

from . import _errors, _ffi

TokenSource = Literal["cache", "identity_provider"]
"""Where an acquisition got its token: the client's cache, or the identity platform."""

StrPath = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------------------------
# identities


@dataclass(frozen=True)
class SystemAssigned:
    """The system-assigned managed identity of the host."""

    def _config(self) -> Dict[str, str]:
        return {"type": "system"}


@dataclass(frozen=True)
class UserAssigned:
    """A user-assigned managed identity, selected by exactly one of its ids."""

    client_id: Optional[str] = None
    resource_id: Optional[str] = None
    object_id: Optional[str] = None

    def __post_init__(self) -> None:
        # Only what the configuration's shape needs: {"type": ..., "id": ...} names one id, and
        # it is a string. What the id may be (not empty, ...) is the library's to say.
        given = [(k, v) for k, v in (("client_id", self.client_id),
                                     ("resource_id", self.resource_id),
                                     ("object_id", self.object_id)) if v is not None]
        if len(given) != 1:
            raise _errors.invalid(
                "UserAssigned takes exactly one of client_id, resource_id or object_id")
        name, value = given[0]
        if not isinstance(value, str):
            raise TypeError(f"UserAssigned {name} must be a str, not {type(value).__name__}")

    def _config(self) -> Dict[str, str]:
        for name in ("client_id", "resource_id", "object_id"):
            value = getattr(self, name)
            if value is not None:
                return {"type": name, "id": value}
        raise AssertionError("unreachable")  # pragma: no cover


Identity = Union[SystemAssigned, UserAssigned]


# --------------------------------------------------------------------------------------------
# key providers


@dataclass(frozen=True)
class SoftwareKey:
    """Binding keys in memory (RSA-2048), the default."""

    def _config(self) -> Dict[str, Any]:
        return {"provider": "software"}


@dataclass(frozen=True)
class TPMKey:
    """Non-exportable binding keys in a TPM 2.0.

    Args:
        device: "/dev/tpmrm0" (the default) or "tcp://host:port" for swtpm.
        state_dir: where key blobs and certificates are kept (default
            ~/.local/state/mtlspop/tpm).
        attest: make the key prove it lives in the TPM before its certificate is issued
            (fails closed).
    """

    device: Optional[str] = None
    state_dir: Optional[StrPath] = None
    attest: bool = False

    def _config(self) -> Dict[str, Any]:
        cfg: Dict[str, Any] = {"provider": "tpm", "attest": bool(self.attest)}
        if self.device is not None:
            cfg["device"] = self.device
        if self.state_dir is not None:
            cfg["state_dir"] = os.fspath(self.state_dir)
        return cfg


KeyProvider = Union[SoftwareKey, TPMKey, Literal["software", "tpm"]]


# --------------------------------------------------------------------------------------------
# tokens


class _Token:
    """Owns one mtlspop_token handle: freed exactly once, when the last result holding it goes.

    Results made from one acquisition share it, so :meth:`ManagedIdentityClient.call` can hand
    the library the token object (which also holds the binding key) for as long as a result is
    alive.
    """

    __slots__ = ("handle", "__weakref__")

    def __init__(self, handle: int) -> None:
        self.handle: Optional[int] = handle

    def __del__(self, _free: Any = _ffi.lib.mtlspop_token_free) -> None:
        h, self.handle = self.handle, None
        if h:
            try:
                _free(h)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __reduce__(self) -> Tuple[Any, Tuple[()]]:
        # A handle is meaningful only in this process and owned once: copies carry no token.
        return (_no_token, ())

    def __repr__(self) -> str:
        return "<mtlspop token>"


def _no_token() -> None:
    return None


@dataclass(frozen=True, repr=False)
class AuthenticationResult:
    """An access token, and the certificate it is bound to (for an mTLS PoP token).

    ``repr()`` and ``str()`` never show the access token.
    """

    access_token: str
    """The access token (a JWT). Secret: do not log it."""
    token_type: str
    """``"mtls_pop"`` or ``"Bearer"``: the scheme of the Authorization header."""
    expires_on: datetime
    """Expiry, an aware datetime in UTC."""
    refresh_on: Optional[datetime]
    """When a background refresh is due (UTC), or None."""
    token_source: TokenSource
    """``"cache"`` or ``"identity_provider"``: where this acquisition got the token."""
    binding_certificate_pem: Optional[str] = None
    """The binding certificate (PEM) of an mTLS PoP token; None for Bearer. Its private key
    stays in the library: call resources with :meth:`ManagedIdentityClient.call`."""
    binding_certificate_thumbprint: Optional[str] = None
    """The binding certificate's x5t#S256 (base64url SHA-256 of its DER), which equals the
    token's ``cnf`` claim; None for Bearer."""
    _token: Optional[_Token] = field(default=None, compare=False, hash=False)

    def authorization_header(self) -> str:
        """The value of the Authorization header: ``"<token_type> <access_token>"``."""
        return f"{self.token_type} {self.access_token}"

    @property
    def is_pop(self) -> bool:
        """True for an mTLS PoP (certificate-bound) token."""
        return self.token_type == "mtls_pop"

    def __repr__(self) -> str:
        parts = [
            f"token_type={self.token_type!r}",
            "access_token=<redacted>",
            f"expires_on={self.expires_on.isoformat()}",
            f"token_source={self.token_source!r}",
        ]
        if self.binding_certificate_thumbprint:
            parts.append(f"binding_certificate_thumbprint={self.binding_certificate_thumbprint!r}")
        return f"AuthenticationResult({', '.join(parts)})"

    __str__ = __repr__


# --------------------------------------------------------------------------------------------
# responses and claims


@dataclass(frozen=True, repr=False)
class Response:
    """What a resource answered to :meth:`ManagedIdentityClient.call`. An HTTP error status is
    a response, not an exception."""

    status: int
    headers: Mapping[str, Sequence[str]]
    """Every header, each with all its values, e.g. ``{"Content-Type": ["application/json"]}``."""
    body: bytes

    def header(self, name: str) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive), or None.

        It reads :attr:`headers`, the library's copy of them all: a Response holds no library
        object, so it can outlive its client, be pickled, and costs no handle while kept."""
        wanted = name.lower()
        for key, values in self.headers.items():
            if key.lower() == wanted and values:
                return values[0]
        return None

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body=<{len(self.body)} bytes>)"


@dataclass(frozen=True)
class Claims:
    """What a verified token says (resource side); see :func:`mtlspop.verify`."""

    token_type: str
    """The scheme the token came with: ``"mtls_pop"`` or ``"Bearer"``."""
    subject: str
    """The ``sub`` claim, "" if absent."""
    client_id: str
    """The caller's client id (``azp``, else ``appid``), "" if absent."""
    binding_certificate_thumbprint: str
    """The verified ``cnf.x5t#S256``, "" for an unbound token."""
    claims: Mapping[str, Any] = field(compare=False)
    """Every claim of the token."""
