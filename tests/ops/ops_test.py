#!/usr/bin/env python3
"""tests/ops/ops_test.py BINDIR CASE: the operations commands against a real fleet.

  commands     `mutirao pools`, `stats`, `task`, `workers` (tables and --json),
               after tasks that complete, fail (after a retry), wait queued
               and run: a redis-server of the test's own (so that the pools
               and workers listed are exactly the test's), the shared Kafka
               of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS), two
               mutirao-worker processes; unknown pool or id, --config FILE,
               an unreachable Redis.
  fleet_up     scripts/fleet-up.sh --workers 2, a task on that fleet, the
               commands, scripts/fleet-down.sh; no process of it left.

Without the services (or redis-server, java) a case is skipped with exit 77,
or fails when CI is set.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import fleet_worker  # noqa: E402
import mutirao_test  # noqa: E402
import private_redis  # noqa: E402

BIN, CASE = os.path.abspath(sys.argv[1]), sys.argv[2]
MUTIRAO = os.path.join(BIN, "mutirao")
T = mutirao_test.Run(BIN, "mutirao-ops-")
TMP, UNIQ, WORKERS = T.tmp, T.uniq, T.workers
ENV = mutirao_test.env_without_mutirao()
ENV["MUTIRAO_WORKER_GROUP"] = "mutirao.workers.ops" + UNIQ
T.workers_env(ENV)
skip, fail, check, row, run = T.skip, T.fail, T.check, T.row, T.run


def ops(*args, env=None, code=0):
    """`mutirao ARGS`; its stdout (fails on another exit status or stderr output)."""
    rc, out, err, _ = run([MUTIRAO] + list(args), env=env)
    check(rc == code and (code != 0 or err == ""),
          "mutirao %s: exit %d (expected %d)\n%s%s" % (" ".join(args), rc, code, out, err))
    return out if code == 0 else err


def ops_json(*args, env=None):
    out = ops(*args, "--json", env=env)
    try:
        return json.loads(out)
    except ValueError as e:
        fail("mutirao %s --json is not JSON (%s):\n%s" % (" ".join(args), e, out))


def one_line_error(args, pattern, env=None, max_s=None):
    rc, out, err, dt = run([MUTIRAO] + args, env=env)
    check(rc == 1 and out == "", "mutirao %s: exit %d, stdout %r" % (" ".join(args), rc, out))
    check(re.fullmatch(pattern + r"\n", err),
          "mutirao %s: stderr is not one line matching %r:\n%s" % (" ".join(args), pattern, err))
    if max_s is not None:
        check(dt < max_s, "mutirao %s took %.1f s" % (" ".join(args), dt))


def case_commands():
    brokers = os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS")
    if not brokers:
        skip("MUTIRAO_TEST_KAFKA_BROKERS not set")
    if not private_redis.available():
        skip("redis-server not installed")
    red = private_redis.PrivateRedis(TMP, False)
    red.start()
    ENV.update({"MUTIRAO_KAFKA_BROKERS": brokers, "MUTIRAO_REDIS_URL": red.url})
    pool, idle = "ops" + UNIQ, "opsidle" + UNIQ
    producers = []  # killed at the end, whatever happens
    try:
        # completed tasks' details kept 10 minutes (default: not kept)
        keep = {"MUTIRAO_TASK_INFO_TTL_S": "600"}
        w1 = fleet_worker.Worker("a", [pool], keep)
        w2 = fleet_worker.Worker("b", [pool], keep)
        for w in (w1, w2):
            w.wait_for("consuming")
        ids = ["a-" + UNIQ, "b-" + UNIQ]

        # 4 tasks complete (one takes 300 ms), one fails twice (retries = 1)
        src = """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, {workers = 2, retries = 1, backoff = {initial = 50}}))
assert(g.pool_create(%(idle)r, {workers = 1}))
local ok = {}
for i = 1, 4 do
  ok[i] = g.pool_submit(%(pool)r, function(n, ms) g.sleep(ms) return n * 2 end, i,
                        i == 1 and 300 or 0)
end
local bad = g.pool_submit(%(pool)r, function() error("boom on purpose") end)
for i = 1, 4 do assert(select(2, g.await(ok[i])) == i * 2) end
print("SLOW", ok[1])
print("BAD", bad, g.await(bad))
""" % {"pool": pool, "idle": idle}
        path = os.path.join(TMP, "tasks.lua")
        with open(path, "w") as f:
            f.write(src)
        rc, out, err, _ = run([MUTIRAO, "run", "--fleet", path], timeout=90)
        check(rc == 0 and "boom on purpose" in out, "the tasks: exit %d\n%s%s" % (rc, out, err))
        slow = re.search(r"SLOW\t(\S+)", out).group(1)
        bad = re.search(r"BAD\t(\S+)", out).group(1)

        # a task running now, one waiting on a pool no worker serves (this
        # producer is killed once they are seen)
        run_src = """
