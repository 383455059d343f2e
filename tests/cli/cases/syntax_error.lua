-- Not valid Lua: the runner reports file:line in one line, exit 2.
local x = = 1
