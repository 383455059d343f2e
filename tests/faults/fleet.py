"""tests/faults/fleet.py: the fleet a fault scenario runs: mutirao-worker
processes kept running by a supervisor loop (restarted when they die, as
systemd's Restart=always would), the producer (`mutirao run --fleet` of a
generated Lua script that submits a known set of tasks and writes each
outcome as it reaches its awaiter), and the checks and figures of a run.

Files a run leaves in the scenario's state dir:
  runs.txt     one line per run of a task, written by the task when it
               starts: "I KIND TAG MS" (TAG names the worker incarnation,
               MS its monotonic clock, the same clock as time.monotonic())
  out.txt      the producer's: "CREATED" (the pool; it then waits for the
               file go), "START MS", "R I OK MS VALUE" per outcome,
               "SUBMITTED MS", "WG COUNT", "S key=value" per pool_stats
               field, "DONE"
"""
import os
import re
import signal
import threading
import time

from lab import spawn, stop_proc

# The Lua producer. Parameters come as globals set by a preamble. KINDS[i]
# says what task i does: "ok" returns I*2 (after MS ms), the others are
# poison (see JOB).
PRODUCER = r"""
local g = require("goroutine")
local out = assert(io.open(OUT, "w"))
local function emit(line) out:write(line, "\n") out:flush() end
assert(g.pool_create(POOL, OPTS))
local wg = g.wait_group()
local function job(i, kind, ms, runs)
    local f = io.open(runs, "a")
    f:write(string.format("%d %s %s %.1f\n", i, kind, os.getenv("FAULTS_TAG") or "-", g.now()))
    f:close()
    if kind == "exit" then
        os.exit(1)
    elseif kind == "loop" then
        local n = 0
        while true do n = n + 1 end
    elseif kind == "hog" then
        -- stops by itself at 256 MB, so a limit that does not work fails
        -- the check instead of exhausting the machine
        local t = {}
        for k = 1, 256 do t[k] = string.rep(string.char(65 + k % 26), 1 << 20) end
        return "hog survived holding 256 MB"
    elseif kind == "stuck" then
        g.sleep(600000)
        return "stuck task returned"
    end
    if ms > 0 then g.sleep(ms) end
    wg:done()
    return i * 2
end
-- submit once the harness says the workers have their partitions
emit("CREATED")
while true do
    local f = io.open(GO, "r")
    if f then f:close() break end
    g.sleep(50)
end
emit(string.format("START %.1f", g.now()))
local n, got, awaiting = 0, 0, 0
for i = 1, #KINDS do
    local kind = KINDS[i]
    if kind == "ok" then wg:add(1) end
    local id, err = g.pool_submit(POOL, job, i, kind, MS, RUNS)
    if not id then
        if kind == "ok" then wg:done() end
        emit(string.format("R %d false %.1f submit failed: %s", i, g.now(), tostring(err)))
    else
        awaiting = awaiting + 1
        g.spawn(function()
            local ok, v = g.await(id)
            emit(string.format("R %d %s %.1f %s", i, tostring(ok), g.now(),
                (tostring(v):gsub("\n", "\\n"))))
            got = got + 1
        end)
    end
    n = n + 1
    if PACE > 0 and n % 50 == 0 then g.sleep(50 * 1000 / PACE) end
end
emit(string.format("SUBMITTED %.1f", g.now()))
wg:wait()
emit(string.format("WG %d", wg:count()))
assert(g.pool_wait(POOL))
-- the outcomes are in; let every awaiter write its line
while got < awaiting do g.sleep(10) end
local s = assert(g.pool_stats(POOL))
local keys = {}
for k in pairs(s) do keys[#keys + 1] = k end
table.sort(keys)
for _, k in ipairs(keys) do emit(string.format("S %s=%s", k, tostring(s[k]))) end
emit("DONE")
"""


