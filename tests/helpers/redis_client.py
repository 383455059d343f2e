"""tests/helpers/redis_client.py: what the Python tests use to talk to a
Redis of their own or the shared one of tests/services.sh: a free loopback
port, and a minimal RESP client (no dependency beyond the standard library).

Replies decode to bytes (simple and bulk strings), int, list or None; an
error reply raises RedisError, a connection closed before its reply
ConnectionClosed (a ConnectionError).

Redis Cluster: connect(url) and command(url, ...) take a
`redis+cluster://[USER[:PW]@]HOST:PORT[,HOST:PORT...]` URL too, and give a
ClusterConn: the slot map from CLUSTER SLOTS of a seed node, each command
sent to the master of its key's slot (key_slot: CRC16 of the key, or of its
hash tag `{...}`), MOVED and ASK followed. KEYS and DBSIZE run on every
master (their replies joined, summed); scan(pattern) does SCAN on each.
"""
import socket
import time
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


def wait_ping(connect, timeout, failure):
    """Until a connection from connect() answers PING (a server starting,
    or loading its data: an error reply), at most timeout seconds; then
    RuntimeError(failure)."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            c = connect()
            c.call("PING")
            c.close()
            return
        except (OSError, RuntimeError):
            time.sleep(0.05)
    raise RuntimeError(failure)


def command(where, *args, timeout=5):
    """One command on a fresh connection (see connect): its reply."""
    with connect(where, timeout) as c:
        return c.call(*args)


# ---------------------------------------------------------------------------
# Redis Cluster


def crc16(data):
    """CRC16-CCITT (XMODEM), the cluster's key hash: crc16(b"123456789") == 0x31C3."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """The cluster slot of key (str or bytes): CRC16 mod 16384 of the part
    between the first '{' and the next '}' when that part is not empty,
    else of the whole key (the rule of CLUSTER KEYSLOT)."""
    k = key if isinstance(key, bytes) else str(key).encode()
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % 16384


def is_cluster_url(url):
    return isinstance(url, str) and url.startswith(("redis+cluster://", "rediss+cluster://"))


def parse_cluster_url(url):
    """(user, password, [(host, port), ...]) of a redis+cluster:// URL."""
    if not url.startswith("redis+cluster://"):
        raise ValueError("not a redis+cluster:// URL (TLS is not supported here): %r" % url)
    rest = url[len("redis+cluster://"):].split("/", 1)[0].split("?", 1)[0]
    user = password = None
    if "@" in rest:
        cred, rest = rest.rsplit("@", 1)
        user, _, password = cred.partition(":")
        user = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(password) if password else None
    nodes = []
    for hp in rest.split(","):
        host, _, port = hp.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("bad node %r in %r" % (hp, url))
        nodes.append((host.strip("[]"), int(port)))
    return user, password, nodes


# commands whose keys are all the arguments after the name: split per slot
_MULTI_KEY = {"DEL": "sum", "UNLINK": "sum", "EXISTS": "sum", "TOUCH": "sum", "MGET": "concat"}
# commands without a key: the first node (KEYS and DBSIZE: every master)
_NO_KEY = {"PING", "INFO", "CLUSTER", "COMMAND", "CONFIG", "TIME", "ECHO", "SCRIPT",
           "FUNCTION", "DEBUG", "CLIENT", "MEMORY", "LASTSAVE", "ROLE"}


def command_key(args):
    """The key a command is routed by (None: no key): an EVAL's first KEYS
    element, else its first argument."""
    name = str(args[0]).upper() if not isinstance(args[0], bytes) else args[0].decode().upper()
    if name in _NO_KEY or len(args) < 2:
        return None
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"):
        return args[3] if len(args) > 3 and int(args[2]) > 0 else None
    if name in ("BLMPOP", "BZMPOP"):
        return args[3] if len(args) > 3 else None
    if name in ("LMPOP", "ZMPOP"):
        return args[2] if len(args) > 2 else None
    return args[1]


