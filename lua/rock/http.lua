-- lua/rock/http.lua: require("http") where the http module cannot be a link to
-- goroutine.so (a LuaRocks tree: rocks hold no symbolic links). Loads
-- luaopen_http from the goroutine.so that require("goroutine") finds, as the
-- link would: one loaded library, so one scheduler per VM for goroutine,
-- http and exec, whichever is required first.
local path = assert(package.searchpath("goroutine", package.cpath))
return assert(package.loadlib(path, "luaopen_http"))(...)
