-- Pool tasks run in other VMs: the runner gives them `log` too (the spec's
-- Exemplo 1 logs from inside pool tasks).
local goroutine = require("goroutine")
task("pooled"):command(function()
    goroutine.pool_create("cli_pool", { workers = 2 })
    for i = 1, 3 do
        goroutine.pool_submit("cli_pool", function()
            log.info("pool item " .. i)
            return i
        end)
    end
    goroutine.pool_wait("cli_pool")
    local stats = goroutine.pool_stats("cli_pool")
    goroutine.pool_close("cli_pool")
    return stats.completed == 3 and stats.failed == 0,
        "completed " .. stats.completed .. ", failed " .. stats.failed
end):build()
