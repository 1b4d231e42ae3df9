"""Where plugin authors find bocpy's C interface (see docs/c_abi.md).

The public headers, a relocatable ``bocpy.pc`` and a CMake package config
are installed inside the package, next to this file::

    bocpy/include/bocpy/bocpy.h            get_include()
    bocpy/lib/pkgconfig/bocpy.pc           get_pkgconfig_dir()
    bocpy/lib/cmake/bocpy/bocpyConfig.cmake  get_cmake_dir()

In a source checkout (no installed headers) the functions fall back to the
checkout's ``abi/`` directory for the headers; the pkg-config and CMake
files only exist once bocpy is built and installed.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


def get_include() -> str:
    """The directory to add to the include path: it holds ``bocpy/bocpy.h``
    (``#include <bocpy/bocpy.h>``)."""
    return str(_first_existing(_PKG / "include", _PKG.parent / "abi" / "include"))


def get_pkgconfig_dir() -> str:
    """The directory holding ``bocpy.pc`` (add it to ``PKG_CONFIG_PATH``)."""
    return str(_PKG / "lib" / "pkgconfig")


def get_cmake_dir() -> str:
    """The directory holding ``bocpyConfig.cmake`` (pass it as ``bocpy_DIR``
    or add it to ``CMAKE_PREFIX_PATH``) for ``find_package(bocpy CONFIG)``."""
    return str(_PKG / "lib" / "cmake" / "bocpy")


def get_sources() -> list[str]:
    """C sources a plugin must compile in: none (everything it needs is in
    the headers and the ABI table that ``bocpy._core`` exports)."""
    return []
