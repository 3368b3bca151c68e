# shellcheck shell=bash
# What the benchmark scripts beside etcd (compare-etcd.sh, watch-fanout.sh)
# share: messages, the Release build, port checks, and starting and stopping
# 3-node Cairn and etcd clusters on 127.0.0.1. Sourced, never run.
#
# The sourcing script sets, before it calls anything here:
#   bench_name   the prefix of log lines ("compare-etcd")
#   repo, build  the source tree and the build directory
#   do_build     1: make or refresh the binaries first (bench_build)
#   keep         1: keep the work directory on exit
#   ports_default  "CAIRN_CLIENT CAIRN_RAFT ETCD_CLIENT ETCD_PEER": port bases;
#                node n (1-3) listens on base + n. CAIRN_BENCH_PORTS, in the
#                same form, overrides them (to run beside another copy).
#   etcd_token   etcd's --initial-cluster-token
# and calls bench_ports once the options are parsed.

log() { printf '[%s %s] %s\n' "$bench_name" "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "error: $*"; exit 1; }

etcd_bin=/usr/bin/etcd

# bench_ports: sets the port bases, the endpoint lists cairn_endpoints and
# etcd_endpoints, the clusters' membership (cairn_initial, etcd_initial), and
# the array cluster_ports of every port a cluster uses.
bench_ports() {
  local n base
  read -r cairn_client_base cairn_raft_base etcd_client_base etcd_peer_base \
    <<<"${CAIRN_BENCH_PORTS:-$ports_default}"
  [[ -n $etcd_peer_base ]] || fail "CAIRN_BENCH_PORTS wants four port bases"
  cairn_endpoints="" etcd_endpoints="" cairn_initial="" etcd_initial="" cluster_ports=()
  for n in 1 2 3; do
    cairn_endpoints+="${cairn_endpoints:+,}127.0.0.1:$((cairn_client_base + n))"
    etcd_endpoints+="${etcd_endpoints:+,}127.0.0.1:$((etcd_client_base + n))"
    cairn_initial+="${cairn_initial:+,}$n=127.0.0.1:$((cairn_raft_base + n))"
    cairn_initial+="/127.0.0.1:$((cairn_client_base + n))"
    etcd_initial+="${etcd_initial:+,}e$n=http://127.0.0.1:$((etcd_peer_base + n))"
  done
  for base in "$cairn_client_base" "$cairn_raft_base" "$etcd_client_base" "$etcd_peer_base"; do
    for n in 1 2 3; do cluster_ports+=($((base + n))); done
  done
}

endpoints_of() { [[ $1 == cairn ]] && echo "$cairn_endpoints" || echo "$etcd_endpoints"; }

# bench_build TOOL: make (unless do_build is 0) and check cairnd and TOOL, a
# Release build in $build; sets cairnd and bench to their paths.
bench_build() {
  local tool=$1
  if ((do_build)); then
    log "building cairnd and $tool (Release) in $build"
    if [[ ! -f $build/CMakeCache.txt ]]; then
      cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    cmake --build "$build" -j"$(nproc)" --target cairnd "$tool" >/dev/null
  fi
  cairnd=$build/bin/cairnd
  bench=$build/bin/$tool
  [[ -x $cairnd && -x $bench ]] || fail "no cairnd or $tool in $build/bin"
  if [[ $(grep -s '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2) != Release ]]; then
    log "warning: $build is not a Release build"
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ports_free PORT...: fail unless every port is free (a stray server would be
# measured instead of ours).
ports_free() {
  local p
  for p in "$@"; do
    if port_busy "$p"; then
      fail "port $p is in use; stop whatever listens there first"
    fi
  done
}

# stop_pids PID...: SIGTERM, up to 15 s, then SIGKILL; reaps them.
stop_pids() {
  local p alive _
  (($# == 0)) && return 0
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 1 150); do
    alive=0
    for p in "$@"; do
      if kill -0 "$p" 2>/dev/null; then alive=1; fi
    done
    ((alive)) || break
    sleep 0.1
  done
  for p in "$@"; do
    if kill -0 "$p" 2>/dev/null; then
      log "pid $p did not stop on SIGTERM; killing it"
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  for p in "$@"; do
    wait "$p" 2>/dev/null || true
  done
}

# bench_work TEMPLATE: sets work to a new temporary directory named after
# TEMPLATE and pids to (); on exit every pid in pids is stopped and work
# removed (unless keep is 1).
bench_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local rc=$?
  if ((${#pids[@]})); then
    stop_pids "${pids[@]}"
  fi
  if ((keep)); then
    log "kept $work"
  else
    rm -rf "$work"
  fi
  exit $rc
}

# cluster_up cairn|etcd DIR: start the cluster whose data lives in DIR (a new
# one when DIR is empty, else it restarts with its data); sets the global
# array `cluster` to its pids. Returns once every node lives and its client
# port accepts, or 1 when a node did not come up (a port taken meanwhile,
# say), after stopping the others.
cluster=()
cluster_up() {
  local kind=$1 dir=$2 n i p up state
  mkdir -p "$dir"
  cluster=()
  for n in 1 2 3; do
    if [[ $kind == cairn ]]; then
      "$cairnd" --id "$n" --data-dir "$dir/node$n" --initial-cluster "$cairn_initial" \
        --raft-addr "127.0.0.1:$((cairn_raft_base + n))" \
        --client-addr "127.0.0.1:$((cairn_client_base + n))" --http-addr= \
        >>"$dir/node$n.log" 2>&1 &
      cluster+=($!)
      continue
    fi
    state=new
    [[ -d $dir/e$n/member ]] && state=existing
    "$etcd_bin" --name "e$n" --data-dir "$dir/e$n" \
      --listen-client-urls "http://127.0.0.1:$((etcd_client_base + n))" \
      --advertise-client-urls "http://127.0.0.1:$((etcd_client_base + n))" \
      --listen-peer-urls "http://127.0.0.1:$((etcd_peer_base + n))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_peer_base + n))" \
      --initial-cluster "$etcd_initial" --initial-cluster-state "$state" \
      --initial-cluster-token "$etcd_token" --logger zap --log-outputs stderr \
      >>"$dir/e$n.log" 2>&1 &
    cluster+=($!)
  done
  pids+=("${cluster[@]}")
  for i in $(seq 1 100); do
    up=0
    for n in 0 1 2; do
      if ! kill -0 "${cluster[$n]}" 2>/dev/null; then
        log "$kind node $((n + 1)) exited at start; its log ends with:"
        tail -n 5 "$dir"/*"$((n + 1))".log >&2 || true
        cluster_down
        return 1
      fi
      if [[ $kind == cairn ]]; then p=$((cairn_client_base + 1 + n)); else p=$((etcd_client_base + 1 + n)); fi
      port_busy "$p" && up=$((up + 1))
    done
    ((up == 3)) && return 0
    sleep 0.1
  done
  log "$kind: the cluster did not come up in 10 s"
  cluster_down
  return 1
}

# cluster_down: stop the cluster cluster_up started.
cluster_down() {
  local p keep_pids=()
  stop_pids "${cluster[@]}"
  for p in "${pids[@]}"; do
    [[ " ${cluster[*]} " == *" $p "* ]] || keep_pids+=("$p")
  done
  pids=("${keep_pids[@]+"${keep_pids[@]}"}")
  cluster=()
}
