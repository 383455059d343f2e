-- os.exit in a pool task fails that task; the process goes on.
local g = require("goroutine")
g.pool_create("exiting", { workers = 1 })
local id = g.pool_submit("exiting", function() os.exit(3) end)
print("await:", g.await(id))
local id2 = g.pool_submit("exiting", function()
    local ok, err = pcall(os.exit, true)
    return ok, err ~= nil
end)
print("caught:", g.await(id2))
print("after:", g.await(g.pool_submit("exiting", function() return "next task runs" end)))
