# SPDX-License-Identifier: GPL-2.0-or-later
"""The smarthost fixture (smarthost.py) checked with clients we did not
write (Python's smtplib, and raw sockets from smtptest.Raw where smtplib
cannot say it): plain delivery and what it records, STARTTLS verified
against a CA, a wrong-name and a self-signed certificate, pinning
fingerprints, TLS from the first byte, AUTH PLAIN, LOGIN, CRAM-MD5, XOAUTH2
and OAUTHBEARER (and AUTH only under TLS), scripted replies, EHLO failure
with the HELO fallback, a stripped STARTTLS, require_tls, the EHLO keywords
and size limit, the greeting, a connection dropped after the final dot,
and stopping cleanly."""

import base64
import hashlib
import os
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import mmtest
import smarthost
from mmtest import wait_for
from smarthost import Smarthost
from smtptest import Raw

MESSAGE = b"Subject: fixture\r\nFrom: a@example.org\r\n\r\n.a line starting with a dot\r\nbody\r\n"


def b64(text):
    return base64.b64encode(text.encode()).decode()


class SmarthostCase(unittest.TestCase):
    """Certificates shared by the tests: a CA, a server certificate it
    signed, a wrong-name one it signed, and a self-signed one."""

    @classmethod
    def setUpClass(cls):
        if not os.access(smarthost.OPENSSL, os.X_OK):
            raise unittest.SkipTest(f"{smarthost.OPENSSL} is missing: no certificates")
        cls.tmp = tempfile.TemporaryDirectory(prefix="mm-smarthost-test-")
        cls.ca = smarthost.make_ca(cls.tmp.name)
        cls.server_cert = smarthost.make_ca_signed_certificate(cls.tmp.name, ca=cls.ca)
        cls.wrong_cert = smarthost.make_wrong_name_certificate(cls.tmp.name, ca=cls.ca)
        cls.self_signed = smarthost.make_test_certificate(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def smarthost(self, **options):
        sh = Smarthost(**options)
        self.addCleanup(sh.stop)
        return sh

    def connect(self, sh):
        s = smtplib.SMTP("127.0.0.1", sh.port, local_hostname="client.example", timeout=10)
        self.addCleanup(s.close)
        return s

    def raw(self, sh):
        r = Raw(sh.port)
        self.addCleanup(r.close)
        return r

    def verifying(self, cafile):
        """A client context that checks the chain against cafile and the name."""
        return ssl.create_default_context(cafile=cafile)

    def tls_session(self, sh):
        """smtplib after EHLO, STARTTLS (verified with the smarthost's CA) and EHLO again."""
        s = self.connect(sh)
        s.ehlo()
        code, _ = s.starttls(context=self.verifying(sh.certificate.ca))
        self.assertEqual(code, 220)
        s.ehlo()
        return s

    def only_message(self, sh):
        messages = sh.wait_for(1, timeout=10)
        self.assertEqual(len(messages), 1, sh.transcript_text())
        self.assertEqual(sh.errors, [])
        return messages[0]


class Delivery(SmarthostCase):
    def test_plain_delivery_is_recorded(self):
        sh = self.smarthost()
        s = self.connect(sh)
        s.ehlo()
        self.assertEqual(s.esmtp_features.get("size"), str(10 * 1024 * 1024))
        self.assertIn("pipelining", s.esmtp_features)
        self.assertNotIn("starttls", s.esmtp_features)
        self.assertNotIn("auth", s.esmtp_features)
        self.assertEqual(s.sendmail("a@example.org", ["b@example.net", "c@example.net"], MESSAGE), {})
        s.quit()
        m = self.only_message(sh)
        self.assertEqual((m.connection, m.helo, m.esmtp, m.tls, m.tls_version, m.login, m.auth_mechanism),
                         (1, "client.example", True, False, None, None, None))
        self.assertEqual(m.mail_from, "a@example.org")
        self.assertEqual(m.mail_options, [f"SIZE={len(MESSAGE)}"])
        self.assertEqual(m.rcpt_tos, ["b@example.net", "c@example.net"])
        # smtplib stuffed the leading dot; the smarthost records it removed.
        self.assertEqual(m.data, MESSAGE)
        self.assertEqual((m.reply, m.queue_id), (250, "SH1"))
        self.assertEqual(sh.accepted, [m])
        # As smtplib sends them: lower-case verbs.
        self.assertEqual(sh.lines(), ["ehlo client.example", f"mail FROM:<a@example.org> size={len(MESSAGE)}",
                                      "rcpt TO:<b@example.net>", "rcpt TO:<c@example.net>", "data", "quit"])
        self.assertTrue(all(l.raw.endswith(b"\r\n") and not l.tls for l in sh.log), sh.log)
        self.assertFalse(any(l.pipelined for l in sh.log), "smtplib waits for every reply")
        self.assertEqual(sh.connections, 1)
        self.assertIn("1 S: 250 2.0.0 OK queued as SH1", sh.transcript_text())

    def test_two_connections_are_numbered(self):
        sh = self.smarthost()
        for n in (1, 2):
            with self.connect(sh) as s:
                s.sendmail("a@example.org", [f"r{n}@example.net"], MESSAGE)
        messages = sh.wait_for(2)
        self.assertEqual([(m.connection, m.rcpt_tos, m.queue_id) for m in messages],
                         [(1, ["r1@example.net"], "SH1"), (2, ["r2@example.net"], "SH2")])
        self.assertEqual(sh.lines(connection=2)[0], "ehlo client.example")

    def test_null_sender(self):
        sh = self.smarthost()
        with self.connect(sh) as s:
            s.sendmail("", ["b@example.net"], MESSAGE)
        self.assertEqual(self.only_message(sh).mail_from, "")
        self.assertIn(f"mail FROM:<> size={len(MESSAGE)}", sh.lines())

    def test_pipelined_commands_are_marked(self):
        sh = self.smarthost()
        r = self.raw(sh)
        r.ehlo()
        r.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        self.assertEqual([x.code for x in r.replies(3)], [250, 250, 354])
        self.assertEqual(r.cmd(b"Subject: p\r\n\r\nx\r\n.").code, 250)
        self.assertEqual([(l.line, l.pipelined) for l in sh.log],
                         [("EHLO client.example", False), ("MAIL FROM:<a@example.org>", True),
                          ("RCPT TO:<b@example.net>", True), ("DATA", False)])
        self.assertEqual(self.only_message(sh).data, b"Subject: p\r\n\r\nx\r\n")

    def test_context_manager_and_port_reuse(self):
        with Smarthost() as sh:
            with self.connect(sh) as s:
                s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
            sh.wait_for(1)
            port = sh.port
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        again = self.smarthost(port=port)
        self.assertEqual(again.port, port)
        self.assertEqual(self.raw(again).banner.code, 220)


class Tls(SmarthostCase):
    def test_starttls_verified_with_the_ca(self):
        sh = self.smarthost(starttls=True, certificate=self.server_cert)
        s = self.connect(sh)
        s.ehlo()
        self.assertIn("starttls", s.esmtp_features)
        self.assertEqual(s.starttls(context=self.verifying(self.ca.cert))[0], 220)
        s.ehlo()
        self.assertNotIn("starttls", s.esmtp_features, "STARTTLS offered again inside TLS")
        seen = hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest()
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        s.quit()
        self.assertEqual(seen, smarthost.certificate_fingerprint(self.server_cert.cert))
        m = self.only_message(sh)
        self.assertTrue(m.tls)
        self.assertTrue(m.tls_version.startswith("TLSv1."), m.tls_version)
        self.assertEqual([(l.line, l.tls) for l in sh.log][:4],
                         [("ehlo client.example", False), ("STARTTLS", False),
                          ("ehlo client.example", True), (f"mail FROM:<a@example.org> size={len(MESSAGE)}", True)])

    def test_default_certificate_verifies_with_its_ca(self):
        sh = self.smarthost(starttls=True)
        self.assertNotEqual(sh.certificate.ca, sh.certificate.cert)
        s = self.connect(sh)
        s.ehlo()
        s.starttls(context=self.verifying(sh.certificate.ca))
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        self.assertTrue(self.only_message(sh).tls)

    def test_wrong_name_fails_verification_and_the_server_goes_on(self):
        sh = self.smarthost(starttls=True, certificate=self.wrong_cert)
        s = self.connect(sh)
        s.ehlo()
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            s.starttls(context=self.verifying(self.ca.cert))
        self.assertIn("mismatch", cm.exception.verify_message)
        # The client's alert ends the handshake on the server's side too.
        self.assertTrue(wait_for(lambda: sh.tls_failures, 5))
        self.assertRegex(sh.tls_failures[0], r"^1: .*(BAD_CERTIFICATE|bad certificate)")
        # The chain itself is good: without the name check it verifies.
        ctx = self.verifying(self.ca.cert)
        ctx.check_hostname = False
        s = self.connect(sh)
        s.ehlo()
        self.assertEqual(s.starttls(context=ctx)[0], 220)
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual(self.only_message(sh).connection, 2)

    def test_self_signed_verifies_only_when_trusted(self):
        sh = self.smarthost(starttls=True, certificate=self.self_signed[:2])
        self.assertIsNone(sh.certificate.ca)
        s = self.connect(sh)
        s.ehlo()
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            s.starttls(context=ssl.create_default_context())
        self.assertIn("self-signed", cm.exception.verify_message)
        s = self.connect(sh)
        s.ehlo()
        self.assertEqual(s.starttls(context=self.verifying(self.self_signed.ca))[0], 220)
        self.assertEqual(smarthost.certificate_fingerprint(self.self_signed.cert),
                         hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest())

    def test_fingerprint_matches_openssl(self):
        out = subprocess.run([smarthost.OPENSSL, "x509", "-in", self.server_cert.cert, "-noout", "-fingerprint",
                              "-sha256"], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.strip().split("=", 1)[1].lower(),
                         smarthost.certificate_fingerprint(self.server_cert.cert, colons=True))

    def test_implicit_tls(self):
        sh = self.smarthost(implicit_tls=True, certificate=self.server_cert)
        with smtplib.SMTP_SSL("127.0.0.1", sh.port, local_hostname="client.example", timeout=10,
                              context=self.verifying(self.ca.cert)) as s:
            s.ehlo()
            self.assertNotIn("starttls", s.esmtp_features)
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        self.assertTrue(self.only_message(sh).tls)
        self.assertTrue(all(l.tls for l in sh.log), sh.log)
        self.assertEqual(sh.tls_failures, [])

    def test_implicit_tls_failed_handshakes_are_recorded(self):
        sh = self.smarthost(implicit_tls=True, certificate=self.server_cert)
        # A client that does not trust the CA, then one that talks plain SMTP.
        with self.assertRaises(ssl.SSLCertVerificationError):
            smtplib.SMTP_SSL("127.0.0.1", sh.port, timeout=10, context=ssl.create_default_context())
        with socket.create_connection(("127.0.0.1", sh.port), timeout=10) as plain:
            plain.sendall(b"EHLO client.example\r\n")
            self.assertEqual(plain.recv(100), b"")
        self.assertTrue(wait_for(lambda: len(sh.tls_failures) == 2, 5), sh.tls_failures)
        self.assertRegex(sh.tls_failures[0], r"^1: .*(UNKNOWN_CA|unknown ca)")
        self.assertRegex(sh.tls_failures[1], r"^2: .*(WRONG_VERSION_NUMBER|wrong version number)")
        self.assertEqual((sh.log, sh.messages, sh.errors), ([], [], []))
        # The smarthost goes on.
        with smtplib.SMTP_SSL("127.0.0.1", sh.port, timeout=10, context=self.verifying(self.ca.cert)) as s:
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual(self.only_message(sh).connection, 3)

    def test_stripped_starttls(self):
        sh = self.smarthost(starttls=True, auth={"user": "secret"}, advertise={"starttls": False})
        s = self.connect(sh)
        s.ehlo()
        self.assertNotIn("starttls", s.esmtp_features)
        self.assertNotIn("auth", s.esmtp_features)
        self.assertEqual(s.docmd("STARTTLS")[0], 454)
        self.assertEqual(s.docmd("AUTH", "PLAIN " + b64("\0user\0secret"))[0], 538)

    def test_require_tls(self):
        sh = self.smarthost(starttls=True, require_tls=True)
        s = self.connect(sh)
        s.ehlo()
        self.assertEqual(s.mail("a@example.org"), (530, b"5.7.0 Must issue a STARTTLS command first"))
        s.starttls(context=self.verifying(sh.certificate.ca))
        s.ehlo()
        self.assertEqual(s.mail("a@example.org")[0], 250)


class Auth(SmarthostCase):
    def login(self, sh, mechanism, password="secret", initial_response_ok=True):
        s = self.tls_session(sh)
        s.user, s.password = "user", password
        s.auth(mechanism, getattr(s, "auth_" + mechanism.lower().replace("-", "_")),
               initial_response_ok=initial_response_ok)
        return s

    def test_auth_only_under_tls(self):
        sh = self.smarthost(starttls=True, auth={"user": "secret"})
        s = self.connect(sh)
        s.ehlo()
        self.assertNotIn("auth", s.esmtp_features)
        self.assertEqual(s.docmd("AUTH", "PLAIN " + b64("\0user\0secret"))[0], 538)
        s.starttls(context=self.verifying(sh.certificate.ca))
        s.ehlo()
        self.assertEqual(s.esmtp_features["auth"], " PLAIN LOGIN CRAM-MD5")
        self.assertEqual(s.docmd("AUTH", "PLAIN " + b64("\0user\0secret"))[0], 235)
        self.assertEqual([(l.line.split(" ")[0], l.tls) for l in sh.log if l.line.startswith("AUTH")],
                         [("AUTH", False), ("AUTH", True)])

    def test_plain(self):
        sh = self.smarthost(starttls=True, auth={"user": "secret"})
        s = self.login(sh, "PLAIN")
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        m = self.only_message(sh)
        self.assertEqual((m.login, m.auth_mechanism, m.tls), ("user", "PLAIN", True))
        self.assertIn("AUTH PLAIN " + b64("\0user\0secret"), sh.lines())

    def test_login_with_and_without_initial_response(self):
        sh = self.smarthost(starttls=True, auth={"user": "secret"})
        self.login(sh, "LOGIN").quit()
        self.login(sh, "LOGIN", initial_response_ok=False).sendmail("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual(sh.lines(1)[3:5], ["AUTH LOGIN " + b64("user"), b64("secret")])
        self.assertEqual(sh.lines(2)[3:6], ["AUTH LOGIN", b64("user"), b64("secret")])
        self.assertIn("2 S: 334 " + b64("Username:"), sh.transcript_text())
        m = self.only_message(sh)
        self.assertEqual((m.connection, m.login, m.auth_mechanism), (2, "user", "LOGIN"))

    def test_cram_md5(self):
        sh = self.smarthost(starttls=True, auth={"user": "secret"})
        self.login(sh, "CRAM-MD5").sendmail("a@example.org", ["b@example.net"], MESSAGE)
        m = self.only_message(sh)
        self.assertEqual((m.login, m.auth_mechanism), ("user", "CRAM-MD5"))

    def test_wrong_password(self):
        sh = self.smarthost(starttls=True, auth={"user": "secret"})
        for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                self.login(sh, mechanism, password="wrong")
            self.assertEqual(cm.exception.smtp_code, 535, mechanism)
        self.assertEqual(sh.errors, [])

    def test_auth_required(self):
        sh = self.smarthost(starttls=True, auth={"user": "secret"}, auth_required=True)
        s = self.tls_session(sh)
        self.assertEqual(s.mail("a@example.org"), (530, b"5.7.0 Authentication required"))
        s.user, s.password = "user", "secret"
        s.auth("PLAIN", s.auth_plain)
        self.assertEqual(s.mail("a@example.org")[0], 250)

    def test_auth_without_tls_and_chosen_mechanisms(self):
        sh = self.smarthost(auth={"user": "secret"}, auth_without_tls=True, auth_mechanisms=["CRAM-MD5"])
        s = self.connect(sh)
        s.ehlo()
        self.assertEqual(s.esmtp_features["auth"], " CRAM-MD5")
        self.assertEqual(s.docmd("AUTH", "PLAIN " + b64("\0user\0secret"))[0], 504)
        s.login("user", "secret")
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        m = self.only_message(sh)
        self.assertEqual((m.tls, m.login, m.auth_mechanism), (False, "user", "CRAM-MD5"))

    def test_xoauth2(self):
        sh = self.smarthost(starttls=True, oauth_token="tok-123")
        s = self.tls_session(sh)
        self.assertEqual(s.esmtp_features["auth"], " XOAUTH2 OAUTHBEARER")
        code, challenge = s.docmd("AUTH", "XOAUTH2 " + b64("user=u@example.org\x01auth=Bearer wrong\x01\x01"))
        self.assertEqual(code, 334)
        self.assertIn(b'"status": "401"', base64.b64decode(challenge))
        self.assertEqual(s.docmd("")[0], 535)
        code, _ = s.docmd("AUTH", "XOAUTH2 " + b64("user=u@example.org\x01auth=Bearer tok-123\x01\x01"))
        self.assertEqual(code, 235)
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        m = self.only_message(sh)
        self.assertEqual((m.login, m.auth_mechanism), ("u@example.org", "XOAUTH2"))

    def test_oauthbearer(self):
        sh = self.smarthost(starttls=True, oauth_token="tok-123")
        good = b64(f"n,a=u@example.org,\x01host=127.0.0.1\x01port={sh.port}\x01auth=Bearer tok-123\x01\x01")
        bad = b64("n,a=u@example.org,\x01auth=Bearer nope\x01\x01")
        s = self.tls_session(sh)
        code, challenge = s.docmd("AUTH", "OAUTHBEARER " + bad)
        self.assertEqual(code, 334)
        self.assertIn(b"invalid_token", base64.b64decode(challenge))
        self.assertEqual(s.docmd(b64("\x01"))[0], 535)
        # Without an initial response: an empty challenge first.
        self.assertEqual(s.docmd("AUTH", "OAUTHBEARER"), (334, b""))
        self.assertEqual(s.docmd(good)[0], 235)
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        m = self.only_message(sh)
        self.assertEqual((m.login, m.auth_mechanism), ("u@example.org", "OAUTHBEARER"))


class Scripted(SmarthostCase):
    def test_recipient_replies(self):
        sh = self.smarthost(rcpt_replies={"bad@x.example": (550, "5.1.1 no such user"),
                                          "Later@X.example": (451, "4.3.0 try later")})
        s = self.connect(sh)
        s.ehlo()
        self.assertEqual(s.mail("a@example.org")[0], 250)
        self.assertEqual(s.rcpt("bad@x.example"), (550, b"5.1.1 no such user"))
        self.assertEqual(s.rcpt("later@x.example"), (451, b"4.3.0 try later"))
        self.assertEqual(s.rcpt("good@x.example")[0], 250)
        self.assertEqual(s.data(MESSAGE)[0], 250)
        self.assertEqual(self.only_message(sh).rcpt_tos, ["good@x.example"])

    def test_mail_and_data_replies_can_change_between_transactions(self):
        sh = self.smarthost(mail_reply=(451, "4.3.0 busy"), data_reply=(554, "5.6.0 no thanks"))
        s = self.connect(sh)
        s.ehlo()
        self.assertEqual(s.mail("a@example.org"), (451, b"4.3.0 busy"))
        sh.mail_reply = None
        s.mail("a@example.org")
        s.rcpt("b@example.net")
        self.assertEqual(s.data(MESSAGE), (554, b"5.6.0 no thanks"))
        self.assertEqual(sh.accepted, [])
        sh.data_reply = None
        s.mail("a@example.org")
        s.rcpt("c@example.net")
        self.assertEqual(s.data(MESSAGE)[0], 250)
        messages = sh.wait_for(2)
        self.assertEqual([(m.reply, m.rcpt_tos) for m in messages],
                         [(554, ["b@example.net"]), (250, ["c@example.net"])])
        self.assertEqual(sh.accepted, messages[1:])

    def test_ehlo_failure_and_helo_fallback(self):
        sh = self.smarthost(ehlo_fails=True)
        s = self.connect(sh)
        # sendmail() tries EHLO, then HELO.
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        m = self.only_message(sh)
        self.assertEqual((m.helo, m.esmtp, m.mail_options), ("client.example", False, []))
        self.assertEqual(sh.lines()[:3], ["ehlo client.example", "helo client.example", "mail FROM:<a@example.org>"])
        self.assertIn("1 S: 500 5.5.1 EHLO not recognized", sh.transcript_text())

    def test_drop_after_data(self):
        sh = self.smarthost(drop_after_data=True)
        s = self.connect(sh)
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        m = self.only_message(sh)
        self.assertEqual((m.reply, m.data), (None, MESSAGE))
        self.assertEqual(sh.accepted, [])
        self.assertNotIn("queued", sh.transcript_text())
        sh.drop_after_data = False
        with self.connect(sh) as s:
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual(len(sh.accepted), 1)

    def test_advertised_keywords_and_size_limit(self):
        sh = self.smarthost(advertise={"PIPELINING": False, "SIZE": 1000, "DSN": True}, max_message_size=2000)
        s = self.connect(sh)
        s.ehlo()
        self.assertNotIn("pipelining", s.esmtp_features)
        self.assertEqual((s.esmtp_features["size"], s.esmtp_features["dsn"]), ("1000", ""))
        self.assertEqual(s.mail("a@example.org", ["SIZE=5000"])[0], 552)
        s.mail("a@example.org")
        s.rcpt("b@example.net")
        self.assertEqual(s.data(b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * 30)[0], 552)
        self.assertEqual(sh.messages, [])
        utf8 = self.smarthost(advertise={"SMTPUTF8": True})
        s = self.connect(utf8)
        s.ehlo()
        self.assertIn("smtputf8", s.esmtp_features)
        self.assertEqual(s.mail("ä@example.org", ["SMTPUTF8"])[0], 250)
        no_size = self.smarthost(max_message_size=None)
        s = self.connect(no_size)
        s.ehlo()
        self.assertNotIn("size", s.esmtp_features)

    def test_greeting_delay(self):
        sh = self.smarthost(greeting_delay=0.5)
        start = time.monotonic()
        self.connect(sh)
        self.assertGreaterEqual(time.monotonic() - start, 0.45)

    def test_greeting_reply_closes(self):
        sh = self.smarthost(greeting_reply=(421, "4.3.2 busy, come back later"))
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP("127.0.0.1", sh.port, timeout=10)
        self.assertEqual(cm.exception.smtp_code, 421)
        r = self.raw(sh)
        self.assertEqual(r.banner.raw, b"421 4.3.2 busy, come back later\r\n")
        self.assertEqual(r.read_to_eof(), b"")


class Stopping(SmarthostCase):
    def test_stop_closes_open_connections_and_ends_the_thread(self):
        sh = Smarthost(starttls=True)
        self.addCleanup(sh.stop)  # stop() twice is harmless
        plain = Raw(sh.port)
        in_tls = Raw(sh.port)
        self.addCleanup(plain.close)
        self.addCleanup(in_tls.close)
        # and one that waits for its greeting
        waiting = Smarthost(greeting_delay=30)
        self.addCleanup(waiting.stop)
        before_greeting = socket.create_connection(("127.0.0.1", waiting.port), timeout=10)
        self.addCleanup(before_greeting.close)
        in_tls.ehlo()
        self.assertEqual(in_tls.cmd("STARTTLS").code, 220)
        in_tls.starttls()
        in_tls.ehlo()
        with self.assertRaises(AssertionError):
            sh.wait_for(1, timeout=0.2)
        start = time.monotonic()
        sh.stop()
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(plain.read_to_eof(), b"")
        in_tls.read_to_eof()
        sh.stop()  # a second stop does nothing
        time.sleep(0.1)  # the greeting's wait has begun
        start = time.monotonic()
        waiting.stop()
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(before_greeting.recv(100), b"")
        self.assertEqual([t.name for t in threading.enumerate() if t.name.startswith("smarthost-")], [])
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", sh.port), timeout=5)
        self.assertEqual(sh.errors, [])

    def test_stop_during_an_implicit_tls_handshake(self):
        sh = Smarthost(implicit_tls=True)
        self.addCleanup(sh.stop)
        silent = socket.create_connection(("127.0.0.1", sh.port), timeout=10)
        self.addCleanup(silent.close)
        self.assertTrue(wait_for(lambda: sh.connections == 1, 5))
        start = time.monotonic()
        sh.stop()
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(silent.recv(100), b"")
        self.assertEqual((sh.tls_failures, sh.errors), ([], []))

    def test_bad_options_are_refused(self):
        for options in ({"starttls": True, "implicit_tls": True}, {"require_tls": True},
                        {"auth": {"u": "p"}}, {"auth": {"u": "p"}, "starttls": True, "auth_mechanisms": ["NTLM"]}):
            with self.assertRaises(ValueError, msg=options):
                Smarthost(**options)


if __name__ == "__main__":
    mmtest.main()
