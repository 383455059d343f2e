-- The limits of pool tasks on the embedded backend: pool_create's
-- `timeout` (a task that has run that long is cancelled) and `memory` (the
-- bytes a task may hold; past them it fails with "not enough memory"). In
-- both cases the pool's VMs live on and run the next tasks.
local G = require("goroutine")
local factor = tonumber(os.getenv("MUTIRAO_TIME_FACTOR") or "") or 1

local n = 0
local function fresh_name()
    n = n + 1
    return "limits_pool_" .. n
end

local MB = 1024 * 1024

describe("pool_create's timeout", function()
    it("cancels a CPU-bound task and runs the pool's next task", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1, timeout = 200 }))
        local t0 = G.now()
        local id = G.pool_submit(name, function() while true do end end)
        local nxt = G.pool_submit(name, function(x) return x * 2 end, 21)
        local ok, err = G.await(id)
        local took = G.now() - t0
        assert.is_false(ok)
        assert.are.equal("timeout after 200 ms", err)
        assert.is_true(took >= 190, "cancelled early: " .. took)
        assert.is_true(took < 1000 * factor, "cancelled late: " .. took)
        assert.are.same({ true, 42 }, { G.await(nxt) })
        local st = G.pool_stats(name)
        assert.are.equal(1, st.failed)
        assert.are.equal(1, st.completed)
        assert.are.equal(200, st.timeout)
        G.pool_close(name)
    end)

    it("is not escaped by a pcall around the loop", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 2, timeout = 150 }))
        local id = G.pool_submit(name, function()
            local ok = pcall(function() while true do end end)
            return "escaped", ok
        end)
        -- a loop inside a C call that cannot yield (a sort comparator)
        local id2 = G.pool_submit(name, function()
            local t = { 3, 2, 1 }
            for _ = 1, 1e9 do
                pcall(table.sort, t, function(a, b)
                    while true do end
                end)
            end
            return "escaped"
        end)
        assert.are.same({ false, "timeout after 150 ms" }, { G.await(id) })
        assert.are.same({ false, "timeout after 150 ms" }, { G.await(id2) })
        G.pool_close(name)
    end)

    it("cancels a waiting task and the goroutines the task started", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 4, timeout = 100 }))
        local wg = G.wait_group()
        wg:add(2)
        local id = G.pool_submit(name, function()
            local g = require("goroutine")
            g.spawn(function() g.sleep(300) wg:done() end)
            g.spawn(function() while true do end end)
            g.sleep(5000)
            return "slept"
        end)
        assert.are.same({ false, "timeout after 100 ms" }, { G.await(id) })
        G.sleep(400)
        assert.are.equal(2, wg:count(), "a goroutine of the task outlived its timeout")
        -- the VMs are free: a task in time is unaffected
        local t0 = G.now()
        assert.are.same({ true, "in time" }, { G.await(G.pool_submit(name, function()
            require("goroutine").sleep(20)
            return "in time"
        end)) })
        assert.is_true(G.now() - t0 < 90 * factor + 100)
        G.pool_close(name)
    end)

    it("leaves tasks without a timeout alone, and a timeout() inside a task works", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 2 }))
        assert.are.equal(0, G.pool_stats(name).timeout)
        local id = G.pool_submit(name, function()
            local g = require("goroutine")
            g.sleep(300)
            return g.timeout(50, function() while true do end end)
        end)
        assert.are.same({ true, false, "timeout after 50 ms" }, { G.await(id) })
        G.pool_close(name)
    end)

    it("refuses bad values with argument errors", function()
        for _, bad in ipairs({ 0, -1, 1.5, "1s", true, 2 ^ 31 }) do
            local ok, err = pcall(G.pool_create, fresh_name(), { timeout = bad })
            assert.is_false(ok)
            assert.matches("bad option 'timeout' to 'pool_create' %(integer from 1 to 2147483647 %(ms%) expected", err)
        end
        local ok, err = pcall(G.pool_create, fresh_name(), { time_out = 5 })
        assert.is_false(ok)
        assert.matches("bad option 'time_out' to 'pool_create' %(unknown option; expected workers, queue, block, max_deliveries, timeout, memory, retries, backoff or allow%)", err)
        ok, err = pcall(G.pool_create, fresh_name(), { [1] = 2 })
        assert.is_false(ok)
        assert.matches("bad option key to 'pool_create' %(option names are strings, got number%)", err)
    end)
