#!/usr/bin/env python3
"""tests/integration/metrics_test.py BINDIR CASE: a worker's Prometheus
endpoint (--metrics-addr, worker/metrics_http.c) against the real Kafka and
Redis of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS /
MUTIRAO_TEST_REDIS_URL; without them the case is skipped with exit 77, or
fails when CI is set). Pools and the worker group are unique to the run.

Cases:
  values    tasks that succeed, fail, time out and retry; a scrape with
            urllib gives their counts, the gauges, the duration histogram,
            the Kafka lag, the Redis round trips and the process figures;
            `promtool check metrics` accepts the text; 404, 405, HEAD, 400;
            a port in use and a bad address are startup errors.
  dead_letter  a task that kills its worker (max_deliveries = 1): the
            restarted worker dead-letters it and counts it.
  attack    while the worker runs a stream of tasks: garbage requests, an
            oversized header, slow clients (slowloris), clients gone
            mid-answer and 200 parallel scrapes; the tasks all complete, the
            slow clients are dropped after the read timeout and the next
            scrape answers.
  valgrind  the attack with the worker under valgrind: no invalid read or
            write (leaks are not counted).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import fleet_worker  # noqa: E402
import mutirao_test  # noqa: E402
from mutirao_test import free_port  # noqa: E402

BIN, CASE = os.path.abspath(sys.argv[1]), sys.argv[2]
BROKERS, REDIS = mutirao_test.services()

T = mutirao_test.Run(BIN, "mutirao-metrics-")
TMP, UNIQ = T.tmp, T.uniq
ENV = mutirao_test.fleet_env(BROKERS, REDIS, "mutirao.workers.m" + UNIQ,
                             drop=("MUTIRAO_WORKER_METRICS_ADDR",))
T.workers_env(ENV)
TIMEOUT_S = 10  # METRICS_HTTP_TIMEOUT_MS
fail, check, finish = T.fail, T.check, T.finish
Worker = fleet_worker.Worker


def run_lua(src, timeout=90, wait=True):
    p = T.start_lua(src)
    if not wait:
        return p
    return finish(p, timeout)


def scrape(port, path="/metrics", method="GET", timeout=5):
    """(status, content type, body) of one request with urllib."""
    status, headers, body = mutirao_test.http(port, path, method, timeout=timeout)
    return status, headers.get("Content-Type"), body


def samples(text):
    """{'name{labels}': value} of an exposition text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?(?:\{.*\})?) (\S+)$", line)
        check(m, "not a sample line: %r" % line)
        out[m.group(1)] = float(m.group(2))
    return out


def promtool_check(text):
    tool = shutil.which("promtool")
    check(tool, "promtool not found (scripts/deps.sh installs it into /usr/local/bin)")
    p = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0, "promtool check metrics: exit %d\n%s%s\n---\n%s" %
          (p.returncode, p.stdout, p.stderr, text))


