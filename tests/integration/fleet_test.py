#!/usr/bin/env python3
"""tests/integration/fleet_test.py BINDIR EXAMPLES CASE: the fleet end to end.

Runs `mutirao run --fleet`, `mutirao-worker` processes and the C producer
example against the real Kafka and Redis of tests/services.sh (their
addresses come from MUTIRAO_TEST_KAFKA_BROKERS / MUTIRAO_TEST_REDIS_URL;
without them the case is skipped with exit 77, or fails when CI is set).
Each case uses pool names of its own (a run-unique suffix), so counters in
Redis start at zero, and workers restricted to those pools (--pools), so
cases cannot take each other's tasks; the workers of a run are a consumer
group of their own (worker.group), so workers of other runs cannot hold up
their rebalances or commits. The cases that restart Redis, or need its
command counts, run a redis-server of their own (private_redis.py).

MUTIRAO_TEST_REDIS_URL may be a redis+cluster:// URL
(tests/integration/fleet_cluster_test.py runs cases so, against a cluster
of its own): the fleet's keys are then hash-tagged (their names come from
tests/helpers/fleet_keys.py, LAYOUT, never written out here), and
redis_cmd routes each command to the master of its key's slot.
"""
import calendar
import hashlib
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import fleet_keys  # noqa: E402
import fleet_worker  # noqa: E402
import mutirao_test  # noqa: E402
import private_redis  # noqa: E402
import redis_client  # noqa: E402
from mutirao_test import skip  # noqa: E402

BIN, EXAMPLES, CASE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
BROKERS, REDIS = mutirao_test.services()

# the fleet's key names in the layout REDIS selects (tagged on a cluster)
LAYOUT = fleet_keys.Layout(REDIS)
# private_redis.py's servers: always one Redis, today's names
PLAIN = fleet_keys.Layout("redis://")
T = mutirao_test.Run(BIN, "mutirao-fleet-")
TMP, UNIQ = T.tmp, T.uniq
# the workers of a run form a consumer group of their own
ENV = mutirao_test.fleet_env(BROKERS, REDIS, "mutirao.workers.t" + UNIQ)
T.workers_env(ENV)
# The workers of the cases whose tasks write files (a runs file, a marker
# a late task would leave) or kill their own worker (os.execute) on
# purpose: the task sandbox allows neither by default (worker.allow).
HARNESS_ALLOW = {"MUTIRAO_WORKER_ALLOW": "io.open.write,os.execute"}
fail, check = T.fail, T.check
Worker = fleet_worker.Worker


def run(args, timeout=90, env=None):
    return T.run(args, env, timeout)


def run_lua(src, fleet=True, timeout=90, env=None):
    return T.run_lua(src, fleet, timeout, env)


def summary_rows(out):
    """The runner's summary table rows, durations dropped."""
    rows = []
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[2] in ("success", "failed", "timeout", "skipped"):
            rows.append((cols[0], cols[1], cols[2], " ".join(cols[4:])))
    return rows


# ---------------------------------------------------------------------------


def case_examples():
    """The spec's pool examples give the same results on the fleet."""
    # their pools have fixed names: on topics of this run's own, or its new
    # worker group would run again every message an earlier run left there
    # that this Redis does not know as done (a fresh Redis, another
    # layout), and the examples' VMs would count those
    ENV["MUTIRAO_TOPIC_PREFIX"] = "mutirao.ex%s." % UNIQ
    w = Worker("ex", ["converter", "batch", "mariguica"])
    for ex, bound in (("file_pool.sloth", 20), ("worker_pool.sloth", 30),
                      ("parallel_deployment.sloth", 30), ("waitgroup.sloth", 20)):
        path = os.path.join(EXAMPLES, ex)
        rc0, out0, _, _ = run([os.path.join(BIN, "mutirao"), "run", path])
        rc1, out1, err1, dt = run([os.path.join(BIN, "mutirao"), "run", "--fleet", path])
        check(rc0 == 0 and rc1 == 0, "%s: exit %d embedded, %d fleet:\n%s%s" %
              (ex, rc0, rc1, out1, err1))
        r0, r1 = summary_rows(out0), summary_rows(out1)
        check(r0 and r0 == r1, "%s: results differ:\n%s\nvs fleet:\n%s" % (ex, out0, out1))
        check(dt < bound, "%s took %.1f s on the fleet" % (ex, dt))
    log = w.text()
    # the tasks ran in the worker: their log lines are there
    check("converting report.md" in log, "file_pool's tasks did not log on the worker")
    check(re.search(r"working on job #50\b", log), "worker_pool's 50th job not on the worker")
    check(w.stop() == 0, "worker exit status")


def case_await_wg():
    """await across processes; WaitGroups captured by fleet tasks."""
    pool = "aw" + UNIQ
    w = Worker("aw", [pool])
    ids_file = os.path.join(TMP, "ids.txt")
    src_a = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s", {workers = 8}))
local f = assert(io.open("%(ids)s", "w"))
for i = 1, 20 do
  local id = assert(g.pool_submit("%(pool)s", function(n) g.sleep(300) return n * n, "sq" end, i))
  f:write(id, "\\n")
end
f:close()
-- a WaitGroup of this process, done by fleet tasks
local wg = g.wait_group()
for i = 1, 30 do
  wg:add(1)
  assert(g.pool_submit("%(pool)s", function() g.sleep(10) wg:done() end))
end
wg:wait()
assert(wg:count() == 0)
-- a task may add to it too; the change arrives with its completion
local wg2 = g.wait_group()
wg2:add(1)
local id = g.pool_submit("%(pool)s", function() wg2:add(2) wg2:done() return "x" end)
local ok, v = g.await(id)
assert(ok and v == "x" and wg2:count() == 2, tostring(wg2:count()))
-- waiting on it inside a fleet task is an error that says why
local ok2, err = g.await(g.pool_submit("%(pool)s", function() wg:wait() end))
assert(not ok2 and err:find("cannot wait on WaitGroup", 1, true), err)
print("A done")
""" % {"pool": pool, "ids": ids_file}
    src_b = """
local g = require("goroutine")
local n = 0
for id in io.lines("%(ids)s") do
  n = n + 1
  local ok, sq, tag = g.await(id)
  assert(ok and sq == n * n and tag == "sq", tostring(sq))
end
assert(n == 20)
local ok, err = g.await("nobody:1")
assert(not ok and err:find("unknown task id"), err)
print("B awaited " .. n)
""" % {"ids": ids_file}
    w.wait_for(r"starting")
    path_a = os.path.join(TMP, "a.lua")
    with open(path_a, "w") as f:
        f.write(src_a)
    pa = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path_a],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    end = time.time() + 30
    while time.time() < end:
        if os.path.exists(ids_file) and open(ids_file).read().count("\n") == 20:
            break
        time.sleep(0.02)
    rc, out, err, _ = run_lua(src_b)  # while A's tasks still run, and after
    check(rc == 0 and "B awaited 20" in out, "process B: %d\n%s%s" % (rc, out, err))
    out_a, err_a = pa.communicate(timeout=60)
    check(pa.returncode == 0 and "A done" in out_a, "process A: %d\n%s%s" %
          (pa.returncode, out_a, err_a))
    check(w.stop() == 0, "worker exit status")
    # a clean stop committed everything: a new worker gets no old task
    w2 = Worker("aw2", [pool])
    w2.wait_for(r" assigned ")
    time.sleep(2)
    check(" received " not in w2.text(), "tasks ran again after a clean stop:\n" + w2.text())
    check(w2.stop() == 0, "second worker exit status")


def stats_src(pool, n):
    return """
local s = assert(g.pool_stats("%s"))
print(string.format("stats completed=%%d failed=%%d fleet_completed=%%d fleet_failed=%%d "
  .. "submitted=%%d fleet_submitted=%%d", s.completed, s.failed, s.fleet_completed,
  s.fleet_failed, s.submitted, s.fleet_submitted))
""" % pool


def runs_src(pool, n, runs, opts, ms, stats, settle_ms=0):
    """Lua for `mutirao run --fleet`: creates pool with opts (the fields of
    its options table), sleeps settle_ms (the workers joining the group),
    submits n tasks that sleep ms, append their number to the file runs and
    return it, awaits each (checking its value) and prints
    "stats F1=%d F2=%d ..." of the pool_stats fields in stats."""
    return """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { %(opts)s }))
%(settle)slocal ids = {}
for i = 1, %(n)d do
    ids[i] = assert(g.pool_submit(%(pool)r, function(k)
        g.sleep(%(ms)d)
        local f = assert(io.open(%(runs)r, "a"))
        f:write(k, "\\n")
        f:close()
        return k
    end, i))
end
for i = 1, %(n)d do
    local ok, k = g.await(ids[i])
    assert(ok and k == i, tostring(k))
end
local s = assert(g.pool_stats(%(pool)r))
print(string.format(%(fmt)r, %(args)s))
""" % {"pool": pool, "n": n, "runs": runs, "opts": opts, "ms": ms,
       "settle": "g.sleep(%d) -- both workers in the group\n" % settle_ms if settle_ms else "",
       "fmt": "stats " + " ".join(f + "=%d" for f in stats),
       "args": ", ".join("s." + f for f in stats)}


def case_two_workers():
    """Two worker processes share a pool: both receive work."""
    pool = "tw" + UNIQ
    a = Worker("twA", [pool], {"TW_TAG": "A"})
    b = Worker("twB", [pool], {"TW_TAG": "B"})
    a.wait_for(r"starting")
    b.wait_for(r"starting")
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s", {workers = 8}))
-- let both join the group before work arrives
g.sleep(4000)
local ids = {}
for i = 1, 200 do
  ids[i] = assert(g.pool_submit("%(pool)s", function() g.sleep(20) return os.getenv("TW_TAG") end))
end
local count = {}
for i = 1, 200 do
  local ok, tag = g.await(ids[i])
  assert(ok, tag)
  count[tag] = (count[tag] or 0) + 1
end
print("A=" .. (count.A or 0) .. " B=" .. (count.B or 0))
""" % {"pool": pool}
    rc, out, err, _ = run_lua(src)
    check(rc == 0, "producer: %d\n%s%s" % (rc, out, err))
    m = re.search(r"A=(\d+) B=(\d+)", out)
    check(m and int(m.group(1)) > 0 and int(m.group(2)) > 0 and
          int(m.group(1)) + int(m.group(2)) == 200, "work not shared: %s" % out)
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")


def redis_cmd(*args):
    """One command to the test Redis (RESP over a socket); its decoded reply.
    On a cluster: sent to the master of its key's slot (KEYS: every master's)."""
    return redis_client.command(REDIS, *args, timeout=10)


def scan_nodes(pattern):
    """{node: [key, ...]}: SCAN MATCH pattern on every master of the test
    Redis (one node unless it is a cluster)."""
    with redis_client.connect(REDIS, timeout=10) as c:
        if isinstance(c, redis_client.ClusterConn):
            return c.scan(pattern)
        keys, cur = [], b"0"
        while True:
            cur, batch = c.call("SCAN", cur, "MATCH", pattern, "COUNT", 1000)
            keys += batch
            if cur == b"0":
                return {REDIS: keys}


def stats_keys(pool):
    """The keys holding pool's counters: its stats hash (and, on a cluster,
    each producer's counters of the pool)."""
    keys = []
    for pat in LAYOUT.stats_patterns(pool):
        keys += redis_cmd("KEYS", pat)
    return sorted(set(k.decode() for k in keys))


def pool_counters(pool):
    """{field: int}: pool's counters in Redis, summed over stats_keys(pool)."""
    total = {}
    for k in stats_keys(pool):
        h = redis_cmd("HGETALL", k) or []
        for f, v in zip(h[::2], h[1::2]):
            total[f.decode()] = total.get(f.decode(), 0) + int(v)
    return total


def case_sigkill():
    """A worker killed mid-run: every task completes exactly once."""
    pool = "sk" + UNIQ
    n = 120
    a = Worker("skA", [pool])
    b = Worker("skB", [pool])
    a.wait_for(r"starting")
    b.wait_for(r"starting")
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s", {workers = 4}))
g.sleep(4000) -- both workers in the group
local wg = g.wait_group()
local ids = {}
local t0 = g.now()
for i = 1, %(n)d do
  wg:add(1)
  ids[i] = assert(g.pool_submit("%(pool)s", function(k) g.sleep(100) wg:done() return k end, i))
end
io.stdout:write("submitted\\n") io.stdout:flush()
for i = 1, %(n)d do
  local ok, k = g.await(ids[i])
  assert(ok and k == i, tostring(k))
end
wg:wait()
assert(wg:count() == 0)
assert(g.pool_wait("%(pool)s"))
print(string.format("all done in %%.1f s", (g.now() - t0) / 1000))
%(stats)s
""" % {"pool": pool, "n": n, "stats": stats_src(pool, n)}
    path = os.path.join(TMP, "sigkill.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    # kill A once it has tasks in flight
    a.wait_for(r"task=\S+ attempt 1 received", 60)
    time.sleep(0.3)
    assigned_before = b.text().count(" assigned ")
    a.p.send_signal(signal.SIGKILL)
    a.p.wait()
    killed_at = time.time()
    # B takes over A's partitions (and so its unfinished tasks) within 10 s
    while b.text().count(" assigned ") == assigned_before and time.time() - killed_at < 30:
        time.sleep(0.05)
    moved = time.time() - killed_at
    check(moved < 10, "A's partitions moved to B only after %.1f s" % moved)
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("producer did not finish after the SIGKILL:\n%s\n%s" % (out, err))
    took = time.time() - killed_at
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err))
    check("negative WaitGroup" not in err, "WaitGroup counted twice:\n" + err)
    m = re.search(r"stats completed=(\d+) failed=(\d+) fleet_completed=(\d+) fleet_failed=(\d+) "
                  r"submitted=(\d+) fleet_submitted=(\d+)", out)
    check(m, "no stats line:\n" + out)
    c, f_, fc, ff, s, fs = (int(x) for x in m.groups())
    check((c, f_, s) == (n, 0, n), "this producer's counts: %s" % m.group(0))
    check((fc, ff, fs) == (n, 0, n), "fleet counts (exactly once): %s" % m.group(0))
    check(took < 25, "finished %.1f s after the kill" % took)
    check(b.stop() == 0, "worker B exit status")
    print("partitions moved %.1f s and all done %.1f s after the SIGKILL" % (moved, took))


def case_errors():
    """Unreachable Kafka or Redis: clear errors within the configured time."""
    src = """
local g = require("goroutine")
local t0 = g.now()
local ok, err = g.pool_create("err%s")
print(ok, err, string.format("%%.1f", (g.now() - t0) / 1000))
""" % UNIQ
    rc, out, err, dt = run_lua(src, env={"MUTIRAO_KAFKA_BROKERS": "127.0.0.1:1",
                                         "MUTIRAO_OP_TIMEOUT_MS": "2000"}, timeout=30)
    check(rc == 0 and out.startswith("nil") and "kafka" in out.lower(),
          "unreachable Kafka: %d\n%s%s" % (rc, out, err))
    check(dt < 15, "unreachable Kafka took %.1f s" % dt)
    # librdkafka repeats a broker's connection errors: one warning, then the
    # operation's failure says the latest
    warns = [l for l in err.splitlines() if " WARN " in l and "kafka:" in l]
    check(len(warns) <= 1, "unreachable Kafka: %d warnings:\n%s" % (len(warns), err))
    rc, out, err, dt = run_lua(src, env={"MUTIRAO_REDIS_URL": "redis://127.0.0.1:1",
                                         "MUTIRAO_OP_TIMEOUT_MS": "2000"}, timeout=30)
    check(rc == 0 and out.startswith("nil") and "redis" in out.lower(),
          "unreachable Redis: %d\n%s%s" % (rc, out, err))
    check(dt < 15, "unreachable Redis took %.1f s" % dt)
    # names Kafka cannot use are refused before anything is sent
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
local ok, err = pcall(g.pool_create, "bad name!")
print(ok, err)
print(g.pool_submit("never-created", function() end))
""")
    check(rc == 0 and "false" in out and "pool" in out and "pool not found: never-created" in out,
          "bad names: %d\n%s%s" % (rc, out, err))


def case_local_objects():
    """Objects that live in one process say so at submit to a fleet pool
    (channels, semaphores and AtomicInts travel: fleet_objects_test.py)."""
    src = """
local g = require("goroutine")
assert(g.pool_create("localobj%s"))
local objects = {
    { "channel", g.channel() }, { "mutex", g.mutex() }, { "rwmutex", g.rwmutex() },
    { "semaphore", g.semaphore(2) }, { "once", g.once() }, { "cond", g.cond(g.mutex()) },
    { "atomic_int", g.atomic_int(1) }, { "context", g.context() }, { "after", g.after(100000) },
}
for _, o in ipairs(objects) do
    local obj = o[2]
    local id, err = g.pool_submit("localobj%s", function() return obj end)
    if id then
        local ok, back = g.await(id)
        print(o[1], "travelled", tostring(ok), tostring(back == obj))
    else
        print(o[1], tostring(id), err)
    end
end
local ctx = g.context()
print("ctx-arg", g.pool_submit("localobj%s", function(c) return c end, ctx))
""" % (UNIQ, UNIQ, UNIQ)
    w = Worker("lo", ["localobj" + UNIQ])
    w.wait_for(r"consuming")
    rc, out, err, _ = run_lua(src, timeout=60)
    check(rc == 0, "local objects: %d\n%s%s" % (rc, out, err))
    want = {
        "mutex": "a mutex cannot travel to a fleet pool",
        "rwmutex": "an rwmutex cannot travel to a fleet pool",
        "once": "a once object cannot travel to a fleet pool",
        "cond": "a cond cannot travel to a fleet pool",
        "context": "a context cannot travel to a fleet pool",
        "after": "a receive-only channel (after(), a context's done()) cannot travel to a "
                 "fleet pool",
        "ctx-arg": "a context cannot travel to a fleet pool",
    }
    lines = {l.split("\t")[0]: l for l in out.splitlines() if "\t" in l}
    # Redis-backed from their first travel on: the task returns the same object
    for name in ("channel", "semaphore", "atomic_int"):
        check(lines.get(name) == name + "\ttravelled\ttrue\ttrue",
              "%s did not travel: %r\n%s%s" % (name, lines.get(name), out, err))
    check(w.stop() == 0, "worker exit status")
    for name, msg in want.items():
        line = lines.get(name, "")
        check(line.startswith(name + "\tnil\t") or line.startswith(name + "\tnil"),
              "%s was not refused: %r\n%s%s" % (name, line, out, err))
        check(msg in line, "%s: expected %r in %r" % (name, msg, line))


def case_libmutirao():
    """The C producer library against the fleet: same output as embedded."""
    w = Worker("lib", ["example"])
    rc0, out0, err0, _ = run([os.path.join(BIN, "producer-example")])
    rc1, out1, err1, _ = run([os.path.join(BIN, "producer-example")], env={"MUTIRAO_FLEET": "on"})
    check(rc0 == 0 and rc1 == 0, "producer-example: %d %d\n%s%s" % (rc0, rc1, err0, err1))
    # (the order of a msgpack map's keys follows Lua's table order: not compared)
    def norm(out):
        return [re.sub(r"\{[^}]*\}", "{}", l) + " ".join(sorted(re.findall(r'"\w+"=>\d+', l)))
                for l in out.splitlines()]
    check(norm(out0) == norm(out1), "results differ:\n%s\nvs fleet:\n%s" % (out0, out1))
    check("doubled 1..10: total 110" in out1, out1)
    check(re.search(r"received", w.text()), "the worker ran none of the C producer's tasks")
    check(w.stop() == 0, "worker exit status")


def case_two_clients():
    """Three libmutirao clients in one process, each with its own
    configuration file: embedded, fleet, and a fleet whose Redis cannot be
    reached. Nothing of one leaks into another."""
    pool = "twoclients" + UNIQ
    w = Worker("two", [pool])
    confs = {}
    for name, fleet, redis in (("embedded", "off", REDIS), ("fleet", "on", REDIS),
                               ("broken", "on", "redis://127.0.0.1:1")):
        confs[name] = os.path.join(TMP, "%s.conf" % name)
        with open(confs[name], "w") as f:
            f.write("fleet = %s\nkafka.brokers = %s\nredis.url = %s\n"
                    "connect.timeout_ms = 2000\nop.timeout_ms = 5000\n" % (fleet, BROKERS, redis))
    # the addresses come from the files alone
    env = {"MUTIRAO_KAFKA_BROKERS": "", "MUTIRAO_REDIS_URL": ""}
    rc, out, err, _ = run([os.path.join(BIN, "two-clients"), confs["embedded"], confs["fleet"],
                           confs["broken"], pool], env=env)
    check(rc == 0 and "two_clients: ok" in out, "two_clients: %d\n%s%s" % (rc, out, err))
    check(re.search(r"pool=%s task=\S+ attempt" % pool, w.text()),
          "the worker ran none of the fleet client's tasks")
    check(w.stop() == 0, "worker exit status")


def case_stock_lua():
    """The stock lua5.4 on the fleet through goroutine_fleet.so (goroutine.so
    has no fleet): tasks, results and a WaitGroup go through a worker."""
    pool = "stocklua" + UNIQ
    w = Worker("stock", [pool])
    script = os.path.join(TMP, "stock.lua")
    with open(script, "w") as f:
        f.write("""
package.cpath = %(lib)r .. "/?.so;" .. package.cpath
local g = require("goroutine_fleet")
assert(require("goroutine") == g, "one module")
print("backend", g._backend())
assert(g.pool_create(%(pool)r, { workers = 2 }))
local wg = g.wait_group()
wg:add(3)
local ids = {}
for i = 1, 3 do
    ids[i] = assert(g.pool_submit(%(pool)r, function(x)
        wg:done()
        return x * 10, require("goroutine")._backend()
    end, i))
end
for i = 1, 3 do print("result", g.await(ids[i])) end
wg:wait()
print("wg", wg:count())
-- exec from this library: its runs do not block the other goroutines
local exec = require("exec")
local t0, ticks = g.now(), 0
g.spawn(function() for _ = 1, 10 do g.sleep(20); ticks = ticks + 1 end end)
local hs = {}
for i = 1, 4 do hs[i] = g.async(exec.run, "sleep 0.2") end
for i = 1, 4 do assert(g.await(hs[i])) end
print("exec", g.now() - t0 < 600, ticks >= 5)
""" % {"lib": os.path.join(os.path.dirname(BIN), "lib"), "pool": pool})
    rc, out, err, _ = run(["lua5.4", script], env={"MUTIRAO_FLEET": "on"})
    check(rc == 0, "lua5.4 with goroutine_fleet: %d\n%s%s" % (rc, out, err))
    check("backend\tfleet" in out and "wg\t0" in out and "exec\ttrue\ttrue" in out, out)
    for i in (1, 2, 3):
        check("result\ttrue\t%d\tfleet" % (i * 10) in out, out)
    check(re.search(r"pool=%s task=\S+ attempt" % pool, w.text()), "the worker ran none of them")
    # without the fleet configuration the same module runs them embedded
    rc, out, err, _ = run(["lua5.4", script], env={"MUTIRAO_FLEET": "off"})
    check(rc == 0 and "backend\tembedded" in out and "result\ttrue\t10\tembedded" in out,
          "goroutine_fleet with fleet = off: %d\n%s%s" % (rc, out, err))
    check(w.stop() == 0, "worker exit status")


def case_lingering():
    """Goroutines a fleet task started outlive it and call wg:done(): the
    task is recorded when they have ended, with their changes; a wait that
    nothing can end is still a deadlock."""
    pool = "lingering" + UNIQ
    w = Worker("linger", [pool])
    rc, out, err, dt = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 2 }))
local wg = g.wait_group()
wg:add(3)
local id = g.pool_submit(%(pool)r, function()
    local g = require("goroutine")
    for i = 1, 3 do g.spawn(function() g.sleep(100 * i) wg:done() end) end
    return "task returned"
end)
print("await:", g.await(id))
print("count after await:", wg:count())
print("wait:", g.timeout(10000, function() wg:wait() return "released" end))
""" % {"pool": pool})
    check(rc == 0 and "await:\ttrue\ttask returned" in out and "count after await:\t0" in out
          and "wait:\ttrue\treleased" in out, "lingering: %d\n%s%s" % (rc, out, err))
    # a task that calls done() once for add(2): the wait can never end
    rc, out, err, dt = run_lua("""