end)

describe("pool_create's memory", function()
    it("fails a task that holds more than its limit; the next task runs", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1, memory = 16 * MB }))
        assert.are.equal(16 * MB, G.pool_stats(name).memory)
        local hog = G.pool_submit(name, function()
            local t = {}
            for i = 1, 1e8 do t[i] = string.rep("x", 100) .. i end
            return #t
        end)
        local big = G.pool_submit(name, function() return #string.rep("y", 20 * MB) end)
        local nxt = G.pool_submit(name, function(x) return x + 1 end, 1)
        assert.are.same({ false, "not enough memory" }, { G.await(hog) })
        assert.are.same({ false, "not enough memory" }, { G.await(big) })
        assert.are.same({ true, 2 }, { G.await(nxt) })
        G.pool_close(name)
    end)

    -- (string.rep builds its result in a buffer, then copies it: it needs
    -- twice the string's size for a moment)
    it("leaves tasks under the limit alone, also beside a hog on the same VMs", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 8, memory = 24 * MB }))
        local ids = {}
        ids[1] = G.pool_submit(name, function()
            local t = {}
            for i = 1, 1e8 do t[i] = { i } end
        end)
        for i = 2, 8 do
            ids[i] = G.pool_submit(name, function(k)
                local g = require("goroutine")
                local t, len = {}, 0
                for j = 1, 40 do
                    t[j] = string.rep(string.char(64 + j % 26), 256 * 1024) -- 10 MB in all
                    len = len + #t[j]
                    g.sleep(2)
                end
                return k, len
            end, i)
        end
        assert.are.same({ false, "not enough memory" }, { G.await(ids[1]) })
        for i = 2, 8 do
            assert.are.same({ true, i, 40 * 256 * 1024 }, { G.await(ids[i]) })
        end
        G.pool_close(name)
    end)

    it("counts what the task's goroutines hold together, and nothing after they end", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1, memory = 16 * MB }))
        -- k goroutines of one task hold 4 MB each at the same time
        local function together(k)
            return G.pool_submit(name, function()
                local g = require("goroutine")
                local hold, h = {}, {}
                for i = 1, k do
                    h[i] = g.async(function()
                        hold[i] = string.rep("z", 4 * MB)
                        g.sleep(100)
                        return #hold[i]
                    end)
                end
                local total = 0
                for i = 1, k do
                    local ok, v = g.await(h[i])
                    if not ok then error(v, 0) end
                    total = total + v
                end
                return total
            end)
        end
        assert.are.same({ true, 8 * MB }, { G.await(together(2)) })
        local ok, err = G.await(together(5)) -- 20 MB: more than 16
        assert.is_false(ok)
        assert.matches("^not enough memory", err)
        -- one task after the other, 6 MB each: every one fits
        for _ = 1, 5 do
            assert.are.same({ true, 6 * MB }, { G.await(G.pool_submit(name, function()
                local s = string.rep("w", 6 * MB)
                return #s
            end)) })
        end
        G.pool_close(name)
    end)

    it("lets a task catch its own memory error with pcall and go on", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1, memory = 8 * MB }))
        local id = G.pool_submit(name, function()
            local ok, err = pcall(string.rep, "x", 64 * MB)
            return ok, err, #string.rep("x", MB)
        end)
        assert.are.same({ true, false, "not enough memory", MB }, { G.await(id) })
        G.pool_close(name)
    end)

    it("has a default of 256 MB and refuses bad values with argument errors", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name))
        assert.are.equal(256 * MB, G.pool_stats(name).memory)
        G.pool_close(name)
        for _, bad in ipairs({ 0, 1000, MB - 1, MB + 0.5, "256MB", 2 ^ 51 }) do
            local ok, err = pcall(G.pool_create, fresh_name(), { memory = bad })
            assert.is_false(ok)
            assert.matches("bad option 'memory' to 'pool_create' %(integer from 1048576 to 1125899906842624 %(bytes%) expected", err)
        end
    end)
end)
