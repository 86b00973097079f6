# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared helpers for integration tests: paths of the build tree, private
instances under a temporary folder, free loopback ports, and a unittest
runner that prints TAP so meson counts each test."""

import os
import socket
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get("MM_BUILD_ROOT", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SOURCE = os.environ.get("MM_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
MASQMAIL = os.path.join(BUILD, "wrappers", "masqmail", "masqmail")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, stdin=b"", timeout=60, env=None, executable=None):
    """Runs a program without a shell; returns CompletedProcess with bytes."""
    return subprocess.run(args, input=stdin, capture_output=True, timeout=timeout,
                          env=env, executable=executable)


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


def main():
    """Runs the calling module's tests and prints TAP."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules["__main__"])
    print(f"1..{suite.countTestCases()}", flush=True)
    result = _TapResult()
    suite.run(result)
    sys.exit(0 if result.wasSuccessful() else 1)
