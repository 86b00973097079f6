#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""SMTP accept rate and listener memory, masqmail beside Postfix.

A benchmark, not a test.  In one run it measures for a private masqmail
instance and a private instance of Debian's Postfix, both listening on
127.0.0.1 and keeping every accepted message in their spool:

  accept    smtp-source -s S -l L -m M -f a@example.org -t b@example.net
            127.0.0.1:PORT, for L = 4096 and 65536 bytes, S = 1 session
            (M = --msgs1, 300) and 20 sessions (M = --msgs, 1000), a new
            connection per message; plus L = 4096 with -d (one connection per
            session, reused) for 1 and 20 sessions.  msg/s = M / wall time of
            smtp-source; afterwards the queue must hold exactly M messages.
  memory    fresh (--idle-settle, 2 s, after the start has settled) and with
            500 (--conns) idle connections (opened by this script, each has
            read its 220 greeting and then says nothing; measured --idle-settle after
            they are all open): VmRSS of masqmail's smtp-listener process(es),
            and for context VmRSS and PSS summed over each MTA's whole process
            tree.  Postfix as configured serves at most 100 connections at once
            (default_process_limit); the others wait in its listen queue
            without a greeting: the table says how many were greeted.

Every test starts its MTA fresh on an empty spool, after "sync" and a pause,
and stops it afterwards.  The MTA order is rotated every repetition; the ratio
column is the median of the per-repetition ratios.

