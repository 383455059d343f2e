-- goroutine.channel, select, select_timeout, after: Go's channels for the
-- goroutines of one VM.
local G = require("goroutine")
local now = G.now
local TIME_FACTOR = tonumber(os.getenv("MUTIRAO_TIME_FACTOR")) or 1

local in_goroutine = require("spec_helpers").in_goroutine

-- runs fn in a goroutine and reports whether it is still waiting after ms
local function blocks(fn, ms)
    local done = false
    G.spawn(function()
        fn()
        done = true
    end)
    G.sleep(ms or 10)
    return not done
end

describe("goroutine.channel", function()
    it("makes unbuffered and buffered channels", function()
        local u, b = G.channel(), G.channel(3)
        assert.are.equal(0, u:cap())
        assert.are.equal(3, b:cap())
        assert.are.equal(0, b:len())
        assert.is_false(b:is_closed())
        assert.matches("^Channel%(0/3%)$", tostring(b))
        assert.are.equal(0, G.channel(0):cap())
    end)

    it("refuses a bad capacity", function()
        for _, bad in ipairs({ -1, 1.5, "x", {} }) do
            local ok, err = pcall(G.channel, bad)
            assert.is_false(ok)
            assert.matches("bad argument #1 to '[%w.]*channel'", err)
        end
    end)

    it("unbuffered: a send waits for a receiver, and the receiver gets the value", function()
        local ch = G.channel()
        local log = {}
        G.spawn(function()
            log[#log + 1] = "send"
            assert.is_true(ch:send("v"))
            log[#log + 1] = "sent"
        end)
        G.sleep(10)
        assert.are.same({ "send" }, log)
        local v, ok = ch:receive()
        assert.are.equal("v", v)
        assert.is_true(ok)
        G.sleep(1)
        assert.are.same({ "send", "sent" }, log)
    end)

    it("unbuffered: a receive waits for a sender", function()
        local ch = G.channel()
        local got
        G.spawn(function() got = { ch:receive() } end)
        G.sleep(10)
        assert.is_nil(got)
        assert.is_true(ch:send(7))
        G.sleep(1)
        assert.are.same({ 7, true }, got)
    end)

    it("buffered: sends do not wait until the buffer is full, values come out in order", function()
        local ch = G.channel(2)
        assert.is_true(ch:send(1))
        assert.is_true(ch:send(2))
        assert.are.equal(2, ch:len())
        assert.is_true(blocks(function() ch:send(3) end))
        assert.are.same({ 1, true }, { ch:receive() })
        G.sleep(1) -- the waiting sender's 3 took the freed slot
        assert.are.equal(2, ch:len())
        assert.are.same({ 2, true }, { ch:receive() })
        assert.are.same({ 3, true }, { ch:receive() })
        assert.are.equal(0, ch:len())
    end)

    it("carries nil and any Lua value", function()
        local ch = G.channel(4)
        local t = {}
        ch:send(nil)
        ch:send(false)
        ch:send(t)
        ch:send(print)
        assert.are.same({ nil, true }, { ch:receive() })
        assert.are.same({ false, true }, { ch:receive() })
        assert.are.equal(t, (ch:receive()))
        assert.are.equal(print, (ch:receive()))
        in_goroutine(function()
            local u = G.channel()
            G.spawn(function() u:send(nil) end)
            local v, ok = u:receive()
            assert.is_nil(v)
            assert.is_true(ok)
        end)
    end)

    it("send needs a value and a channel", function()
        local ch = G.channel(1)
        assert.has_error(function() ch:send() end)
        local ok, err = pcall(ch.send, {}, 1)
        assert.is_false(ok)
        assert.matches("channel expected", err)
        ok, err = pcall(ch.receive, G.wait_group())
        assert.is_false(ok)
        assert.matches("channel expected", err)
    end)

    it("try_send and try_receive never wait", function()
        local ch = G.channel(1)
        assert.are.same({ nil, false }, { ch:try_receive() })
        assert.is_true(ch:try_send("a"))
        assert.is_false(ch:try_send("b"))
        assert.are.same({ "a", true }, { ch:try_receive() })
        local u = G.channel()
        assert.is_false(u:try_send(1)) -- nobody receives
        local got
        G.spawn(function() got = u:receive() end)
        G.sleep(1)
        assert.is_true(u:try_send(5))
        G.sleep(1)
        assert.are.equal(5, got)
        G.spawn(function() u:send(6) end)
        G.sleep(1)
        assert.are.same({ 6, true }, { u:try_receive() })
    end)

    it("close: a receiver drains the buffer, then gets nil, false", function()
        local ch = G.channel(3)
        ch:send(1)
        ch:send(2)
        assert.is_true(ch:close())
        assert.is_true(ch:is_closed())
        assert.are.same({ 1, true }, { ch:receive() })
        assert.are.same({ 2, true }, { ch:receive() })
        assert.are.same({ nil, false }, { ch:receive() })
        assert.are.same({ nil, false }, { ch:try_receive() })
        assert.matches("closed", tostring(ch))
    end)

    it("close twice, send after close: false and a message", function()
        local ch = G.channel(1)
        ch:close()
        assert.are.same({ false, "channel already closed" }, { ch:close() })
        assert.are.same({ false, "send on closed channel" }, { ch:send(1) })
        assert.are.same({ false, "send on closed channel" }, { ch:try_send(1) })
    end)

    it("close wakes every waiting receiver and every waiting sender", function()
        local r, s = G.channel(), G.channel()
        local got, sent = {}, {}
        for i = 1, 5 do
            G.spawn(function() got[i] = { r:receive() } end)
            G.spawn(function() sent[i] = { s:send(i) } end)
        end
        G.sleep(10)
        assert.are.same({}, got)
        assert.are.same({}, sent)
        r:close()
        s:close()
        G.sleep(1)
        for i = 1, 5 do
            assert.are.same({ nil, false }, got[i])
            assert.are.same({ false, "send on closed channel" }, sent[i])
        end
    end)

    it("range and iter end when the channel is closed and drained", function()
        local ch = G.channel()
        G.spawn(function()
            for i = 1, 5 do ch:send(i) end
            ch:close()
        end)
        local seen = {}
        ch:range(function(v) seen[#seen + 1] = v end)
        assert.are.same({ 1, 2, 3, 4, 5 }, seen)

        local c2 = G.channel(10)
        for i = 1, 3 do c2:send(i * 10) end
        c2:close()
        seen = {}
        for v in c2:iter() do seen[#seen + 1] = v end
        assert.are.same({ 10, 20, 30 }, seen)
    end)

    it("range's function may wait, and gets nil values too", function()
        local ch = G.channel(3)
        ch:send(1)
        ch:send(nil)
        ch:send(3)
        ch:close()
        local seen, n = {}, 0
        ch:range(function(v)
            G.sleep(1)
            n = n + 1
            seen[n] = v
        end)
        assert.are.equal(3, n)
        assert.are.same({ 1, nil, 3 }, seen)
        local ok, err = pcall(ch.range, ch, 42)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'range' %(function expected, got number%)", err)
        assert.has_error(function() G.channel().iter(42) end)
    end)

    it("has the channel_* module functions", function()
        local ch = G.channel(2)
        assert.is_true(G.channel_send(ch, "x"))
        assert.are.equal(1, G.channel_len(ch))
        assert.are.equal(2, G.channel_cap(ch))
        assert.are.same({ "x", true }, { G.channel_receive(ch) })
        assert.is_true(G.channel_close(ch))
        assert.are.same({ nil, false }, { G.channel_receive(ch) })
    end)

    it("100 producers x 100 consumers through one channel lose and duplicate nothing", function()
        for _, cap in ipairs({ 0, 7 }) do
            local ch = G.channel(cap)
            local seen, count = {}, 0
            local producers, consumers = G.wait_group(), G.wait_group()
            producers:add(100)
            consumers:add(100)
            for p = 1, 100 do
                G.spawn(function()
                    for i = 1, 100 do
                        assert(ch:send(p * 1000 + i))
                        if i % 17 == 0 then G.sleep(0) end
                    end
                    producers:done()
                end)
            end
            for _ = 1, 100 do
                G.spawn(function()
                    for v in ch:iter() do
                        assert(not seen[v], "duplicate " .. tostring(v))
                        seen[v] = true
                        count = count + 1
                    end
                    consumers:done()
                end)
            end
            producers:wait()
            ch:close()
            consumers:wait()
            assert.are.equal(10000, count)
            for p = 1, 100 do
                for i = 1, 100 do assert(seen[p * 1000 + i]) end
            end
        end
    end)

    it("a wait that can never end is reported as a deadlock", function()
        local ch = G.channel()
        local ok, err = pcall(ch.receive, ch)
        assert.is_false(ok)
        assert.matches("deadlock", err)
        ok, err = pcall(ch.send, ch, 1)
        assert.is_false(ok)
        assert.matches("deadlock", err)
        -- the failed waits left nothing behind
        assert.is_false(ch:try_send(1))
        assert.are.same({ nil, false }, { ch:try_receive() })
    end)

    it("a timeout cancels a goroutine blocked in receive, and the channel stays usable", function()
        local ch = G.channel()
        local ok, err = G.timeout(20, function() return ch:receive() end)
        assert.is_false(ok)
        assert.matches("timeout", err)
        -- the cancelled receiver is gone: nobody takes a value now
        assert.is_false(ch:try_send("lost?"))
        local got
        G.spawn(function() got = { ch:receive() } end)
        G.sleep(1)
        assert.is_true(ch:send("kept"))
        G.sleep(1)
        assert.are.same({ "kept", true }, got)
    end)

    it("a value handed to a receiver killed before it ran is not lost", function()
        -- the after() timer hands its value to the receiver, and the
        -- receiver's deadline, due in the same loop turn just after it,
        -- kills it before it runs: the value must then wait in the channel
        for _ = 1, 20 do
            local tick = G.after(15)
            local got
            local ok = G.timeout(15, function() got = tick:receive() end)
            if ok then
                assert.is_number(got) -- it ran in time: it has the value
            else
                local v, more = tick:try_receive()
                assert.is_true(more, "the value handed to the killed receiver was lost")
                assert.is_number(v)
                assert.are.equal(0, tick:len())
            end
        end
        -- the same for a plain channel whose sender ran from a timer
        local ch = G.channel()
        G._after_call(10, function() assert(ch:try_send("v")) end)
        local ok = G.timeout(10, function() return ch:receive() end)
        if not ok then assert.are.same({ "v", true }, { ch:try_receive() }) end
    end)

    it("a timeout cancels a blocked sender: its value never arrives", function()
        local ch = G.channel()
        local ok = G.timeout(20, function() ch:send("never") end)
        assert.is_false(ok)
        assert.are.same({ nil, false }, { ch:try_receive() })
    end)

    it("running out of memory around after() and select in a pool task raises, never crashes", function()
        -- a timer entry must never outlive its channel: after() anchors the
        -- channel before it arms the timer (a failed anchor once left the
        -- timer heap pointing at freed memory: a crash or an endless loop)
        local pool = "chan_spec_oom"
        G.pool_create(pool, { workers = 1, memory = 1024 * 1024 })
        local id = G.pool_submit(pool, function(rounds)
            local G = require("goroutine")
            local ch = G.channel()
            for round = 1, rounds do
                local hog = {}
                pcall(function() for i = 1, 1e7 do hog[i] = { i } end end) -- up to the limit
                for i = #hog, #hog - (round % 30) * 20, -1 do hog[i] = nil end
                for k = 1, 30 do
                    pcall(function()
                        local pad = {}
                        for j = 1, 64 do pad[j] = { j } end
                        local _ = G.after(2)
                        local _, _ = G.context():with_timeout(2)
                        local cases = { { channel = G.after(0), receive = true }, { channel = ch, send = k } }
                        for j = 1, 16 do cases[#cases + 1] = { channel = G.channel(1), receive = true } end
                        G.select(cases)
                    end)
                end
                hog = nil
                collectgarbage()
            end
            G.sleep(5) -- the pending timers fire
            return "survived"
        end, 30)
        assert.are.same({ true, "survived" }, { G.await(id) })
        G.pool_close(pool)
    end)

    it("a pool task whose goroutines wait forever fails with a deadlock error", function()
        local pool = "chan_spec_deadlock"
        G.pool_create(pool, { workers = 4 })
        local stuck = {
            G.pool_submit(pool, function() return require("goroutine").channel():receive() end),
            G.pool_submit(pool, function()
                local G = require("goroutine")
                local m = G.mutex()
                m:lock()
                m:lock()
            end),
            G.pool_submit(pool, function()
                local G = require("goroutine")
                local a, b = G.channel(), G.channel()
                G.spawn(function() a:send(b:receive()) end) -- waits on b, as the task waits on a
                return a:receive()
            end),
        }
        -- waits that something will end are left alone
        local fine = {
            G.pool_submit(pool, function()
                local G = require("goroutine")
                local ch = G.channel()
                G.spawn(function()
                    G.sleep(30)
                    ch:send("after a sleep")
                end)
                return ch:receive()
            end),
            G.pool_submit(pool, function()
                local G = require("goroutine")
                return (G.select_timeout(30, { { channel = G.channel(), receive = true } }))
            end),
        }
        local wg = G.wait_group()
        wg:add(1)
        local released = G.pool_submit(pool, function()
            wg:wait() -- released from here, 30 ms later
            return "released"
        end)
        G.sleep(30)
        wg:done()
        for _, id in ipairs(stuck) do
            local ok, err = G.await(id)
            assert.is_false(ok)
            assert.matches("deadlock: every goroutine of the task waits forever", err)
        end
        assert.are.same({ true, "after a sleep", true }, { G.await(fine[1]) })
        assert.are.same({ true, false }, { G.await(fine[2]) })
        assert.are.same({ true, "released" }, { G.await(released) })
        -- the VMs run the next tasks normally
        assert.are.same({ true, 42 }, { G.await(G.pool_submit(pool, function() return 42 end)) })
        G.pool_close(pool)
    end)

    it("cannot travel to a pool VM when it is an after() channel", function()
        local ch = G.after(1000)
        local pool = "chan_spec_pool"
        G.pool_create(pool, { workers = 1 })
        local id, err = G.pool_submit(pool, function() return ch end)
        assert.is_nil(id)
        assert.matches("an after() channel or a context's done() cannot travel", err, 1, true)
        id, err = G.pool_submit(pool, function(x) return x end, ch)
        assert.is_nil(id)
        assert.matches("cannot travel", err)
        -- a plain channel does (channel_pool_spec.lua)
        assert.are.same({ true, true }, { G.await(G.pool_submit(pool, function(x) return x ~= nil end, G.channel())) })
        G.pool_close(pool)
    end)
end)

describe("goroutine.select", function()
    it("takes a ready case at once and returns its index and the handler's results", function()
        local a, b = G.channel(1), G.channel(1)
        b:send("bee")
        local r = { G.select({
            { channel = a, receive = true, handler = function() return "a" end },
            { channel = b, receive = true, handler = function(v, ok) return "b", v, ok end },
        }) }
        assert.are.same({ 2, "b", "bee", true }, r)
    end)

    it("without a handler returns the index, and the value and ok of a receive", function()
        local a = G.channel(1)
        a:send(5)
        assert.are.same({ 1, 5, true }, { G.select({ { channel = a, receive = true } }) })
        local s = G.channel(1)
        assert.are.same({ 1 }, { G.select({ { channel = s, send = "x" } }) })
        assert.are.same({ "x", true }, { s:receive() })
    end)

    it("blocks until a case can proceed", function()
        local a, b = G.channel(), G.channel()
        G.spawn(function()
            G.sleep(20)
            b:send("late")
        end)
        local t0 = now()
        local i, v = G.select({ { channel = a, receive = true }, { channel = b, receive = true } })
        assert.are.equal(2, i)
        assert.are.equal("late", v)
        assert.is_true(now() - t0 >= 15)
    end)

    it("a waiting send case completes when a receiver comes", function()
        local a, b = G.channel(), G.channel()
        local got
        G.spawn(function()
            G.sleep(10)
            got = { b:receive() }
        end)
        local i = G.select({
            { channel = a, receive = true },
            { channel = b, send = "to b", handler = function() return "sent" end },
        })
        assert.are.equal(2, i)
        G.sleep(1)
        assert.are.same({ "to b", true }, got)
    end)

    it("runs default at once when nothing is ready", function()
        local a = G.channel()
        local r = { G.select({
            { channel = a, receive = true },
            { default = true, handler = function() return "idle" end },
        }) }
        assert.are.same({ 2, "idle" }, r)
        a = G.channel(1)
        a:send(1)
        assert.are.equal(1, (G.select({ { channel = a, receive = true }, { default = true } })))
    end)

    it("performs exactly one operation: the losing cases never take a value", function()
        for _ = 1, 50 do
            local a, b = G.channel(), G.channel()
            G.spawn(function()
                G.sleep(1)
                a:send("A")
            end)
            local i = G.select({ { channel = a, receive = true }, { channel = b, receive = true } })
            assert.are.equal(1, i)
            -- b's case is gone: a value sent to b now waits for a real receiver
            assert.is_false(b:try_send("B"))
            local got
            G.spawn(function() got = b:receive() end)
            G.sleep(0)
            assert.is_true(b:try_send("B2"))
            G.sleep(0)
            assert.are.equal("B2", got)
        end
    end)

    it("a send case that loses sends nothing", function()
        local a, b = G.channel(), G.channel()
        G.spawn(function()
            G.sleep(5)
            a:send(1)
        end)
        local i = G.select({ { channel = a, receive = true }, { channel = b, send = "no" } })
        assert.are.equal(1, i)
        assert.are.same({ nil, false }, { b:try_receive() })
    end)

    it("chooses uniformly among ready cases", function()
        local a, b = G.channel(1), G.channel(1)
        local counts = { 0, 0 }
        for _ = 1, 10000 do
            a:try_send(1)
            b:try_send(2)
            local i = G.select({ { channel = a, receive = true }, { channel = b, receive = true } })
            counts[i] = counts[i] + 1
        end
        assert.is_true(counts[1] > 4500 and counts[1] < 5500, "case 1 chosen " .. counts[1])
        assert.is_true(counts[2] > 4500 and counts[2] < 5500, "case 2 chosen " .. counts[2])
    end)

    it("a receive case on a closed channel is ready with nil, false", function()
        local a = G.channel()
        a:close()
        assert.are.same({ 1, nil, false },
            { G.select({ { channel = a, receive = true }, { channel = G.channel(), receive = true } }) })
        local b = G.channel()
        G.spawn(function()
            G.sleep(5)
            b:close()
        end)
        assert.are.same({ 1, "closed", false }, { G.select({
            { channel = b, receive = true, handler = function(v, ok) return v == nil and "closed", ok end },
        }) })
    end)

    it("a send case on a closed channel raises, as in Go", function()
        local a = G.channel(1)
        a:close()
        local ok, err = pcall(G.select, { { channel = a, send = 1 } })
        assert.is_false(ok)
        assert.matches("send on closed channel", err)
        local b = G.channel()
        G.spawn(function()
            G.sleep(5)
            b:close()
        end)
        ok, err = pcall(G.select, { { channel = b, send = 1 } })
        assert.is_false(ok)
        assert.matches("send on closed channel", err)
    end)

    it("refuses malformed cases", function()
        local ch = G.channel()
        local bad = {
            { "x", "table expected" },
            { { 1 }, "case 1: table expected" },
            { { {} }, "case 1: channel expected" },
            { { { channel = {} , receive = true } }, "case 1: channel expected" },
            { { { channel = ch } }, "case 1: receive = true or send = value expected" },
            { { { channel = ch, receive = true, send = 1 } }, "not both" },
            { { { default = true }, { default = true } }, "more than one default" },
            { { { default = true, channel = ch, receive = true } }, "a default case takes no channel" },
            { { { channel = ch, receive = true, handler = 3 } }, "handler must be a function" },
        }
        for _, c in ipairs(bad) do
            local ok, err = pcall(G.select, c[1])
            assert.is_false(ok)
            assert.matches(c[2], err, 1, true)
        end
    end)

    it("a deadlock in select is reported; a timeout cancels a goroutine in select", function()
        local a, b = G.channel(), G.channel()
        local ok, err = pcall(G.select, { { channel = a, receive = true }, { channel = b, send = 1 } })
        assert.is_false(ok)
        assert.matches("deadlock", err)
        ok = G.timeout(10, function()
            G.select({ { channel = a, receive = true }, { channel = b, send = 1 } })
        end)
        assert.is_false(ok)
        -- both of its cases are gone from both channels
        assert.is_false(a:try_send(1))
        assert.are.same({ nil, false }, { b:try_receive() })
    end)

    it("select {} with no case blocks: a deadlock, or a timeout", function()
        local ok, err = pcall(G.select, {})
        assert.is_false(ok)
        assert.matches("deadlock", err)
        assert.are.same({ false, "timeout" }, { G.select_timeout(5, {}) })
    end)

    it("the handler may wait, and its errors reach the caller", function()
        local a = G.channel(1)
        a:send(1)
        local i, r = G.select({ { channel = a, receive = true, handler = function(v)
            G.sleep(5)
            return v + 1
        end } })
        assert.are.equal(1, i)
        assert.are.equal(2, r)
        a:send(1)
        local ok, err = pcall(G.select, { { channel = a, receive = true, handler = function() error("boom") end } })
        assert.is_false(ok)
        assert.matches("boom", err)
    end)
end)

describe("goroutine.select_timeout", function()
    it("returns false, 'timeout' once the time passes", function()
        local a = G.channel()
        local t0 = now()
        assert.are.same({ false, "timeout" }, { G.select_timeout(30, { { channel = a, receive = true } }) })
        local dt = now() - t0
        assert.is_true(dt >= 29 and dt < 500 * TIME_FACTOR, "waited " .. dt)
        -- the timed-out case is gone
        assert.is_false(a:try_send(1))
    end)

    it("takes a case that becomes ready before the time passes", function()
        local a = G.channel()
        G.spawn(function()
            G.sleep(5)
            a:send("in time")
        end)
        assert.are.same({ 1, "in time", true }, { G.select_timeout(1000, { { channel = a, receive = true } }) })
    end)

    it("0 ms only looks", function()
        local a = G.channel(1)
        assert.are.same({ false, "timeout" }, { G.select_timeout(0, { { channel = a, receive = true } }) })
        a:send(1)
        assert.are.same({ 1, 1, true }, { G.select_timeout(0, { { channel = a, receive = true } }) })
        assert.has_error(function() G.select_timeout(-1, {}) end)
        assert.has_error(function() G.select_timeout("x", {}) end)
    end)

    it("works in goroutines too", function()
        in_goroutine(function()
            local a = G.channel()
            assert.are.same({ false, "timeout" }, { G.select_timeout(5, { { channel = a, receive = true } }) })
        end)
    end)
end)

describe("goroutine.after", function()
    it("returns a channel that receives once after ms", function()
        local t0 = now()
        local ch = G.after(20)
        assert.are.equal(1, ch:cap())
        local v, ok = ch:receive()
        assert.is_true(ok)
        assert.is_number(v)
        assert.is_true(now() - t0 >= 19)
        assert.are.same({ nil, false }, { ch:try_receive() })
    end)

    it("gives select a deadline", function()
        local work = G.channel()
        local i = G.select({
            { channel = work, receive = true },
            { channel = G.after(10), receive = true, handler = function() return "late" end },
        })
        assert.are.equal(2, i)
    end)

    it("is receive-only: its one value is the timer's", function()
        local ch = G.after(5)
        for _, f in ipairs({ ch.send, ch.try_send, ch.close }) do
            local ok, err = pcall(f, ch, 1)
            assert.is_false(ok)
            assert.matches("on a receive%-only channel", err)
        end
        local ok, err = pcall(G.select, { { channel = ch, send = 1 } })
        assert.is_false(ok)
        assert.matches("case 1: send on a receive%-only channel", err)
        assert.is_number((ch:receive()))
        assert.has_error(function() G.after(-1) end)
    end)
end)
