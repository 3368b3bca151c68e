#!/usr/bin/env bash
# The OpenAPI tests (ctest -L smoke): src/openapi.json is a valid OpenAPI 3.0
# document, documents every route of src/http.c, and a real 3-node cluster of
# BUILD_DIR/bin/cairnd answers as it says.
#
#   tests/openapi/run.sh [BUILD_DIR]      (default: build)
#
# Exits 77 (ctest: skipped) only when node or npm is not installed;
# deploy/deps.sh --test installs them, and node_modules/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (deploy/deps.sh --test installs it)" >&2
    exit 77
  fi
done
# deploy/deps.sh --test runs npm ci here when the lockfile changed since the
# last one (and checks the Debian packages, which takes a moment).
"$repo/deploy/deps.sh" --test >&2

cd "$here"
# In this process (not under `node --test`): a signal then reaches the code
# that stops the cluster.
exec node openapi.test.mjs "$build"
