#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The SMTP client remote-deliver runs (libmm's ClientSession, TlsTransport,
route options and rewriting), driven by the route-send test tool against a
real server we did not write: aiosmtpd as the smarthost (smarthost.py), on
127.0.0.1 with STARTTLS, TLS from the first byte, AUTH and scripted
replies. Each test writes a route file and checks what arrived and what the
client reported per recipient."""
import os
import subprocess
import tempfile
import unittest

import mmtest
import smarthost
from smarthost import Smarthost

ROUTE_SEND = os.path.join(mmtest.BUILD, "test", "route-send")
MESSAGE = b"From: joe\nTo: friend@example.org\nSubject: route test\n\nHello over the route.\n.leading dot\n"


class RouteSend(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="mm-rs-")
        d = cls.tmp.name
        cls.ca = smarthost.make_ca(d)
        cls.cert = smarthost.make_ca_signed_certificate(d, ca=cls.ca)
        cls.wrong = smarthost.make_wrong_name_certificate(d, ca=cls.ca)
        cls.selfsigned = smarthost.make_test_certificate(d)
        cls.conf = os.path.join(d, "masqmail.conf")
        with open(cls.conf, "w") as f:
            f.write(f'host_name = "laptop.example"\nspool_dir = "{d}/spool"\n')

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def send(self, sh, route_text, *recipients, sender="joe", message=MESSAGE):
        route = os.path.join(self.tmp.name, f"r{id(route_text)}.route")
        with open(route, "w") as f:
            f.write(f'mail_host = "127.0.0.1:{sh.port}"\n' + route_text)
        r = subprocess.run([ROUTE_SEND, self.conf, route, sender, *(recipients or ("friend@example.org",))],
                           input=message, capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        info = dict(l.split(" ", 1) if " " in l else (l, "") for l in lines[:3])
        outcomes = [l.split(" ", 2) for l in lines[3:]]
        return info, outcomes

    def no_auth_before_tls(self, sh):
        self.assertFalse(any(l.line.upper().startswith("AUTH") and not l.tls for l in sh.log), sh.transcript_text())

    def test_plain_smarthost_and_per_recipient_replies(self):
        with Smarthost(rcpt_replies={"bad@example.org": (550, "5.1.1 no such user"),
                                     "later@example.org": (451, "4.3.0 try later")}) as sh:
            info, out = self.send(sh, "tls = none\n", "friend@example.org", "bad@example.org", "later@example.org")
            m = sh.wait_for(1)[0]
        self.assertEqual([o[0] for o in out], ["delivered", "failed", "deferred"], out)
        self.assertEqual(out[1][1], "5.1.1")
        self.assertEqual(m.mail_from, "joe@laptop.example")
        self.assertEqual(m.rcpt_tos, ["friend@example.org"])
        self.assertIn(b"Hello over the route.\r\n.leading dot\r\n", m.data)
        self.assertFalse(m.tls)
        self.assertEqual(info["tls"], "")

    def test_starttls_verified_and_auth_plain(self):
        with Smarthost(starttls=True, certificate=self.cert, auth={"joe": "s3cret"}, auth_required=True) as sh:
            info, out = self.send(sh, f'tls = starttls\ntls_ca_file = "{self.ca.ca}"\n'
                                      'auth_login = "joe"\nauth_secret = "s3cret"\n')
            m = sh.wait_for(1)[0]
            self.no_auth_before_tls(sh)
        self.assertEqual(out[0][0], "delivered", out)
        self.assertTrue(m.tls)
        self.assertEqual(m.login, "joe")
        self.assertEqual(m.auth_mechanism, "PLAIN")
        self.assertEqual(info["auth"], "PLAIN")
        self.assertTrue(info["tls"].startswith("TLSv1."), info)

    def test_forced_mechanisms(self):
        for mech in ("login", "cram-md5"):
            with self.subTest(mech), Smarthost(starttls=True, certificate=self.cert, auth={"joe": "pw"}) as sh:
                _, out = self.send(sh, f'tls = starttls\ntls_ca_file = "{self.ca.ca}"\nauth_name = {mech}\n'
                                       'auth_login = joe\nauth_secret = pw\n')
                self.assertEqual(out[0][0], "delivered", out)
                self.assertEqual(sh.wait_for(1)[0].auth_mechanism, mech.upper())

    def test_xoauth2_token_from_a_command(self):
        with Smarthost(starttls=True, certificate=self.cert, oauth_token="ya29.token") as sh:
            _, out = self.send(sh, f'tls = starttls\ntls_ca_file = "{self.ca.ca}"\nauth_name = xoauth2\n'
                                   'auth_login = joe@example.org\nauth_secret_command = "/bin/echo ya29.token"\n')
            self.assertEqual(out[0][0], "delivered", out)
            self.assertEqual(sh.wait_for(1)[0].auth_mechanism, "XOAUTH2")

    def test_wrong_name_defers_and_sends_no_credentials(self):
        with Smarthost(starttls=True, certificate=self.wrong, auth={"joe": "s3cret"}) as sh:
            _, out = self.send(sh, f'tls = starttls\ntls_ca_file = "{self.ca.ca}"\n'
                                   'auth_login = joe\nauth_secret = s3cret\n')
            self.assertEqual(sh.messages, [])
            self.assertFalse(any(l.line.upper().startswith("AUTH") for l in sh.log), sh.transcript_text())
        self.assertEqual(out[0][0], "deferred", out)
        self.assertIn("does not verify", out[0][2])

    def test_stripped_starttls_defers_a_tls_route(self):
        with Smarthost(starttls=True, certificate=self.cert, advertise={"STARTTLS": False}) as sh:
            _, out = self.send(sh, "tls = starttls\n")
            self.assertFalse(any(l.line.upper().startswith("MAIL") for l in sh.log), sh.transcript_text())
        self.assertEqual(out[0][0], "deferred", out)
        self.assertIn("offers no STARTTLS", out[0][2])

    def test_credentials_never_in_clear_text_without_auth_plaintext(self):
        with Smarthost(auth={"joe": "pw"}, auth_without_tls=True) as sh:
            _, out = self.send(sh, "auth_login = joe\nauth_secret = pw\n")
            self.assertFalse(any(l.line.upper().startswith("AUTH") for l in sh.log), sh.transcript_text())
        self.assertEqual(out[0][0], "deferred", out)
        self.assertIn("auth_plaintext", out[0][2])
        with Smarthost(auth={"joe": "pw"}, auth_without_tls=True) as sh:
            _, out = self.send(sh, "auth_login = joe\nauth_secret = pw\nauth_plaintext = yes\n")
            self.assertEqual(out[0][0], "delivered", out)
            self.assertEqual(sh.wait_for(1)[0].auth_mechanism, "CRAM-MD5")

    def test_implicit_tls_and_a_pinned_self_signed_certificate(self):
        fp = smarthost.certificate_fingerprint(self.selfsigned.cert, colons=True)
        with Smarthost(implicit_tls=True, certificate=self.selfsigned) as sh:
            _, out = self.send(sh, f"tls = implicit\ntls_fingerprint = sha256:{fp}\n")
            self.assertEqual(out[0][0], "delivered", out)
            self.assertTrue(sh.wait_for(1)[0].tls)
        other = smarthost.certificate_fingerprint(self.cert.cert)
        with Smarthost(implicit_tls=True, certificate=self.selfsigned) as sh:
            _, out = self.send(sh, f"tls = implicit\ntls_fingerprint = {other}\n")
            self.assertEqual(sh.messages, [])
        self.assertEqual(out[0][0], "deferred", out)
        self.assertIn("not the pinned", out[0][2])

    def test_route_rewrites_the_sender_in_the_copy_sent(self):
        with Smarthost() as sh:
            _, out = self.send(sh, 'tls = none\nmap_return_path_addresses = "joe: joe.bloggs@isp.example"\n'
                                   'map_h_from_addresses = "joe: \\"Joe Bloggs\\" <joe.bloggs@isp.example>"\n')
            m = sh.wait_for(1)[0]
        self.assertEqual(out[0][0], "delivered", out)
        self.assertEqual(m.mail_from, "joe.bloggs@isp.example")
        self.assertIn(b'From: "Joe Bloggs" <joe.bloggs@isp.example>\r\n', m.data)
        self.assertIn(b"To: friend@example.org\r\n", m.data)

    def test_lost_after_the_dot_defers_and_size_over_the_limit_fails(self):
        with Smarthost(drop_after_data=True) as sh:
            _, out = self.send(sh, "tls = none\n")
        self.assertEqual(out[0][0], "deferred", out)
        with Smarthost(max_message_size=50) as sh:
            _, out = self.send(sh, "tls = none\n")
            self.assertEqual(sh.messages, [])
        self.assertEqual((out[0][0], out[0][1]), ("failed", "5.3.4"), out)

    def test_helo_name_and_do_correct_helo(self):
        with Smarthost() as sh:
            self.send(sh, 'tls = none\nhelo_name = "out.example"\n')
            self.assertEqual(sh.wait_for(1)[0].helo, "out.example")
        with Smarthost() as sh:
            self.send(sh, 'tls = none\nhelo_name = "out.example"\ndo_correct_helo = yes\n')
            # Our end is 127.0.0.1: its name from /etc/hosts, or the literal.
            helo = sh.wait_for(1)[0].helo
            self.assertNotEqual(helo, "out.example")
            self.assertTrue(helo == "[127.0.0.1]" or "localhost" in helo, helo)

    def test_refused_connection_defers_or_fails_with_connect_error_fail(self):
        port = mmtest.free_port()

        class Closed:
            pass
        closed = Closed()
        closed.port = port
        _, out = self.send(closed, "tls = none\n")
        self.assertEqual(out[0][0], "deferred", out)
        self.assertIn("cannot connect", out[0][2])
        _, out = self.send(closed, "tls = none\nconnect_error_fail = yes\n")
        self.assertEqual(out[0][0], "failed", out)


if __name__ == "__main__":
    mmtest.main()
