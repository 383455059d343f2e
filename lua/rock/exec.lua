-- lua/rock/exec.lua: require("exec") where the exec module cannot be a link to
-- goroutine.so (a LuaRocks tree: rocks hold no symbolic links). Loads
-- luaopen_exec from the goroutine.so that require("goroutine") finds, as the
-- link would: one loaded library, so one scheduler per VM for goroutine,
-- http and exec, whichever is required first.
local path = assert(package.searchpath("goroutine", package.cpath))
return assert(package.loadlib(path, "luaopen_exec"))(...)
