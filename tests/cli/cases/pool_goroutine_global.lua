-- A task file uses the global `goroutine` without a require (the spec's
-- snippets do); its pool tasks, in other VMs, have it too.
goroutine.pool_create("cli_global", { workers = 2 })
local wg = goroutine.wait_group()
wg:add(1)
local id = goroutine.pool_submit("cli_global", function()
    goroutine.sleep(10)
    wg:done()
    return "pool task has " .. type(goroutine.spawn)
end)
wg:wait()
print(goroutine.await(id))
