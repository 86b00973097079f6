# SPDX-License-Identifier: GPL-2.0-or-later
"""The masqmail front end: version without config, --check-config exit codes."""

import os
import unittest

import mmtest
from mmtest import MASQMAIL, Instance, run


class Version(unittest.TestCase):
    def test_bV_prints_version_without_reading_config(self):
        r = run([MASQMAIL, "-C", "/nonexistent/masqmail.conf", "-bV"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"^MasqMail \d+\.\d+\.\d+")

    def test_no_mode_no_recipient_prints_version(self):
        r = run([MASQMAIL])
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith(b"MasqMail "))

    def test_dash_C_without_file_is_usage_error(self):
        r = run([MASQMAIL, "-C"])
        self.assertEqual(r.returncode, 64)
        self.assertIn(b"-C requires", r.stderr)

    def test_daemon_dir_is_the_build_tree(self):
        r = run([MASQMAIL, "--daemon-dir"])
        self.assertEqual(r.returncode, 0)
        self.assertEqual(os.path.realpath(r.stdout.decode().strip()),
                         os.path.realpath(os.path.join(mmtest.BUILD, "daemons")))


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()

    def tearDown(self):
        self.inst.close()

    def test_clean_config_exits_0(self):
        r = self.inst.masqmail("--check-config")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_missing_config_exits_78_with_path(self):
        r = run([MASQMAIL, "-C", self.inst.path("nope.conf"), "--check-config"])
        self.assertEqual(r.returncode, 78)
        self.assertIn(b"nope.conf", r.stdout + r.stderr)


if __name__ == "__main__":
    mmtest.main()
