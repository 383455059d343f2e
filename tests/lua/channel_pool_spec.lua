-- Channels across pool VMs: a channel captured by a pool task (or passed
-- as an argument) is the same channel there, with the same semantics,
-- between OS threads. Values cross as copies (encoded like task arguments).
local G = require("goroutine")
local now = G.now
local TIME_FACTOR = tonumber(os.getenv("MUTIRAO_TIME_FACTOR")) or 1

local POOL = "chan_pool_spec"
local submit, await_ok = require("spec_helpers").pool(POOL, { workers = 400 })

describe("a channel shared with pool tasks", function()
    it("carries values from pool tasks to the main VM, none lost or duplicated", function()
        local ch = G.channel(8)
        local producers, per = 6, 500
        local ids = {}
        for p = 1, producers do
            ids[p] = submit(function()
                for i = 1, per do assert(ch:send({ p = p, i = i })) end
                return true
            end)
        end
        G.spawn(function()
            for _, id in ipairs(ids) do await_ok(id) end
            ch:close()
        end)
        local seen, n, last = {}, 0, {}
        for v in ch:iter() do
            local key = v.p * 100000 + v.i
            assert.is_nil(seen[key])
            seen[key] = true
            n = n + 1
            -- one producer's values arrive in the order it sent them
            assert.is_true(v.i > (last[v.p] or 0))
            last[v.p] = v.i
        end
        assert.are.equal(producers * per, n)
        assert.matches("^Channel%(shared, closed, 0/8%)$", tostring(ch))
    end)

    it("carries values from the main VM to consumers in pool tasks", function()
        local jobs, results = G.channel(), G.channel(4)
        local ids = {}
        for c = 1, 4 do
            ids[c] = submit(function()
                local n = 0
                for v in jobs:iter() do
                    results:send(v * v)
                    n = n + 1
                end
                return n
            end)
        end
        G.spawn(function()
            for i = 1, 400 do jobs:send(i) end
            jobs:close()
        end)
        G.spawn(function()
            local total = 0
            for _, id in ipairs(ids) do total = total + await_ok(id) end
            assert.are.equal(400, total)
            results:close()
        end)
        local sum, n = 0, 0
        for v in results:iter() do
            sum, n = sum + v, n + 1
        end
        assert.are.equal(400, n)
        assert.are.equal(400 * 401 * 801 // 6, sum)
    end)

    it("100 producers and 100 consumers in pool tasks lose and duplicate nothing", function()
        local ch = G.channel()
        local P, C, K = 100, 100, 20
        local prods, cons = {}, {}
        for p = 1, P do
            prods[p] = submit(function()
                for i = 1, K do ch:send(p * 1000 + i) end
                return true
            end)
        end
        for c = 1, C do
            cons[c] = submit(function()
                local got = {}
                for v in ch:iter() do got[#got + 1] = v end
                return got
            end)
        end
        for _, id in ipairs(prods) do await_ok(id) end
        ch:close()
        local seen, n = {}, 0
        for _, id in ipairs(cons) do
            for _, v in ipairs(await_ok(id)) do
                assert.is_nil(seen[v])
                seen[v] = true
                n = n + 1
            end
        end
        assert.are.equal(P * K, n)
    end)

    it("keeps an unbuffered send waiting until a receiver in another VM takes it", function()
        local ch = G.channel()
        local id = submit(function()
            local G = require("goroutine")
            local t0 = G.now()
            assert(ch:send("hello"))
            return G.now() - t0
        end)
        G.sleep(60)
        assert.are.same({ "hello", true }, { ch:receive() })
        local waited = await_ok(id)
        assert.is_true(waited >= 40, "the send returned after " .. waited .. " ms")
    end)

    it("is the same object when it comes back, and in one VM", function()
        local ch = G.channel(1)
        local same, back = await_ok(submit(function(a)
            return rawequal(a, ch), ch
        end, ch))
        assert.is_true(same)
        assert.is_true(rawequal(back, ch))
    end)

    it("copies its values: a table received is the receiver's own", function()
        local ch = G.channel(1)
        local t = { n = 1, nested = { "x" } }
        await_ok(submit(function() ch:send({ n = 2, nested = { "y" } }) end))
        local got = ch:receive()
        assert.are.same({ n = 2, nested = { "y" } }, got)
        -- once shared, a value sent in this VM is a copy too
        ch:send(t)
        local copy = ch:receive()
        assert.are.same(t, copy)
        assert.are_not.equal(t, copy)
        -- nil, false, numbers, strings with zeros, functions
        for _, v in ipairs({ false, 0, -1.5, math.huge, "a\0b", 2 ^ 53 }) do
            ch:send(v)
            assert.are.same(v, (ch:receive()))
        end
        ch:send(nil)
        assert.are.same({ nil, true }, { ch:receive() })
        ch:send(function(x) return x + 1 end)
        assert.are.equal(42, ch:receive()(41))
    end)

    it("keeps values buffered and senders waiting from before it was shared", function()
        local ch = G.channel(2)
        ch:send("a")
        ch:send({ "b" })
        local sent = {}
        G.spawn(function() sent[1] = ch:send("c") end) -- waits: the buffer is full
        G.sleep(5)
        local got = await_ok(submit(function()
            local r = {}
            for i = 1, 3 do r[i] = ch:receive() end
            return r
        end))
        assert.are.same({ "a", { "b" }, "c" }, got)
        G.sleep(5)
        assert.is_true(sent[1])
        -- and a receiver that waited before: a pool task's send reaches it
        local ch2, got2 = G.channel(), {}
        G.spawn(function() got2 = { ch2:receive() } end)
        G.sleep(5)
        await_ok(submit(function() ch2:send("late") end))
        G.sleep(5)
        assert.are.same({ "late", true }, got2)
    end)

    it("refuses a value that cannot travel, at the send", function()
        local ch = G.channel(1)
        await_ok(submit(function() return ch end))
        local ok, err = pcall(ch.send, ch, coroutine.create(function() end))
        assert.is_false(ok)
        assert.matches("cannot", err)
        assert.are.equal(0, ch:len())
        -- a channel that holds such a value cannot become shared
        local local_ch = G.channel(1)
        local_ch:send(coroutine.create(function() end))
        local id, err2 = G.pool_submit(POOL, function() return local_ch end)
        assert.is_nil(id)
        assert.matches("a channel that holds a value that cannot travel", err2)
        assert.matches("^Channel%(1/1%)$", tostring(local_ch)) -- unchanged
    end)

    it("does not let an after() channel travel", function()
        local a = G.after(10)
        local id, err = G.pool_submit(POOL, function() return a end)
        assert.is_nil(id)
        assert.matches("after%(%) channel", err)
    end)

    it("close wakes every receiver and sender in every VM", function()
        local r, s = G.channel(), G.channel()
        local ids = {}
        for i = 1, 5 do
            ids[#ids + 1] = submit(function() return { r:receive() } end)
            ids[#ids + 1] = submit(function() return { s:send(i) } end)
        end
        G.sleep(50)
        assert.is_true(r:close())
        assert.is_true(s:close())
        assert.are.same({ false, "channel already closed" }, { s:close() })
        for k, id in ipairs(ids) do
            local res = await_ok(id)
            if k % 2 == 1 then
                assert.are.same({ nil, false }, res)
            else
                assert.are.same({ false, "send on closed channel" }, res)
            end
        end
        -- a pool task sees the close too
        assert.are.same({ true, false, "send on closed channel" },
            { await_ok(submit(function() return r:is_closed(), s:send(1) end)) })
    end)

    it("select in a pool task waits for cases on shared channels", function()
        local a, b = G.channel(), G.channel()
        local id = submit(function()
            local G = require("goroutine")
            local out = {}
            for _ = 1, 2 do
                out[#out + 1] = { G.select({
                    { channel = a, receive = true, handler = function(v) return "a:" .. v end },
                    { channel = b, receive = true, handler = function(v) return "b:" .. v end },
                }) }
            end
            return out
        end)
        b:send("1")
        a:send("2")
        assert.are.same({ { 2, "b:1" }, { 1, "a:2" } }, await_ok(id))
    end)

    it("select does exactly one case when VMs race for its cases", function()
        -- many selects over two shared channels; senders in other VMs fill
        -- both; every value is received exactly once
        local a, b, done = G.channel(), G.channel(), G.channel(100)
        local rounds = 300
        local ids = {}
        for w = 1, 4 do
            ids[w] = submit(function()
                local G = require("goroutine")
                local got = {}
                while true do
                    local no, v = G.select({
                        { channel = a, receive = true, handler = function(v, ok) return ok and v end },
                        { channel = b, receive = true, handler = function(v, ok) return ok and v end },
                    })
                    if not v then return got end
                    got[#got + 1] = v
                end
            end)
        end
        local senders = {}
        for k, ch in ipairs({ a, b }) do
            senders[k] = submit(function()
                for i = 1, rounds do ch:send(k * 10000 + i) end
            end)
        end
        for _, id in ipairs(senders) do await_ok(id) end
        a:close()
        -- after a closes, a select may return a's close: the loop ends; b's
        -- values left are drained here
        local seen, n = {}, 0
        for _, id in ipairs(ids) do
            for _, v in ipairs(await_ok(id)) do
                assert.is_nil(seen[v])
                seen[v] = true
                n = n + 1
            end
        end
        local v, ok = b:try_receive()
        while ok do
            assert.is_nil(seen[v])
            seen[v] = true
            n = n + 1
            v, ok = b:try_receive()
        end
        assert.are.equal(2 * rounds, n)
        done:close()
    end)

    it("select sends on a shared channel only in the case chosen", function()
        local a, b = G.channel(), G.channel()
        local id = submit(function()
            local G = require("goroutine")
            return (G.select({ { channel = a, send = "to a" }, { channel = b, send = "to b" } }))
        end)
        G.sleep(20)
        assert.are.same({ "to b", true }, { b:receive() })
        assert.are.equal(2, await_ok(id))
        assert.are.same({ nil, false }, { a:try_receive() })
    end)

    it("select_timeout across VMs times out, and keeps nothing sent later", function()
        local ch = G.channel()
        local r = { await_ok(submit(function()
            local G = require("goroutine")
            return G.select_timeout(30, { { channel = ch, receive = true } })
        end)) }
        assert.are.same({ false, "timeout" }, r)
        -- the waiter is gone: a try_send finds no receiver
        assert.is_false(ch:try_send(1))
    end)

    it("a timeout cancels a goroutine blocked on a shared channel, and loses no value", function()
        local ch = G.channel()
        await_ok(submit(function() return ch end))
        local ok, err = G.timeout(30, function() return ch:receive() end)
        assert.is_false(ok)
        assert.matches("timeout", err)
        -- a pool task's receive killed by its task timeout
        local tpool = "chan_pool_spec_timeout"
        G.pool_create(tpool, { workers = 2, timeout = 50 })
        local id = assert(G.pool_submit(tpool, function() return ch:receive() end))
        local tok, terr = G.await(id)
        assert.is_false(tok)
        assert.matches("timeout after 50 ms", terr)
        G.pool_close(tpool)
        -- nothing waits any more: the channel still works
        G.spawn(function() ch:send("after") end)
        assert.are.same({ "after", true }, { ch:receive() })
        -- many receivers cancelled while many values arrive: every value
        -- sent is received by someone
        local flood = G.channel()
        local sends = submit(function()
            local n = 0
            for i = 1, 200 do
                if flood:send(i) then n = n + 1 end
            end
            return n
        end)
        local got = {}
        for _ = 1, 50 do
            G.timeout(1, function()
                while true do got[#got + 1] = flood:receive() end
            end)
        end
        while true do
            local v, ok2 = G.select_timeout(200 * TIME_FACTOR, { { channel = flood, receive = true } })
            if v == false then break end
            local _, val = v, ok2
            got[#got + 1] = val
        end
        assert.are.equal(await_ok(sends), #got)
    end)

    it("a deadlock on a shared channel is still reported when nothing can send", function()
        local script = [[
            local G = require("goroutine")
            G.pool_create("p", { workers = 1 })
            local ch = G.channel()
            assert(G.await(G.pool_submit("p", function() return ch end)))
            ch:receive()
        ]]
        local lua = os.getenv("MUTIRAO_LUA") or "lua5.4"
        local dir = os.getenv("MUTIRAO_MODULE_DIR") or "../../build/lib"
        local f = assert(io.popen(string.format("LUA_CPATH='%s/?.so;;' timeout 20 %s -e %q 2>&1; echo \"exit=$?\"",
            dir, lua, script)))
        local out = f:read("a")
        f:close()
        assert.matches("deadlock", out)
        assert.is_nil(out:match("exit=124"), out)
    end)
end)
