#!/usr/bin/env bash
# cairnctl against a real local cluster: every verb, its flags, --json, exit
# statuses and messages. Runs on ports 26001-26003 / 26101-26103 / 26201-26203
# (CAIRN_CLI_TEST_BASE=B moves them to B+1.. / B+101.. / B+201..).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CAIRN_LOCAL_DIR=$(mktemp -d /tmp/cairn-cli-XXXXXX)
base=${CAIRN_CLI_TEST_BASE:-26000}
export CAIRN_LOCAL_CLIENT_BASE=$base CAIRN_LOCAL_RAFT_BASE=$((base + 100))
export CAIRN_LOCAL_HTTP_BASE=$((base + 200))
n1=127.0.0.1:$((base + 1)) n2=127.0.0.1:$((base + 2)) n3=127.0.0.1:$((base + 3))
cluster=$repo/deploy/local/cluster.sh
ctl=${CAIRN_BUILD_DIR:-$repo/build}/bin/cairnctl
err=$CAIRN_LOCAL_DIR/stderr
# The nodes stop, and their directory (backups included) goes with them.
trap '"$cluster" wipe >/dev/null 2>&1 || true; rm -rf "$CAIRN_LOCAL_DIR"' EXIT

fail() { echo "cli_test: FAIL: $*" >&2; exit 1; }
# expect_fail CODE WORDS -- command...: the command exits CODE and says WORDS.
expect_fail() {
  local code=$1 words=$2 rc=0
  shift 3
  "$@" >/dev/null 2>"$err" || rc=$?
  [[ $rc -eq $code ]] || fail "$* exited $rc, not $code"
  grep -q -- "$words" "$err" || fail "$* did not say '$words': $(cat "$err")"
}

# help: each command's own page, with its flags (no cluster needed)
for c in put get del cas txn history diff rollback compact retention watch status metrics \
  member "member list" "member add" "member promote" "member demote" "member remove" \
  "leader transfer" snapshot "snapshot save" "snapshot list" "snapshot verify" \
  "snapshot restore" "snapshot status"; do
  read -ra words <<<"$c"
  out=$("$ctl" "${words[@]}" --help) || fail "$c --help exited $?"
  [[ $out == "Usage: cairnctl ${words[0]}"* ]] || fail "$c --help: $out"
  [[ $("$ctl" help "${words[@]}") == "$out" ]] || fail "help $c differs from $c --help"
done
out=$("$ctl" snapshot restore --help)
[[ $out == *--fallback* && $out == *--backup-credentials-file* ]] ||
  fail "restore --help lacks --fallback or the S3 flags: $out"
[[ $("$ctl" get app/x --help --no-such-flag) == *--min-revision* ]] || fail "get --help"
[[ $("$ctl" --help) == *$'\nCommands:\n'* ]] || fail "global --help"
expect_fail 2 'snapshot has no command "bogus"' -- "$ctl" snapshot bogus --help
expect_fail 2 'unknown command "bogus"' -- "$ctl" bogus --help

"$cluster" up >/dev/null
export CAIRN_ENDPOINTS=$n1,$n2,$n3

# put / get / --prev / stdin / --rev / --stale
[[ $("$ctl" put cfg/a one) == "OK revision=1" ]] || fail "first put"
printf 'two\nlines' | "$ctl" put cfg/a >/dev/null
[[ $("$ctl" get cfg/a) == $'two\nlines' ]] || fail "value from stdin"
out=$("$ctl" put cfg/a three --prev)
[[ $out == $'OK revision=3\ntwo\nlines' ]] || fail "put --prev: $out"
[[ $("$ctl" get cfg/a --rev 1) == one ]] || fail "get --rev"
for n in $n1 $n2 $n3; do
  [[ $("$ctl" --endpoints "$n" get cfg/a) == three ]] || fail "linearizable get via $n"
done
"$ctl" get cfg/a --stale --json --endpoints "$n2" | grep -q '"revision":3' ||
  fail "stale get reports its revision"
# --min-revision (read your writes on one node), --max-staleness
for n in $n1 $n2 $n3; do
  [[ $("$ctl" --endpoints "$n" get cfg/a --min-revision 3) == three ]] ||
    fail "get --min-revision 3 via $n"
