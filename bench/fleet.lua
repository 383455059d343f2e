-- bench/fleet.lua MODE N POOL: fleet figures, run by bench/fleet.sh with
-- `mutirao run --fleet` against live mutirao-worker processes.
--   throughput N: N trivial tasks submitted at once (the pool's queue holds
--     them all); time from the first submit to the last result back in this
--     producer, i.e. each task stored in Redis and its notification read.
--   latency N: N tasks one at a time, every 5 ms (200/s); per task the
--     time from pool_submit to await returning; p50 and p99.
local g = require("goroutine")
local mode, n, pool = arg and arg[1], nil, nil
mode = params and params.mode or os.getenv("FLEET_BENCH_MODE") or "throughput"
n = tonumber(os.getenv("FLEET_BENCH_N") or "50000")
pool = os.getenv("FLEET_BENCH_POOL") or "bench"

assert(g.pool_create(pool, { workers = 512, queue = n + 1 }))
-- warm up: the producer's metadata, the workers' group and pool options
for _ = 1, 3 do
    local ok, err = g.await(assert(g.pool_submit(pool, function() return 1 end)))
    assert(ok, err)
end
-- let every worker join the group first (a join mid-run is a rebalance)
g.sleep(tonumber(os.getenv("FLEET_BENCH_SETTLE_MS") or "6000"))

if mode == "throughput" then
    local t0 = g.now()
    for i = 1, n do
        assert(g.pool_submit(pool, function(x) return x end, i))
    end
    local t1 = g.now()
    assert(g.pool_wait(pool))
    local t2 = g.now()
    local st = g.pool_stats(pool)
    assert(st.completed == n + 3 and st.failed == 0, "completed " .. st.completed)
    print(string.format("throughput: %d tasks in %.0f ms = %.0f tasks/s end to end "
        .. "(submits took %.0f ms: %.0f/s)", n, t2 - t0, n / ((t2 - t0) / 1000),
        t1 - t0, n / ((t1 - t0) / 1000)))
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
