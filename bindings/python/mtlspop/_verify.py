"""Resource side: verifying an incoming certificate-bound (or Bearer) token."""

from __future__ import annotations

import json
import os
from ctypes import byref, c_void_p
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from . import _errors, _ffi
from ._client import millis, utf8
from ._errors import _check
from ._types import Claims, StrPath

_lib = _ffi.lib


class Verifier:
    """A verifier configuration, built once and reused for every request.

    The library caches verifiers (and the key sets they fetched) by their configuration, so
    keeping one :class:`Verifier` per API is cheap; :func:`verify` builds one per call.

    Args:
        audiences: the accepted ``aud`` values (at least one).
        issuer: if set, ``iss`` must equal it.
        jwks_url: the issuer's key set (https, or http on loopback), fetched on first use and
            cached; or
        jwks: the key set inline (``{"keys": [...]}``). Exactly one of the two.
        ca_file: extra trust anchors for ``jwks_url``.
        allow_unbound: accept tokens without ``cnf`` under "Bearer".
        leeway: clock skew tolerated, seconds (0 .. 600).
        timeout: bound of a key-set fetch, seconds.
    """

    def __init__(
        self,
        *,
        audiences: Union[str, Sequence[str]],
        issuer: Optional[str] = None,
        jwks_url: Optional[str] = None,
        jwks: Optional[Mapping[str, Any]] = None,
        ca_file: Optional[StrPath] = None,
        allow_unbound: bool = False,
        leeway: int = 0,
        timeout: Optional[float] = None,
    ) -> None:
        if isinstance(audiences, str):
            audiences = [audiences]
        cfg: Dict[str, Any] = {"audiences": list(audiences)}
        if issuer is not None:
            cfg["issuer"] = issuer
        if jwks_url is not None:
            cfg["jwks_url"] = jwks_url
        if jwks is not None:
            cfg["jwks"] = dict(jwks)
        if ca_file is not None:
            cfg["ca_file"] = os.fspath(ca_file)
        if allow_unbound:
            cfg["allow_unbound"] = True
        if leeway:
            if isinstance(leeway, bool) or not isinstance(leeway, int):
                raise TypeError("leeway must be an int number of seconds")
            cfg["leeway_s"] = leeway
        timeout_ms = millis(timeout, "timeout")
        if timeout_ms is not None:
            cfg["timeout_ms"] = timeout_ms
        self._config = utf8(json.dumps(cfg), "verifier configuration")

    def verify(self, authorization: str,
               client_certificate_pem: Union[str, bytes, None] = None) -> Claims:
        """Verifies an Authorization header value (``"mtls_pop <jwt>"`` or ``"Bearer <jwt>"``)
        against the TLS client certificate of its connection (PEM; None when the client
        presented none): signature, exp/nbf/iat, iss, aud, and the binding — a token with
        ``cnf.x5t#S256`` is accepted only with the certificate it is bound to (RFC 8705 §3).

        Returns the token's claims only when it verified.

        Raises:
            InvalidTokenError: the token is not acceptable; answer HTTP 401.
            NetworkError: the key set could not be fetched; answer HTTP 503.
            InvalidArgumentError: a bad configuration or certificate PEM.
        """
        if not isinstance(authorization, str):
            raise TypeError(f"authorization must be a str, not {type(authorization).__name__}")
        # The header came from the network, and the library says what a malformed one is (an
        # invalid token). What cannot reach it intact is handed over so that it still refuses
        # it: a header with a NUL, which a C string would cut short, as an empty one; lone
        # surrogates as the invalid UTF-8 they stand for.
        if "\x00" in authorization:
            auth = b""
        else:
            auth = authorization.encode("utf-8", "surrogatepass")
        pem: Optional[bytes] = None
        if client_certificate_pem is not None:
            if isinstance(client_certificate_pem, str):
                pem = utf8(client_certificate_pem, "client_certificate_pem")
            elif isinstance(client_certificate_pem, bytes):
                pem = client_certificate_pem
                if b"\x00" in pem:
                    raise _errors.invalid("client_certificate_pem contains a NUL byte")
            else:
                raise TypeError("client_certificate_pem must be str, bytes or None")
        out, err = c_void_p(), c_void_p()
        rc = _lib.mtlspop_verify(self._config, auth, pem, byref(out), byref(err))
        _check(rc, err.value)
        c = out.value
        try:
            claims = Claims(
                token_type=_ffi.text(_lib.mtlspop_claims_token_type(c)) or "",
                subject=_ffi.text(_lib.mtlspop_claims_subject(c)) or "",
                client_id=_ffi.text(_lib.mtlspop_claims_client_id(c)) or "",
                binding_certificate_thumbprint=_ffi.text(_lib.mtlspop_claims_x5t_s256(c)) or "",
                claims=json.loads(_ffi.text(_lib.mtlspop_claims_json(c)) or "{}"),
            )
        finally:
            _lib.mtlspop_claims_free(c)
        return claims

    def __repr__(self) -> str:
        return f"Verifier({self._config.decode('utf-8')})"


def verify(
    authorization: str,
    client_certificate_pem: Union[str, bytes, None] = None,
    *,
    audiences: Union[str, Sequence[str]],
    issuer: Optional[str] = None,
    jwks_url: Optional[str] = None,
    jwks: Optional[Mapping[str, Any]] = None,
    ca_file: Optional[StrPath] = None,
    allow_unbound: bool = False,
    leeway: int = 0,
    timeout: Optional[float] = None,
) -> Claims:
    """Verifies an incoming request's token; see :class:`Verifier` for the arguments and
    :meth:`Verifier.verify` for what is checked and what is raised."""
    return Verifier(audiences=audiences, issuer=issuer, jwks_url=jwks_url, jwks=jwks,
                    ca_file=ca_file, allow_unbound=allow_unbound, leeway=leeway,
                    timeout=timeout).verify(authorization, client_certificate_pem)
