-- bench/goroutines.lua: goroutine costs side by side with raw Lua coroutines.
-- Run: lua5.4 bench/goroutines.lua [N]   (with build/lib on package.cpath)
-- Prints, for one run: ns per spawn+done+wait vs coroutine.create+resume,
-- bytes per parked (sleeping) goroutine vs a parked raw coroutine, and the
-- cost of 100,000 goroutines sleeping at once.
package.cpath = (os.getenv("MUTIRAO_CPATH") or "build/lib/?.so;") .. package.cpath
local goroutine = require("goroutine")
local now = goroutine.now

local N = tonumber(arg and arg[1]) or 400000
local ROUNDS = 5

local function best(f)
  local b = math.huge
  for _ = 1, ROUNDS do
    collectgarbage("collect")
    local t0 = now()
    f()
    local dt = now() - t0
    if dt < b then b = dt end
  end
  return b * 1e6 / N -- ns per item
end

-- 1. spawn + done + wait vs coroutine.create + resume, each running the
--    same trivial body, in batches of B (B goroutines alive at once, as in
--    "spawn B workers, then wait"). Raw coroutines are measured both one by
--    one (create, resume, drop) and in the same batch pattern.
local function per_item(f, B)
  local R = math.max(1, N // B)
  local b = math.huge
  for _ = 1, ROUNDS do
    collectgarbage("collect")
    local t0 = now()
    f(B, R)
    b = math.min(b, now() - t0)
  end
  return b * 1e6 / (B * R)
end

local function raw_one_by_one(B, R)
  local create, resume, count = coroutine.create, coroutine.resume, 0
  local body = function() count = count + 1 end
  for _ = 1, R * B do resume(create(body)) end
end

local function raw_batch(B, R)
  local create, resume, count = coroutine.create, coroutine.resume, 0
  local body = function() count = count + 1 end
  local cos = {}
  for _ = 1, R do
    for i = 1, B do cos[i] = create(body) end
    for i = 1, B do resume(cos[i]) end
  end
end

local function spawn_batch(B, R)
  local spawn, count = goroutine.spawn, 0
  for _ = 1, R do
    local wg = goroutine.wait_group()
    local body = function() count = count + 1; wg:done() end
    wg:add(B)
    for _ = 1, B do spawn(body) end
    wg:wait()
  end
  assert(count == B * R)
end

local rows = {}
for _, B in ipairs({100, 1000, 10000, 100000}) do
  rows[#rows + 1] = {B, per_item(raw_one_by_one, B), per_item(raw_batch, B), per_item(spawn_batch, B)}
end

-- 2. memory per parked goroutine (sleeping) vs a parked raw coroutine.
local function rss_kb()
  local f = io.open("/proc/self/statm")
  if not f then return 0 end
  local _, res = f:read("n", "n")
  f:close()
  return res * 4
end

local P = 100000
local function parked_raw()
  collectgarbage("collect"); collectgarbage("collect")
  local before = collectgarbage("count")
  local cos = {}
  for i = 1, P do
    local co = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(co)
    cos[i] = co
  end
  collectgarbage("collect")
  local per = (collectgarbage("count") - before) * 1024 / P
  cos = nil
  return per
end
local raw_bytes = parked_raw()

collectgarbage("collect"); collectgarbage("collect")
local before_kb, before_rss = collectgarbage("count"), rss_kb()
local wg = goroutine.wait_group()
wg:add(P)
local t0 = now()
for _ = 1, P do
  goroutine.spawn(function() goroutine.sleep(1500); wg:done() end)
end
local t_spawn = now() - t0
-- let every goroutine start and park in its sleep
goroutine.sleep(0)
goroutine.sleep(1)
collectgarbage("collect")
local lua_bytes = (collectgarbage("count") - before_kb) * 1024 / P
local rss_bytes = (rss_kb() - before_rss) * 1024 / P
wg:wait()
local t_all = now() - t0

print(string.format("date: %s   N=%d items per measure, best of %d rounds", os.date("!%Y-%m-%d %H:%M"), N, ROUNDS))
print(string.format("%8s %14s %14s %14s %10s %10s", "batch", "raw 1-by-1 ns", "raw batch ns", "spawn ns", "vs 1-by-1", "vs batch"))
for _, r in ipairs(rows) do
  print(string.format("%8d %14.0f %14.0f %14.0f %9.2fx %9.2fx", r[1], r[2], r[3], r[4], r[4] / r[2], r[4] / r[3]))
end
print(string.format("%-46s %8.0f B", "parked raw coroutine (Lua heap)", raw_bytes))
print(string.format("%-46s %8.0f B  (%.2fx raw)", "parked goroutine in sleep (Lua heap)", lua_bytes, lua_bytes / raw_bytes))
print(string.format("%-46s %8.0f B", "parked goroutine in sleep (process RSS)", rss_bytes))
print(string.format("%-46s %8.0f ms", "spawn 100,000 sleeping goroutines", t_spawn))
print(string.format("%-46s %8.0f ms  (sleep is 1500 ms)", "100,000 x sleep(1500) all woken after", t_all))
