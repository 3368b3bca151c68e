#!/usr/bin/env bash
# The local fault harness: one command starts a Cairn cluster in network
# namespaces, drives it with the register, set and watch workloads, injects faults
# on a schedule, heals, reads, checks and plots. See jepsen/local/README.md.
#
#   jepsen/local/run.sh [--nodes 3|5] [--faults partition,kill,pause]
#                       [--duration 60] [--interval 10] [--settle 10]
#                       [--rate 100] [--threads 5] [--seed N] [--build DIR]
#                       [--subnet 10.77.0] [--results DIR] [--heal-bound 5]
#                       [--snapshot-threshold 2048] [--backup]
#                       [--sabotage no-drop,crash,stall,corrupt-archive,ignore-sync]
#                                        (tests the harness)
#   jepsen/local/run.sh --cleanup      remove what an interrupted run left
#
# Faults: partition (one, leader, half, ring, oneway in turn), partition-KIND,
# kill, kill-leader, pause, pause-leader, mixed (a partition plus a kill or
# pause), rolling (every node restarted in turn with SIGTERM, the leader
# last), member (a follower removed, wiped, joined again and promoted),
# lose-unsynced (a minority of nodes keep their data on cairn-lazyfs and lose
# what they had not synced in a crash, at the moment the majority needs
# them), all, none. --backup: every node backs up to RESULTS/backups
# (file://), and the run must end with an archive that verifies and restores
# to the cluster's final revision and state hash. Exit status: 0 the run is
# VALID, 1 INVALID, 77 skipped. Needs root (namespaces, iptables).
set -uo pipefail
# The whole script is one compound command, so bash reads all of it before
# running any: editing run.sh while a run goes on cannot change that run.
{

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build"
nodes=3
faults="partition,kill,pause"
duration=60
interval=10
settle=10
rate=100
threads=5
seed=$RANDOM
heal_bound=5
# Small snapshots, so that runs cross snapshot boundaries often (cairnd's
# default is 32768 entries; bugs hide at the boundaries: docs/raft.md).
snap_threshold=2048
sabotage=""
# --backup: disaster recovery under faults (docs/disaster-recovery.md).
backup=0
cleanup_only=0
results=
# Every object this harness creates carries this prefix (interface names are
# at most 15 bytes: "cjl" + 5 digits + suffix).
tag=cjl
subnet=10.77.0

while (($#)); do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --faults) faults=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --subnet) subnet=$2; shift 2 ;;
    --heal-bound) heal_bound=$2; shift 2 ;;
    --snapshot-threshold) snap_threshold=$2; shift 2 ;;
    --sabotage) sabotage=$2; shift 2 ;;
    --backup) backup=1; shift ;;
    --results) results=$2; shift 2 ;;
    --cleanup) cleanup_only=1; shift ;;
    -h|--help) sed -n 2,24p "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "run.sh: skipped: needs root (network namespaces, iptables)" >&2
  exit 77
fi

# Removes every namespace, bridge and process of any run of this harness.
cleanup_all() {
  local ns pid link
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$tag"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -CONT "$pid" 2>/dev/null
      kill -9 "$pid" 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$tag"); do
    ip link del "$link" 2>/dev/null
  done
  # lazyfs mounts (their file system processes end when unmounted).
  for mnt in $(awk '$1 == "cairn-lazyfs" {print $2}' /proc/mounts); do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
  done
}

if ((cleanup_only)); then
  cleanup_all
  echo "run.sh: removed every ${tag}* namespace, link and node process"
  exit 0
fi

for tool in ip iptables gnuplot; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (deploy/deps.sh --test)" >&2; exit 1; }
done
worker="$build/bin/cairn-chaos-worker"
cairnd="$build/bin/cairnd"
checker="$build/bin/cairn-check"
cairnctl="$build/bin/cairnctl"
if [[ ! -x $worker || ! -x $cairnd || ! -x $checker || ! -x $cairnctl ]]; then
  # The same build the README's commands make; configure it if needed.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target cairnd cairn-chaos-worker cairn-check cairnctl >/dev/null
fi
needed=("$worker" "$cairnd" "$cairnctl")
for b in "${needed[@]}"; do
  [[ -x $b ]] || { echo "run.sh: $b not built (cmake --build $build)" >&2; exit 1; }
done
if [[ $nodes != 3 && $nodes != 5 ]]; then
  echo "run.sh: --nodes must be 3 or 5" >&2; exit 2
fi
if [[ ",$sabotage," == *,corrupt-archive,* ]] && ((!backup)); then
  echo "run.sh: --sabotage corrupt-archive needs --backup" >&2; exit 2
fi
# The schedule takes the fault families in turn (partition, kill, pause, ...);
# "partition" itself rotates through its kinds, "all" is every family.
families=()
IFS=, read -ra wanted <<<"$faults"
for f in "${wanted[@]}"; do
  case "$f" in
    partition|partition-one|partition-leader|partition-half|partition-ring|partition-oneway| \
    kill|kill-leader|pause|pause-leader|mixed|rolling|member|lose-unsynced) families+=("$f") ;;
    all) families+=(partition kill-leader pause mixed rolling partition kill pause-leader mixed member
                    lose-unsynced) ;;
    none) ;;
    *) echo "run.sh: unknown fault $f" >&2; exit 2 ;;
  esac
done
# lose-unsynced: the first floor(N/2) nodes, a minority, keep their data
# directories on cairn-lazyfs (lazyfs.c), which can lose what was not synced.
lazy_nodes=0
if [[ " ${families[*]} " == *" lose-unsynced "* ]]; then
  lazy_nodes=$((nodes / 2))
  lazyfs="$build/bin/cairn-lazyfs"
  if [[ ! -x $lazyfs ]]; then
    cmake --build "$build" --target cairn-lazyfs >/dev/null 2>&1
  fi
  if [[ ! -x $lazyfs || ! -e /dev/fuse ]]; then
    echo "run.sh: lose-unsynced needs $lazyfs and /dev/fuse (deploy/deps.sh --test installs libfuse3-dev; then cmake)" >&2
    exit 1
  fi
fi
if [[ ",$sabotage," == *,ignore-sync,* ]] && ((!lazy_nodes)); then
  echo "run.sh: --sabotage ignore-sync needs the lose-unsynced fault" >&2; exit 2
fi
if ip -o addr show | grep " $subnet.254/" >/dev/null; then
  echo "run.sh: $subnet.254 is in use: another run is going on (or run --cleanup)" >&2
  exit 1
fi

