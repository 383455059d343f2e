-- A task whose command raises an error: it fails with the message and traceback.
local function explode(what)
    error("kaboom: " .. what)
end
task("fragile"):command(function() explode("bad input") end):build()
task("sturdy"):command(function() return true, "fine" end):build()
