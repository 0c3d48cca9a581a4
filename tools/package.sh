#!/usr/bin/env bash
# Builds the Debian package: tools/package.sh [BUILD_DIR] (default build). Builds what is out
# of date in BUILD_DIR (configuring it first if it is not yet; it is reused, never rebuilt from
# scratch), runs CPack's DEB generator there (tools/debian/package.cmake) and prints the path of
# danerelay_VERSION_ARCH.deb. Needs dpkg-dev (dpkg-shlibdeps) and file: tools/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="$(realpath -m "${1:-build}")"
if [ ! -f "$build_dir/CPackConfig.cmake" ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build_dir" -j "$(nproc)" >&2
out="$build_dir/package"
mkdir -p "$out"
rm -f "$out"/danerelay_*.deb
(cd "$build_dir" && cpack -G DEB -B "$out") >&2
# CPack keeps its staging tree in $out/_CPack_Packages; the package is the one .deb beside it.
debs=("$out"/danerelay_*.deb)
if [ "${#debs[@]}" -ne 1 ] || [ ! -f "${debs[0]}" ]; then
  echo "package.sh: expected one danerelay_*.deb in $out, found: ${debs[*]}" >&2
  exit 1
fi
echo "${debs[0]}"
