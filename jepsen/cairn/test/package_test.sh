#!/usr/bin/env bash
# The test command's check of deploy/package.sh (ctest jepsen_package): the
# package the Jepsen suite installs is built from BUILD_DIR, declares the
# Debian packages of the libraries its binaries link against, and the cairnd
# it holds runs with the system's libraries and reports the package's
# version.
#
#   jepsen/cairn/test/package_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "package_test: FAIL: $*" >&2; exit 1; }

# A build directory without binaries is refused.
mkdir -p "$tmp/empty"
if "$root/deploy/package.sh" "$tmp/empty" "$tmp/out-empty" >/dev/null 2>&1; then
  fail "package.sh built a package from an empty build directory"
fi

deb=$("$root/deploy/package.sh" "$build" "$tmp/out")
[[ -f $deb ]] || fail "package.sh printed '$deb', which is not a file"
version=$(dpkg-deb --field "$deb" Version)
[[ $(basename "$deb") == "cairn_${version}_$(dpkg --print-architecture).deb" ]] ||
  fail "$(basename "$deb") is not named cairn_VERSION_ARCH.deb"

# Depends: one line, naming the package of every library cairnd and cairnctl
# need (as dpkg -S finds the library the dynamic linker resolves).
info=$(dpkg-deb --info "$deb")
grep -q '^ Depends: ' <<<"$info" || fail "no Depends line in dpkg-deb --info:"$'\n'"$info"
depends=$(dpkg-deb --field "$deb" Depends)
for bin in cairnd cairnctl; do
  while read -r lib; do
    path=$(ldd "$build/bin/$bin" | awk -v l="$lib" '$1 == l {print $3}')
    [[ -n $path ]] || fail "$bin: ldd cannot resolve $lib"
    owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1) ||
      owner=$(dpkg -S "$path" | head -n 1 | cut -d: -f1)
    [[ -n $owner ]] || fail "$bin: no Debian package owns $path"
    grep -Eq "(^|, )$owner( |,|$)" <<<"$depends" ||
      fail "$bin needs $lib from $owner, which Depends does not name: $depends"
  done < <(readelf -d "$build/bin/$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done

# The files users get.
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/cairnd ./usr/bin/cairnctl ./usr/include/cairn.h; do
  grep -q " $f$" <<<"$listing" || fail "$f is not in the package"
done
grep -Eq " ./usr/lib/[^ ]*/libcairn.so.0 -> " <<<"$listing" || fail "no libcairn.so.0 in the package"

# The extracted binaries run with the system's libraries.
dpkg-deb -x "$deb" "$tmp/root"
if ldd "$tmp/root/usr/bin/cairnd" | grep -q "not found"; then
  fail "cairnd from the package misses libraries: $(ldd "$tmp/root/usr/bin/cairnd" | grep 'not found')"
fi
out=$("$tmp/root/usr/bin/cairnd" --version) || fail "the packaged cairnd --version failed"
[[ $out =~ ^cairnd\ ([0-9]+\.[0-9]+) ]] || fail "cairnd --version printed '$out'"
[[ $version == "${BASH_REMATCH[1]}"* ]] ||
  fail "cairnd reports version ${BASH_REMATCH[1]}, the package is $version"
"$tmp/root/usr/bin/cairnctl" --help >/dev/null || fail "the packaged cairnctl --help failed"
ctl=$("$tmp/root/usr/bin/cairnctl" --version) || fail "the packaged cairnctl --version failed"
[[ $ctl == "cairnctl ${out#cairnd }" ]] || fail "cairnctl --version printed '$ctl', cairnd '$out'"
echo "package_test: $(basename "$deb"): Depends: $depends; cairnd --version: $out"
