# SPDX-License-Identifier: GPL-2.0-or-later
"""The daemons of a private instance: masqmail -bd/-bD and the pid file,
SIGTERM and SIGHUP, sendmail with the daemons running (delivered at once),
-odq and -q with and without daemons, -t and the dot rules end to end,
aliases to mailboxes, a Maildir user, pipes (their environment, exit 75 and
exit 1 with the bounce) and a remote address, mailq --json and mailrm
through qmgr. Every instance a test starts is stopped by its cleanup."""

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import time
import unittest

import mmtest
from mmtest import MASQMAIL, Instance, wait_for

# "Eventually delivered": generous, never a performance assertion.
DELIVERY_TIMEOUT = 20

PIPE_SCRIPT = """#!/usr/bin/python3
# Records what an alias pipe sees: its exact environment (as execve gave it,
# read from /proc so that Python's own locale fix-ups do not show), argv,
# uid and stdin; exits with the status named by its second argument.
import json, os, sys
out = sys.argv[1]
status = int(sys.argv[2]) if len(sys.argv) > 2 else 0
env = {}
with open("/proc/self/environ", "rb") as f:
    for item in f.read().split(b"\\0"):
        if item:
            key, _, value = item.partition(b"=")
            env[key.decode()] = value.decode(errors="replace")
data = sys.stdin.buffer.read()
calls = 0
try:
    with open(out) as f:
        calls = json.load(f)["calls"]
except (OSError, ValueError, KeyError):
    pass
with open(out + ".tmp", "w") as f:
    json.dump({"env": env, "argv": sys.argv, "uid": os.getuid(),
               "stdin": data.decode("latin-1"), "calls": calls + 1}, f)
os.rename(out + ".tmp", out)
sys.exit(status)
"""


def header_block(message):
    """The header section of one mbox message (without its From_ line)."""
    head = message.split(b"\n\n", 1)[0]
    return head.split(b"\n", 1)[1] if head.startswith(b"From ") else head


def parse_mbox_message(message):
    """An email.message.Message of one mbox entry (From_ line dropped)."""
    body = message.split(b"\n", 1)[1] if message.startswith(b"From ") else message
    return email.message_from_bytes(body, policy=email.policy.compat32)


