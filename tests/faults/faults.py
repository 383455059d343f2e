#!/usr/bin/env python3
"""tests/faults/faults.py BINDIR STATEDIR SCENARIO: one fault-injection
scenario of the fleet against a private Kafka and redis-server (lab.py).

Each scenario submits a known set of tasks with `mutirao run --fleet`, runs
mutirao-worker processes under a supervisor that restarts them (fleet.py),
injects its fault, and checks that every task's outcome reached its awaiter
exactly once, that pool_stats counts each task once, that the run ended on
its own within a bound, and that the workers are alive at the end. It
prints one line of figures:

  faults: scenario=NAME tasks=N lost=L extra_runs=E recovery_s=R

lost: tasks whose outcome did not reach the awaiter (or was wrong);
extra_runs: runs beyond one per task (at least once: a re-run is allowed,
a lost or doubled outcome is not); recovery_s: from the fault until the
last outcome of a task that was running when it hit, or until outcomes
flowed again after a pause (over 1 s) a service restart caused,
whichever is later; "-" when the run did not recover (a task lost, or
the run did not end).

  faults.py --list            the scenario names
Exit status 0 pass, 1 fail, 77 skipped (no redis-server or java, outside CI).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from fleet import Producer, Supervisor, describe_status  # noqa: E402
from lab import Kafka, LabError, Reaper, Redis, wait_until  # noqa: E402
from mutirao_test import skip  # noqa: E402


class Fail(Exception):
    pass


class Timeout(Exception):
    pass


class Ctx:
    def __init__(self, bindir, state, name):
        self.bin = bindir
        self.state = state
        self.name = name
        self.uniq = "%d%03d" % (os.getpid(), int(time.time() * 1000) % 1000)
        self.pool = "faults-%s-%s" % (name.replace("_", "-"), self.uniq)
        self.t0 = time.monotonic()
        self.reaper = None
        self.redis = self.kafka = self.sup = self.prod = None
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MUTIRAO_CONFIG", "MUTIRAO_FLEET") and not
                    k.startswith("MUTIRAO_TEST_")}
        self.env["MUTIRAO_LOG_LEVEL"] = "info"
        self.problems = []

    def soft(self, cond, msg):
        """A check whose failure is reported at the end of the run."""
        if not cond:
            self.say("FAILED CHECK: " + msg)
            self.problems.append(msg)

    def say(self, msg):
        print("[%6.1f s] %s" % (time.monotonic() - self.t0, msg), flush=True)

    def services(self, aof=False):
        self.redis = Redis(self.state, self.reaper, aof=aof)
        self.redis.start()
        self.kafka = Kafka(self.state, self.reaper)
        self.kafka.start()
        self.env["MUTIRAO_KAFKA_BROKERS"] = self.kafka.brokers
        self.env["MUTIRAO_REDIS_URL"] = self.redis.url
        self.say("private services: redis %s%s, kafka %s" % (
            self.redis.url, " (AOF, appendfsync always)" if aof else "", self.kafka.brokers))

    def workers(self, slots=("A", "B"), extra=()):
        self.sup = Supervisor(self, list(slots), [self.pool], extra)
        return self.sup

    def producer(self, kinds, **kw):
        """Starts the producer; it submits once every worker has been
        assigned partitions of the pool's topic."""
        self.prod = Producer(self, self.pool, kinds, **kw)
        wait_until(lambda: "CREATED" in self.prod.lines() or self.prod.p.poll() is not None,
                   60, "the producer's pool_create")
        if self.prod.p.poll() is not None:
            return self.prod          # it failed: finish() says how
        for slot in self.sup.slots:
            if not self.sup.wait_log(slot, r" assigned \d+ partition", 60):
                raise Fail("worker %s: no partition of the pool assigned within 60 s" % slot)
        self.prod.start()
        return self.prod


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def now_ms():
    return time.monotonic() * 1000.0


def expected(kind, i, opts):
    """(ok, test of the value) of task i of this kind."""
    if kind == "ok":
        return True, lambda v: v == str(i * 2)
    if kind == "exit":
        return False, lambda v: "os.exit called in a pool task" in v
    if kind == "loop":
        return False, lambda v: ("timeout after %d ms" % opts["timeout"]) in v
    if kind == "hog":
        return False, lambda v: "not enough memory" in v
    if kind == "stuck":
        return False, lambda v: v.startswith("dead-lettered after 3 deliveries")
    raise ValueError(kind)


