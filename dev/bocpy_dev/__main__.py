"""``bocpy-config`` (also ``python -m bocpy_dev``): what a bocpy plugin
build needs, one line per option (see ``bocpy-config --help``)."""

from __future__ import annotations

import sys

from . import ABI_MAJOR, ABI_MINOR, VERSION, get_cmake_dir, get_include, get_pkgconfig_dir
from ._config import Layout
from ._config import main as _main


def main(argv: list[str] | None = None) -> int:
    layout = Layout(include_dir=get_include(), cmake_dir=get_cmake_dir(),
                    pkgconfig_dir=get_pkgconfig_dir(), version=VERSION,
                    abi_lines=lambda: [f"{ABI_MAJOR}.{ABI_MINOR}"], abi_major=ABI_MAJOR)
    return _main(layout, argv, "bocpy-config",
                 abi_help="the BOCPY_ABI version (MAJOR.MINOR) these headers declare")


if __name__ == "__main__":
    sys.exit(main())
