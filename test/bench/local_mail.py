#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Local mail, masqmail beside Postfix: submission latency and delivery throughput.

A benchmark, not a test.  In one run, on the same file system, it measures for a
private masqmail instance and a private instance of Debian's Postfix:

  submit    N sequential "sendmail -t -oi" calls of one 4 KiB message to a local
            user, each timed on its own (time.perf_counter around
            subprocess.run, no shell); median and p90 in ms.  Two variants:
              deliver  the daemons run normally and deliver each message into
                       the mbox while the next ones are submitted;
              queue    nothing is delivered (Postfix: header_checks HOLD;
                       masqmail: -odq), so only the submission path works.
  deliver   2,000 (--messages) 4 KiB messages queued while delivery is held
            (untimed), then released; wall time until all are in the user's
            mbox (checked by counting "From " lines); messages/s.
            Postfix: "postsuper -H ALL; postqueue -f", then poll until the
            queue is empty.  masqmail: "masqmail -C CONF -q" (one queue run
            that exits when done).
  disk      optional: the fsync ceiling of the same directory, from
            ../shared/bench/tools/fsyncbench.c if that file and gcc exist.

Every test starts its MTA fresh on an empty spool, after "sync" and a pause.
Durability is each MTA's default: Postfix fsyncs the maildrop file (postdrop)
and the queue file (cleanup), and local(8) fsyncs the mailbox before it
reports success; masqmail fsyncs the message file and its directory at commit
and the mailbox before success.

