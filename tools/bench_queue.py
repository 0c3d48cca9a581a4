#!/usr/bin/python3
"""Benchmark (not a test, not in CI): danerelayd with a large queue.

A queue of MESSAGES messages with RCPTS recipients each (default 100,000 x 10 = 1,000,000
recipients, in 100 domains of 10,000 recipients, each domain a site of its own: its recipients
were deferred at its MX host) is written through the store's own insert path
(danerelay-bench-fill), every recipient deferred one to two hours ahead, as a backlog for
destinations that are down looks. Then, with danerelayd running on it:

  start        seconds until the daemon listens
  RSS          the daemon's resident memory, idle, with the whole backlog queued
  idle CPU     % of one core over 10 s with nothing due
  stats        `danerelay queue stats` wall time (median of 3)
  list         `danerelay queue list --domain d0.example` wall time (1,000 messages)
  flush        `danerelay queue flush --domain d0.example` (10,000 recipients): time from the
               command to the first message at the receiving MX, and until all have arrived

Talks only to 127.0.0.1; stops only the processes it started; every wait is bounded.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from aiosmtpd.controller import Controller

from bench_util import free_port, proc_stat, rss_kib, wait_port, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
DANERELAYD = os.path.join(BUILD, "relay/danerelayd")
DANERELAY = os.path.join(BUILD, "tools/danerelay")
FILL = os.path.join(BUILD, "tools/danerelay-bench-fill")


def cpu_seconds(pid):
    return proc_stat(pid)[0]


def rss_mib(pid):
    return rss_kib(pid) / 1024


class Counter:
    """The receiving MX: counts recipients and notes when the first message arrived."""

    def __init__(self):
        self.lock = threading.Lock()
        self.recipients = 0
        self.first = None

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.first is None:
                self.first = time.monotonic()
            self.recipients += len(envelope.rcpt_tos)
        return "250 2.0.0 Ok"


def timed(*args):
    t0 = time.monotonic()
    out = subprocess.run(args, check=True, capture_output=True, timeout=600).stdout
    return time.monotonic() - t0, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100000)
    parser.add_argument("--rcpts", type=int, default=10)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--sites", type=int, default=None,
                        help="MX host sets of the domains (default: one per domain)")
    args = parser.parse_args()
    for path in (DANERELAYD, DANERELAY, FILL):
        if not os.path.exists(path):
            subprocess.run([os.path.join(ROOT, "tools/build.sh")], check=True)
            break

    work = tempfile.mkdtemp(prefix="danerelay-bench-queue.")
    counter = Counter()
    mx_port = free_port()
    mx = Controller(counter, hostname="127.0.0.1", port=mx_port, ready_timeout=10)
    mx.start()
    proc = None
    try:
        total = args.messages * args.rcpts
        print(f"danerelay large-queue benchmark; {os.cpu_count()} cores; {os.uname().release}")
        t0 = time.monotonic()
        subprocess.run([FILL, os.path.join(work, "queue"), str(args.messages), str(args.rcpts),
                        str(args.domains), str(args.sites or args.domains)], check=True,
                       timeout=3600)
        print(f"fill: {total} deferred recipients in {args.messages} messages, "
              f"{args.domains} domains, {min(args.sites or args.domains, args.domains)} sites: "
              f"{time.monotonic() - t0:.1f} s, "
              f"{os.path.getsize(os.path.join(work, 'queue', 'queue.db')) / 2**20:.0f} MiB")

        port = free_port()
        config = os.path.join(work, "danerelay.toml")
        with open(config, "w") as f:
            f.write(f"""[server]
hostname = "bench.test"
[[listener]]
address = "127.0.0.1"
port = {port}
[queue]
path = "queue"
[sender_checks]
domain_exists = false  # the load's sender domains are in no DNS here
[dns]
validation_canary = ""  # loopback only: no self-check against the root servers
[routes]
"d0.example" = "[127.0.0.1]:{mx_port}"
""")
        log = open(os.path.join(work, "danerelayd.log"), "wb")
        t0 = time.monotonic()
        proc = subprocess.Popen([DANERELAYD, "--config", config], stdout=log,
                                stderr=subprocess.STDOUT)
        wait_port(port, 120)
        started = time.monotonic()
        print(f"start: {started - t0:.2f} s until it listens")
        time.sleep(5)
        c0, w0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(10)
        idle = (cpu_seconds(proc.pid) - c0) / (time.monotonic() - w0) * 100
        print(f"idle: RSS {rss_mib(proc.pid):.0f} MiB, CPU {idle:.2f} % of a core over 10 s "
              f"(goals: < 200 MiB, < 1 %)")

        cli = [DANERELAY, "--config", config, "queue"]
        stats = [timed(*cli, "stats")[0] for _ in range(3)]
        print(f"queue stats: {statistics.median(stats):.3f} s (median of 3; goal < 1 s)")
        secs, out = timed(*cli, "list", "--domain", "d0.example", "--json")
        print(f"queue list --domain d0.example: {secs:.3f} s for {len(out.splitlines())} "
              f"messages")

        expected = total // args.domains
        t0 = time.monotonic()
        subprocess.run([*cli, "flush", "--domain", "d0.example"], check=True,
                       capture_output=True, timeout=600)
        flushed = time.monotonic()
        wait_until(lambda: counter.first is not None, 60, "the first flushed message", poll=0.01)
        print(f"queue flush --domain d0.example ({expected} recipients): command "
              f"{flushed - t0:.3f} s, first delivery {counter.first - t0:.3f} s after it began "
              f"(goal < 1 s)")
        done = wait_until(lambda: counter.recipients >= expected, 600, "the flushed mail")
        print(f"  all {counter.recipients} delivered {done - t0:.1f} s after the flush "
              f"({counter.recipients / (done - t0):.0f} recipients/s)")
        c0, w0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(5)
        print(f"idle again: RSS {rss_mib(proc.pid):.0f} MiB, CPU "
              f"{(cpu_seconds(proc.pid) - c0) / (time.monotonic() - w0) * 100:.2f} % of a core")
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=60)
        mx.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
