#!/usr/bin/python3
"""Soak with faults: a sustained, rate-bounded load through the real danerelayd into a signed DNS
world, with SIGKILLs, a SIGHUP with a changed configuration and a SIGTERM along the way; at the
end every acknowledged recipient is reconciled against what the sinks received.

The world (tests/e2e/dnsworld.py, NSD, DNSSEC-signed):
  dane.example     DANE-EE (3 1 1), an MX that takes everything
  flaky.example    DANE-EE, an MX that answers RCPT 451 (6 %) or 550 (3 %), and after the data
                   drops the connection without a reply (4 %), answers 451 (4 %) or 554 (2 %)
  defer.example    signed, no TLSA, no STARTTLS: 450 to every RCPT, until the mail expires
  bounce.example   unsigned: 550 5.1.1 to every RCPT, a bounce at once
  senders.example  DANE-EE: the senders' MX, where every notice (bounce, delay warning) lands

Load: RATE messages/s from CLIENTS threads, 1-3 recipients per message (dane 50 %, flaky 25 %,
bounce 15 %, defer 10 %), each recipient address unique; a few messages per SMTP session.
Short [retry] timers, so backoff, delay warnings, expiry and bounces all happen within the run.
Faults: SIGKILL + restart about every KILL_EVERY seconds, a SIGHUP with a changed [delivery]
connect_timeout and [retry] max_backoff (checked in the log), a SIGTERM (must exit 0) + restart.
After the load: the queue must drain (bounded), then IDLE seconds with no load.

Reconciliation, for every recipient of every message that got a 250:
  delivered once      an MX answered 250 to the data for it exactly once
  bounced once        exactly one "Action: failed" notice names it (Final-Recipient)
  lost                neither                                             -> failure
  delivered+bounced   both                                                -> failure
  duplicate           delivered (or bounced) twice: explained only when a SIGKILL came within
                      CUT_WINDOW seconds after the MX's first 250 (a cut between the peer's 250
                      and our commit); anything else                      -> failure
  wrong outcome       a dane.example recipient bounced, a defer/bounce.example one delivered
                                                                          -> failure
  corrupt             a delivered copy does not end with the exact bytes submitted -> failure
Resources (RSS, open descriptors, threads of the daemon, sampled) are printed over time;
growth while idle after the load (descriptors +3, RSS +10 % + 4 MiB, threads) -> failure.
`error:` lines in the daemon's log are counted and the distinct ones printed.
Exit status 0 only without any failure. Talks only to 127.0.0.0/8; stops only the processes it
started; every wait is bounded.
"""
import argparse
import email
import email.policy
import os
import random
import re
import signal
import smtplib
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))

from dnsworld import DnsWorld  # noqa: E402
from harness import Relay, queued_id  # noqa: E402
from mx import MxServer, Recorder, free_port_on, self_signed, tlsa_3_1_1  # noqa: E402

IPS = {"dane": "127.0.0.71", "flaky": "127.0.0.72", "defer": "127.0.0.73",
       "bounce": "127.0.0.74", "senders": "127.0.0.75"}
WEIGHTS = [("dane", 50), ("flaky", 25), ("bounce", 15), ("defer", 10)]
CUT_WINDOW = 5.0


class SoakRecorder(Recorder):
    """An MX that records each message with the time of its 250, per behaviour."""

    def __init__(self, kind, seed):
        super().__init__()
        self.kind, self.rng, self.drops = kind, random.Random(seed), 0

    def roll(self):
        with self.lock:
            return self.rng.random()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        r = self.roll()
        if self.kind == "defer":
            return f"450 4.2.0 <{address}>: Mailbox busy"
        if self.kind == "bounce":
            return f"550 5.1.1 <{address}>: User unknown"
        if self.kind == "flaky" and r < 0.06:
            return "451 4.3.0 Flaky: try again"
        if self.kind == "flaky" and r < 0.09:
            return f"550 5.1.1 <{address}>: Flaky: user unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        r = self.roll() if self.kind == "flaky" else 1.0
        if r < 0.04:
            with self.lock:
                self.drops += 1
            server.transport.abort()  # the data arrived; the reply never leaves
            return "421 4.3.0 dropped"
        if r < 0.08:
            return "451 4.3.0 Flaky: data not stored"
        if r < 0.10:
            return "554 5.6.0 Flaky: message refused"
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "content": envelope.content, "time": time.time()})
        return "250 2.0.0 Ok: stored"


