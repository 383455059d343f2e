#!/usr/bin/env python3
"""bench/ab.py: two builds side by side, runs interleaved A B A B ...

    bench/ab.py [-n RUNS] [--units N] BUILD_A BUILD_B -- COMMAND [ARG ...]

Runs COMMAND RUNS times with BUILD_A and RUNS times with BUILD_B, in turn,
after one warm-up run of each. In COMMAND, {build} stands for the build
directory of the run (e.g. `lua5.4 bench/pool.lua trivial 200000` gets
MUTIRAO_CPATH={build}/lib/?.so; set for it; `{build}/bin/x` names a binary).
Prints per build the median, min and max of wall time and of CPU time
(user + sys of the process and its children), CPU per unit of work when
--units says how many units one run does, the ratio B/A of each pair
(median, min, max), and the load average before and after.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time


def one_run(cmd, build):
    env = dict(os.environ)
    env["MUTIRAO_CPATH"] = os.path.join(build, "lib", "?.so") + ";"
    argv = [a.replace("{build}", build) for a in cmd]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr.decode()[-2000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def spread(xs):
    return "median %.4g  min %.4g  max %.4g" % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=9)
    ap.add_argument("--units", type=float, default=0)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    o = ap.parse_args()
    cmd = o.cmd[1:] if o.cmd and o.cmd[0] == "--" else o.cmd
    if not cmd:
        ap.error("no command")
    load0 = os.getloadavg()
    one_run(cmd, o.a)
    one_run(cmd, o.b)
    res = {o.a: [], o.b: []}
    for _ in range(o.n):
        for b in (o.a, o.b):
            res[b].append(one_run(cmd, b))
    load1 = os.getloadavg()
    print("command: %s" % " ".join(cmd))
    print("runs: %d each, interleaved A B A B ...; load average %.2f %.2f %.2f before, "
          "%.2f %.2f %.2f after" % ((o.n,) + load0 + load1))
    for tag, b in (("A", o.a), ("B", o.b)):
        walls = [w for w, _ in res[b]]
        cpus = [c for _, c in res[b]]
        print("%s %s\n  wall s: %s\n  cpu s:  %s" % (tag, b, spread(walls), spread(cpus)))
        if o.units:
            print("  cpu us per unit: %s" % spread([c / o.units * 1e6 for c in cpus]))
    wr = [rb[0] / ra[0] for ra, rb in zip(res[o.a], res[o.b])]
    cr = [rb[1] / ra[1] for ra, rb in zip(res[o.a], res[o.b])]
    print("B/A wall: %s\nB/A cpu:  %s" % (spread(wr), spread(cr)))


if __name__ == "__main__":
    main()
