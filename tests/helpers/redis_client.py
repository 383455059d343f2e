"""tests/helpers/redis_client.py: what the Python tests use to talk to a
Redis of their own or the shared one of tests/services.sh: a free loopback
port, and a minimal RESP client (no dependency beyond the standard library).

Replies decode to bytes (simple and bulk strings), int, list or None; an
error reply raises RedisError, a connection closed before its reply
ConnectionClosed (a ConnectionError).
"""
import socket
import urllib.parse


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on (now)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisError(RuntimeError):
    """An error reply (str() is the server's text), or a reply that is not RESP."""


class ConnectionClosed(ConnectionError):
    """The server closed the connection before its reply."""


def encode(args):
    """One command in RESP: an array of bulk strings (str(a) for non-bytes)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def read_reply(f):
    """The next reply from the binary file f."""
    line = f.readline()
    if not line:
        raise ConnectionClosed("connection closed")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest
    if t == b"-":
        raise RedisError(rest.decode(errors="replace"))
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        return f.read(n + 2)[:-2]
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise RedisError("unexpected reply %r" % line)


class Conn:
    """One connection to port on 127.0.0.1, or to a redis:// URL (its
    password and database number applied); call(*args) returns the reply."""

    def __init__(self, where, timeout=5):
        if isinstance(where, int):
            host, port, password, db = "127.0.0.1", where, None, None
        else:
            u = urllib.parse.urlparse(where)
            host, port, password, db = u.hostname, u.port or 6379, u.password, u.path.strip("/")
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.f = self.s.makefile("rb")
        try:
            if password:
                self.call("AUTH", password)
            if db:
                self.call("SELECT", db)
        except BaseException:
            self.close()
            raise

    def call(self, *args):
        self.s.sendall(encode(args))
        return read_reply(self.f)

    def close(self):
        self.f.close()
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def command(where, *args, timeout=5):
    """One command on a fresh connection (see Conn): its reply."""
    with Conn(where, timeout) as c:
        return c.call(*args)
