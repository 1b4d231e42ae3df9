#!/usr/bin/env bash
# scripts/test.sh - build everything and run every test, on CPython 3.12 and 3.13.
#
#   bash scripts/test.sh
#
# Runs the cmocka unit tests under ctest, then for each Python version builds
# and installs the package into .venv/py<ver> and runs pytest.  Exits non-zero
# if anything fails.
source "$(dirname "$0")/env.sh"
cd "$BOCPY_ROOT"
bocpy_install_system_packages

status=0
summary=()

run_step() { # run_step <label> <command...>
  local label="$1"; shift
  echo
  echo "================ $label ================"
  if "$@"; then summary+=("PASS  $label"); else summary+=("FAIL  $label"); status=1; fi
}

# Every version's environment exists before any test runs: some tests build
# for one CPython and load the result under another.
for ver in $BOCPY_PYTHONS; do bocpy_venv "$ver" >/dev/null; done
first_ver="${BOCPY_PYTHONS%% *}"
venv="$(bocpy_venv "$first_ver")"
export PATH="$venv/bin:$PATH"   # cmake and ninja from PyPI

c_tests() { # c_tests <build-dir> <cmake args...>
  local dir="$1"; shift
  cmake -S . -B "$dir" -G Ninja -DBOCPY_BUILD_TESTS=ON -DBOCPY_BUILD_MODULE=OFF -DBOCPY_WERROR=ON "$@" >/dev/null &&
    cmake --build "$dir" &&
    ctest --test-dir "$dir" --output-on-failure
}
run_step "C unit tests (cmocka, gcc)" c_tests build/ctest-gcc -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=gcc
memcheck() { # every cmocka test binary of the gcc build under valgrind
  local t
  for t in build/ctest-gcc/tests/c/test_*; do
    [ -x "$t" ] || continue
    valgrind -q --tool=memcheck --error-exitcode=1 --leak-check=full \
      --errors-for-leak-kinds=definite "$t" >/dev/null || { echo "memcheck failed: $t"; return 1; }
    echo "memcheck clean: $(basename "$t")"
  done
}
run_step "C unit tests under valgrind memcheck" memcheck
run_step "C unit tests (cmocka, clang, ASan+UBSan)" c_tests build/ctest-asan -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang "-DBOCPY_SANITIZE=address;undefined"
run_step "C unit tests (cmocka, clang, TSan)" c_tests build/ctest-tsan -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_COMPILER=clang -DBOCPY_SANITIZE=thread

run_step "Fuzzing the 2PL engine (libFuzzer, 60 s)" bash scripts/fuzz.sh 60

clang_module() {
  cmake -S . -B build/clang-module -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DBOCPY_WERROR=ON \
    -DPython_EXECUTABLE="$venv/bin/python" >/dev/null && cmake --build build/clang-module
}
run_step "Extension and plugins build warning-free with clang (-Werror)" clang_module

# The package is installed into every version's environment before any
# Python test runs: tests on one CPython load what was built for another.
install_all() {
  local v
  for v in $BOCPY_PYTHONS; do bocpy_install_package "$(bocpy_venv "$v")" || return 1; done
}
run_step "Build and install bocpy (CPython $BOCPY_PYTHONS)" install_all

for ver in $BOCPY_PYTHONS; do
  py_tests() {
    local venv
    venv="$(bocpy_venv "$ver")" &&
      (cd "$BOCPY_ROOT" && "$venv/bin/pytest" -p no:cacheprovider -q)
  }
  run_step "Python tests (pytest, CPython $ver)" py_tests
  run_step "Wheel installs into a clean venv (CPython $ver)" \
    bash scripts/check_wheel.sh "$(bocpy_venv "$ver")/bin/python"
done

run_step "Python tests against an ASan+UBSan build (CPython $first_ver)" \
  bash scripts/asan_pytest.sh "$(bocpy_venv "$first_ver")"

# The Ray backend (#29): its tests need the 'ray' package, which only this
# step installs, into one venv; they run apart (pytest -m ray) because
# starting Ray is slow.
ray_tests() {
  local venv
  venv="$(bocpy_venv "$first_ver")" &&
    "$venv/bin/python" -m pip install -q "ray==2.60.0" &&
    (cd "$BOCPY_ROOT" && "$venv/bin/pytest" -p no:cacheprovider -q -m ray)
}
run_step "Ray backend tests (pytest -m ray, CPython $first_ver)" ray_tests

echo
echo "================ summary ================"
printf '%s\n' "${summary[@]}"
exit $status
