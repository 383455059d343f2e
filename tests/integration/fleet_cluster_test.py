#!/usr/bin/env python3
"""tests/integration/fleet_cluster_test.py BINDIR EXAMPLES CASE: a case of
fleet_test.py with Redis being a fresh local 3-master Redis Cluster.

Starts a cluster of its own (redis_cluster.py: redis-server processes on
free loopback ports, joined with `redis-cli --cluster create`), runs
`fleet_test.py BINDIR EXAMPLES CASE` with MUTIRAO_TEST_REDIS_URL set to
redis+cluster://<every master> (the Kafka of tests/services.sh as for the
other cases, MUTIRAO_TEST_KAFKA_BROKERS), stops the cluster at the end,
also when the case fails, times out (CASE_TIMEOUT_S, below ctest's 240 s,
then the case's process group gets SIGTERM and SIGKILL) or this process is
stopped (SIGTERM, SIGINT, SIGHUP; its redis-server processes die with it
even on a SIGKILL), and exits with the case's code (77: skipped).

On the cluster the fleet's keys are hash-tagged (tests/helpers/fleet_keys.py)
and fleet_test.py's direct reads of Redis go to the master of each key's
slot (tests/helpers/redis_client.py, ClusterConn).

The cases registered as integration.fleet_cluster_CASE (integration.cmake):
  examples await_wg two_workers sigkill errors libmutirao semantics
  two_clients lingering os_exit retention large_values rebalance_busy poison
  redelivered newer_envelope dlq revoked timeout deadline memory retries
  retries_sigkill sigterm sigint_twice sandbox sandbox_secrets signed hostile
  signed_results crafted_bytecode foreign_pending stock_lua (not with
  sanitizers, as integration.fleet_stock_lua), and
  layout   (fleet_test.py's case_layout) two pools, two producer processes,
           then SCAN of every master: every key tagged mutirao:{TAG}:, the
           keys of each pool's and producer's tag all on the master serving
           it (the pools' names chosen to be on two masters), the counts
           exact.
  master_restart (only here) the master serving the producer's tasks
           SIGKILLed mid-run and started again, then the pool's master (or
           another one) (the nodes with AOF, appendfsync always: AOF_CASES):
           every task completes once.
  worker_sigkill_nested (only here) a worker SIGKILLed three times while
           tasks change their producer's WaitGroups and tasks they submit
           change them too (across slots, through the outbox).

The case may kill and restart masters: it gets the masters' ports in
MUTIRAO_TEST_CLUSTER_PORTS and asks this process to kill or start one
(redis_cluster.node_request; this process serves it with NodeControl while
it waits for the case, so the nodes stay its own).
Left out:
  redis_restart_aof redis_restart_nopersist notify_dropped notify_gone
  reconcile_bounded no_worker_hint
           they run a redis-server of their own (private_redis.py: a
           restart, a cutting proxy, its command counts), so the cluster
           would not be used.
  valgrind the same run as examples under valgrind: a memory check of the
           binaries, not of the Redis they use (integration.fleet_valgrind).

Without redis-server or redis-cli, or without the Kafka address, the test
is skipped (exit 77), or fails when CI is set.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "helpers"))
import redis_cluster  # noqa: E402
from mutirao_test import skip, with_parent  # noqa: E402

# the cases whose masters keep their data over a restart (AOF, appendfsync
# always): they kill and restart masters (NodeControl)
AOF_CASES = {"master_restart"}
CASE_TIMEOUT_S = float(os.environ.get("MUTIRAO_CLUSTER_CASE_TIMEOUT_S", "215"))


class Stopped(Exception):
    """This process got SIGTERM, SIGINT or SIGHUP."""


def _stopped(signum, frame):
    raise Stopped(signal.Signals(signum).name)


def stop_group(p):
    """SIGTERM to the case's process group (the case, its workers and
    producers), SIGKILL to what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # the case's leader ended: its group may still hold children
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def cluster_url(cluster):
    return "redis+cluster://" + ",".join("127.0.0.1:%d" % port for port in cluster.ports)


def main():
    if len(sys.argv) != 4:
        print("usage: fleet_cluster_test.py BINDIR EXAMPLES CASE", file=sys.stderr)
        return 2
    bindir, examples, case = sys.argv[1:]
    if not os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS"):
        skip("MUTIRAO_TEST_KAFKA_BROKERS not set")
    if not redis_cluster.available():
        skip("redis-server or redis-cli not installed")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _stopped)
    rc = 1
    p = None
    with tempfile.TemporaryDirectory(prefix="mutirao-fleet-cluster-") as tmp:
        cluster = redis_cluster.RedisCluster(tmp, aof=case in AOF_CASES)
        try:
            t0 = time.time()
            cluster.start()
            url = cluster_url(cluster)
            print("cluster %s up in %.1f s" % (url, time.time() - t0), flush=True)
            env = dict(os.environ, MUTIRAO_TEST_REDIS_URL=url)
            ctl = redis_cluster.NodeControl(cluster, os.path.join(tmp, "ctl"))
            env.update(ctl.env())
            # objects_X: fleet_objects_test.py's case X (channels, semaphores
            # and AtomicInts in keys tagged by object)
            if case.startswith("objects_"):
                args = [os.path.join(HERE, "fleet_objects_test.py"), bindir, case[8:]]
            else:
                args = [os.path.join(HERE, "fleet_test.py"), bindir, examples, case]
            p = subprocess.Popen([sys.executable] + args, stdin=subprocess.DEVNULL, env=env,
                                 start_new_session=True, preexec_fn=with_parent(signal.SIGTERM))
            end = time.time() + CASE_TIMEOUT_S
            while True:
                try:
                    rc = p.wait(0.05)
                    break
                except subprocess.TimeoutExpired:
                    pass
                ctl.serve()  # the case's requests to kill or start a master
                if time.time() > end:
                    print("FAIL: %s did not finish within %.0f s" % (case, CASE_TIMEOUT_S),
                          flush=True)
                    rc = 1
                    break
            for at, req, answer in ctl.log:
                print("%.1f s: %s: %s" % (at - t0, req, answer))
            dead = [port for port, proc in zip(cluster.ports, cluster.procs)
                    if proc is None or proc.poll() is not None]
            if dead:
                print("FAIL: cluster node(s) %s died during the case" % dead)
                rc = rc or 1
        except Stopped as e:
            print("FAIL: stopped by %s" % e, flush=True)
            rc = 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            if p is not None:
                stop_group(p)
            cluster.stop()
    print("%s cluster %s" % ("ok  " if rc == 0 else ("skip" if rc == 77 else "FAIL"), case))
    return rc


if __name__ == "__main__":
    sys.exit(main())
