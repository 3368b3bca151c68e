#!/usr/bin/env bash
# The test command: installs what the tests need, then builds and runs every
# test group in three builds.
#
#   build/       RelWithDebInfo: lint, unit, integration, smoke (README),
#                console (the web console in chromium), dr (disaster
#                recovery against s3rver and a directory)
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: unit, integration
#   build-fuzz/  clang + libFuzzer: the decoder fuzzer, briefly
#   build/       again: chaos (jepsen/README.md), the short profile: nine
#                45-second fault schedules on 3 nodes and the simulation
#
#   tests/run.sh          every group above (about 24 minutes on 2 cores)
#   tests/run.sh --long   the same, then the long chaos profile (5 nodes,
#                         every fault, 35 minutes; results in
#                         build/chaos-results/long_5_nodes)
#
# Run one group by hand with e.g. `cd build && ctest -L unit`.
set -euo pipefail
long=0
case "${1:-}" in
  --long) long=1 ;;
  "") ;;
  *) echo "usage: tests/run.sh [--long]" >&2; exit 2 ;;
esac
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
jobs=$(nproc)

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
deploy/deps.sh --test

step "build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
# Two at a time: most tests wait on timeouts more than they compute, and each
# integration test keeps to ports of its own (CAIRN_IT_SLOT, harness.h).
# Tests that measure or need the machine to themselves are RUN_SERIAL.
step "tests: lint, unit, raft, integration, smoke"
(cd build && ctest --output-on-failure -j"$jobs" -L 'lint|unit|integration|smoke')

# The web console in Debian's chromium against a real 3-node cluster
# (tests/console; docs/console.md). Skipped, and said so, without chromium.
step "tests: console (a real browser)"
(cd build && ctest --output-on-failure -L console)

# Disaster recovery (tests/dr; docs/disaster-recovery.md): the object store
# client, backups and restores of real clusters against s3rver.
step "tests: dr (disaster recovery)"
(cd build && ctest --output-on-failure -L dr)

step "build (ASan + UBSan)"
cmake -S . -B build-asan -DCAIRN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
step "tests under ASan + UBSan: unit, integration"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j"$jobs" -L 'unit|integration')

step "build (libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCAIRN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$jobs"
step "fuzz the decoders"
(cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz)

step "chaos: the short profile (root: network namespaces)"
# The fault runs are RUN_SERIAL; only the simulation's two halves share.
(cd build && ctest --output-on-failure -j"$jobs" -L chaos)

if ((long)); then
  step "chaos: the long profile"
  (cd build && ctest --output-on-failure -L long)
fi

step "all tests passed"
