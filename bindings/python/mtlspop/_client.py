"""ManagedIdentityClient and ConfidentialClient: token caches over the library's clients, and
calls to resources."""

from __future__ import annotations

import asyncio
import atexit
import base64
import itertools
import json
import math
import os
import threading
import weakref
from ctypes import addressof, byref, c_size_t, c_uint64, c_void_p, string_at
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple, TypeVar, Union

from . import _errors, _ffi, _logging
from ._errors import _check
from ._types import (
    AuthenticationResult,
    Identity,
    KeyProvider,
    Response,
    SoftwareKey,
    StrPath,
    SystemAssigned,
    TPMKey,
    UserAssigned,
    _Token,
)

_C = TypeVar("_C", bound="_Client")
# Bound of a client's acquisition keys (see _Key); past it, acquisitions still work, only
# without the memo.
_MAX_KEYS = 1024

_lib = _ffi.lib
_reader = _ffi.reader
_acquire_into = _ffi.acquire_token_into
_token_free = _lib.mtlspop_token_free
_token_release = _reader.mtlspop_token_free  # only where another reference is held
_access_token = _reader.mtlspop_token_access_token
_token_source = _reader.mtlspop_token_source


def millis(seconds: Optional[float], what: str) -> Optional[int]:
    """A timeout in seconds as the library's timeout_ms, or None. Only the unit changes here:
    which values are acceptable (1 .. 86400000 ms) is the library's to say, with its own error."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(seconds).__name__}")
    if isinstance(seconds, float) and not math.isfinite(seconds):
        # JSON has no NaN or infinity: there is no timeout_ms to hand the library.
        raise _errors.invalid(f"{what} must be a finite number of seconds")
    return math.ceil(seconds * 1000)


def utf8(value: str, what: str) -> bytes:
    """A string argument as the NUL-terminated UTF-8 the library takes."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\x00" in value:
        raise _errors.invalid(f"{what} contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise _errors.invalid(f"{what} is not valid UTF-8 (lone surrogate)") from None


# --------------------------------------------------------------------------------------------
# out-parameter slots of the cache-hit path


def _new_slot() -> Tuple[Any, int, int]:
    """A (token, error) out-parameter pair: the array, and the address of each element."""
    pair = (c_uint64 * 2)()
    address = addressof(pair)
    return pair, address, address + 8


# Free slots, shared by all threads: list.pop() and list.append() are atomic, so a slot is only
# ever in one call at a time (also when a signal handler re-enters acquire_token).
_free_slots: List[Tuple[Any, int, int]] = []


# --------------------------------------------------------------------------------------------
# async completions


class _Request:
    """An async acquisition in flight, by the `user` key its completion comes back with."""

    __slots__ = ("loop", "future", "client", "key", "request_id")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 future: "asyncio.Future[AuthenticationResult]",
                 client: "_Client", key: "_Key") -> None:
        self.loop = loop
        self.future = future
        self.client = client
        self.key = key
        self.request_id = 0  # set once mtlspop_acquire_token_async has returned


_pending: Dict[int, _Request] = {}
_pending_cond = threading.Condition()
_users = itertools.count(1)


def _settle(fut: "asyncio.Future[AuthenticationResult]", result: Optional[AuthenticationResult],
            exc: Optional[BaseException]) -> None:
    if fut.done():  # canceled meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)  # type: ignore[arg-type]


def _on_done(user: Optional[int], _request_id: int, status: int, token: Optional[int],
             err: Optional[int]) -> None:
    # Runs on a library thread, holding the GIL. It owns token and err; nothing may escape.
    try:
        with _pending_cond:
            entry = _pending.pop(user or 0, None)
            _pending_cond.notify_all()
        if entry is None:  # abandoned (interpreter exit, fork): just release
            if token:
                _token_free(token)
            if err:
                _lib.mtlspop_error_free(err)
            return
        result: Optional[AuthenticationResult] = None
        exc: Optional[BaseException] = None
        if status == _ffi.OK and token:
            try:
                result = entry.client._result(token, entry.key)
            except BaseException as e:  # noqa: BLE001
                exc = e
        else:
            exc = _errors.error(status, err)
        try:
            entry.loop.call_soon_threadsafe(_settle, entry.future, result, exc)
        except RuntimeError:  # the loop is closed; nobody is waiting any more
            pass
    except BaseException:  # noqa: BLE001
        pass


