-- A plain script that submits pool tasks and ends without pool_wait: the
-- process still waits for the tasks (nothing submitted is lost).
local G = require("goroutine")
G.pool_create("ff", {workers = 2})
for i = 1, 4 do G.pool_submit("ff", function() G.sleep(200) log.info("task " .. i .. " done") end) end
log.info("main chunk ends")
