# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers shared by the benchmarks in test/bench (local_mail.py, smtp_accept.py,
remote_flush.py).

Python 3 standard library only.  Nothing here reads command-line arguments: each
benchmark passes its settings (ports, pauses) in.

  waiting        wait_until, wait_progress
  processes      alive, descendants, proc_comm, proc_cmdline, mem_of, kill_pids
  sockets        listening, free_port
  files          count_files, count_queue_ids
  machine        loadavg, settle, ensure_user
  instances      PostfixInstance (private "postfix -c DIR" instance, configuration
                 given by a subclass), MasqmailInstance (private run_as_user instance
                 started with "masqmail -C CONF -bd -q30m")
  smarthost      SmtpSink (Postfix's smtp-sink on 127.0.0.1, counting what it got)
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MASQMAIL = os.path.join(SOURCE_ROOT, "build", "wrappers", "masqmail", "masqmail")
DOMAIN = "bench.example"
PATH_ENV = "/usr/sbin:/usr/bin:/sbin:/bin"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ------------------------------------------------------------------ waiting

def wait_until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def wait_progress(count, target, stall, step=0.1):
    """Polls count() until it reaches target; gives up when it has not grown
    for `stall` seconds (an MTA that stopped delivering). -> reached?"""
    last, since = -1, time.monotonic()
    while True:
        c = count()
        if c >= target:
            return True
        if c != last:
            last, since = c, time.monotonic()
        elif time.monotonic() - since > stall:
            return False
        time.sleep(step)


# ------------------------------------------------------------------ processes

def alive(pid):
    """pid exists and is not a zombie (this VM's PID 1 may not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(root):
    """root and its live descendants (to clean up only what we started)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return [p for p in out if alive(p)]


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_cmdline(pid):
    """argv of pid as a list of str ([] for a kernel thread or a vanished pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def mem_of(pids):
    """Sum over pids of VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup).
    -> {"rss_kib", "pss_kib", "procs"}; a process that vanished meanwhile is skipped."""
    rss = pss = n = 0
    for p in pids:
        try:
            r = s = 0
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        r = int(line.split()[1])
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        s = int(line.split()[1])
        except (OSError, ValueError):
            continue
        rss, pss, n = rss + r, pss + s, n + 1
    return {"rss_kib": rss, "pss_kib": pss, "procs": n}


def kill_pids(pids, sig=signal.SIGKILL):
    """Signals each pid of a list we collected ourselves that is still alive."""
    for p in pids:
        if alive(p):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass


# ------------------------------------------------------------------ sockets, files

def listening(port):
    hexport = f":{port:04X}"
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(hexport) and parts[3] == "0A":
                        return True
        except OSError:
            pass
    return False


def count_files(dirs):
    n = 0
    for d in dirs:
        for _, _, files in os.walk(d):
            n += len(files)
    return n


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on now (the kernel's choice from its ephemeral
    range; free until someone else takes it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


QUEUE_ID = re.compile(r"^[0-9]{10}\.[0-9a-f]{16}$")


def count_queue_ids(dirs):
    """masqmail message files (names that are queue ids, doc/spool-format.md;
    not the ID.st state files) in the given spool directories."""
    n = 0
    for d in dirs:
        try:
            n += sum(1 for e in os.listdir(d) if QUEUE_ID.match(e))
        except FileNotFoundError:
            pass
    return n


# ------------------------------------------------------------------ machine

def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


def settle(pause):
    """Same starting point for every timed part: dirty pages written, a pause."""
    subprocess.run(["sync"], check=False)
    time.sleep(pause)


def ensure_user(name, role="runs the private masqmail instance"):
    """The system user `name` (a pwd entry), created first if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    log(f"creating system user {name} ({role})")
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                    "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                    "--comment", "masqmail benchmark user", name], check=True)
    return pwd.getpwnam(name)


# ------------------------------------------------------------------ Postfix

# Common part of every private instance's main.cf: its own directories, the
# Debian package's binaries, a log file (there is no syslog here), no DNS.
POSTFIX_MAIN_BASE = """\
compatibility_level = 3.6
queue_directory   = {d}/spool
data_directory    = {d}/data
command_directory = /usr/sbin
daemon_directory  = /usr/lib/postfix/sbin
meta_directory    = /etc/postfix
shlib_directory   = /usr/lib/postfix
mail_owner        = postfix
setgid_group      = postdrop
maillog_file      = {d}/log/maillog
maillog_file_prefixes = {d}/log

# no DNS anywhere
myhostname = {domain}
mydomain   = {domain}
myorigin   = $myhostname
smtpd_peername_lookup  = no
smtp_dns_support_level = disabled
inet_interfaces = 127.0.0.1
inet_protocols  = ipv4
mynetworks      = 127.0.0.0/8
"""

