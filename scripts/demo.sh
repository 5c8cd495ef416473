#!/usr/bin/env bash
# MMSB's demo: installs the dependencies (scripts/install-deps.sh), builds what
# the demo needs with the release preset and runs the engine tour sample
# (samples/engine_tour), which prints every delta as the bus applies it and
# records the run into build/demo.mmsb (a fresh recording each time).
#
#   scripts/demo.sh               four simulation steps
#   scripts/demo.sh --steps 10    arguments go to mmsb-sample-tour
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || set -- --steps 4
recording=build/demo.mmsb
rm -rf "$recording"
set -- "$@" --record "$recording"
sample=build/release/bin/mmsb-sample-tour
log=build/demo-build.log

scripts/install-deps.sh
mkdir -p build
echo "demo: building mmsb-sample-tour (release preset; log in $log)..."
if ! { cmake --preset release && cmake --build --preset release -j"$(nproc)" --target mmsb-sample-tour; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "demo: the build failed; the whole log is $log" >&2
  exit 1
fi

echo "demo: $sample $*"
echo
"$sample" "$@"
cat <<EOT

What happened: the application wrote pages with Bus::write and Bus::assign
(assign diffs its copy against the page, so only changed bytes become a delta);
each delta advanced the page's version and the bus's epoch; the dependency
re-derived 'summary', its delta carrying the epoch that caused it; the CPU
mirror caught up from the in-memory TLog and hashed equal to the bus.
A recorder thread wrote every delta to $recording: zstd-compressed
FlatBuffers frames in seg-*.tlog files (docs/FORMAT.md), e.g.
  ls -l $recording
Source: samples/engine_tour/main.cc. Tests: scripts/test.sh.
EOT
ls -l "$recording"
