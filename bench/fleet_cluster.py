#!/usr/bin/env python3
"""bench/fleet_cluster.py [N] [RUNS]: the fleet on one Redis against the
fleet on a local 3-master Redis Cluster, same build, runs interleaved
(one Redis, cluster, one Redis, cluster, ...). Per run: one mutirao-worker
and one `mutirao run --fleet bench/fleet.lua` producer (N trivial tasks,
default 50000; RUNS pairs, default 5), against a redis-server of the
bench's own (no persistence) or the 3 masters of a cluster of its own
(tests/integration/redis_cluster.py, no persistence either), the Kafka of
tests/services.sh (build-services/env.sh, or MUTIRAO_TEST_KAFKA_BROKERS).
Prints each run's tasks/s and CPU µs per task of the producer, the
worker, Redis (the cluster's 3 masters summed) and the Kafka broker, then
the median (min-max) per setup and the load average. BUILD (default
build) names the build directory.

On one machine the cluster cannot be faster (its masters share the same
cores): this measures what the tagged layout and the client's routing
cost, and that the fleet runs there; the scale-out itself is
docs/scaling.md's model.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import private_redis  # noqa: E402
import redis_cluster  # noqa: E402


def kafka_brokers():
    b = os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS")
    if b:
        return b
    env = os.path.join(ROOT, "build-services", "env.sh")
    with open(env) as f:
        m = re.search(r"MUTIRAO_TEST_KAFKA_BROKERS=['\"]?([^'\"\n]+)", f.read())
    if not m:
        sys.exit("no Kafka: run `bash tests/services.sh start` first")
    return m.group(1)


def port_pid(port):
    out = subprocess.run(["ss", "-ltnpH", "sport = :%d" % port], capture_output=True,
                         text=True).stdout
    m = re.search(r"pid=(\d+)", out)
    return m.group(1) if m else None


def one(build, url, redis_pids, kafka_pid, n, tag):
    pool = "%s-%d" % (tag, int(time.time() * 1000) % 10**9)
    env = dict(os.environ, MUTIRAO_KAFKA_BROKERS=BROKERS, MUTIRAO_REDIS_URL=url)
    env.pop("MUTIRAO_CONFIG", None)
    w = subprocess.Popen([os.path.join(build, "bin", "mutirao-worker"), "--pools", pool,
                          "--id", pool, "--log-level", "warn"], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    pids = ["worker=%d" % w.pid] + ["redis%d=%s" % (i, p) for i, p in enumerate(redis_pids)]
    if kafka_pid:
        pids.append("kafka=%s" % kafka_pid)
    env.update(FLEET_BENCH_MODE="throughput", FLEET_BENCH_N=str(n), FLEET_BENCH_POOL=pool,
               FLEET_BENCH_SETTLE_MS="2000", FLEET_BENCH_CPU_PIDS=" ".join(pids))
    try:
        out = subprocess.run([os.path.join(build, "bin", "mutirao"), "run", "--fleet",
                              os.path.join(ROOT, "bench", "fleet.lua")], env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=300).stdout
    except subprocess.TimeoutExpired:
        out = ""
    finally:
        w.kill()
        w.wait()
    m = re.search(r"^RESULT .*$", out, re.M)
    if not m:
        return None
    f = dict(kv.split("=", 1) for kv in m.group(0).split()[1:] if "=" in kv)
    us = 1e6 / os.sysconf("SC_CLK_TCK") / n
    redis = sum(int(v) for k, v in f.items() if k.startswith("cpu_ticks_redis")) * us
    return (float(f["rate"]), float(f["cpu_self_us"]) / n,
            int(f.get("cpu_ticks_worker", 0)) * us, redis, int(f.get("cpu_ticks_kafka", 0)) * us)


def show(rows):
    return "tasks/s %.0f, CPU µs/task producer %.1f worker %.1f redis %.1f kafka %.1f" % rows


def summary(name, rows):
    cols = list(zip(*rows))
    names = ["tasks/s", "producer", "worker", "redis", "kafka"]
    parts = ["%s %s (%s-%s)" % (nm, *((("%.0f" if nm == "tasks/s" else "%.1f") % v)
                                       for v in (statistics.median(c), min(c), max(c))))
             for nm, c in zip(names, cols)]
    total = sum(statistics.median(c) for c in cols[1:])
    print("%s (%d runs): %s; CPU µs/task in all %.1f" % (name, len(rows), ", ".join(parts), total))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    build = os.path.abspath(os.environ.get("BUILD", os.path.join(ROOT, "build")))
    kafka_pid = port_pid(int(BROKERS.split(",")[0].rsplit(":", 1)[1]))
    with tempfile.TemporaryDirectory(prefix="mutirao-bench-cluster-") as tmp:
        one_redis = private_redis.PrivateRedis(tmp, aof=False)
        one_redis.start()
        cluster = redis_cluster.RedisCluster(tmp)
        try:
            cluster.start()
            curl = "redis+cluster://" + ",".join("127.0.0.1:%d" % p for p in cluster.ports)
            cpids = [str(p.pid) for p in cluster.procs]
            a, b = [], []
            for i in range(1, runs + 1):
                ra = one(build, one_redis.url, [str(one_redis.p.pid)], kafka_pid, n, "b1r")
                rb = one(build, curl, cpids, kafka_pid, n, "b3m")
                if ra:
                    a.append(ra)
                if rb:
                    b.append(rb)
                print("run %d: one Redis: %s | cluster: %s (load %s)" %
                      (i, show(ra) if ra else "failed", show(rb) if rb else "failed",
                       open("/proc/loadavg").read().split()[0]), flush=True)
            if a:
                summary("one Redis", a)
            if b:
                summary("3-master cluster", b)
            print("N=%d" % n)
        finally:
            cluster.stop()
            one_redis.kill()


BROKERS = kafka_brokers()
if __name__ == "__main__":
    main()
