#!/usr/bin/env bash
# MMSB's demo: installs the dependencies (scripts/install-deps.sh), builds what
# the demo needs with the release preset, runs the physics sample
# (samples/physics: a Box2D pyramid knocked over by a wrecking ball, every
# body's state in bus pages) and records it into build/demo.mmsb (a fresh
# recording each time). Then it looks at the recording with mmsb-replay:
# verify, info, and what changed between two epochs.
#
#   scripts/demo.sh               300 physics steps (5 simulated seconds)
#   scripts/demo.sh --steps 600   arguments go to mmsb-sample-physics
set -euo pipefail
cd "$(dirname "$0")/.."

recording=build/demo.mmsb
rm -rf "$recording"
set -- "$@" --record "$recording"
bin=build/release/bin
sample=$bin/mmsb-sample-physics
replay=$bin/mmsb-replay
inspector=$bin/mmsb-inspector
log=build/demo-build.log

scripts/install-deps.sh
mkdir -p build
echo "demo: building mmsb-sample-physics and mmsb-replay (release preset; log in $log)..."
if ! { cmake --preset release && cmake --build --preset release -j"$(nproc)" --target bin/mmsb-sample-physics bin/mmsb-replay; } \
  >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "demo: the build failed; the whole log is $log" >&2
  exit 1
fi
# The inspector is a UI (GLFW + OpenGL): built when the build has it, never needed.
if ninja -C build/release -t query bin/mmsb-inspector >/dev/null 2>&1; then
  cmake --build --preset release -j"$(nproc)" --target bin/mmsb-inspector >>"$log" 2>&1 || true
fi

# run "what it shows" CMD...: prints the command, then runs it.
run() {
  printf '\n==== %s\n$ %s\n' "$1" "${*:2}"
  "${@:2}"
}

out=build/demo-physics.txt
run "the physics sample, recording every delta" "$sample" "$@" | tee "$out"
run "check every frame, delta and snapshot of the recording" "$replay" verify "$recording"
run "what the recording holds" "$replay" info "$recording"

# Two epochs to compare: the ends of the 2nd and 3rd steps the sample printed
# (by default steps 60 and 90: the wrecking ball, launched at step 60, hits the
# pyramid in between).
mapfile -t epochs < <(sed -n 's/^step *[0-9]*  t=.*  epoch *\([0-9]*\) .*/\1/p' "$out" | sed -n '2,3p')
a=${epochs[0]:-start} b=${epochs[1]:-last}
run "what the dependency changed in 'regions' between epochs $a and $b (16 bytes per 5 m strip of ground, region i at offset 16*i: bodies, moving bodies, kinetic energy, highest point)" \
  "$replay" diff "$recording" "$a" "$b" --page regions
printf '\n==== the first bodies that moved between epochs %s and %s (24 bytes per body: x y angle vx vy omega)\n' "$a" "$b"
echo "\$ $replay diff $recording $a $b --page bodies | head -n 8"
"$replay" diff "$recording" "$a" "$b" --page bodies | head -n 8 || true

cat <<EOT

What happened: after every Box2D step the sample copied each body's position
and velocity into its own buffer and handed it to Bus::assign, which diffed it
against the 'bodies' page so only the bytes that changed became a delta; the
dependency graph re-derived 'regions' from 'bodies', each derived delta naming
the epoch that caused it ($replay deps $recording EPOCH). A recorder
thread wrote every delta to $recording (docs/FORMAT.md).

Next:
  $replay log $recording --page world --limit 5     deltas, one line each
  $replay cat $recording bodies --epoch $b          a page at any epoch
  scripts/repro-check.sh $sample                    two runs, identical histories?
EOT
if [ -x "$inspector" ]; then
  echo "  $inspector $recording          the timeline UI (needs a display)"
else
  echo "  mmsb-inspector $recording      the timeline UI (cmake --build --preset release builds it)"
fi
echo "Sources: samples/physics/main.cc; the other samples: samples/README.md."
