#!/usr/bin/env python3
"""bench/redis_script_replay.py: Redis's instructions per fleet task for two
versions of the fleet's scripts, replayed from one recording (stable on a
noisy machine: no timing, no other process in the figure).

  record BUILD N FILE   runs N trivial tasks (bench/fleet.lua, throughput
                        mode) through a mutirao-worker and producer of BUILD
                        against a redis-server of its own (no persistence)
                        and the Kafka of tests/services.sh, and writes every
                        command Redis received (MONITOR) to FILE.
  replay FILE N SRC...  per source tree SRC, replays FILE's commands in order
                        to a fresh redis-server under valgrind --tool=callgrind,
                        the fleet's scripts taken from SRC's
                        shared/wire/fleet_keys.h (SCRIPT LOAD, then EVALSHA of
                        the recorded calls' arguments); prints instructions per
                        task (N: the recording's tasks) inside EVAL/EVALSHA
                        (evalGenericCommand, inclusive) and in all of
                        redis-server (less an empty replay's).

Blocking pops are replayed as their non-blocking form (BLMPOP as LMPOP);
connection and server commands (HELLO, CLIENT, PING, INFO, CONFIG, SCRIPT,
...) are left out. Kafka: MUTIRAO_TEST_KAFKA_BROKERS or
build-services/env.sh. Needs valgrind and redis-server."""
import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "helpers"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import redis_client  # noqa: E402
from callgrind_redis import (callgrind_total, kill, shutdown, start_callgrind_redis,  # noqa: E402
                             start_redis)
from fleet_scripts import script_names, script_texts  # noqa: E402

SKIP = {b"HELLO", b"CLIENT", b"PING", b"INFO", b"CONFIG", b"SCRIPT", b"AUTH", b"SELECT",
        b"MONITOR", b"COMMAND", b"QUIT", b"SLOWLOG", b"FLUSHALL", b"SHUTDOWN"}


def unrepr(s):
    """The arguments of one MONITOR line (Redis's sdscatrepr quoting)."""
    args, i, n = [], 0, len(s)
    while i < n:
        if s[i] != '"':
            i += 1
            continue
        i += 1
        b = bytearray()
        while s[i] != '"':
            ch = s[i]
            if ch == "\\":
                nx = s[i + 1]
                if nx == "x":
                    b.append(int(s[i + 2:i + 4], 16))
                    i += 4
                    continue
                b += {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}.get(
                    nx, nx.encode("latin-1"))
                i += 2
                continue
            b += ch.encode("latin-1")
            i += 1
        args.append(bytes(b))
        i += 1
    return args


def kafka_brokers():
    """MUTIRAO_TEST_KAFKA_BROKERS, or build-services/env.sh's; exits saying
    what is missing when neither is there."""
    if not os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS"):
        env_sh = os.path.join(ROOT, "build-services", "env.sh")
        if not os.path.exists(env_sh):
            sys.exit("record: no Kafka: start the services (bash tests/services.sh start) and "
                     "source their env.sh, or set MUTIRAO_TEST_KAFKA_BROKERS")
        with open(env_sh) as f:
            for m in re.finditer(r"export (\w+)=(\S+)", f.read()):
                os.environ[m.group(1)] = m.group(2)
    return os.environ["MUTIRAO_TEST_KAFKA_BROKERS"]


def record(build, n, path):
    for exe in ("mutirao", "mutirao-worker"):
        if not os.access(os.path.join(build, "bin", exe), os.X_OK):
            sys.exit("record: no %s in %s/bin (build it first)" % (exe, build))
    kafka_brokers()
    port = redis_client.free_port()
    rs = start_redis(port)
    try:
        record_on(build, n, path, port)
    finally:
        if rs.poll() is None:
            rs.terminate()
            rs.wait()


