"""tests/integration/private_redis.py: a redis-server of a test's own, which
the test may kill and restart (the shared one of tests/services.sh is never
touched); conn() is a minimal RESP client to look inside it
(tests/helpers/redis_client.py)."""
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from redis_client import Conn, free_port, wait_ping  # noqa: E402


class PrivateRedis:
    """redis-server on a free loopback port, with AOF (appendfsync always)
    or without any persistence; kill() is a SIGKILL (a crash), start()
    brings it back on the same port and directory."""

    def __init__(self, tmp, aof):
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis-%d" % self.port)
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "redis.log")
        self.args = [shutil.which("redis-server"), "--port", str(self.port),
                     "--bind", "127.0.0.1", "--save", "", "--dir", self.dir,
                     "--logfile", self.log]
        self.args += (["--appendonly", "yes", "--appendfsync", "always"] if aof
                      else ["--appendonly", "no"])
        self.p = None
        self.url = "redis://127.0.0.1:%d" % self.port

    def start(self, timeout=20):
        self.p = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # LOADING until the AOF is read: an error reply
        wait_ping(lambda: Conn(self.port, 1), timeout,
                  "private redis-server did not start on port %d" % self.port)

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def conn(self):
        return Conn(self.port)


def available():
    return shutil.which("redis-server") is not None


class CuttingProxy:
    """A TCP relay in front of a Redis (for one client process) that, when
    armed, drops connections right after Redis answered a BLMPOP with
    elements: the elements were popped, and their reply is never delivered
    (what a connection reset mid-reply does). While held, it does not pass
    BLMPOP commands on: notifications stay in Redis. command and reply
    choose other commands (bytes the command contains) and answers (bytes
    the reply starts with) to cut."""

    def __init__(self, upstream_port, command=b"BLMPOP", reply=b"*2\r\n"):
        self.up = upstream_port
        self.command, self.reply = command, reply
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.url = "redis://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.armed = 0   # replies still to drop
        self.dropped = 0  # replies dropped (their elements lost)
        self.closed = False
        self.held = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, on):
        self.held = on

    def arm(self, n):
        with self.lock:
            self.armed += n

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.up), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            state = {"blmpop": False}
            threading.Thread(target=self._pump, args=(c, u, state, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, state, False), daemon=True).start()

    def _pump(self, src, dst, state, to_server):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_server:
                    state["blmpop"] = self.command in data.upper()
                    while state["blmpop"] and self.held and not self.closed:
                        time.sleep(0.01)
                elif state["blmpop"] and data.startswith(self.reply):
                    with self.lock:
                        cut = self.armed > 0
                        if cut:
                            self.armed -= 1
                            self.dropped += 1
                    if cut:
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closed = True
        self.ls.close()
