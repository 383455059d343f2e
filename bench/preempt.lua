-- bench/preempt.lua: what preemption costs a CPU-bound loop, and how late
-- sleeping goroutines wake while another goroutine spins.
-- Run: lua5.4 bench/preempt.lua   (with build/lib on package.cpath)
package.cpath = (os.getenv("MUTIRAO_CPATH") or "build/lib/?.so;") .. package.cpath
local goroutine = require("goroutine")
local now = goroutine.now
local ITER = tonumber(arg and arg[1]) or 30000000

local function spin(n)
  local x = 0
  for i = 1, n do x = x + i % 7 end
  return x
end

local function best(f)
  local b = math.huge
  for _ = 1, 5 do
    local t0 = now(); f(); b = math.min(b, now() - t0)
  end
  return b
end

-- 1. the same loop in the main chunk (no scheduler involved) and inside a
--    goroutine (CPU-time signals every 2 ms, a yield every 10 ms slice).
local plain = best(function() spin(ITER) end)
local in_goroutine = best(function()
  local h = goroutine.async(spin, ITER)
  goroutine.await(h)
end)
-- two spinning goroutines interleaved by preemption
local two = best(function()
  local a, b = goroutine.async(spin, ITER // 2), goroutine.async(spin, ITER // 2)
  goroutine.await_all({a, b})
end)

-- 2. lateness of sleep(10) timers while one goroutine spins for ~1 s
local lates = {}
local stop = false
local spinner = goroutine.async(function()
  local t0 = now()
  local x = 0
  while now() - t0 < 1000 do x = x + 1 end
  stop = true
end)
local sleeper = goroutine.async(function()
  while not stop do
    local t0 = now()
    goroutine.sleep(10)
    lates[#lates + 1] = now() - t0 - 10
  end
end)
goroutine.await_all({spinner, sleeper})
table.sort(lates)
local function pct(p) return lates[math.max(1, math.ceil(#lates * p))] end

print(string.format("date: %s   loop of %d iterations, best of 5", os.date("!%Y-%m-%d %H:%M"), ITER))
print(string.format("%-44s %8.1f ms", "main chunk (no goroutine)", plain))
print(string.format("%-44s %8.1f ms  (%.3fx)", "one goroutine (preemptible)", in_goroutine, in_goroutine / plain))
print(string.format("%-44s %8.1f ms  (%.3fx)", "two goroutines, half each, interleaved", two, two / plain))
if #lates == 0 then print("sleep(10) lateness: no timer fired while the goroutine spun (preemption off?)") else print(string.format("sleep(10) lateness while a goroutine spins 1 s: n=%d  p50 %.1f ms  p99 %.1f ms  max %.1f ms",
  #lates, pct(0.5), pct(0.99), lates[#lates])) end