def record_on(build, n, path, port):
    url = "redis://127.0.0.1:%d" % port
    env = dict(os.environ, MUTIRAO_KAFKA_BROKERS=kafka_brokers(), MUTIRAO_REDIS_URL=url)
    env.pop("MUTIRAO_CONFIG", None)
    mon = socket.create_connection(("127.0.0.1", port))
    mon.sendall(b"MONITOR\r\n")
    lines, stop = [], threading.Event()

    def reader():
        f = mon.makefile("rb")
        for raw in f:
            lines.append(raw)
            if stop.is_set() and raw.rstrip().endswith(b'"ECHO" "STOP"'):
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    pool = "replay%d" % os.getpid()
    tmp = tempfile.mkdtemp()
    w = subprocess.Popen([os.path.join(build, "bin", "mutirao-worker"), "--pools", pool, "--id",
                          pool, "--log-level", "warn"], env=env, cwd=tmp,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        e = dict(env, FLEET_BENCH_MODE="throughput", FLEET_BENCH_N=str(n), FLEET_BENCH_POOL=pool,
                 FLEET_BENCH_SETTLE_MS="1000")
        p = subprocess.run([os.path.join(build, "bin", "mutirao"), "run", "--fleet",
                            os.path.join(ROOT, "bench", "fleet.lua")], env=e, cwd=tmp,
                           capture_output=True, text=True, timeout=600)
        print("".join(l + "\n" for l in p.stdout.splitlines() if l.startswith("RESULT")), end="")
    finally:
        w.terminate()
        w.wait()
    stop.set()
    redis_client.command("redis://127.0.0.1:%d" % port, "ECHO", "STOP")
    t.join(30)
    mon.close()
    if p.returncode != 0:
        sys.exit("record: the producer failed (status %d): %s" % (p.returncode, p.stderr[-2000:]))
    kept = 0
    with open(path, "w") as out:
        for raw in lines:
            s = raw.decode("latin-1").rstrip("\r\n")
            m = re.match(r"\+\d+\.\d+ \[\d+ ([^\]]*)\] (.*)$", s)
            if not m or m.group(1) == "lua":  # the commands inside a script
                continue
            args = unrepr(m.group(2))
            if not args or args[0].upper() in SKIP or args[0].upper() == b"ECHO":
                continue
            out.write(json.dumps([base64.b64encode(a).decode() for a in args]) + "\n")
            kept += 1
    print("recorded %d commands of %d tasks to %s" % (kept, n, path))


def replay_one(cmds, texts, names_by_sha):
    port = redis_client.free_port()
    out = tempfile.mktemp(prefix="replay-cg.")
    rs = start_callgrind_redis(port, out)
    c = redis_client.connect("redis://127.0.0.1:%d" % port, timeout=600)
    sha = {}
    for name, text in texts.items():
        sha[name] = c.call("SCRIPT", "LOAD", text).decode()
    sent = 0
    for args in cmds:
        cmd = args[0].upper()
        if cmd in (b"EVALSHA", b"EVALSHA_RO"):
            name = names_by_sha.get(args[1].decode())
            if not name:
                continue
            args = [args[0], sha[name].encode()] + args[2:]
        elif cmd == b"BLMPOP":
            args = [b"LMPOP"] + args[2:]
        try:
            c.call(*args)
        except redis_client.RedisError as e:
            # a script that fails here would count fewer instructions
            # than it costs: no figure from this tree
            if cmd in (b"EVALSHA", b"EVALSHA_RO", b"EVAL"):
                c.close()
                kill(rs)
                if os.path.exists(out):
                    os.unlink(out)
                what = names_by_sha.get(args[1].decode(), "EVAL") if cmd != b"EVAL" else "EVAL"
                sys.exit("replay: %s failed: %s" % (what, e))
        sent += 1
    shutdown(c, rs)
    return out, sent


def replay(path, n, srcs):
    if not os.path.isfile(path):
        sys.exit("replay: no recording %s (make one with: record BUILD N %s)" % (path, path))
    for src in srcs:
        if not os.path.isfile(os.path.join(src, "shared", "wire", "fleet_keys.h")):
            sys.exit("replay: %s has no shared/wire/fleet_keys.h (give a source tree)" % src)
    cmds = []
    with open(path) as f:
        for line in f:
            cmds.append([base64.b64decode(a) for a in json.loads(line)])
    recorded = {}
    for args in cmds:
        if args[0].upper() == b"EVALSHA":
            recorded[args[1].decode()] = True
    # the recording's scripts are those of one of the trees, or of the build
    # that recorded; name them by trying each tree's texts
    names = script_names(*srcs)
    unknown = [s for s in recorded if s not in names]
    if unknown:
        sys.exit("replay: scripts in %s that no tree given has: %s" % (path, ", ".join(unknown)))
    empty, _ = replay_one([], script_texts(srcs[0]), names)
    base = callgrind_total(empty)
    os.unlink(empty)
    print("%-40s %14s %14s" % ("tree", "in EVAL/task", "redis/task"))
    for src in srcs:
        cg, sent = replay_one(cmds, script_texts(src), names)
        ev = callgrind_total(cg, "evalGenericCommand")
        tot = callgrind_total(cg) - base
        if os.environ.get("REPLAY_KEEP"):
            print("callgrind file of %s: %s" % (src, cg))
        else:
            os.unlink(cg)
        print("%-40s %14.0f %14.0f" % (src, ev / n, tot / n))


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "record":
        record(os.path.realpath(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) >= 5 and sys.argv[1] == "replay":
        replay(sys.argv[2], int(sys.argv[3]), [os.path.realpath(s) for s in sys.argv[4:]])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
