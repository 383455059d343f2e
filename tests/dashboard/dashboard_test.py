#!/usr/bin/env python3
"""tests/dashboard/dashboard_test.py BINDIR CASE: `mutirao dashboard` against
the real Kafka and Redis of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS /
MUTIRAO_TEST_REDIS_URL) and real workers. Pools and the worker group are
unique to the run.

Both cases first make, in a pool of their own: a task that completes, one
that fails (its error holds markup: it must show as text), and a poison
task that kills its worker the first time it runs (max_deliveries = 1):
the next worker dead-letters it. Then:

  api       the JSON API with urllib: the pool's counts, the workers, the
            recent failure with its traceback, the dead letter; a POST with
            no token or a wrong one is refused (403), as every POST of a
            dashboard without a token; with the token the dead letter is
            retried and this time completes; bad requests (404, 405, 400,
            413, 431) and another Host (DNS rebinding: 403).
  cluster   api with Redis being a fresh local 3-master Redis Cluster
            (tests/integration/redis_cluster.py): the hash-tagged keys, the
            recent failures read from each producer's slot.
  chromium  the page in a headless Chromium driven over the DevTools
            protocol: without a token its buttons are disabled; with one it
            shows the pool with the right counts (read from the DOM), the
            failure's markup as text (no element made of it), and
            clicking the dead letter's retry button re-runs the task, which
            completes.

Without the services (or Chromium, python3-websocket) a case is skipped with
exit 77, or fails when CI is set.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import fleet_worker  # noqa: E402
import mutirao_test  # noqa: E402
import redis_cluster  # noqa: E402
from mutirao_test import free_port, http, skip  # noqa: E402

BIN, CASE = os.path.abspath(sys.argv[1]), sys.argv[2]
MUTIRAO = os.path.join(BIN, "mutirao")
BROKERS, REDIS = mutirao_test.services()

T = mutirao_test.Run(BIN, "mutirao-dash-")
TMP, UNIQ, WORKERS = T.tmp, T.uniq, T.workers
ENV = mutirao_test.env_without_mutirao()
ENV.update({"MUTIRAO_KAFKA_BROKERS": BROKERS, "MUTIRAO_REDIS_URL": REDIS,
            "MUTIRAO_WORKER_GROUP": "mutirao.workers.d" + UNIQ})
T.workers_env(ENV)
PROCS = []
TOKEN = "tok-" + UNIQ + "-secret"
MARKUP = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"


def dump_procs():
    for name, p, log in PROCS:
        print("---- %s log ----" % name)
        with open(log) as f:
            print(f.read()[-4000:])


T.dumps.append(dump_procs)
fail, check = T.fail, T.check


def mutirao_json(*args):
    p = subprocess.run([MUTIRAO] + list(args) + ["--json"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, env=ENV, timeout=30)
    check(p.returncode == 0, "mutirao %s: %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
    return json.loads(p.stdout)


def make_fleet(pool):
    """The pool's three tasks; a live worker serving it. Returns the ids
    (good, bad, poison)."""
    marker = os.path.join(TMP, "poison-ran")
    env = {"MUTIRAO_WORKER_ALLOW": "os.execute,io", "MUTIRAO_TASK_INFO_TTL_S": "600"}
    w = fleet_worker.Worker("d0", [pool], env)
    w.wait_for(r"consuming")
    src = """
