"""tests/faults/lab.py: the private Kafka and redis-server a fault scenario
restarts, and the reaper that stops everything it started if the scenario
itself is killed.

Never the shared services of tests/services.sh's default state dir: Kafka is
started by tests/services.sh in a state dir of the scenario's own
(MUTIRAO_SERVICES=kafka, MUTIRAO_SERVICES_DIR=STATE/kafka-svc, free ports),
redis-server directly, on a free port, in STATE/redis. A restart keeps the
data (Kafka's log dir, Redis's AOF) and the ports.
"""
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "helpers"))
import redis_client  # noqa: E402
from mutirao_test import tcp_open  # noqa: E402
from redis_client import free_port  # noqa: E402


class LabError(Exception):
    pass


def wait_until(cond, timeout, what, step=0.05):
    """cond()'s first true value, polled every step seconds; LabError when
    there is none within timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise LabError("%s: not within %d s" % (what, timeout))


def resp(port, *args, timeout=5):
    """One Redis command on a fresh connection: the decoded reply (bytes,
    int, list, None), or an exception for an error reply."""
    try:
        return redis_client.command(port, *args, timeout=timeout)
    except redis_client.RedisError as e:
        raise LabError("redis: %s" % e) from None
    except redis_client.ConnectionClosed:
        raise LabError("redis closed the connection") from None


class Reaper:
    """A detached process (not a descendant, so it outlives a SIGKILL of the
    whole tree) that waits for the scenario's process to end and then kills
    what the scenario recorded in STATE/pids and stops Kafka through
    tests/services.sh. A normal end stops the reaper first (release), so a
    reaper never outlives its run into the next one of the same state dir."""

    CODE = r"""
import os, signal, subprocess, sys, time
parent, state, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
child = os.fork()
if child:
    print(child, flush=True)
    os._exit(0)
os.setsid()
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)     # the caller reads our stdout until every copy is closed
done = os.path.join(state, "reaper.done")
while True:
    if os.path.exists(done):
        sys.exit(0)
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(0.5)
if os.path.exists(done):
    sys.exit(0)
try:
    lines = open(os.path.join(state, "pids")).read().split("\n")
except OSError:
    lines = []
