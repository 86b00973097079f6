# SPDX-License-Identifier: GPL-2.0-or-later
"""A system instance under a temporary folder, for the packaging tests that
run as root (systemd_units_test.py, runit_test.py): no run_as_user, so the
supervisor starts each daemon as its own system user (packaging/sysusers.d),
with absolute paths under the folder. The spool is left for the supervisor
to create with its owners; mail_dir is 1777 like a shared /var/mail."""

import os
import smtplib
import unittest

import mmtest

# Generous: the machine may be slow; never a performance assertion.
DELIVERY_TIMEOUT = 60
DAEMON_USERS = ("masqmail", "masqmail-smtp", "masqmail-route", "masqmail-remote", "masqmail-local")


def skip_unless_system_root():
    """The reason a system instance cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (a system instance starts each daemon as its own user)"
    import pwd
    for user in DAEMON_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no system user {user} (systemd-sysusers packaging/sysusers.d/masqmail.conf)"
    return None


class SystemInstance(mmtest.Instance):
    def __init__(self, extra_conf="", spool_root=False):
        super().__init__(extra_conf)
        with open(self.conf) as f:
            text = f.read().replace("run_as_user = true\n", "")
        with open(self.conf, "w") as f:
            f.write(text)
        if spool_root:
            # As tmpfiles.d/masqmail.conf makes /var/spool/masqmail (and a
            # unit's ReadWritePaths= needs it to exist): the areas inside
            # are still the supervisor's to create.
            os.chmod(self.path("spool"), 0o755)
        else:
            os.rmdir(self.path("spool"))
        # Daemons of other users must reach their paths under the folder.
        os.chmod(self.root, 0o755)
        os.chmod(self.path("mail"), 0o1777)

    def smtp_send(self, sender, rcpt, body):
        """One message over SMTP to the listener; the reply code of DATA
        (250 when acknowledged), or None when the connection failed."""
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as s:
                s.ehlo("client.example")
                s.mail(sender)
                code, _ = s.rcpt(rcpt)
                if code != 250:
                    return code
                code, _ = s.data(body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                return code
        except (OSError, smtplib.SMTPException):
            return None

    def delivered_subjects(self, user):
        """The Subject: values of the messages in USER's mbox."""
        found = []
        for m in self.mbox_messages(user):
            for line in m.split(b"\n\n", 1)[0].split(b"\n"):
                if line.lower().startswith(b"subject: "):
                    found.append(line[9:].strip().decode(errors="replace"))
        return found


def message(subject, sender="root@test.example", rcpt="nobody@test.example"):
    return (f"From: {sender}\nTo: {rcpt}\nSubject: {subject}\n\nbody of {subject}\n").encode()


class SystemCase(unittest.TestCase):
    """Skips unless root with the daemon users; self.inst is a fresh
    SystemInstance whose processes are all gone after the test."""

    spool_root = False

    def setUp(self):
        reason = skip_unless_system_root()
        if reason:
            self.skipTest(reason)
        self.inst = SystemInstance(spool_root=self.spool_root)
        self.addCleanup(self.inst.close)
        self.addCleanup(self.inst.stop)
