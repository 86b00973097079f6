# SPDX-License-Identifier: GPL-2.0-or-later
"""The SMTP server (smtp-listener, masqmail -bs) as real clients we did not
write see it: Python's smtplib, swaks (network, --tls, --pipe 'masqmail
-bs', --pipeline) and Postfix's smtp-source, plus raw sockets for exact
replies: the banner and EHLO keywords, HELO, VRFY/EXPN/HELP/NOOP/RSET,
command sequencing, MAIL FROM and RCPT TO syntax, SIZE at MAIL, unqualified
addresses, the queue id in the 250 after DATA (in mailq --json for a remote
recipient, in the log for a local one), the Received header, STARTTLS,
pipelining, relay control (loopback, do_relay = false, relay_nets and the
per-client limit from a non-loopback address of this machine), defer_all,
smtp_timeout and smtp_max_connections. Each class runs one private instance.
Bad input is in smtp_abuse_test.py."""

import email
import email.policy
import ipaddress
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

import mmtest
import smtptest
from mmtest import MASQMAIL, Instance, wait_for
from smtptest import Raw, accepted, queue_id_of, smtplib_send

DELIVERY_TIMEOUT = 20


def parse_mbox_message(message):
    body = message.split(b"\n", 1)[1] if message.startswith(b"From ") else message
    return email.message_from_bytes(body, policy=email.policy.compat32)


class ServerCase(unittest.TestCase):
    """One private instance per class: extra_conf, and a certificate when tls."""

    extra_conf = ""
    tls = False
    inst = None

    @classmethod
    def setUpClass(cls):
        # Instance() picks the port; conf_text() may name it as {port}.
        cls.inst = Instance("")
        cls.cert = None
        try:
            text = cls.conf_text().replace("{port}", str(cls.inst.port))
            if cls.tls:
                cls.cert = smtptest.make_certificate(cls.inst.root)
                if cls.cert:
                    text += f'tls_cert_file = "{cls.cert[0]}"\ntls_key_file = "{cls.cert[1]}"\n'
            with open(cls.inst.conf, "a") as f:
                f.write(text)
            cls.inst.start()
        except BaseException:
            cls.inst.stop()
            cls.inst.close()
            raise

    @classmethod
    def conf_text(cls):
        return cls.extra_conf

    @classmethod
    def tearDownClass(cls):
        if cls.inst is not None:
            cls.inst.stop()
            cls.inst.close()

    @property
    def port(self):
        return self.inst.port

    def raw(self, **kw):
        r = Raw(self.port, **kw)
        self.addCleanup(r.close)
        return r

    def assertReply(self, reply, code, enhanced=None, text=None):
        self.assertEqual(reply.code, code, reply)
        if enhanced is not None:
            self.assertEqual(reply.enhanced, enhanced, reply)
        if text is not None:
            self.assertIn(text, reply.text, reply)

    def wait_mbox(self, user, count=1, timeout=DELIVERY_TIMEOUT):
        got = wait_for(lambda: len(self.inst.mbox_messages(user)) >= count, timeout)
        messages = self.inst.mbox_messages(user)
        self.assertTrue(got, f"{user}: {len(messages)} of {count} message(s) after {timeout} s;\n"
                        f"log:\n{self.inst.log_text()}")
        return messages

    def need_tls(self):
        if self.cert is None:
            self.skipTest(f"{smtptest.OPENSSL} is missing: no certificate for STARTTLS")


