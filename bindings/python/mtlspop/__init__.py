"""mtlspop: certificate-bound (mTLS PoP) Azure managed-identity tokens, from Python.

A thin, typed wrapper over libmtlspop's C ABI (the shared library ships inside this package)::

    import mtlspop

    with mtlspop.ManagedIdentityClient(mtls_pop=True) as client:
        result = client.acquire_token("https://graph.microsoft.com")
        print(result.token_type, result.binding_certificate_pem)
        response = client.call(result, "GET", "https://graph.microsoft.com/v1.0/me")

Resource servers verify incoming tokens with :func:`verify`. Library logs go to the
``mtlspop`` logger. Failures raise :class:`MtlsPopError` subclasses carrying ``code``.
"""

from . import _ffi
from ._client import ConfidentialClient, FromConfidentialClient, FromManagedIdentity, ManagedIdentityClient
from ._errors import (
    CanceledError,
    ClosedError,
    ForkedError,
    IdentityError,
    InternalError,
    InvalidArgumentError,
    InvalidTokenError,
    ManagedIdentityUnavailableError,
    ManagedIdentityUnreachableError,
    MtlsPopError,
    NetworkError,
    OutOfMemoryError,
    PoPNotSupportedError,
    ProtocolError,
    RequestTimeoutError,
    UnsupportedError,
)
from ._types import (
    AuthenticationResult,
    Claims,
    Identity,
    KeyProvider,
    Response,
    SoftwareKey,
    SystemAssigned,
    TokenSource,
    TPMKey,
    UserAssigned,
)
from ._verify import Verifier, verify

#: The version of this package, which is the version of the libmtlspop inside it.
__version__: str = _ffi.VERSION

#: The libmtlspop ABI version (the N of libmtlspop.so.N).
ABI_VERSION: int = _ffi.ABI_VERSION


def live_objects() -> int:
    """The number of live library objects (clients, tokens, responses, claims, errors) in the
    process: a diagnostic, e.g. for a leak test."""
    return int(_ffi.lib.mtlspop_live_objects())


__all__ = [
    "ABI_VERSION",
    "AuthenticationResult",
    "CanceledError",
    "Claims",
    "ClosedError",
    "ForkedError",
    "Identity",
    "IdentityError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidTokenError",
    "KeyProvider",
    "ManagedIdentityClient",
    "ConfidentialClient",
    "FromManagedIdentity",
    "FromConfidentialClient",
    "ManagedIdentityUnavailableError",
    "ManagedIdentityUnreachableError",
    "MtlsPopError",
    "NetworkError",
    "OutOfMemoryError",
    "PoPNotSupportedError",
    "ProtocolError",
    "RequestTimeoutError",
    "Response",
    "SoftwareKey",
    "SystemAssigned",
    "TPMKey",
    "TokenSource",
    "UnsupportedError",
    "UserAssigned",
    "Verifier",
    "__version__",
    "live_objects",
    "verify",
]
