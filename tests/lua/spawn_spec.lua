-- spawn, spawn_many, sharing, nesting, scale, errors in goroutines,
-- coroutine.wrap inside goroutines.
local G = require("goroutine")
local now = G.now

-- Runs fn as a goroutine and waits for it; re-raises its error (so busted
-- assertions failing inside a goroutine fail the test).
local in_goroutine = require("spec_helpers").in_goroutine

-- Runs a Lua script in a fresh lua5.4 (same interpreter, same module) and
-- returns its combined output and exit status. With `limit` (seconds) the
-- script is killed when it runs longer (exit status 124 then); `prefix` is a
-- shell command run first (e.g. a ulimit).
local run_lua = require("spec_helpers").run_lua

describe("goroutine.spawn", function()
    it("runs the function later, in a goroutine, and returns nothing", function()
        local ran, id_inside = false, nil
        local n = select("#", G.spawn(function()
            ran = true
            id_inside = G.id()
        end))
        assert.are.equal(0, n)
        assert.is_false(ran) -- spawn only queues it: like `go f()`
        G.sleep(0.1)
        assert.is_true(ran)
        assert.is_true(id_inside > 0)
        assert.are.equal(0, G.id()) -- the main chunk is no goroutine
    end)

    it("passes the extra arguments, nil holes included", function()
        local got
        local wg = G.wait_group()
        wg:add()
        G.spawn(function(...)
            got = table.pack(...)
            wg:done()
        end, 1, nil, "x", nil)
        wg:wait()
        assert.are.equal(4, got.n)
        assert.are.equal(1, got[1])
        assert.is_nil(got[2])
        assert.are.equal("x", got[3])
        assert.is_nil(got[4])
    end)

    it("gives every goroutine its own id", function()
        local ids, wg = {}, G.wait_group()
        wg:add(50)
        for _ = 1, 50 do
            G.spawn(function()
                ids[#ids + 1] = G.id()
                wg:done()
            end)
        end
        wg:wait()
        local seen = {}
        for _, id in ipairs(ids) do
            assert.is_nil(seen[id])
            seen[id] = true
        end
        assert.are.equal(50, #ids)
    end)

    it("rejects a non-function like Lua's own argument errors", function()
        for _, bad in ipairs({ { nil, "nil" }, { 42, "number" }, { "f", "string" }, { {}, "table" } }) do
            local ok, err = pcall(G.spawn, bad[1])
            assert.is_false(ok)
            assert.matches("bad argument #1 to '[%w_.]*spawn' %(function expected, got " .. bad[2] .. "%)",
                err)
        end
        local ok, err = pcall(G.spawn)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*spawn' %(function expected, got no value%)", err)
    end)

    it("works from inside a goroutine (nested goroutines)", function()
        local depth_reached, wg = 0, G.wait_group()
        local function dive(d)
            depth_reached = math.max(depth_reached, d)
            if d < 50 then
                wg:add()
                G.spawn(dive, d + 1)
            end
            G.sleep(1)
            wg:done()
        end
        wg:add()
        G.spawn(dive, 1)
        wg:wait()
        assert.are.equal(50, depth_reached)
    end)

    it("nested goroutines outlive their parent", function()
        local child_done = false
        local wg = G.wait_group()
        wg:add()
        in_goroutine(function()
            G.spawn(function()
                G.sleep(30)
                child_done = true
                wg:done()
            end)
        end) -- the parent has ended here
        assert.is_false(child_done)
        wg:wait()
        assert.is_true(child_done)
    end)

    it("a plain coroutine.yield() inside a goroutine only lets others run", function()
        local trace, wg = {}, G.wait_group()
        wg:add(2)
        G.spawn(function()
            trace[#trace + 1] = "a1"
            coroutine.yield()
            trace[#trace + 1] = "a2"
            wg:done()
        end)
        G.spawn(function()
            trace[#trace + 1] = "b1"
            wg:done()
        end)
        wg:wait()
        assert.are.same({ "a1", "b1", "a2" }, trace)
    end)
end)

describe("goroutine.spawn_many", function()
    it("calls fn(id) for id = 1..n, each exactly once", function()
        local count, wg = {}, G.wait_group()
        wg:add(200)
        G.spawn_many(200, function(id)
            count[id] = (count[id] or 0) + 1
            wg:done()
        end)
        wg:wait()
        for id = 1, 200 do
            assert.are.equal(1, count[id], "id " .. id)
        end
        assert.is_nil(count[0])
        assert.is_nil(count[201])
    end)

    it("returns nothing and runs them concurrently", function()
        local t0, wg = now(), G.wait_group()
        wg:add(20)
        assert.are.equal(0, select("#", G.spawn_many(20, function()
            G.sleep(50)
            wg:done()
        end)))
        wg:wait()
        local elapsed = now() - t0
        assert.is_true(elapsed >= 49, "elapsed " .. elapsed)
        assert.is_true(elapsed < 400, "20 x 50 ms ran in sequence? elapsed " .. elapsed)
    end)

    it("with n = 0 calls nothing", function()
        local called = false
        G.spawn_many(0, function() called = true end)
        G.sleep(1)
        assert.is_false(called)
    end)

    it("rejects a bad count or function", function()
        local ok, err = pcall(G.spawn_many, "x", function() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*spawn_many' %(number expected, got string%)", err)
        ok, err = pcall(G.spawn_many, -1, function() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*spawn_many'", err)
        ok, err = pcall(G.spawn_many, 1.5, function() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*spawn_many'", err)
        ok, err = pcall(G.spawn_many, 3, nil)
        assert.is_false(ok)
        assert.matches("bad argument #2 to '[%w_.]*spawn_many' %(function expected, got nil%)", err)
        ok, err = pcall(G.spawn_many)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*spawn_many'", err)
    end)

    it("rejects a count it cannot honour (more than 10,000,000) before starting any", function()
        local called = false
        for _, n in ipairs({ 1e15, 10000001, math.maxinteger }) do
            local ok, err = pcall(G.spawn_many, n, function() called = true end)
            assert.is_false(ok)
            assert.matches("bad argument #1 to '[%w_.]*spawn_many' %(count too large %(at most 10000000%)%)",
                err)
        end
        G.sleep(1)
        assert.is_false(called)
    end)

    -- (a sanitizer runtime preloaded into lua5.4 needs more address space)
    local preloaded = (os.getenv("LD_PRELOAD") or "") ~= ""
    ;(preloaded and pending or it)("running out of memory part-way is an error pcall catches, and none run", function()
        local out, status = run_lua([[
            local G = require("goroutine")
            local ran = 0
            local ok, err = pcall(G.spawn_many, 1000000, function() ran = ran + 1 end)
            print(ok, err)
            G.sleep(10)
            print("ran", ran)
            local wg = G.wait_group()
            wg:add(3)
            G.spawn_many(3, function() ran = ran + 1; wg:done() end)
            wg:wait()
            print("usable", ran)
            G.spawn_many(1000000, function() end)
            print("unreachable")
        ]], 40, "ulimit -v 150000; ")
        assert.are.equal(1, status, out)
        assert.matches("^false\tnot enough memory\nran\t0\nusable\t3\n", out)
        assert.matches("not enough memory", out:match("usable\t3\n(.*)$"))
        assert.is_nil(out:find("unreachable", 1, true))
        assert.is_nil(out:find("PANIC", 1, true))
    end)

    it("the spec's example runs (log replaced by a table)", function()
        local lines, wg = {}, G.wait_group()
        wg:add(5)
        G.spawn_many(5, function(id)
            lines[#lines + 1] = "Goroutine #" .. tostring(id)
            wg:done()
        end)
        wg:wait()
        table.sort(lines)
        assert.are.same({ "Goroutine #1", "Goroutine #2", "Goroutine #3", "Goroutine #4", "Goroutine #5" },
            lines)
    end)
end)

describe("sharing memory", function()
    it("goroutines see and change their spawner's upvalues, tables and globals", function()
        local up = 0
        local tbl = { n = 0 }
        _G.__mutirao_shared = 0
        local wg = G.wait_group()
        wg:add(100)
        for _ = 1, 100 do
            G.spawn(function()
                up = up + 1
                tbl.n = tbl.n + 1
                _G.__mutirao_shared = _G.__mutirao_shared + 1
                G.sleep(0)
                wg:done()
            end)
        end
        wg:wait()
        assert.are.equal(100, up)
        assert.are.equal(100, tbl.n)
        assert.are.equal(100, _G.__mutirao_shared)
        _G.__mutirao_shared = nil
    end)

    it("the spec's Exemplo 3 (WaitGroup): all three results are OK", function()
        local log = {}
        local wg = G.wait_group()
        local results = {}
        local t0 = now()
        wg:add(3)
        G.spawn(function()
            log[#log + 1] = "Baixando arquivo..."
            G.sleep(200)
            results.download = "OK"
            wg:done()
        end)
        G.spawn(function()
            log[#log + 1] = "Processando dados..."
            G.sleep(150)
            results.process = "OK"
            wg:done()
        end)
        G.spawn(function()
            log[#log + 1] = "Fazendo upload..."
            G.sleep(100)
            results.upload = "OK"
            wg:done()
        end)
        wg:wait()
        local elapsed = now() - t0
        assert.are.equal("OK", results.download)
        assert.are.equal("OK", results.process)
        assert.are.equal("OK", results.upload)
        assert.are.equal(3, #log)
        assert.is_true(elapsed >= 199, "elapsed " .. elapsed)
        assert.is_true(elapsed < 400, "sleeps ran in sequence? elapsed " .. elapsed) -- sum is 450
    end)
end)

describe("scale", function()
    it("runs 10,000 goroutines at once", function()
        local n, alive, max_alive = 0, 0, 0
        local wg = G.wait_group()
        local t0 = now()
        wg:add(10000)
        for i = 1, 10000 do
            G.spawn(function(k)
                alive = alive + 1
                if alive > max_alive then max_alive = alive end
                G.sleep(20)
                n = n + k
                alive = alive - 1
                wg:done()
            end, i)
        end
        wg:wait()
        local elapsed = now() - t0
        assert.are.equal(10000 * 10001 / 2, n)
        assert.are.equal(10000, max_alive) -- all of them were asleep at the same time
        assert.is_true(elapsed < 5000, "elapsed " .. elapsed)
    end)

    it("reuses goroutine memory: 5 x 5,000 short goroutines do not grow the heap 5 times", function()
        local function batch()
            local wg = G.wait_group()
            wg:add(5000)
            for _ = 1, 5000 do
                G.spawn(function()
                    G.sleep(0)
                    wg:done()
                end)
            end
            wg:wait()
            collectgarbage()
            collectgarbage()
            return collectgarbage("count")
        end
        local first = batch()
        local last
        for _ = 1, 4 do last = batch() end
        assert.is_true(last < first * 1.5 + 256, ("heap %.0f KB after the first batch, %.0f KB after five"):format(
            first, last))
    end)
end)

describe("errors in spawned goroutines", function()
    after_each(function() G._set_error_handler(nil) end)

    it("are reported with the goroutine id and a traceback, and others go on", function()
        local reports = {}
        G._set_error_handler(function(msg, id, label)
            reports[#reports + 1] = { msg = msg, id = id, label = label }
        end)
        local survivor_done, bad_id = false, nil
        local wg = G.wait_group()
        wg:add(2)
        G.spawn(function()
            bad_id = G.id()
            wg:done()
            error("kaboom in goroutine")
        end)
        G.spawn(function()
            G.sleep(20)
            survivor_done = true
            wg:done()
        end)
        wg:wait()
        G.sleep(5)
        assert.is_true(survivor_done)
        assert.are.equal(1, #reports)
        assert.are.equal(bad_id, reports[1].id)
        assert.matches("kaboom in goroutine", reports[1].msg)
        assert.matches("stack traceback:", reports[1].msg)
        assert.matches("spawn_spec.lua:%d+", reports[1].msg)
    end)

    it("go to stderr as 'goroutine N failed: ...' and never stop the process", function()
        local out, status = run_lua([[
            local G = require("goroutine")
            G.spawn(function() error("first failure") end)
            G.spawn(function() error({ code = 7 }) end) -- a non-string error value
            G.spawn(function() local t = nil; return t.field end) -- a runtime error
            G.sleep(20)
            local done = false
            G.spawn(function() G.sleep(5); done = true end)
            G.sleep(30)
            print("still alive", done)
        ]])
        assert.are.equal(0, status, out)
        assert.matches("goroutine %d+ failed: [^\n]*first failure", out)
        assert.matches("goroutine %d+ failed: [^\n]*attempt to index", out)
        assert.matches("goroutine %d+ failed: table", out)
        assert.matches("stack traceback:", out)
        assert.matches("still alive\ttrue", out)
    end)

    it("a stack overflow in a goroutine after one caught in the main chunk is reported, no hang", function()
        -- Preemption used to re-arm its hook at every CPU tick, and arming
        -- walks the whole (here about a million frames deep) stack: the
        -- thread never left the signal handler.
        local out, status = run_lua([[
            local G = require("goroutine")
            local function f() return f() + 1 end
            print(pcall(f))
            local wg = G.wait_group()
            wg:add(1)
            G.spawn(function()
                local _ <close> = setmetatable({}, { __close = function() wg:done() end })
                f()
            end)
            wg:wait()
            G.spawn(function() print("still alive") end)
            G.sleep(1)
            print("end")
        ]], 40)
        assert.are.equal(0, status, out)
        assert.matches("^false\t[^\n]*:2: stack overflow\n", out)
        assert.matches("goroutine %d+ failed: [^\n]*:2: stack overflow\nstack traceback:\n", out)
        assert.matches("still alive\nend\n", out)
    end)
end)

describe("waits inside coroutine.wrap inside a goroutine", function()
    it("raise a clear error instead of crashing", function()
        local ok, err = G.await(G.async(function()
            local f = coroutine.wrap(function()
                G.sleep(10)
                return "unreachable"
            end)
            return f()
        end))
        assert.is_false(ok)
        assert.is_string(err)
        assert.matches("cannot wait in a plain coroutine %(coroutine.wrap or coroutine.create%) "
            .. "or a __close handler inside a goroutine: use goroutine.spawn", err)
        -- the scheduler still works afterwards
        local ok2, v = G.await(G.async(function()
            G.sleep(1)
            return "fine"
        end))
        assert.is_true(ok2)
        assert.are.equal("fine", v)
    end)

    it("a wait group wait in a wrapped coroutine also errors clearly", function()
        local wg = G.wait_group()
        wg:add()
        local ok, err = G.await(G.async(function()
            return coroutine.wrap(function() wg:wait() end)()
        end))
        assert.is_false(ok)
        assert.matches("cannot wait", err)
        wg:done()
    end)

    it("in the main chunk (no goroutine running) a wrapped coroutine may wait", function()
        local f = coroutine.wrap(function()
            G.sleep(5)
            return "main-wrap"
        end)
        assert.are.equal("main-wrap", f())
    end)
end)
