#!/usr/bin/env bash
# Installs what building, running and testing Cairn needs, from Debian's
# packages only. Idempotent: packages already present are not reinstalled, so
# a second run does nothing and needs no network. (clojure: the test command
# reads the Jepsen suite, jepsen/cairn, with it; dpkg-dev, which
# build-essential brings, builds the package, deploy/package.sh; fuse3 and
# libfuse3-dev: the chaos harness's file system that loses unsynced writes,
# jepsen/local/lazyfs.c.)
#
#   deploy/deps.sh            build and run (compiler, cmake, libraries)
#   deploy/deps.sh --test     also what the test command needs
set -euo pipefail

runtime=(build-essential cmake pkg-config clang-format
         libraft-dev libuv1-dev liblz4-dev libmsgpack-dev libcivetweb-dev
         libcurl4-openssl-dev libssl-dev)
testing=(libcmocka-dev clang libclang-rt-14-dev etcd-server etcd-client iproute2 iptables
         e2fsprogs procps psmisc gnuplot-nox python3-botocore fuse3 libfuse3-dev
         clojure)

want=("${runtime[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${testing[@]}")
fi

# The Node test projects: the console's browser tests (tests/console:
# Debian's chromium driven by playwright-core), the OpenAPI tests
# (tests/openapi: swagger-parser and ajv) and the disaster-recovery tests
# (tests/dr: s3rver, behind a proxy that checks signatures with
# python3-botocore). They need node and npm from Debian
# unless a node is already installed (one from elsewhere bundles npm and
# conflicts with Debian's npm package), then `npm ci` from each lockfile,
# run again only when the lockfile changes.
tests_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests" && pwd)
if [[ "${1:-}" == "--test" ]]; then
  want+=(chromium)
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi
npm_ci() { # --test? project-directory
  [[ "${1:-}" == "--test" ]] || return 0
  local dir=$tests_dir/$2
  cmp -s "$dir/package-lock.json" "$dir/node_modules/.cairn-lock" && return 0
  echo "deps: npm ci in tests/$2" >&2
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$dir/package-lock.json" "$dir/node_modules/.cairn-lock"
}
npm_projects() { npm_ci "${1:-}" console && npm_ci "${1:-}" openapi && npm_ci "${1:-}" dr; }

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  npm_projects "${1:-}"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/cairn-apt.log 2>&1; then
  # The package lists may be stale on a fresh machine: refresh once, retry.
  $sudo apt-get update >>/tmp/cairn-apt.log 2>&1
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/cairn-apt.log 2>&1 || {
    echo "deps: apt-get failed; see /tmp/cairn-apt.log" >&2
    exit 1
  }
fi
npm_projects "${1:-}"
