#!/usr/bin/env python3
"""bench/scaling_model.py: what a fleet rate takes, from measured per-task costs.

Reads the CPU cost per task of each component (measured by bench/peer.sh at
full throughput; the defaults are bench/RESULTS.md's "Issue 14, second
steps") and prints, for each target rate, how many Redis masters, Kafka
brokers and partitions, workers and producers it takes at a given
utilisation, and which component is the first to saturate as the fleet
grows. docs/scaling.md explains the rules it applies.

    python3 bench/scaling_model.py                       # the defaults
    python3 bench/scaling_model.py --redis-us 28 --rates 30000,1000000
"""
import argparse
import math


def plan(rate, a):
    """Counts for one target rate (tasks/s)."""
    core_us = 1e6 * a.utilisation  # µs of one core usable per second
    # Redis is one thread per master: a master serves core_us / redis_us tasks/s
    per_master = core_us / a.redis_us
    masters = math.ceil(rate / per_master)
    # each producer's task keys share one slot ({P}), so a producer's rate is
    # bounded by one master too, and by its own loop thread
    per_producer = min(per_master, core_us / a.producer_us)
    producers = max(math.ceil(rate / per_producer), masters)
    # a worker's loop thread carries the per-task overhead; its VM threads
    # run the task bodies (trivial here)
    per_worker = core_us / a.worker_us
    workers = math.ceil(rate / per_worker)
    # every worker needs a partition of its own (a consumer group hands a
    # partition to one member); some to spare for rebalances
    partitions = 2 ** math.ceil(math.log2(max(workers * 2, 8)))
    broker_cores = rate * a.kafka_us * a.replication / core_us
    brokers = max(math.ceil(broker_cores / a.broker_cores), a.replication)
    total_cores = rate * (a.redis_us + a.producer_us + a.worker_us
                          + a.kafka_us * a.replication) / 1e6
    return dict(rate=rate, masters=masters, producers=producers,
                workers=workers, partitions=partitions, brokers=brokers,
                cores=total_cores)


def first_bottleneck(a):
    """The component that saturates first with one of each."""
    core_us = 1e6 * a.utilisation
    caps = {
        "one Redis master": core_us / a.redis_us,
        "one producer process": core_us / a.producer_us,
        "one worker process (all its threads)": core_us / a.worker_us,
        "one Kafka broker (%d cores)" % a.broker_cores:
            core_us * a.broker_cores / (a.kafka_us * a.replication),
    }
    return sorted(caps.items(), key=lambda kv: kv[1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--producer-us", type=float, default=9.7)
    p.add_argument("--worker-us", type=float, default=8.6)
    p.add_argument("--redis-us", type=float, default=17.6)
    p.add_argument("--kafka-us", type=float, default=10.4,
                   help="broker CPU per task with replication factor 1")
    p.add_argument("--replication", type=int, default=3)
    p.add_argument("--broker-cores", type=int, default=4)
    p.add_argument("--utilisation", type=float, default=0.7,
                   help="share of a core each process may use (headroom)")
    p.add_argument("--rates", default="30000,100000,300000,1000000")
    a = p.parse_args()
    print("per task: producer %.1f, worker %.1f, redis %.1f, kafka %.1f x%d "
          "(replication) µs; %.0f%% of a core per process"
          % (a.producer_us, a.worker_us, a.redis_us, a.kafka_us,
             a.replication, 100 * a.utilisation))
    print("\nfirst to saturate, one of each (tasks/s):")
    for name, cap in first_bottleneck(a):
        print("  %-36s %9.0f" % (name, cap))
    print("\n%10s %8s %9s %8s %10s %8s %7s"
          % ("tasks/s", "masters", "producers", "workers", "partitions",
             "brokers", "cores"))
    for r in (int(x) for x in a.rates.split(",")):
        q = plan(r, a)
        print("%10d %8d %9d %8d %10d %8d %7.0f"
              % (q["rate"], q["masters"], q["producers"], q["workers"],
                 q["partitions"], q["brokers"], q["cores"]))


if __name__ == "__main__":
    main()
