#!/usr/bin/env bash
# Benchmark (not a test, not in CI): danerelayd on a queue of 1,000,000 deferred recipients:
# RSS, idle CPU, `queue stats` and `queue list --domain` latency, and how soon a
# `queue flush --domain` of 10,000 recipients starts delivering. See tools/bench_queue.py.
# Usage: tools/bench-queue.sh [--messages N] [--rcpts N] [--domains N] [--sites N]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/tools/danerelay-bench-fill ] || ./tools/build.sh build
exec /usr/bin/python3 tools/bench_queue.py "$@"
