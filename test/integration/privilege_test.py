# SPDX-License-Identifier: GPL-2.0-or-later
"""A system install, as root: masqmail installed into a scratch root with
`meson install`, the system users of packaging/sysusers.d, postdrop set-gid
masqmail-drop, a Debian-style mail spool (root:mail 2775), and the daemons
started as root with -bd. The kernel's view of each running daemon
(/proc/PID/status) must match DESIGN.md rule 2 and doc/architecture.md:
its own uid, no capability but local-deliver's CAP_SETUID/CAP_SETGID, no
way back. The listener and remote-deliver cannot open the spool; a mailbox
is written by its owner with mode 0600; root's mail is aliased or refused,
never delivered as uid 0. Skipped when not root (CI runs as root)."""

import grp
import json
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

import mmtest
from mmtest import run, wait_for

SYSUSERS = os.path.join(mmtest.SOURCE, "packaging", "sysusers.d", "masqmail.conf")
DAEMON_USERS = {
    "enqueue": "masqmail",
    "qmgr": "masqmail",
    "smtp-listener": "masqmail-smtp",
    "route-selector": "masqmail-route",
    "remote-deliver": "masqmail-remote",
    "local-deliver": "masqmail-local",
}
CAP_SETGID, CAP_SETUID = 6, 7
SETID_CAPS = (1 << CAP_SETGID) | (1 << CAP_SETUID)
TEST_USERS = ["mmpriv-a", "mmpriv-b"]


def ensure_system_users():
    """The users of packaging/sysusers.d, as a package creates them."""
    if shutil.which("systemd-sysusers"):
        subprocess.run(["systemd-sysusers", SYSUSERS], check=True, capture_output=True)
        return
    for line in open(SYSUSERS):  # the same file read by hand: g, u and m lines
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        if f[0] == "g" and not _exists(grp.getgrnam, f[1]):
            subprocess.run(["groupadd", "--system", f[1]], check=True)
        elif f[0] == "u" and not _exists(pwd.getpwnam, f[1]):
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", "--home-dir", f[-1], f[1]], check=True)
        elif f[0] == "m":
            subprocess.run(["usermod", "-a", "-G", f[2], f[1]], check=True)


