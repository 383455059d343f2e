-- A plain script whose error escapes: exit 1 with message and traceback.
local goroutine = require("goroutine")
goroutine.sleep(10)
log.info("main chunk here")
local function inner() error("script blew up") end
inner()
