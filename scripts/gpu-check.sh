#!/usr/bin/env bash
# Builds and runs every GPU test and GPU benchmark of MMSB in one go, so that a
# machine with a GPU can be used briefly. Such machines may have the compiler,
# CMake, Ninja and the CUDA toolkit but no Debian dev packages and no package
# registry, so the few headers the build needs travel along in .gpu-deps/.
#
#   scripts/gpu-check.sh --prepare     on a machine with the Debian packages
#                                      (scripts/install-deps.sh): copies xxhash,
#                                      Catch2 and CLI11 headers (and their CMake
#                                      package files) into .gpu-deps/ (git-ignored)
#   scripts/gpu-check.sh               on the GPU machine: configures build/gpu
#                                      (MMSB_CUDA=ON, capture/replay/CLI off, the
#                                      dependencies from .gpu-deps/ only), builds
#                                      the CUDA targets with every core, prints
#                                      nvidia-smi, runs the cuda/ tests (the GPU
#                                      ones must not skip where nvidia-smi shows a
#                                      GPU), runs them again under
#                                      compute-sanitizer (memcheck, racecheck,
#                                      synccheck, initcheck) and mmsb-bench --only
#                                      gpu_apply,gpu_diff --workload all --repeat 5
#
# Options (default mode):
#   --allow-skip      GPU tests and benches may skip (a machine without a GPU)
#   --simulate        also hide the system's packages from CMake (/usr, /usr/local
#                     prefixes ignored, zstd/FlatBuffers/Box2D disabled) and check
#                     that no object was compiled against a header of a Debian dev
#                     package: a rehearsal of the GPU machine on this one
#   --build-dir DIR   instead of build/gpu
#   --repeat N        bench repetitions (default 5)
#   --jobs N          build jobs (default: nproc)
#
# Output: with $OUT set, the bench's JSON lines go to $OUT/gpu-bench.jsonl and
# everything printed to $OUT/gpu-check.log; without it, to the build directory.
# The last line is "gpu-check: PASSED ..." or "gpu-check: FAILED: <why>"; the
# exit status is 0 or 1.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
deps=$root/.gpu-deps

prepare=0 allow_skip=0 simulate=0 build_dir=build/gpu repeat=5 jobs=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --prepare) prepare=1 ;;
    --allow-skip) allow_skip=1 ;;
    --simulate) simulate=1 ;;
    --build-dir) build_dir=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    -h | --help) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# ---- --prepare: copy what the GPU build needs from this machine's packages ----
if [ "$prepare" -eq 1 ]; then
  set -e
  need=(/usr/include/xxhash.h /usr/include/catch2/catch.hpp /usr/include/CLI/CLI.hpp
        /usr/lib/cmake/Catch2/Catch2Config.cmake /usr/share/cmake/CLI11/CLI11Config.cmake)
  for f in "${need[@]}"; do
    [ -e "$f" ] || { echo "gpu-check.sh --prepare: $f is missing: run scripts/install-deps.sh first" >&2; exit 1; }
  done
  rm -rf "$deps"
  mkdir -p "$deps/include/catch2" "$deps/lib/cmake/Catch2" "$deps/share/cmake/CLI11"
  cp /usr/include/xxhash.h "$deps/include/"
  [ -e /usr/include/xxh3.h ] && cp /usr/include/xxh3.h "$deps/include/"
  cp /usr/include/catch2/catch.hpp "$deps/include/catch2/"
  cp -r /usr/include/CLI "$deps/include/"
  # Catch2's package without Catch2Targets-none.cmake, which would demand
  # libCatch2WithMain.a (MMSB compiles its own main).
  for f in Catch2Config.cmake Catch2ConfigVersion.cmake Catch2Targets.cmake Catch.cmake CatchAddTests.cmake \
           ParseAndAddCatchTests.cmake; do
    [ -e "/usr/lib/cmake/Catch2/$f" ] && cp "/usr/lib/cmake/Catch2/$f" "$deps/lib/cmake/Catch2/"
  done
  cp /usr/share/cmake/CLI11/*.cmake "$deps/share/cmake/CLI11/"
  # cmake/Findxxhash.cmake also asks for the library; MMSB only uses the
  # header (XXH_INLINE_ALL), but the find module must be satisfied.
  lib=$(ls /usr/lib/*/libxxhash.a 2>/dev/null | head -n 1)
  mkdir -p "$deps/lib"
  if [ -n "$lib" ]; then cp "$lib" "$deps/lib/"; else : > "$deps/lib/libxxhash.a"; fi
  {
    echo "Copied by scripts/gpu-check.sh --prepare on $(hostname) at $(date -u +%FT%TZ); not part of the repository."
    for p in libxxhash-dev catch2 libcli11-dev; do dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null || true; done
  } > "$deps/SOURCES.txt"
  echo "gpu-check.sh: $(du -sh "$deps" | cut -f1) in $deps:"
  (cd "$deps" && find . -type f | sort | sed 's/^/  /')
  echo "carry .gpu-deps to the GPU machine and run scripts/gpu-check.sh there"
  exit 0
