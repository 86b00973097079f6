# SPDX-License-Identifier: GPL-2.0-or-later
"""Counts test results over meson test logs (JSON lines) and extra TAP lines.
A TAP test counts each of its 'ok'/'not ok' lines; a test whose program
failed without TAP failures counts as one failure. Prints the closing line
'N passed, N failed' (and skipped when any)."""

import json
import re
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def count_tap(text):
    passed = failed = skipped = 0
    for line in text.splitlines():
        m = TAP.match(line)
        if not m:
            continue
        if m.group(1) == "not ok":
            failed += 1
        elif "# SKIP" in m.group(2).upper():
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main(paths):
    passed = failed = skipped = 0
    for path in paths:
        try:
            with open(path) as f:
                content = f.read()
        except FileNotFoundError:
            continue
        if path.endswith(".tap"):
            p, fl, s = count_tap(content)
            passed, failed, skipped = passed + p, failed + fl, skipped + s
            continue
        for line in content.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            p, fl, s = count_tap(entry.get("stdout", "") or "")
            result = entry.get("result", "")
            if result in ("FAIL", "ERROR", "TIMEOUT", "UNEXPECTEDPASS") and fl == 0:
                fl = 1
            elif p + fl + s == 0:
                if result == "OK":
                    p = 1
                elif result == "SKIP":
                    s = 1
            passed, failed, skipped = passed + p, failed + fl, skipped + s
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