def figures(ctx, kinds, faults_ms, up_ms=None, opts=None):
    """The run's figures: (lost list, wrong list, doubled list, extra runs,
    recovery s)."""
    prod = ctx.prod
    res = prod.outcomes()
    lost, wrong, doubled = [], [], []
    for i, kind in enumerate(kinds, 1):
        got = res.get(i)
        if not got:
            lost.append(i)
            continue
        if len(got) > 1:
            doubled.append(i)
        ok, test = expected(kind, i, opts or {})
        if got[0][0] != ok or not test(got[0][2]):
            wrong.append((i, kind, got[0][0], got[0][2][:200]))
    runs = prod.run_lines()
    firsts = {}
    for i, _, _, ms in runs:
        firsts.setdefault(i, []).append(ms)
    extra = len(runs) - len(firsts)
    rec = 0.0
    arrivals = sorted(o[0][1] for o in res.values())
    for f in faults_ms:
        # tasks running (started, no outcome yet) when the fault hit
        hit = [res[i][0][1] for i, starts in firsts.items()
               if min(starts) < f and i in res and res[i][0][1] > f]
        if hit:
            rec = max(rec, (max(hit) - f) / 1000.0)
    for f in (faults_ms if up_ms else []):
        # outcomes flowing again after a pause the restart caused: the end
        # of the longest pause (over 1 s) between outcomes from the fault on
        prev, pause, end = f, 0.0, None
        for a in arrivals:
            if a <= f:
                continue
            if a - prev > pause:
                pause, end = a - prev, a
            prev = a
        if end is not None and pause > 1000:
            rec = max(rec, (end - f) / 1000.0)
    return lost, wrong, doubled, extra, rec


def finish(ctx, kinds, faults_ms, run_timeout, up_ms=None, opts=None, stats_extra=None,
           allowed_deaths=0, fleet_counts=None, recovery_min=0.0, after_run=None):
    """Wait for the producer, print the figures, check everything."""
    prod, sup = ctx.prod, ctx.sup
    ended = prod.wait(max(1, run_timeout - (time.monotonic() - prod.t0)))
    took = time.monotonic() - prod.t0
    lost, wrong, doubled, extra, rec = figures(ctx, kinds, faults_ms, up_ms, opts)
    rec = max(rec, recovery_min)
    recovered = ended and not lost and not wrong
    print("faults: scenario=%s tasks=%d lost=%d extra_runs=%d recovery_s=%s" % (
        ctx.name, len(kinds), len(lost) + len(wrong), extra,
        "%.1f" % rec if recovered else "-"), flush=True)
    ctx.say("run %s after %.1f s" % ("ended" if ended else "killed", took))
    problems = list(ctx.problems)
    if not ended:
        problems.append("the run did not end on its own within %d s" % run_timeout)
    elif prod.p.returncode != 0:
        problems.append("mutirao run exited %s" % describe_status(prod.p.returncode))
    if lost:
        problems.append("%d task(s) lost (no outcome reached the awaiter): %s" % (
            len(lost), summarize(lost, kinds)))
    if wrong:
        problems.append("%d wrong outcome(s), e.g. %s" % (len(wrong), wrong[:5]))
    if doubled:
        problems.append("%d outcome(s) reached the awaiter twice: %s" % (
            len(doubled), doubled[:20]))
    if ended and prod.p.returncode == 0:
        lines = prod.lines()
        if "DONE" not in lines:
            problems.append("the producer did not reach its end")
        if "WG 0" not in lines:
            problems.append("the WaitGroup did not end at 0: %s" %
                            [l for l in lines if l.startswith("WG")])
        st = prod.stats()
        n_ok = sum(1 for k in kinds if k == "ok")
        want = {"submitted": len(kinds), "completed": n_ok, "failed": len(kinds) - n_ok}
        want.update({"fleet_" + k: v for k, v in want.items()})
        want.update(fleet_counts or {})
        want.update(stats_extra or {})
        bad = {k: (st.get(k), v) for k, v in want.items()
               if v is not None and st.get(k) != str(v)}
        if bad:
            problems.append("pool_stats does not count each task once (got, wanted): %s" % bad)
    if after_run:
        problems.extend(after_run())
    deaths = sup.unexpected_deaths()
    if len(deaths) > allowed_deaths:
        problems.append("worker(s) died without being killed by the scenario: %s" % [
            "%s%d %s" % (d[0], d[1], describe_status(d[2])) for d in deaths])
    alive = sup.alive()
    if not all(alive.values()):
        problems.append("worker(s) not alive at the end: %s" % alive)
    codes = sup.stop()
    bad = {s: describe_status(c) for s, c in codes.items() if c != 0}
    if bad:
        problems.append("worker(s) did not stop cleanly on SIGTERM: %s" % bad)
    if problems:
        raise Fail("\n  ".join(problems))