local g = require("goroutine")
local wg = g.wait_group()
wg:add(2)
print("await:", g.await(g.pool_submit(%(pool)r, function() wg:done() return 1 end)))
wg:wait()
print("unreachable")
""" % {"pool": pool}, timeout=60)
    check(rc == 1 and "await:\ttrue\t1" in out and "unreachable" not in out
          and "all goroutines are asleep - deadlock!" in err and dt < 30,
          "a deadlock on the fleet: exit %d after %.1f s\n%s%s" % (rc, dt, out, err))
    check(w.stop() == 0, "worker exit status")


def case_os_exit():
    """os.exit in a fleet task fails that task; the worker lives and runs
    the next ones."""
    pool = "osexit" + UNIQ
    w = Worker("osexit", [pool])
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 1 }))
print("await:", g.await(g.pool_submit(%(pool)r, function() os.exit(1) end)))
for i = 1, 3 do
    print("next:", g.await(g.pool_submit(%(pool)r, function(x) return x * 2 end, i)))
end
""" % {"pool": pool})
    check(rc == 0 and re.search(r"await:\tfalse\t.*os\.exit called in a pool task", out)
          and "next:\ttrue\t2" in out and "next:\ttrue\t6" in out,
          "os.exit on the fleet: %d\n%s%s" % (rc, out, err))
    check(w.p.poll() is None, "the worker died")
    check(w.stop() == 0, "worker exit status")


def case_timeout():
    """A pool's timeout on the fleet: an endless loop is cancelled with
    "timeout after N ms", the worker runs the next tasks of the same
    partition, the cancelled task's offset commits (a new worker gets
    nothing again), and a producer that did not create the pool adopts its
    timeout from Redis."""
    pool = "timeout" + UNIQ
    w = Worker("timeout", [pool])
    w.wait_for(r"consuming")
    # one partition: the tasks after the loop are behind it in the same one
    rc, out, err, dt = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 1, timeout = 300 }))
local t0 = g.now()
local spin = assert(g.pool_submit(%(pool)r, function() while true do end end))
local guarded = assert(g.pool_submit(%(pool)r, function()
    return pcall(function() local x = 0 while true do x = x + 1 end end)
end))
local ids = {}
for i = 1, 3 do ids[i] = assert(g.pool_submit(%(pool)r, function(x) return x * 2 end, i)) end
print("spin:", g.await(spin))
print("guarded:", g.await(guarded))
for i = 1, 3 do print("next:", g.await(ids[i])) end
print(string.format("took %%.1f s", (g.now() - t0) / 1000))
local s = assert(g.pool_stats(%(pool)r))
print("stats", s.timeout, s.fleet_completed, s.fleet_failed)
""" % {"pool": pool}, env={"MUTIRAO_TOPIC_PARTITIONS": "1"})
    check(rc == 0 and "spin:\tfalse\ttimeout after 300 ms\n" in out
          and "guarded:\tfalse\ttimeout after 300 ms\n" in out
          and all("next:\ttrue\t%d" % (2 * i) in out for i in (1, 2, 3))
          and "stats\t300\t3\t2" in out,
          "timeout on the fleet: %d\n%s%s" % (rc, out, err))
    took = float(re.search(r"took ([\d.]+) s", out).group(1))
    check(took < 10, "the tasks behind the loop finished %.1f s after the submit" % took)
    check(w.p.poll() is None, "the worker died")
    # another process submits to the pool: the timeout comes from Redis
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("adopted:", g.await(g.pool_submit(%(pool)r, function() while true do end end)))
print("stats", g.pool_stats(%(pool)r).timeout)
""" % {"pool": pool})
    check(rc == 0 and "adopted:\tfalse\ttimeout after 300 ms" in out and "stats\t300" in out,
          "adopted timeout: %d\n%s%s" % (rc, out, err))
    # the cancelled tasks' offsets committed: killed now, the worker leaves
    # nothing for the next one to run again
    time.sleep(1.5)
    w.p.send_signal(signal.SIGKILL)
    w.p.wait()
    w2 = Worker("timeout2", [pool])
    w2.wait_for(r" assigned ", 60)
    time.sleep(2)
    check(" received " not in w2.text(), "tasks ran again after the kill:\n" + w2.text())
    check(w2.stop() == 0, "second worker exit status")


def case_deadline():
    """A submit inside goroutine.timeout (or a task file's :timeout) puts
    that deadline in the envelope: a worker that receives the task after it
    does not run it, and one running it at the deadline cancels it."""
    pool = "deadline" + UNIQ
    marker = os.path.join(TMP, "late-task-ran")
    ids_file = os.path.join(TMP, "deadline-ids.txt")
    # no worker yet: the task waits in Kafka past its deadline
    path = os.path.join(TMP, "deadline-a.lua")
    with open(path, "w") as f:
        f.write("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r))
local late
print("timeout:", g.timeout(800, function()
    late = assert(g.pool_submit(%(pool)r, function(path)
        local f = assert(io.open(path, "w")) f:write("ran") f:close()
        return "ran"
    end, %(marker)r))
    g.sleep(60000)
end))
local f = assert(io.open(%(ids)r, "w")) f:write(late, "\\n") f:close()
-- outside any timeout: no deadline, it runs whenever a worker comes
print("control:", g.await(g.pool_submit(%(pool)r, function() return "control ran" end)))
""" % {"pool": pool, "marker": marker, "ids": ids_file})
    pa = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    end = time.time() + 30
    while time.time() < end and not os.path.exists(ids_file):
        time.sleep(0.05)
    if not os.path.exists(ids_file):
        pa.kill()
        out_a, err_a = pa.communicate()
        fail("the producer did not submit:\n%s%s" % (out_a, err_a))
    time.sleep(0.5)  # well past the deadline
    w = Worker("deadline", [pool], HARNESS_ALLOW)
    try:
        out_a, err_a = pa.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pa.kill()
        out_a, err_a = pa.communicate()
    check(pa.returncode == 0 and "timeout:\tfalse\ttimeout after 800 ms" in out_a
          and "control:\ttrue\tcontrol ran" in out_a,
          "producer: %s\n%s%s" % (pa.returncode, out_a, err_a))
    late = open(ids_file).read().strip()
    check(re.search(r"pool=%s task=%s attempt 1 received" % (pool, re.escape(late)), w.text()),
          "the worker never received the late task:\n" + w.text())
    check(not os.path.exists(marker), "the task ran after its deadline")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("late:", g.await(%(id)r))
""" % {"id": late})
    check(rc == 0 and re.search(r"late:\tfalse\ttimeout after (79\d|80\d) ms \(the deadline "
                                r"passed before it started\)", out),
          "await of the late task: %d\n%s%s" % (rc, out, err))
    # a task running at its submitter's deadline is cancelled there; the
    # worker goes on (a task file's :timeout sets the deadline too)
    spin = os.path.join(TMP, "spin.sloth")
    with open(spin, "w") as f:
        f.write("""
local t = task("spin"):command(function(this, params)
    local g = require("goroutine")
    local id = g.pool_submit(%(pool)r, function() while true do end end)
    local f = assert(io.open(%(ids)r, "w")) f:write(id, "\\n") f:close()
    return g.await(id)
end):timeout("1s"):build()
workflow.define("w"):tasks({t})
""" % {"pool": pool, "ids": ids_file})
    rc, out, err, dt = run([os.path.join(BIN, "mutirao"), "run", "--fleet", spin], timeout=40)
    check(rc == 1 and re.search(r"\bspin +timeout", out) and dt < 10,
          "task file timeout: %d in %.1f s\n%s%s" % (rc, dt, out, err))
    spun = open(ids_file).read().strip()
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("spun:", g.await(%(id)r))
print("after:", g.await(g.pool_submit(%(pool)r, function() return "still serving" end)))
""" % {"id": spun, "pool": pool})
    check(rc == 0 and re.search(r"spun:\tfalse\ttimeout after \d+ ms\n", out)
          and "after:\ttrue\tstill serving" in out,
          "the spinning task: %d\n%s%s" % (rc, out, err))
    check(w.stop() == 0, "worker exit status")


def case_memory():
    """A pool's memory limit on the fleet: a task holding more fails with
    "not enough memory"; the worker lives and runs the next tasks, those
    under the limit unaffected."""
    pool = "memory" + UNIQ
    w = Worker("memory", [pool])
    w.wait_for(r"consuming")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
local MB = 1024 * 1024
assert(g.pool_create(%(pool)r, { workers = 4, memory = 32 * MB }))
local hog = assert(g.pool_submit(%(pool)r, function()
    local t = {}
    for i = 1, 1e8 do t[i] = string.rep("x", 64) .. i end
end))
local ids = {}
for i = 1, 6 do
    ids[i] = assert(g.pool_submit(%(pool)r, function(k)
        local parts = {}
        for j = 1, 16 do parts[j] = string.rep(string.char(64 + j), 512 * 1024) end -- 8 MB
        local n = 0
        for _, p in ipairs(parts) do n = n + #p end
        return k, n
    end, i))
end
print("hog:", g.await(hog))
for i = 1, 6 do print("ok:", g.await(ids[i])) end
print("big:", g.await(g.pool_submit(%(pool)r, function() return #string.rep("y", 40 * MB) end)))
print("after:", g.await(g.pool_submit(%(pool)r, function() return "alive" end)))
print("stats", g.pool_stats(%(pool)r).memory)
""" % {"pool": pool})
    check(rc == 0 and "hog:\tfalse\tnot enough memory\n" in out
          and all("ok:\ttrue\t%d\t%d" % (i, 8 << 20) in out for i in range(1, 7))
          and "big:\tfalse\tnot enough memory\n" in out and "after:\ttrue\talive" in out
          and "stats\t%d" % (32 << 20) in out,
          "memory on the fleet: %d\n%s%s" % (rc, out, err))
    check(w.p.poll() is None, "the worker died")
    check(w.stop() == 0, "worker exit status")


def case_retention():
    """What Redis keeps: an awaited task's keys go, an unawaited result keeps
    result.ttl_s, pool keys expire; every message delivered again after its
    outcome was read (and its keys deleted) is neither counted nor kept."""
    pool = "ret" + UNIQ
    n, m = 300, 40
    w = Worker("ret", [pool])
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 8 }))
local ids = {}
for i = 1, %(n)d do ids[i] = assert(g.pool_submit(%(pool)r, function(x) return x + 1 end, i)) end
for i = 1, %(n)d do
  local ok, v = g.await(ids[i])
  assert(ok and v == i + 1, tostring(v))
  print("awaited " .. ids[i])
end
for i = 1, %(m)d do
  print("unawaited " .. assert(g.pool_submit(%(pool)r, function(x) return x end, i)))
end
assert(g.pool_wait(%(pool)r))
%(stats)s
""" % {"pool": pool, "n": n, "m": m, "stats": stats_src(pool, n + m)})
    check(rc == 0, "run: %d\n%s%s" % (rc, out, err))
    awaited = re.findall(r"^awaited (\S+)$", out, re.M)
    unawaited = re.findall(r"^unawaited (\S+)$", out, re.M)
    check(len(awaited) == n and len(unawaited) == m, "ids printed:\n" + out)

    def left(ids):
        return [i for i in ids
                if redis_cmd("EXISTS", LAYOUT.task(i), LAYOUT.task(i, "q"))]
    still = left(awaited)
    check(not still, "%d awaited task(s) still have keys, e.g. %s" % (len(still), still[:3]))
    # what `mutirao task` shows of a completed task: not kept by default
    # (task.info_ttl_s = 0)
    infos = [redis_cmd("EXISTS", LAYOUT.task(i, "info")) for i in awaited[:5] + unawaited[:5]]
    check(infos == [0] * len(infos), "completed tasks' info kept: %s" % infos)
    ttls = [redis_cmd("TTL", LAYOUT.task(i)) for i in unawaited]
    check(all(0 < t <= 86400 for t in ttls),
          "unawaited results keep result.ttl_s (86400): TTLs %s" % sorted(set(ttls))[:5])
    producer = fleet_keys.producer_of(awaited[0])  # ids are PRODUCER:SEQ:RANDOM
    seen = redis_cmd("KEYS", LAYOUT.seen(fleet_keys.glob_escape(producer), "*"))
    check(seen and all(0 < redis_cmd("TTL", k) <= 86400 for k in seen),
          "seen bitmaps with a TTL: %r" % seen)
    sub = redis_cmd("KEYS", LAYOUT.sub(fleet_keys.glob_escape(producer), "*"))
    check(sub and all(0 < redis_cmd("TTL", k) <= 86400 for k in sub),
          "submitted bitmaps with a TTL: %r" % sub)
    counters = stats_keys(pool)
    check(counters, "no key holds the pool's counters")
    for k in [LAYOUT.pool(pool), LAYOUT.pool(pool, "active")] + counters:
        ttl = redis_cmd("TTL", k)
        if ttl == -2 and k == LAYOUT.pool(pool, "active"):
            continue  # written only when a report found tasks running
        check(3600 < ttl <= 7 * 86400, "%s: TTL %r (expected the 7-day idle TTL)" % (k, ttl))
    # every message once more, as after a lost commit: nothing is counted
    # twice, nothing comes back into Redis
    def repeats_seen():  # by the delivery record (not run) or the completion (run)
        return len(re.findall(r"already (?:completed|recorded)", w.text()))
    repeats_before = repeats_seen()
    r = subprocess.run([os.path.join(BIN, "kafka-replay"), BROKERS, "mutirao.pool." + pool],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode == 0 and ("replayed %d" % (n + m)) in r.stdout,
          "kafka-replay: %s%s" % (r.stdout, r.stderr))
    end = time.time() + 60
    while repeats_seen() - repeats_before < n + m and time.time() < end:
        time.sleep(0.1)
    repeats = repeats_seen() - repeats_before
    check(repeats == n + m, "repeat deliveries recognised: %d of %d" % (repeats, n + m))
    st = pool_counters(pool)
    check(st.get("completed") == n + m and "failed" not in st,
          "counts after the replay: %r" % st)
    still = left(awaited)
    check(not still, "the replay brought back %d awaited task key(s)" % len(still))
    # pool_close: the pool's keys now expire within the hour
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 8 }))
assert(g.pool_close(%(pool)r))
""" % {"pool": pool})
    check(rc == 0, "close: %d\n%s%s" % (rc, out, err))
    for k in [LAYOUT.pool(pool)] + stats_keys(pool):
        ttl = redis_cmd("TTL", k)
        check(0 < ttl <= 3600, "%s after pool_close: TTL %r" % (k, ttl))
    check(w.stop() == 0, "worker exit status")
    print("retention: %d awaited tasks left no key, %d unawaited keep a TTL, %d repeats ignored"
          % (n, m, repeats))


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def mp_str(s):
    b = s.encode()
    return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b


def mp_uint(n):
    return b"\xcf" + n.to_bytes(8, "big")


def task_envelope(tid, pool, producer, fields, payload=b""):
    """A version-1 task envelope (docs/wire-format.md) with the payload
    (default empty) and the extra uint fields given."""
    now = int(time.time() * 1000)
    items = [("id", mp_str(tid)), ("pool", mp_str(pool)), ("attempt", mp_uint(1)),
             ("submitted_at", mp_uint(now)), ("deadline", mp_uint(0)),
             ("producer", mp_str(producer)), ("payload", b"\xc4" + bytes([len(payload)]) + payload)]
    items += [(k, mp_uint(v)) for k, v in fields.items()]
    out = b"MTE\x01" + bytes([0x80 | len(items)])
    for k, v in items:
        out += mp_str(k) + v
    return out


def case_large_values():
    """Arguments and results over payload.max_bytes (1 MB by default) travel
    by reference through Redis, checked by length and checksum: the same
    script gives the same answers on both backends; a tampered payload fails
    its task (worker side) or its await (producer side), saying so."""
    pool = "large" + UNIQ
    w = Worker("large", [pool])
    src = """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 2 }))
local big = string.rep("ab", 2 * 1024 * 1024) -- 4 MiB
local ok, n, up = g.await(assert(g.pool_submit(%(pool)r, function(s)
  return #s, s:upper() end, big)))
print("arg:", ok, n, up and #up, up and up:sub(1, 4))
local ok2, s2 = g.await(assert(g.pool_submit(%(pool)r, function(n)
  return string.rep("y", n) end, 3000000)))
print("result:", ok2, s2 and #s2)
print("small:", g.await(assert(g.pool_submit(%(pool)r, function(x) return x + 1 end, 1))))
local id = assert(g.pool_submit(%(pool)r, function(n) return string.rep("z", n) end, 2000000))
print("unawaited " .. id)
assert(g.pool_wait(%(pool)r))
""" % {"pool": pool}
    expect = ["arg:\ttrue\t4194304\t4194304\tABAB", "result:\ttrue\t3000000", "small:\ttrue\t2"]
    outs = {}
    for fleet in (True, False):
        rc, out, err, _ = run_lua(src, fleet=fleet)
        check(rc == 0, "run (fleet=%s): %d\n%s%s" % (fleet, rc, out[-2000:], err[-2000:]))
        for e in expect:
            check(e in out, "fleet=%s: no %r in\n%s" % (fleet, e, out[-2000:]))
        outs[fleet] = out
    uid = re.search(r"^unawaited (\S+)$", outs[True], re.M).group(1)
    check(2000000 <= redis_cmd("STRLEN", LAYOUT.task(uid, "out")) < 2001000,
          "the unawaited result is kept by reference")
    # producer side: a result changed in Redis is refused by await
    redis_cmd("SETRANGE", LAYOUT.task(uid, "out"), 1000, "Z")
    rc, out, err, _ = run_lua('print(require("goroutine").await(%r))' % uid)
    check(rc == 0 and re.search(r"false\t.*do not match its record", out),
          "await of a tampered result: %d\n%s%s" % (rc, out, err))
    # a producer whose payload.max_ref_bytes is below the result's size:
    # the await fails saying so (the notification is not dropped)
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("over", g.await(assert(g.pool_submit(%r, function() return string.rep("q", 1600000) end))))
""" % pool, env={"MUTIRAO_PAYLOAD_MAX_REF_BYTES": "1500000"}, timeout=60)
    check(rc == 0 and re.search(r"over\tfalse\t.*over this process's payload\.max_ref_bytes "
                                r"\(1500000\)", out), "result over the producer's limit: %d\n%s%s"
          % (rc, out[-2000:], err[-2000:]))
    # worker side: an envelope whose payload in Redis is not the one it names
    tid = "tamper%s:1" % UNIQ
    good = b"\x00" * 2048
    bad = b"\x01" + good[1:]
    redis_cmd("SET", LAYOUT.task(tid, "in"), bad, "EX", "600")
    env = task_envelope(tid, pool, "tamper" + UNIQ, {"ref_len": len(good),
                                                     "ref_sum": fnv1a64(good)})
    rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, "mutirao.pool." + pool, "0",
                           tid, env.hex()])
    check(rc == 0, "kafka-put: %d %s%s" % (rc, out, err))
    w.wait_for(r"task=%s: its arguments in Redis do not match its envelope" % re.escape(tid))
    rc, out, err, _ = run_lua('print(require("goroutine").await(%r))' % tid)
    check(rc == 0 and re.search(r"false\t.*do not match its envelope.*not run", out),
          "await of the tampered task: %d\n%s%s" % (rc, out, err))
    check(w.p.poll() is None, "the worker died")
    check(w.stop() == 0, "worker exit status")
    print("large values: 4 MiB arguments and 3 MB results on both backends; tampering refused")


def case_rebalance_busy():
    """A worker joining moves partitions whose tasks still run on a live
    worker: the newcomer neither runs them again nor counts a delivery (with
    max_deliveries = 1 a count would dead-letter them); each outcome is the
    first worker's, recorded once."""
    pool = "busy" + UNIQ
    n = 8
    a = Worker("busyA", [pool])
    a.wait_for(r"consuming")
    src = """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = %(n)d, max_deliveries = 1 }))
local ids = {}
for i = 1, %(n)d do
  ids[i] = assert(g.pool_submit(%(pool)r, function(k) g.sleep(15000) return k end, i))
end
for i = 1, %(n)d do
  local ok, v = g.await(ids[i])
  print("await", i, ok, v)
end
local s = assert(g.pool_stats(%(pool)r))
print(string.format("stats completed=%%d failed=%%d dead=%%d", s.fleet_completed,
  s.fleet_failed, s.fleet_dead_lettered or 0))
""" % {"pool": pool, "n": n}
    path = os.path.join(TMP, "busy.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    end = time.time() + 60
    while time.time() < end and a.text().count("attempt 1 received") < n:
        time.sleep(0.05)
    time.sleep(1.0)  # they run on A now
    b = Worker("busyB", [pool])
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("the run did not end:\n%s\n%s" % (out, err))
    check(p.returncode == 0, "run: %d\n%s%s" % (p.returncode, out, err))
    for i in range(1, n + 1):
        check("await\t%d\ttrue\t%d" % (i, i) in out, "task %d:\n%s%s" % (i, out, err))
    check("stats completed=%d failed=0 dead=0" % n in out, "counts:\n" + out)
    moved = b.text().count("still running on another live worker")
    check("dead-letter" not in b.text() + a.text(), "a task was dead-lettered")
    runs_b = len(re.findall(r"task=\S+ attempt 1 received", b.text()))
    check(b.text().count(" assigned ") >= 1, "B was given no partition")
    check(moved >= 1, "B was handed no running task (the case proves nothing):\n" + b.text()[-3000:])
    print("rebalance: B received %d of the running tasks, said busy %d time(s), ran none twice"
          % (runs_b, moved))
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")


def case_semantics():
    """Fixed producer ids, task timeouts, delegate_to's `this`, big results,
    await_all with task ids."""
    pool = "se" + UNIQ
    w = Worker("se", [pool], {"MUTIRAO_PAYLOAD_MAX_BYTES": "4096",
                             "MUTIRAO_PAYLOAD_MAX_REF_BYTES": "8192"})
    w.wait_for(r"consuming")
    # two runs with the same producer.id: each gets its own result
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s"))
local v = os.getenv("VAL")
local id = assert(g.pool_submit("%(pool)s", function()
  -- a worker's task VM has the task file's global `goroutine`
  return "run " .. v .. " " .. type(goroutine.spawn)
end))
local ok, r = g.await(id)
print(ok, r)
""" % {"pool": pool}
    for val in ("one", "two"):
        rc, out, err, dt = run_lua(src, env={"VAL": val, "MUTIRAO_PRODUCER_ID": "fixed-" + UNIQ},
                                   timeout=40)
        check(rc == 0 and ("true\trun " + val + " function") in out,
              "run %s with a fixed producer.id: %d %.1f s\n%s%s" % (val, rc, dt, out, err))
    # a task's timeout abandons the fleet tasks it submitted: no wait for them
    path = os.path.join(TMP, "timeout.sloth")
    with open(path, "w") as f:
        f.write("""
local t = task("t"):command(function(this, params)
    local g = require("goroutine")
    g.pool_create("%(pool)s")
    g.pool_submit("%(pool)s", function() g.sleep(6000) return 1 end)
    g.sleep(5000)
    return true
end):timeout("1s"):build()
workflow.define("w"):tasks({t})
""" % {"pool": pool})
    rc, out, err, dt = run([os.path.join(BIN, "mutirao"), "run", "--fleet", path], timeout=40)
    check(rc == 1 and re.search(r"\bt +timeout", out) and dt < 4,
          "task timeout on the fleet: %d in %.1f s\n%s%s" % (rc, dt, out, err))
    # delegate_to: `this` keeps its getters on the worker
    path = os.path.join(TMP, "delegate.sloth")
    with open(path, "w") as f:
        f.write("""
local t = task("remote"):description("far away"):command(function(this, params)
    return true, this:name() .. "/" .. this:description() .. "/" .. tostring(this)
end):delegate_to("%(pool)s"):build()
workflow.define("w"):tasks({t})
""" % {"pool": pool})
    rc, out, err, _ = run([os.path.join(BIN, "mutirao"), "run", "--fleet", path], timeout=40)
    check(rc == 0 and "remote/far away/task 'remote'" in out,
          "delegate_to on the fleet: %d\n%s%s" % (rc, out, err))
    check("delegated to fleet pool" in err, "no delegation log line:\n" + err)
    # a result over payload.max_bytes and payload.max_ref_bytes: await says
    # why; await_all takes ids
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s"))
local big = assert(g.pool_submit("%(pool)s", function() return string.rep("y", 10000) end))
local ok, err = g.await(big)
print("big", ok, err)
-- arguments inline under the producer's limit, over the worker's: the task
-- fails saying so (it used to be skipped, its await never ending)
local arg = assert(g.pool_submit("%(pool)s", function(s) return #s end, string.rep("a", 6000)))
print("bigarg", g.timeout(20000, g.await, arg))
local ids = {}
for i = 1, 3 do ids[i] = assert(g.pool_submit("%(pool)s", function() return i * 10 end)) end
ids[4] = g.async(function() return 40 end)
local rs = g.await_all(ids)
for i = 1, 4 do io.write(tostring(rs[i].success), ":", tostring(rs[i].values[1]), " ") end
print()
""" % {"pool": pool}
    rc, out, err, _ = run_lua(src, timeout=40)
    check(rc == 0 and re.search(r"big\tfalse\t.*cannot be recorded.*payload", out),
          "big result: %d\n%s%s" % (rc, out, err))
    check("true:10 true:20 true:30 true:40" in out, "await_all with task ids:\n" + out + err)
    check(re.search(r"bigarg\ttrue\tfalse\t.*not run: field 'payload': \d+ bytes, the limit is 4096 "
                     r"\(this worker's payload\.max_bytes", out),
          "arguments over the worker's limit: %d\n%s%s" % (rc, out, err))
    # a fleet task submits to a pool its producer created (a fleet pool too);
    # an async handle cannot travel to the fleet: said at submit
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s"))
local id = g.pool_submit("%(pool)s", function()
    local inner = assert(g.pool_submit("%(pool)s", function(x) return x * 2 end, 21))
    return g.await(inner)
end)
print("nested", g.await(id))
local h = g.async(function() return 1 end)
print("handle", g.pool_submit("%(pool)s", function() return g.await(h) end))
""" % {"pool": pool}
    rc, out, err, _ = run_lua(src, timeout=40)
    check(rc == 0 and "nested\ttrue\ttrue\t42" in out, "nested fleet submit:\n" + out + err)
    check("handle\tnil\tan async handle cannot travel to a fleet pool" in out,
          "async handle to the fleet:\n" + out + err)
    # a table's metatable travels to the worker and back: its methods work there
    # and on the result
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s"))
local Acc = {}
Acc.__index = Acc
function Acc:deposit(n) self.balance = self.balance + n return self end
Acc.__tostring = function(a) return "balance " .. a.balance end
local ok, r = g.await(g.pool_submit("%(pool)s", function(a) return a:deposit(5) end,
    setmetatable({ balance = 10 }, Acc)))
print("meta", ok, tostring(r), ok and r:deposit(1).balance)
""" % {"pool": pool}
    rc, out, err, _ = run_lua(src, timeout=40)
    check(rc == 0 and "meta\ttrue\tbalance 15\t16" in out, "metatable on the fleet:\n" + out + err)
    check(w.stop() == 0, "worker exit status")


LOG_TS = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z ")


def line_times(text, pattern):
    """The times (seconds since the epoch) of the worker log lines matching pattern."""
    out = []
    for line in text.splitlines():
        m = LOG_TS.match(line)
        if m and re.search(pattern, line):
            y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
            out.append(calendar.timegm((y, mo, d, h, mi, s)) + ms / 1000.0)
    return out


def start_pair(tag, pool, workers):
    """Workers A and B serving pool, both with partitions of its topic (in
    this run's consumer group: see ENV)."""
    a = Worker(tag + "A", [pool], {"TW_TAG": "A"})
    b = Worker(tag + "B", [pool], {"TW_TAG": "B"})
    a.wait_for(r"consuming")
    b.wait_for(r"consuming")
    rc, out, err, _ = run_lua('assert(require("goroutine").pool_create(%r, {workers = %d, '
                              'queue = 100000}))' % (pool, workers))
    check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
    a.wait_for(r" assigned ")
    b.wait_for(r" assigned ")
    time.sleep(1)  # the cooperative hand-over of B's share from A is done
    return a, b


def fleet_producer(pool, n, ms, name):
    """Starts `mutirao run --fleet` submitting n tasks of ms milliseconds to
    pool; it checks each result, the WaitGroup and pool_wait, and prints who
    ran what and the pool's counts."""
    src = """
local g = require("goroutine")
local wg = g.wait_group()
local ids = {}
local t0 = g.now()
for i = 1, %(n)d do
  wg:add(1)
  ids[i] = assert(g.pool_submit("%(pool)s", function(k)
    g.sleep(%(ms)d)
    wg:done()
    return k, os.getenv("TW_TAG")
  end, i))
end
io.stdout:write("submitted\\n") io.stdout:flush()
local by = {}
for i = 1, %(n)d do
  local ok, k, tag = g.await(ids[i])
  assert(ok and k == i, tostring(k))
  by[tag] = (by[tag] or 0) + 1
end
wg:wait()
assert(wg:count() == 0)
assert(g.pool_wait("%(pool)s"))
print(string.format("all done in %%.1f s: A=%%d B=%%d", (g.now() - t0) / 1000, by.A or 0, by.B or 0))
%(stats)s
""" % {"pool": pool, "n": n, "ms": ms, "stats": stats_src(pool, n)}
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(src)
    return subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)


