"""tests/integration/redis_cluster_test.py BIN_DIR CASE: tests against a local
3-master Redis Cluster of the test's own (redis_cluster.py), started and
stopped by the test; the shared services are not used.

Cases:
  slots   bin/test-redis-slot live SEED: the slot map of CLUSTER SLOTS, every
          key's slot against CLUSTER KEYSLOT, routing keys against COMMAND
          GETKEYS, the MOVED of the nodes not serving a key, the ASK of a
          slot being migrated (tests/c/test-redis-slot.c).

Without redis-server or redis-cli the test is skipped (exit 77), or fails
when CI is set.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redis_cluster  # noqa: E402


def case_slots(bindir, cluster):
    p = subprocess.run([os.path.join(bindir, "test-redis-slot"), "live", cluster.seed],
                       stdin=subprocess.DEVNULL, timeout=120)
    return p.returncode


CASES = {"slots": case_slots}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print("usage: redis_cluster_test.py BIN_DIR {%s}" % "|".join(CASES), file=sys.stderr)
        return 2
    if not redis_cluster.available():
        print("redis-server or redis-cli not installed: skipped")
        return 1 if os.environ.get("CI") else 77
    with tempfile.TemporaryDirectory(prefix="mutirao-cluster-") as tmp:
        cluster = redis_cluster.RedisCluster(tmp)
        try:
            cluster.start()
            rc = CASES[sys.argv[2]](sys.argv[1], cluster)
        finally:
            cluster.stop()
    print("%s %s" % ("ok  " if rc == 0 else "FAIL", sys.argv[2]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
