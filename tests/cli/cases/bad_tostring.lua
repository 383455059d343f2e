-- Error values whose __tostring raises or returns no string: logged as
-- their type and address, awaited as themselves; nothing aborts.
local g = require("goroutine")
local E = {}
E.__index = E
E.__tostring = function(e) return e.msg end -- nil: msg is not set
g.spawn(function() error(setmetatable({}, { __tostring = function() return nil end })) end)
g.spawn(function() error(setmetatable({}, { __tostring = function() error("boom") end })) end)
g.pool_create("bad_tostring", { workers = 1 })
local id = g.pool_submit("bad_tostring", function()
    error(setmetatable({ code = 7 }, E))
end)
local ok, err = g.await(id)
print("await:", ok, type(err), err.code, getmetatable(err) ~= nil)
local h = g.async(function() error(setmetatable({ code = 8 }, E)) end)
local ok2, err2 = g.await(h)
print("async:", ok2, err2.code)
g.sleep(10)
print("survived")
