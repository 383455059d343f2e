-- pool_threads.lua: pools across VM threads, run by mutirao-test-lua (also
-- under TSan): many submitters, WaitGroups crossing threads, nested
-- submits, close while busy, task limits. Plain asserts; exits non-zero on failure.
local G = require("goroutine")

local check = dofile((arg[0]:match("^(.*/)") or "./") .. "threads_helpers.lua").check

-- 1. several goroutines submit concurrently to one pool with a small queue
G.pool_create("t_many", { workers = 4, queue = 4 })
local wg = G.wait_group()
local submitters = 6
local per = 200
wg:add(submitters * per)
local ids = {}
local hs = {}
for s = 1, submitters do
    hs[s] = G.async(function()
        for i = 1, per do
            local id = assert(G.pool_submit("t_many", function(a, b) wg:done() return a * b end, s, i))
            ids[#ids + 1] = { id, s * i }
        end
    end)
end
G.await_all(hs)
wg:wait()
check(G.pool_wait("t_many"))
local st = G.pool_stats("t_many")
check(st.completed == submitters * per, "completed " .. st.completed)
check(st.failed == 0 and st.active == 0 and st.queued == 0)
for _, p in ipairs(ids) do
    local ok, v = G.await(p[1])
    check(ok and v == p[2], "wrong result for " .. p[1])
end
G.pool_close("t_many")

-- 2. a task that submits to another pool and awaits it there
G.pool_create("t_outer", { workers = 2 })
G.pool_create("t_inner", { workers = 2 })
local outer = G.pool_submit("t_outer", function()
    local G2 = require("goroutine")
    local id = G2.pool_submit("t_inner", function(x) return x + 1 end, 41)
    return G2.await(id)
end)
local ok, inner_ok, v = G.await(outer)
check(ok and inner_ok and v == 42, "nested submit: " .. tostring(inner_ok) .. " " .. tostring(v))
G.pool_close("t_outer")
G.pool_close("t_inner")

-- 3. close while tasks are queued and running: all finish, counters exact
G.pool_create("t_close", { workers = 2, queue = 50 })
local cids = {}
for i = 1, 40 do cids[i] = G.pool_submit("t_close", function() G.sleep(1) return i end) end
G.pool_close("t_close")
for i = 1, 40 do
    local okc, vc = G.await(cids[i])
    check(okc and vc == i)
end

-- 4. failures cross back with their message
G.pool_create("t_fail", { workers = 3 })
local fids = {}
for i = 1, 30 do fids[i] = G.pool_submit("t_fail", function() if i % 2 == 0 then error("even " .. i) end return i end) end
G.pool_wait("t_fail")
local fst = G.pool_stats("t_fail")
check(fst.completed == 15 and fst.failed == 15, "fail counts")
local okf, errf = G.await(fids[2])
check(not okf and errf:find("even 2", 1, true), "error message crossed")
G.pool_close("t_fail")
-- 5. async handles awaited from many tasks at once, across threads
G.pool_create("t_handles", { workers = 8 })
local hs5 = {}
for i = 1, 10 do hs5[i] = G.async(function() G.sleep(i) return i end) end
local ids5 = {}
for k = 1, 40 do
    ids5[k] = G.pool_submit("t_handles", function()
        local sum = 0
        for _, r in ipairs(G.await_all(hs5)) do sum = sum + r.values[1] end
        return sum
    end)
end
for k = 1, 40 do
    local ok5, sum = G.await(ids5[k])
    check(ok5 and sum == 55, "handles across threads")
end
G.pool_close("t_handles")

-- 6. task limits on every VM at once: timeouts, memory hogs and tasks
-- within their limits, from several submitters
G.pool_create("t_limits", { workers = 8, queue = 64, timeout = 1000, memory = 8 * 1024 * 1024 })
local hs6 = {}
for s = 1, 4 do
    hs6[s] = G.async(function()
        local got = { timeout = 0, memory = 0, ok = 0 }
        local ids6 = {}
        for i = 1, 12 do
            ids6[i] = G.pool_submit("t_limits", function(k)
                local g = require("goroutine")
                if k % 3 == 0 then g.sleep(60000) end -- (a CPU-bound loop is not
                -- preempted under TSan, which delays signals to the next call it intercepts)
                if k % 3 == 1 then return #string.rep("x", 16 * 1024 * 1024) end
                g.sleep(1)
                return #string.rep("y", 1024 * 1024)
            end, i)
        end
        for i = 1, 12 do
            local ok6, v = G.await(ids6[i])
            if ok6 then
                check(v == 1024 * 1024)
                got.ok = got.ok + 1
            elseif v == "timeout after 1000 ms" then
                got.timeout = got.timeout + 1
            else
                check(v == "not enough memory", v)
                got.memory = got.memory + 1
            end
        end
        return got
    end)
end
for _, r in ipairs(G.await_all(hs6)) do
    check(r.success, tostring(r.error))
    local got = r.values[1]
    check(got.ok == 4 and got.timeout == 4 and got.memory == 4,
        string.format("limits: %d ok, %d timeouts, %d out of memory", got.ok, got.timeout, got.memory))
end
G.pool_close("t_limits")
print("pool_threads: ok")
