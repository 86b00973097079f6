# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad input to smtp-listener over raw sockets (reference/user-needs.md
§3.1 and §3.2): every SMTP smuggling end-of-data variant, bare CR and LF in
DATA, NUL and 8-bit bytes in commands, command and text lines from 511
octets to 1 MiB, a header section that never ends, 10^5 pipelined RCPTs, a
SIZE lie, commands before the banner, STARTTLS with a pipelined command in
the same packet, a client that vanishes mid-DATA, shell metacharacters and
leading dashes in addresses, an error flood and 500 idle connections.
Each case checks the exact reply, that nothing partial reached the queue
(enqueue's "<=" log lines, mailboxes, mailq --json), and, after it, that
the same smtp-listener process still takes a normal message from smtplib
and that its memory stays bounded."""

import os
import socket
import struct
import threading
import time
import unittest

import mmtest
import smtptest
from mmtest import Instance, wait_for
from smtptest import Raw, accepted, listener_pid, queue_id_of, rss_kib, smtplib_send

MAX_MSG_SIZE = 200000
MAX_RECIPIENTS = 100
SMUGGLED_SENDER = "smuggled@evil.example"


class Abuse(smtptest.ListenerCase):
    inst = None

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(f"max_msg_size = {MAX_MSG_SIZE}\nmax_recipients = {MAX_RECIPIENTS}\n")
        try:
            cls.cert = smtptest.make_certificate(cls.inst.root)
            if cls.cert:
                with open(cls.inst.conf, "a") as f:
                    f.write(f'tls_cert_file = "{cls.cert[0]}"\ntls_key_file = "{cls.cert[1]}"\n')
            cls.inst.start()
            cls.listener = listener_pid(cls.inst)
            assert cls.listener, cls.inst.processes()
            cls.rss_start = rss_kib(cls.listener)
        except BaseException:
            cls.inst.stop()
            cls.inst.close()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.inst is not None:
            cls.inst.stop()
            cls.inst.close()

    def assert_rss_below(self, rss, limit, msg=None):
        """Memory bounds hold for a normal build; under AddressSanitizer
        (quarantine, shadow memory) resident size says nothing."""
        if not mmtest.SANITIZED:
            self.assertLess(rss, limit, msg)

    def in_data(self, rcpt, sender="a@example.org", mail_params=""):
        """A session at the 354 of DATA."""
        s = self.raw()
        s.ehlo()
        self.assertEqual(s.cmd(f"MAIL FROM:<{sender}>{mail_params}").code, 250)
        self.assertEqual(s.cmd(f"RCPT TO:<{rcpt}>").code, 250)
        r = s.cmd("DATA")
        self.assertEqual(r.code, 354, r)
        return s

    def assertReply(self, reply, code, enhanced=None):
        self.assertEqual((reply.code, reply.enhanced if enhanced is not None else None),
                         (code, enhanced), reply)

    def assertNothingQueued(self, user=None):
        self.assertEqual(accepted(self.inst), self.before,
                         "a message was queued:\n" + self.inst.log_text()[-2000:])
        if user:
            self.assertEqual(self.inst.mbox_messages(user), [])

    def wait_log(self, text, timeout=10):
        self.assertTrue(wait_for(lambda: text in self.inst.log_text(), timeout),
                        f"{text!r} not logged:\n" + self.inst.log_text()[-2000:])

    # --- SMTP smuggling (user-needs F1) ---

    def smuggle(self, name, ending, reply=None):
        """DATA whose first message "ends" with `ending`, followed by a second
        transaction from SMUGGLED_SENDER, then a real end of data. `reply`:
        the (code, enhanced) the end of data must get, None for the real
        CRLF.CRLF (then exactly one message, without the smuggled part)."""
        victim = "victim-" + name
        s = self.in_data(f"{victim}@test.example")
        s.send(b"Subject: first\r\n\r\nfirst body\r\n" + ending
               + f"MAIL FROM:<{SMUGGLED_SENDER}>\r\nRCPT TO:<{victim}@test.example>\r\nDATA\r\n".encode()
               + b"Subject: smuggled\r\n\r\nsmuggled body\r\n.\r\n")
        if reply is None:
            r = s.reply()
            self.assertIsNotNone(queue_id_of(r), r)
            # What follows the real end of data is a pipelined transaction;
            # its DATA has content after it in the same packet: refused.
            rest = s.all_replies_to_eof()
            self.assertEqual([(x.code, x.enhanced) for x in rest],
                             [(250, "2.1.0"), (250, "2.1.5"), (554, "5.5.0")], rest)
            self.assertEqual(accepted(self.inst), self.before + 1)
            messages = wait_for(lambda: self.inst.mbox_messages(victim), 20)
            self.assertEqual(len(messages), 1, messages)
            self.assertIn(b"first body", messages[0])
        else:
            r = s.reply()
            self.assertReply(r, *reply)
            # The session goes on (or is closed); no second reply to the dot.
            if s.pending(0.3) in (b"", ):
                self.assertEqual(s.cmd("QUIT").code, 221)
            self.assertNothingQueued(victim)
        log = self.inst.log_text()
        self.assertNotIn(f"<= <{SMUGGLED_SENDER}>", log)
        for user in (victim, "alive"):
            for m in self.inst.mbox_messages(user):
                self.assertNotIn(SMUGGLED_SENDER.encode(), m)
                self.assertNotIn(b"smuggled body", m)
        for e in self.inst.mailq_json():
            self.assertNotEqual(e["sender"], SMUGGLED_SENDER)

    def test_smuggling_control_crlf_dot_crlf(self):
        self.smuggle("control", b"\r\n.\r\n", None)

    def test_smuggling_eof_after_crlf_dot_cr(self):
        s = self.in_data("victim-eof@test.example")
        s.send(b"Subject: first\r\n\r\nfirst body\r\n.\r")
        s.sock.shutdown(socket.SHUT_WR)
        self.assertEqual(s.all_replies_to_eof(), [])
        self.wait_log("during DATA; nothing queued")
        self.assertNothingQueued("victim-eof")

    def test_bare_lf_is_refused_only_at_the_final_dot(self):
        s = self.in_data("barelf@test.example")
        s.send(b"Subject: bare lf\r\n\r\nline one\nline two\r\n")
        self.assertEqual(s.pending(0.5), b"", "replied before the end of data")
        s.send(b".\r\n")
        self.assertReply(s.reply(), 550, "5.5.2")
        self.assertNothingQueued("barelf")

    def test_bare_cr_is_refused(self):
        s = self.in_data("barecr@test.example")
        s.send(b"Subject: bare cr\r\n\r\nline one\rline two\r\n.\r\n")
        self.assertReply(s.reply(), 550, "5.5.2")
        self.assertNothingQueued("barecr")
        # The transaction is gone; the session takes a clean message.
        if s.pending(0.2) == b"":
            self.assertReply(s.cmd("RCPT TO:<barecr@test.example>"), 503, "5.5.1")
            self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
            self.assertReply(s.cmd("RCPT TO:<barecr@test.example>"), 250, "2.1.5")
            self.assertReply(s.cmd("DATA"), 354, "")
            self.assertIsNotNone(queue_id_of(s.cmd(b"Subject: clean\r\n\r\nclean\r\n.")))
            self.before += 1

    def test_nul_in_data_is_refused(self):
        s = self.in_data("nul@test.example")
        s.send(b"Subject: nul\r\n\r\nbefore\x00after\r\n.\r\n")
        self.assertReply(s.reply(), 554, "5.6.0")
        self.assertNothingQueued("nul")

    # --- commands ---

    def test_nul_in_commands(self):
        s = self.raw()
        s.send(b"NOOP\x00\r\n")
        self.assertReply(s.reply(), 500, "5.5.2")
        s.ehlo()
        s.send(b"MAIL FROM:<a\x00b@example.org>\r\n")
        self.assertReply(s.reply(), 500, "5.5.2")
        s.send(b"\x00\x00\x00\r\n")
        self.assertReply(s.reply(), 500, "5.5.2")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")

    def test_8bit_bytes_in_commands(self):
        s = self.raw()
        self.assertReply(s.cmd("EHLO café.example".encode()), 500, "5.5.2")
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<josé@example.org>".encode()), 500, "5.5.2")
        self.assertReply(s.cmd(b"MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<\xff\xfe@test.example>".encode("latin-1")), 500, "5.5.2")
        self.assertReply(s.cmd(b"\xc0\xaf\r"), 500, "5.5.2")
        self.assertReply(s.cmd("RCPT TO:<ok8@test.example>"), 250, "2.1.5")

    def test_command_line_lengths(self):
        # RFC 5321 §4.5.3.1.4: 512 octets including CRLF.
        s = self.raw()
        for total, ok in ((511, True), (512, True), (513, False), (1024, False), (65536, False),
                          (1 << 20, False)):
            line = b"NOOP " + b"x" * (total - 7) + b"\r\n"
            self.assertEqual(len(line), total)
            s.send(line)
            r = s.reply()
            if ok:
                self.assertReply(r, 250, "2.0.0")
            else:
                self.assertReply(r, 500, "5.5.2")
                self.assertIn("too long", r.text)
            # Back in step: the next command is answered on its own.
            self.assertReply(s.cmd("NOOP"), 250, "2.0.0")
        # A MAIL FROM with a very long address is a long line too.
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<" + "a" * 600 + "@example.org>"), 500, "5.5.2")
        self.assertReply(s.cmd("MAIL FROM:<" + "a" * 200 + "@example.org>"), 501, "5.1.7")
        self.assert_rss_below(rss_kib(self.listener), self.rss_start + 20 * 1024)

    def test_command_line_without_end_then_eof(self):
        s = self.raw()
        s.send(b"NOOP " + b"y" * (1 << 20))
        s.sock.shutdown(socket.SHUT_WR)
        rs = s.all_replies_to_eof()
        self.assertLessEqual(len(rs), 1, rs)
        for r in rs:
            self.assertReply(r, 500, "5.5.2")
        self.assert_rss_below(rss_kib(self.listener), self.rss_start + 20 * 1024)

    def test_text_lines(self):
        # Up to 1000 octets (RFC 5321 §4.5.3.1.6) and beyond, to the
        # documented 64 KiB cap, are taken; 1 MiB is refused.
        for name, length, ok in (("t998", 1000, True), ("t1024", 1024, True), ("t4096", 4096, True),
                                 ("t65536", 65536, True), ("t65537", 65537, False),
                                 ("t1m", 1 << 20, False)):
            before = accepted(self.inst)
            s = self.in_data(f"{name}@test.example")
            s.send(b"Subject: long line\r\n\r\n" + b"z" * (length - 2) + b"\r\n.\r\n")
            r = s.reply()
            if ok:
                self.assertIsNotNone(queue_id_of(r), (name, r))
                self.assertEqual(accepted(self.inst), before + 1)
            else:
                self.assertReply(r, 552, "5.3.4")
                self.assertEqual(accepted(self.inst), before, name)
            s.close()
        self.assertEqual(self.inst.mbox_messages("t1m"), [])
        body = wait_for(lambda: self.inst.mbox_messages("t1024"), 20)
        self.assertIn(b"z" * 1022, body[0])
        self.before = accepted(self.inst)

    def test_header_section_that_never_ends(self):
        s = self.in_data("headers@test.example")
        line = b"X-Filler: " + b"h" * 88 + b"\r\n"  # 100 octets
        s.send(line * 1500)                          # 150 KB of header, no blank line
        s.send(b".\r\n")
        r = s.reply()
        self.assertReply(r, 552, "5.3.4")
        self.assertIn("header", r.text.lower())
        self.assertNothingQueued("headers")

    def test_folded_header_that_never_ends(self):
        s = self.in_data("folded@test.example")
        s.send(b"Subject: start\r\n" + (b" " + b"f" * 97 + b"\r\n") * 1500)  # one 150 KB header
        s.send(b"\r\nbody\r\n.\r\n")
        self.assertReply(s.reply(), 552, "5.3.4")
        self.assertNothingQueued("folded")

    def test_many_recipients_pipelined(self):
        # 10^5 RCPTs in one stream: 452 4.5.3 after max_recipients, every
        # command answered in order, memory bounded, the message still goes.
        n = 100000
        s = self.raw(timeout=60)
        s.ehlo()
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        payload = b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(n))
        errors = []

        def writer():
            try:
                s.sock.sendall(payload)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        peak = 0
        counts = {}
        for i in range(n):
            r = s.reply()
            key = (r.code, r.enhanced)
            counts[key] = counts.get(key, 0) + 1
            if i < MAX_RECIPIENTS:
                self.assertReply(r, 250, "2.1.5")
            elif r.code != 452:
                self.fail(f"reply {i + 1}: {r}")
            if i % 10000 == 0:
                peak = max(peak, rss_kib(self.listener))
        t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(counts, {(250, "2.1.5"): MAX_RECIPIENTS, (452, "4.5.3"): n - MAX_RECIPIENTS})
        self.assert_rss_below(peak, self.rss_start + 32 * 1024, f"listener RSS {peak} KiB (start {self.rss_start})")
        self.assertReply(s.cmd("DATA"), 354, "")
        qid = queue_id_of(s.cmd(b"Subject: many\r\n\r\nx\r\n."))
        self.assertIsNotNone(qid)
        entry = [e for e in self.inst.mailq_json() if e["id"] == qid]
        self.assertEqual(len(entry), 1)
        self.assertEqual(len(entry[0]["recipients"]), MAX_RECIPIENTS)
        self.before = accepted(self.inst)

    def test_size_lie(self):
        s = self.in_data("sizelie@test.example", mail_params=" SIZE=10")
        line = b"s" * 998 + b"\r\n"
        s.send(b"Subject: lie\r\n\r\n" + line * (MAX_MSG_SIZE // 1000 + 100) + b".\r\n")
        self.assertReply(s.reply(), 552, "5.3.4")
        self.assertNothingQueued("sizelie")

    def test_size_without_declaration_over_the_limit(self):
        s = self.in_data("toobig@test.example")
        line = b"s" * 998 + b"\r\n"
        s.send(b"Subject: big\r\n\r\n" + line * (MAX_MSG_SIZE // 1000 + 1) + b".\r\n")
        self.assertReply(s.reply(), 552, "5.3.4")
        self.assertNothingQueued("toobig")

    def message_of(self, total, stuffed_lines=0):
        """A message of exactly `total` octets (CRLF line ends, RFC 1870
        counting); `stuffed_lines` of its lines start with a dot."""
        head = b"Subject: boundary\r\n\r\n"
        body = (b"." + b"d" * 98 + b"\r\n") * stuffed_lines
        lines, last = divmod(total - len(head) - len(body), 1000)
        out = head + body + (b"b" * 998 + b"\r\n") * lines
        if last:
            self.assertGreaterEqual(last, 2)
            out += b"c" * (last - 2) + b"\r\n"
        self.assertEqual(len(out), total)
        return out

    def send_at_size(self, rcpt, message):
        s = self.in_data(rcpt)
        s.send(message.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        r = s.reply()
        s.close()
        return r

    def test_message_of_exactly_max_msg_size_is_taken(self):
        # RFC 1870 §3: max_msg_size octets (the SIZE advertised) may be sent;
        # the 250 and the queue agree with what the SMTP server counted.
        r = self.send_at_size("size-exact@example.net", self.message_of(MAX_MSG_SIZE))
        qid = queue_id_of(r)
        self.assertIsNotNone(qid, r)
        self.assertIn(qid, [e["id"] for e in self.inst.mailq_json()])
        self.before = accepted(self.inst)

    def test_one_octet_over_max_msg_size_is_refused(self):
        r = self.send_at_size("size-over@example.net", self.message_of(MAX_MSG_SIZE + 1))
        self.assertReply(r, 552, "5.3.4")
        self.assertNothingQueued()

    def test_dot_stuffing_does_not_count_toward_the_size(self):
        # RFC 1870 §3: the size excludes "doubled quoting dots". 300 octets
        # under the limit, with 400 lines that start with a dot.
        r = self.send_at_size("size-dots@example.net", self.message_of(MAX_MSG_SIZE - 300, stuffed_lines=400))
        self.assertIsNotNone(queue_id_of(r), r)
        self.before = accepted(self.inst)

    def test_empty_header_section_and_a_long_body(self):
        # A message that starts with the empty line has no header at all;
        # its body does not count toward the header section's limit.
        s = self.in_data("noheader@example.net")
        s.send(b"\r\n" + (b"n" * 98 + b"\r\n") * 1500 + b".\r\n")
        r = s.reply()
        self.assertIsNotNone(queue_id_of(r), r)
        self.before = accepted(self.inst)

    def test_client_that_never_reads_its_replies(self):
        # Commands flow in, replies pile up unread: the server stops reading
        # rather than buffering without bound.
        s = self.raw()
        s.ehlo()
        s.sock.setblocking(False)
        sent = 0
        chunk = b"NOOP\r\n" * 10000
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                sent += s.sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.05)
        rss = rss_kib(self.listener)
        self.assertLess(sent, 64 << 20, "the server read everything (or the test machine is unusually fast)")
        self.assert_rss_below(rss, self.rss_start + 16 * 1024, f"listener RSS {rss} KiB after {sent} bytes of NOOPs")
        s.close()

    def test_size_over_the_limit_at_mail(self):
        s = self.raw()
        s.ehlo()
        self.assertReply(s.cmd(f"MAIL FROM:<a@example.org> SIZE={MAX_MSG_SIZE + 1}"), 552, "5.3.4")
        self.assertReply(s.cmd(f"MAIL FROM:<a@example.org> SIZE={MAX_MSG_SIZE}"), 250, "2.1.0")

    def test_early_talker(self):
        s = self.raw(banner=False)
        s.send(b"EHLO early.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<early@test.example>\r\n"
               b"DATA\r\nSubject: early\r\n\r\nbefore the banner\r\n.\r\nQUIT\r\n")
        rs = s.all_replies_to_eof()
        codes = [(r.code, r.enhanced) for r in rs]
        # The listener may have sent its banner before the bytes arrived; then
        # the pipelined EHLO is refused instead. Nothing else is answered.
        self.assertIn(codes, ([(554, "5.5.0")], [(220, ""), (554, "5.5.0")]), rs)
        self.assertNothingQueued("early")

    def test_starttls_with_a_pipelined_command(self):
        if self.cert is None:
            self.skipTest(f"{smtptest.OPENSSL} is missing: no certificate for STARTTLS")
        s = self.raw()
        s.ehlo()
        s.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<inject@test.example>\r\n")
        r = s.reply()
        self.assertEqual(r.raw, b"220 2.0.0 Ready to start TLS\r\n")
        self.assertEqual(s.buf, b"", "bytes after the 220 before the handshake")
        s.starttls()
        s.send(b"EHLO fresh.example\r\n")
        r = s.reply()
        # The first reply inside TLS is to our own EHLO, not to the injected MAIL.
        self.assertEqual(r.code, 250, r)
        self.assertEqual(r.lines[0], "test.example Nice to meet you with ESMTP", r)
        self.assertNotIn("STARTTLS", r.lines)
        # A new session: no sender from before the handshake.
        self.assertReply(s.cmd("RCPT TO:<inject@test.example>"), 503, "5.5.1")
        self.assertReply(s.cmd("MAIL FROM:<a@example.org>"), 250, "2.1.0")
        self.assertReply(s.cmd("RCPT TO:<inject@test.example>"), 250, "2.1.5")
        self.assertReply(s.cmd("DATA"), 354, "")
        qid = queue_id_of(s.cmd(b"Subject: after tls\r\n\r\nx\r\n."))
        self.assertIsNotNone(qid)
        self.assertReply(s.cmd("QUIT"), 221, "2.0.0")
        self.assertNotIn("injected@evil.example", self.inst.log_text())
        self.assertIn(f"{qid} <= <a@example.org>", self.inst.log_text())
        self.before = accepted(self.inst)

    def test_client_vanishes_mid_data(self):
        s = self.in_data("vanish@test.example")
        s.send(b"Subject: gone\r\n\r\nhalf a message\r\nand no end")
        s.close()
        # And one that resets the connection.
        t = self.in_data("vanish@test.example")
        t.send(b"Subject: reset\r\n\r\nhalf\r\n")
        t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t.close()
        self.assertTrue(wait_for(lambda: self.inst.log_text().count("during DATA; nothing queued") >= 2, 10),
                        self.inst.log_text()[-2000:])
        self.assertNothingQueued("vanish")

    def test_shell_metacharacters_and_leading_dashes(self):
        mark = self.inst.path("pwned")
        quoted = [f'"$(touch {mark}1)"', f'"`touch {mark}2`"', f'"; touch {mark}3;"', f'"a|touch {mark}4"',
                  f'"&& touch {mark}5"']
        atoms = ["-bd", "-oi", "--help", "-X/tmp/x", "-C/etc/passwd", "$(id)", "`id`", "a;b", "a|b",
                 "${IFS}", "*", "~root", "a&b"]
        qids = []
        refused_pipe = None
        for local in quoted + atoms + [f'"|touch {mark}6"']:
            for domain in ("test.example", "example.net"):
                s = self.raw()
                s.ehlo()
                r = s.cmd(f"MAIL FROM:<{local}@example.org>")
                self.assertIn(r.code, (250, 501, 553), (local, r))
                if r.code != 250:
                    self.assertEqual(s.cmd("MAIL FROM:<a@example.org>").code, 250)
                r = s.cmd(f"RCPT TO:<{local}@{domain}>")
                self.assertIn(r.code, (250, 501, 550, 553), (local, r))
                if local.startswith('"|'):
                    refused_pipe = r
                if r.code == 250:
                    self.assertEqual(s.cmd("DATA").code, 354)
                    r = s.cmd(b"Subject: metachar\r\n\r\nx\r\n.")
                    qid = queue_id_of(r)
                    self.assertIsNotNone(qid, (local, r))
                    if domain == "test.example":
                        qids.append(qid)  # remote ones stay queued
                self.assertEqual(s.cmd("QUIT").code, 221)
                s.close()
        self.assertIsNotNone(refused_pipe)
        self.assertEqual((refused_pipe.code, refused_pipe.enhanced), (550, "5.1.1"), refused_pipe)
        # Give every local delivery its chance, then look for the traces.
        self.assertTrue(qids)
        done = wait_for(lambda: all(f"{q} completed" in self.inst.log_text() for q in qids), 15)
        self.assertTrue(done, self.inst.log_text()[-3000:])
        for i in range(1, 7):
            self.assertFalse(os.path.exists(f"{mark}{i}"), f"{mark}{i}: a command ran")
        for p in ("/tmp/x",):
            self.assertFalse(os.path.exists(p) and os.path.getmtime(p) > time.time() - 60, p)
        for name in os.listdir(self.inst.path("mail")):
            self.assertTrue(os.path.isfile(os.path.join(self.inst.path("mail"), name)),
                            f"mail_dir/{name} is not a mailbox")
        for name in os.listdir(self.inst.root):
            self.assertIn(name, {"spool", "log", "lock", "run", "mail", "masqmail.conf", "tls.key", "tls.crt"},
                          f"unexpected file {name} in the instance folder")
        self.before = accepted(self.inst)

    def test_error_flood(self):
        s = self.raw()
        s.send(b"FOO\r\n" * 100)
        rs = s.all_replies_to_eof()
        self.assertEqual([(r.code, r.enhanced) for r in rs], [(500, "5.5.1")] * 20 + [(421, "4.7.0")], rs)
        self.assertIn("too many errors", rs[-1].text)

    def test_500_idle_connections(self):
        socks = []
        try:
            for _ in range(500):
                c = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                socks.append(c)
            got = 0
            for c in socks:
                data = c.recv(512)
                got += data.startswith(b"220 ")
            self.assertEqual(got, 500)
            rss = rss_kib(self.listener)
            self.assert_rss_below(rss, 20 * 1024, f"listener RSS {rss} KiB with 500 idle connections")
            # A 501st client is still served while they idle.
            qid = smtplib_send(self.port, "a@example.org", ["idle500@example.net"], b"Subject: s\r\n\r\nx\r\n")
            self.assertTrue(qid)
        finally:
            for c in socks:
                c.close()
        self.before = accepted(self.inst)


class Overload(unittest.TestCase):
    """Past 80% of smtp_max_connections the wait for a command is 10 s, for
    the sessions already waiting too (they kept smtp_timeout, 5 minutes)."""

    def test_sessions_waiting_before_the_overload_get_the_short_wait(self):
        inst = Instance("smtp_max_connections = 10\nsmtp_timeout = 5m\n")
        self.addCleanup(inst.close)
        inst.start()
        self.addCleanup(inst.stop)
        socks = []
        self.addCleanup(lambda: [c.close() for c in socks])
        for _ in range(9):  # the 9th passes 80% (9 * 5 > 10 * 4)
            c = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
            c.settimeout(200)  # far below 5 minutes, far above 10 s on a slow machine
            socks.append(c)
            self.assertTrue(c.recv(512).startswith(b"220 "))
        for i, c in enumerate(socks):
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = c.recv(512)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b"421 4.4.2"), f"session {i}: {data!r}")
        self.assertIn("connections open: waiting at most 10 s", inst.log_text())


def _smuggling_case(name, ending, reply):
    def test(self):
        self.smuggle(name, ending, reply)
    test.__doc__ = f"end of data {ending!r}: {reply}"
    return test


# user-needs.md F1 and the variants of the SMTP smuggling checkers: only
# CRLF.CRLF ends DATA; each of these leaves a bare CR or LF (550 5.5.2) or
# a NUL (554 5.6.0) in the message, which is refused whole.
BARE = (550, "5.5.2")
NUL = (554, "5.6.0")
SMUGGLING = {
    "lf_dot_lf": (b"\n.\n", BARE),
    "lf_dot_crlf": (b"\n.\r\n", BARE),
    "crlf_dot_lf": (b"\r\n.\n", BARE),
    "cr_dot_cr": (b"\r.\r", BARE),
    "cr_dot_crlf": (b"\r.\r\n", BARE),
    "crlf_dot_cr": (b"\r\n.\r", BARE),
    "crlf_nul_dot_crlf": (b"\r\n\x00.\r\n", NUL),
    "crlf_dot_nul_crlf": (b"\r\n.\x00\r\n", NUL),
    "lf_lf_dot_crlf": (b"\n\n.\r\n", BARE),
    "crcrlf_dot_crcrlf": (b"\r\r\n.\r\r\n", BARE),
    "crlf_dot_crcrlf": (b"\r\n.\r\r\n", BARE),
    "lf_dot_lf_crlf": (b"\n.\n\r\n", BARE),
}
for _name, (_ending, _reply) in SMUGGLING.items():
    setattr(Abuse, f"test_smuggling_{_name}", _smuggling_case(_name, _ending, _reply))


if __name__ == "__main__":
    mmtest.main()
