#!/usr/bin/env bash
# Installs every Debian package danerelay needs to build, run and test.
# Idempotent and non-interactive: packages already present are not touched.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config ccache
  # libraries (relay/DESIGN.md: installed, never vendored)
  libasio-dev libssl-dev libunbound-dev libtomlplusplus-dev libsqlite3-dev
  libgtest-dev libgmock-dev libexpected-dev libcli11-dev nlohmann-json3-dev
  libfmt-dev libspdlog-dev libcrypt-dev libsystemd-dev libidn2-dev libcurl4-openssl-dev
  zlib1g-dev libgmime-3.0-dev libopendkim-dev
  # runtime data: the DNSSEC root trust anchor
  dns-root-data
  # test and benchmark tools: real SMTP clients and peers, TLS, DNS
  openssl sqlite3 swaks libnet-ssleay-perl python3 python3-aiosmtpd postfix libsasl2-modules strace
  # a second MIME parser for the notices (tests/e2e/mime_parts.pl)
  libmime-tools-perl
  # two independent DKIM verifiers (tests/e2e/test_dkim.py)
  python3-dkim libmail-dkim-perl
  nsd ldnsutils unbound-anchor bind9-dnsutils faketime
  # tools/bench-dane.sh: the validating resolver a DANE-configured Postfix needs
  unbound
  # the library exim4 needs beyond those above (tools/fetch-exim.sh: Exim is not installed)
  libidn12
  # log compatibility: pflogsumm and fail2ban-regex read the postfix log style
  pflogsumm fail2ban
  # the manual pages are rendered (groff) to check them
  groff-base
  # the Debian package (tools/package.sh: CPack runs dpkg-shlibdeps and file) and its test in
  # a Debian 12 chroot (tools/debian/bookworm-chroot.sh)
  dpkg-dev file debootstrap
)

# tools/fuzz.sh: clang with its libFuzzer and sanitizer runtimes.
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's Exim for tests/e2e/test_exim_upstream.py, extracted into a cache directory (its
# packages conflict with postfix): after the packages, since it needs libidn12.
# Only the tests need it (and skip saying why without it): a failure here does not stop
# tools/run.sh.
fetch_exim() {
  local exim
  if exim="$($SUDO "$(dirname "$0")/fetch-exim.sh")"; then
    echo "install-deps: Exim for the tests in $exim"
  else
    echo "install-deps: warning: no Exim for tests/e2e/test_exim_upstream.py (see above)" >&2
  fi
}

# The Debian 12 chroot for tests/e2e/test_package.py, made once (debootstrap, a few minutes)
# and cached; the test makes it itself (and fails without it) if this could not.
make_chroot() {
  local tarball
  if tarball="$($SUDO "$(dirname "$0")/debian/bookworm-chroot.sh")"; then
    echo "install-deps: Debian 12 chroot for the package test in $tarball"
  else
    echo "install-deps: warning: no Debian 12 chroot for tests/e2e/test_package.py (see above)" >&2
  fi
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  fetch_exim
  make_chroot
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix is only needed for its tools (smtp-source, smtp-sink, posttls-finger):
# no configuration, no listening MTA.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
# policy-rc.d keeps the packages' daemons (postfix, nsd) from starting on install.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  created_policy=1
fi
trap '[ "$created_policy" -eq 1 ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fetch_exim
make_chroot
