#!/usr/bin/env bash
# A local 3-node Cairn cluster for development.
#
#   deploy/local/cluster.sh up       install what is missing, build, start 3 nodes
#   deploy/local/cluster.sh status   each node's endpoints, pid and role
#   deploy/local/cluster.sh down     stop the nodes (data is kept)
#   deploy/local/cluster.sh wipe     stop the nodes and delete their data (backups stay)
#   deploy/local/cluster.sh restore [REVISION [CLUSTER]]
#                                    wipe, then start a new cluster restored from
#                                    the backups (latest, or at REVISION; CLUSTER
#                                    picks among several: cairnctl snapshot list
#                                    --from URL names them)
#
# Node N (1..3) serves clients on 127.0.0.1:700N (the defaults cairnctl uses
# when given no --endpoints), Raft on 127.0.0.1:710N, and HTTP (the JSON API,
# /health, /ready, /metrics and the console) on http://127.0.0.1:800N, all on
# loopback only. Data and logs live in $CAIRN_LOCAL_DIR (default:
# .local-cluster/ in the repository); backups (docs/disaster-recovery.md) go
# to the file:// store in its backups/ directory, or to $CAIRN_LOCAL_BACKUP_URL
# (an s3:// URL takes its endpoint, region and credentials from the AWS
# variables: AWS_ENDPOINT_URL for MinIO or s3rver, AWS_REGION,
# AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${CAIRN_LOCAL_DIR:-$repo/.local-cluster}
[[ $dir == /* ]] || dir=$PWD/$dir # file:// URLs need an absolute path
# Tests may run another build tree's binaries with CAIRN_BUILD_DIR.
build_dir=${CAIRN_BUILD_DIR:-$repo/build}
bin=$build_dir/bin
nodes=(1 2 3)
# Port bases can be moved (tests do) with CAIRN_LOCAL_CLIENT_BASE / _RAFT_BASE
# / _HTTP_BASE.
cbase=${CAIRN_LOCAL_CLIENT_BASE:-7000}
rbase=${CAIRN_LOCAL_RAFT_BASE:-7100}
hbase=${CAIRN_LOCAL_HTTP_BASE:-8000}
caddr() { echo "127.0.0.1:$((cbase + $1))"; }
raddr() { echo "127.0.0.1:$((rbase + $1))"; }
haddr() { echo "127.0.0.1:$((hbase + $1))"; }
initial="1=$(raddr 1)/$(caddr 1),2=$(raddr 2)/$(caddr 2),3=$(raddr 3)/$(caddr 3)"
backup_url=${CAIRN_LOCAL_BACKUP_URL:-file://$dir/backups}
restore_args=()
export CAIRN_ENDPOINTS="$(caddr 1),$(caddr 2),$(caddr 3)"

pid_of() {
  local f=$dir/node$1.pid
  [[ -f $f ]] || return 1
  local pid
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  # The pid must still be a cairnd (pids are reused).
  [[ $(cat /proc/"$pid"/comm 2>/dev/null) == cairnd ]] || return 1
  echo "$pid"
}

build() {
  "$repo"/deploy/deps.sh
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  cmake --build "$build_dir" -j"$(nproc)" >/dev/null
}

up() {
  build
  mkdir -p "$dir"
  [[ $backup_url == file://* ]] && mkdir -p "${backup_url#file://}"
  local started=0
  for n in "${nodes[@]}"; do
    if pid=$(pid_of "$n"); then
      echo "node $n already running (pid $pid)"
      continue
    fi
    "$bin"/cairnd --id "$n" --data-dir "$dir/node$n" \
      --raft-addr "$(raddr "$n")" --client-addr "$(caddr "$n")" --http-addr "$(haddr "$n")" \
      --initial-cluster "$initial" --backup-url "$backup_url" "${restore_args[@]}" \
      >>"$dir/node$n.log" 2>&1 &
    echo $! >"$dir/node$n.pid"
    started=1
  done
  # Wait for an elected leader so that the next command just works.
  local i
  for i in $(seq 1 100); do
    # (Capture first: grep -q exiting early would fail the pipe under pipefail.)
    if [[ $("$bin"/cairnctl status --json 2>/dev/null) == *'"state":"leader"'* ]]; then
      break
    fi
    for n in "${nodes[@]}"; do
      if ! pid_of "$n" >/dev/null; then
        echo "node $n failed to start; its log ($dir/node$n.log) ends with:" >&2
        tail -5 "$dir/node$n.log" >&2
        exit 1
      fi
    done
    sleep 0.1
  done
  ((started)) && echo "started a 3-node cluster; data and logs in $dir"
  status
  echo "console: http://$(haddr 1)/ (any node's HTTP URL serves it)"
}

status() {
  local fmt="%-5s %-8s %-16s %-16s %-24s %s\n"
  printf "$fmt" NODE PID CLIENT RAFT HTTP ROLE
  for n in "${nodes[@]}"; do
    local pid role
    if pid=$(pid_of "$n"); then
      # A node that is alive but does not answer (paused, starting) is
      # "unreachable", not the end of the table.
      role=$("$bin"/cairnctl status --endpoint "$(caddr "$n")" --json 2>/dev/null |
        sed -n 's/.*"state":"\([a-z]*\)".*/\1/p') || true
      printf "$fmt" "$n" "$pid" "$(caddr "$n")" "$(raddr "$n")" "http://$(haddr "$n")" "${role:-unreachable}"
    else
      printf "$fmt" "$n" "-" "$(caddr "$n")" "$(raddr "$n")" "http://$(haddr "$n")" "stopped"
    fi
  done
  echo "data: $dir"
  echo "backups: $backup_url"
}

down() {
  local pids=()
  for n in "${nodes[@]}"; do
    if pid=$(pid_of "$n"); then
      kill -TERM "$pid"
      pids+=("$pid")
    fi
    rm -f "$dir/node$n.pid"
  done
  # A clean stop hands leadership over first; give it a few seconds.
  local i
  for i in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "stopped; data kept in $dir"
}

# Node data and logs go; the backups (if under $dir) stay.
wipe() {
  down
  for n in "${nodes[@]}"; do
    rm -rf "$dir/node$n" "$dir/node$n.log" "$dir/node$n.pid"
  done
  echo "wiped the nodes' data in $dir; backups kept at $backup_url"
}

case "${1:-}" in
  up) up ;;
  status) status ;;
  down) down ;;
  wipe) wipe ;;
  restore)
    restore_args=(--restore-from "$backup_url")
    check_args=(--from "$backup_url")
    if [[ -n ${2:-} ]]; then
      restore_args+=(--restore-revision "$2")
      check_args+=(--revision "$2")
    fi
    if [[ -n ${3:-} ]]; then
      restore_args+=(--restore-cluster "$3")
      check_args+=(--cluster "$3")
    fi
    # Restore once into scratch space first: a point the store cannot give
    # fails here, before the running cluster is wiped.
    [[ -x $bin/cairnctl ]] || build
    scratch=$(mktemp -d)
    if ! out=$("$bin"/cairnctl --json snapshot restore "${check_args[@]}" --data-dir "$scratch/n"); then
      rm -rf "$scratch"
      echo "$0: nothing was wiped. After a restore the store holds more than one cluster:" \
        "name the one to restore with $0 restore REVISION CLUSTER" \
        "(cairnctl snapshot list --from $backup_url lists them)" >&2
      exit 1
    fi
    rm -rf "$scratch"
    rev=$(sed -n 's/.*"revision":\([0-9]*\).*/\1/p' <<<"$out" | head -1)
    echo "restoring revision $rev from $backup_url${3:+ (cluster $3)}: the nodes' data is wiped first"
    wipe
    up
    ;;
  *) echo "usage: $0 up|status|down|wipe|restore [REVISION [CLUSTER]]" >&2; exit 2 ;;
esac
