"""Exceptions, and the one funnel that turns a C status into one of them.

Every failure of the library reaches Python through :func:`_check`: the status (the C return
value) tells whether there is a failure and of which category, and the per-call error object
says which exactly (its code string is the stable reason). The class of the exception comes from
the status, through ``_BY_STATUS``, exactly as the library sorts its codes into statuses; the code
only narrows it to a subclass of that class where this package has one (``_NARROWER``, e.g.
:class:`PoPNotSupportedError` for the UNSUPPORTED status). So a code this package does not know
yet, or one the library files under another status in a later version, still gets the class of
its status, and still carries its code. A status this package does not know maps to the base
class :class:`MtlsPopError`.

Where a builtin exception fits, a subclass inherits from it too, so callers can catch either:
:class:`InvalidArgumentError` is a :class:`ValueError`, :class:`RequestTimeoutError` a
:class:`TimeoutError`, :class:`NetworkError` a :class:`ConnectionError`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type

from . import _ffi


def _rebuild(
    cls: Type["MtlsPopError"], message: str, code: str, status: int, correlation_id: str, rc: int
) -> "MtlsPopError":
    return cls(message, code=code, status=status, correlation_id=correlation_id, rc=rc)


class MtlsPopError(Exception):
    """A libmtlspop failure.

    Attributes:
        code: the stable reason, e.g. ``"managed_identity_request_failed"`` or
            ``"mtls_pop_token_not_supported_in_imds_v1"`` (MSAL's error-code strings).
        message: human-readable detail; never contains a token, a key or a response body.
        status: the HTTP status of the failing response, 0 when there was none.
        correlation_id: the request's correlation id (x-ms-client-request-id), "" when none.
            Quote it when reporting a problem with the identity platform.
        rc: the C status (a negative ``MTLSPOP_E_*`` value): the failure's category.
    """

    code: str
    message: str
    status: int
    correlation_id: str
    rc: int

    def __init__(
        self,
        message: str,
        *,
        code: str = "unknown",
        status: int = 0,
        correlation_id: str = "",
        rc: int = _ffi.E_INTERNAL,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.correlation_id = correlation_id
        self.rc = rc

    def __str__(self) -> str:
        if self.correlation_id:
            return f"{self.message} (correlation id {self.correlation_id})"
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status}, "
            f"correlation_id={self.correlation_id!r}, message={self.message!r})"
        )

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:  # keeps the attributes when pickled
        return (_rebuild, (type(self), self.message, self.code, self.status,
                           self.correlation_id, self.rc))


class InvalidArgumentError(MtlsPopError, ValueError):
    """A bad argument, configuration or option (``invalid_argument`` and friends)."""


class RequestTimeoutError(MtlsPopError, TimeoutError):
    """The call's deadline passed (``request_timeout``)."""


class CanceledError(MtlsPopError):
    """The call was canceled while in flight, e.g. by closing its client (``canceled``)."""


class ClosedError(MtlsPopError):
    """The client is closed (``client_closed``)."""


class ForkedError(MtlsPopError):
    """Called in a process forked after the library was loaded (``forked``).

    The Go runtime inside libmtlspop does not survive fork(): create clients in the child's
    own process (multiprocessing's "spawn" or "forkserver" start methods), or exec().
    """


class NetworkError(MtlsPopError, ConnectionError):
    """A transport or TLS failure, after retries (``network_error``)."""


class IdentityError(MtlsPopError):
    """The identity platform refused or failed the request (``managed_identity_request_failed``,
    ``invalid_client``, ``sts_error``, ``attestation_failed``, ``service_not_available``, and
    any code the library does not list under another status)."""


class ProtocolError(MtlsPopError):
    """A server answered something unusable (``invalid_token_response``, ...)."""


class UnsupportedError(MtlsPopError):
    """What was asked is not available in this environment
    (``user_assigned_managed_identity_not_supported``, ``tpm_error``: the TPM or its state
    directory failed, ...)."""


class PoPNotSupportedError(UnsupportedError):
    """mTLS PoP is not available here (``mtls_pop_token_not_supported_in_imds_v1``,
    ``mtls_pop_not_supported_for_environment``); a Bearer token may still be."""


class ManagedIdentityUnavailableError(UnsupportedError):
    """No managed-identity source is available or reachable
    (``managed_identity_all_sources_unavailable``, ``missing_managed_identity_env_var``,
    ``managed_identity_unreachable_network``)."""


class ManagedIdentityUnreachableError(ManagedIdentityUnavailableError, NetworkError):
    """The managed-identity endpoint could not be reached
    (``managed_identity_unreachable_network``): both unavailable and a network failure."""


class InvalidTokenError(MtlsPopError):
    """:func:`mtlspop.verify` refused the token (``invalid_token``); answer HTTP 401."""


class InternalError(MtlsPopError):
    """A bug in libmtlspop (``internal_error``); please report it."""


class OutOfMemoryError(MtlsPopError, MemoryError):
    """The library could not allocate memory (``out_of_memory``)."""


# The class of each status of include/mtlspop.h (enum mtlspop_status). MTLSPOP_E_NOT_FOUND has no
# class of its own: this package never asks for what could fail with it (cache_only, cancel).
_BY_STATUS: Dict[int, Type[MtlsPopError]] = {
    _ffi.E_INVALID_ARG: InvalidArgumentError,
    _ffi.E_FORKED: ForkedError,
    _ffi.E_TIMEOUT: RequestTimeoutError,
    _ffi.E_CANCELED: CanceledError,
    _ffi.E_CLOSED: ClosedError,
    _ffi.E_NETWORK: NetworkError,
    _ffi.E_IDENTITY: IdentityError,
    _ffi.E_PROTOCOL: ProtocolError,
    _ffi.E_UNSUPPORTED: UnsupportedError,
    _ffi.E_INVALID_TOKEN: InvalidTokenError,
    _ffi.E_NOMEM: OutOfMemoryError,
    _ffi.E_INTERNAL: InternalError,
}

# Codes that have a narrower class than their status's. Used only when that class is a subclass
# of the status's class (see _class_of), so the category a caller catches is always the status's.
_NARROWER: Dict[str, Type[MtlsPopError]] = {
    "mtls_pop_token_not_supported_in_imds_v1": PoPNotSupportedError,
    "mtls_pop_not_supported_for_environment": PoPNotSupportedError,
    "missing_managed_identity_env_var": ManagedIdentityUnavailableError,
    "managed_identity_all_sources_unavailable": ManagedIdentityUnavailableError,
    "managed_identity_unreachable_network": ManagedIdentityUnreachableError,
}


def _class_of(rc: int, code: str) -> Type[MtlsPopError]:
    """The exception class of a failure: its status's, or a subclass of it that its code names."""
    cls = _BY_STATUS.get(rc, MtlsPopError)
    narrower = _NARROWER.get(code)
    if narrower is not None and issubclass(narrower, cls):
        return narrower
    return cls


# Statuses that come without an error object (convention 2 of mtlspop.h), and the code this
# package gives them.
_STATUS_ONLY_CODE = {
    _ffi.E_FORKED: "forked",
    _ffi.E_NOMEM: "out_of_memory",
}


def error(rc: int, err: Optional[int]) -> MtlsPopError:
    """Builds the exception for a failed call's status and error object, and frees the object
    (which belongs to that call)."""
    lib = _ffi.lib
    if err:
        code = _ffi.text(lib.mtlspop_error_code(err)) or "unknown"
        message = _ffi.text(lib.mtlspop_error_message(err)) or code
        status = max(lib.mtlspop_error_http_status(err), 0)
        correlation_id = _ffi.text(lib.mtlspop_error_correlation_id(err)) or ""
        lib.mtlspop_error_free(err)
    else:
        code = _STATUS_ONLY_CODE.get(rc, "unknown")
        message = f"mtlspop: {code}: {lib.mtlspop_strerror(rc).decode('ascii', 'replace')}"
        status, correlation_id = 0, ""
    return _class_of(rc, code)(message, code=code, status=status, correlation_id=correlation_id,
                               rc=rc)


def _check(rc: int, err: Optional[int]) -> None:
    """The funnel: returns on MTLSPOP_OK, raises the matching exception otherwise."""
    if rc != _ffi.OK:
        raise error(rc, err)


def closed() -> ClosedError:
    """The error for using a client after close()."""
    return ClosedError("mtlspop: client_closed: the client is closed", code="client_closed",
                       rc=_ffi.E_CLOSED)


def invalid(message: str) -> InvalidArgumentError:
    """An argument error found in Python, before calling the library."""
    return InvalidArgumentError(f"mtlspop: invalid_argument: {message}", code="invalid_argument",
                                rc=_ffi.E_INVALID_ARG)
