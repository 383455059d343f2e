-- bench/fleet.lua MODE N POOL: fleet figures, run by bench/fleet.sh with
-- `mutirao run --fleet` against live mutirao-worker processes.
--   throughput N: N trivial tasks submitted at once (the pool's queue holds
--     them all; FLEET_BENCH_WORK=K: each task loops K times instead); time
--     from the first submit to the last result back in this producer, i.e.
--     each task stored in Redis and its notification read.
--   latency N: N tasks one at a time, every 5 ms (200/s); per task the
--     time from pool_submit to await returning; p50 and p99.
--   open: open loop, FLEET_BENCH_RATE tasks/s (default 1000) for
--     FLEET_BENCH_DURATION_S seconds (default 20): submissions on a fixed
--     schedule, each by its own goroutine (pool_submit then await), never
--     waiting for an earlier one; per task the time from its scheduled
--     submit to await returning (so a late producer counts too); p50, p99,
--     max over the run and over its first FLEET_BENCH_HEAD_S seconds
--     (default 2: the pool had been idle for the settle time before).
-- Every mode also prints one line for bench/peer.sh:
--   RESULT mode=... tasks=N ... cpu_self_us=U [cpu_ticks_NAME=T ...]
-- cpu_self_us is this producer's CPU time and cpu_ticks_NAME the
-- utime+stime clock ticks of each process of FLEET_BENCH_CPU_PIDS
-- ("NAME=PID NAME=PID ...") spent over the measured window only.
local g = require("goroutine")
local mode, n, pool = arg and arg[1], nil, nil
mode = params and params.mode or os.getenv("FLEET_BENCH_MODE") or "throughput"
n = tonumber(os.getenv("FLEET_BENCH_N") or "50000")
pool = os.getenv("FLEET_BENCH_POOL") or "bench"

