"""Receiving MX servers for end-to-end tests: aiosmtpd on 127.0.0.x, with or without STARTTLS,
recording every message they accept (and whether it came over TLS)."""
import os
import socket
import ssl
import subprocess
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def self_signed(directory, name):
    key, crt = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
            "-keyout", key, "-out", crt)
    return crt, key


def private_ca(directory):
    key, crt = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=danerelay test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", key, "-out", crt)
    return crt, key


def signed_by(directory, name, ca_crt, ca_key, also=()):
    """A leaf for `name` (and the names in `also`) issued by the CA; the chain file holds leaf,
    then CA."""
    key, csr = os.path.join(directory, f"{name}.key"), os.path.join(directory, f"{name}.csr")
    crt, chain = os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.chain")
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join(f"DNS:{n}" for n in (name, *also)) + "\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={name}", "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", crt)
    with open(chain, "w") as out, open(crt) as leaf, open(ca_crt) as ca:
        out.write(leaf.read() + ca.read())
    return chain, key


def _sha256_hex(data):
    import hashlib
    return hashlib.sha256(data).hexdigest().upper()


def _der(args, input_bytes=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=input_bytes,
                          timeout=60).stdout


def tlsa_3_1_1(crt):
    """DANE-EE, SPKI, SHA-256."""
    pub = _der(["x509", "-in", crt, "-pubkey", "-noout"])
    return "3 1 1 " + _sha256_hex(_der(["pkey", "-pubin", "-outform", "DER"], pub))


def tlsa_2_0_1(ca_crt):
    """DANE-TA, full certificate, SHA-256."""
    return "2 0 1 " + _sha256_hex(_der(["x509", "-in", ca_crt, "-outform", "DER"]))


class Recorder:
    def __init__(self, data_delay=0.0):
        self.messages = []
        self.lock = threading.Lock()
        self.data_delay = data_delay  # seconds each DATA takes, to make deliveries overlap
        self.in_data = 0
        self.max_in_data = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # Local parts starting with "reject" are unknown users: a permanent failure.
        if address.startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        # Local parts starting with "defer" are refused for now: a transient failure.
        if address.startswith("defer"):
            return f"450 4.2.0 <{address}>: Recipient address rejected: Mailbox busy"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            import asyncio
            with self.lock:
                self.in_data += 1
                self.max_in_data = max(self.max_in_data, self.in_data)
            await asyncio.sleep(self.data_delay)
            with self.lock:
                self.in_data -= 1
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                  "content": envelope.content, "tls": session.ssl is not None,
                                  "session": id(session), "helo": session.host_name,
                                  "mail_options": list(envelope.mail_options)})
        return "250 2.0.0 Ok: stored"


class SevenBitRecorder(Recorder):
    """Does not offer 8BITMIME (RFC 6152): what it receives must be 7-bit. aiosmtpd would still
    take BODY=8BITMIME; the recorded mail_options show whether the client sent it."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [r for r in responses if r[4:].upper() != "8BITMIME"]


class RequireTlsRecorder(Recorder):
    """Offers REQUIRETLS (RFC 8689) inside TLS and records whether MAIL carried it."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if session.ssl is not None:
            responses.insert(len(responses) - 1, "250-REQUIRETLS")
        return responses

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.messages[-1]["requiretls"] = getattr(server, "requiretls_seen", False)
        return reply


class RequireTlsSmtp(SMTP):
    async def smtp_MAIL(self, arg):
        # aiosmtpd refuses parameters it does not know: take REQUIRETLS off first.
        self.requiretls_seen = False
        if arg and " REQUIRETLS" in arg.upper():
            i = arg.upper().rfind(" REQUIRETLS")
            arg = arg[:i] + arg[i + len(" REQUIRETLS"):]
            self.requiretls_seen = True
        await super().smtp_MAIL(arg)


class RequireTlsController(Controller):
    def factory(self):
        return RequireTlsSmtp(self.handler, **self.SMTP_kwargs)


