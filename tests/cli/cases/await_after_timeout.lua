-- A pool task outlives the timeout() that submitted it; the main chunk then
-- awaits it: that is pending work, not a deadlock (the task ends 150 ms
-- after the timeout).
local g = require("goroutine")
g.pool_create("slow", { workers = 1 })
local id
print("timeout:", g.timeout(50, function()
    id = g.pool_submit("slow", function()
        require("goroutine").sleep(200)
        return "late result"
    end)
    g.sleep(1000)
end))
print("await:", g.await(id))
