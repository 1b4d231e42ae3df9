#!/usr/bin/env bash
# scripts/check_minimal_build.sh <python> - bocpy builds and installs with
# nothing but a C compiler and Python's headers (docs/packaging.md,
# "Optional plugins").  The optional system packages are hidden from the
# build: pkg-config, and with it libffi, by CMake's
# CMAKE_DISABLE_FIND_PACKAGE_PkgConfig; the OpenCL headers by a folder of
# CL/*.h that stop the compiler, first on the include path (the OpenCL
# plugin must not include any).
#   1. `pip wheel` builds bocpy-runtime for <python>'s CPython; the build
#      output says in one line that bocpy.plugins.ctypes_bridge was left out;
#   2. the wheel has no ctypes_bridge extension and nothing in it links
#      libffi;
#   3. in a brand-new virtual environment the wheel installs, a behavior
#      runs, bocpy.plugins.opencl imports, and importing
#      bocpy.plugins.ctypes_bridge raises ImportError naming libffi-dev;
#   4. configured with -DBOCPY_PLUGIN_CTYPES_BRIDGE=ON the build stops,
#      naming libffi; with -DBOCPY_PLUGIN_OPENCL=OFF the OpenCL plugin is
#      left out, and says so.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
builder="$1"
bin="$(dirname "$builder")"
export PATH="$bin:$PATH"   # cmake and ninja from PyPI
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/hidden/CL"
for h in cl.h cl_icd.h cl_platform.h cl_ext.h cl_version.h opencl.h; do
  printf '#error "bocpy must build without the OpenCL headers (CL/%s)"\n' "$h" \
    >"$work/hidden/CL/$h"
done
if echo '#include <CL/cl.h>' | cc -I"$work/hidden" -E -x c - >/dev/null 2>&1; then
  echo "the hidden OpenCL headers do not stop the compiler"; exit 1
fi
hide=(-C cmake.define.CMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON
      -C "cmake.define.CMAKE_C_FLAGS=-I$work/hidden")

# 1. Build (a fresh build folder: every file is compiled with the hidden headers).
if ! "$builder" -m pip wheel -v --no-build-isolation --no-deps "${hide[@]}" \
    -C build-dir="$work/build" -w "$work/dist" "$root" >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log"; echo "the build without the optional packages failed"; exit 1
fi
wheel="$(ls "$work"/dist/bocpy_runtime-*.whl)"
lines="$(grep -c -- '-- bocpy: leaving out bocpy.plugins\.' "$work/build.log" || true)"
grep -- '-- bocpy: leaving out bocpy.plugins.ctypes_bridge: .*libffi-dev' "$work/build.log" ||
  { echo "the build output does not say that ctypes_bridge was left out"; exit 1; }
[ "$lines" -eq 1 ] || { echo "expected one 'leaving out' line, got $lines"; exit 1; }

# 2. What the wheel holds.
"$builder" -m zipfile -e "$wheel" "$work/unpacked"
[ -f "$work/unpacked/bocpy/plugins/ctypes_bridge.py" ] ||
  { echo "the wheel lacks the stand-in bocpy/plugins/ctypes_bridge.py"; exit 1; }
if ls "$work"/unpacked/bocpy/plugins/ctypes_bridge*.so >/dev/null 2>&1; then
  echo "the wheel has a ctypes_bridge extension although libffi was hidden"; exit 1
fi
ls "$work"/unpacked/bocpy/plugins/opencl*.so >/dev/null ||
  { echo "the wheel lacks the OpenCL plugin"; exit 1; }
while IFS= read -r so; do
  if readelf -d "$so" | grep -q 'NEEDED.*libffi'; then
    echo "$so links libffi"; exit 1
  fi
done < <(find "$work/unpacked" -name '*.so')
echo "wheel: $(basename "$wheel"), no ctypes_bridge, nothing links libffi"

# 3. Install and use it.
base="$("$builder" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-index --no-deps "$wheel"
cd "$work"
# A file, not stdin: the workers import the script's module.
cat >"$work/use.py" <<'PY'
import importlib
import sys

import bocpy
from bocpy import Cown, wait, when
from bocpy.plugins import opencl

assert isinstance(opencl.devices(), list)
x = Cown(20)


@when(x)
def result(x):
    return x.value + 22


wait()
assert result.value == 42, result.value
for how in ("from", "import"):
    try:
        if how == "from":
            from bocpy.plugins import ctypes_bridge  # noqa: F401
        else:
            importlib.import_module("bocpy.plugins.ctypes_bridge")
    except ImportError as e:
        msg = str(e)
        assert e.name == "bocpy.plugins.ctypes_bridge", e.name
        assert "not part of this build of bocpy" in msg and "libffi-dev" in msg, msg
    else:
        raise AssertionError("bocpy.plugins.ctypes_bridge imported without libffi")
print(f"runtime OK on {sys.version.split()[0]} without libffi and OpenCL headers: {msg}")
PY
"$work/venv/bin/python" "$work/use.py"

# 4. The switches.
if cmake -S "$root" -B "$work/on" -G Ninja -DPython_EXECUTABLE="$builder" \
    -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DBOCPY_PLUGIN_CTYPES_BRIDGE=ON \
    >"$work/on.log" 2>&1; then
  echo "BOCPY_PLUGIN_CTYPES_BRIDGE=ON configured without libffi"; exit 1
fi
grep -q "bocpy.plugins.ctypes_bridge cannot be built" "$work/on.log" ||
  { cat "$work/on.log"; echo "no clear error for BOCPY_PLUGIN_CTYPES_BRIDGE=ON"; exit 1; }
cmake -S "$root" -B "$work/off" -G Ninja -DPython_EXECUTABLE="$builder" \
  -DBOCPY_PLUGIN_OPENCL=OFF >"$work/off.log" 2>&1 ||
  { cat "$work/off.log"; exit 1; }
grep -q -- "-- bocpy: leaving out bocpy.plugins.opencl: it was turned off" "$work/off.log" ||
  { cat "$work/off.log"; echo "BOCPY_PLUGIN_OPENCL=OFF did not say so"; exit 1; }
grep -q "is not part of this build" "$work/off/plugins/left_out/opencl.py" ||
  { echo "no stand-in for the OpenCL plugin"; exit 1; }
echo "switches OK: BOCPY_PLUGIN_CTYPES_BRIDGE=ON needs libffi, BOCPY_PLUGIN_OPENCL=OFF leaves it out"
