#!/usr/bin/env bash
# Cairn against etcd 3.4 (Debian's etcd-server) on this machine, in one run.
#
#   deploy/bench/compare-etcd.sh [--duration S] [--warmup S] [--clients N]
#                                [--out FILE] [--keep] [--skip-memory] [--no-build]
#
# Starts a 3-node Cairn cluster (release build; clients on 127.0.0.1:17001-17003,
# Raft on 17101-17103) and a 3-member etcd cluster (clients on 23791-23793, peers
# on 23801-23803), both with default settings, fsync on, and data directories
# under one temporary directory on the same disk (CAIRN_BENCH_PORTS="17000
# 17100 23790 23800" sets the four port bases). The two never run at the same
# time: for each workload the Cairn cluster is started, measured and stopped,
# then the etcd cluster (each keeps its data directory between workloads).
#
# Workloads, each with cairn-bench at --clients closed-loop clients (default 64)
# over 10,000 keys that were preloaded with 100-byte values:
#   writes          put only, at the leader
#   reads           linearizable gets at the leader (etcd: linearizable range)
#   stale reads     stale gets at a follower (etcd: serializable range at a follower)
# Then memory: a fresh cluster of each loaded with 100,000 keys of 1 KiB, and
# every node's VmRSS read from /proc/PID/status once all nodes applied the load.
#
# etcd is driven through its HTTP/JSON gateway (/v3/kv/put, /v3/kv/range), which
# costs it more per request than its gRPC API: see docs/performance.md.
#
# Prints a side-by-side table and writes every figure as JSON (--out, default
# build-bench/compare-etcd.json). Everything started is stopped on exit.
# The binaries come from a Release build in build-bench/ (CAIRN_BENCH_BUILD_DIR
# overrides), made or refreshed first unless --no-build is given.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=deploy/bench/lib.sh
source "$repo/deploy/bench/lib.sh"
bench_name=compare-etcd
etcd_token=cairn-bench
ports_default="17000 17100 23790 23800"
build=${CAIRN_BENCH_BUILD_DIR:-$repo/build-bench}
duration=12
warmup=3
clients=64
out=""
keep=0
memory=1
do_build=1
keys=10000
value_size=100
mem_keys=100000
mem_value_size=1024

usage() { sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --skip-memory) memory=0; shift ;;
    --no-build) do_build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare-etcd: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
out=${out:-$build/compare-etcd.json}

[[ -x $etcd_bin ]] || fail "$etcd_bin not found: install Debian's etcd-server (deploy/deps.sh --test)"
bench_ports
bench_build cairn-bench
ports_free "${cluster_ports[@]}"
bench_work cairn-vs-etcd

# run_bench KIND OUTFILE ARGS...: cairn-bench's JSON into OUTFILE.
run_bench() {
  local kind=$1 file=$2
  shift 2
  if ! "$bench" --target "$kind" --endpoints "$(endpoints_of "$kind")" --json "$@" \
    >"$file" 2>"$file.err"; then
    cat "$file.err" >&2
    fail "cairn-bench failed against $kind ($*)"
  fi
  if [[ -s $file.err ]]; then
    sed 's/^/    /' "$file.err" >&2
  fi
}

# A field of cairn-bench's JSON: jget FILE SECTION FIELD, SECTION one of
# total, preload, or top (top-level scalars).
jget() {
  local file=$1 section=$2 field=$3 obj
  case $section in
    top) obj=$(cat "$file") ;;
    *) obj=$(grep -o "\"$section\":{[^}]*}" "$file" | tail -1) ;;
  esac
  echo "$obj" | grep -o "\"$field\":[^,}]*" | head -1 | cut -d: -f2- | tr -d '"'
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

