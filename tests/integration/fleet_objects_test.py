#!/usr/bin/env python3
"""tests/integration/fleet_objects_test.py BINDIR CASE: channels, semaphores
and AtomicInts captured by fleet tasks (Redis-backed), end to end with two
mutirao-worker processes against the Kafka and Redis of tests/services.sh
(MUTIRAO_TEST_KAFKA_BROKERS / MUTIRAO_TEST_REDIS_URL; without them the case
is skipped with exit 77, or fails when CI is set).

Cases:
  channels   buffered and unbuffered channels, close, try_*, select,
             select_timeout, the module functions, errors at submit and on
             misuse, timeouts cancelling a wait
  sync       a semaphore limits tasks on two workers; AtomicInt operations
  sigkill    a worker killed while its tasks send: every value whose send
             returned (recorded in an AtomicInt after each send) arrives
             exactly once, and what arrives of each task has no gap
  hostile    what someone else wrote into an object's keys is refused with
             a clear message that shows no raw bytes of it
  example    examples/fleet_channel.lua on the fleet
  valgrind   the producer and a worker under valgrind
  cut        the producer's Redis connection reset right after receives
             took values: each is received once
"""
import os
import re
import signal
import string
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import fleet_worker  # noqa: E402
import mutirao_test  # noqa: E402
import redis_client  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import private_redis  # noqa: E402

BIN, CASE = os.path.abspath(sys.argv[1]), sys.argv[2]
BROKERS, REDIS = mutirao_test.services()
T = mutirao_test.Run(BIN, "mutirao-fobj-")
TMP, UNIQ = T.tmp, T.uniq
ENV = mutirao_test.fleet_env(BROKERS, REDIS, "mutirao.workers.o" + UNIQ)
T.workers_env(ENV)
fail, check = T.fail, T.check
Worker = fleet_worker.Worker


def run_lua(src, timeout=120):
    return T.run_lua(src, timeout=timeout)


def two_workers(pool):
    a = Worker("objA", [pool])
    b = Worker("objB", [pool])
    a.wait_for(r"consuming")
    b.wait_for(r"consuming")
    return a, b


def expect_lines(out, err, wanted):
    """Each wanted line (exact) is in out."""
    lines = out.splitlines()
    for w in wanted:
        check(w in lines, "missing line %r\n--- stdout\n%s--- stderr\n%s" % (w, out, err))


def start_producer(src, first, env=None):
    """src started with `mutirao run --fleet` (env: variables added to its
    environment), its first line read: a failure unless the whole line
    (stripped) matches the regex first. (the process, the match.) The
    script prints nothing more until the test lets it go on: a line read
    ahead with the first would not reach end_producer."""
    p = T.start_lua(src, env=env)
    line = p.stdout.readline()
    m = re.fullmatch(first, line.strip())
    check(m, "the producer's first line: %r, not %r" % (line, first))
    return p, m


def end_producer(p, timeout, what="the producer"):
    """(stdout, stderr) of p, started by start_producer, once it exited 0
    within timeout s; a failure otherwise."""
    rc, out, err = T.finish(p, timeout, what)
    check(rc == 0, "%s: %d\n%s%s" % (what, rc, out, err))
    return out, err


