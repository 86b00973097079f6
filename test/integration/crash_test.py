# SPDX-License-Identifier: GPL-2.0-or-later
"""Crash test (DESIGN.md rule 1, issue 3 "Proof", issue 7 campaign 1).

A private instance with its daemons running takes a stream of submissions:
several concurrent `sendmail` front ends and SMTP clients (smtplib) on the
instance's listener, each message with a unique token in its Subject and body
and an end marker as its last body line, for mbox and Maildir recipients and
a remote one (far@remote.example) that a permanent route sends to Postfix's
smtp-sink on 127.0.0.1, which dumps each message it accepted after the final
dot to a file of its own. Meanwhile a killer sends SIGKILL at random moments
to a random victim: a sendmail front end, enqueue, qmgr, local-deliver (with
its delivery processes), only local-deliver's delivery processes (a worker
caught in the middle of an mbox or Maildir write), smtp-listener,
route-selector, remote-deliver, only remote-deliver's workers (its SMTP
clients, perhaps in mid-DATA or waiting for the reply to the dot), or the
whole process tree at once. A daemon killed young would be restarted by the supervisor only after
its backoff, so then the whole instance is killed and started again
(Instance.start()) after a random pause; that is what makes many kills in one
run possible. Some sendmail front ends are killed after only half of their
stdin was written (stdin never closed), and some SMTP clients drop the
connection in the middle of DATA: those messages must never be delivered.

At the end the instance is stopped and started once more and the queue run
(`masqmail -q`) until it is empty. Then: every acknowledged message (sendmail
exited 0, or the 250 after DATA was read) is in each of its recipients'
mailboxes (and the sink) at least once; no token of a half-sent message is in
any file under mail_dir or the sink's dumps; every mbox parses and each of its
messages, each Maildir file in new/ or cur/ and each sink dump carries exactly
the body that was sent (so it ends with the end marker) and went to a
recipient it was addressed to; tmp/ holds nothing older
than the restart; the spool is empty; nothing was quarantined in corrupt/.
Every check is made and all failures are reported together, with the kills
and log lines around each message concerned. Counts (kills per victim,
acknowledged, delivered, duplicates, delivered but unacknowledged, per
destination) are printed as TAP comments. The normal run makes at least 500
kills (about 3-5 minutes); under sanitizers 15.

`crash_test.py --long` or MM_CRASH_LONG=1 runs a longer campaign;
MM_CRASH_VICTIMS=sendmail,qmgr,... kills only those kinds of victim.

The mbox dot-lock of a killed delivery process would block its mailbox for
stale_lock (300 s); the test ages leftover dot-locks after a kill so that
local-deliver's own stale-lock rule removes them at once (the fcntl lock it
also takes still keeps two writers apart)."""

import collections
import fcntl
import pwd
import shutil
import os
import random
import re
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import unittest

import mmtest
from mmtest import MASQMAIL, Instance, wait_for

LONG = "--long" in sys.argv[1:] or os.environ.get("MM_CRASH_LONG", "") not in ("", "0")
if "--long" in sys.argv:
    sys.argv.remove("--long")

STREAM_SECONDS = 600 if LONG else 60    # submissions are started and victims killed this long,
MIN_KILLS = 2000 if LONG else 500       # and longer until this many victims were killed,
STREAM_CAP = 900 if LONG else 300       # but never longer than this (then too few kills fail)
if mmtest.SANITIZED and not LONG:
    # Several times slower under ASan: the normal build makes the kill
    # count; this run looks for memory errors on the recovery paths.
    STREAM_SECONDS, MIN_KILLS, STREAM_CAP = 34, 15, 90
SENDMAIL_THREADS = 4                    # each runs one sendmail at a time
SMTP_THREADS = 1                        # each runs one SMTP session at a time (1-3 messages)
HALF_FRACTION = 0.12                    # submissions abandoned in the middle of the message
KILL_GAP = (0.005, 0.06)                # seconds between two kills
DAEMON_DOWN = (0.0, 1.0)                # a daemon killed young stays dead this long, then the instance restarts
WORKER_WAIT = 1.5                       # seconds to wait for a delivery process to appear
SUBMIT_TIMEOUT = 60                     # one sendmail or SMTP transaction
DRAIN_SECONDS = 60                      # masqmail -q until the queue is empty, at most this long
SUPERVISOR_QUICK = 11.0                 # the supervisor backs off a daemon dying younger than 10 s

MBOX_BOXES = ("bob", "carol")
MAILDIR_BOXES = ("dora", "erin")
SINK = "sink"                           # the remote recipient: a permanent route to smtp-sink
SINK_ADDRESS = "far@remote.example"
SMTP_SINK = "/usr/sbin/smtp-sink"
BOXES = MBOX_BOXES + MAILDIR_BOXES + (SINK,)
DAEMONS = ("enqueue", "qmgr", "local-deliver", "smtp-listener", "route-selector", "remote-deliver")
VICTIMS = {                             # kind -> weight
    "sendmail": 4.0,
    "enqueue": 0.8,
    "qmgr": 0.8,
    "local-deliver": 0.8,
    "workers": 3.0,
    "smtp-listener": 0.5,
    "remote-deliver": 0.8,
    "remote-workers": 3.0,              # remote-deliver's SMTP client processes, perhaps in mid-DATA
    "route-selector": 0.3,
    "tree": 0.5,
}
# MM_CRASH_VICTIMS=enqueue,qmgr,... restricts the kinds of victims (to look into one at a time).
if os.environ.get("MM_CRASH_VICTIMS"):
    VICTIMS = {k: w for k, w in VICTIMS.items() if k in os.environ["MM_CRASH_VICTIMS"].split(",")}


