"""Optional plugins (docs/packaging.md, "Optional plugins"): a plugin whose
system dependency is missing, or that is turned off, is left out of the
build with one line in its output and replaced by a module whose import
raises ImportError saying what to install.  scripts/check_minimal_build.sh
(in scripts/test.sh) builds and installs a whole wheel that way; these tests
check the CMake configure step and the stand-in module quickly."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _configure(tmp_path: Path, *defines: str) -> subprocess.CompletedProcess[str]:
    bindir = Path(sys.executable).parent
    cmake = shutil.which("cmake", path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    assert cmake is not None, "cmake is needed: pip install -r scripts/requirements.txt"
    ninja = shutil.which("ninja", path=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    gen = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []
    return subprocess.run([cmake, "-S", str(ROOT), "-B", str(tmp_path / "build"), *gen,
                           f"-DPython_EXECUTABLE={sys.executable}", *defines],
                          capture_output=True, text=True)


def _load_stand_in(path: Path, name: str) -> ImportError:
    code = compile(path.read_text(), str(path), "exec")
    with pytest.raises(ImportError) as info:
        exec(code, {"__name__": name})
    return info.value


def test_without_libffi_the_bridge_is_left_out(tmp_path: Path) -> None:
    res = _configure(tmp_path, "-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON")
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout + res.stderr
    lines = [line for line in out.splitlines() if "bocpy: leaving out" in line]
    assert len(lines) == 1, lines
    assert "bocpy.plugins.ctypes_bridge" in lines[0] and "libffi-dev" in lines[0], lines
    stand_in = tmp_path / "build" / "plugins" / "left_out" / "ctypes_bridge.py"
    err = _load_stand_in(stand_in, "bocpy.plugins.ctypes_bridge")
    assert err.name == "bocpy.plugins.ctypes_bridge"
    msg = str(err)
    assert msg.startswith("bocpy.plugins.ctypes_bridge is not part of this build of bocpy: "
                          "pkg-config was not found"), msg
    assert "apt-get install libffi-dev pkg-config" in msg, msg
    assert not (tmp_path / "build" / "plugins" / "left_out" / "opencl.py").exists()


def test_turned_off_and_required(tmp_path: Path) -> None:
    res = _configure(tmp_path / "off", "-DBOCPY_PLUGIN_OPENCL=OFF")
    assert res.returncode == 0, res.stdout + res.stderr
    assert ("-- bocpy: leaving out bocpy.plugins.opencl: it was turned off "
            "(BOCPY_PLUGIN_OPENCL=OFF)") in res.stdout + res.stderr
    err = _load_stand_in(tmp_path / "off" / "build" / "plugins" / "left_out" / "opencl.py",
                         "bocpy.plugins.opencl")
    assert "cmake.define.BOCPY_PLUGIN_OPENCL=ON" in str(err), str(err)

    res = _configure(tmp_path / "on", "-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON",
                     "-DBOCPY_PLUGIN_CTYPES_BRIDGE=ON")
    assert res.returncode != 0
    assert "bocpy.plugins.ctypes_bridge cannot be built" in res.stderr, res.stderr

    res = _configure(tmp_path / "bad", "-DBOCPY_PLUGIN_OPENCL=maybe")
    assert res.returncode != 0
    assert "BOCPY_PLUGIN_OPENCL is 'maybe': use AUTO, ON or OFF" in res.stderr, res.stderr


def test_this_build_has_every_optional_plugin() -> None:
    """The development build (scripts/env.sh installs libffi-dev) includes
    both optional plugins as extension modules, not stand-ins."""
    import importlib.machinery

    for name in ("opencl", "ctypes_bridge"):
        mod = __import__(f"bocpy.plugins.{name}", fromlist=["_"])
        assert mod.__file__ is not None
        assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), mod.__file__
