# SPDX-License-Identifier: GPL-2.0-or-later
"""The runit service of packaging/runit/masqmail, run by runsv from a
temporary service folder whose ./conf points MASQMAIL at the build tree and
OPTS at a system instance's -C file (as root): the daemons come up, mail
sent with sendmail and over SMTP is delivered, `sv restart` several times
during a stream of submissions loses no acknowledged message, and `sv down`
leaves no daemon running. runsv and everything under it are stopped by
each test's cleanup."""

import os
import shutil
import signal
import subprocess
import threading
import time
import unittest

import mmtest
from mmtest import MASQMAIL, SOURCE, run, wait_for
from system_instance import DELIVERY_TIMEOUT, SystemCase, message

SERVICE = os.path.join(SOURCE, "packaging", "runit", "masqmail")
DAEMONS = {"enqueue", "qmgr", "local-deliver", "route-selector", "remote-deliver", "smtp-listener"}


@unittest.skipUnless(shutil.which("runsv") and shutil.which("sv"), "runit is not installed")
class Runit(SystemCase):
    spool_root = True  # as tmpfiles.d/masqmail.conf makes it

    def setUp(self):
        super().setUp()
        self.sv = self.inst.path("sv", "masqmail")
        shutil.copytree(SERVICE, self.sv)
        with open(os.path.join(self.sv, "conf"), "w") as f:
            f.write(f"MASQMAIL={os.path.abspath(MASQMAIL)}\nOPTS=\"-C {self.inst.conf} -q30m\"\n")
        self.runsv = subprocess.Popen(["runsv", self.sv], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
        self.addCleanup(self.stop_runsv)
        self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(self.sv, "supervise", "ok")), 30))
        self.wait_up()

    def stop_runsv(self):
        """sv exit (the service and its log), then runsv itself; then
        whatever of the instance is left is killed."""
        run(["sv", "-w", "30", "exit", self.sv], timeout=60)
        try:
            self.runsv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.runsv.pid, signal.SIGKILL)
            self.runsv.wait()
        self.inst.stop()

    def sv_cmd(self, *args):
        r = run(["sv", "-w", "60", *args, self.sv], timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout.decode()

    def supervisor_pid(self):
        """The pid runsv reports for ./run (the supervisor), or None."""
        try:
            with open(os.path.join(self.sv, "supervise", "pid")) as f:
                text = f.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def daemon_names(self):
        return {os.path.basename(argv[0]) for argv in self.inst.processes().values()}

    def wait_up(self):
        """Until runsv's ./run is the supervisor named by the pid file and
        every daemon runs; returns the supervisor's pid."""
        def up():
            pid = self.supervisor_pid()
            return pid if pid and self.inst.daemon_pid() == pid and DAEMONS <= self.daemon_names() else None
        pid = wait_for(up, 60)
        self.assertTrue(pid, f"runsv pid {self.supervisor_pid()}, pid file {self.inst.daemon_pid()}, "
                        f"running {self.daemon_names()}\n{self.inst.log_text()}")
        # The listener takes connections once it logged its start.
        self.assertTrue(wait_for(lambda: self.inst.log_text().count("smtp-listener started")
                                 >= self.inst.log_text().count("masqmail started"), 30))
        return pid

    def wait_subjects(self, subjects):
        want = set(subjects)
        got = wait_for(lambda: want <= set(self.inst.delivered_subjects("nobody")), DELIVERY_TIMEOUT)
        missing = want - set(self.inst.delivered_subjects("nobody"))
        spool = {d: sorted(os.listdir(self.inst.path("spool", d)))
                 for d in ("maildrop", "tmp", "new", "queue", "hold", "corrupt")}
        self.assertTrue(got, f"not delivered: {sorted(missing)}\nqueue: {self.inst.mailq_json()}\n"
                        f"spool: {spool}\n" + self.inst.log_text())

    def test_daemons_run_as_their_users_and_mail_flows(self):
        users = {}
        for pid, argv in self.inst.processes().items():
            with open(f"/proc/{pid}/status") as f:
                uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
            users[os.path.basename(argv[0])] = int(uid)
        self.assertEqual(users.get("masqmail", users.get("supervisor")), 0, users)
        import pwd
        self.assertEqual(users["smtp-listener"], pwd.getpwnam("masqmail-smtp").pw_uid)
        self.assertEqual(users["enqueue"], pwd.getpwnam("masqmail").pw_uid)
        r = self.inst.masqmail("nobody", stdin=message("runit sendmail"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.inst.smtp_send("a@example.org", "nobody@test.example",
                                             message("runit smtp", "a@example.org")), 250,
                         self.inst.log_text())
        self.wait_subjects(["runit sendmail", "runit smtp"])
        self.assertIn("run: ", self.sv_cmd("status"))

    def test_restarts_during_submissions_lose_nothing(self):
        acknowledged = []
        refused = []
        stop = threading.Event()

        def submit():
            n = 0
            while not stop.is_set():
                n += 1
                subject = f"stream {n}"
                if n % 2:
                    r = self.inst.masqmail("nobody", stdin=message(subject))
                    ok = r.returncode == 0
                else:
                    ok = self.inst.smtp_send("a@example.org", "nobody@test.example",
                                             message(subject, "a@example.org")) == 250
                (acknowledged if ok else refused).append(subject)
        worker = threading.Thread(target=submit)
        worker.start()
        try:
            for _ in range(3):
                time.sleep(1)  # let some submissions through
                before = self.supervisor_pid()
                self.sv_cmd("restart")
                self.assertTrue(wait_for(lambda: self.supervisor_pid() not in (None, before), 60))
                self.wait_up()
            time.sleep(1)
        finally:
            stop.set()
            worker.join(timeout=300)
        self.assertGreater(len(acknowledged), 0, refused)
        # Nothing acknowledged may be lost; a delivery cut off by
        # "local-deliver is stopping" waits out its retry interval, so a
        # queue run (runq ignores the backoff) takes it now, as an admin would.
        r = self.inst.masqmail("-q", timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_subjects(acknowledged)
        # Each acknowledged message once per acknowledgement (duplicates
        # would be allowed by rule 1, but a restart gives no reason for one).
        delivered = self.inst.delivered_subjects("nobody")
        self.assertEqual(sorted(set(delivered) & set(acknowledged)), sorted(acknowledged))

    def test_sv_down_stops_every_daemon(self):
        before = self.inst.processes()
        self.assertTrue(DAEMONS <= self.daemon_names())
        self.sv_cmd("down")
        self.assertTrue(wait_for(lambda: not self.inst.processes(), 60),
                        f"still running: {self.inst.processes()}")
        for pid in before:
            self.assertFalse(mmtest.proc_cmdline(pid), f"{pid} {before[pid]} is alive")
        self.assertIn("down: ", self.sv_cmd("status"))
        self.assertIsNone(self.inst.daemon_pid(), "pid file left behind")
        self.assertIn("masqmail stopped", self.inst.log_text())
        self.sv_cmd("up")
        self.wait_up()


if __name__ == "__main__":
    mmtest.main()
