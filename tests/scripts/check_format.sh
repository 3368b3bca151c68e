#!/usr/bin/env bash
# Fails when any C source of ours differs from what clang-format (with the
# repository's .clang-format) would write.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
bad=0
while IFS= read -r f; do
  if ! clang-format --style=file "$f" | cmp -s - "$f"; then
    echo "not formatted: $f (run: clang-format -i $f)"
    bad=1
  fi
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find src raft client tests -name '*.[ch]')
exit $bad