def _exists(lookup, name):
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def proc_status(pid):
    """/proc/PID/status as a dict of its fields (text after the colon)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def ids(field):
    return [int(x) for x in field.split()]


def caps(status, name):
    return int(status[name], 16)


@unittest.skipUnless(os.geteuid() == 0, "needs root: a system install switches users")
class SystemInstall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_system_users()
        for user in TEST_USERS:
            if not _exists(pwd.getpwnam, user):
                subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                               check=True)
        cls.tmp = tempfile.mkdtemp(prefix="mm-priv-")
        os.chmod(cls.tmp, 0o755)
        cls.destdir = os.path.join(cls.tmp, "root")
        r = subprocess.run(["meson", "install", "-C", mmtest.BUILD, "--no-rebuild", "--quiet",
                            "--destdir", cls.destdir], capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(r.stdout.decode() + r.stderr.decode())
        opts = {o["name"]: o["value"] for o in json.loads(subprocess.run(
            ["meson", "introspect", "--buildoptions", mmtest.BUILD],
            capture_output=True, text=True, check=True).stdout)}
        prefix = cls.destdir + opts["prefix"]
        cls.masqmail = os.path.join(prefix, opts["sbindir"], "masqmail")
        cls.libexec = os.path.join(prefix, opts["libexecdir"], "masqmail")
        postdrop = os.path.join(cls.libexec, "postdrop")
        os.chown(postdrop, 0, grp.getgrnam("masqmail-drop").gr_gid)  # as the package does
        os.chmod(postdrop, 0o2755)
        cls.out = os.path.join(cls.tmp, "out")  # where the alias pipe writes
        os.mkdir(cls.out)
        os.chmod(cls.out, 0o1777)
        cls.port = mmtest.free_port()
        cls.conf = cls.write_instance("sys", aliases="root: mmpriv-a\npostmaster: root\n"
                                      f'capdump: "|/usr/bin/python3 {cls.tmp}/dump.py"\n')
        with open(os.path.join(cls.tmp, "dump.py"), "w") as f:
            f.write("import os, sys\nsys.stdin.buffer.read()\n"
                    f"open('{cls.out}/pipe-' + str(os.getpid()), 'w').write(open('/proc/self/status').read())\n")
        cls.start(cls.conf)

    @classmethod
    def write_instance(cls, name, aliases):
        """A system instance under tmp/NAME: nothing but the config, the alias
        file and a mail spool as Debian has it; the supervisor makes the rest."""
        base = os.path.join(cls.tmp, name)
        mail = os.path.join(base, "mail")
        os.makedirs(mail)
        os.chmod(base, 0o755)
        os.chown(mail, 0, grp.getgrnam("mail").gr_gid)
        os.chmod(mail, 0o2775)
        with open(os.path.join(base, "aliases"), "w") as f:
            f.write(aliases)
        port = cls.port if name == "sys" else mmtest.free_port()
        conf = os.path.join(base, "masqmail.conf")
        with open(conf, "w") as f:
            f.write(f'host_name = "testhost.example"\nlocal_hosts = "localhost;testhost.example"\n'
                    f'listen_addresses = "127.0.0.1:{port}"\n'
                    f'spool_dir = "{base}/spool"\nlog_dir = "{base}/log"\nlock_dir = "{base}/lock"\n'
                    f'pid_dir = "{base}/run"\nmail_dir = "{mail}"\nalias_file = "{base}/aliases"\n')
        return conf

    @classmethod
    def start(cls, conf):
        r = run([cls.masqmail, "-C", conf, "-bd"])
        if r.returncode != 0:
            raise RuntimeError("masqmail -bd: " + r.stderr.decode())
        base = os.path.dirname(conf)

        def switched():  # each daemon forked, and past its switch to its user
            running = cls.daemons(base)
            try:
                states = {name: proc_status(pid) for name, pid in running.items()}
            except OSError:
                return False
            return len(states) == len(DAEMON_USERS) and all(
                ids(st["Uid"])[0] != 0 and (name == "local-deliver" or st["NoNewPrivs"] == "1")
                for name, st in states.items())
        if not wait_for(switched, timeout=30):
            raise RuntimeError("daemons did not start: " + str(cls.daemons(base)))

    @classmethod
    def stop(cls, conf):
        base = os.path.dirname(conf)
        pid = cls.supervisor_pid(base)
        if pid:
            os.kill(pid, 15)
            wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30)

    @classmethod
    def tearDownClass(cls):
        for name in ("sys", "noroot", "nodaemon"):
            conf = os.path.join(cls.tmp, name, "masqmail.conf")
            if os.path.exists(conf):
                cls.stop(conf)
        shutil.rmtree(cls.tmp, ignore_errors=True)
        for user in TEST_USERS:
            subprocess.run(["userdel", user], capture_output=True)

    @staticmethod
    def supervisor_pid(base):
        try:
            return int(open(os.path.join(base, "run", "masqmail.pid")).read())
        except (OSError, ValueError):
            return None

    @classmethod
    def daemons(cls, base):
        """{daemon name: pid} of the supervisor's children."""
        sup = cls.supervisor_pid(base)
        found = {}
        if sup is None:
            return found
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                st = proc_status(entry)
                argv0 = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")[0].decode()
            except OSError:
                continue
            if int(st.get("PPid", "0")) == sup and os.path.basename(argv0) in DAEMON_USERS:
                found[os.path.basename(argv0)] = int(entry)
        return found

    def base(self):
        return os.path.join(self.tmp, "sys")

    def mailbox(self, user, base=None):
        return os.path.join(base or self.base(), "mail", user)

    def sendmail_as(self, user, *args, body=b"Subject: test\n\nbody\n", conf=None, extra=()):
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", *extra,
               self.masqmail, "-C", conf or self.conf, "-oi", *args]
        return run(cmd, stdin=body)

    def wait_for_text(self, path, text, timeout=30):
        def has():
            try:
                return text.encode() in open(path, "rb").read()
            except OSError:
                return False
        return wait_for(has, timeout=timeout)

    # --- the daemons as the kernel sees them ---

    def test_supervisor_is_root_and_every_daemon_runs_as_its_own_user(self):
        running = self.daemons(self.base())
        self.assertEqual(sorted(running), sorted(DAEMON_USERS))
        sup = proc_status(self.supervisor_pid(self.base()))
        self.assertEqual(ids(sup["Uid"])[0], 0)
        for name, pid in running.items():
            with self.subTest(daemon=name):
                st = proc_status(pid)
                pw = pwd.getpwnam(DAEMON_USERS[name])
                self.assertEqual(ids(st["Uid"]), [pw.pw_uid] * 4, "real, effective, saved, fs uid")
                self.assertEqual(ids(st["Gid"]), [pw.pw_gid] * 4)
                groups = set(ids(st["Groups"]))
                allowed = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem}
                self.assertLessEqual(groups, allowed, "no group beyond the user's own")
                self.assertNotIn(0, groups)

    def test_capabilities_are_those_of_rule_2(self):
        for name, pid in self.daemons(self.base()).items():
            with self.subTest(daemon=name):
                st = proc_status(pid)
                self.assertEqual(caps(st, "CapInh"), 0)
                self.assertEqual(caps(st, "CapAmb"), 0)
                self.assertEqual(caps(st, "CapEff"), 0, "nothing raised while idle")
                if name == "local-deliver":
                    self.assertEqual(caps(st, "CapPrm"), SETID_CAPS)
                    self.assertEqual(caps(st, "CapBnd"), SETID_CAPS)
                else:
                    self.assertEqual(caps(st, "CapPrm"), 0)
                    self.assertEqual(caps(st, "CapBnd"), 0)
                    self.assertEqual(st["NoNewPrivs"], "1")

    def test_delivery_child_holds_no_capability(self):
        r = self.sendmail_as("mmpriv-b", "capdump")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_for(lambda: any(f.startswith("pipe-") for f in os.listdir(self.out)), 30),
                        "the alias pipe ran")
        name = next(f for f in os.listdir(self.out) if f.startswith("pipe-"))
        st = {}
        for line in open(os.path.join(self.out, name)):
            k, _, v = line.partition(":")
            st[k] = v.strip()
        nobody = pwd.getpwnam("nobody")
        self.assertEqual(ids(st["Uid"]), [nobody.pw_uid] * 4, "root's alias file: its pipes run as nobody")
        for field in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            self.assertEqual(caps(st, field), 0, field)
        self.assertEqual(caps(st, "CapBnd") & ~SETID_CAPS, 0)
        self.assertEqual(st["NoNewPrivs"], "1")

    # --- what each user can reach ---

    def try_as_daemon(self, pid, paths):
        """Opens each path with the credentials of daemon PID, in a child;
        returns the paths that could be opened."""
        st = proc_status(pid)
        uid, gid, groups = ids(st["Uid"])[0], ids(st["Gid"])[0], ids(st["Groups"])
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(reader)
            opened = []
            try:
                os.setgroups(groups)
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                for p in paths:
                    try:
                        os.close(os.open(p, os.O_RDONLY))
                        opened.append(p)
                    except OSError:
                        pass
            finally:
                os.write(writer, json.dumps(opened).encode())
                os._exit(0)
        os.close(writer)
        data = b""
        while chunk := os.read(reader, 65536):
            data += chunk
        os.close(reader)
        os.waitpid(child, 0)
        return json.loads(data)

    def test_listener_and_remote_deliver_cannot_open_the_spool(self):
        # A message for a domain no route takes stays in queue/.
        r = self.sendmail_as("mmpriv-b", "someone@elsewhere.example")
        self.assertEqual(r.returncode, 0, r.stderr)
        spool = os.path.join(self.base(), "spool")
        queue = os.path.join(spool, "queue")
        self.assertTrue(wait_for(lambda: any("." in f and not f.endswith(".st") for f in os.listdir(queue)), 30))
        files = [os.path.join(queue, f) for f in os.listdir(queue)]
        areas = [os.path.join(spool, a) for a in ("tmp", "new", "queue", "hold", "corrupt")]
        running = self.daemons(self.base())
        for name in ("smtp-listener", "remote-deliver", "route-selector", "local-deliver"):
            with self.subTest(daemon=name):
                self.assertEqual(self.try_as_daemon(running[name], areas + files), [])
                # Deliverers are handed an open message file by qmgr; none
                # holds a spool directory, from which it could open others.
                for fd in os.listdir(f"/proc/{running[name]}/fd"):
                    try:
                        target = os.readlink(f"/proc/{running[name]}/fd/{fd}")
                    except OSError:
                        continue
                    self.assertNotIn(target, areas + [spool], f"{name} holds {target}")
        # The queue's owner can, which shows the check can fail.
        self.assertEqual(self.try_as_daemon(running["qmgr"], areas), areas)

    def test_spool_owners_and_modes(self):
        spool = os.path.join(self.base(), "spool")
        q = pwd.getpwnam("masqmail")
        expect = {"tmp": (q.pw_uid, q.pw_gid, 0o700), "new": (q.pw_uid, q.pw_gid, 0o700),
                  "queue": (q.pw_uid, q.pw_gid, 0o700), "hold": (q.pw_uid, q.pw_gid, 0o700),
                  "corrupt": (q.pw_uid, q.pw_gid, 0o700),
                  "maildrop": (q.pw_uid, grp.getgrnam("masqmail-drop").gr_gid, 0o1730),
                  "private": (0, 0, 0o711), "public": (q.pw_uid, q.pw_gid, 0o755)}
        for area, (uid, gid, mode) in expect.items():
            with self.subTest(area=area):
                st = os.lstat(os.path.join(spool, area))
                self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777), (uid, gid, mode))
        for sock in os.listdir(os.path.join(spool, "private")):
            with self.subTest(socket=sock):
                st = os.lstat(os.path.join(spool, "private", sock))
                self.assertEqual(st.st_mode & 0o777, 0o660)
                self.assertNotEqual(st.st_uid, 0)

    # --- mail as users meet it ---

    def test_mailbox_is_written_by_its_owner_with_mode_0600(self):
        r = self.sendmail_as("mmpriv-b", "mmpriv-b", body=b"Subject: own box\n\nmine\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        box = self.mailbox("mmpriv-b")
        self.assertTrue(self.wait_for_text(box, "Subject: own box"), self.log())
        st = os.stat(box)
        self.assertEqual(st.st_uid, pwd.getpwnam("mmpriv-b").pw_uid)
        self.assertEqual(st.st_mode & 0o777, 0o600)

    def test_smtp_mail_to_root_goes_to_its_alias(self):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.sendmail("cron@testhost.example", ["root@testhost.example"],
                       b"Subject: for root over smtp\r\n\r\nhi\r\n")
        self.assertTrue(self.wait_for_text(self.mailbox("mmpriv-a"), "Subject: for root over smtp"), self.log())
        self.assertFalse(os.path.exists(self.mailbox("root")))
        st = os.stat(self.mailbox("mmpriv-a"))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (pwd.getpwnam("mmpriv-a").pw_uid, 0o600))

    def test_cron_style_sendmail_with_no_new_privs(self):
        # A service with NoNewPrivileges=yes: submission needs no set-id bit.
        r = self.sendmail_as("mmpriv-b", "-FCronDaemon", "-B8BITMIME", "-oem", "root",
                             body=b"Subject: cron output\n\ndone\n", extra=("--no-new-privs",))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.wait_for_text(self.mailbox("mmpriv-a"), "Subject: cron output"), self.log())

    def test_mailbox_symlinked_to_shadow_is_not_written(self):
        shadow = open("/etc/shadow", "rb").read()
        box = self.mailbox("nobody")
        os.symlink("/etc/shadow", box)
        try:
            r = self.sendmail_as("mmpriv-b", "nobody", body=b"Subject: into shadow\n\nx\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(wait_for(lambda: "mailbox " + box + " is a symbolic link" in self.log()
                                     or "symbolic link" in self.log(), 30), self.log())
            self.assertEqual(open("/etc/shadow", "rb").read(), shadow)
        finally:
            os.unlink(box)

    def test_root_without_an_alias_is_never_delivered_as_root(self):
        conf = self.write_instance("noroot", aliases="postmaster: mmpriv-a\n")
        self.start(conf)
        try:
            base = os.path.dirname(conf)
            r = self.sendmail_as("mmpriv-b", "root", conf=conf, body=b"Subject: to bare root\n\nx\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            # Refused for good: the sender gets the bounce, root's box is never made.
            self.assertTrue(self.wait_for_text(self.mailbox("mmpriv-b", base), "never delivered as root"),
                            open(os.path.join(base, "log", "masqmail.log")).read())
            self.assertFalse(os.path.exists(self.mailbox("root", base)))
        finally:
            self.stop(conf)

    # --- the installed files ---

    def test_no_installed_file_is_set_uid_and_postdrop_alone_is_set_gid(self):
        setgid = []
        for d, _, files in os.walk(self.destdir):
            for f in files:
                st = os.lstat(os.path.join(d, f))
                self.assertFalse(st.st_mode & 0o4000, f)
                if st.st_mode & 0o2000:
                    setgid.append((f, grp.getgrgid(st.st_gid).gr_name))
        self.assertEqual(setgid, [("postdrop", "masqmail-drop")])

    def test_root_sendmail_without_a_daemon_leaves_a_drop_enqueue_can_read(self):
        conf = self.write_instance("nodaemon", aliases="postmaster: mmpriv-a\n")
        base = os.path.dirname(conf)
        self.start(conf)  # the supervisor makes the spool; then no daemon runs
        self.stop(conf)
        r = run([self.masqmail, "-C", conf, "-oi", "mmpriv-b"], stdin=b"Subject: root dropped\n\nx\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        maildrop = os.path.join(base, "spool", "maildrop")
        drops = os.listdir(maildrop)
        self.assertEqual(len(drops), 1)
        st = os.stat(os.path.join(maildrop, drops[0]))
        self.assertEqual((st.st_gid, st.st_mode & 0o777), (grp.getgrnam("masqmail-drop").gr_gid, 0o640))
        self.start(conf)
        try:
            self.assertTrue(self.wait_for_text(self.mailbox("mmpriv-b", base), "Subject: root dropped"),
                            open(os.path.join(base, "log", "masqmail.log")).read())
            self.assertTrue(wait_for(lambda: os.listdir(maildrop) == [], 30))
        finally:
            self.stop(conf)

    def test_local_part_with_dot_dot_cannot_write_outside_the_mail_spool(self):
        victim = os.path.join(self.base(), "x")  # mail_dir/../x
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as s:
            s.ehlo("client.example")
            s.mail("someone@client.example")
            code, _ = s.rcpt('"../x"@testhost.example')
            if code == 250:
                s.data(b"Subject: dot dot\r\n\r\nx\r\n")
                # Accepted: local delivery must refuse the mailbox name.
                self.assertTrue(wait_for(lambda: "unsafe mailbox name" in self.log()
                                         or "no such user" in self.log(), 30), self.log())
            else:
                self.assertGreaterEqual(code, 500)
        self.assertFalse(os.path.lexists(victim))
        self.assertFalse(os.path.lexists(os.path.join(self.base(), "mail", "..", "x")))

    def log(self):
        try:
            return open(os.path.join(self.base(), "log", "masqmail.log")).read()
        except OSError:
            return ""


if __name__ == "__main__":
    mmtest.main()
