#!/usr/bin/env bash
# Soak with faults (not a unit test; a 2-minute form runs in the suite as e2e_soak): a sustained
# load through danerelayd into a signed DNS world with SIGKILLs, a SIGHUP and a SIGTERM, then a
# reconciliation of every acknowledged recipient and the daemon's resources over time.
# See tools/soak.py for what is checked. Exit status non-zero on any loss, unexplained
# duplicate, recipient both delivered and bounced, or growth of RSS/descriptors when idle.
# Usage: tools/soak.sh [--minutes 15] [--rate 10] [--kill-every 60] [--seed N] [--keep]
#        BUILD_DIR=build-asan tools/soak.sh ...   (default build, built here if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${BUILD_DIR:-build}"
[ -x "$dir/relay/danerelayd" ] && [ -x "$dir/tools/danerelay" ] || ./tools/build.sh "$dir"
export DANERELAYD="$PWD/$dir/relay/danerelayd" DANERELAY="$PWD/$dir/tools/danerelay"
exec /usr/bin/python3 tools/soak.py "$@"