# The script prints "name<TAB>result" lines; each assert raises with a message.
CHANNELS = r"""
local g = require("goroutine")
local P = %(pool)r
assert(g.pool_create(P, {workers = 16}))
g.sleep(3000) -- both workers in the group
local function say(name, ...)
  local t = {name}
  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
  print(table.concat(t, "\t"))
end

-- buffered: 8 tasks x 50 values through a channel of 16, received in the producer
local ch = g.channel(16)
local ids = {}
for t = 1, 8 do
  ids[t] = assert(g.pool_submit(P, function(n)
    for i = 1, 50 do assert(ch:send(n * 1000 + i)) end
    return n
  end, t))
end
g.spawn(function()
  for _, id in ipairs(ids) do assert(g.await(id)) end
  assert(ch:close())
end)
local seen, n, dup = {}, 0, 0
for v in ch:iter() do
  n = n + 1
  if seen[v] then dup = dup + 1 end
  seen[v] = true
end
local missing = 0
for t = 1, 8 do for i = 1, 50 do if not seen[t * 1000 + i] then missing = missing + 1 end end end
say("buffered", n, dup, missing, tostring(ch:is_closed()), ch:len(), ch:cap())
say("closed_again", tostring(ch:close()), select(2, ch:close()))
say("send_closed", ch:send(1))
say("receive_closed", tostring(ch:receive()), tostring(select(2, ch:receive())))

-- unbuffered: a send returns once a receiver took the value
local un = g.channel()
local rid = assert(g.pool_submit(P, function()
  g.sleep(400)
  local got = {}
  for v in un:iter() do got[#got + 1] = v end
  return #got, got[1], got[#got]
end))
local t0 = g.now()
assert(un:send("first"))
local waited = g.now() - t0
for i = 2, 20 do assert(un:send(i)) end
say("unbuffered_len", un:len())
assert(un:close())
local ok, cnt, first, last = g.await(rid)
say("unbuffered", tostring(ok), cnt, first, last, waited >= 300 and "waited" or ("early " .. waited))

-- close wakes every receiver
local wake = g.channel(4)
local rids = {}
for i = 1, 3 do
  rids[i] = assert(g.pool_submit(P, function()
    local v, ok2 = wake:receive()
    return v == nil and ok2 == false
  end))
end
g.sleep(1500)
assert(wake:close())
local woke = 0
for i = 1, 3 do local ok2, r = g.await(rids[i]); if ok2 and r then woke = woke + 1 end end
say("close_wakes_receivers", woke)

-- close wakes a sender blocked on a full channel, with the error
local full = g.channel(1)
assert(g.await(assert(g.pool_submit(P, function() return full:send("x") end))))
local sid = assert(g.pool_submit(P, function() return full:send("y") end))
g.sleep(1500)
assert(full:close())
say("close_wakes_sender", select(2, g.await(sid)))
say("drain_after_close", full:receive())

-- try_send / try_receive, the module functions
local tc = g.channel(1)
assert(g.await(assert(g.pool_submit(P, function() return tc:cap() end))))
say("try", tostring(tc:try_send(1)), tostring(tc:try_send(2)), tostring(tc:try_receive()),
    tostring(select(2, tc:try_receive())))
say("module_functions", tostring(g.channel_send(tc, 7)), g.channel_len(tc), g.channel_cap(tc),
    tostring(g.channel_receive(tc)), tostring(g.channel_close(tc)))

-- select over two fleet channels that always have values: both chosen
local a, b = g.channel(64), g.channel(64)
local fid = assert(g.pool_submit(P, function()
  local quit = false
  for i = 1, 2000 do
    if not a:send("a") or not b:send("b") then break end
  end
end))
g.sleep(500)
local counts = {0, 0}
for i = 1, 600 do
  local idx, v = g.select({
    {channel = a, receive = true, handler = function(v) return v end},
    {channel = b, receive = true, handler = function(v) return v end},
  })
  counts[idx] = counts[idx] + 1
  assert(v == (idx == 1 and "a" or "b"))
end
a:close(); b:close()
g.await(fid)
say("select_fair", (counts[1] >= 240 and counts[2] >= 240) and "yes" or (counts[1] .. "/" .. counts[2]))

-- select_timeout, default, a send case
local empty = g.channel(2)
assert(g.await(assert(g.pool_submit(P, function() return empty:len() end))))
t0 = g.now()
local r1, r2 = g.select_timeout(300, {{channel = empty, receive = true, handler = function() end}})
say("select_timeout", tostring(r1), r2, (g.now() - t0 >= 280) and "waited" or "early")
say("select_default", g.select({{channel = empty, receive = true}, {default = true, handler = function() return "d" end}}))
say("select_send", g.select({{channel = empty, send = "s", handler = function() return "sent" end}}), empty:receive())
local loc = g.channel(1)
assert(loc:send("local"))
say("select_mixed", g.select({{channel = empty, receive = true}, {channel = loc, receive = true, handler = function(v) return v end}}))

-- a timeout cancels a receive that waits on a fleet channel
t0 = g.now()
local tok, terr = g.timeout(300, function() return empty:receive() end)
say("timeout_cancels", tostring(tok), tostring(terr):match("timeout") and "timeout" or tostring(terr),
    (g.now() - t0 < 3000) and "prompt" or "late")

-- what cannot travel says so at submit; misuse raises
local busy = g.channel(2)
assert(busy:send(1))
say("refused_buffered", tostring(select(2, g.pool_submit(P, function() return busy end))))
local mu = g.mutex()
say("refused_mutex", tostring(select(2, g.pool_submit(P, function() return mu end))))
local fc = g.channel(1)
assert(g.await(assert(g.pool_submit(P, function() return fc:len() end))))
say("send_function", select(2, pcall(fc.send, fc, function() end)))
say("send_nested_function", select(2, pcall(fc.send, fc, {f = {function() end}})))
say("bad_self", select(2, pcall(fc.send, 42, 1)))
-- a channel returned by a task: the same channel
local made = select(2, g.await(assert(g.pool_submit(P, function()
  local c = g.channel(3)
  return c
end))))
local back = select(2, g.await(assert(g.pool_submit(P, function(c) return c:send("hello") end, made))))
say("returned_channel", tostring(back), made:receive())
-- a channel sent on a channel
local outer = g.channel(1)
local inner = g.channel(1)
assert(g.await(assert(g.pool_submit(P, function() return outer:send(inner) end))))
local got = outer:receive()
assert(got:send("via inner"))
say("channel_of_channel", tostring(got == inner), inner:receive())

-- cancelled operations do not happen: a receive killed while its call was
-- on its way gives the value back, an unbuffered send killed while it waits
-- is taken back, a receiver that stopped waiting is no receiver for try_send
local cc = g.channel(50)
local cid = assert(g.pool_submit(P, function() for i = 1, 1000 do assert(cc:send(i)) end end))
local cseen, ccount, cdups, ckilled = {}, 0, 0, 0
local function got_one(v)
  if cseen[v] then cdups = cdups + 1 end
  cseen[v] = true
  ccount = ccount + 1
end
for _ = 1, 600 do
  local ok, v = g.timeout(1, function() return cc:receive() end)
  if ok then got_one(v) else ckilled = ckilled + 1 end
end
g.spawn(function()
  assert(g.await(cid))
  assert(cc:close())
end)
for v in cc:iter() do got_one(v) end
say("killed_receives", ccount, cdups, ckilled > 0 and "some killed" or "none killed")
local ug = g.channel()
assert(g.await(assert(g.pool_submit(P, function() return ug:cap() end))))
say("killed_send", (g.timeout(200, function() return ug:send("ghost") end)))
g.sleep(100)
say("ghost", ug:try_receive())
g.timeout(50, function() return ug:receive() end)
g.sleep(100)
say("try_send_nobody", ug:try_send("x"))
local sh = g.channel(1)
assert(g.await(assert(g.pool_submit(P, function() return sh:cap() end))))
assert(sh:send("v"))
say("select_no_handler", g.select({{channel = sh, receive = true}}))
say("send_metatable", select(2, pcall(fc.send, fc, setmetatable({}, {__name = "Point"}))))
say("done")
"""