done
expect_fail 1 "revision 99 not applied within" -- \
  "$ctl" --endpoints "$n2" --timeout 1000 get cfg/a --min-revision 99
expect_fail 1 "CAIRN_ETIMEOUT" -- "$ctl" --endpoints "$n2" --timeout 500 get cfg/a --min-revision 99
[[ $("$ctl" --endpoints "$n2" get cfg/a --stale --max-staleness 10s) == three ]] ||
  fail "get --stale --max-staleness on a healthy follower"
expect_fail 2 "add --stale" -- "$ctl" get cfg/a --max-staleness 1s
expect_fail 2 "wants a duration" -- "$ctl" get cfg/a --stale --max-staleness soon
expect_fail 2 "non-negative integer" -- "$ctl" get cfg/a --min-revision x
expect_fail 1 "CAIRN_EFUTUREREV" -- "$ctl" get cfg/a --rev 99
expect_fail 1 "key not found" -- "$ctl" get cfg/none

# ranges: --prefix, --limit, --after
for i in 1 2 3 4 5; do "$ctl" put "range/k$i" "v$i" >/dev/null; done
[[ $("$ctl" get range/ --prefix | wc -l) -eq 10 ]] || fail "prefix get"
"$ctl" get range/ --prefix --limit 2 2>"$err" | grep -q range/k2 || fail "limit"
grep -q -- "--after 'range/k2'" "$err" || fail "limit says how to continue"
[[ $("$ctl" get range/ --prefix --limit 2 --after range/k2 2>/dev/null | head -1) == range/k3 ]] ||
  fail "--after continues the range"

# del (key, prefix, --prev)
[[ $("$ctl" del range/k1) == 1 ]] || fail "del key"
[[ $("$ctl" del range/ --prefix --prev | head -1) == 4 ]] || fail "del prefix"
[[ $("$ctl" del range/k1) == 0 ]] || fail "del of a missing key deletes nothing"

# cas: success, failure (exit 1, current mod_revision), create-only
mod=$("$ctl" get cfg/a --json | sed -n 's/.*"mod_revision":\([0-9]*\).*/\1/p')
"$ctl" cas cfg/a "$mod" four >/dev/null || fail "cas with the right mod_revision"
expect_fail 1 "compare failed: current mod_revision is" -- "$ctl" cas cfg/a "$mod" five
[[ $("$ctl" get cfg/a) == four ]] || fail "failed cas changed nothing"
"$ctl" cas cfg/new 0 created >/dev/null || fail "cas 0 creates"
expect_fail 1 "compare failed" -- "$ctl" cas cfg/new 0 again

# txn from stdin: both branches
out=$(printf 'value cfg/a = four\n\nput cfg/b b1\nget cfg/a\n\nput cfg/b b2\n' | "$ctl" txn)
[[ $out == *SUCCEEDED* && $out == *four* ]] || fail "txn then-branch: $out"
out=$(printf 'version cfg/a > 100\n\nput cfg/b b3\n\nput cfg/b b4\n' | "$ctl" txn)
[[ $out == FAILED* ]] || fail "txn else-branch: $out"
[[ $("$ctl" get cfg/b) == b4 ]] || fail "txn else-branch wrote"
expect_fail 2 "unknown operation" -- bash -c "printf '\nfrob x\n' | '$ctl' txn"
# Like etcd, one branch may not write a key twice (or under a prefix it deletes).
expect_fail 1 "writes key \"cfg/b\" twice" -- bash -c "printf '\nput cfg/b x\nput cfg/b y\n' | '$ctl' txn"
expect_fail 1 "CAIRN_EINVAL" -- bash -c "printf '\ndel cfg/b\nput cfg/b y\n' | '$ctl' txn"
[[ $("$ctl" get cfg/b) == b4 ]] || fail "refused transactions wrote nothing"

# history, retention, compact
[[ $("$ctl" history cfg/a | head -1) == REVISION* ]] || fail "history header"
[[ $("$ctl" history cfg/a --limit 2 | wc -l) -eq 3 ]] || fail "history --limit"
"$ctl" retention 2 >/dev/null
[[ $("$ctl" history cfg/a | wc -l) -eq 3 ]] || fail "retention trims history"
rev=$("$ctl" status --json | sed -n 's/^\[{[^]]*"revision":\([0-9]*\).*/\1/p')
[[ -n $rev ]] || fail "status --json has the revision"
"$ctl" compact "$rev" >/dev/null
expect_fail 1 "CAIRN_ECOMPACTED" -- "$ctl" get cfg/a --rev 1

