#!/usr/bin/env bash
# Watch fan-out, Cairn against etcd 3.4 (Debian's etcd-server), in one run.
#
#   deploy/bench/watch-fanout.sh [--runs N] [--rows "K:U:R ..."] [--watchers W]
#                                [--conns C] [--procs P] [--systems "cairn etcd"]
#                                [--drain-timeout S] [--out FILE] [--keep] [--no-build]
#                                [--quick]
#
# For each row K:U:R of the table (K watched keys, U updates at R per second)
# and each run, a fresh 3-node cluster of each system is started, measured by
# cairn-watch-bench and stopped, Cairn then etcd, so that the two alternate
# and each run starts from an empty data directory:
#   W watchers (default 10,000) on one follower, over C connections (100) in
#   P client processes (4); watcher i watches key i % K, so each update
#   reaches W/K watchers (the fan-out); the writer puts U updates at R/s,
#   open loop, to the leader.
# Default rows: K = 10000, 100, 10 and 1 at 1,000 updates at 1,000/s (fan-out
# 1, 100, 1,000 and 10,000), and K = 100 at 100 updates at 20/s (sparse
# writes). Each row runs --runs times (3); the table gives the median and the
# range of the runs. --quick: 1,000 watchers, rows 100:200:200 and 10:200:200,
# one run each (a smoke run of the whole script, about a minute).
#
# Ports: Cairn clients 31001-31003, Raft 31101-31103; etcd clients
# 32371-32373, peers 32381-32383 (CAIRN_BENCH_PORTS="31000 31100 32370 32380"
# sets the four bases). Data in one temporary directory.
#
# etcd is driven through its HTTP/JSON gateway (POST /v3/watch, one streamed
# response per connection carrying that connection's watches), which costs
# it more than its gRPC API would: see docs/performance.md, "Watch fan-out".
#
# Prints a side-by-side table and writes every figure as JSON (--out, default
# $build/watch-fanout.json). Everything started is stopped on exit. The
# binaries come from a Release build in build-wbench-rel/
# (CAIRN_BENCH_BUILD_DIR overrides), made or refreshed first unless
# --no-build is given.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=deploy/bench/lib.sh
source "$repo/deploy/bench/lib.sh"
bench_name=watch-fanout
etcd_token=cairn-watch-fanout
ports_default="31000 31100 32370 32380"
build=${CAIRN_BENCH_BUILD_DIR:-$repo/build-wbench-rel}
runs=3
rows="10000:1000:1000 100:1000:1000 10:1000:1000 1:1000:1000 100:100:20"
watchers=10000
conns=100
procs=4
systems="cairn etcd"
drain=300
out=""
keep=0
do_build=1

usage() { sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --watchers) watchers=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --systems) systems=$2; shift 2 ;;
    --drain-timeout) drain=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-build) do_build=0; shift ;;
    --quick) runs=1; rows="100:200:200 10:200:200"; watchers=1000; conns=20; procs=2
      drain=60; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "watch-fanout: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
out=${out:-$build/watch-fanout.json}

if [[ " $systems " == *" etcd "* && ! -x $etcd_bin ]]; then
  fail "$etcd_bin not found: install Debian's etcd-server (deploy/deps.sh --test)"
fi
bench_ports
bench_build cairn-watch-bench
ports_free "${cluster_ports[@]}"
bench_work cairn-watch-fanout

# A numeric field of cairn-watch-bench's (flat) JSON.
jnum() { grep -o "\"$2\":[^,}]*" "$1" | head -1 | cut -d: -f2- | tr -d '"'; }

# median_range FILE...: "median min max" of the numbers in the files' lines.
median_range() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "n/a n/a n/a"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    print m, v[1], v[NR] }'
}

res=$work/results
mkdir -p "$res"
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "load average $loadavg_start; $watchers watchers, $conns connections, $procs processes;" \
  "rows: $rows; $runs run(s) each"

for row in $rows; do
  IFS=: read -r k u r <<<"$row"
  for ((run = 1; run <= runs; run++)); do
    for kind in $systems; do
      tries=0
      until rm -rf "$work/$kind-data" && cluster_up "$kind" "$work/$kind-data"; do
        tries=$((tries + 1))
        ((tries < 3)) || fail "$kind: could not start a cluster"
        sleep 2
      done
      if [[ $kind == cairn ]]; then eps=$cairn_endpoints; else eps=$etcd_endpoints; fi
      f=$res/$kind-k$k-u$u-r$r-$run.json
      log "$kind: K=$k (fan-out $((watchers / k))), $u updates at $r/s, run $run"
      rc=0
      "$bench" --target "$kind" --endpoints "$eps" --watchers "$watchers" --conns "$conns" \
        --procs "$procs" --keys "$k" --updates "$u" --rate "$r" --drain-timeout "$drain" \
        --json >"$f" 2>"$f.err" || rc=$?
      if [[ -s $f.err ]]; then
        sed 's/^/    /' "$f.err" >&2
      fi
      if [[ ! -s $f ]]; then
        log "$kind: cairn-watch-bench failed (exit $rc) and printed no result"
        echo "{\"target\":\"$kind\",\"complete\":false,\"exit\":$rc}" >"$f"
      elif ((rc != 0)); then
        log "$kind: INCOMPLETE delivery or errors (exit $rc): $(jnum "$f" received) of $(jnum "$f" expected) delivered"
      fi
      log "$kind: p50 $(jnum "$f" commit_p50_ms) ms, p99 $(jnum "$f" commit_p99_ms) ms," \
        "$(jnum "$f" deliveries_per_s) deliveries/s, $(jnum "$f" rss_per_watcher_bytes) B/watcher"
      cluster_down
    done
  done
