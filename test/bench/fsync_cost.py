#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What one message's durability costs on this disk, without any MTA: N
times, write a 4 KiB file and fsync it, rename it into a directory and
fsync that directory (masqmail's commit, DESIGN.md rule 1), and the same
without the directory fsync (Postfix's single fsync). Prints ms per
message for each and their difference.
    /usr/bin/python3 test/bench/fsync_cost.py [--dir /var/tmp] [-n 300]"""
import argparse
import os
import shutil
import tempfile
import time


def run(base, n, dir_fsync):
    tmp, new = os.path.join(base, "tmp"), os.path.join(base, "new")
    os.makedirs(tmp, exist_ok=True)
    os.makedirs(new, exist_ok=True)
    d = os.open(new, os.O_RDONLY)
    data = b"x" * 4300
    start = time.monotonic()
    for i in range(n):
        path = os.path.join(tmp, str(i))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.rename(path, os.path.join(new, str(i)))
        if dir_fsync:
            os.fsync(d)
    elapsed = time.monotonic() - start
    os.close(d)
    shutil.rmtree(base)
    return elapsed / n * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("-n", type=int, default=300)
    a = ap.parse_args()
    both = run(tempfile.mkdtemp(prefix="mm-fsync-", dir=a.dir), a.n, True)
    one = run(tempfile.mkdtemp(prefix="mm-fsync-", dir=a.dir), a.n, False)
    print(f"file fsync + rename + directory fsync: {both:.3f} ms per message")
    print(f"file fsync + rename:                   {one:.3f} ms per message")
    print(f"the directory fsync costs:             {both - one:.3f} ms per message")


if __name__ == "__main__":
    main()
