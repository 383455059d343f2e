-- fleet_objects.lua: channels, semaphores and AtomicInts that travelled to a
-- fleet pool, backed by Redis. fleet_objects.c loads this once per VM with
-- its primitives and keeps what it returns.
--
-- An object is named PRODUCER/N (the VM that first sent it) and lives in
-- keys tagged {mutirao:obj:NAME} (one cluster slot). Every operation is one
-- script call: atomic in Redis, so a value is in the channel or not, never
-- half there; a worker that dies after send returned leaves its value
-- there. A wait (a full channel, an empty one, a taken semaphore) asks again
-- after 1 ms, doubling to 20 ms: nothing is woken from Redis, so waits are
-- never reported as deadlocks. The bytes that name an object carry its
-- first state (a channel's capacity; a semaphore's capacity and the units
-- its first VM held; an AtomicInt's value): the first script to find the
-- keys missing creates them from it.
local P, LOADED = ...
local error, type, tostring, tonumber, pairs, ipairs, getmetatable, setmetatable =
  error, type, tostring, tonumber, pairs, ipairs, getmetatable, setmetatable
local math, string = math, string
-- P.eval(script, keys, args...) -> reply | nil, err, transient (waits;
--   script from P.script(src), keys a list; transient: no reply came);
--   P.eval_nowait (the same, no reply);
--   P.encode(v) -> bytes | nil, err; P.decode(bytes) -> v | nil, err;
--   P.newobject(mt) -> a userdata; P.setmetatable(userdata, mt);
--   P.now_ms() (monotonic); P.keep_alive(): start the lease timer;
--   P.described(v) -> "local channel" (semaphore, AtomicInt), v's __name or
--   its type, for messages;
--   P.where() -> "file:line: " of the user's call (the innermost Lua
--   function on the stack outside this file), or "";
--   P.seq() -> this VM's next number; P.add(t, k, d) -> t[k] += d (nil
--   when <= 0): one C call each (goroutines are preempted at any line: a
--   counter read on one line and written on the next lost updates);
--   P.mts[kind] = {left = mt, named = mt} (registered with the codec);
--   P.token: this VM's name; P.lease_ms; P.ttl_s
-- LOADED: package.loaded (the goroutine module's sleep, once it is loaded)

local TAG = "\1mutirao-obj\1"
local TTL = tostring(P.ttl_s)
local LEASE = tostring(P.lease_ms)
local RECV_LEASE = "2000" -- a waiting receiver's token lives this long unless renewed
local WAIT_FIRST_MS, WAIT_MAX_MS = 1, 20

local PRELUDE = [[
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- keys expire ARGV[3] s after their last use: a key a call created gets
-- its TTL then; the others again once a quarter of it has passed (one TTL
-- call, not an EXPIRE per key and call)
local function fresh(k)
  redis.call('EXPIRE', k, ARGV[3])
end
local function keep()
  if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) * 3 / 4 then
    for i = 1, math.min(#KEYS, 5) do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
  end
end
]]

-- channels: KEYS meta, values, pending (unbuffered: id -> value), waiting
-- receivers (zset: token -> lease end), refused sends (closed while pending)
-- ARGV[1] cap, [2] closed at first, [3] ttl
local CH = PRELUDE .. [[
local M, Q, PD, W, X = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local meta = redis.call('HMGET', M, 'cap', 'closed')
if not meta[1] then
  redis.call('HSET', M, 'cap', ARGV[1], 'closed', ARGV[2], 'seq', 0)
  fresh(M)
  meta[2] = ARGV[2]
end
local cap = tonumber(ARGV[1])
local closed = meta[2] == '1'
local op = ARGV[4]
if op == 'send' or op == 'try_send' then
  if closed then return {'closed'} end
  if cap > 0 then
    if redis.call('LLEN', Q) >= cap then return {'full'} end
    if redis.call('RPUSH', Q, ARGV[5]) == 1 then fresh(Q) end
    keep()
    return {'ok'}
  end
  if op == 'try_send' then -- unbuffered: only while more receivers wait than values do
    redis.call('ZREMRANGEBYSCORE', W, '-inf', now_ms())
    if redis.call('ZCARD', W) <= redis.call('HLEN', PD) then return {'full'} end
  end
  local id = ARGV[6] -- the sender's: unsend can take it back
  redis.call('RPUSH', Q, id)
  redis.call('HSET', PD, id, ARGV[5])
  fresh(Q)
  fresh(PD)
  keep()
  if op == 'try_send' then return {'ok'} end
  return {'pending', id}
elseif op == 'status' then -- an unbuffered send's value: taken yet?
  if redis.call('HEXISTS', PD, ARGV[5]) == 1 then return {'pending'} end
  if redis.call('HDEL', X, ARGV[5]) == 1 then return {'closed'} end
  return {'ok'}
elseif op == 'unsend' then -- a sender killed while its send was on its way
  if cap > 0 then return {redis.call('LREM', Q, -1, ARGV[5])} end
  return {redis.call('HDEL', PD, ARGV[6])}
elseif op == 'unwait' then -- a receiver that stopped waiting
  return {redis.call('ZREM', W, ARGV[5])}
elseif op == 'unreceive' then -- a receiver killed while its receive was on its way
  if ARGV[5] ~= '' then redis.call('ZREM', W, ARGV[5]) end
  local v = redis.call('GET', KEYS[6])
  if not v then return {0} end
  redis.call('DEL', KEYS[6])
  if cap > 0 then
    redis.call('LPUSH', Q, v)
  else
    local id = 'u' .. redis.call('HINCRBY', M, 'seq', 1)
    redis.call('HSET', PD, id, v)
    redis.call('LPUSH', Q, id)
  end
  return {1}
elseif op == 'receive' then
  -- ARGV[5]: a waiting receiver's token, or ''. KEYS[6]: this receive's
  -- claim: the value it takes is kept there (2 min), so the same call sent
  -- again (its reply was lost with the connection) gets the same value;
  -- KEYS[7...]: claims of this VM's earlier receives, handed over
  local token, C = ARGV[5], KEYS[6]
  for i = 7, #KEYS do redis.call('DEL', KEYS[i]) end
  local v = redis.call('GET', C)
  if v then return {'ok', v} end
  if cap > 0 then
    v = redis.call('LPOP', Q)
  else
    while true do
      local id = redis.call('LPOP', Q)
      if not id then break end
      v = redis.call('HGET', PD, id)
      if v then
        redis.call('HDEL', PD, id)
        if token ~= '' then redis.call('ZREM', W, token) end
        break
      end
    end
  end
  if v then
    redis.call('SET', C, v, 'EX', 120)
    return {'ok', v}
  end
  if closed then
    if token ~= '' then redis.call('ZREM', W, token) end
    return {'closed'}
  end
  if token ~= '' then
    local now = now_ms()
    redis.call('ZREMRANGEBYSCORE', W, '-inf', now)
    redis.call('ZADD', W, now + tonumber(ARGV[6]), token)
    fresh(W)
  end
  return {'empty'}
elseif op == 'close' then
  if closed then return {'closed'} end
  redis.call('HSET', M, 'closed', '1')
  for _, id in ipairs(redis.call('HKEYS', PD)) do redis.call('HSET', X, id, '1') end
  redis.call('DEL', PD, W)
  if cap == 0 then redis.call('DEL', Q) end
  fresh(X)
  keep()
  return {'ok'}
elseif op == 'len' then
  local n = 0
  if cap > 0 then n = redis.call('LLEN', Q) end
  return {n, closed and 1 or 0}
end
return redis.error_reply('unknown channel operation')
]]

-- semaphores: KEYS meta (cap, h:TOKEN = units TOKEN holds), leases (zset:
-- TOKEN -> lease end). ARGV[1] cap, [2] units held at first by [5] origin,
-- [3] ttl, [4] op, [6] units, [7] token, [8] lease ms
local SEM = PRELUDE .. [[
local M, E = KEYS[1], KEYS[2]
local cap = tonumber(ARGV[1])
local now = now_ms()
local lease = tonumber(ARGV[8])
if redis.call('EXISTS', M) == 0 then
  redis.call('HSET', M, 'cap', ARGV[1])
  fresh(M)
  if tonumber(ARGV[2]) > 0 then
    redis.call('HSET', M, 'h:' .. ARGV[5], ARGV[2])
    redis.call('ZADD', E, now + lease, ARGV[5])
  end
end
for _, t in ipairs(redis.call('ZRANGEBYSCORE', E, '-inf', now)) do
  redis.call('HDEL', M, 'h:' .. t)
  redis.call('ZREM', E, t)
end
-- each holder's units: digits (15 at most: exact as a Lua number), no more
-- than cap in all; anything else was written by something else: refused
local function invalid()
  return redis.error_reply('semaphore ' .. M .. ' holds an invalid unit count')
end
local held, mine = 0, 0
local all = redis.call('HGETALL', M)
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'h:' then
    local v = all[i + 1]
    local n = #v <= 15 and string.match(v, '^%d+$') and tonumber(v)
    if not n then return invalid() end
    all[i + 1] = n
    held = held + n
    if all[i] == 'h:' .. ARGV[7] then mine = n end
  end
end
if held > cap then return invalid() end
local op, k, token = ARGV[4], tonumber(ARGV[6]), ARGV[7]
if op == 'acquire' then
  if cap - held < k then return {'full'} end
  redis.call('HINCRBY', M, 'h:' .. token, k)
  redis.call('ZADD', E, now + lease, token)
  fresh(E)
  keep()
  return {'ok'}
elseif op == 'release' then
  if held < k then return {'over', cap - held} end
  local own = math.min(mine, k)
  local left = k - own
  if own > 0 then
    if mine == own then
      redis.call('HDEL', M, 'h:' .. token)
      redis.call('ZREM', E, token)
    else
      redis.call('HINCRBY', M, 'h:' .. token, -own)
    end
  end
  for i = 1, #all, 2 do -- units another VM acquired (semaphores have no owner)
    if left == 0 then break end
    local f = all[i]
    if string.sub(f, 1, 2) == 'h:' and f ~= 'h:' .. token then
      local n = all[i + 1]
      local take = math.min(n, left)
      left = left - take
      if take == n then
        redis.call('HDEL', M, f)
        redis.call('ZREM', E, string.sub(f, 3))
      else
        redis.call('HINCRBY', M, f, -take)
      end
    end
  end
  keep()
  return {'ok', own}
elseif op == 'available' then
  return {cap - held}
elseif op == 'touch' then -- this VM still holds its units
  if mine > 0 then redis.call('ZADD', E, now + lease, token) fresh(E) keep() end
  return {mine}
end
return redis.error_reply('unknown semaphore operation')
]]

-- AtomicInts: one string key; the other operations are plain commands
-- (INCRBY, GET, SET ... GET: Redis's 64-bit integers, which a script would
-- turn into doubles). KEYS value, ARGV[1] old, [2] new.
local AT_CAS = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
]]

