#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Remote delivery, masqmail beside Postfix: flushing a queue to a smarthost.

A benchmark, not a test.  In one run, on the same file system, it measures for a
private masqmail instance and a private instance of Debian's Postfix how fast
each empties a queue of 2,000 (--messages) 4 KiB messages to a remote recipient
(bench@remote.example) into Postfix's smtp-sink on 127.0.0.1, its smarthost:

  flush     the messages are queued with delivery held (untimed, 4 submissions
            at a time), smtp-sink is started on a free port (a new sink for
            every test: "smtp-sink -u nobody -c 127.0.0.1:PORT 1000", which
            accepts everything, keeps nothing and counts), then the clock runs
            from the release until the MTA's queue is empty and the sink has
            counted every message (its -c "mesg=" counter, incremented at each
            final dot).  messages/s = messages / wall time.
            Postfix: relayhost = [127.0.0.1]:PORT, every message put on hold
              by cleanup (header_checks HOLD); timed: "postsuper -H ALL;
              postqueue -f", then its queue directories are polled (--poll)
              until empty.
            masqmail: permanent_routes = "DIR/sink.route" (mail_host =
              "127.0.0.1:PORT", tls = none), queued without daemons by
              "masqmail -C CONF -odq -t -oi"; timed: "masqmail -C CONF -q" (one
              queue run that exits when done), plus the poll that confirms the
              queue is empty and the sink complete.
  flush_qo  masqmail only: the same, but the route is query_routes.sink (no
            permanent route) and the run is "masqmail -C CONF -qo sink"; its
            ratio is against the same repetition's Postfix flush.

Every test starts its MTA fresh on an empty spool, after "sync" and a pause.
Durability is each MTA's default (Postfix: one fsync of the queue file at
cleanup; masqmail: the message file and its directory at commit, state files
replaced atomically); neither fsyncs anything for a removal.

Postfix needs root (postfix -c DIR start), so this script must run as root.
The masqmail side is a private instance (run_as_user) run as the system user
--user (default mmbench; created if missing), which also queues its mail;
Postfix's sendmail runs as root with MAIL_CONFIG.  smtp-sink runs as nobody.

If a masqmail step fails (e.g. a build whose remote delivery is not there
yet), the error is printed and masqmail's figures are "n/a"; Postfix's figures
are still reported.

usage: /usr/bin/python3 test/bench/remote_flush.py [--only postfix|masqmail]
       [--messages 2000] [--reps 1] [--tests flush,flush_qo]
       [--dir /var/tmp/mm-remotebench] [--masqmail PATH]
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
                      POSTFIX_MASTER, BenchError, MasqmailInstance, PostfixInstance, SmtpSink,
                      alive, count_queue_ids, descendants, ensure_user, kill_pids, loadavg, log,
                      proc_cmdline, wait_progress, wait_until)
from local_mail import as_user, queue_many  # noqa: E402
import benchlib  # noqa: E402

ARGS = None
RCPT = "bench@remote.example"   # not local on either side
ROUTE_NAME = "sink"             # query_routes.sink, -qo sink


# ------------------------------------------------------------------ helpers

def settle():
    benchlib.settle(ARGS.pause)


