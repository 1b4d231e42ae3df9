# scripts/env.sh - shared set-up for scripts/test.sh and scripts/demo.sh.
# Sourced, not run.  Installs what a fresh Debian machine lacks (as root),
# finds CPython 3.10 to 3.13, and makes one virtual environment per version.
set -euo pipefail

BOCPY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BOCPY_VENVS="$BOCPY_ROOT/.venv"
BOCPY_PYTHONS="${BOCPY_PYTHONS:-3.12 3.13 3.11 3.10}"

# Debian packages the build and the tests need.  The OpenCL plugin's tests
# run on PoCL, a CPU OpenCL driver, through the ICD loader
# (ocl-icd-libopencl1), so no GPU is needed; its build needs no OpenCL
# headers, but a test compares its own declarations with opencl-headers.
# The ctypes bridge links the system libffi (libffi-dev); without it the
# bridge is left out of the build (scripts/check_minimal_build.sh).
bocpy_apt_packages="build-essential clang pkg-config libcmocka-dev ninja-build libffi-dev
  valgrind xvfb xauth tk-dev patchelf opencl-headers ocl-icd-libopencl1 pocl-opencl-icd"

bocpy_install_system_packages() {
  local missing=()
  for p in $bocpy_apt_packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# bocpy_find_python 3.12 -> path of a CPython 3.12 interpreter.
bocpy_find_python() {
  local want="$1" root cand
  root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  for cand in $(ls -d "$root"/versions/"$want".* 2>/dev/null | sort -V -r); do
    if [ -x "$cand/bin/python$want" ]; then echo "$cand/bin/python$want"; return 0; fi
  done
  cand="$(command -v "python$want" || true)"
  if [ -n "$cand" ]; then echo "$cand"; return 0; fi
  echo "no CPython $want found (install it with pyenv or apt-get)" >&2
  return 1
}

# bocpy_venv 3.12 -> makes (once) and prints the path of .venv/py3.12, with the
# build and test requirements installed.
bocpy_venv() {
  local ver="$1" venv="$BOCPY_VENVS/py$1"
  if [ ! -x "$venv/bin/python" ]; then
    "$(bocpy_find_python "$ver")" -m venv "$venv" >&2
  fi
  if [ ! -f "$venv/.bocpy-deps" ] || [ "$BOCPY_ROOT/scripts/requirements.txt" -nt "$venv/.bocpy-deps" ]; then
    echo "== installing Python packages into $venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
    "$venv/bin/python" -m pip install -q -r "$BOCPY_ROOT/scripts/requirements.txt" >&2
    touch "$venv/.bocpy-deps"
  fi
  echo "$venv"
}

# bocpy_type_checkers <venv>: installs (once) scripts/requirements-types.txt,
# mypy and pyright, into the venv (scripts/test.sh: the first version's).
bocpy_type_checkers() {
  local venv="$1"
  if [ ! -f "$venv/.bocpy-types" ] || [ "$BOCPY_ROOT/scripts/requirements-types.txt" -nt "$venv/.bocpy-types" ]; then
    echo "== installing the type checkers into $venv" >&2
    "$venv/bin/python" -m pip install -q -r "$BOCPY_ROOT/scripts/requirements-types.txt" >&2 &&
      touch "$venv/.bocpy-types"
  fi
}

# bocpy_install_package <venv>: build bocpy and install it into the venv.
bocpy_install_package() {
  local venv="$1"
  echo "== building and installing bocpy into $venv" >&2
  # -Werror: the development build is warning-free (a plain `pip install .`
  # does not turn it on).
  "$venv/bin/python" -m pip install -q --no-build-isolation \
    -C cmake.define.BOCPY_WERROR=ON "$BOCPY_ROOT" >&2
}
