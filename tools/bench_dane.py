#!/usr/bin/python3
"""Benchmark (not a test, not in CI): DANE delivery, danerelayd against a production-configured
private Postfix, on the same load in the same run.

The world: tests/e2e/dnsworld.py's NSD with a signed root and DOMAINS signed domains
dN.example, each with an MX mx.dN.example on its own 127.0.1.N and TLSA records at
_PORT._tcp.mx.dN.example: half DANE-EE (3 1 1 of the sinks' key), a quarter DANE-TA 2 0 1 and a
quarter DANE-TA 2 1 1 of the private CA that issued the sinks' certificate. The sinks
(tools/tls_sink.py) terminate STARTTLS on every MX address and count messages and full and
resumed TLS handshakes; their ceiling is measured first with a direct TLS load.

Postfix: smtp_tls_security_level = dane, smtp_dns_support_level = dnssec, a TLS session cache
(tlsmgr), smtp_connection_cache_on_demand, smtp_tls_connection_reuse (tlsproxy). Its validating
resolver is an unbound on 127.0.2.53:53 forwarding to the NSD world with the world's trust
anchor; Postfix reads /etc/resolv.conf, so it runs in a private mount namespace (unshare -m)
with a resolv.conf naming that unbound bind-mounted over /etc/resolv.conf. danerelayd points
its in-process libunbound at the same NSD with the same trust anchor ([dns] forwarders).

Each round loads one relay, then the other: one smtp-source per domain (one session per
message), all at once, MESSAGES in all. Figures per relay:
  msg/s        MESSAGES / (first connection .. the sinks' last message)
  CPU ms/msg   utime+stime of the whole process tree (Postfix: master, its children and the
               children it reaped; danerelayd: the process) over the round
  full TLS/msg full handshakes the sinks counted, per message (and resumed ones)
  peak RSS     the tree's summed resident memory, sampled every 0.1 s
  verified     Postfix: "Verified TLS connection established" among its log's "TLS connection
               established" lines (one per connection an smtp process uses, new or handed over
               by tlsproxy; under "dane" with usable TLSA nothing goes out unverified);
               danerelayd: danerelay_tls_verdicts_total{verdict="Verified"} among all its
               verdicts (one per delivery attempt); both: deliveries logged/counted as sent
Talks only to 127.0.0.0/8; stops only the processes it started, also on failure.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests/e2e"))

from bench_relay import Danerelay, Postfix, Sampler  # noqa: E402
from bench_util import (free_port, proc_stat, rss_kib, wait_port, wait_until,  # noqa: E402
                        write_private_master_cf)
from dnsworld import NSD_ADDRESS, DnsWorld  # noqa: E402
from harness import free_port as free_port_at  # noqa: E402
from mx import private_ca, signed_by, tlsa_2_0_1, tlsa_3_1_1  # noqa: E402
from tls_sink import TlsSink, ceiling  # noqa: E402

UNBOUND_IP = "127.0.2.53"


def mx_ip(i):
    return f"127.0.1.{i + 1}"


def tlsa_for(i, ee, ta_cert, ta_spki):
    return (ee, ee, ta_cert, ta_spki)[i % 4]


def build_world(work, domains, port):
    """NSD with the signed domains; the sinks' certificate (issued by a private CA, naming every
    MX host) and key."""
    certs = os.path.join(work, "certs")
    os.makedirs(certs)
    ca_crt, ca_key = private_ca(certs)
    hosts = [f"mx.d{i}.example" for i in range(domains)]
    chain, key = signed_by(certs, hosts[0], ca_crt, ca_key, also=hosts[1:])
    ee = tlsa_3_1_1(chain)  # the first certificate in the chain: the leaf
    ta_cert, ta_spki = tlsa_2_0_1(ca_crt), "2" + tlsa_3_1_1(ca_crt)[1:]
    world = DnsWorld(work)
    for i in range(domains):
        world.zone(f"d{i}.example.").add("@ MX 10 mx").add(f"mx A {mx_ip(i)}") \
            .add(f"_{port}._tcp.mx TLSA {tlsa_for(i, ee, ta_cert, ta_spki)}")
    return world, chain, key


class Unbound:
    """A validating recursive resolver for Postfix: forwards everything to the NSD world."""

    def __init__(self, work, world):
        self.dir = os.path.join(work, "unbound")
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "unbound.conf")
        with open(self.conf, "w") as f:
            f.write(f"""server:
  interface: {UNBOUND_IP}
  port: 53
  do-ip6: no
  username: ""
  chroot: ""
  directory: "{self.dir}"
  pidfile: "{self.dir}/unbound.pid"
  use-syslog: no
  logfile: "{self.dir}/unbound.log"
  num-threads: 1
  do-not-query-localhost: no
  trust-anchor-file: "{world.trust_anchor}"
  module-config: "validator iterator"
  val-permissive-mode: no
  access-control: 127.0.0.0/8 allow
