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

  py_client
          the tests' own cluster client (tests/helpers/redis_client.py,
          ClusterConn, which fleet_cluster_test.py's cases read Redis with):
          key_slot against CLUSTER KEYSLOT (hash tags, empty and odd
          braces), keys written through it read back with `redis-cli -c`
          and found on the master of their slot, a stale slot map (MOVED),
          a slot half migrated (ASK), multi-key commands across slots, KEYS
          and SCAN of every master; and fleet_keys.py's tagged names each in
          the slot of its tag.

Without redis-server or redis-cli the test is skipped (exit 77), or fails
when CI is set.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import redis_cluster  # noqa: E402
import fleet_keys  # noqa: E402
import redis_client  # noqa: E402
from mutirao_test import skip  # noqa: E402


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


def case_py_client(bindir, cluster):
    def check(cond, msg):
        if not cond:
            raise AssertionError(msg)
    url = "redis+cluster://" + ",".join("127.0.0.1:%d" % p for p in cluster.ports)
    node_conns = [cluster.conn(i) for i in range(cluster.n)]
    keys = ["", "a", "foo", "{user1000}.following", "{user1000}.followers", "foo{}{bar}",
            "foo{{bar}}zap", "foo{bar}{zap}", "}{x}", "{", "}", "{}",
            "mutirao:{p.1:2}:task:p.1:2:ab",
            "\xff\x00bin"] + ["key:%d" % i for i in range(300)] + ["{t%d}:x" % i for i in range(50)]
    for k in keys:
        want = node_conns[0].call("CLUSTER", "KEYSLOT", k)
        check(redis_client.key_slot(k) == want, "key_slot(%r) = %d, CLUSTER KEYSLOT %d" %
              (k, redis_client.key_slot(k), want))
    check(redis_client.crc16(b"123456789") == 0x31C3, "crc16 check value")
    cli = [shutil.which("redis-cli"), "-c", "-p", str(cluster.ports[0])]
    with redis_client.ClusterConn(url) as c:
        check(len(c.masters()) == cluster.n, "masters: %r" % c.masters())
        for i, k in enumerate(keys):
            c.call("SET", k, "v%d" % i)
        for i, k in enumerate(keys[:120]):
            if "\x00" in k:
                continue  # not an argument of a command line
            got = subprocess.run(cli + ["GET", k], capture_output=True, text=True, timeout=10)
            check(got.stdout.strip() == "v%d" % i, "redis-cli -c GET %r: %r" % (k, got.stdout))
            port = c.node_of(k)[1]
            check(cluster.conn(cluster.ports.index(port)).call("EXISTS", k) == 1,
                  "%r not on the master of its slot (%d)" % (k, port))
        # keys spread: every master holds some
        spread = {m: len(ks) for m, ks in c.scan("key:*").items()}
        check(all(n > 0 for n in spread.values()) and sum(spread.values()) == 300,
              "SCAN of every master: %r" % spread)
        check(len(c.call("KEYS", "key:*")) == 300 and c.call("DBSIZE") == len(set(keys)),
              "KEYS, DBSIZE")
        # multi-key commands over several slots: per slot, summed or in order
        check(c.call("EXISTS", "key:1", "key:2", "key:3", "nokey") == 3, "EXISTS across slots")
        check(c.call("MGET", "key:1", "nokey", "key:2") == [b"v15", None, b"v16"], "MGET")
        check(c.call("DEL", "key:1", "key:2") == 2, "DEL across slots")
        # a stale map: every slot said to be on master 0; MOVED corrects it
        stale = redis_client.ClusterConn(url)
        first = stale.masters()[0]
        stale.slots = [first] * 16384
        for i, k in enumerate(keys[20:80]):  # (key:1 and key:2 were deleted)
            check(stale.call("GET", k) == b"v%d" % (i + 20), "GET %r through MOVED" % k)
        check(stale.masters() == c.masters(), "the map after MOVED: %r" % stale.masters())
        stale.close()
        # ASK: a slot half migrated from its master to another
        k = "{ask}:moved"
        slot = redis_client.key_slot(k)
        src, dst = c.node_of(k), [m for m in c.masters() if m != c.node_of(k)][0]
        cs, cd = (cluster.conn(cluster.ports.index(n[1])) for n in (src, dst))
        ids = {n: cluster.conn(cluster.ports.index(n[1])).call("CLUSTER", "MYID").decode()
               for n in (src, dst)}
        c.call("SET", k, "before")
        c.call("SET", "{ask}:stays", "here")
        cd.call("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
        cs.call("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
        cs.call("MIGRATE", dst[0], dst[1], "", 0, 5000, "KEYS", k)
        try:
            cs.call("GET", k)
            check(False, "no ASK from the migrating node")
        except redis_client.RedisError as e:
            check(str(e).startswith("ASK %d " % slot), "the migrating node: %s" % e)
        check(c.call("GET", k) == b"before", "GET through ASK")
        check(c.call("GET", "{ask}:stays") == b"here", "a key not migrated yet")
        c.call("SET", k, "after")  # ASK again: written on the importing node
        check(cd.call("ASKING") == b"OK" and cd.call("GET", k) == b"after", "SET through ASK")
        for n in (src, dst):
            cluster.conn(cluster.ports.index(n[1])).call("CLUSTER", "SETSLOT", slot, "STABLE")
    # fleet_keys.py: every tagged name in the slot of its tag
    lay = fleet_keys.Layout(url)
    tid = "prodA.1234abcd.1:17:" + "9f" * 16
    p = fleet_keys.producer_of(tid)
    check(p == "prodA.1234abcd.1", "producer_of: %r" % p)
    for name, tag in ((lay.task(tid), p), (lay.task(tid, "w"), p), (lay.delivery(tid), p),
                      (lay.done(p), p), (lay.bit_of(tid)[0], p), (lay.bit_of(tid)[1], p),
                      (lay.producer_stats(p, "mypool"), p), (lay.pool("mypool"), "mypool"),
                      (lay.pool("mypool", "dead:env"), "mypool"), (lay.retries(), "retries"),
                      (lay.retries(True), "retries")):
        check(name.startswith("mutirao:{%s}:" % tag), "%r: not tagged {%s}" % (name, tag))
        check(node_conns[0].call("CLUSTER", "KEYSLOT", name) ==
              node_conns[0].call("CLUSTER", "KEYSLOT", tag), "%r: not in its tag's slot" % name)
    check(lay.task(tid) == "mutirao:{%s}:task:%s" % (p, tid), lay.task(tid))
    check(fleet_keys.Layout("redis://x").task(tid) == "mutirao:task:" + tid, "plain names")
    for conn in node_conns:
        conn.close()
    print("py_client: %d slots checked, MOVED and ASK followed" % len(keys))
    return 0


CASES = {"slots": case_slots, "node_restart": case_node_restart, "auth": case_auth,
         "tls": case_tls, "py_client": case_py_client}
PASSWORDS = {"auth": "cluster-s3cret"}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print("usage: redis_cluster_test.py BIN_DIR {%s}" % "|".join(CASES), file=sys.stderr)
        return 2
    if not redis_cluster.available():
        skip("redis-server or redis-cli not installed")
    with tempfile.TemporaryDirectory(prefix="mutirao-cluster-") as tmp:
        tls = None
        if sys.argv[2] == "tls":
            if shutil.which("openssl") is None:
                skip("the openssl command is missing")
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
