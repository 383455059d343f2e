"""tests/integration/worker_keys_test.py BIN_DIR CASE: bin/worker-keys-check
(tests/integration/worker_keys.c: the worker's Redis calls, one key layout)
against a server of the test's own, started and stopped here; the shared
services are not used.

Cases:
  flat     a redis-server (private_redis.py), redis://: the flat layout.
  cluster  a 3-master Redis Cluster (redis_cluster.py), redis+cluster://:
           the tagged layout (one slot per call, the ASK and REPLAY answers,
           the outbox).

Without redis-server (or redis-cli for a cluster) the test is skipped (exit
77), or fails when CI is set.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import private_redis  # noqa: E402
import redis_cluster  # noqa: E402
from mutirao_test import skip  # noqa: E402


def check(bindir, url):
    p = subprocess.run([os.path.join(bindir, "worker-keys-check"), url],
                       stdin=subprocess.DEVNULL, timeout=100)
    return p.returncode


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("flat", "cluster"):
        print("usage: worker_keys_test.py BIN_DIR {flat|cluster}", file=sys.stderr)
        return 2
    case = sys.argv[2]
    if not (redis_cluster.available() if case == "cluster" else private_redis.available()):
        skip("redis-server or redis-cli not installed")
    with tempfile.TemporaryDirectory(prefix="mutirao-worker-keys-") as tmp:
        if case == "flat":
            server = private_redis.PrivateRedis(tmp, aof=False)
            try:
                server.start()
                rc = check(sys.argv[1], server.url)
            finally:
                server.kill()
        else:
            cluster = redis_cluster.RedisCluster(tmp)
            try:
                cluster.start()
                rc = check(sys.argv[1], "redis+cluster://" + cluster.seed)
            finally:
                cluster.stop()
    print("%s %s" % ("ok  " if rc == 0 else "FAIL", case))
    return rc


if __name__ == "__main__":
    sys.exit(main())