class ClusterConn:
    """Commands to a Redis Cluster: each one to the master of its key's slot
    (the map from CLUSTER SLOTS), MOVED (the map asked again) and ASK
    (ASKING first, on the node named) followed, at most 5 hops."""

    def __init__(self, url, timeout=5):
        self.user, self.password, self.seeds = parse_cluster_url(url)
        self.timeout = timeout
        self.conns = {}
        self.slots = [None] * 16384
        self.refresh()

    def _conn(self, node):
        c = self.conns.get(node)
        if c is None:
            c = Conn("redis://%s:%d" % node, self.timeout)
            try:
                if self.password is not None:
                    c.call("AUTH", *([self.user] if self.user else []), self.password)
            except BaseException:
                c.close()
                raise
            self.conns[node] = c
        return c

    def _drop(self, node):
        c = self.conns.pop(node, None)
        if c is not None:
            try:
                c.close()
            except OSError:
                pass

    def refresh(self):
        """The slot map again, from the first node that answers."""
        last = None
        for node in list(dict.fromkeys(self.seeds + self.masters())):
            try:
                rows = self._conn(node).call("CLUSTER", "SLOTS")
            except (OSError, RedisError) as e:
                self._drop(node)
                last = e
                continue
            slots = [None] * 16384
            for r in rows:
                host = r[2][0].decode() or node[0]
                for s in range(int(r[0]), int(r[1]) + 1):
                    slots[s] = (host, int(r[2][1]))
            self.slots = slots
            return
        raise ConnectionError("no cluster node answered CLUSTER SLOTS: %s" % last)

    def masters(self):
        """The masters serving slots, (host, port) each, in slot order."""
        return list(dict.fromkeys(n for n in self.slots if n is not None))

    def node_of(self, key):
        return self.slots[key_slot(key)] or self.seeds[0]

    def _send(self, node, args, asking=False):
        for hop in range(6):
            try:
                c = self._conn(node)
                if asking:
                    c.call("ASKING")
                return c.call(*args)
            except RedisError as e:
                words = str(e).split()
                if hop < 5 and len(words) == 3 and words[0] in ("MOVED", "ASK"):
                    host, _, port = words[2].rpartition(":")
                    node = (host or node[0], int(port))
                    asking = words[0] == "ASK"
                    if words[0] == "MOVED":
                        self.refresh()
                    continue
                raise
            except (ConnectionError, OSError):
                self._drop(node)
                if hop >= 1:
                    raise
                self.refresh()
        raise RedisError("too many redirections for %r" % (args,))

    def call(self, *args):
        name = (args[0].decode() if isinstance(args[0], bytes) else str(args[0])).upper()
        if name == "KEYS":
            return [k for m in self.masters() for k in self._send(m, args)]
        if name == "DBSIZE":
            return sum(self._send(m, args) for m in self.masters())
        if name in _MULTI_KEY and len(args) > 2:
            by_slot = {}
            for k in args[1:]:
                by_slot.setdefault(key_slot(k), []).append(k)
            if len(by_slot) > 1:
                if _MULTI_KEY[name] == "sum":
                    return sum(self.call(args[0], *ks) for ks in by_slot.values())
                got = {}
                for ks in by_slot.values():
                    got.update(zip(ks, self.call(args[0], *ks)))
                return [got[k] for k in args[1:]]
        key = command_key(args)
        return self._send(self.node_of(key) if key is not None else self.masters()[0], args)

    def each_master(self, *args):
        """args on every master: {(host, port): reply}."""
        return {m: self._send(m, args) for m in self.masters()}

    def scan(self, pattern="*", count=1000):
        """{(host, port): [key, ...]} of every master: SCAN MATCH pattern."""
        out = {}
        for m in self.masters():
            keys, cur = [], b"0"
            while True:
                cur, batch = self._send(m, ("SCAN", cur, "MATCH", pattern, "COUNT", count))
                keys += batch
                if cur in (b"0", 0):
                    break
            out[m] = keys
        return out

    def close(self):
        for node in list(self.conns):
            self._drop(node)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(where, timeout=5):
    """A Conn, or a ClusterConn for a redis+cluster:// URL."""
    if is_cluster_url(where):
        return ClusterConn(where, timeout)
    return Conn(where, timeout)
