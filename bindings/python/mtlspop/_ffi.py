"""Every C declaration of libmtlspop, in one place.

The rest of the package reaches the library only through the names defined here. Each function
of include/mtlspop.h that the package calls is declared with its exact argtypes and restype (the
few it has no use for are named in ``NOT_CALLED``, with the reason); the header is the
specification, and this file follows its order.

Two loadings of the same shared object are used:

* ``lib`` (:class:`ctypes.CDLL`) releases the GIL for the duration of each call. Everything that
  may block, enter the Go runtime or wait for a callback goes through it.
* ``reader`` (:class:`ctypes.PyDLL`) keeps the GIL. It is used only for the token accessors, which
  the header documents as plain memory reads, and for releasing a token that is not the last
  reference to its image; skipping the GIL round trip saves ~40 ns per call on a cache hit.

Strings returned by the library are owned by their object, so every ``const char *`` result is
declared ``c_void_p`` (an address) and copied with :func:`text` while the object is alive;
``c_char_p`` would copy silently but also hide NULL-versus-empty and lifetime mistakes.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_uint64,
    c_void_p,
)
from typing import List, Optional

#: The ABI this package was written against: the N of the SONAME libmtlspop.so.N.
ABI_VERSION = 0

# mtlspop_status
OK = 0
E_INVALID_ARG = -1
E_FORKED = -2
E_TIMEOUT = -3
E_CANCELED = -4
E_CLOSED = -5
E_NETWORK = -6
E_IDENTITY = -7
E_PROTOCOL = -8
E_UNSUPPORTED = -9
E_INVALID_TOKEN = -10
E_NOT_FOUND = -11
E_NOMEM = -12
E_INTERNAL = -13

# mtlspop_log_level
LOG_DEBUG = 0
LOG_INFO = 1
LOG_WARN = 2
LOG_ERROR = 3
LOG_OFF = 4

LIBRARY_NAME = "libmtlspop.so.0"
LIBRARY_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY_NAME)

# Opaque handles. They are distinct types only for readability: ctypes passes each as a pointer.
client_p = c_void_p
token_p = c_void_p
response_p = c_void_p
claims_p = c_void_p
error_p = c_void_p

# void (*mtlspop_done_fn)(void *user, uint64_t request_id, int status, mtlspop_token *token,
#                         mtlspop_error *err)
DONE_FN = CFUNCTYPE(None, c_void_p, c_uint64, c_int, token_p, error_p)
# void (*mtlspop_log_fn)(void *user, int level, const char *message, const char *fields_json)
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p, c_char_p)

try:
    lib = ctypes.CDLL(LIBRARY_PATH)
    reader = ctypes.PyDLL(LIBRARY_PATH)
except OSError as e:  # pragma: no cover - a broken installation
    raise ImportError(f"mtlspop: cannot load {LIBRARY_PATH}: {e}") from e


def _declare(dll: ctypes.CDLL, name: str, restype: object, *argtypes: object) -> object:
    fn = getattr(dll, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


# Versions (work in a forked child).
_declare(lib, "mtlspop_version", c_char_p)
_declare(lib, "mtlspop_version_number", c_int)
_declare(lib, "mtlspop_abi_version", c_int)
_declare(lib, "mtlspop_strerror", c_char_p, c_int)

# mtlspop_error
_declare(lib, "mtlspop_error_code", c_void_p, error_p)
_declare(lib, "mtlspop_error_message", c_void_p, error_p)
_declare(lib, "mtlspop_error_http_status", c_int, error_p)
_declare(lib, "mtlspop_error_correlation_id", c_void_p, error_p)
_declare(lib, "mtlspop_error_free", c_int, error_p)

# mtlspop_client
_declare(lib, "mtlspop_client_new", c_int, c_char_p, POINTER(client_p), POINTER(error_p))
_declare(lib, "mtlspop_client_free", c_int, client_p)

# mtlspop_token
_declare(lib, "mtlspop_acquire_token", c_int,
         client_p, c_char_p, c_char_p, POINTER(token_p), POINTER(error_p))
_declare(lib, "mtlspop_acquire_token_async", c_int,
         client_p, c_char_p, c_char_p, DONE_FN, c_void_p, POINTER(c_uint64), POINTER(error_p))
_declare(lib, "mtlspop_cancel", c_int, client_p, c_uint64)
_declare(lib, "mtlspop_token_free", c_int, token_p)
for _dll in (lib, reader):
    _declare(_dll, "mtlspop_token_access_token", c_void_p, token_p)
    _declare(_dll, "mtlspop_token_type", c_void_p, token_p)
    _declare(_dll, "mtlspop_token_expires_on", c_int64, token_p)
    _declare(_dll, "mtlspop_token_refresh_on", c_int64, token_p)
    _declare(_dll, "mtlspop_token_binding_cert_pem", c_void_p, token_p)
    _declare(_dll, "mtlspop_token_x5t_s256", c_void_p, token_p)
_declare(lib, "mtlspop_token_source", c_void_p, token_p)
# "cache" or "identity_provider", copied into bytes at once (the object is alive during the call).
_declare(reader, "mtlspop_token_source", c_char_p, token_p)
# Used only on the cache-hit path, where another reference to the same token image is held (see
# ManagedIdentityClient.acquire_token): releasing this one is then a few atomic operations in C.
_declare(reader, "mtlspop_token_free", c_int, token_p)

# The cache-hit path of ManagedIdentityClient.acquire_token: mtlspop_acquire_token again, with
# its two out-parameters (mtlspop_token **, mtlspop_error **) passed as plain addresses of a
# preallocated pair of slots. Converting two POINTER arguments costs more than the call into the
# library itself; addresses cost almost nothing.
acquire_token_into = CFUNCTYPE(c_int, client_p, c_char_p, c_char_p, c_void_p, c_void_p)(
    ("mtlspop_acquire_token", lib))

# mtlspop_response
_declare(lib, "mtlspop_call", c_int,
         client_p, token_p, c_char_p, POINTER(response_p), POINTER(error_p))
_declare(lib, "mtlspop_response_status", c_int, response_p)
_declare(lib, "mtlspop_response_headers_json", c_void_p, response_p)
_declare(lib, "mtlspop_response_body", c_void_p, response_p, POINTER(c_size_t))
_declare(lib, "mtlspop_response_free", c_int, response_p)

# mtlspop_claims
_declare(lib, "mtlspop_verify", c_int,
         c_char_p, c_char_p, c_char_p, POINTER(claims_p), POINTER(error_p))
_declare(lib, "mtlspop_claims_json", c_void_p, claims_p)
_declare(lib, "mtlspop_claims_token_type", c_void_p, claims_p)
_declare(lib, "mtlspop_claims_subject", c_void_p, claims_p)
_declare(lib, "mtlspop_claims_client_id", c_void_p, claims_p)
_declare(lib, "mtlspop_claims_x5t_s256", c_void_p, claims_p)
_declare(lib, "mtlspop_claims_free", c_int, claims_p)

# Logging and diagnostics
_declare(lib, "mtlspop_set_log_callback", c_int, LOG_FN, c_void_p, c_int)
_declare(lib, "mtlspop_live_objects", c_int64)


#: Functions of include/mtlspop.h that the package never calls, and so does not declare. A
#: response's headers are copied out whole (mtlspop_response_headers_json) when its Response is
#: made, and the handle is freed at once: Response.header looks a name up in that copy.
NOT_CALLED = frozenset({"mtlspop_response_header"})


_immortal: List[object] = []


def keep_alive(callback: object) -> None:
    """Keeps a ctypes callback object alive for the rest of the process.

    The library may call a function pointer it was given until the process ends (a Go library
    can never be unloaded), while interpreter shutdown clears module globals. An extra
    reference that nothing releases keeps the thunk's memory valid throughout.
    """
    _immortal.append(callback)
    pythonapi = getattr(ctypes, "pythonapi", None)  # absent on PyPy, whose GC does not move it
    if pythonapi is not None:
        pythonapi.Py_IncRef(ctypes.py_object(callback))


def text(address: Optional[int]) -> Optional[str]:
    """Copies the NUL-terminated UTF-8 string at address; None for NULL."""
    if not address:
        return None
    return ctypes.string_at(address).decode("utf-8", "replace")


# The ABI check: a package must never drive a library whose ABI it does not know.
_abi = lib.mtlspop_abi_version()
if _abi != ABI_VERSION:  # pragma: no cover - a mismatched installation
    raise ImportError(
        f"mtlspop: {LIBRARY_PATH} has ABI version {_abi}, this package needs {ABI_VERSION}"
    )

#: The library version, e.g. "0.1.0".
VERSION: str = lib.mtlspop_version().decode("ascii")
del _abi, _dll