# master.cf without chroot: the SMTP listener on 127.0.0.1:PORT and the daemons
# of a default installation; {extra} adds services (e.g. local).
POSTFIX_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
{extra}anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixInstance:
    """A private instance of Debian's Postfix in directory d, started as root with
    "postfix -c d/etc start".  Subclasses give config(**kw) -> {file name in etc/:
    text}; start(**kw) passes kw on."""
    name = "postfix"
    subdirs = ("etc", "spool", "data", "log")

    def __init__(self, d, port, pause=1.0, settle=1.0):
        self.d = d
        self.port = port
        self.pause = pause
        self.settle = settle
        self.etc = os.path.join(d, "etc")
        self.spool = os.path.join(d, "spool")
        self.pid = None
        self.env = {"PATH": PATH_ENV, "MAIL_CONFIG": self.etc, "HOME": "/root",
                    "LOGNAME": "root", "USER": "root"}

    def version(self):
        r = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True,
                           text=True)
        return r.stdout.strip()

    def config(self, **kw):
        raise NotImplementedError

    def prepare(self, **kw):
        shutil.rmtree(self.d, ignore_errors=True)
        for sub in self.subdirs:
            os.makedirs(os.path.join(self.d, sub))
        shutil.chown(os.path.join(self.d, "data"), "postfix")
        for fn, text in self.config(**kw).items():
            with open(os.path.join(self.etc, fn), "w") as f:
                f.write(text)

    def start(self, **kw):
        if listening(self.port):
            raise BenchError(f"port {self.port} is in use")
        self.prepare(**kw)
        settle(self.pause)
        r = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=120)
        if r.returncode != 0:
            raise BenchError(f"postfix start failed: {r.stdout}{r.stderr}; "
                             f"see {self.d}/log/maillog")
        pf = os.path.join(self.spool, "pid", "master.pid")
        if not wait_until(lambda: os.path.exists(pf), 30):
            raise BenchError(f"postfix: no {pf}")
        with open(pf) as f:
            self.pid = int(f.read().split()[0])
        if not wait_until(lambda: listening(self.port), 30):
            self.stop()
            raise BenchError(f"postfix: nothing listens on {self.port}")
        time.sleep(self.settle)  # master has started pickup and qmgr

    def stop(self):
        if self.pid is None:
            return
        pids = descendants(self.pid)
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)
        if not wait_until(lambda: not any(alive(p) for p in pids), 20, 0.1):
            kill_pids(pids)
        wait_until(lambda: not listening(self.port), 10)
        self.pid = None

    def processes(self):
        return descendants(self.pid) if self.pid is not None else []

    def queued(self):
        return count_files(os.path.join(self.spool, q) for q in
                           ("maildrop", "incoming", "active", "deferred", "hold"))

    def held(self):
        return count_files([os.path.join(self.spool, "hold")])


# ------------------------------------------------------------------ masqmail

