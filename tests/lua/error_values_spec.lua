-- Error values whose __tostring raises or returns no string never stop the
-- process: goroutine errors are logged as type and address, pool task and
-- async errors are awaited as the values themselves.
local G = require("goroutine")

local E = {}
E.__index = E
E.__tostring = function(e) return e.msg end -- nil: msg is not set

describe("error values with a broken __tostring", function()
    it("a goroutine's is logged, the process goes on", function()
        G.spawn(function() error(setmetatable({}, { __tostring = function() return nil end })) end)
        G.spawn(function() error(setmetatable({}, { __tostring = function() error("boom") end })) end)
        G.sleep(10)
        assert.is_true(true, "still running")
    end)

    it("a pool task's is awaited as the value (with its metatable)", function()
        assert.is_true(G.pool_create("error_values", { workers = 1 }))
        local id = G.pool_submit("error_values", function() error(setmetatable({ code = 7 }, E)) end)
        local ok, err = G.await(id)
        assert.is_false(ok)
        assert.are.equal(7, err.code)
        assert.is_not_nil(getmetatable(err))
        local ok2, err2 = pcall(G.await, id)
        assert.is_true(ok2)
        assert.is_false(err2)
    end)

    it("an async handle's is awaited as the value", function()
        local h = G.async(function() error(setmetatable({ code = 8 }, E)) end)
        local ok, err = G.await(h)
        assert.is_false(ok)
        assert.are.equal(8, err.code)
    end)
end)