done
loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)

# The table: medians over the runs, [min-max] beside the latencies.
stat() { # stat KIND ROW FIELD -> "median min max"
  local kind=$1 row=$2 field=$3 f
  IFS=: read -r k u r <<<"$row"
  for f in "$res/$kind-k$k-u$u-r$r"-*.json; do
    jnum "$f" "$field"
  done | grep -E '^-?[0-9.]+$' | median_range
}
completes() { # completes KIND ROW -> "n/N"
  local kind=$1 row=$2 n=0 t=0 f
  IFS=: read -r k u r <<<"$row"
  for f in "$res/$kind-k$k-u$u-r$r"-*.json; do
    t=$((t + 1))
    [[ $(jnum "$f" complete) == true ]] && n=$((n + 1))
  done
  echo "$n/$t"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f", a / b; else print "n/a" }'; }
fmt_ms() { awk -v v="$1" 'BEGIN { if (v == "n/a") print v; else if (v >= 100) printf "%.0f", v; else printf "%.1f", v }'; }

echo
echo "Watch fan-out, Cairn vs etcd $("$etcd_bin" --version 2>/dev/null | awk '/etcd Version/ {print $3}') (HTTP/JSON gateway):" \
  "$watchers watchers on a follower, $conns connections, $procs client processes; $runs run(s) per row"
echo "$(nproc) cores shared by both clusters' nodes and the clients; load average before $loadavg_start, after $loadavg_end"
echo "latency: from the put's commit acknowledgement to receipt, ms, median of the runs [min-max of the runs];"
echo "deliveries/s: deliveries over the time from the first put to the last receipt (the offered rate when"
echo "the system keeps up); B/watcher: serving node's VmRSS growth once the watches exist, per watcher"
printf '%-22s %-6s %6s %22s %22s %12s %10s %9s %s\n' "row (K keys, U at R/s)" system fanout \
  "p50 ms" "p99 ms" "deliveries/s" "B/watcher" complete "p99<100ms"
json_rows=""
for row in $rows; do
  IFS=: read -r k u r <<<"$row"
  declare -A p99med=() dps=() mem=()
  for kind in $systems; do
    read -r p50m p50lo p50hi <<<"$(stat "$kind" "$row" commit_p50_ms)"
    read -r p99m p99lo p99hi <<<"$(stat "$kind" "$row" commit_p99_ms)"
    read -r dm _ _ <<<"$(stat "$kind" "$row" deliveries_per_s)"
    read -r mm _ _ <<<"$(stat "$kind" "$row" rss_per_watcher_bytes)"
    c=$(completes "$kind" "$row")
    p99med[$kind]=$p99m dps[$kind]=$dm mem[$kind]=$mm
    met=$(awk -v hi="$p99hi" -v c="$c" 'BEGIN { split(c, x, "/");
      print (hi != "n/a" && hi < 100 && x[1] == x[2]) ? "met" : "MISSED" }')
    printf '%-22s %-6s %6s %22s %22s %12.0f %10.0f %9s %s\n' "K=$k, $u at $r/s" "$kind" \
      "$((watchers / k))" "$(fmt_ms "$p50m") [$(fmt_ms "$p50lo")-$(fmt_ms "$p50hi")]" \
      "$(fmt_ms "$p99m") [$(fmt_ms "$p99lo")-$(fmt_ms "$p99hi")]" "${dm/n\/a/0}" "${mm/n\/a/0}" \
      "$c" "$met"
  done
  if [[ " $systems " == *" cairn "* && " $systems " == *" etcd "* ]]; then
    printf '%-22s %-6s %6s %22s %22s %12s %10s\n' "" "ratio" "" "" \
      "etcd/Cairn $(ratio "${p99med[etcd]}" "${p99med[cairn]}")x" \
      "C/e $(ratio "${dps[cairn]}" "${dps[etcd]}")x" "e/C $(ratio "${mem[etcd]}" "${mem[cairn]}")x"
  fi
  json_runs=""
  for kind in $systems; do
    for f in "$res/$kind-k$k-u$u-r$r"-*.json; do
      json_runs+="${json_runs:+,}$(cat "$f")"
    done
  done
  json_rows+="${json_rows:+,}{\"keys\":$k,\"updates\":$u,\"rate\":$r,\"runs\":[$json_runs]}"
  unset p99med dps mem
done

mkdir -p "$(dirname "$out")"
{
  printf '{"started_at":"%s","cores":%s,"loadavg_start":"%s","loadavg_end":"%s",' \
    "$started_at" "$(nproc)" "$loadavg_start" "$loadavg_end"
  printf '"etcd_version":"%s","cairn_commit":"%s",' \
    "$("$etcd_bin" --version 2>/dev/null | awk '/etcd Version/ {print $3}')" \
    "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  printf '"watchers":%s,"conns":%s,"procs":%s,"runs_per_row":%s,"rows":[%s]}\n' \
    "$watchers" "$conns" "$procs" "$runs" "$json_rows"
} >"$out"
echo
echo "figures written to $out"