def address(box, smtp):
    """The address a submission gives for a mailbox (sendmail: the bare local name)."""
    if box == SINK:
        return SINK_ADDRESS
    return f"{box}@test.example" if smtp else box


def note(text):
    print("# " + text.replace("\n", "\n# "), flush=True)


# --- processes ---

def proc_stat(pid):
    """(ppid, pgrp, start time in clock ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def process_age(pid):
    st = proc_stat(pid)
    if st is None:
        return None
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - st[2] / os.sysconf("SC_CLK_TCK")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def descendants(pid):
    found, todo = [], children(pid)
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children(p))
    return found


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def pipe_unread(fd):
    """Bytes written to a pipe and not yet read by the other end."""
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


# --- messages ---

END = "END-OF-MESSAGE"


def body_lines(token, nlines):
    """The body of a message as lines without line ends; deterministic, so the
    checks can rebuild it. It has a line that an mbox must quote, a lone dot
    (kept by -oi, dot-stuffed by SMTP) and the end marker as its last line."""
    fill = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    lines = []
    for n in range(nlines):
        if n == 2:
            lines.append(f"From the middle of {token}")
        elif n == 4:
            lines.append(".")
        else:
            k = n % len(fill)
            lines.append(f"{token} line {n:05d} {fill[k:] + fill[:k]}")
    lines.append(f"{END} {token}")
    return lines


def expected_body(token, nlines, mbox):
    lines = body_lines(token, nlines)
    if mbox:
        lines = [">" + l if l.startswith("From ") else l for l in lines]
    return ("\n".join(lines) + "\n").encode()


class Stream:
    """What was submitted: token -> record, all under one lock."""

    def __init__(self, run):
        self.run = run
        self.lock = threading.Lock()
        self.records = {}
        self.next = 0
        self.rng = random.Random()

    def new(self, via):
        with self.lock:
            i = self.next
            self.next += 1
            rcpts = self.rng.sample(BOXES, self.rng.choice((1, 1, 2)))
            # Mostly a few KiB; some of up to ~200 KiB so that a write takes a while.
            nlines = self.rng.randint(20, 200) if self.rng.random() < 0.7 else self.rng.randint(500, 2800)
            token = f"crash-{self.run}-{i:05d}"
            rec = {"token": token, "via": via, "rcpts": rcpts, "nlines": nlines,
                   "state": "pending", "qid": None, "detail": "",
                   "t0": time.time(), "t1": None}
            self.records[token] = rec
            return rec

    def finish(self, rec, state, qid=None, detail=""):
        with self.lock:
            rec.update(state=state, qid=qid, detail=detail, t1=time.time())

    def tokens(self, state):
        with self.lock:
            return {t for t, r in self.records.items() if r["state"] == state}


def clock(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


class CrashDuringSubmissions(unittest.TestCase):
    def setUp(self):
        if not os.access(SMTP_SINK, os.X_OK):
            self.skipTest("smtp-sink (package postfix) is not installed")
        self.inst = Instance(f'maildir_users = "{";".join(MAILDIR_BOXES)}"\n')
        self.addCleanup(self.inst.close)
        self.start_sink()
        self.stream = Stream("%08x" % random.getrandbits(32))
        self.lock = threading.Lock()
        self.live = {}                      # pid -> Popen of a sendmail sending a whole message
        self.kills = collections.Counter()  # chosen victims
        self.extra = collections.Counter()  # restarts after a kill, torn mailboxes seen, ...
        self.events = []                    # (time, what) of every kill and restart
        self.stop = threading.Event()
        self.thread_errors = []
        self.restart_due = None             # monotonic time of the restart after daemon kills
        self.in_backoff = set()             # daemons killed young since the last restart

    def start_sink(self):
        """smtp-sink on 127.0.0.1, each message it takes (after the final dot)
        dumped to a file of its own in self.sink_dir; a permanent route to it."""
        top = tempfile.mkdtemp(prefix="mm-sink-")
        self.addCleanup(shutil.rmtree, top, True)
        os.chmod(top, 0o755)
        self.sink_dir = os.path.join(top, "dump")
        os.mkdir(self.sink_dir)
        user = []
        if os.geteuid() == 0:   # smtp-sink refuses to run as root without -u
            nobody = pwd.getpwnam("nobody")
            os.chown(self.sink_dir, nobody.pw_uid, nobody.pw_gid)
            user = ["-u", "nobody"]
        port = mmtest.free_port()
        p = subprocess.Popen([SMTP_SINK, *user, "-d", self.sink_dir + "/m.", f"127.0.0.1:{port}", "256"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def stop():
            p.terminate()
            p.wait(10)
            p.stderr.close()
        self.addCleanup(stop)

        def listening():
            try:
                with socket.create_connection(("127.0.0.1", port), 1):
                    return True
            except OSError:
                return p.poll() is not None
        self.assertTrue(wait_for(listening, 20), "smtp-sink does not listen")
        self.assertIsNone(p.poll(), p.stderr.read() if p.poll() is not None else "")
        route = self.inst.write("sink.route", f'mail_host = "127.0.0.1:{port}"\ntls = none\n')
        with open(self.inst.conf, "a") as f:
            f.write(f'permanent_routes = "{route}"\n')

    # --- the instance's processes ---

    def event(self, what):
        with self.lock:
            self.events.append((time.time(), what))

    def supervisor(self):
        pid = self.inst.daemon_pid()
        if pid is None or proc_stat(pid) is None:
            return None
        return pid if self.inst.conf in mmtest.proc_cmdline(pid) else None

    def daemon(self, name, sup=None):
        sup = sup or self.supervisor()
        if sup is None:
            return None
        for pid in children(sup):
            argv = mmtest.proc_cmdline(pid)
            if argv and argv[0] == name:
                return pid
        return None

    def group(self, pgid):
        """{pid: argv} of the live processes in process group pgid (an instance's
        supervisor, its daemons, and their children, orphans included).
        The stat file is read, not the command line, which a process that
        is exiting (its descriptors not yet closed) has already lost."""
        found = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = proc_stat(name)
                if st is not None and st[1] == pgid:
                    found[int(name)] = mmtest.proc_cmdline(name)
        return found

    def age_dot_locks(self):
        """Makes the mbox dot-locks old enough for local-deliver's stale-lock rule."""
        old = time.time() - 3600
        for name in os.listdir(self.inst.path("mail")):
            if name.endswith(".lock"):
                try:
                    os.utime(self.inst.path("mail", name), (old, old))
                    self.extra["dot-locks aged"] += 1
                except FileNotFoundError:
                    pass

    def restart_instance(self, why):
        """SIGKILL to the whole process tree at once, then masqmail -bd again."""
        sup = self.supervisor()
        killed = ""
        if sup is not None:
            members = self.group(sup)
            main = {os.path.basename(members[pid][0]): pid for pid in children(sup)
                    if members.get(pid) and os.path.basename(members[pid][0]) in DAEMONS}
            killed = (f" supervisor {sup}, " + ", ".join(f"{n} {p}" for n, p in sorted(main.items()))
                      + f", {len(members) - len(main) - 1} other processes")
            try:
                os.killpg(sup, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not wait_for(lambda: not self.group(sup), 10, 0.005):
                raise AssertionError(f"processes of the killed tree survive: {self.group(sup)}")
        torn = self.mailbox_torn()
        self.age_dot_locks()
        self.event(f"tree killed ({why}):{killed}; restarting"
                   + (f"; mbox {','.join(torn)} ends mid-message" if torn else ""))
        self.inst.start()
        self.restart_due = None
        self.in_backoff.clear()
        self.event("instance started")

    def kill_local_deliver_processes(self, keep=None, killed=()):
        """Kills every process named local-deliver of the instance except `keep`
        (local-deliver itself) and the children of a local-deliver started
        meanwhile; a few passes catch a worker forked between scan and kill.
        `killed`: pids already killed. Returns how many were killed here."""
        sup = self.supervisor()
        if sup is None:
            return 0
        killed = set(killed)
        before = len(killed)
        for _ in range(4):
            fresh = self.daemon("local-deliver", sup)
            spare = {keep}
            if fresh is not None and fresh not in killed and fresh != keep:
                spare |= {fresh, *descendants(fresh)}
            victims = [pid for pid, argv in self.group(sup).items()
                       if argv and argv[0] == "local-deliver" and pid not in spare and pid not in killed]
            if not victims:
                break
            for pid in victims:
                if kill(pid):
                    killed.add(pid)
        return len(killed) - before

    def mailbox_torn(self):
        """Names of mailboxes whose mbox ends in the middle of a message now
        (right after a kill of delivery processes: they were cut short)."""
        torn = []
        for box in MBOX_BOXES:
            try:
                with open(self.inst.path("mail", box), "rb") as f:
                    f.seek(0, os.SEEK_END)
                    size = f.tell()
                    f.seek(max(0, size - 200))
                    tail = f.read()
            except FileNotFoundError:
                continue
            if size and not re.search(rb"\n" + END.encode() + rb" crash-\w+-\d+\n\n\Z", tail):
                torn.append(box)
        if torn:
            self.extra["kills leaving an mbox torn"] += 1
        return torn

    # --- the killer ---

    def killer(self):
        try:
            rng = random.Random()
            kinds, weights = zip(*VICTIMS.items())
            while not self.stop.wait(rng.uniform(*KILL_GAP)):
                if self.restart_due is not None and time.monotonic() >= self.restart_due:
                    self.extra["restarts after daemon kills"] += 1
                    self.restart_instance(f"{', '.join(sorted(self.in_backoff))} in backoff")
                    continue
                self.kill_one(rng, rng.choices(kinds, weights)[0])
        except BaseException as e:
            with self.lock:
                self.thread_errors.append("killer: " + repr(e))
            self.stop.set()

    def kill_one(self, rng, kind):
        if kind == "sendmail":
            with self.lock:
                live = list(self.live.items())
            if live:
                pid, p = rng.choice(live)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)   # no-op once Popen has reaped it
                    self.kills[kind] += 1
                    self.event(f"sendmail {pid} killed")
            return
        if kind == "tree":
            self.kills[kind] += 1
            self.restart_instance("chosen")
            return
        if kind == "workers":
            self.kill_workers(rng)
            return
        if kind == "remote-workers":
            self.kill_remote_workers(rng)
            return
        sup = self.supervisor()
        pid = self.daemon(kind, sup)
        if pid is None:
            return
        age = process_age(pid) or 0.0
        if kind == "local-deliver":
            # local-deliver first, so that it starts no more children, then
            # its delivery processes, which would otherwise finish their write.
            if not kill(pid):
                return
            n = self.kill_local_deliver_processes(killed={pid})
            torn = self.mailbox_torn()
            self.event(f"local-deliver {pid} killed (age {age:.1f} s) with {n} delivery processes"
                       + (f"; mbox {','.join(torn)} ends mid-message" if torn else ""))
            self.age_dot_locks()
        else:
            if not kill(pid):
                return
            self.event(f"{kind} {pid} killed (age {age:.1f} s)")
        self.kills[kind] += 1
        if age >= SUPERVISOR_QUICK and wait_for(
                lambda: self.daemon(kind, sup) not in (None, pid), 3):
            self.event(f"{kind} restarted by the supervisor")
            return
        # The supervisor would wait (backoff): let the instance run without the
        # daemon for a moment (other victims are killed meanwhile, perhaps
        # more daemons), then kill everything and start again.
        self.in_backoff.add(kind)
        if self.restart_due is None:
            self.restart_due = time.monotonic() + rng.uniform(*DAEMON_DOWN)

    def kill_workers(self, rng):
        """SIGKILL to local-deliver's delivery processes (its children and
        their workers) as soon as there are some, perhaps in mid-write."""
        main = self.daemon("local-deliver")
        if main is None:
            return
        deadline = time.monotonic() + WORKER_WAIT
        while not [c for c in children(main) if proc_stat(c) is not None]:
            if time.monotonic() > deadline or self.stop.is_set():
                return
            time.sleep(0.001)
        # At once, or a little later (the worker may be writing or fsyncing).
        if rng.random() < 0.6:
            time.sleep(rng.uniform(0, 0.004))
        n = self.kill_local_deliver_processes(keep=main)
        if n == 0:
            return
        self.kills["workers"] += 1
        torn = self.mailbox_torn()
        self.event(f"{n} delivery processes of local-deliver {main} killed"
                   + (f"; mbox {','.join(torn)} ends mid-message" if torn else ""))
        self.age_dot_locks()

    def kill_remote_workers(self, rng):
        """SIGKILL to remote-deliver's workers (its SMTP clients), as soon as
        there is one: it may be dialling, in the middle of DATA, or waiting
        for the reply to the final dot (a duplicate later, never a loss)."""
        sup = self.supervisor()
        main = self.daemon("remote-deliver", sup)
        if main is None:
            return
        deadline = time.monotonic() + WORKER_WAIT
        while not [c for c in children(main) if proc_stat(c) is not None]:
            if time.monotonic() > deadline or self.stop.is_set():
                return
            time.sleep(0.001)
        if rng.random() < 0.6:
            time.sleep(rng.uniform(0, 0.01))
        victims = [c for c in children(main) if proc_stat(c) is not None]
        n = sum(1 for c in victims if kill(c))
        if n == 0:
            return
        self.kills["remote-workers"] += 1
        self.event(f"{n} workers of remote-deliver {main} killed: {victims}")

    # --- the submitters ---

    def guarded(self, fn, *args):
        try:
            fn(*args)
        except BaseException as e:  # reported by the test, not lost in a thread
            with self.lock:
                self.thread_errors.append(f"{fn.__name__}: {e!r}")
            self.stop.set()

    def sendmail_stream(self):
        rng = random.Random()
        while not self.stop.is_set():
            rec = self.stream.new("sendmail")
            token = rec["token"]
            text = (f"Subject: {token}\nX-Token: {token}\n\n"
                    + "\n".join(body_lines(token, rec["nlines"])) + "\n").encode()
            p = subprocess.Popen([MASQMAIL, "-C", self.inst.conf, "-oi", "-v",
                                  *(address(r, False) for r in rec["rcpts"])],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            if rng.random() < HALF_FRACTION:
                self.half_sendmail(rng, p, rec, text)
                continue
            with self.lock:
                self.live[p.pid] = p
            try:
                _, err = p.communicate(text, timeout=SUBMIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            with self.lock:
                del self.live[p.pid]
            err = err.decode(errors="replace").strip()
            found = re.search(r"queued as (\S+)", err)
            if p.returncode == 0:
                self.stream.finish(rec, "acked", found and found.group(1), err)
            else:
                self.stream.finish(rec, "unacked", None, f"exit {p.returncode}: {err}")

    def half_sendmail(self, rng, p, rec, text):
        """Writes part of the message, waits until sendmail has read it, and
        kills it: stdin is never closed while it lives."""
        cut = int(len(text) * rng.uniform(0.2, 0.8))
        try:
            p.stdin.write(text[:cut])
            p.stdin.flush()
            wait_for(lambda: pipe_unread(p.stdin.fileno()) == 0, 2, 0.002)
        except BrokenPipeError:
            pass
        time.sleep(rng.uniform(0, 0.05))
        alive = p.poll() is None
        p.kill()
        p.wait()
        err = p.stderr.read().decode(errors="replace").strip()
        p.stderr.close()
        try:
            p.stdin.close()
        except BrokenPipeError:
            pass
        self.extra["sendmail killed in mid-stdin" if alive else "half-sendmail died by itself"] += 1
        self.stream.finish(rec, "half", None, f"{cut} of {len(text)} bytes, rc {p.returncode} {err}")

    def smtp_text(self, rec):
        token = rec["token"]
        to = ", ".join(address(r, True) for r in rec["rcpts"])
        return (f"From: tester@test.example\nTo: {to}\nSubject: {token}\nX-Token: {token}\n\n"
                + "\n".join(body_lines(token, rec["nlines"])) + "\n")

    def smtp_stream(self):
        rng = random.Random()
        while not self.stop.is_set():
            if rng.random() < HALF_FRACTION:
                self.half_smtp(rng)
                continue
            try:
                s = smtplib.SMTP("127.0.0.1", self.inst.port, timeout=SUBMIT_TIMEOUT)
                s.ehlo("client.test.example")
            except (OSError, smtplib.SMTPException):
                self.extra["smtp connections failed"] += 1
                time.sleep(0.02)
                continue
            try:
                for _ in range(rng.randint(1, 3)):
                    rec = self.stream.new("smtp")
                    if not self.smtp_one(s, rec):
                        break
            finally:
                try:
                    s.quit()
                except (OSError, smtplib.SMTPException):
                    pass
                s.close()

    def smtp_one(self, s, rec):
        """One transaction: acknowledged only when DATA's final reply is 250."""
        try:
            code, msg = s.mail("tester@test.example")
            if code != 250:
                raise smtplib.SMTPException(f"MAIL: {code} {msg!r}")
            for r in rec["rcpts"]:
                code, msg = s.rcpt(address(r, True))
                if code not in (250, 251):
                    raise smtplib.SMTPException(f"RCPT: {code} {msg!r}")
            code, msg = s.data(self.smtp_text(rec))
        except (OSError, smtplib.SMTPException) as e:
            self.stream.finish(rec, "unacked", None, repr(e))
            return False
        if code != 250:
            self.stream.finish(rec, "unacked", None, f"DATA: {code} {msg!r}")
            return False
        found = re.search(rb"id=(\S+)", msg)
        self.stream.finish(rec, "acked", found and found.group(1).decode(), msg.decode(errors="replace"))
        return True

    def half_smtp(self, rng):
        """A client that goes away in the middle of DATA (a plain close or a RST)."""
        rec = self.stream.new("smtp")
        wire = "".join(("." + l if l.startswith(".") else l) + "\r\n"
                       for l in self.smtp_text(rec).split("\n")[:-1]).encode()
        cut = int(len(wire) * rng.uniform(0.2, 0.8))
        how = "nothing sent"
        try:
            with socket.create_connection(("127.0.0.1", self.inst.port), timeout=SUBMIT_TIMEOUT) as c:
                f = c.makefile("rb")

                def reply():
                    while True:
                        line = f.readline()
                        if len(line) < 4:
                            raise OSError(f"connection closed: {line!r}")
                        if line[3:4] != b"-":
                            return int(line[:3])

                steps = [b"EHLO client.test.example\r\n", b"MAIL FROM:<tester@test.example>\r\n"]
                steps += [f"RCPT TO:<{address(r, True)}>\r\n".encode() for r in rec["rcpts"]]
                if reply() != 220:
                    raise OSError("no greeting")
                for cmd in steps:
                    c.sendall(cmd)
                    if reply() not in (250, 251):
                        raise OSError(f"refused: {cmd!r}")
                c.sendall(b"DATA\r\n")
                if reply() != 354:
                    raise OSError("DATA refused")
                c.sendall(wire[:cut])
                time.sleep(rng.uniform(0, 0.05))
                if rng.random() < 0.5:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    how = "reset in DATA"
                else:
                    how = "closed in DATA"
                f.close()
        except OSError as e:
            how += f" ({e})"
        self.extra["smtp " + how.split(" (")[0]] += 1
        self.stream.finish(rec, "half", None, f"{how}; {cut} of {len(wire)} bytes")

    # --- the checks ---

    def log_for(self, tokens, limit=40):
        """Log lines about the queue ids of these tokens."""
        qids = {self.stream.records[t]["qid"] for t in tokens} - {None}
        lines = [l for l in self.inst.log_text().splitlines() if any(q in l for q in qids)]
        return "\n".join(lines[-limit:])

    def events_around(self, t0, t1, margin=1.0):
        with self.lock:
            return "\n".join(f"  {clock(t)} {w}" for t, w in self.events if t0 - margin <= t <= t1 + margin)

    def evidence(self, tokens, limit=5):
        out = []
        for t in sorted(tokens)[:limit]:
            r = self.stream.records.get(t)
            if r is None:
                out.append(f"{t}: never submitted")
                continue
            out.append(f"{t}: via {r['via']} to {r['rcpts']}, {r['state']} ({r['detail'][:200]}), "
                       f"qid {r['qid']}, submitted {clock(r['t0'])}-{clock(r['t1'] or r['t0'])}")
            out.append(self.events_around(r["t0"], r["t1"] or r["t0"]))
            out.append(self.log_for([t]))
        return "\n".join(out)

    def spool_evidence(self, left):
        """The kills of the processes whose pid a leftover file's name carries
        (NAME.PID.tmp), and the log lines about its queue id."""
        out = []
        for names in left.values():
            for name in names[:5]:
                found = re.match(r"(\d+\.[0-9a-f]+)\..*?\.(\d+)\.tmp$", name)
                if not found:
                    continue
                qid, pid = found.groups()
                with self.lock:
                    kills = [f"  {clock(t)} {w}" for t, w in self.events if re.search(rf"\b{pid}\b", w)]
                out.append(f"{name}: written by pid {pid}; kills of that pid:\n" + "\n".join(kills))
                out.append("\n".join(l for l in self.inst.log_text().splitlines() if qid in l)[-2000:])
        return "\n".join(out)

    def fragment_log(self, data, box):
        """The log lines of the second the From_ line of a fragment names that
        deferred a delivery to its mailbox (the attempt that was cut short)."""
        found = re.match(rb"From \S+ .* (\d\d:\d\d:\d\d) \d{4}\n", data)
        if not found:
            return ""
        when = found.group(1).decode()
        lines = [l for l in self.inst.log_text().splitlines()
                 if f" {when} " in l and f"<{box}@" in l and "deferred" in l]
        with self.lock:
            kills = [f"{clock(t)} {w}" for t, w in self.events if clock(t).startswith(when)]
        return "".join(f"\n  kill: {k}" for k in kills) + "".join(f"\n  log: {l}" for l in lines[:6])

    def where_else(self, token, box):
        """Where a copy that is not a message of its mailbox can be found."""
        if box == SINK:
            for name in sorted(os.listdir(self.sink_dir)):
                with open(os.path.join(self.sink_dir, name), "rb") as f:
                    if f"\nSubject: {token}\n".encode() in f.read():
                        return f" (in the sink's {name}, but not as the message sent)"
            return " (not in the sink)"
        path = self.inst.path("mail", box)
        if box in MBOX_BOXES and os.path.isfile(path):
            with open(path, "rb") as f:
                data = f.read()
            needle = f"\nSubject: {token}\n".encode()
            at = data.find(needle)
            while at >= 0:
                start = data.rfind(b"From ", 0, at)
                if start > 0 and data[start - 1:start] != b"\n":
                    return (f" (in the mbox, but its From_ line at byte {start} does not start a line: "
                            f"glued onto the fragment before it, {data[max(0, start - 80):start + 5]!r})")
                at = data.find(needle, at + 1)
            if data.find(needle) >= 0:
                return f" (in the mbox at byte {data.find(needle)}, but not as a message of its own)"
        for root, _, files in os.walk(path) if os.path.isdir(path) else []:
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    if f"\nSubject: {token}\n".encode() in f.read():
                        return f" (only in {os.path.relpath(os.path.join(root, name), self.inst.path('mail'))})"
        return " (nowhere)"

    def parse_message(self, data, box, where):
        """(token, ok, why) of one delivered copy (an mbox message or a Maildir file)."""
        head, sep, body = data.partition(b"\n\n")
        found = re.search(rb"^Subject: (crash-\w+-\d+)$", head, re.M)
        if not sep or not found:
            return None, False, (f"{where}: a fragment ({len(data)} bytes, no header with a token): "
                                 f"{data[:300]!r}" + self.fragment_log(data, box))
        token = found.group(1).decode()
        rec = self.stream.records.get(token)
        if rec is None:
            return token, False, f"{where}: {token} was never submitted"
        if box not in rec["rcpts"]:
            return token, False, f"{where}: {token} was addressed to {rec['rcpts']}, not {box}"
        mbox = box in MBOX_BOXES
        # An mbox message and a smtp-sink dump end with an empty line.
        want = expected_body(token, rec["nlines"], mbox) + (b"\n" if mbox or box == SINK else b"")
        if body != want:
            if mbox and body == want[:-1]:
                return token, False, (f"{where}: {token} lacks the empty line that ends an mbox message "
                                      "(its write was cut short after the body)")
            glued = [t.decode() for t in re.findall(rb"\nSubject: (crash-\w+-\d+)\n", body)]
            return token, False, (f"{where}: {token} is not the message sent ({len(body)} bytes of body, "
                                  f"{len(want)} expected)"
                                  + (f"; it is cut short and {', '.join(glued)} glued onto it" if glued else "")
                                  + f": ...{body[-160:]!r}")
        return token, True, ""

    def test_acknowledged_mail_survives_kill_9(self):
        inst = self.inst
        inst.start()
        self.addCleanup(inst.stop)
        start = time.monotonic()
        threads = [threading.Thread(target=self.guarded, args=(self.sendmail_stream,), daemon=True)
                   for _ in range(SENDMAIL_THREADS)]
        threads += [threading.Thread(target=self.guarded, args=(self.smtp_stream,), daemon=True)
                    for _ in range(SMTP_THREADS)]
        killer = threading.Thread(target=self.killer, daemon=True)
        for t in threads + [killer]:
            t.start()
        while not self.stop.wait(0.1):
            elapsed = time.monotonic() - start
            if elapsed >= STREAM_CAP or (elapsed >= STREAM_SECONDS and sum(self.kills.values()) >= MIN_KILLS):
                break
        self.stop.set()
        killer.join(timeout=60)
        for t in threads:
            t.join(timeout=SUBMIT_TIMEOUT + 30)
        stream_time = time.monotonic() - start
        self.assertFalse(killer.is_alive() or any(t.is_alive() for t in threads), "a thread hangs")
        self.assertEqual(self.thread_errors, [])

        # Stop, start once more (tmp/ is cleaned), and run the queue until it is empty.
        self.assertTrue(inst.stop(), "the daemons did not stop:\n" + inst.log_text()[-4000:])
        self.age_dot_locks()
        restart = time.time()
        inst.start()
        tmp = inst.path("spool", "tmp")

        def stale_tmp():
            out = []
            for n in os.listdir(tmp):
                try:
                    if os.lstat(os.path.join(tmp, n)).st_mtime < restart:
                        out.append(n)
                except FileNotFoundError:
                    pass
            return out
        problems = []   # every check is made; the test fails at the end with all of them
        wait_for(lambda: not stale_tmp(), 5)
        if stale_tmp():
            problems.append(f"files older than the restart left in spool/tmp: {stale_tmp()}")
        drain_start = time.monotonic()
        runs, queued = 0, None
        while time.monotonic() - drain_start < DRAIN_SECONDS:
            runs += 1
            r = inst.masqmail("-q", timeout=max(5, DRAIN_SECONDS - (time.monotonic() - drain_start)))
            queued = inst.mailq_json()
            if r.returncode != 0:
                problems.append(f"masqmail -q exited {r.returncode}: {r.stderr!r}")
                break
            if not queued:
                break
            time.sleep(0.2)
        drain_time = time.monotonic() - drain_start
        self.assertTrue(inst.stop(), "the daemons did not stop after the queue runs")
        if queued:
            problems.append(f"{len(queued)} messages still queued after {runs} queue runs in "
                            f"{drain_time:.1f} s: {queued[:3]}")

        # The spool: nothing half-written left behind, nothing quarantined.
        spool_left = {d: sorted(os.listdir(inst.path("spool", d)))
                      for d in ("tmp", "new", "queue", "hold", "maildrop")
                      if os.path.isdir(inst.path("spool", d)) and os.listdir(inst.path("spool", d))}
        if spool_left and not queued:
            problems.append(f"files left in the spool after the queue emptied: {spool_left}\n"
                            + self.spool_evidence(spool_left))
        corrupt = sorted(os.listdir(inst.path("spool", "corrupt")))
        if corrupt:
            problems.append(f"quarantined files: {corrupt}\n" + "\n".join(
                l for l in inst.log_text().splitlines() if "corrupt" in l or any(c in l for c in corrupt)))

        # The mailboxes.
        failures = []
        delivered = collections.Counter()   # (token, box) -> copies
        mail = inst.path("mail")
        unexpected = [n for n in os.listdir(mail) if n not in BOXES and not n.endswith(".lock")]
        if unexpected:
            failures.append(f"unexpected entries in mail_dir: {unexpected}: "
                            + " ".join(repr(open(os.path.join(mail, n), "rb").read()[:600])
                                       for n in unexpected if os.path.isfile(os.path.join(mail, n))))
        copies = 0
        bad_tokens = set()
        for box in MBOX_BOXES:
            if os.path.lexists(os.path.join(mail, box)) and not os.path.isfile(os.path.join(mail, box)):
                failures.append(f"the mbox {box} is not a file")
                continue
            data = inst.read_mbox(box)
            try:
                messages = mmtest.split_mbox(data)
            except ValueError as e:
                failures.append(f"mbox {box}: {e}")
                continue
            for n, m in enumerate(messages):
                token, good, why = self.parse_message(m, box, f"mbox {box} message {n + 1}")
                if good:
                    delivered[(token, box)] += 1
                    copies += 1
                else:
                    failures.append(why)
                    if token:
                        bad_tokens.add(token)
        maildir_tmp = 0
        for box in MAILDIR_BOXES:
            if os.path.lexists(os.path.join(mail, box)) and not os.path.isdir(os.path.join(mail, box)):
                failures.append(f"the Maildir {box} is not a directory")
            for sub in ("new", "cur"):
                d = os.path.join(mail, box, sub)
                for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                    with open(os.path.join(d, name), "rb") as f:
                        data = f.read()
                    token, good, why = self.parse_message(data, box, f"{box}/{sub}/{name}")
                    if good and data.startswith(b"From "):
                        good, why = False, f"{box}/{sub}/{name}: a From_ line in a Maildir file"
                    if good:
                        delivered[(token, box)] += 1
                        copies += 1
                    else:
                        failures.append(why)
                        if token:
                            bad_tokens.add(token)
            d = os.path.join(mail, box, "tmp")
            maildir_tmp += len(os.listdir(d)) if os.path.isdir(d) else 0
        # smtp-sink's dumps: one file per transaction it answered 250 after the final dot.
        for name in sorted(os.listdir(self.sink_dir)):
            with open(os.path.join(self.sink_dir, name), "rb") as f:
                data = f.read()
            token, good, why = self.parse_message(data, SINK, f"sink dump {name}")
            head = data.partition(b"\n\n")[0]
            rcpts = re.findall(rb"^X-Rcpt-Args: <([^>]*)>", head, re.M)
            if good and rcpts != [SINK_ADDRESS.encode()]:
                good, why = False, f"sink dump {name}: {token} sent to {rcpts}, not [{SINK_ADDRESS}]"
            if good:
                delivered[(token, SINK)] += 1
                copies += 1
            else:
                failures.append(why)
                if token:
                    bad_tokens.add(token)

        # No token of a half-sent message anywhere under mail_dir, not even in a fragment.
        half = self.stream.tokens("half")
        half_seen = collections.defaultdict(list)
        pattern = re.compile(rb"crash-" + self.stream.run.encode() + rb"-\d{5}")
        for root, _, files in [*os.walk(mail), *os.walk(self.sink_dir)]:
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    for t in set(pattern.findall(f.read())):
                        if t.decode() in half:
                            half_seen[t.decode()].append(os.path.join(root, name))

        acked = self.stream.tokens("acked")
        unacked = self.stream.tokens("unacked")
        missing_pairs = sorted((t, box) for t in acked for box in self.stream.records[t]["rcpts"]
                               if (t, box) not in delivered)
        missing = sorted({t for t, _ in missing_pairs})
        distinct = {t for t, _ in delivered}
        duplicates = sum(c - 1 for c in delivered.values())
        by_via = collections.Counter((r["via"], r["state"]) for r in self.stream.records.values())

        note(f"run {self.stream.run}: {len(self.stream.records)} submissions in {stream_time:.1f} s: "
             + ", ".join(f"{v} {s} {n}" for (v, s), n in sorted(by_via.items())))
        note(f"kills: {sum(self.kills.values())} "
             + str(dict(sorted(self.kills.items()))) + f"; also {dict(sorted(self.extra.items()))}")
        note(f"acknowledged: {len(acked)}, delivered: {len(distinct)} distinct messages "
             f"({copies} copies for {len(delivered)} message-mailbox pairs), duplicates: {duplicates}, "
             f"delivered but unacknowledged: {len(distinct & unacked)}, half-sent: {len(half)}, "
             f"Maildir tmp/ leftovers: {maildir_tmp}, queue runs at the end: {runs} ({drain_time:.1f} s)")

        kinds = {**{b: "mbox" for b in MBOX_BOXES}, **{b: "Maildir" for b in MAILDIR_BOXES}, SINK: "smtp-sink"}
        per_kind = collections.Counter()
        for (t, b), c in delivered.items():
            per_kind[(kinds[b], "pairs")] += 1
            per_kind[(kinds[b], "duplicates")] += c - 1
            per_kind[(kinds[b], "unacknowledged")] += t in unacked
        wanted = collections.Counter(kinds[b] for t in acked for b in self.stream.records[t]["rcpts"])
        note("per destination: " + "; ".join(
            f"{k}: {wanted[k]} acknowledged deliveries, {per_kind[(k, 'pairs')]} delivered, "
            f"{per_kind[(k, 'duplicates')]} duplicates, {per_kind[(k, 'unacknowledged')]} of unacknowledged messages"
            for k in ("mbox", "Maildir", "smtp-sink")))
        note(f"delivered but unacknowledged {len(distinct & unacked)} of {len(unacked)} unacknowledged "
             f"(client saw no 250 / exit 0: allowed, the acknowledgement was lost in a crash); "
             f"lost: {len(missing)}; half-sent delivered: {len(half_seen)}")
        if not per_kind[("smtp-sink", "pairs")]:
            problems.append("nothing reached smtp-sink: the remote path was not exercised")

        dup_pairs = sorted(k for k, c in delivered.items() if c > 1)
        if dup_pairs:
            note("some duplicates (token, mailbox, copies): "
                 + ", ".join(f"{t} {b} {delivered[(t, b)]}" for t, b in dup_pairs[:3]))
            if not sum(self.kills[k] for k in self.kills if k != "sendmail"):
                note("duplicates although only front ends were killed (the stop at the end "
                     "may cut deliveries short):\n" + self.evidence({t for t, _ in dup_pairs}, 2))
        if not acked:
            problems.append("no submission succeeded at all")
        if sum(self.kills.values()) < MIN_KILLS:
            problems.append(f"too few kills: {sum(self.kills.values())} < {MIN_KILLS}")
        if failures:
            with self.lock:
                torn = [f"  {clock(t)} {w}" for t, w in self.events if "mid-message" in w]
            problems.append(f"{len(failures)} bad mailbox entries:\n" + "\n".join(failures[:20])
                            + "\nkills that left an mbox ending in mid-message:\n" + "\n".join(torn[:20])
                            + "\nevidence:\n" + self.evidence(bad_tokens))
        if half_seen:
            problems.append(f"{len(half_seen)} half-sent messages delivered: {dict(half_seen)}\n"
                            + self.evidence(half_seen))
        if missing:
            problems.append(f"{len(missing)} acknowledged messages lost: "
                            + ", ".join(f"{t} for {b}{self.where_else(t, b)}" for t, b in missing_pairs[:20])
                            + "\n" + self.evidence(missing))
        if problems:
            self.fail("\n\n".join(problems))


if __name__ == "__main__":
    mmtest.main()
