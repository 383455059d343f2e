-- A plain script: a spawned goroutine fails, the script still ends normally.
local goroutine = require("goroutine")
goroutine.spawn(function() error("background failure") end)
goroutine.sleep(20)
print("main chunk finished")
