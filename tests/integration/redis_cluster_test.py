"""tests/integration/redis_cluster_test.py BIN_DIR CASE: tests against a local
3-master Redis Cluster of the test's own (redis_cluster.py), started and
stopped by the test; the shared services are not used.

Cases:
  slots   bin/test-redis-slot live SEED: the slot map of CLUSTER SLOTS, every
          key's slot against CLUSTER KEYSLOT, routing keys against COMMAND
          GETKEYS, the MOVED of the nodes not serving a key, the ASK of a
          slot being migrated (tests/c/test-redis-slot.c); then the async
          client's cluster mode (redis+cluster://) on the same cluster.
  node_restart
          bin/test-redis-slot restart SEED: a master is killed (SIGKILL)
          while the client runs and started again: its slots fail while it
          is down, the others are served, and the client reconnects.
  auth    bin/test-redis-slot auth SEED PASSWORD on a cluster whose nodes
          require a password: the URL's, the password option's, a wrong one.
  tls     bin/test-redis-slot tls SEED CA_FILE on a cluster with TLS ports only
          (rediss+cluster://: every node's certificate verified, TLS between
          the nodes too).

Without redis-server or redis-cli the test is skipped (exit 77), or fails
when CI is set.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redis_cluster  # noqa: E402


def case_slots(bindir, cluster):
    p = subprocess.run([os.path.join(bindir, "test-redis-slot"), "live", cluster.seed],
                       stdin=subprocess.DEVNULL, timeout=120)
    return p.returncode


def case_node_restart(bindir, cluster):
    p = subprocess.Popen([os.path.join(bindir, "test-redis-slot"), "restart", cluster.seed],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:
            print(line, end="", flush=True)
            words = line.split()
            if len(words) == 2 and words[0] in ("kill", "restart"):
                i = cluster.ports.index(int(words[1]))
                if words[0] == "kill":
                    cluster.kill(i)
                else:
                    cluster.restart(i)
                p.stdin.write("done\n")
                p.stdin.flush()
        return p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def case_auth(bindir, cluster):
    p = subprocess.run([os.path.join(bindir, "test-redis-slot"), "auth", cluster.seed,
                        cluster.password], stdin=subprocess.DEVNULL, timeout=120)
    return p.returncode


def case_tls(bindir, cluster):
    p = subprocess.run([os.path.join(bindir, "test-redis-slot"), "tls", cluster.seed,
                        os.path.join(cluster.tls, "ca.crt")], stdin=subprocess.DEVNULL,
                       timeout=120)
    return p.returncode


CASES = {"slots": case_slots, "node_restart": case_node_restart, "auth": case_auth,
         "tls": case_tls}
PASSWORDS = {"auth": "cluster-s3cret"}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print("usage: redis_cluster_test.py BIN_DIR {%s}" % "|".join(CASES), file=sys.stderr)
        return 2
    if not redis_cluster.available():
        print("redis-server or redis-cli not installed: skipped")
        return 1 if os.environ.get("CI") else 77
    with tempfile.TemporaryDirectory(prefix="mutirao-cluster-") as tmp:
        tls = None
        if sys.argv[2] == "tls":
            if shutil.which("openssl") is None:
                print("the openssl command is missing: skipped")
                return 1 if os.environ.get("CI") else 77
            tls = os.path.join(tmp, "certs")
            os.makedirs(tls)
            redis_cluster.make_certs(tls)
        cluster = redis_cluster.RedisCluster(tmp, password=PASSWORDS.get(sys.argv[2]), tls=tls)
        try:
            cluster.start()
            rc = CASES[sys.argv[2]](sys.argv[1], cluster)
        finally:
            cluster.stop()
    print("%s %s" % ("ok  " if rc == 0 else "FAIL", sys.argv[2]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