def producer_exact(p, n, timeout):
    """Waits for the producer of fleet_producer; checks that every outcome
    reached its awaiter once and the fleet counted each task once."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("producer did not finish:\n%s\n%s" % (out, err))
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err))
    check("negative WaitGroup" not in err, "WaitGroup counted twice:\n" + err)
    m = re.search(r"stats completed=(\d+) failed=(\d+) fleet_completed=(\d+) fleet_failed=(\d+) "
                  r"submitted=(\d+) fleet_submitted=(\d+)", out)
    check(m, "no stats line:\n" + out)
    c, f_, fc, ff, s, fs = (int(x) for x in m.groups())
    check((c, f_, s) == (n, 0, n), "this producer's counts: %s" % m.group(0))
    check((fc, ff, fs) == (n, 0, n), "fleet counts (exactly once): %s" % m.group(0))
    m = re.search(r"all done in ([\d.]+) s: A=(\d+) B=(\d+)", out)
    check(m and int(m.group(2)) + int(m.group(3)) == n, "results: %s" % out)
    return float(m.group(1)), int(m.group(2)), int(m.group(3))


def case_sigterm():
    """SIGTERM hands the prefetched tasks back: with two workers and 5,000
    queued 50 ms tasks, the stopped worker gives back what has not started,
    leaves the group and exits within the running tasks plus about 1 s; the
    other one runs the moved partitions at once; every result is exact."""
    pool = "st" + UNIQ
    n, ms, cap = 5000, 50, 16
    a, b = start_pair("st", pool, cap)
    p = fleet_producer(pool, n, ms, "sigterm.lua")
    t_start = time.time()
    # both have fetched their whole share (under their 4,096 prefetch), so
    # whatever B receives after the SIGTERM comes from A's partitions
    end = time.time() + 60
    while time.time() < end and (a.text().count(" received ") < 1000 or
                                 a.text().count(" received ") +
                                 b.text().count(" received ") < n):
        if p.poll() is not None:
            fail("producer exited early: %s" % (p.communicate(),))
        time.sleep(0.05)
    check(time.time() < end, "the tasks did not reach both workers")
    time.sleep(0.5)
    t0 = time.time()
    a.p.send_signal(signal.SIGTERM)
    try:
        a.p.wait(30)
    except subprocess.TimeoutExpired:
        fail("worker A did not exit within 30 s of the SIGTERM")
    exited = time.time() - t0
    took, by_a, by_b = producer_exact(p, n, 120)
    total = time.time() - t_start
    alog, blog = a.text(), b.text()
    m = re.search(r"gave back (\d+) queued task", alog)
    back = int(m.group(1)) if m else 0
    # B: the moved partitions assigned, and their tasks received, soon after
    # the SIGTERM (everything B received before was its own share)
    assigned = [t - t0 for t in line_times(blog, r" assigned ") if t >= t0]
    ran = [t - t0 for t in line_times(blog, r" received ") if t >= t0]
    print("SIGTERM: A exited after %.2f s (gave back %d), B assigned A's partitions after "
          "%s s and ran their first task after %s s; run %.1f s in all (producer %.1f s), "
          "A=%d B=%d" % (exited, back, "%.2f" % assigned[0] if assigned else "-",
                         "%.2f" % ran[0] if ran else "-", total, took, by_a, by_b))
    check(a.p.returncode == 0, "worker A exit status %d" % a.p.returncode)
    check(back > 500, "A gave back no prefetched tasks:\n" + alog[-3000:])
    check(by_b >= back, "B ran %d tasks, fewer than the %d A gave back" % (by_b, back))
    check(assigned and ran, "B took nothing over:\n" + blog[-3000:])
    check(len(ran) >= back, "B received %d tasks after the SIGTERM, A gave back %d"
          % (len(ran), back))
    check(ran[0] < 2.0, "B ran A's tasks only %.2f s after the SIGTERM" % ran[0])
    check(exited < ms / 1000.0 + 1.0, "A exited %.2f s after the SIGTERM" % exited)
    check(b.stop() == 0, "worker B exit status")


def case_stop_first_rebalance():
    """Workers stopped during their first rebalance exit cleanly. Two
    workers start before their pool's topic exists; once it is created,
    both are SIGTERMed at a spread of moments through the join that
    follows (0.1 to 2.5 s after the pool_create). librdkafka 2.0 (Debian
    12) aborted in rd_kafka_destroy (assertion 'assignor_state') when a
    member stopped after its join and before its first assignment; the
    consumer now closes at its first rebalance (shared/kafka/kafka_uv.c,
    kuv_consumer_close). Before that change 3 rounds of 15 aborted."""
    rounds = 12
    slow = []
    for i in range(rounds):
        pool = "sf%d%s" % (i, UNIQ)
        a = Worker("sf%dA" % i, [pool])
        b = Worker("sf%dB" % i, [pool])
        a.wait_for(r"consuming")
        b.wait_for(r"consuming")
        rc, out, err, _ = run_lua('assert(require("goroutine").pool_create(%r, {workers = 4}))'
                                  % pool)
        check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
        time.sleep(0.1 + 2.4 * i / (rounds - 1))
        t0 = time.time()
        for w in (a, b):
            w.p.send_signal(signal.SIGTERM)
        for w in (a, b):
            try:
                w.p.wait(30)
            except subprocess.TimeoutExpired:
                fail("worker %s did not stop within 30 s of its SIGTERM" % w.name)
            text = w.text()
            check(w.p.returncode == 0 and "Assertion" not in text,
                  "round %d: worker %s exit status %d\n%s"
                  % (i, w.name, w.p.returncode, text[-3000:]))
        slow.append(time.time() - t0)
    # a deferred close waits for the rebalance under way, at most the
    # consumer's close timeout (10 s)
    check(max(slow) < 12, "stops took %s s" % ["%.1f" % t for t in slow])
    print("stop_first_rebalance: %d rounds, both workers exited 0 each time; stops took "
          "%s s" % (rounds, " ".join("%.1f" % t for t in slow)))


def case_sigint_twice():
    """The first SIGINT stops like SIGTERM (the queued tasks go back, the
    worker leaves the group, its running tasks go on); a second one exits at
    once; the tasks it was running run again on the other worker, counted
    once."""
    pool = "si" + UNIQ
    # task ids are random, so is their spread over the 8 partitions: with
    # 32 tasks A's 4 partitions hold more than cap (something queued to give
    # back) but in about 1 run of 100,000 (with 24 tasks: 1 run of 1,300,
    # which happened in CI once; with 16 tasks: 1 run of 26)
    n, ms, cap = 32, 3000, 4
    a, b = start_pair("si", pool, cap)
    p = fleet_producer(pool, n, ms, "sigint.lua")
    end = time.time() + 60
    while a.text().count(" received ") < cap and time.time() < end:
        check(a.p.poll() is None and p.poll() is None, "worker A or the producer exited early")
        time.sleep(0.05)
    check(time.time() < end, "A is not running %d tasks" % cap)
    time.sleep(0.3)
    t0 = time.time()
    a.p.send_signal(signal.SIGINT)
    a.wait_for(r"SIGINT received", 10)
    # A left the group at once: B gets its partitions while A's tasks run
    while not [t for t in line_times(b.text(), r" assigned ") if t >= t0] and time.time() < t0 + 10:
        time.sleep(0.05)
    moved = time.time() - t0
    check(moved < 2, "A's partitions moved to B %.2f s after the first SIGINT" % moved)
    check(a.p.poll() is None, "the first SIGINT did not let the running tasks finish")
    m = re.search(r"gave back (\d+) queued task", a.text())
    check(m and int(m.group(1)) > 0, "A gave no queued task back:\n" + a.text()[-3000:])
    t1 = time.time()
    a.p.send_signal(signal.SIGINT)
    try:
        a.p.wait(10)
    except subprocess.TimeoutExpired:
        fail("worker A did not exit on the second SIGINT")
    exited = time.time() - t1
    check(a.p.returncode == 128 + signal.SIGINT,
          "exit status after a second SIGINT: %d" % a.p.returncode)
    check(re.search(r"second signal", a.text()), "no line about the second signal")
    took, by_a, by_b = producer_exact(p, n, 90)
    check(by_a == 0, "A recorded %d tasks although its second SIGINT cut them short" % by_a)
    print("first SIGINT: B had A's partitions after %.2f s; second SIGINT: exit after %.2f s; "
          "all %d done in %.1f s on B" % (moved, exited, n, took))
    check(exited < 0.5, "A exited %.2f s after the second SIGINT" % exited)
    check(b.stop() == 0, "worker B exit status")


# ---- Redis restarted or notifications lost mid-run (a private redis-server) ----

LOSS_SRC = """
local g = require("goroutine")
local P, N = %(pool)r, %(n)d
assert(g.pool_create(P, {workers = 32, queue = N}))
local wg, adds = g.wait_group(), g.wait_group()
local ids = {}
for i = 1, N do
  wg:add(1)
  ids[i] = assert(g.pool_submit(P, function(k)
    g.sleep(%(ms)d)
    if k %% 10 == 0 then adds:add(1) end -- travels back with the outcome
    wg:done()
    return k * 2
  end, i))
end
io.stdout:write("submitted\\n") io.stdout:flush()
local both = g.wait_group()
both:add(2)
local waited, pooled
g.spawn(function() wg:wait() waited = wg:count() both:done() end)
g.spawn(function() pooled = g.pool_wait(P) both:done() end)
local bad = 0
for i = 1, N do
  local ok, v = g.await(ids[i])
  if not (ok and v == 2 * i) then
    bad = bad + 1
    io.stderr:write("task " .. i .. ": " .. tostring(ok) .. " " .. tostring(v) .. "\\n")
  end
end
both:wait()
local s = assert(g.pool_stats(P))
print(string.format("bad=%%d wg=%%d adds=%%d pool_wait=%%s completed=%%d failed=%%d "
  .. "fleet_completed=%%d", bad, waited, adds:count(), tostring(pooled), s.completed, s.failed,
  s.fleet_completed))
"""


def loss_run(name, aof, n, ms, disturb, after=None, worker_env=None):
    """Runs LOSS_SRC (n tasks of ms ms on two workers) against a private
    Redis (the producer's connections go through a CuttingProxy);
    disturb(redis, proxy) runs once a third of the tasks completed, after(redis)
    once the producer ended. Checks that the run ends on its own with every outcome, the
    WaitGroups and pool_wait exact. Returns the producer's stdout, stderr
    and the pool's fleet_completed."""
    if not private_redis.available():
        skip("redis-server not installed")
    red = private_redis.PrivateRedis(TMP, aof)
    red.start()
    proxy = private_redis.CuttingProxy(red.port)
    try:
        pool = name + UNIQ
        env = {"MUTIRAO_REDIS_URL": red.url}
        env.update(worker_env or {})
        a = Worker(name + "A", [pool], env)
        b = Worker(name + "B", [pool], env)
        a.wait_for(r"consuming")
        b.wait_for(r"consuming")
        path = os.path.join(TMP, name + ".lua")
        with open(path, "w") as f:
            f.write(LOSS_SRC % {"pool": pool, "n": n, "ms": ms})
        e = dict(ENV)
        e.update({"MUTIRAO_REDIS_URL": proxy.url})
        p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=e, cwd=TMP)
        c = red.conn()
        stats = PLAIN.pool(pool, "stats")
        end = time.time() + 60
        while time.time() < end and int(c.call("HGET", stats, "completed") or 0) < n // 3:
            check(p.poll() is None, "the producer ended early")
            time.sleep(0.02)
        check(time.time() < end, "a third of the tasks did not complete within 60 s")
        c.close()
        disturb(red, proxy)
        t0 = time.time()
        try:
            out, err = p.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            fail("the producer did not end on its own:\n%s\n%s" % (out, err[-6000:]))
        check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err[-6000:]))
        m = re.search(r"bad=(\d+) wg=(\d+) adds=(\d+) pool_wait=(\S+) completed=(\d+) "
                      r"failed=(\d+) fleet_completed=(\d+)", out)
        check(m, "no summary line:\n" + out + err[-6000:])
        bad, wg, adds, pooled, done, failed, fleet_done = m.groups()
        check((bad, wg, adds, pooled, done, failed) ==
              ("0", "0", str(n // 10), "true", str(n), "0"),
              "outcomes, WaitGroups, pool_wait, counts: %s\n%s" % (m.group(0), err[-6000:]))
        check("negative WaitGroup" not in err, "a WaitGroup change applied twice:\n" + err)
        check("is a mutirao-worker running" not in err,
              "the no-worker hint while workers ran:\n" + err)
        if after:
            after(red, a, b)
        check(a.stop() == 0 and b.stop() == 0, "worker exit status")
        print("%s: all %d outcomes %.1f s after the disturbance" % (name, n, time.time() - t0))
        for line in err.splitlines():
            if "producer" in line:
                print("  producer: " + line[-200:])
        return out, err, int(fleet_done)
    finally:
        proxy.close()
        red.kill()


def restart(red, proxy, down=1):
    red.kill()
    time.sleep(down)
    red.start()


def case_redis_restart_aof():
    """Redis killed and restarted with AOF (appendfsync always) mid-run:
    notifications popped for a reply the connection lost are found again."""
    n = 3000

    def cut_and_restart(red, proxy):
        # replies of BLMPOP lost with their connection: their elements are
        # gone from the list (AOF or not)
        proxy.arm(3)
        end = time.time() + 20
        while proxy.dropped < 3 and time.time() < end:
            time.sleep(0.01)
        check(proxy.dropped == 3, "no BLMPOP reply to drop")
        restart(red, proxy)

    out, err, fleet_done = loss_run("rra", True, n, 100, cut_and_restart)
    check("their notification lost or late" in err, "no outcome found in Redis:\n" + err[-4000:])
    check(fleet_done == n, "Redis kept the counts: fleet_completed=%d" % fleet_done)


def case_redis_restart_nopersist():
    """Redis killed and restarted without persistence mid-run: it lost the
    results, markers and notifications of tasks Kafka had committed; the
    producer submits those again and every outcome arrives once."""
    n = 2000
    stats = PLAIN.pool("rrn" + UNIQ, "stats")

    def hold_and_restart(red, proxy):
        # results recorded, their offsets committed and their notifications
        # still in Redis when it goes; down longer than the workers' op
        # timeout, so their completion records fail and are retried
        proxy.hold(True)
        time.sleep(1.5)
        # it goes just after a completion, while the workers run others
        # (a rebalance or a slow machine can pause them: a fixed delay
        # alone sometimes found no completion in flight)
        c = red.conn()
        before = int(c.call("HGET", stats, "completed") or 0)
        end = time.time() + 30
        now = before
        while now == before and time.time() < end:
            time.sleep(0.005)
            now = int(c.call("HGET", stats, "completed") or 0)
        c.close()
        check(now > before, "no task completed for 30 s before the outage")
        check(now < n - 200, "only %d tasks left to run during the outage" % (n - now))
        restart(red, proxy, 2.5)
        proxy.hold(False)

    def retried(red, a, b):
        logs = a.text() + b.text()
        check("cannot record the outcome" in logs, "no worker retried a completion record")
        # the tasks submitted again went as their next attempt
        check(re.search(r"task=\S+ attempt 2 received", logs), "no attempt 2 ran")

    out, err, _ = loss_run("rrn", False, n, 250, hold_and_restart, retried,
                           {"MUTIRAO_OP_TIMEOUT_MS": "1000"})
    check("submitted again" in err, "nothing was submitted again:\n" + err[-4000:])


def case_notify_dropped():
    """Notifications taken from the producer's list while it runs (what a
    lost BLMPOP reply does): the producer finds those outcomes in Redis."""
    stolen = {"R": 0, "W": 0}

    def steal(red, proxy):
        c = red.conn()
        keys = []
        end = time.time() + 20
        while not keys and time.time() < end:
            keys = c.call("KEYS", PLAIN.done("*"))
        check(len(keys) == 1, "the producer's list: %r" % keys)
        kept_changes(c)
        while stolen["R"] < 200 and time.time() < end:
            got = c.call("LPOP", keys[0], 3) or []
            for e in got:
                stolen[chr(e[0])] = stolen.get(chr(e[0]), 0) + 1
            time.sleep(0.001)
        c.close()
        print("stolen:", stolen)

    def kept_changes(c):
        # each completed task's WaitGroup changes, kept for the
        # reconciliation until its outcome is awaited
        keys = c.call("KEYS", PLAIN.task("*", "w"))
        check(len(keys) > 0, "no mutirao:task:ID:w key")
        for k in keys[:50]:
            v = c.call("GET", k)
            if v is None:
                continue  # awaited meanwhile
            ok = re.fullmatch(r"\S+/\d+ (-1|1\n\S+/\d+ -1|-1\n\S+/\d+ 1)", v.decode())
            check(ok, "%s: %r" % (k, v))

    def retired(red, a, b):
        c = red.conn()
        # (their :info, what `mutirao task` shows, stays a day by design)
        left = [k for k in c.call("KEYS", PLAIN.task("*")) if not k.endswith(b":info")]
        check(left == [], "keys of awaited tasks left: %r" % left[:5])
        c.close()

    out, err, fleet_done = loss_run("nd", True, 3000, 50, steal, retired)
    check(stolen["R"] > 0 and stolen["W"] > 0, "nothing stolen: %r" % stolen)
    check("their notification lost or late" in err, "no outcome found in Redis:\n" + err[-4000:])
    check(fleet_done == 3000, "fleet_completed=%d" % fleet_done)


def case_notify_gone():
    """Another process awaits a task (which deletes its record) and the
    task's notification to its producer is lost: the producer's await ends
    with an error saying so instead of hanging."""
    if not private_redis.available():
        skip("redis-server not installed")
    red = private_redis.PrivateRedis(TMP, False)
    red.start()
    proxy = private_redis.CuttingProxy(red.port)
    try:
        pool = "gone" + UNIQ
        w = Worker("gone", [pool], {"MUTIRAO_REDIS_URL": red.url})
        w.wait_for(r"consuming")
        ids = os.path.join(TMP, "gone-id.txt")
        path = os.path.join(TMP, "gone.lua")
        with open(path, "w") as f:
            f.write("""
local g = require("goroutine")
assert(g.pool_create(%(p)r, {workers = 2}))
local id = assert(g.pool_submit(%(p)r, function() return 42 end))
local f = assert(io.open(%(ids)r, "w")) f:write(id) f:close()
print("await", g.await(id))
""" % {"p": pool, "ids": ids})
        proxy.hold(True)  # the producer reads no notification for now
        e = dict(ENV)
        e["MUTIRAO_REDIS_URL"] = proxy.url
        p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=e, cwd=TMP)
        c = red.conn()
        end = time.time() + 60
        while time.time() < end and not (os.path.exists(ids) and open(ids).read()):
            time.sleep(0.05)
        tid = open(ids).read()
        while time.time() < end and c.call("EXISTS", PLAIN.task(tid)) == 0:
            time.sleep(0.05)
        # another process awaits it: the record goes
        rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("other", g.await(%r)) -- the last thing it does: its deletion still goes out
""" % tid, env={"MUTIRAO_REDIS_URL": red.url})
        check(rc == 0 and "other\ttrue\t42" in out, "the other await: %d\n%s%s" % (rc, out, err))
        check(c.call("EXISTS", PLAIN.task(tid)) == 0, "the record was not deleted")
        # and the producer's notifications are lost
        check(c.call("DEL", *c.call("KEYS", PLAIN.done("*"))) >= 1, "no notification to lose")
        c.close()
        proxy.hold(False)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            fail("the producer's await hung:\n%s\n%s" % (out, err))
        check(re.search(r"await\tfalse\t.*read and deleted by another process's await", out),
              "producer: %d\n%s%s" % (p.returncode, out, err))
        check(w.stop() == 0, "worker exit status")
    finally:
        proxy.close()
        red.kill()


def case_reconcile_bounded():
    """20,000 tasks pending (no worker runs their pool): the reconciliation
    looks at no more than FRC_BATCH (500) of them per second, so many
    pending tasks do not flood Redis; it does look."""
    if not private_redis.available():
        skip("redis-server not installed")
    red = private_redis.PrivateRedis(TMP, False)  # its command counts are this test's
    red.start()
    try:
        pool, n, wait_ms = "bounded" + UNIQ, 20000, 7000
        rc, out, err, dt = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(p)r, {workers = 4, queue = %(n)d}))
for i = 1, %(n)d do assert(g.pool_submit(%(p)r, function() return 1 end)) end
print("submitted", g.now())
g.sleep(%(ms)d)
os.exit(0)
""" % {"p": pool, "n": n, "ms": wait_ms}, env={"MUTIRAO_REDIS_URL": red.url})
        check("submitted" in out, "producer: %d\n%s%s" % (rc, out, err))
        c = red.conn()
        stats = c.call("INFO", "commandstats").decode()
        c.close()
        # each looked-up task costs one GET of its record; nothing else here GETs
        m = re.search(r"cmdstat_get:calls=(\d+)", stats)
        looked = int(m.group(1)) if m else 0
        limit = 500 * (dt + 1)
        print("%d pending tasks for %.1f s: %d looked up (at most %d)" % (n, dt, looked, limit))
        check(0 < looked <= limit, "%d look-ups in %.1f s:\n%s" % (looked, dt, stats))
    finally:
        red.kill()


