"""The installed package: where it comes from, what it carries, what it exports."""

import ctypes
import os
import re
import sys

import pytest

import mtlspop
from mtlspop import _ffi


def test_imported_from_the_installed_wheel_not_the_source_tree():
    venv = os.environ.get("MTLSPOP_TEST_VENV")
    here = os.path.realpath(os.path.dirname(mtlspop.__file__))
    assert os.path.realpath(sys.prefix) == os.path.realpath(venv or sys.prefix)
    assert here.startswith(os.path.realpath(sys.prefix)), here
    assert "site-packages" in here


def test_ships_the_library_and_the_typing_marker():
    here = os.path.dirname(mtlspop.__file__)
    assert os.path.isfile(os.path.join(here, "libmtlspop.so.0"))
    assert os.path.isfile(os.path.join(here, "py.typed"))
    assert _ffi.LIBRARY_PATH == os.path.join(os.path.abspath(here), "libmtlspop.so.0")


def test_versions():
    assert mtlspop.__version__ == _ffi.lib.mtlspop_version().decode()
    assert mtlspop.__version__.count(".") == 2
    major, minor, patch = (int(x) for x in mtlspop.__version__.split("."))
    assert _ffi.lib.mtlspop_version_number() == major * 1000000 + minor * 1000 + patch
    assert mtlspop.ABI_VERSION == _ffi.lib.mtlspop_abi_version() == 0


def test_public_names():
    for name in mtlspop.__all__:
        assert hasattr(mtlspop, name), name
    assert issubclass(mtlspop.InvalidArgumentError, ValueError)
    assert issubclass(mtlspop.RequestTimeoutError, TimeoutError)
    assert issubclass(mtlspop.NetworkError, ConnectionError)
    assert issubclass(mtlspop.ManagedIdentityUnreachableError, mtlspop.NetworkError)
    assert issubclass(mtlspop.ManagedIdentityUnreachableError,
                      mtlspop.ManagedIdentityUnavailableError)
    assert issubclass(mtlspop.PoPNotSupportedError, mtlspop.UnsupportedError)
    for name in mtlspop.__all__:
        obj = getattr(mtlspop, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, mtlspop.MtlsPopError), name


def _prototypes():
    """Every function of include/mtlspop.h: name -> (return type, [parameter types])."""
    header = os.environ.get("MTLSPOP_HEADER")
    if not header:
        pytest.skip("MTLSPOP_HEADER is not set (ci/python.sh test sets it)")
    with open(header, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)  # comments name functions too
    protos = {}
    for m in re.finditer(r"([A-Za-z_][\w \t]*?[\s*]+)(mtlspop_\w+)\s*\(([^()]*)\)\s*;", text):
        params = [p.strip() for p in m.group(3).split(",")]
        if params == ["void"]:
            params = []
        # "const char *name" -> "const char *": the type is all but the parameter's name.
        types = [re.sub(r"\s*\b\w+$", "", p) if not p.endswith("*") else p for p in params]
        protos[m.group(2)] = (m.group(1).strip(), types)
    return protos


_SCALARS = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "uint64_t": ctypes.c_uint64,
            "size_t": ctypes.c_size_t}


def _matches(c_type, ctype):
    """Whether a ctypes declaration passes or returns the C type as the ABI does."""
    if c_type in _SCALARS:
        return ctype is _SCALARS[c_type]
    if c_type.endswith("_fn"):  # mtlspop_done_fn, mtlspop_log_fn: C function pointers
        return isinstance(ctype, type) and issubclass(ctype, ctypes._CFuncPtr)
    assert "*" in c_type, c_type
    return ctype in (ctypes.c_void_p, ctypes.c_char_p) or (
        isinstance(ctype, type) and issubclass(ctype, (ctypes._Pointer, ctypes._CFuncPtr)))


def _check_declaration(name, fn, proto):
    ret, params = proto
    assert fn.argtypes is not None, f"{name} has no argtypes"
    assert len(fn.argtypes) == len(params), f"{name}: {len(fn.argtypes)} argtypes, header {params}"
    for i, (c_type, ctype) in enumerate(zip(params, fn.argtypes)):
        assert _matches(c_type, ctype), f"{name} argument {i}: {ctype} for {c_type}"
    # ctypes' default restype is c_int, so the return type is compared, not just present.
    assert _matches(ret, fn.restype), f"{name} returns {fn.restype} for {ret}"


def test_every_header_function_is_declared_as_the_header_says():
    """_ffi declares every function of include/mtlspop.h it calls with the argtypes and restype
    of the header's prototype; the rest are the ones it says it never calls."""
    protos = _prototypes()
    assert len(protos) > 30
    assert _ffi.NOT_CALLED <= set(protos)
    for name in sorted(protos):
        fn = getattr(_ffi.lib, name)
        if name in _ffi.NOT_CALLED:
            assert fn.argtypes is None, f"{name} is declared but listed as never called"
            continue
        _check_declaration(name, fn, protos[name])
    # The second loading (the GIL-holding token accessors) and the cache-hit entry point.
    readers = [n for n in sorted(protos) if getattr(_ffi.reader, n).argtypes is not None]
    assert "mtlspop_token_access_token" in readers and "mtlspop_token_free" in readers
    for name in readers:
        _check_declaration(name, getattr(_ffi.reader, name), protos[name])
    _check_declaration("acquire_token_into", _ffi.acquire_token_into, protos["mtlspop_acquire_token"])


def test_a_wrong_declaration_is_caught():
    """The comparison above fails for a wrong count or a wrong type (so it can fail at all)."""
    protos = _prototypes()
    wrong = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(("mtlspop_cancel", _ffi.lib))
    with pytest.raises(AssertionError, match="1 argtypes"):
        _check_declaration("mtlspop_cancel", wrong, protos["mtlspop_cancel"])
    wrong = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)(("mtlspop_cancel", _ffi.lib))
    with pytest.raises(AssertionError, match="argument 1"):
        _check_declaration("mtlspop_cancel", wrong, protos["mtlspop_cancel"])
    wrong = ctypes.CFUNCTYPE(ctypes.c_void_p)(("mtlspop_live_objects", _ffi.lib))
    with pytest.raises(AssertionError, match="returns"):
        _check_declaration("mtlspop_live_objects", wrong, protos["mtlspop_live_objects"])


def test_strerror_names_every_status():
    for rc in range(0, -14, -1):
        assert _ffi.lib.mtlspop_strerror(rc) != b"unknown status"
    assert _ffi.lib.mtlspop_strerror(-99) == b"unknown status"
