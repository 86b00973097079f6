# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers for the SMTP server tests (smtp_server_test.py, smtp_abuse_test.py):
a raw-socket SMTP client that can send what no library sends (bare CR and
LF, NUL, pipelined bytes across state changes, commands before the banner),
reply parsing with enhanced status codes, a self-signed certificate made
with the openssl command line tool, and what a test needs to know about a
running instance (the listener's pid and memory, the messages enqueue took)."""

import ipaddress
import os
import re
import select
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

OPENSSL = "/usr/bin/openssl"
SWAKS = shutil.which("swaks")
SMTP_SOURCE = "/usr/sbin/smtp-source" if os.access("/usr/sbin/smtp-source", os.X_OK) else shutil.which("smtp-source")

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")


class Reply:
    """One SMTP reply: code, the text of each line, the enhanced code of the first line."""

    def __init__(self, code, lines, raw):
        self.code = code
        self.lines = lines
        self.raw = raw

    @property
    def enhanced(self):
        first = self.lines[0].split(" ", 1)[0] if self.lines and self.lines[0] else ""
        return first if _ENHANCED.match(first) else ""

    @property
    def text(self):
        """The first line's text without the enhanced code."""
        first = self.lines[0] if self.lines else ""
        return first.split(" ", 1)[1] if self.enhanced and " " in first else ("" if self.enhanced else first)

    def __repr__(self):
        return f"Reply({self.raw!r})"


class Raw:
    """A plain SMTP client over a socket; every byte is the test's choice.
    reply() reads exactly one (possibly multi-line) reply."""

    def __init__(self, port, host="127.0.0.1", timeout=10, banner=True, source=None, sock=None):
        self.sock = sock or socket.create_connection((host, port), timeout=timeout,
                                                     source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.banner = self.reply() if banner else None

    # --- output ---
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.example"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, r
        return r

    # --- input ---
    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server; unread: %r" % self.buf)
        self.buf += data

    def readline(self):
        while b"\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self):
        raw = b""
        lines = []
        while True:
            line = self.readline()
            raw += line
            if not line.endswith(b"\r\n") or len(line) < 5 or not line[:3].isdigit() or line[3:4] not in (b" ", b"-"):
                raise AssertionError(f"malformed reply line {line!r} (so far {raw!r})")
            lines.append(line[4:-2].decode("ascii", "replace"))
            if line[3:4] == b" ":
                return Reply(int(line[:3]), lines, raw)

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def pending(self, wait=0.3):
        """Bytes the server sent within `wait` seconds without being asked
        (b"" when none); does not consume them."""
        if self.buf:
            return self.buf
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return b""
        try:
            data = self.sock.recv(65536, socket.MSG_PEEK)
        except (ssl.SSLError, OSError):
            return b"?"
        return data if data else b"<EOF>"

    def read_to_eof(self, timeout=10):
        """Everything until the server closes; raises AssertionError when it
        does not close within timeout seconds."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the server did not close the connection; got {data!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def all_replies_to_eof(self, timeout=10):
        """Every reply until the server closes."""
        data = self.read_to_eof(timeout)
        out = []
        self.buf = data
        while self.buf:
            if b"\n" not in self.buf:
                raise AssertionError(f"trailing partial reply {self.buf!r}")
            out.append(self.reply())
        return out

    def starttls(self):
        """Handshake over the connection now (nothing of ours buffered)."""
        assert not self.buf, self.buf
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="test.example")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_certificate(directory):
    """A self-signed certificate and key for CN=test.example; (cert, key)
    paths, or None when /usr/bin/openssl is missing."""
    if not os.access(OPENSSL, os.X_OK):
        return None
    key = os.path.join(directory, "tls.key")
    cert = os.path.join(directory, "tls.crt")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=test.example",
                    "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def smtplib_send(port, sender, recipients, message, helo="client.example", host="127.0.0.1"):
    """One message through Python's smtplib; returns the queue id of the
    250 reply to the end of data (asserting its form)."""
    with smtplib.SMTP(host, port, timeout=20) as s:
        s.ehlo(helo)
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        for r in recipients:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = s.data(message)
        assert code == 250, (code, text)
        m = re.fullmatch(rb"2\.0\.0 OK id=(\S+)", text)
        assert m, text
        return m.group(1).decode()


def queue_id_of(reply):
    m = re.fullmatch(r"OK id=(\S+)", reply.text)
    return m.group(1) if reply.code == 250 and reply.enhanced == "2.0.0" and m else None


def listener_pid(inst):
    for pid, argv in inst.processes().items():
        if argv and os.path.basename(argv[0]) == "smtp-listener":
            return pid
    return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def accepted(inst):
    """How many messages enqueue has taken (its "ID <= <sender>" log lines)."""
    return len(re.findall(r"(?m)^\S+ \S+ \[\d+\] info: \S+ <= ", inst.log_text()))


def global_ipv4():
    """A non-loopback IPv4 address of this machine with its network
    (ipaddress.IPv4Interface), or None. Connecting from it to itself gives
    the server a peer that is not on loopback."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", line)
        if m:
            iface = ipaddress.IPv4Interface(m.group(1))
            try:
                with socket.socket() as s:
                    s.bind((str(iface.ip), 0))
            except OSError:
                continue
            return iface
    return None


class ListenerCase(unittest.TestCase):
    """Cases against one instance's smtp-listener: the class sets cls.inst
    and cls.listener (its pid). After every case the same listener must
    still take a message; setUp notes the messages accepted so far."""

    def setUp(self):
        self.before = accepted(self.inst)

    def tearDown(self):
        self.assertEqual(listener_pid(self.inst), self.listener,
                         "smtp-listener was restarted:\n" + self.inst.log_text()[-3000:])
        qid = smtplib_send(self.inst.port, "a@example.org", ["alive@example.net"],
                           b"Subject: still serving\r\n\r\nok\r\n")
        self.assertIn(f"{qid} <= <a@example.org>", self.inst.log_text())

    @property
    def port(self):
        return self.inst.port

    def raw(self, **kw):
        s = Raw(self.port, **kw)
        self.addCleanup(s.close)
        return s
