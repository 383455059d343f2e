-- x -> y -> z -> x: rejected before anything runs.
local x = task("x"):depends_on({ "z" }):command(function() print("x ran") end):build()
local y = task("y"):depends_on({ x }):command(function() print("y ran") end):build()
local z = task("z"):depends_on({ y }):command(function() print("z ran") end):build()
local w = task("w"):command(function() print("w ran") end):build()
workflow.define("loop"):tasks({ w, x, y, z })
