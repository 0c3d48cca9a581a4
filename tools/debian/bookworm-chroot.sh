#!/usr/bin/env bash
# Makes (once) a minimal Debian 12 system for tests/e2e/test_package.py and prints the path of
# its tarball: debootstrap --variant=minbase from the Debian mirror this machine's apt uses
# (or $DEBIAN_MIRROR), packed as /var/cache/danerelay-test/bookworm-minbase.tar. Later runs
# find the tarball and only print its path. Needs root and debootstrap (tools/install-deps.sh).
set -euo pipefail
cache=/var/cache/danerelay-test
tarball="$cache/bookworm-minbase.tar"

# The first Debian archive (not -security) named in apt's sources, deb822 or one-line form.
host_mirror() {
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list)
  cat "${files[@]}" 2>/dev/null |
    grep -oE '(^URIs:|^deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^[:space:]]+/debian/?([[:space:]]|$)' |
    grep -oE '[a-z]+://[^[:space:]]+' | head -n 1 || true
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 900 9 || { echo "bookworm-chroot: $cache is locked for 15 minutes" >&2; exit 1; }
if [ -s "$tarball" ]; then
  echo "$tarball"
  exit 0
fi
mirror="${DEBIAN_MIRROR:-$(host_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"
work="$(mktemp -d "$cache/debootstrap.XXXXXX")"
# debootstrap mounts /proc (and more) in the new root while it runs: a cut run can leave them.
cleanup() {
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r || true); do
    umount -l "$m" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
echo "bookworm-chroot: debootstrap --variant=minbase bookworm from $mirror (a few minutes, once)" >&2
started=$SECONDS
if ! timeout 900 debootstrap --variant=minbase bookworm "$work/root" "$mirror" >"$work/log" 2>&1; then
  tail -n 20 "$work/log" >&2
  echo "bookworm-chroot: debootstrap failed (log above)" >&2
  exit 1
fi
# The package lists come with it; tests still run apt-get update before installing.
tar --numeric-owner -C "$work/root" -cf "$work/root.tar" .
mv "$work/root.tar" "$tarball"
echo "bookworm-chroot: $tarball made in $((SECONDS - started)) s" >&2
echo "$tarball"
