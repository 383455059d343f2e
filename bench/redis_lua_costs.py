#!/usr/bin/env python3
"""bench/redis_lua_costs.py: what one step of a Redis script costs, in
instructions (valgrind --tool=callgrind, counted inside EVAL/EVALSHA only:
evalGenericCommand), so that the fleet's scripts (shared/wire/fleet_keys.h)
can be written with the costs in view.

Each case is a script that loops over its 50 ARGV elements doing one thing
per element; it runs 200 times on a fresh redis-server (no persistence)
under callgrind. Printed: instructions per element, and the same less the
empty loop's (the step's own cost). Needs valgrind and redis-server."""
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "helpers"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import redis_client  # noqa: E402
from callgrind_redis import callgrind_total, kill, shutdown, start_callgrind_redis  # noqa: E402

LOOP = ("local function f(a) return 0 end\n"
        "local x, pre, t = 0, KEYS[1], {} for i = 1, #ARGV do %s end return x")
CASES = [
    ("empty loop (x = x + 1)", "x = x + 1"),
    ("a call of a local Lua function", "x = x + f(i)"),
    ("tonumber of an ARGV string", "x = x + tonumber(ARGV[i])"),
    ("math.floor", "x = x + math.floor(i / 8)"),
    ("bit.band", "x = x + bit.band(i, 3)"),
    ("a 3-part string concatenation", "local k = pre .. 'task:' .. ARGV[i] x = x + 1"),
    ("a table append (t[#t+1])", "t[#t+1] = i"),
    ("redis.call GETBIT", "x = x + redis.call('GETBIT', pre, ARGV[i])"),
    ("redis.call SETBIT (value '1')", "x = x + redis.call('SETBIT', pre, ARGV[i], '1')"),
    ("redis.call SETBIT (value 1, a number)", "x = x + redis.call('SETBIT', pre, ARGV[i], 1)"),
    ("redis.call SET", "redis.call('SET', pre .. ARGV[i], 'value')"),
    ("redis.call SET EX", "redis.call('SET', pre .. ARGV[i], 'value', 'EX', '100')"),
    ("redis.call DEL (a missing key)", "redis.call('DEL', pre .. 'none' .. ARGV[i])"),
]
ROUNDS, ELEMENTS = 200, 50


def one(body):
    port = redis_client.free_port()
    out = tempfile.mktemp(prefix="lua-costs-cg.")
    rs = start_callgrind_redis(port, out, toggle="evalGenericCommand")
    try:
        c = redis_client.connect("redis://127.0.0.1:%d" % port, timeout=600)
        sha = c.call("SCRIPT", "LOAD", LOOP % body).decode()
        args = [str((i * 37) % 4096) for i in range(ELEMENTS)]
        for _ in range(ROUNDS):
            c.call("EVALSHA", sha, "1", "bm", *args)
        shutdown(c, rs)
    finally:
        kill(rs)
    total = callgrind_total(out)
    os.unlink(out)
    return total / (ROUNDS * ELEMENTS)


def main():
    print("%-40s %12s %12s" % ("step", "instr/elem", "less empty"))
    base = None
    for name, body in CASES:
        n = one(body)
        base = n if base is None else base
        print("%-40s %12.0f %12.0f" % (name, n, n - base), flush=True)


if __name__ == "__main__":
    main()