forward-zone:
  name: "."
  forward-addr: {NSD_ADDRESS}@{world.port}
remote-control:
  control-enable: no
""")
        self.resolv = os.path.join(self.dir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write(f"nameserver {UNBOUND_IP}\noptions trust-ad\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["unbound", "-d", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: self.answers_secure("mx.d0.example."), 20, "unbound to validate")
        return self

    def answers_secure(self, name):
        r = subprocess.run(["dig", "+dnssec", "+time=1", "+tries=1", f"@{UNBOUND_IP}", name, "A"],
                           capture_output=True, text=True, timeout=10)
        return " ad" in r.stdout.split("flags:")[1].split(";")[0] if "flags:" in r.stdout \
            else False

    def cpu(self):
        s = proc_stat(self.proc.pid) if self.proc else None
        return s[0] if s else 0.0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None


def pss_kib(pid):
    """Proportional set size: shared pages split among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemSampler(Sampler):
    """bench_relay's Sampler (peak summed RSS), plus the peak summed PSS, every 0.25 s."""

    def __init__(self, pids_fn):
        super().__init__(pids_fn)
        self.peak_pss = 0

    def run(self):
        while not self.stop_flag.is_set():
            pids = self.pids_fn()
            self.peak = max(self.peak, sum(rss_kib(p) for p in pids))
            self.peak_pss = max(self.peak_pss, sum(pss_kib(p) for p in pids))
            self.stop_flag.wait(0.25)


class DanePostfix(Postfix):
    """bench_relay's private Postfix, configured as a production DANE smarthost and run in a
    mount namespace whose /etc/resolv.conf names the validating unbound."""

    def __init__(self, work, sink_port, resolv):
        super().__init__(work, sink_port)
        self.resolv = resolv
        self.maillog = os.path.join(self.dir, "maillog")
        master_cf = os.path.join(self.etc, "master.cf")
        write_private_master_cf(
            master_cf,
            r"^(smtpd|pickup|cleanup|qmgr|trivial-rewrite|bounce|flush|proxymap|smtp|showq|error|"
            r"anvil|scache|postlogd|discard|tlsmgr)$", f"127.0.0.1:{self.port}")
        with open(master_cf, "a") as f:  # commented out in master.cf.dist
            f.write("tlsproxy unix - - n - 0 tlsproxy\n")

    def configure(self, hold=False):
        super().configure(hold)
        with open(os.path.join(self.etc, "main.cf"), "a") as f:
            f.write(f"""relayhost =
smtp_tcp_port = {self.sink_port}
smtp_dns_support_level = dnssec
smtp_tls_security_level = dane
smtp_tls_loglevel = 1
smtp_tls_session_cache_database = btree:{self.dir}/data/smtp_scache
smtp_connection_cache_on_demand = yes
smtp_tls_connection_reuse = yes
smtp_address_preference = ipv4
""")

    def start(self, hold=False):
        self.configure(hold)
        script = ('mount --bind "$1" /etc/resolv.conf && exec postfix -c "$2" start')
        subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                        self.resolv, self.etc], check=True, capture_output=True, timeout=60)
        pid_file = os.path.join(self.queue, "pid", "master.pid")
        wait_until(lambda: os.path.exists(pid_file), 30, "Postfix's master.pid")
        with open(pid_file) as f:
            self.master = int(f.read().split()[0])  # first: stopped also if it never listens
        wait_port(self.port)

    def verified(self):
        """(Verified TLS connections, all TLS connections, status=sent) in the log so far."""
        verified = tls = sent = 0
        try:
            with open(self.maillog, errors="replace") as f:
                for line in f:
                    if "TLS connection established to" in line:
                        tls += 1
                        verified += "Verified TLS connection" in line
                    sent += "status=sent" in line
        except FileNotFoundError:
            pass
        return verified, tls, sent


class DaneDanerelay(Danerelay):
    def __init__(self, work, sink_port, world, binary, cli):
        super().__init__(work, sink_port, binary, cli)
        self.world = world
        self.metrics_port = free_port()

    def delivery_toml(self, delivery):
        """MX delivery through the signed world, plus /metrics for the TLS verdicts."""
        return f"""[metrics]
address = "127.0.0.1"
port = {self.metrics_port}
[delivery]
port = {self.sink_port}
{self.world.toml()}validation_canary = ""
"""

    def wait_started(self):
        super().wait_started()
        wait_port(self.metrics_port)

    def cpu(self):
        s = proc_stat(self.proc.pid)
        return s[0] + s[1] if s else 0.0

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith(("danerelay_tls_verdicts_total", "danerelay_deliveries_total")):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def verified(self):
        m = self.metrics()
        verdicts = {k: v for k, v in m.items() if k.startswith("danerelay_tls_verdicts_total")}
        return (verdicts.get('danerelay_tls_verdicts_total{verdict="Verified"}', 0),
                sum(verdicts.values()), m.get('danerelay_deliveries_total{outcome="sent"}', 0))


