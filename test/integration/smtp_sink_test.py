#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Remote delivery against Postfix's smtp-sink, a server we did not write:
volume over one smarthost route, and its fault injection: soft (-r) and
hard (-f, which also turns PIPELINING off) rejections of RCPT, MAIL and
the final dot, and 421 with a dropped connection after the final dot (-Q),
where the message must stay queued (a duplicate later, never a loss).
A private instance, smtp-sink on 127.0.0.1, a permanent route to it."""
import os
import re
import subprocess
import time
import unittest

import mmtest
from mmtest import Instance, wait_for

SMTP_SINK = "/usr/sbin/smtp-sink"


def message(i, to="friend@example.org"):
    return (f"From: joe\nTo: {to}\nSubject: sink {i}\n\n" + ("line of text " * 6 + "\n") * 40).encode()


@unittest.skipUnless(os.access(SMTP_SINK, os.X_OK), "smtp-sink (package postfix) is not installed")
class SmtpSink(unittest.TestCase):
    def sink(self, *options, port=None):
        """Starts smtp-sink with `options` on `port` (a free one by default)
        of 127.0.0.1; returns the port once it listens."""
        port = port or mmtest.free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        p = subprocess.Popen([SMTP_SINK, *user, *options, f"127.0.0.1:{port}", "100"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (p.terminate(), p.wait(10), p.stderr.close()))

        def listening():
            try:
                with __import__("socket").create_connection(("127.0.0.1", port), 1):
                    return True
            except OSError:
                return p.poll() is not None  # died: the assertion below says so
        self.assertTrue(wait_for(listening, 10))
        self.assertIsNone(p.poll(), p.stderr.read() if p.poll() is not None else "")
        return port

    def instance(self, port):
        inst = Instance()
        self.addCleanup(inst.close)
        route = inst.write("sink.route", f'mail_host = "127.0.0.1:{port}"\ntls = none\n')
        with open(inst.conf, "a") as f:
            f.write(f'permanent_routes = "{route}"\n')
        return inst

    def queue(self, inst, count, sender="joe"):
        for i in range(count):
            r = inst.masqmail("-odq", "-t", "-oi", "-f", sender, stdin=message(i))
            self.assertEqual(r.returncode, 0, r.stderr)

    def run_queue(self, inst):
        r = inst.masqmail("-q", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)

    def pending(self, inst):
        return [r for m in inst.mailq_json() for r in m["recipients"] if r["state"] == "pending"]

    def statuses(self, inst):
        return re.findall(r" to=<friend@example\.org> route=\S+ relay=\S+ status=(\w+)", inst.log_text())

    def test_volume_over_one_route(self):
        inst = self.instance(self.sink())
        self.queue(inst, 200)
        self.run_queue(inst)
        self.assertEqual(inst.mailq_json(), [])
        self.assertEqual(self.statuses(inst), ["sent"] * 200)

    def test_soft_rejections_keep_the_mail_queued(self):
        for command in ("RCPT", "MAIL", "."):
            with self.subTest(command=command):
                inst = self.instance(self.sink("-r", command))
                self.queue(inst, 3)
                self.run_queue(inst)
                pending = self.pending(inst)
                self.assertEqual(len(pending), 3, inst.log_text())
                for r in pending:
                    self.assertEqual(r["attempts"], 1, r)
                    self.assertTrue(r["last_error"].startswith("4"), r)
                self.assertEqual(self.statuses(inst), ["deferred"] * 3)
                self.assertEqual(inst.mbox_messages("joe"), [])

    def test_hard_rejections_bounce_to_the_local_sender(self):
        for command in ("RCPT", "MAIL", "."):
            with self.subTest(command=command):
                inst = self.instance(self.sink("-f", command))
                self.queue(inst, 2)
                self.run_queue(inst)
                self.assertTrue(wait_for(lambda: len(inst.mbox_messages("joe")) == 2, 30), inst.log_text())
                self.assertEqual(inst.mailq_json(), [])
                self.assertEqual(self.statuses(inst), ["bounced"] * 2)
                for bounce in inst.mbox_messages("joe"):
                    self.assertIn(b"Diagnostic-Code: smtp; 5", bounce)
                    self.assertIn(b"Action: failed", bounce)

    def test_connection_dropped_after_the_final_dot_defers(self):
        # 421 and a closed connection after "." : the message may have been
        # taken, or not. It stays queued (a duplicate later, never a loss);
        # the next message dials again.
        inst = self.instance(self.sink("-Q", "."))
        self.queue(inst, 3)
        self.run_queue(inst)
        pending = self.pending(inst)
        self.assertEqual(len(pending), 3, inst.log_text())
        self.assertEqual(self.statuses(inst), ["deferred"] * 3)
        self.assertEqual(inst.mbox_messages("joe"), [])

    def test_queue_then_sink_comes_up(self):
        port = mmtest.free_port()
        inst = self.instance(port)  # nothing listens yet
        self.queue(inst, 5)
        started = time.monotonic()
        self.run_queue(inst)
        self.assertLess(time.monotonic() - started, 60)  # refused at once, not a timeout per message
        self.assertEqual(len(self.pending(inst)), 5)
        self.assertEqual(inst.mbox_messages("joe"), [])
        self.sink(port=port)
        self.run_queue(inst)
        self.assertEqual(inst.mailq_json(), [])


if __name__ == "__main__":
    mmtest.main()
