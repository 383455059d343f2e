-- bench/goroutines.lua: goroutine costs side by side with raw Lua coroutines.
-- Run: lua5.4 bench/goroutines.lua [N]   (with build/lib on package.cpath)
-- Prints, for one run: ns per spawn+done+wait vs coroutine.create+resume,
-- bytes per parked (sleeping) goroutine vs a parked raw coroutine, and the
-- cost of 100,000 goroutines sleeping at once.
package.cpath = (os.getenv("MUTIRAO_CPATH") or "build/lib/?.so;") .. package.cpath
local goroutine = require("goroutine")
local now = goroutine.now

local N = tonumber(arg and arg[1] and arg[1]:match("^%d+$") and arg[1]) or 400000
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

-- 0. cold start: a 100,000-goroutine batch in a fresh process, before any
--    goroutine record exists to reuse, against the same raw batch in another
--    fresh process (run.sh runs both modes, each in its own process).
local mode = arg and arg[1]
if mode == "cold-spawn" or mode == "cold-raw" then
  collectgarbage("collect")
  local t0 = now()
  if mode == "cold-spawn" then
    local wg, count = goroutine.wait_group(), 0
    local body = function() count = count + 1; wg:done() end
    wg:add(100000)
    for _ = 1, 100000 do goroutine.spawn(body) end
    wg:wait()
  else
    local create, resume, count = coroutine.create, coroutine.resume, 0
    local body = function() count = count + 1 end
    local cos = {}
    for i = 1, 100000 do cos[i] = create(body) end
    for i = 1, 100000 do resume(cos[i]) end
  end
  print(string.format("%s: %.0f ns per item (100,000 at once, fresh process)", mode, (now() - t0) * 1e6 / 100000))
  return
end

-- 1. memory per parked goroutine (sleeping) vs a parked raw coroutine.
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
local before_kb = collectgarbage("count")
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
wg:wait()
local t_all = now() - t0

-- 2. spawn + done + wait vs coroutine.create + resume, each running the
--    same trivial body, in batches of B (B goroutines alive at once, as in
--    "spawn B workers, then wait"). Raw coroutines are measured both one by
--    one (create, resume, drop) and in the same batch pattern.
local function per_item(f, B)
  local R = math.max(1, N // B)
  local b, first = math.huge, nil
  for _ = 1, ROUNDS do
    collectgarbage("collect")
    local t0 = now()
    f(B, R)
    local dt = now() - t0
    first = first or dt
    b = math.min(b, dt)
  end
  return b * 1e6 / (B * R), first * 1e6 / (B * R)
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
  local r1 = per_item(raw_one_by_one, B)
  local rb = per_item(raw_batch, B)
  local sp, sp_first = per_item(spawn_batch, B)
  rows[#rows + 1] = {B, r1, rb, sp, sp_first}
end

print(string.format("date: %s   N=%d items per measure, best of %d rounds", os.date("!%Y-%m-%d %H:%M"), N, ROUNDS))
print(string.format("%8s %13s %13s %10s %10s %10s %15s", "batch", "raw 1-by-1 ns", "raw batch ns", "spawn ns", "vs 1-by-1", "vs batch", "spawn cold ns"))
for _, r in ipairs(rows) do
  print(string.format("%8d %13.0f %13.0f %10.0f %9.2fx %9.2fx %15.0f", r[1], r[2], r[3], r[4], r[4] / r[2], r[4] / r[3], r[5]))
end
print("(spawn ns: best round, goroutine records reused; spawn cold ns: the first round, which allocates them)")
print(string.format("%-46s %8.0f B", "parked raw coroutine (Lua heap)", raw_bytes))
print(string.format("%-46s %8.0f B  (%.2fx raw)", "parked goroutine in sleep (Lua heap)", lua_bytes, lua_bytes / raw_bytes))
print(string.format("%-46s %8.0f ms", "spawn 100,000 sleeping goroutines", t_spawn))
print(string.format("%-46s %8.0f ms  (sleep is 1500 ms)", "100,000 x sleep(1500) all woken after", t_all))
