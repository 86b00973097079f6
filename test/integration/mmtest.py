# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared helpers for integration tests: paths of the build tree, private
instances under a temporary folder, free loopback ports, and a unittest
runner that prints TAP so meson counts each test."""

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("MM_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("MM_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
MASQMAIL = os.path.join(BUILD, "wrappers", "masqmail", "masqmail")
POSTDROP = os.path.join(BUILD, "wrappers", "postdrop", "postdrop")


def _built_with_sanitizers():
    try:
        with open(MASQMAIL, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# AddressSanitizer keeps freed memory in quarantine and adds shadow memory,
# and everything runs several times slower: resident-size bounds and rates
# are only meaningful in a normal build.
SANITIZED = _built_with_sanitizers()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, stdin=b"", timeout=60, env=None, executable=None):
    """Runs a program without a shell; returns CompletedProcess with bytes."""
    return subprocess.run(args, input=stdin, capture_output=True, timeout=timeout,
                          env=env, executable=executable)


def wait_for(predicate, timeout=20.0, interval=0.05):
    """Polls predicate() until it returns something true or timeout seconds
    pass; returns its last value (so a caller can assert on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def split_mbox(data):
    """The messages of an mbox (bytes), each starting with its From_ line.
    Raises ValueError when the file does not start with a From_ line."""
    if not data:
        return []
    if not data.startswith(b"From "):
        raise ValueError("mbox does not start with a From_ line: %r" % data[:80])
    starts = [m.start() for m in re.finditer(rb"(?m)^From ", data)]
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


def proc_cmdline(pid):
    """argv of a live process as a list of str; [] when gone or a zombie."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


class Instance:
    """A private masqmail instance: config, spool, logs under one temp folder."""

    def __init__(self, extra_conf="", host_name="test.example"):
        self.tmp = tempfile.TemporaryDirectory(prefix="mm-it-")
        self.root = self.tmp.name
        for d in ("spool", "log", "lock", "run", "mail"):
            os.mkdir(os.path.join(self.root, d))
        self.conf = os.path.join(self.root, "masqmail.conf")
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(f'host_name = "{host_name}"\n'
                    f'spool_dir = "{self.root}/spool"\n'
                    f'log_dir = "{self.root}/log"\n'
                    f'lock_dir = "{self.root}/lock"\n'
                    f'pid_dir = "{self.root}/run"\n'
                    f'mail_dir = "{self.root}/mail"\n'
                    f'listen_addresses = "127.0.0.1:{self.port}"\n'
                    f'run_as_user = true\n' + extra_conf)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def masqmail(self, *args, stdin=b"", timeout=60):
        return run([MASQMAIL, "-C", self.conf, *args], stdin=stdin, timeout=timeout)

    def close(self):
        self.tmp.cleanup()

    # --- daemons (masqmail -bd) and the instance's mailboxes ---

    def pid_file(self):
        return self.path("run", "masqmail.pid")

    def daemon_pid(self):
        """The supervisor's pid from the pid file, or None."""
        try:
            with open(self.pid_file()) as f:
                text = f.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def processes(self):
        """{pid: argv} of live processes started for this instance (the front
        end, the supervisor and the daemons name its config on their command line)."""
        confs = {self.conf, os.path.realpath(self.conf)}
        found = {}
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            argv = proc_cmdline(name)
            if any(a in confs for a in argv):
                found[int(name)] = argv
        return found

    def start(self, *args, timeout=30):
        """masqmail -bd -q30m: returns once the supervisor runs (pid file written)
        and enqueue, qmgr and local-deliver have logged their start.
        Raises AssertionError when it does not start."""
        marks = ("enqueue started", "qmgr started", "local-deliver start")
        with open(self.conf) as f:
            listens = [l for l in f if l.startswith("listen_addresses")][-1:] != ['listen_addresses = ""\n']
        if listens:
            marks += ("smtp-listener started",)
        before = {m: self.log_text().count(m) for m in marks}
        r = self.masqmail("-bd", *(args or ("-q30m",)), timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"masqmail -bd exited {r.returncode}: {r.stderr!r}")
        if not wait_for(self.daemon_pid, timeout):
            raise AssertionError("masqmail -bd wrote no pid file")
        # -bd returns once the daemons are started, not once each has done its
        # start-up (qmgr's first scan of new/ is a queue run): wait for that.
        if not wait_for(lambda: all(self.log_text().count(m) > before[m] for m in marks), timeout):
            raise AssertionError("the daemons did not log their start:\n" + self.log_text())
        return r

    def stop(self, timeout=30):
        """SIGTERM to the supervisor named by the pid file; waits until no pid
        file names a process and no process of this instance is left. Anything still
        there after timeout is killed; returns True for a clean stop."""
        pid = self.daemon_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        clean = bool(wait_for(lambda: self.daemon_pid() is None and not self.processes(), timeout))
        if not clean:
            for p in self.processes():
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return clean

    def log_text(self):
        try:
            with open(self.path("log", "masqmail.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def read_mbox(self, user):
        """The bytes of mail_dir/USER (b"" when absent), read under a shared
        fcntl lock as a mail reader would: local-deliver holds the write lock
        until its append is complete and fsynced, so no half message is seen."""
        try:
            with open(self.path("mail", user), "rb") as f:
                fcntl.lockf(f, fcntl.LOCK_SH)
                try:
                    return f.read()
                finally:
                    fcntl.lockf(f, fcntl.LOCK_UN)
        except FileNotFoundError:
            return b""

    def mbox_messages(self, user):
        return split_mbox(self.read_mbox(user))

    def mailq_json(self):
        """masqmail -bp --json parsed: one dict per queued message."""
        r = self.masqmail("-bp", "--json")
        if r.returncode != 0:
            raise AssertionError(f"mailq --json exited {r.returncode}: {r.stderr!r}")
        return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


class _TapResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _line(self, ok, test, extra=""):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {test.id()}{extra}", flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, f" # SKIP {reason}")

    # A failed subTest fails its test: one "not ok" line for the test (the
    # first failure; later ones as comments), since unittest then reports
    # nothing else for it.
    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is None:
            return
        if test.id() not in getattr(self, "_subtest_failed", set()):
            self._subtest_failed = getattr(self, "_subtest_failed", set()) | {test.id()}
            self._line(False, test, f" {subtest._subDescription()}")
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    # @unittest.expectedFailure: "not ok ... # TODO" while the behaviour is
    # missing; an unexpected pass fails the run (wasSuccessful is False).
    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._line(False, test, " # TODO expected failure")
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line(True, test, " # TODO unexpected success: remove @unittest.expectedFailure")


def main():
    """Runs the calling module's tests and prints TAP."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    print(f"1..{suite.countTestCases()}", flush=True)
    result = _TapResult()
    suite.run(result)
    sys.exit(0 if result.wasSuccessful() else 1)