class Load:
    """RATE messages/s from CLIENTS threads; records what got a 250."""

    def __init__(self, port, rate, clients, seed):
        self.port, self.rate, self.clients = port, rate, clients
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}        # seq -> (queue id, [recipients])
        self.bodies = {}       # seq -> the bytes handed to DATA
        self.unanswered = {}   # seq -> [recipients]: the data went out, no reply came
        self.sent = 0
        self.seq = 0
        self.seed = seed
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(clients)]

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def recipients(self, rng, seq):
        kinds = [k for k, w in WEIGHTS for _ in range(w)]
        return [f"m{seq}r{i}@{rng.choice(kinds)}.example" for i in range(rng.randint(1, 3))]

    def run(self, index):
        rng = random.Random(self.seed * 100 + index)
        interval = self.clients / self.rate
        due = time.monotonic() + index * interval / self.clients
        while not self.stop_flag.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as c:
                    c.ehlo(f"client{index}.soak.example")
                    for _ in range(rng.randint(1, 8)):
                        delay = due - time.monotonic()
                        if self.stop_flag.wait(max(0.0, delay)):
                            return
                        due = max(due + interval, time.monotonic() - 1.0)  # no bursts to catch up
                        self.one(c, rng)
            except (OSError, smtplib.SMTPException):
                self.stop_flag.wait(0.2)  # down (killed, restarting) or cut mid-session

    def one(self, c, rng):
        seq = self.next_seq()
        rcpts = self.recipients(rng, seq)
        body = (f"From: <s{seq}@senders.example>\r\nTo: <{rcpts[0]}>\r\n"
                f"Message-ID: <soak.{seq}@senders.example>\r\nSubject: soak {seq}\r\n\r\n"
                + "".join(f"line {i} of message {seq}\r\n" for i in range(rng.randint(1, 60))))
        code, _ = c.mail(f"s{seq}@senders.example")
        if code != 250:
            return
        for r in rcpts:
            c.rcpt(r)
        with self.lock:
            self.sent += 1
            self.unanswered[seq] = rcpts
        code, reply = c.data(body.encode())
        with self.lock:
            del self.unanswered[seq]
            if code == 250:
                self.acked[seq] = (queued_id(reply), rcpts)
                self.bodies[seq] = body.encode()

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=30)


class Sampler:
    """Samples the daemon's RSS, descriptors and threads every `period` seconds."""

    def __init__(self, relay, period):
        self.relay, self.period = relay, period
        self.samples = []  # (seconds since start, phase, pid, rss KiB, fds, threads)
        self.phase = "load"
        self.t0 = time.monotonic()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    @staticmethod
    def read(pid):
        try:
            status = open(f"/proc/{pid}/status").read()
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
            return rss, len(os.listdir(f"/proc/{pid}/fd")), threads
        except (OSError, AttributeError):
            return None

    def sample(self):
        proc = self.relay.proc
        got = self.read(proc.pid) if proc else None
        if got:
            self.samples.append((time.monotonic() - self.t0, self.phase, proc.pid, *got))
        return got

    def run(self):
        while not self.stop_flag.wait(self.period):
            self.sample()

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=10)


def notices_by_recipient(recorder):
    """{recipient: [(action, time)]} from every DSN that reached the senders' MX."""
    out = {}
    with recorder.lock:
        messages = list(recorder.messages)
    for got in messages:
        msg = email.message_from_bytes(got["content"], policy=email.policy.compat32)
        for part in msg.walk():
            if part.get_content_type() != "message/delivery-status":
                continue
            for block in part.get_payload()[1:]:
                rcpt = (block.get("Final-Recipient") or "").split(";", 1)[-1].strip()
                action = (block.get("Action") or "").strip().lower()
                out.setdefault(rcpt, []).append((action, got["time"]))
    return out