def raw(port, data, timeout=5, read=True):
    """Sends data on a new connection; the answer's bytes (until the server
    closes) or b'' when it closed without one."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass  # the server may close first (an oversized header)
    got = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
        except ConnectionResetError:
            pass
    s.close()
    return got


# ---------------------------------------------------------------------------


def case_values():
    pool, rpool = "mv" + UNIQ, "mvr" + UNIQ
    port = free_port()
    w = Worker("mv", [pool, rpool], {"MUTIRAO_WORKER_METRICS_ADDR": "127.0.0.1:%d" % port})
    w.wait_for(r"metrics on http://127\.0\.0\.1:%d/metrics" % port)
    w.wait_for(r"consuming")
    # before any task: the process figures and the Redis round trips, no pool yet
    st, ctype, text = scrape(port)
    check(st == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8",
          "first scrape: %s %s" % (st, ctype))
    promtool_check(text)
    rc, out, err = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 4, timeout = 300 }))
assert(g.pool_create(%(rpool)r, { workers = 2, retries = 1,
                                 backoff = { initial = 100, max = 100, jitter = 0 } }))
local ids = {}
for i = 1, 10 do ids[#ids + 1] = assert(g.pool_submit(%(pool)r, function(x) g.sleep(30) return x end, i)) end
for i = 1, 3 do ids[#ids + 1] = assert(g.pool_submit(%(pool)r, function() error("boom") end)) end
ids[#ids + 1] = assert(g.pool_submit(%(pool)r, function() while true do end end))
ids[#ids + 1] = assert(g.pool_submit(%(rpool)r, function() error("always") end))
ids[#ids + 1] = assert(g.pool_submit(%(rpool)r, function() return "r" end))
local oks = 0
for _, id in ipairs(ids) do if g.await(id) then oks = oks + 1 end end
print("oks", oks)
""" % {"pool": pool, "rpool": rpool})
    check(rc == 0 and "oks\t11" in out, "tasks: %d\n%s%s" % (rc, out, err))
    time.sleep(1.5)  # a commit and a PING or two
    st, ctype, text = scrape(port)
    check(st == 200, "scrape: %s" % st)
    promtool_check(text)
    s = samples(text)

    def v(name, **labels):
        key = name + ("{%s}" % ",".join('%s="%s"' % kv for kv in labels.items()) if labels else "")
        check(key in s, "%s missing from:\n%s" % (key, text))
        return s[key]

    check(v("mutirao_tasks_completed_total", pool=pool) == 10, "completed:\n" + text)
    check(v("mutirao_tasks_failed_total", pool=pool) == 4, "failed:\n" + text)
    check(v("mutirao_tasks_timed_out_total", pool=pool) == 1, "timed out:\n" + text)
    check(v("mutirao_tasks_retried_total", pool=pool) == 0, "retried:\n" + text)
    check(v("mutirao_tasks_dead_lettered_total", pool=pool) == 0, "dead-lettered:\n" + text)
    check(v("mutirao_tasks_completed_total", pool=rpool) == 1, "completed (retries):\n" + text)
    check(v("mutirao_tasks_failed_total", pool=rpool) == 1, "failed (retries):\n" + text)
    check(v("mutirao_tasks_retried_total", pool=rpool) == 1, "retried (retries):\n" + text)
    check(v("mutirao_tasks_running", pool=pool) == 0, "running:\n" + text)
    check(v("mutirao_pool_slots", pool=pool) == 4 and v("mutirao_pool_slots", pool=rpool) == 2,
          "slots:\n" + text)
    # every attempt that ran has a duration: 14, and 3 in the retry pool
    check(v("mutirao_task_duration_seconds_count", pool=pool) == 14, "durations:\n" + text)
    check(v("mutirao_task_duration_seconds_count", pool=rpool) == 3, "durations:\n" + text)
    check(v("mutirao_task_duration_seconds_bucket", pool=pool, le="+Inf") == 14, text)
    check(v("mutirao_task_duration_seconds_bucket", pool=pool, le="0.01") <= 3 and
          v("mutirao_task_duration_seconds_bucket", pool=pool, le="0.25") == 13, "buckets:\n" + text)
    total = v("mutirao_task_duration_seconds_sum", pool=pool)
    check(0.3 + 10 * 0.03 <= total < 10, "duration sum %s" % total)
    lags = {k: x for k, x in s.items() if k.startswith("mutirao_kafka_consumer_lag{pool=\"%s\"" % pool)}
    check(lags and all(x == 0 for x in lags.values()), "lag after the tasks:\n" + text)
    check(v("mutirao_redis_rtt_seconds_count") >= 1 and 0 < v("mutirao_redis_last_rtt_seconds") < 1,
          "redis rtt:\n" + text)
    check(v("process_resident_memory_bytes") > 1e6 and v("process_open_fds") > 3 and
          v("process_cpu_seconds_total") > 0, "process figures:\n" + text)
    check(abs(v("process_start_time_seconds") - (time.time() - 10)) < 60, "start time:\n" + text)
    check(re.search(r'^mutirao_worker_info\{worker="mv-%s",version="[^"]+"\} 1$' % UNIQ, text, re.M),
          "worker info:\n" + text)

    # other paths, methods, HEAD, a malformed request
    check(scrape(port, "/")[0] == 404 and scrape(port, "/metricsx")[0] == 404, "404")
    st, _, body = scrape(port, "/metrics?x=1")
    check(st == 200 and "mutirao_tasks_completed_total" in body, "query string: %s" % st)
    check(scrape(port, method="POST")[0] == 405 and scrape(port, method="DELETE")[0] == 405, "405")
    st, ctype, body = scrape(port, method="HEAD")
    check(st == 200 and body == "" and ctype.startswith("text/plain; version=0.0.4"), "HEAD %s" % st)
    ans = raw(port, b"garbage\r\n\r\n")
    check(ans.startswith(b"HTTP/1.1 400 "), "garbage: %r" % ans[:80])

    # a port in use (this one) and a bad address: startup errors, exit 2
    for args, want in ((["--metrics-addr", str(port)],
                        "cannot listen on 127.0.0.1:%d for /metrics: address already in use" % port),
                       (["--metrics-addr", "nowhere:80"],
                        "--metrics-addr: worker.metrics_addr: PORT, HOST:PORT or [IPV6]:PORT expected")):
        t0 = time.time()
        p = subprocess.run([os.path.join(BIN, "mutirao-worker"), "--pools", pool] + args,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, env=ENV,
                           cwd=TMP, timeout=30)
        check(p.returncode == 2 and want in p.stderr and time.time() - t0 < 10,
              "%s: exit %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
    check(w.p.poll() is None, "the worker died")
    check(w.stop() == 0, "worker exit status")


def case_dead_letter():
    """A task that kills its worker (max_deliveries = 1): the restarted
    worker, on the same metrics port, dead-letters it and counts it."""
    pool = "md" + UNIQ
    port = free_port()
    env = {"MUTIRAO_WORKER_METRICS_ADDR": str(port), "MUTIRAO_WORKER_ALLOW": "os.execute"}
    w = Worker("md0", [pool], env)
    w.wait_for(r"consuming")
    prod = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 2, max_deliveries = 1 }))
