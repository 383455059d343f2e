-- Work still running in pool VMs for a waiter is pending work, not a
-- deadlock; a wait nothing can end still is one. These waits run in
-- busted's main chunk: not a goroutine, so the loop runs inside the wait.
local G = require("goroutine")

local n = 0
local function fresh_name()
    n = n + 1
    return "pending_pool_" .. n
end

describe("a wait on work in pool VMs", function()
    it("awaits a pool task whose submitting timeout() expired", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1 }))
        -- the pool's VM running first: under valgrind its start alone
        -- can outlast a short timeout, and the submit must happen in it
        assert.are.same({ true, 1 }, { G.await(G.pool_submit(name, function() return 1 end)) })
        local id
        local ok, err = G.timeout(200, function()
            id = G.pool_submit(name, function()
                require("goroutine").sleep(600)
                return "finished after the timeout"
            end)
            G.sleep(5000)
        end)
        assert.is_false(ok)
        assert.matches("timeout after 200 ms", err)
        assert.is_not_nil(id, "the submit happened within the timeout")
        local t0 = G.now()
        assert.are.same({ true, "finished after the timeout" }, { G.await(id) })
        assert.is_true(G.now() - t0 >= 50, "await really waited for the task")
    end)

    it("waits on a WaitGroup released by goroutines a finished pool task started", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1 }))
        local wg = G.wait_group()
        wg:add(2)
        local id = G.pool_submit(name, function()
            for i = 1, 2 do
                G.spawn(function()
                    G.sleep(60 * i)
                    wg:done()
                end)
            end
            return "returned at once"
        end)
        assert.are.same({ true, "returned at once" }, { G.await(id) })
        local t0 = G.now()
        wg:wait()
        assert.are.equal(0, wg:count())
        assert.is_true(G.now() - t0 >= 50, "the wait lasted until the last done()")
    end)

    it("still reports a wait that nothing can end", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1 }))
        local wg = G.wait_group()
        wg:add(1)
        local id = G.pool_submit(name, function()
            local _ = wg
            return "no done()"
        end)
        assert.are.same({ true, "no done()" }, { G.await(id) })
        local ok, err = pcall(wg.wait, wg)
        assert.is_false(ok)
        assert.matches("deadlock: this wait can never end", err)
    end)
end)
