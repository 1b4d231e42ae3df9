"""``python -m bocpy``: where plugin authors find bocpy, for build scripts.

    python -m bocpy --includes      -I<CPython include> -I<bocpy include>
    python -m bocpy --cflags        the same and -DPy_LIMITED_API=0x030c0000 (3.12+)
    python -m bocpy --cmakedir      directory of bocpyConfig.cmake (bocpy_DIR)
    python -m bocpy --pkgconfigdir  directory of bocpy.pc (PKG_CONFIG_PATH)
    python -m bocpy --abi           the ABI version, then the capabilities
    python -m bocpy --version       the bocpy version

Each option prints one line (``--abi`` two); several options print their
lines in the order given.  See docs/packaging.md.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__, _abi, _core


def _abi_lines() -> list[str]:
    info = _core._abi_info()
    caps = _abi.abi_capabilities()
    return [f"{info['major']}.{info['minor']}",
            " ".join(f"{name}={v}" for name, v in caps.items())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bocpy",
        description="Print what a bocpy plugin build needs (docs/packaging.md).")
    out: list[tuple[str, object]] = []

    class Record(argparse.Action):
        def __call__(self, p, ns, values, option_string=None):  # type: ignore[override]
            out.append((self.dest, values))

    def flag(name: str, help_text: str) -> None:
        parser.add_argument(name, nargs=0, action=Record, help=help_text)

    flag("--includes", "-I flags of CPython's and bocpy's include directories")
    flag("--cflags", "--includes and -DPy_LIMITED_API (abi3, CPython 3.12+; none on 3.10/3.11)")
    flag("--cmakedir", "the directory holding bocpyConfig.cmake")
    flag("--pkgconfigdir", "the directory holding bocpy.pc")
    flag("--abi", "the BOCPY_ABI version (MAJOR.MINOR), then name=version of "
         "each capability of this core")
    flag("--version", "the bocpy version")
    parser.parse_args(argv)
    if not out:
        parser.print_help()
        return 2
    for dest, _ in out:
        if dest == "includes":
            print(" ".join(f"-I{d}" for d in _abi.get_includes()))
        elif dest == "cflags":
            print(" ".join(_abi.get_cflags()))
        elif dest == "cmakedir":
            print(_abi.get_cmake_dir())
        elif dest == "pkgconfigdir":
            print(_abi.get_pkgconfig_dir())
        elif dest == "abi":
            print("\n".join(_abi_lines()))
        elif dest == "version":
            print(__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