def summarize(ids, kinds):
    by = {}
    for i in ids:
        by.setdefault(kinds[i - 1], []).append(i)
    return "; ".join("%d %s task(s): %s%s" % (len(v), k, v[:20], " ..." if len(v) > 20 else "")
                     for k, v in by.items())


# ---------------------------------------------------------------------------
# a. and b.: a worker killed or stopped mid-run

def wait_runs(ctx, tag, n, timeout):
    """Until worker incarnation tag has started n task runs."""
    return wait_until(lambda: sum(1 for r in ctx.prod.run_lines() if r[2] == tag) >= n,
                      timeout, "worker %s starting %d tasks" % (tag, n))


def scenario_sigkill(ctx):
    """SIGKILL of a worker mid-run; the supervisor restarts it."""
    ctx.services()
    sup = ctx.workers()
    kinds = ["ok"] * 4000
    ctx.producer(kinds, opts="{workers = 16, queue = 4000}", ms=20)
    wait_runs(ctx, "A1", 300, 90)
    tag, _ = sup.signal("A", signal.SIGKILL)
    fault = now_ms()
    ctx.say("SIGKILL to worker %s" % tag)
    finish(ctx, kinds, [fault], 120)


def scenario_sigterm(ctx):
    """SIGTERM of a worker mid-run: it exits within the longest running task
    + 1 s (its prefetched tasks go back to the group) and is restarted."""
    ctx.services()
    sup = ctx.workers()
    kinds = ["ok"] * 4000
    ms = 20
    ctx.producer(kinds, opts="{workers = 16, queue = 4000}", ms=ms)
    wait_runs(ctx, "A1", 300, 90)
    t = time.monotonic()
    tag, p = sup.signal("A", signal.SIGTERM)
    fault = now_ms()
    ctx.say("SIGTERM to worker %s" % tag)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - t
    ctx.say("worker %s exited %.2f s after the SIGTERM (%s)" % (
        tag, took, describe_status(p.returncode)))
    bound = ms / 1000.0 + 1.0 + 0.5
    ctx.soft(took <= bound, "worker %s took %.1f s to exit after SIGTERM (bound: the longest "
          "running task, %d ms, + 1 s, + 0.5 s of slack)" % (tag, took, ms))
    finish(ctx, kinds, [fault], 120)


# ---------------------------------------------------------------------------
# c. and d.: a service restarted mid-run

def scenario_redis_restart(ctx):
    """redis-server with AOF (appendfsync always) restarted mid-run, four
    times: killed (SIGKILL) and back 1 s later, three times, then stopped
    (SIGTERM) and started at once."""
    ctx.services(aof=True)
    ctx.workers()
    kinds = ["ok"] * 8000
    ctx.producer(kinds, opts="{workers = 8, queue = 8000}", ms=20)
    faults, ups = [], []
    for at, sig, down in ((1000, signal.SIGKILL, 1.0), (2500, signal.SIGKILL, 1.0),
                          (4000, signal.SIGKILL, 1.0), (5500, signal.SIGTERM, 0)):
        wait_until(lambda: len(ctx.prod.run_lines()) >= at, 90, "%d task runs" % at)
        check(len(ctx.prod.outcomes()) < len(kinds), "every task ended before the restart")
        faults.append(now_ms())
        ctx.redis.stop(sig)
        ctx.say("redis-server stopped (%s) after %d runs; starting it again in %.0f s" % (
            signal.Signals(sig).name, at, down))
        time.sleep(down)
        ctx.redis.start()
        ups.append(now_ms())
        ctx.say("redis-server back after %.1f s" % ((ups[-1] - faults[-1]) / 1000))
    finish(ctx, kinds, faults, 90, up_ms=ups)


