#!/usr/bin/env bash
# Builds the Debian package of Cairn from a build directory:
#
#   deploy/package.sh BUILD_DIR [OUT_DIR]     (OUT_DIR defaults to BUILD_DIR)
#
# and prints the path of OUT_DIR/cairn_<version>_amd64.deb. The package holds
# what a user installs: cairnd and cairnctl in /usr/bin, the client library
# (libcairn.so.<version> and its links) in /usr/lib/<multiarch>, its header
# in /usr/include, and the operator's documentation in /usr/share/doc/cairn.
# No service is started: the Jepsen test (jepsen/cairn) and operators start
# cairnd themselves. Depends: comes from dpkg-shlibdeps on the binaries, so
# apt installs the runtime libraries the build linked against (libraft2,
# libuv1, libcivetweb1, liblz4-1, libcurl4, libssl3, libc6).
#
# The version is the CMake project's (CMakeLists.txt, project(VERSION)), as
# recorded in BUILD_DIR/CMakeCache.txt; CAIRN_PKG_VERSION overrides it.
set -euo pipefail

if (($# < 1 || $# > 2)); then
  echo "usage: deploy/package.sh BUILD_DIR [OUT_DIR]" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "$1" && pwd)
out=$(mkdir -p "${2:-$build}" && cd "${2:-$build}" && pwd)

for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture; do
  command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (dpkg-dev)" >&2; exit 1; }
done
for f in bin/cairnd bin/cairnctl; do
  [[ -x $build/$f ]] || { echo "package.sh: $build/$f not built (cmake --build $build)" >&2; exit 1; }
done
lib=$(find "$build/lib" -maxdepth 1 -name 'libcairn.so.*.*' -type f | sort | tail -n 1)
[[ -n $lib ]] || { echo "package.sh: $build/lib/libcairn.so.* not built (cmake --build $build)" >&2; exit 1; }

version=${CAIRN_PKG_VERSION:-$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")}
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] ||
  { echo "package.sh: no usable version (CMakeCache.txt: '$version')" >&2; exit 1; }
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/cairn
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/$multiarch" "$pkg/usr/include" \
  "$pkg/usr/share/doc/cairn"
install -m 0755 "$build/bin/cairnd" "$build/bin/cairnctl" "$pkg/usr/bin/"
libname=$(basename "$lib")
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
install -m 0644 "$lib" "$pkg/usr/lib/$multiarch/"
ln -s "$libname" "$pkg/usr/lib/$multiarch/$soname"
ln -s "$soname" "$pkg/usr/lib/$multiarch/libcairn.so"
install -m 0644 "$root/client/include/cairn.h" "$pkg/usr/include/"
for doc in README.md docs/cairnd.md docs/cairnctl.md docs/operations.md docs/http.md; do
  install -m 0644 "$root/$doc" "$pkg/usr/share/doc/cairn/"
done

# Runtime dependencies, from the libraries the binaries link against.
mkdir -p "$stage/debian"
printf 'Source: cairn\n\nPackage: cairn\nArchitecture: %s\n' "$arch" >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O -e"cairn/usr/bin/cairnd" -e"cairn/usr/bin/cairnctl" \
            -e"cairn/usr/lib/$multiarch/$libname" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || { echo "package.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
rm -rf "$stage/debian"

size=$(du -sk "$pkg" | cut -f1)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: cairn
Version: $version
Architecture: $arch
Maintainer: Cairn developers <cairn@localhost>
Installed-Size: $size
Depends: $depends
Section: database
Priority: optional
Description: replicated configuration store (Raft)
 cairnd, one node of a Cairn cluster: a versioned key-value store kept in
 agreement by Raft, with per-key history, watches, an HTTP JSON API and a
 web console; cairnctl, its command line; and libcairn, the C client
 library. Built from commit $commit.
CONTROL
# The shared library: let ldconfig refresh its cache.
echo "activate-noawait ldconfig" >"$pkg/DEBIAN/triggers"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/triggers"

deb="$out/cairn_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
