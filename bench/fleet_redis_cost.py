#!/usr/bin/env python3
"""bench/fleet_redis_cost.py [BUILD] [N]: what Redis does per fleet task.

One mutirao-worker and one `mutirao run --fleet bench/fleet.lua` producer of
BUILD (default build) run N trivial tasks (default 10000) against the
services of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS and
MUTIRAO_TEST_REDIS_URL, or build-services/env.sh). Redis's command
statistics are reset before the run and read after it (INFO commandstats:
calls and microseconds inside each command, not the network and parsing
around them; a script's time includes the commands it calls, which are
also counted on their own lines). To split EVALSHA by script, the slow log
records every call of 50 µs or more during the run (slowlog-log-slower-than
50: the batched script calls, not the single commands inside them, whose
logging would inflate the scripts' time); each script is named by its sha1
and the shape of its first key, and the share of EVALSHA's time the slow
log saw is printed. Also redis-server's CPU µs over the run (utime+stime
from /proc). Prints figures per task; the slow log's settings are
restored after."""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "helpers"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import redis_client  # noqa: E402
import fleet_scripts  # noqa: E402


def env_services():
    if not os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS"):
        with open(os.path.join(ROOT, "build-services", "env.sh")) as f:
            for m in re.finditer(r"export (\w+)=(\S+)", f.read()):
                os.environ[m.group(1)] = m.group(2)


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def redis_pid(port):
    out = subprocess.run(["ss", "-ltnpH", "sport = :%d" % port], capture_output=True,
                         text=True).stdout
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def shape(key):
    """A key with its ids and numbers replaced, e.g. mutirao:sub:P:N."""
    k = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    k = re.sub(r"[0-9a-f]{32}", "R", k)
    k = re.sub(r"\d+", "N", k)
    return k[:60]


def main():
    build = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    env_services()
    url = os.environ["MUTIRAO_TEST_REDIS_URL"]
    env = dict(os.environ)
    env.pop("MUTIRAO_CONFIG", None)
    env.update({"MUTIRAO_KAFKA_BROKERS": os.environ["MUTIRAO_TEST_KAFKA_BROKERS"],
                "MUTIRAO_REDIS_URL": url})
    port = int(re.search(r":(\d+)(/|$)", url.split("@")[-1]).group(1))
    rpid = redis_pid(port)
    c = redis_client.connect(url)
    was = [c.call("CONFIG", "GET", k)[1] for k in ("slowlog-log-slower-than", "slowlog-max-len")]
    pool = "rc%d-%d" % (time.time(), os.getpid())
    tmp = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    w = subprocess.Popen([os.path.join(build, "bin", "mutirao-worker"), "--pools", pool, "--id", pool,
                          "--log-level", "warn"], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # the worker joins its group
        c.call("CONFIG", "SET", "slowlog-max-len", str(n))
        c.call("CONFIG", "SET", "slowlog-log-slower-than", "50")
        c.call("SLOWLOG", "RESET")
        c.call("CONFIG", "RESETSTAT")
        t0 = ticks(rpid) if rpid else 0
        e = dict(env, FLEET_BENCH_MODE="throughput", FLEET_BENCH_N=str(n), FLEET_BENCH_POOL=pool,
                 FLEET_BENCH_SETTLE_MS="2000")
        p = subprocess.run([os.path.join(build, "bin", "mutirao"), "run", "--fleet",
                            os.path.join(ROOT, "bench", "fleet.lua")], env=e, cwd=tmp,
                           capture_output=True, text=True, timeout=300)
        t1 = ticks(rpid) if rpid else 0
        c.call("CONFIG", "SET", "slowlog-log-slower-than", "-1")
        print("".join(l + "\n" for l in p.stdout.splitlines() if l.startswith("RESULT")), end="")
        log = c.call("SLOWLOG", "GET", "-1")
        stats = c.call("INFO", "commandstats").decode()
    finally:
        c.call("CONFIG", "SET", "slowlog-log-slower-than", was[0])
        c.call("CONFIG", "SET", "slowlog-max-len", was[1])
        c.call("SLOWLOG", "RESET")
        w.terminate()
        w.wait()
    print("%-34s %10s %9s" % ("command (INFO commandstats)", "calls/task", "us/task"))
    evalsha = 0.0
    for m in sorted(re.finditer(r"cmdstat_(\S+):calls=(\d+),usec=(\d+)", stats),
                    key=lambda m: -int(m.group(3))):
        calls, us = int(m.group(2)), int(m.group(3))
        if m.group(1) == "evalsha":
            evalsha = us
        if us / n >= 0.005:
            print("%-34s %10.3f %9.2f" % (m.group(1), calls / n, us / n))
    try:  # sha1 -> the name of the script in this tree's shared/wire/fleet_keys.h
        names = fleet_scripts.script_names(ROOT)
    except subprocess.CalledProcessError:
        names = {}
    rows = {}
    for ent in log:
        us, args = ent[2], ent[3]
        if args[0].decode().upper() != "EVALSHA" or len(args) < 4:
            continue
        sha = args[1].decode()
        name = names.get(sha) or "%s %s" % (sha[:8], shape(args[3]) if int(args[2]) else "-")
        r = rows.setdefault(name, [0, 0])
        r[0] += 1
        r[1] += us
    seen = sum(r[1] for r in rows.values())
    print("\n%-34s %10s %9s" % ("EVALSHA by script (slow log)", "calls/task", "us/task"))
    for name, (calls, us) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        print("%-34s %10.3f %9.2f" % (name, calls / n, us / n))
    if evalsha:
        print("(the slow log saw %.0f%% of EVALSHA's time)" % (100.0 * seen / evalsha))
    if rpid:
        print("\nredis-server CPU: %.2f us/task" % ((t1 - t0) * 1e6 / os.sysconf("SC_CLK_TCK") / n))
    if len(log) >= n:
        print("(the slow log was full: the script figures are low)")


if __name__ == "__main__":
    main()
