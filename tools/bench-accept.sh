#!/usr/bin/env bash
# Benchmark (not a test): how fast danerelayd accepts mail, and what durability costs.
#
# For 1, 10 and 50 concurrent clients, Postfix's smtp-source sends messages (one SMTP session
# per message) to danerelayd, and then the same load to Postfix's smtp-sink, which answers 250
# without storing anything. Printed per row: messages/s for both, their ratio (the baseline is
# measured in the same run, since machines are noisy), and fsync+fdatasync calls per message
# counted by strace on the daemon in a separate pass (strace slows the daemon down).
#
# Usage: tools/bench-accept.sh [MESSAGES_PER_ROW]   (default 2000)
# Talks only to 127.0.0.1; stops only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-2000}"
size=4096

[ -x build/relay/danerelayd ] || ./tools/build.sh build
for tool in smtp-source smtp-sink strace; do
  command -v "$tool" >/dev/null || { echo "bench: $tool missing; run tools/install-deps.sh" >&2; exit 1; }
done

work=$(mktemp -d /tmp/danerelay-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nothing listens on port $1" >&2; exit 1
}

relay_port=$(free_port)
sink_port=$(free_port)
cat > "$work/danerelay.toml" <<TOML
[server]
hostname = "bench.test"
[[listener]]
address = "127.0.0.1"
port = $relay_port
[limits]
max_connections = 1000
max_connections_per_client = 1000
[queue]
path = "queue"
TOML

./build/relay/danerelayd --config "$work/danerelay.toml" > "$work/danerelayd.log" 2>&1 &
relay_pid=$!
pids+=("$relay_pid")
smtp-sink -u nobody "127.0.0.1:$sink_port" 1024 > /dev/null 2>&1 &
pids+=("$!")
wait_port "$relay_port"
wait_port "$sink_port"

queued() { ./build/tools/danerelay --config "$work/danerelay.toml" queue list --json | wc -l; }

# Messages per second for $1 clients sending $2 messages to port $3.
rate() {
  local start end
  start=$(date +%s.%N)
  smtp-source -s "$1" -m "$2" -l "$size" -f sender@example.org -t rcpt@example.net \
    "127.0.0.1:$3" > /dev/null 2>&1
  end=$(date +%s.%N)
  awk -v n="$2" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }'
}

# fsync + fdatasync calls per message for $1 clients.
fsyncs() {
  local n=$(( messages / 4 ))
  strace -f -qq -c -e trace=fsync,fdatasync -o "$work/strace.$1" -p "$relay_pid" &
  local strace_pid=$!
  sleep 0.5  # let strace attach to every thread
  smtp-source -s "$1" -m "$n" -l "$size" -f sender@example.org -t rcpt@example.net \
    "127.0.0.1:$relay_port" > /dev/null 2>&1
  kill -INT "$strace_pid"
  wait "$strace_pid" 2>/dev/null || true
  awk -v n="$n" '$NF == "fsync" || $NF == "fdatasync" { calls += $4 }
                 END { printf "%.3f", calls / n }' "$work/strace.$1"
}

echo "danerelay accept benchmark: $messages messages of $size bytes per row, one session per message"
echo "$(nproc) cores; $(uname -r); queue on $(df -P "$work" | awk 'NR==2 {print $1}')"
printf "%-8s %14s %14s %8s %14s\n" clients "danerelayd/s" "smtp-sink/s" ratio "fsyncs/msg"
before=$(queued)
for clients in 1 10 50; do
  relay=$(rate "$clients" "$messages" "$relay_port")
  sink=$(rate "$clients" "$messages" "$sink_port")
  per_msg=$(fsyncs "$clients")
  ratio=$(awk -v a="$relay" -v b="$sink" 'BEGIN { printf "%.2f", a / b }')
  printf "%-8s %14s %14s %8s %14s\n" "$clients" "$relay" "$sink" "$ratio" "$per_msg"
done
after=$(queued)
expected=$(( 3 * messages + 3 * (messages / 4) ))
echo "queued: $((after - before)) of $expected messages sent"
[ "$((after - before))" -eq "$expected" ] || { echo "bench: messages missing from the queue" >&2; exit 1; }