class DaemonCase(unittest.TestCase):
    """A fresh private instance per test; start() registers its stop."""

    extra_conf = ""

    def setUp(self):
        self.inst = Instance(self.extra_conf)
        self.addCleanup(self.inst.close)

    def start(self, *args):
        self.addCleanup(self.stop_checked)
        return self.inst.start(*args)

    def stop_checked(self):
        self.assertTrue(self.inst.stop(), "daemons did not stop cleanly:\n" + self.inst.log_text())

    def send(self, *args, stdin=b"", check=True):
        r = self.inst.masqmail(*args, stdin=stdin)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def queued_id(self, *args, stdin=b""):
        """Submits with -v and returns the queue id it names."""
        r = self.send("-v", *args, stdin=stdin)
        m = re.search(rb"queued as (\S+)", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        return m.group(1).decode()

    def wait_mbox(self, user, count=1, timeout=DELIVERY_TIMEOUT):
        """Waits until USER's mbox holds at least `count` messages; returns them."""
        got = wait_for(lambda: len(self.inst.mbox_messages(user)) >= count, timeout)
        messages = self.inst.mbox_messages(user)
        self.assertTrue(got, f"{user}: {len(messages)} of {count} message(s) after {timeout} s;\n"
                        f"queue: {self.inst.mailq_json()}\nlog:\n{self.inst.log_text()}")
        return messages

    def daemon_pids(self):
        """{name: pid} of the supervisor's children (enqueue, qmgr, local-deliver)."""
        sup = self.inst.daemon_pid()
        found = {}
        for pid, argv in self.inst.processes().items():
            if sup is not None and parent_of(pid) == sup:
                found[os.path.basename(argv[0])] = pid
        return found

    def wait_daemons_up(self):
        """Until enqueue, qmgr and local-deliver have read the configuration
        (each logs its start); a test that edits the file must wait for this."""
        marks = ("enqueue started", "qmgr started", "local-deliver start")
        up = wait_for(lambda: all(m in self.inst.log_text() for m in marks), 20)
        self.assertTrue(up, self.inst.log_text())

    def queue_empty(self):
        return self.inst.mailq_json() == []


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


class Lifecycle(DaemonCase):
    def test_bd_writes_pid_file_and_returns(self):
        r = self.start()
        self.assertEqual(r.stdout, b"")
        pid = self.inst.daemon_pid()
        procs = self.inst.processes()
        self.assertIn(pid, procs, "the pid file names no live process of this instance")
        names = wait_for(lambda: set(self.daemon_pids()) >= {"enqueue", "qmgr"}, 10)
        self.assertTrue(names, self.daemon_pids())
        for name in ("private/enqueue", "public/submit", "private/qmgr", "public/qmgr-ctl",
                     "private/local"):
            self.assertTrue(os.path.exists(self.inst.path("spool", name)), name)

    def test_second_bd_refuses(self):
        self.start()
        pid = self.inst.daemon_pid()
        r = self.inst.masqmail("-bd", "-q30m")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"already running", r.stderr)
        self.assertIn(str(pid).encode(), r.stderr)
        self.assertEqual(self.inst.daemon_pid(), pid)
        self.assertIn(pid, self.inst.processes())

    def test_sigterm_stops_everything_and_removes_pid_file(self):
        self.start()
        pid = self.inst.daemon_pid()
        wait_for(lambda: set(self.daemon_pids()) >= {"enqueue", "qmgr"}, 10)
        before = self.inst.processes()
        self.assertGreaterEqual(len(before), 3, before)
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_for(lambda: not os.path.exists(self.inst.pid_file()), 20),
                        "the pid file is still there")
        left = wait_for(lambda: not self.inst.processes(), 20)
        self.assertTrue(left, f"still running: {self.inst.processes()}")
        for p in before:
            self.assertFalse(mmtest.proc_cmdline(p), f"{p} {before[p]} is still alive")
        self.assertIn("masqmail stopped", self.inst.log_text())

    def test_bD_runs_in_the_foreground(self):
        p = subprocess.Popen([MASQMAIL, "-C", self.inst.conf, "-bD", "-q30m"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def reap():
            if p.poll() is None:
                p.kill()
            p.communicate()
            self.inst.stop()
        self.addCleanup(reap)
        self.assertTrue(wait_for(lambda: self.inst.daemon_pid() == p.pid, 20),
                        f"pid file: {self.inst.daemon_pid()}, foreground pid {p.pid}")
        self.assertIsNone(p.poll())
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(self.inst.pid_file()))
        self.assertTrue(wait_for(lambda: not self.inst.processes(), 20), self.inst.processes())

    def test_sighup_with_a_broken_config_keeps_running(self):
        self.start()
        sup = self.inst.daemon_pid()
        self.assertTrue(wait_for(lambda: set(self.daemon_pids()) >= {"enqueue", "qmgr"}, 10))
        self.wait_daemons_up()
        before = self.daemon_pids()
        with open(self.inst.conf) as f:
            good = f.read()
        with open(self.inst.conf, "a") as f:
            f.write("this is = = not a statement\n")
        os.kill(sup, signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "SIGHUP" in self.inst.log_text(), 20), self.inst.log_text())
        self.assertIn("has errors", self.inst.log_text())
        self.assertEqual(self.inst.daemon_pid(), sup)
        self.assertIn(sup, self.inst.processes())
        for name in ("enqueue", "qmgr"):
            self.assertEqual(self.daemon_pids().get(name), before[name],
                             f"{name}: {self.inst.processes()}\n{self.inst.log_text()}")
        # Still serving: the front end needs a readable config again, the daemons do not.
        with open(self.inst.conf, "w") as f:
            f.write(good)
        self.send("-oi", "bob", stdin=b"Subject: after a bad HUP\n\nstill here\n")
        messages = self.wait_mbox("bob")
        self.assertIn(b"after a bad HUP", messages[0])
        self.assertEqual(self.daemon_pids().get("enqueue"), before["enqueue"])

    def test_sighup_with_a_good_config_reloads_and_serves(self):
        self.start()
        sup = self.inst.daemon_pid()
        self.assertTrue(wait_for(lambda: set(self.daemon_pids()) >= {"enqueue", "qmgr"}, 10))
        self.wait_daemons_up()
        before = self.daemon_pids()
        aliases = self.inst.write("aliases", "team: bob, carol\n")
        with open(self.inst.conf, "a") as f:
            f.write(f'alias_file = "{aliases}"\n')
        os.kill(sup, signal.SIGHUP)
        restarted = wait_for(lambda: all(self.daemon_pids().get(n) not in (None, before[n])
                                         for n in ("enqueue", "qmgr")), 20)
        self.assertTrue(restarted, f"{before} -> {self.daemon_pids()}\n{self.inst.log_text()}")
        self.assertEqual(self.inst.daemon_pid(), sup)
        self.send("-oi", "team", stdin=b"Subject: after HUP\n\nthe new aliases\n")
        for user in ("bob", "carol"):
            self.assertIn(b"the new aliases", self.wait_mbox(user)[0])
        self.assertEqual(self.inst.read_mbox("team"), b"")


