#!/usr/bin/env bash
# The test command's check of the Jepsen suite (ctest jepsen_lint): runs
# test/lint.clj on the project, which must pass, then on broken copies of it,
# each of which must fail with the problem it was broken with: a check that
# cannot fail does not count. Needs Debian's clojure package.
#
#   jepsen/cairn/test/lint.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
project=$(cd "$here/.." && pwd)
command -v clojure >/dev/null || { echo "lint.sh: clojure is missing (deploy/deps.sh --test)" >&2; exit 1; }
lint=(clojure "$here/lint.clj")

# 1. The project itself.
"${lint[@]}" "$project"

# 2. Broken copies: NAME, then how to break it, then what the problem must say.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A expect
breakage() { # name expected-message: copies the project to $tmp/name, sets d to it
  d=$tmp/$1
  mkdir -p "$d"
  cp -r "$project/project.clj" "$project/README.md" "$project/src" "$project/test" "$d/"
  expect[$1]=$2
}
breakage unbalanced "support.clj:[0-9]+:[0-9]+: does not read as Clojure"
printf '\n(defn broken [x]\n  (+ x 1)\n' >>"$d/src/jepsen/cairn/support.clj"
breakage alias "errors.clj:[0-9]+:[0-9]+: does not read as Clojure"
printf '\n(def k ::undeclared/key)\n' >>"$d/src/jepsen/cairn/errors.clj"
breakage read-eval "client.clj:[0-9]+:[0-9]+: does not read as Clojure"
printf '\n(def x #=(+ 1 2))\n' >>"$d/src/jepsen/cairn/client.clj"
breakage snapshot "jepsen's version \"0.3.12-SNAPSHOT\" is not a released version"
sed -i 's/\[jepsen "0.3.11"\]/[jepsen "0.3.12-SNAPSHOT"]/' "$d/project.clj"
breakage main ":main jepsen.cairnx has no file"
sed -i 's/:main jepsen.cairn$/:main jepsen.cairnx/' "$d/project.clj"
breakage ns-path "declares namespace jepsen.cairn.sets"
sed -i 's/^(ns jepsen.cairn.set$/(ns jepsen.cairn.sets/' "$d/src/jepsen/cairn/set.clj"
breakage require "requires no.such.lib, which no declared dependency provides"
sed -i 's/^  (:require \[jepsen \[checker :as checker\]$/  (:require [no.such.lib :as nope]\n            [jepsen [checker :as checker]/' \
  "$d/src/jepsen/cairn/register.clj"
breakage own-require "requires jepsen.cairn.nothere, which has no file"
sed -i 's/^  (:require \[jepsen \[checker :as checker\]$/  (:require [jepsen.cairn.nothere :as nh]\n            [jepsen [checker :as checker]/' \
  "$d/src/jepsen/cairn/register.clj"
breakage workload "workload bogus is not in cairn.clj's workloads"
printf '\n    lein run test --package x.deb --workload bogus\n' >>"$d/README.md"
breakage nemesis "nemesis earthquake is not in cairn.clj's faults"
printf '\n    lein run test --package x.deb --nemesis kill,earthquake\n' >>"$d/README.md"

# One broken copy alone must make the exit status non-zero...
if "${lint[@]}" "$tmp/unbalanced" >/dev/null 2>&1; then
  echo "lint.sh: FAIL: lint.clj exited 0 on a file with an unbalanced form" >&2
  exit 1
fi
# ... and every broken copy must be reported with its own problem (one JVM
# for all of them: the machine is small).
set +e
broken=()
for name in "${!expect[@]}"; do broken+=("$tmp/$name"); done
"${lint[@]}" "${broken[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
bad=0
((rc != 0)) || { echo "lint.sh: FAIL: lint.clj exited 0 on broken projects" >&2; bad=1; }
for name in "${!expect[@]}"; do
  if ! grep -q "^lint: $tmp/$name: [0-9]* problem" "$tmp/out"; then
    echo "lint.sh: FAIL: the '$name' breakage was not reported" >&2; bad=1
  elif ! grep "^$tmp/$name/" "$tmp/err" | grep -Eq -- "${expect[$name]}"; then
    echo "lint.sh: FAIL: the '$name' breakage did not report: ${expect[$name]}" >&2
    grep "^$tmp/$name/" "$tmp/err" >&2 || true
    bad=1
  fi
done
if ((bad)); then exit 1; fi
echo "lint.sh: ${#expect[@]} broken copies of the project, each rejected with its problem"