-- utime + stime in clock ticks of a process (fields 14 and 15 of
-- /proc/PID/stat, counted after the parenthesised command name)
local function ticks(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    local fields = {}
    for w in s:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
    return tonumber(fields[12]) + tonumber(fields[13])
end
local watched = {}
for name, pid in (os.getenv("FLEET_BENCH_CPU_PIDS") or ""):gmatch("([%w_]+)=(%d+)") do
    watched[#watched + 1] = { name = name, pid = pid }
end
local function cpu_mark()
    local m = { self = os.clock() }
    for _, w in ipairs(watched) do m[w.name] = ticks(w.pid) end
    return m
end
local function cpu_fields(a, b)
    local out = { string.format("cpu_self_us=%.0f", (b.self - a.self) * 1e6) }
    for _, w in ipairs(watched) do
        if a[w.name] and b[w.name] then
            out[#out + 1] = string.format("cpu_ticks_%s=%d", w.name, b[w.name] - a[w.name])
        end
    end
    return table.concat(out, " ")
end
local function pct(sorted, p)
    if #sorted == 0 then return 0 / 0 end
    return sorted[math.max(1, math.ceil(#sorted * p))]
end

local rate = tonumber(os.getenv("FLEET_BENCH_RATE") or "1000")
local duration_s = tonumber(os.getenv("FLEET_BENCH_DURATION_S") or "20")
local head_s = tonumber(os.getenv("FLEET_BENCH_HEAD_S") or "2")
if mode == "open" then n = math.floor(rate * duration_s) end

assert(g.pool_create(pool, { workers = 512, queue = n + 1 }))
-- warm up: the producer's metadata, the workers' group and pool options
for _ = 1, 3 do
    local ok, err = g.await(assert(g.pool_submit(pool, function() return 1 end)))
    assert(ok, err)
end
-- let every worker join the group first (a join mid-run is a rebalance)
g.sleep(tonumber(os.getenv("FLEET_BENCH_SETTLE_MS") or "6000"))

if mode == "throughput" then
    -- FLEET_BENCH_WORK: loop iterations of each task's body (default 0: a
    -- trivial task), for runs where the workers' CPU is the bottleneck
    local work = tonumber(os.getenv("FLEET_BENCH_WORK") or "0")
    local body = function(x) return x end
    if work > 0 then
        body = function(x, k)
            local s = 0
            for j = 1, k do s = s + j % 7 end
            return x + s * 0
        end
    end
    local c0 = cpu_mark()
    local t0 = g.now()
    for i = 1, n do
        assert(g.pool_submit(pool, body, i, work))
    end
    local t1 = g.now()
    assert(g.pool_wait(pool))
    local t2 = g.now()
    local c2 = cpu_mark()
    local st = g.pool_stats(pool)
    assert(st.completed == n + 3 and st.failed == 0, "completed " .. st.completed)
    print(string.format("throughput: %d tasks in %.0f ms = %.0f tasks/s end to end "
        .. "(submits took %.0f ms: %.0f/s)", n, t2 - t0, n / ((t2 - t0) / 1000),
        t1 - t0, n / ((t1 - t0) / 1000)))
    print(string.format("RESULT mode=throughput tasks=%d ms=%.1f rate=%.0f %s",
        n, t2 - t0, n / ((t2 - t0) / 1000), cpu_fields(c0, c2)))
elseif mode == "open" then
    local interval = 1000 / rate
    local lat, head, failed = {}, {}, 0
    local wg = g.wait_group()
    local c0 = cpu_mark()
    local start = g.now()
    local sent = 0
    while sent < n do
        -- every task whose time has come, each in its own goroutine
        local due = math.min(n, math.floor((g.now() - start) / interval) + 1)
        while sent < due do
            sent = sent + 1
            local i, at = sent, start + (sent - 1) * interval
            wg:add(1)
            g.spawn(function()
                local id = g.pool_submit(pool, function(x) return x end, i)
                local ok = id and g.await(id)
                if ok then
                    local ms = g.now() - at
                    lat[#lat + 1] = ms
                    if at - start < head_s * 1000 then head[#head + 1] = ms end
                else
                    failed = failed + 1
                end
                wg:done()
            end)
        end
        local left = start + sent * interval - g.now()
        if left > 0 then g.sleep(left) end
    end
    local t1 = g.now()
    wg:wait()
    local t2 = g.now()
    local c2 = cpu_mark()
    assert(failed == 0, failed .. " tasks failed")
    table.sort(lat)
    table.sort(head)
    print(string.format("open loop at %d tasks/s for %.1f s (%d tasks, submitted in %.0f ms, "
        .. "last result %.0f ms later): p50 %.2f ms, p99 %.2f ms, max %.2f ms; first %g s: "
        .. "p50 %.2f ms, p99 %.2f ms, max %.2f ms", rate, duration_s, n, t1 - start, t2 - t1,
        pct(lat, 0.5), pct(lat, 0.99), lat[#lat], head_s, pct(head, 0.5), pct(head, 0.99),
        head[#head] or 0 / 0))
    print(string.format("RESULT mode=open tasks=%d rate=%d ms=%.1f p50_ms=%.3f p99_ms=%.3f "
        .. "max_ms=%.3f head_p50_ms=%.3f head_p99_ms=%.3f head_max_ms=%.3f %s", n, rate,
        t2 - start, pct(lat, 0.5), pct(lat, 0.99), lat[#lat], pct(head, 0.5), pct(head, 0.99),
        head[#head] or 0 / 0, cpu_fields(c0, c2)))
else
    local lat = {}
    for i = 1, n do
        local t0 = g.now()
        local ok = g.await(assert(g.pool_submit(pool, function(x) return x end, i)))
        assert(ok)
        lat[i] = g.now() - t0
        local left = 5 - (g.now() - t0)
        if left > 0 then g.sleep(left) end
    end
    table.sort(lat)
    print(string.format("latency at 200 tasks/s, %d tasks: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
        n, lat[math.ceil(n * 0.5)], lat[math.ceil(n * 0.99)], lat[n]))
end
