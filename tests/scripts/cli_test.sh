#!/usr/bin/env bash
# cairnctl against a real local cluster: every verb, its flags, --json, exit
# statuses and messages. Runs on ports 26001-26003 / 26101-26103.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CAIRN_LOCAL_DIR=$(mktemp -d /tmp/cairn-cli-XXXXXX)
export CAIRN_LOCAL_CLIENT_BASE=26000 CAIRN_LOCAL_RAFT_BASE=26100
cluster=$repo/deploy/local/cluster.sh
ctl=$repo/build/bin/cairnctl
err=$CAIRN_LOCAL_DIR/stderr
trap '"$cluster" wipe >/dev/null 2>&1 || true' EXIT

fail() { echo "cli_test: FAIL: $*" >&2; exit 1; }
# expect_fail CODE WORDS -- command...: the command exits CODE and says WORDS.
expect_fail() {
  local code=$1 words=$2 rc=0
  shift 3
  "$@" >/dev/null 2>"$err" || rc=$?
  [[ $rc -eq $code ]] || fail "$* exited $rc, not $code"
  grep -q -- "$words" "$err" || fail "$* did not say '$words': $(cat "$err")"
}

"$cluster" up >/dev/null
export CAIRN_ENDPOINTS=127.0.0.1:26001,127.0.0.1:26002,127.0.0.1:26003

# put / get / --prev / stdin / --rev / --stale
[[ $("$ctl" put cfg/a one) == "OK revision=1" ]] || fail "first put"
printf 'two\nlines' | "$ctl" put cfg/a >/dev/null
[[ $("$ctl" get cfg/a) == $'two\nlines' ]] || fail "value from stdin"
out=$("$ctl" put cfg/a three --prev)
[[ $out == $'OK revision=3\ntwo\nlines' ]] || fail "put --prev: $out"
[[ $("$ctl" get cfg/a --rev 1) == one ]] || fail "get --rev"
for p in 26001 26002 26003; do
  [[ $("$ctl" --endpoints 127.0.0.1:$p get cfg/a) == three ]] || fail "linearizable get via $p"
done
"$ctl" get cfg/a --stale --json --endpoints 127.0.0.1:26002 | grep -q '"revision":3' ||
  fail "stale get reports its revision"
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

# --json keeps bytes that are not UTF-8
printf '\xff\xfe' | "$ctl" put bin/x >/dev/null
"$ctl" get bin/x --json | grep -q '"value_base64":"//4="' || fail "non-UTF-8 value as base64"

# status, usage errors, unreachable cluster
[[ $("$ctl" status | grep -c leader) -ge 1 ]] || fail "status shows a leader"
expect_fail 2 "unknown flag --bogus" -- "$ctl" get x --bogus
expect_fail 2 "unknown command" -- "$ctl" frobnicate
expect_fail 2 "get wants one KEY" -- "$ctl" get
expect_fail 1 "CAIRN_EUNAVAILABLE" -- "$ctl" --timeout 500 --endpoints 127.0.0.1:1 get x
echo "cli_test: ok"
