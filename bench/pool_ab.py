#!/usr/bin/env python3
"""bench/pool_ab.py: the embedded pool against a new lua_State per task,
runs interleaved A B C A B C ...

    bench/pool_ab.py [-n RUNS] [--tasks N] [--base-tasks M] [--mode fresh] [BUILD]

A = `lua5.4 bench/pool.lua MODE N` (default: fresh, a new closure made at
each submit, `pool_submit(p, function(x) return x end, i)`, to a pool of
256 workers and a queue of 4096, on one VM thread per core), B =
`BUILD/bin/newstate-bench M <cores>` (each thread its own loop of
luaL_newstate, luaL_openlibs, load the same task's bytecode, call it,
lua_close: the baseline given the same cores as the pool), C =
`newstate-bench M/2 1` (one such loop on one thread). One warm-up run of
each first. Prints for each the median (min-max) of tasks/s over the timed
part, CPU µs per task (the process's user + system time over the timed
part, every thread; and of the whole process, start-up included), the
ratios A/B and A/C of the medians and of each round, and the load
average.
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time

RATE = re.compile(r"= (\d+) tasks/s, cpu ([\d.]+) us/task")


def one_run(argv, env, tasks):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = p.stdout.decode()
    m = RATE.search(out)
    if p.returncode != 0 or not m:
        sys.exit("%s failed (%d): %s %s" % (" ".join(argv), p.returncode, out,
                                            p.stderr.decode()[-2000:]))
    proc_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rate": float(m.group(1)), "cpu": float(m.group(2)),
            "proc_cpu": proc_cpu / tasks * 1e6, "wall": wall}


def spread(xs, fmt="%.0f"):
    return (fmt + " (" + fmt + "-" + fmt + ")") % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=7, help="rounds (default 7)")
    ap.add_argument("--tasks", type=int, default=200000, help="pool tasks per run")
    ap.add_argument("--base-tasks", type=int, default=60000,
                    help="newstate-bench tasks per run on all cores (half that on one)")
    ap.add_argument("--mode", default="fresh", help="bench/pool.lua mode (fresh or trivial)")
    ap.add_argument("build", nargs="?", default="build")
    o = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.path.abspath(o.build)
    env = dict(os.environ)
    env["MUTIRAO_CPATH"] = os.path.join(build, "lib", "?.so") + ";"
    cores = os.cpu_count() or 1
    half = max(o.base_tasks // 2, 1)
    runs = [
        ("A", "pool, " + {"fresh": "a new closure per submit",
                          "trivial": "one closure submitted again"}.get(o.mode, o.mode),
         ["lua5.4", os.path.join(root, "bench", "pool.lua"), o.mode, str(o.tasks)], o.tasks + 100),
        ("B", "new lua_State per task, %d threads" % cores,
         [os.path.join(build, "bin", "newstate-bench"), str(o.base_tasks), str(cores)],
         o.base_tasks),
        ("C", "new lua_State per task, 1 thread",
         [os.path.join(build, "bin", "newstate-bench"), str(half), "1"], half),
    ]
    load0 = os.getloadavg()
    for _, _, argv, tasks in runs:
        one_run(argv, env, tasks)
    res = {tag: [] for tag, _, _, _ in runs}
    loads = []
    for _ in range(o.n):
        for tag, _, argv, tasks in runs:
            loads.append(os.getloadavg()[0])
            res[tag].append(one_run(argv, env, tasks))
    load1 = os.getloadavg()
    print("# %s, %d cores, %d rounds interleaved A B C A B C ..." %
          (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cores, o.n))
    print("# load average (1, 5, 15 min): %.2f %.2f %.2f before, %.2f %.2f %.2f after; "
          "1-min at each run: %.2f-%.2f" % (load0 + load1 + (min(loads), max(loads))))
    for tag, what, argv, _ in runs:
        r = res[tag]
        print("%s %s: %s" % (tag, what, " ".join(a.replace(root + "/", "") for a in argv)))
        print("  tasks/s: %s   cpu us/task: %s (timed part), %s (whole process)" %
              (spread([x["rate"] for x in r]), spread([x["cpu"] for x in r], "%.2f"),
               spread([x["proc_cpu"] for x in r], "%.2f")))
    med = {tag: statistics.median(x["rate"] for x in res[tag]) for tag in res}
    for other in ("B", "C"):
        rounds = [a["rate"] / b["rate"] for a, b in zip(res["A"], res[other])]
        print("A/%s tasks/s: %.2fx (ratio of medians); per round %s" %
              (other, med["A"] / med[other], spread(rounds, "%.2f")))


if __name__ == "__main__":
    main()
