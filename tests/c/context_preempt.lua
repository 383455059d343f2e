-- context_preempt.lua: a context cancelled by a goroutine that is preempted
-- while it cancels, with other goroutines of its VM deriving children from
-- the same context meanwhile: every child is cancelled. Run by
-- mutirao-test-lua on one pool VM with a 1 ms slice (pool.cmake), so that
-- the cancelling goroutine is preempted inside context.lua's loops; before
-- the fix some children were never cancelled (c.sync_threads section 7
-- hung on one now and then under TSan). Plain asserts; exits non-zero on
-- failure.
local G = require("goroutine")

local H = dofile((arg[0]:match("^(.*/)") or "./") .. "threads_helpers.lua")
local check, ok = H.check, H.ok

G.pool_create("cp", { workers = 1000 })
local N = 300
for it = 1, 10 do
    local ctx = G.context():with_cancel()
    local ids = {}
    for t = 1, N do
        ids[t] = G.pool_submit("cp", function()
            local G = require("goroutine")
            local child = ctx:with_cancel()
            if t == N // 2 then ctx:cancel() end
            -- (a child left out waits for the timer: the test fails, not hangs)
            G.select({ { channel = child:done(), receive = true },
                { channel = G.after(2000), receive = true } })
            return child:err()
        end)
    end
    local missed = 0
    for _, id in ipairs(ids) do
        if ok(id) ~= "context canceled" then missed = missed + 1 end
    end
    check(missed == 0, ("iteration %d: %d of %d children not cancelled"):format(it, missed, N))
end
G.pool_close("cp")
print("context_preempt: ok")
