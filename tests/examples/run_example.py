#!/usr/bin/env python3
"""tests/examples/run_example.py: runs one example with `mutirao run` and checks it.

usage: run_example.py MUTIRAO FILE [--code N] [--out REGEX]... [--err REGEX]...
                      [--not-out REGEX]... [--not-err REGEX]... [--min SECONDS]
                      [--max SECONDS] [--server ARGS] [--param KEY=VALUE]...
                      [--workflow NAME]

Checks the exit status (default 0), that every --out pattern appears on stdout and
every --err pattern on stderr (and no --not-out/--not-err pattern does; Python
regular expressions, multiline), and that the wall time lies within [--min, --max].

--server ARGS starts tests/helpers/http_server.py ARGS for the run (stopped after);
in --param values, {port1}, {port2}... are its ports and {refused} a port that
refuses connections. --param KEY=VALUE and --workflow NAME are passed to `mutirao run`.
"""
import argparse
import os
import re
import subprocess
import sys
import time

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers")


def start_server(args):
    """Starts the helper HTTP server; returns (process, {"port1": .., "refused": ..})."""
    p = subprocess.Popen([sys.executable, os.path.join(HELPERS, "http_server.py")] + args.split(),
                         stdout=subprocess.PIPE)
    words = p.stdout.readline().decode().split()
    if not words or words[0] != "PORTS":
        p.kill()
        raise SystemExit("the helper HTTP server did not start")
    ports = words[1:words.index("REFUSED")]
    names = {"port%d" % (i + 1): port for i, port in enumerate(ports)}
    names["refused"] = words[words.index("REFUSED") + 1]
    return p, names


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mutirao")
    ap.add_argument("file")
    ap.add_argument("--code", type=int, default=0)
    ap.add_argument("--out", action="append", default=[])
    ap.add_argument("--err", action="append", default=[])
    ap.add_argument("--min", type=float)
    ap.add_argument("--max", type=float)
    ap.add_argument("--not-out", action="append", default=[])
    ap.add_argument("--not-err", action="append", default=[])
    ap.add_argument("--server")
    ap.add_argument("--param", action="append", default=[])  # also --param=KEY=VALUE
    ap.add_argument("--workflow")
    a = ap.parse_args()
    env = dict(os.environ, NO_COLOR="1")
    env.pop("MUTIRAO_LOG_LEVEL", None)
    server, names = (None, {})
    if a.server is not None:
        server, names = start_server(a.server)
    cmd = [a.mutirao, "run", a.file]
    if a.workflow is not None:
        cmd += ["--workflow", a.workflow]
    for kv in a.param:
        cmd += ["--param", kv.format(**names)]
    try:
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        if server:
            server.terminate()
            server.wait()
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
    for pat in a.not_out:
        if re.search(pat, out, re.M):
            problems.append("stdout has /%s/" % pat)
    for pat in a.not_err:
        if re.search(pat, err, re.M):
            problems.append("stderr has /%s/" % pat)
    if re.search(r"(Address|Leak|Undefined)Sanitizer|runtime error: ", err):
        problems.append("a sanitizer reported an error (see stderr)")
    if a.min is not None and elapsed < a.min:
        problems.append("took %.2fs, expected at least %.2fs" % (elapsed, a.min))
    if a.max is not None and elapsed > a.max:
        problems.append("took %.2fs, expected at most %.2fs" % (elapsed, a.max))
    print("$ mutirao %s   (%.2fs, exit %d)" % (" ".join(cmd[1:]), elapsed, p.returncode))
    if problems:
        print("--- stdout ---\n%s--- stderr ---\n%s--------------" % (out, err))
        for pr in problems:
            print("FAIL: " + pr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
