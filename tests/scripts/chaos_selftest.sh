#!/usr/bin/env bash
# The chaos harness's own validation must notice a run that was not real:
# run.sh --sabotage makes partitions drop nothing, crashes a node outside
# the schedule and stalls the cluster at the final heal; the run must then be
# INVALID (exit 1) and validation.txt must name each of those failures.
#
#   tests/scripts/chaos_selftest.sh BUILD_DIR
set -uo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
run="$here/../../jepsen/local/run.sh"
results="$build/chaos-results/selftest"

"$run" --build "$build" --nodes 3 --faults partition-leader --duration 14 --interval 3 \
  --settle 12 --seed 7 --sabotage no-drop,crash,stall --results "$results" >"$build/chaos-selftest.out" 2>&1
rc=$?
if ((rc == 77)); then
  echo "chaos_selftest: skipped (run.sh needs root)"; exit 77
fi
fail=0
if ((rc != 1)); then
  echo "chaos_selftest: run.sh exited $rc on a sabotaged run, want 1 (INVALID)"; fail=1
fi
for want in "fault not applied: partition-leader" "leadership did not move" "a node crashed" \
    "after the final heal"; do
  if ! grep -F "$want" "$results/validation.txt" >/dev/null 2>&1; then
    echo "chaos_selftest: validation.txt does not report: $want"; fail=1
  fi
done
if ((fail)); then
  echo "--- validation.txt"; cat "$results/validation.txt" 2>/dev/null
  echo "--- run.sh output"; tail -n 40 "$build/chaos-selftest.out"
  exit 1
fi
echo "chaos_selftest: a sabotaged run is INVALID and says why:"
sed 's/^/    /' "$results/validation.txt"
