"""tests/helpers/mutirao_test.py: what the Python test drivers share (the
fleet's and the commands' tests under tests/ops, tests/terminal,
tests/dashboard and tests/integration): the skip status ctest expects, the
services of tests/services.sh, a run's temporary directory and unique
suffix, failing with the workers' logs, running commands and task files,
an HTTP request, a free port. The Redis client is redis_client.py, the
workers fleet_worker.py (both here).

A driver puts this directory on sys.path relative to its own file, so that
it still runs alone as `python3 tests/.../x_test.py BINDIR CASE`:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "helpers"))
    import mutirao_test

Skipping: skip(why) prints "skipped: WHY" and exits with SKIP_RETURN_CODE
(77, the tests' SKIP_RETURN_CODE in tests/*/*.cmake), or 1 when CI is set
(.ci/run installs everything: a missing prerequisite is a failure there);
skip_status() is that number for a driver that returns it.

    brokers, redis = mutirao_test.services()   # or skipped
    t = mutirao_test.Run(BIN, "mutirao-ops-")  # t.tmp, t.uniq, t.workers
    env = mutirao_test.fleet_env(brokers, redis, "mutirao.workers.x" + t.uniq)
    t.workers_env(env)                         # the workers' and run()'s environment
    t.fail(msg), t.check(cond, msg)            # FAIL: and the workers' logs
    t.kill_workers()                           # at the end, whatever happened
    t.row(table, name)                         # a table's row, as columns
    make_certs(dir, extra)                     # a CA and certificates (openssl)
    t.run(args, env, timeout) -> (rc, out, err, seconds)
    t.run_lua(src, ...)                        # `mutirao run --fleet` of a task file
    t.start_lua(src), t.finish(p, timeout)     # the same in the background
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet_worker  # noqa: E402
from redis_client import free_port  # noqa: E402,F401  (a driver's free loopback port)

SKIP_RETURN_CODE = 77
SERVICES_UNSET = "MUTIRAO_TEST_KAFKA_BROKERS / MUTIRAO_TEST_REDIS_URL not set"


def skip_status():
    """The exit status of a skipped test: 77, or 1 (a failure) when CI is set."""
    return 1 if os.environ.get("CI") else SKIP_RETURN_CODE


def skip(why):
    """Prints why and exits with skip_status()."""
    print("skipped:", why)
    sys.exit(skip_status())


def services():
    """(brokers, redis URL) of tests/services.sh (MUTIRAO_TEST_KAFKA_BROKERS,
    MUTIRAO_TEST_REDIS_URL); the test is skipped without either."""
    brokers = os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS")
    redis = os.environ.get("MUTIRAO_TEST_REDIS_URL")
    if not brokers or not redis:
        skip(SERVICES_UNSET)
    return brokers, redis


def uniq():
    """A suffix unique to this run: pool names, worker groups, tokens."""
    return "%d%d" % (os.getpid(), int(time.time() * 1000) % 100000)


def env_without_mutirao(keep_test=False):
    """os.environ without the MUTIRAO_ variables (the settings of whoever
    runs the test), but MUTIRAO_TEST_ ones when keep_test."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MUTIRAO_") or (keep_test and k.startswith("MUTIRAO_TEST_"))}


def fleet_env(brokers, redis, group, drop=()):
    """os.environ with the fleet's settings: the services, log level info,
    the workers' consumer group (one of the run's own: a group's rebalance
    waits for every member, and workers of other runs would make its times
    and commits theirs); without MUTIRAO_CONFIG, MUTIRAO_FLEET and the
    names in drop."""
    e = dict(os.environ)
    e.update({"MUTIRAO_KAFKA_BROKERS": brokers, "MUTIRAO_REDIS_URL": redis,
              "MUTIRAO_LOG_LEVEL": "info", "MUTIRAO_WORKER_GROUP": group})
    for k in ("MUTIRAO_CONFIG", "MUTIRAO_FLEET") + tuple(drop):
        e.pop(k, None)
    return e


def valgrind_errors(log):
    """The error count of a valgrind log (None without a summary line)."""
    with open(log) as f:
        m = re.search(r"ERROR SUMMARY: (\d+) errors", f.read())
    return int(m.group(1)) if m else None


def with_parent(sig):
    """A preexec_fn for Popen (Linux): sig to the child when this process
    dies, so that one killed without its cleanup (a ctest timeout) leaves
    nothing behind."""
    def preexec():
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    return preexec


