-- a fails; b depends on a (skipped); c depends on b (skipped); d is independent.
local a = task("a"):command(function() return false, "a broke" end):build()
local b = task("b"):depends_on({ a }):command(function() print("b ran") end):build()
task("c"):depends_on({ "b" }):command(function() print("c ran") end):build()
task("d"):command(function(this) print("d ran: " .. this:name()) return true, "d fine" end):build()
workflow.define("deps"):tasks({ a, b, "c", "d" })
