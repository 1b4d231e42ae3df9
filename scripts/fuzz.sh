#!/usr/bin/env bash
# scripts/fuzz.sh - build the libFuzzer target for the request engine
# (tests/fuzz/fuzz_request.c over core/engine/request.c) and run it for a while.
#
#   bash scripts/fuzz.sh [seconds]        (default 60)
#
# Starts from the committed seed corpus tests/fuzz/corpus/, working on a
# temporary copy of it so the repository is never modified.  Exits non-zero
# on any crash, sanitizer report, failed model check, leak or timeout; the
# input that failed is kept under build/fuzz/artifacts/ and reproduces with
#   build/fuzz/fuzz_request build/fuzz/artifacts/<file>
# BOCPY_FUZZ_REQUEST_C=<file> builds against another request.c instead
# (mutation testing: a deliberately broken copy must make this fail).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

secs="${1:-60}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash scripts/fuzz.sh [seconds]" >&2
  exit 2
fi
request_c="${BOCPY_FUZZ_REQUEST_C:-core/engine/request.c}"
out="build/fuzz"
bin="$out/fuzz_request"
artifacts="$out/artifacts"
log="$out/fuzz_request.log"
corpus="tests/fuzz/corpus"

# ---- toolchain: clang with the libFuzzer runtime --------------------------
apt_install() { # apt_install <package...>   (as root, or through sudo)
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing Debian packages: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

fuzzer_runtime_works() {
  local probe
  probe="$(mktemp -d)"
  printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$probe/probe.c"
  local rc=0
  clang -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" \
    >/dev/null 2>&1 || rc=1
  rm -rf "$probe"
  return $rc
}

if ! command -v clang >/dev/null 2>&1; then
  dpkg -s clang >/dev/null 2>&1 || apt_install clang
fi
if ! fuzzer_runtime_works; then
  # Debian ships the sanitizer and fuzzer runtimes in libclang-rt-<N>-dev
  # (older releases: libclang-common-<N>-dev).
  major="$(clang -dumpversion | cut -d. -f1)"
  for pkg in "libclang-rt-$major-dev" "libclang-common-$major-dev"; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1 && apt-cache show "$pkg" >/dev/null 2>&1; then
      apt_install "$pkg"
      break
    fi
  done
  if ! fuzzer_runtime_works; then
    echo "fuzz: clang -fsanitize=fuzzer does not link (libFuzzer runtime missing)" >&2
    exit 1
  fi
fi

# ---- build ---------------------------------------------------------------------
mkdir -p "$out"
echo "== building $bin"
clang -std=c11 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror \
  -pthread -iquote core \
  "$request_c" core/engine/platform.c tests/fuzz/fuzz_request.c -o "$bin"

# ---- run -----------------------------------------------------------------------
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
if [ -d "$corpus" ]; then
  cp "$corpus"/* "$work/corpus/" 2>/dev/null || true
fi
seeds="$(find "$work/corpus" -type f | wc -l)"
rm -rf "$artifacts"
mkdir -p "$artifacts"

echo "== fuzzing for ${secs}s from $seeds seed inputs (log: $log)"
rc=0
"$bin" -max_total_time="$secs" -timeout=10 -max_len=512 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus" \
  >"$log" 2>&1 || rc=$?

runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
runs="${runs:-0}"
crashes="$(find "$artifacts" -type f | wc -l)"
final="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"

if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
  echo "---- last lines of $log ----"
  tail -n 60 "$log"
  echo "----"
  grep -A1 -m1 'check failed' "$log" || true
  [ "$crashes" -ne 0 ] || crashes=1
  for f in "$artifacts"/*; do
    [ -e "$f" ] && echo "reproduce: $bin $f"
  done
  echo "fuzz: $runs runs, $crashes crash(es) (libFuzzer exit status $rc)"
  exit 1
fi

[ -n "$final" ] && echo "$final"
grep '^stat::' "$log" || true
echo "fuzz: $runs runs, 0 crashes (corpus $seeds -> $(find "$work/corpus" -type f | wc -l) inputs)"
