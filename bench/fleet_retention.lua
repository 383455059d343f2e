-- bench/fleet_retention.lua: N trivial tasks on the fleet, every result
-- awaited (in batches of 10,000 submits, then their awaits), for
-- bench/fleet_retention.sh, which compares Redis's used_memory before and
-- after. FLEET_BENCH_N tasks, FLEET_BENCH_POOL pool.
local g = require("goroutine")
local n = tonumber(os.getenv("FLEET_BENCH_N") or "1000000")
local pool = os.getenv("FLEET_BENCH_POOL") or "retention"
assert(g.pool_create(pool, { workers = 512, queue = 20000 }))
local t0, batch = g.now(), 10000
for first = 1, n, batch do
    local ids = {}
    for i = first, math.min(n, first + batch - 1) do
        ids[#ids + 1] = assert(g.pool_submit(pool, function(x) return x end, i))
    end
    for k, id in ipairs(ids) do
        local ok, v = g.await(id)
        assert(ok and v == first + k - 1, tostring(v))
    end
end
local st = assert(g.pool_stats(pool))
assert(st.fleet_completed == n and st.fleet_failed == 0, "completed " .. st.fleet_completed)
print(string.format("%d tasks awaited in %.1f s", n, (g.now() - t0) / 1000))