-- recorded before the poison runs (a task running beside it would be
-- dead-lettered with it: max_deliveries = 1)
print("good", g.await(assert(g.pool_submit(%(pool)r, function() return "fine" end))))
local bad = assert(g.pool_submit(%(pool)r, function()
    os.execute("kill -KILL $PPID") -- its worker dies, as on a segfault
    g.sleep(10000)
end))
print("bad", g.await(bad))
""" % {"pool": pool}, wait=False)
    end = time.time() + 60
    while w.p.poll() is None and time.time() < end:
        time.sleep(0.05)
    check(w.p.poll() is not None, "the poison task did not kill its worker")
    w2 = Worker("md1", [pool], env)
    rc, out, err = finish(prod, 90)
    check(rc == 0 and re.search(r"^bad\tfalse\tdead-lettered after 1 delivery", out, re.M)
          and "good\ttrue\tfine" in out, "producer: %d\n%s%s" % (rc, out, err))
    time.sleep(0.5)
    st, _, text = scrape(port)
    check(st == 200, "scrape: %s" % st)
    promtool_check(text)
    s = samples(text)
    got = {k: s.get('mutirao_tasks_%s_total{pool="%s"}' % (k, pool))
           for k in ("dead_lettered", "failed", "completed", "timed_out", "retried")}
    # the good task ran on the first worker: counted there
    check(got["dead_lettered"] == 1 and got["failed"] == 1 and got["completed"] == 0
          and got["timed_out"] == 0 and got["retried"] == 0, "after the dead letter: %s\n%s" %
          (got, text))
    check(w2.stop() == 0, "worker exit status")


def attack(prefix=None, slack=1.0):
    pool = "ma" + UNIQ
    port = free_port()
    w = Worker("ma", [pool], {"MUTIRAO_WORKER_METRICS_ADDR": str(port)}, prefix=prefix)
    w.wait_for(r"metrics on http://127\.0\.0\.1:%d/metrics" % port, 120)
    w.wait_for(r"consuming", 120)
    n = 300
    # a stream of tasks for the attack's whole length (about 4 s)
    prod = run_lua("""
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 8 }))
local ids = {}
for i = 1, %(n)d do
  ids[i] = assert(g.pool_submit(%(pool)r, function(x) g.sleep(5) return x end, i))
  g.sleep(12)
