# SPDX-License-Identifier: GPL-2.0-or-later
"""postdrop, the set-gid drop helper: a valid drop file on stdin becomes one
durable file in spool_dir/maildrop/ owned by the caller; garbage, a missing
maildrop/ or a bad configuration give their exit codes and leave nothing;
enqueue is woken through public/pickup. Run as root, the test also installs
a set-gid copy and submits as an ordinary user, as a system install does.
sendmail refuses, before it runs postdrop, what enqueue would refuse when it
commits the drop file."""

import grp
import os
import re
import shutil
import socket
import stat
import struct
import unittest

import mmtest
from mmtest import POSTDROP, Instance, run

DROP_NAME = re.compile(r"^[0-9]{10}\.[1-9][0-9]{0,9}\.[0-9a-f]{16}$")


def crc32c(data):
    """CRC-32C (Castagnoli), written here independently of libmm."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def record(tag, value):
    value = value.encode() if isinstance(value, str) else value
    return tag.encode() + str(len(value)).encode() + b":" + value + b"\n"


def header_length(content):
    if content.startswith(b"\n"):
        return 1
    end = content.find(b"\n\n")
    return end + 2 if end >= 0 else len(content)


def drop_file(recipients, content, sender=None, extract=False, queue_only=False, verbose=False):
    """A drop file as mm/maildrop.hh documents it (no full name here)."""
    head = b"masqmail-drop 1\n"
    if sender is not None:
        head += record("MF", sender)
    for r in recipients:
        head += record("RT", r)
    head += record("EX", "1" if extract else "0")
    head += record("QO", "1" if queue_only else "0")
    head += record("VB", "1" if verbose else "0")
    head += b"CT0:\n"
    end = b"EN50:%020d %020d " % (len(content), header_length(content))
    body = head + content + end
    return body + b"%08x\n" % crc32c(body)


class Postdrop(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()
        self.maildrop = self.inst.path("spool", "maildrop")
        os.mkdir(self.maildrop, 0o700)

    def tearDown(self):
        self.inst.close()

    def postdrop(self, stdin, *args):
        return run([POSTDROP, "-C", self.inst.conf, *args], stdin=stdin)

    def names(self):
        return sorted(os.listdir(self.maildrop))

    def assert_one_line(self, r, text):
        err = r.stderr.decode()
        self.assertTrue(err.startswith("postdrop: ") and err.count("\n") == 1, err)
        self.assertIn(text, err)

    def test_durable_file_with_owner_and_content(self):
        data = drop_file(["bob@example.org"], b"Subject: hi\n\nhello \xe9\n", sender="alice@example.org")
        r = self.postdrop(data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout + r.stderr, b"")
        names = self.names()
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], DROP_NAME)
        st = os.lstat(os.path.join(self.maildrop, names[0]))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_uid, os.getuid())
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        with open(os.path.join(self.maildrop, names[0]), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_each_submission_gets_its_own_file(self):
        for i in range(3):
            r = self.postdrop(drop_file([], b"To: x@example.org\n\n%d\n" % i, extract=True))
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.names()), 3)

    def test_garbage_is_refused_and_leaves_nothing(self):
        valid = drop_file(["bob@example.org"], b"Subject: x\n\nbody\n")
        broken = bytearray(valid)
        broken[-70] ^= 1
        for data in (b"", b"hello\n", valid[:-1], valid + b"x", bytes(broken),
                     drop_file(["bob\r@example.org"], b"x\n"), drop_file([], b"no recipients\n")):
            with self.subTest(data=data[:40]):
                r = self.postdrop(data)
                self.assertEqual(r.returncode, 65, r.stderr)
                self.assert_one_line(r, "refused")
        self.assertEqual(self.names(), [])

    def test_missing_maildrop_is_a_temporary_failure(self):
        os.rmdir(self.maildrop)
        r = self.postdrop(drop_file(["bob@example.org"], b"x\n"))
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assert_one_line(r, "maildrop")

    def test_symlinked_maildrop_is_not_followed(self):
        os.rmdir(self.maildrop)
        elsewhere = self.inst.path("elsewhere")
        os.mkdir(elsewhere)
        os.symlink(elsewhere, self.maildrop)
        r = self.postdrop(drop_file(["bob@example.org"], b"x\n"))
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assert_one_line(r, "maildrop")
        self.assertEqual(os.listdir(elsewhere), [])

    def test_bad_configuration_is_78(self):
        conf = self.inst.write("bad.conf", "no_such_option = 1\n")
        r = run([POSTDROP, "-C", conf], stdin=drop_file(["bob@example.org"], b"x\n"))
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(b"postdrop: cannot read configuration", r.stderr)
        self.assertEqual(self.names(), [])

    def test_usage(self):
        data = drop_file(["bob@example.org"], b"x\n")
        for args in (["-C"], ["-C", "relative.conf"], ["-x"], ["-C", self.inst.conf, "extra"]):
            with self.subTest(args=args):
                r = run([POSTDROP, *args], stdin=data)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assert_one_line(r, "")
        self.assertEqual(self.names(), [])

    def test_wakes_enqueue_through_pickup(self):
        os.mkdir(self.inst.path("spool", "public"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
            listener.bind(self.inst.path("spool", "public", "pickup"))
            listener.listen(4)
            r = self.postdrop(drop_file(["bob@example.org"], b"x\n"))
            self.assertEqual(r.returncode, 0, r.stderr)
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                frame = conn.recv(65536)
        # version 1, type new_message (200), no payload.
        self.assertEqual(len(frame), 16)
        version, kind, length, _ = struct.unpack("<HHIQ", frame)
        self.assertEqual((version, kind, length), (1, 200, 0))
        self.assertEqual(len(self.names()), 1)

    def test_drop_without_a_wake_up_is_picked_up_by_enqueues_rescan(self):
        # A wake-up can be lost (sent to a supervisor being replaced):
        # enqueue reads maildrop/ again every few seconds by itself.
        r = self.postdrop(drop_file(["alice@test.example"], b"Subject: no wake-up\n\nx\n"))
        self.assertEqual(r.returncode, 0, r.stderr)
        [name] = self.names()
        aside = self.inst.path("aside")
        os.rename(os.path.join(self.maildrop, name), aside)  # out of sight of enqueue's start
        self.inst.start()
        self.addCleanup(self.inst.stop)
        os.rename(aside, os.path.join(self.maildrop, name))  # no wake-up sent
        self.assertTrue(mmtest.wait_for(lambda: any(b"Subject: no wake-up" in m
                                                    for m in self.inst.mbox_messages("alice")), 60),
                        self.inst.log_text())
        self.assertEqual(self.names(), [])

    def test_no_listener_at_pickup_is_fine(self):
        os.mkdir(self.inst.path("spool", "public"))
        with open(self.inst.path("spool", "public", "pickup"), "w"):
            pass
        r = self.postdrop(drop_file(["bob@example.org"], b"x\n"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.names()), 1)


class SendmailThroughPostdrop(unittest.TestCase):
    """sendmail with no daemon into a spool the user does not own: the front
    end hands the message to postdrop, but first makes the checks enqueue
    makes when it commits the drop file, so that a refusal is sendmail's exit
    status with a reason, the same as in a spool of one's own, and not a log
    line after exit 0."""

    CONF = "max_received_headers = 3\nmax_msg_size = 2000\n"
    HOPS = b"Received: from a by b; Sat, 21 Nov 2026 08:00:28 +0000\n" * 4
    # Over max_msg_size as submitted (the limit is on what the user gave,
    # as SIZE is in SMTP, not on the headers masqmail adds).
    OVER_LIMIT = b"Subject: big\n\n" + b"x" * 2000 + b"\n"
    REFUSED = (
        ("-t finds no recipient", ["-t"], b"Subject: nobody\n\nx\n", b"no recipients"),
        ("too many hops", ["bob"], HOPS + b"\nbody\n", b"too many hops"),
        ("too large", ["bob"], OVER_LIMIT, b"message too large"),
        ("-t finds a To: that does not parse", ["-t"], b"To: <<<\n\nx\n", b"invalid address in To"),
    )

    def setUp(self):
        self.inst = Instance(self.CONF)
        self.own = Instance(self.CONF)
        # The first submission creates the spool, committed in process.
        r = self.inst.masqmail("bob", stdin=b"\nfirst\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.tmp = self.inst.path("spool", "tmp")
        self.give_spool_away()
        self.maildrop = self.inst.path("spool", "maildrop")

    def tearDown(self):
        os.chmod(self.tmp, 0o700)
        self.inst.close()
        self.own.close()

    def give_spool_away(self):
        """As root: the spool becomes nobody's, as a system install's is the
        queue user's. Otherwise (no other user to give it to) tmp/ becomes
        unreadable: the front end cannot open the spool, takes it for
        another user's and goes to postdrop just the same."""
        if os.geteuid() != 0:
            os.chmod(self.tmp, 0)
            return
        nobody = 65534
        for d, _, files in os.walk(self.inst.path("spool")):
            os.chown(d, nobody, nobody)
            for f in files:
                os.chown(os.path.join(d, f), nobody, nobody)

    def test_accepted_message_goes_to_postdrop(self):
        r = self.inst.masqmail("bob", stdin=b"Subject: hi\n\nhello\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        names = os.listdir(self.maildrop)
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], DROP_NAME)
        self.assertEqual(len(os.listdir(self.inst.path("spool", "new"))), 1)

    def test_refusals_are_reported_before_the_drop(self):
        for name, args, message, reason in self.REFUSED:
            with self.subTest(name):
                r = self.inst.masqmail(*args, stdin=message)
                self.assertEqual(r.returncode, 65, r.stderr)
                err = r.stderr.decode()
                self.assertTrue(err.startswith("masqmail: ") and err.count("\n") == 1, err)
                self.assertIn(reason, r.stderr)
                # In a spool of one's own the same input gets the same answer.
                mine = self.own.masqmail(*args, stdin=message)
                self.assertEqual((mine.returncode, mine.stderr), (r.returncode, r.stderr))
        self.assertEqual(os.listdir(self.maildrop), [])


