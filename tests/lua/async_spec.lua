-- goroutine.async, goroutine.await, goroutine.await_all.
local G = require("goroutine")
local now = G.now

local in_goroutine = require("spec_helpers").in_goroutine

-- Every await test runs twice: awaited from the main chunk (which runs the
-- loop while it waits) and from inside a goroutine (which parks).
local contexts = {
    { "from the main chunk", function(fn) fn() end },
    { "from a goroutine", in_goroutine },
}

describe("goroutine.async", function()
    it("returns a handle whose tostring shows its id", function()
        local h = G.async(function()
            G.sleep(5)
            return 1
        end)
        assert.are.equal("userdata", type(h))
        local s = tostring(h)
        local id = s:match("(%d+)")
        assert.is_not_nil(id, s)
        assert.matches("running", s)
        G.await(h)
        assert.matches("done", tostring(h))
        assert.are.equal(id, tostring(h):match("(%d+)"))
        local h2 = G.async(function() return 2 end)
        assert.are_not.equal(id, tostring(h2):match("(%d+)")) -- ids differ
        local h3 = G.async(function() error("x") end)
        G.await(h3)
        assert.matches("failed", tostring(h3))
    end)

    it("passes extra arguments to fn", function()
        local ok, a, b, c = G.await(G.async(function(...) return select("#", ...), ... end, "a", nil))
        assert.is_true(ok)
        assert.are.equal(2, a)
        assert.are.equal("a", b)
        assert.is_nil(c)
    end)

    it("rejects a non-function", function()
        local ok, err = pcall(G.async, 5)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*async' %(function expected, got number%)", err)
        ok, err = pcall(G.async)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*async'", err)
    end)

    it("runs concurrently: five 100 ms jobs take about 100 ms", function()
        local t0 = now()
        local hs = {}
        for i = 1, 5 do
            hs[i] = G.async(function()
                G.sleep(100)
                return i
            end)
        end
        for i = 1, 5 do
            local ok, v = G.await(hs[i])
            assert.is_true(ok)
            assert.are.equal(i, v)
        end
        local elapsed = now() - t0
        assert.is_true(elapsed >= 99, "elapsed " .. elapsed)
        assert.is_true(elapsed < 350, "ran in sequence? elapsed " .. elapsed)
    end)
end)

