#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Migration: an /etc/masqmail of masqmail 0.3.5 and one of masqmail 1.0 work
as they are. --check-config names every deprecated or unknown option of the
main file and of each route file with file:line and its replacement, and
exits 0 for warnings only (78 only for errors); then the old configuration
delivers: mail queued, -qo NAME (and online_file's connection name with -q)
sends it through the route's smarthost (aiosmtpd, smarthost.py) with the
route's rewriting. Only the paths are changed, to a temporary folder (and
pid_dir added, so that a private instance does not touch /var/run)."""

import re
import unittest

import mmtest
from mmtest import Instance, wait_for
from smarthost import Smarthost

TIMEOUT = 20


def line_of(path, text):
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if text.encode() in line:
                return number
    raise AssertionError(f"{text!r} not in {path}")


def message(to, subject, frm="joe"):
    if not isinstance(to, str):
        to = ", ".join(to)
    return f"From: {frm}\nTo: {to}\nSubject: {subject}\n\nSent from an old config.\n".encode()


class OldConfig(unittest.TestCase):
    """An instance whose masqmail.conf is replaced by an old one; helpers to
    check its warnings and to run its queue."""

    def setUp(self):
        self.inst = Instance()
        self.addCleanup(self.inst.close)

    def smarthost(self):
        sh = Smarthost()
        self.addCleanup(sh.stop)
        return sh

    def paths(self):
        """The lines a private instance needs, as an admin would rewrite them."""
        root = self.inst.root
        return (f'spool_dir = "{root}/spool"\nlog_dir = "{root}/log"\nlock_dir = "{root}/lock"\n'
                f'mail_dir = "{root}/mail"\npid_dir = "{root}/run"\n'
                f'listen_addresses = "127.0.0.1:{self.inst.port}"\nrun_as_user = true\n')

    def write_conf(self, text):
        with open(self.inst.conf, "w") as f:
            f.write(text)

    def check_config(self):
        r = self.inst.masqmail("--check-config")
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    def assert_warnings(self, out, expected):
        """expected: (path, marker, text): the warning "path:LINE: text..."
        where LINE holds marker. Every warning printed must be expected."""
        printed = [l for l in out.splitlines() if re.match(r"^/\S+:\d+: ", l)]
        for path, marker, text in expected:
            want = f"{path}:{line_of(path, marker)}: {text}"
            self.assertTrue(any(l.startswith(want) for l in printed), f"missing: {want}\n{out}")
        self.assertEqual(len(printed), len(expected), out)

    def queue(self, stdin, *args):
        r = self.inst.masqmail("-v", "-odq", "-t", "-oi", *args, stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        return re.search(rb"queued as (\S+)", r.stderr).group(1).decode()

    def run_queue(self, *args):
        r = self.inst.masqmail(*args)
        self.assertEqual(r.returncode, 0, f"{args}: {r.stderr!r}\n{self.diagnosis()}")

    def diagnosis(self):
        return f"queue: {self.inst.mailq_json()}\nlog:\n{self.inst.log_text()}"

    def pending(self):
        return sorted(r["address"] for m in self.inst.mailq_json() for r in m["recipients"]
                      if r["state"] == "pending")


class DialupHost035(OldConfig):
    """masqmail 0.3.5 on a dial-up host with two ISPs, a LAN server and
    online detection through the file its ip-up script writes."""

    def write_config(self, isp1_port, isp2_port, lan_port):
        root = self.inst.root
        self.online = self.inst.path("masqmail-route")
        self.isp1 = self.inst.write("isp1.route", f"""\
# Route for the first provider (masqmail 0.3)
protocol = smtp
mail_host = "127.0.0.1:{isp1_port}"
allowed_mail_locals = "joe;root"
set_h_from_domain = isp1.example
set_return_path_domain = isp1.example
expand_h_sender_address = true
resolve_list = "dns_mx;dns_a;byname"
""")
        self.isp2 = self.inst.write("isp2.route", f"""\
# Route for the second provider
protocol = smtp
mail_host = "127.0.0.1:{isp2_port}"
allowed_return_paths = "joe@dialup.home.arpa;root@dialup.home.arpa"
not_allowed_rcpt_domains = "home.arpa"
map_h_from_addresses = "joe: Joe Bloggs <joe@isp2.example>"
map_return_path_addresses = "joe: joe@isp2.example"
do_ssl = false
""")
        self.lan = self.inst.write("lan.route", f"""\
# The server in the LAN takes its own mail at once
mail_host = "127.0.0.1:{lan_port}"
connect_error_fail = true
""")
        aliases = self.inst.write("aliases", "postmaster: root\nroot: joe\n")
        self.write_conf(f"""\
# /etc/masqmail/masqmail.conf of a dial-up host, masqmail 0.3.5
host_name = dialup.home.arpa
local_hosts = "localhost;dialup;dialup.home.arpa"
local_nets = "*.home.arpa"
local_net_route = "{self.lan}"
{self.paths()}
alias_file = {aliases}
alias_local_caseless = true
do_queue = false
remote_port = 25

