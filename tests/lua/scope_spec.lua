-- The runner's internals: _run_scope (structured concurrency), _context
-- (label inheritance), _set_error_handler; and deadlock detection.
local G = require("goroutine")
local now = G.now

local run_lua = require("spec_helpers").run_lua

describe("goroutine._run_scope", function()
    it("returns fn's values only after every goroutine started in the scope has ended", function()
        local finished = {}
        local t0 = now()
        local r = table.pack(G._run_scope({}, function(x)
            for i = 1, 3 do
                G.spawn(function()
                    G.sleep(i * 30)
                    G.spawn(function() -- a grandchild extends the scope too
                        G.sleep(10)
                        finished[#finished + 1] = i
                    end)
                end)
            end
            return "fn-result", x
        end, 7))
        local elapsed = now() - t0
        assert.are.same({ 1, 2, 3 }, finished)
        assert.are.equal(3, r.n)
        assert.is_true(r[1])
        assert.are.equal("fn-result", r[2])
        assert.are.equal(7, r[3])
        assert.is_true(elapsed >= 99, "elapsed " .. elapsed)
        assert.is_true(elapsed < 400, "elapsed " .. elapsed)
    end)

    it("returns false, err when fn fails (after its goroutines end)", function()
        local child_done = false
        local ok, err = G._run_scope({}, function()
            G.spawn(function()
                G.sleep(20)
                child_done = true
            end)
            error("task failed")
        end)
        assert.is_false(ok)
        assert.matches("task failed", err)
        assert.is_true(child_done)
    end)

    it("timeout_ms cancels fn and every goroutine of the scope", function()
        local resumed = 0
        local spins = 0
        local t0 = now()
        local ok, reason, cancelled = G._run_scope({ timeout_ms = 50 }, function()
            for _ = 1, 5 do
                G.spawn(function()
                    G.sleep(200)
                    resumed = resumed + 1
                end)
            end
            G.spawn(function()
                while true do spins = spins + 1 end
            end)
            return "fn returned at once"
        end)
        local elapsed = now() - t0
        assert.is_false(ok)
        assert.is_string(reason)
        assert.is_true(cancelled)
        assert.is_true(elapsed >= 49 and elapsed < 300, "elapsed " .. elapsed)
        local s = spins
        G.sleep(250)
        assert.are.equal(0, resumed)
        assert.are.equal(s, spins)
    end)

    it("uses opts.reason as the cancellation reason", function()
        local ok, reason, cancelled = G._run_scope({ timeout_ms = 20, reason = "task 'build' timed out" },
            function() G.sleep(1000) end)
        assert.is_false(ok)
        assert.are.equal("task 'build' timed out", reason)
        assert.is_true(cancelled)
    end)

    it("a scope that ends in time is not cancelled later", function()
        local ok, v, third = G._run_scope({ timeout_ms = 100 }, function()
            G.spawn(function() G.sleep(10) end)
            return "in time"
        end)
        assert.is_true(ok)
        assert.are.equal("in time", v)
        assert.is_nil(third)
        G.sleep(120) -- the deadline would have passed: nothing must blow up
    end)

    it("a timeout() inside a scope cancels only its own goroutines", function()
        local outer_child_done = false
        local ok = G._run_scope({}, function()
            G.spawn(function()
                G.sleep(60)
                outer_child_done = true
            end)
            local tok = G.timeout(20, function() G.sleep(500) end)
            assert.is_false(tok)
            return true
        end)
        assert.is_true(ok)
        assert.is_true(outer_child_done)
    end)

    it("can be used from inside a goroutine", function()
        local done = 0
        local ok, r = G.await(G.async(function()
            return G._run_scope({}, function()
                G.spawn_many(10, function()
                    G.sleep(5)
                    done = done + 1
                end)
                return "inner"
            end)
        end))
        assert.is_true(ok)
        assert.is_true(r)
        assert.are.equal(10, done)
    end)

    it("rejects bad arguments", function()
        assert.is_false(pcall(G._run_scope, nil, function() end))
        assert.is_false(pcall(G._run_scope, {}, nil))
        local ok, err = pcall(G._run_scope, { timeout_ms = -5 }, function() end)
        assert.is_false(ok)
        assert.matches("bad argument", err)
    end)
end)

describe("goroutine._context", function()
    it("is nil, nil in the main chunk", function()
        local label, id = G._context()
        assert.is_nil(label)
        assert.is_nil(id)
    end)

    it("gives the scope's label and the goroutine id, inherited by nested goroutines", function()
        local seen = {}
        G._run_scope({ label = "build" }, function()
            local l, id = G._context()
            seen.fn = { l, id, G.id() }
            G.spawn(function()
                seen.child = { G._context() }
                G.spawn(function()
                    G.sleep(1)
                    seen.grandchild = { G._context() }
                end)
            end)
            local h = G.async(function() return G._context() end)
            local _, al = G.await(h)
            seen.async = al
            G.timeout(100, function() seen.timeout = G._context() end)
        end)
        assert.are.equal("build", seen.fn[1])
        assert.are.equal(seen.fn[3], seen.fn[2])
        assert.are.equal("build", seen.child[1])
        assert.is_number(seen.child[2])
        assert.are_not.equal(seen.fn[2], seen.child[2])
        assert.are.equal("build", seen.grandchild[1])
        assert.are.equal("build", seen.async)
        assert.are.equal("build", seen.timeout)
    end)

    it("a nested labelled scope overrides the label, then the outer one applies again", function()
        local inner, after
        G._run_scope({ label = "outer" }, function()
            G._run_scope({ label = "inner" }, function()
                inner = G._context()
            end)
            after = G._context()
        end)
        assert.are.equal("inner", inner)
        assert.are.equal("outer", after)
    end)

    it("goroutines spawned outside any labelled scope have no label", function()
        local l, id = G.await(G.async(function() return G._context() end))
        assert.is_true(l) -- await's ok
        assert.is_nil(id) -- the label
    end)
end)

describe("goroutine._set_error_handler", function()
    after_each(function() G._set_error_handler(nil) end)

    it("receives (message, goroutine id, scope label)", function()
        local got
        G._set_error_handler(function(msg, id, label) got = { msg = msg, id = id, label = label } end)
        local failing_id
        G._run_scope({ label = "deploy" }, function()
            G.spawn(function()
                failing_id = G.id()
                error("handler sees this")
            end)
        end)
        assert.is_table(got)
        assert.matches("handler sees this", got.msg)
        assert.matches("stack traceback:", got.msg)
        assert.are.equal(failing_id, got.id)
        assert.are.equal("deploy", got.label)
    end)

    it("an error in the handler itself falls back to stderr without crashing", function()
        local out, status = run_lua([[
            local G = require("goroutine")
            G._set_error_handler(function() error("handler broke") end)
            G.spawn(function() error("original") end)
            G.sleep(10)
            print("survived")
        ]])
        assert.are.equal(0, status, out)
        assert.matches("goroutine %d+ failed: .*original", out)
        assert.matches("survived", out)
    end)

    it("rejects a non-function", function()
        assert.is_false(pcall(G._set_error_handler, 42))
    end)
end)

describe("deadlock", function()
    it("the main chunk waiting on a WaitGroup nothing can release gets a deadlock error", function()
        local wg = G.wait_group()
        wg:add()
        local t0 = now()
        local ok, err = pcall(wg.wait, wg)
        assert.is_false(ok)
        assert.matches("deadlock", err)
        assert.is_true(now() - t0 < 1000)
    end)

    it("is detected when every goroutine is blocked too", function()
        local wg = G.wait_group()
        wg:add()
        local h = G.async(function() wg:wait() end)
        local ok, err = pcall(G.await, h)
        assert.is_false(ok)
        assert.matches("deadlock", err)
        wg:done() -- unblock it so later tests start clean
        assert.is_true((G.await(h)))
    end)

    it("is not reported while a timer can still wake someone", function()
        local wg = G.wait_group()
        wg:add()
        G.spawn(function()
            G.sleep(50)
            wg:done()
        end)
        wg:wait() -- no error: the sleeper will release it
    end)

    it("ends a plain script with an error and a non-zero status", function()
        local out, status = run_lua([[
            local G = require("goroutine")
            local wg = G.wait_group()
            wg:add()
            G.spawn(function() wg:wait() end)
            wg:wait()
            print("unreachable")
        ]], 10)
        assert.are_not.equal(124, status, "the deadlocked script hung")
        assert.are_not.equal(0, status)
        assert.matches("deadlock", out)
        assert.is_nil(out:find("unreachable", 1, true))
    end)
end)
