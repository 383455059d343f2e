-- goroutine.timeout(ms, fn, ...): results, errors, and cancellation at the
-- deadline (of fn and of the goroutines it started).
local G = require("goroutine")
local now = G.now

local in_goroutine = require("spec_helpers").in_goroutine

-- Runs a Lua script in a fresh lua5.4 (killed after `limit` seconds, exit
-- status 124 then); returns its combined output and exit status.
local run_lua = require("spec_helpers").run_lua

local contexts = {
    { "from the main chunk", function(fn) fn() end },
    { "from a goroutine", in_goroutine },
}

describe("goroutine.timeout", function()
    for _, c in ipairs(contexts) do
        local where, run = c[1], c[2]

        it("returns true and fn's values when fn ends in time " .. where, function()
            run(function()
                local r = table.pack(G.timeout(500, function()
                    G.sleep(5)
                    return "a", nil, 3
                end))
                assert.are.equal(4, r.n)
                assert.is_true(r[1])
                assert.are.equal("a", r[2])
                assert.is_nil(r[3])
                assert.are.equal(3, r[4])
            end)
        end)

        it("timeout(0, fn): fn that never waits ends with its values " .. where, function()
            run(function()
                local r = table.pack(G.timeout(0, function() return "ran" end))
                assert.are.same({ n = 2, true, "ran" }, r)
                local ok, msg = G.timeout(0, function() G.sleep(1) return "late" end)
                assert.is_false(ok)
                assert.are.equal("timeout after 0 ms", msg)
            end)
        end)

        it("returns false, 'timeout after MS ms' at the deadline " .. where, function()
            run(function()
                local t0 = now()
                local ok, msg = G.timeout(50, function()
                    G.sleep(2000)
                    return "late"
                end)
                local elapsed = now() - t0
                assert.is_false(ok)
                assert.are.equal("timeout after 50 ms", msg)
                assert.is_true(elapsed >= 49, "elapsed " .. elapsed)
                assert.is_true(elapsed < 250, "elapsed " .. elapsed)
            end)
        end)

        it("returns false and the error when fn fails " .. where, function()
            run(function()
                local ok, err = G.timeout(500, function()
                    G.sleep(1)
                    error("exploded")
                end)
                assert.is_false(ok)
                assert.matches("timeout_spec.lua:%d+: exploded", err)
                assert.matches("stack traceback:", err)
            end)
        end)
    end

    it("passes the extra arguments to fn", function()
        local ok, n, a, b = G.timeout(100, function(...) return select("#", ...), ... end, "x", nil, "z")
        assert.is_true(ok)
        assert.are.equal(3, n)
        assert.are.equal("x", a)
        assert.is_nil(b)
    end)

    it("formats fractional milliseconds in the message", function()
        local ok, msg = G.timeout(10.5, function() G.sleep(500) end)
        assert.is_false(ok)
        assert.matches("^timeout after 10%.50* ms$", msg)
    end)

    it("rejects bad arguments", function()
        local ok, err = pcall(G.timeout, -1, function() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*timeout'", err)
        ok, err = pcall(G.timeout, 0 / 0, function() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*timeout'", err)
        ok, err = pcall(G.timeout, "soon", function() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*timeout' %(number expected, got string%)", err)
        ok, err = pcall(G.timeout, 100)
        assert.is_false(ok)
        assert.matches("bad argument #2 to '[%w_.]*timeout' %(function expected, got no value%)", err)
        ok, err = pcall(G.timeout, 100, {})
        assert.is_false(ok)
        assert.matches("bad argument #2 to '[%w_.]*timeout' %(function expected, got table%)", err)
    end)

    it("runs the spec's Exemplo 4 (scaled down)", function()
        local success, result = G.timeout(500, function()
            G.sleep(30)
            return "Operação concluída"
        end)
        assert.is_true(success)
        assert.are.equal("Operação concluída", result)
    end)

    it("the spec's deadlock detection pattern: an empty fn succeeds", function()
        local success = G.timeout(100, function() end)
        assert.is_true(success)
    end)

    it("nested timeouts: the inner one fires first", function()
        local ok, inner_ok, inner_msg = G.timeout(1000, function()
            return G.timeout(20, function() G.sleep(500) end)
        end)
        assert.is_true(ok)
        assert.is_false(inner_ok)
        assert.are.equal("timeout after 20 ms", inner_msg)
    end)

    it("nested timeouts: the outer deadline cancels the inner fn too", function()
        local inner_resumed = false
        local t0 = now()
        local ok, msg = G.timeout(30, function()
            G.timeout(1000, function()
                G.sleep(200)
                inner_resumed = true
            end)
            inner_resumed = true
        end)
        assert.is_false(ok)
        assert.are.equal("timeout after 30 ms", msg)
        assert.is_true(now() - t0 < 150)
        G.sleep(250)
        assert.is_false(inner_resumed)
    end)
end)

describe("cancellation at the deadline", function()
    it("a sleeping fn never resumes", function()
        local resumed = false
        local ok = G.timeout(30, function()
            G.sleep(80)
            resumed = true
        end)
        assert.is_false(ok)
        G.sleep(120)
        assert.is_false(resumed)
    end)

    it("stops a CPU-bound `while true do end`", function()
        local t0 = now()
        local ok, msg = G.timeout(50, function()
            while true do end
        end)
        local elapsed = now() - t0
        assert.is_false(ok)
        assert.are.equal("timeout after 50 ms", msg)
        assert.is_true(elapsed >= 49 and elapsed < 300, "elapsed " .. elapsed)
    end)

    it("stops a loop wrapped in pcall inside a loop", function()
        local t0 = now()
        local ok, msg = G.timeout(50, function()
            while true do
                pcall(function()
                    while true do end
                end)
            end
        end)
        local elapsed = now() - t0
        assert.is_false(ok)
        assert.are.equal("timeout after 50 ms", msg)
        assert.is_true(elapsed >= 49 and elapsed < 300, "elapsed " .. elapsed)
    end)

    it("stops a loop that keeps calling pcall(error)", function()
        local ok, msg = G.timeout(40, function()
            while true do pcall(error, "swallowed") end
        end)
        assert.is_false(ok)
        assert.are.equal("timeout after 40 ms", msg)
    end)

    -- These two run in a child process: a failure there must not leave this
    -- process with a goroutine that can no longer be stopped.
    it("stops a CPU-bound loop inside a C call that cannot yield (table.sort comparator)", function()
        local out, status = run_lua([[
            local G = require("goroutine")
            local t0 = G.now()
            local child_ran = false
            local ok, msg = G.timeout(50, function()
                G.spawn(function() G.sleep(100); child_ran = true end)
                table.sort({ 3, 2, 1 }, function(a, b)
                    while true do end
                    return a < b
                end)
            end)
            print("RESULT", ok, (G.now() - t0) < 300)
            print("MSG[" .. tostring(msg) .. "]")
            G.sleep(150)
            print("CHILD", child_ran)
        ]])
        assert.are.equal(0, status, out)
        assert.matches("RESULT\tfalse\ttrue", out)
        -- same message as every other deadline
        assert.matches("MSG%[timeout after 50 ms%]", out)
        -- and what fn started is cancelled at the deadline too
        assert.matches("CHILD\tfalse", out)
    end)

    it("after a deadline hit inside a non-yieldable C call, later CPU-bound goroutines are still stopped", function()
        local out, status = run_lua([[
            local G = require("goroutine")
            G.timeout(30, function()
                table.sort({ 3, 2, 1 }, function(a, b) while true do end end)
            end)
            -- the next goroutine reuses the record (and Lua thread) of the one cancelled above
            local n = 0
            local ok, msg = G.timeout(30, function() while true do n = n + 1 end end)
            print("SECOND", ok, msg)
        ]], 4)
        assert.are_not.equal(124, status, "the second CPU-bound timeout never returned (killed after 4 s)")
        assert.are.equal(0, status, out)
        assert.matches("SECOND\tfalse\ttimeout after 30 ms", out)
    end)

    it("a counter fn increments stops changing once timeout returns", function()
        local counter = 0
        local ok = G.timeout(40, function()
            while true do counter = counter + 1 end
        end)
        assert.is_false(ok)
        local at_return = counter
        assert.is_true(at_return > 0)
        G.sleep(50)
        assert.are.equal(at_return, counter)
        G.sleep(0)
        assert.are.equal(at_return, counter)
    end)

    it("a counter in a pcall-wrapped loop stops changing too", function()
        local counter = 0
        local ok = G.timeout(40, function()
            while true do
                pcall(function()
                    while true do counter = counter + 1 end
                end)
                counter = counter + 1
            end
        end)
        assert.is_false(ok)
        local at_return = counter
        G.sleep(50)
        assert.are.equal(at_return, counter)
    end)

    it("cancels goroutines fn spawned that are still running (sleeping or spinning)", function()
        local child_resumed, grandchild_resumed = false, false
        local spinner_count = 0
        local ok = G.timeout(40, function()
            G.spawn(function()
                G.spawn(function()
                    G.sleep(100)
                    grandchild_resumed = true
                end)
                G.sleep(100)
                child_resumed = true
            end)
            G.spawn(function()
                while true do spinner_count = spinner_count + 1 end
            end)
            G.sleep(1000)
        end)
        assert.is_false(ok)
        local spins = spinner_count
        G.sleep(150)
        assert.is_false(child_resumed)
        assert.is_false(grandchild_resumed)
        assert.are.equal(spins, spinner_count)
    end)

    it("keeps fn's leftover goroutines running when fn returns in time", function()
        local leftover_done = false
        local ok, v = G.timeout(50, function()
            G.spawn(function()
                G.sleep(100) -- ends after the (disarmed) deadline
                leftover_done = true
            end)
            return "quick"
        end)
        assert.is_true(ok)
        assert.are.equal("quick", v)
        G.sleep(150)
        assert.is_true(leftover_done)
    end)

    it("runs the pending __close handlers of the cancelled fn", function()
        local closed = false
        local ok = G.timeout(20, function()
            local guard <close> = setmetatable({}, { __close = function() closed = true end })
            G.sleep(1000)
        end)
        assert.is_false(ok)
        assert.is_true(closed)
    end)

    it("fails an async handle of a cancelled goroutine with the reason", function()
        local inner
        local ok = G.timeout(20, function()
            inner = G.async(function()
                G.sleep(1000)
                return "never"
            end)
            G.await(inner)
        end)
        assert.is_false(ok)
        local iok, err = G.await(inner)
        assert.is_false(iok)
        assert.are.equal("timeout after 20 ms", err)
    end)

    it("a cancelled goroutine's goroutine errors do not leak out", function()
        local reports = 0
        G._set_error_handler(function() reports = reports + 1 end)
        local ok = G.timeout(20, function()
            G.spawn(function()
                G.sleep(100)
                error("should never run")
            end)
            G.sleep(100)
        end)
        G.sleep(150)
        G._set_error_handler(nil)
        assert.is_false(ok)
        assert.are.equal(0, reports)
    end)

    it("many timeouts at once each fire on their own deadline", function()
        local results, wg = {}, G.wait_group()
        wg:add(20)
        local t0 = now()
        for i = 1, 20 do
            G.spawn(function()
                local ok = G.timeout(i * 5, function() G.sleep(50) end)
                results[i] = ok
                wg:done()
            end)
        end
        wg:wait()
        for i = 1, 20 do
            if i * 5 < 40 then
                assert.is_false(results[i], "timeout(" .. i * 5 .. ") vs sleep(50)")
            elseif i * 5 > 70 then
                assert.is_true(results[i], "timeout(" .. i * 5 .. ") vs sleep(50)")
            end
        end
        assert.is_true(now() - t0 < 400)
    end)
end)

describe("preemption inside plain coroutines run by a goroutine", function()
    it("timeout stops a CPU-bound loop inside coroutine.wrap", function()
        local t0 = G.now()
        local ok, err = G.timeout(50, function()
            local gen = coroutine.wrap(function() while true do end end)
            gen()
        end)
        assert.is_false(ok)
        assert.are.equal("timeout after 50 ms", err)
        assert.is_true(G.now() - t0 < 1000)
    end)

    it("timeout stops a pcall-wrapped loop inside coroutine.resume", function()
        local ok, err = G.timeout(50, function()
            local co = coroutine.create(function()
                while true do pcall(function() while true do end end) end
            end)
            return coroutine.resume(co)
        end)
        assert.is_false(ok)
        assert.are.equal("timeout after 50 ms", err)
    end)

    it("other goroutines keep running while one spins inside a coroutine", function()
        local ticks = 0
        local ticker = G.async(function()
            for _ = 1, 10 do G.sleep(10) ticks = ticks + 1 end
        end)
        G.await(G.async(function()
            local s = G.now()
            coroutine.wrap(function() while G.now() - s < 300 do end end)()
        end))
        assert.are.equal(10, ticks)
        G.await(ticker)
    end)

    it("keeps coroutine.resume and coroutine.wrap semantics", function()
        local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
        assert.are.equal(2, co(1))
        assert.are.equal(20, co(10))
        local ok, err = coroutine.resume(coroutine.create(function() error("x") end))
        assert.is_false(ok)
        assert.matches("x$", err)
        local okw, errw = pcall(coroutine.wrap(function() error("y") end))
        assert.is_false(okw)
        assert.matches("y$", errw)
        local dead = coroutine.create(function() end)
        coroutine.resume(dead)
        assert.are.same({ false, "cannot resume dead coroutine" }, { coroutine.resume(dead) })
        assert.has_error(function() coroutine.resume(42) end)
    end)
end)

describe("cancelling a goroutine preempted inside plain coroutines", function()
    it("stops a loop in a coroutine called from a sort comparator", function()
        local t0 = G.now()
        local ok, err = G.timeout(50, function()
            table.sort({ 3, 2, 1 }, function(a, b)
                coroutine.wrap(function() while true do end end)()
                return a < b
            end)
        end)
        assert.is_false(ok)
        assert.are.equal("timeout after 50 ms", err)
        assert.is_true(G.now() - t0 < 1000)
    end)

    it("closes the coroutines' pending <close> variables, innermost first", function()
        local closed = {}
        local co
        local ok = G.timeout(50, function()
            co = coroutine.create(function()
                local _ <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "inner" end })
                while true do end
            end)
            local _ <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "outer" end })
            coroutine.resume(co)
        end)
        assert.is_false(ok)
        assert.are.same({ "inner", "outer" }, closed)
        assert.are.equal("dead", coroutine.status(co))
        assert.are.same({ false, "cannot resume dead coroutine" }, { coroutine.resume(co) })
    end)

    it("a coroutine another goroutine is running is 'normal' to the others", function()
        local co = coroutine.create(function()
            local s = G.now()
            while G.now() - s < 100 do end
            return "finished"
        end)
        local a = G.async(function() return coroutine.resume(co) end)
        local b = G.async(function()
            G.sleep(20) -- a is preempted inside coroutine.resume(co) by now
            local st = coroutine.status(co)
            local r1, r2 = coroutine.resume(co)
            local okc, errc = pcall(coroutine.close, co)
            return st, r1, r2, okc, errc
        end)
        local _, st, r1, r2, okc, errc = G.await(b)
        assert.are.equal("normal", st)
        assert.is_false(r1)
        assert.are.equal("cannot resume non-suspended coroutine", r2)
        assert.is_false(okc)
        assert.matches("cannot close a normal coroutine", errc)
        assert.are.same({ true, true, "finished" }, { G.await(a) })
    end)
end)

describe("<close> handlers of cancelled goroutines", function()
    it("a handler that never ends is stopped after a grace period", function()
        local t0 = G.now()
        local ok, err = G.timeout(50, function()
            local _ <close> = setmetatable({}, { __close = function() while true do end end })
            G.sleep(math.huge)
        end)
        local elapsed = G.now() - t0
        assert.is_false(ok)
        assert.are.equal("timeout after 50 ms", err)
        assert.is_true(elapsed >= 1000 and elapsed < 5000, "took " .. elapsed)
    end)

    it("a quick handler runs to its end", function()
        local done = false
        local ok = G.timeout(20, function()
            local _ <close> = setmetatable({}, { __close = function() G.now() done = true end })
            G.sleep(math.huge)
        end)
        assert.is_false(ok)
        assert.is_true(done)
    end)
end)
