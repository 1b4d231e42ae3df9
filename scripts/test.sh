#!/usr/bin/env bash
# scripts/test.sh - build everything and run every test, on CPython 3.12, 3.13,
# 3.11 and 3.10 (BOCPY_PYTHONS chooses; the first is the main one).
#
#   bash scripts/test.sh
#
# Runs the cmocka unit tests under ctest, then for each Python version builds
# and installs the package into .venv/py<ver> and runs pytest.  Exits non-zero
# if anything fails.  Work that does not depend on the interpreter running it
# is done once: tests/python/test_packaging.py (it builds the 3.12 and 3.13
# wheels itself) and the few tests that build with 3.12 and run under
# 3.12/3.13 whatever runs them (see py_tests), and the ASan suite, on the
# first version only; the wheel check
# (scripts/check_wheel.sh) on 3.10 and 3.11 only, since test_packaging.py
# already checks the 3.12 and 3.13 wheels the same way; the type checkers
# (scripts/requirements-types.txt) are installed into the first version's
# environment only.  The fuzzer runs while the package builds, and the
# per-version suites, the wheel checks, the minimal build and the ASan suite
# run BOCPY_TEST_JOBS (default 2) at a time (see bg_step).  Every step
# prints how long it took.
source "$(dirname "$0")/env.sh"
cd "$BOCPY_ROOT"
bocpy_install_system_packages

status=0
summary=()

