#!/usr/bin/env bash
# The console's browser tests (ctest -L console): Debian's chromium driven by
# playwright-core against a real 3-node cluster of BUILD_DIR/bin/cairnd.
#
#   tests/console/run.sh [BUILD_DIR]      (default: build)
#
# Exits 77 (ctest: skipped) only when chromium is not installed;
# deploy/deps.sh --test installs it, with node, npm and node_modules/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

if [[ ! -x $chromium ]]; then
  echo "SKIP: no chromium at $chromium (deploy/deps.sh --test installs Debian's)" >&2
  exit 77
fi
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "console tests: $tool is missing; run deploy/deps.sh --test" >&2
    exit 1
  fi
done
# deploy/deps.sh --test runs npm ci here when the lockfile changed since the
# last one (and checks the Debian packages, which takes a moment).
"$repo/deploy/deps.sh" --test >&2

cd "$here"
export CAIRN_BUILD_DIR=$build CHROMIUM=$chromium
# Each file runs in this process (not under `node --test`, which would put it
# in a child): a signal then reaches the code that stops the cluster.
node logic.test.mjs
exec node console.test.mjs
