-- A task whose command spins on the CPU (inside pcall, too) while a goroutine it
-- spawned would write a file after 1 s: the 300 ms timeout cancels both. The
-- second task keeps the process alive past that 1 s so the test can check that
-- the file was never written.
local goroutine = require("goroutine")

local spin = task("spin")
    :timeout("300ms")
    :command(function(this, params)
        goroutine.spawn(function()
            goroutine.sleep(1000)
            local f = assert(io.open(params.marker, "w"))
            f:write("written after the deadline\n")
            f:close()
        end)
        pcall(function()
            local n = 0
            while true do n = n + 1 end
        end)
        print("unreachable: the loop ended")
        return true
    end)
    :build()

local linger = task("linger")
    :command(function()
        goroutine.sleep(1500)
        return true, "waited past the marker's time"
    end)
    :build()

workflow.define("timeouts"):tasks({ spin, linger })
