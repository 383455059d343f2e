-- examples/release.lua: the task file of the README (section "Running task
-- files"): one task in a workflow named release, reading params.env.
--   build/bin/mutirao run examples/release.lua --workflow release --param env=prod
local deploy = task("deploy")
    :description("deploy to every server at once")
    :command(function(this, params)
        local goroutine = require("goroutine")
        local h = goroutine.async(function() goroutine.sleep(200) return "ok" end)
        local ok, v = goroutine.await(h)
        log.info(this:name(), "got", v, "for", params.env or "dev")
        return ok, "deployed", { value = v }     -- ok, message, data
    end)
    :timeout("30s")
    :build()

workflow.define("release"):description("ship it"):version("1.0.0")
    :tasks({ deploy }):config({ timeout = "5m" })
