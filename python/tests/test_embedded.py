"""python/tests/test_embedded.py: the Python producer on the embedded backend
(pools on threads of this process): values both ways, every error family,
timeouts, closing, threads, configurations."""
import builtins
import math
import os
import tempfile
import threading
import time

import pytest

import mutirao

ECHO = "return ..."


def test_version():
    assert mutirao.library_version() == "0.1.0"


def test_submit_await(client, pool_name):
    assert client.pool_create(pool_name, workers=4) == pool_name
    tid = client.submit(pool_name, "local a, b = ... return a + b", 20, 22)
    assert isinstance(tid, str) and tid
    assert client.await_result(tid, timeout=10) == 42
    # awaited again: the same result
    assert client.await_result(tid, timeout=10) == 42
    # several values: a tuple; none: None; await_values: always a list
    tid = client.submit(pool_name, "return 1, 'two', nil, 4")
    assert client.await_result(tid, 10) == (1, "two", None, 4)
    assert client.await_values(tid, 10) == [1, "two", None, 4]
    tid = client.submit(pool_name, "local x = 1")
    assert client.await_result(tid, 10) is None
    assert client.await_values(tid, 10) == []


def test_many_tasks_and_stats(client, pool_name):
    client.pool_create(pool_name, workers=3, queue=50)
    ids = [client.submit(pool_name, "return (...) * 2", i) for i in range(1, 21)]
    assert sum(client.await_result(t, 10) for t in ids) == 420
    client.pool_wait(pool_name, timeout=10)
    st = client.pool_stats(pool_name)
    assert st == {"workers": 3, "queue": 50, "active": 0, "queued": 0, "completed": 20,
                  "failed": 0, "submitted": 20, "rejected": 0}


@pytest.mark.parametrize("value", [
    None, True, False, 0, 1, -1, 2**63 - 1, -2**63, 1.5, -0.25, 1.0, 1e300, math.inf,
    "", "plain", "unicode: ção ñ 日本語 🎉", "nul\0inside",
    b"\xff\xfe\x00binary", [1, 2, 3], [], ["a", [1, [2, [3]]], {"k": "v"}],
    {"a": 1, "b": [1.5, "x"], "nested": {"deep": {"deeper": [True]}}},
    {1: "one", 5: "five"}, {"mixed": 1, 7: 2},
])
def test_round_trip(client, pool_name, value):
    client.pool_create(pool_name)
    got = client.await_result(client.submit(pool_name, ECHO, value), 10)
    if isinstance(value, float):
        assert isinstance(got, float) and got == value  # integral floats stay floats
    else:
        assert got == value and type(got) is type(value)


def test_round_trip_special(client, pool_name):
    client.pool_create(pool_name)
    # NaN; tuples arrive as Lua sequences and come back as lists; bytes that
    # are valid UTF-8 come back as str (a Lua string is just bytes)
    nan, tup, utf8 = client.await_result(client.submit(pool_name, ECHO, math.nan, (1, 2), b"ok"))
    assert math.isnan(nan) and tup == [1, 2] and utf8 == "ok"
    # nil arguments keep their places
    tid = client.submit(pool_name, "return select('#', ...), (select(2, ...))", None, None, 3)
    assert client.await_result(tid, 10) == (3, None)
    # Lua sees the types it should
    tid = client.submit(pool_name, "local r = {} for i = 1, select('#', ...) do "
                        "r[i] = math.type((select(i, ...))) or type((select(i, ...))) end "
                        "return r", 1, 1.0, "s", b"\xff", [1], {"a": 1}, True)
    assert client.await_result(tid, 10) == ["integer", "float", "string", "string", "table",
                                            "table", "boolean"]
    # a table used as a key comes back as a tuple; sparse tables as dicts
    tid = client.submit(pool_name, "return {[{1, 2}] = 'pair'}, {[1] = 'a', [3] = 'c'}")
    assert client.await_result(tid, 10) == ({(1, 2): "pair"}, {1: "a", 3: "c"})
    # None inside a list makes a hole in the Lua table: it comes back a dict
    tid = client.submit(pool_name, ECHO, [1.5, None, "x"])
    assert client.await_result(tid, 10) == {1: 1.5, 3: "x"}
    # a large value (payload.max_bytes is 1,000,000 by default)
    big = os.urandom(900_000)
    assert client.await_result(client.submit(pool_name, ECHO, big), 10) == big


