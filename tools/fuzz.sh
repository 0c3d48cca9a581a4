#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) into build-fuzz and runs each for a bounded
# time. Usage: tools/fuzz.sh [SECONDS_PER_TARGET] (default 30) [TARGET...]
# Prints executions per second and in total for each target. Exits 1 on any finding: the input
# is left in build-fuzz/findings/<target>/; copy it to tests/fuzz/regressions/<target>/ with the
# fix, and the normal test suite replays it from then on (<target>_replay).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(fuzz_command fuzz_session fuzz_reply fuzz_notice fuzz_config fuzz_seven_bit fuzz_dkim)

./tools/install-deps.sh --fuzz
dir=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDANERELAY_FUZZ=ON \
  -DDANERELAY_WERROR=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}"

python3 tests/fuzz/seed_corpus.py >/dev/null
status=0
summary=()
for t in "${targets[@]}"; do
  corpus="$dir/corpus/$t"
  findings="$dir/findings/$t"
  mkdir -p "$corpus" "$findings"
  # The working corpus grows across runs on this machine; the seeds and past findings join it.
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  [ -d tests/fuzz/regressions/"$t" ] && cp -n tests/fuzz/regressions/"$t"/* "$corpus"/ 2>/dev/null
  log="$dir/$t.log"
  set +e
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    timeout $((seconds + 120)) "$dir/tests/fuzz/$t" "$corpus" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1 \
    -artifact_prefix="$findings/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units:[[:space:]]*[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec:[[:space:]]*[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo "?")
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$(printf '%-14s FINDING (exit %d) after %s executions: see %s and %s' "$t" "$rc" \
      "$execs" "$log" "$findings")")
    grep -E 'ERROR|invariant violated|SUMMARY' "$log" | head -5 >&2 || true
  else
    summary+=("$(printf '%-14s %6ss %10s executions %8s exec/s  coverage %s' "$t" "$seconds" \
      "$execs" "$rate" "$cov")")
  fi
done
echo "fuzz: results (clang libFuzzer, ASan + UBSan):"
printf '  %s\n' "${summary[@]}"
exit "$status"
