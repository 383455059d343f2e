-- pool_create's `retries` and `backoff` on the embedded backend: a task
-- that raises runs again after an exponential backoff, without holding a
-- pool slot while it waits; await gets the first success or the last
-- failure. The attempts are counted in a file the task writes.
local G = require("goroutine")
local factor = tonumber(os.getenv("MUTIRAO_TIME_FACTOR") or "") or 1

local n = 0
local function fresh_name()
    n = n + 1
    return "retries_pool_" .. n
end

-- A task that fails its first `fails` attempts, counting them in `path`.
local function flaky(path, fails)
    local f = io.open(path, "r")
    local runs = f and tonumber(f:read("a")) or 0
    if f then f:close() end
    runs = runs + 1
    f = assert(io.open(path, "w"))
    f:write(tostring(runs))
    f:close()
    if runs <= fails then error("attempt " .. runs .. " failed", 0) end
    return "ok after " .. runs
end

local function runs_in(path)
    local f = io.open(path, "r")
    if not f then return 0 end
    local v = tonumber(f:read("a"))
    f:close()
    return v
end

local function bad(opts)
    local ok, err = pcall(G.pool_create, fresh_name(), opts)
    assert.is_false(ok)
    return err
end

describe("pool_create's retries and backoff options", function()
    it("refuses bad values with argument errors", function()
        assert.matches("bad option 'retries' to 'pool_create' %(integer from 0 to 1000 %(runs%) expected, got %-1%)",
            bad({ retries = -1 }))
        assert.matches("bad option 'retries' to 'pool_create' %(integer from 0 to 1000 %(runs%) expected, got table%)",
            bad({ retries = {} }))
        assert.matches("bad option 'retries'", bad({ retries = 1.5 }))
        assert.matches("bad option 'backoff' to 'pool_create' %(table expected, got number%)",
            bad({ backoff = 100 }))
        assert.matches("bad option 'backoff' to 'pool_create' %(unknown field 'intial'; expected initial, max or jitter%)",
            bad({ backoff = { intial = 5 } }))
        assert.matches("bad option 'backoff' to 'pool_create' %(initial: integer from 0 to 86400000 %(ms%) expected, got %-1%)",
            bad({ backoff = { initial = -1 } }))
        assert.matches("bad option 'backoff' to 'pool_create' %(max: integer from 0 to 86400000 %(ms%) expected, got string%)",
            bad({ backoff = { max = "x" } }))
        assert.matches("bad option 'backoff' to 'pool_create' %(jitter: number from 0 to 1 expected, got 1%.5%)",
            bad({ backoff = { jitter = 1.5 } }))
        assert.matches("bad option 'backoff' to 'pool_create' %(jitter: number from 0 to 1 expected, got boolean%)",
            bad({ backoff = { jitter = true } }))
        assert.matches("bad option 'backoff' to 'pool_create' %(max 10 ms is below initial 50 ms%)",
            bad({ backoff = { initial = 50, max = 10 } }))
    end)

    it("defaults to no retries", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name))
        local path = os.tmpname()
        local id = G.pool_submit(name, flaky, path, 1)
        local ok, err = G.await(id)
        assert.is_false(ok)
        assert.matches("^attempt 1 failed", err)
        assert.are.equal(1, runs_in(path))
        local st = G.pool_stats(name)
        assert.are.equal(0, st.retries)
        assert.are.equal(0, st.retried)
        os.remove(path)
        G.pool_close(name)
    end)
end)

