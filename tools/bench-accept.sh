#!/usr/bin/env bash
# Benchmark (not a test): how fast danerelayd accepts mail, and what durability costs.
#
# For 1, 10 and 50 concurrent clients, Postfix's smtp-source sends messages (one SMTP session
# per message) to danerelayd, and then the same load to Postfix's smtp-sink, which answers 250
# without storing anything. Printed per row: messages/s for both, their ratio (the baseline is
# measured in the same run, since machines are noisy), and fsync+fdatasync calls per message
# (with their mean duration) counted by strace on the daemon in a separate pass, since strace
# slows the daemon down (strace times the system call only, not a preloaded delay in front of
# it). A second table repeats this with every sync made 5 ms slower
# (tools/slow-fsync.c, LD_PRELOAD), as on a spinning disk, to show what group commit buys.
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

sink_port=$(free_port)
smtp-sink -u nobody "127.0.0.1:$sink_port" 1024 > /dev/null 2>&1 &
pids+=("$!")
wait_port "$sink_port"

# Starts a danerelayd in $work/$1 on a free port; extra environment in "${@:2}".
# Sets relay_port and relay_pid.
start_relay() {
  local dir="$work/$1"
  shift
  mkdir -p "$dir"
  relay_port=$(free_port)
  cat > "$dir/danerelay.toml" <<TOML
[server]
hostname = "bench.test"
[[listener]]
address = "127.0.0.1"
port = $relay_port
[delivery]
enabled = false
[limits]
max_connections = 1000
max_connections_per_client = 1000
[queue]
path = "queue"
[sender_checks]
domain_exists = false
[dns]
validation_canary = ""  # loopback only: no self-check against the root servers
TOML
  env "$@" ./build/relay/danerelayd --config "$dir/danerelay.toml" > "$dir/danerelayd.log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  relay_config="$dir/danerelay.toml"
  wait_port "$relay_port"
}

queued() { ./build/tools/danerelay --config "$relay_config" queue list --json | wc -l; }

# Messages per second for $1 clients sending $2 messages to port $3.
rate() {
  local start end
  start=$(date +%s.%N)
  smtp-source -s "$1" -m "$2" -l "$size" -f sender@example.org -t rcpt@example.net \
    "127.0.0.1:$3" > /dev/null 2>&1
  end=$(date +%s.%N)
  awk -v n="$2" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }'
}

# fsync + fdatasync calls per message, and microseconds per call, for $1 clients, $2 messages.
fsyncs() {
  strace -f -qq -c -e trace=fsync,fdatasync -o "$work/strace.out" -p "$relay_pid" &
  local strace_pid=$!
  sleep 0.5  # let strace attach to every thread
  smtp-source -s "$1" -m "$2" -l "$size" -f sender@example.org -t rcpt@example.net \
    "127.0.0.1:$relay_port" > /dev/null 2>&1
  kill -INT "$strace_pid"
  wait "$strace_pid" 2>/dev/null || true
  awk -v n="$2" '$NF == "fsync" || $NF == "fdatasync" { calls += $4; secs += $2 }
                 END { printf "%.3f %.0f", calls / n, calls ? secs * 1e6 / calls : 0 }' \
    "$work/strace.out"
}

# One table: $1 = label, $2 = messages per row, rest = environment for danerelayd.
table() {
  local label="$1" n="$2"
  shift 2
  start_relay "$label" "$@"
  echo
  echo "== $label: $n messages of $size bytes per row, one SMTP session per message"
  printf "%-8s %13s %12s %7s %11s %9s\n" clients "danerelayd/s" "smtp-sink/s" ratio \
    "fsyncs/msg" "us/fsync"
  local before sent=0
  before=$(queued)
  for clients in 1 10 50; do
    local relay sink stats ratio
    relay=$(rate "$clients" "$n" "$relay_port")
    sink=$(rate "$clients" "$n" "$sink_port")
    stats=$(fsyncs "$clients" $(( n / 4 )))
    ratio=$(awk -v a="$relay" -v b="$sink" 'BEGIN { printf "%.2f", a / b }')
    printf "%-8s %13s %12s %7s %11s %9s\n" "$clients" "$relay" "$sink" "$ratio" $stats
    sent=$(( sent + n + n / 4 ))
  done
  local got=$(( $(queued) - before ))
  echo "queued: $got of $sent messages sent"
  [ "$got" -eq "$sent" ] || { echo "bench: messages missing from the queue" >&2; exit 1; }
  kill "$relay_pid"
  wait "$relay_pid" 2>/dev/null || true
}

echo "danerelay accept benchmark; $(nproc) cores; $(uname -r); queue on $(df -P "$work" | awk 'NR==2 {print $1}')"
echo "baseline: Postfix's smtp-sink (answers 250, stores nothing) under the same load, same run"
table "this disk" "$messages"
# The same with every sync made 5 ms slower, as on a spinning disk: what group commit is for.
cc -shared -fPIC -O2 -o "$work/slow-fsync.so" tools/slow-fsync.c -ldl
table "fsync +5ms (simulated slow disk)" $(( messages / 4 )) LD_PRELOAD="$work/slow-fsync.so" SLOW_FSYNC_US=5000
