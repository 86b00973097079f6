# SPDX-License-Identifier: GPL-2.0-or-later
"""sendmail into a private instance with no daemon running: the message is
committed to the spool before exit 0, with masqmail's dot rules, -t, header
fixes, exit codes for bad input; then mailq (text and --json) and mailrm."""

import json
import os
import unittest

import mmtest
from mmtest import MASQMAIL, Instance, run


def spool_files(inst, area):
    """Names in one spool folder; the spool is created by the first submission."""
    path = inst.path("spool", area)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def stored_content(inst, qid):
    """The message content of a spool file (between the CT0: record and END)."""
    with open(inst.path("spool", "new", qid), "rb") as f:
        data = f.read()
    start = data.index(b"CT0:\n") + 5
    end = data.rindex(b"EN50:")
    return data[start:end]


class Submit(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()

    def tearDown(self):
        self.inst.close()

    def send(self, *args, stdin=b""):
        return self.inst.masqmail(*args, stdin=stdin)

    def only_message(self):
        names = spool_files(self.inst, "new")
        self.assertEqual(len(names), 1, names)
        return names[0], stored_content(self.inst, names[0])

    def test_exit_0_means_committed(self):
        r = self.send("bob", stdin=b"Subject: hi\n\nhello\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(spool_files(self.inst, "tmp"), [])
        qid, content = self.only_message()
        self.assertIn(b"\nSubject: hi\n", content)
        self.assertTrue(content.endswith(b"\n\nhello\n"))
        self.assertIn(f"Message-ID: <{qid}@test.example>".encode(), content)
        self.assertTrue(content.startswith(b"Received: by test.example"))

    def test_v_names_the_queue_id(self):
        r = self.send("-v", "bob", stdin=b"\nx\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        qid, _ = self.only_message()
        self.assertEqual(r.stderr, f"masqmail: queued as {qid}\n".encode())

    def test_dot_rules_without_i(self):
        r = self.send("bob", stdin=b"\nline\n..two dots\n.one dot\n.\nnot part\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, content = self.only_message()
        self.assertTrue(content.endswith(b"\n\nline\n.two dots\none dot\n"), content)

    def test_dot_rules_with_oi(self):
        r = self.send("-oi", "bob", stdin=b"\nline\n..two\n.\nstill here\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, content = self.only_message()
        self.assertTrue(content.endswith(b"\n\nline\n..two\n.\nstill here\n"), content)

    def test_t_adds_header_recipients_and_drops_bcc(self):
        r = self.send("-t", "-i", "dave", stdin=b"To: Bob <bob@example.org>\nCc: carol\n"
                      b"Bcc: hidden@example.net\nSubject: t\n\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, content = self.only_message()
        self.assertNotIn(b"Bcc", content)
        self.assertNotIn(b"hidden", content)
        lines = self.inst.masqmail("-bp").stdout.decode()
        for a in ("<dave@test.example>", "<bob@example.org>", "<carol@test.example>",
                  "<hidden@example.net>"):
            self.assertIn(a, lines)

    def test_options_after_recipients_still_count(self):
        r = self.send("bob", "-oi", stdin=b"\n.\nkept\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, content = self.only_message()
        self.assertTrue(content.endswith(b".\nkept\n"), content)

    def test_t_without_recipients_is_65(self):
        r = self.send("-t", stdin=b"Subject: nobody\n\nx\n")
        self.assertEqual(r.returncode, 65)
        self.assertIn(b"no recipients", r.stderr)
        self.assertEqual(spool_files(self.inst, "new"), [])

    def test_bad_recipient_is_65(self):
        r = self.send("bob@", stdin=b"\nx\n")
        self.assertEqual(r.returncode, 65)
        self.assertIn(b"invalid recipient address", r.stderr)

    def test_crlf_in_full_name_is_refused(self):
        r = self.send("-F", "Eve\r\nBcc: victim@example.org", "bob", stdin=b"\nx\n")
        self.assertEqual(r.returncode, 64)
        self.assertEqual(spool_files(self.inst, "new"), [])

    def test_full_name_goes_into_from(self):
        r = self.send("-F", 'Alice "A" Smith', "bob", stdin=b"\nx\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, content = self.only_message()
        self.assertIn(b'From: "Alice \\"A\\" Smith" <', content)

    def test_usage_errors_are_64(self):
        for args in (["-X", "/tmp/log", "bob"], ["-q30"], ["-Z"], ["-bp", "-bs"], ["-f"]):
            with self.subTest(args=args):
                r = self.send(*args, stdin=b"\nx\n")
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertTrue(r.stderr.startswith(b"masqmail: "), r.stderr)

    def test_too_many_hops_is_65(self):
        hops = b"Received: from a by b; Sat, 21 Nov 2026 08:00:28 +0000\n" * 51
        r = self.send("bob", stdin=hops + b"\nloop\n")
        self.assertEqual(r.returncode, 65)
        self.assertIn(b"hops", r.stderr)

    def test_message_too_large_is_refused(self):
        self.inst.close()
        self.inst = Instance(extra_conf="max_msg_size = 1000\n")
        r = self.send("-oi", "bob", stdin=b"\n" + b"x" * 5000 + b"\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(r.returncode, (65, 75), r.stderr)
        self.assertEqual(spool_files(self.inst, "new"), [])

    def test_unusable_spool_is_75(self):
        self.inst.close()
        self.inst = Instance()
        spool = self.inst.path("spool")
        os.rmdir(spool)
        with open(spool, "w") as f:
            f.write("not a directory\n")
        r = self.send("bob", stdin=b"\nx\n")
        self.assertEqual(r.returncode, 75)
        self.assertIn(b"cannot queue", r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to give the spool to another user")
    def test_spool_of_another_user_gets_a_drop_file(self):
        self.assertEqual(self.send("bob", stdin=b"\nfirst\n").returncode, 0)
        nobody = 65534
        for d, dirs, files in os.walk(self.inst.path("spool")):
            os.chown(d, nobody, nobody)
            for f in files:
                os.chown(os.path.join(d, f), nobody, nobody)
        # Not ours and no daemon: the drop helper leaves it in maildrop/ for
        # enqueue, and nothing is written to tmp/ or new/ by this process.
        r = self.send("bob", stdin=b"\nsecond\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(spool_files(self.inst, "new")), 1)
        self.assertEqual(spool_files(self.inst, "tmp"), [])
        self.assertEqual(len(spool_files(self.inst, "maildrop")), 1)

    def test_newaliases_checks_the_alias_files(self):
        aliases = self.inst.write("aliases", "postmaster: root\nroot: \\root, bob\n")
        with open(self.inst.conf, "a") as f:
            f.write(f'alias_file = "{aliases}"\n')
        r = self.send("-bi")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.inst.write("aliases", "postmaster: root\nbroken: \"unterminated\n")
        r = self.send("-bi")
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{aliases}:2:".encode(), r.stderr)

    def test_bad_config_is_78(self):
        with open(self.inst.conf, "a") as f:
            f.write("do_queue = y\n")
        r = self.send("bob", stdin=b"\nx\n")
        self.assertEqual(r.returncode, 78)
        self.assertIn(b"masqmail.conf:", r.stderr)


class QueueTools(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()
        for who in ("bob", "carol"):
            r = self.inst.masqmail(who, "remote@example.org", stdin=b"Subject: q\n\nbody\n")
            assert r.returncode == 0, r.stderr

    def tearDown(self):
        self.inst.close()

    def test_mailq_text(self):
        r = self.inst.masqmail("-bp")
        self.assertEqual(r.returncode, 0)
        out = r.stdout.decode()
        self.assertEqual(out.count(" <= "), 2)
        self.assertIn("              == <remote@example.org>", out)
        for qid in spool_files(self.inst, "new"):
            self.assertIn(qid + " <= <", out)

    def test_mailq_json(self):
        r = self.inst.masqmail("-bp", "--json")
        self.assertEqual(r.returncode, 0)
        objs = [json.loads(l) for l in r.stdout.decode().splitlines()]
        self.assertEqual(sorted(o["id"] for o in objs), spool_files(self.inst, "new"))
        for o in objs:
            self.assertEqual(set(o), {"id", "sender", "size", "age", "recipients"})
            self.assertGreater(o["size"], 0)
            self.assertGreaterEqual(o["age"], 0)
            self.assertEqual(len(o["recipients"]), 2)
            for rc in o["recipients"]:
                self.assertEqual(set(rc), {"address", "state", "attempts", "last_error", "next_try", "route"})
                self.assertEqual(rc["state"], "pending")

    def test_mailrm_removes_and_reports_unknown(self):
        first, second = spool_files(self.inst, "new")
        r = self.inst.masqmail("-Mrm", first, "1700000000.0123456789abcdef")
        self.assertEqual(r.stdout.decode(), f"message {first} deleted\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"no message 1700000000.0123456789abcdef", r.stderr)
        self.assertEqual(spool_files(self.inst, "new"), [second])
        r = self.inst.masqmail("-Mrm", "../../etc/passwd")
        self.assertEqual(r.returncode, 64)

    def test_empty_queue(self):
        for qid in spool_files(self.inst, "new"):
            self.assertEqual(self.inst.masqmail("-Mrm", qid).returncode, 0)
        self.assertEqual(self.inst.masqmail("-bp").stdout, b"mail queue is empty.\n")
        self.assertEqual(self.inst.masqmail("-bp", "--json").stdout, b"")


if __name__ == "__main__":
    mmtest.main()