WANT_CHANNELS = [
    "buffered\t400\t0\t0\ttrue\t0\t16",
    "closed_again\tfalse\tchannel already closed",
    "send_closed\tfalse\tsend on closed channel",
    "receive_closed\tnil\tfalse",
    "unbuffered_len\t0",
    "unbuffered\ttrue\t20\tfirst\t20\twaited",
    "close_wakes_receivers\t3",
    "close_wakes_sender\tfalse\tsend on closed channel",
    "drain_after_close\tx\ttrue",
    "try\ttrue\tfalse\t1\tfalse",
    "module_functions\ttrue\t1\t1\t7\ttrue",
    "select_fair\tyes",
    "select_timeout\tfalse\ttimeout\twaited",
    "select_default\t2\td",
    "select_send\t1\ts\ttrue",
    "select_mixed\t2\tlocal",
    "timeout_cancels\tfalse\ttimeout\tprompt",
    "refused_mutex\ta mutex cannot travel to a fleet pool",
    "returned_channel\ttrue\thello\ttrue",
    "channel_of_channel\ttrue\tvia inner\ttrue",
    "killed_receives\t1000\t0\tsome killed",
    "killed_send\tfalse",
    "ghost\tnil\tfalse",
    "try_send_nobody\tfalse",
    "select_no_handler\t1\tv\ttrue",
    "done",
]


