#!/usr/bin/env python3
"""bench/fleet_channel.py [N] [ROUNDS]: fleet channel throughput, side by side.

Rounds interleaved A B A B ... (default 5 each, N = 20000 values):
  A  two fleet tasks send N/2 integers each on a channel of capacity 256
     that the producer captured; the producer ranges over it (`for v in
     ch:iter()`) until a goroutine that awaited both tasks closes it;
  B  the baseline without channels: N fleet tasks that each return one
     integer, awaited by the producer (`pool_submit` + `await`).
Each round starts its own mutirao-worker on a fresh pool and waits for a
first task to finish before measuring. Printed per round: values/s and the
CPU time per value of the producer (its own os.clock), the worker, the
redis-server and the Kafka broker (utime + stime from /proc over the
measured window; the servers found from their ports), and their sum; then
the median (min-max) of each, and the load average.

Needs the services of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS and
MUTIRAO_TEST_REDIS_URL, e.g. `source build-services/env.sh`) and a build in
build/.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
BROKERS = os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS")
REDIS = os.environ.get("MUTIRAO_TEST_REDIS_URL")
if not BROKERS or not REDIS:
    sys.exit("set MUTIRAO_TEST_KAFKA_BROKERS and MUTIRAO_TEST_REDIS_URL (tests/services.sh)")
HZ = os.sysconf("SC_CLK_TCK")
TMP = tempfile.mkdtemp(prefix="fleet-channel-bench-")
ENV = dict(os.environ, MUTIRAO_KAFKA_BROKERS=BROKERS, MUTIRAO_REDIS_URL=REDIS)
ENV.pop("MUTIRAO_CONFIG", None)

PRODUCER = r"""
local g = require("goroutine")
local mode, n, pool = %(mode)r, %(n)d, %(pool)r
assert(g.pool_create(pool, {workers = 64, queue = 1000000}))
assert(g.await(assert(g.pool_submit(pool, function() return 1 end)))) -- the worker is there
local ch = g.channel(256)
if mode == "A" then -- the channel travels before the measurement
  assert(g.await(assert(g.pool_submit(pool, function() return ch:cap() end))))
end
io.stdout:write("GO\n")
io.stdout:flush()
io.stdin:read("l")
local t0, c0 = g.now(), os.clock()
local sum = 0
if mode == "A" then
  local ids = {}
  for t = 1, 2 do
    ids[t] = assert(g.pool_submit(pool, function(from, to)
      for i = from, to do assert(ch:send(i)) end
    end, (t - 1) * (n // 2) + 1, t * (n // 2)))
  end
  g.spawn(function()
    for _, id in ipairs(ids) do assert(g.await(id)) end
    ch:close()
  end)
  for v in ch:iter() do sum = sum + v end
else
  local ids = {}
  for i = 1, n do ids[i] = assert(g.pool_submit(pool, function(x) return x end, i)) end
  for i = 1, n do
    local ok, v = g.await(ids[i])
    assert(ok, v)
    sum = sum + v
  end
end
local wall, cpu = (g.now() - t0) / 1000, os.clock() - c0
assert(sum == n * (n + 1) // 2, "sum " .. sum)
io.stdout:write(string.format("RESULT %%.6f %%.6f\n", wall, cpu))
io.stdout:flush()
"""


def port_pid(port):
    out = subprocess.run(["ss", "-ltnpH", "sport = :%s" % port], capture_output=True,
                         text=True).stdout
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def ticks(pid):
    if not pid:
        return 0
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


RPID = port_pid(re.sub(r".*:(\d+).*", r"\1", REDIS.split("@")[-1]))
KPID = port_pid(BROKERS.split(",")[0].rsplit(":", 1)[1])


def one(mode, rnd):
    pool = "fcb%s%d%d" % (mode, os.getpid(), rnd)
    w = subprocess.Popen([os.path.join(BIN, "mutirao-worker"), "--pools", pool, "--log-level",
                          "warn"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=ENV, cwd=TMP)
    path = os.path.join(TMP, "p%s%d.lua" % (mode, rnd))
    with open(path, "w") as f:
        f.write(PRODUCER % {"mode": mode, "n": N, "pool": pool})
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", path, "--fleet"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV, cwd=TMP)
    try:
        if p.stdout.readline().strip() != "GO":
            raise RuntimeError(p.stderr.read())
        before = [ticks(w.pid), ticks(RPID), ticks(KPID)]
        p.stdin.write("\n")
        p.stdin.flush()
        line = p.stdout.readline()
        after = [ticks(w.pid), ticks(RPID), ticks(KPID)]
        p.wait(timeout=120)
    finally:
        w.terminate()
        w.wait()
    m = re.match(r"RESULT (\S+) (\S+)", line)
    if not m:
        raise RuntimeError("no result: %r %s" % (line, p.stderr.read()))
    wall, cpu = float(m.group(1)), float(m.group(2))
    us = [cpu * 1e6 / N] + [(a - b) * 1e6 / HZ / N for a, b in zip(after, before)]
    return N / wall, us


def spread(xs, fmt="%.1f"):
    return (fmt + " (" + fmt + "-" + fmt + ")") % (statistics.median(xs), min(xs), max(xs))


res = {"A": [], "B": []}
for r in range(ROUNDS):
    for mode in ("A", "B"):
        rate, us = one(mode, r)
        res[mode].append((rate, us))
        print("round %d %s: %.0f values/s; CPU us/value producer %.1f worker %.1f redis %.1f "
              "kafka %.1f sum %.1f (load %s)" % (r + 1, mode, rate, us[0], us[1], us[2], us[3],
                                                 sum(us), open("/proc/loadavg").read().split()[0]),
              flush=True)
for mode, name in (("A", "fleet channel"), ("B", "one fleet task per value")):
    rows = res[mode]
    print("%s %s: values/s %s; CPU us/value sum %s (producer %s, worker %s, redis %s, kafka %s)"
          % (mode, name, spread([r for r, _ in rows], "%.0f"),
             spread([sum(u) for _, u in rows]),
             *(spread([u[i] for _, u in rows]) for i in range(4))))
ratio = [a[0] / b[0] for a, b in zip(res["A"], res["B"])]
print("A/B values/s: %s" % spread(ratio, "%.2f"))
