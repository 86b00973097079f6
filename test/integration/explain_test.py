#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""masqmail --explain ADDRESS [-f SENDER]: alias expansion, local or remote,
the route each remote address would take now (online_query decides which
connection is up), its smarthost, and the rewriting of the sender. Nothing
is sent or queued."""
import os
import unittest

import mmtest
from mmtest import Instance


class Explain(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()
        self.addCleanup(self.inst.close)
        i = self.inst
        self.lan = i.write("lan.route", 'allowed_recipients = "*@lan.example"\nmail_host = "192.0.2.1"\n'
                                        'tls = none\nlast_route = true\n')
        self.isp = i.write("isp1.route", 'mail_host = "smtp.isp1.example:587"\ntls = starttls\n'
                                         'auth_login = "joe"\nauth_secret = "hunter2"\n'
                                         'map_return_path_addresses = "joe: joe.bloggs@isp1.example"\n'
                                         'map_h_from_addresses = "joe: \\"Joe B\\" <joe.bloggs@isp1.example>"\n')
        os.chmod(self.isp, 0o600)
        i.write("aliases", 'team: bob, carol@lan.example, friend@example.org\nnobody: "|/bin/true"\n')
        self.online = i.write("online", "")
        with open(i.conf, "a") as f:
            f.write(f'alias_file = "{i.path("aliases")}"\n'
                    f'permanent_routes = "{self.lan}"\n'
                    f'query_routes.isp1 = "{self.isp}"\n'
                    f'online_query = "/bin/cat {self.online}"\n')

    def explain(self, *args):
        r = self.inst.masqmail("--explain", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def test_offline_only_permanent_routes(self):
        out = self.explain("team", "-f", "joe")
        self.assertIn("team@test.example -> bob@test.example\n  local: mbox " + self.inst.path("mail", "bob"), out)
        self.assertIn("/bin/cat printed nothing: offline (online_query)", out)
        self.assertIn(f"<carol@lan.example>:\n  route {self.lan}: smarthost 192.0.2.1:25, TLS none", out)
        self.assertIn("<friend@example.org>:\n", out)
        self.assertIn("no route takes it now: it stays queued", out)
        self.assertNotIn("hunter2", out)

    def test_online_route_smarthost_and_rewrites(self):
        with open(self.online, "w") as f:
            f.write("isp1\n")
        out = self.explain("team", "-f", "joe")
        self.assertIn("online: isp1 (online_query says so)", out)
        self.assertIn(f"route {self.isp}: not taken: an earlier last_route route took it", out)
        self.assertIn(f"route {self.isp}: smarthost smtp.isp1.example:587, TLS starttls (verified), AUTH as joe",
                      out)
        self.assertIn("rewrites the sender in Return-Path: joe@test.example -> joe.bloggs@isp1.example", out)
        self.assertIn('rewrites the sender in From: joe@test.example -> "Joe B" <joe.bloggs@isp1.example>', out)
        self.assertNotIn("hunter2", out)
        # Another sender is not rewritten.
        self.assertNotIn("rewrites", self.explain("friend@example.org", "-f", "alice"))

    def test_local_pipe_and_unknown_connection(self):
        out = self.explain("nobody")
        self.assertIn("local: the command /bin/true", out)
        with open(self.online, "w") as f:
            f.write("isp9\n")
        out = self.explain("x@example.org")
        self.assertIn("there is no query_routes.isp9", out)

    def test_bad_address_and_alias_errors(self):
        r = self.inst.masqmail("--explain", "a@@b")
        self.assertEqual(r.returncode, 65, r)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        with open(self.inst.path("aliases"), "a") as f:
            f.write("loop1: loop2\nloop2: loop1\n")
        out = self.explain("loop1")
        self.assertIn("alias loop", out)
        self.assertIn("would fail", out)
        self.assertEqual(os.listdir(self.inst.path("spool")), [], "nothing queued")


if __name__ == "__main__":
    mmtest.main()
