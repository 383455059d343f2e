-- A goroutine spawned by a task fails: the error is logged (goroutine id, task,
-- traceback) and the task and the process carry on.
local goroutine = require("goroutine")
task("resilient"):command(function()
    goroutine.spawn(function()
        goroutine.sleep(10)
        error("worker exploded")
    end)
    goroutine.sleep(50)
    print("task still running after the goroutine failed")
    return true, "survived"
end):build()