for line in lines:
    pid, _, pattern = line.partition(" ")
    if not pid.isdigit():
        continue
    try:
        cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        continue
    if pattern in cmd:
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except OSError:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
env = dict(os.environ, MUTIRAO_SERVICES_DIR=os.path.join(state, "kafka-svc"))
subprocess.call(["bash", os.path.join(root, "tests", "services.sh"), "stop"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""

    def __init__(self, state):
        self.state = state
        self.pidfile = os.path.join(state, "pids")
        try:
            os.unlink(os.path.join(state, "reaper.done"))
        except FileNotFoundError:
            pass
        r = subprocess.run([sys.executable, "-c", self.CODE, str(os.getpid()), state, ROOT],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           check=True, timeout=10)
        self.pid = int(r.stdout.strip())

    def record(self, pid, pattern):
        """The reaper kills pid's process group (or pid) if its command line
        still contains pattern."""
        with open(self.pidfile, "a") as f:
            f.write("%d %s\n" % (pid, pattern))

    def release(self):
        """Stop the reaper: everything it would stop has been stopped."""
        open(os.path.join(self.state, "reaper.done"), "w").close()
        try:
            with open("/proc/%d/cmdline" % self.pid, "rb") as f:
                ours = self.state.encode() in f.read()
            if ours:
                os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass                  # it has already gone


def spawn(argv, log, reaper, pattern, env=None, cwd=None):
    """Popen in a new session (its own process group), output appended to log."""
    f = open(log, "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                         env=env, cwd=cwd, start_new_session=True)
    f.close()
    reaper.record(p.pid, pattern)
    return p


def stop_proc(p, sig=signal.SIGTERM, timeout=30):
    """Signal the process group of p, wait; SIGKILL after timeout. Returns its
    exit status."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
    return p.returncode


class Redis:
    """A private redis-server; aof=True: appendonly yes, appendfsync always."""

    def __init__(self, state, reaper, aof=False):
        self.dir = os.path.join(state, "redis")
        self.log = os.path.join(state, "redis.log")
        self.reaper = reaper
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d" % self.port
        self.argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
                     "--save", "", "--dir", self.dir, "--daemonize", "no"]
        self.argv += (["--appendonly", "yes", "--appendfsync", "always"] if aof
                      else ["--appendonly", "no"])
        self.p = None
        os.makedirs(self.dir, exist_ok=True)

    def start(self, timeout=30):
        self.p = spawn(self.argv, self.log, self.reaper, "redis-server")

        def up():
            if self.p.poll() is not None:
                raise LabError("redis-server exited (%s); see %s" % (self.p.returncode, self.log))
            try:
                return resp(self.port, "PING") == b"PONG"
            except (OSError, LabError):
                return False    # not listening yet, or LOADING the AOF
        wait_until(up, timeout, "redis-server on port %d" % self.port)

    def stop(self, sig=signal.SIGTERM):
        if self.p:
            stop_proc(self.p, sig)

    def cmd(self, *args):
        return resp(self.port, *args)


class Kafka:
    """A private single-node Kafka started by tests/services.sh; restart()
    stops the broker (SIGTERM, a clean shutdown) and starts it again with the
    same command line, log dir and ports."""

    def __init__(self, state, reaper):
        self.svc = os.path.join(state, "kafka-svc")
        self.reaper = reaper
        self.p = None            # the broker once this object restarted it
        self.pid = None
        self.brokers = None

    def _services(self, what):
        env = dict(os.environ, MUTIRAO_SERVICES="kafka", MUTIRAO_SERVICES_DIR=self.svc)
        for k in ("MUTIRAO_KAFKA_PORT", "MUTIRAO_KAFKA_CONTROLLER_PORT"):
            env.pop(k, None)
        return subprocess.run(["bash", os.path.join(ROOT, "tests", "services.sh"), what],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=env, timeout=900)

    def start(self):
        r = self._services("start")
        if r.returncode != 0:
            raise LabError("tests/services.sh start (kafka) failed:\n%s%s" % (r.stdout, r.stderr))
        with open(os.path.join(self.svc, "kafka.pid")) as f:
            self.pid = int(f.read().strip())
        self.reaper.record(self.pid, "kafka.Kafka")
        with open(os.path.join(self.svc, "kafka.env")) as f:
            self.brokers = f.read().strip().split("=", 1)[1]
        self.port = int(self.brokers.rsplit(":", 1)[1])
        with open("/proc/%d/cmdline" % self.pid, "rb") as f:
            self.argv = [a.decode() for a in f.read().split(b"\0") if a]
        self.log = os.path.join(self.svc, "kafka.log")

    def _alive(self):
        if self.p:
            return self.p.poll() is None
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop_broker(self, timeout=60):
        """SIGTERM the broker and wait for it to exit (SIGKILL after timeout)."""
        if self.p:
            stop_proc(self.p, signal.SIGTERM, timeout)
            return
        os.kill(self.pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while self._alive() and time.monotonic() < end:
            time.sleep(0.05)
        if self._alive():
            os.kill(self.pid, signal.SIGKILL)
            wait_until(lambda: not self._alive(), 10, "kafka pid %d to die" % self.pid)

    def start_broker(self, timeout=90):
        mark = os.path.getsize(self.log)
        self.p = spawn(self.argv, self.log, self.reaper, "kafka.Kafka", cwd=ROOT)
        self.pid = self.p.pid
        with open(os.path.join(self.svc, "kafka.pid"), "w") as f:
            f.write("%d\n" % self.pid)

        def up():
            if self.p.poll() is not None:
                raise LabError("kafka exited during its restart; see %s" % self.log)
            with open(self.log, "rb") as f:
                f.seek(mark)
                text = f.read()
            return ((b"Kafka Server started" in text or b"started (kafka.server.KafkaRaftServer)"
                     in text) and tcp_open(self.port))
        wait_until(up, timeout, "kafka restart on port %d" % self.port, step=0.1)

    def close(self):
        if self.p:
            stop_proc(self.p, signal.SIGTERM, 60)
        self._services("stop")
