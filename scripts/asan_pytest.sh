#!/usr/bin/env bash
# scripts/asan_pytest.sh <venv> - run the Python suite once against an
# AddressSanitizer + UBSan build of the extension and the plugins.
#
# CPython itself is not instrumented, so the ASan runtime is preloaded and
# leak detection is off (the interpreter's own allocations would swamp it);
# every heap error in our C code aborts the run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(cd "$1" && pwd)"
py="$venv/bin/python"
build="$root/build/asan-module-$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DBOCPY_WERROR=ON \
  "-DBOCPY_SANITIZE=address;undefined" -DPython_EXECUTABLE="$py" >/dev/null
cmake --build "$build" >/dev/null
pkg="$(mktemp -d)"
trap 'rm -rf "$pkg"' EXIT
# The installed package (pure-Python files, headers, pc/cmake files) with the
# sanitized binaries swapped in.
site="$(cd / && "$py" -c 'import bocpy, os; print(os.path.dirname(os.path.dirname(bocpy.__file__)))')"
cp -r "$site/bocpy" "$pkg/bocpy"
cp "$build"/core/_core*.so "$pkg/bocpy/"
for so in "$build"/plugins/*/*.abi3.so; do cp "$so" "$pkg/bocpy/plugins/"; done
export LD_PRELOAD="$(clang -print-file-name=libclang_rt.asan-x86_64.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$pkg"
cd "$root"
# Every suite but the ABI, packaging, distribution and build-option ones,
# which configure or compile plugins and build wheels with the system
# compiler (not meant to run with the ASan runtime preloaded) and run in the
# uninstrumented step.
exec "$venv/bin/pytest" -p no:cacheprovider -q "${@:2}" tests/python \
  --ignore-glob='tests/python/test_abi*.py' --ignore-glob='tests/python/test_packaging*.py' \
  --ignore=tests/python/test_dists.py --ignore=tests/python/test_optional_plugins.py
