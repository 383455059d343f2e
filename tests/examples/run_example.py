#!/usr/bin/env python3
"""tests/examples/run_example.py: runs one example with `mutirao run` and checks it.

usage: run_example.py MUTIRAO FILE [--code N] [--out REGEX]... [--err REGEX]...
                      [--min SECONDS] [--max SECONDS]

Checks the exit status (default 0), that every --out pattern appears on stdout and
every --err pattern on stderr (Python regular expressions, multiline), and that the
wall time lies within [--min, --max].
"""
import argparse
import os
import re
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mutirao")
    ap.add_argument("file")
    ap.add_argument("--code", type=int, default=0)
    ap.add_argument("--out", action="append", default=[])
    ap.add_argument("--err", action="append", default=[])
    ap.add_argument("--min", type=float)
    ap.add_argument("--max", type=float)
    a = ap.parse_args()
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MUTIRAO_LOG_LEVEL", None)
    t0 = time.monotonic()
    p = subprocess.run([a.mutirao, "run", a.file], capture_output=True, env=env, timeout=120)
    elapsed = time.monotonic() - t0
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    problems = []
    if p.returncode != a.code:
        problems.append("exit status %d, expected %d" % (p.returncode, a.code))
    for pat in a.out:
        if not re.search(pat, out, re.M):
            problems.append("stdout lacks /%s/" % pat)
    for pat in a.err:
        if not re.search(pat, err, re.M):
            problems.append("stderr lacks /%s/" % pat)
    if re.search(r"(Address|Leak|Undefined)Sanitizer|runtime error: ", err):
        problems.append("a sanitizer reported an error (see stderr)")
    if a.min is not None and elapsed < a.min:
        problems.append("took %.2fs, expected at least %.2fs" % (elapsed, a.min))
    if a.max is not None and elapsed > a.max:
        problems.append("took %.2fs, expected at most %.2fs" % (elapsed, a.max))
    print("$ mutirao run %s   (%.2fs, exit %d)" % (a.file, elapsed, p.returncode))
    if problems:
        print("--- stdout ---\n%s--- stderr ---\n%s--------------" % (out, err))
        for pr in problems:
            print("FAIL: " + pr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