run_id=$(printf '%05d' $(($$ % 100000)))
pfx="$tag$run_id"
br="${pfx}br"
results=${results:-"$here/results/$(date -u +%Y%m%dT%H%M%SZ)-$run_id"}
# A --results directory is reused only if it holds an earlier run's results
# (node data directories must not carry over); anything else is refused.
if [[ -d $results ]] && [[ -n $(ls -A "$results") ]]; then
  if [[ -f $results/run.log ]]; then
    rm -rf "$results"
  else
    echo "run.sh: $results is not empty and not a results directory" >&2; exit 2
  fi
fi
mkdir -p "$results"
RANDOM=$seed
# --backup: one file:// store for the whole cluster, a directory on the host
# that every namespace sees (the URL needs an absolute path). Snapshots every
# 15 s, so that a 45-second run crosses several; the log's segments merged
# per 2 s (and 24 s) window, so that merges meet the faults too; no scheduled
# verification (the harness verifies at the end, from the store itself).
backup_args=()
if ((backup)); then
  backup_dir="$(cd "$results" && pwd)/backups"
  mkdir -p "$backup_dir"
  backup_url="file://$backup_dir"
  backup_args=(--backup-url "$backup_url" --backup-snapshot-interval-ms 15000
               --backup-compact-ms 2000 --backup-verify-interval-ms 0)
fi

ns_of() { echo "${pfx}n$1"; }
ip_of() { echo "$subnet.$1"; }
endpoints=$(for i in $(seq 1 "$nodes"); do printf '%s:7001,' "$(ip_of "$i")"; done)
endpoints=${endpoints%,}
initial=$(for i in $(seq 1 "$nodes"); do printf '%s=%s:7101/%s:7001,' "$i" "$(ip_of "$i")" "$(ip_of "$i")"; done)
initial=${initial%,}

declare -A pid lazy_pid
bg_pids=()

