"""bench/callgrind_redis.py: a private redis-server (no persistence) for the
benchmarks, optionally under valgrind --tool=callgrind, stopped with
SHUTDOWN NOSAVE so that callgrind writes its file, and the instruction
totals read from that file. Its users put tests/helpers on sys.path (for
redis_client) before importing it."""
import re
import subprocess

import redis_client


def start_redis(port, wrap=()):
    """redis-server on 127.0.0.1:PORT (WRAP: a command line before it),
    once it answers PING; RuntimeError if it does not within 60 s."""
    p = subprocess.Popen(list(wrap) + ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        redis_client.wait_ping(lambda: redis_client.connect("redis://127.0.0.1:%d" % port), 60,
                               "redis-server did not start")
    except BaseException:
        kill(p)
        raise
    return p


def start_callgrind_redis(port, out, toggle=None):
    """start_redis under callgrind writing to OUT, counting everything or,
    with TOGGLE (a function name), only inside that function."""
    wrap = ["valgrind", "--tool=callgrind"]
    if toggle:
        wrap.append("--toggle-collect=" + toggle)
    return start_redis(port, wrap + ["--callgrind-out-file=" + out])


def shutdown(c, rs):
    """SHUTDOWN NOSAVE on connection C, then wait for the process RS (its
    callgrind file is complete once it has exited)."""
    try:
        c.call("SHUTDOWN", "NOSAVE")
    except (ConnectionError, OSError, redis_client.RedisError):
        pass
    rs.wait(120)


def kill(rs):
    """Kill the process RS if it still runs, and reap it."""
    if rs.poll() is None:
        rs.kill()
        rs.wait()


def callgrind_total(path, fn=None):
    """Instructions in the callgrind file: all, or inclusive in fn."""
    if fn is None:
        with open(path) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1])
        return 0
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) .*\b%s\b" % re.escape(fn), line)
        if m:
            return int(m.group(1).replace(",", ""))
    return 0
