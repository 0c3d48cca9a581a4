#!/usr/bin/env bash
# Benchmark (not a test, not in CI): DANE delivery to many signed domains, danerelayd against a
# private Postfix configured as a production DANE smarthost, alternating on the same load; prints
# both, the ratios and the sinks' ceiling. See tools/bench_dane.py for what each figure means.
# Usage: tools/bench-dane.sh [--domains N] [--messages N] [--size BYTES] [--rounds N]
#                            [--build-dir DIR]   (default build-bench, built here if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-bench
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[i]}" = --build-dir ] && dir="${args[i + 1]}"
done
[ -x "$dir/relay/danerelayd" ] && [ -x "$dir/tools/danerelay" ] || ./tools/build.sh "$dir"
exec /usr/bin/python3 tools/bench_dane.py --build-dir "$dir" "$@"