on_exit() {
  local rc=$?
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  for i in $(seq 1 "$nodes"); do
    [[ -n ${pid[$i]:-} ]] && { kill -CONT "${pid[$i]}" 2>/dev/null; kill -9 "${pid[$i]}" 2>/dev/null; }
    ip netns del "$(ns_of "$i")" 2>/dev/null
  done
  ip link del "$br" 2>/dev/null
  # The lazy nodes' data stays in RESULTS/nodeN.disk once unmounted.
  for i in "${!lazy_pid[@]}"; do
    [[ -n ${pid[$i]:-} ]] && wait "${pid[$i]}" 2>/dev/null
    umount "$results/node$i" 2>/dev/null || umount -l "$results/node$i" 2>/dev/null
    wait "${lazy_pid[$i]}" 2>/dev/null
  done
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$results/run.log" >&2; }

# --- network: a bridge in the root namespace (the workers' side) and one
# namespace per node, each with a veth whose other end is a bridge port.
ip link add "$br" type bridge || exit 1
ip addr add "$subnet.254/24" dev "$br"
ip link set "$br" up
for i in $(seq 1 "$nodes"); do
  ns=$(ns_of "$i")
  ip netns add "$ns" || exit 1
  ip link add "${pfx}v$i" type veth peer name eth0 netns "$ns" || exit 1
  ip link set "${pfx}v$i" master "$br" up
  ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

# The lazy nodes' data directories: RESULTS/nodeN is a cairn-lazyfs mount of
# RESULTS/nodeN.disk. --sabotage ignore-sync mounts it with --ignore-sync.
for i in $(seq 1 "$lazy_nodes"); do
  mkdir -p "$results/node$i.disk" "$results/node$i"
  lazy_flags=()
  [[ ",$sabotage," == *,ignore-sync,* ]] && lazy_flags=(--ignore-sync)
  "$lazyfs" ${lazy_flags[@]+"${lazy_flags[@]}"} "$results/node$i.disk" "$results/node$i" \
    >>"$results/lazyfs$i.log" 2>&1 &
  lazy_pid[$i]=$!
  for _ in $(seq 1 100); do mountpoint -q "$results/node$i" && break; sleep 0.05; done
  mountpoint -q "$results/node$i" || { log "cairn-lazyfs did not mount $results/node$i"; exit 1; }
done

start_node() { # node [extra cairnd flags...]
  local i=$1
  shift
  ip netns exec "$(ns_of "$i")" "$cairnd" "$@" --id "$i" --data-dir "$results/node$i" \
    --raft-addr "$(ip_of "$i"):7101" --client-addr "$(ip_of "$i"):7001" \
    --http-addr "$(ip_of "$i"):8001" \
    --initial-cluster "$initial" --snapshot-threshold "$snap_threshold" --snapshot-log-percent 0 \
    --snapshot-trailing "$((snap_threshold / 4))" ${backup_args[@]+"${backup_args[@]}"} \
    >>"$results/node$i.log" 2>&1 &
  pid[$i]=$!
  echo "${pid[$i]}" >"$results/node$i.pid"
}

# status: one line per node, "ENDPOINT ID STATE TERM LEADER COMMIT APPLIED REV HASH".
status() { "$worker" --status "$endpoints"; }
leader() { status | awk '$3 == "leader" {print $2; exit}'; }

t0=$(date +%s%N)
now_ns() { echo $(($(date +%s%N) - t0)); }
nemesis_event() { # f value
  printf '{:type :info, :process :nemesis, :f :%s, :value "%s", :time %s}\n' "$1" "$2" "$(now_ns)" \
    >>"$results/nemesis.edn"
  log "nemesis: $1 $2"
}

for i in $(seq 1 "$nodes"); do start_node "$i"; done
log "cluster of $nodes nodes starting in namespaces ${pfx}n*, results in $results"
for _ in $(seq 1 100); do
  l=$(leader)
  [[ -n $l ]] && break
  sleep 0.2
done
if [[ -z ${l:-} ]]; then
  log "no leader after 20 s"; status | tee -a "$results/run.log"; exit 1
fi
log "leader: node $l"

# --- the status monitor: every ~second, who leads at which term.
(
  while :; do
    status | awk -v t="$(now_ns)" '{print t, $0}' >>"$results/status.log"
    sleep 0.5
  done
) &
bg_pids+=($!)

# --- faults. Each is a start and a stop; partitions are iptables DROP rules
# inside the node namespaces, so traffic between the two sides is dropped
# whoever sends it; the workers (root namespace, $subnet.254) still reach
# every node. Every fault is recorded in faults.tsv with the evidence that it
# really happened (packets dropped, the process gone, the process stopped),
# which the validation at the end reads.
# --sabotage breaks the run on purpose, to show that the validation below
# notices (tests/scripts/chaos_selftest.sh): no-drop installs partitions
# that drop nothing, crash kills a node with SIGSEGV outside the schedule,
# stall stops every node for longer than --heal-bound at the final heal,
# corrupt-archive (with --backup) flips a byte in the backup store's objects
# after the nodes stop, before the backup is verified.
sabotaged() { [[ ",$sabotage," == *",$1,"* ]]; }
cut_link() { # a b: drop everything from b at a and everything from a to b
  sabotaged no-drop && return
  ip netns exec "$(ns_of "$1")" iptables -w -A INPUT -s "$(ip_of "$2")" -j DROP
  ip netns exec "$(ns_of "$1")" iptables -w -A OUTPUT -d "$(ip_of "$2")" -j DROP
}
partition() { # "1 2" "3": cut the groups apart, both ways
  local a b
  for a in $1; do for b in $2; do cut_link "$a" "$b"; cut_link "$b" "$a"; done; done
}
heal_partition() {
  local i dropped=0 n
  for i in $(seq 1 "$nodes"); do
    # What the rules dropped: proof that the partition was real.
    n=$(ip netns exec "$(ns_of "$i")" iptables -w -L -v -x -n 2>/dev/null |
        awk '$3 == "DROP" {s += $1} END {print s + 0}')
    dropped=$((dropped + n))
    ip netns exec "$(ns_of "$i")" iptables -w -F
  done
  echo "$dropped"
}
# A node that exits when the schedule did not kill it crashed: record how
# (exit status 139 is SIGSEGV) and restart it so that the run goes on.
declare -A down
reap_crashed() {
  local i st
  for i in $(seq 1 "$nodes"); do
    [[ -n ${down[$i]:-} ]] && continue
    if ! kill -0 "${pid[$i]}" 2>/dev/null; then
      wait "${pid[$i]}" 2>/dev/null; st=$?
      echo "$(now_ns) node $i (pid ${pid[$i]}) exited unexpectedly with status $st" >>"$results/crashes.txt"
      log "node $i (pid ${pid[$i]}) CRASHED: exit status $st; restarting it"
      start_node "$i"
    fi
  done
}
others() { seq 1 "$nodes" | grep -vx "$1" | tr '\n' ' '; }
random_node() { echo $((RANDOM % nodes + 1)); }
shuffled_nodes() { # the node ids in a seeded random order, space-separated
  local order j t x
  mapfile -t order < <(seq 1 "$nodes")
  for ((j = nodes - 1; j > 0; j--)); do
    t=$((RANDOM % (j + 1))); x=${order[$j]}; order[$j]=${order[$t]}; order[$t]=$x
  done
  echo "${order[*]}"
}

# Partitions. Each sets part_desc; the leader is looked up when needed.
start_partition() { # kind
  local kind=$1 victim order a b i j
  case "$kind" in
    partition-one|partition-leader)
      victim=$(random_node)
      if [[ $kind == partition-leader ]]; then victim=$(leader); [[ -z $victim ]] && victim=$(random_node); fi
      partition "$victim" "$(others "$victim")"
      part_desc="[$victim] | [$(others "$victim" | sed 's/ $//')]"
      part_victim=$victim
      ;;
    partition-half)
      # A random minority of floor(n/2) nodes against the majority.
      read -ra order <<<"$(shuffled_nodes)"
      a="${order[*]:0:$((nodes / 2))}"
      b="${order[*]:$((nodes / 2))}"
      partition "$a" "$b"
      part_desc="[$a] | [$b]"
      part_victim=-
      ;;
    partition-ring)
      # Majorities ring (Jepsen's): in a random ring order each node keeps
      # its neighbours and loses the rest, so every node sees a majority and
      # no two see the same one. With 3 nodes a ring is complete; the
      # nearest thing is one cut link, leaving a bridge node that sees both.
      # That link is the leader's to a follower: followers do not talk to
      # each other, so cutting theirs would change nothing.
      read -ra order <<<"$(shuffled_nodes)"
      part_desc="ring ${order[*]}:"
      if ((nodes == 3)); then
        a=$(leader); [[ -z $a ]] && a=${order[0]}
        b=$(others "$a" | awk -v r=$((RANDOM % 2 + 1)) '{print $r}')
        partition "$a" "$b"
        part_desc="ring: cut $a-$b (the leader's link to a follower)"
      else
        for ((i = 0; i < nodes; i++)); do
          for ((j = i + 2; j < nodes; j++)); do
            ((i == 0 && j == nodes - 1)) && continue
            partition "${order[$i]}" "${order[$j]}"
            part_desc+=" cut ${order[$i]}-${order[$j]}"
          done
        done
      fi
      part_victim=-
      ;;
    partition-oneway)
      # The leader goes deaf (hears nobody, is heard by all) or mute (hears
      # all, is heard by nobody): one-way loss, which symmetric cuts miss.
      victim=$(leader); [[ -z $victim ]] && victim=$(random_node)
      for b in $(others "$victim"); do
        if ((RANDOM % 2 == 0)); then
          sabotaged no-drop ||
            ip netns exec "$(ns_of "$victim")" iptables -w -A INPUT -s "$(ip_of "$b")" -j DROP
          part_desc+=" $b-x>$victim"
        else
          sabotaged no-drop ||
            ip netns exec "$(ns_of "$victim")" iptables -w -A OUTPUT -d "$(ip_of "$b")" -j DROP
          part_desc+=" $victim-x>$b"
        fi
      done
      part_desc="one-way:$part_desc"
      part_victim=$victim
      ;;
  esac
}

# A node's data directory emptied (a lazy node's is a mount point, which stays).
wipe_node() { # node
  if mountpoint -q "$results/node$1"; then
    find "$results/node$1" -mindepth 1 -delete
  else
    rm -rf "$results/node$1"
  fi
}