Postfix: "postfix -c DIR start" (root), nothing local, every message put on
hold by cleanup (header_checks, /^/ HOLD), no DNS, its default durable queue
(cleanup fsyncs the queue file before smtpd answers 250).  masqmail: a
run_as_user instance run as --user (mmbench), "masqmail -C CONF -bd -q30m";
b@example.net is not local and nothing delivers remote mail, so each message
stays queued (the equivalent of Postfix's hold).  Relay from 127.0.0.1 is
allowed by masqmail's default.

If masqmail fails (no listener on its port within --listen-wait seconds, e.g. a
build without smtp-listener), the error is printed and its figures are "n/a";
Postfix's figures are still reported.

usage: sudo /usr/bin/python3 test/bench/smtp_accept.py [--reps 3] [--only postfix|masqmail]
       [--msgs 1000] [--msgs1 300] [--dir /var/tmp/mm-smtpbench] [--masqmail PATH]
"""
import argparse
import datetime
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (DEFAULT_MASQMAIL, DOMAIN, PATH_ENV, POSTFIX_MAIN_BASE,  # noqa: E402
                      POSTFIX_MASTER, BenchError, MasqmailInstance, PostfixInstance,
                      ensure_user, listening, loadavg, log, mem_of, proc_cmdline,
                      proc_comm, wait_until)

ARGS = None
FROM, TO = "a@example.org", "b@example.net"
MIB = 1024.0

# key: (size, sessions (1 or --sessions), reuse)
ACCEPT = {
    "accept_4k_s1": (4096, 1, False),
    "accept_64k_s1": (65536, 1, False),
    "accept_4k_s20": (4096, 20, False),
    "accept_64k_s20": (65536, 20, False),
    "accept_4k_s1_reuse": (4096, 1, True),
    "accept_4k_s20_reuse": (4096, 20, True),
}
TESTS = ["memory"] + list(ACCEPT)


# ------------------------------------------------------------------ Postfix

POSTFIX_MAIN = """\
# smtp_accept.py: private Postfix instance, nothing local, every message held
""" + POSTFIX_MAIN_BASE + """smtp_host_lookup = native

# nothing is local: every recipient would relay to the smarthost, which is
# never contacted because every message is held
mydestination        =
relay_domains        =
local_recipient_maps =
alias_maps           =
alias_database       =
relayhost            = [127.0.0.1]:2600

# every message goes to the hold queue at cleanup time
header_checks = regexp:{d}/etc/hold.regexp
"""


class Postfix(PostfixInstance):
    def __init__(self, base):
        super().__init__(os.path.join(base, "postfix"), ARGS.postfix_port, ARGS.pause,
                         ARGS.settle)

    def config(self):
        return {"main.cf": POSTFIX_MAIN.format(d=self.d, domain=DOMAIN),
                "master.cf": ("# smtp_accept.py: minimal master.cf, no chroot\n"
                              + POSTFIX_MASTER.format(port=self.port, extra="")),
                "hold.regexp": "/^/ HOLD smtp_accept.py\n"}

    def memory(self):
        tree = mem_of(self.processes())
        return {"tree_rss_mib": tree["rss_kib"] / MIB, "tree_pss_mib": tree["pss_kib"] / MIB,
                "procs": tree["procs"]}

    def check_queue(self, m):
        """-> (number queued in maildrop, incoming, active, deferred, hold; a
        problem or ""), waiting up to 10 s for m (cleanup has filed each one
        before smtpd's 250, so this normally returns at once)."""
        wait_until(lambda: self.queued() >= m, 10, 0.05)
        return self.queued(), ""


# ------------------------------------------------------------------ masqmail

QUEUE_ID = re.compile(r"^[0-9]{10}\.[0-9a-f]{16}$")


class NoListener(BenchError):
    """masqmail started but nothing listens on its port: its remaining tests are skipped."""


class Masqmail(MasqmailInstance):
    def __init__(self, base, user, exe):
        super().__init__(os.path.join(base, "masqmail"), user, exe, ARGS.masqmail_port,
                         ARGS.pause, ARGS.settle)

    def start(self):
        super().start()
        if not wait_until(lambda: listening(self.port), ARGS.listen_wait, 0.05):
            self.stop()
            raise NoListener(f"nothing listens on 127.0.0.1:{self.port} within "
                             f"{ARGS.listen_wait:g} s of \"masqmail -bd\" (no smtp-listener?)")

    def queued(self):
        """Committed message files (doc/spool-format.md: the name is the queue id;
        ID.st state files and tmp/ are not counted) in new/, queue/ and hold/."""
        n = 0
        for sub in ("new", "queue", "hold"):
            try:
                n += sum(1 for e in os.listdir(os.path.join(self.spool, sub))
                         if QUEUE_ID.match(e))
            except FileNotFoundError:
                pass
        return n

    def listed(self):
        """Messages listed by "masqmail -C CONF -bp --json" (one JSON object a line)."""
        r = self.run([self.exe, "-C", self.conf, "-bp", "--json"], timeout=120)
        return sum(1 for line in r.stdout.splitlines() if line.strip().startswith("{"))

    def check_queue(self, m):
        """-> (message files queued; a problem or "").
        qmgr renames new/ID to queue/ID; a count taken during a rename may be off
        by one for a moment, so wait until it settles at m; then cross-check
        with the queue listing, which reads every envelope (not timed)."""
        wait_until(lambda: self.queued() == m, 10, 0.05)
        q = self.queued()
        # a listing taken while qmgr moves new/ID to queue/ID can miss that one
        # message, so the listing too gets a few tries
        listed = []
        try:
            wait_until(lambda: listed.append(self.listed()) or listed[-1] == q, 5, 0.2)
            note = "" if listed[-1] == q else f"; masqmail -bp --json lists {listed[-1]}"
        except (BenchError, OSError, subprocess.SubprocessError) as e:
            note = f"; masqmail -bp --json failed: {e}"
        return q, note

    def listener_pids(self):
        """The smtp-listener process(es): in the supervisor's tree, by comm or by
        argv[0]; else any process of the instance user called so."""
        def is_listener(p):
            argv = proc_cmdline(p)
            return (proc_comm(p) == "smtp-listener" or
                    (argv and os.path.basename(argv[0]) == "smtp-listener"))
        pids = [p for p in self.processes() if is_listener(p)]
        if pids:
            return pids
        for d in os.listdir("/proc"):
            if d.isdigit() and is_listener(int(d)):
                try:
                    if os.stat(f"/proc/{d}").st_uid == self.user.pw_uid:
                        pids.append(int(d))
                except OSError:
                    pass
        return pids

    def memory(self):
        pids = self.listener_pids()
        if not pids:
            raise BenchError("no smtp-listener process found (comm or argv[0])")
        lst = mem_of(pids)
        tree = mem_of(set(self.processes()) | set(pids))
        return {"listener_rss_mib": lst["rss_kib"] / MIB,
                "listener_pss_mib": lst["pss_kib"] / MIB, "listener_procs": lst["procs"],
                "tree_rss_mib": tree["rss_kib"] / MIB, "tree_pss_mib": tree["pss_kib"] / MIB,
                "procs": tree["procs"]}


# ------------------------------------------------------------------ tests

def smtp_source(port, size, sessions, msgs, reuse):
    cmd = [ARGS.smtp_source, "-s", str(sessions), "-l", str(size), "-m", str(msgs),
           "-f", FROM, "-t", TO]
    if reuse:
        cmd.append("-d")
    cmd.append(f"127.0.0.1:{port}")
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           timeout=ARGS.timeout)
        rc, out = r.returncode, (r.stdout + r.stderr).strip()
    except subprocess.TimeoutExpired as e:
        rc, out = None, f"timed out after {ARGS.timeout:g} s: {e.stderr or ''}"
    return time.perf_counter() - t0, rc, out[-400:], cmd


def test_accept(mta, key):
    size, sessions, reuse = ACCEPT[key]
    sessions = ARGS.sessions if sessions > 1 else 1
    msgs = ARGS.msgs if sessions > 1 else ARGS.msgs1
    mta.start()
    try:
        dt, rc, out, cmd = smtp_source(mta.port, size, sessions, msgs, reuse)
        q, note = mta.check_queue(msgs)
        res = {"size": size, "sessions": sessions, "reuse": reuse, "msgs": msgs, "secs": dt,
               "msg_per_s": msgs / dt, "rc": rc, "queued": q,
               "cmd": " ".join(cmd[:-1] + ["127.0.0.1:PORT"])}
        if rc != 0 or q != msgs or note:
            res["error"] = (f"smtp-source exit {rc}, {q} of {msgs} queued{note}"
                            + (f": {out}" if out else ""))
        return res
    finally:
        mta.stop()


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def open_idle(port, n):
    """Opens n TCP connections to 127.0.0.1:port, at most --conn-window of them
    waiting for their greeting at a time, and reads each one's greeting.  When
    no greeting came for --banner-stall seconds (a server that serves only so
    many connections), the rest are opened without waiting.  -> (sockets,
    counts); the sockets stay open and idle."""
    raise_fd_limit(n + 256)
    sel = selectors.DefaultSelector()
    socks, buf = [], {}
    c = {"conns": n, "banners": 0, "refused_or_closed": 0, "other_reply": 0, "no_reply": 0}

    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))  # EINPROGRESS; the outcome shows up as readable
        socks.append(s)
        buf[s] = b""
        sel.register(s, selectors.EVENT_READ)
        c["no_reply"] += 1

    def collect(timeout):
        got = 0
        for key, _ in sel.select(timeout=timeout):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                buf[s] += data
                if not re.search(rb"^\d{3} [^\n]*\n", buf[s], re.M):
                    continue  # a continued (220-) or partial greeting
            sel.unregister(s)
            c["no_reply"] -= 1
            got += 1
            if not data:
                c["refused_or_closed"] += 1
            elif buf[s].startswith(b"220"):
                c["banners"] += 1
            else:
                c["other_reply"] += 1
        return got

    last = time.monotonic()
    while len(socks) < n or c["no_reply"]:
        while len(socks) < n and c["no_reply"] < ARGS.conn_window:
            connect()
        if collect(0.1):
            last = time.monotonic()
        elif time.monotonic() - last > ARGS.banner_stall:
            break
    if len(socks) < n:
        while len(socks) < n:
            connect()
        collect(0.5)
    sel.close()
    return socks, c


