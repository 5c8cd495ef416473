#!/usr/bin/env bash
# The crash walk-through of samples/README.md, command by command: a bank
# records its run and dies by SIGKILL; mmsb-replay recovers the recording;
# the bank resumes from the recovered state into a new recording and ends
# exactly where a run that never crashed ends. Each command is printed before
# it runs; the script stops with exit status 1 at the first claim that fails.
#
#   samples/crash/walkthrough.sh [--bin DIR] [--replay PATH] [--workdir DIR]
#                                [--crash-at STEP|random] [--keep]
#
#   --bin DIR       where mmsb-sample-crash is (default build/release/bin)
#   --replay PATH   mmsb-replay (default: DIR/mmsb-replay)
#   --workdir DIR   run in DIR (default: a new temporary directory)
#   --crash-at      the step after which the bank kills itself (default 137)
#   --keep          keep the recordings (always kept with --workdir)
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=build/release/bin
replay=""
work=""
crash_at=137
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --replay) replay=$2; shift 2 ;;
    --workdir) work=$2; keep=1; shift 2 ;;
    --crash-at) crash_at=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "walkthrough: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bin=$(cd "$bin" && pwd)
replay=${replay:-$bin/mmsb-replay}
for tool in "$bin/mmsb-sample-crash" "$replay"; do
  [ -x "$tool" ] || { echo "walkthrough: $tool not found; build it first" >&2; exit 2; }
done
replay_dir=$(cd "$(dirname "$replay")" && pwd)
export PATH="$bin:$replay_dir:$PATH"

if [ -z "$work" ]; then work=$(mktemp -d "${TMPDIR:-/tmp}/mmsb-crash-walkthrough.XXXXXX"); fi
mkdir -p "$work"
cd "$work"
rm -rf bank.mmsb bank2.mmsb reference.mmsb
[ "$keep" -eq 1 ] || trap 'cd /; rm -rf "$work"' EXIT
echo "walkthrough: in $work"

failed=0
claim() {  # claim "what" CONDITION...
  local what=$1
  shift
  if "$@"; then echo "  ok: $what"; else echo "  FAILED: $what" >&2; failed=1; fi
}
# show CMD...: prints the command as a user types it, runs it, keeps its
# output in $out and its exit status in $rc.
show() {
  local arg line="$"
  for arg in "$@"; do
    case "$arg" in *[[:space:]]*) line+=" '$arg'" ;; *) line+=" $arg" ;; esac
  done
  printf '\n%s\n' "$line"
  rc=0
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out"
  [ "$rc" -eq 0 ] || echo "(exit status $rc)"
}
is() { [ "$1" = "$2" ]; }
one_of() { local v=$1; shift; for x in "$@"; do [ "$v" = "$x" ] && return 0; done; return 1; }

# 1. Record, and die by SIGKILL after step $crash_at.
show mmsb-sample-crash --steps 200 --record bank.mmsb --crash-at "$crash_at"
claim "the bank was killed by SIGKILL (exit status 137)" is "$rc" 137
durable=$(printf '%s\n' "$out" | sed -n 's/^durable: step [0-9]*, epoch \([0-9]*\)$/\1/p' | tail -n 1)
killed_at=$(printf '%s\n' "$out" | sed -n 's/^crash: SIGKILL at step \([0-9]*\),.*/\1/p')
echo "  (last durable epoch announced before the kill: ${durable:-none})"

# 2. Recover: cut a torn tail if there is one, close the open segment.
show mmsb-replay recover bank.mmsb
claim "recover kept an intact prefix (exit 0: nothing lost, 1: a torn tail was cut)" one_of "$rc" 0 1
show mmsb-replay verify bank.mmsb
claim "the recovered recording verifies" is "$rc" 0
show mmsb-replay info bank.mmsb
claim "info reads it" is "$rc" 0

# 3. Resume from the last complete step, recording into a new directory.
show mmsb-sample-crash --steps 200 --resume bank.mmsb --record bank2.mmsb
claim "the resumed bank ran to the end" is "$rc" 0
resumed_hash=$(printf '%s\n' "$out" | sed -n 's/.*state hash \([0-9a-f]*\);.*/\1/p')
restored_step=$(printf '%s\n' "$out" | sed -n 's/^restored step \([0-9]*\):.*/\1/p')
show mmsb-replay verify bank2.mmsb
claim "the new recording verifies" is "$rc" 0

# 4. Check against a run that never crashed.
show mmsb-sample-crash --steps 200 --record reference.mmsb
claim "the reference run ran to the end" is "$rc" 0
reference_hash=$(printf '%s\n' "$out" | sed -n 's/.*state hash \([0-9a-f]*\);.*/\1/p')
show mmsb-replay compare reference.mmsb bank.mmsb
claim "the recovered recording is a strict prefix of the reference (exit 1, identical up to where it ends)" \
  is "$rc" 1
claim "compare says so" grep -qi prefix <<<"$out"
show mmsb-replay compare --final-only reference.mmsb bank2.mmsb
claim "the resumed run's final state is the reference's" is "$rc" 0
claim "compare says the final states are identical" grep -q "^identical final states" <<<"$out"
claim "both runs print the same final state hash ($reference_hash)" is "$resumed_hash" "$reference_hash"
if [ -n "$killed_at" ] && [ -n "$restored_step" ]; then
  claim "resumed from step $restored_step, at most 10 steps (one flush interval) before the kill at $killed_at" \
    test "$restored_step" -le "$killed_at" -a "$((killed_at - restored_step))" -lt 10
fi

echo
if [ "$failed" -ne 0 ]; then
  echo "walkthrough: FAILED (recordings in $work)" >&2
  trap - EXIT
  exit 1
fi
echo "walkthrough: every claim held"
