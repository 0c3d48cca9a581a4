"""Helpers the benchmark scripts share (tools/bench_relay.py, tools/bench_queue.py): loopback
ports, bounded waits, and a process's CPU time and memory from /proc."""
import os
import socket
import time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def wait_until(predicate, timeout, what, poll=0.05):
    """Polls `predicate` until it holds and returns that moment (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(poll)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def proc_stat(pid):
    """(utime + stime, cutime + cstime) in seconds, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return out


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_private_master_cf(path, services, listen):
    """A master.cf for a private Postfix instance (`postfix -c DIR`): Debian's master.cf.dist
    with only the services matching the regular expression `services`, none chrooted (the
    private queue is not set up for it), and the smtpd service listening on `listen`
    ("IP:port"). Shared by bench-relay and the Postfix interoperability test."""
    import re
    out, keep = [], False
    with open("/usr/share/postfix/master.cf.dist") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            if not line[0].isspace():
                cols = line.split()
                keep = bool(re.match(services, cols[7]))
                if keep:
                    cols[4] = "n"
                    if cols[0] == "smtp" and cols[1] == "inet":
                        cols[0] = listen
                    line = " ".join(cols) + "\n"
            if keep:
                out.append(line)
    with open(path, "w") as f:
        f.writelines(out)
