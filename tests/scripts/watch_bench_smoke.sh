#!/usr/bin/env bash
# cairn-watch-bench against a real 3-node cluster, in a tiny configuration
# (200 watchers over 8 connections in 2 processes, 10 keys, 50 updates): the
# tool must exit 0, which it does only when every watcher received exactly
# its key's updates, once each, in revision order. Keeps the benchmark of
# docs/performance.md ("Watch fan-out") from rotting.
#
#   tests/scripts/watch_bench_smoke.sh CAIRND CAIRN_WATCH_BENCH
#
# Ports: the first free block of 31021-31023 / 31121-31123, 31031-... (up to
# 31091); data in a temporary directory; every node is stopped on exit.
set -euo pipefail
cairnd=${1:?usage: watch_bench_smoke.sh CAIRND CAIRN_WATCH_BENCH}
bench=${2:?usage: watch_bench_smoke.sh CAIRND CAIRN_WATCH_BENCH}
dir=$(mktemp -d /tmp/cairn-watch-smoke-XXXXXX)
pids=()

fail() { echo "watch_bench_smoke: FAIL: $*" >&2; exit 1; }
cleanup() {
  local rc=$? p
  for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null || true; done
  if ((rc != 0)); then
    for f in "$dir"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2 || true; done
  fi
  rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=""
for b in 31020 31030 31040 31050 31060 31070 31080 31090; do
  free=1
  for n in 1 2 3; do
    if port_busy $((b + n)) || port_busy $((b + 100 + n)); then free=0; fi
  done
  if ((free)); then base=$b; break; fi
done
[[ -n $base ]] || fail "no free ports in 31021-31193"

initial=""
for n in 1 2 3; do
  initial+="${initial:+,}$n=127.0.0.1:$((base + 100 + n))/127.0.0.1:$((base + n))"
done
for n in 1 2 3; do
  "$cairnd" --id "$n" --data-dir "$dir/node$n" --raft-addr "127.0.0.1:$((base + 100 + n))" \
    --client-addr "127.0.0.1:$((base + n))" --initial-cluster "$initial" --http-addr= \
    >"$dir/node$n.log" 2>&1 &
  pids+=($!)
done
endpoints="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"

# The tool waits for a leader itself; it must find all three nodes up.
for _ in $(seq 1 100); do
  up=0
  for n in 1 2 3; do port_busy $((base + n)) && up=$((up + 1)); done
  ((up == 3)) && break
  sleep 0.1
done
((up == 3)) || fail "the cluster did not come up"

out=$("$bench" --endpoints "$endpoints" --watchers 200 --conns 8 --procs 2 --keys 10 \
  --updates 50 --rate 200 --drain-timeout 20 --json) || fail "cairn-watch-bench exited $?: $out"
[[ $out == *'"complete":true'* ]] || fail "incomplete delivery: $out"
[[ $out == *'"expected":1000,"received":1000,'* ]] || fail "not 1000 deliveries: $out"
[[ $out == *'"endpoint_role":"follower"'* ]] || fail "the watches were not on a follower: $out"
echo "watch_bench_smoke: ok: $out"
