#!/usr/bin/env bash
# The nondeterminism walk-through of samples/README.md, command by command:
# two runs with --nondeterministic, `mmsb-replay compare` names the first
# divergent epoch, page and bytes, and three more questions lead from there to
# the line of code. Each command is printed before it runs; the script exits
# with status 1 if a claim the README makes does not hold.
#
#   samples/nondeterminism/walkthrough.sh [--bin DIR] [--replay PATH] [--workdir DIR] [--keep]
#
#   --bin DIR       where mmsb-sample-nondeterminism is (default build/release/bin)
#   --replay PATH   mmsb-replay (default: DIR/mmsb-replay)
#   --workdir DIR   run in DIR (default: a new temporary directory)
#   --keep          keep the recordings (always kept with --workdir)
set -euo pipefail
cd "$(dirname "$0")/../.."
source=$PWD/samples/nondeterminism/main.cc

bin=build/release/bin
replay=""
work=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --replay) replay=$2; shift 2 ;;
    --workdir) work=$2; keep=1; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "walkthrough: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
bin=$(cd "$bin" && pwd)
replay=${replay:-$bin/mmsb-replay}
for tool in "$bin/mmsb-sample-nondeterminism" "$replay"; do
  [ -x "$tool" ] || { echo "walkthrough: $tool not found; build it first" >&2; exit 2; }
done
export PATH="$bin:$(cd "$(dirname "$replay")" && pwd):$PATH"

if [ -z "$work" ]; then work=$(mktemp -d "${TMPDIR:-/tmp}/mmsb-nondeterminism-walkthrough.XXXXXX"); fi
mkdir -p "$work"
cd "$work"
rm -rf a.mmsb b.mmsb
[ "$keep" -eq 1 ] || trap 'cd /; rm -rf "$work"' EXIT
echo "walkthrough: in $work"

failed=0
claim() {
  local what=$1
  shift
  if "$@"; then echo "  ok: $what"; else echo "  FAILED: $what" >&2; failed=1; fi
}
# show CMD...: prints the command, runs it; output in $out (the first
# $lines lines are printed), exit status in $rc.
lines=1000
show() {
  local arg line="$"
  for arg in "$@"; do
    case "$arg" in *[[:space:]]*) line+=" '$arg'" ;; *) line+=" $arg" ;; esac
  done
  printf '\n%s\n' "$line"
  rc=0
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | head -n "$lines"
  [ "$(printf '%s\n' "$out" | wc -l)" -le "$lines" ] || echo "  ..."
  [ "$rc" -eq 0 ] || echo "(exit status $rc)"
}
is() { [ "$1" = "$2" ]; }
# The step number at the start of the 'world' page at an epoch.
world_step() { mmsb-replay cat "$1" world --epoch "$2" --length 8 --raw | od -An -t u8 | tr -d ' '; }

# 1. Two runs of the same program with the same arguments.
show mmsb-sample-nondeterminism --nondeterministic --record a.mmsb
claim "run A completed" is "$rc" 0
storm=$(printf '%s\n' "$out" | sed -n 's/^step \([0-9]*\): the storm begins.*/\1/p')
show mmsb-sample-nondeterminism --nondeterministic --record b.mmsb
claim "run B completed" is "$rc" 0

# 2. Where do they part? The first divergent epoch, page and bytes.
lines=8
show mmsb-replay compare a.mmsb b.mmsb
lines=1000
claim "compare reports a divergence (exit 1)" is "$rc" 1
epoch=$(printf '%s\n' "$out" | sed -n "s/^diverged at epoch \([0-9]*\): page [0-9]* 'bodies'.*/\1/p")
claim "the first divergent page is 'bodies'" test -n "$epoch"
[ -n "$epoch" ] || { echo "walkthrough: FAILED" >&2; exit 1; }

# 3. When is that? The step number in 'world' just before the divergent delta
#    ('world' is written last in a step, so this is the step that completed).
show mmsb-replay cat a.mmsb world --epoch $((epoch - 1))
claim "before epoch $epoch both runs completed step $((storm - 1)), the last step before the storm" \
  is "$(world_step a.mmsb $((epoch - 1))):$(world_step b.mmsb $((epoch - 1)))" "$((storm - 1)):$((storm - 1))"

# 4. What differs besides the bodies? Ignore the effects to find the cause.
show mmsb-replay compare --ignore-page bodies --ignore-page summary a.mmsb b.mmsb
claim "with 'bodies' and 'summary' ignored, the first difference is in 'world'" \
  grep -q "page [0-9]* 'world'" <<<"$out"
claim "... at offset 16: WorldHeader::wind_x and wind_y" grep -q "offset 1[6-9]\|offset 2[0-3]" <<<"$out"

# 5. Where does the wind come from?
show grep -n -A 4 "// THE BUG" "$source"
claim "the source marks the line" is "$rc" 0

echo
if [ "$failed" -ne 0 ]; then
  echo "walkthrough: FAILED (recordings in $work)" >&2
  trap - EXIT
  exit 1
fi
echo "walkthrough: every claim held"