def still_open(socks):
    """How many of socks the server has not closed (no EOF or error pending)."""
    n = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                continue  # EOF
        except BlockingIOError:
            pass  # nothing to read: open and idle
        except OSError:
            continue
        n += 1
    return n


def test_memory(mta):
    mta.start()
    socks = []
    try:
        time.sleep(ARGS.idle_settle)
        res = {"fresh": mta.memory()}
        t0 = time.perf_counter()
        socks, counts = open_idle(mta.port, ARGS.conns)
        counts["open_secs"] = time.perf_counter() - t0
        time.sleep(ARGS.idle_settle)
        res["idle"] = mta.memory()
        counts["still_open"] = still_open(socks)
        res["idle"].update(counts)
        if counts["banners"] < ARGS.conns:
            res["note"] = (f"{counts['banners']} of {ARGS.conns} connections got a 220 "
                           f"greeting ({counts['refused_or_closed']} refused or closed, "
                           f"{counts['other_reply']} other replies, {counts['no_reply']} "
                           f"no reply within {ARGS.banner_stall:g} s)")
        return res
    finally:
        for s in socks:
            s.close()
        mta.stop()


def measure(mta, res):
    for key in TESTS:
        if key not in ARGS.tests:
            continue
        if getattr(mta, "unusable", None):
            res[key] = {"error": mta.unusable, "skipped": True}
            continue
        log(f"{mta.name}: {key} ...")
        try:
            r = test_memory(mta) if key == "memory" else test_accept(mta, key)
        except (BenchError, OSError, subprocess.SubprocessError, RuntimeError) as e:
            log(f"{mta.name}: {key} FAILED: {e}")
            res[key] = {"error": str(e)}
            if isinstance(e, NoListener):
                mta.unusable = str(e)
                log(f"{mta.name}: its other tests are skipped (n/a)")
            continue
        res[key] = r
        if key == "memory":
            f, i = r["fresh"], r["idle"]
            lst = (f"smtp-listener RSS {f['listener_rss_mib']:.1f} -> "
                   f"{i['listener_rss_mib']:.1f} MiB ({i['listener_procs']} process(es)); "
                   if "listener_rss_mib" in f else "")
            log(f"{mta.name}: {lst}tree RSS {f['tree_rss_mib']:.1f} -> {i['tree_rss_mib']:.1f} "
                f"MiB, PSS {f['tree_pss_mib']:.1f} -> {i['tree_pss_mib']:.1f} MiB, "
                f"{f['procs']} -> {i['procs']} processes; {i['banners']} of {i['conns']} "
                f"greeted, {i['still_open']} still open")
            if r.get("note"):
                log(f"{mta.name}: note: {r['note']}")
        else:
            log(f"{mta.name}: {r['msgs']} in {r['secs']:.2f} s = {r['msg_per_s']:.0f} msg/s, "
                f"queued {r['queued']}" + (f"; ERROR: {r['error']}" if "error" in r else ""))


