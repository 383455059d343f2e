"""python/tests/test_fleet.py: the Python producer on the fleet: real Kafka
and Redis (tests/services.sh), tasks run by mutirao-worker processes this
module starts; and a client that signs its tasks (auth.signing_key) for a
worker that accepts only signed ones (auth.trusted_keys)."""
import os
import re
import time

import pytest

import mutirao

from conftest import unique

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def pools(fleet):
    """Two pools of this run and a worker consuming them."""
    names = [unique("f"), unique("f")]
    w = fleet.worker("plain", names)
    w.wait_for(r"consuming")
    return names, w


def test_fleet_submit_await(fleet, pools):
    (pool, _), w = pools
    with mutirao.Client(fleet.config()) as c:
        c.pool_create(pool, workers=4)
        ids = [c.submit(pool, "local a, b = ... return a * b, 'x'", i, 3) for i in range(1, 11)]
        assert [c.await_result(t, 60) for t in ids] == [(i * 3, "x") for i in range(1, 11)]
        # awaited again
        assert c.await_result(ids[0], 10) == (3, "x")
        c.pool_wait(pool, timeout=30)
        st = c.pool_stats(pool)
        assert st["submitted"] == 10 and st["completed"] == 10 and st["failed"] == 0, st
        assert st["active"] == 0 and st["queued"] == 0, st
    # the worker ran them
    assert re.search(r"pool=%s task=\S+ attempt 1 received" % re.escape(pool), w.text())


def test_fleet_values(fleet, pools):
    (pool, _), _w = pools
    value = {"s": "unicode: ção 日本 🎉", "b": b"\xff\x00raw", "n": [1, -2**63, 2**63 - 1, 1.0,
             1.5, True, False], "t": {"deep": [[1], {"k": []}]}, "i": {3: "three"}}
    with mutirao.Client(fleet.config()) as c:
        c.pool_create(pool)
        got = c.await_result(c.submit(pool, "return ...", value, "second", None), 60)
        assert got == (value, "second", None)
        assert isinstance(got[0]["n"][3], float) and isinstance(got[0]["n"][0], int)


def test_fleet_errors(fleet, pools):
    (_, pool), _w = pools
    with mutirao.Client(fleet.config()) as c:
        c.pool_create(pool)
        tid = c.submit(pool, "local host = ...\nerror('no such host: ' .. host)", "db-7")
        with pytest.raises(mutirao.TaskError) as ei:
            c.await_result(tid, 60)
        assert ei.value.lua_message.endswith("no such host: db-7"), ei.value
        assert ei.value.traceback and "stack traceback:" in ei.value.traceback
        with pytest.raises(mutirao.LuaSyntaxError, match="near"):
            c.submit(pool, "return )")
        with pytest.raises(TypeError):
            c.submit(pool, "return ...", object())
        # a task that outlives the wait
        tid = c.submit(pool, "require('goroutine').sleep(1500) return 'late'")
        with pytest.raises(mutirao.TimeoutError):
            c.await_result(tid, timeout=0.3)
        assert c.await_result(tid, timeout=60) == "late"
        # a pool nobody created, a bad name
        with pytest.raises(mutirao.PoolNotFoundError):
            c.pool_stats(unique("none"))
        with pytest.raises(mutirao.InvalidArgumentError):
            c.pool_create("no way")


def test_fleet_other_client_awaits(fleet, pools):
    """On the fleet a task id can be awaited by another client."""
    (pool, _), _w = pools
    with mutirao.Client(fleet.config()) as a, mutirao.Client(fleet.config()) as b:
        a.pool_create(pool)
        tid = a.submit(pool, "return 'from a'")
        assert b.await_result(tid, 60) == "from a"


def test_fleet_signed(fleet, tmp_path):
    """A client configured with auth.signing_key signs its tasks: a worker
    that trusts only that key runs them, and refuses an unsigned client's."""
    keys = str(tmp_path / "keys")
    out = fleet.tool("keygen", "--out", keys, "--name", "py")
    assert re.search(r"key id [0-9a-f]{16}$", out, re.M), out
    key, pub = os.path.join(keys, "py.key"), os.path.join(keys, "py.pub")
    pool = unique("signed")
    w = fleet.worker("signed", [pool], env={"MUTIRAO_AUTH_TRUSTED_KEYS": pub})
    w.wait_for(r"consuming")
    assert "auth: 1 trusted key(s); unsigned task envelopes are refused" in w.text()
    with mutirao.Client(fleet.config({"auth.signing_key": key})) as c:
        c.pool_create(pool, workers=2)
        ids = [c.submit(pool, "return (...) + 1", i) for i in range(5)]
        assert [c.await_result(t, 60) for t in ids] == [1, 2, 3, 4, 5]
    assert "refused unrun" not in w.text()
    # the same through a configuration file
    conf = tmp_path / "signed.conf"
    conf.write_text("".join("%s = %s\n" % (k, "on" if v is True else v)
                            for k, v in fleet.config({"auth.signing_key": key}).items()))
    with mutirao.Client(str(conf)) as c:
        assert c.await_result(c.submit(pool, "return 'file'"), 60) == "file"
    # unsigned: never runs (the await times out), the worker says why
    with mutirao.Client(fleet.config()) as c:
        tid = c.submit(pool, "return 'unsigned ran'")
        with pytest.raises(mutirao.TimeoutError):
            c.await_result(tid, timeout=3)
    w.wait_for(r"refused unrun: task envelope is not signed")
    # a signing key that cannot be read: the first fleet call says so
    with mutirao.Client(fleet.config({"auth.signing_key": str(tmp_path / "none.key")})) as c:
        with pytest.raises(mutirao.MutiraoError, match=r"auth\.signing_key: .*none\.key"):
            c.pool_create(pool)
            c.submit(pool, "return 1")


def test_fleet_unreachable(tmp_path):
    """A fleet client whose Redis cannot be reached fails with a message,
    within its timeouts, and does not hang."""
    cfg = {"fleet": True, "kafka.brokers": os.environ.get("MUTIRAO_TEST_KAFKA_BROKERS", "127.0.0.1:1"),
           "redis.url": "redis://127.0.0.1:1", "connect.timeout_ms": 1000, "op.timeout_ms": 2000}
    t0 = time.monotonic()
    with mutirao.Client(cfg) as c:
        with pytest.raises(mutirao.MutiraoError) as ei:
            c.pool_create(unique("unreach"))
    assert time.monotonic() - t0 < 20
    assert "127.0.0.1:1" in str(ei.value) or "redis" in str(ei.value).lower(), ei.value