def script_case(prefix, src, wanted, contains=()):
    """Two workers on a new pool named prefix + UNIQ; src (its %(pool)r: that
    pool) run on them: it exits 0, prints each wanted line (exact) and, for
    each (name, text, what) of contains, a line whose first field is name
    and that contains text; the workers stop cleanly. The seconds it took."""
    pool = prefix + UNIQ
    a, b = two_workers(pool)
    rc, out, err, took = run_lua(src % {"pool": pool}, timeout=180)
    check(rc == 0, "script: %d\n%s%s" % (rc, out, err))
    expect_lines(out, err, wanted)
    lines = {l.split("\t")[0]: l for l in out.splitlines()}
    for name, text, what in contains:
        check(text in lines.get(name, ""), "%s: %r" % (what, lines.get(name)))
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")
    return took


def case_channels():
    took = script_case("fobj", CHANNELS, WANT_CHANNELS, [
        ("refused_buffered", "holds values", "a channel holding values"),
        ("send_function", "a function cannot be sent on a fleet channel", "function"),
        ("send_nested_function", "a function cannot be sent", "nested function"),
        ("bad_self", "bad argument #1 to 'send' (fleet channel expected, got number)", "misuse"),
        ("send_metatable", "a table with a metatable cannot be sent", "metatable"),
    ])
    print("channels: %.1f s" % took)


SYNC = r"""
local g = require("goroutine")
local P = %(pool)r
assert(g.pool_create(P, {workers = 8}))
g.sleep(3000)
local function say(name, ...)
  local t = {name}
  for i = 1, select("#", ...) do t[#t + 1] = tostring((select(i, ...))) end
  print(table.concat(t, "\t"))
end
local sem = g.semaphore(2)
local inside, most, total = g.atomic_int(0), g.atomic_int(0), g.atomic_int(0)
local ids = {}
for t = 1, 16 do
  ids[t] = assert(g.pool_submit(P, function()
    for k = 1, 3 do
      sem:acquire()
      local now = inside:add(1)
      local m = most:load()
      while now > m and not most:compare_and_swap(m, now) do m = most:load() end
      g.sleep(20)
      inside:add(-1)
      total:add(1)
      sem:release()
    end
    return os.getenv("MUTIRAO_WORKER_NAME") or "?"
  end))
end
for _, id in ipairs(ids) do assert(g.await(id)) end
say("semaphore", total:load(), most:load(), inside:load(), sem:available(), sem:capacity())
say("try_acquire", tostring(sem:try_acquire(2)), tostring(sem:try_acquire()), sem:available())
sem:release(2)
say("over_release", tostring(select(2, pcall(sem.release, sem))):match("released more than acquired") or "no")
say("bad_units", tostring(select(2, pcall(sem.acquire, sem, 3))):match("bad argument") or "no")
-- a semaphore whose unit is held by the producer when it first travels
local held = g.semaphore(1)
held:acquire()
local hid = assert(g.pool_submit(P, function() return held:try_acquire() end))
say("held_before_travel", tostring(select(2, g.await(hid))), held:available())
held:release()
say("held_released", held:available())
local ai = g.atomic_int(5)
local aids = {}
for t = 1, 10 do
  aids[t] = assert(g.pool_submit(P, function() for i = 1, 10 do ai:add(1) end end))
end
for _, id in ipairs(aids) do assert(g.await(id)) end
say("atomic_add", ai:load())
local r = {g.await(assert(g.pool_submit(P, function()
  local old = ai:swap(7)
  local cas1 = ai:compare_and_swap(7, 9)
  local cas2 = ai:compare_and_swap(7, 11)
  ai:store(ai:load() + 1)
  return old, cas1, cas2, ai:load()
end)))}
say("atomic_ops", tostring(r[1]), r[2], tostring(r[3]), tostring(r[4]), r[5], ai:load())
say("atomic_bad", tostring(select(2, pcall(ai.add, ai, 1.5))):match("integer expected") or "no")
say("atomic_string", tostring(select(2, pcall(ai.add, ai, "5"))):match("integer expected") or "no")
-- Redis's 64-bit integers, exact
local big = g.atomic_int(0)
assert(g.await(assert(g.pool_submit(P, function() return big:load() end))))
big:store(9007199254740993)
say("atomic_big", big:load(), big:swap(math.maxinteger), big:load(), big:add(-1))
say("units_string", tostring(select(2, pcall(sem.acquire, sem, "2"))):match("bad argument") or "no")
say("done")
"""

