#!/usr/bin/env python3
"""bench/fleet_redis_cost.py [BUILD] [N]: what Redis does per fleet task.

One mutirao-worker and one `mutirao run --fleet bench/fleet.lua` producer of
BUILD (default build) run N trivial tasks (default 10000) against the
services of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS and
MUTIRAO_TEST_REDIS_URL, or build-services/env.sh). Redis's slow log is set
to record every command during the run (slowlog-log-slower-than 0) and
read after it; each entry has the microseconds spent inside the command
(not the network and parsing around it). Prints per task, by command (an
EVALSHA by its script's sha1, with the shape of its first key), calls and
µs, their sum, and redis-server's CPU µs over the run (utime+stime from
/proc), which includes what the slow log itself costs. The slow log's
settings are restored after."""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "helpers"))
import redis_client  # noqa: E402


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
        c.call("CONFIG", "SET", "slowlog-max-len", str(40 * n))
        c.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
        c.call("SLOWLOG", "RESET")
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
    finally:
        c.call("CONFIG", "SET", "slowlog-log-slower-than", was[0])
        c.call("CONFIG", "SET", "slowlog-max-len", was[1])
        c.call("SLOWLOG", "RESET")
        w.terminate()
        w.wait()
    rows = {}
    for ent in log:
        us, args = ent[2], ent[3]
        cmd = args[0].decode().upper()
        if cmd in ("EVALSHA", "EVAL") and len(args) > 3:
            name = "%s %s %s" % (cmd, args[1][:8].decode(), shape(args[3]) if int(args[2]) else "-")
        else:
            name = cmd + (" " + shape(args[1]) if len(args) > 1 else "")
        r = rows.setdefault(name, [0, 0])
        r[0] += 1
        r[1] += us
    total = sum(r[1] for r in rows.values())
    print("%-60s %10s %9s" % ("command (first key's shape)", "calls/task", "us/task"))
    for name, (calls, us) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        if us / n >= 0.005:
            print("%-60s %10.3f %9.2f" % (name, calls / n, us / n))
    print("%-60s %10s %9.2f" % ("inside commands, all", "", total / n))
    if rpid:
        print("%-60s %10s %9.2f" % ("redis-server CPU (with the slow log's own cost)", "",
                                    (t1 - t0) * 1e6 / os.sysconf("SC_CLK_TCK") / n))
    if len(log) >= 40 * n:
        print("(the slow log was full: the figures are low)")


if __name__ == "__main__":
    main()
