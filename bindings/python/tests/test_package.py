"""The installed package: where it comes from, what it carries, what it exports."""

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


def test_every_header_function_is_declared():
    """_ffi declares argtypes and restype for every function of include/mtlspop.h."""
    header = os.environ.get("MTLSPOP_HEADER")
    if not header:
        pytest.skip("MTLSPOP_HEADER is not set (ci/python.sh test sets it)")
    with open(header, encoding="utf-8") as f:
        text = f.read()
    declared = set(re.findall(r"\b(mtlspop_[a-z0-9_]+)\(", text)) - {
        n for n in re.findall(r"\b(mtlspop_[a-z0-9_]+)\(", text) if n.endswith("_fn")}
    assert len(declared) > 30
    for name in sorted(declared):
        fn = getattr(_ffi.lib, name)
        assert fn.argtypes is not None, f"{name} has no argtypes"
        assert fn.restype is not None, f"{name} has no restype"


def test_strerror_names_every_status():
    for rc in range(0, -14, -1):
        assert _ffi.lib.mtlspop_strerror(rc) != b"unknown status"
    assert _ffi.lib.mtlspop_strerror(-99) == b"unknown status"
