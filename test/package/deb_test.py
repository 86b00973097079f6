#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The Debian package as an administrator meets it: packaging/build-deb
builds the .deb, lintian finds no error, and apt installs it with s-nail
into a fresh debootstrap (minbase bookworm) root from this machine's Debian
mirror. There masqmail -bd runs the daemons (no systemd in a chroot); mail
from s-nail and a cron-style sendmail to root (aliased to a user) lands in
/var/mail/USER. Runs as root with the mirror reachable; skips otherwise.
Run by test/run as its own stage (not by meson, which runs three builds).
MM_TEST_DEB=FILE installs that .deb instead of building one."""

import glob
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import mmtest  # noqa: E402  (TAP output and wait_for)

TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SUITE = "bookworm"
CACHE = "/var/cache/masqmail-test"
TARBALL = os.path.join(CACHE, f"{SUITE}-minbase.tgz")
USER = "mmuser"
LINKS = {"/usr/sbin/" + n for n in ("sendmail", "mailq", "runq", "mailrm", "newaliases",
                                     "smtpd", "in.smtpd", "rmail")}
LINKS |= {"/usr/lib/sendmail", "/usr/bin/mailq", "/usr/bin/newaliases"}
SYSTEM_USERS = ("masqmail", "masqmail-smtp", "masqmail-route", "masqmail-remote", "masqmail-local")
POSTDROP = "/usr/libexec/masqmail/postdrop"
PID_FILE = "/run/masqmail/masqmail.pid"
START_MARKS = ("enqueue started", "qmgr started", "local-deliver start", "smtp-listener started")


def progress(text):
    print(f"# {time.strftime('%H:%M:%S')} {text}", flush=True)


def debian_mirror():
    """The first Debian archive URI of this machine's apt sources (deb822
    .sources files, then sources.list), or deb.debian.org."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for uri in re.findall(r"(?mi)^URIs:\s*(\S+)", f.read()):
                if "security" not in uri:
                    return uri.rstrip("/")
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for uri in re.findall(r"(?m)^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text):
            if "security" not in uri:
                return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def mirror_reachable(mirror):
    try:
        with urllib.request.urlopen(f"{mirror}/dists/{SUITE}/Release", timeout=15) as r:
            return r.status == 200
    except OSError:
        return False


def sh(args, stdin=b"", timeout=600, check=True, env=None):
    """Runs a command on the host; raises with its output when it fails."""
    try:
        r = subprocess.run(args, input=stdin, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        if check:
            raise
        r = subprocess.CompletedProcess(args, 124, e.stdout or b"",
                                        (e.stderr or b"") + f"timed out after {timeout}s".encode())
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}:\n"
                             + r.stdout.decode(errors="replace")[-3000:]
                             + r.stderr.decode(errors="replace")[-3000:])
    return r


CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
              "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}