describe("goroutine.await", function()
    for _, c in ipairs(contexts) do
        local where, run = c[1], c[2]

        it("returns true and the values " .. where, function()
            run(function()
                local handle = G.async(function()
                    G.sleep(5)
                    return "valor1", "valor2"
                end)
                local success, val1, val2 = G.await(handle)
                assert.is_true(success)
                assert.are.equal("valor1", val1)
                assert.are.equal("valor2", val2)
            end)
        end)

        it("keeps nil holes and the value count " .. where, function()
            run(function()
                local r = table.pack(G.await(G.async(function()
                    G.sleep(1)
                    return nil, 2, nil, false, nil
                end)))
                assert.are.equal(6, r.n)
                assert.is_true(r[1])
                assert.is_nil(r[2])
                assert.are.equal(2, r[3])
                assert.is_nil(r[4])
                assert.is_false(r[5])
                assert.is_nil(r[6])
                local r0 = table.pack(G.await(G.async(function() end)))
                assert.are.equal(1, r0.n)
                assert.is_true(r0[1])
            end)
        end)

        it("returns false and the message with a traceback on error " .. where, function()
            run(function()
                local ok, err = G.await(G.async(function()
                    G.sleep(1)
                    error("broken pipe 42")
                end))
                assert.is_false(ok)
                assert.is_string(err)
                assert.matches("async_spec.lua:%d+: broken pipe 42", err)
                assert.matches("stack traceback:", err)
            end)
        end)

        it("keeps a non-string error value as is " .. where, function()
            run(function()
                local e = { code = 404 }
                local ok, err = G.await(G.async(function() error(e) end))
                assert.is_false(ok)
                assert.are.equal(e, err)
            end)
        end)

        it("returns the same result when awaited again " .. where, function()
            run(function()
                local t = {}
                local h = G.async(function()
                    G.sleep(5)
                    return t, "x"
                end)
                local a = table.pack(G.await(h))
                local b = table.pack(G.await(h))
                assert.are.equal(3, a.n)
                assert.are.equal(3, b.n)
                assert.are.equal(a[2], b[2])
                assert.are.equal(t, b[2])
                assert.are.equal("x", b[3])
                local hf = G.async(function() error("once") end)
                local ok1, e1 = G.await(hf)
                local ok2, e2 = G.await(hf)
                assert.is_false(ok1)
                assert.is_false(ok2)
                assert.are.equal(e1, e2)
            end)
        end)
    end

    it("wakes several goroutines awaiting the same handle at once", function()
        local h = G.async(function()
            G.sleep(30)
            return "shared"
        end)
        local got, wg = {}, G.wait_group()
        wg:add(20)
        for i = 1, 20 do
            G.spawn(function()
                local ok, v = G.await(h)
                got[i] = ok and v
                wg:done()
            end)
        end
        local ok, v = G.await(h) -- the main chunk too
        wg:wait()
        assert.is_true(ok)
        assert.are.equal("shared", v)
        for i = 1, 20 do assert.are.equal("shared", got[i]) end
    end)

    it("keeps the handle's result alive across garbage collections", function()
        local h = G.async(function()
            G.sleep(10)
            return { payload = "kept" }
        end)
        collectgarbage()
        collectgarbage()
        local ok, v = G.await(h)
        collectgarbage()
        assert.is_true(ok)
        assert.are.equal("kept", v.payload)
        local _, v2 = G.await(h)
        assert.are.equal(v, v2)
    end)

    it("rejects what is not a handle", function()
        for _, bad in ipairs({ { 1, "number" }, { true, "boolean" }, { {}, "table" } }) do
            local ok, err = pcall(G.await, bad[1])
            assert.is_false(ok)
            assert.matches("bad argument #1 to '[%w_.]*await' %(async handle expected, got " .. bad[2] .. "%)",
                err)
        end
        local ok, err = pcall(G.await, G.wait_group())
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*await'", err)
        ok, err = pcall(G.await)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*await'", err)
    end)

    it("a string is a pool task id: an unknown one is a failed await, not an argument error", function()
        local ok, err = G.await("no-such-task")
        assert.is_falsy(ok)
        assert.matches("unknown task", err)
    end)

    it("the spec's error-handling pattern works", function()
        local handle = G.async(function() error("falhou") end)
        local success, result = G.await(handle)
        local logged
        if success then
            logged = "OK: " .. result
        else
            logged = "Erro: " .. result
        end
        assert.matches("^Erro: .*falhou", logged)
    end)
end)