class MasqmailInstance:
    """A private masqmail instance (run_as_user = true) in directory d, run as
    `user` (a pwd entry); its daemons are started with "masqmail -C CONF -bd -q30m"
    and stopped with SIGTERM to the pid in pid_dir/masqmail.pid."""
    name = "masqmail"

    def __init__(self, d, user, exe, port, pause=1.0, settle=1.0):
        self.d = d
        self.user = user
        self.exe = exe
        self.port = port
        self.pause = pause
        self.settle = settle
        self.conf = os.path.join(d, "masqmail.conf")
        self.spool = os.path.join(d, "spool")
        self.pidfile = os.path.join(d, "run", "masqmail.pid")
        self.env = {"PATH": PATH_ENV, "HOME": d, "LOGNAME": user.pw_name,
                    "USER": user.pw_name}
        self.pid = None

    def version(self):
        r = subprocess.run([self.exe, "-bV"], capture_output=True, text=True)
        return (r.stdout.strip().splitlines() or [""])[0]

    def config(self):
        d = self.d
        return (f'host_name = "{DOMAIN}"\n'
                f'spool_dir = "{d}/spool"\n'
                f'log_dir = "{d}/log"\n'
                f'lock_dir = "{d}/lock"\n'
                f'pid_dir = "{d}/run"\n'
                f'mail_dir = "{d}/mail"\n'
                'run_as_user = true\n'
                f'local_hosts = "localhost;{DOMAIN}"\n'
                f'listen_addresses = "127.0.0.1:{self.port}"\n')

    def prepare(self):
        shutil.rmtree(self.d, ignore_errors=True)
        os.makedirs(self.d)
        with open(self.conf, "w") as f:
            f.write(self.config())
        for sub in ("spool", "log", "lock", "run", "mail"):
            os.makedirs(os.path.join(self.d, sub))
        for root, dirs, files in os.walk(self.d):
            for x in [root] + [os.path.join(root, y) for y in files]:
                os.chown(x, self.user.pw_uid, self.user.pw_gid)

    def run(self, argv, timeout=120):
        """argv as the instance user; BenchError on failure. -> CompletedProcess"""
        u = self.user
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=timeout, user=u.pw_uid,
                           group=u.pw_gid, extra_groups=[])
        if r.returncode != 0:
            raise BenchError(f"{' '.join(argv)}: exit {r.returncode}: "
                             f"{(r.stderr or r.stdout).strip()[-400:]}")
        return r

    def start(self):
        if listening(self.port):
            raise BenchError(f"port {self.port} is in use")
        self.prepare()
        settle(self.pause)
        # output to a file, not a pipe: a daemon that kept the pipe open would
        # make subprocess.run wait for it
        out = os.path.join(self.d, "log", "start.out")
        u = self.user
        with open(out, "wb") as f:
            r = subprocess.run([self.exe, "-C", self.conf, "-bd", "-q30m"], env=self.env,
                               stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               timeout=60, user=u.pw_uid, group=u.pw_gid, extra_groups=[])
        if r.returncode != 0:
            with open(out, errors="replace") as f:
                raise BenchError(f"masqmail -C CONF -bd -q30m: exit {r.returncode}: "
                                 f"{f.read().strip()[-400:]}")
        if not wait_until(lambda: os.path.exists(self.pidfile), 30):
            raise BenchError(f"masqmail -bd returned but wrote no {self.pidfile}")
        with open(self.pidfile) as f:
            self.pid = int(f.read().split()[0])
        time.sleep(self.settle)

    def stop(self):
        if self.pid is None:
            return
        pids = descendants(self.pid)
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not wait_until(lambda: not os.path.exists(self.pidfile) and
                          not any(alive(p) for p in pids), 30, 0.1):
            log(f"masqmail: pid {self.pid} did not stop within 30 s; killing its process tree")
            kill_pids(pids)
        self.pid = None

    def processes(self):
        return descendants(self.pid) if self.pid is not None else []


# ------------------------------------------------------------------ smtp-sink

class SmtpSink:
    """Postfix's smtp-sink(1) as the smarthost: "smtp-sink -u USER -c HOST:PORT
    BACKLOG", its output (the -c counters) in the file `out`.  port 0 = a free
    port chosen at start().  smtp-sink writes "sess=S quit=Q mesg=M" + CR to its
    unbuffered stdout after every session end, QUIT and final dot; messages()
    reads the last complete record of that file while it runs."""
    COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)[\r\n]")

    def __init__(self, out, port=0, host="127.0.0.1", user="nobody", backlog=1000,
                 exe="/usr/sbin/smtp-sink", extra=()):
        self.out = out
        self.port = port
        self.host = host
        self.user = user
        self.backlog = backlog
        self.exe = exe
        self.extra = list(extra)
        self.proc = None

    def argv(self):
        return [self.exe, "-u", self.user, "-c", *self.extra, f"{self.host}:{self.port}",
                str(self.backlog)]

    def start(self, timeout=10):
        if not self.port:
            self.port = free_port(self.host)
        if listening(self.port):
            raise BenchError(f"smtp-sink: port {self.port} is in use")
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(self.argv(), stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={"PATH": PATH_ENV})
        if not wait_until(lambda: listening(self.port) or self.proc.poll() is not None,
                          timeout):
            self.stop()
            raise BenchError(f"smtp-sink: nothing listens on {self.port} after {timeout} s")
        if self.proc.poll() is not None:
            self.proc = None
            with open(self.out, errors="replace") as f:
                raise BenchError(f"smtp-sink exited at start: {f.read().strip()[-300:]}")
        return self

    def counters(self):
        """-> {"sess", "quit", "mesg"} as last written (zeros before the first)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 256))
                tail = f.read()
        except FileNotFoundError:
            tail = b""
        m = None
        for m in self.COUNTERS.finditer(tail):
            pass
        if m is None:
            return {"sess": 0, "quit": 0, "mesg": 0}
        return {"sess": int(m.group(1)), "quit": int(m.group(2)), "mesg": int(m.group(3))}

    def messages(self):
        return self.counters()["mesg"]

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        wait_until(lambda: not listening(self.port), 5)
