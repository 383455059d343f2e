-- bench/channel.lua: channels side by side with raw Lua coroutines, in one
-- process, rounds interleaved (A B A B ...).
-- Run: lua5.4 bench/channel.lua [N] [ROUNDS]   (with build/lib on package.cpath)
--   A  coroutine round trip: resume a coroutine that yields the value back
--   B  unbuffered ping-pong: goroutine 1 sends on `ping`, goroutine 2
--      receives it and sends it back on `pong`, goroutine 1 receives it
--   C  buffered (cap 128) throughput: one goroutine sends N values, another
--      receives them
-- Prints per kind the median (min-max) of the rounds' CPU ns per round trip
-- (per value for C) and the ratio B / A of the medians and its min-max over
-- the rounds.
-- lua5.4 bench/channel.lua N 1 coro|pingpong|buffered runs one kind once (for
-- instruction counts: valgrind --tool=callgrind at two N, the difference
-- divided by the difference of N is the cost of one round trip).
package.cpath = (os.getenv("MUTIRAO_CPATH") or "build/lib/?.so;") .. package.cpath
local G = require("goroutine")

local N = tonumber(arg and arg[1]) or 200000
local ROUNDS = tonumber(arg and arg[2]) or 7

local function coro(n)
    local co = coroutine.wrap(function(v)
        while true do v = coroutine.yield(v) end
    end)
    for i = 1, n do
        if co(i) ~= i then error("coroutine round trip lost its value") end
    end
end

local function pingpong(n)
    local ping, pong = G.channel(), G.channel()
    local wg = G.wait_group()
    wg:add(2)
    G.spawn(function()
        for _ = 1, n do pong:send(ping:receive()) end
        wg:done()
    end)
    G.spawn(function()
        for i = 1, n do
            ping:send(i)
            if pong:receive() ~= i then error("ping-pong lost its value") end
        end
        wg:done()
    end)
    wg:wait()
end

local function buffered(n)
    local ch = G.channel(128)
    local wg = G.wait_group()
    wg:add(1)
    G.spawn(function()
        for i = 1, n do ch:send(i) end
        ch:close()
    end)
    G.spawn(function()
        local s = 0
        for v in ch:iter() do s = s + v end
        if s ~= n * (n + 1) // 2 then error("buffered channel lost values") end
        wg:done()
    end)
    wg:wait()
end

local function cpu_ns(f)
    collectgarbage("collect")
    local t0 = os.clock()
    f(N)
    return (os.clock() - t0) * 1e9 / N
end

local function median(t)
    local s = { table.unpack(t) }
    table.sort(s)
    local m = #s // 2
    return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
end

local function range(t)
    local s = { table.unpack(t) }
    table.sort(s)
    return s[1], s[#s]
end

local only = arg and arg[3]
if only then
    local kinds = { coro = coro, pingpong = pingpong, buffered = buffered }
    assert(kinds[only], "kind: coro, pingpong or buffered")(N)
    return
end

coro(N // 10) -- warm-up
pingpong(N // 10)
buffered(N // 10)
local a, b, c, ratio = {}, {}, {}, {}
for r = 1, ROUNDS do
    a[r] = cpu_ns(coro)
    b[r] = cpu_ns(pingpong)
    c[r] = cpu_ns(buffered)
    ratio[r] = b[r] / a[r]
end
local function line(name, t)
    local lo, hi = range(t)
    print(string.format("%-44s %8.1f ns (%.1f-%.1f)", name, median(t), lo, hi))
end
print(string.format("# N = %d, %d rounds interleaved, CPU time (os.clock)", N, ROUNDS))
line("A coroutine resume/yield round trip", a)
line("B unbuffered channel ping-pong round trip", b)
line("C buffered channel (cap 128), per value", c)
local lo, hi = range(ratio)
print(string.format("B / A: %.2fx (rounds %.2f-%.2f)", median(b) / median(a), lo, hi))