def case_no_worker_hint():
    """Nothing comes back for op.timeout_ms: the producer suggests starting
    a mutirao-worker only for a pool no worker reports running tasks of; a
    task that simply runs long gets no such warning."""
    if not private_redis.available():
        skip("redis-server not installed")
    red = private_redis.PrivateRedis(TMP, False)  # no other engineer's worker reports here
    red.start()
    try:
        long_pool, idle_pool = "hintlong" + UNIQ, "hintnone" + UNIQ
        env = {"MUTIRAO_REDIS_URL": red.url, "MUTIRAO_OP_TIMEOUT_MS": "2000"}
        w = Worker("hint", [long_pool], {"MUTIRAO_REDIS_URL": red.url})
        w.wait_for(r"consuming")
        # the pool's topic first, and the worker on it: until then nothing
        # runs its tasks and the hint would be right
        rc, out, err, dt = run_lua("""
assert(require("goroutine").pool_create(%(p)r, {workers = 2}))
""" % {"p": long_pool}, env=env)
        check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
        w.wait_for(r"assigned .*%s" % long_pool)
        rc, out, err, dt = run_lua("""
local g = require("goroutine")
print(g.await(g.pool_submit(%(p)r, function() g.sleep(7000) return "long" end)))
""" % {"p": long_pool}, env=env)
        check(rc == 0 and "true\tlong" in out and dt >= 7, "long task: %d\n%s%s" % (rc, out, err))
        check("mutirao-worker" not in err and "no result" not in err,
              "a warning about a task that runs long:\n" + err)
        rc, out, err, dt = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(p)r, {workers = 2}))
assert(g.pool_submit(%(p)r, function() return 1 end))
g.sleep(4500)
os.exit(0)
""" % {"p": idle_pool}, env=env)
        check(re.search(r"1 fleet task\(s\) of producer \S+ in pool\(s\) %s have had no result "
                        r"for \d+ s and no worker reports running tasks of them: is a "
                        r"mutirao-worker running" % idle_pool, err),
              "no hint for a pool without workers: %d\n%s%s" % (rc, out, err))
        # unsigned: workers that require signatures would refuse its tasks
        check("This producer signs nothing (no auth.signing_key)" in err,
              "no hint about signing from an unsigned producer:\n" + err)
        check(w.stop() == 0, "worker exit status")
    finally:
        red.kill()


def case_valgrind():
    """file_pool.sloth on the fleet, the run and its worker under valgrind:
    no invalid read or write (e.g. freeing a VM's fleet state while one of its
    libuv handles is still closing). Leaks are not errors here."""
    vg = os.environ.get("MUTIRAO_VALGRIND") or "valgrind"
    opts = ["--error-exitcode=99", "--errors-for-leak-kinds=none"]
    wlog, rlog = os.path.join(TMP, "valgrind-worker.log"), os.path.join(TMP, "valgrind-run.log")
    w = Worker("vg", ["converter", "mariguica"],
               prefix=[vg] + opts + ["--log-file=" + wlog])
    w.wait_for(r"starting")
    rc, out, err, dt = run([vg] + opts + ["--log-file=" + rlog, os.path.join(BIN, "mutirao"),
                           "run", "--fleet", os.path.join(EXAMPLES, "file_pool.sloth")],
                           timeout=120)
    nerr = mutirao_test.valgrind_errors(rlog)
    if rc != 0 or nerr != 0:
        with open(rlog) as f:
            print(f.read()[-12000:])
    check(rc == 0 and nerr == 0, "mutirao run --fleet under valgrind: exit %d, %s errors:\n%s%s"
          % (rc, nerr, out, err))
    rows = summary_rows(out)
    check(rows and rows[0][:3] == ("file_pool", "convert_documents", "success"),
          "file_pool.sloth did not succeed:\n" + out + err)
    print("mutirao run --fleet under valgrind: %.1f s, 0 errors" % dt)
    code = w.stop()
    nerr = mutirao_test.valgrind_errors(wlog)
    if code != 0 or nerr != 0:
        with open(wlog) as f:
            print(f.read()[-12000:])
    check(code == 0 and nerr == 0, "worker under valgrind: exit %d, %s errors" % (code, nerr))


class Supervised:
    """A worker restarted whenever it exits (a supervisor loop); counts its deaths."""
    def __init__(self, name, pools, env=None):
        self.name, self.pools, self.deaths, self.gen = name, pools, 0, 0
        self.env = env
        self.w = Worker("%s-%d" % (name, self.gen), pools, env)

    def poll(self):
        if self.w.p.poll() is not None:
            self.deaths += 1
            self.gen += 1
            self.w = Worker("%s-%d" % (self.name, self.gen), self.pools, self.env)

    def stop(self):
        return self.w.stop()


def case_poison():
    """One task that kills its worker (SIGSEGV from inside the task) among
    normal ones, two workers restarted by a supervisor loop: at most
    max_deliveries (3) deaths in all, then the task is dead-lettered (its
    await says so, pool_stats counts it, operators find it in Redis), and
    every other task completes."""
    pool = "poison" + UNIQ
    sup = [Supervised("poA", [pool], HARNESS_ALLOW), Supervised("poB", [pool], HARNESS_ALLOW)]
    for s in sup:
        s.w.wait_for(r"consuming")
    src = """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 2 }))
g.sleep(3000) -- both workers in the group
local ids = {}
for i = 1, 10 do
    ids[#ids + 1] = assert(g.pool_submit(%(pool)r, function(k) g.sleep(20) return k end, i))
end
-- the poison: crashes the process that runs it, like a segfault in a C module
local bad = assert(g.pool_submit(%(pool)r, function()
    g.sleep(200)
    os.execute("kill -SEGV $PPID")
    g.sleep(10000)
    return "survived"
end))
for i = 11, 30 do
    ids[#ids + 1] = assert(g.pool_submit(%(pool)r, function(k) g.sleep(20) return k end, i))
end
io.stdout:write("bad ", bad, "\\n") io.stdout:flush()
for i, id in ipairs(ids) do
    local ok, v = g.await(id)
    assert(ok and v == i, "task " .. i .. ": " .. tostring(v))
end
print("others ok")
print("bad:", g.await(bad))
local s = assert(g.pool_stats(%(pool)r))
print(string.format("stats completed=%%d failed=%%d dead=%%d fleet_dead=%%d fleet_failed=%%d",
    s.completed, s.failed, s.dead_lettered, s.fleet_dead_lettered, s.fleet_failed))
""" % {"pool": pool}
    path = os.path.join(TMP, "poison.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    end = time.time() + 180
    while p.poll() is None and time.time() < end:
        for s in sup:
            s.poll()
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
    out, err = p.communicate()
    deaths = sum(s.deaths for s in sup)
    check(p.returncode == 0 and "others ok" in out,
          "producer: %s after %d deaths\n%s%s" % (p.returncode, deaths, out, err))
    check(1 <= deaths <= 3, "%d worker deaths (max_deliveries is 3)" % deaths)
    m = re.search(r"bad:\tfalse\tdead-lettered after 3 deliveries: worker \S+ ended without "
                  r"recording an outcome \(delivery 3\)", out)
    check(m, "the poison's await:\n" + out)
    check("stats completed=30 failed=1 dead=1 fleet_dead=1 fleet_failed=1" in out,
          "pool_stats:\n" + out)
    bad = re.search(r"bad (\S+)", out).group(1)
    rec = (redis_cmd("HGET", LAYOUT.pool(pool, "dead"), bad) or b"").decode()
    check(rec.startswith("3 ") and "ended without recording an outcome" in rec,
          "the dead letter's record: %r" % rec)
    check(redis_cmd("HEXISTS", LAYOUT.pool(pool, "dead:env"), bad) == 1,
          "the dead letter's envelope is not stored")
    logs = "".join(s.w.text() for s in sup)
    check(re.search(r"task=%s: dead-lettered after 3 deliveries" % re.escape(bad), logs),
          "no dead-letter line in the live workers' logs:\n" + logs[-3000:])
    check(re.search(r"dead letter at mutirao\.dead\[\d+\]", logs), "not produced to mutirao.dead")
    # the dead letter's partition moved on: its offset is committed, so a
    # restarted worker runs nothing again
    for s in sup:
        check(s.stop() == 0, "worker exit status")
    w = Worker("poC", [pool], HARNESS_ALLOW)
    w.wait_for(r" assigned ")
    time.sleep(3)
    check(" received " not in w.text(), "tasks delivered again after a clean stop:\n" + w.text())
    check(w.stop() == 0, "worker exit status")
    print("%d worker deaths, then dead-lettered" % deaths)


def case_redelivered():
    """A worker stopped (SIGSTOP, then SIGKILL) right after it recorded
    outcomes, before their offsets committed: the other worker is given those
    tasks again and does not run them ("not run again"); every task's outcome
    is recorded once. Each run appends the task's number to a file."""
    pool = "redeliv" + UNIQ
    n = 300
    runs = os.path.join(TMP, "runs.txt")
    a = Worker("rdA", [pool], HARNESS_ALLOW)
    b = Worker("rdB", [pool], HARNESS_ALLOW)
    a.wait_for(r"consuming")
    b.wait_for(r"consuming")
    src = runs_src(pool, n, runs, "workers = 10", 30,
                   ("completed", "fleet_completed", "fleet_failed"), settle_ms=3000)
    path = os.path.join(TMP, "redeliv.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    # A stops dead while outcomes it recorded are still uncommitted
    end = time.time() + 60
    while time.time() < end and a.text().count("recorded ") < 3:
        time.sleep(0.002)
    a.p.send_signal(signal.SIGSTOP)
    try:
        out, err = p.communicate(timeout=120)
    finally:
        a.p.kill()
        a.p.wait()
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err))
    check("stats completed=%d fleet_completed=%d fleet_failed=0" % (n, n) in out,
          "counts (exactly once):\n" + out)
    skipped = re.findall(r"pool=%s task=\S+:(\d+):[0-9a-f]{32} attempt 1: outcome already "
                         r"recorded \(delivered again\); not run again" % re.escape(pool),
                         b.text())
    check(skipped, "B was given no task A had recorded:\n" + b.text()[-3000:])
    with open(runs) as f:
        count = {}
        for line in f:
            count[line.strip()] = count.get(line.strip(), 0) + 1
    check(len(count) == n, "%d of %d tasks ran" % (len(count), n))
    # the task ids are PRODUCER:SEQ:RANDOM and task k is the k-th submit: SEQ == k
    again = [k for k in skipped if count.get(k) != 1]
    check(not again, "tasks run again although their outcome was recorded: %s" % again)
    check(b.stop() == 0, "worker B exit status")
    print("%d task(s) delivered again and not run again; %d run twice (running on A when it "
          "stopped)" % (len(skipped), sum(1 for c in count.values() if c > 1)))


def case_newer_envelope():
    """A task envelope of version 3 (newer than this worker reads; version 2
    is a signed envelope, docs/wire-format.md) on a
    pool's topic: the worker pauses that partition and says so once; the
    message is not committed as skipped (a worker started after a clean stop
    is given it again) and the task behind it waits for a newer worker."""
    pool = "newer" + UNIQ
    topic = "mutirao.pool." + pool
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%r))
""" % pool, env={"MUTIRAO_TOPIC_PARTITIONS": "1"})
    check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
    w = Worker("nwA", [pool])
    w.wait_for(r" assigned ")
    rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, topic, "0", "future:1",
                           "4d54450381a8667574757265c3"])
    check(rc == 0, "kafka-put: %d %s%s" % (rc, out, err))
    w.wait_for(r"written by a newer mutirao; this one reads up to 1; partition paused here")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
local id = assert(g.pool_submit(%r, function() return "ran" end))
print("behind:", g.timeout(4000, function() return g.await(id) end))
os.exit(0)
""" % pool)
    check(rc == 0 and "behind:\tfalse\ttimeout after 4000 ms" in out,
          "the task behind the newer envelope: %d\n%s%s" % (rc, out, err))
    log = w.text()
    check(log.count("written by a newer mutirao") == 1, "said more than once:\n" + log)
    check("skipped" not in log and " received " not in log, "a message was run or skipped:\n" + log)
    check(w.stop() == 0, "worker exit status")
    w2 = Worker("nwB", [pool])
    w2.wait_for(r"partition 0 offset 0: task envelope version 3 was written by a newer mutirao")
    check(w2.stop() == 0, "worker exit status")


def case_dlq():
    """Operators handle dead letters: `mutirao dlq list` (text and --json,
    configuration from a file too), `retry` (the task runs again and its new
    outcome is what await gives), `drop`, and their errors and exit codes."""
    import json
    pool = "dlq" + UNIQ
    sup = Supervised("dlq", [pool], HARNESS_ALLOW)
    sup.w.wait_for(r"consuming")
    flags = [os.path.join(TMP, "flag1"), os.path.join(TMP, "flag2")]
    src = """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 2, max_deliveries = 1 }))
local function crash_unless(flag, pad)
    if not io.open(flag) then
        os.execute("kill -SEGV $PPID") -- its worker dies, as on a segfault
        g.sleep(10000)
    end
    return "fine"
end
local ids = {}
for i, flag in ipairs({%(f1)r, %(f2)r}) do
    -- the second's arguments (2 MB) are kept in Redis by reference
    ids[i] = assert(g.pool_submit(%(pool)r, crash_unless, flag,
        i == 2 and string.rep("p", 2 * 1024 * 1024) or nil))
    print("id" .. i, ids[i])
end
for i = 1, 2 do print("await" .. i, g.await(ids[i])) end
local s = g.pool_stats(%(pool)r)
print("dead", s.dead_lettered, s.fleet_dead_lettered)
""" % {"pool": pool, "f1": flags[0], "f2": flags[1]}
    path = os.path.join(TMP, "dlq.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    end = time.time() + 120
    while p.poll() is None and time.time() < end:
        sup.poll()
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
    out, err = p.communicate()
    check(p.returncode == 0, "producer: %s\n%s%s" % (p.returncode, out, err))
    ids = re.findall(r"^id\d\t(\S+)$", out, re.M)
    check(len(ids) == 2, out)
    for i in (1, 2):
        check(re.search(r"await%d\tfalse\tdead-lettered after 1 delivery: worker \S+ ended "
                        r"without recording an outcome \(delivery 1\)" % i, out), out)
    check("dead\t2\t2" in out, "pool_stats:\n" + out)
    mutirao = os.path.join(BIN, "mutirao")
    rc, out, err, _ = run([mutirao, "dlq", "list", pool])
    check(rc == 0 and re.search(r"^ID +ATTEMPTS +FIRST +LAST +ERROR$", out, re.M)
          and all(re.search(r"^%s +1 +\d{4}-\d\d-\d\dT\S+Z +\S+ +worker \S+ ended" %
                            re.escape(i), out, re.M) for i in ids),
          "dlq list: %d\n%s%s" % (rc, out, err))
    # the same from a configuration file alone
    conf = os.path.join(TMP, "dlq.conf")
    with open(conf, "w") as f:
        f.write("kafka.brokers = %s\nredis.url = %s\n" % (BROKERS, REDIS))
    rc, out2, err, _ = run([mutirao, "dlq", "list", pool, "--json"],
                           env={"MUTIRAO_CONFIG": conf, "MUTIRAO_KAFKA_BROKERS": "",
                                "MUTIRAO_REDIS_URL": ""})
    check(rc == 0, "dlq list --json: %d\n%s%s" % (rc, out2, err))
    rows = json.loads(out2)
    check(sorted(r["id"] for r in rows) == sorted(ids) and
          all(r["attempts"] == 1 and r["pool"] == pool and "ended without" in r["error"] and
              len(r["history"]) == 1 and r["first_ms"] <= r["last_ms"] <= r["dead_at_ms"]
              for r in rows), "dlq list --json:\n" + out2)
    # retry: the task runs again (it no longer crashes) and records its outcome
    open(flags[0], "w").close()
    rc, out, err, _ = run([mutirao, "dlq", "retry", pool, ids[0]])
    check(rc == 0 and ("retried %s" % ids[0]) in out, "dlq retry: %d\n%s%s" % (rc, out, err))
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("retried:", g.await(%r))
""" % ids[0])
    check(rc == 0 and "retried:\ttrue\tfine" in out, "await after retry: %d\n%s%s" % (rc, out, err))
    rc, out, err, _ = run([mutirao, "dlq", "list", pool, "--json"])
    check(rc == 0 and [r["id"] for r in json.loads(out)] == [ids[1]], "after retry:\n" + out)
    rc, out, err, _ = run([mutirao, "dlq", "retry", pool, ids[0]])
    check(rc == 1 and "no dead letter %s in pool %s" % (ids[0], pool) in err,
          "retry of a task no longer dead: %d\n%s%s" % (rc, out, err))
    # the other's arguments went with its awaited failure: it cannot run
    # again, and retry says so instead of losing it
    rc, out, err, _ = run([mutirao, "dlq", "retry", pool, ids[1]])
    check(rc == 1 and "kept in Redis by reference) are gone" in err,
          "retry without its arguments: %d\n%s%s" % (rc, out, err))
    rc, out, err, _ = run([mutirao, "dlq", "drop", pool, "--all"])
    check(rc == 0 and ("dropped %s" % ids[1]) in out, "dlq drop --all: %d\n%s%s" % (rc, out, err))
    rc, out, err, _ = run([mutirao, "dlq", "list", pool])
    check(rc == 0 and "no dead letters in pool %s" % pool in out, "after drop:\n" + out + err)
    rc, out, err, _ = run([mutirao, "dlq", "list", pool, "--json"])
    check(rc == 0 and json.loads(out) == [], "after drop, --json:\n" + out + err)
    rc, out, err, _ = run([mutirao, "dlq", "list", "nosuch" + UNIQ])
    check(rc == 1 and "pool not found: nosuch" in err, "unknown pool: %d %s" % (rc, err))
    rc, out, err, _ = run([mutirao, "dlq", "drop", pool, "nobody:1"])
    check(rc == 1 and "no dead letter nobody:1 in pool" in err, "unknown id: %d %s" % (rc, err))
    for args in (["dlq"], ["dlq", "frob", pool], ["dlq", "retry", pool], ["dlq", "list"],
                 ["dlq", "list", pool, "--bogus"], ["dlq", "drop", "bad pool!", "x"]):
        rc, out, err, _ = run([mutirao] + args)
        # one line: the problem and where the help is
        check(rc == 2 and out == "" and err.count("\n") == 1 and
              ("(see mutirao dlq help)" in err or "invalid" in err),
              "%s: %d\n%s%s" % (args, rc, out, err))
    check(sup.stop() == 0, "worker exit status")
    print("%d worker death(s); list, retry and drop work" % sup.deaths)


def case_revoked():
    """A worker with a backlog loses partitions to a worker that joins: the
    tasks it had queued (not started) of those partitions are left to the
    new owner instead of running on both; every task completes once."""
    pool = "revoked" + UNIQ
    n = 200
    runs = os.path.join(TMP, "runs-revoked.txt")
    a = Worker("rvA", [pool], HARNESS_ALLOW)
    a.wait_for(r"consuming")
    src = runs_src(pool, n, runs, "workers = 2, queue = 1000", 40,
                   ("fleet_completed", "fleet_failed"))
    path = os.path.join(TMP, "revoked.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    a.wait_for(r"task=\S+ attempt 1 received", 60)
    b = Worker("rvB", [pool], HARNESS_ALLOW)
    out, err = p.communicate(timeout=120)
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err))
    check("stats fleet_completed=%d fleet_failed=0" % n in out, "counts:\n" + out)
    m = re.findall(r"partition \d+ revoked: (\d+) queued task\(s\) left to its new owner", a.text())
    check(m and sum(int(x) for x in m) > 0, "A dropped no queued task:\n" + a.text()[-3000:])
    with open(runs) as f:
        count = {}
        for line in f:
            count[line.strip()] = count.get(line.strip(), 0) + 1
    twice = [k for k, c in count.items() if c > 1]
    check(len(count) == n, "%d of %d tasks ran" % (len(count), n))
    # only a task running on A when its partition moved may run on both
    check(len(twice) <= 2, "tasks run twice: %s" % twice)
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")
    print("%d queued task(s) left to the new owner; %d run twice" %
          (sum(int(x) for x in m), len(twice)))


FLAKY_SRC = """
-- fails its first `fails` attempts, counting every attempt in the file `path`
local function flaky(path, fails, tag)
  local f = io.open(path, "r")
  local runs = f and tonumber(f:read("a")) or 0
  if f then f:close() end
  runs = runs + 1
  f = assert(io.open(path, "w"))
  f:write(tostring(runs))
  f:close()
  if runs <= fails then error(tag .. ": attempt " .. runs .. " failed", 0) end
  return tag .. " ok after " .. runs
end
"""


def attempts_in(path):
    with open(path) as f:
        return int(f.read())


def case_retries():
    """A pool's retries on the fleet: a task that fails twice returns its
    value on its third attempt, one that always fails gives its third
    failure, the other tasks of the same partition are not held up while
    those wait for their next attempt, and the retries are counted."""
    pool = "retries" + UNIQ
    w = Worker("retries", [pool], HARNESS_ALLOW)
    w.wait_for(r"consuming")
    paths = {k: os.path.join(TMP, "%s-%s.count" % (pool, k)) for k in ("once", "twice", "always")}
    rc, out, err, _ = run_lua(FLAKY_SRC + """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 1, queue = 10, retries = 2,
                                 backoff = { initial = 1500, max = 1500, jitter = 0 } }))
local t0 = g.now()
local once = assert(g.pool_submit(%(pool)r, flaky, %(once)r, 1, "once"))
local twice = assert(g.pool_submit(%(pool)r, flaky, %(twice)r, 2, "twice"))
local always = assert(g.pool_submit(%(pool)r, flaky, %(always)r, 99, "always"))
local quick = {}
for i = 1, 3 do quick[i] = assert(g.pool_submit(%(pool)r, function(x) return x * 2 end, i)) end
for i = 1, 3 do print("quick:", g.await(quick[i])) end
print(string.format("quick done %%.0f ms", g.now() - t0))
print("once:", g.await(once))
print(string.format("once done %%.0f ms", g.now() - t0))
print("twice:", g.await(twice))
print("always:", g.await(always))
print(string.format("all done %%.0f ms", g.now() - t0))
g.sleep(300)
local s = assert(g.pool_stats(%(pool)r))
print("stats", s.retries, s.fleet_retried, s.fleet_completed, s.fleet_failed, s.fleet_submitted)
""" % dict(pool=pool, **paths), env={"MUTIRAO_TOPIC_PARTITIONS": "1"})
    check(rc == 0, "retries on the fleet: %d\n%s%s" % (rc, out, err))
    check(all("quick:\ttrue\t%d\n" % (2 * i) in out for i in (1, 2, 3)), "quick tasks:\n" + out)
    check("once:\ttrue\tonce ok after 2\n" in out, "flaky once:\n" + out)
    check("twice:\ttrue\ttwice ok after 3\n" in out, "flaky twice:\n" + out)
    check("always:\tfalse\talways: attempt 3 failed" in out, "always failing:\n" + out)
    check(attempts_in(paths["once"]) == 2 and attempts_in(paths["twice"]) == 3
          and attempts_in(paths["always"]) == 3,
          "attempts: %s" % {k: attempts_in(v) for k, v in paths.items()})
    quick = int(re.search(r"quick done (\d+) ms", out).group(1))
    once = int(re.search(r"once done (\d+) ms", out).group(1))
    done = int(re.search(r"all done (\d+) ms", out).group(1))
    # one slot, one partition: the quick tasks ran while the others waited
    # for their second attempt (1.5 s after the first)
    check(quick + 1000 < once, "the quick tasks waited for the retries: %d ms, the first "
          "retried task %d ms" % (quick, once))
    check(done >= 2900, "the third attempts came early: %d ms" % done)
    check(done < 15000, "the retries took %d ms" % done)
    check("stats\t2\t5\t5\t1\t6\n" in out, "counters (retries, fleet_retried, completed, "
          "failed, submitted):\n" + out)
    # another process submits to the pool: its retries come from Redis
    adopted = os.path.join(TMP, "%s-adopted.count" % pool)
    rc, out, err, _ = run_lua(FLAKY_SRC + """