def test_task_error(client, pool_name):
    client.pool_create(pool_name)
    tid = client.submit(pool_name, "local host = ...\nerror('no such host: ' .. host)", "db-099")
    with pytest.raises(mutirao.TaskError) as ei:
        client.await_result(tid, 10)
    e = ei.value
    assert e.task_id == tid
    assert e.lua_message == "task:2: no such host: db-099"
    assert e.traceback.startswith("stack traceback:") and "in main chunk" in e.traceback
    assert str(e).startswith("task:2: no such host: db-099\nstack traceback:")
    assert isinstance(e, mutirao.MutiraoError) and e.code is None
    # the failure is kept: awaited again, the same error
    with pytest.raises(mutirao.TaskError, match="no such host"):
        client.await_values(tid, 10)
    # a table raised with error(): the value itself, no traceback
    tid = client.submit(pool_name, "error({code = 7, why = 'bad'})")
    with pytest.raises(mutirao.TaskError) as ei:
        client.await_result(tid, 10)
    assert ei.value.error == {"code": 7, "why": "bad"} and ei.value.traceback is None
    # results with no msgpack form
    tid = client.submit(pool_name, "return 1, {f = print}")
    with pytest.raises(mutirao.TaskError, match=r"cannot be sent as msgpack.*result #2\.f"):
        client.await_result(tid, 10)
    # (that one ran well: its results could not be converted)
    assert client.pool_stats(pool_name)["failed"] == 2


def test_bad_lua_source(client, pool_name):
    client.pool_create(pool_name)
    with pytest.raises(mutirao.LuaSyntaxError, match=r"^task:1: .*near <eof>") as ei:
        client.submit(pool_name, "return (")
    assert ei.value.errname == "ESYNTAX" and ei.value.code == -10
    with pytest.raises(mutirao.LuaSyntaxError, match="binary chunk"):
        client.submit(pool_name, b"\x1bLua\x54\x00")
    # source as bytes works too
    assert client.await_result(client.submit(pool_name, b"return 'b'"), 10) == "b"


def test_bad_pools(client, pool_name):
    with pytest.raises(mutirao.PoolNotFoundError, match="pool not found: " + pool_name) as ei:
        client.submit(pool_name, "return 1")
    assert isinstance(ei.value, mutirao.PoolError) and ei.value.errname == "ENOPOOL"
    with pytest.raises(mutirao.PoolNotFoundError):
        client.pool_stats(pool_name)
    with pytest.raises(mutirao.PoolNotFoundError):
        client.pool_wait(pool_name, timeout=1)
    with pytest.raises(mutirao.InvalidArgumentError, match="pool name has ' '") as ei:
        client.pool_create("bad name")
    assert isinstance(ei.value, ValueError)
    with pytest.raises(mutirao.InvalidArgumentError):
        client.pool_create("")
    client.pool_create(pool_name)
    with pytest.raises(mutirao.PoolExistsError, match="pool already exists"):
        client.pool_create(pool_name)
    client.pool_close(pool_name)
    # (the embedded backend forgets a closed pool's name at once)
    with pytest.raises(mutirao.PoolError, match="pool (is closed|not found)"):
        client.submit(pool_name, "return 1")


def test_queue_full(client, pool_name):
    client.pool_create(pool_name, workers=1, queue=1, noblock=True)
    slow = "require('goroutine').sleep(300)"
    ids = [client.submit(pool_name, slow)]
    end = time.monotonic() + 10
    while client.pool_stats(pool_name)["active"] != 1 and time.monotonic() < end:
        time.sleep(0.01)
    ids.append(client.submit(pool_name, slow))  # queued: the queue is full
    with pytest.raises(mutirao.QueueFullError, match="full") as ei:
        client.submit(pool_name, slow)
    assert isinstance(ei.value, mutirao.PoolError) and ei.value.errname == "EQUEUEFULL"
    for t in ids:
        client.await_result(t, 10)
    assert client.pool_stats(pool_name)["rejected"] == 1


def test_timeouts(client, pool_name):
    client.pool_create(pool_name)
    tid = client.submit(pool_name, "require('goroutine').sleep(1500) return 'late'")
    t0 = time.monotonic()
    with pytest.raises(mutirao.TimeoutError, match="timeout after 0.3 s") as ei:
        client.await_result(tid, timeout=0.3)
    assert 0.25 < time.monotonic() - t0 < 3
    assert isinstance(ei.value, builtins.TimeoutError) and ei.value.errname == "ETIMEDOUT"
    with pytest.raises(mutirao.TimeoutError):
        client.await_result(tid, timeout=0)
    # a wait of several slices (they are 0.5 s) that ends in time
    with pytest.raises(mutirao.TimeoutError):
        client.pool_wait(pool_name, timeout=0.2)
    assert client.await_result(tid, timeout=10) == "late"
    client.pool_wait(pool_name, timeout=5)
    with pytest.raises(mutirao.TaskNotFoundError, match="unknown task id: nobody-1") as ei:
        client.await_result("nobody-1", timeout=1)
    assert isinstance(ei.value, LookupError)