def deliveries_by_recipient(recorders):
    """{recipient: [(time of the 250, content)]}."""
    out = {}
    for rec in recorders:
        with rec.lock:
            for m in rec.messages:
                for r in m["to"]:
                    out.setdefault(r, []).append((m["time"], m["content"]))
    return out


class Soak:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.failures = []
        self.kills = []  # wall-clock times of SIGKILLs
        self.events = []
        self.servers = {}
        self.world = self.relay = None
        self.lifetime = max(60, int(args.minutes * 60 / 5))

    def fail(self, what):
        self.failures.append(what)

    def log(self, what):
        print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)

    def build(self):
        certs = os.path.join(self.work, "certs")
        os.makedirs(certs)
        port = self.port = free_port_on(list(IPS.values()))
        crt = {n: self_signed(certs, f"mx.{n}.example") for n in ("dane", "flaky", "senders")}
        w = self.world = DnsWorld(self.work)
        for n in ("dane", "flaky", "senders"):
            w.zone(f"{n}.example.").mx(IPS[n], tlsa_3_1_1(crt[n][0]), port)
        w.zone("defer.example.").mx(IPS["defer"])
        w.zone("bounce.example.", "unsigned").mx(IPS["bounce"])
        w.start()
        for i, n in enumerate(IPS):
            s = MxServer(IPS[n], port, *(crt[n] if n in crt else ()))
            s.recorder = s.controller.handler = SoakRecorder(n, self.args.seed + i)
            self.servers[n] = s.start()
        warning = max(10, self.lifetime // 3)
        self.relay = Relay(deliver=True, extra_toml=self.world.toml() + f"""
[delivery]
port = {port}
connect_timeout = "5s"
[retry]
min_backoff = "2s"
max_backoff = "10s"
max_lifetime = "{self.lifetime}s"
delay_warning = "{warning}s"
[limits]
max_connections_per_client = 100
""")
        self.relay.start()

    def schedule(self, duration):
        """[(offset, action)]: kills about every KILL_EVERY s, one SIGHUP, one SIGTERM."""
        rng = random.Random(self.args.seed)
        every = min(self.args.kill_every, duration / 4)
        plan, t = [], every
        while t < duration - 10:
            plan.append((t + rng.uniform(-every / 5, every / 5), "kill"))
            t += every
        plan.append((duration * 0.45, "hup"))
        plan.append((duration * 0.7, "term"))
        return sorted(plan)

    def do(self, action):
        if action == "kill":
            self.kills.append(time.time())
            self.relay.kill(signal.SIGKILL)
            self.relay.start()
        elif action == "hup":
            with open(self.relay.config) as f:
                text = f.read()
            text = text.replace('connect_timeout = "5s"', 'connect_timeout = "4s"')
            text = text.replace('max_backoff = "10s"', 'max_backoff = "8s"')
            with open(self.relay.config, "w") as f:
                f.write(text)
            self.relay.reload()
        elif action == "term":
            rc = self.relay.kill(signal.SIGTERM)
            if rc != 0:
                self.fail(f"SIGTERM: danerelayd exited with {rc}")
            self.relay.start()
        self.events.append((time.time(), action))
        self.log(f"{action} done")

    def run(self):
        duration = self.args.minutes * 60
        sampler = Sampler(self.relay, self.args.sample_every)
        sampler.start()
        load = Load(self.relay.port, self.args.rate, self.args.clients, self.args.seed)
        t0 = time.monotonic()
        load.start()
        self.log(f"load: {self.args.rate} msg/s for {duration:.0f} s; max_lifetime "
                 f"{self.lifetime} s")
        for offset, action in self.schedule(duration):
            wait = t0 + offset - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.do(action)
        time.sleep(max(0.0, t0 + duration - time.monotonic()))
        load.stop()
        self.log(f"load stopped: {load.sent} sent, {len(load.acked)} acknowledged")
        sampler.phase = "drain"
        end_of_load = sampler.sample()
        self.drain()
        sampler.phase = "idle"
        idle_start = sampler.sample()
        time.sleep(self.args.idle)
        idle_end = sampler.sample()
        sampler.stop()
        rc = self.relay.kill(signal.SIGTERM)
        if rc != 0:
            self.fail(f"final SIGTERM: danerelayd exited with {rc}")
        self.reconcile(load)
        self.resources(sampler, end_of_load, idle_start, idle_end)
        self.errors()

    def drain(self):
        """Waits (bounded) until the queue is empty: everything delivered or returned."""
        deadline = time.monotonic() + self.lifetime + 120
        left = None
        while time.monotonic() < deadline:
            left = self.relay.queue_json()
            if not left:
                self.log("queue empty")
                return
            time.sleep(2)
        self.fail(f"queue not empty {self.lifetime + 120} s after the load: {len(left)} "
                  f"messages, e.g. {left[0]['id']}")

    def explained(self, first):
        return any(first <= k <= first + CUT_WINDOW for k in self.kills)

    def reconcile(self, load):
        delivered = deliveries_by_recipient(
            [self.servers["dane"].recorder, self.servers["flaky"].recorder])
        notices = notices_by_recipient(self.servers["senders"].recorder)
        rows = {k: dict.fromkeys(("recipients", "delivered", "bounced", "warned", "dup_ok",
                                  "dup_bad", "both", "lost", "wrong", "corrupt"), 0) for k, _ in WEIGHTS}
        for seq, (qid, rcpts) in sorted(load.acked.items()):
            for r in rcpts:
                kind = r.split("@")[1].split(".")[0]
                row = rows[kind]
                row["recipients"] += 1
                d = [t for t, _ in delivered.get(r, [])]
                copies = [content for _, content in delivered.get(r, [])]
                if any(not content.endswith(load.bodies[seq]) for content in copies):
                    row["corrupt"] += 1
                    self.fail(f"{r} ({qid}) delivered with other bytes than were submitted")
                failed = [t for a, t in notices.get(r, []) if a == "failed"]
                row["warned"] += any(a == "delayed" for a, _ in notices.get(r, []))
                if d and failed:
                    row["both"] += 1
                    self.fail(f"{r} ({qid}) delivered and bounced")
                elif not d and not failed:
                    row["lost"] += 1
                    self.fail(f"{r} ({qid}) lost: neither delivered nor bounced")
                row["delivered"] += bool(d)
                row["bounced"] += bool(failed)
                for times, what in ((d, "delivered"), (failed, "bounced")):
                    if len(times) > 1:
                        if self.explained(min(times)):
                            row["dup_ok"] += 1
                        else:
                            row["dup_bad"] += 1
                            self.fail(f"{r} ({qid}) {what} {len(times)} times, no kill within "
                                      f"{CUT_WINDOW} s after the first")
                if (kind == "dane" and failed) or (kind in ("defer", "bounce") and d):
                    row["wrong"] += 1
                    self.fail(f"{r} ({qid}) {'bounced' if failed else 'delivered'}: wrong "
                              f"outcome for {kind}.example")
        unanswered = sum(1 for rcpts in load.unanswered.values())
        unacked_handled = sum(1 for seq, rcpts in load.unanswered.items()
                              if any(r in delivered or r in notices for r in rcpts))
        print("\nReconciliation (recipients of acknowledged messages)")
        cols = ["recipients", "delivered", "bounced", "warned", "dup_ok", "dup_bad", "both",
                "lost", "wrong", "corrupt"]
        print(f"{'destination':<12}" + "".join(f"{c:>11}" for c in cols))
        total = dict.fromkeys(cols, 0)
        for kind, row in rows.items():
            print(f"{kind:<12}" + "".join(f"{row[c]:>11}" for c in cols))
            for c in cols:
                total[c] += row[c]
        print(f"{'all':<12}" + "".join(f"{total[c]:>11}" for c in cols))
        print(f"messages: {load.sent} sent, {len(load.acked)} acknowledged, {unanswered} cut "
              f"before the reply ({unacked_handled} of those delivered or returned anyway); "
              f"{len(self.kills)} SIGKILLs; flaky MX dropped {self.servers['flaky'].recorder.drops}"
              f" connections after the data")
        print("dup_ok: a second copy explained by a SIGKILL within "
              f"{CUT_WINDOW:.0f} s after the MX's first 250; warned: got a delay warning")
        if len(load.acked) < self.args.rate * self.args.minutes * 60 * 0.5:
            self.fail(f"only {len(load.acked)} messages acknowledged: the load did not run")

    def resources(self, sampler, end_of_load, idle_start, idle_end):
        print("\nResources of danerelayd (RSS MiB, open descriptors, threads)")
        print(f"{'t (s)':>7} {'phase':<6} {'pid':>8} {'RSS':>8} {'fds':>5} {'thr':>4}")
        step = max(1, len(sampler.samples) // 24)
        shown = sampler.samples[::step] + sampler.samples[-1:]
        for t, phase, pid, rss, fds, threads in shown:
            print(f"{t:7.0f} {phase:<6} {pid:>8} {rss / 1024:8.1f} {fds:>5} {threads:>4}")
        if not (end_of_load and idle_start and idle_end):
            self.fail("the daemon was not running at the end of the load")
            return
        print(f"end of load: RSS {end_of_load[0] / 1024:.1f} MiB, {end_of_load[1]} fds; "
              f"idle {self.args.idle} s: RSS {idle_start[0] / 1024:.1f} -> "
              f"{idle_end[0] / 1024:.1f} MiB, fds {idle_start[1]} -> {idle_end[1]}, threads "
              f"{idle_start[2]} -> {idle_end[2]}")
        if idle_end[1] > idle_start[1] + 3 or idle_end[1] > end_of_load[1] + 3:
            self.fail(f"open descriptors grew after the load: {end_of_load[1]} at its end, "
                      f"{idle_start[1]} -> {idle_end[1]} while idle")
        if idle_end[0] > idle_start[0] * 1.10 + 4096:
            self.fail(f"RSS grew while idle: {idle_start[0]} -> {idle_end[0]} KiB")
        if idle_end[2] > idle_start[2]:
            self.fail(f"threads grew while idle: {idle_start[2]} -> {idle_end[2]}")

    def errors(self):
        lines = [ln for ln in self.relay.logs().splitlines() if "error:" in ln]
        distinct = {}
        for ln in lines:
            key = re.sub(r"\b[0-9A-F]{10,}\b|\d+", "N", ln.split("error:", 1)[1])[:160]
            distinct.setdefault(key, ln)
        print(f"\n`error:` lines in the daemon's log: {len(lines)} ({len(distinct)} distinct)")
        for ln in list(distinct.values())[:15]:
            print("  " + ln[:300])

    def stop(self):
        if self.relay:
            self.relay.cleanup()
        for s in self.servers.values():
            s.stop()
        if self.world:
            self.world.stop()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=15, help="length of the load")
    p.add_argument("--rate", type=float, default=10, help="messages per second")
    p.add_argument("--clients", type=int, default=4, help="client threads")
    p.add_argument("--kill-every", type=float, default=60, help="seconds between SIGKILLs")
    p.add_argument("--idle", type=float, default=None, help="seconds idle after the drain")
    p.add_argument("--sample-every", type=float, default=None, help="resource sample period")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    if args.idle is None:
        args.idle = 20 if args.minutes <= 5 else 60
    if args.sample_every is None:
        args.sample_every = 2 if args.minutes <= 5 else 5
    return args


def main():
    import shutil
    import tempfile
    args = parse_args()
    work = tempfile.mkdtemp(prefix="danerelay-soak-")
    soak = Soak(args, work)
    try:
        soak.build()
        soak.run()
    except BaseException:
        if soak.relay:
            print(soak.relay.logs()[-4000:])
        raise
    finally:
        soak.stop()
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if soak.failures:
        print(f"\nFAILED: {len(soak.failures)} problems")
        for f in soak.failures[:50]:
            print("  " + f)
        return 1
    print("\nOK: nothing lost, nothing both delivered and bounced, every duplicate explained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
