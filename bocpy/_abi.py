"""Where plugin authors find bocpy's C interface (see docs/c_abi.md).

The public headers, a relocatable ``bocpy.pc`` and a CMake package config
are installed inside the package, next to this file::

    bocpy/include/bocpy/bocpy.h            get_include()
    bocpy/lib/pkgconfig/bocpy.pc           get_pkgconfig_dir()
    bocpy/lib/cmake/bocpy/bocpyConfig.cmake  get_cmake_dir()

In a source checkout (no installed headers) the functions fall back to the
checkout's ``abi/`` directory for the headers; the pkg-config and CMake
files only exist once bocpy is built and installed.

``python -m bocpy --includes / --cflags / --cmakedir / --pkgconfigdir /
--abi`` prints the same for build scripts (see ``bocpy/__main__.py`` and
docs/packaging.md).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

from . import _config
from ._config import ABI3 as ABI3  # plugins are abi3 modules here (3.12+)
from ._config import LIMITED_API as LIMITED_API

#: Optional features a core may report through the table's ``capability``
#: entry (the names listed in abi/abi.manifest).
CAPABILITIES = (
    "shareable_types",
    "pinned_types",
    "c_behaviors",
    "pump_state",
    "reduce_shared",
    "messaging",
    "noticeboard",
)

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


def get_includes() -> list[str]:
    """The include directories a plugin compiles with: CPython's, then
    bocpy's (``#include <bocpy/bocpy.h>``)."""
    return [sysconfig.get_path("include"), get_include()]


def get_cflags() -> list[str]:
    """Compiler flags for a plugin: the include directories and, on CPython
    3.12 and later, ``Py_LIMITED_API`` (an abi3 module); on 3.10 and 3.11 no
    ``Py_LIMITED_API`` (a version-specific module)."""
    limited = [f"-DPy_LIMITED_API={LIMITED_API}"] if ABI3 else []
    return [f"-I{d}" for d in get_includes()] + limited


def plugin_suffix() -> str:
    """The file suffix of a plugin built for this interpreter: ``.abi3.so``
    from CPython 3.12 on, else this version's own (``.cpython-311-...so``)."""
    return _config.get_extension_suffix()


def abi_capabilities() -> dict[str, int]:
    """The optional features the loaded core supports, each with its
    feature version (asks the table's ``capability`` entry)."""
    import ctypes

    from . import _core

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    table = get(_core._BOCPY_ABI, b"bocpy._core._BOCPY_ABI")
    # The header (4 x uint32_t and a const char *) is followed by the
    # entries, the first of which is int64_t capability(const char *name).
    header = 4 * ctypes.sizeof(ctypes.c_uint32) + ctypes.sizeof(ctypes.c_char_p)
    entry = ctypes.c_void_p.from_address(table + header).value
    if entry is None:
        raise RuntimeError("bocpy._core's ABI table has no capability entry")
    capability = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_char_p)(entry)
    found = {name: int(capability(name.encode())) for name in CAPABILITIES}
    return {name: v for name, v in found.items() if v > 0}
