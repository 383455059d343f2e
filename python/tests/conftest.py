"""python/tests/conftest.py: fixtures of the Python producer's tests.

The tests find libmutirao as users do (MUTIRAO_LIB, else the usual places;
tests/python/run_pytest.py sets MUTIRAO_LIB to the build tree's). The fleet
tests (marker `fleet`) read the services' addresses as the fleet tests of
tests/integration do: MUTIRAO_TEST_KAFKA_BROKERS and MUTIRAO_TEST_REDIS_URL
(tests/services.sh writes them); without them they are skipped, or fail
when CI is set. They start mutirao-worker processes from MUTIRAO_TEST_BIN
(the build's bin/ folder), each in a consumer group of its own.
"""
import os
import re
import subprocess
import time
from typing import Dict, Iterator, List, Optional

import pytest

import mutirao

# MUTIRAO_* variables override every configuration (the C library reads
# them): the tests choose theirs explicitly
for _k in list(os.environ):
    if _k.startswith("MUTIRAO_") and not _k.startswith("MUTIRAO_TEST_") and _k != "MUTIRAO_LIB":
        del os.environ[_k]

UNIQ = "%d%d" % (os.getpid(), int(time.time() * 1000) % 100000)
_count = [0]


def unique(prefix: str) -> str:
    """A pool name no other test or run uses."""
    _count[0] += 1
    return "py%s%s-%d" % (prefix, UNIQ, _count[0])


@pytest.fixture
def pool_name() -> str:
    return unique("p")


@pytest.fixture
def client(tmp_path) -> Iterator[mutirao.Client]:
    """An embedded client (fleet off), whatever the current directory holds."""
    with mutirao.Client({"fleet": False}) as c:
        yield c


# ---- the fleet ----


class Fleet:
    """The services' addresses, and mutirao-worker processes of this run."""

    def __init__(self, brokers: str, redis: str, bindir: str, tmp: str):
        self.brokers, self.redis, self.bindir, self.tmp = brokers, redis, bindir, tmp
        self.workers: List["Worker"] = []

    def config(self, more: Optional[Dict[str, object]] = None) -> Dict[str, object]:
        """A client configuration (dict) on this fleet, with more keys."""
        cfg: Dict[str, object] = {"fleet": True, "kafka.brokers": self.brokers,
                                  "redis.url": self.redis, "connect.timeout_ms": 5000,
                                  "op.timeout_ms": 10000}
        cfg.update(more or {})
        return cfg

    def worker(self, name: str, pools: List[str], env: Optional[Dict[str, str]] = None) -> "Worker":
        w = Worker(self, name, pools, env or {})
        self.workers.append(w)
        return w

    def tool(self, *args: str) -> str:
        p = subprocess.run([os.path.join(self.bindir, "mutirao")] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                           cwd=self.tmp)
        assert p.returncode == 0, "mutirao %s: %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr)
        return p.stdout


class Worker:
    """A mutirao-worker process consuming pools, its output in a log file."""

    def __init__(self, fleet: Fleet, name: str, pools: List[str], env: Dict[str, str]):
        self.name = name
        self.log = os.path.join(fleet.tmp, "worker-%s.log" % name)
        e = dict(os.environ)
        e.update({"MUTIRAO_KAFKA_BROKERS": fleet.brokers, "MUTIRAO_REDIS_URL": fleet.redis,
                  "MUTIRAO_WORKER_GROUP": "mutirao.workers.py" + UNIQ + name})
        e.update(env)
        self._f = open(self.log, "w")
        self.p = subprocess.Popen(
            [os.path.join(fleet.bindir, "mutirao-worker"), "--id", "%s-%s" % (name, UNIQ),
             "--pools", ",".join(pools), "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=self._f, stderr=subprocess.STDOUT, env=e,
            cwd=fleet.tmp)

    def text(self) -> str:
        with open(self.log) as f:
            return f.read()

    def wait_for(self, pattern: str, timeout: float = 60) -> None:
        end = time.time() + timeout
        while time.time() < end:
            if re.search(pattern, self.text()):
                return
            assert self.p.poll() is None, "worker %s exited early:\n%s" % (self.name, self.text())
            time.sleep(0.05)
        raise AssertionError("worker %s: no line matching %r within %d s:\n%s"
                             % (self.name, pattern, timeout, self.text()[-3000:]))

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("worker %s did not stop on SIGTERM" % self.name)
        self._f.close()
        return self.p.returncode


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[Fleet]:
    brokers = os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS")
    redis = os.environ.get("MUTIRAO_TEST_REDIS_URL")
    bindir = os.environ.get("MUTIRAO_TEST_BIN")
    if not brokers or not redis or not bindir:
        why = "MUTIRAO_TEST_KAFKA_BROKERS / MUTIRAO_TEST_REDIS_URL / MUTIRAO_TEST_BIN not set"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    f = Fleet(brokers, redis, bindir, str(tmp_path_factory.mktemp("fleet")))
    yield f
    bad = []
    for w in f.workers:
        if w.stop() != 0:
            bad.append("worker %s exited %s:\n%s" % (w.name, w.p.returncode, w.text()[-3000:]))
    assert not bad, "\n".join(bad)
