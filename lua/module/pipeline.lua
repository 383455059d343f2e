-- pipeline.lua: goroutine.pipeline, fan_out and fan_in, on channels, for the
-- goroutines of one VM. Embedded into the module; run once per VM with the
-- module table.
--
-- Output order: a stage with one worker keeps its input's order; with more
-- workers values leave in the order they finish. A stage function that
-- raises is reported through the runtime's log (with its traceback, as a
-- goroutine's error is) and counted in the pipeline's `errors`; that value
-- goes no further and the pipeline goes on. Each output channel is closed
-- once its inputs are closed and drained.
local G = ...
local channel, spawn, wait_group = G.channel, G.spawn, G.wait_group
local report = G._report_error
local type, error, ipairs, xpcall, traceback = type, error, ipairs, xpcall, debug.traceback

local function is_channel(v)
    return type(v) == "userdata" and (getmetatable(v) or {}).__name == "goroutine.Channel"
end

local function arg_error(n, fname, msg)
    error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function callable(f)
    return type(f) == "function" or type((getmetatable(f) or {}).__call) == "function"
end

-- spawns fn as one of wg's goroutines: done() even when a timeout kills it
local function spawn_counted(wg, fn)
    wg:add(1)
    spawn(function()
        local _ <close> = setmetatable({}, { __close = function() wg:done() end })
        fn()
    end)
end

-- closes out once every goroutine of wg has ended
local function close_after(wg, out)
    spawn(function()
        wg:wait()
        out:close()
    end)
end

local function handler(e)
    if type(e) == "string" then return traceback(e, 2) end
    return e
end

-- pipeline(in_ch, {{workers = n, fn = f}, ...}) -> out channel, stats
function G.pipeline(input, stages)
    if not is_channel(input) then arg_error(1, "pipeline", "channel expected, got " .. type(input)) end
    if type(stages) ~= "table" or #stages == 0 then
        arg_error(2, "pipeline", "a list of stages {workers = n, fn = f} expected")
    end
    for i, st in ipairs(stages) do
        if type(st) ~= "table" or not callable(st.fn) then
            arg_error(2, "pipeline", ("stage %d: fn must be a function"):format(i))
        end
        local w = st.workers
        if w ~= nil and (math.type(w) ~= "integer" or w < 1 or w > 100000) then
            arg_error(2, "pipeline", ("stage %d: workers must be an integer from 1 to 100000"):format(i))
        end
    end
    local stats = { errors = 0 }
    local src = input
    for i, st in ipairs(stages) do
        local out, fn, wg = channel(), st.fn, wait_group()
        local from = src
        for _ = 1, st.workers or 1 do
            spawn_counted(wg, function()
                while true do
                    local v, more = from:receive()
                    if not more then break end
                    local ok, r = xpcall(fn, handler, v)
                    if ok then
                        out:send(r)
                    else
                        stats.errors = stats.errors + 1
                        report(("pipeline stage %d: %s"):format(i, tostring(r)))
                    end
                end
            end)
        end
        close_after(wg, out)
        src = out
    end
    return src, stats
end

-- fan_out(ch, n) -> n channels that share ch's values: each value goes to
-- exactly one of them, whichever is ready to receive first (a nil value to
-- the first one).
function G.fan_out(input, n)
    if not is_channel(input) then arg_error(1, "fan_out", "channel expected, got " .. type(input)) end
    if math.type(n) ~= "integer" or n < 1 or n > 4096 then
        arg_error(2, "fan_out", "an integer from 1 to 4096 expected")
    end
    local outs, cases = {}, {}
    for i = 1, n do
        outs[i] = channel()
        cases[i] = { channel = outs[i], send = false }
    end
    spawn(function()
        while true do
            local v, more = input:receive()
            if not more then break end
            if v == nil then
                outs[1]:send(nil) -- (a select case cannot send nil)
            else
                for i = 1, n do cases[i].send = v end
                G.select(cases)
            end
        end
        for i = 1, n do outs[i]:close() end
    end)
    return outs
end

-- fan_in({ch, ...}) -> one channel with every value of every input, closed
-- once they all are.
function G.fan_in(inputs)
    if type(inputs) ~= "table" or #inputs == 0 then
        arg_error(1, "fan_in", "a list of channels expected")
    end
    for i, ch in ipairs(inputs) do
        if not is_channel(ch) then arg_error(1, "fan_in", ("element %d: channel expected"):format(i)) end
    end
    local out, wg = channel(), wait_group()
    for _, ch in ipairs(inputs) do
        spawn_counted(wg, function() ch:range(function(v) out:send(v) end) end)
    end
    close_after(wg, out)
    return out
end