def load(relay, domains, messages, size):
    """One smtp-source per domain, all at once, MESSAGES in all (one session per message)."""
    procs = []
    try:
        for i in range(domains):
            n = messages // domains + (1 if i < messages % domains else 0)
            if n:
                procs.append(subprocess.Popen(
                    ["smtp-source", "-s", "1", "-m", str(n), "-l", str(size), "-f",
                     "sender@bench.example", "-t", f"rcpt@d{i}.example",
                     f"127.0.0.1:{relay.port}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for p in procs:
            _, err = p.communicate(timeout=1800)
            if p.returncode:
                raise RuntimeError(f"smtp-source into {relay.name} failed: {err.decode()[-300:]}")
    finally:
        for p in procs:  # only after a failure: stop the ones still running
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def one_round(relay, sink, domains, messages, size):
    cpu0, seen0, ver0 = relay.cpu(), sink.counters.snapshot(), relay.verified()
    sink_cpu0 = sink.cpu()
    with MemSampler(relay.pids) as sampler:
        t0 = time.monotonic()
        load(relay, domains, messages, size)
        wait_until(lambda: sink.counters.snapshot()["messages"] - seen0["messages"] >= messages,
                   max(300, messages), f"the sinks to receive {relay.name}'s mail", poll=0.1)
        seen1 = sink.counters.snapshot()
        wait_until(lambda: relay.pending() == 0, 120, f"{relay.name}'s queue to empty")
    cpu1, sink_cpu1 = relay.cpu(), sink.cpu()
    ver1 = relay.verified()
    return {
        "msg/s": messages / (seen1["last"] - t0),
        "cpu_ms": (cpu1 - cpu0) * 1000 / messages,
        "sink_ms": (sink_cpu1 - sink_cpu0) * 1000 / messages,
        "sink_busy": (sink_cpu1 - sink_cpu0) / (seen1["last"] - t0),
        "full": (seen1["full"] - seen0["full"]) / messages,
        "resumed": (seen1["resumed"] - seen0["resumed"]) / messages,
        "sessions": (seen1["sessions"] - seen0["sessions"]) / messages,
        "rss": sampler.peak / 1024, "pss": sampler.peak_pss / 1024,
        "verified": ver1[0] - ver0[0], "tls": ver1[1] - ver0[1], "sent": ver1[2] - ver0[2],
        "received": seen1["messages"] - seen0["messages"],
    }


def row(label, pf, dr, unit, fmt="{:.1f}"):
    ratio = dr / pf if pf else float("inf")
    print(f"{label:<36} {fmt.format(pf):>10} {fmt.format(dr):>12} {ratio:>8.2f}x  {unit}",
          flush=True)


def report(results, rounds):
    pf, dr = results["Postfix"], results["danerelayd"]

    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    print(f"{'':<36} {'Postfix':>10} {'danerelayd':>12} {'ratio':>9}")
    for i in range(rounds):
        row(f"round {i + 1}: throughput", pf[i]["msg/s"], dr[i]["msg/s"], "msg/s")
    row("throughput, mean", mean(pf, "msg/s"), mean(dr, "msg/s"), "msg/s")
    row("CPU per message (whole tree)", mean(pf, "cpu_ms"), mean(dr, "cpu_ms"), "ms", "{:.2f}")
    row("full TLS handshakes per message", mean(pf, "full"), mean(dr, "full"), "", "{:.3f}")
    row("resumed TLS handshakes per message", mean(pf, "resumed"), mean(dr, "resumed"), "",
        "{:.3f}")
    row("all TLS handshakes per message", mean(pf, "full") + mean(pf, "resumed"),
        mean(dr, "full") + mean(dr, "resumed"), "", "{:.3f}")
    row("SMTP sessions at the sinks per msg", mean(pf, "sessions"), mean(dr, "sessions"), "",
        "{:.3f}")
    row("sinks' CPU per message", mean(pf, "sink_ms"), mean(dr, "sink_ms"), "ms", "{:.2f}")
    row(f"sinks' CPU busy (of the {os.cpu_count()} cores)", mean(pf, "sink_busy"),
        mean(dr, "sink_busy"), "cores", "{:.2f}")
    row("sinks' ceiling: cores / their CPU per msg", os.cpu_count() * 1000 / mean(pf, "sink_ms"),
        os.cpu_count() * 1000 / mean(dr, "sink_ms"), "msg/s (at that session reuse)", "{:.0f}")
    row("peak PSS (max over rounds)", max(r["pss"] for r in pf), max(r["pss"] for r in dr),
        "MiB", "{:.0f}")
    row("peak RSS summed (max over rounds)", max(r["rss"] for r in pf), max(r["rss"] for r in dr),
        "MiB", "{:.0f}")
    for name, rows, what in (("Postfix", pf, "TLS connections"),
                             ("danerelayd", dr, "delivery TLS verdicts")):
        v, t = sum(r["verified"] for r in rows), sum(r["tls"] for r in rows)
        s, n = sum(r["sent"] for r in rows), sum(r["received"] for r in rows)
        share = 100 * v / t if t else 0.0
        print(f"{name}: Verified {v:.0f} of {t:.0f} {what} ({share:.1f}%); "
              f"{s:.0f} logged/counted sent; {n:.0f} received by the sinks")


def print_ceiling(sink, ips, port, messages, size):
    full = ceiling(sink, ips, port, max(messages // 4, 200), 1, size)
    reuse = ceiling(sink, ips, port, messages, 100, size)
    print(f"sinks' ceiling (direct TLS load from 2 processes x 25 sessions on the same cores, so "
          f"a floor): {full[0]:.0f} msg/s with a full handshake per message, "
          f"{reuse[0]:.0f} msg/s with 100 messages per session", flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domains", type=int, default=50, help="signed recipient domains")
    parser.add_argument("--messages", type=int, default=2000, help="per relay per round")
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each relay once a round")
    parser.add_argument("--sink-workers", type=int, default=2, help="sink processes")
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    args = parser.parse_args()
    if not 1 <= args.domains <= 250:
        parser.error("--domains must be 1..250 (one 127.0.1.N per MX host)")
    return args


def run(args, work, started):
    port = free_port_at(mx_ip(0))
    world, chain, key = build_world(work, args.domains, port)
    started.append(world)  # each one listed before it starts: stopped also if starting fails
    world.start()
    ips = [mx_ip(i) for i in range(args.domains)]
    sink = TlsSink(ips, port, chain, key, args.sink_workers)
    started.append(sink)
    sink.start()
    unbound = Unbound(work, world)
    started.append(unbound)
    unbound.start()
    pf = DanePostfix(work, port, unbound.resolv)
    dr = DaneDanerelay(work, port, world, os.path.join(args.build_dir, "relay/danerelayd"),
                       os.path.join(args.build_dir, "tools/danerelay"))
    started += [pf, dr]
    version = subprocess.run(["postconf", "-dh", "mail_version"], capture_output=True,
                             text=True).stdout.strip()
    print(f"danerelay DANE benchmark; {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.1f}; Postfix {version}; {args.domains} signed domains "
          f"(TLSA 3 1 1 / 2 0 1 / 2 1 1), {args.messages} messages of {args.size} bytes per "
          f"relay per round, {args.rounds} rounds", flush=True)
    print_ceiling(sink, ips, port, args.messages, args.size)
    pf.start()
    dr.start()
    results = {"Postfix": [], "danerelayd": []}
    unbound_cpu = {"Postfix": 0.0, "danerelayd": 0.0}
    for _ in range(args.rounds):
        for relay in (pf, dr):
            u0 = unbound.cpu()
            results[relay.name].append(one_round(relay, sink, args.domains, args.messages,
                                                 args.size))
            unbound_cpu[relay.name] += unbound.cpu() - u0
    report(results, args.rounds)
    n = args.messages * args.rounds
    print(f"unbound (Postfix's resolver, outside its tree) CPU per message: Postfix rounds "
          f"{unbound_cpu['Postfix'] * 1000 / n:.3f} ms, danerelayd rounds "
          f"{unbound_cpu['danerelayd'] * 1000 / n:.3f} ms")
    print_ceiling(sink, ips, port, args.messages, args.size)


def main():
    args = parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-dane: needs root (a private Postfix, unshare -m and a bind mount for its "
                 "resolv.conf, unbound on port 53)")
    for tool in ("smtp-source", "postfix", "unbound", "nsd", "ldns-signzone", "unshare", "dig"):
        if not shutil.which(tool):
            sys.exit(f"bench-dane: {tool} missing; run tools/install-deps.sh")
    work = tempfile.mkdtemp(prefix="danerelay-bench-dane.")
    started = []
    try:
        run(args, work, started)
    finally:
        for thing in reversed(started):
            try:
                thing.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                print(f"bench-dane: stopping {type(thing).__name__}: {e}", file=sys.stderr)
        if os.environ.get("KEEP"):
            print(f"bench-dane: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