fi

# ---- default mode: build, test, bench ----
out_dir=${OUT:-$root/$build_dir}
mkdir -p "$out_dir" "$root/$build_dir"
log=$out_dir/gpu-check.log
jsonl=$out_dir/gpu-bench.jsonl
: > "$log"
: > "$jsonl"
exec > >(tee -a "$log") 2>&1
failures=()
fail() { failures+=("$1"); echo "gpu-check: FAILURE: $1"; }
section() { printf '\n======== %s ========\n' "$*"; }
# The value of "KEY" in a JSON line (as printed: a number, or a quoted string).
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }
# The issue's two targets, read from the bench lines: met, missed, or not measured.
targets() {
  local w1 w3 v
  w1=$(grep -m1 '"bench":"gpu_apply","workload":"W1","path":"auto"' "$jsonl" 2>/dev/null)
  w3=$(grep -m1 '"bench":"gpu_apply","workload":"W3","path":"deltas"' "$jsonl" 2>/dev/null)
  v=$(field "$w1" sync_ms)
  if [ -n "$v" ] && [ "$v" != null ]; then
    echo "target: gpu_apply W1 sync_ms $v (< 2, shipped $(field "$w1" shipped)):" \
      "$(awk -v x="$v" 'BEGIN { print (x < 2 ? "met" : "missed") }')"
  else
    echo "target: gpu_apply W1 sync_ms: not measured"
  fi
  v=$(field "$w3" ratio_d2d)
  if [ -n "$v" ] && [ "$v" != null ]; then
    echo "target: gpu_apply W3 ratio_d2d $v (>= 0.6, the delta kernel):" \
      "$(awk -v x="$v" 'BEGIN { print (x >= 0.6 ? "met" : "missed") }')"
  else
    echo "target: gpu_apply W3 ratio_d2d: not measured"
  fi
}

