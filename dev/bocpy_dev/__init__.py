"""bocpy_dev: what a bocpy plugin's build needs (the distribution
bocpy-runtime-dev; see docs/packaging.md of bocpy-runtime).

The public C headers, a relocatable ``bocpy.pc`` and a CMake package config
live inside this package::

    bocpy_dev/include/bocpy/bocpy.h                 get_include()
    bocpy_dev/lib/pkgconfig/bocpy.pc                get_pkgconfig_dir()
    bocpy_dev/lib/cmake/bocpy/bocpyConfig.cmake     get_cmake_dir()

``bocpy-config`` (or ``python -m bocpy_dev``) prints the same for build
scripts.  This package holds no runtime: a plugin depends at run time on
bocpy-runtime (``runtime_requirement()`` gives the version range).
"""

from __future__ import annotations

from pathlib import Path

from ._config import runtime_requirement as _requirement
from ._info import ABI_MAJOR, ABI_MINOR, VERSION

__all__ = ["ABI_MAJOR", "ABI_MINOR", "__version__", "get_cmake_dir", "get_include",
           "get_pkgconfig_dir", "runtime_requirement"]

__version__: str = VERSION

_PKG = Path(__file__).resolve().parent


def get_include() -> str:
    """The directory to add to the include path: it holds ``bocpy/bocpy.h``."""
    return str(_PKG / "include")


def get_pkgconfig_dir() -> str:
    """The directory holding ``bocpy.pc`` (add it to ``PKG_CONFIG_PATH``)."""
    return str(_PKG / "lib" / "pkgconfig")


def get_cmake_dir() -> str:
    """The directory holding ``bocpyConfig.cmake`` (``bocpy_DIR``)."""
    return str(_PKG / "lib" / "cmake" / "bocpy")


def runtime_requirement() -> str:
    """The run-time requirement of a plugin built with these headers, for
    ``[project] dependencies``: ``bocpy-runtime>=<this version>,<ABI major + 1>``."""
    return _requirement(VERSION, ABI_MAJOR)
