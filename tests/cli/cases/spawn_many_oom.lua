-- A plain script run with little memory (cli_test.py limits its address
-- space): spawn_many runs out of memory part-way. pcall catches it, none of
-- the goroutines run, the state stays usable; uncaught, it is an ordinary
-- error of the main chunk (this once aborted with an unprotected error).
local goroutine = require("goroutine")
local ran = 0
local ok, err = pcall(goroutine.spawn_many, 1000000, function() ran = ran + 1 end)
print(ok, err)
goroutine.sleep(10)
print("ran", ran)
local wg = goroutine.wait_group()
wg:add(3)
goroutine.spawn_many(3, function()
    ran = ran + 1
    wg:done()
end)
wg:wait()
print("usable", ran)
goroutine.spawn_many(1000000, function() end)
print("unreachable")