# Process faults. start_* set proc_evidence to what shows the fault took.
start_kill() { # node
  local v=$1
  reap_crashed
  down[$v]=1
  kill -9 "${pid[$v]}" 2>/dev/null
  wait "${pid[$v]}" 2>/dev/null
  if kill -0 "${pid[$v]}" 2>/dev/null; then proc_evidence="pid ${pid[$v]} still alive"; proc_ok=0
  else proc_evidence="pid ${pid[$v]} gone"; proc_ok=1; fi
}
stop_kill() { start_node "$1"; unset "down[$1]"; }
start_pause() { # node
  local v=$1 st
  kill -STOP "${pid[$v]}" 2>/dev/null
  sleep 0.2
  st=$(awk '{print $3}' "/proc/${pid[$v]}/stat" 2>/dev/null)
  if [[ $st == T ]]; then proc_evidence="pid ${pid[$v]} stopped"; proc_ok=1
  else proc_evidence="pid ${pid[$v]} in state '${st:-gone}'"; proc_ok=0; fi
}
stop_pause() { kill -CONT "${pid[$1]}" 2>/dev/null; }
# A rolling restart, as an operator upgrades (docs/operations.md): every node
# in turn, followers first and the leader last, each stopped with SIGTERM (a
# leader hands leadership over first), which must exit 0, then started again
# and waited for until it follows a leader. Sets rolling_leader (the leader
# when it began) and rolling_leader_ns (when the leader's turn began).
start_rolling() {
  local l v st ok=1 exits="" order=()
  reap_crashed
  l=$(leader); [[ -z $l ]] && l=$(random_node)
  for v in $(shuffled_nodes); do [[ $v != "$l" ]] && order+=("$v"); done
  order+=("$l")
  rolling_leader=$l
  for v in "${order[@]}"; do
    down[$v]=1
    [[ $v == "$l" ]] && rolling_leader_ns=$(now_ns)
    kill -TERM "${pid[$v]}" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "${pid[$v]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pid[$v]}" 2>/dev/null; then
      kill -9 "${pid[$v]}" 2>/dev/null; wait "${pid[$v]}" 2>/dev/null; st=killed; ok=0
    else
      wait "${pid[$v]}" 2>/dev/null; st=$?
      ((st == 0)) || ok=0
    fi
    exits+=" $v:$st"
    start_node "$v"
    unset "down[$v]"
    for _ in $(seq 1 100); do
      status | awk -v id="$v" '$2 == id && NF >= 5 && $5 != 0 {f = 1} END {exit !f}' && break
      sleep 0.2
    done
  done
  proc_evidence="restarted ${order[*]} in turn (node:exit status$exits)"
  proc_ok=$ok
}

# A membership change under load, the way a node is replaced
# (docs/operations.md): a random follower is removed from the configuration
# (the cluster shrinks to N-1 voters) and must stop by itself; its data is
# wiped; it starts again with --join 1, is added as a standby, catches up and
# is promoted (the cluster grows back to N). Sets proc_ok and proc_evidence.
start_member() { # node
  local v=$1 out list step="" st
  local addr
  addr="$(ip_of "$v"):7101/$(ip_of "$v"):7001"
  proc_ok=0
  reap_crashed
  down[$v]=1
  if ! out=$("$cairnctl" --endpoints "$endpoints" --timeout 30000 member remove "$v" 2>&1); then
    step="remove: $out"
  else
    for _ in $(seq 1 150); do kill -0 "${pid[$v]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pid[$v]}" 2>/dev/null; then
      step="node $v still runs 15 s after its removal"
      kill -9 "${pid[$v]}" 2>/dev/null
    fi
    wait "${pid[$v]}" 2>/dev/null; st=$?
    if [[ -z $step ]] && { ((st != 0)) || ! grep -q "removed from the cluster" "$results/node$v.log"; }; then
      step="node $v exited with status $st, without the removal line"
    fi
  fi
  wipe_node "$v"
  start_node "$v" --join 1
  unset "down[$v]"
  if [[ -z $step ]]; then
    for _ in $(seq 1 50); do
      "$cairnctl" --endpoints "$(ip_of "$v"):7001" --timeout 1000 status >/dev/null 2>&1 && break
      sleep 0.2
    done
    if ! out=$("$cairnctl" --endpoints "$endpoints" --timeout 30000 member add "$v" "$addr" --voter --catch-up-timeout 60000 2>&1); then
      step="add: $out"
    fi
  fi
  list=$("$cairnctl" --endpoints "$endpoints" --json member list 2>/dev/null | tr -d '\n')
  if [[ -z $step ]] && grep -q "\"id\":$v,\"role\":\"voter\"" <<<"$list"; then
    proc_ok=1
    proc_evidence="node $v removed (stopped itself, exit 0), wiped, joined, promoted: a voter again"
  else
    proc_evidence="node $v: ${step:-not a voter in the member list afterwards}"
  fi
}

# Loss of unsynced writes on a minority, as a power cut: the lazy nodes
# (1..N/2) must keep what they acknowledged. The fault makes them needed:
# every other node but one (b, the leader if it is one of them) is cut off,
# so that each write the cluster acknowledges in the first half of the fault
# was acknowledged by every lazy node. (Cut off, not paused: a paused node's
# sockets would still take in the leader's entries and hand them over on
# resume.) Then b and the lazy nodes are killed at once, the lazy nodes lose
# what they had not synced (echo crash > .lazyfs) and start again, and the
# cut-off nodes are let back: a majority without b, in which only the lazy
# nodes can hold the writes of the first half. Had a lazy node lost some it
# had acknowledged, the leader elected now would drop them, and the set and
# register checks would say so (--sabotage ignore-sync shows it). b starts
# again once they have a leader, and a little after. Sets proc_ok and
# proc_evidence.
start_lose_unsynced() {
  local l b v report ok=1 ev="" half dropped cut=() rest=()
  reap_crashed
  half=$(awk -v i="$interval" 'BEGIN {print i / 2}')
  l=$(leader)
  for b in $(shuffled_nodes); do ((b > lazy_nodes)) && break; done
  [[ -n $l ]] && ((l > lazy_nodes)) && b=$l
  for v in $(seq 1 "$nodes"); do
    if ((v > lazy_nodes)) && [[ $v != "$b" ]]; then cut+=("$v"); else rest+=("$v"); fi
  done
  partition "${cut[*]}" "${rest[*]}"
  ev="cut off ${cut[*]}"
  nemesis_event start-partition "lose-unsynced: ${cut[*]} cut off; nodes ${rest[*]} hold the majority"
  # With --sabotage ignore-sync, the lazy file systems count nothing as
  # synced from here on: what the cluster acknowledges now is lost.
  if sabotaged ignore-sync; then
    for v in $(seq 1 "$lazy_nodes"); do echo sync >"$results/node$v/.lazyfs"; done
  fi
  sleep "$half"
  start_kill "$b"; ((proc_ok)) || ok=0
  for v in $(seq 1 "$lazy_nodes"); do
    start_kill "$v"; ((proc_ok)) || ok=0
  done
  nemesis_event kill "nodes $b and 1-$lazy_nodes (lose-unsynced)"
  ev+="; killed $b and 1-$lazy_nodes"
  for v in $(seq 1 "$lazy_nodes"); do
    if ! echo crash >"$results/node$v/.lazyfs"; then ok=0; fi
    report=$(head -n 1 "$results/node$v/.lazyfs" 2>/dev/null)
    [[ $report == crash:* && $report != *"with errors"* ]] || ok=0
    ev+="; node $v ${report:-without a crash report}"
    nemesis_event lose-unsynced "node $v: ${report:-no report}"
  done
  for v in $(seq 1 "$lazy_nodes"); do stop_kill "$v"; done
  dropped=$(heal_partition)
  ((dropped > 0)) || ok=0
  nemesis_event stop-partition "restarted 1-$lazy_nodes; healed; $dropped packets dropped"
  ev+="; restarted 1-$lazy_nodes; healed ($dropped packets dropped)"
  # The fault has taken only once the nodes without b have elected a leader
  # (b back first would hand its log to everyone). At most 15 s.
  l=""
  for _ in $(seq 1 75); do
    l=$(leader)
    [[ -n $l && $l != "$b" ]] && break
    l=""
    sleep 0.2
  done
  if [[ -n $l ]]; then
    ev+="; node $l elected without $b"
    nemesis_event elected "node $l, without node $b"
  else
    ev+="; no leader without $b in 15 s"; ok=0
  fi
  sleep "$half"
  stop_kill "$b"
  nemesis_event restart "node $b"
  lose_victim=$b
  proc_ok=$ok
  proc_evidence="$ev; restarted $b"
}