describe("goroutine.await_all", function()
    for _, c in ipairs(contexts) do
        local where, run = c[1], c[2]

        it("returns results in input order " .. where, function()
            run(function()
                local hs = {}
                for i = 1, 5 do
                    hs[i] = G.async(function()
                        G.sleep((6 - i) * 10) -- the first ends last
                        return "Resultado " .. i
                    end)
                end
                local results = G.await_all(hs)
                assert.are.equal(5, #results)
                for i, r in ipairs(results) do
                    assert.is_true(r.success)
                    assert.are.equal("Resultado " .. i, r.values[1])
                    assert.is_nil(r.error)
                end
            end)
        end)

        it("reports failures as {success=false, error=...} " .. where, function()
            run(function()
                local hs = {
                    G.async(function() return 1, nil, 3 end),
                    G.async(function()
                        G.sleep(5)
                        error("api 2 down")
                    end),
                    G.async(function() return end),
                }
                local r = G.await_all(hs)
                assert.are.equal(3, #r)
                assert.is_true(r[1].success)
                assert.are.equal(1, r[1].values[1])
                assert.is_nil(r[1].values[2])
                assert.are.equal(3, r[1].values[3])
                assert.is_false(r[2].success)
                assert.is_nil(r[2].values)
                assert.matches("api 2 down", r[2].error)
                assert.matches("stack traceback:", r[2].error)
                assert.is_true(r[3].success)
                assert.is_table(r[3].values)
                assert.is_nil(r[3].values[1])
            end)
        end)
    end

    it("waits for all at once: total time is the slowest, not the sum", function()
        local t0 = now()
        local hs = {}
        for i, ms in ipairs({ 300, 100, 200 }) do
            hs[i] = G.async(function()
                G.sleep(ms)
                return ms
            end)
        end
        local r = G.await_all(hs)
        local elapsed = now() - t0
        assert.are.equal(300, r[1].values[1])
        assert.are.equal(100, r[2].values[1])
        assert.are.equal(200, r[3].values[1])
        assert.is_true(elapsed >= 299, "elapsed " .. elapsed)
        assert.is_true(elapsed < 500, "the sum is 600 ms; elapsed " .. elapsed)
    end)

    it("accepts handles that are already done, and the same handle twice", function()
        local h = G.async(function() return "early" end)
        G.await(h)
        local r = G.await_all({ h, h, G.async(function() return "late" end) })
        assert.are.equal("early", r[1].values[1])
        assert.are.equal("early", r[2].values[1])
        assert.are.equal("late", r[3].values[1])
    end)

    it("returns an empty table for an empty table", function()
        local r = G.await_all({})
        assert.are.equal("table", type(r))
        assert.are.equal(0, #r)
        assert.is_nil(next(r))
    end)

    it("names the index of a non-handle element", function()
        local h = G.async(function() return 1 end)
        local ok, err = pcall(G.await_all, { h, 3, h })
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*await_all'", err)
        assert.matches("index 2", err)
        assert.matches("number", err)
        ok, err = pcall(G.await_all, { h, h, h, true })
        assert.is_false(ok)
        assert.matches("index 4", err)
        assert.matches("boolean", err)
        ok, err = pcall(G.await_all, { {} })
        assert.is_false(ok)
        assert.matches("index 1", err)
    end)

    it("takes pool task ids too: an unknown id fails in its slot", function()
        in_goroutine(function()
            local h = G.async(function() return 1 end)
            local r = G.await_all({ h, "no-such-task" })
            assert.is_true(r[1].success)
            assert.equals(1, r[1].values[1])
            assert.is_false(r[2].success)
            assert.matches("unknown task id: no%-such%-task", tostring(r[2].error))
        end)
    end)

    it("rejects a non-table", function()
        local ok, err = pcall(G.await_all, G.async(function() end))
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*await_all' %(table expected, got ", err)
        ok, err = pcall(G.await_all)
        assert.is_false(ok)
        assert.matches("bad argument #1 to '[%w_.]*await_all'", err)
    end)

    it("runs the spec's parallel deployment example in parallel (scaled down)", function()
        local servers = {
            { name = "web-01", host = "192.168.1.10" }, { name = "web-02", host = "192.168.1.11" },
            { name = "web-03", host = "192.168.1.12" }, { name = "api-01", host = "192.168.1.20" },
            { name = "api-02", host = "192.168.1.21" }, { name = "db-01", host = "192.168.1.30" },
        }
        local t0 = now()
        local handles = {}
        for _, server in ipairs(servers) do
            local handle = G.async(function()
                for _ = 1, 4 do G.sleep(50) end
                return server.name, server.host, "success", os.date("%Y-%m-%d %H:%M:%S")
            end)
            table.insert(handles, handle)
        end
        local results = G.await_all(handles)
        local elapsed = now() - t0
        local success_count = 0
        for i, result in ipairs(results) do
            assert.is_true(result.success)
            assert.are.equal(servers[i].name, result.values[1])
            assert.are.equal("success", result.values[3])
            assert.is_string(result.values[4])
            success_count = success_count + 1
        end
        assert.are.equal(#servers, success_count)
        assert.is_true(elapsed >= 199, "elapsed " .. elapsed)
        assert.is_true(elapsed < 700, "sequential would be 1200 ms; elapsed " .. elapsed)
    end)
end)
