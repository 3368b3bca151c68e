#!/usr/bin/env bash
# The README's first command, used as a newcomer would: up (which prints the
# console's URL), write, read, the same over HTTP, the console's page,
# status (with each node's HTTP URL), the member list, a leader transfer, a
# min-revision read on a follower, down, up again (restart from existing
# data), read, backups, status with a paused node, restore (refused before
# wiping, then done), wipe. Runs on ports 27001-27003 / 27101-27103 / 27201-27203
# so that a developer's own cluster is safe.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CAIRN_LOCAL_DIR=$(mktemp -d /tmp/cairn-smoke-XXXXXX)
export CAIRN_LOCAL_CLIENT_BASE=27000 CAIRN_LOCAL_RAFT_BASE=27100 CAIRN_LOCAL_HTTP_BASE=27200
export CAIRN_ENDPOINTS=127.0.0.1:27001,127.0.0.1:27002,127.0.0.1:27003
cluster=$repo/deploy/local/cluster.sh
ctl=$repo/build/bin/cairnctl
err=$CAIRN_LOCAL_DIR/stderr
# The nodes stop, and their directory (backups included) goes with them.
trap '"$cluster" wipe >/dev/null 2>&1 || true; rm -rf "$CAIRN_LOCAL_DIR"' EXIT

up_out=$("$cluster" up)
echo "$up_out"
grep -F "console: http://127.0.0.1:27201/" <<<"$up_out" >/dev/null
"$ctl" put greeting hello
[[ $("$ctl" get greeting) == hello ]]
# The README's curl lines: the value over HTTP, metrics, and the console.
curl -sf http://127.0.0.1:27202/v1/kv/greeting | grep -F '"value":"hello"' >/dev/null
curl -sf http://127.0.0.1:27203/metrics | grep -F "cairn_raft_term" >/dev/null
curl -sf http://127.0.0.1:27201/ | grep -i "<title>" >/dev/null
status_out=$("$cluster" status)
grep leader <<<"$status_out" >/dev/null
for i in 1 2 3; do grep -F "http://127.0.0.1:2720$i" <<<"$status_out" >/dev/null; done
# The README's membership, transfer and min-revision lines.
[[ $("$ctl" member list | grep -c voter) -eq 3 ]]
before=$("$ctl" --json member list | grep -o '"leader_id":[0-9]*' | head -1)
"$ctl" leader transfer >/dev/null
after=$("$ctl" --json member list | grep -o '"leader_id":[0-9]*' | head -1)
[[ -n $before && $before != "$after" ]]
rev=$("$ctl" put greeting hi | grep -o 'revision=[0-9]*' | cut -d= -f2)
[[ $("$ctl" --endpoints 127.0.0.1:27002 get greeting --min-revision "$rev") == hi ]]
"$ctl" put greeting hello >/dev/null
for i in $(seq 1 20); do "$ctl" put "k/$i" "v$i" >/dev/null; done
"$cluster" down
"$cluster" up
[[ $("$ctl" get greeting) == hello ]]
[[ $("$ctl" get k/20) == v20 ]]
[[ $("$ctl" get k/ --prefix --json | grep -o '"key"' | wc -l) -eq 20 ]]
# Backups, as the README shows them (to the cluster's file:// store).
"$ctl" snapshot save | grep -q '^saved: revision [0-9]* (raft index [0-9]*), [0-9]* keys'
"$ctl" snapshot list | grep -q '^restorable: revision'
"$ctl" snapshot verify | grep -q '^verified: snapshot at revision [0-9]* plus [0-9]* archived entries'
# status with a node alive but not answering: "unreachable", and the table whole.
pid3=$(cat "$CAIRN_LOCAL_DIR/node3.pid")
kill -STOP "$pid3"
status_out=$("$cluster" status) || { kill -CONT "$pid3"; exit 1; }
kill -CONT "$pid3"
grep -E '^3 .*unreachable' <<<"$status_out" >/dev/null
grep -F "backups:" <<<"$status_out" >/dev/null
# restore: a point the store cannot give wipes nothing; one it can is restored.
saved=$("$ctl" snapshot save | sed -n 's/^saved: revision \([0-9]*\).*/\1/p')
if "$cluster" restore 999999 2>"$err"; then exit 1; fi
grep -q "nothing was wiped" "$err"
[[ $("$ctl" get greeting) == hello ]]
restore_out=$("$cluster" restore "$saved")
grep -q "^restoring revision $saved " <<<"$restore_out"
[[ $("$ctl" get k/20) == v20 ]]
# A failure exits non-zero with a message on stderr.
if "$ctl" get does-not-exist 2>"$err"; then exit 1; fi
grep -q "not found" "$err"
echo "smoke: ok"
