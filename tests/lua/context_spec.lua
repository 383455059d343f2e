-- goroutine.context and goroutine.errgroup: Go's contexts and error groups
-- for the goroutines of one VM.
local G = require("goroutine")
local now = G.now
local TIME_FACTOR = tonumber(os.getenv("MUTIRAO_TIME_FACTOR")) or 1

local function wall_ms()
    return G._wall_ms()
end

-- whether ctx's done() channel is closed, without waiting
local function done_closed(ctx)
    local _, ok = ctx:done():try_receive()
    return ctx:done():is_closed() and ok == false
end

describe("goroutine.context", function()
    it("a root context is active, has no deadline, and cancels", function()
        local ctx = G.context()
        assert.is_false(ctx:is_cancelled())
        assert.is_nil(ctx:err())
        assert.is_nil(ctx:deadline())
        assert.is_false(done_closed(ctx))
        assert.are.equal("Context(active)", tostring(ctx))
        ctx:cancel()
        assert.is_true(ctx:is_cancelled())
        assert.are.equal("context canceled", ctx:err())
        assert.is_true(done_closed(ctx))
    end)

    it("with_cancel: the cancel function cancels the child only", function()
        local root = G.context()
        local child, cancel = root:with_cancel()
        assert.is_function(cancel)
        cancel()
        assert.are.equal("context canceled", child:err())
        assert.is_nil(root:err())
        cancel() -- again: nothing changes
        assert.are.equal("context canceled", child:err())
    end)

    it("cancelling a parent cancels its children and theirs, and wakes done() waiters", function()
        local root = G.context()
        local a = root:with_cancel()
        local b = a:with_cancel()
        local c = b:with_timeout(100000)
        local woke = {}
        for i, ctx in ipairs({ a, b, c }) do
            G.spawn(function()
                ctx:done():receive()
                woke[i] = ctx:err()
            end)
        end
        G.sleep(5)
        assert.are.same({}, woke)
        root:cancel()
        G.sleep(1)
        assert.are.same({ "context canceled", "context canceled", "context canceled" }, woke)
    end)

    it("a child of a cancelled context is born cancelled", function()
        local root = G.context()
        root:cancel()
        local child = root:with_timeout(1000)
        assert.are.equal("context canceled", child:err())
        assert.is_true(done_closed(child))
    end)

    it("with_timeout: done() closes at the deadline with 'context deadline exceeded'", function()
        local ctx = G.context():with_timeout(30)
        local dl = ctx:deadline()
        assert.is_number(dl)
        assert.is_true(math.abs(dl - (wall_ms() + 30)) < 20 * TIME_FACTOR)
        local t0 = now()
        local i = G.select({ { channel = ctx:done(), receive = true } })
        assert.are.equal(1, i)
        assert.is_true(now() - t0 >= 25)
        assert.are.equal("context deadline exceeded", ctx:err())
        assert.matches("deadline exceeded", tostring(ctx))
    end)

    it("a child's deadline is never later than its parent's", function()
        local parent = G.context():with_timeout(20)
        local child = parent:with_timeout(100000)
        assert.are.equal(parent:deadline(), child:deadline())
        child:done():receive()
        assert.are.equal("context deadline exceeded", child:err())
        local early = parent:with_timeout(5)
        assert.is_true(early:deadline() <= parent:deadline())
    end)

    it("with_deadline takes Unix ms; a past deadline is exceeded at once", function()
        local ctx = G.context():with_deadline(wall_ms() + 20)
        assert.is_nil(ctx:err())
        ctx:done():receive()
        assert.are.equal("context deadline exceeded", ctx:err())
        local past = G.context():with_deadline(wall_ms() - 1000)
        assert.are.equal("context deadline exceeded", past:err())
    end)

    it("cancel before the deadline wins, and the timer keeps nothing alive", function()
        local ctx, cancel = G.context():with_timeout(20)
        cancel()
        G.sleep(30)
        assert.are.equal("context canceled", ctx:err())
        -- an hour-long deadline does not keep this process running: the
        -- spec would otherwise never end (checked by its exit)
        G.context():with_timeout(3600 * 1000)
    end)

    it("a goroutine cancelled by a context stops at its next select", function()
        local ctx, cancel = G.context():with_cancel()
        local work, steps = G.channel(), 0
        local stopped = G.async(function()
            while true do
                local i = G.select({
                    { channel = work, receive = true, handler = function() steps = steps + 1 end },
                    { channel = ctx:done(), receive = true },
                })
                if i == 2 then return ctx:err() end
            end
        end)
        work:send(1)
        work:send(2)
        cancel()
        assert.are.same({ true, "context canceled" }, { G.await(stopped) })
        assert.are.equal(2, steps)
    end)

    it("done() is receive-only: only cancellation closes it", function()
        local ctx = G.context():with_cancel()
        local done = ctx:done()
        assert.has_error(function() done:close() end)
        assert.has_error(function() done:send(1) end)
        assert.is_false(done:is_closed())
        ctx:cancel()
        assert.is_true(done:is_closed())
    end)

    it("refuses bad arguments", function()
        local ctx = G.context()
        assert.has_error(function() ctx:with_timeout(-1) end)
        assert.has_error(function() ctx:with_timeout("x") end)
        assert.has_error(function() ctx:with_deadline("x") end)
        local ok, err = pcall(ctx.err, {})
        assert.is_false(ok)
        assert.matches("context expected", err)
    end)
end)

