-- bench/http.lua: 1,000 HTTP requests to a local server (tests/helpers/http_server.py,
-- asyncio on 127.0.0.1) made three ways:
--   concurrent  1,000 goroutines, one http.get each, all in flight at once
--   sequential  the same 1,000 http.get one after another in one goroutine
--   curl loop   `for i in $(seq N); do curl -s -o /dev/null URL; done` in /bin/sh
-- against GET /health (answers at once: per-request overhead) and GET /delay/200
-- (answers after 200 ms: latency hidden by concurrency; the sequential runs of
-- that one are computed, 200 ms x N, not run).
-- Run: lua5.4 bench/http.lua [N]   (with build/lib on package.cpath; bench/run.sh http)
package.cpath = (os.getenv("MUTIRAO_CPATH") or "build/lib/?.so;") .. package.cpath
local goroutine = require("goroutine")
local http = require("http")
local exec = require("exec")
local now = goroutine.now

local N = tonumber(arg and arg[1]) or 1000
local ROUNDS = 3

local here = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./")
local srv = assert(io.popen("exec python3 " .. here .. "../tests/helpers/http_server.py"))
local port, pid = assert(srv:read("l")):match("^PORTS (%d+) REFUSED %d+ PID (%d+)$")
assert(port, "the helper HTTP server did not start")
local function url(path) return "http://127.0.0.1:" .. port .. path end

local function concurrent(path)
    local wg, bad = goroutine.wait_group(), 0
    local t0 = now()
    for _ = 1, N do
        wg:add(1)
        goroutine.spawn(function()
            if http.get(url(path)).status_code ~= 200 then bad = bad + 1 end
            wg:done()
        end)
    end
    wg:wait()
    assert(bad == 0, bad .. " requests failed")
    return now() - t0
end

local function sequential(path)
    local t0 = now()
    for _ = 1, N do
        assert(http.get(url(path)).status_code == 200)
    end
    return now() - t0
end

local function curl_loop(path)
    local t0 = now()
    local r = exec.run(string.format('for i in $(seq %d); do curl -s -o /dev/null "%s" || exit 1; done',
        N, url(path)))
    assert(r.ok, "curl loop failed: " .. r.stderr)
    return now() - t0
end

-- best wall time of ROUNDS, and the client's CPU time (this process) in that round
local function best(f, path)
    local b, cpu = math.huge, 0
    for _ = 1, ROUNDS do
        collectgarbage("collect")
        local c0 = os.clock()
        local dt = f(path)
        if dt < b then b, cpu = dt, (os.clock() - c0) * 1000 end
    end
    return b, cpu
end

http.get(url("/health")) -- warm up: connection setup, curl's first use

print(string.format("%d requests, best of %d rounds (ms total | us per request | requests/s | client CPU us per request)", N, ROUNDS))
local function row(name, ms, cpu)
    print(string.format("  %-42s %9.1f ms  %8.1f us  %8.0f req/s  %6.1f us", name, ms, ms * 1000 / N,
        N / (ms / 1000), cpu * 1000 / N))
end
print("GET /health (answers at once)")
local c, c_cpu = best(concurrent, "/health")
local s, s_cpu = best(sequential, "/health")
local k, k_cpu = best(curl_loop, "/health")
row("goroutines, all at once", c, c_cpu)
row("goroutines, one after another", s, s_cpu)
row("curl in a shell loop (CPU: the shell only)", k, k_cpu)
print(string.format("  speed-up of all-at-once: %.1fx vs one after another, %.1fx vs the curl loop",
    s / c, k / c))
print("GET /delay/200 (answers after 200 ms)")
local d, d_cpu = best(concurrent, "/delay/200")
row("goroutines, all at once", d, d_cpu)
print(string.format("  one after another would take >= %d ms (200 ms x %d): %.0fx", 200 * N, N, 200 * N / d))
print("  " .. exec.run({ "curl", "--version" }).stdout:match("^[^\n]*"))

os.execute("kill " .. pid)
srv:close()
