-- pool_timeout_close.lua: a pool task killed by its timeout has run its
-- goroutines' <close> handlers by the time its outcome arrives: awaiting it
-- is enough to see what they undid (a mutex they unlocked). Run by
-- mutirao-test-lua (pool.cmake). Before the fix the outcome was sent first
-- and the goroutines killed after, so a submitter could find the mutex
-- still held (c.sync_threads section 6 failed now and then under TSan);
-- here the handler takes 30 ms, so that order failed every time. Plain
-- asserts; exits non-zero on failure.
local G = require("goroutine")

local H = dofile((arg[0]:match("^(.*/)") or "./") .. "threads_helpers.lua")
local check = H.check

G.pool_create("ptc", { workers = 2, timeout = 5 })
for round = 1, 5 do
    local mu = G.mutex()
    local ids = {}
    for t = 1, 2 do
        ids[t] = G.pool_submit("ptc", function()
            local G = require("goroutine")
            -- (a slow handler: the outcome must wait for it)
            local guard = setmetatable({}, { __close = function()
                local t0 = os.clock()
                while os.clock() - t0 < 0.03 do end
                mu:unlock()
            end })
            -- (the first task locks; the second waits for it, killed too)
            mu:lock() local held <close> = guard
            G.sleep(60000)
        end)
    end
    for t, id in ipairs(ids) do
        local okk, err = G.await(id)
        check(not okk and tostring(err):find("timeout", 1, true),
            ("round %d task %d: a timeout expected, got %s"):format(round, t, tostring(err)))
    end
    check(mu:try_lock(), ("round %d: the outcomes came before the <close> handlers ran"):format(round))
    mu:unlock()
end
G.pool_close("ptc")
print("pool_timeout_close: ok")