run_step() { # run_step <label> <command...>
  local label="$1"; shift
  local t0=$SECONDS
  echo
  echo "================ $label ================"
  if "$@"; then summary+=("PASS  $label"); else summary+=("FAIL  $label"); status=1; fi
  local took=$((SECONDS - t0))
  summary[-1]+="  ($((took / 60))m$((took % 60))s)"
  echo "---------------- $label: $((took / 60))m$((took % 60))s"
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

# Steps run with bg_step are independent of one another and of the steps
# run meanwhile: the fuzzer works in build/fuzz on one core; each Python
# suite has its own venv and installed package and works in temporary
# directories; the wheel checks and test_packaging.py build in
# build/wheel-hardened/<tag> (3.10/3.11 and 3.12/3.13: never the same one),
# the minimal build and the ASan suite in folders of their own.  Most of a
# suite's time is spent waiting for subprocesses (exits, signals, grace
# periods), so BOCPY_TEST_JOBS of them (default 2; 1: one after another) run
# at once, each printing its output when it ends, in the order started.
jobs_max="${BOCPY_TEST_JOBS:-2}"
[[ "$jobs_max" =~ ^[1-9][0-9]*$ ]] || { echo "BOCPY_TEST_JOBS must be a positive integer" >&2; exit 2; }
bg_dir="$(mktemp -d)"
trap 'rm -rf "$bg_dir"' EXIT
bg_labels=() bg_pids=()
bg_next=0 # the oldest step not yet reported

bg_finish() { # bg_finish: wait for the oldest running step, print and record it
  local i=$bg_next r took
  bg_next=$((i + 1))
  wait "${bg_pids[$i]}"
  read -r r took <"$bg_dir/$i.status" || { r=FAIL; took=0; }
  echo
  echo "================ ${bg_labels[$i]} ================"
  cat "$bg_dir/$i.log"
  summary+=("$r  ${bg_labels[$i]}  ($((took / 60))m$((took % 60))s)")
  [ "$r" = PASS ] || status=1
  echo "---------------- ${bg_labels[$i]}: $((took / 60))m$((took % 60))s"
}

# A background job of a script ignores SIGINT and SIGQUIT, and so does every
# program it starts (a shell cannot take back a signal ignored when it
# started): bg_exec runs a program with both back to their defaults, as the
# tests of Ctrl-C need.
bg_exec() { # bg_exec <program> <args...>
  "$venv/bin/python" -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGQUIT):
    signal.signal(s, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

bg_step() { # bg_step <label> <command...>: run_step, BOCPY_TEST_JOBS at a time
  local label="$1"; shift
  while [ $(( ${#bg_pids[@]} - bg_next )) -ge "$jobs_max" ]; do bg_finish; done
  local i=${#bg_pids[@]}
  (
    t0=$SECONDS
    run=("$@")
    declare -F "$1" >/dev/null || run=(bg_exec "$@") # a function uses bg_exec itself
    if "${run[@]}" >"$bg_dir/$i.log" 2>&1 </dev/null; then r=PASS; else r=FAIL; fi
    echo "$r $((SECONDS - t0))" >"$bg_dir/$i.status"
  ) &
  bg_pids+=($!)
  bg_labels+=("$label")
}

# The fuzzer runs for a fixed time on one core: meanwhile the builds and the
# type checks go on.
bg_step "Fuzzing the 2PL engine (libFuzzer, 60 s)" bash scripts/fuzz.sh 60

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

# Types (issue 27): mypy --strict on the package and on tests/typing (which
# asserts the generic types of @when, as_completed, receive, wait, stats);
# pyright on tests/typing, and --verifytypes on the installed package (100%
# of its public symbols of known type), run outside the tree so that it
# reads what was installed.
typing_checks() {
  bocpy_type_checkers "$venv" &&
  "$venv/bin/mypy" --strict -p bocpy && "$venv/bin/mypy" --strict tests/typing &&
    (cd "$(mktemp -d)" && export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" &&
      "$venv/bin/pyright" "$BOCPY_ROOT/tests/typing" &&
      { report="$("$venv/bin/pyright" --verifytypes bocpy)" || true; } &&
      echo "$report" | grep -v "^ *$" | tail -n 12 &&
      grep -q "^Type completeness score: 100%" <<<"$report")
}
run_step "Types: mypy --strict, pyright --verifytypes bocpy (CPython $first_ver)" typing_checks

py_tests() { # py_tests <version>
  local ver="$1" venv once=()
  # Tests that do the same whatever interpreter runs them, once, on the
  # first version: test_packaging.py builds and checks the 3.12 and 3.13
  # wheels, test_dists.py the distributions (built with 3.12, a plugin
  # built from them on 3.13); two more build a plugin with 3.12 and load
  # it under 3.12/3.13; the benchmark driver measures the bocpy of
  # .venv/py3.12 whatever runs it; below 3.12 the ctypes bridge's 3.12
  # build runs under 3.12 as well.
  if [ "$ver" != "$first_ver" ]; then
    once=(--ignore=tests/python/test_packaging.py --ignore=tests/python/test_dists.py
          --deselect tests/python/test_abi_packaging.py::test_one_abi3_binary_loads_on_312_and_313
          --deselect tests/python/test_abi_opencl_plugin.py::test_one_binary_built_on_312_runs_the_examples_on_313
          --deselect tests/python/test_benchmarks_smoke.py::test_benchmark_workloads_run)
    case "$ver" in 3.10|3.11) once+=(
          --deselect tests/python/test_ctypes_bridge.py::test_abi3audit_clean_and_the_312_binary_runs_the_example) ;;
    esac
  fi
  venv="$(bocpy_venv "$ver")" &&
    (cd "$BOCPY_ROOT" && bg_exec "$venv/bin/pytest" -p no:cacheprovider -q "${once[@]}")
}

for ver in $BOCPY_PYTHONS; do
  note=""
  [ "$ver" = "$first_ver" ] || note=", without the interpreter-independent tests"
  bg_step "Python tests (pytest, CPython $ver$note)" py_tests "$ver"
  case "$ver" in
    3.10|3.11) bg_step "Wheel installs into a clean venv (CPython $ver)" \
                 bash scripts/check_wheel.sh "$(bocpy_venv "$ver")/bin/python" ;;
  esac
done

bg_step "Runtime builds and installs without libffi and the OpenCL headers (CPython $first_ver)" \
  bash scripts/check_minimal_build.sh "$(bocpy_venv "$first_ver")/bin/python"

bg_step "Python tests against an ASan+UBSan build (CPython $first_ver)" \
  bash scripts/asan_pytest.sh "$(bocpy_venv "$first_ver")"

while [ "$bg_next" -lt "${#bg_pids[@]}" ]; do bg_finish; done

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
echo "total: $((SECONDS / 60))m$((SECONDS % 60))s"
exit $status