WANT_SYNC = [
    "semaphore\t48\t2\t0\t2\t2",
    "try_acquire\ttrue\tfalse\t0",
    "over_release\treleased more than acquired",
    "bad_units\tbad argument",
    "held_before_travel\tfalse\t0",
    "held_released\t1",
    "atomic_add\t105",
    "atomic_ops\ttrue\t105\ttrue\tfalse\t10\t10",
    "atomic_bad\tinteger expected",
    "atomic_string\tinteger expected",
    "atomic_big\t9007199254740993\t9007199254740993\t9223372036854775807\t9223372036854775806",
    "units_string\tbad argument",
    "done",
]


def case_sync():
    print("sync: %.1f s" % script_case("fsync", SYNC, WANT_SYNC))


SIGKILL = r"""
local g = require("goroutine")
local P = %(pool)r
assert(g.pool_create(P, {workers = 8, max_deliveries = 1}))
print("created")
io.stdout:flush()
while not io.open(%(go)r) do g.sleep(50) end -- both workers hold partitions
local N, K = 12, 1000
local ch = g.channel(8)
local acked = {}
for t = 1, N do acked[t] = g.atomic_int(0) end
local ids = {}
for t = 1, N do
  local a = acked[t]
  ids[t] = assert(g.pool_submit(P, function(n)
    for i = 1, K do
      assert(ch:send({n, i}))
      a:store(i) -- after the send returned: acknowledged
      g.sleep(5)
    end
  end, t))
end
io.stdout:write("submitted\n")
io.stdout:flush()
g.spawn(function()
  for _, id in ipairs(ids) do g.await(id) end
  ch:close()
end)
local got = {}
for t = 1, N do got[t] = {} end
local dups = 0
for v in ch:iter() do
  local t, i = v[1], v[2]
  if got[t][i] then dups = dups + 1 end
  got[t][i] = true
end
local lost, gaps, failed = 0, 0, 0
for t = 1, N do
  local ok = g.await(ids[t])
  if not ok then failed = failed + 1 end
  local top = 0
  for i in pairs(got[t]) do if i > top then top = i end end
  for i = 1, top do if not got[t][i] then gaps = gaps + 1 end end
  if top < acked[t]:load() then lost = lost + acked[t]:load() - top end
end
print(string.format("result lost=%%d dups=%%d gaps=%%d failed=%%d", lost, dups, gaps, failed))
"""


def case_sigkill():
    pool = "fkill" + UNIQ
    a, b = two_workers(pool)
    go = os.path.join(TMP, "go-sigkill")
    p, _ = start_producer(SIGKILL % {"pool": pool, "go": go}, "created")
    # the tasks must reach both workers: each holds partitions of the
    # pool's topic before they are submitted (12 tasks on 8 partitions)
    a.wait_for(r"assigned \d+ partition")
    b.wait_for(r"assigned \d+ partition")
    open(go, "w").close()
    check(p.stdout.readline().strip() == "submitted", "producer did not submit")
    time.sleep(2.5)  # the tasks are sending on both workers
    a.p.send_signal(signal.SIGKILL)
    a.p.wait()
    out, err = end_producer(p, 180, "the producer after the SIGKILL")
    m = re.search(r"result lost=(\d+) dups=(\d+) gaps=(\d+) failed=(\d+)", out)
    check(m, "no result line:\n%s%s" % (out, err))
    lost, dups, gaps, failed = (int(x) for x in m.groups())
    check(lost == 0 and dups == 0 and gaps == 0,
          "acknowledged values lost %d, duplicated %d, gaps %d" % (lost, dups, gaps))
    check(failed >= 1, "no task ran on the killed worker (nothing was tested)")
    check(b.stop() == 0, "worker B exit status")
    print("sigkill: tasks lost with the worker: %d; acknowledged values lost: 0" % failed)


