#!/usr/bin/env bash
# mmsb-replay tests: one case per run, against the installed binary.
#
#   cli_test.sh CASE MMSB_REPLAY FIXTURE WORKDIR
#
# Recordings come from FIXTURE (tests/cli/make_recording.cc), whose script is
# known by hand: every expected value below is computed from that script (see
# the table at the top of make_recording.cc), or taken from an independent
# source -- a live bus replaying the script (`FIXTURE page`) or the reader of
# tests/tlog_reader.h (`FIXTURE cut`, `FIXTURE last-epoch`) -- never from
# mmsb-replay itself. Uses bash, coreutils, grep, diff and od only.
set -u

CASE=$1
BIN=$2
FIX=$3
WORK=$4

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK" || exit 1

LAST=""
RC=0

fail() {
  {
    echo "FAIL [$CASE]: $*"
    echo "  last command: $LAST (exit $RC)"
    echo "  --- stdout ---"
    head -c 4000 out.txt 2>/dev/null
    echo "  --- stderr ---"
    head -c 4000 err.txt 2>/dev/null
  } >&2
  exit 1
}

# run ARGS...: mmsb-replay ARGS, stdout in out.txt, stderr in err.txt, exit code in RC.
run() {
  LAST="mmsb-replay $*"
  "$BIN" "$@" >out.txt 2>err.txt
  RC=$?
  # In sanitizer builds a report would otherwise pass for exit code 1.
  ! grep -qE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:' err.txt || fail "sanitizer report"
}
rc_is() { [ "$RC" -eq "$1" ] || fail "expected exit $1"; }
out_has() { grep -qF -- "$1" out.txt || fail "stdout lacks: $1"; }
out_lacks() { ! grep -qF -- "$1" out.txt || fail "stdout has: $1"; }
err_has() { grep -qF -- "$1" err.txt || fail "stderr lacks: $1"; }
err_empty() { [ ! -s err.txt ] || fail "stderr is not empty"; }
json_ok() { "$FIX" json-check <out.txt || fail "stdout is not one well-formed JSON document"; }
# out_is FILE: stdout equals FILE exactly.
out_is() { diff -u "$1" out.txt >diff.txt || { cat diff.txt >&2; fail "stdout differs from $1"; }; }
fixture() { "$FIX" "$@" || fail "fixture failed: $*"; }
# hex of a file, no spaces or newlines
hexof() { od -An -v -tx1 "$1" | tr -d ' \n'; }

# The scripted recording (epochs 1..12, no random steps).
make_rec() { fixture record "$@"; }

case_help() {
  run --help
  rc_is 0
  for s in info log cat diff deps verify compare recover export; do out_has "$s"; done
  out_has "Exit codes:"
  out_has "2  usage"
  out_has "3  missing, unreadable or corrupt input"
  for s in info log cat diff deps verify compare recover export; do
    run "$s" --help
    rc_is 0
    out_has "Example:"
    out_has "mmsb-replay $s "
    out_has "--json"
  done
  run --version
  rc_is 0
  out_has "mmsb-replay "
}

case_usage() {
  make_rec rec
  run
  rc_is 2
  err_has "mmsb-replay:"
  run frobnicate rec
  rc_is 2
  err_has "unknown command 'frobnicate'"
  err_has "info, log, cat, diff, deps, verify, compare, recover, export"
  run info
  rc_is 2
  run info rec --no-such-flag
  rc_is 2
  run cat rec
  rc_is 2
  # Epochs outside the recording, or not epochs at all: usage, naming the range.
  run cat rec alpha --epoch 13
  rc_is 2
  err_has "outside 0..12"
  err_has "the recording has epochs 0..12"
  run cat rec alpha --epoch abc
  rc_is 2
  err_has "'abc' is not an epoch"
  run diff rec 0 99
  rc_is 2
  run log rec --from 7 --to 3
  rc_is 2
  run deps rec 0
  rc_is 2
  run deps rec start
  rc_is 2
  err_has "deps needs a delta's epoch (first..last = 1..12); epoch 0 is the state before the first delta"
  run deps rec 99999
  rc_is 2
  err_has "deps needs a delta's epoch (first..last = 1..12); epoch 99999 is past the last delta"
  # Numbers that are not counts, empty epochs and paths, flags that conflict:
  # usage errors that echo what was typed.
  run cat rec alpha --offset -1
  rc_is 2
  err_has "'-1' is not a byte offset or count (decimal, or hex with 0x)"
  run cat rec alpha --length -1
  rc_is 2
  run cat rec alpha --offset 0xg1
  rc_is 2
  err_has "'0xg1' is not a byte offset or count"
  run cat rec alpha --offset 0x
  rc_is 2
  run log rec --limit -1
  rc_is 2
  err_has "'-1' is not a whole number >= 0"
  run cat rec alpha --epoch ""
  rc_is 2
  err_has "an epoch cannot be empty"
  run log rec --to ""
  rc_is 2
  run export rec ""
  rc_is 2
  err_has "the export directory cannot be empty"
  # An empty recording path is a usage error too, for every command.
  # ('.' in each line stands for the empty argument)
  for args in "info ." "log ." "cat . alpha" "diff . 0 1" "deps . 1" "verify ." "recover ." "export . out" \
    "compare . rec" "compare rec ."; do
    # shellcheck disable=SC2086
    set -- $args
    run "${@/#./}"
    rc_is 2
    err_has "a recording path cannot be empty"
  done
  run diff rec "" 1
  rc_is 2
  err_has "an epoch cannot be empty"
  run cat rec alpha --raw --json
  rc_is 2
  err_has "excludes"
  run cat rec alpha --raw -o raw.bin
  rc_is 2
  [ ! -e raw.bin ] || fail "cat --raw -o wrote its file"
  run export rec out --epoch 100
  rc_is 2
  # Pages the recording does not have (or not yet).
  run cat rec nosuch
  rc_is 2
  err_has "no page named 'nosuch'"
  run cat rec 5
  rc_is 2
  err_has "pages 0..4"
  run cat rec 4 --epoch 6
  rc_is 2
  err_has "does not exist at epoch 6"
  run cat rec alpha --id
  rc_is 2
  run cat rec alpha --offset 65
  rc_is 2
  run cat rec alpha --offset 60 --length 5
  rc_is 2
  run compare rec rec --ignore-range alpha:1
  rc_is 2
  run compare rec rec --ignore-page nosuch
  rc_is 2
}