local g = require("goroutine")
print("adopted:", g.await(g.pool_submit(%r, flaky, %r, 2, "adopted")))
print("stats", g.pool_stats(%r).retries)
""" % (pool, adopted, pool))
    check(rc == 0 and "adopted:\ttrue\tadopted ok after 3\n" in out and "stats\t2\n" in out,
          "adopted retries: %d\n%s%s" % (rc, out, err))
    # the result record names the attempt that produced it (not awaited:
    # the record stays in Redis)
    third = os.path.join(TMP, "%s-third.count" % pool)
    rc, out, err, _ = run_lua(FLAKY_SRC + """
local g = require("goroutine")
local id = g.pool_submit(%r, flaky, %r, 2, "third")
assert(g.pool_wait(%r))
print("id", id)
""" % (pool, third, pool))
    m = re.search(r"^id\t(\S+)$", out, re.M)
    check(rc == 0 and m, "not awaited: %d\n%s%s" % (rc, out, err))
    rec = redis_cmd("GET", LAYOUT.task(m.group(1)))
    check(rec and b"\xa7attempt\x03" in rec and b"\xa2ok\xc3" in rec,
          "the result record of the third attempt: %r" % rec)
    redis_cmd("DEL", LAYOUT.task(m.group(1)))
    check(w.p.poll() is None, "the worker died")
    check(w.stop() == 0, "worker exit status")
    print("quick tasks done in %d ms, retried ones in %d ms" % (quick, done))


def case_retries_sigkill():
    """Attempts waiting for their retry outlive the worker that failed them:
    killed with SIGKILL, another worker runs them when they are due."""
    pool = "retrysk" + UNIQ
    n = 5
    a = Worker("retryskA", [pool], HARNESS_ALLOW)
    a.wait_for(r"consuming")
    paths = [os.path.join(TMP, "%s-%d.count" % (pool, i)) for i in range(n)]
    src = FLAKY_SRC + """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 4, retries = 1,
                                 backoff = { initial = 5000, jitter = 0 } }))
local paths = { %(paths)s }
local ids = {}
for i, p in ipairs(paths) do ids[i] = assert(g.pool_submit(%(pool)r, flaky, p, 1, "t" .. i)) end
io.stdout:write("submitted\\n") io.stdout:flush()
for i = 1, #ids do print("result:", g.await(ids[i])) end
local s = assert(g.pool_stats(%(pool)r))
print("stats", s.fleet_retried, s.fleet_completed, s.fleet_failed)
""" % {"pool": pool, "paths": ", ".join(repr(p) for p in paths)}
    path = os.path.join(TMP, "retries_sigkill.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    # every first attempt failed and its next one is in Redis: A dies
    end = time.time() + 60
    while time.time() < end and a.text().count("is due later") < n:
        time.sleep(0.05)
    check(a.text().count("is due later") == n, "first attempts not all failed in A")
    # their offsets commit (every 100 ms): what is left is in Redis alone
    time.sleep(0.5)
    a.p.send_signal(signal.SIGKILL)
    a.p.wait()
    killed_at = time.time()
    b = Worker("retryskB", [pool], HARNESS_ALLOW)
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("producer did not finish after the SIGKILL:\n%s\n%s" % (out, err))
    took = time.time() - killed_at
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err))
    for i in range(n):
        check("result:\ttrue\tt%d ok after 2\n" % (i + 1) in out, "task %d:\n%s" % (i + 1, out))
        check(attempts_in(paths[i]) == 2, "task %d ran %d times" % (i + 1, attempts_in(paths[i])))
    check("stats\t%d\t%d\t0\n" % (n, n) in out, "counters:\n" + out)
    check(" attempt 2 received" in b.text(), "B did not run the second attempts")
    check(took < 40, "the retries ran %.1f s after the kill" % took)
    check(b.stop() == 0, "worker B exit status")
    print("the pending retries ran in the other worker %.1f s after the SIGKILL" % took)


def case_sandbox():
    """Fleet tasks run sandboxed: a worker with the default worker.allow
    refuses os.execute, io.popen, io.open for writing, exec and debug (the
    task fails saying which setting allows it; the worker lives), and the
    escapes a task could try (package.loaded, require, a module function
    travelling as an upvalue, binary chunks) lead back to the same gates;
    a worker with worker.allow = os.execute runs os.execute; a pool's
    `allow` narrows the worker's setting and cannot widen it."""
    strict, loose, narrow = "sbstrict" + UNIQ, "sbloose" + UNIQ, "sbnarrow" + UNIQ
    a = Worker("sbstrict", [strict])
    b = Worker("sbloose", [loose, narrow], env={"MUTIRAO_WORKER_ALLOW": "os.execute"})
    a.wait_for(r"tasks run sandboxed \(worker\.allow = nothing more")
    b.wait_for(r"tasks run sandboxed \(worker\.allow = os\.execute\)")
    marker = os.path.join(TMP, "sandbox-written")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(strict)r, { workers = 2 }))
assert(g.pool_create(%(loose)r, { workers = 2 }))
assert(g.pool_create(%(narrow)r, { workers = 2, allow = { "io.popen", "exec" } }))
local function try(pool, label, fn, ...)
    print(label .. ":", g.await(g.pool_submit(pool, fn, ...)))
end
local ex = os.execute
try(%(strict)r, "execute", function() return os.execute("true") end)
try(%(strict)r, "popen", function() return io.popen("id") end)
try(%(strict)r, "write", function(p) return io.open(p, "w") end, %(marker)r)
try(%(strict)r, "read", function() return io.open("/etc/hostname", "r") ~= nil end)
try(%(strict)r, "exec", function() return exec.run("id") end)
try(%(strict)r, "debug", function() return debug.getregistry() end)
try(%(strict)r, "traceback", function() return type(debug.traceback("x")) end)
try(%(strict)r, "loaded", function() return package.loaded.os.execute("true") end)
try(%(strict)r, "require", function() return require("os").execute("true") end)
try(%(strict)r, "upvalue", function() return ex("true") end)
try(%(strict)r, "binary", function() return load(string.dump(function() return 1 end)) end)
try(%(strict)r, "text", function() return load("return 40 + 2")() end)
try(%(strict)r, "remove", function(p) return os.remove(p) end, %(marker)r)
try(%(strict)r, "exit", function() os.exit(1) end)
try(%(strict)r, "next", function(x) return x * 2 end, 21)
try(%(loose)r, "allowed", function() return os.execute("true") end)
try(%(loose)r, "still", function() return io.popen("id") end)
try(%(narrow)r, "narrowed", function() return os.execute("true") end)
try(%(narrow)r, "nowiden", function() return io.popen("id") end)
try(%(narrow)r, "nested", function(p)
    local g = require("goroutine")
    return g.await(g.pool_submit(p, function() return os.execute("true") end))
end, %(loose)r)
""" % {"strict": strict, "loose": loose, "narrow": narrow, "marker": marker})
    def has(label, pattern):
        check(re.search(r"^" + label + r":\t" + pattern, out, re.M),
              "sandbox %s: %d\n%s%s" % (label, rc, out, err))
    deny = r"false\t.*%s is not allowed in fleet tasks \(worker\.allow = %s allows it\)"
    has("execute", deny % (r"os\.execute", r"os\.execute"))
    has("popen", deny % (r"io\.popen", r"io\.popen"))
    has("write", deny % (r"io\.open in mode 'w'", r"io\.open\.write"))
    has("read", r"true\ttrue")
    has("exec", deny % (r"exec\.run", "exec"))
    has("debug", deny % (r"debug\.getregistry", "debug"))
    has("traceback", r"true\tstring")
    has("loaded", deny % (r"os\.execute", r"os\.execute"))
    has("require", deny % (r"os\.execute", r"os\.execute"))
    has("upvalue", deny % (r"os\.execute", r"os\.execute"))
    has("binary", deny % (r"load of a binary chunk", r"load\.binary"))
    has("text", r"true\t42")
    has("remove", deny % (r"os\.remove", r"os\.remove"))
    has("exit", r"false\t.*os\.exit called in a pool task")
    has("next", r"true\t42")
    has("allowed", r"true\ttrue\texit\t0")
    has("still", deny % (r"io\.popen", r"io\.popen"))
    has("narrowed", r"false\t.*os\.execute is not allowed in this pool's tasks .*lacks 'os\.execute'")
    has("nowiden", deny % (r"io\.popen", r"io\.popen"))
    has("nested", r"true\tfalse\t.*os\.execute is not allowed in this pool's tasks")
    check(not os.path.exists(marker), "a denied io.open wrote the file")
    # another producer adopts the pool from Redis, its narrowing with it
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("adopted:", g.await(g.pool_submit(%(narrow)r, function() return os.execute("true") end)))
print("adopted_ok:", g.await(g.pool_submit(%(narrow)r, function() return 6 * 7 end)))
""" % {"narrow": narrow})
    has("adopted", r"false\t.*os\.execute is not allowed in this pool's tasks")
    has("adopted_ok", r"true\t42")
    # files that are not regular are refused at once (a read would block a
    # VM thread for good): a FIFO, a pipe of the worker by /proc/self/fd;
    # io.output(NUMBER) opens for writing; the worker's stdout cannot be
    # rewound
    fifo = os.path.join(TMP, "sandbox-fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    pipefd = None
    for fd in sorted(os.listdir("/proc/%d/fd" % a.p.pid), key=int):
        try:
            if os.readlink("/proc/%d/fd/%s" % (a.p.pid, fd)).startswith("pipe:"):
                pipefd = fd
                break
        except OSError:
            pass
    check(pipefd is not None, "no pipe among the worker's descriptors")
    t0 = time.time()
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(strict)r, { workers = 2, timeout = 20000 }))
local function try(label, fn, ...)
    print(label .. ":", g.await(g.pool_submit(%(strict)r, fn, ...)))
end
try("fifo", function(p) return io.open(p, "r"):read(1) end, %(fifo)r)
try("fifolines", function(p) for l in io.lines(p) do return l end end, %(fifo)r)
try("pipefd", function(p) return io.open(p, "r"):read(1) end, "/proc/self/fd/" .. %(pipefd)r)
try("output", function() return io.output(4242) end)
try("seek", function() return io.stdout:seek("set", 0) end)
try("after", function() return "still running" end)
""" % {"strict": strict, "fifo": fifo, "pipefd": pipefd})
    check(time.time() - t0 < 15, "a refused read waited %.1f s" % (time.time() - t0))
    special = r"false\t.*io\.%s of '%s' \(a FIFO or pipe\) is not allowed in fleet tasks " \
        r"\(worker\.allow = io\.open\.special allows it\)"
    has("fifo", special % ("open", re.escape(fifo)))
    has("fifolines", special % ("lines", re.escape(fifo)))
    has("pipefd", special % ("open", "/proc/self/fd/" + pipefd))
    has("output", deny % (r"io\.output of a file name", r"io\.open\.write"))
    has("seek", r"false\t.*seek on io\.stdout is not allowed in sandboxed tasks")
    has("after", r"true\tstill running")
    check(not os.path.exists(os.path.join(TMP, "4242")), "io.output(4242) created a file")
    # tasks share the worker's VMs: a narrowed pool's task replaces
    # string.format, adds a searcher and calls the VM's internals; the tasks
    # of a wider pool on the same worker see none of it
    bypass = os.path.join(TMP, "sandbox-bypass")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
for i = 1, 6 do
    print("plant" .. i .. ":", g.await(g.pool_submit(%(narrow)r, function(m)
        local orig = string.format
        string.format = function(fmt, ...)
            pcall(os.execute, "echo bypassed >> " .. m)
            return orig(fmt, ...)
        end
        table.insert(package.searchers, 1, function() return function() return "evil" end end)
        return log._configure == nil, require("goroutine")._set_error_handler == nil,
            getmetatable("") ~= nil and getmetatable("").__index == string
    end, %(bypass)r)))
end
for i = 1, 6 do
    print("victim" .. i .. ":", g.await(g.pool_submit(%(loose)r, function(pw)
        return string.format("login %%s", pw), pcall(require, "nosuchmod")
    end, "s3cret")))
end
""" % {"narrow": narrow, "loose": loose, "bypass": bypass})
    for i in range(1, 7):
        has("plant%d" % i, r"true\ttrue\ttrue\ttrue$")
        has("victim%d" % i, r"true\tlogin s3cret\tfalse\t.*module 'nosuchmod' not found")
    check(not os.path.exists(bypass), "a narrowed task's string.format ran in another pool's task")
    check(a.p.poll() is None and b.p.poll() is None, "a worker died")
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")
    # none with other items is refused at start
    bad = subprocess.run([os.path.join(BIN, "mutirao-worker"), "--id", "sbbad-" + UNIQ,
                          "--pools", strict], env=dict(ENV, MUTIRAO_WORKER_ALLOW="none,os.execute"),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, cwd=TMP)
    check(bad.returncode == 2 and "'none' allows nothing and cannot be combined" in bad.stderr,
          "worker.allow = none,os.execute: %d %s" % (bad.returncode, bad.stderr))


def case_sandbox_secrets():
    """A worker's secrets are not its tasks': a worker configured by a file
    with a signing key and a Redis password file (and secrets in its
    environment) refuses a task's opening of each of them, by its path, a
    symbolic link, a hard link, io.lines, io.input, loadfile, dofile and
    require, whatever worker.allow allows; /proc/self/environ (and all of
    /proc) only with io.open.special; os.getenv gives nil for MUTIRAO_* and
    secret-looking variables but with os.getenv. The secrets never reach a
    task's result."""
    strict, wide = "sbsecret" + UNIQ, "sbsecretwide" + UNIQ
    mutirao = os.path.join(BIN, "mutirao")
    keys = os.path.join(TMP, "wkeys")
    rc, out, err, _ = run([mutirao, "keygen", "--out", keys, "--name", "worker"])
    check(rc == 0, "keygen: %d\n%s%s" % (rc, out, err))
    key = os.path.join(keys, "worker.key")
    pwfile = os.path.join(TMP, "redis-password")
    password = "pw-" + UNIQ + "-hunter2"
    with open(pwfile, "w") as f:
        f.write(password + "\n")
    conf = os.path.join(TMP, "worker-secrets.conf")
    with open(conf, "w") as f:
        f.write("# the worker's own configuration\nauth.signing_key = %s\nredis.password_file = %s\n"
                % (key, pwfile))
    sym, hard = os.path.join(TMP, "key-symlink"), os.path.join(TMP, "key-hardlink")
    os.symlink(key, sym)
    os.link(key, hard)
    plain = os.path.join(TMP, "plain.txt")
    with open(plain, "w") as f:
        f.write("plain\n")
    # the default user takes any password (no requirepass): the worker
    # authenticates with the file's
    url = re.sub(r"^(redis(?:\+cluster)?://)", r"\1default@", REDIS)
    check(url != REDIS, "unexpected Redis URL %r" % REDIS)
    secret_env = {"MUTIRAO_CONFIG": conf, "MUTIRAO_REDIS_URL": url,
                  "SBX_API_TOKEN": "tok-" + UNIQ, "SBX_PLAIN": "plain-" + UNIQ}
    a = Worker("sbsecret", [strict], env=secret_env)
    b = Worker("sbsecretwide", [wide], env=dict(
        secret_env, MUTIRAO_WORKER_ALLOW="io.open.special,os.getenv,io.open.write,os.remove,os.rename"))
    for w in (a, b):
        w.wait_for(r"consuming")
        for what, path in (("configuration file", conf), ("auth.signing_key", key),
                           ("redis.password_file", pwfile)):
            check("tasks may not open %s (%s: the worker's secrets)" % (path, what) in w.text(),
                  "the worker did not register %s:\n%s" % (path, w.text()))
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(strict)r, { workers = 2 }))
assert(g.pool_create(%(wide)r, { workers = 2 }))
local function try(pool, label, fn, ...)
    print(label .. ":", g.await(g.pool_submit(pool, fn, ...)))
end
for _, p in ipairs({ %(strict)r, %(wide)r }) do
    local l = p == %(strict)r and "" or "wide_"
    try(p, l .. "path", function(f) return io.open(f):read("a") end, %(key)r)
    try(p, l .. "symlink", function(f) return io.open(f, "r"):read("a") end, %(sym)r)
    try(p, l .. "hardlink", function(f) return io.open(f, "rb"):read("a") end, %(hard)r)
    try(p, l .. "lines", function(f) for line in io.lines(f) do return line end end, %(pwfile)r)
    try(p, l .. "input", function(f) io.input(f) return io.read("a") end, %(pwfile)r)
    try(p, l .. "loadfile", function(f) return loadfile(f) end, %(conf)r)
    try(p, l .. "dofile", function(f) return dofile(f) end, %(pwfile)r)
    try(p, l .. "require", function(d)
        package.path = d .. "/?"
        return require("redis-password")
    end, %(tmp)r)
    try(p, l .. "plain", function(f) return io.open(f):read("l") end, %(plain)r)
    try(p, l .. "environ", function()
        return io.open("/proc/self/environ"):read("a"):find("SBX_API_TOKEN=tok", 1, true) ~= nil
    end)
    try(p, l .. "getenv_url", function() return os.getenv("MUTIRAO_REDIS_URL") end)
    try(p, l .. "getenv_config", function() return os.getenv("MUTIRAO_CONFIG") end)
    try(p, l .. "getenv_token", function() return os.getenv("SBX_API_TOKEN") end)
    try(p, l .. "getenv_plain", function() return os.getenv("SBX_PLAIN") end)
end
-- what the wide worker allows does not reach its secrets either
try(%(wide)r, "wide_write", function(f) return io.open(f, "w") end, %(key)r)
try(%(wide)r, "wide_output", function(f) return io.output(f) end, %(hard)r)
try(%(wide)r, "wide_remove", function(f) return os.remove(f) end, %(pwfile)r)
try(%(wide)r, "wide_rename", function(f, to) return os.rename(f, to) end, %(hard)r, %(tmp)r .. "/moved")
try(%(wide)r, "wide_onto", function(f, to) return os.rename(f, to) end, %(plain)r, %(pwfile)r)
""" % {"strict": strict, "wide": wide, "key": key, "sym": sym, "hard": hard, "pwfile": pwfile,
       "conf": conf, "tmp": TMP, "plain": plain})

    def has(label, pattern):
        check(re.search(r"^" + label + r":\t" + pattern, out, re.M),
              "sandbox_secrets %s: %d\n%s%s" % (label, rc, out, err))
    secret = r"false\t.*%s of '%s' is not allowed in sandboxed tasks: the file holds the " \
        r"worker's secrets \(no setting allows it\)"
    for l in ("", "wide_"):
        has(l + "path", secret % (r"io\.open", re.escape(key)))
        has(l + "symlink", secret % (r"io\.open", re.escape(sym)))
        has(l + "hardlink", secret % (r"io\.open", re.escape(hard)))
        has(l + "lines", secret % (r"io\.lines", re.escape(pwfile)))
        has(l + "input", secret % (r"io\.input", re.escape(pwfile)))
        has(l + "loadfile", secret % (r"loadfile", re.escape(conf)))
        has(l + "dofile", secret % (r"dofile", re.escape(pwfile)))
        has(l + "require", secret % (r"require", re.escape(pwfile)))
        has(l + "plain", r"true\tplain$")
    has("environ", r"false\t.*io\.open of '/proc/self/environ' \(a /proc file\) is not allowed in "
        r"fleet tasks \(worker\.allow = io\.open\.special allows it\)")
    has("wide_environ", r"true\ttrue$")
    has("getenv_url", r"true\tnil$")
    has("getenv_config", r"true\tnil$")
    has("getenv_token", r"true\tnil$")
    has("getenv_plain", r"true\tplain-%s$" % UNIQ)
    has("wide_getenv_url", r"true\t%s$" % re.escape(url))
    has("wide_getenv_config", r"true\t%s$" % re.escape(conf))
    has("wide_getenv_token", r"true\ttok-%s$" % UNIQ)
    has("wide_getenv_plain", r"true\tplain-%s$" % UNIQ)
    has("wide_write", secret % (r"io\.open", re.escape(key)))
    has("wide_output", secret % (r"io\.output", re.escape(hard)))
    has("wide_remove", secret % (r"os\.remove", re.escape(pwfile)))
    has("wide_rename", secret % (r"os\.rename", re.escape(hard)))
    has("wide_onto", secret % (r"os\.rename", re.escape(pwfile)))
    check(password not in out and password not in err and "PRIVATE KEY" not in out,
          "a secret reached a task's result:\n" + out + err)
    with open(pwfile) as f:
        check(f.read() == password + "\n", "the password file changed")
    check(os.path.exists(key) and os.path.exists(hard) and os.path.samefile(key, hard),
          "the key or its link moved")
    check(not os.path.exists(os.path.join(TMP, "moved")), "a rename of the key's link happened")
    # a file put in the key's place (a rotated key) is refused by its path
    os.unlink(sym)
    rotated = key + ".new"
    with open(rotated, "w") as f:
        f.write("rotated secret\n")
    os.rename(rotated, key)
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("rotated:", g.await(g.pool_submit(%(strict)r, function(f) return io.open(f):read("a") end, %(key)r)))
print("oldlink:", g.await(g.pool_submit(%(strict)r, function(f) return io.open(f):read("a") end, %(hard)r)))
""" % {"strict": strict, "key": key, "hard": hard})
    has("rotated", secret % (r"io\.open", re.escape(key)))
    has("oldlink", secret % (r"io\.open", re.escape(hard)))
    check("rotated secret" not in out, "a rotated key reached a task")
    check(a.p.poll() is None and b.p.poll() is None, "a worker died")
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")


def key_id(pub):
    """The key id of the Ed25519 public key file pub (docs/wire-format.md):
    the first 8 bytes of the SHA-256 of its 32 raw bytes, by the openssl
    command."""
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der[-32:]).digest()[:8]


def openssl_sign(head, key):
    """head followed by its Ed25519 signature with the private key file key,
    made by `openssl pkeyutl`."""
    path = os.path.join(TMP, "to-sign.bin")
    with open(path, "wb") as f:
        f.write(head)
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", path],
                         capture_output=True, check=True).stdout
    check(len(sig) == 64, "openssl made a %d-byte signature" % len(sig))
    return head + sig


def sign_envelope(env, key, pub):
    """env signed with key (docs/wire-format.md, "Signed task envelope"),
    by the openssl command: MTE 02, key id, envelope, Ed25519 signature."""
    return openssl_sign(b"MTE\x02" + key_id(pub) + env, key)


def case_signed():
    """Signed task envelopes: `mutirao keygen`; a producer with
    auth.signing_key and a worker with auth.trusted_keys run tasks (and a
    retry the worker signs) end to end. To that worker an unsigned envelope,
    one signed by a key it does not trust and a trusted one with a payload
    bit flipped, and one made for another pool, are refused unrun (their
    side effects never happen), without
    a crash: each is dead-lettered with its reason, counted in
    `unauthenticated`, and its offset commits. A worker without trusted keys
    says once that it runs unauthenticated code, and runs signed tasks."""
    pool, open_pool = "signed" + UNIQ, "signopen" + UNIQ
    topic = "mutirao.pool." + pool
    mutirao = os.path.join(BIN, "mutirao")
    keys = os.path.join(TMP, "keys")
    for name in ("prod", "rogue"):
        rc, out, err, _ = run([mutirao, "keygen", "--out", keys, "--name", name])
        check(rc == 0 and re.search(r"key id [0-9a-f]{16}$", out, re.M),
              "keygen %s: %d\n%s%s" % (name, rc, out, err))
    prod_key, prod_pub = os.path.join(keys, "prod.key"), os.path.join(keys, "prod.pub")
    rogue_key = os.path.join(keys, "rogue.key")
    check(os.stat(prod_key).st_mode & 0o777 == 0o600, "the private key's mode")
    before = open(prod_key).read()
    rc, out, err, _ = run([mutirao, "keygen", "--out", keys, "--name", "prod"])
    check(rc == 1 and "not overwritten" in err and open(prod_key).read() == before,
          "keygen over an existing key: %d\n%s%s" % (rc, out, err))
    signing = {"MUTIRAO_AUTH_SIGNING_KEY": prod_key}
    w = Worker("sgA", [pool], env={**HARNESS_ALLOW, "MUTIRAO_AUTH_TRUSTED_KEYS": prod_pub,
                                   "MUTIRAO_AUTH_SIGNING_KEY": prod_key})
    w.wait_for(r"consuming")
    check("auth: 1 trusted key(s); unsigned task envelopes are refused" in w.text() and
          "UNAUTHENTICATED" not in w.text(), "the worker's auth line:\n" + w.text())
    flag = os.path.join(TMP, "flaky-flag")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 4, retries = 1,
    backoff = { initial = 10, max = 10, jitter = 0 } }))