# faults.tsv: KIND START_NS END_NS VICTIM APPLIED(1|0) MUST_CHANGE_LEADER(1|0) EVIDENCE
record_fault() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results/faults.tsv"; }

# One fault of the given kind: start, hold for --interval, stop, record.
run_fault() { # kind
  local kind=$1 victim t_start dropped applied must_change=0 evidence part second l
  part_desc="" part_victim=- proc_evidence="" proc_ok=1
  case "$kind" in
    partition-*)
      start_partition "$kind"
      t_start=$(now_ns)
      nemesis_event start-partition "$kind: $part_desc"
      [[ $kind == partition-leader ]] && must_change=1
      sleep "$interval"
      dropped=$(heal_partition)
      nemesis_event stop-partition "healed; $dropped packets dropped"
      applied=$((dropped > 0 ? 1 : 0))
      record_fault "$kind" "$t_start" "$(now_ns)" "$part_victim" "$applied" "$must_change" \
        "$part_desc; $dropped packets dropped"
      ;;
    kill|kill-leader|pause|pause-leader)
      victim=$(random_node)
      if [[ $kind == *-leader ]]; then
        victim=$(leader); [[ -z $victim ]] && victim=$(random_node)
        must_change=1
      fi
      if [[ $kind == kill* ]]; then
        start_kill "$victim"; t_start=$(now_ns)
        nemesis_event kill "node $victim ($kind)"
        sleep "$interval"
        stop_kill "$victim"
        nemesis_event restart "node $victim"
      else
        start_pause "$victim"; t_start=$(now_ns)
        nemesis_event pause "node $victim ($kind)"
        sleep "$interval"
        stop_pause "$victim"
        nemesis_event resume "node $victim"
      fi
      record_fault "$kind" "$t_start" "$(now_ns)" "$victim" "$proc_ok" "$must_change" "$proc_evidence"
      ;;
    member)
      victim=$(random_node)
      l=$(leader)
      [[ -n $l && $victim == "$l" ]] && victim=$(others "$l" | awk '{print $1}')
      t_start=$(now_ns)
      nemesis_event member-remove "node $victim: remove, wipe, join, promote"
      start_member "$victim"
      nemesis_event member-done "$proc_evidence"
      record_fault member "$t_start" "$(now_ns)" "$victim" "$proc_ok" 0 "$proc_evidence"
      ;;
    lose-unsynced)
      t_start=$(now_ns)
      start_lose_unsynced
      record_fault lose-unsynced "$t_start" "$(now_ns)" "$lose_victim" "$proc_ok" 0 "$proc_evidence"
      ;;
    rolling)
      nemesis_event rolling-restart "every node in turn, the leader last"
      start_rolling
      nemesis_event rolling-restart-done "$proc_evidence"
      # The leader's turn must move leadership (it hands over on SIGTERM).
      record_fault rolling "$rolling_leader_ns" "$(now_ns)" "$rolling_leader" "$proc_ok" 1 \
        "$proc_evidence"
      ;;
    mixed)
      # Two faults at once, as Jepsen's combined nemesis does: a partition
      # and a kill or pause of a random node (on either side).
      part=${partition_kinds[$((RANDOM % ${#partition_kinds[@]}))]}
      second=$( ((RANDOM % 2)) && echo kill || echo pause)
      victim=$(random_node)
      start_partition "$part"
      t_start=$(now_ns)
      nemesis_event start-partition "mixed $part: $part_desc"
      if [[ $second == kill ]]; then
        start_kill "$victim"; nemesis_event kill "node $victim (mixed)"
      else
        start_pause "$victim"; nemesis_event pause "node $victim (mixed)"
      fi
      sleep "$interval"
      if [[ $second == kill ]]; then
        stop_kill "$victim"; nemesis_event restart "node $victim"
      else
        stop_pause "$victim"; nemesis_event resume "node $victim"
      fi
      dropped=$(heal_partition)
      nemesis_event stop-partition "healed; $dropped packets dropped"
      applied=$((dropped > 0 && proc_ok == 1 ? 1 : 0))
      record_fault "mixed:$part+$second" "$t_start" "$(now_ns)" "$victim" "$applied" 0 \
        "$part_desc; $dropped packets dropped; $proc_evidence"
      ;;
  esac
}

partition_kinds=(partition-one partition-leader partition-half partition-ring partition-oneway)
partition_turn=0
next_fault() { # sets kind for the k-th fault
  kind=${families[$(($1 % ${#families[@]}))]}
  if [[ $kind == partition ]]; then
    kind=${partition_kinds[$((partition_turn % ${#partition_kinds[@]}))]}
    partition_turn=$((partition_turn + 1))
  fi
}

nemesis() {
  local k=0 end=$((SECONDS + duration))
  sleep "$interval"
  reap_crashed
  first_fault_ns=$(now_ns)
  while ((${#families[@]} > 0 && SECONDS + interval <= end)); do
    next_fault "$k"
    k=$((k + 1))
    if ((k == 1)) && sabotaged crash; then
      kill -SEGV "${pid[$(random_node)]}" 2>/dev/null
    fi
    run_fault "$kind"
    sleep "$interval"
    reap_crashed
  done
}

: >"$results/nemesis.edn"
log "workers: register, set and watch, $threads threads each, $rate ops/s each, $((duration + settle)) s"
"$worker" --endpoints "$endpoints" --workload register --threads "$threads" --rate "$rate" \
  --duration $((duration + settle)) --t0-ns "$t0" --seed "$seed" \
  --out "$results/register.raw.edn" 2>>"$results/worker.log" &
w1=$!
"$worker" --endpoints "$endpoints" --workload set --threads "$threads" --rate "$rate" \
  --duration $((duration + settle)) --t0-ns "$t0" --seed "$((seed + 1))" \
  --out "$results/set.raw.edn" 2>>"$results/worker.log" &
w2=$!
# The watch workload: watchers on every node, stale readers, writers; it
# writes the watch log and, after the heal, the committed log (not EDN).
"$worker" --endpoints "$endpoints" --workload watch --threads "$threads" --rate "$rate" \
  --duration $((duration + settle)) --t0-ns "$t0" --seed "$((seed + 2))" \
  --out "$results/watch.tsv" --committed "$results/committed.tsv" 2>>"$results/worker.log" &
w3=$!
bg_pids+=("$w1" "$w2" "$w3")

# The nemesis runs in this shell (it restarts nodes, so it owns pid[]).
nemesis
# Final heal: whatever the schedule left, undo it.
heal_partition >/dev/null
for i in $(seq 1 "$nodes"); do kill -CONT "${pid[$i]}" 2>/dev/null; done
reap_crashed
heal_t=$(now_ns)
if sabotaged stall; then
  # The heal counts from when every node is stopped and the answers they
  # had already sent have arrived; an ok op just before is not a recovery.
  for i in $(seq 1 "$nodes"); do kill -STOP "${pid[$i]}" 2>/dev/null; done
  sleep 0.5
  heal_t=$(now_ns)
  sleep "$((heal_bound + 2))"
  for i in $(seq 1 "$nodes"); do kill -CONT "${pid[$i]}" 2>/dev/null; done
fi
log "healed; settling while the workers finish and read"
wait "$w1" "$w2" "$w3"
reap_crashed

# Convergence: poll until every replica reports the same revision and state
# hash (followers apply a moment after the leader), for at most 20 s.
converged=0
for _ in $(seq 1 40); do
  status >"$results/final-status.txt"
  if awk 'NF < 9 {bad = 1} {r[$8 " " $9]++}
          END {n = 0; for (k in r) n++; exit !(n == 1 && !bad)}' "$results/final-status.txt"; then
    converged=1
    break
  fi
  sleep 0.5
done
# --backup: the cluster's final revision and state hash (the highest revision
# any node reports; with convergence, every node's), and a bounded wait, while
# the nodes still run, for the archive to reach that revision (the leader
# ships every 500 ms). cairnctl reads the store directly (--from).
if ((backup)); then
  read -r final_rev final_hash < <(awk 'NF >= 9 && (h == "" || $8 + 0 > r) {r = $8 + 0; h = $9}
                                        END {print r + 0, (h == "" ? "-" : h)}' "$results/final-status.txt")
  archive_rev=
  archive_reached=0
  wait_t=$(now_ns)
  for _ in $(seq 1 40); do
    "$cairnctl" --json snapshot list --from "$backup_url" >"$results/backup-list.json" 2>"$results/backup-list.err"
    archive_rev=$(grep -o '"latest_revision":[0-9]*' "$results/backup-list.json" | tail -n 1 | cut -d: -f2)
    if [[ -n $archive_rev ]] && ((archive_rev >= final_rev)); then
      archive_reached=1
      break
    fi
    sleep 0.5
  done
  archive_wait=$(awk -v a="$wait_t" -v b="$(now_ns)" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
  log "backup: archive at revision ${archive_rev:-none} (cluster: $final_rev) after ${archive_wait}s"
fi
kill "${bg_pids[0]}" 2>/dev/null
for i in $(seq 1 "$nodes"); do kill -TERM "${pid[$i]}" 2>/dev/null; done
for i in $(seq 1 "$nodes"); do
  wait "${pid[$i]}" 2>/dev/null; st=$?
  if ((st != 0)); then
    echo "$(now_ns) node $i (pid ${pid[$i]}) exited with status $st at the final SIGTERM" >>"$results/crashes.txt"
  fi
done
log "nodes stopped"

# --- backups (--backup): with the nodes stopped, the store is still. List it,
# verify the newest snapshot plus the archive (every replayed entry against the
# revision and state hash the cluster recorded), and restore the latest point
# into a scratch data directory. The validation below judges the results.
if ((backup)); then
  if sabotaged corrupt-archive; then
    # Flip one byte in the middle of every log segment that ends after the
    # newest snapshot (what verify replays), or of that snapshot when no
    # segment follows it: the objects' SHA-256 no longer match.
    snap_last=$(find "$backup_dir" -path '*/snap/*.snap' | sort | tail -n 1)
    snap_idx=$(basename "${snap_last:-0.snap}" .snap)
    corrupt=()
    while read -r seg; do
      seg_last=$(basename "$seg" .seg | cut -d- -f2)
      ((10#$seg_last > 10#$snap_idx)) && corrupt+=("$seg")
    done < <(find "$backup_dir" -path '*/log/*.seg' | sort)
    ((${#corrupt[@]} == 0)) && [[ -n $snap_last ]] && corrupt=("$snap_last")
    for f in "${corrupt[@]}"; do
      off=$(($(stat -c %s "$f") / 2))
      byte=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
      printf "\\x$(printf %02x $((255 - byte)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
      log "sabotage: corrupted $f at byte $off"
    done
  fi
  "$cairnctl" --json snapshot list --from "$backup_url" >"$results/backup-list.json" 2>"$results/backup-list.err"
  "$cairnctl" --json snapshot verify --from "$backup_url" >"$results/backup-verify.json" 2>"$results/backup-verify.err"
  verify_rc=$?
  rm -rf "$results/backup-restore"
  "$cairnctl" --json snapshot restore --from "$backup_url" --data-dir "$results/backup-restore" \
    >"$results/backup-restore.json" 2>"$results/backup-restore.err"
  restore_rc=$?
  json_field() { # file key: a number or string field of cairnctl's compact JSON
    grep -o "\"$2\":\"\?[0-9a-f]*" "$1" 2>/dev/null | head -n 1 | sed 's/.*:"\?//'
  }
  n_ranges=$(grep -o '"earliest_revision"' "$results/backup-list.json" | wc -l)
  ranges_desc=$(grep -o '"earliest_revision":[0-9]*\|"latest_revision":[0-9]*' "$results/backup-list.json" |
                cut -d: -f2 | paste -d- - - | paste -sd, -)
  n_snaps=$(grep -o '"sha256"' "$results/backup-list.json" | wc -l)
  n_segs=$(json_field "$results/backup-list.json" segments)
  verify_rev=$(json_field "$results/backup-verify.json" revision)
  verify_hash=$(json_field "$results/backup-verify.json" state_hash)
  restore_rev=$(json_field "$results/backup-restore.json" revision)
  log "backup: $n_snaps snapshots, ${n_segs:-0} segments, $n_ranges ranges ($ranges_desc); verify exit $verify_rc (revision ${verify_rev:--}, hash ${verify_hash:--}); restore exit $restore_rc (revision ${restore_rev:--})"
fi

# --- histories: each workload's events with the nemesis's, ordered by time.
merge() { # raw out
  cat "$1" "$results/nemesis.edn" |
    awk '{match($0, /:time [0-9]+/); print substr($0, RSTART + 6, RLENGTH - 6) "\t" $0}' |
    sort -n -s -k1,1 | cut -f2- >"$2"
}
merge "$results/register.raw.edn" "$results/history.edn"
merge "$results/set.raw.edn" "$results/set-history.edn"

# --- checks: cairn-check (jepsen/local/checker/) on each history; see
# jepsen/README.md. The run is valid only if every check is.
verdict="NOT CHECKED (no $checker)"
if [[ -x $checker ]]; then
  verdict="VALID (check.txt)"
  failed=()
  : >"$results/check.txt"
  # Each: the check, its inputs, its JSON output (the last word).
  for check in "register history.edn register.json" "set set-history.edn set.json" \
      "watch watch.tsv committed.tsv watch.json"; do
    read -ra words <<<"$check"
    what=${words[0]} out=${words[-1]} inputs=("${words[@]:1:${#words[@]}-2}")
    echo "== $what: ${inputs[*]}" >>"$results/check.txt"
    if ! "$checker" "$what" "${inputs[@]/#/$results/}" --out "$results/$out" >>"$results/check.txt" 2>&1; then
      failed+=("$what")
    fi
  done
  if ((${#failed[@]})); then
    verdict="INVALID (${failed[*]}; see check.txt)"
  fi
fi

"$here/plot.sh" "$results" >>"$results/run.log" 2>&1 || log "plot failed"

# --- validation: the run must have been real (CHAOS.md, "What a run must
# show"). Each failed condition is one line in validation.txt and makes the
# run INVALID, exactly as a checker anomaly does.
: >"$results/validation.txt"
problem() { echo "$*" >>"$results/validation.txt"; }
ok_times() { # files...: the :time of every ok write-like op, in ns, sorted
  cat "$@" 2>/dev/null | awk '/:type :ok/ && /:f :(write|cas|add)/ {
    match($0, /:time [0-9]+/); print substr($0, RSTART + 6, RLENGTH - 6)}' | sort -n
}
ok_times "$results/history.edn" "$results/set-history.edn" >"$results/ok-writes.txt"
# 1. Throughput before the first fault: the register workload's ok ops per
# second between its first ok op and the first fault must reach half the
# asked rate.
floor=$(awk -v r="$rate" 'BEGIN {printf "%.1f", r / 2}')
pre=$(awk -v ff="${first_fault_ns:-0}" '/:type :ok/ && !/:process :nemesis/ {
        match($0, /:time [0-9]+/); t = substr($0, RSTART + 6, RLENGTH - 6) + 0
        if (first == "") first = t
        if (t < ff) n++}
      END {w = (ff - first) / 1e9; if (w <= 0.5 || first == "") print "0 0"; else printf "%.1f %.1f\n", n / w, w}' \
      "$results/history.edn")
read -r pre_rate pre_window <<<"$pre"
if [[ ${#families[@]} -gt 0 ]] && awk -v a="$pre_rate" -v f="$floor" 'BEGIN {exit !(a < f)}'; then
  problem "throughput before the first fault: $pre_rate ok ops/s over ${pre_window}s, below the floor of $floor (half of --rate)"
fi
# 2. Every fault took (packets dropped, process gone, process stopped).
touch "$results/faults.tsv"
faults_run=$(wc -l <"$results/faults.tsv")
if ((${#families[@]} > 0 && faults_run == 0)); then
  problem "no fault was applied (the fault phase is shorter than two --interval?)"
fi
awk -F'\t' '$5 != 1 {printf "fault not applied: %s at %.1fs (%s)\n", $1, $2 / 1e9, $7}' \
  "$results/faults.tsv" >>"$results/validation.txt"
# 3. Leadership moved where the fault implies: while the leader is cut off,
# killed or paused, another node must lead (status.log: "T ENDPOINT ID STATE
# TERM ..."), by the fault's end or within two election timeouts (2 s at the
# default 1 s) after it. Without pre-vote (docs/raft.md) a follower that
# missed the last entries keeps campaigning in ever higher terms, and each
# of its requests resets the up-to-date follower's election timer, so the
# majority's election can take several rounds: 5.7 s once in CI, with the
# cut-off leader stepping down 2 s into a 5 s fault. A fault that did not
# take moves nothing, before or after its end.
lead_grace_ns=2000000000
while IFS=$'\t' read -r kind start end victim applied must evidence; do
  ((must)) || continue
  if ! awk -v s="$start" -v e="$((end + lead_grace_ns))" -v v="$victim" \
      '$1 >= s && $1 <= e && $4 == "leader" && $3 != v {found = 1} END {exit !found}' \
      "$results/status.log"; then
    problem "leadership did not move during $kind of node $victim at $(awk -v s="$start" 'BEGIN {printf "%.1fs", s / 1e9}')"
  fi
done <"$results/faults.tsv"
# 4. After the final heal the first write succeeds within a few election
# timeouts.
first_after=$(awk -v h="$heal_t" '$1 >= h {printf "%.3f", ($1 - h) / 1e9; exit}' "$results/ok-writes.txt")
if [[ -z $first_after ]]; then
  problem "no write succeeded after the final heal"
elif awk -v a="$first_after" -v b="$heal_bound" 'BEGIN {exit !(a > b)}'; then
  problem "first write after the final heal took ${first_after}s (bound ${heal_bound}s)"
fi
# 5. Convergence: every replica at the same revision with the same state hash.
((converged)) || problem "replicas did not converge (final-status.txt: revision and state hash differ, or a node is down)"
# 6. No crash, no assertion failure, no sanitizer report in any node's log.
[[ -s $results/crashes.txt ]] && problem "a node crashed (crashes.txt)"
grep -H -n -i -E "assert|abort|sanitizer|segmentation fault|core dumped|stack-buffer|heap-use" \
  "$results"/node*.log >"$results/log-scan.txt" 2>/dev/null
[[ -s $results/log-scan.txt ]] && problem "node logs report assertion failures or crashes (log-scan.txt)"
# 7. Backups (--backup): the archive reached the final revision; the newest
# snapshot plus the archive verify; the latest point restores to the final
# revision; the verified state hash at that revision is the cluster's; the
# archive has no gap (a backlog overflow could cause one legitimately, but
# not with the default bound in a short run).
if ((backup)); then
  if ((!archive_reached)); then
    problem "backup: the archive reached revision ${archive_rev:-none}, not the cluster's final revision $final_rev, within 20 s (backup-list.json, backup-list.err)"
  fi
  if ((verify_rc != 0)); then
    problem "backup: snapshot verify failed (exit $verify_rc): $(head -n 1 "$results/backup-verify.err")"
  elif [[ $verify_rev != "$final_rev" ]]; then
    problem "backup: snapshot verify replayed to revision ${verify_rev:-none}, the cluster ended at revision $final_rev (backup-verify.json)"
  elif [[ $verify_hash != "$final_hash" ]]; then
    problem "backup: at revision $final_rev the archive's state hash is ${verify_hash:-none}, the cluster's is $final_hash (backup-verify.json, final-status.txt)"
  fi
  if ((restore_rc != 0)); then
    problem "backup: snapshot restore failed (exit $restore_rc): $(head -n 1 "$results/backup-restore.err")"
  elif [[ $restore_rev != "$final_rev" ]]; then
    problem "backup: the latest point restored to revision ${restore_rev:-none}, the cluster ended at revision $final_rev (backup-restore.json)"
  fi
  if ((n_ranges == 0)); then
    problem "backup: nothing restorable: no snapshot in the store (backup-list.json, backup-list.err)"
  elif ((n_ranges > 1)); then
    lost=$(cat "$results"/node*.log 2>/dev/null | grep -c "backup: the backlog lost entries")
    problem "backup: the archive has a gap: $n_ranges restorable ranges (revisions $ranges_desc); only a backlog overflow excuses one, not expected within the default --backup-backlog-max in a short run; the node logs report $lost backlog losses (backup-list.json)"
  fi
fi

if [[ -s $results/validation.txt ]]; then
  verdict="INVALID (run validation: see validation.txt; checks: $verdict)"
fi

# --- summary.
{
  echo "Cairn local fault run $(basename "$results")"
  echo "nodes: $nodes   faults: $faults   duration: ${duration}s   interval: ${interval}s   settle: ${settle}s   seed: $seed"
  echo "rate: $rate ops/s per workload, $threads threads each"
  echo "replay the schedule: jepsen/local/run.sh --nodes $nodes --faults $faults --duration $duration --interval $interval --settle $settle --rate $rate --threads $threads --seed $seed$( ((backup)) && echo " --backup")"
  echo
  for h in history.edn set-history.edn; do
    awk -v name="$h" '
      /:process :nemesis/ {next}
      {match($0, /:type :[a-z]+/); t = substr($0, RSTART + 7, RLENGTH - 7)
       match($0, /:f :[a-z-]+/); f = substr($0, RSTART + 4, RLENGTH - 4)
       if (t == "invoke") inv++; else {n[t]++; nf[f " " t]++}}
      END {printf "%s: %d ops: %d ok, %d fail, %d info\n", name, inv, n["ok"], n["fail"], n["info"]
           for (k in nf) printf "    %-12s %d\n", k, nf[k]}' "$results/$h"
  done
  echo
  echo "throughput before the first fault: $pre_rate ok ops/s (register; floor $floor)"
  echo
  echo "faults applied ($faults_run; faults.tsv):"
  awk -F'\t' '{printf "    %6.1fs-%6.1fs  %-22s %s  %s\n", $2 / 1e9, $3 / 1e9, $1,
                 ($5 == 1 ? "applied" : "NOT APPLIED"), $7}' "$results/faults.tsv"
  echo
  echo "recovery: first ok write after each fault ended:"
  while IFS=$'\t' read -r kind start end rest; do
    awk -v e="$end" -v k="$kind" '$1 >= e {printf "    %-22s %.3f s\n", k, ($1 - e) / 1e9; f = 1; exit}
         END {if (!f) printf "    %-22s none\n", k}' "$results/ok-writes.txt"
  done <"$results/faults.tsv"
  echo "    final heal             ${first_after:-none} s (bound ${heal_bound}s)"
  echo
  awk '$4 == "leader" {l = $3; tm = $5; t = $1 / 1e9
        if (l " " tm != last) {changes++; printf "    %.1fs node %s leads (term %s)\n", t, l, tm; last = l " " tm}}
       END {printf "leaderships seen: %d\n", changes}' "$results/status.log" >"$results/leaders.txt"
  tail -n 1 "$results/leaders.txt"
  sed '$d' "$results/leaders.txt"
  echo
  echo "final status (ENDPOINT ID STATE TERM LEADER COMMIT APPLIED REVISION HASH):"
  sed 's/^/    /' "$results/final-status.txt"
  if ((converged)); then echo "    converged: same revision and state hash on every node"
  else echo "    NOT converged"; fi
  echo
  echo "crashes (nodes that exited when the schedule did not kill them):"
  if [[ -s $results/crashes.txt ]]; then sed 's/^/    /' "$results/crashes.txt"; else echo "    none"; fi
  echo "node logs: assertion failures, aborts, sanitizer reports:"
  if [[ -s $results/log-scan.txt ]]; then head -n 20 "$results/log-scan.txt" | sed 's/^/    /'; else echo "    none"; fi
  echo
  if ((backup)); then
    echo "backups ($backup_url):"
    echo "    archive reached revision ${archive_rev:-none} after ${archive_wait}s (the cluster's final revision: $final_rev)"
    echo "    store: $n_snaps snapshots, ${n_segs:-0} log segments, $n_ranges restorable range(s): revisions ${ranges_desc:-none}$( ((n_ranges > 1)) && echo " (GAP)")"
    if ((verify_rc == 0)); then
      echo "    verify: newest snapshot plus archive replayed to revision $verify_rev, state hash $verify_hash (cluster: $final_hash)"
    else
      echo "    verify: FAILED: $(head -n 1 "$results/backup-verify.err")"
    fi
    if ((restore_rc == 0)); then
      echo "    restore: latest point restored to revision $restore_rev in backup-restore/"
    else
      echo "    restore: FAILED: $(head -n 1 "$results/backup-restore.err")"
    fi
    cat "$results"/node*.log 2>/dev/null | awk '
      /backup: this node \(the leader\) now ships/ {ships++}
      /backup: snapshot at revision .* uploaded/ {snaps++}
      /backup: .* failed \(/ {failed++}
      /backup: the backlog lost entries/ {gaps++}
      /backup: backlog ends at index/ {reset++}
      END {printf "    node logs: %d leaders took over shipping, %d snapshots uploaded, %d failed backup jobs (retried), %d backlog gaps on the shipping node, %d backlogs restarted after an installed snapshot\n",
                  ships, snaps, failed, gaps, reset}'
    echo
  fi
  echo "run validation:"
  if [[ -s $results/validation.txt ]]; then sed 's/^/    /' "$results/validation.txt"; else echo "    valid: throughput floor reached, every fault applied, leadership moved where implied, writes resumed, converged, no crash$( ((backup)) && echo ", backup archive complete, verified and restored to the final revision and state hash, no gap")"; fi
  echo
  echo "verdict: $verdict"
  echo "plot: $results/latency.png"
} >"$results/summary.txt"
cat "$results/summary.txt"
[[ $verdict == VALID* ]]
exit
}
