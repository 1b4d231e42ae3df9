"""``python -m bocpy``: where plugin authors find bocpy, for build scripts.

    python -m bocpy --includes          -I<CPython include> -I<bocpy include>
    python -m bocpy --cflags            the same and -DPy_LIMITED_API=0x030c0000 (3.12+)
    python -m bocpy --ldflags           -shared (a plugin links no library of ours)
    python -m bocpy --extension-suffix  .abi3.so (3.12+; else this version's suffix)
    python -m bocpy --cmakedir          directory of bocpyConfig.cmake (bocpy_DIR)
    python -m bocpy --pkgconfigdir      directory of bocpy.pc (PKG_CONFIG_PATH)
    python -m bocpy --abi               the ABI version, then the capabilities
    python -m bocpy --requires          a plugin's run-time requirement
    python -m bocpy --version           the bocpy version

Each option prints one line (``--abi`` two); several options print their
lines in the order given.  ``bocpy-config`` (from the headers-only
distribution bocpy-runtime-dev) takes the same options.  See
docs/packaging.md.
"""

from __future__ import annotations

import sys

from . import __version__, _abi, _config, _core


def _abi_lines() -> list[str]:
    info = _core._abi_info()
    caps = _abi.abi_capabilities()
    return [f"{info['major']}.{info['minor']}",
            " ".join(f"{name}={v}" for name, v in caps.items())]


def layout() -> _config.Layout:
    """Where this installed runtime keeps its headers and build files."""
    return _config.Layout(
        include_dir=_abi.get_include(), cmake_dir=_abi.get_cmake_dir(),
        pkgconfig_dir=_abi.get_pkgconfig_dir(), version=__version__,
        abi_lines=_abi_lines, abi_major=int(_core._abi_info()["major"]))


def main(argv: list[str] | None = None) -> int:
    return _config.main(
        layout(), argv, "python -m bocpy",
        abi_help="the BOCPY_ABI version (MAJOR.MINOR), then name=version of each "
        "capability of this core")


if __name__ == "__main__":
    sys.exit(main())