Postfix needs root (postfix -c DIR start), so this script must run as root.
The mail goes to a system user (--user, default mmbench; created if missing:
Postfix's local(8) never delivers as root).  The masqmail side is a private
instance (run_as_user) run as that same user.  Postfix's sendmail runs as
root (with MAIL_CONFIG, a non-root user would need alternate_config_directories
in /etc/postfix/main.cf).  Each MTA's timed loop runs in a child process that
already has the final uid, so both spawn their sendmail the same way.

If a masqmail step fails (e.g. a build without the daemons yet), the error is
printed and masqmail's figures are "n/a"; Postfix's figures are still reported.

usage: /usr/bin/python3 test/bench/local_mail.py [--only postfix|masqmail]
       [--n 200] [--messages 2000] [--dir /var/tmp/mm-bench] [--masqmail PATH]
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (DEFAULT_MASQMAIL, DOMAIN, PATH_ENV, POSTFIX_MAIN_BASE,  # noqa: E402
                      POSTFIX_MASTER, SOURCE_ROOT, BenchError, MasqmailInstance, PostfixInstance,
                      ensure_user, loadavg, log, wait_progress, wait_until)
import benchlib  # noqa: E402

ARGS = None


# ------------------------------------------------------------------ helpers

def count_mbox(path):
    """Messages in an mbox file: lines beginning with "From " (0 if missing)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    return data.count(b"\nFrom ") + (1 if data.startswith(b"From ") else 0)


def settle():
    benchlib.settle(ARGS.pause)


def make_message(path, user):
    """One 4,096-byte message (headers included), To: the local user."""
    head = (f"From: Bench Sender <bench@{DOMAIN}>\n"
            f"To: {user}@{DOMAIN}\n"
            "Subject: masqmail local-mail benchmark\n\n")
    line = "x" * 75 + "\n"
    need = 4096 - len(head)
    body = (line * (need // len(line) + 1))[:need - 1] + "\n"
    data = (head + body).encode()
    assert len(data) == 4096
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def as_user(uid, gid, func):
    """Runs func() in a forked child with uid/gid (root stays root), returns its
    JSON-able result.  The child then spawns its commands exactly like the
    other MTA's child (plain subprocess.run, no uid switch per call)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            if uid != 0:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            try:
                out = {"ok": func()}
            except Exception as e:  # reported by the parent
                out = {"error": f"{type(e).__name__}: {e}"}
            with os.fdopen(w, "w") as f:
                json.dump(out, f)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    if not text:
        raise BenchError("measuring child died")
    out = json.loads(text)
    if "error" in out:
        raise BenchError(out["error"])
    return out["ok"]


def time_calls(argv, env, msg, n):
    """n sequential calls of argv with msg on stdin; each one timed. -> dict"""
    lat, fails, last_err = [], 0, ""
    for _ in range(n):
        with open(msg, "rb") as f:
            t0 = time.perf_counter()
            p = subprocess.run(argv, stdin=f, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            lat.append(time.perf_counter() - t0)
        if p.returncode != 0:
            fails += 1
            last_err = p.stderr.decode(errors="replace").strip()[-300:]
            if fails >= 3 and fails == len(lat):
                raise RuntimeError(f"{argv[0]} fails (rc {p.returncode}): {last_err}")
    lat.sort()
    return {"n": n, "median_ms": 1000 * statistics.median(lat),
            "p90_ms": 1000 * lat[int(0.9 * (n - 1))], "min_ms": 1000 * lat[0],
            "max_ms": 1000 * lat[-1], "total_s": sum(lat), "failures": fails,
            "last_error": last_err}


def queue_many(argv, env, msg, n, jobs=4):
    """Submits n copies of msg, `jobs` at a time (untimed filling of a queue)."""
    running, done, fails, err = [], 0, 0, ""
    while done < n or running:
        while len(running) < jobs and done + len(running) < n:
            f = open(msg, "rb")
            running.append((subprocess.Popen(argv, stdin=f, env=env, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE), f))
        p, f = running.pop(0)
        _, e = p.communicate()
        f.close()
        done += 1
        if p.returncode != 0:
            fails += 1
            err = e.decode(errors="replace").strip()[-300:]
            if fails >= 3 and fails == done:
                for q, g in running:
                    q.wait()
                    g.close()
                raise RuntimeError(f"queueing fails (rc {p.returncode}): {err}")
    return {"queued": n - fails, "failures": fails, "last_error": err}


# ------------------------------------------------------------------ Postfix

POSTFIX_MAIN = """\
# local_mail.py: private Postfix instance with local(8) mailbox delivery
""" + POSTFIX_MAIN_BASE + """
# local delivery: local(8) appends to mbox files in mail_spool_directory
# (it fsyncs the mailbox before reporting success; that is its default)
mydestination        = $myhostname, localhost
local_transport      = local
local_recipient_maps =
alias_maps           =
alias_database       =
mail_spool_directory = {d}/mail
# no comsat notification per delivery (masqmail has no biff either)
biff = no
{hold}"""

POSTFIX_HOLD = """
# every message goes to the hold queue at cleanup time; released by
# "postsuper -H ALL; postqueue -f"
header_checks = regexp:{d}/etc/hold.regexp
"""

LOCAL_MASTER = ("# local_mail.py: minimal master.cf, no chroot, an idle SMTP listener "
                "as masqmail has\n" + POSTFIX_MASTER)
LOCAL_SERVICE = "local     unix  -       n       n       -       -       local\n"


class Postfix(PostfixInstance):
    subdirs = PostfixInstance.subdirs + ("mail",)

    def __init__(self, base, user):
        super().__init__(os.path.join(base, "postfix"), ARGS.postfix_port, ARGS.pause,
                         ARGS.settle)
        self.user = user
        self.mbox = os.path.join(self.d, "mail", user.pw_name)
        self.sendmail = ["/usr/sbin/sendmail", "-t", "-oi"]

    def config(self, hold):
        return {"main.cf": POSTFIX_MAIN.format(d=self.d, domain=DOMAIN,
                                               hold=POSTFIX_HOLD.format(d=self.d) if hold
                                               else ""),
                "master.cf": LOCAL_MASTER.format(port=self.port, extra=LOCAL_SERVICE),
                "hold.regexp": "/^/ HOLD local_mail.py\n"}

    def prepare(self, hold):
        super().prepare(hold=hold)
        os.chmod(os.path.join(self.d, "mail"), 0o1777)  # as /var/mail: local(8) creates USER

    def start(self, hold):
        super().start(hold=hold)

    def run_timed(self, func):
        return as_user(0, 0, func)

    # -- tests
    def submit(self, msg, n, deliver):
        self.start(hold=not deliver)
        try:
            res = self.run_timed(lambda: time_calls(self.sendmail, self.env, msg, n))
            if res["failures"]:
                raise BenchError(f"{res['failures']} of {n} submissions failed: "
                                 f"{res['last_error']}")
            if deliver:
                ok = (wait_progress(lambda: count_mbox(self.mbox), n, ARGS.stall)
                      and wait_until(lambda: self.queued() == 0, ARGS.stall))
                res["delivered"] = count_mbox(self.mbox)
                if not ok:
                    raise BenchError(f"only {res['delivered']} of {n} delivered")
            else:
                wait_until(lambda: self.held() >= n, 60, 0.1)
                res["held"] = self.held()
                res["delivered"] = count_mbox(self.mbox)
                if res["held"] != n:
                    raise BenchError(f"{res['held']} of {n} in the hold queue")
            return res
        finally:
            self.stop()

    def deliver(self, msg, m):
        self.start(hold=True)
        try:
            q = self.run_timed(lambda: queue_many(self.sendmail, self.env, msg, m))
            if not wait_until(lambda: self.held() >= m, 300, 0.1):
                raise BenchError(f"only {self.held()} of {m} held")
            if count_mbox(self.mbox) != 0:
                raise BenchError("mail was delivered while held")
            settle()
            t0 = time.perf_counter()
            subprocess.run(["postsuper", "-c", self.etc, "-H", "ALL"], check=True,
                           capture_output=True)
            t_release = time.perf_counter() - t0
            subprocess.run(["postqueue", "-c", self.etc, "-f"], check=True, capture_output=True)
            empty = wait_progress(lambda: m - self.queued(), m, ARGS.stall, ARGS.poll)
            dt = time.perf_counter() - t0
            got = count_mbox(self.mbox)
            if not empty or got != m:
                raise BenchError(f"{got} of {m} in the mbox, {self.queued()} left in the queue")
            return {"messages": m, "secs": dt, "msg_per_s": m / dt,
                    "release_secs": t_release, "queue_fill": q,
                    "cmd": "postsuper -H ALL; postqueue -f; poll until the queue is empty"}
        finally:
            self.stop()


# ------------------------------------------------------------------ masqmail

class Masqmail(MasqmailInstance):
    def __init__(self, base, user, exe):
        super().__init__(os.path.join(base, "masqmail"), user, exe, ARGS.masqmail_port,
                         ARGS.pause, ARGS.settle)
        self.mbox = os.path.join(self.d, "mail", user.pw_name)
        self.sendmail = [exe, "-C", self.conf, "-t", "-oi"]
        self.sendmail_odq = [exe, "-C", self.conf, "-odq", "-t", "-oi"]

    def run_timed(self, func):
        return as_user(self.user.pw_uid, self.user.pw_gid, func)

    # -- tests
    def submit(self, msg, n, deliver):
        self.start()
        try:
            argv = self.sendmail if deliver else self.sendmail_odq
            res = self.run_timed(lambda: time_calls(argv, self.env, msg, n))
            if res["failures"]:
                raise BenchError(f"{res['failures']} of {n} submissions failed: "
                                 f"{res['last_error']}")
            if deliver:
                ok = wait_progress(lambda: count_mbox(self.mbox), n, ARGS.stall)
                res["delivered"] = count_mbox(self.mbox)
                if not ok:
                    raise BenchError(f"only {res['delivered']} of {n} delivered")
            else:
                res["delivered"] = count_mbox(self.mbox)
            return res
        finally:
            self.stop()

    def deliver(self, msg, m):
        self.prepare()  # no daemons: -odq commits to the spool by itself
        q = self.run_timed(lambda: queue_many(self.sendmail_odq, self.env, msg, m))
        if q["failures"]:
            raise BenchError(f"{q['failures']} of {m} failed to queue: {q['last_error']}")
        if count_mbox(self.mbox) != 0:
            raise BenchError("mail was delivered by -odq")
        settle()
        t0 = time.perf_counter()
        self.run([self.exe, "-C", self.conf, "-q"], timeout=ARGS.timeout)
        dt = time.perf_counter() - t0
        got = count_mbox(self.mbox)
        if got != m:
            raise BenchError(f"masqmail -q finished after {dt:.2f}s with {got} of {m} "
                             "in the mbox")
        return {"messages": m, "secs": dt, "msg_per_s": m / dt, "queue_fill": q,
                "cmd": "masqmail -C CONF -q"}


# ------------------------------------------------------------------ disk ceiling

def disk_ceiling(base):
    src = os.path.join(SOURCE_ROOT, "..", "shared", "bench", "tools", "fsyncbench.c")
    if not (os.path.exists(src) and shutil.which("gcc")):
        return None
    exe = os.path.join(base, "fsyncbench")
    r = subprocess.run(["gcc", "-O2", "-pthread", "-o", exe, src], capture_output=True)
    if r.returncode != 0:
        return None
    out = {}
    d = os.path.join(base, "fsynctest")
    for mode in ("queue", "fsync"):
        settle()
        r = subprocess.run([exe, d, "2", "1", mode], capture_output=True, text=True)
        if r.returncode == 0:
            out[mode] = float(r.stdout.split()[0])
    shutil.rmtree(d, ignore_errors=True)
    return out


# ------------------------------------------------------------------ main

ROWS = [  # key, label, field, unit
    ("submit_deliver", "sendmail -t -oi 4 KiB, delivering, median", "median_ms", "ms"),
    ("submit_deliver", "sendmail -t -oi 4 KiB, delivering, p90", "p90_ms", "ms"),
    ("submit_queue", "sendmail -t -oi 4 KiB, held/-odq, median", "median_ms", "ms"),
    ("submit_queue", "sendmail -t -oi 4 KiB, held/-odq, p90", "p90_ms", "ms"),
    ("deliver", "local delivery of {m} x 4 KiB to one mbox", "msg_per_s", "msg/s"),
    ("deliver", "local delivery of {m}, wall time", "secs", "s"),
]


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "msg/s":
        return f"{v:.0f}"
    return f"{v:.2f}"


def values(reps, mta, key, field):
    out = []
    for rep in reps:
        r = rep.get(mta, {}).get(key)
        out.append(r.get(field) if isinstance(r, dict) else None)
    return out


def cell(vals, unit):
    ok = [v for v in vals if v is not None]
    if not ok:
        return "n/a"
    if len(ok) == 1:
        return fmt(ok[0], unit)
    return f"{fmt(statistics.median(ok), unit)} ({fmt(min(ok), unit)}–{fmt(max(ok), unit)})"


def table(reps):
    """Median over repetitions (min–max); the ratio is the median of the
    per-repetition ratios (both MTAs measured minutes apart in one repetition)."""
    lines = ["| metric | masqmail | postfix | masqmail/postfix |", "|---|---|---|---|"]
    summary = {}
    for key, label, field, unit in ROWS:
        ours = values(reps, "masqmail", key, field)
        theirs = values(reps, "postfix", key, field)
        ratios = [a / b for a, b in zip(ours, theirs) if a is not None and b]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else ""
        summary[f"{key}.{field}"] = {"masqmail": ours, "postfix": theirs,
                                     "ratio": statistics.median(ratios) if ratios else None}
        lines.append(f"| {label.format(m=ARGS.messages)} [{unit}] | {cell(ours, unit)} "
                     f"| {cell(theirs, unit)} | {ratio} |")
    return "\n".join(lines), summary


def measure(mta, msg, res):
    for key, what, fn in (
            ("submit_deliver", f"{ARGS.n} x sendmail, delivering",
             lambda: mta.submit(msg, ARGS.n, deliver=True)),
            ("submit_queue", f"{ARGS.n} x sendmail, held/-odq",
             lambda: mta.submit(msg, ARGS.n, deliver=False)),
            ("deliver", f"delivery of {ARGS.messages}",
             lambda: mta.deliver(msg, ARGS.messages))):
        if key not in ARGS.tests:
            continue
        log(f"{mta.name}: {what} ...")
        try:
            r = fn()
        except (BenchError, OSError, subprocess.SubprocessError, RuntimeError) as e:
            log(f"{mta.name}: {what} FAILED: {e}")
            res[key] = {"error": str(e)}
            continue
        res[key] = r
        if "median_ms" in r:
            log(f"{mta.name}: median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms, "
                f"failures {r['failures']}, delivered {r.get('delivered')}")
        else:
            log(f"{mta.name}: {r['messages']} in {r['secs']:.2f} s = {r['msg_per_s']:.0f} msg/s")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("postfix", "masqmail"), help="measure one MTA only")
    ap.add_argument("--n", type=int, default=200, help="sendmail calls per submission test")
    ap.add_argument("--messages", type=int, default=2000, help="messages in the delivery test")
    ap.add_argument("--reps", type=int, default=1,
                    help="repetitions (MTA order rotated); figures are the median")
    ap.add_argument("--dir", default="/var/tmp/mm-bench",
                    help="parent of both MTAs' files; its postfix/ and masqmail/ are wiped per test")
    ap.add_argument("--masqmail", default=DEFAULT_MASQMAIL,
                    help="the masqmail front end (default: the build tree's)")
    ap.add_argument("--user", default="mmbench", help="local recipient (created if missing)")
    ap.add_argument("--tests", default="submit_deliver,submit_queue,deliver",
                    help="comma-separated subset of submit_deliver,submit_queue,deliver")
    ap.add_argument("--postfix-port", type=int, default=2625)
    ap.add_argument("--masqmail-port", type=int, default=2626)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds after sync before a test")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between an MTA's start and the first message")
    ap.add_argument("--poll", type=float, default=0.05, help="Postfix queue poll interval")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds one masqmail -q may take")
    ap.add_argument("--stall", type=float, default=30,
                    help="give up waiting for deliveries after this many seconds without progress")
    ap.add_argument("--no-disk", action="store_true", help="skip the fsync ceiling")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--keep", action="store_true", help="leave the instances' files in --dir")
    ARGS = ap.parse_args()
    ARGS.tests = set(ARGS.tests.split(","))
    unknown = ARGS.tests - {"submit_deliver", "submit_queue", "deliver"}
    if unknown:
        sys.exit(f"local_mail.py: unknown tests {sorted(unknown)}")

    if os.geteuid() != 0:
        sys.exit("local_mail.py: must run as root: Postfix's private instance "
                 "(postfix -c DIR start) needs root, and the recipient user may be created")
    if ARGS.n < 1 or ARGS.messages < 1 or ARGS.reps < 1:
        sys.exit("local_mail.py: --n, --messages and --reps must be positive")
    if ARGS.only != "masqmail" and not shutil.which("postfix", path=PATH_ENV):
        sys.exit("local_mail.py: postfix is not installed (packaging/install-deps installs it)")
    ARGS.masqmail = os.path.abspath(ARGS.masqmail)

    user = ensure_user(ARGS.user, "the local mail recipient")
    base = os.path.abspath(ARGS.dir)
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)
    msg = os.path.join(base, "msg-4k.txt")
    make_message(msg, user.pw_name)

    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": {"uname": " ".join(os.uname()), "nproc": os.cpu_count()},
               "dir": base, "args": {k: (sorted(v) if isinstance(v, set) else v)
                                     for k, v in vars(ARGS).items()}}
    t_all = time.perf_counter()
    results["load_before"] = loadavg()
    if results["load_before"] and results["load_before"] > 1.0:
        log(f"WARNING: load average {results['load_before']:.1f}: other work is running; "
            "the figures will be noisy")
    if not ARGS.no_disk:
        log("disk ceiling (fsyncbench, 1 thread, 2 s per mode) ...")
        results["disk"] = disk_ceiling(base)
        if results["disk"]:
            log(f"disk: {results['disk']}")
    mtas, setup_errors = [], []
    if ARGS.only != "postfix":
        if os.access(ARGS.masqmail, os.X_OK):
            mtas.append(Masqmail(base, user, ARGS.masqmail))
        else:
            log(f"masqmail: {ARGS.masqmail} not found or not executable; its figures are n/a")
            setup_errors.append(("masqmail", "setup", f"{ARGS.masqmail} missing"))
    if ARGS.only != "masqmail":
        mtas.append(Postfix(base, user))
    results["versions"] = {}
    for m in mtas:
        try:
            results["versions"][m.name] = m.version()
        except OSError as e:
            results["versions"][m.name] = f"n/a ({e})"
    results["reps"] = []

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        for rep in range(ARGS.reps):
            if ARGS.reps > 1:
                log(f"=== repetition {rep + 1}/{ARGS.reps}")
            rr = {}
            results["reps"].append(rr)
            order = mtas[rep % len(mtas):] + mtas[:rep % len(mtas)] if mtas else []
            for m in order:
                measure(m, msg, rr.setdefault(m.name, {}))
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    finally:
        for m in mtas:
            m.stop()
    results["total_s"] = time.perf_counter() - t_all
    results["load_after"] = loadavg()
    if not ARGS.keep:
        for m in mtas:
            shutil.rmtree(m.d, ignore_errors=True)
    text, results["summary"] = table(results["reps"])
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(results, f, indent=1)

    print(f"\nlocal mail, {results['date']}, {os.cpu_count()} CPUs, dir {base}, "
          f"{ARGS.reps} repetition(s), {ARGS.n} sendmail calls, {ARGS.messages} delivered")
    for name, v in results["versions"].items():
        print(f"  {name}: {v}")
    print()
    print(text)
    disk = results.get("disk")
    if disk:
        print(f"\ndisk ceiling in {base} (fsyncbench, 1 thread, 4 KiB): "
              f"create+write+fsync+rename+fsync(dir) {disk.get('queue', 0):.0f}/s, "
              f"create+write+fsync {disk.get('fsync', 0):.0f}/s")
    print(f"load average before/after: {results['load_before']} / {results['load_after']}")
    errors = list(setup_errors)
    for i, rr in enumerate(results["reps"]):
        for n, res in rr.items():
            errors += [(n, f"{k} (rep {i + 1})", r["error"]) for k, r in res.items()
                       if "error" in r]
    for n, k, e in errors:
        print(f"  n/a: {n} {k}: {e}")
    print(f"\ngoals: submission median masqmail/postfix <= 0.50, "
          f"delivery msg/s masqmail/postfix >= 2.00; total {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
