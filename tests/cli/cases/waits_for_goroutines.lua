-- The command returns at once but spawned goroutines still work for 500 ms: the
-- task ends only when they have ended, so "check" sees their results.
local goroutine = require("goroutine")
local shared = { done = 0 }

local fanout = task("fanout")
    :command(function()
        for i = 1, 3 do
            goroutine.spawn(function()
                goroutine.sleep(500)
                shared.done = shared.done + 1
            end)
        end
        return true, "spawned 3"
    end)
    :build()

local check = task("check")
    :depends_on({ fanout })
    :command(function()
        print("goroutines done: " .. shared.done)
        return shared.done == 3, "saw " .. shared.done
    end)
    :build()

workflow.define("fanout"):tasks({ fanout, check })
