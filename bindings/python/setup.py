"""Build glue that pyproject.toml cannot express: the wheel's tags and its version.

The package is pure Python over ctypes, but it carries libmtlspop.so.0, a Linux x86-64 shared
library that links no libpython. So the wheel is platform-specific yet serves every Python 3:
``py3-none-linux_x86_64``, Root-Is-Purelib false. And the version is the library's own
(mtlspop_version()), read from the .so being packaged, so the two cannot disagree.
"""

import ctypes
import os
import sysconfig

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY = os.path.join(HERE, "mtlspop", "libmtlspop.so.0")


def library_version() -> str:
    if not os.path.exists(LIBRARY):
        raise SystemExit(
            f"{LIBRARY} is missing: build the package with ci/python.sh build, which copies "
            "build/libmtlspop.so.0 in")
    lib = ctypes.CDLL(LIBRARY)
    lib.mtlspop_version.restype = ctypes.c_char_p
    lib.mtlspop_version.argtypes = []
    return lib.mtlspop_version().decode("ascii")


class BinaryDistribution(Distribution):
    """Carries a native library: installed to platlib, and the wheel is not pure."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):
    """Tags the wheel py3-none-<platform>: any Python 3, this OS and architecture."""

    def get_tag(self):  # type: ignore[no-untyped-def]
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        return "py3", "none", plat


setup(
    version=library_version(),
    distclass=BinaryDistribution,
    cmdclass={"bdist_wheel": PlatformWheel},
)
