"""The build-configuration command line shared by ``python -m bocpy`` (in
bocpy-runtime) and ``bocpy-config`` (in bocpy-runtime-dev, the headers-only
distribution for plugin authors; see docs/packaging.md).

Standard library only, and no import of the rest of bocpy: the
bocpy-runtime-dev wheel ships a copy of this file as ``bocpy_dev/_config.py``
(``dev/_bocpy_dev_backend.py``), where no runtime is installed.

Each option prints one line (``--abi`` of the runtime two: the version, then
the capabilities of the loaded core); several options print their lines in
the order given.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import sys
import sysconfig
from dataclasses import dataclass
from typing import Callable

#: Py_LIMITED_API of every bocpy plugin (abi3 from CPython 3.12 on); the
#: same spelling as CMake's ``Python_add_library(... USE_SABI 3.12)``, as in
#: bocpy.pc and the bocpy::headers CMake target.
LIMITED_API = "0x030c0000"

#: Plugins are abi3 modules from CPython 3.12 on; on 3.10 and 3.11 they are
#: version-specific modules built from the same sources without
#: ``Py_LIMITED_API`` (docs/packaging.md, "CPython 3.10 and 3.11").
ABI3 = sys.version_info >= (3, 12)

#: The distribution a plugin depends on at run time.
RUNTIME_DISTRIBUTION = "bocpy-runtime"


@dataclass(frozen=True)
class Layout:
    """Where one installed copy keeps what plugin builds need."""

    include_dir: str
    cmake_dir: str
    pkgconfig_dir: str
    version: str
    abi_lines: Callable[[], list[str]]
    abi_major: int


def runtime_requirement(version: str, abi_major: int) -> str:
    """The run-time requirement of a plugin built against headers of bocpy
    ``version`` (which declare ABI major ``abi_major``).

    The lower bound is the version whose headers it was built with (that
    runtime provides every table entry those headers declare).  The upper
    bound comes from the ABI major: bocpy-runtime's major version changes
    whenever the ABI major does, and runtime major ``M`` (0 and 1 for ABI 1)
    provides ABI major ``max(M, 1)``; so ABI major ``N`` is served by every
    runtime below ``N + 1`` down to the first one that declared it.
    """
    return f"{RUNTIME_DISTRIBUTION}>={version},<{abi_major + 1}"


def get_includes(layout: Layout) -> list[str]:
    """CPython's include directory, then bocpy's."""
    return [sysconfig.get_path("include"), layout.include_dir]


def get_cflags(layout: Layout) -> list[str]:
    """The include directories and, from CPython 3.12 on, ``Py_LIMITED_API``
    (an abi3 module; none on 3.10/3.11: a version-specific module)."""
    limited = [f"-DPy_LIMITED_API={LIMITED_API}"] if ABI3 else []
    return [f"-I{d}" for d in get_includes(layout)] + limited


def get_ldflags() -> list[str]:
    """Linker flags of an extension module.  A bocpy plugin never links
    libpython or bocpy itself: the interpreter provides CPython's symbols
    and the runtime's table arrives as a capsule at import."""
    if sys.platform == "darwin":
        return ["-bundle", "-undefined", "dynamic_lookup"]
    return ["-shared"]


def get_extension_suffix() -> str:
    """The file-name suffix of a plugin module here: ``.abi3.so`` from
    CPython 3.12 on, this version's own suffix on 3.10/3.11."""
    if not ABI3:
        return importlib.machinery.EXTENSION_SUFFIXES[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if ".abi3" in suffix:
            return suffix
    return ".pyd" if sys.platform == "win32" else ".abi3.so"


OPTIONS: tuple[tuple[str, str], ...] = (
    ("--includes", "-I flags of CPython's and bocpy's include directories"),
    ("--cflags", "--includes and -DPy_LIMITED_API (abi3, CPython 3.12+; none on 3.10/3.11)"),
    ("--ldflags", "linker flags of an extension module (-shared; no libraries)"),
    ("--extension-suffix", "the file-name suffix of a plugin module (.abi3.so; version-specific on 3.10/3.11)"),
    ("--cmakedir", "the directory holding bocpyConfig.cmake (bocpy_DIR)"),
    ("--pkgconfigdir", "the directory holding bocpy.pc (PKG_CONFIG_PATH)"),
    ("--abi", "the BOCPY_ABI version MAJOR.MINOR"),
    ("--requires", "the run-time requirement of a plugin built with these headers "
     "(for pyproject.toml's dependencies)"),
    ("--version", "the bocpy version"),
)


def main(layout: Layout, argv: list[str] | None, prog: str, abi_help: str | None = None) -> int:
    """Parse ``argv`` and print the requested lines; 2 (and the help) when
    no option is given."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Print what a bocpy plugin build needs (docs/packaging.md).")
    out: list[str] = []

    class Record(argparse.Action):
        def __call__(self, p: argparse.ArgumentParser, ns: argparse.Namespace,
                     values: object, option_string: str | None = None) -> None:
            out.append(self.dest)

    for name, help_text in OPTIONS:
        if name == "--abi" and abi_help:
            help_text = abi_help
        parser.add_argument(name, nargs=0, action=Record, help=help_text)
    parser.parse_args(argv)
    if not out:
        parser.print_help()
        return 2
    for dest in out:
        if dest == "includes":
            print(" ".join(f"-I{d}" for d in get_includes(layout)))
        elif dest == "cflags":
            print(" ".join(get_cflags(layout)))
        elif dest == "ldflags":
            print(" ".join(get_ldflags()))
        elif dest == "extension_suffix":
            print(get_extension_suffix())
        elif dest == "cmakedir":
            print(layout.cmake_dir)
        elif dest == "pkgconfigdir":
            print(layout.pkgconfig_dir)
        elif dest == "abi":
            print("\n".join(layout.abi_lines()))
        elif dest == "requires":
            print(runtime_requirement(layout.version, layout.abi_major))
        elif dest == "version":
            print(layout.version)
    return 0
