#!/usr/bin/env bash
# Installs what building, running and testing Cairn needs, from Debian's
# packages only. Idempotent: packages already present are not reinstalled, so
# a second run does nothing and needs no network.
#
#   deploy/deps.sh            build and run (compiler, cmake, libraries)
#   deploy/deps.sh --test     also what the test command needs
set -euo pipefail

runtime=(build-essential cmake pkg-config clang-format
         libraft-dev libuv1-dev liblz4-dev libmsgpack-dev libcivetweb-dev
         libcurl4-openssl-dev)
testing=(libcmocka-dev clang libclang-rt-14-dev etcd-server etcd-client iproute2 iptables
         e2fsprogs procps psmisc gnuplot-nox)

want=("${runtime[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${testing[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
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
