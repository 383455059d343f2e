-- http and exec are globals of task files and of pool VMs, and the same
-- tables as require("http") / require("exec").
local t = task("globals")
    :command(function(this, params)
        assert(type(http) == "table" and http == require("http"), "http global")
        assert(type(exec) == "table" and exec == require("exec"), "exec global")
        assert(type(http.get) == "function" and type(exec.run) == "function")
        local goroutine = require("goroutine")
        goroutine.pool_create("io", { workers = 2 })
        local id = goroutine.pool_submit("io", function()
            return type(http.get) .. " " .. exec.run({ "echo", "from the pool" }).stdout
        end)
        local ok, v = goroutine.await(id)
        goroutine.pool_close("io")
        assert(ok, v)
        print("pool task: " .. v:gsub("\n$", ""))
        return true, "globals ok"
    end)
    :build()
