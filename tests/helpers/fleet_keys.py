"""tests/helpers/fleet_keys.py: the names of the fleet's Redis keys, as the
tests build them (shared/wire/fleet_keys.h is the contract), in the layout
the Redis URL selects:

  redis://, rediss://, unix://   today's names: mutirao:task:ID, mutirao:pool:NAME...
  redis+cluster://, rediss+cluster://
                                 every key hash-tagged: mutirao:{TAG}:REST, REST
                                 being today's name without "mutirao:", TAG the
                                 task id's producer part (task keys, per-producer
                                 keys), the pool name (pool keys), "retries"
                                 (the retries sets): mutirao:{P}:task:P:17:9f..,
                                 mutirao:{P}:done:P, mutirao:{NAME}:pool:NAME:stats,
                                 mutirao:{P}:stats:NAME (a producer's counters of
                                 a pool), mutirao:{retries}:retries

    k = Layout(url)
    k.task(tid), k.task(tid, "q")      mutirao:task:ID, mutirao:task:ID:q
    k.delivery(tid)                    mutirao:delivery:ID
    k.seen(p, shard), k.sub(p, shard)  the bitmaps (shard "*": a pattern)
    k.done(p)                          producer p's notification list
    k.pool(name), k.pool(name, "stats")  mutirao:pool:NAME[:SUFFIX]
    k.producer_stats(p, name)          a producer's counters of pool name
                                       (tagged layout only; None otherwise)
    k.retries(signed=False)
    k.stats_patterns(name)             patterns of every key holding name's
                                       counters (KEYS / SCAN MATCH)
    producer_of(tid)                   the producer part of a task id
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_client import is_cluster_url  # noqa: E402

SEEN_SHARD = 4096  # FLEET_SEEN_SHARD


def producer_of(tid):
    """The producer part of a task id PRODUCER:SEQ:RANDOM (or PRODUCER:SEQ);
    an id of another form is its own tag (FLEET_SEEN_LUA's seen())."""
    m = re.match(r"^(.+):(\d+):[0-9a-fA-F]+$", tid) or re.match(r"^(.+):(\d+)$", tid)
    return m.group(1) if m else tid


def glob_escape(s):
    """s matched literally in a KEYS / SCAN pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)


class Layout:
    def __init__(self, url):
        self.tagged = is_cluster_url(url)

    def _name(self, tag, rest):
        return "mutirao:{%s}:%s" % (tag, rest) if self.tagged else "mutirao:" + rest

    def task(self, tid, suffix=""):
        return self._name(producer_of(tid), "task:" + tid + (":" + suffix if suffix else ""))

    def delivery(self, tid):
        return self._name(producer_of(tid), "delivery:" + tid)

    def seen(self, producer, shard):
        return self._name(producer, "seen:%s:%s" % (producer, shard))

    def sub(self, producer, shard):
        return self._name(producer, "sub:%s:%s" % (producer, shard))

    def bit_of(self, tid):
        """(seen key, sub key, bit) of a task id, or None for an id without a bit."""
        m = re.match(r"^(.+):(\d+):[0-9a-fA-F]+$", tid) or re.match(r"^(.+):(\d+)$", tid)
        if not m:
            return None
        p, n = m.group(1), int(m.group(2))
        return self.seen(p, n // SEEN_SHARD), self.sub(p, n // SEEN_SHARD), n % SEEN_SHARD

    def done(self, producer):
        return self._name(producer, "done:" + producer)

    def pool(self, name, suffix=""):
        return self._name(name, "pool:" + name + (":" + suffix if suffix else ""))

    def producer_stats(self, producer, name):
        return self._name(producer, "stats:" + name) if self.tagged else None

    def retries(self, signed=False):
        return self._name("retries", "retries" + (":signed" if signed else ""))

    def stats_patterns(self, name):
        """KEYS / SCAN patterns of the keys holding pool name's counters:
        the pool's stats hash, and in the tagged layout the producers' ones."""
        pats = [glob_escape(self.pool(name, "stats"))]
        if self.tagged:
            pats.append("mutirao:{*}:stats:" + glob_escape(name))
        return pats
