#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The ppp, NetworkManager and networkd-dispatcher hooks of packaging/,
called as ppp (through run-parts, as Debian's /etc/ppp/ip-up does),
NetworkManager's dispatcher and networkd-dispatcher call them: with their
arguments and environment. A private instance has two query routes, isp1
and isp2, each taking only its own domain, to two aiosmtpd smarthosts
(smarthost.py) on 127.0.0.1; mail for both and for a local user waits in the
queue. A hook must record its route in the online file, flush that route's
mail through the right smarthost and leave the rest queued; and it must
refuse hostile names, ignore actions that are not its own, and exit 0.

The hooks read their settings under MASQMAIL_HOOK_ROOT: a folder laid out as
an installed system (etc/default/masqmail, usr/share/masqmail/online-hook.sh,
etc/masqmail/*-routes, run/masqmail/online), built from packaging/ per test.
Every test runs with the daemons (-bd) and without (where -qo starts a
one-pass supervisor)."""

import os
import shutil
import stat
import subprocess
import unittest

import mmtest
from mmtest import MASQMAIL, SOURCE, Instance, wait_for
from smarthost import Smarthost

TIMEOUT = 30  # "eventually": generous, never a performance assertion
PACKAGING = os.path.join(SOURCE, "packaging")
IP_UP_D = os.path.join(PACKAGING, "ppp", "ip-up.d")
IP_DOWN_D = os.path.join(PACKAGING, "ppp", "ip-down.d")
NM_SCRIPT = os.path.join(PACKAGING, "networkmanager", "dispatcher.d", "90-masqmail")
NETWORKD = os.path.join(PACKAGING, "networkd-dispatcher")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

HOSTILE = ["-x", "a;rm", "../x", "", "a b", "isp1\nisp2", "$(touch MARK)", "`touch MARK`", ".hidden", "x" * 65]


def message(to, subject):
    return f"From: joe\nTo: {to}\nSubject: {subject}\n\nWaiting for a link.\n".encode()


class Hooks:
    """The tests, run once per way of running masqmail (see the subclasses)."""

    daemon = False

    def setUp(self):
        self.inst = Instance()
        self.addCleanup(self.inst.close)
        self.sh1, self.sh2 = Smarthost(), Smarthost()
        self.addCleanup(self.sh1.stop)
        self.addCleanup(self.sh2.stop)
        r1 = self.inst.write("isp1.route", f'mail_host = "127.0.0.1:{self.sh1.port}"\ntls = none\n'
                             'allowed_recipients = "*@one.example"\n')
        r2 = self.inst.write("isp2.route", f'mail_host = "127.0.0.1:{self.sh2.port}"\ntls = none\n'
                             'allowed_recipients = "*@two.example"\n')
        self.root = self.inst.path("hookroot")
        self.online = os.path.join(self.root, "run", "masqmail", "online")
        with open(self.inst.conf, "a") as f:
            f.write(f'query_routes.isp1 = "{r1}"\nquery_routes.isp2 = "{r2}"\n'
                    f'online_query = "/bin/cat {self.online}"\n')
        self.make_hook_root()
        # Stops the daemons, and waits for a detached -qo and its supervisor.
        self.addCleanup(self.stop_instance)
        if self.daemon:
            self.inst.start()
        self.q1 = self.queue(message("friend@one.example", "for isp1"))
        self.q2 = self.queue(message("friend@two.example", "for isp2"))
        self.q3 = self.queue(message("bob", "for bob"))

    def make_hook_root(self, defaults="FLUSH=background\n"):
        """The installed layout: the library copied from packaging/, the
        shipped defaults file with this instance's settings appended, the
        mapping files."""
        share = os.path.join(self.root, "usr", "share", "masqmail")
        os.makedirs(share, exist_ok=True)
        shutil.copy(os.path.join(PACKAGING, "hooks", "online-hook.sh"), share)
        os.makedirs(os.path.join(self.root, "etc", "default"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "etc", "masqmail"), exist_ok=True)
        with open(os.path.join(PACKAGING, "default", "masqmail")) as f:
            shipped = f.read()
        self.write_root("etc/default/masqmail", shipped + f"MASQMAIL={MASQMAIL}\n"
                        f'MASQMAIL_CONF="{self.inst.conf}"\n' + defaults)
        self.write_root("etc/masqmail/nm-routes", "# connection id, then route\n"
                        "Home WiFi isp1\n  Mobile  broadband\tisp2  \nBad one a;rm\n")
        self.write_root("etc/masqmail/networkd-routes", "ppp0 isp1\nwwan0 isp2\n")

    def write_root(self, name, text, mode=0o644):
        p = os.path.join(self.root, name)
        if os.path.exists(p):
            os.unlink(p)  # a new file, owned by us
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def stop_instance(self):
        self.assertTrue(self.inst.stop(timeout=TIMEOUT), "instance did not stop:\n" + self.inst.log_text())

    def queue(self, stdin):
        r = self.inst.masqmail("-odq", "-t", "-oi", stdin=stdin)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    # --- calling the hooks as their callers do ---

    def env(self, **extra):
        return {"PATH": PATH, "MASQMAIL_HOOK_ROOT": self.root, **extra}

    def call(self, argv, env):
        r = subprocess.run(argv, env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                           cwd=self.inst.root)
        self.assertEqual(r.returncode, 0, f"{argv}: {r.stderr!r}")
        return r

    def ppp(self, direction, ipparam, iface="ppp0"):
        """Debian's /etc/ppp/ip-up (ip-down): PPP_* exported, then run-parts
        on the hook folder with pppd's six arguments."""
        args = [iface, "/dev/ttyUSB0", "115200", "10.0.0.2", "10.0.0.1", ipparam]
        env = self.env(PPP_IFACE=iface, PPP_TTY="/dev/ttyUSB0", PPP_SPEED="115200",
                       PPP_LOCAL="10.0.0.2", PPP_REMOTE="10.0.0.1", PPP_IPPARAM=ipparam,
                       IFNAME=iface, DEVICE="/dev/ttyUSB0", IPLOCAL="10.0.0.2", IPREMOTE="10.0.0.1",
                       SPEED="115200", ORIG_UID="0", PPPLOGNAME="root")
        folder = IP_UP_D if direction == "up" else IP_DOWN_D
        return self.call(["run-parts", *(f"--arg={a}" for a in args), folder], env)

    def nm(self, iface, action, connection_id=None, **extra):
        """NetworkManager's dispatcher: interface and action as arguments,
        the connection in the environment."""
        env = self.env(NM_DISPATCHER_ACTION=action, **extra)
        if connection_id is not None:
            env.update(CONNECTION_ID=connection_id, CONNECTION_UUID="5fb8c2a6-2bd3-4b1a-9c43-0d4e7b1f3a10",
                       CONNECTION_FILENAME=f"/etc/NetworkManager/system-connections/{connection_id}.nmconnection",
                       DEVICE_IFACE=iface, DEVICE_IP_IFACE=iface, IP4_NUM_ADDRESSES="1",
                       IP4_ADDRESS_0="192.168.1.20/24 192.168.1.1")
        return self.call([NM_SCRIPT, iface, action], env)

    def networkd(self, state, iface):
        """networkd-dispatcher: the script of STATE's folder, no arguments,
        the state in the environment."""
        env = self.env(IFACE=iface, STATE=state, OperationalState=state, AdministrativeState="configured",
                       IP_ADDRS="10.1.2.3", IP6_ADDRS="", ESSID="")
        return self.call([os.path.join(NETWORKD, f"{state}.d", "masqmail")], env)

    # --- looking ---

    def online_text(self):
        try:
            with open(self.online) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def diagnosis(self):
        return f"queue: {self.inst.mailq_json()}\nlog:\n{self.inst.log_text()}"

    def state_of(self, address):
        for m in self.inst.mailq_json():
            for r in m["recipients"]:
                if r["address"] == address:
                    return r["state"]
        return None

    def idle(self):
        """No queue run of this instance is going on (a detached -qo has
        finished; the daemons, when running, stay)."""
        def quiet():
            return not any("-qo" in argv or "--once" in argv for argv in self.inst.processes().values())
        self.assertTrue(wait_for(quiet, TIMEOUT), f"a queue run is still going on:\n{self.diagnosis()}")

    def assert_flushed(self, sh, address):
        """address left through sh; nothing else did."""
        m = sh.wait_for(1, TIMEOUT)[0]
        self.assertEqual(m.rcpt_tos, [address])
        self.assertTrue(wait_for(lambda: self.state_of(address) is None, TIMEOUT), self.diagnosis())
        self.idle()

    def assert_still_queued(self):
        """The mail for the routes that are not up waits, never tried."""
        self.idle()
        for address in ("friend@one.example", "friend@two.example"):
            delivered = any(address in m.rcpt_tos for sh in (self.sh1, self.sh2) for m in sh.messages)
            if not delivered:
                self.assertEqual(self.state_of(address), "pending", self.diagnosis())
        if not self.daemon:
            self.assertEqual(self.state_of("bob@test.example"), "pending", "-qo delivers no local mail")

    def assert_nothing_happened(self):
        self.assertIsNone(self.online_text())
        self.assert_still_queued()
        self.assertEqual((self.sh1.connections, self.sh2.connections), (0, 0))

    # --- ppp ---

    def test_ppp_up_flushes_the_ipparam_route_and_down_forgets_it(self):
        self.ppp("up", "isp1")
        self.assertEqual(self.online_text(), "isp1\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.online).st_mode), 0o644)
        self.assert_flushed(self.sh1, "friend@one.example")
        self.assert_still_queued()
        self.assertEqual(self.sh2.connections, 0)

        # Another link's ip-down leaves the record; this link's removes it.
        self.ppp("down", "isp2", iface="ppp1")
        self.assertEqual(self.online_text(), "isp1\n")
        self.ppp("down", "isp1")
        self.assertIsNone(self.online_text())
        self.assertEqual([n for n in os.listdir(os.path.dirname(self.online)) if not n.startswith(".online.lock")],
                         [], "no temporary file is left")

        self.ppp("up", "isp2")
        self.assertEqual(self.online_text(), "isp2\n")
        self.assert_flushed(self.sh2, "friend@two.example")
        self.assertEqual(len(self.sh1.messages), 1)

    def test_ppp_refuses_hostile_ipparam(self):
        for ipparam in HOSTILE:
            with self.subTest(ipparam=ipparam):
                r = self.ppp("up", ipparam)
                if ipparam:
                    self.assertIn(b"ignoring", r.stderr)
                self.ppp("down", ipparam)
        self.assertFalse(os.path.exists(self.inst.path("MARK")))
        self.assertFalse(os.path.exists(os.path.join(self.root, "x")))
        self.assert_nothing_happened()
        # A hostile ip-down leaves a real link's record alone.
        self.ppp("up", "isp1")
        for ipparam in HOSTILE:
            self.ppp("down", ipparam)
        self.assertEqual(self.online_text(), "isp1\n")
        self.assert_flushed(self.sh1, "friend@one.example")

    # --- NetworkManager ---

    def test_networkmanager_maps_the_connection_and_flushes_on_up(self):
        # Actions that are not up, connectivity-change to FULL or down do nothing.
        for action in ("pre-up", "pre-down", "vpn-up", "vpn-pre-up", "dhcp4-change", "dhcp6-change",
                       "reapply", "hostname", "dns-change", "vpn-down", "bogus"):
            with self.subTest(action=action):
                self.nm("wlan0" if action != "hostname" else "none", action, "Home WiFi")
        for state in ("NONE", "PORTAL", "LIMITED", "UNKNOWN"):
            self.nm("", "connectivity-change", CONNECTIVITY_STATE=state)
        self.nm("", "connectivity-change", CONNECTIVITY_STATE="FULL")  # nothing recorded, no nmcli
        self.nm("wlan0", "up", "cafe")  # maps to no route, names none
        self.nm("wlan0", "up", "Bad one")  # maps to a name that is refused
        self.nm("wlan0", "up", "-x")
        self.assert_nothing_happened()

        self.nm("wlan0", "up", "Home WiFi")
        self.assertEqual(self.online_text(), "isp1\n")
        self.assert_flushed(self.sh1, "friend@one.example")
        self.assert_still_queued()
        # Another connection going down leaves the record; its own removes it.
        self.nm("wwan0", "down", "Mobile  broadband")
        self.assertEqual(self.online_text(), "isp1\n")
        self.nm("wlan0", "down", "Home WiFi")
        self.assertIsNone(self.online_text())

        # A connection whose id is a route of masqmail.conf needs no mapping.
        self.nm("usb0", "up", "isp2")
        self.assertEqual(self.online_text(), "isp2\n")
        self.assert_flushed(self.sh2, "friend@two.example")
        self.assertEqual(len(self.sh1.messages), 1)

    def test_networkmanager_connectivity_full_flushes_again(self):
        self.nm("wwan0", "up", "Mobile  broadband")  # blanks inside the id, as in the file
        self.assertEqual(self.online_text(), "isp2\n")
        self.assert_flushed(self.sh2, "friend@two.example")
        # Mail queued behind a captive portal leaves when connectivity is full.
        self.queue(message("later@two.example", "after the portal"))
        self.nm("", "connectivity-change", CONNECTIVITY_STATE="LIMITED")
        self.idle()
        self.assertEqual(self.state_of("later@two.example"), "pending")
        self.nm("", "connectivity-change", CONNECTIVITY_STATE="FULL")
        self.assertEqual([m.rcpt_tos for m in self.sh2.wait_for(2, TIMEOUT)][1], ["later@two.example"])
        self.assertEqual(self.online_text(), "isp2\n")
        self.idle()
        self.assertEqual(self.sh1.connections, 0)

    def test_networkmanager_connectivity_full_asks_nmcli_when_nothing_is_recorded(self):
        fake = self.inst.path("fakebin")
        os.mkdir(fake)
        nmcli = os.path.join(fake, "nmcli")
        with open(nmcli, "w") as f:
            f.write("#!/bin/sh\n[ \"$*\" = '-g NAME connection show --active' ] || exit 2\n"
                    "printf '%s\\n' 'lo' 'cafe\\:guest' 'Home WiFi'\n")
        os.chmod(nmcli, 0o755)
        env = self.env(NM_DISPATCHER_ACTION="connectivity-change", CONNECTIVITY_STATE="FULL")
        env["PATH"] = fake + ":" + PATH
        self.call([NM_SCRIPT, "", "connectivity-change"], env)
        self.assertEqual(self.online_text(), "isp1\n")
        self.assert_flushed(self.sh1, "friend@one.example")
        self.assertEqual(self.sh2.connections, 0)

    # --- networkd-dispatcher ---

    def test_networkd_routable_flushes_and_off_forgets(self):
        for state in ("degraded", "carrier", "dormant", "configuring"):
            env = self.env(IFACE="wwan0", STATE=state)
            self.call([os.path.join(NETWORKD, "routable.d", "masqmail")], env)
        self.networkd("routable", "eth0")  # no mapping, not a route
        self.assert_nothing_happened()

        self.networkd("routable", "wwan0")
        self.assertEqual(self.online_text(), "isp2\n")
        self.assert_flushed(self.sh2, "friend@two.example")
        self.assert_still_queued()
        self.networkd("off", "ppp0")  # another interface's route
        self.assertEqual(self.online_text(), "isp2\n")
        self.networkd("no-carrier", "wwan0")
        self.assertIsNone(self.online_text())
        self.networkd("routable", "ppp0")
        self.assertEqual(self.online_text(), "isp1\n")
        self.assert_flushed(self.sh1, "friend@one.example")
        self.networkd("off", "ppp0")
        self.assertIsNone(self.online_text())

    # --- the defaults file ---

    def test_defaults_switch_off_and_foreground(self):
        self.make_hook_root("MASQMAIL_HOOKS=no\n")
        self.ppp("up", "isp1")
        self.nm("wlan0", "up", "Home WiFi")
        self.networkd("routable", "ppp0")
        self.assert_nothing_happened()

        # A defaults file others may write is not trusted: nothing from it is used.
        self.make_hook_root("MASQMAIL_HOOKS=no\n")
        os.chmod(os.path.join(self.root, "etc", "default", "masqmail"), 0o666)
        r = self.ppp("up", "isp1")
        self.assertIn(b"writable by group or others", r.stderr)
        # It fell back to the defaults: ROOT/usr/sbin/masqmail, which is not there.
        self.assertEqual(self.online_text(), "isp1\n")
        self.ppp("down", "isp1")

        # Nor one owned by another user (only root can give a file away).
        if os.geteuid() == 0:
            self.make_hook_root("MASQMAIL_HOOKS=no\n")
            os.chown(os.path.join(self.root, "etc", "default", "masqmail"), 65534, 65534)
            r = self.ppp("up", "isp1")
            self.assertIn(b"owned by another user", r.stderr)
            self.assertEqual(self.online_text(), "isp1\n")
            self.ppp("down", "isp1")

        self.make_hook_root("FLUSH=no\n")
        self.ppp("up", "isp1")
        self.assertEqual(self.online_text(), "isp1\n")
        if not self.daemon:  # the daemons' own queue runs would use the record
            self.assert_still_queued()
            self.assertEqual(self.sh1.connections, 0)
        self.ppp("down", "isp1")

        self.make_hook_root("FLUSH=foreground\n")
        self.ppp("up", "isp1")
        self.assert_flushed(self.sh1, "friend@one.example")


class WithoutDaemon(Hooks, unittest.TestCase):
    daemon = False


class WithDaemons(Hooks, unittest.TestCase):
    daemon = True


if __name__ == "__main__":
    mmtest.main()