def restart_kafka(ctx, down=0.0):
    fault = now_ms()
    ctx.kafka.stop_broker()
    ctx.say("kafka stopped (SIGTERM) in %.1f s; starting it again%s" % (
        (now_ms() - fault) / 1000, " in %.0f s" % down if down else ""))
    time.sleep(down)
    ctx.kafka.start_broker()
    up = now_ms()
    ctx.say("kafka back after %.1f s" % ((up - fault) / 1000))
    return fault, up


def scenario_kafka_submit(ctx):
    """Kafka broker restarted while the producer is submitting (300 tasks/s
    for 10 s), down for 5 s more than the restart takes (12 to 15 s in
    all: a slow restart, longer than op.timeout_ms)."""
    ctx.services()
    ctx.workers()
    kinds = ["ok"] * 3000
    ctx.producer(kinds, opts="{workers = 16, queue = 3000}", ms=10, pace=300)
    start = wait_until(lambda: ctx.prod.marker("START"), 60, "the producer's start")
    wait_until(lambda: now_ms() > start + 3000, 10, "3 s of submits")
    check(ctx.prod.marker("SUBMITTED") is None, "all submitted before the restart")
    fault, up = restart_kafka(ctx, down=5.0)
    finish(ctx, kinds, [fault], 120, up_ms=[up])


def topic_count(ctx):
    r = subprocess.run([os.path.join(ctx.bin, "faults-topic-count"), ctx.kafka.brokers,
                        "mutirao.pool." + ctx.pool], capture_output=True, text=True, timeout=30)
    return int(r.stdout) if r.returncode == 0 and r.stdout.strip().isdigit() else 0


def scenario_kafka_consume(ctx):
    """Kafka broker restarted while the workers consume (every task already
    submitted; more than the workers fetch ahead, so they must fetch again
    from the restarted broker)."""
    ctx.services()
    ctx.workers()
    kinds = ["ok"] * 12000
    ctx.producer(kinds, opts="{workers = 8, queue = 12000}", ms=10)
    wait_until(lambda: ctx.prod.marker("SUBMITTED"), 60, "the submits")
    # every task in Kafka (pool_submit returns before Kafka has it)
    wait_until(lambda: topic_count(ctx) >= len(kinds), 60, "%d tasks in the topic" % len(kinds))
    wait_until(lambda: len(ctx.prod.run_lines()) >= 1000, 60, "1000 task runs")
    check(len(ctx.prod.outcomes()) < len(kinds), "every task ended before the restart")
    fault, up = restart_kafka(ctx)
    finish(ctx, kinds, [fault], 120, up_ms=[up])


# ---------------------------------------------------------------------------
# e. poison tasks