# retention policies per prefix: set / list / remove, and the `retention N` form
out=$("$ctl" retention remove "")
[[ $out == *'restored the default retention for ""'*'10 versions'* ]] || fail "retention remove \"\": $out"
"$ctl" retention set ret/ --versions 2 | grep -q '"ret/": keep the last 2 versions' ||
  fail "retention set --versions"
for i in 1 2 3 4; do "$ctl" put ret/k "v$i" >/dev/null; "$ctl" put other/k "v$i" >/dev/null; done
[[ $("$ctl" history ret/k | wc -l) -eq 3 ]] || fail "a prefix policy caps history"
[[ $("$ctl" history other/k | wc -l) -eq 5 ]] || fail "keys outside the prefix keep the default"
"$ctl" retention set tmp/ --age 3s >/dev/null
out=$("$ctl" retention list)
[[ $(sed -n 2p <<<"$out") == '""'*10*-* ]] || fail "retention list starts with \"\": $out"
grep -q '^"ret/" *2 *-$' <<<"$out" || fail "retention list shows ret/: $out"
grep -q '^"tmp/" *- *3s$' <<<"$out" || fail "retention list shows tmp/'s age: $out"
"$ctl" retention list --json | grep -q '{"prefix":"tmp/","versions":0,"age_ms":3000}' ||
  fail "retention list --json"
"$ctl" status --json | grep -q '"retain_versions":10' || fail "status reports the default"
# Age: versions older than 3s go when the key is next written (the leader's
# sweep, every 60s by default, does it for keys nobody writes).
"$ctl" put tmp/k old1 >/dev/null
"$ctl" put tmp/k old2 >/dev/null
[[ $("$ctl" history tmp/k | wc -l) -eq 3 ]] || fail "young versions are kept"
sleep 3.5
"$ctl" put tmp/k new >/dev/null
[[ $("$ctl" history tmp/k | wc -l) -eq 2 ]] || fail "versions older than --age are discarded"
expect_fail 2 "--age wants a duration" -- "$ctl" retention set tmp/ --age 5x
expect_fail 2 "retention set wants PREFIX and --versions" -- "$ctl" retention set tmp/
expect_fail 2 "neither a version nor an age limit" -- "$ctl" retention set tmp/ --versions 0
"$ctl" retention remove tmp/ | grep -q 'removed the retention policy for "tmp/"' ||
  fail "retention remove"
expect_fail 1 'no retention policy for prefix "tmp/"' -- "$ctl" retention remove tmp/
[[ $("$ctl" retention list | wc -l) -eq 3 ]] || fail "removed policies are not listed"
"$ctl" retention 3 | grep -q "keeping the last 3 versions" || fail "retention N"
[[ $("$ctl" retention list | sed -n 2p) == '""'*3*-* ]] || fail "retention N sets \"\""
"$ctl" retention remove "" >/dev/null

# history: revision, time (UTC ISO 8601), size, version and deletions, newest first
h1=$(printf 'line1\nline2\nline3\n' | "$ctl" put doc/a | sed -n 's/^OK revision=//p')
h2=$(printf 'line1\nline2 changed\nline3\nline4\n' | "$ctl" put doc/a | sed -n 's/^OK revision=//p')
h3=$("$ctl" del doc/a --json | sed -n 's/^{"revision":\([0-9]*\).*/\1/p')
h4=$("$ctl" put doc/a again | sed -n 's/^OK revision=//p')
[[ -n $h1 && -n $h2 && -n $h3 && -n $h4 ]] || fail "revisions of doc/a: $h1 $h2 $h3 $h4"
out=$("$ctl" history doc/a)
t='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'
[[ $(sed -n 2p <<<"$out") =~ ^$h4\ +1\ +$t\ +5\ +put$ ]] || fail "history, newest: $out"
[[ $(sed -n 3p <<<"$out") =~ ^$h3\ +0\ +$t\ +0\ +delete$ ]] || fail "history, deletion: $out"
[[ $(sed -n 4p <<<"$out") =~ ^$h2\ +2\ +$t\ +32\ +put$ ]] || fail "history, size: $out"
[[ $(sed -n 5p <<<"$out") =~ ^$h1\ +1\ +$t\ +18\ +put$ ]] || fail "history, oldest: $out"
[[ $("$ctl" history doc/a --limit 1 2>/dev/null | wc -l) -eq 2 ]] || fail "history --limit"
"$ctl" history doc/a --limit 1 2>&1 >/dev/null | grep -q "older versions follow" ||
  fail "history --limit says more follow"