class Protocol(ServerCase):
    """Default relay settings, STARTTLS offered, max_msg_size 1000000."""

    tls = True
    extra_conf = "max_msg_size = 1000000\n"

    def test_banner_and_ehlo_keywords(self):
        s = self.raw()
        self.assertEqual(s.banner.code, 220)
        self.assertRegex(s.banner.lines[0], r"^test\.example MasqMail \S+ ESMTP$")
        r = s.ehlo("client.example")
        self.assertEqual(r.lines[0], "test.example Nice to meet you with ESMTP")
        keywords = r.lines[1:]
        expected = ["SIZE 1000000", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "HELP"]
        if self.cert:
            expected.insert(4, "STARTTLS")
        self.assertEqual(sorted(keywords), sorted(expected), r)
        self.assertReply(s.cmd("QUIT"), 221, "2.0.0")
        self.assertEqual(s.read_to_eof(), b"")

    def test_helo_is_plain_smtp(self):
        s = self.raw()
        r = s.cmd("HELO old.example")
        self.assertEqual(r.raw, b"250 test.example pretty old mailer, huh?\r\n")
        # ESMTP parameters need EHLO.
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> SIZE=10"), 555, "5.5.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<helo@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("DATA"), 354)
        r = s.cmd(b"Subject: helo\r\n\r\nvia HELO\r\n.")
        qid = queue_id_of(r)
        self.assertIsNotNone(qid, r)
        self.assertReply(s.cmd("QUIT"), 221)
        messages = self.wait_mbox("helo")
        received = parse_mbox_message(messages[0]).get_all("Received")
        self.assertIn("from old.example ([127.0.0.1])", received[0])
        self.assertIn("with SMTP", received[0])
        self.assertIn(f"{qid} <= <a@example.org> host=127.0.0.1 with smtp", self.inst.log_text())

    def test_smtplib_local_message_id_in_log_and_received_header(self):
        msg = b"Subject: local via smtplib\r\nFrom: a@example.org\r\n\r\nhello alice\r\n"
        qid = smtplib_send(self.port, "a@example.org", ["alice@test.example"], msg, helo="client.example")
        messages = self.wait_mbox("alice")
        self.assertEqual(len(messages), 1)
        m = parse_mbox_message(messages[0])
        self.assertEqual(m["Subject"], "local via smtplib")
        received = m.get_all("Received")
        self.assertEqual(len(received), 1, received)
        # The peer's address and its HELO name, and the queue id.
        self.assertIn("from client.example ([127.0.0.1])", received[0])
        self.assertIn("with ESMTP", received[0])
        self.assertIn(qid, received[0])
        self.assertIn(f"{qid} <= <a@example.org> host=127.0.0.1 with esmtp", self.inst.log_text())
        # local-deliver logs the delivery after writing the mailbox.
        self.assertTrue(wait_for(lambda: f"{qid} => <alice@test.example>" in self.inst.log_text(), 10),
                        self.inst.log_text())

    def test_remote_recipient_from_loopback_is_relayed_and_queued_with_its_id(self):
        # Loopback may relay by default; x@example.net stays queued (no route online).
        qid = smtplib_send(self.port, "a@example.org", ["x@example.net"],
                           b"Subject: remote\r\n\r\nfor the queue\r\n")
        queue = {e["id"]: e for e in self.inst.mailq_json()}
        self.assertIn(qid, queue, queue)
        self.assertEqual(queue[qid]["sender"], "a@example.org")
        self.assertEqual([r["address"] for r in queue[qid]["recipients"]], ["x@example.net"])
        self.assertEqual(queue[qid]["recipients"][0]["state"], "pending")

    def test_loopback_alias_address_counts_as_loopback(self):
        # 127.0.0.2 is on loopback (127/8) as well: it may relay like 127.0.0.1.
        # A client outside loopback is tested in NonLoopbackClient.
        s = self.raw(source="127.0.0.2")
        s.ehlo("other.loopback")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<y@example.net>"), 250, "2.1.5")
        self.assertIn("connect from host 127.0.0.2", self.inst.log_text())

    def test_vrfy_expn_help_noop(self):
        s = self.raw()
        s.ehlo()
        r = s.cmd("VRFY root")
        self.assertReply(r, 252, "2.5.2")
        self.assertNotIn("root", r.raw.decode())
        self.assertEqual(s.cmd("VRFY nosuchuser").raw, r.raw, "VRFY must not tell users apart")
        self.assertReply(s.cmd("VRFY"), 501, "5.5.4")
        self.assertReply(s.cmd("EXPN postmaster"), 502, "5.5.1")
        self.assertReply(s.cmd("NOOP"), 250, "2.0.0")
        self.assertReply(s.cmd("noop anything"), 250, "2.0.0")
        r = s.cmd("HELP")
        self.assertEqual(r.code, 214, r)
        self.assertTrue(all(line.startswith("2.0.0") for line in r.lines), r)
        listed = [line.split(" ", 1)[1] for line in r.lines[1:]]
        for verb in ("HELO", "EHLO", "MAIL FROM:", "RCPT TO:", "DATA", "RSET", "NOOP", "VRFY", "QUIT", "HELP"):
            self.assertIn(verb, listed, r)
        if self.cert:
            self.assertIn("STARTTLS", listed, r)
        self.assertEqual(len(listed), len(set(listed)), f"HELP lists a command twice: {r}")

    def test_rset_discards_the_transaction(self):
        s = self.raw()
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<rset@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("RSET"), 250, "2.0.0")
        self.assertReply(s.cmd("DATA"), 503, "5.5.1")
        self.assertReply(s.cmd("MAIL FROM:<b@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RSET x"), 501, "5.5.4")
        self.assertReply(s.cmd("QUIT"), 221, "2.0.0")

    def test_sequencing_503(self):
        s = self.raw()
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 503, "5.5.1", "need HELO or EHLO")
        self.assertReply(s.cmd("RCPT TO:<bob@test.example>"), 503, "5.5.1")
        self.assertReply(s.cmd("DATA"), 503, "5.5.1")
        s.ehlo()
        self.assertReply(s.cmd("RCPT TO:<bob@test.example>"), 503, "5.5.1", "need MAIL FROM: before RCPT TO:")
        self.assertReply(s.cmd("DATA"), 503, "5.5.1")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("DATA"), 503, "5.5.1", "need RCPT TO: before DATA")
        self.assertReply(s.cmd("MAIL FROM:<b@example.org>"), 503, "5.5.1", "MAIL FROM: already given.")
        # The state is unchanged: the first sender still stands.
        self.assertReply(s.cmd("RCPT TO:<seq@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("FOO"), 500, "5.5.1")
        self.assertReply(s.cmd("DATA"), 354)
        qid = queue_id_of(s.cmd(b"Subject: seq\r\n\r\nx\r\n."))
        self.assertIsNotNone(qid)
        self.assertIn(f"{qid} <= <a@example.org>", self.inst.log_text())

    def test_mail_and_rcpt_syntax(self):
        s = self.raw()
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<>"), 250, "2.1.0")  # bounces must be accepted
        self.assertReply(s.cmd("RSET"), 250)
        # A source route is stripped (RFC 5321 §4.1.1.3 / appendix C).
        self.assertEqual(s.cmd("MAIL FROM:<@x.example,@y.example:a@example.org>").raw,
                         b"250 2.1.0 OK <a@example.org> is a nice guy.\r\n")
        self.assertReply(s.cmd("RSET"), 250)
        for bad in ("<@>", "<a@>", "<@example.org>", "<a@example.org", "a@example.org>", "<a b@example.org>",
                    "< @example.org>", "<a@ >"):
            self.assertReply(s.cmd(f"MAIL FROM:{bad}"), 501, "5.1.7")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> <b@example.org>"), 501, "5.5.4")
        self.assertReply(s.cmd("MAIL FROM :<a@example.org>"), 501, "5.5.4")
        self.assertReply(s.cmd("MAIL <a@example.org>"), 501, "5.5.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> FOO=bar"), 555, "5.5.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> BODY=9BIT"), 501, "5.5.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> SIZE=10 SIZE=10"), 501, "5.5.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<>"), 501, "5.1.3")
        self.assertReply(s.cmd("RCPT TO:<b@example.org> NOTIFY=NEVER"), 555, "5.5.4")
        self.assertReply(s.cmd("RCPT TO:<@relay.example:syn@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("rcpt to: <syn2@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("QUIT"), 221)

    def test_unqualified_addresses_from_the_network_get_501(self):
        s = self.raw()
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<someone>"), 501, "5.1.7", "return path must be qualified.")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<bob>"), 501, "5.1.3", "recipient address must be qualified.")
        self.assertReply(s.cmd("RCPT TO:<postmaster>"), 250, "2.1.5")  # RFC 5321 §4.5.1
        self.assertReply(s.cmd("QUIT"), 221)
        self.assertIsNotNone(smtptest.listener_pid(self.inst), "smtp-listener died (masqmail 1.0 aborted here)")

    def test_size_declared_at_mail(self):
        s = self.raw()
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> SIZE=1000001"), 552, "5.3.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> SIZE=99999999999999999999999999"), 552, "5.3.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> SIZE=-1"), 501, "5.5.4")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org> SIZE=1000000"), 250, "2.1.0")
        self.assertReply(s.cmd("QUIT"), 221)

    def test_commands_need_crlf(self):
        s = self.raw()
        s.send(b"NOOP\n")
        self.assertReply(s.reply(), 500, "5.5.2")
        self.assertReply(s.cmd("noop"), 250, "2.0.0")

    def test_pipelined_transactions_in_order(self):
        s = self.raw()
        s.ehlo()
        s.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<pipe1@test.example>\r\n"
               b"RCPT TO:<nobody>\r\nRCPT TO:<pipe2@test.example>\r\nDATA\r\n")
        rs = s.replies(5)
        self.assertEqual([r.code for r in rs], [250, 250, 501, 250, 354], rs)
        # The end of data may be followed by the next transaction (RFC 2920).
        s.send(b"Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<b@example.org>\r\n"
               b"RCPT TO:<pipe1@test.example>\r\nDATA\r\n")
        rs = s.replies(4)
        self.assertIsNotNone(queue_id_of(rs[0]), rs)
        self.assertEqual([r.code for r in rs[1:]], [250, 250, 354], rs)
        # The dot and QUIT in one packet: QUIT is answered after the 250.
        s.send(b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
        rs = s.all_replies_to_eof()
        self.assertEqual(len(rs), 2, rs)
        self.assertIsNotNone(queue_id_of(rs[0]), rs)
        self.assertReply(rs[1], 221, "2.0.0")
        self.assertEqual(len(self.wait_mbox("pipe1", 2)), 2)
        self.assertEqual(len(self.wait_mbox("pipe2", 1)), 1)

    def test_commands_pipelined_after_ehlo_are_never_answered(self):
        before = accepted(self.inst)
        s = self.raw()
        s.send(b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<sync@test.example>\r\n")
        rs = s.all_replies_to_eof()
        self.assertEqual([(r.code, r.enhanced) for r in rs], [(554, "5.5.0")], rs)
        s2 = self.raw()
        s2.ehlo()
        self.assertReply(s2.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(s2.cmd("RCPT TO:<sync@test.example>"), 250)
        # DATA must be the last command of a group: content sent before the
        # 354 is not a message.
        s2.send(b"DATA\r\nSubject: too early\r\n\r\nbody\r\n.\r\n")
        rs = s2.all_replies_to_eof()
        self.assertEqual([(r.code, r.enhanced) for r in rs], [(554, "5.5.0")], rs)
        self.assertEqual(accepted(self.inst), before)
        self.assertEqual(self.inst.mbox_messages("sync"), [])

    def test_8bitmime_body_is_kept(self):
        body = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n" \
               "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße, café\r\n".encode()
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as c:
            c.ehlo("client.example")
            self.assertTrue(c.has_extn("8bitmime"))
            c.sendmail("a@example.org", ["eight@test.example"], body, mail_options=["BODY=8BITMIME"])
        messages = self.wait_mbox("eight")
        self.assertIn("Grüße, café".encode(), messages[0])

    def test_dot_stuffing_round_trip(self):
        body = b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n"
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as c:
            c.sendmail("a@example.org", ["dots@test.example"], body)
        text = self.wait_mbox("dots")[0]
        self.assertIn(b"\n.leading dot\n..two dots\n", text)

    # --- STARTTLS ---

    def test_starttls_with_smtplib(self):
        self.need_tls()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as c:
            c.ehlo("tls.example")
            self.assertTrue(c.has_extn("starttls"))
            code, text = c.starttls(context=ctx)
            self.assertEqual((code, text), (220, b"2.0.0 Ready to start TLS"))
            code, text = c.ehlo("tls.example")
            self.assertEqual(code, 250)
            self.assertFalse(c.has_extn("starttls"), "STARTTLS offered again inside TLS")
            self.assertEqual(c.docmd("STARTTLS")[0], 503)
            c.mail("a@example.org")
            c.rcpt("tls@test.example")
            code, text = c.data(b"Subject: over TLS\r\n\r\nsecret\r\n")
            self.assertEqual(code, 250, text)
        received = parse_mbox_message(self.wait_mbox("tls")[0]).get_all("Received")
        self.assertIn("from tls.example ([127.0.0.1])", received[0])
        self.assertIn("with ESMTPS", received[0])
        self.assertIn("with esmtps", self.inst.log_text())

    def test_starttls_syntax(self):
        self.need_tls()
        s = self.raw()
        s.ehlo()
        self.assertReply(s.cmd("STARTTLS now"), 501, "5.5.4")
        self.assertReply(s.cmd("STARTTLS"), 220, "2.0.0")
        s.starttls()
        # RFC 3207 §4.2: the session starts over; EHLO is needed again.
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 503, "5.5.1")
        s.ehlo("again.example")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("QUIT"), 221)

    # --- clients we did not write ---

    def swaks(self, *args, timeout=60):
        if not smtptest.SWAKS:
            self.skipTest("swaks is not installed (packaging/install-deps installs it)")
        r = subprocess.run([smtptest.SWAKS, *args], capture_output=True, timeout=timeout)
        return r

    def test_swaks_over_the_network(self):
        r = self.swaks("--server", f"127.0.0.1:{self.port}", "--helo", "swaks.example",
                       "--from", "a@example.org", "--to", "swaks@test.example",
                       "--header", "Subject: from swaks")
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        self.assertRegex(out, r"<-  250 2\.0\.0 OK id=\S+")
        m = parse_mbox_message(self.wait_mbox("swaks")[0])
        self.assertEqual(m["Subject"], "from swaks")
        self.assertIn("from swaks.example ([127.0.0.1])", m.get_all("Received")[0])

    def test_swaks_pipelining(self):
        r = self.swaks("--server", f"127.0.0.1:{self.port}", "--pipeline", "--helo", "pipe.example",
                       "--from", "a@example.org", "--to", "swakspipe@test.example",
                       "--header", "Subject: swaks pipelined")
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        self.assertRegex(out, r"<-  250 2\.0\.0 OK id=\S+")
        self.assertEqual(parse_mbox_message(self.wait_mbox("swakspipe")[0])["Subject"], "swaks pipelined")

    def test_swaks_starttls(self):
        self.need_tls()
        if b"=== TLS supported" not in self.swaks("--support").stdout:
            self.skipTest("swaks has no TLS support: Net::SSLeay (libnet-ssleay-perl) is missing")
        r = self.swaks("--server", f"127.0.0.1:{self.port}", "--tls", "--helo", "swaks-tls.example",
                       "--from", "a@example.org", "--to", "swakstls@test.example",
                       "--header", "Subject: swaks over TLS")
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        self.assertIn("=== TLS started", out)
        self.assertRegex(out, r"<~  250 2\.0\.0 OK id=\S+")
        m = parse_mbox_message(self.wait_mbox("swakstls")[0])
        self.assertIn("with ESMTPS", m.get_all("Received")[0])

    def test_swaks_pipe_to_masqmail_bs(self):
        before = accepted(self.inst)
        r = self.swaks("--pipe", f"{MASQMAIL} -C {self.inst.conf} -bs", "--helo", "mua.example",
                       "--from", "a@example.org", "--to", "bs@test.example",
                       "--header", "Subject: from -bs")
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode(errors="replace"))
        self.assertIn("<-  220 test.example MasqMail", out)
        self.assertRegex(out, r"<-  250 2\.0\.0 OK id=\S+")
        self.assertIn("<-  221 2.0.0 goodbye", out)
        m = parse_mbox_message(self.wait_mbox("bs")[0])
        self.assertEqual(m["Subject"], "from -bs")
        self.assertEqual(accepted(self.inst), before + 1)

    def test_masqmail_bs_relays_and_qualifies_for_a_local_user(self):
        # -bs on a pipe is a local user: unqualified addresses are qualified
        # with host_name and remote recipients are allowed.
        session = (b"EHLO mua.example\r\nMAIL FROM:<someone>\r\nRCPT TO:<bslocal>\r\n"
                   b"RCPT TO:<far@example.net>\r\nDATA\r\nSubject: bs local\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        r = self.inst.masqmail("-bs", stdin=session)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertRegex(out, r"250 2\.1\.0 OK <someone@test\.example> is a nice guy\.")
        self.assertRegex(out, r"250 2\.0\.0 OK id=\S+")
        self.assertTrue(out.endswith("221 2.0.0 goodbye\r\n"), out)
        self.assertEqual(parse_mbox_message(self.wait_mbox("bslocal")[0])["Subject"], "bs local")

    def test_masqmail_bs_on_a_tcp_stdin_is_a_network_client(self):
        # inetd: stdin and stdout are the client's TCP socket.
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            client = socket.create_connection(srv.getsockname(), timeout=20)
            conn, _ = srv.accept()
        with conn:
            p = subprocess.Popen([MASQMAIL, "-C", self.inst.conf, "-bs"], stdin=conn, stdout=conn,
                                 stderr=subprocess.PIPE)
        self.addCleanup(p.kill)
        s = Raw(0, sock=client, timeout=20)
        self.addCleanup(s.close)
        self.assertEqual(s.banner.code, 220, s.banner)
        s.ehlo("inetd-client.example")
        self.assertReply(s.cmd("MAIL FROM:<someone>"), 501, "5.1.7")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<inetd>"), 501, "5.1.3")
        self.assertReply(s.cmd("RCPT TO:<inetd@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("DATA"), 354)
        self.assertIsNotNone(queue_id_of(s.cmd(b"Subject: inetd\r\n\r\nx\r\n.")))
        self.assertReply(s.cmd("QUIT"), 221, "2.0.0")
        self.assertEqual(p.wait(20), 0, p.stderr.read())
        self.assertEqual(parse_mbox_message(self.wait_mbox("inetd")[0])["Subject"], "inetd")
        self.assertIn("connect from host 127.0.0.1 (stdin)", self.inst.log_text())

    def test_smtp_source_50_messages_in_5_sessions(self):
        if not smtptest.SMTP_SOURCE:
            self.skipTest("Postfix's smtp-source is not installed (packaging/install-deps installs postfix)")
        before = accepted(self.inst)
        r = subprocess.run([smtptest.SMTP_SOURCE, "-s", "5", "-m", "50", "-l", "4096", "-f", "a@example.org",
                            "-t", "source@test.example", f"127.0.0.1:{self.port}"],
                           capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr, b"")
        self.assertEqual(accepted(self.inst), before + 50)
        messages = self.wait_mbox("source", 50)
        self.assertEqual(len(messages), 50)
        for m in messages:
            self.assertGreater(len(m), 4096)


class NoRelay(ServerCase):
    """do_relay = false: masqmail's meaning, loopback included. No STARTTLS;
    max_received_headers = 5."""

    extra_conf = "do_relay = false\nmax_received_headers = 5\n"

    def test_hop_count_loop_guard(self):
        hops = lambda n: b"".join(b"Received: from hop%d.example by relay.example; Thu, 1 Jan 2026 00:00:00 +0000\r\n" % i
                                  for i in range(n))
        before = accepted(self.inst)
        s = Raw(self.port)
        self.addCleanup(s.close)
        s.ehlo()
        s.cmd("MAIL FROM:<a@example.org>")
        s.cmd("RCPT TO:<hops@test.example>")
        self.assertReply(s.cmd("DATA"), 354)
        r = s.cmd(hops(6) + b"Subject: looping\r\n\r\nx\r\n.")
        # RFC 5321 §6.3; RFC 3463 X.4.6: routing loop detected.
        self.assertReply(r, 554, "5.4.6")
        self.assertEqual(accepted(self.inst), before)
        s.cmd("MAIL FROM:<a@example.org>")
        s.cmd("RCPT TO:<hops@test.example>")
        self.assertReply(s.cmd("DATA"), 354)
        self.assertIsNotNone(queue_id_of(s.cmd(hops(5) + b"Subject: five hops\r\n\r\nx\r\n.")))
        self.assertEqual(len(parse_mbox_message(self.wait_mbox("hops")[0]).get_all("Received")), 6)

    def test_nonlocal_sender_to_nonlocal_recipient_is_refused(self):
        s = Raw(self.port)
        self.addCleanup(s.close)
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        r = s.cmd("RCPT TO:<x@example.net>")
        self.assertEqual(r.raw, b"550 5.7.1 relaying to <x@example.net> denied.\r\n")
        self.assertReply(s.cmd("RCPT TO:<norelay@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("DATA"), 354)
        qid = queue_id_of(s.cmd(b"Subject: local only\r\n\r\nx\r\n."))
        self.assertIsNotNone(qid)
        self.assertReply(s.cmd("QUIT"), 221)
        self.wait_mbox("norelay")
        self.assertNotIn(qid, [e["id"] for e in self.inst.mailq_json()])

    def test_local_sender_may_send_to_nonlocal_recipient(self):
        qid = smtplib_send(self.port, "someone@test.example", ["x@example.net"], b"Subject: out\r\n\r\nx\r\n")
        self.assertIn(qid, [e["id"] for e in self.inst.mailq_json()])

    def test_help_without_starttls_lists_each_command_once(self):
        s = Raw(self.port)
        self.addCleanup(s.close)
        r = s.cmd("HELP")
        self.assertEqual(r.code, 214, r)
        listed = [line.split(" ", 1)[1] for line in r.lines[1:]]
        self.assertNotIn("STARTTLS", listed, "STARTTLS listed without tls_cert_file")
        self.assertEqual(len(listed), len(set(listed)), f"HELP lists a command twice: {r}")

    def test_starttls_not_offered(self):
        s = Raw(self.port)
        self.addCleanup(s.close)
        self.assertNotIn("STARTTLS", s.ehlo().lines)
        self.assertReply(s.cmd("STARTTLS"), 502, "5.5.1")

    def test_smtplib_sees_the_refusal(self):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as c:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                c.sendmail("a@example.org", ["x@example.net"], b"Subject: no\r\n\r\nx\r\n")
        self.assertEqual(cm.exception.recipients["x@example.net"][0], 550)


class NonLoopbackCase(ServerCase):
    """A client on this machine's own non-loopback address, connecting from
    it to itself: the server sees a peer that is not on loopback. (A client
    bound to 127.0.0.2 would still be on loopback: 127/8 is.)"""

    iface = smtptest.global_ipv4()

    @classmethod
    def setUpClass(cls):
        # Skipped per test (not per class) so that TAP counts every test.
        if cls.iface is None:
            cls.inst = None
            return
        super().setUpClass()

    def setUp(self):
        if self.inst is None:
            self.skipTest("this machine has no non-loopback IPv4 address to connect from")

    @classmethod
    def conf_text(cls):
        return (f'listen_addresses = "127.0.0.1:{{port}};{cls.iface.ip}:{{port}}"\n'
                "smtp_max_connections_per_client = 3\n" + cls.extra_conf)

    def client(self):
        s = Raw(self.port, host=str(self.iface.ip), source=str(self.iface.ip))
        self.addCleanup(s.close)
        return s

    def _try_banner(self):
        try:
            with Raw(self.port, host=str(self.iface.ip), source=str(self.iface.ip), banner=False) as s:
                return s.reply().code == 220
        except (EOFError, OSError, AssertionError):
            return False


class NonLoopbackClient(NonLoopbackCase):
    """Not on loopback and not in relay_nets: local recipients only, and at
    most smtp_max_connections_per_client sessions."""

    def test_relay_refused_local_accepted(self):
        s = self.client()
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertEqual(s.cmd("RCPT TO:<x@example.net>").raw,
                         b"550 5.7.1 relaying to <x@example.net> denied.\r\n")
        self.assertReply(s.cmd("RCPT TO:<lan@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("DATA"), 354)
        qid = queue_id_of(s.cmd(b"Subject: from the LAN\r\n\r\nx\r\n."))
        self.assertIsNotNone(qid)
        received = parse_mbox_message(self.wait_mbox("lan")[0]).get_all("Received")
        self.assertIn(f"([{self.iface.ip}])", received[0])
        self.assertIn(f"{qid} <= <a@example.org> host={self.iface.ip}", self.inst.log_text())

    def test_connections_per_client_limit(self):
        held = [self.client() for _ in range(3)]
        for s in held:
            self.assertEqual(s.banner.code, 220)
        extra = Raw(self.port, host=str(self.iface.ip), source=str(self.iface.ip), banner=False)
        self.addCleanup(extra.close)
        rs = extra.all_replies_to_eof()
        self.assertEqual(len(rs), 1, rs)
        self.assertEqual(rs[0].raw, f"421 4.7.0 test.example Error: too many connections from "
                                    f"{self.iface.ip}\r\n".encode())
        # Loopback is not limited per client.
        loop = [Raw(self.port) for _ in range(4)]
        for s in loop:
            self.addCleanup(s.close)
            self.assertEqual(s.banner.code, 220)
        for s in held:
            self.assertReply(s.cmd("QUIT"), 221)
            s.close()
        self.assertTrue(wait_for(self._try_banner, 10), "a slot freed by QUIT was not given back")


class RelayNetsClient(NonLoopbackCase):
    """The same non-loopback client with its network in relay_nets: it may
    relay and is not limited per client."""

    @classmethod
    def conf_text(cls):
        net = cls.iface.network if cls.iface else ipaddress.ip_network("192.0.2.0/24")
        return (f'listen_addresses = "127.0.0.1:{{port}};{cls.iface.ip if cls.iface else "127.0.0.1"}:{{port}}"\n'
                "smtp_max_connections_per_client = 3\n"
                f'relay_nets = "198.51.100.0/24;{net}"\n')

    def test_relay_allowed(self):
        s = self.client()
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(s.cmd("RCPT TO:<x@example.net>"), 250, "2.1.5")
        self.assertReply(s.cmd("DATA"), 354)
        qid = queue_id_of(s.cmd(b"Subject: relayed from the LAN\r\n\r\nx\r\n."))
        self.assertIsNotNone(qid)
        self.assertIn(qid, [e["id"] for e in self.inst.mailq_json()])

    def test_not_limited_per_client(self):
        held = [self.client() for _ in range(5)]
        for s in held:
            self.assertEqual(s.banner.code, 220, "relay_nets clients are not limited per client")


class DeferAll(ServerCase):
    extra_conf = "defer_all = true\n"

    def test_every_connection_gets_421(self):
        s = Raw(self.port, banner=False)
        self.addCleanup(s.close)
        rs = s.all_replies_to_eof()
        self.assertEqual([r.raw for r in rs], [b"421 test.example service temporarily unavailable.\r\n"])
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        self.assertEqual(cm.exception.smtp_code, 421)
        self.assertEqual(accepted(self.inst), 0)


class Limits(ServerCase):
    """smtp_timeout = 2s, smtp_max_connections = 5."""

    extra_conf = "smtp_timeout = 2s\nsmtp_max_connections = 5\n"

    def test_idle_client_gets_421_and_is_closed(self):
        s = Raw(self.port)
        self.addCleanup(s.close)
        s.ehlo()
        start = time.monotonic()
        rs = s.all_replies_to_eof(timeout=15)
        elapsed = time.monotonic() - start
        self.assertEqual([(r.code, r.enhanced) for r in rs], [(421, "4.4.2")], rs)
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 6)
        self.assertIn("timed out", self.inst.log_text())

    def test_idle_client_in_data_gets_421_and_nothing_is_queued(self):
        before = accepted(self.inst)
        s = Raw(self.port)
        self.addCleanup(s.close)
        s.ehlo()
        s.cmd("MAIL FROM:<a@example.org>")
        s.cmd("RCPT TO:<idle@test.example>")
        self.assertReply(s.cmd("DATA"), 354)
        s.send(b"Subject: never finished\r\n\r\npart")
        rs = s.all_replies_to_eof(timeout=15)
        self.assertEqual([(r.code, r.enhanced) for r in rs], [(421, "4.4.2")], rs)
        self.assertEqual(accepted(self.inst), before)
        self.assertEqual(self.inst.mbox_messages("idle"), [])

    def test_trickling_client_cannot_hold_a_session(self):
        # One byte of a command line a second, each within smtp_timeout:
        # the line as a whole must still be bounded in time (Postfix's
        # smtpd_per_record_deadline), or a slow client holds the session forever.
        s = Raw(self.port)
        self.addCleanup(s.close)
        start = time.monotonic()
        closed = False
        for c in b"NOOP " + b"x" * 200:
            if time.monotonic() - start > 8:
                break
            try:
                s.send(bytes([c]))
            except OSError:
                closed = True
                break
            if s.pending(0.7) not in (b"",):
                closed = True
                break
        self.assertTrue(closed, "a client trickling one byte every 0.7 s held the session for 8 s "
                                "with smtp_timeout = 2s")
        rs = s.all_replies_to_eof(timeout=5)
        self.assertEqual([(r.code, r.enhanced) for r in rs], [(421, "4.4.2")], rs)

    def test_sixth_connection_gets_421(self):
        held = []
        for _ in range(5):
            s = Raw(self.port)
            self.addCleanup(s.close)
            self.assertEqual(s.banner.code, 220)
            held.append(s)
        extra = Raw(self.port, banner=False)
        self.addCleanup(extra.close)
        rs = extra.all_replies_to_eof()
        self.assertEqual([r.raw for r in rs], [b"421 4.3.2 test.example Error: too many connections\r\n"])
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        self.assertEqual(cm.exception.smtp_code, 421)
        for s in held:
            s.cmd("QUIT")
            s.close()
        # Slots come back as soon as sessions end.
        qid = wait_for(lambda: self._try_send(), 10)
        self.assertTrue(qid, self.inst.log_text())

    def _try_send(self):
        try:
            return smtplib_send(self.port, "a@example.org", ["limits@test.example"], b"Subject: s\r\n\r\nx\r\n")
        except (smtplib.SMTPException, OSError):
            return None


if __name__ == "__main__":
    mmtest.main()
