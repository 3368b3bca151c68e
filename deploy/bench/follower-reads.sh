#!/usr/bin/env bash
# Reads from a follower: stale gets against read-your-writes gets (a put at the
# leader, then at once a get of that key at a follower with min_revision = the
# put's revision), measured together in one cairn-bench run per round.
#
#   deploy/bench/follower-reads.sh BUILD_DIR [ROUNDS] [CLIENTS] [DURATION_S]
#
# Starts a 3-node cluster of BUILD_DIR/bin/cairnd with default settings (fsync
# on) in a temporary directory on the disk; clients on 127.0.0.1:B+1..B+3 and
# Raft on B+101..B+103 with B = $CAIRN_BENCH_BASE (default 30000). Each round:
#   cairn-bench --clients CLIENTS --keys 10000 --value-size 100
#               --mix stale=50,ryw=50 --warmup 3 --duration DURATION_S
# with the stale endpoint a follower (cairn-bench's default). Prints each
# round's JSON on stdout. Everything started is stopped on exit.
set -euo pipefail

build=$(cd "${1:?usage: follower-reads.sh BUILD_DIR [ROUNDS] [CLIENTS] [DURATION_S]}" && pwd)
rounds=${2:-3}
clients=${3:-64}
duration=${4:-10}
base=${CAIRN_BENCH_BASE:-30000}
dir=$(mktemp -d "${TMPDIR:-/var/tmp}/cairn-follower-reads-XXXXXX")
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

caddr() { echo "127.0.0.1:$((base + $1))"; }
raddr() { echo "127.0.0.1:$((base + 100 + $1))"; }
initial="1=$(raddr 1)/$(caddr 1),2=$(raddr 2)/$(caddr 2),3=$(raddr 3)/$(caddr 3)"
endpoints="$(caddr 1),$(caddr 2),$(caddr 3)"
for n in 1 2 3; do
  "$build/bin/cairnd" --id "$n" --data-dir "$dir/node$n" --raft-addr "$(raddr "$n")" \
    --client-addr "$(caddr "$n")" --http-addr "" --initial-cluster "$initial" \
    >"$dir/node$n.log" 2>&1 &
  pids+=("$!")
done
for _ in $(seq 100); do
  if "$build/bin/cairnctl" --endpoints "$endpoints" --timeout 1000 put bench/ready 1 >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done
"$build/bin/cairn-bench" --endpoints "$endpoints" --clients 64 --keys 10000 --value-size 100 \
  --preload --duration 0 >/dev/null
for r in $(seq "$rounds"); do
  echo "round $r: $(date -u +%Y-%m-%dT%H:%M:%SZ)" >&2
  "$build/bin/cairn-bench" --endpoints "$endpoints" --clients "$clients" --keys 10000 \
    --value-size 100 --mix stale=50,ryw=50 --warmup 3 --duration "$duration" --json
done