HOSTILE = r"""
local g = require("goroutine")
local P = %(pool)r
assert(g.pool_create(P, {workers = 2}))
local ch = g.channel(8)
local ai = g.atomic_int(0)
local s1, s2, s3 = g.semaphore(2), g.semaphore(2), g.semaphore(2)
assert(g.await(assert(g.pool_submit(P, function()
  return ch:cap(), ai:load(), s1:available(), s2:available(), s3:available()
end))))
local function name(o) return (tostring(o):match("fleet ([^)]+)")) end
print("names", name(ch), name(ai), name(s1), name(s2), name(s3))
io.stdout:flush()
while not io.open(%(go)r) do g.sleep(50) end
-- a fleet method called on what is not that fleet object
print("wrong_self", select(2, pcall(ch.send, g.channel(1), 1)))
print("wrong_self", select(2, pcall(s1.acquire, g.semaphore(1))))
print("wrong_self", select(2, pcall(ai.load, g.atomic_int(1))))
print("wrong_self", select(2, pcall(ch.send, s1, 1)))
print("wrong_self", select(2, pcall(ch.len, g.mutex())))
local _, here = pcall(function() error("here") end)
local me = here:match("^(.*):%%d+: here$") -- this file, as messages name it
local function forged(ok, err) -- the error names this file's line, not the library's
  print("forged", tostring(ok), (tostring(err):match("a value that cannot be read") or tostring(err)))
  print("forged_at", tostring(err):sub(1, #me + 1) == me .. ":" and "caller" or tostring(err))
end
for i = 1, 3 do forged(pcall(ch.receive, ch)) end
forged(pcall(function() for v in ch:iter() do end end))
forged(pcall(g.select, {{channel = ch, receive = true}}))
local ok, err = pcall(ai.load, ai)
print("atomic_forged", tostring(ok), (tostring(err):match("not an integer in Redis") or "?"))
print("atomic_message", tostring(err))
for i, s in ipairs({s1, s2, s3}) do
  local ok1, e1 = pcall(s.available, s)
  local ok2, e2 = pcall(s.try_acquire, s)
  print("sem_forged", i, tostring(ok1), (tostring(e1):match("semaphore [^ ]+ holds an invalid unit count") or tostring(e1)),
    tostring(ok2), (tostring(e2):match("semaphore [^ ]+ holds an invalid unit count") or tostring(e2)))
end
assert(ch:send("still works"))
print("after", ch:receive())
"""


# Bytes a message must not show raw: terminal escapes, a right-to-left
# override (valid UTF-8, so the test's own decoding of the output keeps it).
RAW = b"\x1b[2J\xe2\x80\xae12\x07"


