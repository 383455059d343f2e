-- select: wait on several channels at once, with a deadline.
-- Two sources tick at different rates; select takes whichever is ready
-- (at random when both are), `goroutine.after` gives the loop a deadline,
-- and a `default` case polls without waiting.
local goroutine = require("goroutine")

local fast, slow = goroutine.channel(), goroutine.channel()
local stop = goroutine.channel()

goroutine.spawn(function()
    for i = 1, 100 do
        -- a send case: gives up as soon as stop is closed
        local chosen = goroutine.select({
            { channel = fast, send = i },
            { channel = stop, receive = true },
        })
        if chosen == 2 then return end
        goroutine.sleep(20)
    end
end)
goroutine.spawn(function()
    for i = 1, 100 do
        if goroutine.select({ { channel = slow, send = i }, { channel = stop, receive = true } }) == 2 then
            return
        end
        goroutine.sleep(70)
    end
end)

local got = { fast = 0, slow = 0 }
local deadline = goroutine.after(300)
local running = true
while running do
    goroutine.select({
        { channel = fast, receive = true, handler = function() got.fast = got.fast + 1 end },
        { channel = slow, receive = true, handler = function() got.slow = got.slow + 1 end },
        { channel = deadline, receive = true, handler = function() running = false end },
    })
end
stop:close() -- wakes both sources' selects
print(string.format("in 300 ms: %d from fast, %d from slow", got.fast, got.slow))

-- a poll: nothing is ready, so default runs at once
local idle = goroutine.channel()
goroutine.select({
    { channel = idle, receive = true },
    { default = true, handler = function() print("nothing ready: default ran") end },
})
-- and select_timeout returns false, "timeout" when its time passes first
print(goroutine.select_timeout(50, { { channel = idle, receive = true } }))
