#!/usr/bin/env bash
# The local fault harness: one command starts a Cairn cluster in network
# namespaces, drives it with the register and set workloads, injects faults
# on a schedule, heals, reads, checks and plots. See jepsen/local/README.md.
#
#   jepsen/local/run.sh [--nodes 3|5] [--faults partition,kill,pause]
#                       [--duration 60] [--interval 10] [--settle 10]
#                       [--rate 100] [--threads 5] [--seed N] [--build DIR]
#                       [--subnet 10.77.0] [--results DIR]
#   jepsen/local/run.sh --cleanup      remove what an interrupted run left
#
# Needs root (namespaces, iptables); exits 77 (skipped) without it.
set -uo pipefail

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
    --results) results=$2; shift 2 ;;
    --cleanup) cleanup_only=1; shift ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
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
if [[ ! -x $worker || ! -x $cairnd || ! -x $checker ]]; then
  # The same build the README's commands make; configure it if needed.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target cairnd cairn-chaos-worker cairn-check >/dev/null
fi
for b in "$worker" "$cairnd"; do
  [[ -x $b ]] || { echo "run.sh: $b not built (cmake --build $build)" >&2; exit 1; }
done
if [[ $nodes != 3 && $nodes != 5 ]]; then
  echo "run.sh: --nodes must be 3 or 5" >&2; exit 2
fi
if ip -o addr show | grep -q " $subnet.254/"; then
  echo "run.sh: $subnet.254 is in use: another run is going on (or run --cleanup)" >&2
  exit 1
fi

run_id=$(printf '%05d' $(($$ % 100000)))
pfx="$tag$run_id"
br="${pfx}br"
results=${results:-"$here/results/$(date -u +%Y%m%dT%H%M%SZ)-$run_id"}
mkdir -p "$results"
RANDOM=$seed

ns_of() { echo "${pfx}n$1"; }
ip_of() { echo "$subnet.$1"; }
endpoints=$(for i in $(seq 1 "$nodes"); do printf '%s:7001,' "$(ip_of "$i")"; done)
endpoints=${endpoints%,}
initial=$(for i in $(seq 1 "$nodes"); do printf '%s=%s:7101/%s:7001,' "$i" "$(ip_of "$i")" "$(ip_of "$i")"; done)
initial=${initial%,}

declare -A pid
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

start_node() {
  local i=$1
  ip netns exec "$(ns_of "$i")" "$cairnd" --id "$i" --data-dir "$results/node$i" \
    --raft-addr "$(ip_of "$i"):7101" --client-addr "$(ip_of "$i"):7001" \
    --initial-cluster "$initial" >>"$results/node$i.log" 2>&1 &
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
# inside the node namespaces (both directions, INPUT and OUTPUT), so traffic
# between the two sides is dropped whoever sends it; the workers (root
# namespace, $subnet.254) still reach every node.
partition() { # "1 2" "3": cut the groups apart
  local a b
  for a in $1; do for b in $2; do
    ip netns exec "$(ns_of "$a")" iptables -w -A INPUT -s "$(ip_of "$b")" -j DROP
    ip netns exec "$(ns_of "$a")" iptables -w -A OUTPUT -d "$(ip_of "$b")" -j DROP
    ip netns exec "$(ns_of "$b")" iptables -w -A INPUT -s "$(ip_of "$a")" -j DROP
    ip netns exec "$(ns_of "$b")" iptables -w -A OUTPUT -d "$(ip_of "$a")" -j DROP
  done; done
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

# The schedule takes the fault families in turn (partition, kill, pause, ...);
# "partition" itself rotates through its kinds (one node alone, the leader
# alone, a random minority against the majority).
families=()
IFS=, read -ra wanted <<<"$faults"
for f in "${wanted[@]}"; do
  case "$f" in
    partition|partition-one|partition-leader|partition-half|kill|kill-leader|pause|pause-leader) families+=("$f") ;;
    none) ;;
    *) echo "run.sh: unknown fault $f" >&2; exit 2 ;;
  esac