describe("retries on the embedded backend", function()
    it("runs a task that failed twice a third time and returns its value", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { retries = 2, backoff = { initial = 10, jitter = 0 } }))
        local path = os.tmpname()
        local id = G.pool_submit(name, flaky, path, 2)
        assert.are.same({ true, "ok after 3" }, { G.await(id) })
        assert.are.equal(3, runs_in(path))
        local st = G.pool_stats(name)
        assert.are.equal(2, st.retries)
        assert.are.equal(2, st.retried)
        assert.are.equal(1, st.completed)
        assert.are.equal(0, st.failed)
        assert.are.equal(1, st.submitted)
        os.remove(path)
        G.pool_close(name)
    end)

    it("runs a small task again with its own input (the failure's outcome does not overwrite it)", function()
        -- a task and its arguments that encode into the executor's inline
        -- buffer: the failed attempt's outcome used to be written over
        -- them ("cannot load: malformed message" on the retry)
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { retries = 2, backoff = { initial = 10, jitter = 0 } }))
        local tries = G.atomic_int()
        local id = G.pool_submit(name, function()
            if tries:add(1) < 3 then error("flaky", 0) end
            return "ok", tries:load()
        end)
        assert.are.same({ true, "ok", 3 }, { G.await(id) })
        assert.are.equal(2, G.pool_stats(name).retried)
        local spent = G.pool_submit(name, function() error("x", 0) end)
        local ok, err = G.await(spent)
        assert.is_false(ok)
        assert.matches("^x\n", err) -- its own failure, not a load error
        assert.are.equal(4, G.pool_stats(name).retried)
        G.pool_close(name)
    end)

    it("gives the last failure once the retries are spent", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { retries = 1, backoff = { initial = 10, jitter = 0 } }))
        local path = os.tmpname()
        local id = G.pool_submit(name, flaky, path, 2)
        local ok, err = G.await(id)
        assert.is_false(ok)
        assert.matches("^attempt 2 failed", err)
        assert.are.equal(2, runs_in(path))
        local st = G.pool_stats(name)
        assert.are.equal(1, st.retried)
        assert.are.equal(1, st.failed)
        assert.are.equal(0, st.completed)
        os.remove(path)
        G.pool_close(name)
    end)

    it("waits initial * 2^(attempt-1), capped at max", function()
        local name = fresh_name()
        -- waits 100, 200, 300 (capped): 600 ms
        assert.is_true(G.pool_create(name,
            { retries = 3, backoff = { initial = 100, max = 300, jitter = 0 } }))
        local path = os.tmpname()
        local t0 = G.now()
        local id = G.pool_submit(name, flaky, path, 3)
        assert.are.same({ true, "ok after 4" }, { G.await(id) })
        local took = G.now() - t0
        assert.is_true(took >= 590, "retried early: " .. took)
        assert.is_true(took < 1500 * factor, "retried late: " .. took)
        os.remove(path)
        G.pool_close(name)
    end)

    it("keeps each wait within the jitter", function()
        local name = fresh_name()
        -- one wait of 200 ms +- 50%
        assert.is_true(G.pool_create(name,
            { retries = 1, backoff = { initial = 200, jitter = 0.5 } }))
        for _ = 1, 3 do
            local path = os.tmpname()
            local t0 = G.now()
            local id = G.pool_submit(name, flaky, path, 1)
            assert.are.same({ true, "ok after 2" }, { G.await(id) })
            local took = G.now() - t0
            assert.is_true(took >= 95, "retried early: " .. took)
            assert.is_true(took < 800 * factor, "retried late: " .. took)
            os.remove(path)
        end
        G.pool_close(name)
    end)

    it("holds no pool slot while a task waits for its next attempt", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name,
            { workers = 1, retries = 1, backoff = { initial = 1000, jitter = 0 } }))
        local path = os.tmpname()
        local t0 = G.now()
        local id = G.pool_submit(name, flaky, path, 1)
        G.sleep(50)
        local other = G.pool_submit(name, function() return "other" end)
        assert.are.same({ true, "other" }, { G.await(other) })
        local other_took = G.now() - t0
        assert.is_true(other_took < 600 * factor, "blocked by the waiting task: " .. other_took)
        assert.are.same({ true, "ok after 2" }, { G.await(id) })
        assert.is_true(G.now() - t0 >= 990)
        os.remove(path)
        G.pool_close(name)
    end)

    it("makes pool_wait wait for the tasks waiting for their next attempt", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { retries = 2, backoff = { initial = 100, jitter = 0 } }))
        local path = os.tmpname()
        local t0 = G.now()
        local id = G.pool_submit(name, flaky, path, 2)
        assert.is_true(G.pool_wait(name))
        assert.is_true(G.now() - t0 >= 290, "pool_wait returned early")
        assert.are.equal(3, runs_in(path))
        assert.are.same({ true, "ok after 3" }, { G.await(id) })
        os.remove(path)
        G.pool_close(name)
    end)
end)