def make_message(path):
    """One 4,096-byte message (headers included), To: the remote recipient."""
    head = (f"From: Bench Sender <bench@{DOMAIN}>\n"
            f"To: {RCPT}\n"
            "Subject: masqmail remote-flush benchmark\n\n")
    line = "x" * 75 + "\n"
    need = 4096 - len(head)
    body = (line * (need // len(line) + 1))[:need - 1] + "\n"
    data = (head + body).encode()
    assert len(data) == 4096
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


def check_queue_fill(q, m):
    if q["failures"]:
        raise BenchError(f"{q['failures']} of {m} failed to queue: {q['last_error']}")


# ------------------------------------------------------------------ Postfix

POSTFIX_MAIN = """\
# remote_flush.py: private Postfix instance relaying everything to smtp-sink
""" + POSTFIX_MAIN_BASE + """
# nothing is local: every message goes to the relayhost (smtp-sink)
mydestination        =
relay_domains        =
local_recipient_maps =
alias_maps           =
alias_database       =
relayhost            = [127.0.0.1]:{sink}

# every message goes to the hold queue at cleanup time; released by
# "postsuper -H ALL; postqueue -f"
header_checks = regexp:{d}/etc/hold.regexp
"""

REMOTE_MASTER = ("# remote_flush.py: minimal master.cf, no chroot, an idle SMTP listener\n"
                 + POSTFIX_MASTER)


class Postfix(PostfixInstance):
    def __init__(self, base):
        super().__init__(os.path.join(base, "postfix"), ARGS.postfix_port, ARGS.pause,
                         ARGS.settle)
        self.sendmail = ["/usr/sbin/sendmail", "-t", "-oi"]

    def config(self, sink):
        return {"main.cf": POSTFIX_MAIN.format(d=self.d, domain=DOMAIN, sink=sink),
                "master.cf": REMOTE_MASTER.format(port=self.port, extra=""),
                "hold.regexp": "/^/ HOLD remote_flush.py\n"}

    def flush(self, msg, m, variant):
        assert variant == "flush"
        sink_port = ARGS.sink_port or benchlib.free_port()
        self.start(sink=sink_port)
        sink = None
        try:
            q = as_user(0, 0, lambda: queue_many(self.sendmail, self.env, msg, m))
            check_queue_fill(q, m)
            if not wait_until(lambda: self.held() >= m, 300, 0.1):
                raise BenchError(f"only {self.held()} of {m} held")
            sink = SmtpSink(os.path.join(self.d, "log", "sink.out"), port=sink_port,
                            exe=ARGS.smtp_sink).start()
            settle()
            t0 = time.perf_counter()
            subprocess.run(["postsuper", "-c", self.etc, "-H", "ALL"], check=True,
                           capture_output=True)
            t_release = time.perf_counter() - t0
            subprocess.run(["postqueue", "-c", self.etc, "-f"], check=True, capture_output=True)
            done = wait_progress(lambda: min(sink.messages(), m - self.queued()), m,
                                 ARGS.stall, ARGS.poll)
            dt = time.perf_counter() - t0
            c = sink.counters()
            if not done:
                raise BenchError(f"the sink got {c['mesg']} of {m}, {self.queued()} left in "
                                 f"the queue; see {self.d}/log/maillog")
            # Postfix keeps idle connections in scache: the sink counts a session
            # when it ends, so stop Postfix before taking its session count
            self.stop()
            time.sleep(0.5)
            c = sink.counters()
            return {"messages": m, "secs": dt, "msg_per_s": m / dt, "release_secs": t_release,
                    "sink": c, "queue_fill": q, "sink_port": sink_port,
                    "cmd": "postsuper -H ALL; postqueue -f; poll until the queue is empty "
                           "and the sink has every message"}
        finally:
            if sink:
                sink.stop()
            self.stop()


# ------------------------------------------------------------------ masqmail

class Masqmail(MasqmailInstance):
    def __init__(self, base, user, exe):
        super().__init__(os.path.join(base, "masqmail"), user, exe, ARGS.masqmail_port,
                         ARGS.pause, ARGS.settle)
        self.route = os.path.join(self.d, "sink.route")
        self.sendmail_odq = [exe, "-C", self.conf, "-odq", "-t", "-oi"]
        self.sink_port = None
        self.variant = "flush"

    def config(self):
        if self.variant == "flush":
            routes = f'permanent_routes = "{self.route}"\n'
        else:
            routes = f'query_routes.{ROUTE_NAME} = "{self.route}"\n'
        return super().config() + routes

    def prepare(self):
        super().prepare()
        with open(self.route, "w") as f:
            f.write("# remote_flush.py: smtp-sink on 127.0.0.1 as the smarthost\n"
                    f'mail_host = "127.0.0.1:{self.sink_port}"\n'
                    "tls = none\n")
        os.chmod(self.route, 0o644)
        os.chown(self.route, self.user.pw_uid, self.user.pw_gid)

    def queued(self):
        return count_queue_ids(os.path.join(self.spool, s) for s in ("new", "queue", "hold"))

    def ours(self):
        """Processes still running with our configuration file in their argv."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid() and alive(int(d)):
                if self.conf in proc_cmdline(int(d)):
                    out.append(int(d))
        return out

    def run_flush(self, argv):
        """argv as the instance user, in its own session; the whole tree is
        killed if it outlives --timeout. -> (exit status, output)"""
        u = self.user
        out = os.path.join(self.d, "log", "flush.out")
        with open(out, "wb") as f:
            p = subprocess.Popen(argv, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, user=u.pw_uid, group=u.pw_gid,
                                 extra_groups=[], start_new_session=True)
        try:
            rc = p.wait(ARGS.timeout)
        except subprocess.TimeoutExpired:
            kill_pids(descendants(p.pid))
            p.wait()
            raise BenchError(f"{' '.join(argv)}: still running after {ARGS.timeout:.0f} s "
                             "(killed)")
        with open(out, errors="replace") as f:
            return rc, f.read().strip()

    def flush(self, msg, m, variant):
        self.variant = variant
        self.sink_port = ARGS.sink_port or benchlib.free_port()
        self.prepare()  # no daemons: -odq commits to the spool by itself
        sink = None
        try:
            q = as_user(self.user.pw_uid, self.user.pw_gid,
                        lambda: queue_many(self.sendmail_odq, self.env, msg, m))
            check_queue_fill(q, m)
            if self.queued() != m:
                raise BenchError(f"{self.queued()} of {m} message files in the spool after -odq")
            sink = SmtpSink(os.path.join(self.d, "log", "sink.out"), port=self.sink_port,
                            exe=ARGS.smtp_sink).start()
            if variant == "flush":
                argv = [self.exe, "-C", self.conf, "-q"]
            else:
                argv = [self.exe, "-C", self.conf, "-qo", ROUTE_NAME]
            settle()
            t0 = time.perf_counter()
            rc, out = self.run_flush(argv)
            t_exit = time.perf_counter() - t0
            if rc != 0:
                raise BenchError(f"{' '.join(argv[0:1] + ['-C', 'CONF'] + argv[3:])}: exit {rc} "
                                 f"after {t_exit:.2f} s: {out[-400:]}; "
                                 f"the sink got {sink.messages()} of {m}")
            # the run has returned: the queue must be empty and the sink complete
            # (a short grace for removals still under way, nothing more)
            done = wait_progress(lambda: min(sink.messages(), m - self.queued()), m,
                                 min(ARGS.stall, 5.0), ARGS.poll)
            dt = time.perf_counter() - t0
            c = sink.counters()
            left = self.queued()
            if not done:
                raise BenchError(f"{' '.join(argv[0:1] + ['-C', 'CONF'] + argv[3:])} exited 0 "
                                 f"after {t_exit:.2f} s with {c['mesg']} of {m} at the sink "
                                 f"and {left} still queued"
                                 + (f" ({out[-300:]})" if out else ""))
            bp = self.run([self.exe, "-C", self.conf, "-bp"], timeout=60).stdout
            if "mail queue is empty" not in bp:
                raise BenchError(f"masqmail -bp after the run: {bp.strip()[-300:]}")
            return {"messages": m, "secs": dt, "msg_per_s": m / dt, "exit_secs": t_exit,
                    "sink": c, "queue_fill": q, "sink_port": self.sink_port,
                    "cmd": " ".join(["masqmail", "-C", "CONF"] + argv[3:])}
        finally:
            if sink:
                sink.stop()
            left = self.ours()
            if left:
                log(f"masqmail: processes of this instance still running after the run: "
                    f"{left}; killing them")
                kill_pids(left, signal.SIGTERM)
                if not wait_until(lambda: not any(alive(p) for p in left), 10, 0.1):
                    kill_pids(left)


# ------------------------------------------------------------------ main

ROWS = [  # masqmail's test, label, field, unit (Postfix's figure is always "flush")
    ("flush", "remote flush of {m} x 4 KiB to smtp-sink, masqmail -q", "msg_per_s", "msg/s"),
    ("flush", "remote flush of {m}, wall time, masqmail -q", "secs", "s"),
    ("flush_qo", "remote flush of {m} x 4 KiB, masqmail -qo NAME", "msg_per_s", "msg/s"),
    ("flush_qo", "remote flush of {m}, wall time, masqmail -qo NAME", "secs", "s"),
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
    per-repetition ratios (both MTAs measured a minute apart in one repetition)."""
    lines = ["| metric | masqmail | postfix | masqmail/postfix |", "|---|---|---|---|"]
    summary = {}
    for key, label, field, unit in ROWS:
        if key not in ARGS.tests:
            continue
        ours = values(reps, "masqmail", key, field)
        theirs = values(reps, "postfix", "flush", field)
        ratios = [a / b for a, b in zip(ours, theirs) if a is not None and b]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else ""
        summary[f"{key}.{field}"] = {"masqmail": ours, "postfix": theirs,
                                     "ratio": statistics.median(ratios) if ratios else None}
        lines.append(f"| {label.format(m=ARGS.messages)} [{unit}] | {cell(ours, unit)} "
                     f"| {cell(theirs, unit)} | {ratio} |")
    return "\n".join(lines), summary


def measure(mta, msg, res):
    keys = ["flush"] if mta.name == "postfix" else \
        [k for k in ("flush", "flush_qo") if k in ARGS.tests]
    for key in keys:
        what = f"{key}: {ARGS.messages} messages to smtp-sink"
        log(f"{mta.name}: {what} ...")
        try:
            r = mta.flush(msg, ARGS.messages, key)
        except (BenchError, OSError, subprocess.SubprocessError, RuntimeError) as e:
            log(f"{mta.name}: {what} FAILED: {e}")
            res[key] = {"error": str(e)}
            continue
        res[key] = r
        log(f"{mta.name}: {r['messages']} in {r['secs']:.2f} s = {r['msg_per_s']:.0f} msg/s "
            f"(sink: {r['sink']['mesg']} messages in {r['sink']['sess']} sessions)")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("postfix", "masqmail"), help="measure one MTA only")
    ap.add_argument("--messages", type=int, default=2000, help="messages flushed per test")
    ap.add_argument("--reps", type=int, default=1,
                    help="repetitions (MTA order rotated); figures are the median")
    ap.add_argument("--tests", default="flush,flush_qo",
                    help="masqmail's variants: flush (-q, permanent route), "
                         "flush_qo (-qo NAME, query_routes.NAME); Postfix always runs flush")
    ap.add_argument("--dir", default="/var/tmp/mm-remotebench",
                    help="parent of both MTAs' files; its postfix/ and masqmail/ are wiped per test")
    ap.add_argument("--masqmail", default=DEFAULT_MASQMAIL,
                    help="the masqmail front end (default: the build tree's)")
    ap.add_argument("--user", default="mmbench",
                    help="runs the masqmail instance (created if missing)")
    ap.add_argument("--smtp-sink", default="/usr/sbin/smtp-sink")
    ap.add_argument("--sink-port", type=int, default=0,
                    help="smtp-sink's port (default 0: a free port chosen per test)")
    ap.add_argument("--postfix-port", type=int, default=2635, help="Postfix's idle smtpd")
    ap.add_argument("--masqmail-port", type=int, default=2636,
                    help="masqmail's listen_addresses (no daemon listens during the test)")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds after sync before a test")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between Postfix's start and the first message")
    ap.add_argument("--poll", type=float, default=0.05, help="queue and sink poll interval")
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds one masqmail -q may take")
    ap.add_argument("--stall", type=float, default=30,
                    help="give up waiting for Postfix after this many seconds without progress")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--keep", action="store_true", help="leave the instances' files in --dir")
    ARGS = ap.parse_args()
    ARGS.tests = set(ARGS.tests.split(","))
    unknown = ARGS.tests - {"flush", "flush_qo"}
    if unknown:
        sys.exit(f"remote_flush.py: unknown tests {sorted(unknown)}")
    if os.geteuid() != 0:
        sys.exit("remote_flush.py: must run as root: Postfix's private instance "
                 "(postfix -c DIR start) needs root, and the masqmail user may be created")
    if ARGS.messages < 1 or ARGS.reps < 1:
        sys.exit("remote_flush.py: --messages and --reps must be positive")
    if ARGS.only != "masqmail" and not shutil.which("postfix", path=PATH_ENV):
        sys.exit("remote_flush.py: postfix is not installed (packaging/install-deps installs it)")
    if not os.access(ARGS.smtp_sink, os.X_OK):
        sys.exit(f"remote_flush.py: {ARGS.smtp_sink} missing (Debian's postfix package has it)")
    ARGS.masqmail = os.path.abspath(ARGS.masqmail)

    user = ensure_user(ARGS.user)
    base = os.path.abspath(ARGS.dir)
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)
    msg = os.path.join(base, "msg-4k.txt")
    make_message(msg)

    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": {"uname": " ".join(os.uname()), "nproc": os.cpu_count()},
               "dir": base, "args": {k: (sorted(v) if isinstance(v, set) else v)
                                     for k, v in vars(ARGS).items()}}
    t_all = time.perf_counter()
    results["load_before"] = loadavg()
    if results["load_before"] and results["load_before"] > 1.0:
        log(f"WARNING: load average {results['load_before']:.1f}: other work is running; "
            "the figures will be noisy")
    mtas, setup_errors = [], []
    if ARGS.only != "postfix":
        if os.access(ARGS.masqmail, os.X_OK):
            mtas.append(Masqmail(base, user, ARGS.masqmail))
        else:
            log(f"masqmail: {ARGS.masqmail} not found or not executable; its figures are n/a")
            setup_errors.append(("masqmail", "setup", f"{ARGS.masqmail} missing"))
    if ARGS.only != "masqmail":
        mtas.append(Postfix(base))
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

    print(f"\nremote flush, {results['date']}, {os.cpu_count()} CPUs, dir {base}, "
          f"{ARGS.reps} repetition(s), {ARGS.messages} x 4 KiB to {RCPT} via smtp-sink")
    for name, v in results["versions"].items():
        print(f"  {name}: {v}")
    print()
    print(text)
    sess = [(n, k, r["sink"]["sess"]) for rr in results["reps"] for n, res in rr.items()
            for k, r in res.items() if "sink" in r]
    if sess:
        print("\nSMTP sessions the sink saw per test: " +
              ", ".join(f"{n} {k} {s}" for n, k, s in sess))
    print(f"load average before/after: {results['load_before']} / {results['load_after']}")
    errors = list(setup_errors)
    for i, rr in enumerate(results["reps"]):
        for n, res in rr.items():
            errors += [(n, f"{k} (rep {i + 1})", r["error"]) for k, r in res.items()
                       if "error" in r]
    for n, k, e in errors:
        print(f"  n/a: {n} {k}: {e}")
    print(f"\ngoal: remote delivery msg/s masqmail/postfix >= 2.00; "
          f"total {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