local ids = {}
for i = 1, 20 do ids[i] = assert(g.pool_submit(%(pool)r, function(k) return k * 2 end, i)) end
local flaky = assert(g.pool_submit(%(pool)r, function(flag)
    if not io.open(flag) then io.open(flag, "w"):close() error("first attempt") end
    return "second"
end, %(flag)r))
for i, id in ipairs(ids) do
    local ok, v = g.await(id)
    assert(ok and v == i * 2, "task " .. i .. ": " .. tostring(v))
end
print("all ok")
print("flaky", g.await(flaky))
print("id", ids[1])
""" % {"pool": pool, "flag": flag}, env=signing)
    check(rc == 0 and "all ok" in out and "flaky\ttrue\tsecond" in out,
          "signed run: %d\n%s%s" % (rc, out, err))
    tid = re.search(r"^id\t(\S+)$", out, re.M).group(1)
    check(re.fullmatch(r"[A-Za-z0-9._-]+:\d+:[0-9a-f]{32}", tid), "task id %r" % tid)
    check("refused unrun" not in w.text(), "a signed task was refused:\n" + w.text()[-3000:])
    # hostile: real producers without a key and with an untrusted one; their
    # tasks would create a file
    marks = [os.path.join(TMP, "ran-unsigned"), os.path.join(TMP, "ran-rogue")]
    for mark, env in ((marks[0], {}), (marks[1], {"MUTIRAO_AUTH_SIGNING_KEY": rogue_key})):
        rc, out, err, _ = run_lua("""
local g = require("goroutine")
local id = assert(g.pool_submit(%r, function(m) io.open(m, "w"):close() return "ran" end, %r))
print("hostile:", g.timeout(3000, function() return g.await(id) end))
os.exit(0)
""" % (pool, mark), env=env)
        check(rc == 0 and "hostile:\tfalse\ttimeout after 3000 ms" in out,
              "hostile submit %s: %d\n%s%s" % (env, rc, out, err))
    # a trusted envelope with one payload bit flipped, and the same unflipped
    payload = b"MTR\x01\x90"
    good = sign_envelope(task_envelope("ctl" + UNIQ + ":1", pool, "p" + UNIQ, {}, payload),
                         prod_key, prod_pub)
    bad = bytearray(sign_envelope(task_envelope("flip" + UNIQ + ":1", pool, "p" + UNIQ, {},
                                                payload), prod_key, prod_pub))
    at = bytes(bad).index(payload) + 4
    bad[at] ^= 0x01
    # and a valid one made for another pool, replayed to this pool's topic
    other = sign_envelope(task_envelope("other" + UNIQ + ":1", "elsewhere" + UNIQ, "p" + UNIQ, {},
                                        payload), prod_key, prod_pub)
    for tid2, msg in (("flip" + UNIQ + ":1", bytes(bad)), ("other" + UNIQ + ":1", other),
                      ("ctl" + UNIQ + ":1", good)):
        rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, topic, "0", tid2,
                               msg.hex()])
        check(rc == 0, "kafka-put: %d %s%s" % (rc, out, err))
    w.wait_for(r"task=ctl%s:1 attempt 1 received" % UNIQ)
    for why in (r"task envelope is not signed \(auth\.required is on\)",
                r"task envelope is signed by key [0-9a-f]{16}, which is not among the trusted",
                r"signature by key [0-9a-f]{16} does not verify: the envelope was altered",
                r"task envelope of pool elsewhere%s delivered on the topic of pool %s" % (UNIQ,
                                                                                       pool)):
        w.wait_for(r"refused unrun: " + why)
    log = w.text()
    check(log.count("refused unrun") == 4, "refusals:\n" + log[-3000:])
    check(not re.search(r"task=flip%s:1" % UNIQ, log), "the flipped envelope was decoded")
    check(w.p.poll() is None, "the worker died")
    for m in marks:
        check(not os.path.exists(m), "a refused task ran: %s exists" % m)
    # dead letters with their reasons, counted once each
    end = time.time() + 20
    while time.time() < end and redis_cmd("HLEN", LAYOUT.pool(pool, "dead")) < 4:
        time.sleep(0.1)
    dead = redis_cmd("HGETALL", LAYOUT.pool(pool, "dead"))
    recs = {dead[i].decode(): dead[i + 1].decode() for i in range(0, len(dead), 2)}
    check(len(recs) == 4 and all(re.fullmatch(r"rejected-p\d+-o\d+", k) for k in recs),
          "dead letters: %r" % recs)
    errs = " | ".join(r.split("\n")[-1] for r in recs.values())
    for why in ("is not signed", "not among the trusted keys", "altered or forged",
                "delivered on the topic of pool"):
        check(why in errs, "no dead letter saying %r: %s" % (why, errs))
    envs = redis_cmd("HGETALL", LAYOUT.pool(pool, "dead:env"))
    check(bytes(bad) in envs, "the flipped envelope is not kept as it came")
    check(pool_counters(pool).get("unauthenticated") == 4,
          "the pool's unauthenticated count")
    # the worker goes on with signed tasks; pool_stats shows the count
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("after", g.await(assert(g.pool_submit(%r, function() return "still" end))))
local s = assert(g.pool_stats(%r))
print("unauth", s.fleet_unauthenticated, s.fleet_dead_lettered)
""" % (pool, pool), env=signing)
    check(rc == 0 and "after\ttrue\tstill" in out and "unauth\t4\t0" in out,
          "pool_stats: %d\n%s%s" % (rc, out, err))
    rc, out, err, _ = run([mutirao, "dlq", "list", pool])
    check(rc == 0 and out.count("refused unrun") == 4, "dlq list: %d\n%s%s" % (rc, out, err))
    # their offsets committed: a worker started after a clean stop is given
    # none of them again
    check(w.stop() == 0, "worker exit status")
    w2 = Worker("sgB", [pool], env={**HARNESS_ALLOW, "MUTIRAO_AUTH_TRUSTED_KEYS": prod_pub})
    w2.wait_for(r" assigned ")
    time.sleep(3)
    check("refused unrun" not in w2.text() and " received " not in w2.text(),
          "messages delivered again after a clean stop:\n" + w2.text())
    # `mutirao dlq retry` sends a refused signed message back as it came:
    # refused again, for the same reason
    flipped = [k for k, r in recs.items() if "altered or forged" in r]
    rc, out, err, _ = run([mutirao, "dlq", "retry", pool, flipped[0]])
    check(rc == 0 and "retried " + flipped[0] in out, "dlq retry: %d\n%s%s" % (rc, out, err))
    w2.wait_for(r"refused unrun: signature by key [0-9a-f]{16} does not verify")
    check(w2.stop() == 0, "worker exit status")
    check("can be read by other users" not in w.text(), "a mode 0600 key warned about")
    # no trusted keys: one plain warning, and signed envelopes still run;
    # its signing key, readable by others, is warned about
    shared = os.path.join(keys, "shared.key")
    with open(shared, "w") as f:
        f.write(open(prod_key).read())
    os.chmod(shared, 0o644)
    wo = Worker("sgOpen", [open_pool], env={**HARNESS_ALLOW, "MUTIRAO_AUTH_SIGNING_KEY": shared})
    wo.wait_for(r"consuming")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%r))
print("open", g.await(assert(g.pool_submit(%r, function() return "fine" end))))
""" % (open_pool, open_pool), env=signing)
    check(rc == 0 and "open\ttrue\tfine" in out, "signed task, open worker: %d\n%s%s"
          % (rc, out, err))
    check(wo.text().count("runs UNAUTHENTICATED code") == 1, "the warning:\n" + wo.text())
    check(re.search(r"auth.signing_key \S+shared.key can be read by other users \(mode 644\)",
                    wo.text()), "no warning about a key others can read:\n" + wo.text())
    check(wo.stop() == 0, "worker exit status")
    # libmutirao signs with the same configuration (here from its files)
    lib_pool = "signlib" + UNIQ
    wl = Worker("sgLib", [lib_pool], env={**HARNESS_ALLOW, "MUTIRAO_AUTH_TRUSTED_KEYS": prod_pub})
    wl.wait_for(r"consuming")
    confs = []
    for name, fleet, redis in (("embedded", "off", REDIS), ("fleet", "on", REDIS),
                               ("broken", "on", "redis://127.0.0.1:1")):
        confs.append(os.path.join(TMP, "sign-%s.conf" % name))
        with open(confs[-1], "w") as f:
            f.write("fleet = %s\nkafka.brokers = %s\nredis.url = %s\nauth.signing_key = %s\n"
                    "connect.timeout_ms = 2000\nop.timeout_ms = 5000\n"
                    % (fleet, BROKERS, redis, prod_key))
    rc, out, err, _ = run([os.path.join(BIN, "two-clients")] + confs + [lib_pool],
                          env={"MUTIRAO_KAFKA_BROKERS": "", "MUTIRAO_REDIS_URL": ""})
    check(rc == 0 and "two_clients: ok" in out, "libmutirao, signed: %d\n%s%s" % (rc, out, err))
    check(re.search(r"pool=%s task=\S+ attempt 1 received" % lib_pool, wl.text()) and
          "refused unrun" not in wl.text(), "libmutirao's tasks:\n" + wl.text()[-3000:])
    check(wl.stop() == 0, "worker exit status")
    # a signing key that does not load: the submit says why
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print(pcall(g.pool_create, %r))
""" % open_pool, env={"MUTIRAO_AUTH_SIGNING_KEY": prod_pub})
    check("auth.signing_key: " in out + err and "prod.pub" in out + err,
          "a public key as signing key: %d\n%s%s" % (rc, out, err))
    print("signed tasks run; unsigned, untrusted and altered ones refused, dead-lettered, counted")


def result_record(tid, pool, value, ok=True):
    """An unsigned version-1 result record (docs/wire-format.md) of task tid
    whose outcome is the string value."""
    v = value.encode()
    payload = b"MTR\x01\x91" + bytes([0xa0 | len(v)]) + v
    items = [("id", mp_str(tid)), ("pool", mp_str(pool)), ("attempt", mp_uint(1)),
             ("ok", b"\xc3" if ok else b"\xc2"),
             ("finished_at", mp_uint(int(time.time() * 1000))), ("worker", mp_str("forger")),
             ("payload", b"\xc4" + bytes([len(payload)]) + payload)]
    out = b"MTO\x01" + bytes([0x80 | len(items)])
    for k, val in items:
        out += mp_str(k) + val
    return out


def sign_result(rec, key, pub):
    """rec signed with key (docs/wire-format.md, "Signed result record"), by
    the openssl command: one more map entry, "sig": key id + signature."""
    head = rec[:4] + bytes([rec[4] + 1]) + rec[5:] + b"\xa3sig\xc4\x48" + key_id(pub)
    return openssl_sign(head, key)


def case_signed_results():
    """Authentic results (issue 13, item 2): a worker with auth.signing_key
    signs the result records it stores and pushes; a producer with
    auth.trusted_keys uses only records that verify. Results (and the
    WaitGroup changes signed with them) arrive; a producer without trusted
    keys reads the signed records as before. Then, for pending tasks whose
    worker is not started yet, a forger writes to Redis: an unsigned record
    at a task's key, a genuine signed record of another task copied to a
    task's key, notifications with an unsigned record, one signed by an
    untrusted key, one signed by the trusted key with one bit flipped, and
    forged WaitGroup changes. None of them decides an await or releases the
    WaitGroup; each refusal is logged once per task with pool and task id;
    once the worker starts, the genuine outcomes arrive."""
    pool = "sres" + UNIQ
    mutirao = os.path.join(BIN, "mutirao")
    keys = os.path.join(TMP, "rkeys")
    for name in ("fleet", "rogue"):
        rc, out, err, _ = run([mutirao, "keygen", "--out", keys, "--name", name])
        check(rc == 0, "keygen %s: %d\n%s%s" % (name, rc, out, err))
    key, pub = os.path.join(keys, "fleet.key"), os.path.join(keys, "fleet.pub")
    rogue_key, rogue_pub = os.path.join(keys, "rogue.key"), os.path.join(keys, "rogue.pub")
    # one key pair everywhere: producers and workers sign with it and trust it
    auth = {"MUTIRAO_AUTH_SIGNING_KEY": key, "MUTIRAO_AUTH_TRUSTED_KEYS": pub}
    w = Worker("srA", [pool], env=auth)
    w.wait_for(r"consuming")
    kept = os.path.join(TMP, "sres-kept.txt")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 4 }))
local ids = {}
for i = 1, 10 do ids[i] = assert(g.pool_submit(%(pool)r, function(k) return k * 3 end, i)) end
for i, id in ipairs(ids) do
    local ok, v = g.await(id)
    assert(ok and v == i * 3, "task " .. i .. ": " .. tostring(v))
end
local okf, e = g.await(g.pool_submit(%(pool)r, function() error("raised") end))
assert(not okf and e:find("raised", 1, true), tostring(e))
-- WaitGroup changes travel signed, inside the record
local wg = g.wait_group()
for i = 1, 5 do
    wg:add(1)
    assert(g.pool_submit(%(pool)r, function() wg:done() end))
end
wg:wait()
local wg2 = g.wait_group()
wg2:add(1)
local ok2, v2 = g.await(g.pool_submit(%(pool)r, function() wg2:add(2) wg2:done() return "x" end))
assert(ok2 and v2 == "x" and wg2:count() == 2, tostring(wg2:count()))
-- a WaitGroup a fleet task passes on to a nested one (another producer's
-- task, on the worker): its change comes from that task's signed record
local wg3 = g.wait_group()
wg3:add(2)
local outer = assert(g.pool_submit(%(pool)r, function(w)
    local inner = assert(g.pool_submit(%(pool)r, function(w2) w2:done() return "in" end, w))
    w:done()
    return g.await(inner)
end, wg3))
-- this producer busy meanwhile: the outer task's await has read (and would
-- have deleted) the inner task's record before this VM reads it
os.execute("sleep 2")
assert(g.timeout(30000, function() wg3:wait() return true end),
    "the nested task's WaitGroup change did not arrive")
assert(select(2, g.await(outer)) == true)
-- a large result by reference: its length and checksum are signed
local big = g.await(g.pool_submit(%(pool)r, function() return string.rep("z", 1500000) end))
-- results nobody awaits stay in Redis
local f = assert(io.open(%(kept)r, "w"))
f:write(assert(g.pool_submit(%(pool)r, function() return "kept" end)), "\\n")
f:close()
g.pool_wait(%(pool)r)
print("signed results ok", big)
""" % {"pool": pool, "kept": kept}, env=auth)
    check(rc == 0 and "signed results ok\ttrue" in out and "ignored" not in err,
          "signed results: %d\n%s%s" % (rc, out, err))
    kept_id = open(kept).read().split()[0]
    genuine = redis_cmd("GET", LAYOUT.task(kept_id))
    check(genuine and genuine[-78:-72] == b"\xa3sig\xc4\x48", "record not signed: %r" % genuine)
    # a producer without trusted keys (as one from before signed results)
    # reads signed records as before (it signs its envelopes: this worker
    # runs only signed ones)
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("plain", g.await(%r))
print("plain2", g.await(assert(g.pool_submit(%r, function() return "p" end))))
""" % (kept_id, pool), env={"MUTIRAO_AUTH_SIGNING_KEY": key})
    check(rc == 0 and "plain\ttrue\tkept" in out and "plain2\ttrue\tp" in out,
          "producer without trusted keys: %d\n%s%s" % (rc, out, err))
    check(w.stop() == 0, "worker exit status")

    # forgeries for pending tasks, their worker not started yet
    ids_file = os.path.join(TMP, "sres-ids.txt")
    path = os.path.join(TMP, "sres-forged.lua")
    with open(path, "w") as f:
        f.write("""
local g = require("goroutine")
local wg = g.wait_group()
wg:add(1)
local ids = {}
ids[1] = assert(g.pool_submit(%(pool)r, function(w) w:done() return "genuine-1" end, wg))
for i = 2, 5 do
    ids[i] = assert(g.pool_submit(%(pool)r, function(k) return "genuine-" .. k end, i))
end
local f = assert(io.open(%(ids)r, "w")) f:write(table.concat(ids, "\\n")) f:close()
g.spawn(function() wg:wait() print("wg released") io.stdout:flush() end)
for i = 1, 5 do
    print(i, g.await(ids[i]))
    io.stdout:flush()
end
""" % {"pool": pool, "ids": ids_file})
    pout, perr = os.path.join(TMP, "sres-p.out"), os.path.join(TMP, "sres-p.err")
    with open(pout, "w") as fo, open(perr, "w") as fe:
        e = dict(ENV)
        e.update(auth)
        p = subprocess.Popen([mutirao, "run", "--fleet", path], stdin=subprocess.DEVNULL,
                             stdout=fo, stderr=fe, env=e, cwd=TMP)
    try:
        end = time.time() + 60
        while time.time() < end and not (os.path.exists(ids_file) and
                                         len(open(ids_file).read().split()) == 5):
            time.sleep(0.05)
        ids = open(ids_file).read().split()
        check(len(ids) == 5, "the producer wrote no ids")
        prod = fleet_keys.producer_of(ids[0])
        done = LAYOUT.done(prod)
        # 1: an unsigned record at its key (found by the reconciliation)
        redis_cmd("SET", LAYOUT.task(ids[0]), result_record(ids[0], pool, "forged-1"))
        # 2: the genuine signed record of another task, copied to its key
        redis_cmd("SET", LAYOUT.task(ids[1]), genuine)
        # 3: a notification signed by an untrusted key
        redis_cmd("RPUSH", done, b"R" + sign_result(result_record(ids[2], pool, "forged-3"),
                                                    rogue_key, rogue_pub))
        # 4: a notification signed by the trusted key, then one bit flipped
        # (the outcome's value: "forged-4" becomes "forged-5")
        flipped = bytearray(sign_result(result_record(ids[3], pool, "forged-4"), key, pub))
        at = bytes(flipped).index(b"forged-4") + 7
        flipped[at] ^= 0x01
        redis_cmd("RPUSH", done, b"R" + bytes(flipped))
        # 5: an unsigned notification
        redis_cmd("RPUSH", done, b"R" + result_record(ids[4], pool, "forged-5"))
        # WaitGroup changes: unsigned 'W' elements for task 1 (this
        # producer's), and one naming another producer's task
        # and one naming no task (as an older worker's): nothing signed vouches for it
        redis_cmd("RPUSH", done, b"W%s/1 -1" % prod.encode())
        for n in range(1, 4):
            redis_cmd("RPUSH", done, b"W%s/%d -1\0%s 1" % (prod.encode(), n, ids[0].encode()))
            redis_cmd("RPUSH", done, b"W%s/%d -1\0x%s:1:ab 1" % (prod.encode(), n,
                                                                  UNIQ.encode()))
        # the reconciliation reads the tasks' keys after 3 s: give it two looks
        time.sleep(8)
        check(p.poll() is None, "the producer ended on forged results:\n%s%s"
              % (open(pout).read(), open(perr).read()))
        log = open(perr).read()
        got = open(pout).read()
        check(got == "", "output before the genuine results: %r" % got)
        for i, why in ((0, r"result record in Redis ignored, the task stays pending: result "
                           r"record is not signed \(auth\.required is on\)"),
                       (1, r"result record in Redis ignored, the task stays pending: it is the "
                           r"signed record of task " + re.escape(kept_id)),
                       (2, r"notification ignored, the task stays pending: result record is "
                           r"signed by key [0-9a-f]{16}, which is not among the trusted keys"),
                       (3, r"notification ignored, the task stays pending: signature by key "
                           r"[0-9a-f]{16} does not verify: the result record was altered or "
                           r"forged"),
                       (4, r"notification ignored, the task stays pending: result record is "
                           r"not signed")):
            lines = re.findall(r"pool=%s task=%s: .*" % (pool, re.escape(ids[i])), log)
            check(len(lines) == 1 and re.search(why, lines[0]),
                  "task %d: refusals %r\n%s" % (i + 1, lines, log))
        check("a WaitGroup change that names no task ignored" in log,
              "the change naming no task:\n" + log)
        check(log.count("WaitGroup change by task x%s:1:ab" % UNIQ) == 1 and
              re.search(r"WaitGroup change by task x%s:1:ab \(of another producer\) ignored: its "
                        r"record is not in Redis" % UNIQ, log),
              "the other producer's WaitGroup change:\n" + log)
        check("BEGIN" not in log and "PRIVATE" not in log, "key material in the log")
        # the worker starts: the genuine outcomes arrive (the forged records
        # at the keys are replaced by the completion script)
        w2 = Worker("srB", [pool], env=auth)
        try:
            p.wait(90)
        except subprocess.TimeoutExpired:
            p.kill()
            fail("the genuine outcomes did not arrive:\n%s%s" % (open(pout).read(),
                                                                 open(perr).read()))
        got = open(pout).read()
        check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, got, open(perr).read()))
        for i in range(1, 6):
            check("%d\ttrue\tgenuine-%d\n" % (i, i) in got, "task %d: %r" % (i, got))
        check("forged" not in got and "negative WaitGroup" not in open(perr).read(),
              "a forged value or change was used: %r" % got)
        # released by the genuine change only: nothing was printed before
        check("wg released" in got.splitlines(), "the WaitGroup was not released: %r" % got)
        check(w2.stop() == 0, "worker exit status")
    finally:
        if p.poll() is None:
            p.kill()
    # a worker without a signing key (the wrong upgrade order): its
    # unsigned outcomes are ignored by a producer with trusted keys
    wu = Worker("srU", [pool], env={"MUTIRAO_AUTH_TRUSTED_KEYS": pub})
    wu.wait_for(r"consuming")
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
local id = assert(g.pool_submit(%r, function() return "unsigned" end))
print("unsigned", g.timeout(4000, function() return g.await(id) end))
os.exit(0) -- the task stays pending: do not wait for it
""" % pool, env=auth)
    check(rc == 0 and "unsigned\tfalse\ttimeout after 4000 ms" in out and
          len(re.findall(r"pool=%s task=\S+: (notification|result record in Redis) ignored, the "
                         r"task stays pending: result record is not signed" % pool, err)) == 1,
          "an unsigned outcome, producer with trusted keys: %d\n%s%s" % (rc, out, err))
    check(wu.stop() == 0, "worker exit status")
    # await of another process's task id: a forged record is not its
    # outcome to a process with trusted keys (looked up again, logged
    # once), and is to one without (unchanged behaviour)
    fid = "forge%s:1:%s" % (UNIQ, "0" * 32)
    redis_cmd("SET", LAYOUT.task(fid), result_record(fid, pool, "forged-f"))
    redis_cmd("SET", LAYOUT.task(fid, "q"), "1")
    src = """
