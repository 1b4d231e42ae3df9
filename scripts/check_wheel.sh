#!/usr/bin/env bash
# scripts/check_wheel.sh <python> - build a wheel with `pip wheel`, install it
# into a brand-new virtual environment, and import bocpy._core there both in
# the main interpreter and in a sub-interpreter with its own GIL.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
builder="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$builder" -m pip wheel -q --no-build-isolation --no-deps -w "$work/dist" "$root"
wheel="$(ls "$work"/dist/bocpy-*.whl)"
echo "built $(basename "$wheel")"
unzip -l "$wheel" | grep -E "bocpy/(_core.*\.so|_core\.pyi|py\.typed)$" >/dev/null ||
  { echo "wheel lacks _core, _core.pyi or py.typed"; exit 1; }
base="$("$builder" -c 'import sys; print(sys._base_executable)')"
"$base" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import sys
import bocpy._core as core
assert core.is_main_interpreter()
try:
    import _interpreters as I
    interp = I.create("isolated")
    assert I.get_config(interp).gil == "own"
    failure = I.run_string(interp, "import bocpy._core as c; assert not c.is_main_interpreter()")
    assert failure is None, failure
except ImportError:
    import _xxsubinterpreters as I
    interp = I.create(isolated=True)
    I.run_string(interp, "import bocpy._core as c; assert not c.is_main_interpreter()")
I.destroy(interp)
print(f"wheel OK on {sys.version.split()[0]}: main and own-GIL sub-interpreter import bocpy._core")
PY
