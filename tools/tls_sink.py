"""A fast STARTTLS SMTP sink for tools/bench_dane.py, and a load generator to measure its
ceiling.

The sink listens on one port of many loopback addresses (one per MX host), offers STARTTLS with
one certificate chain, accepts every MAIL, RCPT and DATA at once and keeps nothing. It runs as
WORKERS forked processes sharing the listening sockets (and one SSL context made before the
fork, so that a TLS 1.3 session ticket issued by one worker resumes at another). Each worker
counts into its own slot of a shared array: messages, sessions, full handshakes, resumed
handshakes, and the monotonic time of its last message (CLOCK_MONOTONIC is system-wide).
Stdlib only; every wait is bounded.
"""
import asyncio
import multiprocessing
import os
import signal
import socket
import ssl
import time

FIELDS = ("messages", "sessions", "full", "resumed", "last")
EHLO_PLAIN = b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 104857600\r\n" \
             b"250 STARTTLS\r\n"
EHLO_TLS = b"250-sink.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n"
IDLE = 120  # seconds a session may wait for a command


class Counters:
    def __init__(self, workers):
        self.workers = workers
        self.array = multiprocessing.get_context("fork").RawArray("d", workers * len(FIELDS))

    def add(self, worker, field, n=1):
        self.array[worker * len(FIELDS) + FIELDS.index(field)] += n

    def set(self, worker, field, value):
        self.array[worker * len(FIELDS) + FIELDS.index(field)] = value

    def snapshot(self):
        """Sums over the workers ("last": the latest)."""
        out = dict.fromkeys(FIELDS, 0.0)
        for w in range(self.workers):
            for i, f in enumerate(FIELDS):
                v = self.array[w * len(FIELDS) + i]
                out[f] = max(out[f], v) if f == "last" else out[f] + v
        return out


async def _data(reader):
    """Reads a message up to the lone dot, line by line (a terminator straight after a line
    read is only seen that way), within IDLE seconds."""
    async def lines():
        while True:
            line = await reader.readline()
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            if line == b".\r\n":
                return

    await asyncio.wait_for(lines(), IDLE)


class _Replies:
    """Replies held back while the client's pipelined commands are still in the buffer, and
    written at once when the next read would wait (no small segments, no Nagle stalls)."""

    def __init__(self, reader, writer):
        self.reader, self.writer, self.out = reader, writer, bytearray()

    def add(self, reply):
        self.out += reply

    def flush(self):
        if self.out:
            self.writer.write(bytes(self.out))
            self.out.clear()

    async def line(self):
        if b"\n" not in self.reader._buffer:  # noqa: SLF001 - the stream's own buffer
            self.flush()
        return await asyncio.wait_for(self.reader.readline(), IDLE)


async def _starttls(replies, ctx, counters, worker):
    replies.add(b"220 2.0.0 Ready to start TLS\r\n")
    replies.flush()
    await replies.writer.drain()
    await asyncio.wait_for(replies.writer.start_tls(ctx), IDLE)
    reused = replies.writer.get_extra_info("ssl_object").session_reused
    counters.add(worker, "resumed" if reused else "full")