def nosuid_or_no_new_privs(path):
    if os.statvfs(path).f_flag & os.ST_NOSUID:
        return True
    with open("/proc/self/status") as f:
        return any(line.split() == ["NoNewPrivs:", "1"] for line in f)


@unittest.skipUnless(os.getuid() == 0, "needs root to install a set-gid copy and switch users")
class SetGid(unittest.TestCase):
    """A system install: maildrop/ 1730 root:GROUP, postdrop set-gid GROUP,
    an ordinary user (nobody) who can neither list nor read maildrop/."""

    USER = 65534

    def setUp(self):
        try:
            self.group = grp.getgrnam("mail").gr_gid
        except KeyError:
            self.skipTest("no group 'mail' to stand in for masqmail-drop")
        self.inst = Instance()
        os.chmod(self.inst.root, 0o755)
        os.chmod(self.inst.path("spool"), 0o755)
        if nosuid_or_no_new_privs(self.inst.root):
            self.inst.close()
            self.skipTest("set-gid has no effect here (nosuid mount or no_new_privs)")
        self.maildrop = self.inst.path("spool", "maildrop")
        os.mkdir(self.maildrop)
        os.chown(self.maildrop, 0, self.group)
        os.chmod(self.maildrop, 0o1730)
        self.exe = self.inst.path("postdrop")
        shutil.copy(POSTDROP, self.exe)
        os.chown(self.exe, 0, self.group)
        os.chmod(self.exe, 0o2755)

    def tearDown(self):
        self.inst.close()

    def as_user(self, args, stdin):
        def become_user():
            os.setgroups([])
            os.setgid(self.USER)
            os.setuid(self.USER)
        return mmtest.subprocess.run([self.exe, *args], input=stdin, capture_output=True,
                                     timeout=60, preexec_fn=become_user, env={})

    def test_set_gid_refuses_c_from_a_user(self):
        data = drop_file(["bob@example.org"], b"Subject: x\n\nbody\n")
        r = self.as_user(["-C", self.inst.conf], data)
        # In a sanitizer build LeakSanitizer cannot ptrace a set-gid process
        # at exit (and cannot read its options either): the status is then its.
        if b"LeakSanitizer has encountered a fatal error" not in r.stderr:
            self.assertEqual(r.returncode, 77, r.stderr)
        self.assertTrue(r.stderr.startswith(b"postdrop: -C is refused"), r.stderr)
        self.assertEqual(os.listdir(self.maildrop), [])

    def test_root_may_use_c_with_the_set_gid_program(self):
        data = drop_file(["bob@example.org"], b"Subject: r\n\nbody\n")
        r = run([self.exe, "-C", self.inst.conf], stdin=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = os.listdir(self.maildrop)
        self.assertEqual(len(names), 1, names)
        st = os.lstat(os.path.join(self.maildrop, names[0]))
        self.assertEqual((st.st_uid, st.st_gid), (0, self.group))

    def test_group_write_is_durable_without_reading_the_directory(self):
        # The group's rights without the set-gid bit (which would refuse -C):
        # the user runs with the group as its real group, so maildrop/ (1730)
        # is write and search only, exactly as for the set-gid program.
        data = drop_file(["bob@example.org"], b"Subject: y\n\nbody\n")

        def become_user_in_group():
            os.setgroups([])
            os.setgid(self.group)
            os.setuid(self.USER)
        r = mmtest.subprocess.run([POSTDROP, "-C", self.inst.conf], input=data, capture_output=True,
                                  timeout=60, preexec_fn=become_user_in_group, env={})
        self.assertEqual(r.returncode, 0, r.stderr)
        names = os.listdir(self.maildrop)
        self.assertEqual(len(names), 1, names)
        self.assertRegex(names[0], DROP_NAME)
        st = os.lstat(os.path.join(self.maildrop, names[0]))
        self.assertEqual((st.st_uid, st.st_gid), (self.USER, self.group))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        with open(os.path.join(self.maildrop, names[0]), "rb") as f:
            self.assertEqual(f.read(), data)


if __name__ == "__main__":
    mmtest.main()
