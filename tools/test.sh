#!/usr/bin/env bash
# Sets everything up, builds, and runs all tests (unit and end-to-end).
# DANERELAY_SANITIZE=1 builds with AddressSanitizer + UBSan into build-asan and tests that.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
if [ "${DANERELAY_SANITIZE:-0}" = 1 ]; then
  dir=build-asan
  ./tools/build.sh "$dir" -DDANERELAY_SANITIZE=ON
else
  dir=build
  ./tools/build.sh "$dir"
fi
ctest --test-dir "$dir" --output-on-failure --timeout 600 -j 2