# ------------------------------------------------------------------ table

def row_defs():
    n = ARGS.conns
    rows = []
    for key, (size, sessions, reuse) in ACCEPT.items():
        s = ARGS.sessions if sessions > 1 else 1
        m = ARGS.msgs if sessions > 1 else ARGS.msgs1
        label = (f"SMTP accept {size // 1024} KiB, {s} session{'s' if s > 1 else ''}"
                 f"{', reused conn (-d)' if reuse else ''}, {m} msgs")
        rows.append((key, "msg_per_s", label, "msg/s", "ratio>="))
    rows += [
        ("memory", "fresh.listener_rss_mib", "smtp-listener VmRSS, fresh", "MiB", None),
        ("memory", "idle.listener_rss_mib", f"smtp-listener VmRSS, {n} idle connections",
         "MiB", "below"),
        ("memory", "fresh.tree_rss_mib", "whole process tree RSS, fresh", "MiB", None),
        ("memory", "fresh.tree_pss_mib", "whole process tree PSS, fresh", "MiB", None),
        ("memory", "idle.tree_rss_mib", f"whole process tree RSS, {n} idle connections",
         "MiB", None),
        ("memory", "idle.tree_pss_mib", f"whole process tree PSS, {n} idle connections",
         "MiB", None),
        ("memory", "fresh.procs", "processes, fresh", "", None),
        ("memory", "idle.procs", f"processes, {n} idle connections", "", None),
        ("memory", "idle.banners", f"idle connections greeted with 220 (of {n})", "", None),
    ]
    return rows


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "MiB":
        return f"{v:.1f}"
    return f"{v:.0f}"


def field_of(r, field):
    if not isinstance(r, dict) or "error" in r:
        return None
    for part in field.split("."):
        if not isinstance(r, dict) or part not in r:
            return None
        r = r[part]
    return r


def values(reps, mta, key, field):
    return [field_of(rep.get(mta, {}).get(key), field) for rep in reps]