def tcp_open(port):
    """Something accepts connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def http(port, path, method="GET", body=None, headers=None, timeout=10):
    """(status, headers, body text) of one request to 127.0.0.1:port with
    urllib (an error status is an answer too)."""
    data = None if body is None else body.encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def make_certs(d, extra=False):
    """With the openssl command, in directory d: ca.crt (ca.key) signs
    server.crt (server.key; 127.0.0.1 and localhost). extra: also
    other-ca.crt (signs nothing used), client.crt (client.key) signed by
    ca.crt, and server-keystore.pem (Kafka's PEM keystore: the unencrypted
    PKCS#8 key and the certificate). A failing command raises RuntimeError."""
    def sh(cmd):
        r = subprocess.run(cmd, shell=True, cwd=d, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("%s: %s%s" % (cmd, r.stdout, r.stderr))
    for ca in ("ca", "other-ca") if extra else ("ca",):
        sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s.key -out %s.crt -days 2 "
           "-subj '/CN=mutirao test %s'" % (ca, ca, ca))
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
       "-subj '/CN=localhost'")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    sh("openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
       "-out server.crt -days 2 -extfile server.ext")
    if extra:
        sh("openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
           "-subj '/CN=mutirao-client'")
        sh("openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
           "-out client.crt -days 2")
        sh("cat server.key server.crt > server-keystore.pem")


class Run:
    """One run of a driver: its temporary directory (tmp), unique suffix
    (uniq), the fleet_worker.Worker processes it started (workers), and
    failing with their logs. dumps: more callables fail() runs to show
    what a run started (after the workers' logs)."""

    def __init__(self, bindir, prefix):
        self.bindir = bindir
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.uniq = uniq()
        self.workers = []
        self.dumps = []
        self.skipped = False
        self.workers_env(None)

    def workers_env(self, env):
        """The environment the workers and the commands of run() start from
        (env itself, not a copy: later changes to it reach what starts
        later); None: os.environ."""
        self.env = env
        fleet_worker.setup(self.bindir, self.tmp, self.uniq, self.workers, self.fail,
                           base_env=env)

    def skip(self, why):
        """skip(why), this run's directory removed first."""
        self.skipped = True
        shutil.rmtree(self.tmp, ignore_errors=True)
        skip(why)

    def fail(self, msg):
        print("FAIL:", msg)
        for w in self.workers:
            w.dump()
        for d in self.dumps:
            d()
        sys.exit(1)

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)

    def kill_workers(self):
        """SIGKILL to the workers still running (a run's end, whatever
        happened)."""
        for w in self.workers:
            if w.p.poll() is None:
                w.p.kill()
                w.p.wait()

    def row(self, table, name):
        """The columns of table's line whose first column is name (a
        failure when there is none)."""
        for line in table.splitlines():
            cols = line.split()
            if cols and cols[0] == name:
                return cols
        self.fail("no row %s in:\n%s" % (name, table))

    def run(self, args, env=None, timeout=60, cwd=None, base=None):
        """args run to their end in cwd (default: tmp), with the environment
        base (default: the workers' one, else os.environ) updated with env;
        (exit status, stdout, stderr, seconds). Not ended within timeout:
        a failure."""
        if base is None:
            base = os.environ if self.env is None else self.env
        e = dict(base)
        e.update(env or {})
        t0 = time.time()
        try:
            p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               env=e, cwd=cwd or self.tmp, timeout=timeout)
        except subprocess.TimeoutExpired as ex:
            self.fail("%s did not finish within %d s:\n%s\n%s" % (args, timeout, ex.stdout,
                                                                 ex.stderr))
        return p.returncode, p.stdout, p.stderr, time.time() - t0

    def script(self, src):
        """src in a new task file of tmp: its path."""
        path = os.path.join(self.tmp, "script-%d.lua" % len(os.listdir(self.tmp)))
        with open(path, "w") as f:
            f.write(src)
        return path

    def run_lua(self, src, fleet=True, timeout=90, env=None, base=None):
        """`mutirao run --fleet FILE` (fleet=False: without --fleet) of src
        in a new task file, as run() runs it."""
        args = [os.path.join(self.bindir, "mutirao"), "run"] + (["--fleet"] if fleet else [])
        return self.run(args + [self.script(src)], env, timeout, base=base)

    def start_lua(self, src, env=None):
        """`mutirao run --fleet FILE` of src started, stdout and stderr piped:
        the Popen, for finish()."""
        e = dict(os.environ if self.env is None else self.env)
        e.update(env or {})
        return subprocess.Popen([os.path.join(self.bindir, "mutirao"), "run", "--fleet",
                                 self.script(src)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=e, cwd=self.tmp)

    def finish(self, p, timeout=90, what="mutirao run"):
        """(exit status, stdout, stderr) of p, started by start_lua; killed
        and a failure when it has not ended within timeout."""
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            self.fail("%s did not finish within %d s:\n%s\n%s" % (what, timeout, out, err))
        return p.returncode, out, err