_DONE = _ffi.DONE_FN(_on_done)
_ffi.keep_alive(_DONE)


# --------------------------------------------------------------------------------------------
# the client

_clients: "weakref.WeakSet[_Client]" = weakref.WeakSet()


def _key_config(key: Optional[KeyProvider]) -> Optional[Dict[str, Any]]:
    if key is None:
        return None
    if isinstance(key, str):
        # A provider's name; the library says which names exist.
        return {"provider": key}
    if isinstance(key, (SoftwareKey, TPMKey)):
        return key._config()
    raise TypeError(f'key must be "software", "tpm", SoftwareKey() or TPMKey(...), not {key!r}')


class _Client:
    """What both clients share: the library handle, the acquisition memo, asynchronous
    acquisition, calls to resources, and the lifecycle."""

    _h: Optional[int] = None

    def _open(self, cfg: Dict[str, Any]) -> None:
        cfg["log_level"] = _logging.sync()
        self._lock = threading.Lock()  # memo writes, close
        # Per acquisition key (the resource alone for default options, else the tuple of all
        # arguments): the arguments as the library takes them, and the memo of acquire_token.
        self._keys: Dict[object, _Key] = {}
        out, err = c_void_p(), c_void_p()
        rc = _lib.mtlspop_client_new(
            json.dumps(cfg).encode("utf-8"), byref(out), byref(err))
        _check(rc, err.value)
        self._h = out.value
        _clients.add(self)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._h is None

    def close(self) -> None:
        """Cancels the client's calls in flight (they fail with :class:`CanceledError`), closes
        its connections and drops its cache. Results already returned stay usable; using the
        client afterwards raises :class:`ClosedError`. Idempotent."""
        with self._lock:
            h, self._h = self._h, None
            keys, self._keys = self._keys, {}
            for k in keys.values():
                k.memo = None  # drops this client's references to its results' tokens
        if h is not None:
            _lib.mtlspop_client_free(h)

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a backstop; close() is the way
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __reduce__(self) -> Any:
        raise TypeError(f"a {type(self).__name__} holds a library handle of this process and "
                        "cannot be pickled: create one in each process")

    def _state(self) -> str:
        return "closed" if self._h is None else "open"

    # -- acquiring tokens -------------------------------------------------------------------

    def acquire_token(
        self,
        resource: str,
        *,
        mtls_pop: Optional[bool] = None,
        force_refresh: bool = False,
        claims: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AuthenticationResult:
        """Returns a token for ``resource`` (an App ID URI or URL, e.g.
        ``"https://vault.azure.net"``; a trailing ``/.default`` is ignored), from the cache
        when possible. Blocks while it fetches (the GIL is released meanwhile).

        Args:
            mtls_pop: override the client's default token type.
            force_refresh: skip the cache and fetch a new token.
            claims: a claims challenge (e.g. CAE) to send; always fetches.
            timeout: bound of this call in seconds (default: the client's).

        Raises:
            MtlsPopError: the subclass of the failure's status (or a narrower one for its code).
        """
        h = self._h
        if h is None:
            raise _errors.closed()
        k = self._key(resource, mtls_pop, force_refresh, claims, timeout)

        slot = _free_slots.pop() if _free_slots else _new_slot()
        pair, out, err = slot
        rc = _acquire_into(h, k.res, k.opts, out, err)
        token = pair[0]
        if rc:
            error = pair[1]
            _free_slots.append(slot)
            self._fail(rc, error)
        _free_slots.append(slot)

        # A cache hit hands back the same token image as the previous acquisition: same
        # access-token address. The memo read here (after the call) holds a reference to its
        # own token, so while both are alive an equal address means the same image, and the
        # result made for it last time can be returned without reading the token again. Only
        # the source may differ (a fetch can return the token already cached): one more read.
        memo = k.memo
        if memo is not None and memo[0] == _access_token(token):
            source = _token_source(token)
            _token_release(token)
            return memo[1] if source == b"cache" else memo[2]
        return self._result(token, k)

    async def acquire_token_async(
        self,
        resource: str,
        *,
        mtls_pop: Optional[bool] = None,
        force_refresh: bool = False,
        claims: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AuthenticationResult:
        """:meth:`acquire_token` for asyncio, without a thread pool: the library runs the
        acquisition on its own thread and the completion is handed to the running loop, so any
        number of acquisitions can be in flight. Cancelling the awaiting task cancels the
        request in the library."""
        h = self._h
        if h is None or _exiting:
            raise _errors.closed()
        k = self._key(resource, mtls_pop, force_refresh, claims, timeout)
        loop = asyncio.get_running_loop()
        fut: "asyncio.Future[AuthenticationResult]" = loop.create_future()
        user = next(_users)
        request = _Request(loop, fut, self, k)
        with _pending_cond:
            _pending[user] = request
        request_id, err = c_uint64(), c_void_p()
        rc = _lib.mtlspop_acquire_token_async(
            h, k.res, k.opts, _DONE, user, byref(request_id), byref(err))
        if rc:
            with _pending_cond:
                _pending.pop(user, None)
                _pending_cond.notify_all()
            self._fail(rc, err.value)
        request.request_id = request_id.value
        try:
            return await fut
        except asyncio.CancelledError:
            h = self._h
            if fut.cancelled() and h is not None:
                # The completion still arrives (as "canceled") and releases what it carries.
                _lib.mtlspop_cancel(h, request_id.value)
            raise

    # -- calling resources ------------------------------------------------------------------

    def call(
        self,
        result: AuthenticationResult,
        method: str,
        url: str,
        *,
        headers: Optional[Mapping[str, Union[str, Sequence[str]]]] = None,
        body: Union[bytes, bytearray, memoryview, str, None] = None,
        timeout: Optional[float] = None,
    ) -> Response:
        """Calls a resource over HTTPS with ``result``'s token: the library sets
        ``Authorization: <token_type> <token>`` and, for an mTLS PoP token, presents the
        binding certificate (whose key never leaves the library) in the TLS handshake.
        Redirects are not followed. An HTTP error status is returned, not raised.

        Raises:
            NetworkError: the connection or handshake failed.
            RequestTimeoutError: ``timeout`` (or the client's) passed.
        """
        h = self._h
        if h is None:
            raise _errors.closed()
        if not isinstance(result, AuthenticationResult):
            raise TypeError(f"result must be an AuthenticationResult, not {type(result).__name__}")
        token = result._token
        if token is None or not token.handle:
            raise _errors.invalid(
                "result carries no token object (was it copied or unpickled?); acquire one")
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, not {type(method).__name__}")
        request: Dict[str, Any] = {"url": url, "method": method}
        if headers:
            hdrs: Dict[str, Union[str, List[str]]] = {}
            for name, value in headers.items():
                if not isinstance(name, str):
                    raise TypeError("header names must be str")
                if isinstance(value, str):
                    hdrs[name] = value
                elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                    hdrs[name] = list(value)
                else:
                    raise TypeError(f"header {name!r} must be a str or a sequence of str")
            request["headers"] = hdrs
        if body is not None:
            if isinstance(body, str):
                request["body"] = body
            elif isinstance(body, (bytes, bytearray, memoryview)):
                request["body_base64"] = base64.b64encode(bytes(body)).decode("ascii")
            else:
                raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
        timeout_ms = millis(timeout, "timeout")
        if timeout_ms is not None:
            request["timeout_ms"] = timeout_ms
        out, err = c_void_p(), c_void_p()
        rc = _lib.mtlspop_call(h, token.handle, utf8(json.dumps(request), "request"),
                               byref(out), byref(err))
        if rc:
            self._fail(rc, err.value)
        r = out.value
        try:
            status = _lib.mtlspop_response_status(r)
            headers_json = _ffi.text(_lib.mtlspop_response_headers_json(r)) or "{}"
            n = c_size_t(0)
            addr = _lib.mtlspop_response_body(r, byref(n))
            data = string_at(addr, n.value) if addr and n.value else b""
        finally:
            _lib.mtlspop_response_free(r)
        return Response(status=status, headers=json.loads(headers_json), body=data)

    # -- internals --------------------------------------------------------------------------

    def _fail(self, rc: int, err: Optional[int]) -> NoReturn:
        e = _errors.error(rc, err)
        if self._h is None and rc in (_ffi.E_INVALID_ARG, _ffi.E_CLOSED):
            # Closed by another thread between our check and the call: the handle was stale.
            raise _errors.closed() from e
        raise e

    def _key(self, resource: str, mtls_pop: Optional[bool], force_refresh: bool,
             claims: Optional[str], timeout: Optional[float]) -> "_Key":
        """The acquisition key of these arguments: looked up, or type-checked, encoded and
        kept. Every acquisition goes through here, the cache-hit path included, so that the
        key is made one way only."""
        default = mtls_pop is None and not force_refresh and claims is None and timeout is None
        lookup: object = resource if default else (
            resource, mtls_pop, force_refresh, claims, timeout)
        k = self._keys.get(lookup)
        if k is not None:
            return k
        res = utf8(resource, "resource")
        opts: Optional[bytes] = None
        if not default:
            o: Dict[str, Any] = {}
            if mtls_pop is not None:
                if not isinstance(mtls_pop, bool):
                    raise TypeError("mtls_pop must be True, False or None")
                o["mtls_pop"] = mtls_pop
            if force_refresh:
                o["force_refresh"] = True
            if claims is not None:
                if not isinstance(claims, str):
                    raise TypeError(f"claims must be a str (JSON), not {type(claims).__name__}")
                o["claims"] = claims
            timeout_ms = millis(timeout, "timeout")
            if timeout_ms is not None:
                o["timeout_ms"] = timeout_ms
            opts = utf8(json.dumps(o), "options")
        # A forced or challenged acquisition always fetches: nothing to memoize.
        k = _Key(res, opts, memoize=not force_refresh and claims is None)
        if len(self._keys) < _MAX_KEYS:
            self._keys[lookup] = k
        return k

    def _result(self, token: int, k: "_Key") -> AuthenticationResult:
        """Makes the result of a token handle, taking ownership of it, and memoizes it."""
        owner = _Token(token)
        r = _reader
        expires = r.mtlspop_token_expires_on(token)
        refresh = r.mtlspop_token_refresh_on(token)
        address = r.mtlspop_token_access_token(token)
        source = _token_source(token)
        fresh = AuthenticationResult(
            access_token=_ffi.text(address) or "",
            token_type=_ffi.text(r.mtlspop_token_type(token)) or "",
            expires_on=datetime.fromtimestamp(expires, timezone.utc),
            refresh_on=datetime.fromtimestamp(refresh, timezone.utc) if refresh else None,
            token_source="identity_provider",
            binding_certificate_pem=_ffi.text(r.mtlspop_token_binding_cert_pem(token)),
            binding_certificate_thumbprint=_ffi.text(r.mtlspop_token_x5t_s256(token)),
            _token=owner,
        )
        cached = replace(fresh, token_source="cache")
        if k.memoize:
            with self._lock:
                if self._h is not None:
                    # Replace, then let the old memo's token go: a memo is never released
                    # while it can still be read (see acquire_token).
                    k.memo = (address, cached, fresh)
        return cached if source == b"cache" else fresh


class ManagedIdentityClient(_Client):
    """A managed identity and its token cache.

    Create one per identity and keep it: it holds the cache, the binding key and certificate,
    and pooled connections. Thread-safe, and usable from asyncio. The environment
    (``AZURE_POD_IDENTITY_AUTHORITY_HOST``, ``IDENTITY_ENDPOINT``, ``SSL_CERT_FILE``, ...) is read
    when the client is created.

    Args:
        identity: :class:`SystemAssigned` (the default) or :class:`UserAssigned`.
        mtls_pop: the default token type of acquisitions: True for mTLS PoP (certificate-bound)
            tokens, False for Bearer.
        key: where binding keys live: ``"software"`` (the default, in memory) or a
            :class:`TPMKey`.
        timeout: bound, in seconds, of a call that has to go to the network (default 60).
        ca_file: extra trust anchors (PEM), added to the system roots and ``SSL_CERT_FILE``.
        imds_endpoint: the IMDS base URL, overriding ``AZURE_POD_IDENTITY_AUTHORITY_HOST``.

    Raises:
        InvalidArgumentError: a bad argument, or a ``ca_file`` that cannot be read.
    """

    def __init__(
        self,
        identity: Optional[Identity] = None,
        *,
        mtls_pop: bool = False,
        key: Optional[KeyProvider] = None,
        timeout: Optional[float] = None,
        ca_file: Optional[StrPath] = None,
        imds_endpoint: Optional[str] = None,
    ) -> None:
        if identity is None:
            identity = SystemAssigned()
        if not isinstance(identity, (SystemAssigned, UserAssigned)):
            raise TypeError(
                f"identity must be SystemAssigned() or UserAssigned(...), not {identity!r}")
        cfg: Dict[str, Any] = {
            "kind": "managed_identity",
            "identity": identity._config(),
            "mtls_pop": bool(mtls_pop),
        }
        key_cfg = _key_config(key)
        if key_cfg is not None:
            cfg["key"] = key_cfg
        timeout_ms = millis(timeout, "timeout")
        if timeout_ms is not None:
            cfg["timeout_ms"] = timeout_ms
        if ca_file is not None:
            cfg["ca_file"] = os.fspath(ca_file)
        if imds_endpoint is not None:
            cfg["endpoints"] = {"imds": imds_endpoint}
        self.identity: Identity = identity
        self.mtls_pop: bool = bool(mtls_pop)
        self._open(cfg)

    def __repr__(self) -> str:
        return f"ManagedIdentityClient({self.identity!r}, mtls_pop={self.mtls_pop}, {self._state()})"


class FromManagedIdentity:
    """Leg 1 of a two-leg FIC: this host's managed identity. Its token for
    ``api://AzureADTokenExchange`` is the confidential client's assertion; with ``mtls_pop``
    (the default) the token is bound to the identity's certificate and the confidential client
    presents it over mTLS with that certificate (bound FIC)."""

    def __init__(self, identity: Optional[Identity] = None, *, mtls_pop: bool = True,
                 key: Optional[KeyProvider] = None, imds_endpoint: Optional[str] = None) -> None:
        if identity is not None and not isinstance(identity, (SystemAssigned, UserAssigned)):
            raise TypeError(f"identity must be SystemAssigned() or UserAssigned(...), not {identity!r}")
        self._cfg: Dict[str, Any] = {"managed_identity": {"identity": (identity or SystemAssigned())._config()},
                                     "mtls_pop": bool(mtls_pop)}
        key_cfg = _key_config(key)
        if key_cfg is not None:
            self._cfg["managed_identity"]["key"] = key_cfg
        if imds_endpoint is not None:
            self._cfg["managed_identity"]["endpoints"] = {"imds": imds_endpoint}

    def __repr__(self) -> str:
        return f"FromManagedIdentity(mtls_pop={self._cfg['mtls_pop']})"


class FromConfidentialClient:
    """Leg 1 of a two-leg FIC: another application (with a certificate or a secret), whose
    token for ``api://AzureADTokenExchange`` is the confidential client's assertion."""

    def __init__(self, authority: str, client_id: str, *,
                 certificate: Optional[Tuple[StrPath, StrPath]] = None, secret: Optional[str] = None,
                 mtls_pop: bool = True, region: Optional[str] = None,
                 mtls_endpoint: Optional[str] = None) -> None:
        app = _app_config(authority, client_id, certificate, secret, None, region, mtls_endpoint)
        self._cfg: Dict[str, Any] = {"confidential": app, "mtls_pop": bool(mtls_pop)}

    def __repr__(self) -> str:
        return f"FromConfidentialClient(client_id={self._cfg['confidential']['client_id']!r})"


Federated = Union[FromManagedIdentity, FromConfidentialClient]


def _app_config(authority: str, client_id: str, certificate: Optional[Tuple[StrPath, StrPath]],
                secret: Optional[str], federated: Optional[Federated], region: Optional[str],
                mtls_endpoint: Optional[str], send_x5c: bool = False) -> Dict[str, Any]:
    # Types and shapes only: which members are required, and in which combinations (exactly one
    # credential, ...), the library checks, and says so with its own error.
    if not isinstance(authority, str):
        raise TypeError("authority must be a str, e.g. https://login.microsoftonline.com/<tenant>")
    if not isinstance(client_id, str):
        raise TypeError("client_id must be a str")
    cfg: Dict[str, Any] = {"authority": authority, "client_id": client_id}
    if certificate is not None:
        if not (isinstance(certificate, tuple) and len(certificate) == 2):
            raise TypeError("certificate must be a (cert_file, key_file) tuple of PEM paths")
        cfg["certificate"] = {"cert_file": os.fspath(certificate[0]), "key_file": os.fspath(certificate[1]),
                              "send_x5c": bool(send_x5c)}
    if secret is not None:
        if not isinstance(secret, str):
            raise TypeError("secret must be a str")
        cfg["secret"] = secret
    if federated is not None:
        if not isinstance(federated, (FromManagedIdentity, FromConfidentialClient)):
            raise TypeError("federated must be FromManagedIdentity(...) or FromConfidentialClient(...)")
        cfg["federated"] = federated._cfg
    if region is not None:
        cfg["region"] = region
    if mtls_endpoint is not None:
        cfg["mtls_endpoint"] = mtls_endpoint
    return cfg


class ConfidentialClient(_Client):
    """An application (a confidential client) and its token cache.

    With ``certificate=(cert_file, key_file)`` it gets mTLS PoP tokens on the mtlsauth endpoint,
    where the certificate authenticates at the TLS layer and the token is bound to it, and Bearer
    tokens on the classic endpoint with a signed client assertion. ``secret=`` gets Bearer tokens
    only. ``federated=`` presents another identity's token as the assertion (two-leg FIC; bound
    FIC over mTLS when leg 1 is PoP). Tokens are cached by the certificate presented, so a
    rotated certificate never gets a stale token.

    Args:
        authority: ``https://login.microsoftonline.com/<tenant>``.
        client_id: the application (client) id.
        mtls_pop: the default token type of acquisitions.
        region: the mTLS endpoint's Azure region (default ``MSAL_FORCE_REGION``,
            ``REGION_NAME``, else the global endpoint).
        mtls_endpoint: the mTLS token host, for private clouds and the emulator.
        send_x5c: send the certificate chain in the client assertion (SN/I).
        timeout, ca_file: as for :class:`ManagedIdentityClient`.
    """

    def __init__(
        self,
        authority: str,
        client_id: str,
        *,
        certificate: Optional[Tuple[StrPath, StrPath]] = None,
        secret: Optional[str] = None,
        federated: Optional[Federated] = None,
        mtls_pop: bool = False,
        region: Optional[str] = None,
        mtls_endpoint: Optional[str] = None,
        send_x5c: bool = False,
        timeout: Optional[float] = None,
        ca_file: Optional[StrPath] = None,
    ) -> None:
        cfg = _app_config(authority, client_id, certificate, secret, federated, region, mtls_endpoint, send_x5c)
        cfg["kind"] = "confidential"
        cfg["mtls_pop"] = bool(mtls_pop)
        timeout_ms = millis(timeout, "timeout")
        if timeout_ms is not None:
            cfg["timeout_ms"] = timeout_ms
        if ca_file is not None:
            cfg["ca_file"] = os.fspath(ca_file)
        self.client_id: str = client_id
        self.mtls_pop: bool = bool(mtls_pop)
        self._open(cfg)

    def __repr__(self) -> str:
        return f"ConfidentialClient(client_id={self.client_id!r}, mtls_pop={self.mtls_pop}, {self._state()})"

    def acquire_token_for_client(
        self,
        scopes: Union[str, Sequence[str]],
        *,
        mtls_pop: Optional[bool] = None,
        force_refresh: bool = False,
        claims: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AuthenticationResult:
        """Returns an app-only token for ``scopes`` (e.g. ``"https://vault.azure.net/.default"``),
        from the cache when possible. See :meth:`ManagedIdentityClient.acquire_token` for the
        options."""
        return self.acquire_token(_scopes(scopes), mtls_pop=mtls_pop, force_refresh=force_refresh,
                                  claims=claims, timeout=timeout)

    async def acquire_token_for_client_async(
        self,
        scopes: Union[str, Sequence[str]],
        *,
        mtls_pop: Optional[bool] = None,
        force_refresh: bool = False,
        claims: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> AuthenticationResult:
        """:meth:`acquire_token_for_client` for asyncio (see
        :meth:`ManagedIdentityClient.acquire_token_async`)."""
        return await self.acquire_token_async(_scopes(scopes), mtls_pop=mtls_pop,
                                              force_refresh=force_refresh, claims=claims, timeout=timeout)


def _scopes(scopes: Union[str, Sequence[str]]) -> str:
    if isinstance(scopes, str):
        return scopes
    if not all(isinstance(x, str) for x in scopes):
        raise TypeError("scopes must be a str or a sequence of str")
    return " ".join(scopes)


class _Key:
    """One acquisition key of a client: its arguments encoded for the library, and the memo of
    its last result, (access-token address, result as "cache", result as
    "identity_provider")."""

    __slots__ = ("res", "opts", "memoize", "memo")

    def __init__(self, res: bytes, opts: Optional[bytes], memoize: bool) -> None:
        self.res = res
        self.opts = opts
        self.memoize = memoize
        self.memo: Optional[Tuple[int, AuthenticationResult, AuthenticationResult]] = None


# --------------------------------------------------------------------------------------------
# process lifecycle


_exiting = False


def _at_exit() -> None:
    """Before the interpreter finalizes, no library thread may call into Python any more: the
    log callback is switched off, and async requests still in flight are canceled and their
    completions awaited (new ones are refused). Blocking calls in daemon threads are left to
    end with their threads, as daemon threads do."""
    global _exiting
    _exiting = True
    with _pending_cond:
        requests = list(_pending.values())
    for request in requests:
        h = request.client._h
        if h is not None and request.request_id:
            _lib.mtlspop_cancel(h, request.request_id)
    with _pending_cond:
        _pending_cond.wait_for(lambda: not _pending, timeout=5.0)
        _pending.clear()
    _logging.stop()


def _after_fork_in_child() -> None:
    # The parent's requests are not this process's; locks held by other threads at fork()
    # would never be released here.
    global _pending_cond
    _pending.clear()
    _pending_cond = threading.Condition()
    for client in list(_clients):
        client._lock = threading.Lock()
    _logging.after_fork_in_child()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["ManagedIdentityClient", "ConfidentialClient", "FromManagedIdentity", "FromConfidentialClient"]
