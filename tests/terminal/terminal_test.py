#!/usr/bin/env python3
"""tests/terminal/terminal_test.py BINDIR CASE: what `mutirao` draws on a real
terminal, driven in tmux (a private server per test: tmux -S SOCKET) and read
back with `tmux capture-pane -p`.

  top            `mutirao top` against a fleet (the shared Kafka of
                 tests/services.sh, a redis-server of the test's own, one
                 mutirao-worker): the pool and worker rows and their numbers
                 (p50/p99 from the workers' duration buckets), `s` changes the
                 sort, `r` reverses it, `q` exits 0 with the terminal's
                 settings (stty -g) as before and the alternate screen left;
                 a resize redraws to the new width;
                 SIGTERM restores them too (exit 143); stdout not a terminal:
                 plain snapshots, one a second, no escape sequences; --once.
  top_errors     an unreachable Redis: one line, exit 1, within the connect
                 timeout, nothing drawn; bad usage: exit 2.
  progress       `mutirao run` of a task file whose pool_wait lasts ~2.5 s: a
                 progress line per pool while it waits, gone at the end, the
                 summary printed; a WaitGroup's wait too.
  progress_plain the same with stderr a pipe, and with --log-format json on the
                 terminal: no progress line.
  progress_misuse  misused pool_wait, pool_create, wg.wait: the same errors
                 (the caller's line, the function's name) on a terminal.

Without tmux (or for `top`: the services, redis-server) a case is skipped with
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
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import fleet_worker  # noqa: E402
import mutirao_test  # noqa: E402
import private_redis  # noqa: E402

BIN, CASE = os.path.abspath(sys.argv[1]), sys.argv[2]
MUTIRAO = os.path.join(BIN, "mutirao")
T = mutirao_test.Run(BIN, "mutirao-term-")
TMP, UNIQ, WORKERS = T.tmp, T.uniq, T.workers
SOCK = os.path.join(TMP, "tmux.sock")
ENV = mutirao_test.env_without_mutirao()
ENV["MUTIRAO_WORKER_GROUP"] = "mutirao.workers.term" + UNIQ
T.workers_env(ENV)
ESC = "\x1b"
skip, fail, check, row = T.skip, T.fail, T.check, T.row


def tmux(*args, check_rc=True):
    p = subprocess.run(["tmux", "-S", SOCK] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    if check_rc and p.returncode != 0:
        fail("tmux %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def session(name, script, env):
    """A detached 160x40 session running `sh SCRIPT` (env exported in it)."""
    path = os.path.join(TMP, name + ".sh")
    with open(path, "w") as f:
        for k, v in sorted(env.items()):
            if k.startswith("MUTIRAO_"):
                f.write("export %s='%s'\n" % (k, v))
        f.write("cd '%s'\n%s\n" % (TMP, script))
    tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "40", "sh " + path)


def screen(name):
    return tmux("capture-pane", "-p", "-t", name)


def wait_screen(name, pred, what, timeout=15):
    end, text = time.time() + timeout, ""
    while time.time() < end:
        text = screen(name)
        if pred(text):
            return text
        time.sleep(0.1)
    fail("%s: not on the screen within %d s:\n%s" % (what, timeout, text))


def pane_child(name):
    """The pid of the command the pane's shell runs."""
    shell = tmux("display-message", "-p", "-t", name, "#{pane_pid}").strip()
    with open("/proc/%s/task/%s/children" % (shell, shell)) as f:
        kids = f.read().split()
    check(len(kids) == 1, "the pane's shell has children %r" % kids)
    return int(kids[0])


def need_tmux():
    if not shutil.which("tmux"):
        skip("tmux not installed (scripts/deps.sh installs it)")


def order(text, names):
    pos = {n: i for i, line in enumerate(text.splitlines()) for n in names
           if line.split()[:1] == [n]}
    check(len(pos) == len(names), "rows %r not all in:\n%s" % (names, text))
    return sorted(names, key=lambda n: pos[n])


def ms(s):
    m = re.fullmatch(r"(\d+)ms|(\d+\.\d)s", s)
    check(m, "not a duration: %r" % s)
    return int(m.group(1)) if m.group(1) else float(m.group(2)) * 1000


# ---- top ----