class Delivery(DaemonCase):
    def test_sendmail_with_daemons_is_delivered_without_runq(self):
        self.start()
        self.send("-oi", "bob", stdin=b"Subject: at once\n\nhello bob\n")
        messages = self.wait_mbox("bob")
        self.assertEqual(len(messages), 1)
        self.assertIn(b"\nSubject: at once\n", messages[0])
        self.assertTrue(messages[0].rstrip(b"\n").endswith(b"hello bob"), messages[0])
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT), self.inst.mailq_json())

    def test_odq_waits_for_q(self):
        self.start()
        qid = self.queued_id("-odq", "-oi", "bob", stdin=b"Subject: queued only\n\nlater\n")
        # A negative check: nothing may deliver it on its own, not even qmgr's
        # scan of new/ every 5 s (queue-only mail is committed to queue/).
        time.sleep(6)
        self.assertEqual(self.inst.read_mbox("bob"), b"")
        self.assertEqual([m["id"] for m in self.inst.mailq_json()], [qid])
        self.assertEqual(os.listdir(self.inst.path("spool", "new")), [])
        r = self.inst.masqmail("-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.inst.mbox_messages("bob")), 1, self.inst.log_text())
        self.assertEqual(self.inst.mailq_json(), [])

    def test_message_in_new_without_a_notice_is_delivered(self):
        # What enqueue leaves when it is killed between its commit and its
        # notice to qmgr: a message in new/ nobody told qmgr about.
        qid = self.queued_id("-oi", "bob", stdin=b"Subject: unannounced\n\nbody\n")
        parked = self.inst.path("parked")
        os.rename(self.inst.path("spool", "new", qid), parked)
        self.start()
        self.wait_daemons_up()
        os.rename(parked, self.inst.path("spool", "new", qid))
        messages = self.wait_mbox("bob")
        self.assertIn(b"Subject: unannounced", messages[0])
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT), self.inst.mailq_json())

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run mailq as a second user")
    def test_mailq_of_another_user_comes_from_qmgr_and_shows_only_theirs(self):
        nobody = 65534
        os.chmod(self.inst.root, 0o755)
        os.chmod(self.inst.conf, 0o644)
        self.start()
        self.wait_daemons_up()

        def as_nobody(*args, stdin=b""):
            def become():
                os.setgroups([])
                os.setgid(nobody)
                os.setuid(nobody)
            return subprocess.run([MASQMAIL, "-C", self.inst.conf, *args], input=stdin,
                                  capture_output=True, timeout=60, preexec_fn=become, env={})

        mine = self.queued_id("-oi", "x@example.org", stdin=b"Subject: root's\n\nr\n")
        r = as_nobody("-v", "-oi", "y@example.org", stdin=b"Subject: nobody's\n\nn\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        theirs = re.search(rb"queued as (\S+)", r.stderr).group(1).decode()
        # The spool is not readable for nobody: the listing comes from qmgr.
        r = as_nobody("-bp", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = [json.loads(line) for line in r.stdout.decode().splitlines()]
        self.assertEqual([m["id"] for m in listed], [theirs])
        self.assertEqual(listed[0]["recipients"][0]["address"], "y@example.org")
        self.assertEqual(listed[0]["recipients"][0]["state"], "pending")
        r = as_nobody("-bp")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"{theirs} <= <".encode(), r.stdout)
        self.assertNotIn(mine.encode(), r.stdout)
        # The owner sees both, read from the spool.
        self.assertEqual(sorted(m["id"] for m in self.inst.mailq_json()), sorted([mine, theirs]))
        # With the daemons stopped, nobody gets a clear refusal, not another user's mail.
        self.inst.stop()
        r = as_nobody("-bp")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"cannot list the queue", r.stderr)
        self.assertNotIn(mine.encode(), r.stdout)

    def test_q_with_daemons_returns_after_delivery(self):
        self.start()
        for n in range(3):
            self.send("-odq", "-oi", "bob", stdin=f"Subject: batch {n}\n\nbody {n}\n".encode())
        self.assertEqual(len(self.inst.mailq_json()), 3)
        r = self.inst.masqmail("-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        # No waiting: -q returns only when the run is over.
        messages = self.inst.mbox_messages("bob")
        self.assertEqual(sorted(re.search(rb"Subject: (batch \d)", m).group(1) for m in messages),
                         [b"batch 0", b"batch 1", b"batch 2"])
        self.assertEqual(self.inst.mailq_json(), [])
        self.assertIn(self.inst.daemon_pid(), self.inst.processes())

    def test_q_without_daemons_delivers_and_leaves_nothing_running(self):
        for n in range(3):
            self.send("-oi", "bob", stdin=f"Subject: nodaemon {n}\n\nbody {n}\n".encode())
        self.assertEqual(len(self.inst.mailq_json()), 3)
        self.assertEqual(self.inst.processes(), {})
        r = self.inst.masqmail("-q")
        self.addCleanup(self.inst.stop)  # only if something was left behind
        self.assertEqual(r.returncode, 0, r.stderr + self.inst.log_text().encode())
        self.assertEqual(self.inst.processes(), {}, "runq left processes behind")
        self.assertFalse(os.path.exists(self.inst.pid_file()), "runq left a pid file behind")
        self.assertEqual(len(self.inst.mbox_messages("bob")), 3, self.inst.log_text())
        self.assertEqual(self.inst.mailq_json(), [])
        # The daemons start afterwards: no stale lock or pid file is in the way.
        self.start()
        self.assertIsNotNone(self.inst.daemon_pid())

    def test_two_q_at_once_without_daemons_deliver_each_message_once(self):
        count = 12
        for n in range(count):
            self.send("-oi", "bob", stdin=f"Subject: twice-{n:02d}\n\nbody {n}\n".encode())
        self.addCleanup(self.inst.stop)
        runs = [subprocess.Popen([MASQMAIL, "-C", self.inst.conf, "-q"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        for p in runs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
        subjects = [re.search(rb"Subject: (twice-\d+)", m).group(1)
                    for m in self.inst.mbox_messages("bob")]
        self.assertEqual(sorted(subjects), [f"twice-{n:02d}".encode() for n in range(count)])
        self.assertEqual(self.inst.mailq_json(), [])
        self.assertEqual(self.inst.processes(), {})

    def test_t_with_to_cc_bcc_and_arguments(self):
        self.start()
        self.send("-t", "-oi", "erin", stdin=b"To: Bob <bob@test.example>\nCc: carol\n"
                  b"Bcc: dave\nSubject: minus t\n\nfour copies\n")
        for user in ("bob", "carol", "dave", "erin"):
            messages = self.wait_mbox(user)
            self.assertEqual(len(messages), 1, user)
            head = header_block(messages[0])
            self.assertIsNone(re.search(rb"(?im)^bcc:", head), f"{user}: {head!r}")
            self.assertIn(b"four copies", messages[0])
            if user != "dave":
                self.assertNotIn(b"dave", messages[0].lower(), user)
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT))

    def test_dot_ends_the_message_without_i(self):
        self.start()
        self.send("bob", stdin=b"Subject: dots\n\nline one\n..two dots\n.\nafter the dot\n")
        body = self.wait_mbox("bob")[0].split(b"\n\n", 1)[1]
        self.assertIn(b"line one\n.two dots\n", body)
        self.assertNotIn(b"after the dot", body)

    def test_dot_does_not_end_the_message_with_oi(self):
        self.start()
        self.send("-oi", "bob", stdin=b"Subject: dots\n\nline one\n..two dots\n.\nafter the dot\n")
        body = self.wait_mbox("bob")[0].split(b"\n\n", 1)[1]
        self.assertIn(b"line one\n..two dots\n.\nafter the dot\n", body)


class Aliases(DaemonCase):
    def setUp(self):
        super().setUp()
        self.script = self.inst.write("record.py", PIPE_SCRIPT)
        os.chmod(self.script, 0o755)
        self.out = self.inst.path("pipe-out")
        os.mkdir(self.out)
        aliases = self.inst.write("aliases", "\n".join([
            "# test aliases",
            "team: bob, carol",
            "box: dora",
            f'pipe: "|{self.script} {self.out}/ok.json 0"',
            f'defer: "|{self.script} {self.out}/defer.json 75"',
            f'broken: "|{self.script} {self.out}/broken.json 1"',
            "far: someone@example.org",
            "mixed: bob, someone@example.org",
        ]) + "\n")
        with open(self.inst.conf, "a") as f:
            f.write(f'alias_file = "{aliases}"\nmaildir_users = "dora"\n')
        self.start()

    def pipe_record(self, name, timeout=DELIVERY_TIMEOUT):
        path = os.path.join(self.out, name)
        self.assertTrue(wait_for(lambda: os.path.exists(path), timeout),
                        f"the pipe never ran ({name});\nlog:\n{self.inst.log_text()}")
        with open(path) as f:
            return json.load(f)

    def recipient(self, address):
        """(message, recipient) of the queued message that has `address`."""
        for m in self.inst.mailq_json():
            for r in m["recipients"]:
                if r["address"] == address:
                    return m, r
        return None, None

    def test_alias_to_two_mailboxes(self):
        self.send("-oi", "team", stdin=b"Subject: to the team\n\nhi all\n")
        for user in ("bob", "carol"):
            messages = self.wait_mbox(user)
            self.assertEqual(len(messages), 1, user)
            self.assertIn(b"hi all", messages[0])
        self.assertEqual(self.inst.read_mbox("team"), b"")
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT), self.inst.mailq_json())

    def test_recipient_and_alias_sharing_a_mailbox_get_one_copy(self):
        # bob is named directly and through team (bob, carol): one copy for bob.
        self.send("-oi", "bob", "team", stdin=b"Subject: once\n\nonly one copy\n")
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT), self.inst.mailq_json())
        self.assertEqual(len(self.inst.mbox_messages("bob")), 1, self.inst.log_text())
        self.assertEqual(len(self.inst.mbox_messages("carol")), 1, self.inst.log_text())

    def test_newaliases_makes_running_daemons_read_a_changed_alias_file(self):
        self.wait_daemons_up()
        before = self.daemon_pids()
        with open(self.inst.path("aliases"), "a") as f:
            f.write("latecomer: carol\n")
        r = self.send("-bi")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The supervisor restarts qmgr and local-deliver with the new file.
        restarted = wait_for(lambda: all(self.daemon_pids().get(n) not in (None, before[n])
                                         for n in ("qmgr", "local-deliver")), 20)
        self.assertTrue(restarted, f"{before} -> {self.daemon_pids()}\n{self.inst.log_text()}")
        self.wait_daemons_up()
        self.send("-oi", "latecomer", stdin=b"Subject: new alias\n\nfor carol\n")
        messages = self.wait_mbox("carol")
        self.assertIn(b"for carol", messages[0])
        self.assertEqual(self.inst.read_mbox("latecomer"), b"")

    def test_alias_to_a_maildir_user(self):
        self.send("-oi", "box", stdin=b"Subject: maildir\n\ninto new/\n")
        new = self.inst.path("mail", "dora", "new")
        got = wait_for(lambda: os.path.isdir(new) and os.listdir(new), DELIVERY_TIMEOUT)
        self.assertTrue(got, f"nothing in {new};\nlog:\n{self.inst.log_text()}")
        self.assertEqual(len(os.listdir(new)), 1)
        with open(os.path.join(new, os.listdir(new)[0]), "rb") as f:
            data = f.read()
        self.assertIn(b"Subject: maildir\n", data)
        self.assertIn(b"into new/", data)
        self.assertFalse(data.startswith(b"From "), "a Maildir file has no From_ line")
        self.assertEqual(os.listdir(self.inst.path("mail", "dora", "tmp")), [])
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT), self.inst.mailq_json())

    def test_alias_pipe_gets_masqmail_environment(self):
        qid = self.queued_id("-oi", "-f", "alice@sender.example", "pipe",
                             stdin=b"Subject: piped\n\nthrough the pipe\n")
        rec = self.pipe_record("ok.json")
        env = rec["env"]
        self.assertEqual(set(env), {"RETURN_PATH", "SENDER", "SENDER_DOMAIN", "SENDER_LOCAL",
                                    "RECEIVED_HOST", "DOMAIN", "LOCAL_PART", "USER", "LOGNAME",
                                    "MESSAGE_ID", "QUALIFY_DOMAIN"}, env)
        self.assertEqual(env["RETURN_PATH"], "alice@sender.example")
        self.assertEqual(env["SENDER"], "alice@sender.example")
        self.assertEqual(env["SENDER_LOCAL"], "alice")
        self.assertEqual(env["SENDER_DOMAIN"], "sender.example")
        self.assertEqual(env["RECEIVED_HOST"], "")
        self.assertEqual(env["LOCAL_PART"], "pipe")
        self.assertEqual(env["USER"], "pipe")
        self.assertEqual(env["LOGNAME"], "pipe")
        self.assertEqual(env["DOMAIN"], "test.example")
        self.assertEqual(env["MESSAGE_ID"], qid)
        self.assertEqual(env["QUALIFY_DOMAIN"], "test.example")
        self.assertEqual(rec["argv"][1:], [f"{self.out}/ok.json", "0"])
        self.assertEqual(rec["uid"], os.getuid(), "a private instance runs pipes as its user")
        stdin = rec["stdin"]
        self.assertIn("\nSubject: piped\n", stdin)
        self.assertTrue(stdin.endswith("through the pipe\n"), stdin)
        self.assertRegex(stdin, r"(?im)^envelope-to: ")
        self.assertRegex(stdin, r"(?im)^return-path: <alice@sender\.example>")
        self.assertFalse(stdin.startswith("From "), "pipe_fromline is off by default")
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT), self.inst.mailq_json())

    def test_pipe_exiting_75_stays_queued(self):
        self.send("-oi", "defer", stdin=b"Subject: not now\n\nlater\n")
        self.pipe_record("defer.json")

        def deferred():
            m, r = self.recipient("defer@test.example")
            return r is not None and r["attempts"] >= 1 and r["last_error"] and (m, r)
        got = wait_for(deferred, DELIVERY_TIMEOUT)
        self.assertTrue(got, f"{self.inst.mailq_json()}\n{self.inst.log_text()}")
        m, r = got
        self.assertEqual(r["state"], "pending")
        self.assertIsInstance(r["next_try"], int)
        self.assertGreater(r["next_try"], time.time() - 5)
        self.assertEqual(self.inst.read_mbox("root"), b"", "a deferral is no bounce")

    def test_pipe_exiting_1_is_bounced(self):
        self.send("-oi", "-f", "alice", "broken", stdin=b"Subject: doomed\n\nwill fail\n")
        self.pipe_record("broken.json")
        dsn = self.wait_mbox("alice")
        self.assertEqual(len(dsn), 1)
        head = header_block(dsn[0])
        self.assertRegex(head, rb"(?im)^return-path: <>")
        msg = parse_mbox_message(dsn[0])
        self.assertIn("MAILER-DAEMON", msg["From"])
        self.assertTrue(msg["Auto-Submitted"].startswith("auto-replied"), msg["Auto-Submitted"])
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        parts = {p.get_content_type(): p for p in msg.walk()}
        self.assertIn("message/delivery-status", parts)
        status = parts["message/delivery-status"].as_string()
        self.assertRegex(status, r"(?i)action: failed")
        self.assertIn("broken@test.example", status)
        self.assertIn(b"Subject: doomed", dsn[0])
        self.assertTrue(wait_for(self.queue_empty, DELIVERY_TIMEOUT), self.inst.mailq_json())

    def test_alias_to_a_remote_address_stays_queued(self):
        self.send("-oi", "far", stdin=b"Subject: far away\n\nfor later\n")
        got = wait_for(lambda: (self.recipient("far@test.example")[1] or {}).get("last_error"),
                       DELIVERY_TIMEOUT)
        self.assertTrue(got, f"{self.inst.mailq_json()}\n{self.inst.log_text()}")
        m, r = self.recipient("far@test.example")
        self.assertEqual(r["state"], "pending")
        self.assertEqual(len(self.inst.mailq_json()), 1)

    def test_alias_to_a_mailbox_and_a_remote_address(self):
        self.send("-oi", "mixed", stdin=b"Subject: half\n\nhalf now\n")
        self.assertEqual(len(self.wait_mbox("bob")), 1)
        got = wait_for(lambda: (self.recipient("mixed@test.example")[1] or {}).get("last_error"),
                       DELIVERY_TIMEOUT)
        self.assertTrue(got, self.inst.mailq_json())
        self.assertEqual(self.recipient("mixed@test.example")[1]["state"], "pending")
        # Another queue run does not deliver bob's copy again.
        r = self.inst.masqmail("-q")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.inst.mbox_messages("bob")), 1)


