#!/usr/bin/env bash
# scripts/repro-check.sh as a CI job uses it: exit 0 for the physics sample and
# for the nondeterminism sample without its switch, exit 1 with the report for
# --nondeterministic (and the recordings kept), 2 for bad usage, 3 when the
# program itself fails or records nothing. mmsb-replay comes from $MMSB_REPLAY (set by ctest).
#
#   repro_check_test.sh SCRIPT PHYSICS NONDETERMINISM
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 SCRIPT PHYSICS NONDETERMINISM" >&2; exit 2; }
script=$1 physics=$2 nondet=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/mmsb-repro-check-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0

# expect CODE NAME ARGS...: runs the script with ARGS, shows its output and
# checks its exit status; the output stays in $work/NAME.out.
expect() {
  local code=$1 name=$2 rc=0
  shift 2
  echo "---- $name: repro-check.sh $* (expect exit $code)"
  "$script" "$@" >"$work/$name.out" 2>&1 || rc=$?
  cat "$work/$name.out"
  if [ "$rc" -ne "$code" ]; then
    echo "FAILED: $name: exit status $rc, expected $code" >&2
    failed=1
  fi
}

expect 0 physics --workdir "$work/physics" "$physics" --steps 120 --print-every 0
[ -z "$(ls -A "$work/physics")" ] || { echo "FAILED: identical runs left recordings behind" >&2; failed=1; }

expect 0 deterministic --workdir "$work/det" "$nondet" --steps 60
expect 1 nondeterministic --workdir "$work/nondet" "$nondet" --steps 60 --nondeterministic
grep -q "bodies" "$work/nondeterministic.out" ||
  { echo "FAILED: the divergence report does not name the page 'bodies'" >&2; failed=1; }
ls -d "$work"/nondet/repro-check.*/run1.mmsb "$work"/nondet/repro-check.*/run2.mmsb >/dev/null 2>&1 ||
  { echo "FAILED: the recordings of the divergent runs were not kept" >&2; failed=1; }

# The gate's other answers.
expect 0 final-only --workdir "$work/final" --final-only "$physics" --steps 30 --print-every 0
expect 2 usage --no-such-option "$physics"
expect 2 no-program
expect 3 program-fails --workdir "$work/fails" "$physics" --rows 0
# A program that ignores --record: said plainly, not "cannot open recording".
expect 3 no-recording --workdir "$work/none" true
grep -q "wrote no recording" "$work/no-recording.out" ||
  { echo "FAILED: a program that records nothing is not named as such" >&2; failed=1; }
# --ignore-range reaches compare: the divergent bytes of 'bodies' ignored
# whole (every page, bytes 0..1 MiB) make the runs identical.
expect 0 ignore-range --workdir "$work/range" --ignore-range '*:0:0x100000' "$nondet" --steps 60 --nondeterministic
expect 2 ignore-range-usage --ignore-range

[ "$failed" -eq 0 ] && echo "repro-check.sh: every expectation held"
exit "$failed"
