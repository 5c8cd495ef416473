#!/usr/bin/env bash
# repro-check.sh: a reproducibility gate for CI. Runs a program twice, each
# time with `--record DIR` appended (a fresh directory per run), and compares
# the two recordings epoch by epoch with `mmsb-replay compare`.
#
#   scripts/repro-check.sh [OPTIONS] [--] PROGRAM [ARGS...]
#
#   scripts/repro-check.sh build/release/bin/mmsb-sample-physics --steps 200
#   scripts/repro-check.sh --ignore-page clock -- ./my_sim --seed 7
#
# Exit status (compare's):
#   0  the two runs recorded identical histories
#   1  they diverged (the report names the first divergent epoch, page and
#      bytes) or one stopped early; the recordings are kept for a closer look
#   2  usage error
#   3  a run failed (its output is shown) or a recording could not be read
#
# Options:
#   --ignore-page NAME   passed to mmsb-replay compare (repeatable): pages that
#                        are allowed to differ, e.g. a wall-clock timestamp
#   --ignore-range PAGE:OFFSET:LENGTH
#                        passed to mmsb-replay compare (repeatable): bytes
#                        allowed to differ ('*' as PAGE: in every page)
#   --final-only         compare only the final states, not every epoch
#   --keep               keep the recordings even when the runs are identical
#   --workdir DIR        put the recordings under DIR (default: a new
#                        directory under ${TMPDIR:-/tmp})
#   -h, --help           this text
#
# mmsb-replay is taken from $MMSB_REPLAY if set, else from PATH, else from
# beside PROGRAM (e.g. build/release/bin/), else from this checkout's
# build/release/bin/ or build/debug/bin/.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die_usage() {
  echo "repro-check: $1 (see $0 --help)" >&2
  exit 2
}

compare_args=()
keep=0
workdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --ignore-page)
      [ $# -ge 2 ] || die_usage "--ignore-page needs a page name"
      compare_args+=(--ignore-page "$2")
      shift 2 ;;
    --ignore-page=*) compare_args+=(--ignore-page "${1#*=}"); shift ;;
    --ignore-range)
      [ $# -ge 2 ] || die_usage "--ignore-range needs PAGE:OFFSET:LENGTH"
      compare_args+=(--ignore-range "$2")
      shift 2 ;;
    --ignore-range=*) compare_args+=(--ignore-range "${1#*=}"); shift ;;
    --final-only) compare_args+=(--final-only); shift ;;
    --keep) keep=1; shift ;;
    --workdir)
      [ $# -ge 2 ] || die_usage "--workdir needs a directory"
      workdir=$2
      shift 2 ;;
    --workdir=*) workdir=${1#*=}; shift ;;
    --) shift; break ;;
    -*) die_usage "unknown option '$1'" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || die_usage "no PROGRAM given"
program=$1
shift

# Resolve PROGRAM like the shell would, to find mmsb-replay beside it.
if [[ "$program" != */* ]]; then
  program_path=$(command -v -- "$program" || true)
  [ -n "$program_path" ] || { echo "repro-check: '$program' is not a command on PATH" >&2; exit 3; }
else
  program_path=$program
  [ -x "$program_path" ] || { echo "repro-check: '$program' is not an executable file" >&2; exit 3; }
fi

find_replay() {
  local here candidate
  if [ -n "${MMSB_REPLAY:-}" ]; then
    [ -x "$MMSB_REPLAY" ] || { echo "repro-check: MMSB_REPLAY=$MMSB_REPLAY is not executable" >&2; exit 3; }
    echo "$MMSB_REPLAY"
    return
  fi
  if candidate=$(command -v mmsb-replay); then echo "$candidate"; return; fi
  here=$(cd "$(dirname "$0")/.." && pwd)
  for candidate in "$(dirname "$program_path")/mmsb-replay" "$here/build/release/bin/mmsb-replay" \
    "$here/build/debug/bin/mmsb-replay"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
  echo "repro-check: mmsb-replay not found: put it on PATH, set MMSB_REPLAY, or build it" \
    "(cmake --build --preset release --target mmsb_replay_cli)" >&2
  exit 3
}
replay=$(find_replay)

if [ -n "$workdir" ]; then
  mkdir -p "$workdir"
  work=$(mktemp -d "$workdir/repro-check.XXXXXX")
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/repro-check.XXXXXX")
fi
cleanup() { rm -rf "$work"; }

# run N: one run of the program into $work/runN.mmsb, its output in runN.log.
args=("$@")
run() {
  local n=$1 dir=$work/run$1.mmsb log=$work/run$1.log start=$SECONDS rc=0
  echo "repro-check: run $n: $program ${args[*]} --record $dir"
  "$program" ${args[@]+"${args[@]}"} --record "$dir" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "repro-check: run $n failed with exit status $rc; the last lines of its output ($log):" >&2
    tail -n 20 "$log" >&2
    echo "repro-check: recordings and logs kept in $work" >&2
    exit 3
  fi
  if [ ! -d "$dir" ]; then
    echo "repro-check: run $n exited 0 but wrote no recording at $dir: does $program take --record DIR" \
      "and record into it (mmsb::capture::Recorder)? Its output is in $log" >&2
    exit 3
  fi
  echo "repro-check: run $n finished in $((SECONDS - start)) s"
}
run 1
run 2

echo "repro-check: $replay compare${compare_args[*]:+ ${compare_args[*]}} run1.mmsb run2.mmsb"
rc=0  # compare's exit status (pipefail: tee's is 0)
"$replay" compare ${compare_args[@]+"${compare_args[@]}"} "$work/run1.mmsb" "$work/run2.mmsb" |
  tee "$work/compare.txt" || rc=$?
case "$rc" in
  0)
    if [ "$keep" -eq 1 ]; then
      echo "repro-check: REPRODUCIBLE -- the recordings are kept in $work"
    else
      cleanup
      echo "repro-check: REPRODUCIBLE -- two runs recorded identical histories"
    fi ;;
  1)
    echo "repro-check: NOT REPRODUCIBLE -- the recordings are kept for a closer look:" >&2
    echo "  $work/run1.mmsb  $work/run2.mmsb  (outputs: run1.log, run2.log; report: compare.txt)" >&2
    # "diverged at epoch E: page P 'NAME', ...": suggest where to look next.
    epoch=$(sed -n 's/^diverged at epoch \([0-9]*\): page \([0-9]*\).*/\1/p' "$work/compare.txt" | head -n 1)
    page=$(sed -n 's/^diverged at epoch [0-9]*: page \([0-9]*\).*/\1/p' "$work/compare.txt" | head -n 1)
    if [ -n "$epoch" ] && [ -n "$page" ] && [ "$epoch" -gt 0 ]; then
      echo "  what the divergent step did in run 1:  $replay log $work/run1.mmsb --from $((epoch > 3 ? epoch - 3 : 1)) --to $epoch" >&2
      echo "  the page's change in each run:         $replay diff $work/run1.mmsb $((epoch - 1)) $epoch --page $page" >&2
      echo "                                         $replay diff $work/run2.mmsb $((epoch - 1)) $epoch --page $page" >&2
    fi ;;
  2)
    echo "repro-check: mmsb-replay compare refused its arguments (see above); recordings kept in $work" >&2 ;;
  *)
    echo "repro-check: mmsb-replay compare failed (exit status $rc); recordings kept in $work" >&2
    rc=3 ;;
esac
exit "$rc"
