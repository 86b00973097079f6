#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Campaign 4 of issue 7, the abuse catalogue beyond the SMTP server: every
row A1-A8, Q1-Q9, C1-C5, L1-L6 and R1-R8 of reference/user-needs.md
§3.3-§3.7 as one row of TABLE below (id, input, expected outcome, check),
run against a private instance (mmtest.Instance) with real clients: smtplib
or raw sockets on loopback, the masqmail front end (sendmail), and for the R
rows a hostile smarthost (aiosmtpd via smarthost.py, or HostileServer here
for replies aiosmtpd cannot produce). DNS comes only from dns_stub.py.

Each row is one test method named by its id (test_A1, ...), so the TAP
output names each row. A row that does not apply as the catalogue words it
says why in its `expected` text and checks the nearest thing that does."""

import email
import email.header
import email.policy
import glob
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
from collections import namedtuple

import mmtest
import smtptest
from dns_stub import DnsStub
from mmtest import MASQMAIL, Instance, wait_for
from smarthost import Smarthost

IS_ROOT = os.geteuid() == 0
NOBODY = 65534
# "Eventually": generous, never a performance assertion (slower under ASan).
TIMEOUT = 60 if mmtest.SANITIZED else 30

# An alias pipe or MDA: one JSON file per call in the folder argv[1] with its
# argv, stdin, uid and environment; exits with the status in argv[2].
RECORD_SCRIPT = """#!/usr/bin/python3
import json, os, sys, time
out = sys.argv[1]
status = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 0
data = sys.stdin.buffer.read()
name = os.path.join(out, "%d-%d.json" % (time.time_ns(), os.getpid()))
with open(name + ".tmp", "w") as f:
    json.dump({"argv": sys.argv, "stdin": data.decode("latin-1"), "uid": os.getuid(),
               "env": dict(os.environ)}, f)