local scripts = {}
local function script(src)
  local id = scripts[src]
  if not id then
    id = P.script(src)
    scripts[src] = id
  end
  return id
end

-- object -> its state {kind, name, keys..., a, b, origin}; weak both ways
local state = setmetatable({}, {__mode = "k"})
local by_name = setmetatable({}, {__mode = "v"})
local seq = 0

-- Bytes from Redis (anyone with access may have written them) as a message
-- shows them: at most 32, printable ASCII as is, any other byte (and " and
-- \) as \xNN, and their length.
local function shown(s)
  local t = s:sub(1, 32):gsub(".", function(c)
    local b = c:byte()
    if b < 32 or b > 126 or c == '"' or c == "\\" then return ("\\x%02x"):format(b) end
  end)
  return ('"%s"%s (%d bytes)'):format(t, #s > 32 and "..." or "", #s)
end

local function fail(what, err, level)
  error(what .. ": " .. tostring(err), level + 1)
end

-- A to-be-closed guard that runs undo() when it is closed while armed:
-- the goroutine was killed (a timeout) or an error was raised while a call
-- was on its way, so the operation must not take effect.
local guard_mt = {__close = function(g) if g.armed then g.undo(g) end end}
local function guard(undo)
  return setmetatable({undo = undo, armed = false}, guard_mt)
end

local function nowait(st, src, ...)
  P.eval_nowait(script(src), st.keys, st.a, st.b, TTL, ...)
end

-- one script call; raises on a Redis failure (a value sent or not: unknown)
local function call(st, src, ...)
  local r, err = P.eval(script(src), st.keys, st.a, st.b, TTL, ...)
  if r == nil then fail("fleet " .. st.what, err, 3) end
  return r
end

-- wait(limit): sleeps 1 ms the first time, twice as long each next time up
-- to 20 ms, never more than limit ms
local function waiter()
  local ms = WAIT_FIRST_MS
  return function(limit)
    LOADED.goroutine.sleep(limit and math.min(ms, limit) or ms)
    if ms < WAIT_MAX_MS then ms = math.min(ms * 2, WAIT_MAX_MS) end
  end
end

local function self_of(o, method, what)
  local st = state[o]
  if not st or st.what ~= what then
    error(("bad argument #1 to '%s' (fleet %s expected, got %s)"):format(method, what,
      st and "fleet " .. st.what or P.described(o)), 3)
  end
  return st
end

-- ---- channels ----

local chan = {}

local function encode(v)
  local b, err = P.encode(v)
  if not b then error("fleet channel: " .. tostring(err), 3) end
  return b
end

-- (raised at the user's call, wherever in this file it is read)
local function decode(b)
  local v, err = P.decode(b)
  if err then
    error(P.where() .. "fleet channel: a value that cannot be read: " .. tostring(err), 0)
  end
  return v
end

-- undo of a send: its value is taken back unless a receiver took it
local function unsend(g)
  nowait(g.st, CH, "unsend", g.b, g.id)
end

-- A send's guard, armed: its id (g.id, new; unsend takes the value back
-- by it) and its value's bytes b on st's channel.
local function send_guard(st, b)
  local g = guard(unsend)
  g.st, g.b, g.id, g.armed = st, b, P.token .. "#s" .. P.seq(), true
  return g
end

-- A send killed while its call was on its way, or while its unbuffered
-- value waited for a receiver, is taken back (unless a receiver took it
-- meanwhile, as when a send is killed just after it returned).
function chan.send(o, v)
  local st = self_of(o, "send", "channel")
  local b = encode(v)
  local g <close> = send_guard(st, b)
  local id = g.id
  local r = call(st, CH, "send", b, id)
  local wait = waiter()
  while r[1] == "full" do
    g.armed = false
    wait()
    g.armed = true
    r = call(st, CH, "send", b, id)
  end
  if r[1] == "pending" then -- unbuffered: until a receiver took it
    repeat
      wait()
      r = call(st, CH, "status", id)
    until r[1] ~= "pending"
  end
  g.armed = false
  if r[1] == "closed" then return false, "send on closed channel" end
  return true
end

-- "ok", "full" or "closed"
local function try_send_once(st, v)
  local b = encode(v)
  local g <close> = send_guard(st, b)
  local r = call(st, CH, "try_send", b, g.id)
  g.armed = false
  return r[1]
end

function chan.try_send(o, v)
  return try_send_once(self_of(o, "try_send", "channel"), v) == "ok"
end

-- A receive whose reply is lost with the connection (Redis restarting, a
-- reset) is sent again with the same claim for up to a minute: the value it
-- took comes back, nothing is lost (integration.fleet_objects_cut).
-- A receive killed while its call was on its way gives the value it took
-- back to the channel (at its head).
local RETRY_FOR_MS = 60000
local HANDED_MAX = 8 -- claims of earlier receives deleted by one call

local function unreceive(g)
  local st = g.st
  local k = st.keys
  P.eval_nowait(script(CH), {k[1], k[2], k[3], k[4], k[5], g.claim}, st.a, st.b, TTL, "unreceive",
    g.token)
end

local function receive_once(st, token)
  local k = st.keys
  local claim = k[1] .. ":c:" .. P.token .. "#" .. P.seq()
  local keys = {k[1], k[2], k[3], k[4], k[5], claim}
  local handed = st.handed
  if handed then
    for i = 1, math.min(#handed, HANDED_MAX) do keys[6 + i] = table.remove(handed) end
  end
  local g <close> = guard(unreceive)
  g.st, g.claim, g.token, g.armed = st, claim, token, true
  local r, err, transient = P.eval(script(CH), keys, st.a, st.b, TTL, "receive", token, RECV_LEASE)
  if r == nil and transient then
    local until_ms, ms = P.now_ms() + RETRY_FOR_MS, 10
    repeat
      LOADED.goroutine.sleep(ms)
      ms = math.min(ms * 2, 1000)
      r, err, transient = P.eval(script(CH), keys, st.a, st.b, TTL, "receive", token, RECV_LEASE)
    until r ~= nil or not transient or P.now_ms() > until_ms
  end
  if r == nil then fail("fleet channel", err, 3) end
  g.armed = false
  if r[1] == "ok" then
    st.handed = st.handed or {}
    table.insert(st.handed, claim)
    return true, decode(r[2]), true
  end
  if r[1] == "closed" then return true, nil, false end
  return false
end

local function unwait(g)
  nowait(g.st, CH, "unwait", g.token)
end

function chan.receive(o)
  local st = self_of(o, "receive", "channel")
  local token = ""
  local g <close> = guard(unwait)
  if st.a == "0" then -- unbuffered: try_send sees this receiver waiting
    token = P.token .. "#" .. P.seq()
    g.st, g.token = st, token
  end
  local wait = waiter()
  while true do
    local done, v, ok = receive_once(st, token)
    if done then return v, ok end
    g.armed = token ~= "" -- (it waits: a kill now takes its token off)
    wait()
    g.armed = false
  end
end

function chan.try_receive(o)
  local st = self_of(o, "try_receive", "channel")
  local done, v, ok = receive_once(st, "")
  if done and ok then return v, true end
  return nil, false
end

function chan.close(o)
  local st = self_of(o, "close", "channel")
  local r = call(st, CH, "close")
  if r[1] == "closed" then return false, "channel already closed" end
  return true
end

function chan.len(o)
  return call(self_of(o, "len", "channel"), CH, "len")[1]
end

function chan.cap(o)
  return math.tointeger(tonumber(self_of(o, "cap", "channel").a))
end

function chan.is_closed(o)
  return call(self_of(o, "is_closed", "channel"), CH, "len")[2] == 1
end

function chan.range(o, fn)
  self_of(o, "range", "channel")
  if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
    error("bad argument #1 to 'range' (function expected, got " .. type(fn) .. ")", 2)
  end
  while true do
    local v, ok = chan.receive(o)
    if not ok then return end
    fn(v)
  end
end

function chan.iter(o)
  self_of(o, "iter", "channel")
  return function()
    local v, ok = chan.receive(o)
    if ok then return v end
  end
end

-- select over cases of which at least one is a fleet channel: every case is
-- tried in a random order (so each ready one is as likely to be chosen),
-- the first that can proceed does, else a default runs, else it waits and
-- tries again. Local channels are tried with their non-blocking methods.
local function select_fleet(cases, ms)
  local n = #cases
  local dflt
  for i = 1, n do
    local c = cases[i]
    if type(c) ~= "table" then
      error(("bad argument #1 to 'select' (case %d: table expected, got %s)"):format(i, type(c)), 3)
    end
    if c.handler ~= nil and type(c.handler) ~= "function" and
        not (getmetatable(c.handler) or {}).__call then
      error(("bad argument #1 to 'select' (case %d: handler must be a function)"):format(i), 3)
    end
    if c.default then
      if dflt then error("bad argument #1 to 'select' (more than one default case)", 3) end
      dflt = i
    elseif (c.receive and true or false) == (c.send ~= nil) then
      error(("bad argument #1 to 'select' (case %d: receive = true or send = value expected%s)")
        :format(i, c.receive and ", not both" or ""), 3)
    end
  end
  local token = P.token .. "#" .. P.seq()
  -- its token in the unbuffered fleet channels it receives from, taken
  -- off when it ends (whichever case it performed, or none)
  local g <close> = setmetatable({}, {__close = function(t)
    for _, st in ipairs(t) do nowait(st, CH, "unwait", token) end
  end})
  for i = 1, n do
    local st = state[cases[i].channel]
    if st and cases[i].receive and st.a == "0" then g[#g + 1] = st end
  end
  local deadline = ms and P.now_ms() + ms
  local wait = waiter()
  local order = {}
  local function finish(i, ...) -- (no handler: the index, then v, ok for a receive)
    local h = cases[i].handler
    if h then return i, h(...) end
    return i, ...
  end
  while true do
    for i = 1, n do order[i] = i end
    for i = n, 2, -1 do
      local j = math.random(i)
      order[i], order[j] = order[j], order[i]
    end
    for _, i in ipairs(order) do
      local c = cases[i]
      local ch = c.channel
      local st = state[ch]
      if c.default then
        -- last
      elseif st then
        if c.receive then
          local done, v, ok = receive_once(st, token)
          if done then return finish(i, v, ok) end
        else
          local r = try_send_once(st, c.send)
          if r == "ok" then return finish(i) end
          if r == "closed" then
            error(("select: case %d: send on closed channel"):format(i), 2)
          end
        end
      elseif c.receive then
        local v, ok = ch:try_receive()
        if ok then return finish(i, v, true) end
        if ch:is_closed() and ch:len() == 0 then return finish(i, nil, false) end
      else
        if ch:is_closed() then error(("select: case %d: send on closed channel"):format(i), 2) end
        if ch:try_send(c.send) then return finish(i) end
      end
    end
    if dflt then return finish(dflt) end
    local left = deadline and deadline - P.now_ms()
    if left and left <= 0 then return false, "timeout" end
    wait(left)
  end
end

-- ---- semaphores ----

local sem = {}
local held = {} -- name -> units this VM holds (its leases are kept alive)

local function check_units(st, k, method)
  if k == nil then return 1 end
  local n = type(k) == "number" and math.tointeger(k)
  local cap = math.tointeger(tonumber(st.a))
  if not n or n < 1 or n > cap then
    error(("bad argument #1 to '%s' (units from 1 to %d expected)"):format(method, cap), 3)
  end
  return n
end

local function sem_call(st, op, k)
  return call(st, SEM, op, st.origin, k or 0, P.token, LEASE)
end

local function note_held(st, d)
  if P.add(held, st.name, d) > 0 then P.keep_alive(true) end
end

function sem.acquire(o, k)
  local st = self_of(o, "acquire", "semaphore")
  k = check_units(st, k, "acquire")
  local wait = waiter()
  while sem_call(st, "acquire", k)[1] ~= "ok" do wait() end
  note_held(st, k)
  return true
end

function sem.try_acquire(o, k)
  local st = self_of(o, "try_acquire", "semaphore")
  k = check_units(st, k, "try_acquire")
  if sem_call(st, "acquire", k)[1] ~= "ok" then return false end
  note_held(st, k)
  return true
end

function sem.release(o, k)
  local st = self_of(o, "release", "semaphore")
  k = check_units(st, k, "release")
  local r = sem_call(st, "release", k)
  if r[1] == "over" then
    error(("semaphore released more than acquired (%d available of %s, releasing %d)")
      :format(r[2], st.a, k), 2)
  end
  note_held(st, -r[2])
end

function sem.available(o)
  return sem_call(self_of(o, "available", "semaphore"), "available")[1]
end

function sem.capacity(o)
  return math.tointeger(tonumber(self_of(o, "capacity", "semaphore").a))
end

-- ---- AtomicInts ----

local atom = {}

local function int_arg(v, n, method)
  local i = type(v) == "number" and math.tointeger(v)
  if not i then
    error(("bad argument #%d to '%s' (integer expected, got %s)"):format(n, method,
      math.type(v) == "float" and "number has no integer representation" or type(v)), 3)
  end
  return tostring(i)
end

local function at_fail(err)
  fail("fleet AtomicInt", err, 3)
end

-- The key exists (made with the first state by whichever VM comes first)
-- and is kept alive: looked at once an hour per VM (INCRBY and SET KEEPTTL
-- keep its TTL).
local function at_key(st)
  local now = P.now_ms()
  if not st.touched or now - st.touched > 3600000 then
    local k = st.keys[1]
    local r, err = P.command("SET", k, st.a, "NX", "EX", TTL)
    if r == nil and err then at_fail(err) end
    if r == nil then
      r, err = P.command("EXPIRE", k, TTL)
      if r == nil then at_fail(err) end
    end
    st.touched = now
  end
  return st.keys[1]
end

local function at_int(r, err)
  if r == nil and err then at_fail(err) end
  local i = math.tointeger(r) or (type(r) == "string" and math.tointeger(tonumber(r)))
  if not i then at_fail("not an integer in Redis: " .. (r == nil and "no value" or shown(tostring(r)))) end
  return i
end

function atom.add(o, d)
  local st = self_of(o, "add", "AtomicInt")
  local x = int_arg(d, 1, "add")
  return at_int(P.command("INCRBY", at_key(st), x))
end

function atom.load(o)
  local st = self_of(o, "load", "AtomicInt")
  return at_int(P.command("GET", at_key(st)))
end

function atom.store(o, v)
  local st = self_of(o, "store", "AtomicInt")
  local x = int_arg(v, 1, "store")
  local r, err = P.command("SET", at_key(st), x, "KEEPTTL")
  if r == nil then at_fail(err) end
end

function atom.swap(o, v)
  local st = self_of(o, "swap", "AtomicInt")
  local x = int_arg(v, 1, "swap")
  return at_int(P.command("SET", at_key(st), x, "KEEPTTL", "GET"))
end

function atom.compare_and_swap(o, old, new)
  local st = self_of(o, "compare_and_swap", "AtomicInt")
  local x, y = int_arg(old, 1, "compare_and_swap"), int_arg(new, 2, "compare_and_swap")
  at_key(st)
  local r, err = P.eval(script(AT_CAS), st.keys, x, y)
  if r == nil then at_fail(err) end
  return r == 1
end

-- ---- naming, metatables ----

local KINDS = {
  channel = {letter = "c", what = "channel", methods = chan, nkeys = 5},
  semaphore = {letter = "s", what = "semaphore", methods = sem, nkeys = 2},
  atomic_int = {letter = "a", what = "AtomicInt", methods = atom, nkeys = 1},
}
local BY_LETTER = {}
for kind, k in pairs(KINDS) do
  k.kind = kind
  BY_LETTER[k.letter] = k
  local title = kind == "channel" and "Channel" or kind == "semaphore" and "Semaphore" or
      "AtomicInt"
  for _, mt in pairs(P.mts[kind]) do
    mt.__index = k.methods
    mt.__tostring = function(o)
      local st = state[o]
      return ("%s(fleet %s)"):format(title, st and st.name or "?")
    end
    if kind == "channel" then
      mt.__channel = true
      mt.__select = select_fleet
    end
  end
end

local function keys_of(st, k)
  local base = "mutirao:obj:{" .. st.name .. "}"
  if k.kind == "channel" then
    st.keys = {base, base .. ":q", base .. ":p", base .. ":w", base .. ":x"}
  elseif k.kind == "semaphore" then
    st.keys = {base, base .. ":e"}
    st.origin = st.name:match("^(.*)/")
  else
    st.keys = {base}
  end
end

local function bytes_of(st)
  return TAG .. st.letter .. "|" .. st.name .. "|" .. st.a .. "|" .. st.b
end

-- o's bytes when it leaves this VM again (its metatable's codec hook)
local function name_of(o)
  local st = state[o]
  if not st then return nil end
  return bytes_of(st)
end

-- A local object (its first travel to the fleet) becomes a fleet one: its
-- metatable becomes the kind's "left" one, which keeps the local type's
-- __gc (the userdata still owns its local core, unused from now on).
local function promote(o, kind, a, b)
  local k = KINDS[kind]
  seq = seq + 1
  local st = {letter = k.letter, what = k.what, name = P.token .. "/" .. seq,
              a = tostring(math.tointeger(a)), b = tostring(math.tointeger(b))}
  if kind == "semaphore" then
    -- b: the units available; the VM that sent it holds the others
    st.b = tostring(math.tointeger(a) - math.tointeger(b))
    st.origin = P.token
  elseif kind == "channel" then
    st.b = b ~= 0 and "1" or "0"
  end
  keys_of(st, k)
  P.setmetatable(o, P.mts[kind].left)
  state[o] = st
  by_name[st.name] = o
  if kind == "semaphore" and tonumber(st.b) > 0 then note_held(st, tonumber(st.b)) end
  return bytes_of(st)
end

local NAME_PAT = "^[%w%._:%-/]+$"
local CAP_MAX = 1 << 40

-- The object named by bytes (one per name in this VM).
local function named(bytes)
  if bytes:sub(1, #TAG) ~= TAG then return nil, "not a fleet object" end
  local letter, name, a, b = bytes:match("^(%a)|([^|]+)|(%-?%d+)|(%-?%d+)$", #TAG + 1)
  local k = letter and BY_LETTER[letter]
  if not k or #name > 200 or not name:match(NAME_PAT) then return nil, "malformed fleet object" end
  local ia, ib = math.tointeger(tonumber(a)), math.tointeger(tonumber(b))
  if not ia or not ib or (k.kind == "channel" and (ia < 0 or ia > CAP_MAX or ib > 1 or ib < 0)) or
      (k.kind == "semaphore" and (ia < 1 or ib < 0 or ib > ia)) then
    return nil, "malformed fleet object"
  end
  local o = by_name[name]
  if o then return o end
  o = P.newobject(P.mts[k.kind].named)
  local st = {letter = letter, what = k.what, name = name, a = a, b = b}
  keys_of(st, k)
  state[o] = st
  by_name[name] = o
  return o
end

-- Keeps this VM's semaphore units alive (a timer calls it every lease/3);
-- false when it holds none any more.
local function refresh()
  local any = false
  for name, n in pairs(held) do
    local o = by_name[name]
    if o and n > 0 then
      local st = state[o]
      P.eval_nowait(script(SEM), st.keys, st.a, st.b, TTL, "touch", st.origin, 0, P.token, LEASE)
      any = true
    end
  end
  return any
end

return {promote = promote, named = named, name_of = name_of, refresh = refresh}
