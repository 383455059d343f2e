-- A real deadlock is still one: the pool task that captured the WaitGroup
-- ended without calling done(), and nothing else can.
local g = require("goroutine")
g.pool_create("forgetful", { workers = 1 })
local wg = g.wait_group()
wg:add(1)
local id = g.pool_submit("forgetful", function()
    local _ = wg
    return "forgot done()"
end)
print("await:", g.await(id))
wg:wait()
print("unreachable")