async def _session(reader, writer, ctx, counters, worker):
    counters.add(worker, "sessions")
    replies, tls = _Replies(reader, writer), False
    try:
        replies.add(b"220 sink.bench ESMTP\r\n")
        while True:
            line = await replies.line()
            verb = line[:4].upper()
            if not line or verb == b"QUIT":
                replies.add(b"221 2.0.0 Bye\r\n")
                break
            if verb in (b"EHLO", b"HELO"):
                replies.add(EHLO_TLS if tls else EHLO_PLAIN)
            elif verb == b"STAR" and not tls:
                await _starttls(replies, ctx, counters, worker)
                tls = True
            elif verb == b"DATA":
                replies.add(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                replies.flush()
                await _data(reader)
                replies.add(b"250 2.0.0 Ok: queued\r\n")
                counters.add(worker, "messages")
                counters.set(worker, "last", time.monotonic())
            else:  # MAIL, RCPT, RSET, NOOP and anything else
                replies.add(b"250 2.0.0 Ok\r\n")
        replies.flush()
        await writer.drain()
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError,
            asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def _worker(socks, ctx, counters, worker, nice):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        os.nice(nice)  # ahead of the relays and of whatever else shares the cores
    except PermissionError:
        pass

    async def serve():
        for s in socks:
            await asyncio.start_server(
                lambda r, w: _session(r, w, ctx, counters, worker), sock=s, limit=1 << 26)
        await asyncio.Event().wait()

    asyncio.run(serve())


class TlsSink:
    def __init__(self, ips, port, chain, key, workers=2, nice=-10):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(chain, key)
        self.socks = []
        for ip in ips:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
            s.listen(1024)
            s.setblocking(False)
            self.socks.append(s)
        self.counters = Counters(workers)
        mp = multiprocessing.get_context("fork")
        self.procs = [mp.Process(target=_worker, args=(self.socks, self.ctx, self.counters, w, nice),
                                 daemon=True) for w in range(workers)]

    def start(self):
        for p in self.procs:
            p.start()
        return self

    def pids(self):
        return [p.pid for p in self.procs if p.pid]

    def cpu(self):
        """utime + stime of the workers, in seconds."""
        total = 0.0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self):
        for p in self.procs:
            if p.pid and p.is_alive():
                p.terminate()
        for p in self.procs:
            if p.pid:
                p.join(timeout=10)
        for s in self.socks:
            s.close()


# --- the ceiling: a direct load at the sink with the same TLS ---------------------------------

async def _read_reply(reader):
    while True:
        line = await asyncio.wait_for(reader.readline(), IDLE)
        if not line:
            raise ConnectionError("sink closed the connection")
        if line[3:4] != b"-":
            return line


async def _client(ip, port, messages, per_session, body, client_ctx):
    ctx = client_ctx
    sent = 0
    while sent < messages:
        reader, writer = await asyncio.open_connection(ip, port, limit=1 << 20)
        await _read_reply(reader)
        writer.write(b"EHLO load.bench\r\n")
        await _read_reply(reader)
        writer.write(b"STARTTLS\r\n")
        await _read_reply(reader)
        await writer.start_tls(ctx, server_hostname=None)
        writer.write(b"EHLO load.bench\r\n")
        await _read_reply(reader)
        for _ in range(min(per_session, messages - sent)):
            writer.write(b"MAIL FROM:<s@load.bench>\r\nRCPT TO:<r@sink.bench>\r\nDATA\r\n")
            for _ in range(3):
                await _read_reply(reader)
            writer.write(body)
            await _read_reply(reader)
            sent += 1
        writer.write(b"QUIT\r\n")
        await _read_reply(reader)
        writer.close()


def _load_process(targets, port, messages, per_session, size, sessions):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    line = b"x" * 76 + b"\r\n"
    body = b"Subject: load\r\n\r\n" + line * max(1, size // len(line)) + b".\r\n"

    async def run():
        each = messages // sessions
        await asyncio.gather(*(_client(targets[i % len(targets)], port, each, per_session, body,
                                       ctx) for i in range(sessions)))

    asyncio.run(run())


def ceiling(sink, targets, port, messages, per_session, size, processes=2, sessions=25):
    """msg/s of a direct load at the sink (PROCESSES client processes of SESSIONS concurrent
    sessions, PER_SESSION messages each before a new connection and a new, never resumed,
    handshake); the clients share the machine with the sink, so this is a floor of its ceiling.
    Returns (msg/s, full handshakes, messages) as counted by the sink."""
    mp = multiprocessing.get_context("fork")
    before = sink.counters.snapshot()
    each = messages // processes
    t0 = time.monotonic()
    procs = [mp.Process(target=_load_process, args=(targets[p::processes] or targets, port,
                                                    each, per_session, size, sessions))
             for p in range(processes)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=600)
            if p.is_alive() or p.exitcode:
                raise RuntimeError(f"a ceiling load process failed or ran over 600 s "
                                   f"({p.exitcode})")
    finally:
        for p in procs:
            if p.pid and p.is_alive():
                p.terminate()
                p.join(timeout=10)
    after = sink.counters.snapshot()
    n = after["messages"] - before["messages"]
    return n / (after["last"] - t0), after["full"] - before["full"], n
