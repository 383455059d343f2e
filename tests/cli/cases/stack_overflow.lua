-- A plain script: a stack overflow caught by pcall in the main chunk, then a
-- stack overflow in a goroutine. The goroutine's error is reported like any
-- other and the script ends (this once spun at 100% CPU forever).
local goroutine = require("goroutine")
local function f() return f() + 1 end
print(pcall(f))
goroutine.spawn(function() f() end)
goroutine.sleep(100)
print("end")