local g = require("goroutine")
print("foreign", g.timeout(2500, function() return g.await(%r) end))
""" % fid
    rc, out, err, _ = run_lua(src, env=auth)
    check(rc == 0 and "foreign\tfalse\ttimeout after 2500 ms" in out and
          len(re.findall(r"task=%s: result record ignored, the task stays pending: result "
                         r"record is not signed" % re.escape(fid), err)) == 1,
          "foreign await with trusted keys: %d\n%s%s" % (rc, out, err))
    rc, out, err, _ = run_lua(src, env={"MUTIRAO_AUTH_SIGNING_KEY": key})
    check(rc == 0 and "foreign\ttrue\ttrue\tforged-f" in out,
          "foreign await without trusted keys: %d\n%s%s" % (rc, out, err))
    print("signed results used; forged records and notifications refused and logged")


def case_hostile():
    """Hostile input straight to a pool topic, to a worker with trusted keys
    (issue 13, item 6): random bytes, an empty message, truncated signed
    envelopes, an unsigned one, one signed by an untrusted key, one with a
    flipped payload bit, one made for another pool, an oversized one, and a
    valid signed envelope replayed under another Kafka key after it ran.
    0 worker crashes, 0 tasks run (the valid one runs once), each refusal
    dead-lettered with its reason and counted."""
    pool = "hostile" + UNIQ
    topic = "mutirao.pool." + pool
    mutirao = os.path.join(BIN, "mutirao")
    keys = os.path.join(TMP, "keys")
    for name in ("prod", "rogue"):
        rc, out, err, _ = run([mutirao, "keygen", "--out", keys, "--name", name])
        check(rc == 0, "keygen: %d %s%s" % (rc, out, err))
    prod = (os.path.join(keys, "prod.key"), os.path.join(keys, "prod.pub"))
    rogue = (os.path.join(keys, "rogue.key"), os.path.join(keys, "rogue.pub"))
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%r))
""" % pool, env={"MUTIRAO_AUTH_SIGNING_KEY": prod[0]})
    check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
    w = Worker("hoA", [pool], env={**HARNESS_ALLOW, "MUTIRAO_AUTH_TRUSTED_KEYS": prod[1],
                                   "MUTIRAO_PAYLOAD_MAX_BYTES": "1024"})
    w.wait_for(r" assigned ")

    def env(tid, payload=b"MTR\x01\x90", for_pool=None):
        return task_envelope(tid, for_pool or pool, "p" + UNIQ, {}, payload)

    good = sign_envelope(env("good%s:1" % UNIQ), *prod)
    flipped = bytearray(sign_envelope(env("flip%s:1" % UNIQ), *prod))
    flipped[bytes(flipped).index(b"MTR\x01\x90") + 4] ^= 0x80
    # over payload.max_bytes + 4096: refused before its key or signature is looked at
    large = b"MTE\x02" + b"\0" * 8 + b"\x55" * 6000
    hostile = [
        ("random", os.urandom(300), r"task envelope is not signed"),
        ("empty", b"", r"task envelope is not signed"),
        ("cut3", good[:3], r"task envelope is not signed"),
        ("cut40", good[:40], r"signed envelope of 40 bytes is truncated"),
        ("cutsig", good[:-1], r"does not verify: the envelope was altered"),
        ("unsigned", env("uns%s:1" % UNIQ), r"task envelope is not signed"),
        ("rogue", sign_envelope(env("rogue%s:1" % UNIQ), *rogue),
         r"which is not among the trusted keys"),
        ("flipped", bytes(flipped), r"does not verify: the envelope was altered"),
        ("elsewhere", sign_envelope(env("else%s:1" % UNIQ, for_pool="x" + UNIQ), *prod),
         r"task envelope of pool x%s delivered on the topic of pool" % UNIQ),
        ("large", large, r"signed envelope of 6012 bytes exceeds the limit of 5120"),
    ]
    for key, msg, _ in hostile:
        rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, topic, "0", key,
                               msg.hex()])
        check(rc == 0, "kafka-put %s: %d %s%s" % (key, rc, out, err))
    # the valid one runs once; the same bytes under another key are not run again
    for key in ("good%s:1" % UNIQ, "victim:1"):
        rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, topic, "0", key,
                               good.hex()])
        check(rc == 0, "kafka-put: %d %s%s" % (rc, out, err))
        if key.startswith("good"):
            w.wait_for(r"task=good%s:1 attempt 1 received" % UNIQ)
    w.wait_for(r"task=good%s:1 attempt 1: outcome already recorded \(delivered again\); not "
               r"run again" % UNIQ)
    log = w.text()
    for key, _, why in hostile:
        check(re.search(r"refused unrun: [^\n]*%s[^\n]*\(its key names task %s\)" % (why, key),
                        log), "%s: no refusal saying %r:\n%s" % (key, why, log[-4000:]))
    check(log.count("refused unrun") == len(hostile), "refusals:\n" + log[-4000:])
    # decoded: only the valid envelope, twice (its replay is known as done)
    received = re.findall(r"task=(\S+) attempt 1 received", log)
    check(received == ["good%s:1" % UNIQ] * 2, "tasks decoded: %s" % received)
    check(w.p.poll() is None, "the worker died")
    end = time.time() + 20
    while time.time() < end and pool_counters(pool).get("unauthenticated", 0) < len(hostile):
        time.sleep(0.1)
    check(pool_counters(pool).get("unauthenticated", 0) == len(hostile), "the count of refusals")
    check(redis_cmd("HLEN", LAYOUT.pool(pool, "dead")) == len(hostile), "dead letters")
    stats = pool_counters(pool)
    check(stats.get("completed", 0) + stats.get("failed", 0) == 1 and
          "dead_lettered" not in stats, "one task recorded, no dead letter counted: %s" % stats)
    # a signed envelope of a newer version holds its partition (1 here) for
    # a newer worker, as an unsigned one does without keys
    newer = sign_envelope(b"MTE\x03\x81\xa6future\xc3", *prod)
    rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, topic, "1", "newer", newer.hex()])
    check(rc == 0, "kafka-put: %d %s%s" % (rc, out, err))
    w.wait_for(r"partition 1 offset 0: task envelope version 3 was written by a newer mutirao")
    check("refused unrun" not in w.text().split("partition 1 offset 0")[-1], "newer refused")
    check(w.stop() == 0, "worker exit status")
    # auth.required = off: unsigned envelopes run, a signed one must verify
    opool = "hostoff" + UNIQ
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%r))
""" % opool)
    check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
    wo = Worker("hoOff", [opool], env={**HARNESS_ALLOW, "MUTIRAO_AUTH_TRUSTED_KEYS": prod[1],
                                       "MUTIRAO_AUTH_REQUIRED": "off"})
    wo.wait_for(r" assigned ")
    check("auth.required is off: unsigned task envelopes run too" in wo.text(), wo.text())
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("unsigned", g.await(assert(g.pool_submit(%r, function() return "ran" end))))
""" % opool)
    check(rc == 0 and "unsigned\ttrue\tran" in out, "unsigned, not required: %d\n%s%s"
          % (rc, out, err))
    rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, "mutirao.pool." + opool, "0",
                           "rogue", sign_envelope(env("r%s:1" % UNIQ, for_pool=opool),
                                                  *rogue).hex()])
    check(rc == 0, "kafka-put: %d %s%s" % (rc, out, err))
    wo.wait_for(r"refused unrun: task envelope is signed by key [0-9a-f]{16}, which is not among")
    check(wo.stop() == 0, "worker exit status")
    print("%d hostile messages refused, 0 run, 0 crashes" % len(hostile))


def case_crafted_bytecode():
    """Functions travel to workers as source, compiled there: a signed
    envelope from a trusted key whose task is a function as bytecode (Lua
    does not verify bytecode: crafted bytecode escapes any sandbox) is not
    run by a worker unless its operator allows load.binary; the task fails
    saying so. The same envelope runs on a worker with load.binary. A
    producer's tasks, their nested functions, methods and a task's own
    submits all run from source."""
    pool, loose = "craft" + UNIQ, "craftbin" + UNIQ
    mutirao = os.path.join(BIN, "mutirao")
    keys = os.path.join(TMP, "craftkeys")
    rc, out, err, _ = run([mutirao, "keygen", "--out", keys, "--name", "prod"])
    check(rc == 0, "keygen: %d\n%s%s" % (rc, out, err))
    key, pub = os.path.join(keys, "prod.key"), os.path.join(keys, "prod.pub")
    auth = {"MUTIRAO_AUTH_TRUSTED_KEYS": pub, "MUTIRAO_AUTH_SIGNING_KEY": key}
    a = Worker("craft", [pool], env={**HARNESS_ALLOW, **auth})
    b = Worker("craftbin", [loose], env={**auth, "MUTIRAO_WORKER_ALLOW":
                                         HARNESS_ALLOW["MUTIRAO_WORKER_ALLOW"] + ",load.binary"})
    a.wait_for(r"consuming")
    b.wait_for(r"consuming")
    # the producer's own tasks: closures, a method, nested submits
    rc, out, err, _ = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r))
assert(g.pool_create(%(loose)r)) -- its topic, for the envelope below
local Acc = {n = 10}
function Acc:add(x) return self.n + x end
local base = 5
local id = assert(g.pool_submit(%(pool)r, function(acc, x)
  local inner = function(y) return base * y end
  local sub = assert(g.pool_submit(%(pool)r, function(z) return z + base end, 1))
  local ok, s = g.await(sub)
  return acc:add(x) + inner(2) + s
end, setmetatable({n = 10}, {__index = Acc}), 1))
print("nested", g.await(id))
""" % {"pool": pool, "loose": loose}, env={"MUTIRAO_AUTH_SIGNING_KEY": key})
    check(rc == 0 and "nested\ttrue\t27" in out, "tasks from source: %d\n%s%s" % (rc, out, err))
    # a function as bytecode (a trusted producer's key): it would write a file
    marker = os.path.join(TMP, "crafted-ran")
    r = subprocess.run(["lua5.4", "-e", "io.write(string.dump(function() "
                        "local f = io.open(%r, 'w') f:write('x') f:close() return 'ran' end))"
                        % marker], capture_output=True, check=True)
    bc = r.stdout
    payload = (b"MTR\x01\x91\x93\xc7\x00\x02\xc5" + len(bc).to_bytes(2, "big") + bc +
               b"\xc7\x00\x04")
    for p, tid in ((pool, "crafted" + UNIQ + ":1"), (loose, "craftok" + UNIQ + ":1")):
        env = sign_envelope(task_envelope(tid, p, "p" + UNIQ, {}, payload), key, pub)
        rc, out, err, _ = run([os.path.join(BIN, "kafka-put"), BROKERS, "mutirao.pool." + p, "0",
                               tid, env.hex()])
        check(rc == 0, "kafka-put: %d %s%s" % (rc, out, err))
    end = time.time() + 30
    while time.time() < end and not (redis_cmd("EXISTS", LAYOUT.task("crafted%s:1" % UNIQ)) and
                                     redis_cmd("EXISTS", LAYOUT.task("craftok%s:1" % UNIQ))):
        time.sleep(0.1)
    rec = redis_cmd("GET", LAYOUT.task("crafted%s:1" % UNIQ)) or b""
    check(b"only functions as source are accepted here" in rec,
          "the crafted task's record: %r\n%s" % (rec[:400], a.text()[-2000:]))
    ok = redis_cmd("GET", LAYOUT.task("craftok%s:1" % UNIQ)) or b""
    check(b"ran" in ok and os.path.exists(marker),
          "load.binary worker: %r exists=%s\n%s" % (ok[:300], os.path.exists(marker),
                                                     b.text()[-2000:]))
    os.unlink(marker)
    check(a.p.poll() is None and b.p.poll() is None, "a worker died")
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")
    print("crafted bytecode: refused by the default worker, run with load.binary; "
          "source tasks ran")


def case_foreign_pending():
    """await of another process's task while it is still queued: its
    submitted bit says "not finished" (the await waits, it is no unknown
    id), and once a worker runs it the record is the outcome; an id of the
    same form nobody submitted is unknown at once."""
    pool = "fpend" + UNIQ
    path = os.path.join(TMP, "fpend.lua")
    with open(path, "w") as f:
        f.write("""
local g = require("goroutine")
assert(g.pool_create(%r, { workers = 2 }))
print("id " .. assert(g.pool_submit(%r, function(x) return x * 2 end, 21)))
io.stdout:flush()
""" % (pool, pool))
    # no worker yet: the task stays queued; its producer waits for it
    pa = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    try:
        line = pa.stdout.readline()
        m = re.match(r"id (\S+)$", line.strip())
        check(m, "the producer printed no id: %r" % line)
        tid = m.group(1)
        producer, seq, _ = tid.rsplit(":", 2)
        _, subkey, bit = LAYOUT.bit_of(tid)
        end = time.time() + 10
        while time.time() < end and redis_cmd("GETBIT", subkey, str(bit)) != 1:
            time.sleep(0.05)
        check(redis_cmd("GETBIT", subkey, str(bit)) == 1, "no submitted bit at %s" % subkey)
        check(redis_cmd("EXISTS", LAYOUT.task(tid, "q")) == 0, "a :q marker was written")
        never = "%s:%d:%s" % (producer, int(seq) + 1000, "0" * 32)
        rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("pending", g.timeout(1500, function() return g.await(%r) end))
print("never", g.await(%r))
""" % (tid, never))
        check(rc == 0 and "pending\tfalse\ttimeout after 1500 ms" in out,
              "await of a queued task of another process: %d\n%s%s" % (rc, out, err))
        check(re.search(r"never\tfalse\t.*unknown task id", out),
              "await of an id nobody submitted: %d\n%s%s" % (rc, out, err))
        w = Worker("fpend", [pool])
        try:
            out, err = pa.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pa.kill()
            out, err = pa.communicate()
            fail("the producer did not finish once a worker ran:\n%s\n%s" % (out, err))
        check(pa.returncode == 0, "producer: %d\n%s" % (pa.returncode, err))
        rc, out, err, _ = run_lua("""
local g = require("goroutine")
print("done", g.await(%r))
""" % tid)
        check(rc == 0 and "done\ttrue\t42" in out,
              "await of the finished task: %d\n%s%s" % (rc, out, err))
        check(w.stop() == 0, "worker exit status")
    finally:
        if pa.poll() is None:
            pa.kill()
            pa.communicate()


LAYOUT_SRC = """
local g = require("goroutine")
local role, pa, pb = os.getenv("LAYOUT_ROLE"), %(pa)r, %(pb)r
assert(g.pool_create(pa, { workers = 4 }))
assert(g.pool_create(pb, { workers = 4 }))
-- awaited tasks on both pools
local want = {}
for i = 1, 20 do
  want[#want + 1] = { assert(g.pool_submit(pa, function(x) return x * 2 end, i)), i * 2 }
  want[#want + 1] = { assert(g.pool_submit(pb, function(x) return x + 1000 end, i)), i + 1000 }
end
for _, t in ipairs(want) do
  local ok, v = g.await(t[1])
  assert(ok and v == t[2], tostring(v))
end
-- a WaitGroup of this process, done by tasks of both pools; one task adds
local wg = g.wait_group()
for i = 1, 10 do
  wg:add(1)
  assert(g.pool_submit(i %% 2 == 0 and pa or pb, function() g.sleep(5) wg:done() end))
end
wg:wait()
assert(wg:count() == 0)
local wg2 = g.wait_group()
wg2:add(1)
local ok, v = g.await(assert(g.pool_submit(pa, function() wg2:add(2) wg2:done() return "x" end)))
assert(ok and v == "x" and wg2:count() == 2, tostring(wg2:count()))
-- a task that raises
local ok2, err = g.await(assert(g.pool_submit(pb, function(r) error("boom " .. r, 0) end, role)))
assert(not ok2 and tostring(err):find("boom " .. role, 1, true), tostring(err))
-- unawaited ones: their records stay; pool_wait waits for them
local kept = {}
for i = 1, 5 do kept[i] = assert(g.pool_submit(pa, function(x) return x end, i)) end
assert(g.pool_wait(pa))
assert(g.pool_wait(pb))
for i = 1, 5 do print("kept " .. kept[i]) end
for _, p in ipairs({ pa, pb }) do
  local s = assert(g.pool_stats(p))
  print(string.format("stats %%s submitted=%%d completed=%%d failed=%%d", p, s.submitted,
    s.completed, s.failed))
end
"""

LAYOUT_FLEET_SRC = """
local g = require("goroutine")
for _, p in ipairs({ %(pa)r, %(pb)r }) do
  assert(g.pool_create(p, { workers = 4 }))
  local s = assert(g.pool_stats(p))
  print(string.format("fleet %%s submitted=%%d completed=%%d failed=%%d", p, s.fleet_submitted,
    s.fleet_completed, s.fleet_failed))
end
"""


def tag_names(base, want, conn):
    """base + a suffix, one name per node of want: the first suffix whose
    hash tag is served by that master (conn.node_of), so that the keys of
    two pools must land on two masters."""
    names = []
    for node in want:
        for i in range(100000):
            name = "%s%d" % (base, i)
            if conn.node_of("{%s}" % name) == node and name not in names:
                names.append(name)
                break
    check(len(names) == len(want), "no names for the masters %r" % (want,))
    return names


def check_tagged(by_node, placed):
    """The keys of a cluster's masters ({node: [key, ...]}, SCAN of each):
    every one mutirao:{TAG}:..., each (TAG, node) of placed with keys, all
    on that node, and keys on 2 masters at least. Returns {TAG: {node}}."""
    tag_re = re.compile(r"^mutirao:\{([^{}]+)\}:")
    untagged = [k for ks in by_node.values() for k in ks if not tag_re.match(k)]
    check(not untagged, "keys without a hash tag after mutirao: (%d), e.g. %r" %
          (len(untagged), untagged[:8]))
    where = {}  # tag -> the masters holding its keys
    for node, ks in by_node.items():
        for k in ks:
            where.setdefault(tag_re.match(k).group(1), set()).add(node)
    for tag, node in placed:
        check(where.get(tag) == {node}, "tag %s: keys on %r, its slot on %r" %
              (tag, sorted(where.get(tag, ())), node))
    used = [n for n, ks in by_node.items() if ks]
    check(len(used) >= 2, "keys on %d master(s) only: %r" % (len(used), used))
    return where


def case_layout():
    """The fleet's key layout end to end: two pools, two producer processes
    (await, WaitGroups, pool_wait, pool_stats, a task that raises), then
    SCAN of every master. On a cluster (redis+cluster://) every key is
    mutirao:{TAG}:..., with the tags of the pools and producers on the
    masters that serve them (the pools' names picked to be on two);
    on one Redis, this run's keys carry no tag. The counts are exact."""
    cluster = LAYOUT.tagged
    with redis_client.connect(REDIS, timeout=10) as c:
        masters = c.masters() if cluster else [REDIS]
        if cluster:
            check(len(masters) >= 3, "a cluster of %d masters" % len(masters))
            # the pools' tags on masters 0 and 1 (the producers' come with
            # their random suffix: anywhere)
            pa, pb = tag_names("lpa" + UNIQ + "x", masters[:2], c)
        else:
            pa, pb = "lpa" + UNIQ, "lpb" + UNIQ
    prod_a, prod_b, prod_c = "lprodA" + UNIQ, "lprodB" + UNIQ, "lprodC" + UNIQ
    w = Worker("layout", [pa, pb])
    w.wait_for(r"consuming")
    path = os.path.join(TMP, "layout.lua")
    with open(path, "w") as f:
        f.write(LAYOUT_SRC % {"pa": pa, "pb": pb})
    procs = {}
    for role, prod in (("A", prod_a), ("B", prod_b)):
        env = dict(ENV, LAYOUT_ROLE=role, MUTIRAO_PRODUCER_ID=prod)
        procs[role] = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=env, cwd=TMP)
    outs = {}
    for role, p in procs.items():
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs.values():
                q.kill()
            out, err = p.communicate()
            fail("producer %s did not finish:\n%s%s" % (role, out, err))
        check(p.returncode == 0, "producer %s: %d\n%s%s" % (role, p.returncode, out, err))
        outs[role] = out
    # each producer's own counts: pa 20 awaited + 5 WaitGroup + 1 + 5 kept,
    # pb 20 awaited + 5 WaitGroup + 1 that raised
    for role in ("A", "B"):
        for pool, sub, done, failed in ((pa, 31, 31, 0), (pb, 26, 25, 1)):
            line = "stats %s submitted=%d completed=%d failed=%d" % (pool, sub, done, failed)
            check(line in outs[role], "producer %s: no %r in\n%s" % (role, line, outs[role]))
    rc, out, err, _ = run_lua(LAYOUT_FLEET_SRC % {"pa": pa, "pb": pb},
                              env={"MUTIRAO_PRODUCER_ID": prod_c})
    check(rc == 0, "fleet stats: %d\n%s%s" % (rc, out, err))
    for pool, sub, done, failed in ((pa, 62, 62, 0), (pb, 52, 50, 2)):
        line = "fleet %s submitted=%d completed=%d failed=%d" % (pool, sub, done, failed)
        check(line in out, "no %r in\n%s" % (line, out))
    check(w.stop() == 0, "worker exit status")
    kept = re.findall(r"^kept (\S+)$", outs["A"] + outs["B"], re.M)
    check(len(kept) == 10, "kept ids: %r" % kept)
    # a task id's producer part is the producer.id and the process's own
    # suffix (PRODUCER_ID.HEX.N): the tags of the two producers
    tags = sorted(set(fleet_keys.producer_of(k) for k in kept))
    check(len(tags) == 2 and tags[0].startswith(prod_a + ".") and
          tags[1].startswith(prod_b + "."), "the kept ids' producers: %r" % tags)
    # the keys, as each master holds them
    by_node = {n: [k.decode() for k in ks] for n, ks in scan_nodes("mutirao:*").items()}
    ours = [pa, pb] + tags
    if not cluster:
        mine = [k for ks in by_node.values() for k in ks
                if any(o in k for o in (pa, pb, prod_a, prod_b, prod_c))]
        check(mine, "no key of this run")
        tagged = [k for k in mine if k.startswith("mutirao:{")]
        check(not tagged, "tagged keys on one Redis: %r" % tagged[:5])
        for kid in kept:
            check(redis_cmd("EXISTS", LAYOUT.task(kid)) == 1, "no record at " + LAYOUT.task(kid))
        print("layout: %d keys of this run, no hash tags" % len(mine))
        return
    with redis_client.connect(REDIS, timeout=10) as c:
        placed = [(pa, masters[0]), (pb, masters[1])] + [(t, c.node_of("{%s}" % t)) for t in tags]
    where = check_tagged(by_node, placed)
    for kid in kept:  # the unawaited records, where the layout says
        check(redis_cmd("EXISTS", LAYOUT.task(kid)) == 1, "no record at " + LAYOUT.task(kid))
    for pool in (pa, pb):
        check(redis_cmd("EXISTS", LAYOUT.pool(pool)) == 1, "no pool key " + LAYOUT.pool(pool))
    others = sorted(t for t in where if t not in ours)
    print("layout: %s keys per master; tags %s; other tags %s" %
          ([len(by_node[n]) for n in masters], sorted(t for t in where if t in ours), others))


def case_nested_wg():
    """A WaitGroup of the producer done by tasks that tasks submitted on the
    workers and awaited (their producer is a worker's VM: on Redis Cluster
    their changes cross slots, through the completing task's outbox, and
    reach the producer before the outer task's outcome): the count reaches
    zero, each change applied once. (No worker is killed here: an outer
    task run again submits its inner task again, a new task whose change
    counts too; docs/ARCHITECTURE.md, "Redis Cluster", for the outbox's
    replay after a kill, tested by integration.worker_keys_cluster.)"""
    pool, inner_pool = "nw" + UNIQ, "nwi" + UNIQ  # outer tasks await inner ones:
    n = 60                                        # not in their own pool's slots
    a = Worker("nwA", [pool, inner_pool])
    b = Worker("nwB", [pool, inner_pool])
    a.wait_for(r"starting")
    b.wait_for(r"starting")
    src = """
local g = require("goroutine")
assert(g.pool_create("%(pool)s", {workers = 4}))
assert(g.pool_create("%(inner)s", {workers = 4}))
g.sleep(4000) -- both workers in the group
local wg = g.wait_group()
local ids = {}
for i = 1, %(n)d do
  wg:add(1)
  ids[i] = assert(g.pool_submit("%(pool)s", function(k)
    wg:add(1) -- before the inner submit: the inner task may end first
    local inner = assert(g.pool_submit("%(inner)s", function() g.sleep(60) wg:done() end))
    wg:done()
    -- the outer task carries the WaitGroup until the inner one ended (its
    -- producer reads changes of a WaitGroup while tasks carry it)
    assert(g.await(inner))
    return k
  end, i))
end
io.stdout:write("submitted\\n") io.stdout:flush()
for i = 1, %(n)d do
  local ok, k = g.await(ids[i])
  assert(ok and k == i, tostring(k))
end
local t0 = g.now()
wg:wait()
print(string.format("nested done count=%%d after %%.1f s", wg:count(), (g.now() - t0) / 1000))
""" % {"pool": pool, "inner": inner_pool, "n": n}
    path = os.path.join(TMP, "nested_wg.lua")
    with open(path, "w") as f:
        f.write(src)
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("producer did not finish (a change lost?):\n%s\n%s" % (out, err))
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err))
    check("negative WaitGroup" not in err, "a change applied twice:\n" + err)
    check("nested done count=0" in out, "WaitGroup not at zero:\n" + out + err)
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")
    print(out.strip().splitlines()[-1])