local g = require("goroutine")
assert(g.pool_create(%(pool)r, { workers = 2, max_deliveries = 1 }))
local good = assert(g.pool_submit(%(pool)r, function() return "fine" end))
print("good", good, g.await(good))
local bad = assert(g.pool_submit(%(pool)r, function(m) error("boom: " .. m) end, %(markup)r))
print("bad", bad, g.await(bad))
-- runs alone (with max_deliveries = 1 a task beside it is dead-lettered too)
local poison = assert(g.pool_submit(%(pool)r, function(marker)
    local f = io.open(marker, "r")
    if not f then
        io.open(marker, "w"):close()
        os.execute("kill -KILL $PPID") -- its worker dies, as on a segfault
        g.sleep(10000)
    end
    return "second run"
end, %(marker)r))
print("poison", poison, g.await(poison))
""" % {"pool": pool, "markup": MARKUP, "marker": marker}
    path = os.path.join(TMP, "tasks.lua")
    with open(path, "w") as f:
        f.write(src)
    prod = subprocess.Popen([MUTIRAO, "run", "--fleet", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd=TMP)
    end = time.time() + 60
    while w.p.poll() is None and time.time() < end:
        time.sleep(0.05)
    check(w.p.poll() is not None, "the poison task did not kill its worker")
    fleet_worker.Worker("d1", [pool], env).wait_for(r"consuming")
    try:
        out, err = prod.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        prod.kill()
        out, err = prod.communicate()
        fail("the producer did not finish:\n%s\n%s" % (out, err))
    m = {k: re.search(r"^%s\t(\S+)\t(.*)$" % k, out, re.M) for k in ("good", "bad", "poison")}
    check(prod.returncode == 0 and all(m.values()), "producer: %d\n%s%s" % (prod.returncode, out, err))
    check(m["good"].group(2) == "true\tfine" and m["bad"].group(2).startswith("false\t")
          and "dead-lettered after 1 delivery" in m["poison"].group(2), "outcomes:\n" + out)
    return m["good"].group(1), m["bad"].group(1), m["poison"].group(1)


def start_dashboard(name, args, env=None):
    port = free_port()
    log = os.path.join(TMP, "dashboard-%s.log" % name)
    e = dict(ENV)
    e.update(env or {})
    p = subprocess.Popen([MUTIRAO, "dashboard", "--listen", "127.0.0.1:%d" % port] + args,
                         stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                         stderr=subprocess.STDOUT, env=e, cwd=TMP)
    PROCS.append((name, p, log))
    end = time.time() + 20
    while time.time() < end:
        with open(log) as f:
            if "serving http://127.0.0.1:%d/" % port in f.read():
                return p, port
        check(p.poll() is None, "the dashboard %s exited early" % name)
        time.sleep(0.05)
    fail("the dashboard %s did not start" % name)


def stop_dashboard(p):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("the dashboard did not stop on SIGTERM")
    check(rc == 0, "the dashboard's exit status: %d" % rc)


def api(port, path):
    st, hdrs, body = http(port, path)
    check(st == 200 and hdrs.get("Content-Type", "").startswith("application/json"),
          "GET %s: %s %s" % (path, st, body))
    return json.loads(body)


def pool_row(port, pool):
    rows = [p for p in api(port, "/api/pools") if p["pool"] == pool]
    check(len(rows) == 1, "no row of %s in /api/pools" % pool)
    return rows[0]


def await_completed(task, what):
    end, t = time.time() + 60, {}
    while time.time() < end:
        t = mutirao_json("task", task)
        if t["state"] == "completed":
            return t
        time.sleep(0.2)
    fail("%s: the retried task did not complete: %r" % (what, t))


# the pool's counts once made: good completed; bad and the dead letter failed
# (its workers: 1 or 2, the killed one stays in the registry for 15 s)
EXPECT = {"completed": 1, "failed": 2, "dead_lettered": 1, "retried": 0, "queued": 0,
          "running": 0}


def check_counts(row, expect, what):
    got = {k: row[k] for k in expect}
    check(got == expect, "%s: %r, expected %r" % (what, got, expect))


def case_api():
    pool = "dapi" + UNIQ
    good, bad, poison = make_fleet(pool)
    tokfile = os.path.join(TMP, "token")
    with open(tokfile, "w") as f:
        f.write(TOKEN + "\n")
    d, port = start_dashboard("rw", ["--token-file", tokfile])
    ro, roport = start_dashboard("ro", [])

    check(api(port, "/api/config") == {"can_write": True}, "can_write with a token")
    check(api(roport, "/api/config") == {"can_write": False}, "can_write without one")
    check_counts(pool_row(port, pool), EXPECT, "/api/pools")
    ws = [w for w in api(port, "/api/workers") if w["id"] == "d1-" + UNIQ]
    check(len(ws) == 1 and ws[0]["serves"] == pool, "/api/workers: %r" % ws)
    st = api(port, "/api/stats/" + pool)
    check(st["pool"] == pool and st["options"]["max_deliveries"] == 1, "/api/stats: %r" % st)
    fs = api(port, "/api/failures/" + pool)
    ids = [f["id"] for f in fs]
    check(ids == [poison, bad], "/api/failures, newest first: %r (bad %s, poison %s)" %
          (ids, bad, poison))
    check(MARKUP in fs[1]["error"] and "stack traceback" in fs[1]["error"]
          and fs[1]["state"] == "failed", "the failure's error and traceback: %r" % fs[1])
    dl = api(port, "/api/dlq/" + pool)
    check([x["id"] for x in dl] == [poison], "/api/dlq: %r" % dl)

    # state changes: the token, in the header, or 403
    path = "/api/dlq/%s/retry" % pool
    body = json.dumps({"id": poison})
    for hdrs, what in (({}, "no token"), ({"X-Mutirao-Token": "wrong-" + TOKEN}, "wrong token"),
                       ({"X-Mutirao-Token": TOKEN[:-1]}, "a prefix"),
                       ({"Cookie": "X-Mutirao-Token=" + TOKEN}, "a cookie")):
        st, _, text = http(port, path, "POST", body, hdrs)
        check(st == 403, "%s: %s %s" % (what, st, text))
    st, _, text = http(roport, path, "POST", body, {"X-Mutirao-Token": TOKEN})
    check(st == 403 and "no token" in text, "a read-only dashboard: %s %s" % (st, text))
    check([x["id"] for x in api(port, "/api/dlq/" + pool)] == [poison], "still dead-lettered")
    st, _, text = http(port, "/api/dlq/%s/drop" % pool, "POST", json.dumps({"id": "x:1:ab"}),
                       {"X-Mutirao-Token": TOKEN})
    check(st == 404, "drop of an unknown id: %s %s" % (st, text))
    st, _, text = http(port, path, "POST", "{}", {"X-Mutirao-Token": TOKEN})
    check(st == 400, "no id: %s %s" % (st, text))
    # an unknown pool: 404 with the reason, without a command-line prefix
    for what in ("stats", "dlq"):
        st, _, text = http(port, "/api/%s/nopool%s" % (what, UNIQ))
        check(st == 404 and json.loads(text) == {"error": "pool not found: nopool" + UNIQ},
              "/api/%s of an unknown pool: %s %s" % (what, st, text))

    st, _, text = http(port, path, "POST", body, {"X-Mutirao-Token": TOKEN})
    check(st == 200 and json.loads(text) == {"ok": True, "id": poison, "action": "retried"},
          "retry: %s %s" % (st, text))
    t = await_completed(poison, "api")
    check(t["pool"] == pool, "the retried task: %r" % t)
    check(api(port, "/api/dlq/" + pool) == [], "no dead letter left")
    # (the counters count events: failed and dead_lettered stay)
    check_counts(pool_row(port, pool), dict(EXPECT, completed=2),
                 "/api/pools after the retry")

    # bad requests
    st, hdrs, text = http(port, "/")
    check(st == 200 and hdrs["Content-Type"].startswith("text/html") and "app.js" in text
          and "default-src 'self'" in hdrs.get("Content-Security-Policy", ""), "the page")
    check(http(port, "/app.js")[0] == 200 and http(port, "/app.css")[0] == 200, "assets")
    check("innerHTML" not in http(port, "/app.js")[2], "the script never sets innerHTML")
    check(http(port, "/nope")[0] == 404, "404")
    check(http(port, "/api/stats/nosuch" + UNIQ)[0] == 404, "unknown pool: 404")
    check(http(port, "/api/stats/bad%20name")[0] == 404, "invalid pool name: 404")
    check(http(port, "/api/pools", "DELETE")[0] == 405, "DELETE: 405")
    check(http(port, path, "GET")[0] == 405, "GET of an action: 405")
    check(http(port, path, "POST", "x" * 10000, {"X-Mutirao-Token": TOKEN})[0] == 413,
          "a body over 4 KB: 413")
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/pools HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    check(s.recv(100).startswith(b"HTTP/1.1 431"), "a header over 8 KB: 431")
    s.close()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"garbage\r\n\r\n")
    check(s.recv(100).startswith(b"HTTP/1.1 400"), "garbage: 400")
    s.close()
    st, _, text = http(port, "/api/pools", headers={"Host": "evil.example:%d" % port})
    check(st == 403 and "Host" in text, "another Host (DNS rebinding): %s %s" % (st, text))
    check(http(port, "/api/config", headers={"Host": "localhost:%d" % port})[0] == 200,
          "Host localhost:PORT")
    check(api(port, "/api/config")["can_write"], "still serving")
    stop_dashboard(d)
    stop_dashboard(ro)

    # a bad token file, a port in use: one line, no server
    short = os.path.join(TMP, "short")
    with open(short, "w") as f:
        f.write("abc\n")
    p = subprocess.run([MUTIRAO, "dashboard", "--token-file", short], capture_output=True,
                       text=True, env=ENV, timeout=20)
    check(p.returncode == 2 and "8 to 256 characters" in p.stderr, "short token: %r" % p.stderr)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p = subprocess.run([MUTIRAO, "dashboard", "--listen", "127.0.0.1:%d" % busy.getsockname()[1]],
                       capture_output=True, text=True, env=ENV, timeout=20)
    check(p.returncode == 1 and "address already in use" in p.stderr, "port in use: %r" % p.stderr)
    busy.close()
    # an address that is not one: a usage error, before any connection
    for bad in ("nonsense", "127.0.0.1:99999", "[::1"):
        p = subprocess.run([MUTIRAO, "dashboard", "--listen", bad], capture_output=True,
                           text=True, env=ENV, timeout=20)
        check(p.returncode == 2 and p.stderr.count("\n") == 1 and "expected" in p.stderr,
              "--listen %s: %d %r" % (bad, p.returncode, p.stderr))


class Chromium:
    """A headless Chromium and one page of it, over the DevTools protocol."""

    def __init__(self, exe):
        import websocket
        self.dir = tempfile.mkdtemp(prefix="chromium-", dir=TMP)
        self.log = os.path.join(TMP, "chromium.log")
        self.p = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--user-data-dir=" + self.dir,
             "--remote-debugging-port=0", "--remote-allow-origins=*", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        PROCS.append(("chromium", self.p, self.log))
        port, end = None, time.time() + 30
        while port is None and time.time() < end:
            try:
                with open(os.path.join(self.dir, "DevToolsActivePort")) as f:
                    port = int(f.readline())
            except (OSError, ValueError):
                check(self.p.poll() is None, "chromium exited")
                time.sleep(0.1)
        check(port, "chromium wrote no DevToolsActivePort")
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        check(pages, "no page target")
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30)
        self.n = 0

    def call(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                check("error" not in m, "%s: %r" % (method, m))
                return m["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        check("exceptionDetails" not in r, "%s: %r" % (expr, r))
        return r["result"].get("value")

    def wait(self, expr, what, timeout=30):
        end = time.time() + timeout
        v = None
        while time.time() < end:
            v = self.eval("!!(%s)" % expr)
            if v:
                return v
            time.sleep(0.2)
        fail("the page: %s (%s) not true within %d s" % (what, expr, timeout))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


def case_chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        skip("chromium not installed")
    try:
        import websocket  # noqa: F401
    except ImportError:
        # Debian's python3-websocket, from an interpreter of another prefix
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import websocket  # noqa: F401
        except ImportError:
            skip("python3-websocket not installed")
    pool = "dweb" + UNIQ
    good, bad, poison = make_fleet(pool)
    d, port = start_dashboard("web", [], {"MUTIRAO_DASHBOARD_TOKEN": TOKEN})
    ro, roport = start_dashboard("ro", [])
    c = Chromium(exe)
    try:
        c.call("Page.enable")
        row = "document.querySelector('#pools tr[data-pool=%s]')" % json.dumps(pool)
        btn = "document.querySelector('#dlq tr[data-id=%s] button.retry')" % json.dumps(poison)
        # without a token: the buttons are disabled
        c.call("Page.navigate", url="http://127.0.0.1:%d/" % roport)
        c.wait(row, "the pool's row (read-only)")
        c.eval("%s.click()" % row)
        c.wait(btn, "the dead letter's retry button (read-only)")
        check(c.eval("%s.disabled" % btn) is True, "read-only: the retry button is enabled")
        stop_dashboard(ro)
        c.call("Page.navigate", url="http://127.0.0.1:%d/" % port)
        c.wait("location.port === '%d' && document.body && document.body.dataset.loaded === '1'"
               " && %s" % (port, row), "the pool's row")
        cells = c.eval("Object.fromEntries([...%s.querySelectorAll('td[data-field]')]"
                       ".map(td => [td.dataset.field, Number(td.textContent)]))" % row)
        check_counts(cells, EXPECT, "the pool's row in the page")
        c.wait("[...document.querySelectorAll('#workers tr')].some(tr => tr.dataset.worker"
               " === %s)" % json.dumps("d1-" + UNIQ), "the worker's row")
        c.eval("%s.click()" % row)
        fail_box = "document.querySelector('#failures div[data-id=%s]')" % json.dumps(bad)
        c.wait(fail_box, "the failure")
        text = c.eval("%s.textContent" % fail_box)
        check(MARKUP in text and "stack traceback" in text, "the failure's text: %r" % text)
        check(c.eval("document.querySelectorAll('#failures img, #failures b').length") == 0
              and c.eval("document.title") == "mutirao dashboard",
              "the failure's markup made elements")
        c.wait(btn, "the dead letter's retry button")
        check(c.eval("%s.disabled" % btn) is False, "the retry button is disabled")
        # a wrong token: refused, the task stays a dead letter
        c.eval("document.getElementById('token').value = 'wrong-token'")
        c.eval("%s.click()" % btn)
        c.wait("/403|wrong/.test(document.getElementById('message').textContent)",
               "the refusal shown")
        check([x["id"] for x in mutirao_json("dlq", "list", pool)] == [poison],
              "still a dead letter")
        c.eval("document.getElementById('token').value = %s" % json.dumps(TOKEN))
        c.eval("%s.click()" % btn)
        c.wait("document.getElementById('message').textContent === %s" %
               json.dumps("retried " + poison), "the retry's message")
        await_completed(poison, "chromium")
        c.wait("!document.querySelector('#dlq tr[data-id=%s]')" % json.dumps(poison),
               "the dead letter gone from the page")
        c.wait("%s.querySelector('td[data-field=completed]').textContent === '2'" % row,
               "completed 2 in the page")
    finally:
        c.close()
    stop_dashboard(d)


CLUSTER = []


def case_cluster():
    if not redis_cluster.available():
        skip("redis-server / redis-cli not installed")
    c = redis_cluster.RedisCluster(TMP)
    CLUSTER.append(c)
    c.start()
    ENV["MUTIRAO_REDIS_URL"] = "redis+cluster://" + ",".join("127.0.0.1:%d" % p for p in c.ports)
    case_api()


try:
    {"api": case_api, "cluster": case_cluster, "chromium": case_chromium}[CASE]()
finally:
    for c in CLUSTER:
        c.stop()
    for w in WORKERS:
        if w.p.poll() is None:
            w.stop()
    for name, p, log in PROCS:
        if p.poll() is None:
            p.kill()
shutil.rmtree(TMP, ignore_errors=True)
print("ok")
