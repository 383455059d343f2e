"""tests/helpers/fleet_worker.py: a `mutirao-worker` process of the
integration tests (tests/integration/fleet_test.py and tls_test.py), with its
output in a log file the test can wait on and print when it fails.

A test calls setup() once, then starts workers with Worker(name, pools, env):
  setup(BIN, TMP, UNIQ, WORKERS, fail, base_env=ENV)
BIN holds mutirao-worker; each worker runs in TMP, logs to
TMP/worker-NAME.log and has the id NAME-UNIQ; each one started is appended
to WORKERS (the test stops them at its end and dumps their logs in fail);
fail(msg) reports a failure and does not return. A worker's environment is
base_env (none when not given) updated with its env.
"""
import os
import re
import signal
import subprocess
import time

_cfg = {}


def setup(bindir, tmp, uniq, workers, fail, base_env=None):
    _cfg.update(bindir=bindir, tmp=tmp, uniq=uniq, workers=workers, fail=fail,
                base_env=base_env)


class Worker:
    def __init__(self, name, pools, env=None, prefix=None):
        self.name = name
        self.log = os.path.join(_cfg["tmp"], "worker-%s.log" % name)
        e = dict(_cfg["base_env"] or {})
        e.update(env or {})
        self.f = open(self.log, "w")
        self.p = subprocess.Popen(
            (prefix or []) + [os.path.join(_cfg["bindir"], "mutirao-worker"),
                              "--id", "%s-%s" % (name, _cfg["uniq"]),
                              "--pools", ",".join(pools), "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=self.f, stderr=subprocess.STDOUT, env=e,
            cwd=_cfg["tmp"])
        _cfg["workers"].append(self)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def wait_for(self, pattern, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if re.search(pattern, self.text()):
                return
            if self.p.poll() is not None:
                _cfg["fail"]("worker %s exited early" % self.name)
            time.sleep(0.05)
        _cfg["fail"]("worker %s: no line matching %r within %d s" % (self.name, pattern, timeout))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                _cfg["fail"]("worker %s did not stop on SIGTERM within 30 s" % self.name)
        return self.p.returncode

    def dump(self):
        print("---- worker %s log (last 40 lines) ----" % self.name)
        print("\n".join(self.text().splitlines()[-40:]))
