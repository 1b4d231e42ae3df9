"""PEP 517 build backend of bocpy-runtime-dev (dev/pyproject.toml).

Standard library only, so that building the headers wheel needs no package
index.  It reads the repository the runtime is built from (or, in an sdist
of bocpy-runtime-dev, the copy of those inputs under ``_repo/``):

* the version: ``project(bocpy VERSION x.y.z)`` in ``CMakeLists.txt``;
* the ABI version: ``BOCPY_ABI_MAJOR``/``MINOR`` in ``abi/include/bocpy/abi_header.h``;
* the headers ``abi/include/bocpy/*.h``;
* the templates ``abi/*.in`` (configured here the way CMake's
  ``configure_file(... @ONLY)`` does in ``abi/CMakeLists.txt``, so the two
  distributions carry identical files) and ``cmake/BocpyPlugin.cmake``;
* ``bocpy/_config.py``, the command line shared with ``python -m bocpy``;
* ``LICENSE``.

and writes one ``py3-none-any`` wheel.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "bocpy-runtime-dev"
DIST = "bocpy_runtime_dev"

#: The inputs taken from the repository (relative to its root).
INPUTS = ("CMakeLists.txt", "LICENSE", "abi/bocpy.pc.in", "abi/bocpyConfig.cmake.in",
          "abi/bocpyConfigVersion.cmake.in", "abi/bocpyForward.cmake.in",
          "cmake/BocpyPlugin.cmake", "bocpy/_config.py")
LIMITED_API = "0x030c0000"


def _repo() -> Path:
    bundled = HERE / "_repo"
    return bundled if bundled.is_dir() else HERE.parent


def _headers(repo: Path) -> list[Path]:
    return sorted((repo / "abi" / "include" / "bocpy").glob("*.h"))


def _variables(repo: Path) -> dict[str, str]:
    cmake = (repo / "CMakeLists.txt").read_text(encoding="utf-8")
    m = re.search(r"project\(bocpy VERSION ([0-9]+)\.([0-9]+)\.([0-9]+)", cmake)
    if m is None:
        raise RuntimeError(f"no project(bocpy VERSION x.y.z) in {repo / 'CMakeLists.txt'}")
    header = (repo / "abi" / "include" / "bocpy" / "abi_header.h").read_text(encoding="utf-8")
    abi = dict(re.findall(r"^#define BOCPY_ABI_(MAJOR|MINOR) ([0-9]+)$", header, re.M))
    if set(abi) != {"MAJOR", "MINOR"}:
        raise RuntimeError("cannot read the ABI version from abi_header.h")
    return {
        "PROJECT_VERSION": ".".join(m.groups()),
        "PROJECT_VERSION_MAJOR": m.group(1),
        "BOCPY_ABI_MAJOR": abi["MAJOR"],
        "BOCPY_ABI_MINOR": abi["MINOR"],
        "BOCPY_LIMITED_API": LIMITED_API,
        "BOCPY_FORWARD_NAME": NAME,
        "BOCPY_FORWARD_PACKAGE": "bocpy_dev",
        "BOCPY_FORWARD_PYTHON": "python3*",
    }


def _configure(text: str, variables: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in variables:
            raise RuntimeError(f"unknown template variable @{m.group(1)}@")
        return variables[m.group(1)]

    return re.sub(r"@([A-Za-z_][A-Za-z0-9_]*)@", sub, text)


def _metadata(version: str) -> str:
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    return (
        "Metadata-Version: 2.1\n"
        f"Name: {NAME}\n"
        f"Version: {version}\n"
        "Summary: Headers, CMake package and pkg-config file for building bocpy "
        "plugins (no runtime)\n"
        "License: MIT\n"
        "Requires-Python: >=3.8\n"
        "Classifier: License :: OSI Approved :: MIT License\n"
        "Classifier: Programming Language :: C\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: Topic :: Software Development :: Build Tools\n"
        "Classifier: Typing :: Typed\n"
        "Description-Content-Type: text/markdown\n"
        "\n" + readme
    )


def _files(version: str) -> dict[str, bytes]:
    """Archive name -> contents of every file of the wheel but RECORD."""
    repo = _repo()
    variables = _variables(repo)
    pkg = "bocpy_dev/"
    out: dict[str, bytes] = {}
    for name in ("__init__.py", "__main__.py", "py.typed"):
        out[pkg + name] = (HERE / "bocpy_dev" / name).read_bytes()
    out[pkg + "_config.py"] = (repo / "bocpy" / "_config.py").read_bytes()
    out[pkg + "_info.py"] = (
        '"""Written by the build (dev/_bocpy_dev_backend.py)."""\n\n'
        f'VERSION = "{version}"\n'
        f"ABI_MAJOR = {variables['BOCPY_ABI_MAJOR']}\n"
        f"ABI_MINOR = {variables['BOCPY_ABI_MINOR']}\n").encode()
    for h in _headers(repo):
        out[f"{pkg}include/bocpy/{h.name}"] = h.read_bytes()

    def conf(name: str) -> bytes:
        return _configure((repo / "abi" / name).read_text(encoding="utf-8"), variables).encode()

    out[pkg + "lib/pkgconfig/bocpy.pc"] = conf("bocpy.pc.in")
    cmake_dir = pkg + "lib/cmake/bocpy/"
    out[cmake_dir + "bocpyConfig.cmake"] = conf("bocpyConfig.cmake.in")
    out[cmake_dir + "bocpyConfigVersion.cmake"] = conf("bocpyConfigVersion.cmake.in")
    out[cmake_dir + "BocpyPlugin.cmake"] = (repo / "cmake" / "BocpyPlugin.cmake").read_bytes()
    data = f"{DIST}-{version}.data/data/share/cmake/{NAME}/"
    out[data + "bocpyConfig.cmake"] = conf("bocpyForward.cmake.in")
    out[data + "bocpyConfigVersion.cmake"] = conf("bocpyConfigVersion.cmake.in")
    info = f"{DIST}-{version}.dist-info/"
    out[info + "METADATA"] = _metadata(version).encode()
    out[info + "WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: bocpy-runtime-dev backend\n"
                           b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    out[info + "entry_points.txt"] = (
        b"[console_scripts]\nbocpy-config = bocpy_dev.__main__:main\n\n"
        b"[cmake.prefix]\nbocpy = bocpy_dev\n\n"
        b"[pkg_config]\nbocpy = bocpy_dev.lib.pkgconfig\n")
    out[info + "top_level.txt"] = b"bocpy_dev\n"
    out[info + "licenses/LICENSE"] = (repo / "LICENSE").read_bytes()
    return out


def _version() -> str:
    return _variables(_repo())["PROJECT_VERSION"]


def _date() -> tuple[int, int, int, int, int, int]:
    # Reproducible: SOURCE_DATE_EPOCH when set, else a fixed date.
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    return time.gmtime(max(epoch, 315532800))[:6]


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


# ---- PEP 517 hooks --------------------------------------------------------------

def get_requires_for_build_wheel(config_settings: object = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: object = None) -> list[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: object = None,
                metadata_directory: object = None) -> str:
    version = _version()
    files = _files(version)
    record = f"{DIST}-{version}.dist-info/RECORD"
    lines = [_record_line(n, d) for n, d in files.items()] + [f"{record},,"]
    files[record] = ("\n".join(lines) + "\n").encode()
    wheel = f"{DIST}-{version}-py3-none-any.whl"
    date = _date()
    with zipfile.ZipFile(Path(wheel_directory) / wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, date)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, data)
    return wheel


def build_sdist(sdist_directory: str, config_settings: object = None) -> str:
    """An sdist that builds on its own: this directory, and the repository
    inputs under ``_repo/``."""
    repo = _repo()
    version = _version()
    base = f"{DIST}-{version}"
    members: dict[str, bytes] = {}
    for name in ("pyproject.toml", "README.md", "_bocpy_dev_backend.py"):
        members[name] = (HERE / name).read_bytes()
    for name in ("__init__.py", "__main__.py", "py.typed"):
        members[f"bocpy_dev/{name}"] = (HERE / "bocpy_dev" / name).read_bytes()
    for rel in INPUTS:
        members[f"_repo/{rel}"] = (repo / rel).read_bytes()
    for h in _headers(repo):
        members[f"_repo/abi/include/bocpy/{h.name}"] = h.read_bytes()
    members["LICENSE"] = (repo / "LICENSE").read_bytes()
    members["PKG-INFO"] = _metadata(version).encode()
    sdist = f"{base}.tar.gz"
    mtime = max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)
    with tarfile.open(Path(sdist_directory) / sdist, "w:gz", format=tarfile.PAX_FORMAT) as t:
        for name, data in sorted(members.items()):
            entry = tarfile.TarInfo(f"{base}/{name}")
            entry.size = len(data)
            entry.mtime = mtime
            entry.mode = 0o644
            t.addfile(entry, io.BytesIO(data))
    return sdist