connect_route.isp1 = "{self.isp1}"
online_routes.isp2 = "{self.isp2}"
online_detect = file
online_file = {self.online}

max_defer_time = 4d
warn_intervals = "1h;4h;8h;1d;2d;3d"
""")

    def test_check_config_names_every_old_option_and_exits_0(self):
        self.write_config(2501, 2502, 2503)
        code, out = self.check_config()
        self.assertEqual(code, 0, out)
        conf = self.inst.conf
        self.assert_warnings(out, [
            (conf, "local_nets", "'local_nets' is deprecated, use 'allowed_recipients'; limits the routes of "
                                 "local_net_route"),
            (conf, "local_net_route", "'local_net_route' is deprecated, use 'permanent_routes'; its routes are "
                                      "added to permanent_routes"),
            (conf, "alias_local_caseless", "'alias_local_caseless' is deprecated, use 'caseless_matching'"),
            (conf, "remote_port", "'remote_port' is deprecated and ignored: the port of a smarthost is part of "
                                  "the route's mail_host"),
            (conf, "connect_route", "'connect_route.isp1' is deprecated, use 'query_routes.isp1'"),
            (conf, "online_routes", "'online_routes.isp2' is deprecated, use 'query_routes.isp2'"),
            (conf, "online_detect", "'online_detect' is deprecated, use 'online_query'; 'file' chooses"),
            (conf, "online_file", f"'online_file' is deprecated, use 'online_query'; read as "
                                  f"online_query = \"/bin/cat {self.online}\""),
            (self.isp1, "protocol", "'protocol' is deprecated and ignored: a route delivers by SMTP unless "
                                    "'pipe' is set"),
            (self.isp1, "allowed_mail_locals", "'allowed_mail_locals' is deprecated, use 'allowed_senders'"),
            (self.isp1, "set_h_from_domain", "'set_h_from_domain' is deprecated, use 'map_h_from_addresses'; "
                                             "read as map_h_from_addresses = \"*: *@isp1.example\""),
            (self.isp1, "set_return_path_domain", "'set_return_path_domain' is deprecated, use "
                                                  "'map_return_path_addresses'; read as "
                                                  "map_return_path_addresses = \"*: *@isp1.example\""),
            (self.isp1, "expand_h_sender_address", "'expand_h_sender_address' is deprecated and ignored: "),
            (self.isp1, "resolve_list", "'resolve_list': 'dns_a' is deprecated, use 'dns_mx'"),
            (self.isp2, "protocol", "'protocol' is deprecated and ignored"),
            (self.isp2, "allowed_return_paths", "'allowed_return_paths' is deprecated, use 'allowed_senders'"),
            (self.isp2, "not_allowed_rcpt_domains", "'not_allowed_rcpt_domains' is deprecated, use "
                                                    "'denied_recipients'"),
            (self.isp2, "do_ssl", "'do_ssl' is deprecated and ignored"),
        ])
        self.assertIn(f"{conf}: ok (3 route files, 1 alias file, 18 warnings)", out)

    def test_a_real_error_still_gives_78_with_file_and_line(self):
        self.write_config(2501, 2502, 2503)
        with open(self.isp1, "a") as f:
            f.write("set_h_reply_to_domain = \"not a domain\"\n")
        with open(self.inst.conf, "a") as f:
            f.write("max_defer_time = 4\nfrobnicate = yes\n")
        code, out = self.check_config()
        self.assertEqual(code, 78, out)
        conf = self.inst.conf
        self.assertIn(f"{conf}:{line_of(conf, 'max_defer_time = 4' + chr(10))}: 'max_defer_time': interval "
                      "needs a unit", out)
        self.assertIn(f"{conf}:{line_of(conf, 'frobnicate')}: unknown option 'frobnicate' ignored", out)
        self.assertIn(f"{self.isp1}:{line_of(self.isp1, 'set_h_reply_to_domain')}: 'set_h_reply_to_domain': "
                      "not a valid domain", out)

    def test_the_old_config_delivers_through_each_isp_with_its_rewriting(self):
        isp1, isp2, lan = self.smarthost(), self.smarthost(), self.smarthost()
        self.write_config(isp1.port, isp2.port, lan.port)

        # Offline: queued. -qo isp1 (what ip-up runs): the LAN server gets
        # only its own recipient (local_nets), isp1 the rest, rewritten by
        # set_h_from_domain and set_return_path_domain; bob waits for -q.
        self.queue(message(["friend@example.org", "alice@server.home.arpa", "bob"], "via isp1"), "-f", "joe")
        self.run_queue("-qo", "isp1")
        m = isp1.wait_for(1)[0]
        self.assertEqual(m.rcpt_tos, ["friend@example.org"])
        self.assertEqual(m.mail_from, "joe@isp1.example")
        self.assertRegex(m.data, rb"\r\nFrom: joe@isp1\.example\r\n")
        got = lan.wait_for(1)[0]
        self.assertEqual(got.rcpt_tos, ["alice@server.home.arpa"])
        self.assertEqual(got.mail_from, "joe@dialup.home.arpa", "the LAN route rewrites nothing")
        self.assertEqual(isp2.connections, 0)
        self.assertEqual(self.pending(), ["bob@dialup.home.arpa"], self.diagnosis())

        # online_detect = file: the file the ip-up script writes names the
        # connection for a full run (-q), which also delivers bob's copy.
        with open(self.online, "w") as f:
            f.write("isp2\n")
        self.queue(message(["friend@example.org"], "via isp2"), "-f", "joe")
        self.run_queue("-q")
        m = isp2.wait_for(1)[0]
        self.assertEqual(m.mail_from, "joe@isp2.example")
        self.assertIn(b"\r\nFrom: Joe Bloggs <joe@isp2.example>\r\n", m.data)
        self.assertIn(b"Subject: via isp2", m.data)
        self.assertTrue(wait_for(lambda: self.inst.mailq_json() == [], TIMEOUT), self.diagnosis())
        self.assertEqual(len(self.inst.mbox_messages("bob")), 1)
        self.assertEqual(len(isp1.messages), 1, "isp1 was not online the second time")


class Laptop10(OldConfig):
    """masqmail 1.0 on a laptop: a permanent route into the LAN and a
    smarthost route for the WLAN connection, chosen by online_query."""

    def write_config(self, lan_port, isp_port, extra=""):
        self.online = self.inst.write("online", "")
        self.lan = self.inst.write("lan.route", f"""\