def cell(vals, unit, absent="n/a"):
    ok = [v for v in vals if v is not None]
    if not ok:
        return absent
    if len(ok) == 1 or fmt(min(ok), unit) == fmt(max(ok), unit):
        return fmt(ok[0], unit)
    return f"{fmt(statistics.median(ok), unit)} ({fmt(min(ok), unit)}–{fmt(max(ok), unit)})"


def table(reps):
    """Median over repetitions (min–max); the ratio is the median of the
    per-repetition ratios (both MTAs measured in one repetition)."""
    lines = ["| metric | masqmail | postfix | masqmail/postfix | goal |",
             "|---|---|---|---|---|"]
    summary, goals = {}, []
    for key, field, label, unit, goal in row_defs():
        if key not in ARGS.tests:
            continue
        ours = values(reps, "masqmail", key, field)
        theirs = values(reps, "postfix", key, field)
        ratios = [a / b for a, b in zip(ours, theirs) if a is not None and b and unit]
        ratio = statistics.median(ratios) if ratios else None
        summary[f"{key}.{field}"] = {"masqmail": ours, "postfix": theirs, "ratio": ratio}
        g = ""
        if goal == "ratio>=":
            g = f"≥ {ARGS.goal_ratio:.2f}"
            met = None if ratio is None else ratio >= ARGS.goal_ratio
            g += "" if met is None else (": met" if met else ": **not met**")
            goals.append(("accept", met))
        elif goal == "below":
            ok = [v for v in ours if v is not None]
            greeted = [v for v in values(reps, "masqmail", key, "idle.banners")
                       if v is not None]
            met = None
            if ok:
                met = max(ok) < ARGS.goal_mib and all(b == ARGS.conns for b in greeted)
            g = f"< {ARGS.goal_mib:g} MiB"
            g += "" if met is None else (": met" if met else ": **not met**")
            goals.append(("memory", met))
        pf_absent = "—" if field.startswith(("fresh.listener", "idle.listener")) else "n/a"
        name = label + (f" [{unit}]" if unit else "")
        lines.append(f"| {name} | {cell(ours, unit)} | {cell(theirs, unit, pf_absent)} "
                     f"| {'' if ratio is None else f'{ratio:.2f}'} | {g} |")
    return "\n".join(lines), summary, goals


def goal_text(goals, kind):
    ms = [m for k, m in goals if k == kind]
    if not ms:
        return "not run"
    if any(m is None for m in ms):
        return "not measured" if all(m is None for m in ms) else "partly measured"
    return "met" if all(ms) else "NOT met"


# ------------------------------------------------------------------ main