done
partition_kinds=(partition-one partition-leader partition-half)
partition_turn=0
next_fault() { # sets kind for the k-th fault
  kind=${families[$(($1 % ${#families[@]}))]}
  if [[ $kind == partition ]]; then
    kind=${partition_kinds[$((partition_turn % 3))]}
    partition_turn=$((partition_turn + 1))
  fi
}

nemesis() {
  local k=0 end=$((SECONDS + duration)) kind victim side_a side_b dropped
  sleep "$interval"
  reap_crashed
  while ((${#families[@]} > 0 && SECONDS + interval <= end)); do
    next_fault "$k"
    k=$((k + 1))
    victim=$(random_node)
    case "$kind" in
      partition-leader|kill-leader|pause-leader)
        victim=$(leader); [[ -z $victim ]] && victim=$(random_node) ;;
    esac
    case "$kind" in
      partition-one|partition-leader)
        side_a="$victim"; side_b=$(others "$victim")
        partition "$side_a" "$side_b"
        nemesis_event start-partition "$kind: [$side_a] | [${side_b% }]"
        sleep "$interval"
        dropped=$(heal_partition)
        nemesis_event stop-partition "healed; $dropped packets dropped"
        ;;
      partition-half)
        # A random minority of floor(n/2) nodes against the majority.
        local order=() j t
        mapfile -t order < <(seq 1 "$nodes")
        for ((j = nodes - 1; j > 0; j--)); do
          t=$((RANDOM % (j + 1))); local x=${order[$j]}; order[$j]=${order[$t]}; order[$t]=$x
        done
        side_a="${order[*]:0:$((nodes / 2))} "
        side_b="${order[*]:$((nodes / 2))} "
        partition "$side_a" "$side_b"
        nemesis_event start-partition "$kind: [${side_a% }] | [${side_b% }]"
        sleep "$interval"
        dropped=$(heal_partition)
        nemesis_event stop-partition "healed; $dropped packets dropped"
        ;;
      kill|kill-leader)
        reap_crashed
        down[$victim]=1
        kill -9 "${pid[$victim]}" 2>/dev/null
        wait "${pid[$victim]}" 2>/dev/null
        nemesis_event kill "node $victim ($kind)"
        sleep "$interval"
        start_node "$victim"
        unset "down[$victim]"
        nemesis_event restart "node $victim"
        ;;
      pause|pause-leader)
        kill -STOP "${pid[$victim]}" 2>/dev/null
        nemesis_event pause "node $victim ($kind)"
        sleep "$interval"
        kill -CONT "${pid[$victim]}" 2>/dev/null
        nemesis_event resume "node $victim"
        ;;
    esac
    sleep "$interval"
    reap_crashed
  done
}

: >"$results/nemesis.edn"
log "workers: register and set, $threads threads each, $rate ops/s each, $((duration + settle)) s"
"$worker" --endpoints "$endpoints" --workload register --threads "$threads" --rate "$rate" \
  --duration $((duration + settle)) --t0-ns "$t0" --seed "$seed" \
  --out "$results/register.raw.edn" 2>>"$results/worker.log" &
w1=$!
"$worker" --endpoints "$endpoints" --workload set --threads "$threads" --rate "$rate" \
  --duration $((duration + settle)) --t0-ns "$t0" --seed "$((seed + 1))" \
  --out "$results/set.raw.edn" 2>>"$results/worker.log" &
w2=$!
bg_pids+=("$w1" "$w2")

# The nemesis runs in this shell (it restarts nodes, so it owns pid[]).
nemesis
# Final heal: whatever the schedule left, undo it.
heal_partition >/dev/null
for i in $(seq 1 "$nodes"); do kill -CONT "${pid[$i]}" 2>/dev/null; done
reap_crashed
heal_t=$(now_ns)
log "healed; settling while the workers finish and read"
wait "$w1" "$w2"
reap_crashed

# Convergence: every replica at the same revision (give followers a moment).
sleep 2
status >"$results/final-status.txt"
kill "${bg_pids[0]}" 2>/dev/null
for i in $(seq 1 "$nodes"); do kill -TERM "${pid[$i]}" 2>/dev/null; done
for i in $(seq 1 "$nodes"); do
  wait "${pid[$i]}" 2>/dev/null; st=$?
  if ((st != 0)); then
    echo "$(now_ns) node $i (pid ${pid[$i]}) exited with status $st at the final SIGTERM" >>"$results/crashes.txt"
  fi
done
log "nodes stopped"

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
  : >"$results/check.txt"
  for check in "register history.edn register.json" "set set-history.edn set.json"; do
    read -r what file out <<<"$check"
    echo "== $what: $file" >>"$results/check.txt"
    if ! "$checker" "$what" "$results/$file" --out "$results/$out" >>"$results/check.txt" 2>&1; then
      verdict="INVALID ($what; see check.txt)"
    fi
  done
fi

"$here/plot.sh" "$results" >>"$results/run.log" 2>&1 || log "plot failed"

# --- summary.
{
  echo "Cairn local fault run $(basename "$results")"
  echo "nodes: $nodes   faults: $faults   duration: ${duration}s   interval: ${interval}s   settle: ${settle}s   seed: $seed"
  echo "rate: $rate ops/s per workload, $threads threads each"
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
  echo "faults applied:"
  sed 's/^/    /' "$results/nemesis.edn"
  awk '$4 == "leader" {l = $3; tm = $5; t = $1 / 1e9
        if (l " " tm != last) {changes++; printf "    %.1fs node %s leads (term %s)\n", t, l, tm; last = l " " tm}}
       END {printf "leaderships seen: %d\n", changes}' "$results/status.log" >"$results/leaders.txt"
  echo
  tail -n 1 "$results/leaders.txt"
  sed '$d' "$results/leaders.txt"
  echo
  echo "first ok write after the final heal:"
  awk -v h="$heal_t" '/:type :ok/ && /:f :(write|cas|add)/ {match($0, /:time [0-9]+/); t = substr($0, RSTART + 6, RLENGTH - 6) + 0
        if (t >= h) {printf "    %.3f s after the heal\n", (t - h) / 1e9; found = 1; exit}}
       END {if (!found) print "    none"}' "$results/history.edn"
  echo
  echo "final status (convergence: same revision everywhere?):"
  sed 's/^/    /' "$results/final-status.txt"
  awk '$3 != "down" {r[$8]++} END {n = 0; for (k in r) n++; print (n == 1 ? "    converged" : "    NOT converged")}' "$results/final-status.txt"
  echo
  echo "crashes (nodes that exited when the schedule did not kill them):"
  if [[ -s $results/crashes.txt ]]; then sed 's/^/    /' "$results/crashes.txt"; else echo "    none"; fi
  echo "node logs: assertion failures:"
  grep -H -i -E "assert|abort|sanitizer" "$results"/node*.log | sed 's/^/    /' || echo "    none"
  echo
  echo "checker: $verdict"
  echo "plot: $results/latency.png"
} >"$results/summary.txt"
cat "$results/summary.txt"
