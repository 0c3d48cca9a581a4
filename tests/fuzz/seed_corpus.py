#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) from the unit tests'
own transcripts: every C++ string literal (adjacent literals joined) in the named test files
that looks like input for the target. Run from anywhere; idempotent (files named by content)."""
import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

LITERAL = re.compile(r'(?:u8)?"((?:[^"\\\n]|\\.)*)"')
ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'", "?": b"?",
           "0": b"\0"}


def decode(body):
    out, i = b"", 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
        elif body[i + 1] == "x":
            m = re.match(r"[0-9a-fA-F]+", body[i + 2:])
            if m is None:  # not C++ (a quoted "\x{HEX}" in a comment): the text as it is
                out += b"\\x"
                i += 2
                continue
            out += bytes([int(m.group(0), 16) & 0xFF])
            i += 2 + len(m.group(0))
        else:
            out += ESCAPES.get(body[i + 1], body[i + 1].encode())
            i += 2
    return out


def literals(path):
    """Joined string literals of a C++ file, in order."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    out, pos, current = [], 0, None
    for m in LITERAL.finditer(text):
        between = text[pos:m.start()]
        value = decode(m.group(1))
        if current is not None and between.strip() == "":
            current += value
        else:
            if current is not None:
                out.append(current)
            current = value
        pos = m.end()
    if current is not None:
        out.append(current)
    return out


def write(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    session = [s for s in literals("relay/smtp/server_session_test.cpp") if b"\r\n" in s]
    for s in session:
        for mode in (0x00, 0x06, 0x2E, 0x4D):  # trusted/untrusted, STARTTLS, AUTH, checks
            write("fuzz_session", bytes([mode, 63]) + s)
    for s in literals("relay/smtp/smtp_command_test.cpp"):
        write("fuzz_command", s)  # MAIL/RCPT arguments, xtext, UTF-8 cases
    for s in literals("relay/smtp/smtp_reply_test.cpp"):
        if re.match(rb"^[2-5][0-9][0-9][ -]", s):
            write("fuzz_reply", bytes([7]) + s)
    # Notices: sender, ENVID, recipient, ORCPT, status, reply, remote, then the message.
    for s in literals("queue/retry_test.cpp"):
        if b"\r\n" in s:
            for mode in (0x00, 0x0B, 0x81):
                write("fuzz_notice", bytes([mode]) + b"\0".join(
                    [b"alice@example.org", b"env-7", b"bob@example.net",
                     b"rfc822;bob@example.net", b"5.1.1", b"550 5.1.1 no such user",
                     b"mx.example.net", s]))
    for path in ("config/danerelay.example.toml", "config/offline.toml"):
        write("fuzz_config", open(os.path.join(ROOT, path), "rb").read())
    for s in literals("config/config_test.cpp"):
        if b"[" in s and b"\n" in s:
            write("fuzz_config", s)
    for s in literals("relay/delivery/seven_bit_test.cpp"):
        if b"\r\n\r\n" in s:  # whole messages (a header, an empty line, a body)
            write("fuzz_seven_bit", s)
    for s in literals("relay/dkim/signer_test.cpp") + literals("relay/dkim/headers_test.cpp"):
        if b"From:" in s or b"from:" in s:
            for mode in (0x00, 0x01):  # sign_subdomains off/on
                write("fuzz_dkim", bytes([mode]) + s)
    for target in sorted(os.listdir(os.path.join(HERE, "corpus"))):
        n = len(os.listdir(os.path.join(HERE, "corpus", target)))
        print(f"seed_corpus: {target}: {n} inputs")


if __name__ == "__main__":
    sys.exit(main())
