-- Contexts and error groups: three fetches share a deadline; the first
-- failure cancels the others, which stop at their next select.
local goroutine = require("goroutine")

-- one "fetch": takes `ms`, unless its context is cancelled first
local function fetch(ctx, name, ms, fail)
    local i = goroutine.select({
        { channel = goroutine.after(ms), receive = true },
        { channel = ctx:done(), receive = true },
    })
    if i == 2 then
        print(string.format("%s: stopped (%s)", name, ctx:err()))
        return
    end
    if fail then error(name .. ": upstream answered 503", 0) end
    print(name .. ": done")
end

local root = goroutine.context()
local ctx = root:with_timeout(500) -- the whole batch gets half a second
local group, gctx = goroutine.errgroup(ctx)
group:go(fetch, gctx, "users", 50)
group:go(fetch, gctx, "orders", 100, true) -- fails after 100 ms
group:go(fetch, gctx, "invoices", 300)     -- cancelled by that failure
local ok, err = group:wait()
print("group:", ok, err)

-- a deadline on its own: the context's done() closes when it passes
local slow = root:with_timeout(50)
goroutine.select({ { channel = slow:done(), receive = true } })
print("slow:", slow:err())
