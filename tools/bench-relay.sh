#!/usr/bin/env bash
# Benchmark (not a test, not in CI): danerelayd against a private Postfix instance on the same
# smtp-source load, relaying to one smtp-sink; prints both and their ratio. See
# tools/bench_relay.py for what each figure means.
# Usage: tools/bench-relay.sh [--messages N] [--large N] [--backlog N] [--rounds N] [--dkim]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/relay/danerelayd ] || ./tools/build.sh build
exec /usr/bin/python3 tools/bench_relay.py "$@"
