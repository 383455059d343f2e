-- tests/lua/test_server.lua: starts tests/helpers/http_server.py for a spec.
--   local server = require("test_server").start("--ports 2")
--   server.base ("http://127.0.0.1:PORT"), server.ports, server.refused (a port
--   that refuses connections), server.url(path [, i]), server.stop()
-- The server exits by itself if this process dies without calling stop().
local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
M.script = here .. "../helpers/http_server.py"

function M.start(args)
    local f = assert(io.popen("exec python3 " .. M.script .. " " .. (args or "")))
    local line = f:read("l")
    local ports, refused, pid = (line or ""):match("^PORTS ([%d ]+) REFUSED (%d+) PID (%d+)$")
    assert(ports, "the test HTTP server did not start: " .. tostring(line))
    local s = { ports = {}, refused = tonumber(refused), pid = tonumber(pid) }
    for p in ports:gmatch("%d+") do s.ports[#s.ports + 1] = tonumber(p) end
    s.port = s.ports[1]
    s.base = "http://127.0.0.1:" .. s.port
    function s.url(path, i)
        return "http://127.0.0.1:" .. s.ports[i or 1] .. path
    end
    function s.stop()
        os.execute("kill " .. s.pid .. " 2>/dev/null")
        f:close()
    end
    return s
end

-- Upper bounds of timing assertions are multiplied by MUTIRAO_TIME_FACTOR
-- (set for the valgrind runs, where everything is 20-50 times slower).
M.factor = tonumber(os.getenv("MUTIRAO_TIME_FACTOR") or "") or 1

return M
