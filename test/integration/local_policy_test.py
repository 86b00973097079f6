# SPDX-License-Identifier: GPL-2.0-or-later
"""Local mail policy through the daemons of a private instance, each the
behaviour a test must hold in place: -f/-r refused for an ordinary user, delay
warnings and max_defer_time bounces, bounces of bounces (postmaster, never a
loop), errmsg_file/warnmsg_file templates, mailrm by an ordinary user,
runq ignoring backoff, From: with the GECOS name, delivery selection
(mda_users, mbox_default = maildir, the *_fromline/*_fromhack options), the
ignored sendmail flags in the log, log_user, and the text listing of mailq.

Tests that switch to another uid (nobody, a user with a GECOS name) need
root; the instance is then owned by root and its folder made traversable."""

import email
import email.policy
import email.utils
import glob
import json
import os
import pwd
import re
import subprocess
import time
import unittest

import mmtest
from mmtest import MASQMAIL, Instance, wait_for

# "Eventually delivered": generous, never a performance assertion.
DELIVERY_TIMEOUT = 20
NOBODY = 65534
IS_ROOT = os.geteuid() == 0

# An alias pipe or MDA: one JSON file per call in the folder named by argv[1]
# (argv, stdin, uid), then exits with the status in argv[2] (default 0).
# Files, not one shared record, so that concurrent calls are all counted.
RECORD_SCRIPT = """#!/usr/bin/python3
import json, os, sys, time
out = sys.argv[1]
status = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 0
data = sys.stdin.buffer.read()
name = os.path.join(out, "%d-%d.json" % (time.time_ns(), os.getpid()))
with open(name + ".tmp", "w") as f:
    json.dump({"argv": sys.argv, "stdin": data.decode("latin-1"), "uid": os.getuid()}, f)
os.rename(name + ".tmp", name)
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


def first_part(msg, content_type):
    """The first part of that type, as a string: a report about a report
    holds the inner one's parts too (inside its message/rfc822 part)."""
    for p in msg.walk():
        if p.get_content_type() == content_type:
            return p.as_string()
    raise AssertionError(f"no {content_type} part in {msg.as_string()[:2000]}")


def subject_of(message):
    return parse_mbox_message(message)["Subject"] or ""


def demote(uid, gid):
    def become():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return become


