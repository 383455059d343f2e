-- threads_helpers.lua: what the scripts of this folder that run VMs on
-- several threads share (channel_threads.lua, sync_threads.lua,
-- pool_threads.lua). mutirao-test-lua sets no module path: a script loads
-- this file from its own folder,
--   local H = dofile((arg[0]:match("^(.*/)") or "./") .. "threads_helpers.lua")
local G = require("goroutine")

local H = {}

-- Raises msg (the caller's line) unless cond.
local function check(cond, msg) if not cond then error(msg or "check failed", 2) end end
H.check = check

-- Awaits the pool task id; raises its error, else returns its results.
function H.ok(id)
    local r = table.pack(G.await(id))
    check(r[1], tostring(r[2]))
    return table.unpack(r, 2, r.n)
end

return H
