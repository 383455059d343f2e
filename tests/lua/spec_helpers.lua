-- spec_helpers.lua: what several specs share (require("spec_helpers");
-- busted's --lpath names this folder).
local G = require("goroutine")

local M = {}

-- Runs fn(...) in a goroutine and waits for it; its error is raised here.
function M.in_goroutine(fn, ...)
    local ok, err = G.await(G.async(fn, ...))
    if not ok then error(err, 0) end
end

-- Runs code in a fresh lua5.4 with this build's module, killed after limit
-- seconds (20 by default); prefix goes before the command (a shell
-- `ulimit`). Returns its output (stdout and stderr) and exit status (124
-- when it was killed).
function M.run_lua(code, limit, prefix)
    local lua = os.getenv("MUTIRAO_LUA") or "lua5.4"
    local dir = os.getenv("MUTIRAO_MODULE_DIR")
    if not dir then
        local so = assert(package.searchpath("goroutine", package.cpath))
        dir = so:match("^(.*)/[^/]*$")
    end
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(code)
    f:close()
    local p = assert(io.popen(string.format(
        "%sLUA_CPATH='%s/?.so;;' timeout -s KILL %d %s %s 2>&1; echo \"EXIT:$?\"",
        prefix or "", dir, limit or 20, lua, path)))
    local out = p:read("a")
    p:close()
    os.remove(path)
    local status = tonumber(out:match("EXIT:(%d+)%s*$"))
    if status == 137 then status = 124 end
    return (out:gsub("EXIT:%d+%s*$", "")), status
end

-- A pool for a spec: submit(fn, ...) -> task id (raises when refused) and
-- await_ok(id) -> the task's results (raises its error).
function M.pool(name, options)
    G.pool_create(name, options)
    local function submit(fn, ...)
        return assert(G.pool_submit(name, fn, ...))
    end
    local function await_ok(id)
        local r = table.pack(G.await(id))
        assert(r[1], r[2])
        return table.unpack(r, 2, r.n)
    end
    return submit, await_ok
end

return M