def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("postfix", "masqmail"), help="measure one MTA only")
    ap.add_argument("--reps", type=int, default=3,
                    help="repetitions (MTA order rotated); figures are the median")
    ap.add_argument("--msgs", type=int, default=1000,
                    help="messages per multi-session accept test")
    ap.add_argument("--msgs1", type=int, default=300, help="messages per 1-session accept test")
    ap.add_argument("--sessions", type=int, default=20,
                    help="sessions of the multi-session accept tests")
    ap.add_argument("--conns", type=int, default=500, help="idle connections in the memory test")
    ap.add_argument("--tests", default=",".join(TESTS),
                    help="comma-separated subset of " + ",".join(TESTS))
    ap.add_argument("--dir", default="/var/tmp/mm-smtpbench",
                    help="parent of both MTAs' files; its postfix/ and masqmail/ are wiped per test")
    ap.add_argument("--masqmail", default=DEFAULT_MASQMAIL,
                    help="the masqmail front end (default: the build tree's)")
    ap.add_argument("--user", default="mmbench",
                    help="user running the masqmail instance (created if missing)")
    ap.add_argument("--postfix-port", type=int, default=2625)
    ap.add_argument("--masqmail-port", type=int, default=2626)
    ap.add_argument("--smtp-source", default="/usr/sbin/smtp-source")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds after sync before a test")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds between an MTA's start and the first message")
    ap.add_argument("--idle-settle", type=float, default=2.0,
                    help="seconds before each memory reading")
    ap.add_argument("--listen-wait", type=float, default=10.0,
                    help="seconds masqmail's port may take to start listening after -bd")
    ap.add_argument("--conn-window", type=int, default=100,
                    help="idle connections opened at a time (waiting for their greeting)")
    ap.add_argument("--banner-stall", type=float, default=3.0,
                    help="stop waiting for greetings when none came for this many seconds")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one smtp-source may take")
    ap.add_argument("--goal-ratio", type=float, default=1.5,
                    help="accept-rate goal, masqmail/postfix")
    ap.add_argument("--goal-mib", type=float, default=20.0,
                    help="smtp-listener RSS goal with --conns idle connections")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--keep", action="store_true", help="leave the instances' files in --dir")
    ARGS = ap.parse_args()
    ARGS.tests = set(ARGS.tests.split(","))
    unknown = ARGS.tests - set(TESTS)
    if unknown:
        sys.exit(f"smtp_accept.py: unknown tests {sorted(unknown)}")
    if os.geteuid() != 0:
        sys.exit("smtp_accept.py: must run as root: Postfix's private instance "
                 "(postfix -c DIR start) needs root, and masqmail's user may be created")
    if min(ARGS.msgs, ARGS.msgs1, ARGS.reps, ARGS.sessions, ARGS.conns) < 1:
        sys.exit("smtp_accept.py: --msgs, --msgs1, --reps, --sessions, --conns must be positive")
    if ARGS.postfix_port == ARGS.masqmail_port:
        sys.exit("smtp_accept.py: the two ports must differ")
    if ARGS.only != "masqmail" and not shutil.which("postfix", path=PATH_ENV):
        sys.exit("smtp_accept.py: postfix is not installed (packaging/install-deps installs it)")
    if not os.access(ARGS.smtp_source, os.X_OK):
        sys.exit(f"smtp_accept.py: no {ARGS.smtp_source} (Debian's postfix package has it)")
    ARGS.masqmail = os.path.abspath(ARGS.masqmail)

    user = ensure_user(ARGS.user)
    base = os.path.abspath(ARGS.dir)
    os.makedirs(base, exist_ok=True)
    os.chmod(base, 0o755)

    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": {"uname": " ".join(os.uname()), "nproc": os.cpu_count()},
               "dir": base, "args": {k: (sorted(v) if isinstance(v, set) else v)
                                     for k, v in vars(ARGS).items()}}
    t_all = time.perf_counter()
    results["load_before"] = loadavg()
    log(f"load average at start: {results['load_before']}")
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
                measure(m, rr.setdefault(m.name, {}))
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
    text, results["summary"], goals = table(results["reps"])
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(results, f, indent=1)

    print(f"\nSMTP accept, {results['date']}, {os.cpu_count()} CPUs, dir {base}, "
          f"{ARGS.reps} repetition(s), {ARGS.msgs1} msgs per 1-session test, {ARGS.msgs} per "
          f"{ARGS.sessions}-session test, {ARGS.conns} idle connections")
    for name, v in results["versions"].items():
        print(f"  {name}: {v}")
    print()
    print(text)
    print(f"\nload average before/after: {results['load_before']} / {results['load_after']}")
    # one line per MTA and message, naming the tests (and repetitions) it concerns
    for kind, field in (("n/a", "error"), ("note", "note")):
        seen = {}
        for n, k, e in setup_errors if kind == "n/a" else []:
            seen.setdefault((n, e), {})[k] = []
        for i, rr in enumerate(results["reps"]):
            for n, res in rr.items():
                for k, r in res.items():
                    if r.get(field):
                        seen.setdefault((n, r[field]), {}).setdefault(k, []).append(i + 1)
        for (n, e), tests in seen.items():
            every = [k for k in TESTS if k in ARGS.tests]
            if sorted(tests) == sorted(every) and all(len(v) == ARGS.reps
                                                      for v in tests.values()):
                where = "every test"
            else:
                where = ", ".join(k + ("" if len(v) in (0, ARGS.reps) else
                                       f" (rep {', '.join(map(str, v))})")
                                  for k, v in tests.items())
            print(f"  {kind}: {n} {where}: {e}")
    print(f"\ngoals: accept rate masqmail/postfix >= {ARGS.goal_ratio:.2f} in every row: "
          f"{goal_text(goals, 'accept')}; smtp-listener VmRSS with {ARGS.conns} idle "
          f"connections < {ARGS.goal_mib:g} MiB (every repetition, all greeted): "
          f"{goal_text(goals, 'memory')}; total {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