def poison_kinds(n, every, kind):
    return [kind if i % every == every // 2 else "ok" for i in range(1, n + 1)]


def first_run_ms(ctx, kind):
    t = [r[3] for r in ctx.prod.run_lines() if r[1] == kind]
    return [min(t)] if t else []


def scenario_poison_os_exit(ctx):
    """os.exit(1) in tasks: each fails alone, the worker goes on."""
    ctx.services()
    ctx.workers()
    kinds = poison_kinds(1000, 100, "exit")
    ctx.producer(kinds, opts="{workers = 8, queue = 1000}", ms=5)
    finish(ctx, kinds, first_run_ms(ctx, "exit"), 120)


def scenario_poison_timeout(ctx):
    """Endless loops in a pool with timeout = 500 ms: they fail with
    "timeout after 500 ms", the partition goes on."""
    ctx.services()
    ctx.workers()
    kinds = poison_kinds(1000, 250, "loop")
    opts = {"timeout": 500}
    ctx.producer(kinds, opts="{workers = 4, queue = 1000, timeout = 500}", ms=5)
    finish(ctx, kinds, first_run_ms(ctx, "loop"), 120, opts=opts)


def scenario_poison_memory(ctx):
    """Memory hogs in a pool with memory = 64 MB: they fail with "not enough
    memory", the worker lives."""
    ctx.services()
    ctx.workers()
    kinds = poison_kinds(1000, 250, "hog")
    ctx.producer(kinds, opts="{workers = 4, queue = 1000, memory = 64 * 1024 * 1024}", ms=5)
    finish(ctx, kinds, first_run_ms(ctx, "hog"), 120)


def scenario_poison_kill3(ctx):
    """A task whose worker is SIGKILLed each time it runs it: after the
    third death (max_deliveries, default 3) it is dead-lettered, its
    awaiter gets "dead-lettered after 3 deliveries: ...", `mutirao dlq
    list` shows it with the three killed workers, and every other task
    completes."""
    ctx.services()
    sup = ctx.workers()
    kinds = ["ok"] * 1000
    stuck = 200
    kinds[stuck - 1] = "stuck"
    ctx.producer(kinds, opts="{workers = 8, queue = 1000}", ms=10)
    kills, faults = [], []
    end = time.monotonic() + 150
    bound = 150
    while ctx.prod.p.poll() is None and time.monotonic() < end:
        runs = [r for r in ctx.prod.run_lines() if r[1] == "stuck"]
        if len(runs) > 3:
            ctx.soft(False, "the task its worker died under 3 times ran a 4th time (runs on "
                     "%s): not dead-lettered after max_deliveries = 3" % [r[2] for r in runs])
            # the others get 15 s more to complete
            bound = time.monotonic() - ctx.prod.t0 + 15
            break
        if len(runs) > len(kills):
            tag = runs[len(kills)][2]
            time.sleep(0.2)
            check(sup.signal_tag(tag, signal.SIGKILL),
                  "worker %s running the stuck task is gone before its kill" % tag)
            faults.append(now_ms())
            kills.append(tag)
            ctx.say("SIGKILL %d to worker %s, running task %d" % (len(kills), tag, stuck))
        time.sleep(0.05)

    def dead_letters():
        # operators see it: `mutirao dlq list`, its deliveries on the
        # workers that were killed
        r = subprocess.run([os.path.join(ctx.bin, "mutirao"), "dlq", "list", ctx.pool, "--json"],
                           capture_output=True, text=True, env=ctx.env, timeout=60)
        try:
            letters = json.loads(r.stdout)
        except ValueError:
            return ["mutirao dlq list: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)]
        want = ["faults-%s-%s" % (k, ctx.uniq) for k in kills]
        got = [(l.get("attempts"), [h.get("worker") for h in l.get("history", [])])
               for l in letters]
        if got != [(3, want)]:
            return ["mutirao dlq list (attempts, workers): %s, wanted %s" % (got, [(3, want)])]
        return []
    finish(ctx, kinds, faults[:1], bound, stats_extra={"dead_lettered": 1},
           after_run=dead_letters)


def scenario_poison_bytecode(ctx):
    """Envelopes whose payload is corrupt bytecode, produced straight to the
    pool's topic: a worker may die on one at most max_deliveries (3) times;
    each ends recorded as failed (or refused), every other task completes."""
    ctx.services()
    ctx.workers()
    kinds = ["ok"] * 1000
    ctx.producer(kinds, opts="{workers = 8, queue = 1000}", ms=10)
    wait_until(lambda: ctx.prod.marker("START"), 60, "the producer's pool_create")
    wait_until(lambda: len(ctx.prod.run_lines()) >= 100, 60, "100 task runs")
    tool = os.path.join(ctx.bin, "faults-poison")
    r = subprocess.run([tool, ctx.kafka.brokers, "mutirao.pool." + ctx.pool, ctx.pool,
                        "poisoner-" + ctx.uniq], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "faults-poison: %d\n%s%s" % (r.returncode, r.stdout, r.stderr))
    ids = [l.split()[1] for l in r.stdout.splitlines() if l.startswith("produced ")]
    fault = now_ms()
    ctx.say("produced %d corrupt-bytecode envelopes: %s" % (len(ids), r.stdout.strip()))
    check(ids, "faults-poison produced nothing")
    # each ends recorded (a record in mutirao:task:ID), a worker dying on it
    # at most max_deliveries times
    end = time.monotonic() + 90
    pending = list(ids)
    while pending and time.monotonic() < end:
        pending = [i for i in pending if not ctx.redis.cmd("EXISTS", "mutirao:task:" + i)]
        if len(ctx.sup.unexpected_deaths()) > 3 * len(ids):
            break
        time.sleep(0.2)
    recorded = (now_ms() - fault) / 1000.0 if not pending else 0.0
    deaths = ctx.sup.unexpected_deaths()
    ctx.say("worker deaths: %d (%s); corrupt tasks not recorded: %s" % (
        len(deaths), ", ".join(sorted(set(describe_status(d[2]) for d in deaths))) or "-",
        pending))
    ctx.soft(not pending, "corrupt task(s) with no recorded outcome after 90 s: %s" % pending)
    for i in ids:
        rec = ctx.redis.cmd("GET", "mutirao:task:" + i)
        ctx.soft(rec is None or b"\xa2ok\xc2" in rec, "corrupt task %s recorded as a success" % i)

    def pool_counters():
        # the pool's counters in Redis once the run is over (the producer's
        # pool_stats may be read before the last corrupt task is recorded)
        raw = ctx.redis.cmd("HGETALL", "mutirao:pool:%s:stats" % ctx.pool) or []
        st = {raw[k].decode(): raw[k + 1].decode() for k in range(0, len(raw), 2)}
        want = {"submitted": str(len(kinds)), "completed": str(len(kinds)),
                "failed": str(len(ids))}
        bad = {k: (st.get(k), v) for k, v in want.items() if st.get(k) != v}
        return ["the pool's counters in Redis (got, wanted): %s" % bad] if bad else []
    finish(ctx, kinds, [fault], 120, allowed_deaths=3 * len(ids), recovery_min=recorded,
           fleet_counts={"fleet_failed": None}, after_run=pool_counters)


SCENARIOS = {
    "sigkill": scenario_sigkill,
    "sigterm": scenario_sigterm,
    "redis_restart": scenario_redis_restart,
    "kafka_submit": scenario_kafka_submit,
    "kafka_consume": scenario_kafka_consume,
    "poison_os_exit": scenario_poison_os_exit,
    "poison_timeout": scenario_poison_timeout,
    "poison_memory": scenario_poison_memory,
    "poison_bytecode": scenario_poison_bytecode,
    "poison_kill3": scenario_poison_kill3,
}


def on_alarm(signum, frame):
    raise Timeout("the scenario ran past its own deadline")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--list":
        print("\n".join(SCENARIOS))
        return 0
    if len(sys.argv) != 4 or sys.argv[3] not in SCENARIOS:
        print("usage: faults.py BINDIR STATEDIR SCENARIO (%s) | --list" % ", ".join(SCENARIOS))
        return 2
    bindir, state, name = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    missing = [p for p in ("redis-server", "java") if not shutil.which(p)]
    if missing:
        skip("%s not found (scripts/deps.sh installs them)" % ", ".join(missing))
    # a previous run's leftovers (a killed run: its reaper stopped them)
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    ctx = Ctx(bindir, state, name)
    ctx.reaper = Reaper(state)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda s, f: on_alarm(s, f))
    signal.alarm(int(os.environ.get("MUTIRAO_FAULTS_DEADLINE_S", "420")))
    rc = 1
    try:
        ctx.say("scenario %s: %s" % (name, SCENARIOS[name].__doc__.strip().split("\n")[0]))
        SCENARIOS[name](ctx)
        rc = 0
    except (Fail, LabError, Timeout) as e:
        print("FAIL: %s: %s" % (name, e), flush=True)
        if ctx.sup:
            print(ctx.sup.logs_tail())
        if ctx.prod:
            print("---- producer (last 20 lines of %s)" % ctx.prod.log)
            print(ctx.prod.tail())
    finally:
        signal.alarm(0)
        if ctx.prod and ctx.prod.p.poll() is None:
            ctx.prod.p.kill()
            ctx.prod.p.wait()
        if ctx.sup:
            ctx.sup.kill_all()
        if ctx.kafka:
            ctx.kafka.close()
        if ctx.redis:
            ctx.redis.stop()
        ctx.reaper.release()
    print("%s: %s (%.1f s, state in %s)" % ("ok" if rc == 0 else "FAILED", name,
                                            time.monotonic() - ctx.t0, state))
    return rc


if __name__ == "__main__":
    sys.exit(main())
