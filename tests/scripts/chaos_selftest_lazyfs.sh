#!/usr/bin/env bash
# The lose-unsynced fault must be able to catch a node that acknowledges
# writes it has not made durable. run.sh --sabotage ignore-sync mounts the
# lazy node's file system so that fsync and O_DSYNC count for nothing: the
# crash in the fault then loses what the node acknowledged while the
# majority needed it. The run must be INVALID because writes were lost (the
# set check) while the run itself was real (every fault applied).
#
#   tests/scripts/chaos_selftest_lazyfs.sh BUILD_DIR
#
# Snapshots are kept out of the run (--snapshot-threshold 65536): a snapshot
# written in the window would be cut to nothing as well, and the node would
# refuse to start, an INVALID run for a reason this test is not about.
set -uo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
run="$here/../../jepsen/local/run.sh"
results="$build/chaos-results/selftest_lazyfs"

"$run" --build "$build" --nodes 3 --faults lose-unsynced --duration 12 --interval 5 \
  --settle 8 --seed 9 --snapshot-threshold 65536 --sabotage ignore-sync \
  --results "$results" >"$build/chaos-selftest-lazyfs.out" 2>&1
rc=$?
if ((rc == 77)); then
  echo "chaos_selftest_lazyfs: skipped (run.sh needs root)"; exit 77
fi
fail=0
if ((rc != 1)); then
  echo "chaos_selftest_lazyfs: run.sh exited $rc on a sabotaged run, want 1 (INVALID)"; fail=1
fi
# validation.txt lists what made the run not real, and is empty when it was.
if [[ ! -f $results/validation.txt || -s $results/validation.txt ]]; then
  echo "chaos_selftest_lazyfs: the run itself must be real (every fault applied):"
  cat "$results/validation.txt" 2>/dev/null; fail=1
fi
lost=$(grep -o '"lost":[0-9]*' "$results/set.json" 2>/dev/null | tail -n 1 | cut -d: -f2)
if [[ -z $lost || $lost -eq 0 ]]; then
  echo "chaos_selftest_lazyfs: the set check found no lost writes (set.json: ${lost:-missing})"; fail=1
fi
if ((fail)); then
  echo "--- run.sh output"; tail -n 40 "$build/chaos-selftest-lazyfs.out"
  exit 1
fi
echo "chaos_selftest_lazyfs: a node that does not sync loses $lost acknowledged adds, and the run is INVALID:"
grep "^verdict" "$results/summary.txt" | sed 's/^/    /'
