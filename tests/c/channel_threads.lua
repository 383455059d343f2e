-- channel_threads.lua: channels shared between VM threads, run by
-- mutirao-test-lua (also under TSan): producers and consumers on several
-- pool VMs and the main VM, selects racing for the same values, a close
-- racing sends and receives, receivers killed by timeouts while values
-- arrive. Plain asserts; exits non-zero on failure.
local G = require("goroutine")

local H = dofile((arg[0]:match("^(.*/)") or "./") .. "threads_helpers.lua")
local check, ok = H.check, H.ok

-- Counts distinct values: the lists each task returned (ids), then what a
-- channel still holds (drain); raises on a value seen twice.
local function tally(seen, ids, drain)
    local n = 0
    local function add(v)
        check(not seen[v], "duplicate " .. tostring(v))
        seen[v] = true
        n = n + 1
    end
    for _, id in ipairs(ids or {}) do
        for _, v in ipairs(ok(id)) do add(v) end
    end
    if drain then
        local v, okk = drain:try_receive()
        while okk do
            add(v)
            v, okk = drain:try_receive()
        end
    end
    return n
end

G.pool_create("ct", { workers = 64 })

-- 1. producers and consumers on pool VMs, unbuffered and buffered
for _, cap in ipairs({ 0, 1, 16 }) do
    local ch = G.channel(cap)
    local P, C, K = 8, 8, 300
    local prods, cons = {}, {}
    for p = 1, P do
        prods[p] = G.pool_submit("ct", function()
            for i = 1, K do assert(ch:send(p * 100000 + i)) end
        end)
    end
    for c = 1, C do
        cons[c] = G.pool_submit("ct", function()
            local got = {}
            for v in ch:iter() do got[#got + 1] = v end
            return got
        end)
    end
    for _, id in ipairs(prods) do ok(id) end
    ch:close()
    local n = tally({}, cons)
    check(n == P * K, ("cap %d: %d of %d"):format(cap, n, P * K))
end

-- 2. selects on pool VMs racing for values of two channels, plus the main
-- VM receiving from one of them
do
    local a, b = G.channel(), G.channel(4)
    local K = 500
    local sel = {}
    for w = 1, 6 do
        sel[w] = G.pool_submit("ct", function()
            local G = require("goroutine")
            local got = {}
            while true do
                local _, v = G.select({
                    { channel = a, receive = true, handler = function(v, okk) return okk and v end },
                    { channel = b, receive = true, handler = function(v, okk) return okk and v end },
                })
                if not v then return got end
                got[#got + 1] = v
            end
        end)
    end
    local senders = {
        G.pool_submit("ct", function() for i = 1, K do a:send(i) end end),
        G.pool_submit("ct", function() for i = 1, K do b:send(-i) end end),
    }
    local mine = {}
    local h = G.async(function()
        for v in a:iter() do mine[#mine + 1] = v end
    end)
    for _, id in ipairs(senders) do ok(id) end
    a:close()
    G.await(h)
    local seen = {}
    for _, v in ipairs(mine) do seen[v] = true end
    local n = #mine + tally(seen, sel, b)
    check(n == 2 * K, ("select race: %d of %d"):format(n, 2 * K))
end

-- 3. close racing senders and receivers on several VMs: every send that
-- reported success is received exactly once
for round = 1, 5 do
    local ch = G.channel(round % 2)
    local sends, recvs = {}, {}
    for p = 1, 6 do
        sends[p] = G.pool_submit("ct", function()
            local n = 0
            for i = 1, 1000 do
                if not ch:send(p * 10000 + i) then break end
                n = n + 1
            end
            return n
        end)
    end
    for c = 1, 6 do
        recvs[c] = G.pool_submit("ct", function()
            local got = {}
            for v in ch:iter() do got[#got + 1] = v end
            return got
        end)
    end
    G.sleep(2 + round)
    ch:close()
    local sent = 0
    for _, id in ipairs(sends) do sent = sent + ok(id) end
    local n = tally({}, recvs, ch) -- (and a value buffered before the close)
    check(n == sent, ("close race %d: sent %d, received %d"):format(round, sent, n))
end

-- 4. receivers killed by timeouts while pool VMs send: no value lost
do
    local ch = G.channel()
    local sender = G.pool_submit("ct", function()
        local n = 0
        for i = 1, 2000 do if ch:send(i) then n = n + 1 end end
        return n
    end)
    local got = 0
    local wg = G.wait_group()
    for _ = 1, 200 do
        wg:add(1)
        G.spawn(function()
            G.timeout(1, function()
                while true do
                    ch:receive()
                    got = got + 1
                end
            end)
            wg:done()
        end)
    end
    wg:wait()
    while true do
        local no, v = G.select_timeout(500, { { channel = ch, receive = true } })
        if no == false then break end
        got = got + 1
    end
    check(ok(sender) == got, "timeouts lost values")
end

G.pool_close("ct")
print("channel_threads: ok")
