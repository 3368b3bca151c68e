#!/usr/bin/env bash
# The chaos harness must notice a run that was sabotaged on purpose.
#
#   tests/scripts/chaos_selftest.sh BUILD_DIR [harness|lazyfs]
#
# harness (ctest chaos_selftest): run.sh --sabotage makes partitions drop
# nothing, crashes a node outside the schedule and stalls the cluster at the
# final heal; the run must then be INVALID (exit 1) and validation.txt must
# name each of those failures.
#
# lazyfs (ctest chaos_selftest_lazyfs): the lose-unsynced fault must catch a
# node that acknowledges writes it has not made durable. --sabotage
# ignore-sync mounts the lazy node's file system so that fsync and O_DSYNC
# count for nothing: the crash in the fault then loses what the node
# acknowledged while the majority needed it. The run must be INVALID because
# writes were lost (the set check) while the run itself was real (every
# fault applied, so validation.txt is empty). Snapshots are kept out of the
# run (--snapshot-threshold 65536): a snapshot written in the window would be
# cut to nothing as well, and the node would refuse to start, an INVALID run
# for a reason this test is not about.
set -uo pipefail
build=$1
kind=${2:-harness}
here=$(cd "$(dirname "$0")" && pwd)
run="$here/../../jepsen/local/run.sh"
case "$kind" in
  harness)
    name=chaos_selftest results="$build/chaos-results/selftest"
    args=(--faults partition-leader --duration 14 --interval 3 --settle 12 --seed 7
          --sabotage no-drop,crash,stall) ;;
  lazyfs)
    name=chaos_selftest_lazyfs results="$build/chaos-results/selftest_lazyfs"
    args=(--faults lose-unsynced --duration 12 --interval 5 --settle 8 --seed 9
          --snapshot-threshold 65536 --sabotage ignore-sync) ;;
  *) echo "usage: chaos_selftest.sh BUILD_DIR [harness|lazyfs]" >&2; exit 2 ;;
esac
out="$build/$name.out"

"$run" --build "$build" --nodes 3 "${args[@]}" --results "$results" >"$out" 2>&1
rc=$?
if ((rc == 77)); then
  echo "$name: skipped (run.sh needs root)"; exit 77
fi
fail=0
if ((rc != 1)); then
  echo "$name: run.sh exited $rc on a sabotaged run, want 1 (INVALID)"; fail=1
fi
if [[ $kind == harness ]]; then
  for want in "fault not applied: partition-leader" "leadership did not move" "a node crashed" \
      "after the final heal"; do
    if ! grep -F "$want" "$results/validation.txt" >/dev/null 2>&1; then
      echo "$name: validation.txt does not report: $want"; fail=1
    fi
  done
else
  # validation.txt lists what made the run not real, and is empty when it was.
  if [[ ! -f $results/validation.txt || -s $results/validation.txt ]]; then
    echo "$name: the run itself must be real (every fault applied):"
    cat "$results/validation.txt" 2>/dev/null; fail=1
  fi
  lost=$(grep -o '"lost":[0-9]*' "$results/set.json" 2>/dev/null | tail -n 1 | cut -d: -f2)
  if [[ -z $lost || $lost -eq 0 ]]; then
    echo "$name: the set check found no lost writes (set.json: ${lost:-missing})"; fail=1
  fi
fi
if ((fail)); then
  echo "--- validation.txt"; cat "$results/validation.txt" 2>/dev/null
  echo "--- run.sh output"; tail -n 40 "$out"
  exit 1
fi
if [[ $kind == harness ]]; then
  echo "$name: a sabotaged run is INVALID and says why:"
  sed 's/^/    /' "$results/validation.txt"
else
  echo "$name: a node that does not sync loses $lost acknowledged adds, and the run is INVALID:"
  grep "^verdict" "$results/summary.txt" | sed 's/^/    /'
fi
