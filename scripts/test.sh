#!/usr/bin/env bash
# MMSB's test command (CI runs it too, through .ci/run).
#
#   scripts/test.sh           every stage below: what CI runs
#   scripts/test.sh --quick   only the release stage: a quick check while you work
#
# It installs the Debian packages the build needs (scripts/install-deps.sh),
# then runs, each stage in its own build directory build/<preset>:
#   1. debug    ASan + UBSan, bench off. Builds everything else and runs every
#               test: ctest --preset debug.
#   2. tsan     ThreadSanitizer. Builds the engine, capture and CUDA-mirror
#               tests and runs the engine's and the mirror's [threads] cases
#               and the capture cases that are not fork/kill or stock-tool
#               tests.
#   3. release  Builds everything (libraries, tests, samples, bench) and runs
#               every test: ctest --preset release.
# Build directories are reused, so a second run only rebuilds what changed.
# The last line printed is the release stage's ctest summary,
# "100% tests passed, 0 tests failed out of N": the line CI reads.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (see scripts/test.sh --help)" >&2; exit 2 ;;
  esac
done

jobs=$(nproc)
start=$SECONDS
summary=()
stage=""
section() { stage=$1; printf '\n======== %s ========\n' "$*"; }
trap 'echo "test.sh: FAILED in the $stage stage (see above)" >&2' ERR

# GCC 12's sanitizer runtimes expect the kernel's default mmap randomization;
# with more (vm.mmap_rnd_bits > 28, on some newer kernels) they can die with
# "unexpected memory mapping". There, run sanitized programs -- including the
# test discovery that runs the test binary at build time -- with ASLR off, if
# the kernel lets us (containers may forbid it: then we run them as they are).
no_aslr=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] &&
  setarch "$(uname -m)" -R true 2>/dev/null; then
  no_aslr=(setarch "$(uname -m)" -R)
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-second_deadlock_stack=1}"

# run_ctest <preset> [ctest args...]: runs ctest with the preset's settings and
# remembers its closing "N% tests passed" line for the summary.
run_ctest() {
  local preset=$1
  shift
  local log="build/$preset/ctest.log"
  "${no_aslr[@]}" ctest --preset "$preset" -j"$jobs" --timeout 600 "$@" 2>&1 | tee "$log"
  summary+=("$preset|$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1)")
}

section dependencies "(scripts/install-deps.sh)"
scripts/install-deps.sh
echo "cmake $(cmake --version | head -n 1 | cut -d' ' -f3), $(c++ --version | head -n 1), $jobs cores${CI:+, CI}"

if [ "$quick" -eq 0 ]; then
  section debug "(ASan + UBSan): configure, build, test"
  t=$SECONDS
  cmake --preset debug
  "${no_aslr[@]}" cmake --build --preset debug -j"$jobs"
  run_ctest debug
  echo "debug stage: $((SECONDS - t)) s"

  section tsan "(ThreadSanitizer): threaded engine and mirror tests, capture tests"
  # Why not ctest here: catch_discover_tests registers each TEST_CASE as
  # "engine/<name>" without its tags (Catch2 v2 makes no labels from tags),
  # so neither ctest -R nor -L can select "the threaded tests". Catch's own
  # tag filter can, and it is the one source of truth for what is threaded.
  # --warn NoTests turns "no test matched [threads]" into a failure, so a
  # renamed tag cannot silently make this stage test nothing.
  t=$SECONDS
  cmake --preset tsan
  "${no_aslr[@]}" cmake --build --preset tsan -j"$jobs" --target mmsb_engine_tests mmsb_capture_tests mmsb_cuda_tests
  # TSan reports races on stderr and then exits 66, even when every Catch
  # assertion passed. The capture tests run the recorder's writer thread
  # against application threads; the fork/kill and stock-tool tests stay in
  # the other stages.
  tsan_run() {
    local bin=build/tsan/tests/$1 log=build/tsan/$1.log
    shift
    [ -x "$bin" ] || { echo "test.sh: $bin was not built" >&2; exit 1; }
    "${no_aslr[@]}" "$bin" "$@" --warn NoTests 2>&1 | tee "$log"
    summary+=("tsan|$(basename "$bin"): $(grep -E '^(All tests passed|test cases:)' "$log" | tail -n 1)")
  }
  tsan_run mmsb_engine_tests "[threads]"
  tsan_run mmsb_capture_tests "[capture]~[crash]~[tools]"
  tsan_run mmsb_cuda_tests "[threads]"  # the mirror's parallel packer (CPU path)
  echo "tsan stage: $((SECONDS - t)) s"
fi

section release "(everything): configure, build, test"
t=$SECONDS
cmake --preset release
cmake --build --preset release -j"$jobs"
run_ctest release
echo "release stage: $((SECONDS - t)) s"

section summary
last=""
for s in "${summary[@]}"; do
  if [ "${s%%|*}" = release ]; then last=${s#*|}; else printf '%-6s %s\n' "${s%%|*}:" "${s#*|}"; fi
done
echo "all stages passed in $((SECONDS - start)) s; release:"
echo "$last"