res=$work/results
mkdir -p "$res"
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
# The disk both clusters share: 4 KiB writes, each followed by a data sync.
fsync_ms=$(LC_ALL=C dd if=/dev/zero of="$work/disk-probe" bs=4k count=500 oflag=dsync 2>&1 |
  awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") printf "%.3f", $(i - 1) * 1000 / 500 }')
rm -f "$work/disk-probe"
log "disk: a 4 KiB write + data sync takes ${fsync_ms:-?} ms; load average $loadavg_start"
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# Throughput and latency.
workloads=(writes reads stale)
declare -A mix=([writes]=put=100 [reads]=get=100 [stale]=stale=100)
for w in "${workloads[@]}"; do
  for kind in cairn etcd; do
    cluster_up "$kind" "$work/$kind-bench" || fail "$kind: could not start a cluster"
    if [[ ! -f $res/$kind-preload.json ]]; then
      log "$kind: preloading $keys keys of $value_size bytes"
      run_bench "$kind" "$res/$kind-preload.json" --clients "$clients" --keys "$keys" \
        --value-size "$value_size" --preload --duration 0
    fi
    log "$kind: $w (${mix[$w]}), $clients clients, ${warmup}s warm-up + ${duration}s"
    run_bench "$kind" "$res/$kind-$w.json" --clients "$clients" --keys "$keys" \
      --value-size "$value_size" --mix "${mix[$w]}" --warmup "$warmup" --duration "$duration"
    if [[ $w == stale ]] && [[ $(jget "$res/$kind-$w.json" top leader) == \
      $(jget "$res/$kind-$w.json" top stale_endpoint) ]]; then
      fail "$kind: stale reads went to the leader"
    fi
    cluster_down
  done
done

# Memory: fresh clusters, 100,000 keys of 1 KiB.
declare -A rss_max rss_avg hwm_max disk_mib
if ((memory)); then
  for kind in cairn etcd; do
    cluster_up "$kind" "$work/$kind-memory" || fail "$kind: could not start a cluster"
    log "$kind: memory load, $mem_keys keys of $mem_value_size bytes"
    run_bench "$kind" "$res/$kind-memory.json" --clients "$clients" --memory-load \
      --keys "$mem_keys" --value-size "$mem_value_size"
    sleep 3 # let snapshots and compactions started by the load finish
    sum=0 max=0 hmax=0 list=""
    for p in "${cluster[@]}"; do
      r=$(rss_kib "$p")
      h=$(hwm_kib "$p")
      sum=$((sum + r))
      ((r > max)) && max=$r
      ((h > hmax)) && hmax=$h
      list+="${list:+,}$r"
    done
    rss_max[$kind]=$max
    rss_avg[$kind]=$((sum / ${#cluster[@]}))
    hwm_max[$kind]=$hmax
    echo "[$list]" >"$res/$kind-rss.json"
    disk_mib[$kind]=$(du -sm "$work/$kind-memory" | cut -f1)
    log "$kind: VmRSS per node (KiB): $list"
    cluster_down
  done
fi
loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)

# The table.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() { # verdict VALUE OP THRESHOLD
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "met" : "MISSED" }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

row() { printf '%-34s %14s %14s %8s   %-22s %s\n' "$@"; }
echo
echo "Cairn vs etcd $("$etcd_bin" --version | awk '/etcd Version/ {print $3}') (HTTP/JSON gateway), $clients clients," \
  "$keys keys x $value_size B, ${duration}s per workload after ${warmup}s warm-up"
echo "$(nproc) cores; 4 KiB write + sync ${fsync_ms:-?} ms; load average before $loadavg_start, after $loadavg_end"
row "" "Cairn" "etcd" "ratio" "target" "verdict"
declare -A label=([writes]="writes (put)" [reads]="linearizable reads" [stale]="stale reads from a follower")
json_targets=""
for w in "${workloads[@]}"; do
  c=$res/cairn-$w.json e=$res/etcd-$w.json
  c_ops=$(jget "$c" total ops_per_s) e_ops=$(jget "$e" total ops_per_s)
  r=$(ratio "$c_ops" "$e_ops")
  case $w in
    stale) need=2 ;;
    *) need=1 ;;
  esac
  v=$(verdict "$r" ">=" "$need")
  row "${label[$w]} ops/s" "$c_ops" "$e_ops" "$r" "Cairn >= ${need}x etcd" "$v"
  json_targets+="${json_targets:+,}\"${w}_throughput\":{\"cairn\":$c_ops,\"etcd\":$e_ops,\"ratio\":$r,\"need\":$need,\"met\":$([[ $v == met ]] && echo true || echo false)}"
  for q in p50 p99 p999; do
    cq=$(jget "$c" total "${q}_ms") eq=$(jget "$e" total "${q}_ms")
    if [[ $w == writes && $q == p99 ]]; then
      v=$(verdict "$cq" "<=" "$eq")
      row "  $q ms" "$cq" "$eq" "$(ratio "$cq" "$eq")" "Cairn <= etcd" "$v"
      json_targets+=",\"writes_p99\":{\"cairn\":$cq,\"etcd\":$eq,\"met\":$([[ $v == met ]] && echo true || echo false)}"
    else
      row "  $q ms" "$cq" "$eq" "$(ratio "$cq" "$eq")" "" ""
    fi
  done
  ce=$(jget "$c" total errors) ee=$(jget "$e" total errors)
  row "  errors" "$ce" "$ee" "" "" ""