def check_pool_rows(text, served, idle, wid):
    # POOL WORKERS QUEUED RUNNING DONE/S RATE/MIN COMPLETED FAILED DEAD P50 P99
    cols = row(text, served)
    check(cols[1:4] == ["1", "0", "0"] and cols[5:9] == ["7", "6", "1", "0"],
          "the served pool's row: %r\n%s" % (cols, text))
    p50, p99 = ms(cols[9]), ms(cols[10])
    # 6 tasks of ~200 ms at once and one that fails at once: the median in
    # the (100 ms, 250 ms] bucket, the p99 there or in the next one (the
    # duration runs to the outcome's record)
    check(100 <= p50 <= 250 and 100 <= p99 <= 500 and p50 <= p99,
          "p50/p99 of tasks of 200 ms: %r" % cols)
    cols = row(text, idle)
    check(cols[1:4] == ["0", "3", "0"] and cols[5:11] == ["0", "0", "0", "0", "-", "-"],
          "the idle pool's row: %r\n%s" % (cols, text))
    # WORKER HOST POOLS RUNNING SLOTS LAST SEEN
    cols = row(text, wid)
    check(cols[1] == socket.gethostname() and cols[2] == served and cols[3:5] == ["0", "8"] and
          re.fullmatch(r"\d+s", cols[5]), "the worker's row: %r\n%s" % (cols, text))


