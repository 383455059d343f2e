-- goroutine.pipeline, fan_out and fan_in, on channels.
local G = require("goroutine")

local function source(values, n)
    local ch = G.channel()
    G.spawn(function()
        for i = 1, n or #values do ch:send(values[i]) end
        ch:close()
    end)
    return ch
end

local function drain(ch)
    local got = {}
    ch:range(function(v) got[#got + 1] = v end)
    return got
end

describe("goroutine.pipeline", function()
    it("runs each value through every stage, one worker keeping the order", function()
        local out = G.pipeline(source({ 1, 2, 3, 4, 5 }), {
            { workers = 1, fn = function(x) return x * 10 end },
            { fn = function(x) return x + 1 end },
        })
        assert.are.same({ 11, 21, 31, 41, 51 }, drain(out))
        assert.is_true(out:is_closed())
    end)

    it("runs a stage's workers at once, each value once", function()
        local running, most = 0, 0
        local values = {}
        for i = 1, 40 do values[i] = i end
        local out = G.pipeline(source(values), {
            { workers = 8, fn = function(x)
                running = running + 1
                if running > most then most = running end
                G.sleep(5)
                running = running - 1
                return x
            end },
        })
        local got = drain(out)
        table.sort(got)
        assert.are.same(values, got)
        assert.are.equal(8, most)
    end)

    it("reports a stage's error, drops that value, and goes on", function()
        local reported = {}
        G._set_error_handler(function(err) reported[#reported + 1] = tostring(err) end)
        local out, stats = G.pipeline(source({ 1, 2, 3, 4 }), {
            { fn = function(x)
                if x == 3 then error("three is bad") end
                return x
            end },
        })
        local got = drain(out)
        G._set_error_handler(nil)
        assert.are.same({ 1, 2, 4 }, got)
        assert.are.equal(1, stats.errors)
        assert.are.equal(1, #reported)
        assert.matches("pipeline stage 1: .*three is bad", reported[1])
        assert.matches("stack traceback", reported[1])
    end)

    it("carries nil values", function()
        local out = G.pipeline(source({ 1, nil, 3 }, 3), { { fn = function(x) return x end } })
        local got, n = {}, 0
        out:range(function(v)
            n = n + 1
            got[n] = v
        end)
        assert.are.equal(3, n)
        assert.are.same({ 1, nil, 3 }, got)
    end)

    it("refuses bad arguments", function()
        local ch = G.channel()
        for _, args in ipairs({
            { {}, { { fn = print } }, "channel expected" },
            { ch, {}, "list of stages" },
            { ch, { { fn = 1 } }, "stage 1: fn must be a function" },
            { ch, { { fn = print, workers = 0 } }, "stage 1: workers" },
            { ch, { { fn = print, workers = 1.5 } }, "stage 1: workers" },
        }) do
            local ok, err = pcall(G.pipeline, args[1], args[2])
            assert.is_false(ok)
            assert.matches(args[3], err, 1, true)
        end
    end)
end)

describe("goroutine.fan_out", function()
    it("shares the values: each goes to exactly one output", function()
        local values = {}
        for i = 1, 300 do values[i] = i end
        local outs = G.fan_out(source(values), 3)
        assert.are.equal(3, #outs)
        local seen, per = {}, { 0, 0, 0 }
        local wg = G.wait_group()
        for k = 1, 3 do
            wg:add(1)
            G.spawn(function()
                outs[k]:range(function(v)
                    assert(not seen[v], "value sent twice: " .. v)
                    seen[v] = true
                    per[k] = per[k] + 1
                    G.sleep(0)
                end)
                wg:done()
            end)
        end
        wg:wait()
        for i = 1, 300 do assert.is_true(seen[i]) end
        assert.are.equal(300, per[1] + per[2] + per[3])
        for k = 1, 3 do assert.is_true(per[k] > 0, "output " .. k .. " got nothing") end
    end)

    it("a value goes to whichever output is ready: a busy reader does not hold the others up", function()
        local values = {}
        for i = 1, 20 do values[i] = i end
        local outs = G.fan_out(source(values), 2)
        local fast = 0
        G.spawn(function() outs[1]:range(function() G.sleep(1000) end) end) -- slow
        outs[2]:range(function() fast = fast + 1 end)
        assert.is_true(fast >= 18, "fast reader got " .. fast)
    end)

    it("closes every output when the input is closed and drained", function()
        local outs = G.fan_out(source({}), 2)
        assert.are.same({ nil, false }, { outs[1]:receive() })
        assert.are.same({ nil, false }, { outs[2]:receive() })
        assert.has_error(function() G.fan_out(G.channel(), 0) end)
        assert.has_error(function() G.fan_out({}, 2) end)
    end)
end)

describe("goroutine.fan_in", function()
    it("merges every value of every input and closes once all are closed", function()
        local a = source({ 1, 2, 3 })
        local b = source({ 10, 20 })
        local c = source({})
        local got = drain(G.fan_in({ a, b, c }))
        table.sort(got)
        assert.are.same({ 1, 2, 3, 10, 20 }, got)
    end)

    it("refuses bad arguments", function()
        assert.has_error(function() G.fan_in({}) end)
        assert.has_error(function() G.fan_in({ G.channel(), 3 }) end)
        assert.has_error(function() G.fan_in(nil) end)
    end)
end)