# ---- Redis Cluster under faults (fleet_cluster_test.py only) ----

CLUSTER_FAULT_SRC = """
local g = require("goroutine")
local P, N = %(pool)r, %(n)d
assert(g.pool_create(P, {workers = %(workers)d, queue = 100000}))
local wg, adds = g.wait_group(), g.wait_group()
local ids = {}
local t0 = g.now()
for i = 1, N do
  wg:add(1)
  ids[i] = assert(g.pool_submit(P, function(k)
    local f = assert(io.open(%(runs)r, "a"))
    f:write(k, "\\n")
    f:close()
    g.sleep(%(ms)d)
    if k %% 10 == 0 then adds:add(1) end -- travels back with the outcome
    wg:done()
    return k * 2
  end, i))
end
io.stdout:write("submitted\\n") io.stdout:flush()
-- the lowest count wg ever shows (a change applied twice would take it
-- below what is left)
local lowest, watching = N, true
g.spawn(function()
  while watching do
    local c = wg:count()
    if c < lowest then lowest = c end
    g.sleep(5)
  end
end)
local both = g.wait_group()
both:add(2)
local waited, pooled
g.spawn(function() wg:wait() waited = wg:count() both:done() end)
g.spawn(function() pooled = g.pool_wait(P) both:done() end)
local bad = 0
for i = 1, N do
  local ok, v = g.await(ids[i])
  if not (ok and v == 2 * i) then
    bad = bad + 1
    io.stderr:write("task " .. i .. ": " .. tostring(ok) .. " " .. tostring(v) .. "\\n")
  end
end
both:wait()
watching = false
if wg:count() < lowest then lowest = wg:count() end
local s = assert(g.pool_stats(P))
print(string.format("bad=%%d wg=%%d lowest=%%d adds=%%d pool_wait=%%s submitted=%%d completed=%%d "
  .. "failed=%%d fleet_submitted=%%d fleet_completed=%%d fleet_failed=%%d fleet_dead_lettered=%%d "
  .. "fleet_retried=%%d took=%%.1f", bad, waited, lowest, adds:count(), tostring(pooled),
  s.submitted, s.completed, s.failed, s.fleet_submitted, s.fleet_completed, s.fleet_failed,
  s.fleet_dead_lettered, s.fleet_retried, (g.now() - t0) / 1000))
"""


def cluster_control():
    """redis_cluster's node_request and the masters' ports, or a skip when
    the case does not run under fleet_cluster_test.py."""
    import redis_cluster
    if not redis_cluster.control_available():
        skip("not on a cluster of fleet_cluster_test.py")
    return redis_cluster.node_request, redis_cluster.control_ports()


def master_of(key):
    """The index (in MUTIRAO_TEST_CLUSTER_PORTS) of the master serving key."""
    import redis_cluster
    with redis_client.connect(REDIS, timeout=10) as c:
        return redis_cluster.control_ports().index(c.node_of(key)[1])


def runs_count(path):
    """{task number: runs} of a runs file."""
    runs = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    runs[int(line)] = runs.get(int(line), 0) + 1
    return runs


def exact_summary(out, err, n, fleet_n=None, adds=None):
    """Checks CLUSTER_FAULT_SRC's summary line: every outcome right, the
    WaitGroups exact and never below what was left, this producer's and the
    fleet's counters exact (fleet_n tasks, n by default; adds: the count of
    the second WaitGroup, n // 10 by default). Returns its fields."""
    m = re.search(r"bad=(\d+) wg=(-?\d+) lowest=(-?\d+) adds=(-?\d+) pool_wait=(\S+) "
                  r"submitted=(\d+) completed=(\d+) failed=(\d+) fleet_submitted=(\d+) "
                  r"fleet_completed=(\d+) fleet_failed=(\d+) fleet_dead_lettered=(\d+) "
                  r"fleet_retried=(\d+) took=([\d.]+)", out)
    check(m, "no summary line:\n" + out + err[-6000:])
    keys = ("bad wg lowest adds pool_wait submitted completed failed fleet_submitted "
            "fleet_completed fleet_failed fleet_dead_lettered fleet_retried").split()
    got = dict(zip(keys, m.groups()))
    fleet_n = n if fleet_n is None else fleet_n
    adds = n // 10 if adds is None else adds
    want = {"bad": "0", "wg": "0", "lowest": "0", "adds": str(adds), "pool_wait": "true",
            "submitted": str(n), "completed": str(n), "failed": "0",
            "fleet_submitted": str(fleet_n), "fleet_completed": str(fleet_n),
            "fleet_failed": "0", "fleet_dead_lettered": "0", "fleet_retried": "0"}
    wrong = {k: (got[k], want[k]) for k in keys if got[k] != want.get(k, got[k])}
    check(not wrong, "outcomes, WaitGroups, counters (got, want): %s\n%s\n%s" %
          (wrong, m.group(0), err[-6000:]))
    check("negative WaitGroup" not in err, "a WaitGroup change applied twice:\n" + err[-6000:])
    got["took"] = float(m.group(14))
    return got


def redis_summary():
    """What the fleet's keys in Redis hold, by kind (for a failure's report):
    {kind: count}, the notification lists with their lengths."""
    by = {}
    for ks in scan_nodes("mutirao:*").values():
        for k in ks:
            k = k.decode()
            m = re.match(r"^mutirao:(?:\{[^}]*\}:)?([a-z]+)", k)
            kind = "outbox" if re.search(r":task:.*:x$", k) else (m.group(1) if m else k)
            if kind == "done":
                kind = "%s (%d)" % (k, redis_cmd("LLEN", k))
            by[kind] = by.get(kind, 0) + 1
    return by


def case_master_restart():
    """Redis Cluster: the master serving the producer's tasks, results and
    notifications SIGKILLed while tasks complete (a third of them done),
    started again 2 s later (AOF, appendfsync always: it keeps what it
    acknowledged), then the pool's master (or another one) at two thirds:
    every task completes exactly once, the WaitGroups and counters exact,
    the run ends on its own within a bound."""
    node_request, ports = cluster_control()
    pool = "mr" + UNIQ
    n, ms = 3000, 100
    runs = os.path.join(TMP, pool + ".runs")
    a = Worker("mrA", [pool], HARNESS_ALLOW)
    b = Worker("mrB", [pool], HARNESS_ALLOW)
    a.wait_for(r"consuming")
    b.wait_for(r"consuming")
    rc, out, err, _ = run_lua('assert(require("goroutine").pool_create(%r, {workers = 32, '
                              'queue = 100000}))' % pool)
    check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
    a.wait_for(r" assigned ")
    b.wait_for(r" assigned ")
    time.sleep(1)
    path = os.path.join(TMP, "master_restart.lua")
    with open(path, "w") as f:
        f.write(CLUSTER_FAULT_SRC % {"pool": pool, "n": n, "ms": ms, "workers": 32,
                                     "runs": runs})
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    def completed_at_least(want):
        """Waits until want of this producer's tasks completed (its counters
        in Redis); returns its stats key."""
        end = time.time() + 90
        done = 0
        while time.time() < end:
            if p.poll() is not None:
                fail("the producer ended early:\n%s%s" % p.communicate())
            keys = [k for k in stats_keys(pool) if k != LAYOUT.pool(pool, "stats")]
            if keys:
                done = int(redis_cmd("HGET", keys[0], "completed") or 0)
                if done >= want:
                    return keys[0], done
            time.sleep(0.02)
        fail("%d tasks did not complete within 90 s (%d did)" % (want, done))

    def kill_and_start(victim):
        node_request("kill", victim)
        killed = time.time()
        time.sleep(2)
        node_request("start", victim)
        return time.time() - killed

    # a second producer asks pool_stats every 100 ms through both outages:
    # a restarted master answers CLUSTERDOWN for its first 2 s, which must
    # not fail the call (a command waits for a master that is down, within
    # op.timeout_ms, as on one Redis)
    stop_probe = os.path.join(TMP, pool + ".stop")
    probe_src = """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, {workers = 32, queue = 100000}))
local ok, failed = 0, 0
while not io.open(%(stop)r) do
  local s, err = g.pool_stats(%(pool)r)
  if s then ok = ok + 1 else
    failed = failed + 1
    io.stderr:write("pool_stats: " .. tostring(err) .. "\\n")
  end
  g.sleep(100)
end
print(string.format("probe ok=%%d failed=%%d", ok, failed))
""" % {"pool": pool, "stop": stop_probe}
    probe_path = os.path.join(TMP, "master_restart_probe.lua")
    with open(probe_path, "w") as f:
        f.write(probe_src)
    probe = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", probe_path],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    # a third of the tasks completed: the master of the producer's slot
    # (its tasks' keys, notifications, counters) goes
    key, done1 = completed_at_least(n // 3)
    producer = re.match(r"^mutirao:\{(.*)\}:stats:", key).group(1)
    first = master_of(LAYOUT.done(producer))
    pool_master = master_of(LAYOUT.pool(pool))
    sub = LAYOUT.sub(producer, 0)
    subs_before = redis_cmd("BITCOUNT", sub)
    back1 = kill_and_start(first)
    # the restarted master kept what it had acknowledged (AOF)
    subs_after = redis_cmd("BITCOUNT", sub)
    check(subs_after == subs_before > 0,
          "submitted bits before the kill %s, after the restart %s" % (subs_before, subs_after))
    # two thirds: the pool's master (:active, :producers, :stats), or
    # another one when it is the same
    _, done2 = completed_at_least(2 * n // 3)
    second = pool_master if pool_master != first else (first + 1) % len(ports)
    back2 = kill_and_start(second)
    started_at = time.time()
    time.sleep(1)
    with open(stop_probe, "w"):
        pass
    try:
        pout, perr = probe.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        probe.kill()
        pout, perr = probe.communicate()
    pm = re.search(r"probe ok=(\d+) failed=(\d+)", pout)
    check(probe.returncode == 0 and pm and pm.group(2) == "0" and int(pm.group(1)) > 0,
          "pool_stats during the outages: %d\n%s%s" % (probe.returncode, pout, perr[-4000:]))
    try:
        out, err = p.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("the producer did not end within 150 s of the restart:\n%s\n%s\nRedis: %s, "
             "the pool's counters %s" % (out, err[-6000:], redis_summary(), pool_counters(pool)))
    took = time.time() - started_at
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err[-6000:]))
    got = exact_summary(out, err, n)
    check(redis_cmd("BITCOUNT", sub) == n and redis_cmd("BITCOUNT", LAYOUT.seen(producer, 0)) == n,
          "submitted and seen bits: %s %s" % (redis_cmd("BITCOUNT", sub),
                                               redis_cmd("BITCOUNT", LAYOUT.seen(producer, 0))))
    # Redis agrees: the counters, no dead letter, nothing left in flight
    counts = pool_counters(pool)
    check(counts.get("submitted") == n and counts.get("completed") == n and
          not counts.get("failed") and not counts.get("dead_lettered"),
          "the pool's counters in Redis: %s" % counts)
    check(not redis_cmd("HLEN", LAYOUT.pool(pool, "dead")), "dead letters")
    left = scan_nodes("mutirao:{%s}:*" % fleet_keys.glob_escape(producer))
    left = sorted(k.decode() for ks in left.values() for k in ks)
    in_flight = [k for k in left if ":delivery:" in k or k.endswith(":x")]
    check(not in_flight, "delivery records or outboxes left: %s" % in_flight[:10])
    tasks_left = [k for k in left if ":task:" in k]
    # every task ran, and how often
    ran = runs_count(runs)
    never = [k for k in range(1, n + 1) if k not in ran]
    check(not never, "tasks never ran: %s" % never[:20])
    extra = sum(ran.values()) - n
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")
    logs = a.text() + b.text()
    print("master_restart: masters %s, the producer's %d, the pool's %d; SIGKILLed %d with "
          "%d of %d completed, back %.1f s later; SIGKILLed %d with %d completed, back %.1f s "
          "later; all outcomes %.1f s after that (run %.1f s)"
          % (ports, first, pool_master, first, done1, n, back1, second, done2, back2, took,
             got["took"]))
    print("master_restart: %s during the outages" % pm.group(0))
    print("master_restart: lost=0 extra_runs=%d task keys left=%d; workers logged %d "
          "failed outcome records, producer %d lines on lost or late notifications"
          % (extra, len(tasks_left), logs.count("cannot record the outcome"),
             err.count("lost or late")))


NESTED_FAULT_SRC = """
local g = require("goroutine")
local P, N, K, M = %(pool)r, %(n)d, %(k)d, %(m)d
-- max_deliveries above the kills: a task on each killed worker is delivered
-- that many times without an outcome, and must not become a dead letter
assert(g.pool_create(P, {workers = %(workers)d, queue = 100000, max_deliveries = 10}))
local wg, adds = g.wait_group(), g.wait_group()
local t0 = g.now()
-- the outer tasks: each submits K inner tasks (their producer is the
-- worker's VM) that change this producer's WaitGroups; wg counts them up
-- front, so no order of arrival takes it below what is left
local outer = {}
for i = 1, N do
  wg:add(1 + K)
  outer[i] = assert(g.pool_submit(P, function(k)
    local f = assert(io.open(%(runs)r, "a"))
    f:write("o", k, "\\n")
    f:close()
    for j = 1, K do
      assert(g.pool_submit(P, function(k2, j2)
        local f2 = assert(io.open(%(runs)r, "a"))
        f2:write("i", k2, ".", j2, "\\n")
        f2:close()
        g.sleep(%(inner_ms)d)
        adds:add(1)
        wg:done()
      end, k, j))
    end
    wg:done()
    return k * 2
  end, i))
end
local bad = 0
for i = 1, N do
  local ok, v = g.await(outer[i])
  if not (ok and v == 2 * i) then
    bad = bad + 1
    io.stderr:write("outer " .. i .. ": " .. tostring(ok) .. " " .. tostring(v) .. "\\n")
  end
end
local f = assert(io.open(%(mark)r, "w"))
f:write("outer done\\n")
f:close()
-- a producer applies a WaitGroup's changes while tasks of its own carry it
-- (README: WaitGroups passed on to nested tasks): the inner tasks' changes
-- may come after the direct tasks ended, so a keeper task carries both
-- WaitGroups (it does not change them) until they are done
local keeper = assert(g.pool_submit(P, function(path)
  assert(wg and adds) -- carried
  while true do
    local fk = io.open(path)
    if fk then fk:close() return "kept" end
    g.sleep(100)
  end
end, %(mark)r .. ".end"))
-- the direct tasks, while the workers are killed (the inner ones run too)
local lowest, watching = wg:count(), true
g.spawn(function()
  while watching do
    local c = wg:count()
    if c < lowest then lowest = c end
    g.sleep(5)
  end
end)
local awaited = 0
g.spawn(function() -- progress, for a run that does not end
  while watching do
    g.sleep(5000)
    io.stderr:write(string.format("progress: %%.0f s awaited=%%d wg=%%d adds=%%d\\n",
      (g.now() - t0) / 1000, awaited, wg:count(), adds:count()))
  end
end)
local ids = {}
for i = 1, M do
  wg:add(1)
  ids[i] = assert(g.pool_submit(P, function(k)
    local f3 = assert(io.open(%(runs)r, "a"))
    f3:write("d", k, "\\n")
    f3:close()
    g.sleep(%(ms)d)
    if k %% 10 == 0 then adds:add(1) end
    wg:done()
    return k * 3
  end, i))
end
local both = g.wait_group()
both:add(2)
local waited, pooled
g.spawn(function()
  wg:wait()
  waited = wg:count()
  local fe = assert(io.open(%(mark)r .. ".end", "w"))
  fe:close()
  local okk, vk = g.await(keeper)
  if not (okk and vk == "kept") then bad = bad + 1 end
  pooled = g.pool_wait(P) -- this producer's tasks, the keeper's too
  both:done()
end)
both:done()
for i = 1, M do
  local ok, v = g.await(ids[i])
  awaited = i
  if not (ok and v == 3 * i) then
    bad = bad + 1
    io.stderr:write("direct " .. i .. ": " .. tostring(ok) .. " " .. tostring(v) .. "\\n")
  end
end
both:wait()
watching = false
if wg:count() < lowest then lowest = wg:count() end
local s = assert(g.pool_stats(P))
print(string.format("bad=%%d wg=%%d lowest=%%d adds=%%d pool_wait=%%s submitted=%%d completed=%%d "
  .. "failed=%%d fleet_submitted=%%d fleet_completed=%%d fleet_failed=%%d fleet_dead_lettered=%%d "
  .. "fleet_retried=%%d took=%%.1f", bad, waited, lowest, adds:count(), tostring(pooled),
  s.submitted, s.completed, s.failed, s.fleet_submitted, s.fleet_completed, s.fleet_failed,
  s.fleet_dead_lettered, s.fleet_retried, (g.now() - t0) / 1000))
"""


def case_worker_sigkill_nested():
    """Redis Cluster: a worker SIGKILLed three times (A, B, then A's
    successor, each with tasks in flight, each replaced at once) while
    tasks complete that change their producer's WaitGroups (its slot) and
    tasks submitted by tasks on the workers change them too (another
    producer's slot: through the completing task's outbox): every outcome
    once, every change applied once (the counts exact, never below what is
    left), the counters exact, no outbox or delivery record left. A keeper
    task carries the WaitGroups until they are done: the producer applies
    changes of a WaitGroup only while a task of its own carries it (the
    README's limit of WaitGroups passed on to nested tasks)."""
    cluster_control()  # only under fleet_cluster_test.py: a fresh cluster
    pool = "wn" + UNIQ
    n, k, m = 40, 10, 1000
    runs = os.path.join(TMP, pool + ".runs")
    mark = os.path.join(TMP, pool + ".outer")
    slots = {"A": [Worker("wnA-0", [pool], HARNESS_ALLOW)],
             "B": [Worker("wnB-0", [pool], HARNESS_ALLOW)]}
    for ws in slots.values():
        ws[-1].wait_for(r"consuming")
    rc, out, err, _ = run_lua('assert(require("goroutine").pool_create(%r, {workers = 8, '
                              'queue = 100000, max_deliveries = 10}))' % pool)
    check(rc == 0, "pool_create: %d\n%s%s" % (rc, out, err))
    for ws in slots.values():
        ws[-1].wait_for(r" assigned ")
    time.sleep(1)
    path = os.path.join(TMP, "worker_sigkill_nested.lua")
    with open(path, "w") as f:
        f.write(NESTED_FAULT_SRC % {"pool": pool, "n": n, "k": k, "m": m, "workers": 8,
                                    "inner_ms": 1000, "ms": 200, "runs": runs, "mark": mark})
    p = subprocess.Popen([os.path.join(BIN, "mutirao"), "run", "--fleet", path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
    # the outer tasks all completed (none runs again: their inner submits
    # would be done twice), the inner ones are running
    end = time.time() + 90
    while time.time() < end and not os.path.exists(mark):
        if p.poll() is not None:
            fail("the producer ended early:\n%s%s" % p.communicate())
        time.sleep(0.05)
    check(os.path.exists(mark), "the outer tasks did not complete within 90 s")
    kills = []
    for victim in ("A", "B", "A"):
        w = slots[victim][-1]
        # its tasks in flight: one received since it started, then a moment
        w.wait_for(r"task=\S+ attempt \d+ received", 90)
        time.sleep(1)
        if p.poll() is not None:
            fail("the producer ended before kill %d:\n%s%s" % (len(kills) + 1, *p.communicate()))
        w.p.send_signal(signal.SIGKILL)
        w.p.wait()
        kills.append((w.name, time.time(), w.text().count(" received ")))
        slots[victim].append(Worker("wn%s-%d" % (victim, len(slots[victim])), [pool],
                                    HARNESS_ALLOW))
    last_kill = time.time()
    try:
        out, err = p.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("the producer did not end within 150 s of the last kill (a change lost?):\n%s\n%s"
             "\nRedis: %s, the pool's counters %s" % (out, err[-6000:], redis_summary(),
                                                     pool_counters(pool)))
    took = time.time() - last_kill
    check(p.returncode == 0, "producer: %d\n%s%s" % (p.returncode, out, err[-6000:]))
    # this producer's tasks: n outer + m direct; the fleet's: the n * k inner too
    # (+ 1: the keeper task)
    got = exact_summary(out, err, n + m + 1, n + m + n * k + 1, n * k + m // 10)
    counts = pool_counters(pool)
    total = n + m + n * k + 1
    check(counts.get("submitted") == total and counts.get("completed") == total
          and not counts.get("failed") and not counts.get("dead_lettered"),
          "the pool's counters in Redis: %s" % counts)
    check(not redis_cmd("HLEN", LAYOUT.pool(pool, "dead")), "dead letters")
    left = scan_nodes("mutirao:{*}:*")
    left = sorted(k_.decode() for ks in left.values() for k_ in ks)
    in_flight = [k_ for k_ in left if ":delivery:" in k_ or re.search(r":task:.*:x$", k_)]
    check(not in_flight, "delivery records or outboxes left: %s" % in_flight[:10])
    runs_by = {}
    with open(runs) as f:
        for line in f:
            if line.strip():
                runs_by[line.strip()] = runs_by.get(line.strip(), 0) + 1
    want = (["o%d" % i for i in range(1, n + 1)] +
            ["i%d.%d" % (i, j) for i in range(1, n + 1) for j in range(1, k + 1)] +
            ["d%d" % i for i in range(1, m + 1)])
    never = [t for t in want if t not in runs_by]
    check(not never, "tasks never ran: %s" % never[:20])
    twice_outer = [t for t in runs_by if t.startswith("o") and runs_by[t] > 1]
    check(not twice_outer, "outer tasks ran again (no kill then): %s" % twice_outer)
    extra = sum(runs_by.values()) - len(want)
    for ws in slots.values():
        check(ws[-1].stop() == 0, "worker %s exit status" % ws[-1].name)
    logs = "".join(w.text() for ws in slots.values() for w in ws)
    print("worker_sigkill_nested: killed %s (%s received before its kill), the last %.1f s "
          "after the first; all outcomes %.1f s after the last kill (run %.1f s)" %
          (", ".join(k_[0] for k_ in kills), ", ".join(str(k_[2]) for k_ in kills),
           kills[-1][1] - kills[0][1], took, got["took"]))
    print("worker_sigkill_nested: lost=0 extra_runs=%d (inner %d, direct %d); replays of "
          "outboxes logged: %d" %
          (extra, sum(v - 1 for t, v in runs_by.items() if t.startswith("i")),
           sum(v - 1 for t, v in runs_by.items() if t.startswith("d")),
           len(re.findall(r"(?i)replay", logs))))


CASES = {"examples": case_examples, "stop_first_rebalance": case_stop_first_rebalance, "foreign_pending": case_foreign_pending, "await_wg": case_await_wg, "two_workers": case_two_workers,
         "sigkill": case_sigkill, "errors": case_errors, "libmutirao": case_libmutirao,
         "local_objects": case_local_objects,
         "two_clients": case_two_clients, "stock_lua": case_stock_lua,
         "lingering": case_lingering, "retention": case_retention, "rebalance_busy": case_rebalance_busy, "large_values": case_large_values, "os_exit": case_os_exit,
         "semantics": case_semantics, "valgrind": case_valgrind, "poison": case_poison,
         "redelivered": case_redelivered, "newer_envelope": case_newer_envelope,
         "dlq": case_dlq, "revoked": case_revoked, "timeout": case_timeout, "deadline": case_deadline,
         "memory": case_memory, "retries": case_retries, "retries_sigkill": case_retries_sigkill,
         "redis_restart_aof": case_redis_restart_aof,
         "redis_restart_nopersist": case_redis_restart_nopersist,
         "notify_dropped": case_notify_dropped, "notify_gone": case_notify_gone,
         "no_worker_hint": case_no_worker_hint, "reconcile_bounded": case_reconcile_bounded,
         "sigterm": case_sigterm, "sigint_twice": case_sigint_twice, "sandbox": case_sandbox,
         "sandbox_secrets": case_sandbox_secrets,
         "signed": case_signed, "hostile": case_hostile,
         "signed_results": case_signed_results, "crafted_bytecode": case_crafted_bytecode,
         "layout": case_layout, "nested_wg": case_nested_wg,
         "master_restart": case_master_restart,
         "worker_sigkill_nested": case_worker_sigkill_nested}
# SIGTERM (fleet_cluster_test.py stopping a case that outlived its time):
# the workers are killed below as on any other end
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("stopped by SIGTERM"))
try:
    CASES[CASE]()
finally:
    T.kill_workers()
print("ok:", CASE)
