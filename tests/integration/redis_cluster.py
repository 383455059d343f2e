"""tests/integration/redis_cluster.py: a local Redis Cluster of a test's own:
N masters (3 by default, no replicas), redis-server processes on free
loopback ports, joined with `redis-cli --cluster create`. The shared Redis
of tests/services.sh is never touched; stop() kills only the processes
this object spawned (their data stays in the test's own directory), and
they die with the test's process (PR_SET_PDEATHSIG) if it is killed first.

    c = RedisCluster(tmpdir)   # password="pw": nodes that require it;
                               # tls=DIR (make_certs(DIR)): TLS ports only;
                               # aof=True: AOF with appendfsync always, so
                               # a master killed and restarted keeps every
                               # write it acknowledged
    c.start()            # every slot served, cluster_state:ok on every node
    c.seed               # "127.0.0.1:PORT" of the first master
    c.conn(i)            # a RESP connection to master i (no redirects)
    c.kill(i) / c.restart(i)   # SIGKILL master i / start it again (same port,
                               # nodes.conf: it keeps its slots, and its data
                               # only with aof=True; a node timeout of 15 s:
                               # a short outage does not fail the cluster)
    c.stop()

A process the cluster's owner runs (fleet_cluster_test.py's case) kills and
restarts masters through NodeControl: the owner serves the requests (the
nodes stay its children, die with it and are stopped by stop()), the case
calls node_request (files in a directory both know, named by env vars):

    ctl = NodeControl(c, dir)    # owner: env = dict(env, **ctl.env())
    ctl.serve()                  # owner: handles pending requests (poll it)
    node_request("kill", i)      # case: SIGKILL master i (index in
    node_request("start", i)     # MUTIRAO_TEST_CLUSTER_PORTS), start it
                                 # again (returns once it answers and
                                 # the cluster is ok)
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import mutirao_test  # noqa: E402
from redis_client import Conn, wait_ping  # noqa: E402


class TlsConn(Conn):
    """Conn over TLS (the server's certificate checked against ca_file):
    only the connecting differs (Conn's __init__ is not run), call and
    close are Conn's, on the TLS socket."""

    def __init__(self, port, ca_file, timeout=5):
        ctx = ssl.create_default_context(cafile=ca_file)
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.f = self.s.makefile("rb")


def make_certs(d):
    """d/ca.crt signs d/server.crt (127.0.0.1, localhost): for tls=d."""
    mutirao_test.make_certs(d)


def _port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _cluster_port():
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port + 10000 <= 65535 and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def available():
    """redis-server and redis-cli (redis-tools: --cluster) are installed."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


class RedisCluster:
    def __init__(self, tmp, masters=3, password=None, tls=None, aof=False):
        self.tmp = tmp
        self.aof = aof
        self.n = masters
        self.password = password
        self.tls = tls  # a directory with ca.crt, server.crt, server.key: TLS only
        self.ports = []
        self.dirs = []
        self.procs = []

    def _args(self, i):
        d = self.dirs[i]
        if self.tls:
            port = ["--port", "0", "--tls-port", str(self.ports[i]), "--tls-cluster", "yes",
                    "--tls-cert-file", os.path.join(self.tls, "server.crt"),
                    "--tls-key-file", os.path.join(self.tls, "server.key"),
                    "--tls-ca-cert-file", os.path.join(self.tls, "ca.crt"),
                    "--tls-auth-clients", "no"]
        else:
            port = ["--port", str(self.ports[i])]
        return [shutil.which("redis-server")] + port + [
                "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", os.path.join(d, "nodes.conf"),
                "--cluster-node-timeout", "15000", "--save", ""] + (
                    ["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                    else ["--appendonly", "no"]) + [
                "--dir", d, "--logfile", os.path.join(d, "redis.log")] + (
                    ["--requirepass", self.password, "--masterauth", self.password]
                    if self.password else [])

    def _spawn(self, i):
        return subprocess.Popen(self._args(i), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=mutirao_test.with_parent(signal.SIGKILL))

    def _wait_ping(self, i, timeout=20):
        wait_ping(lambda: self._conn(i, 1), timeout,
                  "cluster node on port %d did not start" % self.ports[i])

    def start(self, timeout=60):
        for i in range(self.n):
            self.ports.append(_cluster_port())
            d = os.path.join(self.tmp, "cluster-%d" % self.ports[i])
            os.makedirs(d)
            self.dirs.append(d)
            self.procs.append(self._spawn(i))
        for i in range(self.n):
            self._wait_ping(i)
        cmd = [shutil.which("redis-cli")]
        if self.tls:
            cmd += ["--tls", "--cacert", os.path.join(self.tls, "ca.crt")]
        cmd += ["--cluster", "create"]
        cmd += ["127.0.0.1:%d" % p for p in self.ports]
        cmd += ["--cluster-replicas", "0", "--cluster-yes"]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=timeout, env=env)
        if out.returncode != 0:
            raise RuntimeError("redis-cli --cluster create failed:\n" +
                               out.stdout.decode(errors="replace"))
        self.wait_ok(timeout)

    def wait_ok(self, timeout=60):
        """Until every live node says cluster_state:ok and knows every master."""
        end = time.time() + timeout
        while time.time() < end:
            ok = True
            for i in range(self.n):
                if self.procs[i] is None:
                    continue
                try:
                    c = self.conn(i)
                    info = c.call("CLUSTER", "INFO").decode()
                    slots = c.call("CLUSTER", "SLOTS")
                    c.close()
                except (OSError, RuntimeError):
                    ok = False
                    break
                covered = sum(int(r[1]) - int(r[0]) + 1 for r in slots)
                if "cluster_state:ok" not in info or covered != 16384 or len(slots) < self.n:
                    ok = False
                    break
            if ok:
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok in %ds" % timeout)

    @property
    def seed(self):
        return "127.0.0.1:%d" % self.ports[0]

    def _conn(self, i, timeout=5):
        if self.tls:
            c = TlsConn(self.ports[i], os.path.join(self.tls, "ca.crt"), timeout)
        else:
            c = Conn(self.ports[i], timeout)
        if self.password:
            c.call("AUTH", self.password)
        return c

    def conn(self, i):
        return self._conn(i)

    def kill(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        self.procs[i] = None

    def restart(self, i):
        self.kill(i)
        self.procs[i] = self._spawn(i)
        self._wait_ping(i)

    def stop(self):
        for i in range(len(self.procs)):
            self.kill(i)


CTL_ENV = "MUTIRAO_TEST_CLUSTER_CTL"
PORTS_ENV = "MUTIRAO_TEST_CLUSTER_PORTS"


class NodeControl:
    """Serves a child process's requests to kill or start a master of
    cluster: each request is a file N.req ("kill I" or "start I") in d,
    answered by N.rep ("ok" or "error: ...") once done."""

    def __init__(self, cluster, d):
        self.cluster = cluster
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.log = []  # (time, request, answer)

    def env(self):
        return {CTL_ENV: self.d, PORTS_ENV: ",".join(str(p) for p in self.cluster.ports)}

    def _do(self, words):
        if len(words) != 2 or words[0] not in ("kill", "start"):
            return "error: bad request %r" % " ".join(words)
        i = int(words[1])
        if not 0 <= i < self.cluster.n:
            return "error: no master %d" % i
        if words[0] == "kill":
            self.cluster.kill(i)
        else:
            self.cluster.restart(i)
            self.cluster.wait_ok(60)
        return "ok"

    def serve(self):
        for name in sorted(os.listdir(self.d)):
            if not name.endswith(".req"):
                continue
            path = os.path.join(self.d, name)
            with open(path) as f:
                words = f.read().split()
            try:
                answer = self._do(words)
            except (OSError, RuntimeError, ValueError) as e:
                answer = "error: %s" % e
            self.log.append((time.time(), " ".join(words), answer))
            rep = path[:-4] + ".rep"
            with open(rep + ".tmp", "w") as f:
                f.write(answer)
            os.rename(rep + ".tmp", rep)
            os.unlink(path)


def control_available():
    return bool(os.environ.get(CTL_ENV) and os.environ.get(PORTS_ENV))


def control_ports():
    """The masters' ports, index order of node_request."""
    return [int(p) for p in os.environ[PORTS_ENV].split(",")]


_seq = [0]


def node_request(op, i, timeout=90):
    """From the cluster owner's child: op ("kill" or "start") master i;
    returns once done (RuntimeError when it failed or took over timeout s)."""
    d = os.environ[CTL_ENV]
    _seq[0] += 1
    base = os.path.join(d, "%d-%06d" % (os.getpid(), _seq[0]))
    with open(base + ".tmp", "w") as f:
        f.write("%s %d" % (op, i))
    os.rename(base + ".tmp", base + ".req")
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(base + ".rep") as f:
                answer = f.read()
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        os.unlink(base + ".rep")
        if answer != "ok":
            raise RuntimeError("%s %d: %s" % (op, i, answer))
        return
    raise RuntimeError("%s %d: no answer within %d s" % (op, i, timeout))
