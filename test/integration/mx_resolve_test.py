#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Direct delivery's name resolution (libmm's resolve_mail_exchangers),
driven by the mx-lookup test tool against dns_stub.py, the name server of
the config's dns_server: MX order and shuffling, the additional section,
implicit MX, null MX (permanent), SERVFAIL, NXDOMAIN, no answer and garbled
answers (temporary), a truncated UDP answer asked again over TCP, [host],
domain literals, and the byname method. Nothing here asks the machine's
resolver: only the stub, address literals, or the hosts file's localhost."""
import os
import subprocess
import tempfile
import time
import unittest

import mmtest
from dns_stub import DnsStub

MX_LOOKUP = os.path.join(mmtest.BUILD, "test", "mx-lookup")
EX_TEMPFAIL, EX_DATAERR = 75, 65


class MxLookup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="mm-mx-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def lookup(self, dns, domain, methods="dns_mx", timeout_ms=2000):
        """(exit status, [(preference, host, [addresses])] or the error line)."""
        conf = os.path.join(self.tmp.name, "masqmail.conf")
        with open(conf, "w") as f:
            f.write('host_name = "laptop.example"\n' + (dns.config_line() if dns else ""))
        r = subprocess.run([MX_LOOKUP, conf, domain, methods, str(timeout_ms)],
                           capture_output=True, timeout=120)
        out = r.stdout.decode()
        if r.returncode != 0:
            return r.returncode, out.strip()
        hosts = []
        for line in out.splitlines():
            pref, host, *addresses = line.split(" ")
            hosts.append((int(pref), host, addresses))
        return 0, hosts

    def assert_error(self, result, status, kind, *words):
        code, line = result
        self.assertEqual(code, EX_TEMPFAIL if kind == "temporary" else EX_DATAERR, line)
        self.assertTrue(line.startswith(f"{kind} {status} "), line)
        for w in words:
            self.assertIn(w, line)

    def test_mx_order_and_addresses_of_each_host(self):
        records = {
            "example.org": {"MX": [(20, "b.mx.example.org"), (10, "a.mx.example.org"), (30, "c.mx.example.org")]},
            "a.mx.example.org": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
            "b.mx.example.org": {"A": ["127.0.0.2", "127.0.0.3"]},
            "c.mx.example.org": {"AAAA": ["2001:db8::25"]},
        }
        with DnsStub(records) as dns:
            code, hosts = self.lookup(dns, "example.org")
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts, [(10, "a.mx.example.org", ["::1", "127.0.0.1"]),
                                 (20, "b.mx.example.org", ["127.0.0.2", "127.0.0.3"]),
                                 (30, "c.mx.example.org", ["2001:db8::25"])])

    def test_equal_preferences_are_shuffled(self):
        records = {"example.org": {"MX": [(10, "one.example.org"), (10, "two.example.org"), (5, "first.example.org")]},
                   "one.example.org": {"A": ["127.0.0.1"]},
                   "two.example.org": {"A": ["127.0.0.2"]},
                   "first.example.org": {"A": ["127.0.0.3"]}}
        orders = set()
        with DnsStub(records) as dns:
            for _ in range(20):
                code, hosts = self.lookup(dns, "example.org")
                self.assertEqual(code, 0, hosts)
                self.assertEqual(hosts[0][1], "first.example.org")
                orders.add(tuple(h[1] for h in hosts[1:]))
        self.assertEqual(orders, {("one.example.org", "two.example.org"), ("two.example.org", "one.example.org")})

    def test_additional_section_addresses_are_used(self):
        records = {"example.org": {"MX": [(10, "mx.example.org")]},
                   "mx.example.org": {"A": ["127.0.0.5"], "AAAA": ["::1"]}}
        with DnsStub(records, additional=True) as dns:
            code, hosts = self.lookup(dns, "example.org")
            asked = dns.names_asked()
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts, [(10, "mx.example.org", ["::1", "127.0.0.5"])])
        self.assertEqual(asked, ["example.org"])  # no A or AAAA query needed

    def test_hosts_without_address_are_left_out(self):
        records = {"example.org": {"MX": [(10, "gone.example.org"), (20, "broken.example.org"), (30, "ok.example.org")]},
                   "broken.example.org": "SERVFAIL",
                   "ok.example.org": {"A": ["127.0.0.9"]}}
        with DnsStub(records) as dns:
            code, hosts = self.lookup(dns, "example.org")
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts, [(30, "ok.example.org", ["127.0.0.9"])])

    def test_no_address_for_any_mx_host_is_temporary(self):
        records = {"example.org": {"MX": [(10, "gone.example.org")]}}
        with DnsStub(records) as dns:
            self.assert_error(self.lookup(dns, "example.org"), "4.4.3", "temporary",
                              "example.org", "gone.example.org", "NXDOMAIN")

    def test_unusable_mx_hosts_never_fall_back_to_the_domain(self):
        records = {"odd.example": {"MX": [(10, "-bad-.example"), (20, "192.0.2.1")], "A": ["127.0.0.1"]}}
        with DnsStub(records) as dns:
            self.assert_error(self.lookup(dns, "odd.example"), "4.4.3", "temporary", "odd.example",
                              "no MX record names a usable host")
            self.assertEqual(dns.names_asked(), ["odd.example"])

    def test_mx_host_behind_a_cname(self):
        records = {"example.org": {"MX": [(10, "mail.example.org")]},
                   "mail.example.org": {"CNAME": "real.example.net"},
                   "real.example.net": {"A": ["127.0.0.7"]}}
        with DnsStub(records) as dns:
            code, hosts = self.lookup(dns, "example.org")
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts, [(10, "mail.example.org", ["127.0.0.7"])])

    def test_implicit_mx_is_the_domain_itself(self):
        with DnsStub({"plain.example": {"A": ["127.0.0.4"], "AAAA": ["::1"]}}) as dns:
            code, hosts = self.lookup(dns, "plain.example")
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts, [(0, "plain.example", ["::1", "127.0.0.4"])])

    def test_null_mx_is_permanent(self):
        with DnsStub({"nomail.example": {"MX": [(0, ".")], "A": ["127.0.0.1"]}}) as dns:
            result = self.lookup(dns, "nomail.example", methods="dns_mx;byname")
            asked = dns.names_asked()
        self.assert_error(result, "5.1.10", "permanent", "nomail.example", "null MX")
        self.assertEqual(asked, ["nomail.example"])  # no fallback to A, nor to byname

    def test_servfail_nxdomain_refused_are_temporary(self):
        records = {"broken.example": "SERVFAIL", "refusing.example": "REFUSED"}
        with DnsStub(records) as dns:
            self.assert_error(self.lookup(dns, "broken.example"), "4.4.3", "temporary", "broken.example")
            self.assert_error(self.lookup(dns, "refusing.example"), "4.4.3", "temporary", "refusing.example")
            self.assert_error(self.lookup(dns, "nowhere.example"), "4.4.3", "temporary", "nowhere.example",
                              "NXDOMAIN")

    def test_no_answer_is_temporary_within_the_timeout(self):
        with DnsStub({"slow.example": {"MX": "TIMEOUT"}}) as dns:
            start = time.monotonic()
            result = self.lookup(dns, "slow.example", timeout_ms=1000)
            elapsed = time.monotonic() - start
        self.assert_error(result, "4.4.3", "temporary", "slow.example", "no answer", dns.address)
        self.assertLess(elapsed, 10)

    def test_garbled_answer_is_temporary(self):
        with DnsStub({"garbled.example": {"MX": "GARBLED"}}) as dns:
            self.assert_error(self.lookup(dns, "garbled.example"), "4.4.3", "temporary", "garbled.example",
                              "garbled DNS answer")

    def test_truncated_udp_answer_is_asked_again_over_tcp(self):
        names = [f"mx{i:02d}.a-rather-long-label-to-fill-the-answer.example.org" for i in range(12)]
        records = {"big.example": {"MX": [(10 + i, n) for i, n in enumerate(names)]}}
        for i, n in enumerate(names):
            records[n] = {"A": [f"127.0.1.{i + 1}"]}
        with DnsStub(records) as dns:
            code, hosts = self.lookup(dns, "big.example")
            mx_queries = [q for q in dns.queries if q[0] == "big.example"]
        self.assertEqual(code, 0, hosts)
        self.assertEqual([h[1] for h in hosts], names)
        self.assertEqual([q[2] for q in mx_queries], ["udp", "tcp"])

    def test_bracketed_host_skips_mx(self):
        records = {"relay.example": {"MX": [(10, "elsewhere.example")], "A": ["127.0.0.8"]},
                   "elsewhere.example": {"A": ["127.0.0.99"]}}
        with DnsStub(records) as dns:
            code, hosts = self.lookup(dns, "[relay.example]")
            self.assertEqual(dns.names_asked("MX"), [])
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts, [(0, "relay.example", ["127.0.0.8"])])

    def test_domain_literals_ask_nobody(self):
        with DnsStub({}) as dns:
            v4 = self.lookup(dns, "[127.0.0.1]")
            v6 = self.lookup(dns, "[IPv6:0:0::1]")
            bad = self.lookup(dns, "[127.0.0.300]")
            asked = dns.names_asked()
        self.assertEqual(v4, (0, [(0, "[127.0.0.1]", ["127.0.0.1"])]))
        self.assertEqual(v6, (0, [(0, "[IPv6:0:0::1]", ["::1"])]))
        self.assert_error(bad, "5.1.2", "permanent", "[127.0.0.300]")
        self.assertEqual(asked, [])

    def test_byname_uses_the_hosts_file_after_dns(self):
        with open("/etc/hosts") as f:
            if not any("localhost" in line.split()[1:] for line in f if not line.startswith("#") and line.strip()):
                self.skipTest("no localhost in /etc/hosts")
        with DnsStub({}) as dns:  # localhost: NXDOMAIN from the stub
            only_dns = self.lookup(dns, "localhost", methods="dns_mx")
            code, hosts = self.lookup(dns, "localhost", methods="dns_mx;byname")
            before = len(dns.queries)
            code_first, hosts_first = self.lookup(dns, "localhost", methods="byname;dns_mx")
            after = len(dns.queries)
        self.assert_error(only_dns, "4.4.3", "temporary", "localhost", "NXDOMAIN")
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts[0][:2], (0, "localhost"))
        self.assertIn("127.0.0.1", hosts[0][2])
        self.assertEqual((code_first, hosts_first), (0, hosts))
        self.assertEqual(before, after)  # byname first: DNS never asked

    def test_name_server_on_ipv6(self):
        try:
            stub = DnsStub({"example.org": {"MX": [(10, "mx.example.org")]},
                            "mx.example.org": {"A": ["127.0.0.1"]}}, host="::1").start()
        except OSError as e:
            self.skipTest(f"no IPv6 loopback: {e}")
        try:
            code, hosts = self.lookup(stub, "example.org")
        finally:
            stub.stop()
        self.assertEqual(code, 0, hosts)
        self.assertEqual(hosts, [(10, "mx.example.org", ["127.0.0.1"])])

    def test_bad_dns_server_is_a_config_error(self):
        conf = os.path.join(self.tmp.name, "bad.conf")
        with open(conf, "w") as f:
            f.write('host_name = "laptop.example"\ndns_server = "ns.example.org"\n')
        r = subprocess.run([MX_LOOKUP, conf, "[127.0.0.1]"], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 78)
        self.assertIn(f"{conf}:2: 'dns_server'", r.stderr.decode())


if __name__ == "__main__":
    mmtest.main()