def test_wrong_argument_types(client, pool_name):
    client.pool_create(pool_name)
    for bad in ({1, 2}, object(), 1j, [1, {2}], {"k": object()}):
        with pytest.raises(TypeError, match=r"argument #2 .*cannot be sent as msgpack"):
            client.submit(pool_name, ECHO, 1, bad)
    with pytest.raises(OverflowError, match="argument #1"):
        client.submit(pool_name, ECHO, 2**64)
    # msgpack has it, Lua has not: the library refuses it
    with pytest.raises(mutirao.InvalidArgumentError, match="does not fit a Lua integer") as ei:
        client.submit(pool_name, ECHO, 2**63)
    assert ei.value.errname == "EARGS"
    with pytest.raises(mutirao.InvalidArgumentError, match="map key is nil"):
        client.submit(pool_name, ECHO, {None: 1})
    with pytest.raises(TypeError, match="pool must be a str"):
        client.submit(b"pool", ECHO)
    with pytest.raises(TypeError, match="lua_source must be a str or bytes"):
        client.submit(pool_name, 42)
    with pytest.raises(TypeError, match="task_id must be a str"):
        client.await_result(17)
    with pytest.raises(TypeError, match="timeout"):
        client.await_result("x", timeout="1")
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        client.pool_wait(pool_name, timeout=-1)
    with pytest.raises(TypeError, match="workers"):
        client.pool_create(pool_name + "w", workers="4")
    for bad in ({"workers": 0}, {"workers": -3}, {"queue": -2}):
        with pytest.raises(ValueError, match="workers must be 1 to"):
            client.pool_create(pool_name + "w", **bad)
    with pytest.raises(ValueError, match="NUL"):
        client.pool_stats("a\0b")
    # nothing of that reached the pool
    assert client.pool_stats(pool_name)["submitted"] == 0


def test_close(pool_name):
    c = mutirao.Client({"fleet": False})
    c.pool_create(pool_name)
    tid = c.submit(pool_name, "require('goroutine').sleep(10000)")
    errors = []

    def waiter():
        try:
            c.await_result(tid)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    c.close()
    th.join(5)
    assert not th.is_alive() and time.monotonic() - t0 < 4
    assert len(errors) == 1 and isinstance(errors[0], mutirao.ClientClosedError), errors
    assert c.closed
    with pytest.raises(mutirao.ClientClosedError, match="closed"):
        c.submit(pool_name, "return 1")
    c.close()  # twice: nothing
    with mutirao.Client({"fleet": False}) as c2:
        # the pool was closed with the client that made it
        with pytest.raises(mutirao.PoolError):
            c2.submit(pool_name, "return 1")
    assert c2.closed


def test_threads(client, pool_name):
    client.pool_create(pool_name, workers=4)
    out = {}

    def work(k):
        ids = [client.submit(pool_name, "local k, i = ... return k * 100 + i", k, i)
               for i in range(25)]
        out[k] = [client.await_result(t, 10) for t in ids]

    ths = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(30)
    assert out == {k: [k * 100 + i for i in range(25)] for k in range(4)}


def test_config_file_and_dict(tmp_path, pool_name):
    path = tmp_path / "my.conf"
    path.write_text("fleet = off\npayload.max_bytes = 2048\n")
    for cfg in (path, str(path), {"fleet": "off", "payload.max_bytes": 2048},
                {"fleet": False, "payload.max_bytes": "2048", "worker.pools": ["a", "b"],
                 "producer.id": None}):
        with mutirao.Client(cfg) as c:
            c.pool_create(pool_name)
            assert c.await_result(c.submit(pool_name, ECHO, "x" * 1000), 10) == "x" * 1000
            # the configuration's payload.max_bytes applies
            with pytest.raises(mutirao.InvalidArgumentError, match="payload.max_bytes") as ei:
                c.submit(pool_name, ECHO, "x" * 4000)
            assert ei.value.errname == "ETOOBIG"


def test_config_errors(tmp_path, monkeypatch):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    with pytest.raises(mutirao.ConfigError, match="No such file") as ei:
        mutirao.Client(tmp_path / "missing.conf")
    assert ei.value.errname == "ECONFIG"
    with pytest.raises(mutirao.ConfigError,
                       match=r"^config dict: topic.partitions: integer from 1 to 10000 expected"):
        mutirao.Client({"fleet": False, "topic.partitions": "lots"})
    with pytest.raises(mutirao.ConfigError, match="unknown key 'no.such'"):
        mutirao.Client({"no.such": 1})
    with pytest.raises(ValueError, match="bad key"):
        mutirao.Client({"a key": 1})
    with pytest.raises(ValueError, match="line break"):
        mutirao.Client({"redis.url": "redis://x\nfleet = on"})
    with pytest.raises(TypeError, match="config must be"):
        mutirao.Client(42)
    with pytest.raises(TypeError, match="config\\['fleet'\\]"):
        mutirao.Client({"fleet": 1.5})
    # a dict's temporary file lives only while the library reads it
    with mutirao.Client({"fleet": False}):
        assert os.listdir(tmpdir) == []
    assert os.listdir(tmpdir) == []


def test_environment_overrides(monkeypatch, pool_name):
    """MUTIRAO_* variables override the configuration, as in C."""
    monkeypatch.setenv("MUTIRAO_PAYLOAD_MAX_BYTES", "1500")
    with mutirao.Client({"fleet": False, "payload.max_bytes": 100000}) as c:
        c.pool_create(pool_name)
        with pytest.raises(mutirao.InvalidArgumentError, match="payload.max_bytes is 1500"):
            c.submit(pool_name, ECHO, "x" * 2000)
