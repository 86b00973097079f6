# SPDX-License-Identifier: GPL-2.0-or-later
"""meson install into a scratch folder gives the layout of the issue: sbin
with masqmail and its links, the daemons' private libexec folder, and an
installed binary that finds that folder by itself."""

import os
import subprocess
import tempfile
import unittest

import mmtest
from mmtest import run

LINKS = ["sendmail", "mailq", "runq", "mailrm", "newaliases", "smtpd", "in.smtpd", "rmail"]


class InstallLayout(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="mm-install-")
        r = subprocess.run(["meson", "install", "-C", mmtest.BUILD, "--no-rebuild", "--quiet",
                            "--destdir", cls.tmp.name], capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(r.stdout.decode() + r.stderr.decode())
        prefix = subprocess.run(["meson", "introspect", "--buildoptions", mmtest.BUILD],
                                capture_output=True, text=True, check=True).stdout
        import json
        opts = {o["name"]: o["value"] for o in json.loads(prefix)}
        cls.prefix = cls.tmp.name + opts["prefix"]
        cls.sbin = os.path.join(cls.prefix, opts["sbindir"])
        cls.libexec = os.path.join(cls.prefix, opts["libexecdir"], "masqmail")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_masqmail_is_installed(self):
        self.assertTrue(os.access(os.path.join(self.sbin, "masqmail"), os.X_OK))

    def test_every_name_links_to_masqmail(self):
        for name in LINKS:
            with self.subTest(name=name):
                p = os.path.join(self.sbin, name)
                self.assertTrue(os.path.islink(p), p)
                self.assertEqual(os.readlink(p), "masqmail")

    def test_private_libexec_folder_exists(self):
        self.assertTrue(os.path.isdir(self.libexec))

    def test_installed_binary_finds_its_daemons_without_environment(self):
        r = run([os.path.join(self.sbin, "masqmail"), "--daemon-dir"], env={})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.realpath(r.stdout.decode().strip()), os.path.realpath(self.libexec))

    def test_no_installed_file_is_setuid(self):
        for d, _, files in os.walk(self.tmp.name):
            for f in files:
                st = os.lstat(os.path.join(d, f))
                self.assertFalse(st.st_mode & 0o4000, f)

    def test_man_pages_installed(self):
        mandir = os.path.join(self.prefix, "share", "man")
        self.assertTrue(os.path.exists(os.path.join(mandir, "man8", "masqmail.8")))
        self.assertTrue(os.path.exists(os.path.join(mandir, "man5", "masqmail.conf.5")))


if __name__ == "__main__":
    mmtest.main()
