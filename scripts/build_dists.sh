#!/usr/bin/env bash
# scripts/build_dists.sh [--python PY] [--with-build-backend] DIR
#
# Writes into DIR everything this repository distributes, versioned together
# (project(bocpy VERSION ...) in CMakeLists.txt):
#   bocpy_runtime-<v>-cpXY-cpXY-<platform>.whl  the runtime, for PY's CPython
#   bocpy_runtime-<v>.tar.gz                    its sdist (builds on any CPython)
#   bocpy_runtime_dev-<v>-py3-none-any.whl      the headers-only distribution
#                                               plugins build-require
# PY (default: python3) needs scikit-build-core, cmake, ninja and build
# (scripts/requirements.txt); the runtime builds without build isolation.
#
# --with-build-backend also puts the wheels of scikit-build-core and its
# dependencies into DIR (downloaded once from the package index), so that a
# plugin builds from DIR alone, offline:
#   pip wheel . --no-index --find-links DIR
# (docs/packaging.md says why --no-index).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py=python3
backend=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python) py="$2"; shift 2 ;;
    --with-build-backend) backend=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build_dists.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: scripts/build_dists.sh [--python PY] [--with-build-backend] DIR" >&2; exit 2; }
mkdir -p "$1"
out="$(cd "$1" && pwd)"
export PATH="$(dirname "$("$py" -c 'import sys; print(sys.executable)')"):$PATH"  # cmake, ninja

echo "== bocpy-runtime wheel ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
"$py" -m pip wheel -q --no-build-isolation --no-deps -w "$out" "$root"
echo "== bocpy-runtime sdist"
"$py" -m build -q --sdist --no-isolation -o "$out" "$root" >/dev/null
echo "== bocpy-runtime-dev wheel"
"$py" -m pip wheel -q --no-build-isolation --no-deps -w "$out" "$root/dev"
if [ "$backend" -eq 1 ]; then
  echo "== scikit-build-core and its dependencies (from the package index)"
  "$py" -m pip download -q --only-binary=:all: --dest "$out" "scikit-build-core>=0.10"
fi
ls -1 "$out"