mail_host = "127.0.0.1:{lan_port}"
allowed_recipients = "*@*.lan.example;*@lan.example"
last_route = true
connect_error_fail = true
""")
        self.isp = self.inst.write("smarthost.route", f"""\
mail_host = "127.0.0.1:{isp_port}"
helo_name = laptop.example.net
do_pipelining = true
resolve_list = "dns_mx;byname"
map_return_path_addresses = "joe: joe.bloggs@provider.example"
map_h_from_addresses = "joe: \\"Joe Bloggs\\" <joe.bloggs@provider.example>"
map_h_reply_to_addresses = "joe: joe.bloggs@provider.example"
""")
        aliases = self.inst.write("aliases", "postmaster: root\nroot: joe\n")
        self.write_conf(f"""\
# /etc/masqmail/masqmail.conf of a laptop, masqmail 1.0
host_name = laptop.example.net
local_hosts = "localhost;laptop;laptop.example.net"
{self.paths()}
permanent_routes = "{self.lan}"
query_routes.wlan = "{self.isp}"
online_query = "/bin/cat {self.online}"
alias_file = {aliases}
caseless_matching = true
mbox_default = mbox
{extra}""")

    def test_a_1_0_config_checks_clean(self):
        self.write_config(2501, 2502)
        code, out = self.check_config()
        self.assertEqual(code, 0, out)
        self.assert_warnings(out, [])
        self.assertIn(f"{self.inst.conf}: ok (2 route files, 1 alias file, 0 warnings)", out)

    def test_an_unknown_option_is_a_warning_not_an_error(self):
        self.write_config(2501, 2502, extra="use_ipv6 = yes\n")
        with open(self.isp, "a") as f:
            f.write("smtp_timeout = 30s\n")
        code, out = self.check_config()
        self.assertEqual(code, 0, out)
        self.assert_warnings(out, [
            (self.inst.conf, "use_ipv6", "unknown option 'use_ipv6' ignored"),
            (self.isp, "smtp_timeout", "unknown option 'smtp_timeout' ignored"),
        ])

    def test_the_1_0_config_delivers_through_lan_and_smarthost(self):
        lan, isp = self.smarthost(), self.smarthost()
        self.write_config(lan.port, isp.port)
        self.queue(message(["ann@files.lan.example", "friend@example.org"], "from the laptop"), "-f", "joe")
        self.run_queue("-qo", "wlan")
        got = lan.wait_for(1)[0]
        self.assertEqual(got.rcpt_tos, ["ann@files.lan.example"])
        self.assertEqual(got.mail_from, "joe@laptop.example.net")
        m = isp.wait_for(1)[0]
        self.assertEqual(m.rcpt_tos, ["friend@example.org"], "last_route kept ann off the smarthost")
        self.assertEqual(m.mail_from, "joe.bloggs@provider.example")
        self.assertIn(b"\r\nFrom: \"Joe Bloggs\" <joe.bloggs@provider.example>\r\n", m.data)
        self.assertTrue(wait_for(lambda: self.inst.mailq_json() == [], TIMEOUT), self.diagnosis())


if __name__ == "__main__":
    mmtest.main()