end
local oks = 0
for i = 1, %(n)d do if g.await(ids[i]) then oks = oks + 1 end end
print("oks", oks)
""" % {"pool": pool, "n": n}, wait=False)
    # slow clients: half a request line, then nothing (slowloris); one that
    # sends a byte a second; clients that never read their answer
    slow = []
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /metr")
        slow.append(s)
    dribble = socket.create_connection(("127.0.0.1", port), timeout=5)
    t_slow = time.time()
    # garbage, binary junk, an oversized header (8 KB and more), a request
    # line without a version
    for junk in (b"\x00\xff\xfe garbage \x01\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9\r\n\r\n",
                 b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200) + b"\n\n"):
        ans = raw(port, junk)
        check(ans.startswith(b"HTTP/1.1 400 "), "junk %r: %r" % (junk[:20], ans[:80]))
    big = b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    ans = raw(port, big)
    check(ans.startswith(b"HTTP/1.1 431 ") or ans == b"", "oversized header: %r" % ans[:80])
    ans = raw(port, b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"b" * 9000)  # and no end
    check(ans.startswith(b"HTTP/1.1 431 ") or ans == b"", "oversized header: %r" % ans[:80])
    # clients gone mid-answer: a request, then a reset before reading
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
    # 200 parallel scrapes with urllib (and the slow ones still open)
    results = [None] * 200
    go = threading.Event()

    def one(i):
        go.wait()
        try:
            results[i] = scrape(port, timeout=30 * slack)
        except Exception as e:  # noqa: BLE001 (reported below)
            results[i] = (repr(e), None, "")
    ts = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in ts:
        t.start()
    go.set()
    for i, t in enumerate(ts):
        t.join(60 * slack)
        if i % 10 == 0:
            try:
                dribble.sendall(b"G")
            except OSError:
                pass
    bad = [r[0] for r in results if not r or r[0] != 200 or "mutirao_tasks_completed_total" not in r[2]]
    check(not bad, "parallel scrapes: %d failed, e.g. %s" % (len(bad), bad[:3]))
    # the next scrape answers at once while the slow clients still hang on
    t0 = time.time()
    st, _, text = scrape(port)
    check(st == 200 and time.time() - t0 < 2 * slack, "scrape beside slow clients: %s" % st)
    rc, out, err = finish(prod, 120 * slack)
    check(rc == 0 and "oks\t%d" % n in out, "tasks during the attack: %d\n%s%s" % (rc, out, err))
    # the slow clients are dropped once the read timeout is over
    left = t_slow + TIMEOUT_S + 3 * slack - time.time()
    if left > 0:
        time.sleep(left)
    for s in slow + [dribble]:
        s.settimeout(5)
        try:
            b = s.recv(100)
        except (ConnectionResetError, socket.timeout) as e:
            b = repr(e).encode()
        check(b == b"", "a slow client was not dropped after %d s: %r" % (TIMEOUT_S, b))
        s.close()
    time.sleep(1.5)
    st, _, text = scrape(port)
    check(st == 200, "scrape after the attack: %s" % st)
    promtool_check(text)
    s = samples(text)
    check(s.get('mutirao_tasks_completed_total{pool="%s"}' % pool) == n, "completed after the attack:\n" + text)
    check(s.get("process_open_fds", 999) < 60, "descriptors left open:\n" + text)
    check(w.p.poll() is None, "the worker died")
    return w


def case_attack():
    w = attack()
    check(w.stop() == 0, "worker exit status")


def case_valgrind():
    vg = os.environ.get("MUTIRAO_VALGRIND") or "valgrind"
    log = os.path.join(TMP, "valgrind-worker.log")
    w = attack([vg, "--error-exitcode=99", "--errors-for-leak-kinds=none", "--log-file=" + log], 3.0)
    code = w.stop()
    nerr = mutirao_test.valgrind_errors(log)
    if code != 0 or nerr != 0:
        with open(log) as f:
            print(f.read()[-12000:])
    check(code == 0 and nerr == 0, "worker under valgrind: exit %d, %s errors" % (code, nerr))


CASES = {"values": case_values, "dead_letter": case_dead_letter, "attack": case_attack,
         "valgrind": case_valgrind}
try:
    CASES[CASE]()
finally:
    T.kill_workers()
shutil.rmtree(TMP, ignore_errors=True)
print("ok:", CASE)
