#!/usr/bin/python3
"""Benchmark (not a test, not in CI): danerelayd against a private Postfix on the same load.

Both relay to the same smtp-sink on loopback (Postfix: relayhost; danerelayd: a [routes] entry);
smtp-source is the client. Rows alternate between the two, and every figure is printed for both
with the ratio danerelayd/Postfix, because this machine's speed varies from minute to minute.

  end to end   msg/s from the first connection until the relay's queue is empty again, for
               1 KiB and 100 KiB messages at 10 and 50 clients (one SMTP session per message)
  accept only  a backlog of BACKLOG messages (Postfix: into its hold queue; danerelayd:
               [delivery] enabled = false), 50 clients
  drain        that backlog delivered (Postfix: postsuper -H ALL + postqueue -f; danerelayd:
               restarted with delivery on), until the queue is empty
  CPU ms/msg   the relay's CPU time (Postfix: master and all its children) per message
  peak RSS     the relay's resident memory (Postfix: the sum over its processes), sampled
  fsyncs/msg   fsync + fdatasync per relayed message (strace -f -c, in a separate pass)
  latency      p50/p99 of the time from the end of DATA to the 250 (10 clients, 1 KiB)

With --dkim only the DKIM rows: end to end (1 KiB, 10 and 50 clients) with danerelayd signing off,
signing with RSA 2048 and with Ed25519 (the load's From domain has a key; smtp-source's clients
are trusted, and sources = ["trusted"]), each against Postfix in the same round, and the ratio
signing on/off.

The Postfix instance is private (postfix -c DIR, its own queue and ports), never the system's.
Talks only to 127.0.0.1; stops only the processes it started; every wait is bounded.
"""
import argparse
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench_util import (children, free_port, proc_stat, rss_kib, wait_port, wait_until,
                        write_private_master_cf)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DANERELAYD = os.path.join(ROOT, "build/relay/danerelayd")
DANERELAY = os.path.join(ROOT, "build/tools/danerelay")
RCPT = "rcpt@example.net"


class Sampler:
    """Samples a process tree's summed RSS every 0.1 s while it runs; keeps the peak."""

    def __init__(self, pids_fn):
        self.pids_fn, self.peak, self.stop_flag = pids_fn, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, sum(rss_kib(p) for p in self.pids_fn()))
            self.stop_flag.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(timeout=5)


class Sink:
    def __init__(self, work):
        self.port = free_port()
        self.out = open(os.path.join(work, "sink.out"), "wb")
        self.proc = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{self.port}",
                                      "1024"], stdout=self.out, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.out.close()


