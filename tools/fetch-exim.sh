#!/usr/bin/env bash
# Puts Debian's Exim binary (package exim4-daemon-light) into a cache directory without
# installing the package, for tests/e2e/test_exim_upstream.py: Debian's exim4 packages conflict
# with postfix (both provide mail-transport-agent), and the tests need postfix installed.
# The test runs the binary with a private configuration (exim4 -C FILE), so nothing else of the
# package is needed: its configuration, scripts and spool stay out.
#
# Usage: tools/fetch-exim.sh [DIR]   (DIR: $DANERELAY_EXIM_CACHE, else /var/cache/danerelay-test/exim4)
# Prints the path of the exim4 binary. Idempotent: a complete cache is used as it is.
# The binary needs libidn12 (tools/install-deps.sh installs it) and the account Debian-exim it
# was built for (EXIM_USER=ref:Debian-exim, looked up before any configuration is read); this
# script creates the account as exim4-base's postinst does, when run as root.
set -euo pipefail

dir="${1:-${DANERELAY_EXIM_CACHE:-/var/cache/danerelay-test/exim4}}"
exim="$dir/usr/sbin/exim4"

if [ ! -f "$dir/.complete" ] || [ ! -x "$exim" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # apt-get download fetches as the _apt account where it can write the directory.
  chmod 755 "$work"
  if getent passwd _apt >/dev/null; then chown _apt "$work" 2>/dev/null || true; fi
  if ! (cd "$work" && timeout 300 apt-get download -qq exim4-daemon-light) >&2; then
    # No package lists yet (a fresh container): read them once, then try again.
    if [ "$(id -u)" -ne 0 ]; then
      echo "fetch-exim: apt-get download exim4-daemon-light failed (run as root for apt-get update)" >&2
      exit 1
    fi
    timeout 300 apt-get update -qq >&2
    (cd "$work" && timeout 300 apt-get download -qq exim4-daemon-light) >&2
  fi
  deb="$(ls "$work"/exim4-daemon-light_*.deb)"
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir.new"
  dpkg-deb -x "$deb" "$dir.new"
  dpkg-deb -f "$deb" Version > "$dir.new/.complete"
  rm -rf "$dir"
  mv "$dir.new" "$dir"
fi

if ! getent passwd Debian-exim >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fetch-exim: the account Debian-exim is missing (run as root to create it)" >&2
    exit 1
  fi
  # As exim4-base's postinst: a system account and group without a login or home.
  groupadd --system Debian-exim 2>/dev/null || true
  useradd --system --gid Debian-exim --home-dir /var/spool/exim4 --no-create-home \
    --shell /usr/sbin/nologin Debian-exim
fi

missing="$(ldd "$exim" | grep 'not found' || true)"
if [ -n "$missing" ]; then
  echo "fetch-exim: $exim lacks shared libraries (tools/install-deps.sh installs them):" >&2
  echo "$missing" >&2
  exit 1
fi
echo "$exim"
