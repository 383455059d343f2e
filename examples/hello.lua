-- Three goroutines sleep concurrently; wg:wait() returns when all are done.
local goroutine = require("goroutine")
local wg = goroutine.wait_group()
for i = 1, 3 do
    wg:add(1)
    goroutine.spawn(function()
        goroutine.sleep(100 * i)
        print("hello from goroutine " .. i)
        wg:done()
    end)
end
wg:wait()
print("all 3 goroutines finished")