class Postfix:
    """A private Postfix instance: its own config directory, queue, data directory and port."""

    def __init__(self, work, sink_port):
        self.dir = os.path.join(work, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        for d in (self.etc, self.queue, os.path.join(self.dir, "data")):
            os.makedirs(d, exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        os.chmod(work, 0o755)
        self.port = free_port()
        self.sink_port = sink_port
        self.name = "Postfix"
        self.master = None
        write_private_master_cf(
            os.path.join(self.etc, "master.cf"),
            r"^(smtpd|pickup|cleanup|qmgr|trivial-rewrite|bounce|flush|proxymap|smtp|showq|error|"
            r"anvil|scache|postlogd|discard)$", f"127.0.0.1:{self.port}")

    def configure(self, hold):
        restrictions = "check_client_access static:HOLD, permit_mynetworks, reject" if hold \
            else "permit_mynetworks, reject"
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{self.sink_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = {restrictions}
maillog_file_prefixes = /tmp
maillog_file = {self.dir}/maillog
default_process_limit = 200
smtp_tls_security_level = none
smtpd_tls_security_level = none
biff = no
message_size_limit = 26214400
""")

    def start(self, hold=False):
        self.configure(hold)
        subprocess.run(["postfix", "-c", self.etc, "start"], check=True, capture_output=True,
                       timeout=60)
        wait_port(self.port)
        with open(os.path.join(self.queue, "pid", "master.pid")) as f:
            self.master = int(f.read().split()[0])

    def stop(self):
        if self.master:
            subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=60)
            wait_until(lambda: proc_stat(self.master) is None or not children(self.master),
                       30, "Postfix to stop")
            self.master = None

    def count(self, queues=("incoming", "active", "deferred", "maildrop")):
        n = 0
        for q in queues:
            for _, _, files in os.walk(os.path.join(self.queue, q)):
                n += len(files)
        return n

    def pending(self):
        return self.count()

    def held(self):
        return self.count(("hold",))

    def release(self):
        subprocess.run(["postsuper", "-c", self.etc, "-H", "ALL"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(["postqueue", "-c", self.etc, "-f"], check=True, capture_output=True,
                       timeout=60)

    def pids(self):
        return [self.master, *children(self.master)] if self.master else []

    def cpu(self):
        """Master with every child it has reaped, plus the children still running."""
        own = proc_stat(self.master)
        total = own[0] + own[1] if own else 0.0
        for c in children(self.master):
            s = proc_stat(c)
            total += s[0] if s else 0.0
        return total


class Danerelay:
    def __init__(self, work, sink_port, binary=DANERELAYD, cli=DANERELAY):
        self.dir = os.path.join(work, "danerelay")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.sink_port = sink_port
        self.binary, self.cli = binary, cli
        self.name = "danerelayd"
        self.proc = None
        self.config = os.path.join(self.dir, "danerelay.toml")
        self.extra_toml = ""  # e.g. [dkim]

    def delivery_toml(self, delivery):
        """The [dns], [delivery] and [routes] part: plain delivery to the sink by a route."""
        return f"""[dns]
validation_canary = ""  # loopback only: no self-check against the root servers
[delivery]
enabled = {"true" if delivery else "false"}
[routes]
"example.net" = "[127.0.0.1]:{self.sink_port}"
"""

    def wait_started(self):
        wait_port(self.port)

    def start(self, delivery=True):
        with open(self.config, "w") as f:
            f.write(f"""[server]
hostname = "bench.test"
[[listener]]
address = "127.0.0.1"
port = {self.port}
[limits]
max_connections = 1000
max_connections_per_client = 1000
[queue]
path = "queue"
[sender_checks]
domain_exists = false  # the load's sender domains are in no DNS here
{self.delivery_toml(delivery)}{self.extra_toml}""")
        self.log = open(os.path.join(self.dir, "danerelayd.log"), "ab")
        self.proc = subprocess.Popen([self.binary, "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.wait_started()

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.log.close()
            self.proc = None

    def pending(self):
        import json
        out = subprocess.run([self.cli, "--config", self.config, "queue", "stats", "--json"],
                             check=True, capture_output=True, timeout=60).stdout
        return json.loads(out)["messages"]

    def pids(self):
        return [self.proc.pid] if self.proc else []

    def cpu(self):
        s = proc_stat(self.proc.pid)
        return s[0] if s else 0.0


def smtp_source(port, clients, messages, size):
    subprocess.run(["smtp-source", "-s", str(clients), "-m", str(messages), "-l", str(size),
                    "-f", "sender@example.org", "-t", RCPT, f"127.0.0.1:{port}"],
                   check=True, capture_output=True, timeout=3600)


def end_to_end(relay, clients, messages, size):
    """msg/s from the first connection until the queue is empty; CPU ms/msg; peak RSS MiB."""
    cpu0 = relay.cpu()
    with Sampler(relay.pids) as sampler:
        t0 = time.monotonic()
        smtp_source(relay.port, clients, messages, size)
        t1 = wait_until(lambda: relay.pending() == 0, 1800, f"{relay.name} to deliver")
    return messages / (t1 - t0), (relay.cpu() - cpu0) * 1000 / messages, sampler.peak / 1024


def fsyncs(relay, clients, messages, size, work):
    out = os.path.join(work, "strace.out")
    # Every process of the relay, and (-f) whatever they start from now on.
    targets = []
    for pid in relay.pids():
        targets += ["-p", str(pid)]
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-c", "-e", "trace=fsync,fdatasync",
                               "-o", out, *targets])
    time.sleep(1.0)  # let strace attach to every thread
    smtp_source(relay.port, clients, messages, size)
    wait_until(lambda: relay.pending() == 0, 1800, f"{relay.name} to deliver")
    time.sleep(0.5)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    calls = 0
    with open(out) as f:
        for line in f:
            cols = line.split()
            if cols and cols[-1] in ("fsync", "fdatasync"):
                calls += int(cols[3])
    return calls / messages


def latency(relay, clients, messages, size):
    """p50 and p99 in ms of end-of-DATA to 250, one session per message."""
    line = b"x" * 76 + b"\r\n"
    body = b"Subject: bench\r\n\r\n" + line * max(1, size // len(line))
    samples, lock, errors = [], threading.Lock(), []

    def worker(n):
        try:
            for _ in range(n):
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=60) as c:
                    c.ehlo("bench.test")
                    c.mail("sender@example.org")
                    c.rcpt(RCPT)
                    c.putcmd("data")
                    c.getreply()
                    t0 = time.perf_counter()
                    c.send(body + b".\r\n")
                    code, _ = c.getreply()
                    t1 = time.perf_counter()
                    if code != 250:
                        raise RuntimeError(f"DATA answered {code}")
                    with lock:
                        samples.append((t1 - t0) * 1000)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(messages // clients,))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if errors:
        raise errors[0]
    wait_until(lambda: relay.pending() == 0, 600, f"{relay.name} to deliver")
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def dkim_toml(dr, algorithm):
    """[dkim] with one new key for the load's From domain (example.org), or "" for none."""
    if algorithm is None:
        return ""
    key = os.path.join(dr.dir, f"{algorithm}.pem")
    if os.path.exists(key):
        os.unlink(key)
    subprocess.run([dr.cli, "--config", dr.config, "dkim", "keygen", "example.org", "--selector",
                    "bench", "--algorithm", algorithm, "--key-file", key], check=True,
                   capture_output=True, timeout=60)
    return f"""[dkim]
sources = ["trusted"]
[[dkim.key]]
domain = "example.org"
selector = "bench"
key_file = "{key}"
"""


def dkim_rows(pf, dr, args):
    """End to end with signing off, RSA 2048, Ed25519; Postfix alongside in each round."""
    pf.start()
    base = {}
    for _ in range(args.rounds):
        for algorithm in (None, "rsa2048", "ed25519"):
            dr.stop()
            dr.extra_toml = ""
            dr.start()  # the config keygen reads must exist before the key does
            dr.stop()
            dr.extra_toml = dkim_toml(dr, algorithm)
            dr.start()
            for clients in (10, 50):
                a = end_to_end(pf, clients, args.messages, 1024)
                b = end_to_end(dr, clients, args.messages, 1024)
                name = algorithm or "off"
                row(f"1 KiB, {clients} cl., DKIM {name}", a[0], b[0], "msg/s")
                row("  CPU per message", a[1], b[1], "ms", "{:.2f}")
                if algorithm is None:
                    base[clients] = b[0]
                else:
                    print(f"  signing {name} / off, {clients} clients: "
                          f"{b[0] / base[clients]:.2f}x", flush=True)
    signed = subprocess.run(["grep", "-c", "DKIM-Signature field added",
                             os.path.join(dr.dir, "danerelayd.log")], capture_output=True,
                            text=True).stdout.strip()
    print(f"danerelayd log: {signed} messages signed")


def row(label, pf, dr, unit, fmt="{:.0f}"):
    ratio = dr / pf if pf else float("inf")
    print(f"{label:<34} {fmt.format(pf):>10} {fmt.format(dr):>12} {ratio:>7.2f}x  {unit}",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="per 1 KiB row")
    parser.add_argument("--large", type=int, default=1000, help="per 100 KiB row")
    parser.add_argument("--backlog", type=int, default=20000, help="accept-then-drain backlog")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every row")
    parser.add_argument("--dkim", action="store_true", help="only the DKIM signing rows")
    args = parser.parse_args()
    for tool in ("smtp-source", "smtp-sink", "postfix", "strace"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} missing; run tools/install-deps.sh")
    if not os.path.exists(DANERELAYD):
        subprocess.run([os.path.join(ROOT, "tools/build.sh")], check=True)

    work = tempfile.mkdtemp(prefix="danerelay-bench-relay.")
    sink = Sink(work)
    pf, dr = Postfix(work, sink.port), Danerelay(work, sink.port)
    try:
        print(f"danerelay relay benchmark; {os.cpu_count()} cores; {os.uname().release}; "
              f"Postfix {subprocess.run(['postconf', '-dh', 'mail_version'], capture_output=True, text=True).stdout.strip()}")
        print("both relay to one smtp-sink on loopback; smtp-source sends, one session per message")
        print(f"{'':<34} {'Postfix':>10} {'danerelayd':>12} {'ratio':>8}")
        if args.dkim:
            dkim_rows(pf, dr, args)
            return
        pf.start()
        dr.start()
        for _ in range(args.rounds):
            for size, n in ((1024, args.messages), (102400, args.large)):
                for clients in (10, 50):
                    res = {}
                    for relay in (pf, dr):  # alternating, same load
                        res[relay.name] = end_to_end(relay, clients, n, size)
                    a, b = res["Postfix"], res["danerelayd"]
                    tag = f"{size // 1024} KiB, {clients} clients"
                    row(f"end to end {tag}", a[0], b[0], "msg/s")
                    row(f"  CPU per message", a[1], b[1], "ms", "{:.2f}")
                    row(f"  peak RSS", a[2], b[2], "MiB", "{:.0f}")
        n = max(args.messages // 2, 500)
        row("fsyncs per message, 50 clients", fsyncs(pf, 50, n, 1024, work),
            fsyncs(dr, 50, n, 1024, work), "fsync+fdatasync", "{:.2f}")
        lat = {relay.name: latency(relay, 10, 1000, 1024) for relay in (pf, dr)}
        row("acceptance latency p50, 10 clients", lat["Postfix"][0], lat["danerelayd"][0],
            "ms", "{:.2f}")
        row("acceptance latency p99, 10 clients", lat["Postfix"][1], lat["danerelayd"][1],
            "ms", "{:.2f}")

        # A backlog: accepted with delivery off, then drained.
        pf.stop()
        dr.stop()
        results = {}
        for relay in (pf, dr):
            if relay is pf:
                pf.start(hold=True)
            else:
                dr.start(delivery=False)
            cpu0 = relay.cpu()
            t0 = time.monotonic()
            smtp_source(relay.port, 50, args.backlog, 1024)
            accept = args.backlog / (time.monotonic() - t0)
            accept_cpu = (relay.cpu() - cpu0) * 1000 / args.backlog
            if relay is pf:
                wait_until(lambda: pf.held() >= args.backlog, 300, "Postfix's hold queue")
                cpu0 = pf.cpu()
                with Sampler(pf.pids) as sampler:
                    t0 = time.monotonic()
                    pf.release()
                    t1 = wait_until(lambda: pf.pending() == 0 and pf.held() == 0, 1800,
                                    "Postfix to drain")
                drain_cpu = (pf.cpu() - cpu0) * 1000 / args.backlog
                pf.stop()
            else:
                dr.stop()
                with Sampler(dr.pids) as sampler:
                    t0 = time.monotonic()
                    dr.start(delivery=True)
                    t1 = wait_until(lambda: dr.pending() == 0, 1800, "danerelayd to drain")
                    drain_cpu = dr.cpu() * 1000 / args.backlog
                dr.stop()
            results[relay.name] = (accept, accept_cpu, args.backlog / (t1 - t0), drain_cpu,
                                   sampler.peak / 1024)
        a, b = results["Postfix"], results["danerelayd"]
        row(f"accept only, backlog {args.backlog}, 50 cl.", a[0], b[0], "msg/s")
        row("  CPU per message", a[1], b[1], "ms", "{:.2f}")
        row(f"drain the backlog of {args.backlog}", a[2], b[2], "msg/s")
        row("  CPU per message", a[3], b[3], "ms", "{:.2f}")
        row("  peak RSS while draining", a[4], b[4], "MiB", "{:.0f}")
    finally:
        pf.stop()
        dr.stop()
        sink.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
