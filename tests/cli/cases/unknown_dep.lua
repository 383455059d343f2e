-- A dependency that is not in the workflow.
local a = task("a"):depends_on({ "ghost" }):command(function() print("a ran") end):build()
workflow.define("w"):tasks({ a })