case_missing() {
  for s in info log verify recover "cat . alpha" "diff . 0 1" "deps . 1" "export . out"; do
    read -r cmd rest <<<"$s"
    # shellcheck disable=SC2086
    run "$cmd" nowhere ${rest#.}
    rc_is 3
    err_has "nowhere"
  done
  run compare nowhere nowhere2
  rc_is 3
  err_has "nowhere"
  mkdir empty
  run info empty
  rc_is 3
  err_has "empty"
  err_has "a recording is a directory of seg-NNNNNN.tlog files"
  echo "not a recording" >afile
  for cmd in verify info recover; do
    run $cmd afile
    rc_is 3
    err_has "afile is not a recording directory (it is a file)"
    err_has "a recording is a directory of seg-NNNNNN.tlog files"
  done
  # A directory with a segment of garbage: nothing readable from the start,
  # and recover leaves the file alone.
  mkdir junk
  head -c 4096 /dev/zero >junk/seg-000000.tlog
  run info junk
  rc_is 3
  err_has "junk"
  err_has "cannot be read from its start"
  run verify junk
  rc_is 3
  err_has "cannot be read from its start"
  run recover junk
  rc_is 3
  cmp -s junk/seg-000000.tlog <(head -c 4096 /dev/zero) && [ "$(ls junk)" = seg-000000.tlog ] ||
    fail "recover changed or moved an unreadable segment"
  # export into something that is not a directory
  make_rec rec
  run export rec afile
  rc_is 2
  err_has "afile exists and is not a directory"
}

case_info() {
  make_rec rec
  run info rec
  rc_is 0
  err_empty
  out_has "format      1.1"
  out_has "program     mmsb_cli_fixture"
  out_has "labels      steps=0 test=cli"
  out_has "epochs      start 0, first 1, last 12"
  out_has "deltas      12"
  out_has "pages       5"
  out_has "damage      none"
  grep -qE '^started     [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' out.txt || fail "no ISO 8601 start time"
  grep -qE '^  seg-000000\.tlog  [0-9]+ B  closed  epochs 1\.\.12$' out.txt || fail "segment line"
  run info rec --pages
  rc_is 0
  grep -qE '^  0 +64 +0  alpha$' out.txt || fail "page 0"
  grep -qE '^  1 +100 +0  beta$' out.txt || fail "page 1"
  grep -qE '^  2 +8 +0  sum$' out.txt || fail "page 2"
  grep -qE '^  3 +2 +0  check$' out.txt || fail "page 3"
  grep -qE '^  4 +16 +7  $' out.txt || fail "page 4 (unnamed, created at epoch 7)"
  run info rec --json
  rc_is 0
  json_ok
  out_has '"format":"1.1"'
  out_has '"program":"mmsb_cli_fixture"'
  out_has '"labels":{"steps":"0","test":"cli"}'
  out_has '"start_epoch":0,"first_epoch":1,"last_epoch":12,"deltas":12'
  out_has '"page_count":5'
  out_has '{"id":4,"name":"","size":16,"created":7}'
  out_has '"damage":null'
}

case_log() {
  make_rec rec
  run log rec
  rc_is 0
  err_empty
  cat >want.txt <<'EOF'
epoch 1  page 0 'alpha'  v1  0+5
epoch 2  page 2 'sum'  v1  0+2  cause 1
epoch 3  page 3 'check'  v1  0+2  cause 2
epoch 4  page 1 'beta'  v1  10+4
epoch 5  page 0 'alpha'  v2  16+16
epoch 6  page 2 'sum'  v2  0+1  cause 5
epoch 7  page 3 'check'  v2  0+1  cause 6
epoch 8  page 4  v1  0+4
epoch 9  page 1 'beta'  v2  99+1
epoch 10  page 0 'alpha'  v3  0+5
epoch 11  page 2 'sum'  v3  0+2  cause 10
epoch 12  page 3 'check'  v3  0+2  cause 11
EOF
  out_is want.txt
  run log rec --page alpha
  rc_is 0
  grep 'alpha' want.txt >want-alpha.txt
  out_is want-alpha.txt
  run log rec --page alpha --page 1
  rc_is 0
  grep -E "'(alpha|beta)'" want.txt >want-ab.txt
  out_is want-ab.txt
  run log --page alpha rec  # a repeatable option takes one value, not DIR too
  rc_is 0
  out_is want-alpha.txt
  run log rec --from 4 --to 7
  rc_is 0
  sed -n 4,7p want.txt >want-4-7.txt
  out_is want-4-7.txt
  run log rec --derived-only
  rc_is 0
  grep cause want.txt >want-derived.txt
  out_is want-derived.txt
  run log rec --limit 2
  rc_is 0
  head -2 want.txt >want-2.txt
  out_is want-2.txt
  run log rec --bytes --from 4 --to 5
  rc_is 0
  cat >want-bytes.txt <<'EOF'
epoch 4  page 1 'beta'  v1  10+4
    10: aa bb cc dd
epoch 5  page 0 'alpha'  v2  16+16
    16: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
EOF
  out_is want-bytes.txt
  run log rec --json --bytes --page sum
  rc_is 0
  json_ok
  out_has '{"epoch":2,"page":2,"name":"sum","version":1,"cause":1,"ranges":[{"offset":0,"length":2,"bytes":"1402"}]}'
  out_has '{"epoch":6,"page":2,"name":"sum","version":2,"cause":5,"ranges":[{"offset":0,"length":1,"bytes":"8c"}]}'
  out_has '"count":3,"truncated":false'
  run log rec --json --limit 1
  rc_is 0
  json_ok
  out_has '"cause":null'
  out_has '"count":1,"truncated":true'
  # A delta of many ranges stays one short line; --bytes lists every range,
  # and a long range 16 bytes a line, as diff does.
  make_rec comb --comb 1 --wide 40
  run log comb --from 13
  rc_is 0
  out_has "epoch 13  page 5 'wide'  v1  0+40"
  out_has "epoch 14  page 6 'comb'  v1  0+1 4+1 8+1 12+1 16+1 20+1 24+1 28+1 (+8 more)"
  run log comb --from 13 --bytes
  rc_is 0
  local wide
  wide=$("$FIX" page wide 13 --wide 40 | sed 's/../& /g')  # "aa bb .. " 40 bytes
  {
    echo "epoch 13  page 5 'wide'  v1  0+40"
    echo "    0: ${wide:0:47}"
    echo "    16: ${wide:48:47}"
    echo "    32: ${wide:96:23}"
    echo "epoch 14  page 6 'comb'  v1  0+1 4+1 8+1 12+1 16+1 20+1 24+1 28+1 (+8 more)"
    for o in 0 4 8 12 16 20 24 28 32 36 40 44 48 52 56 60; do echo "    $o: c0"; done
  } >want-comb.txt
  out_is want-comb.txt
}

case_cat() {
  make_rec rec
  run cat rec alpha --epoch 5
  rc_is 0
  err_empty
  cat >want5.txt <<'EOF'
00000000  68 65 6c 6c 6f 00 00 00  00 00 00 00 00 00 00 00  |hello...........|
00000010  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|
00000020  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
00000030  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
EOF
  out_is want5.txt
  # By id, and the default epoch (last = 12): HELLO.
  run cat rec 0
  rc_is 0
  sed 's/68 65 6c 6c 6f/48 45 4c 4c 4f/; s/|hello/|HELLO/' want5.txt >want12.txt
  out_is want12.txt
  run cat rec alpha --epoch last --offset 16 --length 20
  rc_is 0
  cat >want-range.txt <<'EOF'
00000010  00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f  |................|
00000020  00 00 00 00                                       |....|
EOF
  out_is want-range.txt
  run cat rec alpha --epoch last --offset 0x10 --length 0X14  # hex, as the dump prints offsets
  rc_is 0
  out_is want-range.txt
  run cat rec 4 --epoch 8
  rc_is 0
  echo "00000000  4d 4d 53 42 00 00 00 00  00 00 00 00 00 00 00 00  |MMSB............|" >want-4.txt
  out_is want-4.txt
  # Raw bytes, to stdout and to a file, against a live bus running the script.
  for spec in "sum 2" "sum 6" "sum 11" "check 3" "check 7" "check 12" "beta 9" "4 8" "alpha 10"; do
    read -r page epoch <<<"$spec"
    want=$("$FIX" page "$page" "$epoch") || fail "fixture page $page $epoch"
    run cat rec "$page" --epoch "$epoch" --raw
    rc_is 0
    [ "$(hexof out.txt)" = "$want" ] || fail "cat $page --epoch $epoch --raw: $(hexof out.txt), want $want"
    run cat rec "$page" --epoch "$epoch" -o page.bin
    rc_is 0
    [ "$(hexof page.bin)" = "$want" ] || fail "cat -o: $(hexof page.bin), want $want"
  done
  run cat rec check --epoch 3 --json
  rc_is 0
  json_ok
  out_has '{"epoch":3,"page":3,"name":"check","version":1,"size":2,"offset":0,"length":2,"bytes":"1402"}'
  # start / first keywords: epoch 0 is all zeros at version 0.
  run cat rec sum --epoch start --json
  rc_is 0
  out_has '"epoch":0,"page":2,"name":"sum","version":0,"size":8,"offset":0,"length":8,"bytes":"0000000000000000"'
}

# A longer random run: every page at sampled epochs against a live bus.
case_cat-random() {
  make_rec rec --steps 400 --seed 7 --batch 16 --snapshot-every 50
  for epoch in 12 13 50 99 100 101 250 333 400 412; do
    for page in alpha beta sum check 4; do
      want=$("$FIX" page "$page" "$epoch" --steps 400 --seed 7) || fail "fixture page"
      run cat rec "$page" --epoch "$epoch" --raw
      rc_is 0
      [ "$(hexof out.txt)" = "$want" ] || fail "cat $page --epoch $epoch: $(hexof out.txt), want $want"
    done
  done
}

case_diff() {
  make_rec rec
  run diff rec 4 10
  rc_is 0
  err_empty
  cat >want.txt <<'EOF'
page 0 'alpha'  v1 -> v3, 2 range(s)
  offset 0: 68 65 6c 6c 6f -> 48 45 4c 4c 4f
  offset 17: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 -> 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
page 1 'beta'  v1 -> v2, 1 range(s)
  offset 99: 00 -> 01
page 2 'sum'  v1 -> v2, 1 range(s)
  offset 0: 14 -> 8c
page 3 'check'  v1 -> v2, 1 range(s)
  offset 0: 14 -> 8c
page 4 (created at epoch 7)  v0 -> v1, 1 range(s)
  offset 0: 00 00 00 00 -> 4d 4d 53 42
5 page(s) differ between epochs 4 and 10: 27 byte(s) in 6 range(s)
EOF
  out_is want.txt
  run diff rec 4 10 --page sum
  rc_is 0
  sed -n '6,7p' want.txt >want-sum.txt
  echo "1 page(s) differ between epochs 4 and 10: 1 byte(s) in 1 range(s)" >>want-sum.txt
  out_is want-sum.txt
  run diff rec 9 9
  rc_is 0
  out_has "0 page(s) differ between epochs 9 and 9"
  run diff rec 10 4 --page alpha --json
  rc_is 0
  json_ok
  out_has '"from":10,"to":4'
  out_has '{"offset":0,"length":5,"old":"48454c4c4f","new":"68656c6c6f"}'
  out_has '"pages_differing":1,"ranges":2,"bytes":20'
  # --stat: the headers and the totals; in JSON the ranges without bytes.
  run diff rec 4 10 --stat
  rc_is 0
  grep -E '^page|differ between' want.txt >want-stat.txt
  out_is want-stat.txt
  run diff rec 4 10 --json
  rc_is 0
  out_has '"page":4,"name":"","created":true,"created_at":7,"old_version":0'
  out_has '"page":0,"name":"alpha","created":false,"created_at":null,'
  run diff rec 4 10 --json --stat
  rc_is 0
  json_ok
  out_has '{"offset":99,"length":1}'
  out_lacks '"old":'
}

case_deps() {
  make_rec rec
  run deps rec 1
  rc_is 0
  err_empty
  printf "epoch 1  page 0 'alpha'  v1\n  epoch 2  page 2 'sum'  v1\n    epoch 3  page 3 'check'  v1\n" >want1.txt
  out_is want1.txt
  run deps rec 11
  rc_is 0
  printf "epoch 11  page 2 'sum'  v3\n  epoch 12  page 3 'check'  v3\ncause chain: 11 <- 10 (root)\n" >want11.txt
  out_is want11.txt
  run deps rec 12 --root
  rc_is 0
  printf "epoch 12  page 3 'check'  caused by 11\nepoch 11  page 2 'sum'  caused by 10\nepoch 10  page 0 'alpha'  root cause\n" >want-root.txt
  out_is want-root.txt
  run deps rec 4
  rc_is 0
  printf "epoch 4  page 1 'beta'  v1\n" >want4.txt
  out_is want4.txt
  run deps rec 5 --json
  rc_is 0
  json_ok
  out_has '"tree":{"epoch":5,"page":0,"name":"alpha","children":[{"epoch":6,"page":2,"name":"sum","children":[{"epoch":7,"page":3,"name":"check","children":[]}]}]}'
  out_has '"chain":[{"epoch":5,"page":0,"name":"alpha"}],"root":5'
  run deps rec 7 --root --json
  rc_is 0
  json_ok
  out_has '"chain":[{"epoch":7,"page":3,"name":"check"},{"epoch":6,"page":2,"name":"sum"},{"epoch":5,"page":0,"name":"alpha"}],"root":5'
}

case_verify() {
  make_rec rec --steps 300 --batch 16 --segment-bytes 4096 --snapshot-every 100
  local last
  last=$("$FIX" last-epoch rec)  # the random steps to alpha add derived deltas
  run verify rec
  rc_is 0
  err_empty
  grep -qE "^ok: [0-9]+ frames, $last deltas, [0-9]+ snapshots checked\$" out.txt || fail "verify ok line"
  run verify rec --json
  rc_is 0
  json_ok
  out_has '"ok":true'
  out_has "\"deltas\":$last,"
}

case_verify-bitflip() {
  make_rec rec --steps 300 --batch 16 --snapshot-every 100
  # The third delta frame (from the independent reader): flip a bit in the
  # middle of its payload.
  fixture frames rec >frames.txt
  read -r file offset kind first last payload < <(awk '$3 == 3' frames.txt | sed -n 3p)
  [ -n "${payload:-}" ] || fail "no third delta frame"
  last=$("$FIX" last-epoch rec) || fail "fixture last-epoch"
  fixture flip-bit "rec/$file" $((offset + 40 + payload / 2))
  run verify rec
  rc_is 1
  out_has "FAILED:"
  out_has "$file"
  out_has "offset $offset"
  err_has "recover"
  run verify rec --json
  rc_is 1
  json_ok
  out_has '"ok":false'
  out_has "\"offset\":$offset"
  out_has "\"epoch\":$first"
  # The intact part stays readable: the state before the damaged frame, with
  # a warning that names the damage (the segment is closed, so only decoding
  # the deltas finds it).
  want=$("$FIX" page beta $((first - 1)) --steps 300) || fail "fixture page"
  run cat rec beta --epoch $((first - 1)) -o before.bin
  rc_is 0
  [ "$(hexof before.bin)" = "$want" ] || fail "cat before the damage"
  err_has "warning"
  err_has "$file offset $offset"
  err_has "epochs up to $((first - 1)) are readable"
  run cat rec beta --epoch $((first - 1)) -o before.bin -q
  rc_is 0
  err_empty
  # log lists the readable epochs only, and says why.
  run log rec --from $((first - 2)) --json
  rc_is 0
  json_ok
  out_has "\"epoch\":$((first - 1))"
  out_lacks "\"epoch\":$first"
  err_has "$file offset $offset"
  # An epoch past the damage: exit 3 naming file and offset, not a range error.
  for args in "cat rec beta --epoch $first" "diff rec 1 $last" "deps rec $last" "export rec out --epoch $last"; do
    # shellcheck disable=SC2086  # args are words
    run $args
    rc_is 3
    grep -qF -- "lies past damage in 'rec': Corruption: rec/$file offset $offset" err.txt ||
      fail "stderr does not name the damage"
  done
  [ ! -e out ] || fail "export past the damage created its target"
  # 'last' (and no epoch) is the last readable epoch: the state before the
  # damaged frame, with the warning.
  for args in "cat rec beta -o last.bin" "cat rec beta --epoch last -o last.bin"; do
    rm -f last.bin
    # shellcheck disable=SC2086
    run $args
    rc_is 0
    err_has "epochs up to $((first - 1)) are readable"
    [ "$(hexof last.bin)" = "$want" ] || fail "$args: not the state at epoch $((first - 1))"
  done
  run export rec out
  rc_is 0
  out_has "exported epoch $((first - 1)):"
  run diff rec "$((first - 1))" last
  rc_is 0
  out_has "0 page(s) differ between epochs $((first - 1)) and $((first - 1))"
}

case_compare-identical() {
  make_rec a --steps 200
  make_rec b --steps 200
  run compare a b
  rc_is 0
  err_empty
  out_has "identical: "
  out_has "both end at epoch $("$FIX" last-epoch a)"
  run compare a b --json
  rc_is 0
  json_ok
  out_has '"outcome":"identical"'
  run compare a b --final-only
  rc_is 0
  out_has "identical final states: A ends at epoch $("$FIX" last-epoch a), B at epoch $("$FIX" last-epoch b)"
}

case_compare-one-byte() {
  make_rec a
  make_rec b --flip-byte 4  # beta @10: aa -> ab
  run compare a b
  rc_is 1
  out_has "diverged at epoch 4: page 1 'beta', 1 byte(s) in 1 range(s) differ"
  out_has "  offset 10: aa -> ab"
  run compare a b --json
  rc_is 1
  json_ok
  out_has '"outcome":"diverged"'
  out_has '"epoch":4,"page":1,"name":"beta","ranges":[{"offset":10,"length":1,"a":"aa","b":"ab"}]'
  # Later in a long run, alpha's first byte: H (48) -> I (49) at epoch 10.
  make_rec c --steps 500 --seed 3
  make_rec d --steps 500 --seed 3 --flip-byte 10
  run compare c d
  rc_is 1
  out_has "diverged at epoch 10: page 0 'alpha', 1 byte(s) in 1 range(s) differ"
  out_has "  offset 0: 48 -> 49"
  # Only the final states: beta[10] is never written again by the script.
  run compare a b --final-only
  rc_is 1
  out_has "diverged"
  out_has "  offset 10: aa -> ab"
}

case_compare-prefix() {
  make_rec short
  make_rec long --steps 20
  local last
  last=$("$FIX" last-epoch long)
  run compare short long
  rc_is 1
  out_has "prefix: A stops at epoch 12, B goes on to epoch $last; identical up to epoch 12"
  run compare long short --json
  rc_is 1
  json_ok
  out_has '"outcome":"prefix"'
  out_has "\"a_last\":$last,\"b_last\":12"
  out_has '"shorter":"b"'
}

# A run cut short by damage is a prefix, but --json says why, even with -q:
# damage_a/damage_b name the file and offset (null for an intact run).
case_compare-damaged() {
  make_rec a --steps 300 --batch 16
  make_rec b --steps 300 --batch 16
  # A flipped bit in b's third delta frame (closed segment: found while decoding).
  fixture frames b >frames.txt
  read -r file offset kind first last payload < <(awk '$3 == 3' frames.txt | sed -n 3p)
  [ -n "${payload:-}" ] || fail "no third delta frame"
  fixture flip-bit "b/$file" $((offset + 40 + payload / 2))
  run compare a b -q --json
  rc_is 1
  json_ok
  err_empty
  out_has '"outcome":"prefix"'
  out_has "\"b_last\":$((first - 1)),"
  out_has '"damage_a":null'
  out_has "\"damage_b\":\"Corruption: b/$file offset $offset"
  run compare a b -q
  rc_is 1
  out_has "prefix: B stops at epoch $((first - 1)), A goes on"
  out_has "  B is damaged there, not shorter: Corruption: b/$file offset $offset"
  # A torn tail (the writer died mid-frame): A is the damaged one now.
  local want
  fixture frames a >frames-a.txt
  read -r file offset kind first last payload < <(awk '$3 == 3' frames-a.txt | tail -1)
  want=$("$FIX" cut a torn $((offset + 40 + payload / 2))) || fail "fixture cut"
  [ "$want" = $((first - 1)) ] || fail "the cut should end the history at epoch $((first - 1)), not $want"
  run compare torn a -q --json
  rc_is 1
  json_ok
  out_has "\"a_last\":$want,"
  out_has '"damage_a":"Corruption: torn/seg-000000.tlog'
  out_has '"damage_b":null'
  # Cut inside its first frame, A has no page table: the pages 'exist only in
  # B', and the text says A's readable history ends there.
  "$FIX" cut a nopages 72 >/dev/null || fail "fixture cut"
  run compare nopages a -q
  rc_is 1
  out_has "exists only in B"
  out_has "  A is damaged at its epoch 0, where its readable history ends: Corruption: nopages/seg-000000.tlog"
  # A run that is shorter but intact gets no such line.
  make_rec short --steps 100 --batch 16
  run compare short a
  rc_is 1
  out_has "prefix: A stops at epoch"
  out_lacks "damaged there"
  # Intact runs: both null.
  run compare a a --json
  rc_is 0
  out_has '"damage_a":null,"damage_b":null'
}

# A wide difference: the text shows 16 lines of it and says how much is
# left; --json has every byte. The differing bytes are counted here from
# the fixture's live-bus pages.
case_compare-wide() {
  make_rec wa --wide 4096 --seed 1
  make_rec wb --wide 4096 --seed 2
  local ha hb n=0 i
  ha=$(fixture page wide 13 --wide 4096 --seed 1)
  hb=$(fixture page wide 13 --wide 4096 --seed 2)
  for ((i = 0; i < 8192; i += 2)); do [ "${ha:i:2}" = "${hb:i:2}" ] || n=$((n + 1)); done
  [ "$n" -gt 256 ] || fail "only $n bytes differ: the case needs more than 16 lines of them"
  run compare wa wb
  rc_is 1
  out_has "diverged at epoch 13: page 5 'wide', $n byte(s) in"
  [ "$(grep -c '^  offset ' out.txt)" -eq 16 ] || fail "$(grep -c '^  offset ' out.txt) lines of bytes, want 16"
  out_has "  offset 0: ${ha:0:2} ${ha:2:2} "
  # The bytes the 16 lines show (A's side of each), and the rest announced.
  local shown
  shown=$(awk '/^  offset / { sub(/ ->.*/, ""); sub(/^  offset [0-9]+: /, ""); n += split($0, b, " ") } END { print n }' out.txt)
  out_has "... $((n - shown)) more byte(s)"
  out_has "(--json lists them all)"
  out_lacks "also differ"
  run compare wa wb --json
  rc_is 1
  json_ok
  out_has '"also_differ":[]'
  # Every differing byte is listed: the ranges' lengths add up to n.
  local total
  total=$(grep -o '"length":[0-9]*' out.txt | awk -F: '{ n += $2 } END { print n }')
  [ "$total" -eq "$n" ] || fail "--json lists $total differing bytes, want $n"
}

# What compare's text and summary say beyond the bytes: page tables that
# differ, final states of runs of different lengths, separate ranges.
case_compare-summary() {
  make_rec a
  make_rec odd --odd-name 1  # page 5, created at epoch 12, only in this run
  run compare a odd
  rc_is 1
  out_has "diverged at epoch 12: page 5 'q\\x27\"\x0a\xff' is created only in B"
  out_lacks "0 range(s)"
  make_rec long --steps 20
  local last
  last=$("$FIX" last-epoch long)
  run compare a long --final-only
  rc_is 1
  out_has "final states differ (A at epoch 12, B at epoch $last): page 0 'alpha', "
  run compare a long --final-only --json
  rc_is 1
  json_ok
  # The summary gives alpha's first differing run, with its own bytes: those
  # of a live bus at epoch 12 and at B's last epoch, and equal bytes (or the
  # page's end) on both sides of it.
  local re='final states differ \(A at epoch 12, B at epoch [0-9]+\): page 0 .alpha. differs at offset ([0-9]+) \(([0-9]+) byte\(s\)\): A ([0-9a-f]+), B ([0-9a-f]+) \(and [0-9]+ more range\(s\)\)'
  [[ "$(cat out.txt)" =~ $re ]] || fail "summary: no first range and count of the others"
  local off=${BASH_REMATCH[1]} len=${BASH_REMATCH[2]} ha=${BASH_REMATCH[3]} hb=${BASH_REMATCH[4]}
  local pa pb
  pa=$("$FIX" page alpha 12) || fail "fixture page"
  pb=$("$FIX" page alpha "$last" --steps 20) || fail "fixture page"
  [ "$ha" = "${pa:$((2 * off)):$((2 * len))}" ] || fail "summary: A's bytes at $off+$len"
  [ "$hb" = "${pb:$((2 * off)):$((2 * len))}" ] || fail "summary: B's bytes at $off+$len"
  for i in $(seq "$off" $((off + len - 1))); do
    [ "${pa:$((2 * i)):2}" != "${pb:$((2 * i)):2}" ] || fail "summary: byte $i does not differ"
  done
  [ "$off" -eq 0 ] || [ "${pa:$((2 * off - 2)):2}" = "${pb:$((2 * off - 2)):2}" ] || fail "summary: run starts late"
  local end=$((off + len))
  [ "$end" -eq 64 ] || [ "${pa:$((2 * end)):2}" = "${pb:$((2 * end)):2}" ] || fail "summary: run ends early"
}

case_compare-ignore() {
  make_rec a
  make_rec b --flip-byte 4
  run compare a b --ignore-page beta
  rc_is 0
  run compare a b --ignore-page 1
  rc_is 0
  run compare a b --ignore-range beta:10:1
  rc_is 0
  run compare a b --ignore-range 'beta:11:4'
  rc_is 1
  run compare a b --ignore-range '*:8:4'
  rc_is 0
  # Offsets and lengths as cat takes them (0x hex); a range running past the
  # page's end stops there; one starting past it names nothing: exit 2.
  run compare a b --ignore-range beta:0xa:0x1
  rc_is 0
  run compare a b --ignore-range beta:8:4096
  rc_is 0
  run compare a b --ignore-range beta:100:1
  rc_is 2
  err_has "offset 100 is past the end of page 1 'beta' (100 bytes)"
}

case_recover-intact() {
  make_rec rec --steps 100
  local last
  last=$("$FIX" last-epoch rec)
  cp -r rec copy
  run recover rec --dry-run
  rc_is 0
  diff -r rec copy >/dev/null || fail "--dry-run changed the recording"
  out_has "intact: nothing to do; last epoch $last"
  [ "$(wc -l <out.txt)" -eq 1 ] || fail "recover --dry-run of an intact recording: one line"
  run recover rec
  rc_is 0
  echo "intact: nothing to do; last epoch $last" >want.txt
  out_is want.txt
  diff -r rec copy >/dev/null || fail "recover changed an intact recording"
  run recover rec --json
  rc_is 0
  json_ok
  out_has '"outcome":"intact"'
  out_has "\"last_good_epoch\":$last,"
}

# Copies cut at ten seeded random offsets: recover keeps every intact epoch
# before the cut (the independent reader's durable history of the cut copy).
case_recover-cut() {
  make_rec orig --steps 3000 --seed 11 --batch 32 --segment-bytes 32768 --snapshot-every 700
  local total
  total=$(cat orig/seg-*.tlog | wc -c)
  RANDOM=20240501
  for i in 1 2 3 4 5 6 7 8 9 10; do
    local cut=$(((RANDOM * 32768 + RANDOM) % (total - 1) + 1))
    local dir="cut$i"
    local want
    want=$("$FIX" cut orig "$dir" "$cut") || fail "fixture cut"
    run recover "$dir"
    if [ "$want" = "none" ]; then
      rc_is 3
      continue
    fi
    [ "$RC" -eq 0 ] || [ "$RC" -eq 1 ] || fail "recover of a copy cut at byte $cut: exit $RC"
    out_has "last good epoch $want"
    run verify "$dir"
    rc_is 0
    run info "$dir" --json
    rc_is 0
    out_has "\"last_epoch\":$want,"
    [ "$("$FIX" last-epoch "$dir")" = "$want" ] || fail "after recover the reader sees a different history"
    [ "$want" -ge 12 ] || continue  # the later checks need the script's pages
    for page in alpha beta sum check 4; do
      run cat orig "$page" --epoch "$want" --raw
      rc_is 0
      cp out.txt orig.bin
      run cat "$dir" "$page" --epoch "$want" --raw
      rc_is 0
      cmp -s out.txt orig.bin || fail "cut at $cut: page $page at epoch $want differs from the original"
      [ "$(hexof out.txt)" = "$("$FIX" page "$page" "$want" --steps 3000 --seed 11)" ] ||
        fail "cut at $cut: page $page at epoch $want differs from the live bus"
    done
    run recover "$dir"
    rc_is 0
  done
}

# A recording whose last segment is gone (deleted, or not copied): the
# segment before it says more follows, so verify fails and names the missing
# file; recover marks the new end and keeps every epoch the files hold.
case_lost-end() {
  make_rec orig --steps 400 --batch 16 --segment-bytes 4096
  local segs last want
  segs=$(ls orig/seg-*.tlog | wc -l)
  [ "$segs" -ge 3 ] || fail "the recording has $segs segments, the case needs 3"
  last=$(ls orig/seg-*.tlog | tail -n 1)
  cp -r orig rec
  rm "rec/$(basename "$last")"
  want=$("$FIX" last-epoch rec)  # the independent reader's history of what is left
  [ "$want" -lt "$("$FIX" last-epoch orig)" ] || fail "removing the last segment lost no epoch"
  run verify rec
  rc_is 1
  out_has "$(basename "$last") is missing"
  out_has "mmsb-replay recover"
  err_has "copy the missing segment files back"
  run info rec
  rc_is 0
  out_has "last $want"
  out_has "is missing"
  err_has "copy the missing segment files back"
  cp -r rec copy
  run recover rec --dry-run
  rc_is 1
  out_has "would mark "
  diff -r rec copy >/dev/null || fail "--dry-run changed the recording"
  run recover rec
  rc_is 1
  out_has "marked "
  out_has "last good epoch $want"
  run verify rec
  rc_is 0
  [ "$("$FIX" last-epoch rec)" = "$want" ] || fail "after recover the reader sees a different history"
  run cat rec beta --epoch "$want" --raw
  rc_is 0
  [ "$(hexof out.txt)" = "$("$FIX" page beta "$want" --steps 400)" ] || fail "page beta at epoch $want"
  ls rec | grep -qv '\.tlog$' && fail "recover set a file aside"
  run recover rec
  rc_is 0
  # The lost file turns up again: verify names the mark, recover clears it.
  cp "$last" rec/
  run verify rec
  rc_is 1
  out_has "marks it as the recording's last segment"
  run recover rec
  rc_is 0
  out_has "cleared "
  run verify rec
  rc_is 0
  [ "$("$FIX" last-epoch rec)" = "$("$FIX" last-epoch orig)" ] || fail "the restored file's epochs are not read"
}

# A recording whose writer died mid-frame, before recover: read up to the
# intact end, with a warning; verify fails.
case_damaged() {
  make_rec orig --steps 200 --batch 16
  local total want
  total=$(cat orig/seg-*.tlog | wc -c)
  want=$("$FIX" cut orig rec $((total - 100)))  # into the index frame / last delta frame
  run info rec
  rc_is 0
  grep -qE '^damage      .*seg-000000\.tlog' out.txt || fail "no damage line naming the segment"
  err_has "warning"
  err_has "mmsb-replay recover rec"
  out_has "last $want"
  run info rec --json
  rc_is 0
  json_ok
  out_has "\"last_epoch\":$want,"
  out_lacks '"damage":null'
  run cat rec beta --raw
  rc_is 0
  err_has "warning"
  [ "$(hexof out.txt)" = "$("$FIX" page beta "$want" --steps 200)" ] || fail "cat at the intact end"
  run cat rec beta --raw --quiet
  rc_is 0
  err_empty
  run verify rec
  rc_is 1
  out_has "seg-000000.tlog"
  # recover --dry-run says what it would do, in those words, and creates nothing.
  run recover rec --dry-run
  rc_is 1
  out_has "would cut seg-000000.tlog at offset "
  out_has "would close seg-000000.tlog with an index of "
  out_has "  would set aside: rec/seg-000000.tlog.damaged"
  out_lacks "would: "
  [ ! -e rec/seg-000000.tlog.damaged ] || fail "--dry-run created the .damaged file"
  # The torn frame is the index frame (epochs 0): epoch and page unknown.
  run verify rec --json
  rc_is 1
  json_ok
  out_has '"epoch":null,"page":null,"name":null'
  # Cut right before the first delta frame: pages, no deltas.
  fixture frames orig >frames.txt
  local first_delta
  first_delta=$(awk '$3 == 3 {print $2; exit}' frames.txt)
  [ "$("$FIX" cut orig nodeltas "$first_delta")" = 0 ] || fail "fixture cut before the first delta"
  run info nodeltas --json
  rc_is 0
  json_ok
  out_has '"delta_frames":0,"first_epoch":null,"last_epoch":null}'
  out_has '"start_epoch":0,"first_epoch":null,"last_epoch":0,"deltas":0'
}

# A recording that began while the bus was at epoch 4 (it starts from a
# snapshot): its state is known from epoch 4 on.
# A recording whose writer still runs: info and verify say so, recover
# refuses (a torn-looking tail is a frame in flight) and cuts nothing; once
# the writer ends, the recording is whole.
case_live() {
  mkfifo hold
  "$FIX" record live --hold 1 <hold >ready.txt &
  local pid=$! i
  exec 3>hold  # the fixture's stdin: it stops recording at its end
  for i in $(seq 200); do grep -q ready ready.txt && break; sleep 0.05; done
  grep -q ready ready.txt || fail "the fixture never started recording"
  run info live
  rc_is 0
  out_has "writer      running"
  run info live --json
  json_ok
  out_has '"live":true'
  run verify live
  rc_is 1
  out_has "still recording"
  err_has "verify it once the program has ended"
  for args in "" "--dry-run"; do
    # shellcheck disable=SC2086
    run recover live $args
    rc_is 3
    err_has "is being written"
    err_has "pid $pid"
  done
  [ "$(ls live)" = "seg-000000.tlog" ] || fail "recover touched a live recording: $(ls live)"
  exec 3>&-
  wait "$pid" || fail "the fixture failed to stop its recorder"
  run info live
  out_has "writer      ended"
  run verify live
  rc_is 0
  out_has "ok: "
  [ "$("$FIX" last-epoch live)" = 12 ] || fail "the recording does not end at the script's last epoch"
}

case_late-start() {
  make_rec rec --start-at 4
  run info rec
  rc_is 0
  out_has "epochs      start 4, first 5, last 12"
  out_has "deltas      8"
  run cat rec alpha --epoch 3
  rc_is 2
  err_has "outside 4..12"
  run cat rec beta --epoch start --raw
  rc_is 0
  [ "$(hexof out.txt)" = "$("$FIX" page beta 4)" ] || fail "beta at the start epoch (from the snapshot)"
  run cat rec check --epoch 7 --json
  rc_is 0
  out_has '"version":2'
  out_has '"bytes":"8c02"'
  run log rec --limit 1
  rc_is 0
  echo "epoch 5  page 0 'alpha'  v2  16+16" >want.txt
  out_is want.txt
  run diff rec start last --page alpha
  rc_is 0
  out_has "page 0 'alpha'  v1 -> v3, 2 range(s)"
  make_rec full
  run compare full rec
  rc_is 1
  run verify rec
  rc_is 0
}

case_export() {
  make_rec rec
  run export rec out --epoch 8
  rc_is 0
  out_has "exported epoch 8: 5 page(s), 190 byte(s) to out"
  for spec in "0 alpha" "1 beta" "2 sum" "3 check" "4 4"; do
    read -r id page <<<"$spec"
    [ -f "out/page-$id.bin" ] || fail "out/page-$id.bin missing"
    [ "$(hexof "out/page-$id.bin")" = "$("$FIX" page "$page" 8)" ] || fail "page-$id.bin"
  done
  "$FIX" json-check <out/manifest.json || fail "manifest.json is not JSON"
  grep -qE '"id": *0, *"name": *"alpha", *"size": *64, *"version": *2,' out/manifest.json ||
    fail "manifest: alpha at epoch 8 is version 2"
  grep -qE '"id": *4, *"name": *"", *"size": *16, *"version": *1,' out/manifest.json ||
    fail "manifest: page 4 at epoch 8 is version 1"
  run export rec out
  rc_is 2
  mkdir -p sub/inner  # not empty: it holds a directory
  run export rec sub
  rc_is 2
  err_has "sub is a directory that is not empty"
  run export rec out2 --json
  rc_is 0
  json_ok
  out_has '"epoch":12,"pages":5,"bytes":190'
}

# Every subcommand's --json is one well-formed document, also on failure.
case_json() {
  # A page name with a quote, a newline and a byte that is not UTF-8.
  make_rec odd --odd-name 1
  run info odd --json
  rc_is 0
  json_ok
  out_has '{"id":5,"name":"q'"'"'\"\n\u00ff","size":8,"created":12}'
  run info odd --pages
  rc_is 0
  out_has '  q'"'"'"\x0a\xff'
  run cat odd 5 --json
  rc_is 0
  json_ok
  out_has '"name":"q'"'"'\"\n\u00ff"'

  make_rec a
  make_rec b --flip-byte 4
  for args in "info a" "info a --pages" "log a --bytes" "cat a alpha" "diff a 0 12" "deps a 1" "deps a 3 --root" \
    "verify a" "compare a b" "compare a a" "recover a --dry-run" "export a exported"; do
    # shellcheck disable=SC2086
    run $args --json
    [ "$RC" -le 1 ] || fail "exit $RC"
    json_ok
    [ -s out.txt ] || fail "no output"
  done
}

"case_$CASE"
echo "ok: $CASE"
