-- goroutine.sleep, goroutine.now, and fairness under CPU-bound goroutines.
local G = require("goroutine")
local now = G.now

local in_goroutine = require("spec_helpers").in_goroutine
-- Upper bounds of wall time scale with MUTIRAO_TIME_FACTOR (valgrind, sanitizers).
local TIME_FACTOR = tonumber(os.getenv("MUTIRAO_TIME_FACTOR")) or 1

describe("goroutine.now", function()
    it("is a monotonic clock in (fractional) milliseconds", function()
        assert.is_function(G.now)
        local a = now()
        assert.are.equal("number", type(a))
        local b = now()
        assert.is_true(b >= a)
        G.sleep(20)
        local c = now()
        assert.is_true(c - b >= 19.5, "slept 20 ms, clock moved " .. (c - b))
        assert.is_true(c - b < 1000 * TIME_FACTOR)
    end)
end)

describe("goroutine.sleep", function()
    for _, ctx in ipairs({ { "the main chunk", function(f) f() end }, { "a goroutine", in_goroutine } }) do
        it("waits at least the given time in " .. ctx[1], function()
            ctx[2](function()
                for _, ms in ipairs({ 1, 30, 2.5, 0.5 }) do
                    local t0 = now()
                    G.sleep(ms)
                    local elapsed = now() - t0
                    assert.is_true(elapsed >= ms - 0.01, ("sleep(%g) took %g ms"):format(ms, elapsed))
                    assert.is_true(elapsed < ms + 100 * TIME_FACTOR, ("sleep(%g) took %g ms"):format(ms, elapsed))
                end
            end)
        end)
    end

    it("returns nothing", function()
        assert.are.equal(0, select("#", G.sleep(1)))
    end)

    it("suspends only the calling goroutine: others progress meanwhile", function()
        local ticks, sleeper_saw = 0, nil
        local stop = false
        local wg = G.wait_group()
        wg:add(2)
        G.spawn(function()
            G.sleep(100)
            sleeper_saw = ticks
            stop = true
            wg:done()
        end)
        G.spawn(function()
            while not stop do
                ticks = ticks + 1
                G.sleep(5)
            end
            wg:done()
        end)
        wg:wait()
        -- ~20 ticks in 100 ms; at least a handful even on a loaded machine
        assert.is_true(sleeper_saw >= 5, "ticks during the sleep: " .. tostring(sleeper_saw))
    end)

    it("in the main chunk lets goroutines run", function()
        local progressed = 0
        G.spawn(function()
            for _ = 1, 10 do
                progressed = progressed + 1
                G.sleep(1)
            end
        end)
        G.sleep(60)
        assert.are.equal(10, progressed)
    end)

    it("wakes sleepers in deadline order", function()
        local order, wg = {}, G.wait_group()
        wg:add(5)
        for _, ms in ipairs({ 50, 10, 40, 20, 30 }) do
            G.spawn(function()
                G.sleep(ms)
                order[#order + 1] = ms
                wg:done()
            end)
        end
        wg:wait()
        assert.are.same({ 10, 20, 30, 40, 50 }, order)
    end)

    it("equal deadlines wake in the order they slept", function()
        local order, wg = {}, G.wait_group()
        wg:add(20)
        for i = 1, 20 do
            G.spawn(function()
                G.sleep(15)
                order[#order + 1] = i
                wg:done()
            end)
        end
        wg:wait()
        for i = 1, 20 do assert.are.equal(i, order[i]) end
    end)

    it("sleep(0) yields to the other ready goroutines", function()
        local trace, wg = {}, G.wait_group()
        wg:add(2)
        for _, name in ipairs({ "a", "b" }) do
            G.spawn(function()
                for i = 1, 3 do
                    trace[#trace + 1] = name .. i
                    G.sleep(0)
                end
                wg:done()
            end)
        end
        wg:wait()
        assert.are.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, trace)
    end)

        it("sleeps forever for math.huge: only cancellation ends it", function()
        local ok, err = G.timeout(30, function() G.sleep(math.huge) return "woke" end)
        assert.is_false(ok)
        assert.are.equal("timeout after 30 ms", err)
        -- from the main chunk with nothing else alive it can never end
        local ok2, err2 = pcall(G.sleep, math.huge)
        assert.is_false(ok2)
        assert.matches("deadlock", err2)
    end)

    it("rejects negative, NaN and non-number durations", function()
        for _, bad in ipairs({ -1, -0.5, 0 / 0, -math.huge }) do
            local ok, err = pcall(G.sleep, bad)
            assert.is_false(ok, "sleep(" .. tostring(bad) .. ") accepted")
            assert.matches("bad argument #1 to '[%w_.]*sleep'", err)
        end
        for _, bad in ipairs({ { "abc", "string" }, { {}, "table" }, { true, "boolean" }, { nil, "nil" } }) do
            local ok, err = pcall(G.sleep, bad[1])
            assert.is_false(ok)
            assert.matches("bad argument #1 to '[%w_.]*sleep' %(number expected, got " .. bad[2] .. "%)", err)
        end
        local ok, err = pcall(G.sleep)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*sleep' %(number expected, got no value%)", err)
    end)

    it("argument errors inside a goroutine fail only that goroutine", function()
        local ok, err = G.await(G.async(function() G.sleep(-5) end))
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*sleep'", err)
    end)
end)

describe("fairness", function()
    it("a CPU-bound goroutine does not delay another goroutine's timers", function()
        local spinning = true
        local lateness = {}
        local wg = G.wait_group()
        local cpu0, wall0 = os.clock(), now()
        wg:add(2)
        G.spawn(function()
            local t0 = now()
            local x = 0
            while now() - t0 < 300 do x = x + 1 end -- never yields by itself
            spinning = false
            wg:done()
        end)
        G.spawn(function()
            while spinning do
                local t = now()
                G.sleep(10)
                lateness[#lateness + 1] = now() - t - 10
            end
            wg:done()
        end)
        wg:wait()
        -- Slices are measured in CPU time: on a machine so busy that this
        -- process got only a share of a core, a slice lasts 1/share longer
        -- in wall time. The bound scales with that (20 ms on an idle core).
        local share = math.min(1, (os.clock() - cpu0) * 1000 / (now() - wall0))
        local bound = 20 / math.max(share, 0.25)
        local worst = 0
        for _, l in ipairs(lateness) do worst = math.max(worst, l) end
        local info = ("worst lateness %.1f ms over %d fires (bound %.1f ms, CPU share %.2f)"):format(
            worst, #lateness, bound, share)
        -- 300 ms of spinning leaves room for ~27 sleeps of 10 ms; without
        -- preemption there would be one, late by ~300 ms.
        assert.is_true(#lateness >= 8, info)
        assert.is_true(worst < bound, info)
    end)

    it("two CPU-bound goroutines share the CPU", function()
        local started_b_at, a_ended_at
        local wg = G.wait_group()
        wg:add(2)
        G.spawn(function()
            local t0 = now()
            while now() - t0 < 200 do end
            a_ended_at = now()
            wg:done()
        end)
        G.spawn(function()
            started_b_at = now()
            local t0 = now()
            while now() - t0 < 200 do end
            wg:done()
        end)
        wg:wait()
        assert.is_true(started_b_at < a_ended_at - 100,
            ("b started %.1f ms before a ended"):format(a_ended_at - started_b_at))
    end)

    it("the main chunk's sleep returns on time while a goroutine spins", function()
        local stop = false
        local done = G.wait_group()
        done:add()
        G.spawn(function()
            local t0 = now()
            while not stop and now() - t0 < 2000 do end
            done:done()
        end)
        local t0 = now()
        G.sleep(20)
        local elapsed = now() - t0
        stop = true
        done:wait()
        assert.is_true(elapsed >= 19.5 and elapsed < 20 + 40 * TIME_FACTOR, "sleep(20) took " .. elapsed)
    end)

    it("preemption never splits a single statement", function()
        -- t[#t+1] = v is one statement: with preemption at line boundaries
        -- two goroutines appending in a tight loop never lose an element.
        local t, wg = {}, G.wait_group()
        wg:add(2)
        for _ = 1, 2 do
            G.spawn(function()
                local t0 = now()
                local n = 0
                while now() - t0 < 60 do
                    t[#t + 1] = n; n = n + 1
                end
                t.count = (t.count or 0) + n
                wg:done()
            end)
        end
        wg:wait()
        assert.are.equal(t.count, #t)
    end)
end)