def case_hostile():
    """Values someone else wrote into a fleet channel's list (garbage, a
    truncated message, a function as bytecode-looking bytes) are refused by
    the receiver with an error: no crash, nothing run, the channel still
    works; the error names the line of the receive (receive, iter,
    select). An AtomicInt's value that is not an integer: an error. A
    semaphore with a holder's units negative, not a number, or more than its
    capacity in all: each operation refuses it, naming the key. A fleet
    method called on a local object says so. No message
    shows the forged bytes raw."""
    pool = "fhost" + UNIQ
    w = Worker("hostile", [pool])
    w.wait_for(r"consuming")
    go = os.path.join(TMP, "go")
    p, names = start_producer(HOSTILE % {"pool": pool, "go": go}, r"names" + r"\s+(\S+)" * 5)
    ch, ai, s1, s2, s3 = ("mutirao:obj:{%s}" % n for n in names.groups())
    # garbage; a message header cut short; a msgpack ext that claims 4 GiB
    for v in (b"\x00garbage", b"MTR", b"MTR\x01\xc9\xff\xff\xff\xff\x01", b"\x00", b"\x00"):
        redis_client.command(REDIS, "RPUSH", ch + ":q", v, timeout=10)
    # an AtomicInt's value: terminal escapes, a right-to-left override
    redis_client.command(REDIS, "SET", ai, RAW, timeout=10)
    # semaphores' holders (h:TOKEN = units): negative, not a number, more
    # units than the capacity
    for key, units in ((s1, b"-5"), (s2, RAW), (s3, b"3")):
        redis_client.command(REDIS, "HSET", key, b"h:" + RAW, units, timeout=10)
    open(go, "w").close()
    out, err = end_producer(p, 60)
    forged = [l for l in out.splitlines() if l.startswith("forged")]
    check(forged == ["forged\tfalse\ta value that cannot be read", "forged_at\tcaller"] * 5,
          "forged values: %r\n%s" % (forged, err))
    check("after\tstill works\ttrue" in out, "channel after forged values:\n%s%s" % (out, err))
    check("atomic_forged\tfalse\tnot an integer in Redis" in out.splitlines(),
          "a forged AtomicInt:\n%s%s" % (out, err))
    wrong = [l for l in out.splitlines() if l.startswith("wrong_self\t")]
    for i, want in enumerate(["'send' (fleet channel expected, got local channel)",
                              "'acquire' (fleet semaphore expected, got local semaphore)",
                              "'load' (fleet AtomicInt expected, got local AtomicInt)",
                              "'send' (fleet channel expected, got fleet semaphore)",
                              "'len' (fleet channel expected, got goroutine.Mutex)"]):
        check(len(wrong) == 5 and ("bad argument #1 to " + want) in wrong[i],
              "a fleet method on something else: %r, not %r\n%s%s" % (wrong, want, out, err))
    for i, key in enumerate((s1, s2, s3)):
        bad = "semaphore %s holds an invalid unit count" % key
        check("sem_forged\t%d\tfalse\t%s\tfalse\t%s" % (i + 1, bad, bad) in out.splitlines(),
              "a forged holder of a semaphore:\n%s%s" % (out, err))
    raw = RAW.decode()
    for c in set(raw) - set(string.printable):
        check(c not in out + err, "forged bytes %r in the messages:\n%s%s" % (c, out, err))
    check(w.stop() == 0, "worker exit status")


def case_example():
    """examples/fleet_channel.lua on the fleet prints what it prints embedded."""
    ENV["MUTIRAO_TOPIC_PREFIX"] = "mutirao.ex%s." % UNIQ  # its pool name is fixed
    a, b = two_workers("fetchers")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                        "fleet_channel.lua")
    rc, out, err, _ = T.run([os.path.join(BIN, "mutirao"), "run", "--fleet", path], timeout=120)
    check(rc == 0, "example: %d\n%s%s" % (rc, out, err))
    check("6 files, 21000 bytes, at most 2 downloading at once" in out.splitlines(),
          "example output:\n%s%s" % (out, err))
    check(a.stop() == 0 and b.stop() == 0, "worker exit status")


VALGRIND = r"""
local g = require("goroutine")
local P = %(pool)r
assert(g.pool_create(P, {workers = 4}))
local ch, un, sem, ai = g.channel(4), g.channel(), g.semaphore(1), g.atomic_int(0)
local ids = {}
for t = 1, 3 do
  ids[t] = assert(g.pool_submit(P, function(n)
    sem:acquire()
    ai:add(n)
    sem:release()
    for i = 1, 20 do assert(ch:send({n, i, "x"})) end
    assert(un:send(n))
    return n
  end, t))
end
local got = 0
for i = 1, 60 do if ch:receive() then got = got + 1 end end
for i = 1, 3 do assert(un:receive()) end
for _, id in ipairs(ids) do assert(g.await(id)) end
-- waits killed while their Redis call is in flight, a select that times out
for i = 1, 20 do g.timeout(1, function() return ch:receive() end) end
print("select", g.select_timeout(30, {{channel = ch, receive = true}}))
print("valgrind", got, ai:load())
"""