local g = require("goroutine")
local id = g.pool_submit(%(pool)r, function() g.sleep(8000) return 1 end)
print("RUNNING", id, g.pool_submit(%(idle)r, function() return 1 end))
io.stdout:flush()
g.await(id)
""" % {"pool": pool, "idle": idle}
        path2 = os.path.join(TMP, "running.lua")
        with open(path2, "w") as f:
            f.write(run_src)
        e = dict(ENV)
        p = subprocess.Popen([MUTIRAO, "run", "--fleet", path2], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=e,
                             cwd=TMP)
        producers.append(p)
        line = p.stdout.readline()
        running_id, queued = line.split()[1:3] if line.startswith("RUNNING") else (None, None)
        check(running_id, "no id from the running task: %r" % line)
        end, t = time.time() + 10, {}
        while time.time() < end:
            t = ops_json("task", running_id)
            if t["state"] == "running":
                break
            time.sleep(0.1)
        check(t.get("state") == "running" and t["worker"] in ids and t["attempts"] == 1
              and t["started_ms"] > 0, "a running task: %r" % t)

        # the registry is refreshed every 2 s: its rate then counts them all
        time.sleep(2.5)
        table = ops("pools")
        check(re.match(r"POOL +WORKERS +QUEUED +RUNNING +COMPLETED +FAILED +RETRIED +DEAD +RATE/MIN",
                       table), "pools header:\n" + table)
        # workers, queued, running, completed, failed, retried, dead, rate
        cols = row(table, pool)
        check(cols[1:8] == ["2", "0", "1", "4", "1", "1", "0"], "pools row: %r\n%s" % (cols, table))
        check(int(cols[8]) >= 6, "rate of 6 outcomes in the last minute: %r" % cols)
        cols = row(table, idle)
        check(cols[1:8] == ["0", "1", "0", "0", "0", "0", "0"], "idle pool row: %r" % cols)
        js = {p["pool"]: p for p in ops_json("pools")}
        check(set(js) == {pool, idle}, "pools --json: %r" % js)
        check(js[pool]["completed"] == 4 and js[pool]["failed"] == 1 and
              js[pool]["retried"] == 1 and js[pool]["submitted"] == 6 and
              js[pool]["workers"] == 2 and js[pool]["running"] == 1 and
              js[pool]["rate_per_min"] >= 6, "pools --json row: %r" % js[pool])

        st = ops("stats", pool)
        for pat in (r"(?m)^pool +%s$" % pool, r"(?m)^completed +4$",
                    r"(?m)^failed +1  \(dead-lettered 0\)$", r"(?m)^retried +1$",
                    r"(?m)^option workers 2$", r"(?m)^WORKER +RUNNING +SLOTS +RATE/MIN$"):
            check(re.search(pat, st), "stats: no %r in:\n%s" % (pat, st))
        sj = ops_json("stats", pool)
        check(sj["options"]["workers"] == 2 and sj["completed"] == 4 and
              {b["worker"] for b in sj["by_worker"]} <= set(ids) and sj["by_worker"],
              "stats --json: %r" % sj)

        t = ops_json("task", slow)
        check(t["state"] == "completed" and t["pool"] == pool and t["worker"] in ids and
              t["attempts"] == 1 and t["error"] is None, "completed task: %r" % t)
        check(0 < t["submitted_ms"] <= t["started_ms"] <= t["finished_ms"] and
              t["duration_ms"] >= 290, "completed task's times: %r" % t)
        text = ops("task", slow)
        for pat in (r"(?m)^state +completed$", r"(?m)^duration +0\.[3-9]\d\ds$",
                    r"(?m)^submitted +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"):
            check(re.search(pat, text), "task: no %r in:\n%s" % (pat, text))
        t = ops_json("task", bad)
        check(t["state"] == "failed" and t["attempts"] == 2 and "boom on purpose" in t["error"]
              and t["pool"] == pool, "failed task: %r" % t)
        check(re.search(r"(?m)^error +.*boom on purpose", ops("task", bad)), "failed task table")
        t = ops_json("task", queued)
        check(t["state"] == "queued" and t["worker"] is None, "queued task: %r" % t)

        wj = ops_json("workers")
        check(sorted(w["id"] for w in wj) == sorted(ids), "workers --json: %r" % wj)
        now = time.time() * 1000
        for w in wj:
            check(w["host"] == socket.gethostname() and w["version"] and w["serves"] == pool and
                  w["pid"] > 0 and now - w["last_seen_ms"] < 5000, "worker entry: %r" % w)
        check(sum(w["running"] for w in wj) == 1, "one task running: %r" % wj)
        wt = ops("workers")
        check(re.match(r"ID +HOST +POOLS +RUNNING +SLOTS +LAST SEEN +VERSION", wt), wt)
        for i in ids:
            check(row(wt, i)[1] == socket.gethostname(), "workers row of %s:\n%s" % (i, wt))
        p.kill()
        p.wait()

        # unknown pool or id: one line, exit 1
        one_line_error(["stats", "nosuch" + UNIQ], r"mutirao: pool not found: nosuch%s" % UNIQ)
        one_line_error(["task", "nosuch:1:ab"], r"mutirao: task not found: nosuch:1:ab")
        # --config FILE instead of the variables
        conf = os.path.join(TMP, "m.conf")
        with open(conf, "w") as f:
            f.write("redis.url = %s\n" % red.url)
        rc, out, err, _ = run([MUTIRAO, "--config", conf, "pools"],
                              env={"MUTIRAO_REDIS_URL": "redis://127.0.0.1:1"})
        check(rc == 1, "the variable overrides the file: exit %d" % rc)
        ENV.pop("MUTIRAO_REDIS_URL")
        check(row(ops("--config", conf, "pools"), pool), "--config before the command")
        check(row(ops("pools", "--config", conf), pool), "--config after it")
        ENV["MUTIRAO_REDIS_URL"] = red.url
        for w in WORKERS:
            check(w.stop() == 0, "worker %s exit status" % w.name)
        # an unreachable Redis: one line within the connect timeout
        red.kill()
        one_line_error(["pools"], r"mutirao: cannot reach Redis at redis://127\.0\.0\.1:%d within "
                       r"1500 ms \(redis\.url\)" % red.port,
                       env={"MUTIRAO_CONNECT_TIMEOUT_MS": "1500"}, max_s=3)
    finally:
        for p in producers + [w.p for w in WORKERS]:
            if p.poll() is None:
                p.kill()
                p.wait()
        red.kill()


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def case_fleet_up():
    if not shutil.which("java") or not shutil.which("redis-server"):
        skip("java or redis-server not installed")
    d = os.path.join(TMP, "fleet")
    env = {"MUTIRAO_FLEET_DIR": d}
    if os.environ.get("MUTIRAO_CACHE"):
        env["MUTIRAO_CACHE"] = os.environ["MUTIRAO_CACHE"]
    env["MUTIRAO_BIN"] = BIN
    up = os.path.join(ROOT, "scripts", "fleet-up.sh")
    down = os.path.join(ROOT, "scripts", "fleet-down.sh")
    pids = []
    try:
        rc, out, err, dt = run(["bash", up, "--workers", "2"], env=env, timeout=150)
        check(rc == 0, "fleet-up: exit %d\n%s%s" % (rc, out, err))
        exports = dict(re.findall(r"(?m)^export (MUTIRAO_KAFKA_BROKERS|MUTIRAO_REDIS_URL)=(\S+)$",
                                  out))
        check(len(exports) == 2 and len(out.splitlines()) == 2,
              "fleet-up prints the two variables:\n%s" % out)
        for name in os.listdir(d):
            if name.endswith(".pid"):
                pids.append(int(open(os.path.join(d, name)).read()))
        for name in os.listdir(os.path.join(d, "services")):
            if name.endswith(".pid"):
                pids.append(int(open(os.path.join(d, "services", name)).read()))
        check(len(pids) == 4 and all(alive(p) for p in pids), "4 processes: %r" % pids)
        ENV.update(exports)
        src = os.path.join(TMP, "one.lua")
        with open(src, "w") as f:
            f.write('local g = require("goroutine")\n'
                    'assert(g.pool_create("up%s"))\n'
                    'local id = g.pool_submit("up%s", function() return 40 + 2 end)\n'
                    'print("RESULT", g.await(id))\n'
                    'print("ID", id)\n'
                    % (UNIQ, UNIQ))
        rc, out, err, _ = run([MUTIRAO, "run", "--fleet", src], timeout=90)
        check(rc == 0 and "RESULT\ttrue\t42" in out, "a task on the fleet: exit %d\n%s%s" % (rc, out, err))
        end = time.time() + 10
        while time.time() < end and len(ops_json("workers")) < 2:
            time.sleep(0.2)
        check(len(ops_json("workers")) == 2, "two workers: %r" % ops_json("workers"))
        check(row(ops("pools"), "up" + UNIQ)[4] == "1", "the task in `mutirao pools`")
        # awaited, and its details not kept (task.info_ttl_s = 0): done
        tid = re.search(r"ID\t(\S+)", out).group(1)
        t = ops_json("task", tid)
        check(t["state"] == "done", "an awaited task on the default fleet: %r" % t)
        rc, out, err, _ = run(["bash", down], env=env, timeout=90)
        check(rc == 0, "fleet-down: exit %d\n%s%s" % (rc, out, err))
        left = [p for p in pids if alive(p)]
        check(not left, "processes left after fleet-down: %r" % left)
        ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
        mine = [l for l in ps.splitlines() if d in l]
        check(not mine, "processes of the fleet's directory left: %r" % mine)
        rc, out, err, _ = run(["bash", down], env=env, timeout=30)
        check(rc == 0, "fleet-down twice: exit %d\n%s" % (rc, err))
    finally:
        if any(alive(p) for p in pids):
            subprocess.run(["bash", down], env=dict(ENV, **env), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=90)
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)


CASES = {"commands": case_commands, "fleet_up": case_fleet_up}
if CASE not in CASES:
    print("unknown case", CASE)
    sys.exit(2)
CASES[CASE]()
shutil.rmtree(TMP, ignore_errors=True)
print("ok")