class DsnRecorder(Recorder):
    """Offers DSN (RFC 3461) and records each recipient's NOTIFY and ORCPT as they came."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_DATA(self, server, session, envelope):
        reply = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.messages[-1]["rcpt_params"] = dict(getattr(server, "dsn_params", {}))
            self.messages[-1]["mail_auth"] = getattr(server, "mail_auth", None)
        return reply


class DsnSmtp(SMTP):
    async def smtp_MAIL(self, arg):
        # aiosmtpd offers AUTH inside TLS but refuses MAIL's AUTH= (RFC 4954 §5): record it and
        # take it off.
        self.dsn_params, self.mail_auth = {}, None
        if arg:
            words = arg.split(" ")
            auth = [w for w in words if w.upper().startswith("AUTH=")]
            if auth:
                self.mail_auth = auth[0][5:]
                arg = " ".join(w for w in words if w not in auth)
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg):
        # aiosmtpd refuses RCPT parameters (and would upper-case them): take NOTIFY and ORCPT
        # off first, kept byte for byte per recipient.
        if arg:
            words = arg.split(" ")
            kept = [w for w in words if not w.upper().startswith(("NOTIFY=", "ORCPT="))]
            taken = [w for w in words if w not in kept]
            if taken:
                address = kept[0][3:].strip("<>") if kept[0].upper().startswith("TO:") else ""
                self.dsn_params = getattr(self, "dsn_params", {})
                self.dsn_params[address] = taken
                arg = " ".join(kept)
        await super().smtp_RCPT(arg)


class DsnController(Controller):
    def factory(self):
        return DsnSmtp(self.handler, **self.SMTP_kwargs)


class MxServer:
    """`broken_tls`: STARTTLS is offered and answered 220, but the server side of the handshake
    allows only TLS 1.0, which OpenSSL 3 refuses at its default security level: every handshake
    fails. `eightbitmime=False`: 8BITMIME is not offered."""

    def __init__(self, ip, port, cert=None, key=None, data_delay=0.0, smtputf8=False,
                 broken_tls=False, requiretls=False, dsn=False, eightbitmime=True):
        self.ip, self.port = ip, port
        assert eightbitmime or not (requiretls or dsn), "eightbitmime=False stands alone"
        self.recorder = (RequireTlsRecorder if requiretls else DsnRecorder if dsn
                         else Recorder if eightbitmime else SevenBitRecorder)(data_delay)
        kwargs = {}
        if cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            if broken_tls:
                ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
            kwargs["tls_context"] = ctx
        controller = (RequireTlsController if requiretls else DsnController if dsn
                      else Controller)
        self.controller = controller(self.recorder, hostname=ip, port=port,
                                     server_hostname=f"mx-{ip}", ready_timeout=10,
                                     enable_SMTPUTF8=smtputf8, **kwargs)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def received_for(self, rcpt):
        with self.recorder.lock:
            return [m for m in self.recorder.messages if rcpt in m["to"]]


class ThreadedSmtpServer:
    """A hand-written SMTP server's frame: it listens on ip:port and runs `_session(conn)` in a
    thread of its own for each connection, until stop()."""

    def __init__(self, ip, port, backlog=16):
        self.ip, self.port = ip, port
        self.sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(timeout=10)
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        raise NotImplementedError


class RefusingStarttlsServer(ThreadedSmtpServer):
    """An SMTP server that offers STARTTLS and answers it with 454 (RFC 3207 §4: "TLS not
    available due to temporary reason"); it takes mail in plain text and records it."""

    def __init__(self, ip, port):
        super().__init__(ip, port)
        self.messages = []

    def _session(self, conn):
        conn.settimeout(10)
        f = conn.makefile("rwb")
        try:
            f.write(b"220 refuse.test ESMTP\r\n")
            f.flush()
            envelope = {"from": None, "to": []}
            for _ in range(100):  # bounded: a session of at most 100 commands
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    f.write(b"250-refuse.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
                elif verb == b"STAR":
                    f.write(b"454 4.7.0 TLS not available due to temporary reason\r\n")
                elif verb == b"MAIL":
                    envelope = {"from": line.decode().strip(), "to": []}
                    f.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    envelope["to"].append(line.decode().strip())
                    f.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    f.write(b"354 go ahead\r\n")
                    f.flush()
                    body = b""
                    while (chunk := f.readline()) and chunk != b".\r\n":
                        body += chunk
                    self.messages.append(dict(envelope, content=body))
                    f.write(b"250 2.0.0 Ok: stored\r\n")
                elif verb == b"QUIT":
                    f.write(b"221 2.0.0 Bye\r\n")
                    f.flush()
                    return
                else:
                    f.write(b"250 2.0.0 Ok\r\n")
                f.flush()
        except OSError:
            pass
        finally:
            conn.close()


def free_port_on(ips):
    """A port free on every address in `ips` (IPv4 or IPv6)."""
    def family(ip):
        return socket.AF_INET6 if ":" in ip else socket.AF_INET

    for _ in range(50):
        with socket.socket(family(ips[0])) as s:
            s.bind((ips[0], 0))
            port = s.getsockname()[1]
        ok = True
        for ip in ips[1:]:
            with socket.socket(family(ip)) as s:
                try:
                    s.bind((ip, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no common free port")