class Case(unittest.TestCase):
    """A fresh private instance per test (cheap: the daemons start in well
    under a second). `configure` appends to its masqmail.conf; "{root}" in
    the text is the instance's folder."""

    extra_conf = ""
    alias_lines = ()  # "{root}", "{record}" expanded; None: no alias_file

    def setUp(self):
        self.inst = Instance(self.extra_conf)
        self.addCleanup(self.inst.close)
        self.record = self.inst.write("record.py", RECORD_SCRIPT)
        os.chmod(self.record, 0o755)
        if self.alias_lines:
            aliases = self.inst.write("aliases", "".join(
                self.expand(line) + "\n" for line in self.alias_lines))
            self.configure(f'alias_file = "{aliases}"\n')

    def expand(self, text):
        return text.replace("{root}", self.inst.root).replace("{record}", self.record)

    def configure(self, text):
        with open(self.inst.conf, "a") as f:
            f.write(self.expand(text))

    def out_dir(self, name):
        """A folder for RECORD_SCRIPT's calls, writable by every uid."""
        path = self.inst.path(name)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o777)
        return path

    def calls(self, name):
        """RECORD_SCRIPT's calls recorded in folder `name`, oldest first."""
        out = []
        for p in sorted(glob.glob(os.path.join(self.inst.path(name), "*.json"))):
            with open(p) as f:
                out.append(json.load(f))
        return out

    def wait_calls(self, name, count=1, timeout=DELIVERY_TIMEOUT):
        got = wait_for(lambda: len(self.calls(name)) >= count, timeout)
        self.assertTrue(got, f"{name}: {len(self.calls(name))} of {count} call(s);\n"
                        f"log:\n{self.inst.log_text()}")
        return self.calls(name)

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
        r = self.send("-v", *args, stdin=stdin)
        m = re.search(rb"queued as (\S+)", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        return m.group(1).decode()

    def runq(self):
        r = self.inst.masqmail("-q")
        self.assertEqual(r.returncode, 0, r.stderr)

    def wait_mbox(self, user, count=1, timeout=DELIVERY_TIMEOUT):
        got = wait_for(lambda: len(self.inst.mbox_messages(user)) >= count, timeout)
        messages = self.inst.mbox_messages(user)
        self.assertTrue(got, f"{user}: {len(messages)} of {count} message(s) after {timeout} s;\n"
                        f"queue: {self.inst.mailq_json()}\nlog:\n{self.inst.log_text()}")
        return messages

    def wait_queue_empty(self, timeout=DELIVERY_TIMEOUT):
        self.assertTrue(wait_for(lambda: self.inst.mailq_json() == [], timeout),
                        f"{self.inst.mailq_json()}\nlog:\n{self.inst.log_text()}")

    def recipient(self, address):
        """(message, recipient) of the queued message that has `address`."""
        for m in self.inst.mailq_json():
            for r in m["recipients"]:
                if r["address"] == address:
                    return m, r
        return None, None

    def spool_files(self):
        """Every file left in the spool's message areas."""
        found = []
        for area in ("new", "queue", "maildrop", "tmp", "hold", "corrupt"):
            d = self.inst.path("spool", area)
            if os.path.isdir(d):
                found += [f"{area}/{n}" for n in os.listdir(d)]
        return found

    # --- another uid against this root-owned instance ---

    def open_to_others(self):
        os.chmod(self.inst.root, 0o755)
        os.chmod(self.inst.conf, 0o644)
        for name in ("aliases", "record.py"):
            if os.path.exists(self.inst.path(name)):
                os.chmod(self.inst.path(name), 0o755)

    def run_as(self, uid, gid, *args, stdin=b"", name=None):
        """The front end as uid/gid; `name` is its argv[0] (mailrm, ...)."""
        return subprocess.run([name or MASQMAIL, "-C", self.inst.conf, *args], input=stdin,
                              capture_output=True, timeout=60, preexec_fn=demote(uid, gid), env={},
                              executable=MASQMAIL)

    def as_nobody(self, *args, stdin=b"", name=None):
        return self.run_as(NOBODY, NOBODY, *args, stdin=stdin, name=name)

    def assert_one_line(self, stderr, ending):
        lines = stderr.decode(errors="replace").splitlines()
        self.assertEqual(len(lines), 1, stderr)
        self.assertTrue(lines[0].endswith(ending), stderr)


# --- 1. -f and -r refused for an ordinary user ---

@unittest.skipUnless(IS_ROOT, "needs root to submit as nobody to root's instance")
class ReturnPathPrivilege(Case):
    REFUSAL = "must be root, mail or in group mail for setting return path."

    def setUp(self):
        super().setUp()
        self.open_to_others()

    def check_refused(self):
        for option in ("-f", "-r"):
            r = self.as_nobody(option, "forged@example.org", "-oi", "bob",
                               stdin=b"Subject: forged\n\nnot from me\n")
            self.assertEqual(r.returncode, 77, f"{option}: {r!r}")
            self.assert_one_line(r.stderr, self.REFUSAL)
            self.assertEqual(r.stdout, b"")
        self.assertEqual(self.spool_files(), [], "something was queued")
        self.assertEqual(self.inst.mailq_json(), [])
        self.assertEqual(self.inst.read_mbox("bob"), b"")

    def test_refused_with_daemons(self):
        self.start()
        self.check_refused()
        time.sleep(0.5)  # nothing on its way either
        self.assertEqual(self.inst.read_mbox("bob"), b"")
        self.assertEqual(self.spool_files(), [])

    def test_refused_without_daemons(self):
        self.check_refused()
        self.assertEqual(self.inst.processes(), {})

    def test_owner_may_set_the_return_path(self):
        # The counterpart: the instance owner (root here) is privileged.
        self.start()
        self.send("-f", "alice@sender.example", "-oi", "bob", stdin=b"Subject: allowed\n\nok\n")
        head = header_block(self.wait_mbox("bob")[0])
        self.assertRegex(head, rb"(?im)^return-path: <alice@sender\.example>$")


# --- 2. delay warnings (warn_intervals) and the max_defer_time bounce ---

class DelayWarningsAndExpiry(Case):
    extra_conf = 'warn_intervals = "2s;4s"\nmax_defer_time = "8s"\n'
    alias_lines = ('slow: "|{record} {root}/slow 75"',)

    def test_two_warnings_then_a_bounce(self):
        self.out_dir("slow")
        self.start()
        qid = self.queued_id("-oi", "-f", "alice", "slow", stdin=b"Subject: patience\n\nslowly\n")
        self.wait_calls("slow")
        # Queue runs every second until the bounce: warnings are due when the
        # message is older than 2 s and than 4 s (once each), the bounce 8 s
        # after the first attempt.
        deadline = time.monotonic() + 16
        while time.monotonic() < deadline:
            time.sleep(1)
            self.runq()
            if any("Undelivered" in subject_of(m) for m in self.inst.mbox_messages("alice")):
                break
        self.wait_queue_empty()
        messages = self.inst.mbox_messages("alice")
        subjects = [subject_of(m) for m in messages]
        warnings = [m for m in messages if "Delayed Mail" in subject_of(m)]
        failures = [m for m in messages if "Undelivered" in subject_of(m)]
        self.assertEqual(len(warnings), 2, f"{subjects}\n{self.inst.log_text()}")
        self.assertEqual(len(failures), 1, subjects)
        self.assertEqual(len(messages), 3, subjects)
        self.assertEqual(messages[-1], failures[0], "the bounce comes after the warnings")
        for m in messages:
            head = header_block(m)
            self.assertRegex(head, rb"(?im)^return-path: <>$")
            msg = parse_mbox_message(m)
            self.assertIn("MAILER-DAEMON", msg["From"])
            self.assertTrue((msg["Auto-Submitted"] or "").startswith("auto-replied"), msg["Auto-Submitted"])
            self.assertEqual(msg.get_content_type(), "multipart/report")
            self.assertEqual(msg.get_param("report-type"), "delivery-status")
            self.assertIn(qid, m.decode(errors="replace"))
        status = first_part(parse_mbox_message(warnings[0]), "message/delivery-status")
        self.assertRegex(status, r"(?i)action: delayed")
        self.assertIn("slow@test.example", status)
        self.assertIsNone(re.search(r"(?m)^Content-Type: message/rfc822", warnings[0].decode()),
                          "a warning returns the headers only")
        status = first_part(parse_mbox_message(failures[0]), "message/delivery-status")
        self.assertRegex(status, r"(?i)action: failed")
        self.assertIn("slow@test.example", status)
        self.assertIn(b"Subject: patience", failures[0])


# --- 3. a bounce that cannot be delivered; never a bounce of a bounce ---

class BounceOfBounce(Case):
    alias_lines = (
        'broken: "|{record} {root}/broken 1"',
        'alice: "|{record} {root}/alice 1"',
    )

    def setUp(self):
        super().setUp()
        for name in ("broken", "alice", "postmaster"):
            self.out_dir(name)

    def test_undeliverable_bounce_goes_to_postmaster(self):
        self.start()
        qid = self.queued_id("-oi", "-f", "alice", "broken", stdin=b"Subject: doomed\n\nfails\n")
        self.wait_calls("broken")
        # alice's "mailbox" (a pipe) fails on the bounce too: postmaster gets it.
        bounce = self.wait_calls("alice")[0]["stdin"]
        self.assertIn(qid, bounce)
        self.assertRegex(bounce, r"(?im)^return-path: <>$")
        reports = self.wait_mbox("postmaster")
        self.wait_queue_empty()
        time.sleep(1)  # nothing more is coming: no loop
        reports = self.inst.mbox_messages("postmaster")
        self.assertEqual(len(reports), 1, self.inst.log_text())
        self.assertEqual(len(self.calls("alice")), 1, self.inst.log_text())
        self.assertEqual(len(self.calls("broken")), 1)
        msg = parse_mbox_message(reports[0])
        self.assertRegex(header_block(reports[0]), rb"(?im)^return-path: <>$")
        self.assertIn("MAILER-DAEMON", msg["From"])
        self.assertEqual(msg.get_content_type(), "multipart/report")
        status = first_part(msg, "message/delivery-status")
        self.assertIn("alice@test.example", status)
        self.assertNotIn("broken@test.example", status, "the outer report is about alice's copy")
        self.assertRegex(status, r"(?i)action: failed")
        self.assertEqual(self.inst.mailq_json(), [])

    def test_failing_postmaster_ends_it(self):
        with open(self.inst.path("aliases"), "a") as f:
            f.write(self.expand('postmaster: "|{record} {root}/postmaster 1"\n'))
        self.start()
        self.queued_id("-oi", "-f", "alice", "broken", stdin=b"Subject: doomed twice\n\nfails\n")
        self.wait_calls("postmaster")
        self.assertTrue(wait_for(lambda: "no report sent" in self.inst.log_text(), DELIVERY_TIMEOUT),
                        self.inst.log_text())
        self.wait_queue_empty()
        time.sleep(1.5)  # a loop would show as more calls
        self.runq()
        self.assertEqual(self.inst.mailq_json(), [])
        self.assertEqual(len(self.calls("broken")), 1)
        self.assertEqual(len(self.calls("alice")), 1)
        self.assertEqual(len(self.calls("postmaster")), 1, self.inst.log_text())
        self.assertEqual(self.inst.read_mbox("postmaster"), b"")
        lines = [l for l in self.inst.log_text().splitlines() if "no report sent" in l]
        self.assertEqual(len(lines), 1, self.inst.log_text())
        reports = [l for l in self.inst.log_text().splitlines() if "report" in l and " to " in l]
        self.assertEqual(len(reports), 2, "to alice, then to postmaster; nothing more")


# --- 4. errmsg_file and warnmsg_file ---

ERRMSG_TEMPLATE = """To: ${return_path}
Subject: custom failure for ${uid}
X-Template: errmsg

Dear ${return_path_local} at ${return_path_domain},
these recipients failed:
@failed_rcpts
because:
${err_msg}
-- the headers --
@msg_headers
-- end --
"""

WARNMSG_TEMPLATE = """To: ${return_path}
Subject: custom delay for ${uid}
X-Template: warnmsg

Still trying on ${host_name}:
@failed_rcpts
"""


class Templates(Case):
    alias_lines = (
        'broken: "|{record} {root}/broken 1"',
        'slow: "|{record} {root}/slow 75"',
    )

    def setUp(self):
        super().setUp()
        self.out_dir("broken")
        self.out_dir("slow")

    def use_templates(self):
        err = self.inst.write("errmsg.tpl", ERRMSG_TEMPLATE)
        warn = self.inst.write("warnmsg.tpl", WARNMSG_TEMPLATE)
        self.configure(f'errmsg_file = "{err}"\nwarnmsg_file = "{warn}"\n'
                       'warn_intervals = "1s"\nmax_defer_time = "1h"\n')

    def test_errmsg_file_makes_the_bounce(self):
        self.use_templates()
        self.start()
        qid = self.queued_id("-oi", "-f", "alice", "broken", stdin=b"Subject: doomed\n\nthe body\n")
        bounce = self.wait_mbox("alice")[0]
        self.wait_queue_empty()
        msg = parse_mbox_message(bounce)
        self.assertEqual(msg["Subject"], f"custom failure for {qid}")
        self.assertEqual(msg["X-Template"], "errmsg")
        self.assertTrue((msg["Auto-Submitted"] or "").startswith("auto-replied"), msg["Auto-Submitted"])
        self.assertRegex(header_block(bounce), rb"(?im)^return-path: <>$")
        text = bounce.decode(errors="replace")
        self.assertIn("Dear alice at test.example,", text)
        self.assertIn("\n\tbroken@test.example\n", text)
        self.assertRegex(text, r"(?m)^<broken@test\.example>: ")
        self.assertIn("-- the headers --\n", text)
        self.assertRegex(text, r"-- the headers --\n(.*\n)*Subject: doomed\n(.*\n)*-- end --")
        self.assertNotIn("the body", text, "@msg_body was not asked for")
        self.assertNotIn("multipart/report", text)

    def test_warnmsg_file_makes_the_warning(self):
        self.use_templates()
        self.start()
        qid = self.queued_id("-oi", "-f", "alice", "slow", stdin=b"Subject: later\n\nwait\n")
        self.wait_calls("slow")
        time.sleep(2.2)
        self.runq()
        warning = self.wait_mbox("alice")[0]
        msg = parse_mbox_message(warning)
        self.assertEqual(msg["Subject"], f"custom delay for {qid}")
        self.assertEqual(msg["X-Template"], "warnmsg")
        self.assertTrue((msg["Auto-Submitted"] or "").startswith("auto-replied"))
        self.assertRegex(header_block(warning), rb"(?im)^return-path: <>$")
        self.assertIn("Still trying on test.example:\n\tslow@test.example\n", warning.decode())
        m, r = self.recipient("slow@test.example")
        self.assertIsNotNone(r, "a warning does not end the delivery")
        self.assertEqual(r["state"], "pending")

    def test_unreadable_template_falls_back_and_is_logged(self):
        missing_err = self.inst.path("no-such-errmsg.tpl")
        missing_warn = self.inst.path("no-such-warnmsg.tpl")
        self.configure(f'errmsg_file = "{missing_err}"\nwarnmsg_file = "{missing_warn}"\n')
        self.start()
        self.queued_id("-oi", "-f", "alice", "broken", stdin=b"Subject: doomed\n\nfails\n")
        bounce = self.wait_mbox("alice")[0]
        msg = parse_mbox_message(bounce)
        self.assertEqual(msg.get_content_type(), "multipart/report", "the built-in text is used")
        self.assertIn("Undelivered", msg["Subject"])
        log = self.inst.log_text()
        for path in (missing_err, missing_warn):
            lines = [l for l in log.splitlines() if "template" in l and path in l]
            self.assertTrue(lines, f"no log line names the template {path}:\n{log}")


# --- 5. mailrm by an ordinary user ---

@unittest.skipUnless(IS_ROOT, "needs root to run mailrm as nobody")
class MailrmByUser(Case):
    def setUp(self):
        super().setUp()
        self.open_to_others()

    def submit_both(self):
        """Queues root's message and nobody's (remote: they stay queued)."""
        root_id = self.queued_id("-oi", "x@example.org", stdin=b"Subject: root's\n\nr\n")
        r = self.as_nobody("-v", "-oi", "y@example.org", stdin=b"Subject: nobody's\n\nn\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        nobody_id = re.search(rb"queued as (\S+)", r.stderr).group(1).decode()
        self.assertTrue(wait_for(lambda: len(self.inst.mailq_json()) == 2, DELIVERY_TIMEOUT),
                        self.inst.mailq_json())
        return root_id, nobody_id

    def ids(self):
        return sorted(m["id"] for m in self.inst.mailq_json())

    def test_through_qmgr(self):
        self.start()
        root_id, nobody_id = self.submit_both()
        r = self.as_nobody("-Mrm", root_id)
        self.assertEqual(r.returncode, 77, r)
        self.assert_one_line(r.stderr, "is not yours")
        self.assertIn(root_id, r.stderr.decode())
        self.assertEqual(self.ids(), sorted([root_id, nobody_id]))
        r = self.as_nobody(nobody_id, name="mailrm")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn(f"{nobody_id} deleted".encode(), r.stdout)
        self.assertEqual(self.ids(), [root_id])
        r = self.as_nobody("-Mrm", nobody_id)  # now unknown
        self.assertEqual(r.returncode, 66, r)
        self.assert_one_line(r.stderr, "in the queue")
        self.assertIn(nobody_id, r.stderr.decode())
        r = self.as_nobody("-Mrm", "not-an-id")
        self.assertEqual(r.returncode, 64, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertEqual(self.ids(), [root_id])
        self.assertIn(self.inst.daemon_pid(), self.inst.processes(), "the daemons survived")

    def test_without_daemons(self):
        # Submitted through the daemons (nobody has no postdrop here), then
        # removed with none running: the spool is not readable for nobody.
        self.start()
        root_id, nobody_id = self.submit_both()
        self.assertTrue(self.inst.stop())
        r = self.as_nobody("-Mrm", root_id)
        self.assertEqual(r.returncode, 77, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertTrue(r.stderr.startswith(b"masqmail: "), r.stderr)
        self.assertEqual(self.ids(), sorted([root_id, nobody_id]), "root's message was removed")
        r = self.as_nobody("-Mrm", nobody_id)
        self.assertEqual(len(r.stderr.splitlines()), 1 if r.returncode else 0, r.stderr)
        if r.returncode == 0:
            self.assertIn(f"{nobody_id} deleted".encode(), r.stdout)
            self.assertEqual(self.ids(), [root_id])
        else:
            self.assertEqual(r.returncode, 77, r)
            self.assertEqual(self.ids(), sorted([root_id, nobody_id]))
        r = self.as_nobody("-Mrm", "1796375657.7f974d50e831d3be")
        self.assertIn(r.returncode, (66, 77), r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertEqual(self.inst.processes(), {})


# --- 6. runq ignores backoff ---

class RunqIgnoresBackoff(Case):
    alias_lines = ('slow: "|{record} {root}/slow 75"',)

    def test_each_q_is_an_attempt(self):
        self.out_dir("slow")
        self.start()
        self.send("-oi", "slow", stdin=b"Subject: again\n\nand again\n")
        self.wait_calls("slow")
        got = wait_for(lambda: (self.recipient("slow@test.example")[1] or {}).get("attempts", 0) >= 1,
                       DELIVERY_TIMEOUT)
        self.assertTrue(got, self.inst.mailq_json())
        attempts = self.recipient("slow@test.example")[1]["attempts"]
        for n in (1, 2):
            m, r = self.recipient("slow@test.example")
            self.assertIsInstance(r["next_try"], int)
            self.assertGreater(r["next_try"], time.time(), f"backoff: the retry is not yet due: {r}")
            self.runq()
            m, r = self.recipient("slow@test.example")
            self.assertIsNotNone(r, self.inst.log_text())
            self.assertEqual(r["attempts"], attempts + n, f"{r}\n{self.inst.log_text()}")
            self.assertEqual(r["state"], "pending")
            self.assertEqual(len(self.calls("slow")), attempts + n)


# --- 7. From: with the user's GECOS name ---

def gecos_user():
    """A user whose GECOS name differs from the login, preferring one with
    ",,," after the name (cut off by masqmail): (pwd entry, name)."""
    best = None
    for pw in pwd.getpwall():
        name = pw.pw_gecos.split(",", 1)[0]
        if pw.pw_uid == 0 or not name or name == pw.pw_name or not re.fullmatch(r"[A-Za-z][A-Za-z .-]*", name):
            continue
        if "," in pw.pw_gecos:
            return pw, name
        best = best or (pw, name)
    return best


@unittest.skipUnless(IS_ROOT, "needs root to submit as another user")
class GecosName(Case):
    def setUp(self):
        super().setUp()
        found = gecos_user()
        if found is None:
            r = subprocess.run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", "-c",
                                "Test Person,,,", "mmgecos"], capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.addCleanup(subprocess.run, ["userdel", "mmgecos"], capture_output=True)
            found = (pwd.getpwnam("mmgecos"), "Test Person")
        self.user, self.full_name = found
        self.open_to_others()

    def test_from_has_the_gecos_name(self):
        self.start()
        r = self.run_as(self.user.pw_uid, self.user.pw_gid, "-oi", "bob",
                        stdin=b"Subject: who am I\n\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = parse_mbox_message(self.wait_mbox("bob")[0])
        login = self.user.pw_name
        self.assertEqual(email.utils.parseaddr(msg["From"]), (self.full_name, f"{login}@test.example"),
                         f"{msg['From']!r} for GECOS {self.user.pw_gecos!r}")
        self.assertNotIn(",", msg["From"])
        self.assertRegex(header_block(self.inst.mbox_messages("bob")[0]),
                         rf"(?im)^return-path: <{re.escape(login)}@test\.example>$".encode())

    def test_F_overrides_the_gecos_name(self):
        self.start()
        r = self.run_as(self.user.pw_uid, self.user.pw_gid, "-F", "Someone Else", "-oi", "bob",
                        stdin=b"Subject: named\n\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = parse_mbox_message(self.wait_mbox("bob")[0])
        self.assertEqual(email.utils.parseaddr(msg["From"])[0], "Someone Else", msg["From"])

    def test_an_existing_from_is_kept(self):
        self.start()
        r = self.run_as(self.user.pw_uid, self.user.pw_gid, "-oi", "bob",
                        stdin=b"From: Mine <mine@example.org>\nSubject: mine\n\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        msg = parse_mbox_message(self.wait_mbox("bob")[0])
        self.assertEqual(msg.get_all("From"), ["Mine <mine@example.org>"])


# --- 8. delivery selection: mda_users, mbox_default = maildir, *_fromline/*_fromhack ---

FROM_BODY = b"Subject: quoting\n\nFrom the start\n>From already quoted\nnot From here\n"


class DeliverySelection(Case):
    alias_lines = ('piped: "|{record} {root}/pipe"',)

    def use_mda(self, flags=""):
        self.out_dir("mda")
        self.configure('mda = "{record} {root}/mda 0 ${rcpt_local} ${return_path} ${rcpt}"\n'
                       'mda_users = "mdauser"\n' + flags)

    def test_mda_users_go_to_the_mda(self):
        self.use_mda()
        self.start()
        qid = self.queued_id("-oi", "-f", "alice", "mdauser", "bob", stdin=b"Subject: mda\n\nvia mda\n")
        call = self.wait_calls("mda")[0]
        self.assertEqual(call["argv"][3:], ["mdauser", "alice@test.example", "mdauser@test.example"])
        self.assertIn("via mda", call["stdin"])
        self.assertIn("\nSubject: mda\n", call["stdin"])
        self.assertFalse(call["stdin"].startswith("From "), "mda_fromline is off by default")
        self.assertIn(qid, call["stdin"])
        self.assertEqual(len(self.wait_mbox("bob")), 1, "bob is no MDA user")
        self.wait_queue_empty()
        self.assertEqual(len(self.calls("mda")), 1, "only mdauser goes to the MDA")
        self.assertFalse(os.path.exists(self.inst.path("mail", "mdauser")))

    def test_mbox_default_maildir(self):
        self.configure('mbox_default = "maildir"\nmbox_users = "bob"\n')
        self.start()
        self.send("-oi", "carol", "bob", stdin=b"Subject: md\n\ninto a maildir\n")
        new = self.inst.path("mail", "carol", "new")
        got = wait_for(lambda: os.path.isdir(new) and os.listdir(new), DELIVERY_TIMEOUT)
        self.assertTrue(got, f"nothing in {new};\nlog:\n{self.inst.log_text()}")
        self.assertEqual(len(os.listdir(new)), 1)
        with open(os.path.join(new, os.listdir(new)[0]), "rb") as f:
            data = f.read()
        self.assertIn(b"Subject: md\n", data)
        self.assertFalse(data.startswith(b"From "))
        self.assertEqual(os.listdir(self.inst.path("mail", "carol", "tmp")), [])
        # mbox_users wins over mbox_default.
        self.assertEqual(len(self.wait_mbox("bob")), 1)
        self.assertTrue(os.path.isfile(self.inst.path("mail", "bob")))
        self.wait_queue_empty()

    def deliver_quoting_test(self):
        self.out_dir("pipe")
        self.start()
        self.send("-oi", "-f", "alice", "piped", "mdauser", stdin=FROM_BODY)
        return self.wait_calls("pipe")[0]["stdin"], self.wait_calls("mda")[0]["stdin"]

    def assert_from_line(self, text, wanted, what):
        if wanted:
            self.assertRegex(text.split("\n", 1)[0], r"^From alice@test\.example ", what)
        else:
            self.assertFalse(text.startswith("From "), f"{what}: {text[:80]!r}")

    def assert_quoting(self, text, wanted, what):
        body = text.split("\n\n", 1)[1]
        if wanted:
            self.assertIn("\n>From the start\n", "\n" + body, what)
        else:
            self.assertIn("\nFrom the start\n", "\n" + body, what)
            self.assertNotIn(">From the start", body, what)
        self.assertIn("\n>From already quoted\n", "\n" + body, what)
        self.assertIn("\nnot From here\n", "\n" + body, what)

    def test_pipe_fromline_and_mda_fromhack(self):
        self.use_mda('pipe_fromline = true\npipe_fromhack = false\n'
                     'mda_fromline = false\nmda_fromhack = true\n')
        pipe, mda = self.deliver_quoting_test()
        self.assert_from_line(pipe, True, "pipe_fromline")
        self.assert_quoting(pipe, False, "pipe_fromhack off")
        self.assert_from_line(mda, False, "mda_fromline off")
        self.assert_quoting(mda, True, "mda_fromhack")

    def test_pipe_fromhack_and_mda_fromline(self):
        self.use_mda('pipe_fromline = false\npipe_fromhack = true\n'
                     'mda_fromline = true\nmda_fromhack = false\n')
        pipe, mda = self.deliver_quoting_test()
        self.assert_from_line(pipe, False, "pipe_fromline off")
        self.assert_quoting(pipe, True, "pipe_fromhack")
        self.assert_from_line(mda, True, "mda_fromline")
        self.assert_quoting(mda, False, "mda_fromhack off")

    def test_defaults_add_no_from_line_and_no_quoting(self):
        self.use_mda()
        pipe, mda = self.deliver_quoting_test()
        for text, what in ((pipe, "pipe"), (mda, "mda")):
            self.assert_from_line(text, False, what)
            self.assert_quoting(text, False, what)


# --- 9. ignored sendmail flags are logged ---

class IgnoredFlags(Case):
    FLAGS = [["-N", "never"], ["-R", "hdrs"], ["-V", "envid"], ["-U"], ["-G"], ["-L", "tag"],
             ["-h", "5"], ["-n"], ["-m"], ["-B", "8BITMIME"], ["-oem"]]

    def test_logged_at_the_default_level(self):
        with open(self.inst.conf) as f:
            self.assertNotIn("log_level", f.read())
        self.start()
        args = [a for flag in self.FLAGS for a in flag]
        r = self.send(*args, "-oi", "bob", stdin=b"Subject: flags\n\nignored flags\n")
        self.assertEqual(r.stderr, b"")
        self.assertEqual(len(self.wait_mbox("bob")), 1)
        lines = [l for l in self.inst.log_text().splitlines() if "ignored option" in l]
        for flag in self.FLAGS:
            text = " ".join(flag)
            self.assertTrue(any(re.search(rf"(?<!\S){re.escape(text)}(?!\S)", l) for l in lines),
                            f"{text} not logged:\n{self.inst.log_text()}")
        self.assertNotIn("-oi", "\n".join(lines), "-oi is not ignored")


# --- 10. log_user ---

class LogUser(Case):
    extra_conf = 'log_user = "archive"\n'
    alias_lines = ('broken: "|{record} {root}/broken 1"',)

    def test_every_message_lands_in_the_archive(self):
        self.out_dir("broken")
        self.start()
        self.send("-oi", "bob", stdin=b"Subject: first\n\none\n")
        self.send("-oi", "-t", stdin=b"To: carol, dave\nSubject: second\n\ntwo\n")
        self.send("-oi", "archive", "bob", stdin=b"Subject: third\n\nthree\n")
        self.send("-oi", "-f", "alice", "broken", stdin=b"Subject: fourth\n\nfour\n")
        self.wait_mbox("alice")  # the bounce of the fourth
        self.wait_queue_empty()
        archived = self.wait_mbox("archive", 5)
        subjects = sorted(subject_of(m) for m in archived)
        self.assertEqual(len(archived), 5, subjects)
        for s in ("first", "second", "third", "fourth"):
            self.assertEqual(subjects.count(s), 1, f"{s}: {subjects}")
        self.assertTrue(any("Undelivered" in s for s in subjects), subjects)
        for m in self.inst.mbox_messages("bob") + self.inst.mbox_messages("carol"):
            self.assertNotIn(b"archive", header_block(m).lower().replace(b"envelope-to", b""),
                             "log_user is never in a header")
        self.assertEqual(len(self.inst.mbox_messages("bob")), 2)
        self.assertEqual(len(self.inst.mbox_messages("dave")), 1)


# --- 11. the text listing of mailq ---

class MailqText(Case):
    alias_lines = ('broken: "|{record} {root}/broken 1"',)

    def test_only_pending_recipients_are_listed(self):
        self.out_dir("broken")
        self.start()
        qid = self.queued_id("-oi", "bob", "x@example.org", "broken", "carol", "y@example.net",
                             stdin=b"Subject: partly\n\nhalf delivered\n")
        self.wait_mbox("bob")
        self.wait_mbox("carol")
        self.wait_mbox("root")  # the bounce for broken: that recipient is final
        got = wait_for(lambda: all(r["last_error"] or r["state"] != "pending"
                                   for m in self.inst.mailq_json() for r in m["recipients"]), DELIVERY_TIMEOUT)
        self.assertTrue(got, self.inst.mailq_json())
        r = self.send("-bp")
        lines = r.stdout.decode().splitlines()
        self.assertRegex(lines[0], rf"^{re.escape(qid)} <= <root@test\.example> size=\d+ age=\d+s")
        self.assertEqual(lines[1:], [" " * 14 + "== <x@example.org>", " " * 14 + "== <y@example.net>"],
                         r.stdout.decode())

    def test_empty_queue(self):
        r = self.send("-bp")
        self.assertEqual(r.stdout, b"mail queue is empty.\n")


if __name__ == "__main__":
    mmtest.main()
