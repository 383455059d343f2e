-- progress.lua: `mutirao run`'s progress lines on a terminal.
--
-- install(goroutine, term) wraps the module's pool_wait and the WaitGroup's wait
-- method (its metatable's): a wait that lasts longer than DELAY_MS shows, at the
-- bottom of stderr, one line per pool it waits for, redrawn every TICK_MS and
-- erased when the wait ends:
--     NAME  DONE/TOTAL  RATE/s  ETA Ns  failed N
-- DONE is completed + failed, TOTAL submitted (pool_stats(name): this process's
-- tasks), RATE the outcomes a second since the wait began. pool_wait(name) shows
-- its pool; a WaitGroup's wait the pools this run created or waited on that have
-- tasks unfinished (none: no line). The runner installs
-- it only when stderr is a terminal and the log format is not json
-- (runner.lua), so nothing changes otherwise.
local M = {}

local DELAY_MS, TICK_MS = 1000, 200
local SRC = debug.getinfo(1, "S").short_src -- this chunk, in error positions

function M.install(goroutine, term)
    local pools = {} -- name -> true: created or waited on in this run
    local order = {} -- their names, in that order
    local waits = {} -- active waits: wait -> {pool = name or nil, wg = wg or nil, t0, base}
    local shown = 0  -- lines on the screen
    local ticker     -- the channel that wakes the drawing goroutine (closed or nil: none)
    local began = 0  -- waits begun so far
    -- These functions run in goroutines, which are preempted at the start of
    -- a line and yield in pool_stats (a Redis call on the fleet): a test of
    -- ticker and what it decides are on one line, and the waits are copied
    -- before a loop that reads stats.

    local function note(name)
        if type(name) == "string" and not pools[name] then
            pools[name] = true
            order[#order + 1] = name
        end
    end

    local function stats(name)
        local ok, s = pcall(goroutine.pool_stats, name)
        if ok and type(s) == "table" then return s end
    end

    local function done_of(s) return (s.completed or 0) + (s.failed or 0) end

    local function erase()
        if shown > 0 then
            io.stderr:write(string.rep("\27[1A\27[2K", shown))
            shown = 0
        end
    end

    local function fmt_eta(s)
        if s < 60 then return string.format("%ds", math.ceil(s)) end
        if s < 3600 then return string.format("%dm%02ds", s // 60, math.floor(s % 60)) end
        return string.format("%dh%02dm", s // 3600, math.floor(s % 3600) // 60)
    end

    local function pool_line(name, s, w, now)
        local done, total = done_of(s), s.submitted or 0
        local dt = (now - w.t0) / 1000
        local base = w.base[name] or done
        local rate = dt > 0 and (done - base) / dt or 0
        local eta = "-"
        if rate > 0 and total > done then eta = fmt_eta((total - done) / rate) end
        return string.format("%s  %d/%d  %.1f/s  ETA %s  failed %d", name, done, total, rate, eta,
            s.failed or 0)
    end

    -- The lines of the waits older than DELAY_MS, one per pool.
    local function lines(now)
        local out, seen, ws = {}, {}, {}
        for w in pairs(waits) do ws[#ws + 1] = w end
        for _, w in ipairs(ws) do
            if now - w.t0 >= DELAY_MS then
                local names = {}
                if w.pool then
                    names[1] = w.pool
                else
                    for _, n in ipairs(order) do
                        local s = stats(n)
                        if s and done_of(s) < (s.submitted or 0) then names[#names + 1] = n end
                    end
                end
                for _, n in ipairs(names) do
                    local s = not seen[n] and stats(n)
                    if s then
                        seen[n] = true
                        out[#out + 1] = pool_line(n, s, w, now)
                    end
                end
            end
        end
        table.sort(out)
        return out
    end

    local function draw()
        local cols = term.columns()
        local out = lines(goroutine.now())
        local buf = { string.rep("\27[1A\27[2K", shown) }
        for i, l in ipairs(out) do
            if #l >= cols then l = l:sub(1, cols - 1) end
            buf[i + 1] = l .. "\n"
        end
        io.stderr:write(table.concat(buf))
        shown = #out
    end

    -- Whether there is something to show: a pool_wait, or a WaitGroup's wait
    -- while a pool has tasks unfinished (a wait on nothing else draws nothing,
    -- and the drawing goroutine's timer must not keep a deadlock alive).
    local function wanted()
        local wg = false
        for w in pairs(waits) do
            if w.pool then return true end
            wg = true
        end
        if not wg then return false end
        for _, n in ipairs(order) do
            local s = stats(n)
            if s and done_of(s) < (s.submitted or 0) then return true end
        end
        return false
    end

    local function start_ticker()
        if ticker and not ticker:is_closed() then return end local ch = goroutine.channel() ticker = ch
        goroutine.spawn(function()
            while true do
                local now, first = goroutine.now(), math.huge
                for w in pairs(waits) do first = math.min(first, w.t0) end
                local due = first + DELAY_MS
                goroutine.select_timeout(now < due and due - now or TICK_MS,
                    { { channel = ch, receive = true } })
                if ch:is_closed() then break end
                local n = began
                -- a wait begun while wanted() read the stats keeps it going
                if not wanted() and n == began then ch:close() erase() break end
                if ch:is_closed() then break end
                pcall(draw)
            end
        end)
    end

    local function stop_ticker()
        if next(waits) == nil and ticker then ticker:close() end -- a second close does nothing
    end

    -- One wait of pool (or of the WaitGroup wg) begins: a to-be-closed value
    -- that ends it, however the wait ends (returns, raises, is killed).
    local function watched(pool, wg)
        local base = {}
        for _, n in ipairs(order) do
            local s = stats(n)
            if s then base[n] = done_of(s) end
        end
        local w = { pool = pool, wg = wg, t0 = goroutine.now(), base = base }
        waits[w] = true began = began + 1
        start_ticker()
        return setmetatable({}, { __close = function()
            waits[w] = nil
            erase()
            if next(waits) then pcall(draw) else stop_ticker() end
        end })
    end

    -- The wrappers call the functions through locals of their own names (an
    -- argument error still names pool_create, pool_wait, wait) under a pcall
    -- whose error, when it is positioned at the wrapper's call, is given the
    -- caller's position instead: the messages are those of a direct call.
    local function guarded(inner)
        return function(...)
            local r = table.pack(pcall(inner, ...))
            if r[1] then return table.unpack(r, 2, r.n) end
            local e = r[2]
            if type(e) == "string" and e:sub(1, #SRC) == SRC then
                local rest = e:match("^:%d+: (.*)$", #SRC + 1)
                if rest then
                    local info = debug.getinfo(2, "Sl")
                    local at = info and info.currentline > 0 and
                        (info.short_src .. ":" .. info.currentline .. ": ") or ""
                    e = at .. rest
                end
            end
            error(e, 0)
        end
    end

    local pool_create, pool_wait = goroutine.pool_create, goroutine.pool_wait
    goroutine.pool_create = guarded(function(...)
        note((...))
        local r = table.pack(pool_create(...))
        return table.unpack(r, 1, r.n)
    end)
    goroutine.pool_wait = guarded(function(...)
        local name = ...
        if type(name) ~= "string" then
            local r = table.pack(pool_wait(...))
            return table.unpack(r, 1, r.n)
        end
        note(name)
        local _ <close> = watched(name, nil)
        return pool_wait(...)
    end)
    local methods = getmetatable(goroutine.wait_group()).__index
    local wait = methods.wait
    methods.wait = guarded(function(...)
        local _ <close> = watched(nil, (...))
        return wait(...)
    end)
end

return M
