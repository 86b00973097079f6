#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Routes and remote delivery end to end in a private instance: mail queued
while offline, runs with -qo NAME, -q with online_query, and the daemons;
route order, last_route and the route filters; per-route rewriting; TLS,
AUTH and per-recipient replies; expiry counted only while a route is online;
one connection for several messages. The smarthosts are aiosmtpd
(smarthost.py) on 127.0.0.1; nothing here uses the machine's DNS.

Each test has its own Instance and smarthosts. A route file is NAME.route in
the instance's folder; a run's outcome is read from what the smarthosts
recorded, `mailq --json` and the log."""

import email
import email.policy
import os
import re
import tempfile
import time
import unittest

import mmtest
from dns_stub import DnsStub
import smarthost
from mmtest import Instance, wait_for
from smarthost import Smarthost

# "Eventually": generous, never a performance assertion.
TIMEOUT = 20


def message(to, subject, frm="joe", extra="", body="Hello over the route.\n"):
    """A message for -t: From, To (a list is joined), Subject, extra header lines."""
    if not isinstance(to, str):
        to = ", ".join(to)
    return f"From: {frm}\nTo: {to}\nSubject: {subject}\n{extra}\n{body}".encode()


def headers_of(data):
    """The header section of a message as the smarthost got it (CRLF lines)."""
    return data.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def subject_of(mbox_message):
    body = mbox_message.split(b"\n", 1)[1] if mbox_message.startswith(b"From ") else mbox_message
    return email.message_from_bytes(body, policy=email.policy.compat32)["Subject"] or ""


class RouteCase(unittest.TestCase):
    """A fresh private instance per test; helpers for routes, smarthosts and runs."""

    def setUp(self):
        self.inst = Instance()
        self.addCleanup(self.inst.close)

    # --- set-up ---

    def smarthost(self, **options):
        sh = Smarthost(**options)
        self.addCleanup(sh.stop)
        return sh

    def route(self, name, sh, text="tls = none\n"):
        """Writes NAME.route with mail_host = sh (a Smarthost, or a port
        number nothing listens on) and returns its path."""
        port = sh if isinstance(sh, int) else sh.port
        return self.inst.write(name + ".route", f'mail_host = "127.0.0.1:{port}"\n' + text)

    def configure(self, text):
        with open(self.inst.conf, "a") as f:
            f.write(text)

    def start(self):
        self.addCleanup(self.stop_checked)
        self.inst.start()

    def stop_checked(self):
        self.assertTrue(self.inst.stop(), "daemons did not stop cleanly:\n" + self.inst.log_text())

    # --- submitting and running ---

    def queue(self, stdin, *args):
        """Queues a message without delivering it (-odq -t -oi); returns its id."""
        r = self.inst.masqmail("-v", "-odq", "-t", "-oi", *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(rb"queued as (\S+)", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        return m.group(1).decode()

    def run_queue(self, *args):
        """masqmail -q, or -qo NAME with args ("-qo", "NAME")."""
        r = self.inst.masqmail(*(args or ("-q",)))
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr!r}\n{self.diagnosis()}")
        return r

    # --- looking ---

    def diagnosis(self):
        return f"queue: {self.inst.mailq_json()}\nlog:\n{self.inst.log_text()}"

    def recipients(self):
        """{address: (message id, recipient dict)} of every recipient of
        the queued messages (delivered and failed ones are listed too)."""
        return {r["address"]: (m["id"], r) for m in self.inst.mailq_json() for r in m["recipients"]}

    def pending(self):
        """The addresses still to be delivered, sorted."""
        return sorted(a for a, (_, r) in self.recipients().items() if r["state"] == "pending")

    def assert_waiting_for_a_route(self, address):
        """address is queued, never attempted, and says why it waits."""
        found = self.recipients().get(address)
        self.assertIsNotNone(found, f"{address} is not queued;\n{self.diagnosis()}")
        r = found[1]
        self.assertEqual(r["state"], "pending", r)
        self.assertEqual(r["attempts"], 0, r)
        self.assertTrue((r["last_error"] or "").startswith("waiting for a route"), r)

    def assert_deferred(self, address, reason=None, attempts=1):
        found = self.recipients().get(address)
        self.assertIsNotNone(found, f"{address} is not queued;\n{self.diagnosis()}")
        r = found[1]
        self.assertEqual((r["state"], r["attempts"]), ("pending", attempts), f"{r}\n{self.diagnosis()}")
        if reason is not None:
            self.assertIn(reason, r["last_error"] or "", r)

    def wait_queue_empty(self):
        self.assertTrue(wait_for(lambda: self.inst.mailq_json() == [], TIMEOUT), self.diagnosis())

    def wait_mbox(self, user, count=1):
        got = wait_for(lambda: len(self.inst.mbox_messages(user)) >= count, TIMEOUT)
        self.assertTrue(got, f"{user}: {len(self.inst.mbox_messages(user))} of {count};\n{self.diagnosis()}")
        return self.inst.mbox_messages(user)

    def delivery_lines(self, qid, address):
        """The remote-deliver log lines for one recipient of one message."""
        return [l for l in self.inst.log_text().splitlines() if f"{qid} to=<{address}> route=" in l]

    def rcpts_seen(self, sh):
        """Every RCPT TO address a smarthost was offered (accepted or not)."""
        return [re.match(r"(?i)RCPT TO:<([^>]*)>", l).group(1) for l in sh.lines()
                if l.upper().startswith("RCPT TO:")]

    def no_auth_sent(self, sh):
        self.assertFalse(any(l.line.upper().startswith("AUTH") for l in sh.log), sh.transcript_text())

    def no_mail_sent(self, sh):
        self.assertEqual(sh.messages, [])
        self.assertFalse(any(l.line.upper().startswith("MAIL") for l in sh.log), sh.transcript_text())


# --- 1. offline, then a connection comes up ---

class OfflineThenOnline(RouteCase):
    def test_mail_waits_offline_and_leaves_only_through_isp1(self):
        sh1, sh2 = self.smarthost(), self.smarthost()
        isp1 = self.route("isp1", sh1)
        isp2 = self.route("isp2", sh2)
        self.configure(f'query_routes.isp1 = "{isp1}"\nquery_routes.isp2 = "{isp2}"\n')
        qid = self.queue(message(["friend@example.org", "bob"], "offline"), "-f", "joe")

        # Offline (no online_query, no -qo): -q delivers the local recipient only.
        self.run_queue("-q")
        self.assertEqual(len(self.wait_mbox("bob")), 1)
        self.assert_waiting_for_a_route("friend@example.org")
        self.assertEqual((sh1.connections, sh2.connections), (0, 0))

        # isp1 comes up: the message leaves through isp1's smarthost, and only then.
        self.run_queue("-qo", "isp1")
        m = sh1.wait_for(1)[0]
        self.assertEqual(m.rcpt_tos, ["friend@example.org"])
        self.assertEqual(m.mail_from, "joe@test.example")
        self.assertIn(b"Subject: offline\r\n", m.data)
        self.assertIn(b"\r\n\r\nHello over the route.\r\n", m.data)
        self.assertEqual(sh2.connections, 0, "isp2 is not up")
        self.wait_queue_empty()
        self.assertEqual(len(self.inst.mbox_messages("bob")), 1, "bob got it once")
        lines = self.delivery_lines(qid, "friend@example.org")
        self.assertEqual(len(lines), 1, self.inst.log_text())
        self.assertRegex(lines[0], re.escape(f"{qid} to=<friend@example.org> route={isp1} ")
                         + re.escape(f"relay=127.0.0.1[127.0.0.1:{sh1.port}] status=sent (250 "))

    def test_qo_leaves_local_recipients_for_the_next_full_run(self):
        sh = self.smarthost()
        self.configure(f'query_routes.isp1 = "{self.route("isp1", sh)}"\n')
        self.queue(message(["friend@example.org", "bob"], "remote only"))
        self.run_queue("-qo", "isp1")
        self.assertEqual(sh.wait_for(1)[0].rcpt_tos, ["friend@example.org"])
        self.assertEqual(self.inst.read_mbox("bob"), b"", "-qo delivers no local mail")
        self.assertEqual(self.pending(), ["bob@test.example"])
        self.run_queue("-q")
        self.wait_mbox("bob")
        self.wait_queue_empty()
        self.assertEqual(len(sh.messages), 1, "the remote recipient was not sent twice")

    def test_online_query_names_the_connection(self):
        sh1, sh2 = self.smarthost(), self.smarthost()
        state = self.inst.write("online", "")
        script = self.inst.write("online-query", f"#!/bin/sh\nexec /bin/cat {state}\n")
        os.chmod(script, 0o755)
        self.configure(f'query_routes.isp1 = "{self.route("isp1", sh1)}"\n'
                       f'query_routes.isp2 = "{self.route("isp2", sh2)}"\n'
                       f'online_query = "{script}"\n')
        self.queue(message(["friend@example.org", "bob"], "first"))

        # Empty output: offline. -q still delivers local mail.
        self.run_queue("-q")
        self.wait_mbox("bob")
        self.assert_waiting_for_a_route("friend@example.org")
        # A name without query_routes: still waiting, nothing attempted.
        self.inst.write("online", "nosuch\n")
        self.run_queue("-q")
        self.assert_waiting_for_a_route("friend@example.org")
        self.assertEqual((sh1.connections, sh2.connections), (0, 0))

        # The first line, blanks trimmed, names the connection: isp2.
        self.inst.write("online", "  isp2 \nisp1\n")
        self.run_queue("-q")
        m = sh2.wait_for(1)[0]
        self.assertEqual(m.rcpt_tos, ["friend@example.org"])
        self.assertEqual(sh1.connections, 0)
        self.wait_queue_empty()

        # The next message, queued under isp2, leaves through isp1 when that is up.
        self.queue(message("other@example.org", "second"))
        self.inst.write("online", "isp1\n")
        self.run_queue("-q")
        self.assertEqual(sh1.wait_for(1)[0].rcpt_tos, ["other@example.org"])
        self.assertEqual(len(sh2.messages), 1)
        self.wait_queue_empty()

    def test_permanent_routes_come_first(self):
        lan, isp = self.smarthost(), self.smarthost()
        self.configure(f'permanent_routes = "{self.route("lan", lan)}"\n'
                       f'query_routes.isp1 = "{self.route("isp1", isp)}"\n')
        # -q without online_query: the permanent route only, at once.
        self.queue(message("friend@example.org", "one"))
        self.run_queue("-q")
        self.assertEqual(len(lan.wait_for(1)), 1)
        # -qo isp1: the permanent route is still tried first and takes it.
        self.queue(message("friend@example.org", "two"))
        self.run_queue("-qo", "isp1")
        self.assertEqual(len(lan.wait_for(2)), 2)
        self.assertEqual(isp.connections, 0)
        self.wait_queue_empty()

    def test_reason_before_the_first_run(self):
        # Queued remote mail that no run has looked at yet: the listing must
        # not claim that remote delivery is missing from the build.
        self.queue(message("friend@example.org", "fresh"))
        r = self.recipients()["friend@example.org"][1]
        self.assertTrue((r["last_error"] or "").startswith("waiting for a route"), r)
        self.assertNotIn("not in this build", r["last_error"], r)


# --- 2. filters ---

class Filters(RouteCase):
    def test_recipient_filters(self):
        lan, isp = self.smarthost(), self.smarthost()
        lan_route = self.route("lan", lan, 'tls = none\nallowed_recipients = "*@lan.example"\n')
        isp_route = self.route("isp1", isp, 'tls = none\ndenied_recipients = "*@secret.example;boss@*"\n')
        self.configure(f'permanent_routes = "{lan_route}"\nquery_routes.isp1 = "{isp_route}"\n')
        self.queue(message(["a@lan.example", "d@LAN.Example", "b@example.org", "c@secret.example",
                            "boss@example.org"], "filters"))
        self.run_queue("-qo", "isp1")
        self.assertEqual(sorted(a.lower() for a in lan.wait_for(1)[0].rcpt_tos), ["a@lan.example", "d@lan.example"])
        self.assertEqual(isp.wait_for(1)[0].rcpt_tos, ["b@example.org"])
        self.assertEqual(sorted(a.lower() for a in self.rcpts_seen(lan)), ["a@lan.example", "d@lan.example"])
        self.assertEqual(self.rcpts_seen(isp), ["b@example.org"], "denied recipients are never offered")
        self.assertEqual(self.pending(), ["boss@example.org", "c@secret.example"])
        self.assert_waiting_for_a_route("c@secret.example")
        self.assert_waiting_for_a_route("boss@example.org")

    def test_sender_filters_and_the_null_sender(self):
        s1, s2 = self.smarthost(), self.smarthost()
        r1 = self.route("s1", s1, 'tls = none\nallowed_senders = "ann;<>"\n')
        r2 = self.route("s2", s2, 'tls = none\ndenied_senders = "joe@*"\n')
        self.configure(f'query_routes.isp1 = "{r1};{r2}"\n')
        self.queue(message("x@example.org", "from ann", frm="ann"), "-f", "ann")
        self.queue(message("x@example.org", "from nobody", frm="MAILER-DAEMON"), "-f", "<>")
        joe = self.queue(message("x@example.org", "from joe"), "-f", "joe")
        self.queue(message("x@example.org", "from bob", frm="bob@other.example"), "-f", "bob@other.example")
        self.run_queue("-qo", "isp1")
        self.assertEqual(sorted(m.mail_from for m in s1.wait_for(2)), ["", "ann@test.example"])
        self.assertEqual([m.mail_from for m in s2.wait_for(1)], ["bob@other.example"])
        self.assertEqual([m["id"] for m in self.inst.mailq_json()], [joe], self.diagnosis())
        self.assert_waiting_for_a_route("x@example.org")
        self.assertEqual((len(s1.messages), len(s2.messages)), (2, 1))

    def test_from_header_filters(self):
        f1, f2 = self.smarthost(), self.smarthost()
        r1 = self.route("f1", f1, 'tls = none\nallowed_from_hdrs = "*@club.example"\n')
        r2 = self.route("f2", f2, 'tls = none\ndenied_from_hdrs = "spam*@*"\n')
        self.configure(f'query_routes.isp1 = "{r1};{r2}"\n')
        self.queue(message("x@example.org", "member", frm='"A Member" <member@Club.Example>'))
        spam = self.queue(message("x@example.org", "spam", frm="spammer@evil.example"))
        self.queue(message("x@example.org", "joe", frm="joe@test.example"))
        self.run_queue("-qo", "isp1")
        self.assertIn(b"Subject: member\r\n", f1.wait_for(1)[0].data)
        self.assertIn(b"Subject: joe\r\n", f2.wait_for(1)[0].data)
        self.assertEqual([m["id"] for m in self.inst.mailq_json()], [spam], self.diagnosis())
        self.assert_waiting_for_a_route("x@example.org")
        self.assertEqual((len(f1.messages), len(f2.messages)), (1, 1))


# --- 3. route order: a deferring route hands over, last_route does not ---

class RouteOrder(RouteCase):
    def test_deferred_recipients_go_to_the_next_route(self):
        busy = self.smarthost(rcpt_replies={"x@corp.example": (451, "4.3.0 busy here")})
        other = self.smarthost()
        closed = mmtest.free_port()  # nothing listens: connection refused
        ra = self.route("a", busy, 'tls = none\nallowed_recipients = "*@corp.example"\n')
        rdown = self.route("down", closed)
        rb = self.route("b", other)
        self.configure(f'query_routes.isp1 = "{ra};{rdown};{rb}"\n')
        qid = self.queue(message(["x@corp.example", "y@corp.example", "z@example.org"], "fall through"))
        self.run_queue("-qo", "isp1")
        self.assertEqual(busy.wait_for(1)[0].rcpt_tos, ["y@corp.example"])
        # Both on the one connection to b: z (refused at "down") and x (451 at a).
        self.assertEqual(sorted(r for m in other.wait_for(2) for r in m.rcpt_tos), ["x@corp.example", "z@example.org"])
        self.assertEqual(other.connections, 1)
        self.wait_queue_empty()
        log = self.inst.log_text()
        self.assertRegex(log, re.escape(f"{qid} to=<x@corp.example> route={ra} ") + r".*status=deferred \(451 ")
        self.assertRegex(log, re.escape(f"{qid} to=<z@example.org> route={rdown} ") + r".*status=deferred")
        self.assertRegex(log, re.escape(f"{qid} to=<x@corp.example> route={rb} ") + r".*status=sent \(250 ")

    def test_last_route_keeps_its_recipients_from_later_routes(self):
        corp = self.smarthost(rcpt_replies={"x@corp.example": (451, "4.3.0 busy here")})
        other = self.smarthost()
        ra = self.route("a", corp, 'tls = none\nallowed_recipients = "*@corp.example"\nlast_route = yes\n')
        rb = self.route("b", other)
        self.configure(f'query_routes.isp1 = "{ra};{rb}"\n')
        self.queue(message(["x@corp.example", "y@corp.example", "z@example.org"], "last route"))
        self.run_queue("-qo", "isp1")
        self.assertEqual(corp.wait_for(1)[0].rcpt_tos, ["y@corp.example"])
        self.assertEqual(other.wait_for(1)[0].rcpt_tos, ["z@example.org"])
        self.assertEqual(self.rcpts_seen(other), ["z@example.org"], "x reached the last route")
        self.assertEqual(self.pending(), ["x@corp.example"])
        self.assert_deferred("x@corp.example", "451")


# --- 4. rewriting per route ---

REWRITE_ROUTE = '''tls = none
allowed_recipients = "*@example.org"
map_return_path_addresses = "joe: joe.bloggs@isp.example"
map_h_from_addresses = "joe: \\"Joe Bloggs\\" <joe.bloggs@isp.example>"
map_h_sender_addresses = "joe: sender@isp.example"
map_h_reply_to_addresses = "joe: reply@isp.example"
map_h_mail_followup_to_addresses = "joe: *@isp.example"
'''

REWRITE_HEADERS = (
    'Sender: joe@test.example\n'
    'Reply-To: "Joe B" <joe>, stranger@elsewhere.example\n'
    'Mail-Followup-To: joe,\n  friend@example.org\n'
    'Cc: joe\n')

# (original, as sent over the rewriting route)
REWRITTEN = (
    (b"From: joe\r\n", b'From: "Joe Bloggs" <joe.bloggs@isp.example>\r\n'),
    (b"Sender: joe@test.example\r\n", b"Sender: sender@isp.example\r\n"),
    (b'Reply-To: "Joe B" <joe>, stranger@elsewhere.example\r\n',
     b'Reply-To: "Joe B" <reply@isp.example>, stranger@elsewhere.example\r\n'),
    (b"Mail-Followup-To: joe,\r\n  friend@example.org\r\n",
     b"Mail-Followup-To: joe@isp.example,\r\n  friend@example.org\r\n"),
)


class Rewriting(RouteCase):
    def test_each_header_map_and_the_return_path_only_in_that_routes_copy(self):
        isp, plain = self.smarthost(), self.smarthost()
        r1 = self.route("isp", isp, REWRITE_ROUTE)
        r2 = self.route("plain", plain, 'tls = none\nallowed_recipients = "*@elsewhere.example"\n')
        self.configure(f'permanent_routes = "{r1};{r2}"\n')
        self.queue(message(["friend@example.org", "other@elsewhere.example", "bob"], "rewrite",
                           extra=REWRITE_HEADERS), "-f", "joe")
        self.run_queue("-q")
        rewritten = isp.wait_for(1)[0]
        original = plain.wait_for(1)[0]
        self.wait_mbox("bob")
        self.wait_queue_empty()

        self.assertEqual(rewritten.rcpt_tos, ["friend@example.org"])
        self.assertEqual(rewritten.mail_from, "joe.bloggs@isp.example")
        self.assertEqual(original.mail_from, "joe@test.example")
        # The other route's copy is the spooled message: every original line.
        for before, after in REWRITTEN:
            self.assertIn(before, original.data)
        # This route's copy differs exactly in the rewritten addresses; To,
        # Cc, the folding and the body are byte-identical.
        expected = original.data
        for before, after in REWRITTEN:
            expected = expected.replace(before, after, 1)
        self.assertEqual(rewritten.data, expected)
        self.assertIn(b"Cc: joe\r\n", rewritten.data)
        # The local copy is untouched too.
        local = self.inst.mbox_messages("bob")[0]
        for before, _ in REWRITTEN:
            self.assertIn(before.replace(b"\r\n", b"\n"), local)
        self.assertRegex(local, rb"(?im)^return-path: <joe@test\.example>$")
        self.assertNotIn(b"isp.example", local)

    def test_map_outgoing_addresses_is_the_fallback_and_the_null_sender_stays(self):
        sh = self.smarthost()
        r = self.route("isp", sh, 'tls = none\nmap_h_from_addresses = "joe: from@isp.example"\n'
                                  'map_outgoing_addresses = "*: *@out.example"\n')
        self.configure(f'query_routes.isp1 = "{r}"\n')
        self.queue(message("friend@example.org", "outgoing",
                           extra="Sender: joe\nReply-To: ann@test.example, friend@example.org\n"), "-f", "joe")
        self.queue(message("friend@example.org", "null sender", frm="MAILER-DAEMON"), "-f", "<>")
        self.queue(message("friend@example.org", "foreign sender", frm="x@elsewhere.example"),
                   "-f", "x@elsewhere.example")
        self.run_queue("-qo", "isp1")
        got = {re.search(rb"Subject: ([^\r]*)", m.data).group(1).decode(): m for m in sh.wait_for(3)}
        self.wait_queue_empty()
        m = got["outgoing"]
        self.assertEqual(m.mail_from, "joe@out.example")
        self.assertIn(b"\r\nFrom: from@isp.example\r\n", m.data)
        self.assertIn(b"\r\nSender: joe@out.example\r\n", m.data)
        self.assertIn(b"\r\nReply-To: ann@out.example, friend@example.org\r\n", m.data)
        self.assertIn(b"\r\nTo: friend@example.org\r\n", m.data)
        self.assertEqual(got["null sender"].mail_from, "", "<> is never rewritten")
        self.assertEqual(got["foreign sender"].mail_from, "x@elsewhere.example", "only local addresses")
        self.assertIn(b"\r\nFrom: x@elsewhere.example\r\n", got["foreign sender"].data)


# --- 5. TLS and AUTH ---

class Tls(RouteCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.TemporaryDirectory(prefix="mm-rd-certs-")
        d = cls.certs.name
        cls.ca = smarthost.make_ca(d)
        cls.cert = smarthost.make_ca_signed_certificate(d, ca=cls.ca)
        cls.wrong = smarthost.make_wrong_name_certificate(d, ca=cls.ca)

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def tls_route(self, sh, tls="starttls", extra=""):
        path = self.route("isp1", sh, f'tls = {tls}\ntls_ca_file = "{self.ca.ca}"\n' + extra)
        self.configure(f'query_routes.isp1 = "{path}"\n')
        return path

    def check_wrong_name(self, sh, tls):
        route = self.tls_route(sh, tls, 'auth_login = "joe"\nauth_secret = "s3cret-4711"\n')
        qid = self.queue(message("friend@example.org", "wrong name"))
        self.run_queue("-qo", "isp1")
        self.no_mail_sent(sh)
        self.no_auth_sent(sh)
        self.assert_deferred("friend@example.org", "verif")
        lines = self.delivery_lines(qid, "friend@example.org")
        self.assertEqual(len(lines), 1, self.inst.log_text())
        self.assertIn(f"route={route} ", lines[0])
        self.assertIn("status=deferred", lines[0])
        self.assertNotIn("s3cret-4711", self.inst.log_text())
        self.assertEqual(self.inst.mbox_messages("root"), [], "a TLS failure never bounces")

    def test_certificate_name_mismatch_defers_without_credentials(self):
        sh = self.smarthost(starttls=True, certificate=self.wrong, auth={"joe": "s3cret-4711"})
        self.check_wrong_name(sh, "starttls")

    def test_certificate_name_mismatch_on_implicit_tls(self):
        sh = self.smarthost(implicit_tls=True, certificate=self.wrong, auth={"joe": "s3cret-4711"})
        self.check_wrong_name(sh, "implicit")

    def test_stripped_starttls_defers_a_route_that_requires_tls(self):
        sh = self.smarthost(starttls=True, certificate=self.cert, advertise={"STARTTLS": False})
        qid = self.queue(message("friend@example.org", "stripped"))
        self.tls_route(sh)
        self.run_queue("-qo", "isp1")
        self.assertGreaterEqual(sh.connections, 1, "the smarthost was reached")
        self.no_mail_sent(sh)
        self.assert_deferred("friend@example.org", "STARTTLS")
        self.assertTrue(any("status=deferred" in l for l in self.delivery_lines(qid, "friend@example.org")),
                        self.inst.log_text())

    def check_auth(self, mechanism, offered=None, auth_name=None):
        sh = self.smarthost(starttls=True, certificate=self.cert, auth={"joe": "s3cret-4711"},
                            auth_required=True, auth_mechanisms=offered)
        self.tls_route(sh, extra='auth_login = "joe"\nauth_secret = "s3cret-4711"\n'
                       + (f"auth_name = {auth_name}\n" if auth_name else ""))
        qid = self.queue(message("friend@example.org", "auth " + mechanism))
        self.run_queue("-qo", "isp1")
        m = sh.wait_for(1)[0]
        self.wait_queue_empty()
        self.assertTrue(m.tls)
        self.assertEqual((m.login, m.auth_mechanism), ("joe", mechanism))
        self.assertEqual(m.rcpt_tos, ["friend@example.org"])
        self.assertFalse(any(l.line.upper().startswith("AUTH") and not l.tls for l in sh.log), sh.transcript_text())
        self.assertNotIn("s3cret-4711", self.inst.log_text())
        self.assertTrue(any("status=sent" in l for l in self.delivery_lines(qid, "friend@example.org")))

    def test_auth_plain_over_starttls(self):
        self.check_auth("PLAIN")  # chosen first of the three offered under TLS

    def test_auth_login_over_starttls(self):
        self.check_auth("LOGIN", offered=["LOGIN"])  # the only one offered

    def test_auth_cram_md5_over_starttls(self):
        self.check_auth("CRAM-MD5", auth_name="cram-md5")  # forced by the route

    def test_rejected_login_defers(self):
        sh = self.smarthost(starttls=True, certificate=self.cert, auth={"joe": "the-right-one"},
                            auth_required=True)
        self.tls_route(sh, extra='auth_login = "joe"\nauth_secret = "wrong-1234"\n')
        self.queue(message("friend@example.org", "bad login"), "-f", "joe")
        self.run_queue("-qo", "isp1")
        self.assertTrue(any(l.line.upper().startswith("AUTH") and l.tls for l in sh.log), sh.transcript_text())
        self.no_mail_sent(sh)
        self.assert_deferred("friend@example.org")
        self.assertEqual(self.inst.mbox_messages("joe"), [], "an AUTH failure never bounces")
        self.assertNotIn("wrong-1234", self.inst.log_text())


# --- 6. per-recipient results ---

class Results(RouteCase):
    def mixed(self):
        sh = self.smarthost(rcpt_replies={"later@example.org": (451, "4.3.0 try later"),
                                          "bad@example.org": (550, "5.1.1 no such user")})
        self.configure(f'query_routes.isp1 = "{self.route("isp1", sh)}"\n')
        qid = self.queue(message(["good@example.org", "later@example.org", "bad@example.org"], "mixed"),
                         "-f", "joe")
        self.run_queue("-qo", "isp1")
        return sh, qid

    def test_mixed_replies_in_one_message(self):
        sh, qid = self.mixed()
        m = sh.wait_for(1)[0]
        self.assertEqual(m.rcpt_tos, ["good@example.org"])
        self.assertEqual(sorted(self.rcpts_seen(sh)), ["bad@example.org", "good@example.org", "later@example.org"])
        bounces = self.wait_mbox("joe")
        self.assertEqual(len(bounces), 1)
        self.assertRegex(bounces[0], rb"(?im)^return-path: <>$")
        self.assertIn(b"bad@example.org", bounces[0])
        self.assertIn(b"550 5.1.1 no such user", bounces[0])
        self.assertNotIn(b"later@example.org>:", bounces[0])
        # Only the deferred one is left to do.
        queue = self.inst.mailq_json()
        self.assertEqual([q["id"] for q in queue], [qid])
        states = {r["address"]: r for r in queue[0]["recipients"]}
        self.assertEqual(states["good@example.org"]["state"], "delivered")
        self.assertNotEqual(states["bad@example.org"]["state"], "pending")
        self.assert_deferred("later@example.org", "451 4.3.0 try later")
        # The bounce went to the local sender here, not through the smarthost.
        self.assertEqual([x.mail_from for x in sh.messages], ["joe@test.example"])
        log = self.inst.log_text()
        for rcpt, status in (("good", "sent"), ("later", "deferred"), ("bad", "bounced")):
            self.assertRegex(log, re.escape(f"{qid} to=<{rcpt}@example.org> ") + r"route=\S+ relay=\S+ "
                             + f"status={status} ")
        # The next run delivers the deferred one and finishes the message.
        sh.rcpt_replies = {}
        self.run_queue("-qo", "isp1")
        self.assertEqual(sh.wait_for(2)[1].rcpt_tos, ["later@example.org"])
        self.wait_queue_empty()
        self.assertEqual(len(self.inst.mbox_messages("joe")), 1, "no second bounce")

    def test_bounce_reports_the_smtp_reply_as_smtp(self):
        # RFC 3464: a failure reported by the remote SMTP server has the
        # diagnostic type "smtp" and its enhanced status code.
        self.mixed()
        bounce = self.wait_mbox("joe")[0]
        self.assertIn(b"Diagnostic-Code: smtp; 550 5.1.1 no such user", bounce)
        self.assertRegex(bounce, rb"(?m)^Status: 5\.1\.1$")


# --- 7. expiry counts only time online ---

class Expiry(RouteCase):
    def test_offline_time_never_expires_mail_online_time_does(self):
        sh = self.smarthost(rcpt_replies={"friend@example.org": (451, "4.3.0 try later")})
        self.configure(f'max_defer_time = "1s"\nquery_routes.isp1 = "{self.route("isp1", sh)}"\n')
        self.queue(message("friend@example.org", "expiry"), "-f", "joe")

        # Offline far longer than max_defer_time: never a bounce.
        self.run_queue("-q")
        time.sleep(2.5)  # time must pass
        self.run_queue("-q")
        self.assert_waiting_for_a_route("friend@example.org")
        self.assertEqual(self.inst.mbox_messages("joe"), [])

        # The first attempt online is deferred; the offline wait does not count.
        self.run_queue("-qo", "isp1")
        self.assertIn("RCPT TO:<friend@example.org>", sh.lines())
        self.assert_deferred("friend@example.org", "451")
        self.assertEqual(self.inst.mbox_messages("joe"), [], "bounced for time spent offline")

        # More than max_defer_time online, then deferred again: it bounces.
        time.sleep(2.5)  # time must pass
        self.run_queue("-qo", "isp1")
        bounces = self.wait_mbox("joe")
        self.wait_queue_empty()
        self.assertEqual(len(bounces), 1)
        self.assertIn(b"friend@example.org", bounces[0])
        self.assertIn("Undelivered", subject_of(bounces[0]))
        self.assertEqual(sh.messages, [])


# --- 8. with the daemons running ---

class Daemons(RouteCase):
    def test_submission_goes_out_at_once_through_a_permanent_route(self):
        sh = self.smarthost()
        route = self.route("lan", sh)
        self.configure(f'permanent_routes = "{route}"\n')
        self.start()
        r = self.inst.masqmail("-oi", "friend@example.org", "bob", stdin=b"Subject: now\n\nat once\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = sh.wait_for(1)[0]
        self.assertEqual(m.rcpt_tos, ["friend@example.org"])
        self.assertIn(b"\r\n\r\nat once\r\n", m.data)
        self.wait_mbox("bob")
        self.wait_queue_empty()
        self.assertRegex(self.inst.log_text(), re.escape(f"to=<friend@example.org> route={route} ") + r".*status=sent")

    def test_qo_asks_the_running_queue_manager(self):
        sh = self.smarthost()
        self.configure(f'query_routes.isp1 = "{self.route("isp1", sh)}"\n')
        self.start()
        r = self.inst.masqmail("-oi", "friend@example.org", "bob", stdin=b"Subject: later\n\nwhen online\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_mbox("bob")
        # qmgr looked for a route, found none, and keeps the message.
        self.assertTrue(wait_for(lambda: (self.recipients().get("friend@example.org", (0, {}))[1]
                                          .get("last_error") or "").startswith("waiting for a route:"), TIMEOUT),
                        self.diagnosis())
        self.assert_waiting_for_a_route("friend@example.org")
        self.assertEqual(sh.connections, 0)
        self.run_queue("-qo", "isp1")
        self.assertEqual(sh.wait_for(1)[0].rcpt_tos, ["friend@example.org"])
        self.wait_queue_empty()
        self.assertEqual(len(self.inst.mbox_messages("bob")), 1)


# --- 9. one connection for the queue ---

class Connection(RouteCase):
    def test_one_connection_carries_every_queued_message(self):
        sh = self.smarthost(rcpt_replies={"refused@example.org": (550, "5.1.1 no such user")})
        self.configure(f'query_routes.isp1 = "{self.route("isp1", sh)}"\n')
        for i in range(4):
            self.queue(message(f"friend{i}@example.org", f"batch {i}"), "-f", "joe")
        self.queue(message("refused@example.org", "refused"), "-f", "joe")  # a failed transaction among them
        self.run_queue("-qo", "isp1")
        got = sh.wait_for(4)
        self.wait_mbox("joe")  # the bounce for refused@
        self.wait_queue_empty()
        self.assertEqual(sorted(r for m in got for r in m.rcpt_tos), [f"friend{i}@example.org" for i in range(4)])
        self.assertEqual(sh.connections, 1, sh.transcript_text())
        self.assertEqual({m.connection for m in got}, {1})
        lines = sh.lines()
        self.assertEqual(sum(1 for l in lines if l.upper().startswith(("EHLO", "HELO"))), 1, lines)
        self.assertEqual(sum(1 for l in lines if l.upper().startswith("MAIL FROM")), 5, lines)
        # RSET after the failed transaction (before the next MAIL), never
        # after one that succeeded.
        transactions = []
        for l in lines:
            if l.upper().startswith("MAIL FROM"):
                transactions.append([])
            if transactions:
                transactions[-1].append(l.upper())
        for i, t in enumerate(transactions):
            failed = "RCPT TO:<REFUSED@EXAMPLE.ORG>" in t
            if failed and i + 1 < len(transactions):
                self.assertIn("RSET", t, lines)
            if not failed:
                self.assertNotIn("RSET", t, lines)


class PipeRoute(RouteCase):
    """pipe = COMMAND: run once per recipient with the route's copy on stdin
    (no shell; ${rcpt} expanded after splitting), pipe_fromline adds the
    mbox From_ line; exit 0 delivers, anything else defers, or bounces with
    connect_error_fail."""

    SCRIPT = (
        "import os, sys\n"
        "out, status = sys.argv[1], int(sys.argv[3])\n"
        "with open(os.path.join(out, sys.argv[2]), 'wb') as f:\n"
        "    f.write(sys.stdin.buffer.read())\n"
        "sys.exit(status)\n")

    def pipe_route(self, status, extra=""):
        out = self.inst.path("piped")
        os.makedirs(out, exist_ok=True)
        script = self.inst.write("pipe.py", self.SCRIPT)
        route = self.inst.write("pipe.route", f'pipe = "/usr/bin/python3 {script} {out} ${{rcpt}} {status}"\n'
                                "pipe_fromline = true\n" + extra)
        self.configure(f'permanent_routes = "{route}"\n')
        return out

    def test_each_recipient_gets_the_message_with_a_from_line(self):
        out = self.pipe_route(0, 'map_h_from_addresses = "joe: Joe <joe@isp.example>"\n')
        self.queue(message(["friend@example.org", "pal@example.net"], "piped"), "-f", "joe")
        self.run_queue()
        self.wait_queue_empty()
        for rcpt in ("friend@example.org", "pal@example.net"):
            with open(os.path.join(out, rcpt), "rb") as f:
                data = f.read()
            self.assertTrue(data.startswith(b"From joe@test.example "), data[:80])
            self.assertIn(b"From: Joe <joe@isp.example>\n", data)  # the route's rewriting applies
            self.assertIn(b"Subject: piped\n", data)

    def test_failing_command_defers_or_bounces_with_connect_error_fail(self):
        self.pipe_route(1)
        self.queue(message("friend@example.org", "deferred"), "-f", "joe")
        self.run_queue()
        self.assert_deferred("friend@example.org")
        self.assertEqual(self.inst.mbox_messages("joe"), [])
        with open(self.inst.path("pipe.route"), "a") as f:
            f.write("connect_error_fail = true\n")
        self.run_queue()
        self.wait_queue_empty()
        bounces = self.wait_mbox("joe")
        self.assertIn(b"friend@example.org", bounces[0])


class MailHostList(RouteCase):
    def test_second_smarthost_when_the_first_is_down_or_busy(self):
        dead = mmtest.free_port()
        busy = self.smarthost(greeting_reply=(421, "4.3.2 too busy"))
        sh = self.smarthost()
        hosts = [f"127.0.0.1:{dead}", f"127.0.0.1:{busy.port}", f"127.0.0.1:{sh.port}"]
        route = self.inst.write("list.route", f'mail_host = "{"; ".join(hosts)}"\ntls = none\n')
        self.configure(f'permanent_routes = "{route}"\n')
        self.queue(message("friend@example.org", "fallback"))
        self.run_queue()
        self.wait_queue_empty()
        self.assertEqual(sh.messages[0].rcpt_tos, ["friend@example.org"])
        self.assertIn(f"relay=127.0.0.1[127.0.0.1:{sh.port}]", self.inst.log_text())
        r = self.inst.masqmail("--explain", "friend@example.org")
        self.assertIn(f"else 127.0.0.1:{sh.port}", r.stdout.decode())


# --- direct delivery to the mail exchangers (no mail_host), DNS from a stub ---

class Direct(RouteCase):
    """A route without mail_host: each recipient domain's MX hosts in
    preference order, from dns_stub.py on 127.0.0.1 (dns_server), on the
    route's smtp_port (the test smarthost's)."""

    def direct_route(self, port, text="tls = none\n"):
        return self.inst.write("direct.route", f"smtp_port = {port}\n" + text)

    def test_mx_order_and_fallback_to_the_next_exchanger(self):
        dead = mmtest.free_port()  # nothing listens there: mx1 refuses
        sh = self.smarthost()
        with DnsStub(records={
                "example.org": {"MX": [(10, "mx1.example.org"), (20, "mx2.example.org")]},
                "mx1.example.org": {"A": ["127.0.0.2"]},
                "mx2.example.org": {"A": ["127.0.0.1"]},
                "other.example": {"A": ["127.0.0.1"]},  # no MX: implicit MX
        }) as dns:
            # mx1 resolves to 127.0.0.2, where nothing listens on the smarthost's port
            route = self.direct_route(sh.port)
            self.configure(f'permanent_routes = "{route}"\n' + dns.config_line() + "\n")
            self.queue(message("friend@example.org", "mx"))
            self.queue(message("pal@other.example", "implicit"))
            self.run_queue()
            self.wait_queue_empty()
            self.assertEqual(sorted(r for m in sh.messages for r in m.rcpt_tos),
                             ["friend@example.org", "pal@other.example"])
            asked = dns.names_asked("MX")
            self.assertIn("example.org", asked)
            self.assertIn("other.example", asked)
        self.assertIn("relay=mx2.example.org[127.0.0.1:", self.inst.log_text())
        del dead

    def test_dns_failure_defers_and_null_mx_bounces(self):
        sh = self.smarthost()
        with DnsStub(records={"broken.example": "SERVFAIL", "gone.example": "NXDOMAIN",
                              "nomail.example": {"MX": [(0, ".")]}}) as dns:
            route = self.direct_route(sh.port)
            self.configure(f'permanent_routes = "{route}"\n' + dns.config_line() + "\n")
            self.queue(message("a@broken.example", "servfail"), "-f", "joe")
            self.queue(message("b@gone.example", "nxdomain"), "-f", "joe")
            self.queue(message("c@nomail.example", "null mx"), "-f", "joe")
            self.run_queue()
            self.assert_deferred("a@broken.example")
            self.assert_deferred("b@gone.example")
            self.assertNotIn("c@nomail.example", self.pending())
            bounces = self.wait_mbox("joe")
        self.assertEqual(sh.messages, [])
        self.assertEqual(len(bounces), 1, bounces)
        self.assertIn(b"c@nomail.example", bounces[0])
        self.assertIn(b"5.1.10", bounces[0])

    def test_domain_literal_needs_no_dns(self):
        sh = self.smarthost()
        with DnsStub(records={}) as dns:
            route = self.direct_route(sh.port)
            self.configure(f'permanent_routes = "{route}"\n' + dns.config_line() + "\n")
            self.queue(message("friend@[127.0.0.1]", "literal"))
            self.run_queue()
            self.wait_queue_empty()
            self.assertEqual(dns.queries, [])
        self.assertEqual(sh.messages[0].rcpt_tos, ["friend@[127.0.0.1]"])


if __name__ == "__main__":
    mmtest.main()