def case_valgrind():
    """The producer and a worker under valgrind while tasks use a channel,
    an unbuffered one, a semaphore and an AtomicInt, waits are killed with a
    Redis call in flight: no invalid read or write (leaks are not
    counted)."""
    vg = os.environ.get("MUTIRAO_VALGRIND") or "valgrind"
    opts = ["--error-exitcode=99", "--errors-for-leak-kinds=none"]
    wlog, rlog = os.path.join(TMP, "vg-worker.log"), os.path.join(TMP, "vg-run.log")
    pool = "fvg" + UNIQ
    w = Worker("vg", [pool], prefix=[vg] + opts + ["--log-file=" + wlog])
    w.wait_for(r"consuming", timeout=120)
    rc, out, err, _ = T.run([vg] + opts + ["--log-file=" + rlog, os.path.join(BIN, "mutirao"),
                            "run", "--fleet", T.script(VALGRIND % {"pool": pool})], timeout=200)

    def tail(log):
        with open(log) as f:
            return f.read()[-8000:]

    nerr = mutirao_test.valgrind_errors(rlog)
    check(rc == 0 and nerr == 0 and "valgrind\t60\t6" in out,
          "producer under valgrind: exit %d, %s errors\n%s%s\n%s" % (rc, nerr, out, err,
                                                                     tail(rlog)))
    check("select\tfalse\ttimeout" in out, "select_timeout:\n%s" % out)
    code = w.stop()
    nerr = mutirao_test.valgrind_errors(wlog)
    check(code == 0 and nerr == 0, "worker under valgrind: exit %d, %s errors\n%s" %
          (code, nerr, tail(wlog)))
    print("valgrind: producer and worker, 0 errors")


CUT = r"""
local g = require("goroutine")
local P = %(pool)r
assert(g.pool_create(P, {workers = 2}))
local ch = g.channel(64)
local n = 3000
local id = assert(g.pool_submit(P, function()
  for i = 1, n do
    assert(ch:send(i))
    if i %% 10 == 0 then g.sleep(10) end -- about 3 s in all
  end
end))
print("go")
io.stdout:flush()
g.spawn(function() assert(g.await(id)) ch:close() end)
local seen, dups, count = {}, 0, 0
for v in ch:iter() do
  if seen[v] then dups = dups + 1 end
  seen[v] = true
  count = count + 1
end
local missing = 0
for i = 1, n do if not seen[i] then missing = missing + 1 end end
print(string.format("cut count=%%d missing=%%d dups=%%d", count, missing, dups))
"""


def case_cut():
    """The producer's connection to Redis reset right after Redis answered a
    receive with a value (the value was taken, its reply never arrives),
    several times: each receive is sent again with its claim and gets that
    value; none is lost or received twice."""
    pool = "fcut" + UNIQ
    w = Worker("cut", [pool])
    w.wait_for(r"consuming")
    port = int(re.sub(r".*:(\d+).*", r"\1", REDIS.split("@")[-1]))
    proxy = private_redis.CuttingProxy(port, command=b"RECEIVE", reply=b"*2\r\n$2\r\nok")
    p, _ = start_producer(CUT % {"pool": pool}, "go", env={"MUTIRAO_REDIS_URL": proxy.url})
    time.sleep(0.5)
    for _ in range(6):
        proxy.arm(1)
        time.sleep(0.3)
    try:
        out, err = end_producer(p, 120)
    finally:
        proxy.close()
    m = re.search(r"cut count=(\d+) missing=(\d+) dups=(\d+)", out)
    check(m, "no result:\n%s%s" % (out, err))
    count, missing, dups = (int(x) for x in m.groups())
    check(proxy.dropped >= 3, "only %d replies were cut" % proxy.dropped)
    check((count, missing, dups) == (3000, 0, 0),
          "after %d cut replies: %s" % (proxy.dropped, m.group(0)))
    check(w.stop() == 0, "worker exit status")
    print("cut: %d receive replies lost with their connection; 0 values lost or duplicated"
          % proxy.dropped)


CASES = {"cut": case_cut, "valgrind": case_valgrind, "channels": case_channels, "sync": case_sync, "sigkill": case_sigkill,
         "hostile": case_hostile, "example": case_example}
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("stopped by SIGTERM"))
try:
    CASES[CASE]()
finally:
    T.kill_workers()
print("ok:", CASE)