"$ctl" history doc/a --json | grep -q "\"mod_revision\":$h3,\"version\":0,\"time_ms\":[0-9]*,\"deleted\":true" ||
  fail "history --json"
expect_fail 1 "no retained versions of doc/none" -- "$ctl" history doc/none

# get --rev
[[ $("$ctl" get doc/a --rev "$h1") == $'line1\nline2\nline3' ]] || fail "get --rev"
expect_fail 1 "get at revision $h3: key not found: doc/a" -- "$ctl" get doc/a --rev "$h3"

# diff: unified, checked against GNU diff -u on the same values
diff_body() { "$ctl" diff "$@" | tail -n +3; }
printf 'line1\nline2\nline3\n' >"$CAIRN_LOCAL_DIR/v1"
printf 'line1\nline2 changed\nline3\nline4\n' >"$CAIRN_LOCAL_DIR/v2"
out=$("$ctl" diff doc/a "$h1" "$h2")
[[ $(head -2 <<<"$out") == "--- doc/a @ revision $h1"$'\n'"+++ doc/a @ revision $h2" ]] ||
  fail "diff headers: $out"
[[ $(tail -n +3 <<<"$out") == "$(diff -u "$CAIRN_LOCAL_DIR/v1" "$CAIRN_LOCAL_DIR/v2" | tail -n +3)" ]] ||
  fail "diff differs from diff -u: $out"
[[ $(tail -n +3 <<<"$out") == $'@@ -1,3 +1,4 @@\n line1\n-line2\n+line2 changed\n line3\n+line4' ]] ||
  fail "diff hunk: $out"
# Several hunks, context merged or not, a missing final newline.
seq 1 40 >"$CAIRN_LOCAL_DIR/long1"
{ seq 1 4; echo five; seq 6 9; echo ten; seq 11 30; echo "thirty-one"; seq 32 40 | tr -d '\n'; } >"$CAIRN_LOCAL_DIR/long2"
l1=$("$ctl" put doc/long <"$CAIRN_LOCAL_DIR/long1" | sed -n 's/^OK revision=//p')
l2=$("$ctl" put doc/long <"$CAIRN_LOCAL_DIR/long2" | sed -n 's/^OK revision=//p')
[[ $(diff_body doc/long "$l1" "$l2") == "$(diff -u "$CAIRN_LOCAL_DIR/long1" "$CAIRN_LOCAL_DIR/long2" | tail -n +3)" ]] ||
  fail "multi-hunk diff differs from diff -u: $(diff_body doc/long "$l1" "$l2")"
[[ $(diff_body doc/long "$l2" "$l1") == "$(diff -u "$CAIRN_LOCAL_DIR/long2" "$CAIRN_LOCAL_DIR/long1" | tail -n +3)" ]] ||
  fail "reverse multi-hunk diff differs from diff -u"
# Absent at a revision: diffed as empty, and said so.
out=$("$ctl" diff doc/a "$h2" "$h3")
[[ $(sed -n 2p <<<"$out") == "+++ doc/a @ revision $h3 (absent: diffed as empty)" ]] || fail "diff absent: $out"
[[ $(sed -n 3p <<<"$out") == "@@ -1,4 +0,0 @@" ]] || fail "diff absent hunk: $out"
[[ -z $("$ctl" diff doc/a "$h1" "$h1") ]] || fail "identical versions print nothing"
"$ctl" diff doc/a "$h1" "$h2" --json | grep -q '"identical":false,"minimal":true,"hunks":\[{"old_start":1,"old_lines":3,"new_start":1,"new_lines":4,"lines":\[{"op":" ","text":"line1","newline":true},{"op":"-","text":"line2","newline":true}' ||
  fail "diff --json"
