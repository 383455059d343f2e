-- The workflow's config timeout (400ms) cuts the second task short; the third
-- never starts.
local goroutine = require("goroutine")
local quick = task("quick"):command(function() return true end):build()
local slow = task("slow"):command(function() goroutine.sleep(3000) print("slow finished") end):build()
local after = task("after"):command(function() print("after ran") end):build()
workflow.define("bounded"):tasks({ quick, slow, after }):config({ timeout = "400ms" })
