# SPDX-License-Identifier: GPL-2.0-or-later
"""Disk full and I/O errors (issue 7, campaign 2; reference/user-needs.md Q2).

Part 1, injected faults. strace makes the K-th call of one system call fail
with ENOSPC or EIO (`-e inject=SYSCALL:error=E:when=K`; with -f the calls
are counted per process), for K = 1 up to the number of such calls the step
makes (measured first with the same strace and no injection), on the process
that does each step:

  sendmail commit   the front end committing in process (no daemon running)
  sendmail memfd    the front end handing its message to enqueue (memfd)
  postdrop          the drop helper writing maildrop/
  enqueue/sendmail  enqueue's commit of a local submission (strace -p)
  enqueue/SMTP      enqueue's commit of a message from smtp-listener
  qmgr state        qmgr's state file after a partial delivery
  mbox append       local-deliver and its children, only the calls on the
                    mailbox, its dot-lock and mail_dir (strace -P)
  mbox create       the same for the first delivery to a new mbox
  Maildir           local-deliver and its children, every call

Each case submits one message with a unique token. Its outcome must be
acknowledged (exit 0, 250) or refused as a temporary failure: exit 75 with
the error's text on stderr, 452 4.3.1 for ENOSPC (4xx for EIO), never 5xx.
After the case the injection is removed (strace detached or gone), the daemon
that was traced must still be the same process, the mailboxes must hold only
whole messages, a deferred delivery must leave the mbox exactly as it was and
nothing in the Maildir's new/ (a lost result, an injected pipe write, may),
and spool/tmp and maildrop/ no leftovers. Then queue runs
(`masqmail -q`) must deliver every acknowledged message at least once and
leave the queue empty; a refused message must never be delivered, except the
documented case of a failed fsync of spool/new or maildrop/ after the rename
(the message is in the spool, the client was told 4xx: a duplicate at worst).
At the end the whole ledger is checked once more. Figures
(calls measured, cases, outcomes, what each injection hit, duplicates) are
printed as TAP comments. MM_FAULT_PATHS="mbox append,Maildir" runs only
those paths.

Part 2, as root: a real full file system. A 1 MiB tmpfs (and a 4 MiB ext4
on a loop device) as spool_dir, nearly filled by a file and then by queued
submissions until sendmail exits 75 and SMTP answers 452 4.3.1; the same
daemons keep serving; the file goes and everything acknowledged is
delivered. A small tmpfs as mail_dir: mbox and Maildir deliveries defer when
it is full, the mailboxes stay whole, and after space returns everything is
delivered. Unmounted in the cleanup."""

import collections
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import mmtest
import postdrop_test
import smtptest
from mmtest import MASQMAIL, POSTDROP, Instance, wait_for