done
if ((memory)); then
  v=$(verdict "${rss_max[cairn]}" "<=" "${rss_max[etcd]}")
  row "RSS per node, max MiB (100k x 1KiB)" "$(mib "${rss_max[cairn]}")" "$(mib "${rss_max[etcd]}")" \
    "$(ratio "${rss_max[cairn]}" "${rss_max[etcd]}")" "Cairn <= etcd" "$v"
  row "RSS per node, avg MiB" "$(mib "${rss_avg[cairn]}")" "$(mib "${rss_avg[etcd]}")" \
    "$(ratio "${rss_avg[cairn]}" "${rss_avg[etcd]}")" "" ""
  row "peak RSS (VmHWM) max MiB" "$(mib "${hwm_max[cairn]}")" "$(mib "${hwm_max[etcd]}")" "" "" ""
  row "data on disk, MiB (3 nodes)" "${disk_mib[cairn]}" "${disk_mib[etcd]}" "" "" ""
  row "load: puts/s" "$(jget "$res/cairn-memory.json" preload ops_per_s)" \
    "$(jget "$res/etcd-memory.json" preload ops_per_s)" "" "" ""
  json_targets+=",\"rss\":{\"cairn_max_kib\":${rss_max[cairn]},\"etcd_max_kib\":${rss_max[etcd]},\"met\":$([[ $v == met ]] && echo true || echo false)}"
fi

# The JSON file.
mkdir -p "$(dirname "$out")"
{
  printf '{"started_at":"%s","cores":%s,"fsync_4k_ms":%s,"loadavg_start":"%s","loadavg_end":"%s",' \
    "$started_at" "$(nproc)" "${fsync_ms:-null}" "$loadavg_start" "$loadavg_end"
  printf '"etcd_version":"%s","cairn_commit":"%s",' \
    "$("$etcd_bin" --version | awk '/etcd Version/ {print $3}')" \
    "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  printf '"clients":%s,"keys":%s,"value_size":%s,"duration_s":%s,"warmup_s":%s,' \
    "$clients" "$keys" "$value_size" "$duration" "$warmup"
  printf '"targets":{%s},"runs":{' "$json_targets"
  first=1
  for kind in cairn etcd; do
    for w in preload "${workloads[@]}"; do
      ((first)) || printf ','
      first=0
      printf '"%s_%s":%s' "$kind" "$w" "$(cat "$res/$kind-$w.json")"
    done
  done
  printf '}'
  if ((memory)); then
    printf ',"memory":{"keys":%s,"value_size":%s' "$mem_keys" "$mem_value_size"
    for kind in cairn etcd; do
      printf ',"%s":{"rss_kib":%s,"rss_max_kib":%s,"rss_avg_kib":%s,"hwm_max_kib":%s,"disk_mib":%s,"load":%s}' \
        "$kind" "$(cat "$res/$kind-rss.json")" "${rss_max[$kind]}" "${rss_avg[$kind]}" \
        "${hwm_max[$kind]}" "${disk_mib[$kind]}" "$(cat "$res/$kind-memory.json")"
    done
    printf '}'
  fi
  printf '}\n'
} >"$out"
echo
echo "figures written to $out"