"$ctl" diff doc/a "$h1" "$h3" --json | grep -q '"to":{"revision":'"$h3"',"exists":false' || fail "diff --json absent"
expect_fail 2 "diff wants KEY REV1 REV2" -- "$ctl" diff doc/a 1
expect_fail 1 "CAIRN_EFUTUREREV" -- "$ctl" diff doc/a "$h1" 999999
expect_fail 1 "CAIRN_ECOMPACTED" -- "$ctl" diff cfg/a 1 "$h1"

# rollback: the old value comes back as a new revision
out=$("$ctl" rollback doc/a "$h2")
[[ $out =~ ^OK\ revision=[0-9]+$ ]] || fail "rollback: $out"
[[ $("$ctl" get doc/a) == $'line1\nline2 changed\nline3\nline4' ]] || fail "rollback wrote the old value"
[[ $("$ctl" history doc/a | sed -n 2p) == "${out#OK revision=} "* ]] || fail "rollback is a new revision"
# A change between rollback's read and its write makes it fail, not overwrite:
# the test hook runs a put right there.
CAIRNCTL_TEST_ROLLBACK_HOOK="'$ctl' put doc/a intruder >/dev/null" \
  expect_fail 1 "doc/a changed after it was read" -- "$ctl" rollback doc/a "$h1"
[[ $("$ctl" get doc/a) == intruder ]] || fail "a refused rollback overwrote a concurrent change"
# Rolling back to a revision where the key did not exist deletes it, guarded alike.
CAIRNCTL_TEST_ROLLBACK_HOOK="'$ctl' put doc/a intruder2 >/dev/null" \
  expect_fail 1 "doc/a changed after it was read" -- "$ctl" rollback doc/a "$h3"
[[ $("$ctl" get doc/a) == intruder2 ]] || fail "a refused rollback deleted a concurrent change"
"$ctl" rollback doc/a "$h3" | grep -q '^OK revision=' || fail "rollback to absent"
expect_fail 1 "key not found" -- "$ctl" get doc/a
"$ctl" rollback doc/a "$h3" | grep -q "nothing to do" || fail "rollback of an absent key to absent"
"$ctl" rollback doc/a "$h1" >/dev/null || fail "rollback recreates a deleted key"
[[ $("$ctl" get doc/a) == $'line1\nline2\nline3' ]] || fail "rollback recreated the old value"
expect_fail 2 "rollback wants KEY REV" -- "$ctl" rollback doc/a 0
expect_fail 1 "CAIRN_ECOMPACTED" -- "$ctl" rollback cfg/a 1

# --json keeps bytes that are not UTF-8
printf '\xff\xfe' | "$ctl" put bin/x >/dev/null
"$ctl" get bin/x --json | grep -q '"value_base64":"//4="' || fail "non-UTF-8 value as base64"

# status, usage errors, unreachable cluster
[[ $("$ctl" status | grep -c leader) -ge 1 ]] || fail "status shows a leader"
# metrics: one node's Prometheus text, from any node
out=$("$ctl" metrics --endpoint "$n2")
[[ $out == *$'\n# TYPE cairn_raft_is_leader gauge\ncairn_raft_is_leader '[01]$'\n'* ]] ||
  fail "metrics has is_leader: $out"
