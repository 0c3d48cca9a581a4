"""HTTPS servers on loopback for the end-to-end tests, with certificates from a test CA: an
MTA-STS policy server (RFC 8461 §3.3) and a TLS-RPT report collector (RFC 8460 §5.4)."""
import http.server
import socket
import ssl
import threading


class _HttpsServer:
    def __init__(self, ip, port, chain, key, handler):
        self.httpd = http.server.ThreadingHTTPServer((ip, port), handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(chain, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class _QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


class PolicyServer(_HttpsServer):
    """GET /.well-known/mta-sts.txt answers with the policy for the Host (404 for others), with
    `content_type` as its Content-Type."""

    def __init__(self, ip, port, chain, key, policies, content_type="text/plain"):
        self.policies = policies  # host name -> policy text
        self.requests = []
        outer = self

        class Handler(_QuietHandler):
            def do_GET(self):
                host = self.headers.get("Host", "").split(":")[0]
                outer.requests.append((host, self.path))
                body = outer.policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(ip, port, chain, key, Handler)


class ReportCollector(_HttpsServer):
    """Takes POSTs (a TLS-RPT collector): each is kept with its path, headers and body; 200.
    `refuse_first`: that many POSTs are answered 503 first (and not kept). POSTs to a path
    ending in /reject are answered 400 (counted in `rejected`, not kept)."""

    def __init__(self, ip, port, chain, key, refuse_first=0):
        self.posts = []
        self.refused = 0
        self.rejected = 0
        self.refuse_first = refuse_first
        self.lock = threading.Lock()
        outer = self

        class Handler(_QuietHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with outer.lock:
                    if self.path.endswith("/reject"):
                        outer.rejected += 1
                        self.send_error(400)
                        return
                    if outer.refused < outer.refuse_first:
                        outer.refused += 1
                        self.send_error(503)
                        return
                    outer.posts.append({"path": self.path, "host": self.headers.get("Host", ""),
                                        "type": self.headers.get("Content-Type", ""),
                                        "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(ip, port, chain, key, Handler)

    def received(self):
        with self.lock:
            return list(self.posts)


class StallingServer:
    """Accepts TCP connections and never answers (a policy host that hangs): each is held until
    stop(). `accepted` counts them."""

    def __init__(self, ip, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.held = []
        self.accepted = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.held.append(conn)
            self.accepted += 1

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)
        for c in self.held:
            c.close()
        self.sock.close()
