-- context_done_preempt.lua: goroutines of one VM asking contexts for their
-- done() channel for the first time at once (two calls per context), with
-- 1 ms slices (pool.cmake) so that they are preempted inside done() now and
-- then: every channel done() gave is closed by the context's cancel().
-- Before the fix, a goroutine preempted between done()'s look-up and its
-- store replaced the channel another goroutine had just been given, which
-- no cancellation closed (a select on it hung): 8-12 of 400,000 calls
-- in each of 5 runs. Plain asserts; exits non-zero on failure.
local G = require("goroutine")

local N, M, ROUNDS = 8, 50000, 4 -- goroutines; contexts per round; rounds
local lost, calls = 0, 0
for _ = 1, ROUNDS do
    local ctxs, got, k = {}, {}, 0
    for i = 0, M do ctxs[i] = G.context() end
    local wg = G.wait_group()
    for _ = 1, N do
        wg:add(1)
        G.spawn(function()
            while true do
                k = k + 1
                local j = k -- (a preempted goroutine may skip one: got[j] nil)
                if j > 2 * M then break end
                got[j] = ctxs[j >> 1]:done()
            end
            wg:done()
        end)
    end
    wg:wait()
    for j = 1, 2 * M do
        ctxs[j >> 1]:cancel()
        if got[j] then
            calls = calls + 1
            if G.select({ { channel = got[j], receive = true }, { default = true } }) ~= 1 then
                lost = lost + 1
            end
        end
    end
    ctxs, got = nil, nil
    collectgarbage()
end
assert(lost == 0, ("%d of %d done() channels not closed by cancel()"):format(lost, calls))
print(("context_done_preempt: ok (%d done() calls)"):format(calls))
