# SPDX-License-Identifier: GPL-2.0-or-later
"""Crash test (DESIGN.md rule 1): a stream of sendmail submissions into a
private instance with its daemons running, while a killer thread sends
SIGKILL at random moments to the front ends (sendmail) and to enqueue, qmgr
and local-deliver; the supervisor restarts the daemons. Then the daemons are
stopped, started once more and the queue is run until it is empty. Every
message whose sendmail exited 0 must be in the mbox at least once, every
delivered message must be complete and one that was submitted, nothing may
be left in tmp/ or quarantined, and the mbox must parse. The counts are
printed as TAP comments."""

import collections
import os
import random
import re
import signal
import subprocess
import threading
import time
import unittest

import mmtest
from mmtest import MASQMAIL, Instance, wait_for

MESSAGES = 200
SUBMITTERS = 2            # threads, each running one sendmail at a time
STREAM_SECONDS = 30       # the submissions are paced to last about this long
STREAM_DEADLINE = 40      # and stop being started after this
# The supervisor backs off a daemon that dies within 10 s of its start (a bad
# install); killing only daemons older than that keeps each restart immediate.
DAEMON_MIN_AGE = 11.0
DAEMONS = ("enqueue", "qmgr", "local-deliver")


def process_age(pid):
    """Seconds since the process started, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def note(text):
    print("# " + text.replace("\n", "\n# "), flush=True)


class CrashDuringSubmissions(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()
        self.addCleanup(self.inst.close)
        self.token = "%08x" % random.getrandbits(32)
        self.lock = threading.Lock()
        self.live = {}          # index -> Popen of a sendmail still running
        self.results = {}       # marker -> sendmail's exit status (negative: signal)
        self.kills = collections.Counter()
        self.next_index = 0
        self.stop_killing = threading.Event()
        self.errors = {}        # exit status -> one stderr text of a failed sendmail
        self.thread_errors = []

    def marker(self, i):
        return f"crash-{self.token}-{i:04d}"

    def message(self, i):
        m = self.marker(i)
        filler = "".join(f"{m} line {n:02d} " + "x" * 40 + "\n" for n in range(60))
        return (f"Subject: {m}\nX-Marker: {m}\n\n{filler}.\nEND {m}\n").encode()

    # --- the stream ---

    def submitter(self, start):
        try:
            self.submit_stream(start)
        except BaseException as e:  # reported by the test, not lost in a thread
            with self.lock:
                self.thread_errors.append(repr(e))

    def submit_stream(self, start):
        rng = random.Random()
        while True:
            with self.lock:
                i = self.next_index
                if i >= MESSAGES or time.monotonic() - start > STREAM_DEADLINE:
                    return
                self.next_index += 1
            p = subprocess.Popen([MASQMAIL, "-C", self.inst.conf, "-oi", "bob"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            with self.lock:
                self.live[i] = p
            try:
                _, err = p.communicate(self.message(i), timeout=150)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
            with self.lock:
                del self.live[i]
                self.results[self.marker(i)] = p.returncode
                if p.returncode not in (0, -signal.SIGKILL):
                    self.errors[p.returncode] = err.decode(errors="replace").strip()
            # Paced so that the stream outlives several daemon kills.
            time.sleep(rng.uniform(0, 2 * STREAM_SECONDS * SUBMITTERS / MESSAGES))

    def daemons(self):
        """{pid: name} of the supervisor's direct children."""
        sup = self.inst.daemon_pid()
        return {pid: os.path.basename(argv[0]) for pid, argv in self.inst.processes().items()
                if argv and os.path.basename(argv[0]) in DAEMONS and parent_of(pid) == sup}

    def killer(self):
        rng = random.Random()
        while not self.stop_killing.wait(rng.uniform(0.05, 0.5)):
            if rng.random() < 0.5:
                with self.lock:
                    victims = list(self.live.values())
                if victims:
                    p = rng.choice(victims)
                    try:
                        p.send_signal(signal.SIGKILL)
                        self.kills["sendmail"] += 1
                    except OSError:
                        pass
                continue
            eligible = [(pid, name) for pid, name in self.daemons().items()
                        if (process_age(pid) or 0) >= DAEMON_MIN_AGE]
            if not eligible:
                continue
            pid, name = rng.choice(eligible)
            try:
                os.kill(pid, signal.SIGKILL)
                self.kills[name] += 1
            except ProcessLookupError:
                pass

    # --- the test ---

    def test_acknowledged_mail_survives_kill_9(self):
        self.inst.start()
        self.addCleanup(self.inst.stop)
        marks = ("enqueue started", "qmgr started", "local-deliver start")
        self.assertTrue(wait_for(lambda: all(m in self.inst.log_text() for m in marks), 20),
                        self.inst.log_text())

        start = time.monotonic()
        killer = threading.Thread(target=self.killer, daemon=True)
        submitters = [threading.Thread(target=self.submitter, args=(start,), daemon=True)
                      for _ in range(SUBMITTERS)]
        killer.start()
        for t in submitters:
            t.start()
        for t in submitters:
            t.join(timeout=STREAM_DEADLINE + 200)
        self.stop_killing.set()
        killer.join(timeout=10)
        stream_time = time.monotonic() - start
        self.assertFalse(any(t.is_alive() for t in submitters), "a submitter hangs")
        self.assertEqual(self.thread_errors, [])

        # Stop, start once more, and run the queue until it is empty.
        self.assertTrue(self.inst.stop(), "the daemons did not stop:\n" + self.inst.log_text()[-4000:])
        self.inst.start()
        runs = 0
        for runs in range(1, 7):
            r = self.inst.masqmail("-q", timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            if not self.inst.mailq_json():
                break
        left = self.inst.mailq_json()
        self.assertTrue(self.inst.stop(), "the daemons did not stop after the runs")
        self.assertEqual(left, [], f"still queued after {runs} runs")

        # The spool: nothing half-written left behind, nothing quarantined.
        self.assertEqual(os.listdir(self.inst.path("spool", "tmp")), [], "files left in tmp/")
        self.assertEqual(os.listdir(self.inst.path("spool", "corrupt")), [], "quarantined files")

        # The mbox parses, and every message in it is complete and was submitted.
        messages = mmtest.split_mbox(self.inst.read_mbox("bob"))
        delivered = collections.Counter()
        pattern = re.compile(rb"^Subject: (crash-" + self.token.encode() + rb"-\d{4})$", re.M)
        for m in messages:
            found = pattern.search(m)
            self.assertIsNotNone(found, f"a message without a marker: {m[:300]!r}")
            marker = found.group(1).decode()
            self.assertIn(marker, self.results, "a message that was never submitted")
            self.assertTrue(m.rstrip(b"\n").endswith(f"\n.\nEND {marker}".encode()),
                            f"{marker} is incomplete: ...{m[-200:]!r}")
            delivered[marker] += 1

        acked = {m for m, rc in self.results.items() if rc == 0}
        missing = sorted(acked - set(delivered))
        unacked_delivered = sorted(set(delivered) - acked)
        duplicates = sum(c - 1 for c in delivered.values())
        statuses = collections.Counter(self.results.values())
        note(f"stream: {len(self.results)} submissions in {stream_time:.1f} s, "
             f"exit statuses {dict(sorted(statuses.items()))}")
        note(f"kills: {dict(self.kills)}")
        note(f"acknowledged: {len(acked)}, delivered: {len(delivered)} distinct "
             f"({len(messages)} copies), duplicates: {duplicates}, "
             f"delivered but unacknowledged: {len(unacked_delivered)}, queue runs after restart: {runs}")
        for rc, err in sorted(self.errors.items()):
            note(f"sendmail exit {rc}: {err}")
        self.assertGreater(len(acked), 0, "no submission succeeded at all")
        self.assertEqual(missing, [], "acknowledged messages lost:\n" + self.inst.log_text()[-6000:])
        # Killed submissions may appear only when their sendmail was killed
        # (or lost its answer) after the commit: counted above, not a failure.
        for marker in unacked_delivered:
            self.assertNotEqual(self.results[marker], 0)


if __name__ == "__main__":
    mmtest.main()