[[ $out == *$'\ncairn_keys '[1-9]* ]] || fail "metrics counts the keys"
expect_fail 1 "not host:port" -- "$ctl" metrics --endpoint nohost
expect_fail 2 "unknown flag --bogus" -- "$ctl" get x --bogus
expect_fail 2 "unknown command" -- "$ctl" frobnicate
expect_fail 2 "get wants one KEY" -- "$ctl" get
expect_fail 1 "CAIRN_EUNAVAILABLE" -- "$ctl" --timeout 500 --endpoints 127.0.0.1:1 get x
# watch: a prefix from a past revision with --prev (text), a key with --json
# and --progress; each change printed as it comes; SIGINT / SIGTERM end it
# with status 0. (it_watch_basic and it_watch_faults test the library.)
watch_test() {
  local out=$CAIRN_LOCAL_DIR/watch.out jout=$CAIRN_LOCAL_DIR/watch.json
  local pid jpid rc=0 r1 r2 r3 r4 i want
  r1=$("$ctl" put w/a a1) && r1=${r1#OK revision=}
  "$ctl" watch w/ --prefix --prev --rev "$r1" >"$out" 2>"$err" &
  pid=$!
  "$ctl" watch w/a --json --progress --rev "$r1" >"$jout" 2>&1 &
  jpid=$!
  r2=$("$ctl" put w/a a2) && r2=${r2#OK revision=}
  r3=$("$ctl" put w/b b1) && r3=${r3#OK revision=}
  "$ctl" put x/elsewhere 1 >/dev/null
  r4=$("$ctl" del w/a --json | sed -n 's/^{"revision":\([0-9]*\).*/\1/p')
  # Both print the delete as it comes, and the JSON one a progress line.
  for i in $(seq 1 100); do
    if grep -q '^DELETE w/a' "$out" && grep -q '"type":"delete"' "$jout" &&
      grep -q '"type":"progress"' "$jout"; then
      break
    fi
    sleep 0.1
  done
  kill -INT "$pid"
  kill -TERM "$jpid"
  wait "$pid" || rc=$?
  [[ $rc -eq 0 ]] || fail "watch exited $rc on SIGINT: $(cat "$err")"
  wait "$jpid" || rc=$?
  [[ $rc -eq 0 ]] || fail "watch --json exited $rc on SIGTERM: $(cat "$jout")"
  want="PUT w/a revision=$r1 version=1
a1
PUT w/a revision=$r2 version=2
a2
PREV revision=$r1
a1
PUT w/b revision=$r3 version=1
b1
DELETE w/a revision=$r4
PREV revision=$r2
a2"
  [[ $(cat "$out") == "$want" ]] || fail "watch --prefix --prev printed: $(cat "$out")"
  [[ $(grep -c '"type":"put"' "$jout") -eq 2 ]] || fail "watch --json puts: $(cat "$jout")"
  grep -q "^{\"type\":\"put\",\"key\":\"w/a\",\"value\":\"a2\",\"create_revision\":$r1,\"mod_revision\":$r2,\"version\":2,.*\"prev\":null}$" "$jout" ||
    fail "watch --json put line: $(cat "$jout")"
  grep -q "^{\"type\":\"delete\",\"key\":\"w/a\",\"value\":\"\",.*\"mod_revision\":$r4," "$jout" ||
    fail "watch --json delete line: $(cat "$jout")"
  ! grep -q 'w/b' "$jout" || fail "a key watch printed another key"
  expect_fail 2 "watch wants one KEY" -- "$ctl" watch
  expect_fail 1 "CAIRN_EUNAVAILABLE" -- "$ctl" --timeout 500 --endpoints 127.0.0.1:1 watch x
}
watch_test

# member list / leader transfer, and what member changes refuse (the changes
# themselves are tests/integration/it_member_*'s)
member_test() {
  local out leader other
  out=$("$ctl" member list)
  [[ $(grep -c " voter " <<<"$out") -eq 3 ]] || fail "member list shows 3 voters: $out"
  grep -q "leader .*caught up" <<<"$out" || fail "member list shows the leader caught up: $out"
  "$ctl" member list --json | grep -q '"members":\[{"id":1,"role":"voter"' || fail "member list --json"
  leader=$("$ctl" member list --json | sed -n 's/.*"leader_id":\([0-9]*\).*/\1/p')
  other=$((leader % 3 + 1))
  out=$("$ctl" leader transfer --to "$other")
  [[ $out == "node $other leads now (127.0.0.1:$((base + other)))" ]] || fail "leader transfer --to: $out"
  "$ctl" leader transfer --json | grep -q '"previous_leader_id":'"$other" || fail "leader transfer --json"
  expect_fail 1 "CAIRN_ENOTFOUND" -- "$ctl" member remove 9
  expect_fail 1 "is a voter already" -- "$ctl" member promote 1
  expect_fail 1 "cannot be reached" -- "$ctl" member add 9 127.0.0.1:1/127.0.0.1:2
  expect_fail 2 "wants a member id" -- "$ctl" member promote x
  expect_fail 2 "RAFT_HOST:PORT/CLIENT_HOST:PORT" -- "$ctl" member add 9 127.0.0.1:1
  expect_fail 2 "unknown verb" -- "$ctl" member frob 1
  expect_fail 2 "leader transfer" -- "$ctl" leader elect
}
member_test

echo "cli_test: ok"
