-- goroutine.wait_group(): add / done / wait.
local G = require("goroutine")
local now = G.now

local in_goroutine = require("spec_helpers").in_goroutine

describe("goroutine.wait_group", function()
    it("returns a WaitGroup with add, done and wait", function()
        local wg = G.wait_group()
        assert.is_userdata(wg)
        assert.is_function(wg.add)
        assert.is_function(wg.done)
        assert.is_function(wg.wait)
        assert.are_not.equal(wg, G.wait_group())
    end)

    it("add() adds 1 by default", function()
        local wg = G.wait_group()
        wg:add()
        local released = false
        G.spawn(function()
            wg:wait()
            released = true
        end)
        G.sleep(10)
        assert.is_false(released)
        wg:done()
        G.sleep(1)
        assert.is_true(released)
        -- and one more done() is one too many: add() added exactly 1
        local ok, err = pcall(wg.done, wg)
        assert.is_false(ok)
        assert.matches("negative WaitGroup counter", err)
    end)

    it("add(n) needs n done() calls; wait returns only after the last", function()
        local wg = G.wait_group()
        local order = {}
        wg:add(3)
        for i = 1, 3 do
            G.spawn(function()
                G.sleep(10 * i)
                order[#order + 1] = i
                wg:done()
            end)
        end
        wg:wait()
        order[#order + 1] = "waited"
        assert.are.same({ 1, 2, 3, "waited" }, order)
    end)

    it("wait at zero returns at once, without yielding", function()
        local wg = G.wait_group()
        local t0 = now()
        wg:wait()
        assert.is_true(now() - t0 < 5)
        in_goroutine(function()
            local other_ran = false
            G.spawn(function() other_ran = true end)
            wg:wait()
            assert.is_false(other_ran) -- we never gave up the CPU
            wg:add(2)
            wg:done()
            wg:done()
            wg:wait()
            assert.is_false(other_ran)
        end)
    end)

    it("wakes every waiter, goroutines and the main chunk alike", function()
        local wg = G.wait_group()
        wg:add()
        local woken = 0
        for _ = 1, 50 do
            G.spawn(function()
                wg:wait()
                woken = woken + 1
            end)
        end
        G.spawn(function()
            G.sleep(20)
            wg:done()
        end)
        local t0 = now()
        wg:wait() -- the main chunk waits too
        assert.is_true(now() - t0 >= 15)
        G.sleep(1)
        assert.are.equal(50, woken)
    end)

    it("can be reused after reaching zero", function()
        local wg = G.wait_group()
        for round = 1, 3 do
            local n = 0
            wg:add(round * 10)
            for _ = 1, round * 10 do
                G.spawn(function()
                    G.sleep(1)
                    n = n + 1
                    wg:done()
                end)
            end
            wg:wait()
            assert.are.equal(round * 10, n)
        end
    end)

    it("raises 'negative WaitGroup counter' below zero and keeps the counter", function()
        local wg = G.wait_group()
        local ok, err = pcall(wg.done, wg)
        assert.is_false(ok)
        assert.matches("negative WaitGroup counter", err)
        ok, err = pcall(wg.add, wg, -1)
        assert.is_false(ok)
        assert.matches("negative WaitGroup counter", err)
        wg:add(2)
        ok, err = pcall(wg.add, wg, -3)
        assert.is_false(ok)
        assert.matches("negative WaitGroup counter", err)
        -- still 2: two done() calls are fine, a third is not
        wg:done()
        wg:done()
        assert.is_false(pcall(wg.done, wg))
    end)

    it("a negative counter inside a goroutine fails that goroutine only", function()
        local wg = G.wait_group()
        local ok, err = G.await(G.async(function() wg:done() end))
        assert.is_false(ok)
        assert.matches("negative WaitGroup counter", err)
    end)

    it("add with a negative delta can release waiters", function()
        local wg = G.wait_group()
        wg:add(5)
        local released = false
        G.spawn(function()
            wg:wait()
            released = true
        end)
        G.sleep(1)
        wg:add(-5)
        G.sleep(1)
        assert.is_true(released)
    end)

    it("rejects bad arguments", function()
        local wg = G.wait_group()
        local ok, err = pcall(function() wg:add("many") end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'add' %(number expected, got string%)", err)
        ok, err = pcall(function() wg:add(1.5) end)
        assert.is_false(ok)
        assert.matches("bad argument", err)
        ok, err = pcall(wg.wait, {})
        assert.is_false(ok)
        assert.matches("WaitGroup expected", err)
    end)

    it("the spec's example: wg:add(3), three workers, wg:wait()", function()
        local wg = G.wait_group()
        local logged = {}
        wg:add(3)
        for i = 1, 3 do
            G.spawn(function()
                logged[#logged + 1] = "Worker " .. i
                wg:done()
            end)
        end
        wg:wait()
        table.sort(logged)
        assert.are.same({ "Worker 1", "Worker 2", "Worker 3" }, logged)
    end)

    it("a waiter cancelled by a timeout leaves the WaitGroup usable", function()
        local wg = G.wait_group()
        wg:add()
        local ok, err = G.timeout(20, function() wg:wait() end)
        assert.is_false(ok)
        assert.are.equal("timeout after 20 ms", err)
        local released = false
        G.spawn(function()
            wg:wait()
            released = true
        end)
        G.sleep(1)
        wg:done() -- must not touch the dead waiter
        G.sleep(1)
        assert.is_true(released)
    end)
end)
