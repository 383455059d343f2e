-- A pool task starts goroutines that outlive it and call wg:done() on a
-- WaitGroup the main chunk waits on: their VM still works for this one.
local g = require("goroutine")
g.pool_create("spawner", { workers = 2 })
local wg = g.wait_group()
wg:add(3)
local id = g.pool_submit("spawner", function()
    for i = 1, 3 do
        g.spawn(function()
            g.sleep(100 + 50 * i)
            wg:done()
        end)
    end
    return "task returned"
end)
print("await:", g.await(id))
wg:wait()
print("all done:", wg:count())
