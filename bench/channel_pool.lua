-- bench/channel_pool.lua: a buffered channel between the main VM and a pool
-- VM (another OS thread), side by side with the same channel inside one VM
-- and with one pool task per value, in one process, rounds interleaved
-- (A B C D A B C D ...).
-- Run: lua5.4 bench/channel_pool.lua [N] [ROUNDS]   (with build/lib on package.cpath)
--   A  one VM: a goroutine sends N integers on a channel of capacity 128,
--      another ranges over it (both in the main VM)
--   B  main -> pool VM: the main VM sends, a pool task ranges over it
--   C  pool VM -> main: a pool task sends, the main VM ranges over it
--   D  one pool task per value: pool_submit(fn, i) N times, then await each
-- Prints per kind the median (min-max) over the rounds of wall ns and CPU ns
-- (os.clock: every thread of the process) per value, and the load average.
package.cpath = (os.getenv("MUTIRAO_CPATH") or "build/lib/?.so;") .. package.cpath
local G = require("goroutine")

local N = tonumber(arg and arg[1]) or 100000
local ROUNDS = tonumber(arg and arg[2]) or 7
local POOL = "bench_channel_pool"
G.pool_create(POOL, { workers = 4, queue = 1024 })

local function expect(s, n)
    if s ~= n * (n + 1) // 2 then error("values lost: sum " .. tostring(s)) end
end

local function one_vm(n)
    local ch = G.channel(128)
    G.spawn(function()
        for i = 1, n do ch:send(i) end
        ch:close()
    end)
    local s = 0
    for v in ch:iter() do s = s + v end
    expect(s, n)
end

local function to_pool(n)
    local ch = G.channel(128)
    local id = assert(G.pool_submit(POOL, function()
        local s = 0
        for v in ch:iter() do s = s + v end
        return s
    end))
    for i = 1, n do ch:send(i) end
    ch:close()
    local ok, s = G.await(id)
    assert(ok, s)
    expect(s, n)
end

local function from_pool(n)
    local ch = G.channel(128)
    local id = assert(G.pool_submit(POOL, function(k)
        for i = 1, k do ch:send(i) end
        ch:close()
    end, n))
    local s = 0
    for v in ch:iter() do s = s + v end
    assert(G.await(id))
    expect(s, n)
end

local function per_task(n)
    local ids = {}
    for i = 1, n do ids[i] = assert(G.pool_submit(POOL, function(x) return x end, i)) end
    local s = 0
    for i = 1, n do
        local ok, v = G.await(ids[i])
        assert(ok, v)
        s = s + v
    end
    expect(s, n)
end

local kinds = {
    { "A one VM (cap 128)", one_vm },
    { "B main -> pool VM (cap 128)", to_pool },
    { "C pool VM -> main (cap 128)", from_pool },
    { "D one pool task per value", per_task },
}

local function median(t)
    local c = {}
    for i, v in ipairs(t) do c[i] = v end
    table.sort(c)
    local m = #c
    return m % 2 == 1 and c[(m + 1) // 2] or (c[m // 2] + c[m // 2 + 1]) / 2, c[1], c[m]
end

local wall, cpu = {}, {}
for k = 1, #kinds do wall[k], cpu[k] = {}, {} end
for _ = 1, ROUNDS do
    for k, kind in ipairs(kinds) do
        collectgarbage()
        local w0, c0 = G.now(), os.clock()
        kind[2](N)
        wall[k][#wall[k] + 1] = (G.now() - w0) * 1e6 / N
        cpu[k][#cpu[k] + 1] = (os.clock() - c0) * 1e9 / N
    end
end
local f = io.open("/proc/loadavg")
print(("N = %d, %d rounds, load %s"):format(N, ROUNDS, f and f:read("l") or "?"))
if f then f:close() end
print(("%-32s %22s %22s"):format("", "wall ns/value", "CPU ns/value"))
for k, kind in ipairs(kinds) do
    local wm, wl, wh = median(wall[k])
    local cm, cl, ch = median(cpu[k])
    print(("%-32s %8.0f (%5.0f-%5.0f) %8.0f (%5.0f-%5.0f)"):format(kind[1], wm, wl, wh, cm, cl, ch))
end
G.pool_close(POOL)