def lua_str(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


class Supervisor:
    """Worker slots (A, B, ...), each running one mutirao-worker at a time;
    a monitor thread restarts a slot's worker RESTART_S after it exits."""

    RESTART_S = 0.5

    def __init__(self, ctx, slots, pools, extra_args=()):
        self.ctx = ctx
        self.pools = pools
        self.extra = list(extra_args)
        self.lock = threading.Lock()
        self.slots = {s: {"gen": 0, "p": None, "log": None} for s in slots}
        self.deaths = []          # (slot, gen, returncode, monotonic s, injected)
        self.injected = set()     # (slot, gen) killed on purpose
        self.stopping = False
        for s in slots:
            self._start(s)
        self.thread = threading.Thread(target=self._monitor, daemon=True)
        self.thread.start()

    def _start(self, slot):
        st = self.slots[slot]
        st["gen"] += 1
        tag = "%s%d" % (slot, st["gen"])
        st["log"] = os.path.join(self.ctx.state, "worker-%s.log" % tag)
        # the jobs append to a runs file: the task sandbox allows it only so
        env = dict(self.ctx.env, FAULTS_TAG=tag, MUTIRAO_WORKER_ALLOW="io.open.write")
        argv = [os.path.join(self.ctx.bin, "mutirao-worker"), "--id",
                "faults-%s-%s" % (tag, self.ctx.uniq), "--pools", ",".join(self.pools),
                "--log-level", "debug"] + self.extra
        st["p"] = spawn(argv, st["log"], self.ctx.reaper, "mutirao-worker", env=env,
                        cwd=self.ctx.state)
        st["started"] = time.monotonic()

    def _monitor(self):
        while not self.stopping:
            with self.lock:
                for slot, st in self.slots.items():
                    p = st["p"]
                    if p.poll() is None or self.stopping:
                        continue
                    died = time.monotonic()
                    key = (slot, st["gen"])
                    self.deaths.append((slot, st["gen"], p.returncode, died,
                                        key in self.injected))
                    self.ctx.say("worker %s%d exited (%s)%s" % (
                        slot, st["gen"], describe_status(p.returncode),
                        "" if key in self.injected else ", not killed by the scenario"))
                    time.sleep(self.RESTART_S)
                    if not self.stopping:
                        self._start(slot)
            time.sleep(0.05)

    def tag(self, slot):
        with self.lock:
            return "%s%d" % (slot, self.slots[slot]["gen"])

    def text(self, slot):
        with self.lock:
            log = self.slots[slot]["log"]
        with open(log, errors="replace") as f:
            return f.read()

    def wait_log(self, slot, pattern, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if re.search(pattern, self.text(slot)):
                return True
            time.sleep(0.05)
        return False

    def signal(self, slot, sig):
        """Send sig to the slot's current worker; returns (its tag, its Popen)."""
        with self.lock:
            st = self.slots[slot]
            self.injected.add((slot, st["gen"]))
            p = st["p"]
            p.send_signal(sig)
            return "%s%d" % (slot, st["gen"]), p

    def signal_tag(self, tag, sig):
        """Signal the worker incarnation TAG if it is the current one of its
        slot and still running; True if sent."""
        with self.lock:
            for slot, st in self.slots.items():
                if "%s%d" % (slot, st["gen"]) == tag and st["p"].poll() is None:
                    self.injected.add((slot, st["gen"]))
                    st["p"].send_signal(sig)
                    return True
        return False

    def unexpected_deaths(self):
        return [d for d in self.deaths if not d[4]]

    def alive(self):
        with self.lock:
            return {s: st["p"].poll() is None for s, st in self.slots.items()}

    def stop(self, timeout=60):
        """SIGTERM every worker; returns {slot: exit status}."""
        with self.lock:
            self.stopping = True
        self.thread.join(5)
        return {s: stop_proc(st["p"], signal.SIGTERM, timeout) for s, st in self.slots.items()}

    def kill_all(self):
        self.stopping = True
        for st in self.slots.values():
            if st["p"] and st["p"].poll() is None:
                stop_proc(st["p"], signal.SIGKILL, 10)

    def logs_tail(self, n=30):
        out = []
        for slot, st in self.slots.items():
            for gen in range(1, st["gen"] + 1):
                log = os.path.join(self.ctx.state, "worker-%s%d.log" % (slot, gen))
                try:
                    with open(log, errors="replace") as f:
                        lines = [l for l in f.read().splitlines() if " DEBUG " not in l]
                except OSError:
                    continue
                out.append("---- worker %s%d (last %d lines but debug ones of %s)" % (slot, gen, n, log))
                out.extend(l[:400] for l in lines[-n:])
        return "\n".join(out)


def describe_status(rc):
    if rc is None:
        return "running"
    if rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exit %d" % rc


class Producer:
    """`mutirao run --fleet` of the generated producer script."""

    def __init__(self, ctx, pool, kinds, opts="{}", ms=0, pace=0, env=None):
        self.ctx = ctx
        self.kinds = kinds
        self.out = os.path.join(ctx.state, "out.txt")
        self.runs = os.path.join(ctx.state, "runs.txt")
        self.log = os.path.join(ctx.state, "producer.log")
        self.go = os.path.join(ctx.state, "go")
        for f in (self.out, self.runs):
            open(f, "w").close()
        if os.path.exists(self.go):
            os.unlink(self.go)
        script = os.path.join(ctx.state, "producer.lua")
        with open(script, "w") as f:
            f.write("POOL = %s\nOPTS = %s\nMS = %d\nPACE = %d\nRUNS = %s\nOUT = %s\nGO = %s\n" % (
                lua_str(pool), opts, ms, pace, lua_str(self.runs), lua_str(self.out),
                lua_str(self.go)))
            f.write("KINDS = {%s}\n" % ",".join(lua_str(k) for k in kinds))
            f.write(PRODUCER)
        e = dict(ctx.env)
        e.update(env or {})
        self.p = spawn([os.path.join(ctx.bin, "mutirao"), "run", "--fleet", script], self.log,
                       ctx.reaper, "mutirao", env=e, cwd=ctx.state)
        self.t0 = time.monotonic()

    def start(self):
        """Let the producer submit (it waits after pool_create)."""
        open(self.go, "w").close()

    def lines(self):
        with open(self.out, errors="replace") as f:
            return f.read().splitlines()

    def outcomes(self):
        """{i: [(ok, ms, value), ...]} of every outcome line so far."""
        res = {}
        for line in self.lines():
            if line.startswith("R "):
                parts = line.split(" ", 4)
                res.setdefault(int(parts[1]), []).append(
                    (parts[2] == "true", float(parts[3]), parts[4] if len(parts) > 4 else ""))
        return res

    def stats(self):
        st = {}
        for line in self.lines():
            if line.startswith("S "):
                k, _, v = line[2:].partition("=")
                st[k] = v
        return st

    def marker(self, name):
        for line in self.lines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def run_lines(self):
        """[(i, kind, tag, ms)] of every run so far."""
        out = []
        with open(self.runs, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4:
                    out.append((int(parts[0]), parts[1], parts[2], float(parts[3])))
        return out

    def wait(self, timeout):
        """Wait for the producer to end; False (and the producer killed) if it
        had not after timeout seconds."""
        try:
            self.p.wait(timeout)
            return True
        except Exception:
            stop_proc(self.p, signal.SIGKILL, 10)
            return False

    def tail(self, n=20):
        with open(self.log, errors="replace") as f:
            return "\n".join(l[:400] for l in f.read().splitlines()[-n:])