class DebianPackage(unittest.TestCase):
    root = None
    proc_mounted = False

    # --- set-up: build, lint, debootstrap, install, start, send ---

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (debootstrap, chroot, mount)")
        for tool in ("dpkg-buildpackage", "lintian", "debootstrap"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} is not installed (packaging/install-deps)")
        cls.mirror = debian_mirror()
        if not mirror_reachable(cls.mirror):
            raise unittest.SkipTest(f"the Debian mirror {cls.mirror} cannot be reached")
        cls.work = tempfile.mkdtemp(prefix="mm-deb-test-")
        cls.addClassCleanup(cls.clean_up)
        cls.build_and_lint()
        cls.bootstrap()
        cls.install()
        cls.start_and_send()

    @classmethod
    def build_and_lint(cls):
        out = os.path.join(cls.work, "out")
        if os.environ.get("MM_TEST_DEB"):  # a .deb built before, to rerun the install quickly
            os.mkdir(out)
            shutil.copy(os.environ["MM_TEST_DEB"], out)
        else:
            progress("building the .deb with packaging/build-deb")
            sh([os.path.join(TOP, "packaging", "build-deb"), out], timeout=1200)
        debs = glob.glob(os.path.join(out, "masqmail_*.deb"))
        if len(debs) != 1:
            raise AssertionError(f"build-deb left {debs}")
        cls.deb = debs[0]
        progress(f"lintian {os.path.basename(cls.deb)}")
        r = sh(["lintian", "--tag-display-limit", "0", cls.deb], timeout=600, check=False)
        cls.lintian = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        for line in cls.lintian.splitlines():
            print(f"# lintian: {line}", flush=True)

    @classmethod
    def bootstrap(cls):
        os.makedirs(CACHE, exist_ok=True)
        if not os.path.exists(TARBALL):
            progress(f"debootstrap --make-tarball from {cls.mirror} (cached in {CACHE})")
            scratch = tempfile.mkdtemp(prefix="mm-deb-tarball-", dir=cls.work)
            sh(["debootstrap", "--variant=minbase", f"--make-tarball={TARBALL}.part", SUITE,
                scratch, cls.mirror], timeout=900)
            os.rename(TARBALL + ".part", TARBALL)
        cls.root = os.path.join(cls.work, "root")
        progress(f"debootstrap --variant=minbase {SUITE} (from {TARBALL})")
        r = sh(["debootstrap", "--variant=minbase", f"--unpack-tarball={TARBALL}", SUITE,
                cls.root, cls.mirror], timeout=900, check=False)
        if r.returncode != 0:
            # A tarball from an older mirror state can fail; fetch a new one once.
            progress("the cached tarball failed; fetching a new one")
            os.unlink(TARBALL)
            shutil.rmtree(cls.root, ignore_errors=True)
            cls.bootstrap()
            return
        with open(cls.path("/etc/apt/sources.list"), "w") as f:
            f.write(f"deb {cls.mirror} {SUITE} main\n")
        # debootstrap writes no /etc/hosts; every installed Debian has one
        if not os.path.exists(cls.path("/etc/hosts")):
            with open(cls.path("/etc/hosts"), "w") as f:
                f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        shutil.copy("/etc/resolv.conf", cls.path("/etc/resolv.conf"))
        sh(["mount", "-t", "proc", "proc", cls.path("/proc")])
        cls.proc_mounted = True

    @classmethod
    def install(cls):
        progress("apt-get install the .deb and s-nail in the root")
        shutil.copy(cls.deb, cls.path("/tmp/masqmail.deb"))
        cls.chroot("apt-get", "update", timeout=600)
        cls.chroot("apt-get", "install", "-y", "--no-install-recommends",
                   "/tmp/masqmail.deb", "s-nail", timeout=900)
        cls.chroot("useradd", "--create-home", USER)
        with open(cls.path("/etc/aliases"), "a") as f:
            f.write(f"root: {USER}\n")

    @classmethod
    def start_and_send(cls):
        """Starts the daemons and sends the two messages; what each step gave is
        kept for the tests, so that one failure does not hide the others."""
        progress("masqmail -bd in the root; mail with s-nail and a cron-style sendmail")
        cls.started = cls.chroot("/usr/sbin/masqmail", "-bd", "-q30m", check=False)
        mmtest.wait_for(lambda: all(m in cls.log() for m in START_MARKS), 20)
        cls.s_nail = cls.chroot("s-nail", "-s", "hello from s-nail", USER,
                                stdin=b"sent with s-nail\n", timeout=60, check=False)
        cron = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts\n"
                b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
                b"Content-Transfer-Encoding: 8bit\n\noutput of a cron job: \xc3\xa9t\xc3\xa9\n")
        cls.cron = cls.chroot("/usr/sbin/sendmail", "-i", "-FCronDaemon", "-B8BITMIME", "-oem",
                              "root", stdin=cron, timeout=60, check=False)

    @classmethod
    def clean_up(cls):
        if cls.root:
            cls.stop_daemons()
        if cls.proc_mounted:
            if sh(["umount", cls.path("/proc")], check=False).returncode != 0:
                sh(["umount", "--lazy", cls.path("/proc")], check=False)
            cls.proc_mounted = False
        if cls.root and os.path.ismount(cls.path("/proc")):
            return  # never remove a folder with a file system still mounted in it
        sh(["rm", "-rf", "--one-file-system", cls.work], check=False)

    # --- helpers ---

    @classmethod
    def path(cls, p):
        return os.path.join(cls.root, p.lstrip("/"))

    @classmethod
    def chroot(cls, *args, stdin=b"", timeout=120, check=True, user=None):
        spec = [f"--userspec={user}:{user}"] if user else []
        return sh(["chroot", *spec, cls.root, *args], stdin=stdin, timeout=timeout, check=check,
                  env=CHROOT_ENV)

    @classmethod
    def daemon_pid(cls):
        try:
            with open(cls.path(PID_FILE)) as f:
                text = f.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    @classmethod
    def processes_in_root(cls):
        """pids of processes whose root folder is the chroot."""
        found = []
        real = os.path.realpath(cls.root)
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.readlink(f"/proc/{name}/root") == real:
                        found.append(int(name))
                except OSError:
                    pass
        return found

    @classmethod
    def stop_daemons(cls):
        """SIGTERM to the supervisor of the pid file; SIGKILL to anything still
        running in the root after 20 s. True when the stop was clean."""
        pid = cls.daemon_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        clean = bool(mmtest.wait_for(lambda: not cls.processes_in_root(), 20))
        for p in cls.processes_in_root():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        mmtest.wait_for(lambda: not cls.processes_in_root(), 10)
        return clean

    @classmethod
    def log(cls):
        try:
            with open(cls.path("/var/log/masqmail/masqmail.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return "(no /var/log/masqmail/masqmail.log)"

    def passwd(self):
        with open(self.path("/etc/passwd")) as f:
            return {l.split(":")[0]: l.split(":") for l in f if l.strip()}

    def groups(self):
        with open(self.path("/etc/group")) as f:
            return {l.split(":")[0]: l.strip().split(":") for l in f if l.strip()}

    def package_files(self):
        r = self.chroot("dpkg", "-L", "masqmail")
        return [l for l in r.stdout.decode().splitlines() if l.startswith("/")]

    def mailbox(self):
        with open(self.path(f"/var/mail/{USER}"), "rb") as f:
            return f.read()

    def wait_for_mail(self, marker):
        def delivered():
            try:
                return marker in self.mailbox()
            except OSError:
                return False
        ok = mmtest.wait_for(delivered, 30)
        self.assertTrue(ok, f"{marker!r} not in /var/mail/{USER}; log:\n{self.log()[-1500:]}")

    # --- the package ---

    def test_lintian_reports_no_errors(self):
        errors = [l for l in self.lintian.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [], self.lintian)

    def test_links_point_to_masqmail(self):
        for link in sorted(LINKS):
            with self.subTest(link=link):
                self.assertTrue(os.path.islink(self.path(link)), link)
                r = self.chroot("readlink", "-f", link)
                self.assertEqual(r.stdout.decode().strip(), "/usr/sbin/masqmail")

    def test_no_installed_file_is_setuid_and_only_postdrop_is_setgid(self):
        for name in self.package_files():
            st = os.lstat(self.path(name))
            with self.subTest(file=name):
                self.assertFalse(st.st_mode & stat.S_ISUID)
                if stat.S_ISREG(st.st_mode) and name != POSTDROP:
                    self.assertFalse(st.st_mode & stat.S_ISGID)

    def test_postdrop_is_setgid_masqmail_drop(self):
        st = os.stat(self.path(POSTDROP))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o2755)
        self.assertEqual(st.st_uid, 0)
        self.assertEqual(st.st_gid, int(self.groups()["masqmail-drop"][2]))
        r = self.chroot("dpkg-statoverride", "--list", POSTDROP)
        self.assertEqual(r.stdout.decode().split(), ["root", "masqmail-drop", "2755", POSTDROP])

    def test_system_users_exist_and_cannot_log_in(self):
        users = self.passwd()
        for name in SYSTEM_USERS:
            with self.subTest(user=name):
                self.assertIn(name, users)
                self.assertLess(int(users[name][2]), 1000)
                self.assertEqual(users[name][6].strip(), "/usr/sbin/nologin")
        self.assertIn("masqmail", self.groups()["masqmail-drop"][3].split(","))

    def test_spool_has_the_owners_and_modes_of_tmpfiles_d(self):
        users, groups = self.passwd(), self.groups()
        with open(os.path.join(TOP, "packaging", "tmpfiles.d", "masqmail.conf")) as f:
            lines = [l.split() for l in f if l.startswith("d ")]
        for _, path, mode, user, group, *_ in lines:
            with self.subTest(path=path):
                st = os.stat(self.path(path))
                self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(int(mode, 8)))
                self.assertEqual(st.st_uid, int(users[user][2]))
                self.assertEqual(st.st_gid, int(groups[group][2]))

    def test_configuration_is_a_conffile_that_checks_clean(self):
        r = self.chroot("dpkg-query", "-W", "-f", "${Conffiles}", "masqmail")
        self.assertIn("/etc/masqmail/masqmail.conf ", r.stdout.decode())
        r = self.chroot("/usr/sbin/masqmail", "--check-config", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(b"0 warnings", r.stdout + r.stderr)

    def test_examples_are_installed(self):
        examples = self.path("/usr/share/doc/masqmail/examples")
        self.assertTrue(os.path.exists(os.path.join(examples, "masqmail.conf")))
        self.assertTrue(glob.glob(os.path.join(examples, "routes", "*.route")))

    def test_man_pages_are_installed(self):
        for page in ("man8/masqmail.8.gz", "man5/masqmail.conf.5.gz"):
            with self.subTest(page=page):
                self.assertTrue(os.path.exists(self.path("/usr/share/man/" + page)))

    # --- mail ---

    def test_daemons_start(self):
        self.assertEqual(self.started.returncode, 0, self.started.stderr)
        self.assertIsNotNone(self.daemon_pid(), "no pid file")
        log = self.log()
        missing = [m for m in START_MARKS if m not in log]
        self.assertEqual(missing, [], log[-1500:])
        self.assertNotIn("exited with status", log, log[-1500:])

    def test_mail_from_s_nail_is_delivered(self):
        self.assertEqual(self.s_nail.returncode, 0, self.s_nail.stderr)
        self.wait_for_mail(b"sent with s-nail")
        self.assertIn(b"Subject: hello from s-nail", self.mailbox())

    def test_cron_mail_to_root_reaches_the_alias(self):
        self.assertEqual(self.cron.returncode, 0, self.cron.stderr)
        self.wait_for_mail(b"output of a cron job")
        self.assertIn(b"Subject: Cron <root@host> run-parts", self.mailbox())

    def test_mailbox_is_the_users_with_mode_0600(self):
        self.wait_for_mail(b"sent with s-nail")
        st = os.stat(self.path(f"/var/mail/{USER}"))
        self.assertEqual(oct(stat.S_IMODE(st.st_mode)), "0o600")
        self.assertEqual(st.st_uid, int(self.passwd()[USER][2]))

    def test_user_mail_without_daemon_goes_through_postdrop(self):
        """An ordinary user's sendmail with no daemon running leaves the mail in
        maildrop/ through set-gid postdrop; the next -bd delivers it."""
        self.stop_daemons()
        try:
            self.chroot("/usr/sbin/sendmail", "-i", USER, user=USER,
                        stdin=b"Subject: dropped\n\nqueued by postdrop\n")
            self.assertTrue(os.listdir(self.path("/var/spool/masqmail/maildrop")))
        finally:
            self.chroot("/usr/sbin/masqmail", "-bd", "-q30m")
        self.wait_for_mail(b"queued by postdrop")

    # --- last (tests run in name order): removal and purge ---

    def test_zz_remove_then_purge(self):
        """dpkg -r stops a running supervisor (prerm, by its pid file), removes
        the programs and keeps the conffile; purge removes the rest."""
        if self.daemon_pid() is None:
            self.chroot("/usr/sbin/masqmail", "-bd", "-q30m", check=False)
        self.chroot("dpkg", "-r", "masqmail", timeout=300)
        self.assertTrue(mmtest.wait_for(lambda: not self.processes_in_root(), 10),
                        "daemons still run after dpkg -r")
        self.assertFalse(os.path.lexists(self.path("/usr/sbin/masqmail")))
        self.assertFalse(os.path.lexists(self.path("/usr/sbin/sendmail")))
        self.assertTrue(os.path.exists(self.path("/etc/masqmail/masqmail.conf")),
                        "remove keeps the conffile")
        self.chroot("dpkg", "--purge", "masqmail", timeout=300)
        self.assertFalse(os.path.exists(self.path("/etc/masqmail/masqmail.conf")))
        self.assertFalse(os.path.exists(self.path("/var/spool/masqmail")))
        r = self.chroot("dpkg-statoverride", "--list", POSTDROP, check=False)
        self.assertEqual(r.stdout, b"")
        r = self.chroot("dpkg-query", "-W", "masqmail", check=False)
        self.assertNotEqual(r.returncode, 0, "masqmail is still known to dpkg")


def terminated(signum, frame):
    """test/run's timeout sends SIGTERM: stop the daemons and unmount /proc
    before going, as the class cleanup would."""
    print(f"not ok - deb_test terminated by signal {signum}", flush=True)
    DebianPackage.clean_up()
    os._exit(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, terminated)
    mmtest.main()