finish() {
  section summary
  [ -s "$jsonl" ] && cat "$jsonl"
  targets
  if [ ${#failures[@]} -eq 0 ]; then
    echo "gpu-check: PASSED in $((SECONDS - start)) s (log $log, bench $jsonl)"
    exit 0
  fi
  echo "gpu-check: FAILED: $(IFS=';'; echo "${failures[*]}")"
  exit 1
}
start=$SECONDS

section "machine"
echo "$(uname -srm); $(nproc) cores; cmake $(cmake --version | head -n 1 | cut -d' ' -f3); $(c++ --version | head -n 1)"
# The host CPU: gpu_apply's W1 sync is bound by the host's packing.
grep -m1 '^model name' /proc/cpuinfo 2>/dev/null || true
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [ -x "$nvcc" ]; then "$nvcc" --version | tail -n 2; else echo "no nvcc found"; fi
has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi || true
  nvidia-smi -L 2>/dev/null | grep -q '^GPU ' && has_gpu=1
else
  echo "no nvidia-smi on this machine"
fi
echo "GPU present (nvidia-smi): $([ $has_gpu -eq 1 ] && echo yes || echo no)"
if [ $has_gpu -eq 0 ] && [ $allow_skip -eq 0 ]; then
  fail "nvidia-smi shows no GPU (use --allow-skip to run the rest anyway)"
  finish
fi

[ -f "$deps/include/catch2/catch.hpp" ] && [ -f "$deps/include/xxhash.h" ] || {
  fail "$deps is missing or incomplete: run scripts/gpu-check.sh --prepare on a machine with the Debian packages and carry .gpu-deps along"
  finish
}

section "configure ($build_dir)"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
args=(-S "$root" -B "$root/$build_dir" "${generator[@]}"
  -DCMAKE_BUILD_TYPE=Release -DMMSB_CUDA=ON
  -DMMSB_BUILD_CAPTURE=OFF -DMMSB_BUILD_CLI=OFF -DMMSB_BUILD_INSPECTOR=OFF -DMMSB_BUILD_TESTS=ON -DMMSB_BUILD_BENCH=ON
  "-DCMAKE_PREFIX_PATH=$deps"
  "-DXXHASH_INCLUDE_DIR=$deps/include" "-DXXHASH_LIBRARY=$deps/lib/libxxhash.a"
  "-DCMAKE_CUDA_ARCHITECTURES=80;90")
[ -x "$nvcc" ] && args+=("-DCMAKE_CUDA_COMPILER=$nvcc")
if [ $simulate -eq 1 ]; then
  args+=(--no-warn-unused-cli "-DCMAKE_IGNORE_PREFIX_PATH=/usr;/usr/local" -DCMAKE_DISABLE_FIND_PACKAGE_zstd=ON
         -DCMAKE_DISABLE_FIND_PACKAGE_FlatBuffers=ON -DCMAKE_DISABLE_FIND_PACKAGE_box2d=ON)
fi
samples=ON
if ! cmake "${args[@]}" -DMMSB_BUILD_SAMPLES=ON; then
  echo "gpu-check: configuring with the samples failed; trying again without them (no heat sample checks)"
  samples=OFF
  cmake "${args[@]}" -DMMSB_BUILD_SAMPLES=OFF || { fail "cmake configure"; finish; }
fi

section "build (-j$jobs)"
targets=(mmsb_cuda_tests mmsb_cuda_gpu_tests mmsb_bench)
[ $samples = ON ] && targets+=(mmsb-sample-heat mmsb_heat_tests)
t=$SECONDS
cmake --build "$root/$build_dir" -j"$jobs" --target "${targets[@]}" || { fail "build"; finish; }
echo "built in $((SECONDS - t)) s"

if [ $simulate -eq 1 ] && command -v ninja >/dev/null 2>&1; then
  section "simulation: headers of Debian dev packages used by the build"
  used=$(cd "$root/$build_dir" && ninja -t deps 2>/dev/null |
         grep -E '^ +/usr/include/(catch2/|CLI/|xxhash\.h|xxh3\.h|zstd|flatbuffers/)' | sort -u)
  if [ -n "$used" ]; then echo "$used"; fail "the build used system headers that a GPU machine does not have"
  else echo "none: every such header came from $deps"; fi
fi

section "tests: cuda/ on the CPU"
(cd "$root/$build_dir" && ctest -R '^cuda/' -LE gpu --output-on-failure -j"$jobs" --timeout 600) ||
  fail "cuda/ CPU tests"

section "tests: cuda/ on the GPU"
gpu_log=$root/$build_dir/gpu-tests.log
(cd "$root/$build_dir" && ctest -L gpu -V --timeout 900) 2>&1 | tee "$gpu_log"
grep -qE '^[0-9]+% tests passed' "$gpu_log" && ! grep -qE '\(Failed\)|\*\*\*Failed|\(Timeout\)|Not Run' "$gpu_log" ||
  fail "cuda/ GPU tests"
if grep -qE '\(Skipped\)|\*\*\*Skipped' "$gpu_log"; then
  if [ $has_gpu -eq 1 ] && [ $allow_skip -eq 0 ]; then
    fail "GPU tests skipped although nvidia-smi shows a GPU (see 'no CUDA device:' above)"
  else
    echo "gpu-check: GPU tests skipped (no usable device; --allow-skip)"
  fi
fi

# The kernels' memory accesses, races, barriers and reads of uninitialized
# device memory, over every GPU test case (about 30 s on an H100).
section "tests: cuda/ on the GPU under compute-sanitizer"
sanitizer=$(dirname "$nvcc")/compute-sanitizer
[ -x "$sanitizer" ] || sanitizer=$(command -v compute-sanitizer || true)
if [ $has_gpu -eq 0 ]; then
  echo "skipped: no GPU"
elif [ -z "$sanitizer" ] || [ ! -x "$sanitizer" ]; then
  echo "skipped: no compute-sanitizer next to nvcc or on PATH"
else
  for tool in memcheck racecheck synccheck initcheck; do
    if "$sanitizer" --tool $tool --error-exitcode 9 "$root/$build_dir/tests/mmsb_cuda_gpu_tests" \
         > "$root/$build_dir/sanitizer-$tool.log" 2>&1; then
      echo "$tool: clean ($(grep -E 'SUMMARY' "$root/$build_dir/sanitizer-$tool.log" | tail -n 1 | sed 's/^=* *//'))"
    else
      tail -n 30 "$root/$build_dir/sanitizer-$tool.log"
      fail "compute-sanitizer --tool $tool (log $build_dir/sanitizer-$tool.log)"
    fi
  done
  if [ $samples = ON ]; then
    if "$sanitizer" --tool memcheck --error-exitcode 9 "$root/$build_dir/bin/mmsb-sample-heat" --gpu --size 256 \
         --band-rows 16 --steps 20 --quiet > "$root/$build_dir/sanitizer-heat.log" 2>&1; then
      echo "memcheck of mmsb-sample-heat --gpu: clean"
    else
      tail -n 30 "$root/$build_dir/sanitizer-heat.log"
      fail "compute-sanitizer --tool memcheck mmsb-sample-heat (log $build_dir/sanitizer-heat.log)"
    fi
  fi
fi

section "bench: gpu_apply, gpu_diff (--workload all --repeat $repeat)"
: > "$jsonl"
"$root/$build_dir/bench/mmsb-bench" --only gpu_apply,gpu_diff --workload all --repeat "$repeat" > "$jsonl" ||
  fail "mmsb-bench (a bench saw a wrong result)"
cat "$jsonl"
if grep -q '"skipped":true' "$jsonl"; then
  if [ $has_gpu -eq 1 ] && [ $allow_skip -eq 0 ]; then fail "GPU benches skipped although nvidia-smi shows a GPU"
  else echo "gpu-check: GPU benches skipped (no usable device; --allow-skip)"; fi
fi

# How the host's part of a sync scales: W1 and W3 packed on one thread,
# against the default threads above (pack_threads says how many)
# (and, on a machine with more than 8 cores, W1 on 8 of them).
section "bench: gpu_apply W1 and W3 packed on one thread (and W1 on 8)"
for w in W1 W3; do
  "$root/$build_dir/bench/mmsb-bench" --only gpu_apply --workload $w --repeat "$repeat" --pack-threads 1 ||
    fail "mmsb-bench --pack-threads 1"
done > "$out_dir/gpu-bench-threads.jsonl"
if [ "$(nproc)" -gt 8 ]; then
  "$root/$build_dir/bench/mmsb-bench" --only gpu_apply --workload W1 --repeat "$repeat" --pack-threads 8 \
    >> "$out_dir/gpu-bench-threads.jsonl" || fail "mmsb-bench --pack-threads 8"
fi
cat "$out_dir/gpu-bench-threads.jsonl"

# The same W1 pack into ordinary host memory (the CPU path) on this host, on
# the default threads and on one: set against gpu_apply's pack_ms above, it
# tells the host's per-record cost apart from a cost of writing pinned
# staging memory.
section "bench: gpu_apply W1 on the CPU path (pack_ms into ordinary memory)"
for t in 0 1; do
  MMSB_BENCH_GPU_ON_CPU=1 "$root/$build_dir/bench/mmsb-bench" --only gpu_apply --workload W1 --repeat "$repeat" \
    --pack-threads $t || fail "mmsb-bench on the CPU path"
done > "$out_dir/gpu-bench-cpu-path.jsonl"
cat "$out_dir/gpu-bench-cpu-path.jsonl"

if [ $samples = ON ] && [ $has_gpu -eq 1 ]; then
  section "sample: mmsb-sample-heat on the GPU, a larger grid"
  "$root/$build_dir/bin/mmsb-sample-heat" --gpu --size 1024 --band-rows 32 --steps 100 --quiet ||
    fail "mmsb-sample-heat --gpu"
fi
finish