os.rename(name + ".tmp", name)
sys.exit(status)
"""


# --- a hostile smarthost for replies aiosmtpd cannot produce --------------

class HostileServer:
    """A raw SMTP server on 127.0.0.1: each connection runs `script(conn)`
    in its own thread. conn.send(bytes), conn.line() (one CRLF line, b""
    at EOF), conn.data() (DATA up to CRLF.CRLF), conn.hold (an Event the
    script may wait on). Records every line received in .lines and the
    number of connections and of complete DATA sections."""

    class Conn:
        def __init__(self, server, sock):
            self.server = server
            self.sock = sock
            self.buf = b""

        def send(self, data):
            self.sock.sendall(data if isinstance(data, bytes) else data.encode())

        def _fill(self):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

        def line(self):
            try:
                while b"\r\n" not in self.buf:
                    self._fill()
            except (EOFError, OSError):
                return b""
            line, _, self.buf = self.buf.partition(b"\r\n")
            with self.server.lock:
                self.server.lines.append(line.decode("latin-1"))
            return line

        def data(self):
            try:
                while b"\r\n.\r\n" not in self.buf:
                    self._fill()
            except (EOFError, OSError):
                return None
            body, _, self.buf = self.buf.partition(b"\r\n.\r\n")
            with self.server.lock:
                self.server.data_count += 1
            return body

        def dialog(self, ehlo=b"250 hostile.test\r\n", mail=b"250 ok\r\n", rcpt=b"250 ok\r\n",
                   data=b"354 go\r\n", final=b"250 2.0.0 queued\r\n"):
            """An ordinary session with the given replies; final=None returns
            after the final dot without a reply (the caller decides)."""
            while True:
                line = self.line()
                if not line:
                    return "eof"
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    self.send(ehlo)
                elif verb == b"MAIL":
                    self.send(mail)
                elif verb == b"RCPT":
                    self.send(rcpt)
                elif verb == b"DATA":
                    self.send(data)
                    if self.data() is None:
                        return "eof"
                    if final is None:
                        return "dot"
                    self.send(final)
                elif verb == b"QUIT":
                    self.send(b"221 bye\r\n")
                    return "quit"
                else:
                    self.send(b"250 ok\r\n")

    def __init__(self, script):
        self.script = script
        self.lines = []
        self.connections = 0
        self.data_count = 0
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.socks = []
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.socks.append(sock)
            threading.Thread(target=self._run, args=(sock,), daemon=True).start()

    def _run(self, sock):
        try:
            self.script(HostileServer.Conn(self, sock))
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def commands(self, verb):
        with self.lock:
            return [l for l in self.lines if l[:len(verb)].upper() == verb]

    def stop(self):
        self.stopping = True
        self.hold.set()
        try:
            self.listener.close()
        except OSError:
            pass
        for s in list(self.socks):
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


# --- the test case: instances, clients and looking --------------------------

class Campaign(unittest.TestCase):
    """One fresh private instance per row (cheap), started on demand."""

    def make(self, extra_conf="", aliases=(), start=True):
        inst = Instance()
        self.addCleanup(inst.close)
        self.inst = inst
        self.record = inst.write("record.py", RECORD_SCRIPT)
        os.chmod(self.record, 0o755)
        self.configure(extra_conf)
        if aliases:
            path = inst.write("aliases", "".join(self.expand(a) + "\n" for a in aliases))
            self.configure(f'alias_file = "{path}"\n')
        if start:
            self.start()
        return inst

    def expand(self, text):
        return text.replace("{root}", self.inst.root).replace("{record}", self.record)

    def configure(self, text):
        with open(self.inst.conf, "a") as f:
            f.write(self.expand(text))

    def start(self):
        self.inst.start()
        self.addCleanup(self.stop_checked, self.inst)

    def stop_checked(self, inst):
        self.assertTrue(inst.stop(), "daemons did not stop cleanly:\n" + inst.log_text())

    def out_dir(self, name):
        path = self.inst.path(name)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o777)
        return path

    def calls(self, name):
        out = []
        for p in sorted(glob.glob(os.path.join(self.inst.path(name), "*.json"))):
            with open(p) as f:
                out.append(json.load(f))
        return out

    def wait_calls(self, name, count=1):
        got = wait_for(lambda: len(self.calls(name)) >= count, TIMEOUT)
        self.assertTrue(got, f"{name}: {len(self.calls(name))} of {count} call(s)\n{self.diagnosis()}")
        return self.calls(name)

    def send(self, *args, stdin=b"Subject: t\n\nbody\n", env=None):
        return mmtest.run([MASQMAIL, "-C", self.inst.conf, *args], stdin=stdin, env=env)

    def sent_ok(self, *args, stdin=b"Subject: t\n\nbody\n"):
        r = self.send("-v", *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(rb"queued as (\S+)", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        return m.group(1).decode()

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.inst.port, timeout=TIMEOUT)
        self.addCleanup(s.close)
        s.ehlo("client.example")
        return s

    def raw(self):
        r = smtptest.Raw(self.inst.port, timeout=TIMEOUT)
        self.addCleanup(r.close)
        r.ehlo()
        return r

    def diagnosis(self):
        try:
            q = self.inst.mailq_json()
        except AssertionError as e:
            q = str(e)
        return f"queue: {q}\nspool: {self.spool_files()}\nlog:\n{self.inst.log_text()[-6000:]}"

    def spool_files(self, areas=("new", "queue", "maildrop", "tmp", "hold", "corrupt")):
        found = []
        for area in areas:
            d = self.inst.path("spool", area)
            if os.path.isdir(d):
                found += [f"{area}/{n}" for n in sorted(os.listdir(d))]
        return found

    def corrupt(self):
        return self.spool_files(("corrupt",))

    def mbox(self, user, count=1):
        got = wait_for(lambda: len(self.inst.mbox_messages(user)) >= count, TIMEOUT)
        self.assertTrue(got, f"{user}: {len(self.inst.mbox_messages(user))} of {count}\n{self.diagnosis()}")
        return self.inst.mbox_messages(user)

    def recipients(self):
        return {r["address"]: r for m in self.inst.mailq_json() for r in m["recipients"]}

    def wait_recipient(self, address, predicate, what):
        got = wait_for(lambda: (lambda r: r is not None and predicate(r))(self.recipients().get(address)),
                       TIMEOUT)
        self.assertTrue(got, f"{address}: expected {what}\n{self.diagnosis()}")
        return self.recipients()[address]

    def wait_deferred(self, address, attempts=1):
        return self.wait_recipient(address, lambda r: r["state"] == "pending" and r["attempts"] >= attempts,
                                   f"pending after {attempts} attempt(s)")

    def wait_queue_empty(self):
        self.assertTrue(wait_for(lambda: self.inst.mailq_json() == [], TIMEOUT), self.diagnosis())

    def wait_log(self, pattern, what=None):
        got = wait_for(lambda: re.search(pattern, self.inst.log_text()), TIMEOUT)
        self.assertTrue(got, f"log has no {what or pattern!r}\n{self.diagnosis()}")
        return got

    def daemons_alive(self):
        names = {os.path.basename(a[0]) for a in self.inst.processes().values() if a}
        for d in ("enqueue", "qmgr", "local-deliver"):
            self.assertIn(d, names, f"{d} is gone: {names}\n{self.diagnosis()}")

    def route(self, name, port, text="tls = none\n"):
        return self.inst.write(name + ".route", f'mail_host = "127.0.0.1:{port}"\n' + text)

    def hostile(self, script):
        srv = HostileServer(script)
        self.addCleanup(srv.stop)
        return srv

    def smarthost(self, **options):
        sh = Smarthost(**options)
        self.addCleanup(sh.stop)
        return sh


def parse(message):
    body = message.split(b"\n", 1)[1] if message.startswith(b"From ") else message
    return email.message_from_bytes(body, policy=email.policy.compat32)


def header_block(message):
    head = message.split(b"\n\n", 1)[0]
    return head.split(b"\n", 1)[1] if head.startswith(b"From ") else head


def stat_of(path):
    try:
        st = os.lstat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        return None


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    return p.pid


# === 3.3 Addresses reaching local delivery, pipes and files =================

def check_A1(t):
    t.make('mda = "{record} {root}/mda 0 ${return_path} ${rcpt_local}"\nmda_users = "mdauser"\n',
           aliases=['pipe: "|{record} {root}/pipe"'])
    t.out_dir("pipe"), t.out_dir("mda")
    marker = t.inst.path("PWNED")
    sender = f'"x;touch {marker}`touch {marker}`$(touch {marker})|&*"@evil.example'
    s = t.smtp()
    code, text = s.mail(sender)
    t.assertEqual(code, 250, f"a quoted local part with metacharacters is valid: {text}")
    for rcpt in ("pipe@test.example", "mdauser@test.example"):
        t.assertEqual(s.rcpt(rcpt)[0], 250)
    t.assertEqual(s.data(b"Subject: meta\r\n\r\nx\r\n")[0], 250)
    pipe = t.wait_calls("pipe")[0]
    mda = t.wait_calls("mda")[0]
    t.assertEqual(pipe["argv"][1:], [t.inst.path("pipe")], "no variables in alias commands")
    t.assertEqual(pipe["env"].get("SENDER"), sender, pipe["env"])
    t.assertEqual(mda["argv"][1:], [t.inst.path("mda"), "0", sender, "mdauser"],
                  "the sender is one argv word, however many metacharacters it holds")
    t.assertFalse(os.path.exists(marker), "a shell ran the address")
    # A newline in an address never reaches a command: refused at SMTP time.
    r = t.raw()
    r.cmd("MAIL FROM:<a@b.example>")
    reply = r.cmd(b'RCPT TO:<"a\nb"@test.example>')
    t.assertGreaterEqual(reply.code, 500, reply)


def check_A2(t):
    t.make('mda = "{record} {root}/mda 0 ${return_path} ${rcpt_local}"\nmda_users = "mdauser"\n')
    t.out_dir("mda")
    planted = t.inst.path("planted")
    before = t.spool_files()
    r = t.send("-oi", "-X", planted, "bob")
    t.assertEqual(r.returncode, 64, f"-X is refused: {r.stderr!r}")
    r = t.send("-oi", "-f", "-X" + planted, "bob")
    t.assertNotEqual(r.returncode, 0, f"a sender starting with '-': {r.stderr!r}")
    r = t.send("-oi", "-f", "-oQ/tmp", "bob")
    t.assertNotEqual(r.returncode, 0, f"a sender starting with '-': {r.stderr!r}")
    t.assertFalse(os.path.lexists(planted))
    t.assertEqual(t.spool_files(), before, "nothing queued by a refused command line")
    # After --, an argument is a recipient, never an option.
    r = t.send("-oi", "--", "-Cevil")
    t.assertEqual(t.inst.mbox_messages("bob"), [])
    if r.returncode == 0:
        t.mbox("-Cevil")
    t.outcome = f"-- -Cevil: exit {r.returncode}"
    # Over SMTP a sender starting with '-' reaches an MDA as one argument.
    s = t.smtp()
    code, text = s.mail("-oQ/tmp@evil.example")
    t.outcome += f"; MAIL FROM:<-oQ/tmp@evil.example>: {code}"
    if code == 250:
        t.assertEqual(s.rcpt("mdauser@test.example")[0], 250)
        t.assertEqual(s.data(b"Subject: dash\r\n\r\nx\r\n")[0], 250)
        argv = t.wait_calls("mda")[0]["argv"]
        t.assertEqual(argv[3:], ["-oQ/tmp@evil.example", "mdauser"], argv)
    else:
        t.assertGreaterEqual(code, 500, text)


def check_A3(t):
    t.make()
    outside = os.path.join(os.path.dirname(t.inst.root), "etc", "x")  # mail_dir/../../etc/x
    before = stat_of(outside)
    s = t.smtp()
    t.assertEqual(s.mail("x@client.example")[0], 250)
    outcomes = {}
    for rcpt in ('"../x"@test.example', '"../../etc/x"@test.example', '"a/b"@test.example',
                 ".hidden@test.example", '".."@test.example', "%2e%2e@test.example",
                 f'"{t.inst.root}/abs"@test.example'):
        outcomes[rcpt] = s.rcpt(rcpt)[0]
    t.outcome = "RCPT replies: " + ", ".join(f"{k} {v}" for k, v in outcomes.items())
    if any(c == 250 for c in outcomes.values()):
        t.assertEqual(s.data(b"Subject: traversal\r\n\r\nx\r\n")[0], 250)
    # Every accepted one is delivered to a plain name in mail_dir or refused
    # by local delivery (a bounce to the remote sender then waits for a route);
    # nothing is written outside mail_dir.
    t.assertTrue(wait_for(lambda: all(m["sender"] == "" for m in t.inst.mailq_json()), TIMEOUT),
                 t.diagnosis())
    for p in (t.inst.path("x"), t.inst.path("abs"), t.inst.path("mail", "a")):
        t.assertFalse(os.path.lexists(p), f"{p} written; RCPT replies {outcomes}")
    t.assertEqual(stat_of(outside), before, f"{outside} changed; RCPT replies {outcomes}")
    for name in os.listdir(t.inst.path("mail")):
        t.assertTrue(os.path.isfile(t.inst.path("mail", name)), name)
        t.assertNotIn(name, (".", "..", ".hidden"), name)
    # A mailbox that is a symlink (to a stand-in for /etc/shadow) or a hard
    # link is never written through.
    decoy = t.inst.path("shadow")
    with open(decoy, "w") as f:
        f.write("root:*:19000:0:99999:7:::\n")
    os.chmod(decoy, 0o600)
    os.symlink(decoy, t.inst.path("mail", "victim"))
    os.link(decoy, t.inst.path("mail", "linked"))
    t.sent_ok("-oi", "victim", "linked", "bob")
    t.mbox("bob")
    t.wait_log(r"mailbox \S*victim\S* is a symbolic link", "the symlink refusal")
    t.wait_log(r"mailbox \S*linked\S* has 2 hard links", "the hard link refusal")
    with open(decoy) as f:
        t.assertEqual(f.read(), "root:*:19000:0:99999:7:::\n", "the link target was written")


def check_A4(t):
    t.make()
    r = t.send("-oi", "-F", "Bob\nBcc: victim@evil.example", "bob")
    t.outcome = f"-F with LF: exit {r.returncode}"
    if r.returncode == 0:
        msg = t.mbox("bob")[0]
        head = header_block(msg)
        t.assertNotRegex(head, rb"(?im)^bcc:", "a header injected through -F")
        t.assertIsNone(re.search(rb"\r|\n[^ \t\n]*victim", head.split(b"\nFrom:", 1)[-1][:200]), head)
    else:
        t.assertIn(r.returncode, (64, 65), r.stderr)
    for bad in ("alice\r\nBcc: v@evil.example", "alice\nRCPT TO:<v@evil.example>"):
        r = t.send("-oi", "-f", bad, "bob")
        t.assertIn(r.returncode, (64, 65), f"-f {bad!r}: {r.returncode} {r.stderr!r}")
    r = t.send("-oi", "-F", "Bob\rX-Injected: yes", "bob")
    if r.returncode == 0:
        t.mbox("bob", 2)
        t.assertNotIn(b"\nX-Injected:", t.inst.read_mbox("bob"))
    t.assertNotIn(b"victim@evil.example\n", t.inst.read_mbox("bob").replace(b"Bob", b""))


def check_A5(t):
    t.make()
    r = t.raw()
    t.assertEqual(r.cmd("MAIL FROM:<a@client.example>").code, 250)
    for bad in (b'RCPT TO:<"a\r\nRCPT TO:<x@evil.example>"@test.example>',):
        r.send(bad + b"\r\n")
    first = r.reply()
    t.assertGreaterEqual(first.code, 500, first)
    # The rest of that line arrives as a command of its own: the session
    # treats it as one (a recipient of the session), never as part of the address.
    r.reply()
    for bad in (b'RCPT TO:<"a\rb"@test.example>', b'RCPT TO:<"a\x00b"@test.example>',
                b'RCPT TO:<a\nb@test.example>'):
        reply = r.cmd(bad)
        t.assertGreaterEqual(reply.code, 500, f"{bad!r}: {reply}")
    for bad in ("a\rb", "a\nb"):
        rr = t.send("-oi", bad + "@test.example")
        t.assertIn(rr.returncode, (64, 65), f"{bad!r}: {rr.stderr!r}")
    t.assertEqual(t.inst.mailq_json(), [])
    for box in os.listdir(t.inst.path("mail")):
        t.assertNotRegex(box, r"[\r\n\x00]")


def check_A6(t):
    t.make()
    s = t.smtp()
    t.assertEqual(s.mail("x@client.example")[0], 250)
    results = {}
    for n in (64, 86):
        results[n] = s.rcpt("g" * n + "@remote.example")[0]
        t.assertEqual(results[n], 250, f"a {n}-octet local part is real-world mail")
    for label, rcpt in (("local part 300", "l" * 300 + "@remote.example"),
                        ("domain 256", "a@" + ".".join(["d" * 63] * 4) + "x"),
                        ("label 64", "a@" + "d" * 64 + ".example")):
        code, text = s.rcpt(rcpt)
        t.assertGreaterEqual(code, 500, f"{label}: {code} {text}")
        t.assertLess(code, 600)
    r = t.raw()
    r.cmd("MAIL FROM:<x@client.example>")
    reply = r.cmd("RCPT TO:<" + "l" * 10000 + "@remote.example>")
    t.assertEqual(reply.code // 100, 5, reply)
    t.daemons_alive()


def check_A7(t):
    t.make()
    s = t.smtp()
    t.assertEqual(s.mail("x@client.example")[0], 250)
    for rcpt in ("postmaster", "PostMaster", '"bob smith"@test.example', "bob@[127.0.0.1]"):
        code, text = s.rcpt(rcpt)
        t.assertEqual(code, 250, f"{rcpt}: {code} {text}")
    r = t.raw()
    r.cmd("MAIL FROM:<x@client.example>")
    reply = r.cmd("RCPT TO:<j\u00f6rg@test.example>".encode())
    t.assertEqual(reply.code // 100, 5, f"8-bit local part without SMTPUTF8: {reply}")
    reply = r.cmd("RCPT TO:<bob(comment)@test.example>")
    t.assertEqual(reply.code // 100, 5, f"a comment is not RFC 5321 path syntax: {reply}")
    t.assertEqual(s.data(b"Subject: grammar\r\n\r\nx\r\n")[0], 250)
    t.mbox("postmaster")


def check_A8(t):
    fan = ", ".join(f"w{i}" for i in range(101))
    wide = [f"w{i}: " + ", ".join(f"u{i}x{j}" for j in range(100)) for i in range(101)]
    chain = [f"d{i}: d{i + 1}" for i in range(25)] + ["d25: bob"]
    t.make(aliases=["loopa: loopb", "loopb: loopa", f"fan: {fan}", *wide, *chain])
    s = t.smtp()
    t.assertEqual(s.mail("alice@test.example")[0], 250)
    for rcpt in ("loopa", "fan", "d0", "bob", '"|/bin/touch {}"'.format(t.inst.path("PIPED"))):
        s.rcpt(rcpt + ("@test.example" if not rcpt.startswith('"') else "@test.example"))
    t.assertEqual(s.data(b"Subject: expansion\r\n\r\nx\r\n")[0], 250)
    bounces = t.mbox("alice")
    t.wait_queue_empty()
    text = b"".join(t.inst.mbox_messages("alice")).decode(errors="replace")
    for who in ("loopa@test.example", "fan@test.example", "d0@test.example"):
        t.assertIn(who, text, f"{who} bounced with a reason")
    t.assertRegex(text, r"(?i)loop")
    t.assertEqual(len(t.inst.mbox_messages("bob")), 1, "bob himself got his one copy")
    t.assertFalse(os.path.exists(t.inst.path("PIPED")), "a pipe named by a remote sender ran")
    t.assertFalse(any(n.startswith("u") for n in os.listdir(t.inst.path("mail"))),
                  "a part of a too-wide expansion was delivered")
    t.assertLessEqual(len(bounces), 2)


# === 3.4 Queue, spool and storage ===========================================

def check_Q1(t):
    t.make()
    r = t.raw()
    for helo in (b"EHLO a\x00b", b"EHLO a\rb", b"EHLO a\x7fb"):
        reply = r.cmd(helo)
        t.assertGreaterEqual(reply.code, 500, f"{helo!r}: {reply}")
    r.ehlo()
    t.assertEqual(r.cmd("MAIL FROM:<a@client.example>").code, 250)
    for rcpt in (b"RCPT TO:<a\xffb@test.example>", b"RCPT TO:<bob@test.example> ORCPT=rfc822;a\x01b",
                 b"RCPT TO:<bob@test.example> NOTIFY=NEVER\x00"):
        reply = r.cmd(rcpt)
        t.assertGreaterEqual(reply.code, 500, f"{rcpt!r}: {reply}")
    for frm in (b"MAIL FROM:<a\xff@client.example>",):
        r.cmd("RSET")
        t.assertGreaterEqual(r.cmd(frm).code, 500)
    # Legal but awkward values are stored and read back intact: queued
    # while the daemons are down, then committed and delivered after a restart.
    t.stop_checked(t.inst)
    name = "Bob \"the\" O'Neil; \\ (x) \u00e9"
    r2 = t.send("-oi", "-odq", "-F", name, "-f", "\"odd sender\"@test.example", "bob")
    t.assertEqual(r2.returncode, 0, r2.stderr)
    refused = 0
    for bad in ("Bob\x01", "Bob\x1b[31m"):
        r3 = t.send("-oi", "-odq", "-F", bad, "bob")
        refused += r3.returncode != 0
    t.inst.start()
    msgs = t.mbox("bob")
    t.wait_queue_empty()
    t.assertEqual(t.corrupt(), [], "a queue file did not read back")
    msgs = t.mbox("bob", 3 - refused)
    froms = [str(email.header.make_header(email.header.decode_header(parse(m)["From"]))) for m in msgs]
    t.assertTrue(any("O'Neil" in f for f in froms), froms)
    for m in msgs:
        t.assertNotRegex(header_block(m), rb"[\x00-\x08\x0b-\x1f\x7f]", "a control byte stored in a header")


def check_Q2(t):
    if not IS_ROOT:
        t.skipTest("needs root to mount a small tmpfs as a full disk")
    t.make(start=False)
    spool = t.inst.path("spool")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "mmfull", spool],
                       capture_output=True)
    if r.returncode != 0:
        t.skipTest(f"cannot mount tmpfs: {r.stderr!r}")
    t.addCleanup(subprocess.run, ["umount", "-l", spool], capture_output=True)
    t.start()
    filler = os.path.join(spool, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    os.truncate(filler, max(0, os.path.getsize(filler) - 256 * 1024))  # 256 KiB left
    big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 8000  # 624 KiB
    s = t.smtp()
    t.assertEqual(s.mail("a@client.example")[0], 250)
    t.assertEqual(s.rcpt("bob@test.example")[0], 250)
    try:
        code, text = s.data(big)
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error
    t.assertEqual(code, 452, f"disk full during DATA: {code} {text}")
    r = t.send("-oi", "bob", stdin=b"Subject: big\n\n" + (b"y" * 76 + b"\n") * 8000)
    t.assertEqual(r.returncode, 75, f"sendmail on a full disk: {r.returncode} {r.stderr!r}")
    t.assertTrue(r.stderr.strip(), "a clear message on stderr")
    t.assertEqual(t.inst.mailq_json(), [])
    t.assertEqual(t.inst.mbox_messages("bob"), [])
    os.unlink(filler)
    t.sent_ok("-oi", "bob", stdin=b"Subject: after\n\nspace again\n")
    msgs = t.mbox("bob")
    t.assertEqual(len(msgs), 1, "only the acknowledged message was delivered")
    t.daemons_alive()


def check_Q3(t):
    t.make(start=False)
    outcomes = []
    for n, (syscall, when) in enumerate((("fsync", 1), ("fdatasync", 1), ("rename", 1), ("renameat", 1),
                                         ("renameat2", 1), ("write", 3), ("fsync", 2))):
        subj = f"crash{n}"
        r = subprocess.run(["strace", "-f", "-o", "/dev/null", "-e", f"inject={syscall}:signal=SIGKILL:when={when}",
                            MASQMAIL, "-C", t.inst.conf, "-oi", "-odq", "bob"],
                           input=f"Subject: {subj}\n\nbody {subj}\n".encode(), capture_output=True, timeout=60)
        outcomes.append((syscall, when, r.returncode))
    t.start()
    time.sleep(0)  # nothing timed: the checks below wait for state
    t.assertTrue(wait_for(lambda: not os.listdir(t.inst.path("spool", "tmp")), TIMEOUT),
                 f"tmp/ not cleaned at start: {t.spool_files()}")
    t.wait_queue_empty()
    msgs = t.inst.mbox_messages("bob")
    for rc_case, m in zip(outcomes, msgs):
        pass
    for m in msgs:
        subj = parse(m)["Subject"]
        t.assertIn(f"body {subj}".encode(), m, "a delivered message is whole")
    acknowledged = [o for o in outcomes if o[2] == 0]
    delivered = {parse(m)["Subject"] for m in msgs}
    for n, o in enumerate(outcomes):
        if o[2] == 0:
            t.assertIn(f"crash{n}", delivered, f"acknowledged but lost: {o}")
    t.assertEqual(t.corrupt(), [])
    t.outcome = f"kills {outcomes}; delivered {sorted(delivered)}; acknowledged {len(acknowledged)}"


def check_Q4(t):
    release = threading.Event()

    def script(c):
        c.send(b"220 hostile.test\r\n")
        if c.dialog(final=None) == "dot":
            release.wait(TIMEOUT)
            c.send(b"250 2.0.0 queued\r\n")
            c.dialog()
    srv = t.hostile(script)
    t.make(start=False)
    t.configure(f'permanent_routes = "{t.route("lan", srv.port)}"\n')
    t.start()
    t.sent_ok("-oi", "friend@remote.example", stdin=b"Subject: q4\n\nonce at least\n")
    t.assertTrue(wait_for(lambda: srv.data_count >= 1, TIMEOUT), t.diagnosis())
    qmgr = [p for p, a in t.inst.processes().items() if a and os.path.basename(a[0]) == "qmgr"]
    t.assertEqual(len(qmgr), 1)
    os.kill(qmgr[0], signal.SIGKILL)  # after the dot, before qmgr can record the 250
    release.set()
    t.assertTrue(wait_for(lambda: t.inst.mailq_json() == [] or srv.data_count >= 2, TIMEOUT), t.diagnosis())
    if t.inst.mailq_json():
        t.assertEqual(t.send("-q").returncode, 0)
    t.wait_queue_empty()
    t.assertGreaterEqual(srv.data_count, 1)
    t.outcome = f"copies at the smarthost: {srv.data_count}"


def check_Q5(t):
    t.make(start=False)
    t.configure('query_routes.isp = "{root}/isp.route"\n')
    t.route("isp", 9)
    a = t.sent_ok("-oi", "-odq", "x@remote.example", stdin=b"Subject: to truncate\n\nx\n")
    b = t.sent_ok("-oi", "-odq", "y@remote.example", stdin=b"Subject: to flip\n\nx\n")
    t.start()
    t.assertTrue(wait_for(lambda: all(os.path.exists(t.inst.path("spool", "queue", q)) for q in (a, b)),
                          TIMEOUT), t.diagnosis())
    t.stop_checked(t.inst)
    pa = t.inst.path("spool", "queue", a)
    os.truncate(pa, os.path.getsize(pa) // 2)
    pb = t.inst.path("spool", "queue", b)
    data = bytearray(open(pb, "rb").read())
    data[len(data) // 2] ^= 0x20
    open(pb, "wb").write(bytes(data))
    foreign = "1700000000.0123456789abcdef"
    with open(t.inst.path("spool", "queue", foreign), "wb") as f:
        f.write(b"From evil\n\x00\xff" * 100)
    t.inst.start()
    t.sent_ok("-oi", "bob", stdin=b"Subject: good\n\nstill delivered\n")
    t.mbox("bob")
    t.assertEqual(t.send("-q").returncode, 0)
    t.assertEqual(t.send("-qo", "isp").returncode, 0)
    got = wait_for(lambda: all(any(c.startswith("corrupt/" + q) for c in t.corrupt()) for q in (a, b, foreign)),
                   TIMEOUT)
    t.assertTrue(got, t.diagnosis())
    t.wait_log("corrupt", "a log line about the quarantine")
    t.daemons_alive()
    t.assertEqual(len(t.inst.mbox_messages("bob")), 1)


def check_Q6(t):
    sh = t.smarthost()
    t.make(start=False)
    t.configure(f'query_routes.isp = "{t.route("isp", sh.port)}"\n')
    n = 6 if mmtest.SANITIZED else 12
    for i in range(n):
        t.sent_ok("-oi", "-odq", f"r{i}@remote.example", stdin=f"Subject: m{i}\n\nx\n".encode())
    runners = [subprocess.Popen([MASQMAIL, "-C", t.inst.conf, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
               for args in (("-qo", "isp"),) * 3 + (("-q",),) * 2]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runners]
    for p in runners:
        p.stdout.close(), p.stderr.close()
    t.assertTrue(all(rc == 0 for rc, _ in results), results)
    if t.inst.mailq_json():
        t.assertEqual(t.send("-qo", "isp").returncode, 0)
    t.wait_queue_empty()
    subjects = [re.search(rb"Subject: (m\d+)", m.data).group(1) for m in sh.messages]
    dup = {s for s in subjects if subjects.count(s) > 1}
    t.assertEqual(len(set(subjects)), n, f"lost: {sh.transcript_text()[-3000:]}")
    t.assertEqual(dup, set(), f"sent twice by concurrent runners: {sorted(dup)}")
    t.outcome = f"{n} messages, 5 concurrent runners, {len(subjects)} sent"


def check_Q7(t):
    t.make()
    mail = t.inst.path("mail")
    with open(os.path.join(mail, "bob.lock"), "w") as f:
        f.write(f"{dead_pid()}\n")
    t.sent_ok("-oi", "bob", stdin=b"Subject: stale\n\nthrough a dead writer's lock\n")
    t.mbox("bob")
    old = time.time() - 86400
    with open(os.path.join(mail, "carol.lock"), "w") as f:
        pass
    os.utime(os.path.join(mail, "carol.lock"), (old, old))
    t.sent_ok("-oi", "carol", stdin=b"Subject: old\n\nthrough an old empty lock\n")
    t.mbox("carol")
    t.assertFalse(os.path.exists(os.path.join(mail, "bob.lock")))
    # The queue's lock after a crash: the supervisor's flock dies with it.
    sup = t.inst.daemon_pid()
    os.killpg(sup, signal.SIGKILL)
    t.assertTrue(wait_for(lambda: not t.inst.processes(), TIMEOUT), t.inst.processes())
    t.assertTrue(os.path.exists(t.inst.pid_file()), "the crash left its pid file")
    t.inst.start()
    t.sent_ok("-oi", "bob", stdin=b"Subject: after crash\n\nx\n")
    t.mbox("bob", 2)


def check_Q8(t):
    t.make()
    spool = t.inst.path("spool")
    for d in sorted(os.listdir(spool)):
        st = os.lstat(os.path.join(spool, d))
        if d == "maildrop":
            t.assertFalse(st.st_mode & 0o002, f"maildrop/ writable by others: {oct(st.st_mode)}")
        elif not os.path.isdir(os.path.join(spool, d)):
            continue
        else:
            t.assertFalse(st.st_mode & 0o022, f"spool/{d} writable by group or others: {oct(st.st_mode)}")
    maildrop = os.path.join(spool, "maildrop")
    if IS_ROOT:
        def as_nobody():
            os.setgroups([]), os.setgid(NOBODY), os.setuid(NOBODY)
        r = subprocess.run(["/usr/bin/python3", "-c",
                            f"open('{maildrop}/planted', 'w').write('x')"],
                           capture_output=True, preexec_fn=as_nobody)
        t.assertNotEqual(r.returncode, 0, "nobody may write into maildrop/ of this instance")
    # Planted entries (as a member of the drop group could): a symlink to a
    # secret, a hard link to it, a FIFO, a directory, garbage. None is
    # followed, none blocks enqueue, the secret is never mailed or removed.
    secret = t.inst.path("secret")
    with open(secret, "w") as f:
        f.write("SECRET-CONTENT\n")
    os.chmod(secret, 0o600)
    # Drop names (SECONDS.PID.HEX, doc/spool-format.md) are picked up; any
    # other name is ignored.
    now = int(time.time())
    names = {kind: f"{now}.{4000 + i}.{os.urandom(8).hex()}"
             for i, kind in enumerate(("sym", "hard", "fifo", "dir", "junk"))}
    os.symlink(secret, os.path.join(maildrop, names["sym"]))
    os.link(secret, os.path.join(maildrop, names["hard"]))
    os.mkfifo(os.path.join(maildrop, names["fifo"]))
    os.mkdir(os.path.join(maildrop, names["dir"]))
    with open(os.path.join(maildrop, names["junk"]), "wb") as f:
        f.write(b"\xff\x00garbage" * 50)
    os.symlink(secret, os.path.join(maildrop, "not-a-drop-name"))
    # enqueue lists maildrop/ at start, on a drop's wake-up and every 10 s.
    t.sent_ok("-oi", "bob", stdin=b"Subject: after the plants\n\nx\n")
    t.mbox("bob")
    gone = lambda: not set(names.values()) & set(os.listdir(maildrop))
    t.assertTrue(wait_for(gone, TIMEOUT), t.diagnosis())
    aside = {c.split("/", 1)[1] for c in t.corrupt()}
    t.assertEqual(aside, {"maildrop." + n for n in names.values()}, "each planted drop name moved aside")
    with open(secret) as f:
        t.assertEqual(f.read(), "SECRET-CONTENT\n")
    for box in os.listdir(t.inst.path("mail")):
        t.assertNotIn(b"SECRET-CONTENT", t.inst.read_mbox(box), box)
    t.daemons_alive()


def check_Q9(t):
    t.make(start=False)
    future = time.time() + 365 * 86400
    t.sent_ok("-oi", "-odq", "bob", stdin=b"Subject: from the future\n\nclock skew\n")
    for p in glob.glob(t.inst.path("spool", "*", "*")):
        if os.path.isfile(p):
            os.utime(p, (future, future))
    t.start()
    msgs = t.mbox("bob")
    t.assertIn(b"clock skew", msgs[0])
    t.wait_queue_empty()


# === 3.5 Configuration and environment ======================================

def check_C1(t):
    t.make(start=False)
    base = open(t.inst.conf).read()
    cases = {
        "unterminated quote": base + 'host_name = "oops\n',
        "bad type": base + "max_recipients = many\n",
        "duplicate route": base + 'permanent_routes = "{r};{r}"\n'.replace("{r}", t.route("lan", 9)),
        "missing include": base + 'query_routes.isp = "{root}/missing.route"\n'.replace("{root}", t.inst.root),
        "bad interval": base + "max_defer_time = 3 fortnights\n",
    }
    found = {}
    for what, text in cases.items():
        with open(t.inst.conf, "w") as f:
            f.write(text)
        r = t.inst.masqmail("--check-config")
        said = (r.stdout + r.stderr).decode(errors="replace")
        found[what] = (r.returncode, said.strip()[:160])
        t.assertEqual(r.returncode, 78, f"{what}: {found[what]}")
        if what == "missing include":  # named by its own path, not by the line naming it
            t.assertRegex(said, r"missing\.route: cannot read: No such file", what)
        else:
            t.assertRegex(said, re.escape(t.inst.conf) + r":\d+: ", what)
        if what == "missing include":
            continue  # route files are read at each queue run: a bad one is skipped then (route(5))
        r = t.inst.masqmail("-bd", "-q30m")
        t.assertEqual(r.returncode, 78, f"-bd with {what}: {r.stderr!r}")
        t.assertIsNone(t.inst.daemon_pid(), f"started with {what}")
    # An unknown name is a warning with file:line (masqmail.conf(5): options
    # of other masqmail versions must not stop the mail), never silence.
    with open(t.inst.conf, "w") as f:
        f.write(base + "no_such_option = 1\n")
    r = t.inst.masqmail("--check-config")
    found["unknown key"] = (r.returncode, (r.stdout + r.stderr).decode(errors="replace").strip()[:160])
    t.assertRegex(found["unknown key"][1], re.escape(t.inst.conf) + r":\d+: unknown option 'no_such_option'")
    # CRLF line ends: read as the same lines (a file edited on Windows).
    with open(t.inst.conf, "w") as f:
        f.write(base.replace("\n", "\r\n"))
    r = t.inst.masqmail("--check-config")
    found["CRLF"] = (r.returncode, (r.stdout + r.stderr).decode(errors="replace").strip()[:160])
    if r.returncode != 0:
        t.assertEqual(r.returncode, 78)
        t.assertRegex(found["CRLF"][1], r":\d+: ")
    # A 0-byte file is the defaults, as in masqmail; it must not crash.
    empty = t.inst.write("empty.conf", "")
    r = mmtest.run([MASQMAIL, "-C", empty, "--check-config"])
    found["0-byte"] = (r.returncode, (r.stdout + r.stderr).decode(errors="replace").strip()[:160])
    t.assertIn(r.returncode, (0, 78), found["0-byte"])
    t.outcome = "; ".join(f"{k}: {v[0]}" for k, v in found.items())


def check_C2(t):
    sh = t.smarthost(auth={"u": "pw"}, auth_without_tls=True)
    t.make(start=False)
    secret = t.inst.write("secret", "pw\n")
    os.chmod(secret, 0o644)
    route = t.route("isp", sh.port, f'tls = none\nauth_login = "u"\nauth_secret_file = "{secret}"\n'
                    "auth_plaintext = true\n")
    t.configure(f'permanent_routes = "{route}"\n')
    t.start()
    t.sent_ok("-oi", "friend@remote.example")
    r = t.wait_deferred("friend@remote.example")
    t.assertRegex(t.inst.log_text(), r"(?i)secret|readable|mode", r)
    t.assertFalse(any(l.line.upper().startswith("AUTH") for l in sh.log), "the secret was sent")
    os.chmod(secret, 0o600)
    # A route's worker answers with its last failure while it lives (2 s
    # idle): queue runs until a new worker reads the mended file.
    if not wait_for(lambda: t.send("-q").returncode == 0 and sh.messages, TIMEOUT, 2.5):
        t.fail("not delivered once the secret file is 0600:\n" + t.diagnosis())
    if IS_ROOT:
        # A system configuration (no run_as_user) not owned by root is refused.
        other = t.inst.write("other.conf", open(t.inst.conf).read().replace("run_as_user = true\n", ""))
        os.chown(other, NOBODY, NOBODY)
        r = mmtest.run([MASQMAIL, "-C", other, "--check-config"])
        t.assertEqual(r.returncode, 78, r)
        t.assertIn(f"{other}: belongs to uid {NOBODY}".encode(), r.stdout + r.stderr)
        r = mmtest.run([MASQMAIL, "-C", other, "-bd"])
        t.assertEqual(r.returncode, 78, f"a daemon started on a config nobody can change: {r}")
        t.outcome = f"config owned by nobody: --check-config and -bd exit {r.returncode}"
    # A configuration everyone may write is refused, root or not.
    os.chmod(t.inst.conf, 0o666)
    r = mmtest.run([MASQMAIL, "-C", t.inst.conf, "--check-config"])
    os.chmod(t.inst.conf, 0o644)
    t.assertEqual(r.returncode, 78, r)
    t.assertIn(b"is writable by everyone", r.stdout + r.stderr)


def check_C3(t):
    t.make(start=False, aliases=['pipe: "|{record} {root}/pipe"'])
    t.out_dir("pipe")
    dirty = {"IFS": "/", "LD_PRELOAD": "/nonexistent/evil.so", "LD_LIBRARY_PATH": "/tmp/evil",
             "TMPDIR": "/nonexistent", "PATH": "/tmp/evil:/usr/bin:/bin", "MALLOC_CHECK_": "3",
             "BASH_ENV": "/tmp/evil.sh", "HOSTALIASES": "/tmp/evil"}
    if mmtest.SANITIZED:
        del dirty["LD_PRELOAD"]  # ASan must come first in the preload list
    r = mmtest.run([MASQMAIL, "-C", t.inst.conf, "-bd", "-q30m"], env=dirty)
    t.assertEqual(r.returncode, 0, r.stderr)
    t.addCleanup(t.stop_checked, t.inst)
    t.assertTrue(wait_for(lambda: "local-deliver start" in t.inst.log_text(), TIMEOUT), t.diagnosis())
    r = mmtest.run([MASQMAIL, "-C", t.inst.conf, "-oi", "pipe"], stdin=b"Subject: env\n\nx\n", env=dirty)
    t.assertEqual(r.returncode, 0, r.stderr)
    env = t.wait_calls("pipe")[0]["env"]
    allowed = {"SENDER", "RETURN_PATH", "SENDER_LOCAL", "SENDER_DOMAIN", "RECEIVED_HOST", "LOCAL_PART",
               "USER", "LOGNAME", "DOMAIN", "MESSAGE_ID", "QUALIFY_DOMAIN", "HOME", "PATH", "SHELL"}
    t.assertFalse(set(env) & set(dirty) - {"PATH"}, f"leaked into a delivery: {sorted(env)}")
    t.assertNotIn("/tmp/evil", env.get("PATH", ""))
    t.assertLessEqual(set(env) - allowed, {"PWD", "LC_CTYPE"}, sorted(env))
    # Closed descriptors 0, 1 and 2: nothing of ours lands in the message.
    closer = "import os,sys; os.closerange(0,3); os.execv(sys.argv[1], sys.argv[1:])"
    p = subprocess.run(["/usr/bin/python3", "-c", closer, MASQMAIL, "-C", t.inst.conf, "-oi", "bob"],
                       capture_output=True, timeout=60)
    # Standard input closed: an empty message (or a refusal), never a hang.
    t.assertIn(p.returncode, (0, 65, 74, 75), p)
    with tempfile.TemporaryFile() as body:
        body.write(b"Subject: fds\n\nclosed stdout and stderr\n")
        body.seek(0)
        closer12 = "import os,sys; os.close(1); os.close(2); os.execv(sys.argv[1], sys.argv[1:])"
        p = subprocess.run(["/usr/bin/python3", "-c", closer12, MASQMAIL, "-C", t.inst.conf, "-oi", "-v",
                            "carol"], stdin=body, timeout=60)
    t.assertEqual(p.returncode, 0)
    msg = t.mbox("carol")[0]
    t.assertIn(b"closed stdout and stderr", msg)
    t.assertNotIn(b"queued as", msg, "-v output went into the message")
    # A huge argv: many recipients on the command line.
    # A huge argv: more recipients than a message may have, with the
    # daemons running (handed to enqueue) and without (committed here).
    for n in (1001, 5000):
        r = t.send("-oi", *[f"u{i}" for i in range(n)], stdin=b"Subject: many\n\nx\n")
        t.assertEqual(r.returncode, 65, f"{n} recipients: {r.stderr[:300]!r}")
        t.assertIn(b"too many recipients", r.stderr)
    t.stop_checked(t.inst)
    r = t.send("-oi", "-odq", *[f"u{i}" for i in range(5000)], stdin=b"Subject: many\n\nx\n")
    t.assertEqual(r.returncode, 65, r.stderr[:300])
    t.inst.start()


def check_C4(t):
    sh = t.smarthost()
    t.make(start=False)
    route = t.route("isp", sh.port)
    query = t.inst.write("query.sh", "")
    t.configure(f'query_routes.isp = "{route}"\nonline_query = "/bin/cat {query}"\n')
    with open(query, "w") as f:
        f.write("  isp \t\nsecond line\n")
    t.start()
    t.sent_ok("-oi", "a@remote.example")
    t.assertEqual(t.send("-q").returncode, 0)
    sh.wait_for(1, TIMEOUT)
    for name in ("nosuch\n", "is p\n", "../isp\n", "isp\x1b[2J\n"):
        with open(query, "w") as f:
            f.write(name)
        rcpt = f"b{len(sh.messages)}x{abs(hash(name)) % 1000}@remote.example"
        t.sent_ok("-oi", rcpt)
        t.assertEqual(t.send("-q").returncode, 0)
        r = t.wait_recipient(rcpt, lambda r: (r["last_error"] or "").startswith("waiting for a route"),
                             f"waiting for a route with online_query printing {name!r}")
        t.assertEqual(r["state"], "pending", r)
    t.assertEqual(len(sh.messages), 1)
    t.assertRegex(t.inst.log_text(), r"nosuch")
    t.assertNotIn("\x1b", t.inst.log_text(), "an escape sequence copied into the log")


def check_C5(t):
    hosts = {f"mx{i}.big.example": {"A": ["127.0.0.1"]} for i in range(100)}
    records = {
        "garbled.example": {"MX": "GARBLED"},
        "loop.example": {"CNAME": "loop2.example"},
        "loop2.example": {"CNAME": "loop.example"},
        "big.example": {"MX": [(i, f"mx{i}.big.example") for i in range(100)]},
        **hosts,
    }
    sh = t.smarthost()
    with DnsStub(records=records) as dns:
        t.make(start=False)
        t.configure(dns.config_line() + "\n")
        route = t.inst.write("direct.route", f"tls = none\nsmtp_port = {sh.port}\nresolve_list = dns_mx\n")
        t.configure(f'permanent_routes = "{route}"\n')
        t.start()
        for rcpt in ("a@garbled.example", "b@loop.example"):
            t.sent_ok("-oi", rcpt)
            r = t.wait_deferred(rcpt)
            t.assertIn("4.4.3", (r["last_error"] or "") + t.inst.log_text(), r)
        t.sent_ok("-oi", "c@big.example")
        sh.wait_for(1, TIMEOUT)
        asked = [q for q in dns.queries if q[0].startswith("mx") and q[0].endswith(".big.example")]
        t.assertLessEqual(len({q[0] for q in asked}), 20, "at most 20 MX hosts looked up")
        t.assertLess(len(dns.queries), 200, "a bounded number of questions")
        t.daemons_alive()
        t.outcome = f"{len(dns.queries)} DNS questions, {len({q[0] for q in asked})} MX hosts looked up"


# === 3.6 Loops and bounces ==================================================

def check_L1(t):
    t.make()
    hops = "".join(f"Received: from h{i}.example by h{i + 1}.example; Mon, 1 Jan 2024 00:00:00 +0000\n"
                   for i in range(60))
    r = t.send("-oi", "bob", stdin=(hops + "Subject: loop\n\nx\n").encode())
    t.assertEqual(r.returncode, 65, r.stderr)
    s = t.smtp()
    s.mail("a@client.example")
    s.rcpt("bob@test.example")
    try:
        code, text = s.data((hops + "Subject: loop\n\nx\n").replace("\n", "\r\n").encode())
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error
    t.assertEqual(code, 554, text)
    t.assertIn(b"5.4.6", text)
    ok = "".join(hops.splitlines(True)[:49])
    t.sent_ok("-oi", "bob", stdin=(ok + "Subject: 49 hops\n\nx\n").encode())
    t.assertEqual(len(t.mbox("bob")), 1)
    # A forwarding loop: a route whose smarthost is this instance itself.
    # Each pass adds a Received: line, so the loop ends with a bounce.
    t.stop_checked(t.inst)
    t.configure(f'permanent_routes = "{t.route("back", t.inst.port)}"\n')
    t.inst.start()
    t.sent_ok("-oi", "-f", "alice", "ping@loop.example", stdin=b"Subject: round and round\n\nx\n")
    bounce = t.mbox("alice")[0]
    t.assertIn(b"5.4.6", bounce, bounce[:3000])
    t.wait_queue_empty()
    hops_seen = len(re.findall(r"<= <?alice@test\.example", t.inst.log_text()))
    t.outcome = f"forwarding loop ended after {hops_seen} passes"


def check_L2(t):
    t.make(aliases=['broken: "|{record} {root}/broken 1"', 'postmaster: "|{record} {root}/pm 1"'])
    t.out_dir("broken"), t.out_dir("pm")
    s = t.smtp()
    t.assertEqual(s.mail("<>")[0], 250, "the null sender is accepted")
    t.assertEqual(s.rcpt("broken@test.example")[0], 250)
    t.assertEqual(s.data(b"Subject: a bounce\r\n\r\nx\r\n")[0], 250)
    t.wait_calls("broken")
    t.wait_queue_empty()
    pm = len(t.calls("pm"))
    t.assertLessEqual(pm, 1, "at most one double bounce to postmaster, never one for it")
    t.assertEqual(len(t.calls("broken")), 1)
    t.wait_log(r"(?i)postmaster|double bounce|null sender|<>", "a log line for the dropped bounce")
    t.outcome = f"postmaster pipe calls: {pm}"


def check_L3(t):
    t.make('warn_intervals = "2s;1h"\n', aliases=['slow: "|{record} {root}/slow 75"'])
    t.out_dir("slow")
    t.sent_ok("-oi", "-f", "alice", "slow", stdin=b"Subject: stuck\n\nx\n")
    t.wait_calls("slow")
    deadline = time.monotonic() + (20 if mmtest.SANITIZED else 12)
    runs = 0
    while time.monotonic() < deadline:  # queue runs as a busy cron would
        time.sleep(1)
        t.assertEqual(t.send("-q").returncode, 0)
        runs += 1
    warnings = [m for m in t.mbox("alice") if "Delayed" in (parse(m)["Subject"] or "")]
    t.assertEqual(len(warnings), 1, f"{runs} queue runs: {len(warnings)} warnings")
    t.assertGreaterEqual(len(t.calls("slow")), 3, "every run was an attempt")
    t.outcome = f"{runs} queue runs, {len(t.calls('slow'))} attempts, 1 warning"


def check_L4(t):
    iface = smtptest.global_ipv4()
    t.make('relay_nets = ""\n' if iface else "")
    if iface:
        with open(t.inst.conf) as f:
            conf = f.read()
        port = mmtest.free_port()
        t.stop_checked(t.inst)
        with open(t.inst.conf, "w") as f:
            f.write(conf.replace(f"127.0.0.1:{t.inst.port}", f"127.0.0.1:{t.inst.port};{iface.ip}:{port}"))
        t.inst.start()
        with smtplib.SMTP(str(iface.ip), port, timeout=TIMEOUT, source_address=(str(iface.ip), 0)) as s:
            s.ehlo("outside.example")
            s.mail("forged@victim.example")
            code, text = s.rcpt("someone@elsewhere.example")
            t.assertEqual(code, 550, f"relaying for a client outside loopback: {text}")
    # A bounce carries the headers and a part of a large body, not a copy
    # of everything (so forged-sender backscatter is small).
    t.make(aliases=['broken: "|{record} {root}/broken 1"'])
    t.out_dir("broken")
    body = b"Subject: big\n\n" + (b"z" * 70 + b"\n") * 20000  # 1.4 MB
    t.sent_ok("-oi", "-f", "alice", "broken", stdin=body)
    bounce = t.mbox("alice")[0]
    t.outcome = f"bounce of a {len(body)} byte message: {len(bounce)} bytes"
    t.assertLess(len(bounce), len(body), "the bounce copies the whole message")


def check_L5(t):
    sh = t.smarthost(mail_reply=None, rcpt_replies={"gone@remote.example": (550, "5.1.1 no such user")})
    t.make(start=False)
    t.configure(f'permanent_routes = "{t.route("isp", sh.port)}"\n')
    t.start()
    t.sent_ok("-oi", "-f", "alice", "gone@remote.example", stdin=b"Subject: l5\n\nx\n")
    bounce = t.mbox("alice")[0]
    t.assertIn(b"gone@remote.example", bounce)
    t.assertFalse(any(m.mail_from in ("", "<>") for m in sh.messages), "the bounce went to the smarthost")

    # A remote sender's bounce, to a smarthost that refuses MAIL FROM:<>.
    def script(c):
        c.send(b"220 refuses-null\r\n")
        while True:
            line = c.line()
            if not line:
                return
            u = line.upper()
            if u.startswith(b"MAIL FROM:<>"):
                c.send(b"550 5.7.1 no null senders here\r\n")
            elif u.startswith(b"RCPT") and b"gone@" in line:
                c.send(b"550 5.1.1 no such user\r\n")
            elif u.startswith(b"DATA"):
                c.send(b"354 go\r\n")
                c.data()
                c.send(b"250 ok\r\n")
            elif u.startswith(b"QUIT"):
                c.send(b"221 bye\r\n")
                return
            else:
                c.send(b"250 ok\r\n")
    srv = t.hostile(script)
    t.make(start=False)
    t.configure(f'permanent_routes = "{t.route("isp", srv.port)}"\n')
    t.start()
    t.sent_ok("-oi", "-f", "carol@remote.example", "gone@remote.example", stdin=b"Subject: l5b\n\nx\n")
    # The refused bounce is neither lost nor retried in a loop: it comes to
    # the local postmaster as a double bounce, once.
    pm = t.mbox("postmaster")
    t.wait_queue_empty()
    t.assertEqual(len(pm), 1)
    t.assertIn(b"carol@remote.example", pm[0])
    t.assertEqual(len(srv.commands("MAIL FROM:<>")), 1)
    t.assertEqual(t.corrupt(), [])


def check_L6(t):
    t.make('warn_intervals = "1s"\n', aliases=['slow: "|{record} {root}/slow 75"',
                                               'broken: "|{record} {root}/broken 1"'])
    t.out_dir("slow"), t.out_dir("broken")
    t.sent_ok("-oi", "-f", "alice", "broken", stdin=b"Subject: fails\n\nx\n")
    t.sent_ok("-oi", "-f", "alice", "slow", stdin=b"Subject: waits\n\nx\n")
    t.wait_calls("slow")
    t.assertTrue(wait_for(lambda: (t.send("-q"), len(t.inst.mbox_messages("alice")) >= 2)[1], TIMEOUT, 1.0),
                 t.diagnosis())
    for m in t.inst.mbox_messages("alice"):
        head = header_block(m)
        t.assertRegex(head, rb"(?im)^return-path: <>$", "a generated message has the null sender")
        t.assertRegex(head, rb"(?im)^auto-submitted: auto-(generated|replied)", head)


# === 3.7 The client side: hostile or broken smarthosts ======================

def remote_instance(t, port, route_text="tls = none\n"):
    t.make(start=False)
    t.configure(f'permanent_routes = "{t.route("isp", port, route_text)}"\n')
    t.start()


def check_R1(t):
    long_line = b"250-" + b"x" * 5000 + b"\r\n"
    cases = {
        "endless 250- at EHLO": lambda c: (c.line(), c.send(b"250-hostile\r\n" * 200000)),
        "reply line of 5000 octets": lambda c: (c.line(), c.send(long_line + b"250 ok\r\n"), c.line()),
        "non-digit code": lambda c: (c.line(), c.send(b"2x0 hello\r\n"), c.line()),
        "code 999": lambda c: (c.line(), c.send(b"999 what\r\n"), c.line()),
        "mixed codes": lambda c: (c.line(), c.send(b"250-a\r\n550 b\r\n"), c.line()),
    }
    state = {"case": None}

    def script(c):
        c.send(b"220 hostile.test ESMTP\r\n")
        if state["case"] == "injection at RCPT":
            c.dialog(rcpt=b"450 4.2.0 busy\rQI27:x\x00 \x1b[2J\xff\r\n")
        else:
            cases[state["case"]](c)
    srv = t.hostile(script)
    remote_instance(t, srv.port)
    cases["injection at RCPT"] = None
    for n, name in enumerate(cases):
        state["case"] = name
        rcpt = f"r{n}@remote.example"
        t.sent_ok("-oi", rcpt, stdin=f"Subject: {name}\n\nx\n".encode())
        # A route's worker answers with its last failure while it lives (2 s
        # idle): queue runs until this case has its own connection.
        t.assertTrue(wait_for(lambda: srv.connections > n or (t.send("-q"), False)[1], TIMEOUT, 2.5),
                     f"{name}: no connection of its own\n{t.diagnosis()}")
        r = t.wait_deferred(rcpt)
        t.assertEqual(r["state"], "pending", f"{name}: {r}")
        err = r["last_error"] or ""
        t.assertTrue(all(32 <= ord(ch) < 127 for ch in err), f"{name}: unescaped reply text {err!r}")
    t.assertEqual(t.corrupt(), [])
    t.assertNotIn("\x1b", t.inst.log_text())
    t.daemons_alive()
    t.assertEqual(srv.data_count, 0)
    t.outcome = f"{len(cases)} hostile replies, {srv.connections} connections, all deferred"


def check_R2(t):
    sh = t.smarthost(starttls=True, auth={"u": "pw"})
    t.make(start=False)
    secret = t.inst.write("secret", "pw\n")
    os.chmod(secret, 0o600)
    route = t.route("isp", sh.port, f'tls = starttls\nauth_login = "u"\nauth_secret_file = "{secret}"\n')
    t.configure(f'permanent_routes = "{route}"\n')
    t.start()
    t.sent_ok("-oi", "friend@remote.example")
    r = t.wait_deferred("friend@remote.example")
    t.assertRegex((r["last_error"] or "") + t.inst.log_text(), r"(?i)certificate|verif")
    t.assertFalse(any(l.line.upper().startswith(("AUTH", "MAIL")) for l in sh.log), sh.transcript_text())
    t.assertEqual(sh.messages, [])


STARTTLS_NO_VERIFY = "tls = starttls\ntls_verify = false\n"


def check_R3(t):
    sh = t.smarthost(starttls=True, advertise={"STARTTLS": False})
    t.make(start=False)
    t.configure(f'permanent_routes = "{t.route("isp", sh.port, STARTTLS_NO_VERIFY)}"\n')
    t.start()
    t.sent_ok("-oi", "friend@remote.example")
    r = t.wait_deferred("friend@remote.example")
    t.assertIn("4.7.0", (r["last_error"] or "") + t.inst.log_text(), r)
    t.assertFalse(any(l.line.upper().startswith("MAIL") for l in sh.log), "fell back to clear text")
    # STARTTLS response injection (S5): "250" appended after the 220.
    cert = smtptest.make_certificate(t.inst.root)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    seen = {"pre": [], "post": []}

    def script(c):
        c.send(b"220 tls.test\r\n")
        while True:
            line = c.line()
            if not line:
                return
            seen["pre"].append(line)
            if line.upper().startswith(b"EHLO"):
                c.send(b"250-tls.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
            elif line.upper() == b"STARTTLS":
                c.send(b"220 go ahead\r\n250 injected\r\n250-AUTH PLAIN\r\n")
                break
            else:
                c.send(b"250 ok\r\n")
        c.sock = ctx.wrap_socket(c.sock, server_side=True)
        c.buf = b""
        first = c.line()
        seen["post"].append(first)
        if first.upper().startswith(b"EHLO"):
            c.send(b"250 tls.test\r\n")
        else:
            c.send(b"503 EHLO first\r\n")
        c.dialog()
    srv = t.hostile(script)
    t.make(start=False)
    t.configure(f'permanent_routes = "{t.route("inj", srv.port, STARTTLS_NO_VERIFY)}"\n')
    t.start()
    t.sent_ok("-oi", "friend@remote.example", stdin=b"Subject: injected\n\nx\n")
    t.assertTrue(wait_for(lambda: srv.data_count >= 1 or t.recipients().get("friend@remote.example", {}).get(
        "attempts", 0) >= 1, TIMEOUT), t.diagnosis())
    t.assertTrue(seen["post"] and seen["post"][0].upper().startswith(b"EHLO"),
                 f"after TLS the client must EHLO again, not act on the injected 250: {seen}")
    t.wait_queue_empty()


def check_R4(t):
    sh = t.smarthost()
    records = {"v6.example": {"MX": [(10, "mx.v6.example")]},
               "mx.v6.example": {"AAAA": ["2001:db8::dead"], "A": ["127.0.0.1"]}}
    with DnsStub(records=records) as dns:
        t.make(start=False)
        t.configure(dns.config_line() + "\n")
        route = t.inst.write("direct.route", f"tls = none\nsmtp_port = {sh.port}\nresolve_list = dns_mx\n")
        t.configure(f'permanent_routes = "{route}"\n')
        t.start()
        t0 = time.monotonic()
        t.sent_ok("-oi", "a@v6.example")
        sh.wait_for(1, TIMEOUT * 2)
        t.wait_queue_empty()
        t.outcome = f"delivered over IPv4 after the unreachable AAAA in {time.monotonic() - t0:.1f} s"


def check_R5(t):
    records = {"servfail.example": "SERVFAIL", "slow.example": {"MX": "TIMEOUT"}}
    with DnsStub(records=records) as dns:
        t.make(start=False)
        t.configure(dns.config_line() + "\n")
        route = t.inst.write("direct.route", "tls = none\nsmtp_port = 9\nresolve_list = dns_mx\n")
        t.configure(f'permanent_routes = "{route}"\n')
        t.start()
        for rcpt in ("a@servfail.example", "b@slow.example", "c@nxdomain-but-offline.example"):
            pass
        t.sent_ok("-oi", "a@servfail.example", "b@slow.example")
        for rcpt in ("a@servfail.example", "b@slow.example"):
            r = t.wait_deferred(rcpt)
            t.assertEqual(r["state"], "pending", r)
    # No network at all: the DNS server does not answer, the smarthost refuses.
    t.make(start=False)
    t.configure(f'dns_server = "127.0.0.1:{mmtest.free_port()}"\n')
    route = t.inst.write("direct.route", "tls = none\nsmtp_port = 9\nresolve_list = dns_mx\n")
    t.configure(f'permanent_routes = "{route}"\n')
    t.start()
    t.sent_ok("-oi", "-f", "alice", "x@offline.example")
    r = t.wait_deferred("x@offline.example")
    t.assertEqual(t.inst.mbox_messages("alice"), [], "offline mail bounced")


def check_R6(t):
    def script(c):
        c.send(b"220 hangs\r\n")
        if c.dialog(final=None) == "dot":
            c.server.hold.wait(TIMEOUT * 4)  # no reply to the final dot
    srv = t.hostile(script)
    sh = t.smarthost()
    t.make(start=False)
    hang = t.route("hang", srv.port, 'tls = none\nallowed_recipients = "stuck@remote.example"\n')
    t.configure(f'permanent_routes = "{hang};{t.route("good", sh.port)}"\n')
    t.start()
    t.sent_ok("-oi", "stuck@remote.example", stdin=b"Subject: hangs\n\nx\n")
    t.assertTrue(wait_for(lambda: srv.data_count >= 1, TIMEOUT), t.diagnosis())
    # While that connection hangs, other mail moves: local, and another route.
    t.sent_ok("-oi", "bob", stdin=b"Subject: local\n\nx\n")
    t.mbox("bob")
    t.sent_ok("-oi", "other@elsewhere.example", stdin=b"Subject: other route\n\nx\n")
    sh.wait_for(1, TIMEOUT)
    r = t.recipients().get("stuck@remote.example")
    t.assertIsNotNone(r, "the hung message was lost")
    t.assertEqual(r["state"], "pending", r)
    # Stopping the daemons ends the hung attempt; the message stays queued.
    t.stop_checked(t.inst)
    t.assertIn("stuck@remote.example", t.recipients(), t.diagnosis())
    t.inst.start()
    srv.hold.set()


def check_R7(t):
    sh = t.smarthost(drop_after_data=True)
    remote_instance(t, sh.port)
    t.sent_ok("-oi", "friend@remote.example", stdin=b"Subject: dropped\n\nx\n")
    r = t.wait_deferred("friend@remote.example")
    t.assertRegex(r["last_error"] or "", r"(?i)connection|closed|lost", r)
    sh.drop_after_data = False
    # Queue runs until a new connection is made (a worker keeps its failure while it lives).
    t.assertTrue(wait_for(lambda: t.send("-q").returncode == 0 and t.inst.mailq_json() == [], TIMEOUT, 2.5),
                 t.diagnosis())
    t.assertEqual(len(sh.messages), 2, "one copy per attempt: a duplicate, never a loss")


def check_R8(t):
    sh = t.smarthost(greeting_reply=(421, "4.7.0 Too many connections, slow down"))
    remote_instance(t, sh.port)
    t.stop_checked(t.inst)
    for i in range(3):
        t.sent_ok("-oi", "-odq", f"r{i}@remote.example")
    t.inst.start()
    for i in range(3):
        t.wait_deferred(f"r{i}@remote.example")
    first = sh.connections
    t.assertLessEqual(first, 1, f"3 messages, one 421: {first} connections")
    t.assertTrue(all(r["state"] == "pending" for r in t.recipients().values()), t.diagnosis())
    # 454 to MAIL on a fresh instance: every message deferred, one connection.
    sh2 = t.smarthost(mail_reply=(454, "4.7.0 Too many login attempts"))
    t.make(start=False)
    t.configure(f'permanent_routes = "{t.route("isp", sh2.port)}"\n')
    for i in range(3):
        t.sent_ok("-oi", "-odq", f"s{i}@remote.example")
    t.start()
    for i in range(3):
        t.wait_deferred(f"s{i}@remote.example")
    t.assertEqual(sh2.connections, 1, sh2.transcript_text())
    mails = len([l for l in sh2.log if l.line.upper().startswith("MAIL")])
    t.outcome = f"421: {first} connection(s) for 3 messages; 454 to MAIL: {mails} MAIL command(s)"


# --- the table --------------------------------------------------------------

Row = namedtuple("Row", "id input expected check")

TABLE = [
    Row("A1", "shell metacharacters in the sender, to a pipe alias and an MDA; LF in RCPT",
        "no shell: the address is one argv word / SENDER value; a control character is 5xx", check_A1),
    Row("A2", "-X file, -f '-X...', -f -oQ, -- -Cevil, MAIL FROM:<-oQ/tmp@...> to an MDA",
        "-X exit 64; a sender starting with '-' refused; after -- a recipient; one argv word", check_A2),
    Row("A3", "RCPT ../x, ../../etc/x, a/b, .hidden, .., %2e%2e, /abs/path; mailbox symlinked/hard-linked "
        "to a secret (a stand-in for /etc/shadow: privilege_test uses the real one)",
        "nothing written outside mail_dir; symlink and hard link refused, the target unchanged", check_A3),
    Row("A4", "-F with LF + Bcc:, -F with CR, -f with CR LF",
        "no injected header line; -f with CR/LF exit 64/65", check_A4),
    Row("A5", 'RCPT with CR LF, bare CR, NUL, LF in the address; front end with CR/LF',
        "5xx, nothing queued", check_A5),
    Row("A6", "local part 64/86/300/10000, domain 256, label 64",
        "64 and 86 accepted; the others 5xx; daemons alive", check_A6),
    Row("A7", "postmaster, PostMaster, quoted, [127.0.0.1], UTF-8 without SMTPUTF8, comment",
        "postmaster always; quoted and IP literal parsed; 8-bit and comments 5xx", check_A7),
    Row("A8", "alias loop, 10100-address fan-out, 26-deep chain, a |pipe address from SMTP",
        "each fails as a whole with a bounce; others delivered; no pipe run", check_A8),
    Row("Q1", "NUL/CR/DEL/0xFF in EHLO, MAIL, RCPT, ORCPT; odd -F and -f",
        "5xx for control bytes; legal odd values read back intact after a restart", check_Q1),
    Row("Q2", "spool on a full tmpfs (root): SMTP DATA and sendmail",
        "452 and exit 75, nothing queued; works again when space returns", check_Q2),
    Row("Q3", "SIGKILL of the in-process commit at fsync/rename/write (strace inject)",
        "either acknowledged and delivered whole, or absent; tmp/ emptied", check_Q3),
    Row("Q4", "qmgr SIGKILLed after the final dot, before the smarthost's 250",
        "delivered at least once, queue empties (a duplicate allowed)", check_Q4),
    Row("Q5", "truncated, bit-flipped and foreign files in queue/",
        "moved to corrupt/, logged, daemons alive, other mail delivered", check_Q5),
    Row("Q6", "12 queued messages, 5 concurrent runners (-qo and -q)",
        "each message sent exactly once", check_Q6),
    Row("Q7", "dot-lock of a dead pid; old empty dot-lock; supervisor SIGKILLed",
        "locks broken, mail delivered; restart after the crash works", check_Q7),
    Row("Q8", "spool modes; nobody writing maildrop/; symlink, hard link, FIFO, dir, junk in maildrop/",
        "no writable spool dir; nothing followed, nothing hangs, the secret never mailed", check_Q8),
    Row("Q9", "tmpfs/NFS: documented, not testable; a queued file with mtime a year ahead",
        "delivered", check_Q9),
    Row("C1", "unterminated quote, bad type, duplicate route, missing route file, bad interval, "
        "unknown key, CRLF, 0 bytes", "exit 78 with file:line for each (a missing route file: its path), -bd refuses (route files are "
        "read per queue run, so not for those); an unknown key is a "
        "file:line warning (documented: other versions' options); CRLF and 0 bytes no crash",
        check_C1),
    Row("C2", "auth_secret_file mode 0644; a system config owned by nobody",
        "the secret file refused (mail waits, no AUTH, delivered once 0600); a config owned by nobody "
        "is refused by --check-config and -bd with exit 78, as is a world-writable one", check_C2),
    Row("C3", "IFS, LD_*, TMPDIR, PATH in the env of -bd and sendmail; fds 0/1/2 closed; 5000 args",
        "deliveries get a clean env; no output in the message; no crash", check_C3),
    Row("C4", "online_query printing '  isp \\t', 'nosuch', 'is p', '../isp', ESC",
        "trimmed name used; others wait for a route (no bounce), logged without ESC", check_C4),
    Row("C5", "MX answer with a compression loop, CNAME loop, 100 MX hosts",
        "deferred 4.4.3; at most 20 hosts looked up; delivered through the big list", check_C5),
    Row("L1", "60 Received: lines by sendmail and SMTP; 49 lines",
        "exit 65 / 554 5.4.6; 49 accepted", check_L1),
    Row("L2", "MAIL FROM:<> to a failing pipe; postmaster failing too",
        "no bounce to <>, at most one to postmaster, queue empties", check_L2),
    Row("L3", "a stuck message (pipe exit 75), warn_intervals 2s;1h, a queue run every second",
        "exactly one warning", check_L3),
    Row("L4", "relay attempt from a non-loopback address; bounce of a 1.4 MB message",
        "550 at RCPT; the bounce is smaller than the message", check_L4),
    Row("L5", "local sender's bounce; remote sender's bounce to a smarthost refusing MAIL FROM:<>",
        "local bounce delivered locally, never via the smarthost; the refused one is not held but "
        "goes once to the local postmaster as a double bounce (nothing lost, no loop)", check_L5),
    Row("L6", "a bounce and a delay warning",
        "Return-Path <> and Auto-Submitted on each (we write auto-replied, as DSNs answer a message; "
        "auto-generated also accepted)", check_L6),
    Row("R1", "endless 250-, 5000-octet line, '2x0', 999, mixed codes, CR/NUL/ESC/0xFF in a 450",
        "each deferred; stored error text printable ASCII; daemons alive", check_R1),
    Row("R2", "self-signed certificate, tls = starttls, credentials set",
        "deferred, no AUTH and no MAIL sent", check_R2),
    Row("R3", "STARTTLS stripped; 250 appended after 220 STARTTLS",
        "deferred 4.7.0, no clear text; injected bytes discarded, EHLO again", check_R3),
    Row("R4", "AAAA 2001:db8::dead (no IPv6 route) and A 127.0.0.1",
        "falls back to A (sequential, not staggered: ENETUNREACH is immediate)", check_R4),
    Row("R5", "SERVFAIL, MX timeout, no DNS server at all",
        "deferred, never bounced", check_R5),
    Row("R6", "no reply after the final dot",
        "10-min timeout not configurable (unit test smtp_client_test covers it); meanwhile "
        "other mail moves and the message stays queued", check_R6),
    Row("R7", "connection closed after the final dot",
        "deferred, logged; the retry makes a duplicate, never a loss", check_R7),
    Row("R8", "421 greeting for 3 queued messages; 454 to MAIL",
        "421: one connection for the 3, all deferred; 454 to MAIL: all deferred over one connection "
        "(each message still tries its MAIL: the figure is printed)", check_R8),
]


def _method(row):
    def test(self):
        self.outcome = ""
        row.check(self)
        if self.outcome:
            print(f"# {row.id}: {self.outcome}", flush=True)
    test.__doc__ = f"{row.id}: {row.input} -> {row.expected}"
    return test


for _row in TABLE:
    setattr(Campaign, f"test_{_row.id}", _method(_row))


if __name__ == "__main__":
    mmtest.main()