describe("goroutine.errgroup", function()
    it("wait returns true when every function returns", function()
        local g, gctx = G.errgroup()
        local done = 0
        for i = 1, 5 do
            g:go(function(n)
                G.sleep(n)
                done = done + 1
            end, i)
        end
        assert.are.same({ true }, { g:wait() })
        assert.are.equal(5, done)
        -- wait cancels the group's context, as Go's does
        assert.are.equal("context canceled", gctx:err())
    end)

    it("the first error is returned and cancels the group's context", function()
        local g, gctx = G.errgroup()
        local saw_cancel = 0
        for i = 1, 4 do
            g:go(function()
                if i == 2 then
                    G.sleep(5)
                    error("job 2 failed")
                end
                if i == 3 then
                    G.sleep(20)
                    error("job 3 failed too")
                end
                gctx:done():receive()
                saw_cancel = saw_cancel + 1
            end)
        end
        local ok, err = g:wait()
        assert.is_false(ok)
        assert.matches("job 2 failed", err)
        assert.matches("stack traceback", err)
        assert.are.equal(2, saw_cancel)
    end)

    it("an error whose value is nil (or false) is an error too", function()
        local g, gctx = G.errgroup()
        g:go(function() error(nil) end)
        g:go(function() G.sleep(5) end)
        assert.are.same({ false, nil }, { g:wait() })
        assert.are.equal("context canceled", gctx:err())
        local g2 = G.errgroup()
        g2:go(function() error(false) end)
        assert.are.same({ false, false }, { g2:wait() })
        assert.matches("^ErrGroup%(failed", tostring(g2))
        assert.are.equal("ErrGroup(0 running)", tostring(G.errgroup()))
    end)

    it("takes a parent context: its cancellation reaches the group's", function()
        local parent, cancel = G.context():with_cancel()
        local g, gctx = G.errgroup(parent)
        g:go(function() gctx:done():receive() end)
        cancel()
        assert.are.same({ true }, { g:wait() })
        assert.are.equal("context canceled", gctx:err())
    end)

    it("a function killed by a timeout still counts as finished", function()
        local g = G.errgroup()
        local ok = G.timeout(10, function()
            g:go(function() G.sleep(math.huge) end)
            G.sleep(math.huge)
        end)
        assert.is_false(ok)
        local t0 = now()
        assert.is_true((g:wait()))
        assert.is_true(now() - t0 < 100 * TIME_FACTOR)
    end)

    it("refuses bad arguments", function()
        assert.has_error(function() G.errgroup(42) end)
        local g = G.errgroup()
        local ok, err = pcall(g.go, g, 42)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'go' %(function expected", err)
        assert.has_error(function() g.wait({}) end)
    end)
end)

describe("objects of one VM", function()
    it("an error group refuses to travel to a pool task, with a clear message", function()
        local pool = "context_spec_travel"
        G.pool_create(pool, { workers = 1 })
        local group = G.errgroup()
        local id, err = G.pool_submit(pool, function() return group end)
        assert.is_nil(id)
        -- (the codec meets the group's guard first, or its WaitGroup's cancel function)
        assert.matches("cannot travel", err, 1, true)
        id, err = G.pool_submit(pool, function(x) return x end, group)
        assert.is_nil(id)
        assert.matches("cannot travel", err, 1, true)
        -- a context does travel (context_pool_spec.lua), and an atomic_int:
        -- the task's add is seen here
        local n = G.atomic_int(1)
        id = G.pool_submit(pool, function() n:add(41) end)
        assert.is_true((G.await(id)))
        assert.are.equal(42, n:load())
        G.pool_close(pool)
    end)
end)