STRACE = shutil.which("strace")
IS_ROOT = os.geteuid() == 0
ERRORS = {"ENOSPC": "No space left on device", "EIO": "Input/output error"}
# The file-system calls a step may make; only those with calls get cases.
SYSCALLS = ("write", "pwrite64", "writev", "fsync", "fdatasync")
SETTLE = 60          # seconds: a submission, a delivery or a queue run ends within this
SLOW = mmtest.SANITIZED
# LeakSanitizer cannot run under ptrace: a program started under strace
# would end with its fatal error instead of its exit status.
TRACED_ENV = dict(os.environ, ASAN_OPTIONS=":".join(
    filter(None, (os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0"))))


# meson's timeout sends SIGTERM: fail the running test, so that its
# cleanups stop the instance and unmount, and skip the rest.
TERMINATED = []


def _terminated(signum, frame):
    TERMINATED.append(signum)
    raise RuntimeError("terminated by SIGTERM")


def skip_if_terminated(case):
    if TERMINATED:
        case.skipTest("terminated by SIGTERM")


def note(text):
    print("# " + text.replace("\n", "\n# "), flush=True)


# --- messages and mailboxes ---

def body_text(token, nlines=12):
    lines = [f"{token} line {n:03d} {'abcdefghijklmnopqrstuvwxyz'[n % 26:]}" for n in range(nlines)]
    return "\n".join(lines + [f"END {token}"]) + "\n"


def message(token, nlines=12):
    return f"Subject: {token}\nX-Fault: {token}\n\n{body_text(token, nlines)}".encode()


TOKEN_RE = re.compile(rb"^Subject: (fault-\w+-\d+)$", re.M)


def parse_copy(data):
    """(token, whole) of one delivered copy: whole when its body is exactly
    the body sent (an mbox copy ends with one more empty line)."""
    head, sep, body = data.partition(b"\n\n")
    found = TOKEN_RE.search(head)
    if not sep or not found:
        return None, False
    token = found.group(1).decode()
    nlines = int(re.search(rb"^X-Lines: (\d+)$", head, re.M).group(1)) if b"\nX-Lines: " in head else 12
    want = body_text(token, nlines).encode()
    return token, body in (want, want + b"\n")


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def proc_children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def idle_in_event_loop(pid):
    """True when the process sleeps in epoll_wait with no live child: back in
    its libevent loop, its work for the last request done. (A child not yet
    reaped does not count: an injected failure of the signal pipe's write
    leaves one until the next SIGCHLD.)"""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read()
    except OSError:
        return False
    live = [c for c in proc_children(pid) if proc_state(c) not in (None, "Z")]
    return proc_state(pid) == "S" and "epoll" in wchan and not live


def label(path, root):
    """A short name for what an injected call was made on (fd path from -y)."""
    if path.startswith(root):
        path = path[len(root) + 1:]
    path = path.lstrip("/") if path.startswith("/memfd:") else path
    path = re.sub(r"fresh\d+", "NEW", path)
    path = re.sub(r"[0-9a-f]{16}", "ID", path)
    path = re.sub(r"\d{6,}[\w.]*", "N", path)
    return re.sub(r":\[\d+\]", "", path)


def drain(inst, done):
    """Queue runs (masqmail -q) until done() or SETTLE seconds: a delivery
    that was under way when the space returned or the gate opened defers,
    and only the next run retries it. Returns (done(), runs, problems)."""
    deadline = time.monotonic() + SETTLE
    runs, problems = 0, []
    while True:
        runs += 1
        r = inst.masqmail("-q", timeout=SETTLE * 2)
        if r.returncode != 0:
            problems.append(f"masqmail -q exited {r.returncode}: {r.stderr!r}")
        if wait_for(done, 2) or time.monotonic() > deadline:
            return bool(done()), runs, problems


# --- strace ---

CALL_RE = re.compile(r"^(\d+)\s+(\w+)\((?:(\d+)<([^>]*)>)?")
RESUMED_RE = re.compile(r"^(\d+)\s+<\.\.\. (\w+) resumed>")


def parse_trace(text, root):
    """(calls per (pid, syscall), [(syscall, label) of injected calls])."""
    counts = collections.Counter()
    injected = []
    pending = {}
    for line in text.splitlines():
        m = RESUMED_RE.match(line)
        if m:
            call = pending.pop((m.group(1), m.group(2)), (m.group(2), "?"))
            if "(INJECTED)" in line:
                injected.append(call)
            continue
        m = CALL_RE.match(line)
        if not m or m.group(2) not in SYSCALLS:
            continue
        pid, name = m.group(1), m.group(2)
        counts[(pid, name)] += 1
        call = (name, label(m.group(4) or "?", root))
        if "<unfinished ...>" in line:
            pending[(pid, name)] = call
        elif "(INJECTED)" in line:
            injected.append(call)
    return counts, injected


def strace_args(out, inject=None, paths=()):
    args = [STRACE, "-f", "-y", "-s", "8", "-e", "trace=" + ",".join(SYSCALLS), "-o", out]
    for p in paths:
        args += ["-P", p]
    if inject:
        syscall, error, k = inject
        args += ["-e", f"inject={syscall}:error={error}:when={k}"]
    return args


class Attached:
    """strace -p PID for the duration of a with block: attached on entry
    (its "attached" line seen), detached on exit (SIGINT, waited for)."""

    def __init__(self, pid, out, inject=None, paths=()):
        self.pid, self.out = pid, out
        self.err = out + ".err"
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(strace_args(out, inject, paths) + ["-p", str(pid)],
                                         stdout=subprocess.DEVNULL, stderr=err)

    def __enter__(self):
        def attached():
            with open(self.err, "rb") as f:
                return b"attached" in f.read() or self.proc.poll() is not None
        if not wait_for(attached, SETTLE) or self.proc.poll() is not None:
            self.detach()
            raise AssertionError(f"strace did not attach to {self.pid}: {read_text(self.err)}")
        return self

    def detach(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(SETTLE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc):
        self.detach()

    def trace(self):
        return read_text(self.out)


def after_rename(hit):
    """The injected call was the fsync of the directory a finished file was
    just renamed into (spool/new by enqueue or the front end, maildrop/ by
    postdrop): the file is in place, the client is told 4xx, and the
    message may still be delivered (a duplicate if the client retries)."""
    return any(h in (("fsync", "spool/new"), ("fsync", "spool/maildrop")) for h in hit or ())


# --- the injected-fault campaign ---

class Path:
    """One step of the suite and how a case drives it."""

    def __init__(self, name, mode, target, via, rcpts, daemon=True, narrow=None):
        self.name = name
        self.mode = mode        # "run": the traced program is the submitter; "attach": strace -p target
        self.target = target    # "sendmail", "postdrop", or a daemon's name
        self.via = via          # how the message is submitted: sendmail, smtp, postdrop
        self.rcpts = rcpts
        self.daemon = daemon    # the instance runs during the case
        self.narrow = narrow    # -P paths (relative to the instance) the injection is limited to

    def resolve(self, n):
        """This path for case n: "{new}" becomes a mailbox no case used before."""
        fresh = lambda names: tuple(x.replace("{new}", f"fresh{n}") for x in names) if names else names
        return Path(self.name, self.mode, self.target, self.via, fresh(self.rcpts), self.daemon,
                    fresh(self.narrow))

    @property
    def mbox(self):
        """The mbox this path delivers to (bob when none)."""
        return next((r for r in self.rcpts if r not in ("dora", "later")), "bob")


PATHS = (
    Path("sendmail commit", "run", "sendmail", "sendmail", ("bob",), daemon=False),
    Path("sendmail memfd", "run", "sendmail", "sendmail", ("bob",)),
    Path("postdrop", "run", "postdrop", "postdrop", ("bob",)),
    Path("enqueue/sendmail", "attach", "enqueue", "sendmail", ("bob",)),
    Path("enqueue/SMTP", "attach", "enqueue", "smtp", ("bob",)),
    Path("qmgr state", "attach", "qmgr", "sendmail", ("bob", "later")),
    Path("mbox append", "attach", "local-deliver", "sendmail", ("bob",),
         narrow=("mail/bob", "mail/bob.lock", "mail")),
    Path("mbox create", "attach", "local-deliver", "sendmail", ("{new}",),
         narrow=("mail/{new}", "mail/{new}.lock", "mail")),
    Path("Maildir", "attach", "local-deliver", "sendmail", ("dora",)),
)
# MM_FAULT_PATHS="mbox append,Maildir" runs only those paths (to look into one).
if os.environ.get("MM_FAULT_PATHS"):
    PATHS = tuple(p for p in PATHS if p.name in os.environ["MM_FAULT_PATHS"].split(","))

# A pipe alias that defers (exit 75) until the gate file exists, then
# records the message, one file per call.
GATE_SCRIPT = """#!/usr/bin/python3
import os, sys, time
gate, out = sys.argv[1], sys.argv[2]
data = sys.stdin.buffer.read()
if not os.path.exists(gate):
    sys.exit(75)
name = os.path.join(out, "%d-%d" % (time.time_ns(), os.getpid()))
with open(name + ".tmp", "wb") as f:
    f.write(data)
os.rename(name + ".tmp", name)
"""


class Mail:
    """The suite's mailboxes: bob (mbox), dora (Maildir), later (gated pipe)."""

    def __init__(self, inst, side, mail_dir=None):
        self.inst = inst
        self.mail_dir = mail_dir or inst.path("mail")
        self.gate = os.path.join(side, "gate-open")
        self.records = os.path.join(side, "later")
        os.makedirs(self.records, exist_ok=True)
        script = os.path.join(side, "gate.py")
        with open(script, "w") as f:
            f.write(GATE_SCRIPT)
        os.chmod(script, 0o755)
        self.alias_line = f'later: "|{script} {self.gate} {self.records}"\n'

    def open_gate(self, is_open):
        if is_open:
            open(self.gate, "w").close()
        elif os.path.exists(self.gate):
            os.unlink(self.gate)

    def read_mbox(self, name="bob"):
        """An mbox under a shared fcntl lock, as a mail reader reads it."""
        try:
            with open(os.path.join(self.mail_dir, name), "rb") as f:
                fcntl.lockf(f, fcntl.LOCK_SH)
                return f.read()
        except FileNotFoundError:
            return b""

    def copies(self):
        """(Counter of (token, box), [problems]) over every mailbox."""
        found, bad = collections.Counter(), []
        for box in sorted(os.listdir(self.mail_dir)):
            if ".lock" in box or not os.path.isfile(os.path.join(self.mail_dir, box)) or box == "filler":
                continue
            try:
                messages = mmtest.split_mbox(self.read_mbox(box))
            except ValueError as e:
                messages = []
                bad.append(f"mbox {box}: {e}")
            for n, m in enumerate(messages):
                token, whole = parse_copy(m)
                if not whole:
                    bad.append(f"mbox {box} message {n + 1} is not a whole message: {m[:200]!r}...{m[-120:]!r}")
                if token:
                    found[(token, box)] += 1
        for sub in ("new", "cur"):
            d = os.path.join(self.mail_dir, "dora", sub)
            for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
                token, whole = parse_copy(data)
                if not whole:
                    bad.append(f"dora/{sub}/{name} is not a whole message: {data[:200]!r}")
                if token:
                    found[(token, "dora")] += 1
        for name in os.listdir(self.records):
            if name.endswith(".tmp"):
                continue
            with open(os.path.join(self.records, name), "rb") as f:
                data = f.read()
            token, whole = parse_copy(data)
            if not whole:
                bad.append(f"the pipe of 'later' got a partial message: {data[:200]!r}")
            if token:
                found[(token, "later")] += 1
        return found, bad


class InjectedFaults(unittest.TestCase):
    def setUp(self):
        skip_if_terminated(self)
        if not STRACE:
            self.skipTest("strace is not installed")
        self.inst = Instance('maildir_users = "dora"\n')
        self.addCleanup(self.inst.close)
        self.side = tempfile.TemporaryDirectory(prefix="mm-fault-")
        self.addCleanup(self.side.cleanup)
        self.mail = Mail(self.inst, self.side.name)
        aliases = self.inst.write("aliases", self.mail.alias_line)
        with open(self.inst.conf, "a") as f:
            f.write(f'alias_file = "{aliases}"\n')
        self.run_id = "%06x" % (os.getpid() & 0xFFFFFF)
        self.serial = 0
        self.ledger = {}            # token -> record
        self.problems = []
        self.running = False
        self.addCleanup(self.stop_instance)

    # --- the instance ---

    def start_instance(self):
        if not self.running:
            self.inst.start()
            self.running = True

    def stop_instance(self):
        if self.running:
            self.running = False
            if not self.inst.stop():
                self.problems.append("the daemons did not stop cleanly")

    def daemon_pid(self, name):
        sup = self.inst.daemon_pid()
        for pid in proc_children(sup) if sup else []:
            argv = mmtest.proc_cmdline(pid)
            if argv and argv[0] == name:
                return pid
        return None

    # --- submissions ---

    def new_token(self, path):
        self.serial += 1
        return f"fault-{self.run_id}-{self.serial:04d}"

    def submit(self, path, token, trace_out=None, inject=None):
        """Submits one message; returns (outcome, detail, injected calls or None).
        outcome: acked, refused (a proper temporary refusal) or bad."""
        data = message(token)
        if path.via == "smtp":
            return self.submit_smtp(path, token, data) + (None,)
        if path.via == "postdrop":
            args = [POSTDROP, "-C", self.inst.conf]
            stdin = postdrop_test.drop_file([f"{r}@test.example" for r in path.rcpts], data,
                                            sender=f"{token}@test.example")
            prefix = "postdrop: "
        else:
            args = [MASQMAIL, "-C", self.inst.conf, "-oi", "-f", f"{token}@test.example", *path.rcpts]
            stdin = data
            prefix = "masqmail: "
        traced = trace_out is not None and path.mode == "run"
        if traced:
            args = strace_args(trace_out, inject, self.narrow(path)) + args
        r = mmtest.run(args, stdin=stdin, timeout=SETTLE, env=TRACED_ENV if traced else None)
        injected = parse_trace(read_text(trace_out), self.inst.root)[1] if traced else None
        err = r.stderr.decode(errors="replace")
        if r.returncode == 0:
            return "acked", err.strip(), injected
        if r.returncode == 75 and err.startswith(prefix) and err.strip():
            return "refused", err.strip(), injected
        return "bad", f"exit {r.returncode}, stderr {err!r}", injected

    def submit_smtp(self, path, token, data):
        try:
            with smtptest.Raw(self.inst.port, timeout=SETTLE) as c:
                c.ehlo()
                r = c.cmd(f"MAIL FROM:<{token}@client.example>")
                if r.code != 250:
                    return "bad", f"MAIL FROM: {r.raw!r}"
                for rcpt in path.rcpts:
                    r = c.cmd(f"RCPT TO:<{rcpt}@test.example>")
                    if r.code != 250:
                        return "bad", f"RCPT TO: {r.raw!r}"
                r = c.cmd("DATA")
                if r.code != 354:
                    return "bad", f"DATA: {r.raw!r}"
                c.send(data.replace(b"\n", b"\r\n") + b".\r\n")
                r = c.reply()
        except (OSError, EOFError, AssertionError) as e:
            return "bad", f"SMTP session failed: {e!r}"
        text = r.raw.decode(errors="replace").strip()
        if r.code == 250:
            return "acked", text
        if 400 <= r.code < 500:
            return "refused", text
        return "bad", text

    def narrow(self, path):
        return [self.inst.path(p) for p in path.narrow or ()]

    def queue_id(self, token):
        found = re.search(r"(\S+) <= <" + re.escape(token) + "@", self.inst.log_text())
        return found.group(1) if found else None

    # --- one case ---

    def settled(self, path, token):
        """The step's work for this message is done (or given up)."""
        if path.target == "qmgr":
            qid = self.queue_id(token)
            if not qid:
                return False
            log = self.inst.log_text()
            return (os.path.exists(self.inst.path("spool", "queue", qid + ".st"))
                    or f"{qid}: cannot write state" in log or f"{qid} completed" in log)
        if path.target == "local-deliver":
            qid = self.queue_id(token)
            if not qid:
                return False
            log = self.inst.log_text()
            return any(f"{qid} {what}" in log for what in ("deferred", "completed"))
        return True

    def run_case(self, path, inject, trace_out):
        """Submits under strace (with `inject`, or none to measure); returns
        (token, outcome, detail, injected calls, trace text)."""
        token = self.new_token(path)
        if path.mode == "run":
            outcome, detail, injected = self.submit(path, token, trace_out, inject)
            return token, outcome, detail, injected, read_text(trace_out)
        pid = self.daemon_pid(path.target)
        self.assertIsNotNone(pid, f"{path.target} is not running")
        with Attached(pid, trace_out, inject, self.narrow(path)) as tracer:
            outcome, detail, _ = self.submit(path, token)
            wait_for(lambda: self.settled(path, token), SETTLE)
            wait_for(lambda: all(idle_in_event_loop(pid) for _ in range(3)), SETTLE)
        text = tracer.trace()
        survived = self.daemon_pid(path.target) == pid
        if not survived:
            self.problems.append(f"{path.name} {inject}: {path.target} {pid} died")
            self.stop_instance()
            self.start_instance()
        return token, outcome, detail, parse_trace(text, self.inst.root)[1], text

    def snapshot(self, path):
        """What must not change when a delivery fails: the mbox bytes and dora/new/."""
        new = self.inst.path("mail", "dora", "new")
        return self.mail.read_mbox(path.mbox), set(os.listdir(new)) if os.path.isdir(new) else set()

    def check_after_case(self, path, inject, token, outcome, detail, before, hit, step):
        what = f"{path.name} {inject[0]} {inject[1]} K={inject[2]}"
        err = inject[1]
        if outcome == "bad":
            self.problems.append(f"{what}: not a temporary refusal: {detail}")
        elif outcome == "refused":
            if path.via == "smtp":
                if err == "ENOSPC" and not detail.startswith("452 4.3.1"):
                    self.problems.append(f"{what}: ENOSPC answered {detail!r}, not 452 4.3.1")
            elif ERRORS[err] not in detail:
                self.problems.append(f"{what}: exit 75 without the error's text on stderr: {detail!r}")
        # The mailboxes right after the case, before any retry.
        mbox, new = before
        now_mbox, now_new = self.snapshot(path)
        if not now_mbox.startswith(mbox):
            self.problems.append(f"{what}: the mbox changed before its end: was {len(mbox)} bytes, "
                                 f"now {len(now_mbox)}: ...{now_mbox[len(mbox) - 80:len(mbox) + 80]!r}")
        else:
            added = mmtest.split_mbox(now_mbox[len(mbox):]) if now_mbox[len(mbox):].startswith(b"From ") \
                else ([now_mbox[len(mbox):]] if now_mbox[len(mbox):] else [])
            for m in added:
                t, whole = parse_copy(m)
                if not whole or t != token:
                    self.problems.append(f"{what}: the mbox got {len(m)} bytes that are not a whole copy "
                                         f"of {token}: {m[:120]!r}...{m[-120:]!r}")
        # A deferred delivery whose own file work failed leaves the mailbox as
        # it was: the mbox cut back, nothing published in new/ (the retry
        # would make it a duplicate). A lost result (a pipe write) may not.
        if step == "delivery deferred" and any(h[1] == "mail" or h[1].startswith("mail/") for h in hit):
            if now_mbox != mbox:
                self.problems.append(f"{what}: deferred, but the mbox changed from {len(mbox)} to "
                                     f"{len(now_mbox)} bytes")
            if now_new != new:
                self.problems.append(f"{what}: deferred, but dora/new/ got {sorted(now_new - new)}")
        for name in sorted(now_new - new):
            with open(self.inst.path("mail", "dora", "new", name), "rb") as f:
                t, whole = parse_copy(f.read())
            if not whole or t != token:
                self.problems.append(f"{what}: dora/new/{name} is not a whole copy of {token}")
        leftovers = [n for n in os.listdir(self.inst.path("mail", "dora", "tmp"))] \
            if os.path.isdir(self.inst.path("mail", "dora", "tmp")) else []
        if leftovers:
            self.problems.append(f"{what}: files left in dora/tmp: {leftovers}")
        for area in ("tmp", "maildrop"):
            left = [n for n in os.listdir(self.inst.path("spool", area))]
            # A drop file renamed into place stays (for enqueue) when only the
            # directory's fsync failed; checked again after the queue run.
            if left and not (area == "maildrop" and (outcome == "acked" or after_rename(hit))):
                self.problems.append(f"{what}: files left in spool/{area}: {left}")


    def flush_and_check(self, path, what, cases):
        """Queue run with the gate open; then the ledger of `cases`
        [(token, outcome, hit)]. Returns the duplicates counted."""
        self.mail.open_gate(True)

        def done():
            found, _ = self.mail.copies()
            acked = all(found[(t, b)] for t, o, _ in cases if o == "acked" for b in path.rcpts)
            drops = self.running and os.listdir(self.inst.path("spool", "maildrop"))
            return acked and not drops and not self.inst.mailq_json()
        _, runs, problems = drain(self.inst, done)
        self.problems += [f"{what}: {p}" for p in problems]
        found, bad = self.mail.copies()
        self.mail.open_gate(False)
        self.problems.extend(f"{what}: {b}" for b in bad)
        duplicates = 0
        for token, outcome, hit in cases:
            for box in path.rcpts:
                n = found[(token, box)]
                if outcome == "acked" and n == 0:
                    self.problems.append(f"{what}: acknowledged {token} was not delivered to {box}\n"
                                         + self.evidence(token))
                if outcome == "refused" and n and not after_rename(hit):
                    self.problems.append(f"{what}: refused {token} was delivered to {box}\n"
                                         + self.evidence(token))
                duplicates += max(0, n - 1)
        for area in ("maildrop", "tmp", "queue", "new"):
            left = os.listdir(self.inst.path("spool", area))
            if left:
                self.problems.append(f"{what}: files left in spool/{area} after the queue run: {left}")
        queued = self.inst.mailq_json()
        if queued:
            self.problems.append(f"{what}: {len(queued)} messages still queued after the run: {queued[:2]}")
        return duplicates

    def evidence(self, token):
        qid = self.queue_id(token)
        lines = [l for l in self.inst.log_text().splitlines() if token in l or (qid and qid in l)]
        return "  log: " + "\n  log: ".join(lines[-12:])

    # --- the campaign ---

    def measure(self, path):
        """Calls per system call on this path: the most any one process made."""
        path = path.resolve(self.serial + 1)
        token, outcome, detail, _, text = self.run_case(path, None, os.path.join(self.side.name, "measure.tr"))
        self.assertEqual(outcome, "acked", f"{path.name}: the measuring run failed: {detail}")
        counts, _ = parse_trace(text, self.inst.root)
        self.flush_and_check(path, f"{path.name} measuring", [(token, outcome, [])])
        per_call = collections.Counter()
        for (pid, name), n in counts.items():
            per_call[name] = max(per_call[name], n)
        return per_call

    def ks(self, n, error):
        # Under the sanitizers (several times slower) EIO only at the first call.
        if SLOW and error == "EIO":
            return range(1, min(n, 1) + 1)
        return range(1, n + 1)

    def step_outcome(self, path, token, outcome, log, detail):
        """What the traced step did, from the log lines written during the case."""
        qid = self.queue_id(token)
        if path.target == "qmgr":
            return "state write failed, logged" if f"{qid}: cannot write state" in log else "state written"
        if path.target == "local-deliver":
            return "delivery deferred" if f"{qid} deferred" in log else "delivered at once"
        if outcome != "refused":
            return outcome
        # A refusal is logged (by enqueue, or the front end), with the queue id it had.
        lines = [l for l in log.splitlines() if "not accepted" in l or "postdrop" in l]
        if path.via == "postdrop":
            return "refused"
        if path.via == "smtp":
            outcome = "refused " + detail[:9]
        if not lines:
            return outcome + ", not logged"
        return outcome + ", logged" + (" with queue id" if re.search(r"\d{10}\.[0-9a-f]{16}", lines[-1]) else "")

    def test_every_write_and_fsync_fails_once(self):
        self.mail.open_gate(False)
        # Warm-up: the mailboxes exist, so each case appends.
        self.start_instance()
        for rcpt in ("bob", "dora"):
            r = self.inst.masqmail("-oi", rcpt, stdin=message(self.new_token(None)))
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: not self.inst.mailq_json() and self.inst.read_mbox("bob"), SETTLE))
        start = time.monotonic()
        totals, duplicates, after_rename_delivered = collections.Counter(), collections.Counter(), 0
        slowest = (0.0, "")
        for path in PATHS:
            if path.daemon:
                self.start_instance()
            else:
                self.stop_instance()
            calls = self.measure(path)
            note(f"{path.name}: calls on one message: " + ", ".join(f"{s}={calls[s]}" for s in SYSCALLS))
            for syscall in SYSCALLS:
                for error in ERRORS:
                    outcomes, hits, cases = collections.Counter(), collections.Counter(), 0
                    for k in self.ks(calls[syscall], error):
                        if path.daemon:
                            self.start_instance()
                        inject = (syscall, error, k)
                        case_start = time.monotonic()
                        case = path.resolve(self.serial + 1)
                        before = self.snapshot(case)
                        log_at = len(self.inst.log_text())
                        trace_out = os.path.join(self.side.name, f"case-{self.serial + 1}.tr")
                        token, outcome, detail, injected, _ = self.run_case(case, inject, trace_out)
                        hit = [(c[0], c[1]) for c in injected or ()]
                        step = self.step_outcome(case, token, outcome, self.inst.log_text()[log_at:], detail)
                        outcomes[step] += 1
                        for call in hit:
                            hits[call[1]] += 1
                        if not hit:
                            hits["nothing (call not reached)"] += 1
                        self.ledger[token] = (case, inject, outcome, hit)
                        self.check_after_case(case, inject, token, outcome, detail, before, hit, step)
                        duplicates[path.name] += self.flush_and_check(
                            case, f"{path.name} {syscall} {error} K={k}", [(token, outcome, hit)])
                        cases += 1
                        totals[outcome] += 1
                        slowest = max(slowest, (time.monotonic() - case_start, f"{path.name} {syscall} {error} K={k}"))
                    if cases:
                        note(f"  {syscall} {error}: {cases} cases (K=1..{cases}): "
                             + ", ".join(f"{o} {n}" for o, n in sorted(outcomes.items()))
                             + "; injected into " + ", ".join(f"{h} {n}" for h, n in sorted(hits.items())))
        self.stop_instance()
        # The whole ledger once more at the end: nothing acknowledged went
        # missing later, nothing refused turned up later.
        found, bad = self.mail.copies()
        self.problems += [f"at the end: {b}" for b in bad]
        for token, (path, inject, outcome, hit) in sorted(self.ledger.items()):
            for box in path.rcpts:
                if outcome == "acked" and not found[(token, box)]:
                    self.problems.append(f"at the end: acknowledged {token} ({path.name} {inject}) not in {box}")
                if outcome == "refused" and found[(token, box)]:
                    if after_rename(hit):
                        after_rename_delivered += 1
                    else:
                        self.problems.append(f"at the end: refused {token} ({path.name} {inject}) in {box}")
        note(f"injected-fault cases: {sum(totals.values())} in {time.monotonic() - start:.0f} s "
             f"(slowest {slowest[0]:.1f} s: {slowest[1]}): "
             + ", ".join(f"{o} {n}" for o, n in sorted(totals.items()))
             + f"; refused yet delivered after a failed directory fsync: {after_rename_delivered}"
             + "; duplicate copies after the queue runs: "
             + (", ".join(f"{p} {n}" for p, n in duplicates.items() if n) or "none"))
        if self.problems:
            self.fail(f"{len(self.problems)} problems:\n" + "\n\n".join(self.problems[:30]))


# --- a real full file system ---

class SmallFileSystem:
    """A small file system mounted on `where`: a tmpfs of `size`, or an ext4
    image of `size` (no blocks reserved for root) on a loop device.
    Unmounted by close()."""

    def __init__(self, where, size, kind="tmpfs"):
        os.makedirs(where, exist_ok=True)
        if kind == "ext4":
            image = where + ".img"
            with open(image, "wb") as f:
                f.truncate(size)
            r = mmtest.run(["mkfs.ext4", "-q", "-F", "-m", "0", image])
            if r.returncode != 0:
                raise unittest.SkipTest(f"mkfs.ext4 failed: {r.stderr.decode(errors='replace').strip()}")
            r = mmtest.run(["mount", "-o", "loop", image, where])
        else:
            r = mmtest.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", where])
        if r.returncode != 0:
            raise unittest.SkipTest(f"cannot mount a {kind}: {r.stderr.decode(errors='replace').strip()}")
        os.chmod(where, 0o755)
        self.where = where

    def free(self):
        st = os.statvfs(self.where)
        return st.f_bavail * st.f_frsize

    def fill(self, leave):
        """A filler file that leaves about `leave` bytes free."""
        path = os.path.join(self.where, "filler")
        with open(path, "ab") as f:
            chunk = b"\0" * 65536
            while self.free() > leave + len(chunk):
                f.write(chunk)
                f.flush()
            rest = self.free() - leave
            if rest > 0:
                f.write(b"\0" * rest)
        return path

    def close(self):
        r = mmtest.run(["umount", self.where])
        if r.returncode != 0:
            mmtest.run(["umount", "-l", self.where])


@unittest.skipUnless(IS_ROOT, "needs root to mount a small tmpfs")
class RealFullFileSystem(unittest.TestCase):
    def setUp(self):
        skip_if_terminated(self)
        self.side = tempfile.TemporaryDirectory(prefix="mm-fault-")
        self.addCleanup(self.side.cleanup)
        self.serial = 0
        self.run_id = "%06x" % (os.getpid() & 0xFFFFFF)

    def instance(self, spool=None, mail_dir=None):
        inst = Instance('maildir_users = "dora"\n')
        self.addCleanup(inst.close)
        mail = Mail(inst, self.side.name, mail_dir)
        aliases = inst.write("aliases", mail.alias_line)
        with open(inst.conf, "a") as f:
            f.write(f'alias_file = "{aliases}"\n')
            if spool:
                f.write(f'spool_dir = "{spool}"\n')
            if mail_dir:
                f.write(f'mail_dir = "{mail_dir}"\n')
        return inst, mail

    def mount(self, name, size, kind="tmpfs"):
        fs = SmallFileSystem(os.path.join(self.side.name, name), size, kind)
        self.addCleanup(fs.close)
        return fs

    def token(self):
        self.serial += 1
        return f"fault-{self.run_id}-{self.serial:04d}"

    def big_message(self, token, nlines):
        return message(token, nlines).replace(b"\n\n", f"\nX-Lines: {nlines}\n\n".encode(), 1)

    def smtp(self, inst, token, rcpt, data):
        with smtptest.Raw(inst.port, timeout=SETTLE) as c:
            c.ehlo()
            for line in (f"MAIL FROM:<{token}@client.example>", f"RCPT TO:<{rcpt}@test.example>"):
                r = c.cmd(line)
                if r.code != 250:
                    return r
            r = c.cmd("DATA")
            if r.code != 354:
                return r
            c.send(data.replace(b"\n", b"\r\n") + b".\r\n")
            return c.reply()

    def daemons(self, inst):
        """{name: pid} of the supervisor and its daemons (its children)."""
        sup = inst.daemon_pid()
        found = {"supervisor": sup}
        for pid in proc_children(sup) if sup else []:
            argv = mmtest.proc_cmdline(pid)
            if argv:
                found[os.path.basename(argv[0])] = pid
        return found

    def test_full_spool(self):
        self.full_spool(self.mount("spool", "1m"), "1 MiB tmpfs")

    def test_full_spool_on_ext4(self):
        self.full_spool(self.mount("spool", 4 << 20, "ext4"), "4 MiB ext4 on a loop device")

    def full_spool(self, fs, what):
        inst, mail = self.instance(spool=fs.where)
        inst.start()
        self.addCleanup(inst.stop)
        before = self.daemons(inst)
        filler = fs.fill(256 * 1024)
        results = []            # (token, via, outcome, detail)
        problems = []
        # ~40 KiB messages to the gated pipe stay queued until the spool is full.
        for n in range(60):
            token = self.token()
            data = self.big_message(token, 600)
            if n % 2 == 0:
                r = inst.masqmail("-oi", "-f", f"{token}@test.example", "later", stdin=data)
                err = r.stderr.decode(errors="replace")
                outcome = "acked" if r.returncode == 0 else "refused" if r.returncode == 75 else "bad"
                results.append((token, "sendmail", outcome, f"exit {r.returncode} {err.strip()}"))
                if outcome == "refused" and ERRORS["ENOSPC"] not in err:
                    problems.append(f"sendmail exit 75 without 'No space left on device': {err!r}")
            else:
                r = self.smtp(inst, token, "later", data)
                outcome = "acked" if r.code == 250 else "refused" if 400 <= r.code < 500 else "bad"
                results.append((token, "smtp", outcome, r.raw.decode(errors="replace").strip()))
                if outcome == "refused" and not (r.code == 452 and r.enhanced == "4.3.1"):
                    problems.append(f"SMTP refusal on a full spool is not 452 4.3.1: {r.raw!r}")
            if outcome == "bad":
                problems.append(f"{results[-1]}: neither acknowledged nor a temporary refusal")
            refused = {v for _, v, o, _ in results if o == "refused"}
            if refused == {"sendmail", "smtp"} and n >= 3:
                break
        refused = {v for _, v, o, _ in results if o == "refused"}
        self.assertEqual(refused, {"sendmail", "smtp"},
                         f"the full spool did not refuse both ways: {results}\n{inst.log_text()[-3000:]}")
        now = self.daemons(inst)
        if now != before:
            problems.append(f"daemons restarted while the spool was full: {before} -> {now}")
        with smtptest.Raw(inst.port, timeout=SETTLE) as c:
            c.ehlo()
            if c.cmd("NOOP").code != 250:
                problems.append("the listener does not serve NOOP with the spool full")
        r = inst.masqmail("-bp")
        if r.returncode != 0:
            problems.append(f"mailq fails with the spool full: {r.stderr!r}")
        # Space returns: new submissions are accepted; then everything is delivered.
        os.unlink(filler)
        for via in ("sendmail", "smtp"):
            token = self.token()
            data = self.big_message(token, 600)
            if via == "sendmail":
                r = inst.masqmail("-oi", "-f", f"{token}@test.example", "later", stdin=data)
                results.append((token, via, "acked" if r.returncode == 0 else "bad", r.stderr))
            else:
                r = self.smtp(inst, token, "later", data)
                results.append((token, via, "acked" if r.code == 250 else "bad", r.raw))
            if results[-1][2] != "acked":
                problems.append(f"not accepted after space returned: {results[-1]}")
        mail.open_gate(True)
        acked = [t for t, _, o, _ in results if o == "acked"]
        _, runs, run_problems = drain(
            inst, lambda: all(mail.copies()[0][(t, "later")] for t in acked) and not inst.mailq_json())
        problems += run_problems
        found, bad = mail.copies()
        problems += bad
        lost = [t for t in acked if not found[(t, "later")]]
        wrongly = [t for t, _, o, _ in results if o == "refused" and found[(t, "later")]]
        queued = inst.mailq_json()
        counts = collections.Counter((v, o) for _, v, o, _ in results)
        note(f"full spool ({what}, ~40 KiB messages): "
             + ", ".join(f"{v} {o} {n}" for (v, o), n in sorted(counts.items()))
             + f"; delivered after space returned: {sum(1 for t in acked if found[(t, 'later')])}/{len(acked)}, "
             f"duplicates {sum(max(0, n - 1) for n in found.values())}, still queued {len(queued)}, "
             f"queue runs {runs}")
        if lost:
            problems.append(f"acknowledged but not delivered: {lost}")
        if wrongly:
            problems.append(f"refused but delivered: {wrongly}")
        if queued:
            problems.append(f"still queued: {queued[:3]}")
        if any(os.listdir(os.path.join(fs.where, "tmp"))):
            problems.append(f"files left in spool/tmp: {os.listdir(os.path.join(fs.where, 'tmp'))}")
        self.assertEqual(problems, [], "\n" + inst.log_text()[-3000:])

    def test_full_mail_dir(self):
        fs = self.mount("mail", "1m")
        inst, mail = self.instance(mail_dir=fs.where)
        inst.start()
        self.addCleanup(inst.stop)
        filler = fs.fill(160 * 1024)
        sent = []               # (token, box)
        problems = []
        for n in range(16):
            token = self.token()
            box = ("bob", "dora")[n % 2]
            r = inst.masqmail("-oi", box, stdin=self.big_message(token, 600))
            self.assertEqual(r.returncode, 0, r.stderr)
            sent.append((token, box))

        def deferred(box):
            return re.search(rf"deferred {box}@test\.example", inst.log_text())
        self.assertTrue(wait_for(lambda: deferred("bob") and deferred("dora"), SETTLE),
                        "no deferral for both mailboxes on a full mail_dir:\n" + inst.log_text()[-3000:])
        wait_for(lambda: all(q.get("recipients") is not None for q in inst.mailq_json()), 5)
        # Full: what is there is whole, and nothing is left in dora/tmp.
        found, bad = mail.copies()
        problems += [f"while full: {b}" for b in bad]
        tmp = os.path.join(fs.where, "dora", "tmp")
        if os.path.isdir(tmp) and os.listdir(tmp):
            problems.append(f"files left in dora/tmp while full: {os.listdir(tmp)}")
        delivered_full = sum(1 for t, b in sent if found[(t, b)])
        queued_full = len(inst.mailq_json())
        # Space returns.
        os.unlink(filler)
        _, runs, run_problems = drain(
            inst, lambda: all(mail.copies()[0][(t, b)] for t, b in sent) and not inst.mailq_json())
        problems += run_problems
        found, bad = mail.copies()
        problems += bad
        lost = [(t, b) for t, b in sent if not found[(t, b)]]
        queued = inst.mailq_json()
        note(f"full mail_dir (1 MiB tmpfs, ~40 KiB messages, 16 sent to an mbox and a Maildir): "
             f"{delivered_full} delivered and {queued_full} queued while full; after space returned "
             f"{len(sent) - len(lost)}/{len(sent)} delivered, duplicates "
             f"{sum(max(0, n - 1) for n in found.values())}, still queued {len(queued)}, queue runs {runs}")
        if lost:
            problems.append(f"not delivered after space returned: {lost}")
        if queued:
            problems.append(f"still queued: {queued[:3]}")
        if not queued_full:
            problems.append("nothing stayed queued while mail_dir was full")
        self.assertEqual(problems, [], "\n" + inst.log_text()[-3000:])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    mmtest.main()