def case_top():
    need_tmux()
    brokers = os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS")
    if not brokers:
        skip("MUTIRAO_TEST_KAFKA_BROKERS not set")
    if not private_redis.available():
        skip("redis-server not installed")
    red = private_redis.PrivateRedis(TMP, False)
    red.start()
    ENV.update({"MUTIRAO_KAFKA_BROKERS": brokers, "MUTIRAO_REDIS_URL": red.url})
    served, idle = "topa" + UNIQ, "topb" + UNIQ
    try:
        w = fleet_worker.Worker("a", [served])
        w.wait_for("consuming")
        wid = "a-" + UNIQ
        # 6 tasks of 200 ms and one failure on the served pool, 3 tasks
        # queued on a pool no worker serves
        src = """
local g = require("goroutine")
assert(g.pool_create(%(served)r, {workers = 8}))
assert(g.pool_create(%(idle)r, {workers = 1}))
local ids = {}
for i = 1, 6 do ids[i] = g.pool_submit(%(served)r, function() g.sleep(200) return 1 end) end
local bad = g.pool_submit(%(served)r, function() error("on purpose") end)
for i = 1, 6 do assert(g.await(ids[i])) end
assert(not g.await(bad))
print("DONE")
""" % {"served": served, "idle": idle}
        idle_src = """
local g = require("goroutine")
for i = 1, 3 do g.pool_submit(%(idle)r, function() return 1 end) end
print("QUEUED")
io.stdout:flush()
""" % {"idle": idle}
        path = os.path.join(TMP, "tasks.lua")
        with open(path, "w") as f:
            f.write(src)
        p = subprocess.run([MUTIRAO, "run", "--fleet", path], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, env=ENV, cwd=TMP, timeout=90)
        check(p.returncode == 0 and "DONE" in p.stdout, "the tasks: exit %d\n%s%s" %
              (p.returncode, p.stdout, p.stderr))
        # the queued tasks' producer waits for them: killed once they are sent
        path = os.path.join(TMP, "idle.lua")
        with open(path, "w") as f:
            f.write(idle_src)
        q = subprocess.Popen([MUTIRAO, "run", "--fleet", path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
                             cwd=TMP)
        line = q.stdout.readline()
        check(line == "QUEUED\n", "the queued tasks: %r" % line)
        end, queued = time.time() + 15, None
        while time.time() < end:
            r = subprocess.run([MUTIRAO, "stats", idle, "--json"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, env=ENV, cwd=TMP, timeout=20)
            queued = json.loads(r.stdout)["queued"] if r.returncode == 0 else r.stderr
            if queued == 3:
                break
            time.sleep(0.1)
        q.kill()
        q.wait()
        check(queued == 3, "the 3 queued tasks not counted: %r" % queued)
        time.sleep(2.5)  # the registry entry is written every 2 s

        # the live view: stty's settings before and after, the exit status
        session("top", "stty -g > stty.before; %s top; echo \"EXIT=$?\"; stty -g > stty.after; "
                "sleep 600" % MUTIRAO, ENV)
        text = wait_screen("top", lambda t: re.search(r"(?m)^%s " % wid, t), "the worker row")
        check(re.search(r"(?m)^mutirao top .* pools 2 +workers 1 .* sort POOL$", text),
              "the header line:\n" + text)
        check(re.search(r"(?m)^POOL\* +WORKERS +QUEUED +RUNNING +DONE/S +RATE/MIN +COMPLETED "
                        r"+FAILED +DEAD +P50 +P99$", text), "the pools' header:\n" + text)
        check_pool_rows(text, served, idle, wid)
        check(order(text, [served, idle]) == [served, idle], "sorted by name:\n" + text)
        # a refresh a second: the LAST SEEN of the worker moves on
        first = row(text, wid)[5]
        wait_screen("top", lambda t: row(t, wid)[5] != first, "a refresh")
        # s: sorted by QUEUED, largest first
        tmux("send-keys", "-t", "top", "s")
        text = wait_screen("top", lambda t: "sort QUEUED" in t, "sort QUEUED")
        check(re.search(r"(?m)^POOL +WORKERS +QUEUED\* ", text), "QUEUED marked:\n" + text)
        check(order(text, [served, idle]) == [idle, served], "sorted by QUEUED:\n" + text)
        # r: reversed
        tmux("send-keys", "-t", "top", "r")
        text = wait_screen("top", lambda t: "sort QUEUED (reversed)" in t, "reversed")
        check(order(text, [served, idle]) == [served, idle], "reversed:\n" + text)
        # a narrower terminal: redrawn at once to its width
        tmux("resize-window", "-t", "top", "-x", "70", "-y", "40")
        text = wait_screen("top", lambda t: re.search(r"(?m)^POOL +WORKERS +QUEUED\* +RUNNING +"
                                                      r"DONE/S +RATE/MIN +COMP$", t),
                           "the header cut at 70 columns", timeout=5)
        # cut, not wrapped: the rows follow each other
        lines = text.splitlines()
        i = [n for n, x in enumerate(lines) if x.startswith(served)]
        check(i and lines[i[0] + 1].startswith(idle), "rows wrapped at 70 columns:\n" + text)
        tmux("send-keys", "-t", "top", "q")
        text = wait_screen("top", lambda t: "EXIT=" in t, "the exit")
        check("EXIT=0" in text, "top's exit status:\n" + text)
        check("mutirao top" not in text and "WORKERS" not in text,
              "the alternate screen was left:\n" + text)
        time.sleep(0.3)
        with open(os.path.join(TMP, "stty.before")) as a, open(os.path.join(TMP, "stty.after")) as b:
            before, after = a.read(), b.read()
        check(before and before == after, "stty settings: %r then %r" % (before, after))

        # SIGTERM: the terminal restored too, exit 143
        session("term", "%s top; echo \"EXIT=$?\"; stty -g > stty.term; sleep 600" % MUTIRAO, ENV)
        wait_screen("term", lambda t: re.search(r"(?m)^%s " % wid, t), "the second view")
        os.kill(pane_child("term"), signal.SIGTERM)
        text = wait_screen("term", lambda t: "EXIT=" in t, "the exit on SIGTERM")
        check("EXIT=143" in text and "WORKERS" not in text, "after SIGTERM:\n" + text)
        time.sleep(0.3)
        with open(os.path.join(TMP, "stty.term")) as f:
            check(f.read() == before, "stty settings after SIGTERM")

        # stdout not a terminal: plain snapshots, one a second
        p = subprocess.Popen([MUTIRAO, "top"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV, cwd=TMP)
        time.sleep(2.6)
        p.terminate()
        out, err = p.communicate(timeout=10)
        check(err == "" and ESC not in out, "plain output: escapes or stderr %r" % err)
        snaps = [s for s in out.split("\n\n\n") if s.strip()]
        heads = re.findall(r"(?m)^mutirao top ", out)
        check(len(heads) >= 2 and len(heads) <= 4, "%d snapshots in 2.6 s:\n%s" % (len(heads), out))
        check("keys:" not in out, "no keys line when not on a terminal")
        check_pool_rows(snaps[0], served, idle, wid)
        p = subprocess.run([MUTIRAO, "top", "--once"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, env=ENV, cwd=TMP, timeout=20)
        check(p.returncode == 0 and p.stderr == "" and len(re.findall(r"(?m)^mutirao top ",
                                                                      p.stdout)) == 1,
              "--once: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
        check_pool_rows(p.stdout, served, idle, wid)
        check(w.stop() == 0, "worker exit status")
    finally:
        for wk in WORKERS:
            if wk.p.poll() is None:
                wk.p.kill()
        red.kill()


def case_top_errors():
    need_tmux()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(ENV, MUTIRAO_REDIS_URL="redis://127.0.0.1:%d" % port,
               MUTIRAO_CONNECT_TIMEOUT_MS="1500")
    want = (r"mutirao: cannot reach Redis at redis://127\.0\.0\.1:%d within 1500 ms "
            r"\(redis\.url\)\n" % port)
    t0 = time.time()
    p = subprocess.run([MUTIRAO, "top"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=env, cwd=TMP, timeout=20)
    check(p.returncode == 1 and p.stdout == "" and re.fullmatch(want, p.stderr) and
          time.time() - t0 < 3, "unreachable Redis, piped: exit %d in %.1f s\n%r" %
          (p.returncode, time.time() - t0, p.stderr))
    # on a terminal: the same line, nothing drawn, the terminal untouched
    session("err", "stty -g > stty.before; %s top 2> err.txt; echo \"EXIT=$?\"; "
            "stty -g > stty.after; sleep 600" % MUTIRAO, env)
    text = wait_screen("err", lambda t: "EXIT=" in t, "the exit", timeout=10)
    check("EXIT=1" in text, "exit status on a terminal:\n" + text)
    time.sleep(0.3)
    with open(os.path.join(TMP, "err.txt")) as f:
        err = f.read()
    check(re.fullmatch(want, err), "stderr on a terminal: %r" % err)
    with open(os.path.join(TMP, "stty.before")) as a, open(os.path.join(TMP, "stty.after")) as b:
        check(a.read() == b.read(), "stty settings changed")
    for args, pat in ((["--bogus"], r"mutirao: unknown option '--bogus' \(see mutirao top --help\)"),
                      (["extra"], r"mutirao: unexpected argument 'extra' \(see mutirao top --help\)"),
                      (["--config"], r"mutirao top: option --config needs a file \(see mutirao top "
                                     r"--help\)")):
        p = subprocess.run([MUTIRAO, "top"] + args, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=env, cwd=TMP, timeout=20)
        check(p.returncode == 2 and re.fullmatch(pat + r"\n", p.stderr),
              "top %s: exit %d %r" % (args, p.returncode, p.stderr))


# ---- mutirao run's progress lines ----

# Two tasks of the DSL: 50 pool tasks of 50 ms one at a time and a pool_wait
# (~2.5 s), then 50 more awaited through a WaitGroup.
PROGRESS_SRC = """
local POOL = %(pool)r
local waited = task("waited")
    :command(function()
        local g = require("goroutine")
        assert(g.pool_create(POOL, {workers = 1, queue = 100}))
        for i = 1, 50 do g.pool_submit(POOL, function() g.sleep(50) return 1 end) end
        assert(g.pool_wait(POOL))
        return true, "pool_wait"
    end)
    :build()
local grouped = task("grouped")
    :command(function()
        local g = require("goroutine")
        local wg = g.wait_group()
        for i = 1, 50 do
            wg:add(1)
            g.spawn(function()
                g.await(g.pool_submit(POOL, function() g.sleep(50) return 1 end))
                wg:done()
            end)
        end
        wg:wait()
        return true, "wait group"
    end)
    :depends_on(waited)
    :build()
"""


def progress_file():
    pool = "prog" + UNIQ
    path = os.path.join(TMP, "progress.lua")
    with open(path, "w") as f:
        f.write(PROGRESS_SRC % {"pool": pool})
    return pool, path


def progress_re(pool, total):
    return re.compile(r"(?m)^%s  (\d+)/%d  \d+\.\d/s  ETA (\d+s|-)  failed 0$" % (pool, total))


def check_summary(text):
    check(re.search(r"(?m)^2 tasks: 2 success in \d", text), "the summary:\n" + text)


def case_progress():
    need_tmux()
    pool, path = progress_file()
    session("run", "%s run %s; echo \"EXIT=$?\"; sleep 600" % (MUTIRAO, path), ENV)
    # pool_wait's line, counting up while it waits
    first = progress_re(pool, 50)
    text = wait_screen("run", first.search, "the pool_wait's progress line", timeout=10)
    n1 = int(first.search(text).group(1))
    text = wait_screen("run", lambda t: first.search(t) and int(first.search(t).group(1)) > n1,
                       "the line counting up", timeout=5)
    check(len(first.findall(text)) == 1 and "EXIT=" not in text,
          "one progress line while it waits:\n" + text)
    # the WaitGroup's wait: the same pool, 100 submitted by then
    second = progress_re(pool, 100)
    text = wait_screen("run", second.search, "the WaitGroup's progress line", timeout=10)
    check(not first.search(text), "pool_wait's line erased:\n" + text)
    text = wait_screen("run", lambda t: "EXIT=" in t, "the end", timeout=20)
    check("EXIT=0" in text, "exit status:\n" + text)
    check(not re.search(r"/(50|100)  ", text) and "ETA" not in text,
          "a progress line left on the screen:\n" + text)
    check_summary(text)


# Misuse of the functions the progress lines wrap: the same messages on a
# terminal as without one (the caller's line, the function's name).
MISUSE_SRC = """
local g = require("goroutine")
print(pcall(function() g.pool_wait() end))
print(pcall(function() g.pool_create() end))
print(pcall(function() g.pool_create("x", {workers = -1}) end))
local wg = g.wait_group()
print(pcall(function() wg.wait() end))
print(g.pool_wait("nosuch"))
"""


def case_progress_misuse():
    need_tmux()
    path = os.path.join(TMP, "misuse.lua")
    with open(path, "w") as f:
        f.write(MISUSE_SRC)
    p = subprocess.run([MUTIRAO, "run", path], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=ENV, cwd=TMP, timeout=60)
    check(p.returncode == 0 and "misuse.lua:3: bad argument #1 to 'pool_wait' (string expected, "
          "got no value)" in p.stdout, "piped: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
    session("misuse", "%s run %s > out.txt; echo \"EXIT=$?\"; sleep 600" % (MUTIRAO, path), ENV)
    text = wait_screen("misuse", lambda t: "EXIT=" in t, "the end", timeout=20)
    check("EXIT=0" in text, "exit status:\n" + text)
    with open(os.path.join(TMP, "out.txt")) as f:
        out = f.read()
    check(out == p.stdout, "on a terminal:\n%s\nwithout one:\n%s" % (out, p.stdout))


def case_progress_plain():
    need_tmux()
    pool, path = progress_file()
    # stderr a pipe: no progress line, no escape
    p = subprocess.run([MUTIRAO, "run", path], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=ENV, cwd=TMP, timeout=60)
    check(p.returncode == 0 and ESC not in p.stdout + p.stderr and "ETA" not in p.stderr and
          not re.search(r"/(50|100)  ", p.stderr) and
          "task 'grouped' success" in p.stderr, "piped: exit %d, stderr %r" % (p.returncode,
                                                                              p.stderr))
    check_summary(p.stdout)
    # a terminal with --log-format json: none either (the screen sampled while it runs)
    session("json", "%s run --log-format json %s; echo \"EXIT=$?\"; sleep 600" %
            (MUTIRAO, path), ENV)
    end, seen = time.time() + 30, 0
    while time.time() < end:
        text = screen("json")
        seen += 1
        check("ETA" not in text and not re.search(r"/(50|100)  ", text),
              "a progress line with --log-format json:\n" + text)
        if "EXIT=" in text:
            break
        time.sleep(0.1)
    check("EXIT=0" in text and seen > 20, "the json run (%d samples):\n%s" % (seen, text))


CASES = {"top": case_top, "top_errors": case_top_errors, "progress": case_progress,
         "progress_plain": case_progress_plain, "progress_misuse": case_progress_misuse}

if __name__ == "__main__":
    try:
        CASES[CASE]()
    finally:
        if os.path.exists(SOCK):
            tmux("kill-server", check_rc=False)
        shutil.rmtree(TMP, ignore_errors=True)
    print("ok")
