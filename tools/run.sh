#!/usr/bin/env bash
# Sets everything up, builds, and runs danerelayd in the foreground.
# Without arguments it uses the built-in defaults: SMTP on 127.0.0.1:2525, trusted networks
# 127.0.0.0/8 and ::1, the queue in ./data. Arguments go to danerelayd (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
./tools/build.sh build
exec ./build/relay/danerelayd "$@"
