# SPDX-License-Identifier: GPL-2.0-or-later
"""masqmail --check-config: bad configuration is refused with file:line and a
reason (exit 78); a clean one with routes and aliases exits 0, warnings too."""

import os
import unittest

import mmtest
from mmtest import MASQMAIL, Instance, run


def line_of(path, text):
    """The 1-based number of the first line of `path` containing `text`."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if text.encode() in line:
                return number
    raise AssertionError(f"{text!r} not in {path}")


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.inst = None

    def tearDown(self):
        if self.inst:
            self.inst.close()

    def check(self, extra_conf):
        self.inst = Instance(extra_conf=extra_conf)
        r = self.inst.masqmail("--check-config")
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    def assert_refused(self, extra_conf, marker, reason):
        code, out = self.check(extra_conf)
        self.assertEqual(code, 78, out)
        line = line_of(self.inst.conf, marker)
        self.assertIn(f"{self.inst.conf}:{line}: {reason}", out)

    def test_unterminated_quote_is_reported_where_it_opened(self):
        self.assert_refused('online_query = "/bin/cat /x\nmail_dir = /tmp\n',
                            "online_query", "unterminated quote in the value of 'online_query'")

    def test_boolean_y_is_not_a_boolean(self):
        self.assert_refused("do_relay = y\n", "do_relay", "'do_relay': not a boolean: 'y'")

    def test_interval_without_unit(self):
        self.assert_refused("max_defer_time = 30\n", "max_defer_time",
                            "'max_defer_time': interval needs a unit: s, m, h, d or w")

    def test_list_entry_naming_a_missing_file(self):
        self.inst = Instance()
        missing = self.inst.path("no-such-list")
        self.inst.close()
        self.assert_refused(f'local_hosts = "localhost;{missing}"\n', "local_hosts",
                            f"'local_hosts': list file '{missing}': cannot read: No such file or directory")

    def test_one_mebibyte_line(self):
        self.assert_refused("# " + "x" * (1 << 20) + "\n", "# xxx", "line too long")

    def test_missing_equals_sign(self):
        self.assert_refused("do_queue yes\n", "do_queue", "missing '=' after 'do_queue'")

    def test_missing_config(self):
        self.inst = Instance()
        r = run([MASQMAIL, "-C", self.inst.path("nope.conf"), "--check-config"])
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{self.inst.path('nope.conf')}: cannot read: No such file or directory".encode(),
                      r.stdout + r.stderr)

    def test_empty_file_lacks_host_name(self):
        self.inst = Instance()
        empty = self.inst.write("empty.conf", "")
        r = run([MASQMAIL, "-C", empty, "--check-config"])
        self.assertEqual(r.returncode, 78)
        self.assertIn(b"empty.conf: 'host_name' is not set", r.stdout + r.stderr)

    def test_crlf_config_is_accepted(self):
        self.inst = Instance()
        with open(self.inst.conf) as f:
            text = f.read()
        with open(self.inst.conf, "w", newline="") as f:
            f.write(text.replace("\n", "\r\n"))
        r = self.inst.masqmail("--check-config")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_warnings_do_not_fail(self):
        self.inst = Instance()
        route = self.inst.write("dsl.route", "protocol = smtp\n")
        with open(self.inst.conf, "a") as f:
            f.write(f'online_routes.dsl = "{route}"\nfrobnicate = 1\nremote_port = 25\n')
        r = self.inst.masqmail("--check-config")
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 0, out)
        conf = self.inst.conf
        self.assertIn(f"{conf}:{line_of(conf, 'online_routes')}: 'online_routes.dsl' is deprecated, "
                      "use 'query_routes.dsl'", out)
        self.assertIn(f"{conf}:{line_of(conf, 'frobnicate')}: unknown option 'frobnicate' ignored", out)
        self.assertIn(f"{conf}:{line_of(conf, 'remote_port')}: 'remote_port' is deprecated and ignored: ", out)
        self.assertIn(f"{route}:1: 'protocol' is deprecated and ignored", out)
        self.assertIn("ok (1 route file, 0 alias files, 4 warnings)", out)

    def test_clean_config_with_routes_and_aliases(self):
        self.inst = Instance()
        secret = self.inst.write("secret", "pw\n")
        os.chmod(secret, 0o600)
        isp = self.inst.write("isp.route", f'mail_host = "smtp.example.org:587"\ntls = starttls\n'
                                           f'auth_login = joe\nauth_secret_file = "{secret}"\n'
                                           'allowed_senders = "joe@*;<>"\n'
                                           'map_return_path_addresses = "joe: joe@example.org"\n'
                                           'map_h_from_addresses = "joe: \\"Joe\\" <joe@example.org>;'
                                           ' *: *@example.org"\n')
        lan = self.inst.write("lan.route", 'allowed_recipients = "*@*.lan"\nlast_route = yes\n')
        aliases = self.inst.write("aliases", "postmaster: root\nroot: \\root, joe\n"
                                             "list: a, b,\n  c@example.org\n")
        globs = self.inst.write("globaliases", "*@old.example: \\joe\n")
        with open(self.inst.conf, "a") as f:
            f.write(f'permanent_routes = "{lan}"\nquery_routes.isp = "{isp};{lan}"\n'
                    f'alias_file = "{aliases}"\nglobalias_file = "{globs}"\n')
        r = self.inst.masqmail("--check-config")
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("ok (2 route files, 2 alias files, 0 warnings)", out)

    def test_route_file_errors_name_the_route_file(self):
        self.inst = Instance()
        route = self.inst.write("bad.route", "mail_host = smtp.example.org\nresolve_list = dns_srv\n"
                                             "last_route = y\n")
        with open(self.inst.conf, "a") as f:
            f.write(f'query_routes.isp = "{route}"\n')
        r = self.inst.masqmail("--check-config")
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 78, out)
        self.assertIn(f"{route}:2: 'resolve_list': unknown resolve method 'dns_srv'", out)
        self.assertIn(f"{route}:3: 'last_route': not a boolean: 'y'", out)

    def test_missing_route_file(self):
        self.inst = Instance()
        route = self.inst.path("none.route")
        with open(self.inst.conf, "a") as f:
            f.write(f'permanent_routes = "{route}"\n')
        r = self.inst.masqmail("--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{route}: cannot read: No such file or directory".encode(), r.stdout + r.stderr)

    def test_alias_file_errors_name_the_alias_file(self):
        self.inst = Instance()
        aliases = self.inst.write("aliases", "root: joe\nno colon\nbob: |procmail\n")
        globs = self.inst.write("globaliases", "*@x: \"open\n")
        with open(self.inst.conf, "a") as f:
            f.write(f'alias_file = "{aliases}"\nglobalias_file = "{globs}"\n')
        r = self.inst.masqmail("--check-config")
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 78, out)
        self.assertIn(f"{aliases}:2: missing ':' after the alias name", out)
        self.assertIn(f"{aliases}:3: bad pipe item '|procmail'", out)
        self.assertIn(f"{globs}:1: unterminated quote in alias item", out)


if __name__ == "__main__":
    mmtest.main()
