-- bench/pool.lua: pool throughput on the embedded backend.
-- Run: lua5.4 bench/pool.lua trivial [N]   tasks/s for trivial tasks, submit to completion
--      lua5.4 bench/pool.lua fresh [N]     the same, a new closure made at each submit (the
--                                          usual pattern: pool_submit(p, function(i) ... end, i))
--      lua5.4 bench/pool.lua cpu [N]       CPU-bound tasks (compare MUTIRAO_PROCS=1 and 2)
--      lua5.4 bench/pool.lua sandboxed [N] trivial tasks of a pool with allow = {} (the
--                                          task sandbox), then ones that call string.format
--      lua5.4 bench/pool.lua alloc [N]     tasks that allocate: 2,000 small tables and
--                                          strings each (the pool VMs' allocator)
-- (with build/lib on package.cpath, or MUTIRAO_CPATH)
package.cpath = (os.getenv("MUTIRAO_CPATH") or "build/lib/?.so;") .. package.cpath
local goroutine = require("goroutine")
local now = goroutine.now
local mode = arg[1] or "trivial"
local N = tonumber(arg[2]) or (mode == "cpu" and 64 or mode == "alloc" and 5000 or 200000)

local cpu_us

local function run(name, opts, fn, n, fresh)
  goroutine.pool_create(name, opts)
  -- warm-up: start the VM threads and fill the codec caches
  for _ = 1, 100 do goroutine.pool_submit(name, fn) end
  goroutine.pool_wait(name)
  local t0, c0 = now(), os.clock()
  if fresh then
    local submit = goroutine.pool_submit
    for i = 1, n do
      local id, err = submit(name, function(x) return x end, i)
      if not id then error(err) end
    end
  else
    for i = 1, n do
      local id, err = goroutine.pool_submit(name, fn, i)
      if not id then error(err) end
    end
  end
  goroutine.pool_wait(name)
  local dt = now() - t0
  cpu_us = (os.clock() - c0) * 1e6 / n -- CPU time of the process (every thread) per task
  local st = goroutine.pool_stats(name)
  assert(st.completed == n + 100 and st.failed == 0, "lost tasks")
  goroutine.pool_close(name)
  return dt
end

if mode == "trivial" then
  local dt = run("trivial", {workers = 256, queue = 4096}, function(i) return i end, N)
  print(string.format("trivial: %d tasks in %.0f ms = %.0f tasks/s, cpu %.2f us/task (procs=%s)", N,
    dt, N / dt * 1000, cpu_us, os.getenv("MUTIRAO_PROCS") or "cores"))
elseif mode == "fresh" then
  local dt = run("fresh", {workers = 256, queue = 4096}, function(i) return i end, N, true)
  print(string.format("fresh: %d tasks in %.0f ms = %.0f tasks/s, cpu %.2f us/task (procs=%s)", N, dt,
    N / dt * 1000, cpu_us, os.getenv("MUTIRAO_PROCS") or "cores"))
elseif mode == "sandboxed" then
  for _, c in ipairs({
    { "plain", nil, function(i) return i end },
    { "sandboxed", {}, function(i) return i end },
    { "plain+lib", nil, function(i) return string.format("%d", i or 0) end },
    { "sandboxed+lib", {}, function(i) return string.format("%d", i or 0) end },
  }) do
    local dt = run("sb-" .. c[1]:gsub("%+", "-"), {workers = 256, queue = 4096, allow = c[2]}, c[3], N)
    print(string.format("%-14s %d tasks in %.0f ms = %.0f ns per task (procs=%s)", c[1] .. ":", N, dt,
      dt * 1e6 / N, os.getenv("MUTIRAO_PROCS") or "cores"))
  end
elseif mode == "cpu" then
  local dt = run("cpu", {workers = 64, queue = 128}, function()
    local x = 0
    for i = 1, 3000000 do x = x + i % 7 end
    return x
  end, N)
  print(string.format("cpu: %d tasks of 3M iterations in %.0f ms (procs=%s)", N, dt,
    os.getenv("MUTIRAO_PROCS") or "cores"))
elseif mode == "alloc" then
  local dt = run("alloc", {workers = 64, queue = 128}, function()
    local t = {}
    for i = 1, 2000 do t[i] = { i, "item " .. i } end
    return #t
  end, N)
  print(string.format("alloc: %d tasks of 2,000 tables and strings in %.0f ms (procs=%s)", N, dt,
    os.getenv("MUTIRAO_PROCS") or "cores"))
end