class QueueTools(DaemonCase):
    def test_mailq_json_fields(self):
        self.start()
        qid = self.queued_id("-oi", "-f", "alice", "x@example.org", "y@example.net",
                             stdin=b"Subject: json\n\nsome body\n")
        got = wait_for(lambda: [m for m in self.inst.mailq_json()
                                if all(r["last_error"] for r in m["recipients"])], DELIVERY_TIMEOUT)
        self.assertTrue(got, self.inst.mailq_json())
        entries = self.inst.mailq_json()
        self.assertEqual(len(entries), 1)
        m = entries[0]
        self.assertEqual(set(m), {"id", "sender", "size", "age", "recipients"})
        self.assertEqual(m["id"], qid)
        self.assertEqual(m["sender"], "alice@test.example")
        self.assertIsInstance(m["size"], int)
        self.assertGreater(m["size"], len(b"Subject: json\n\nsome body\n"))
        self.assertIsInstance(m["age"], int)
        self.assertTrue(0 <= m["age"] < 3600, m["age"])
        self.assertEqual([r["address"] for r in m["recipients"]], ["x@example.org", "y@example.net"])
        for r in m["recipients"]:
            self.assertEqual(set(r), {"address", "state", "attempts", "last_error", "next_try", "route"})
            self.assertEqual(r["state"], "pending")
            self.assertIsInstance(r["attempts"], int)
            self.assertIsInstance(r["last_error"], str)
            self.assertTrue(r["next_try"] is None or isinstance(r["next_try"], int), r)
            self.assertTrue(r["route"] is None or isinstance(r["route"], str), r)
        text = self.inst.masqmail("-bp").stdout.decode()
        self.assertTrue(text.startswith(qid + " <= "), text)

    def test_mailrm_with_daemons_running(self):
        self.start()
        self.wait_daemons_up()
        keep = self.queued_id("-oi", "x@example.org", stdin=b"Subject: keep\n\nk\n")
        gone = self.queued_id("-oi", "y@example.org", stdin=b"Subject: remove\n\nr\n")
        wait_for(lambda: len(self.inst.mailq_json()) == 2, DELIVERY_TIMEOUT)
        r = self.inst.masqmail("-Mrm", gone)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: [m["id"] for m in self.inst.mailq_json()] == [keep], 10),
                        self.inst.mailq_json())
        for area in ("new", "queue"):
            d = self.inst.path("spool", area)
            self.assertFalse([n for n in os.listdir(d) if gone in n], area)
        # Removed by qmgr itself (its pid in the log line), not behind its back.
        qmgr = self.daemon_pids().get("qmgr")
        self.assertRegex(self.inst.log_text(), rf"\[{qmgr}\] .*{re.escape(gone)} removed")
        r = self.inst.masqmail("-Mrm", gone)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.startswith(b"masqmail: "), r.stderr)
        self.assertIn(self.inst.daemon_pid(), self.inst.processes(), "qmgr survived")


if __name__ == "__main__":
    mmtest.main()
