-- sync_threads.lua: mutex, rwmutex, semaphore, once and cond shared
-- between VM threads, run by mutirao-test-lua (also under TSan). Plain
-- asserts; exits non-zero on failure.
local G = require("goroutine")

local H = dofile((arg[0]:match("^(.*/)") or "./") .. "threads_helpers.lua")
local check, ok = H.check, H.ok

G.pool_create("st", { workers = 64 })

-- 1. a mutex: a read-modify-write only the lock keeps whole
do
    local mu, n = G.mutex(), G.atomic_int(0)
    local ids = {}
    for t = 1, 8 do
        ids[t] = G.pool_submit("st", function()
            for i = 1, 1000 do
                mu:lock()
                local v = n:load()
                if i % 100 == 0 then require("goroutine").sleep(0) end
                n:store(v + 1)
                mu:unlock()
            end
        end)
    end
    for i = 1, 1000 do
        mu:lock()
        n:store(n:load() + 1)
        mu:unlock()
    end
    for _, id in ipairs(ids) do ok(id) end
    check(n:load() == 9000, "mutex: " .. n:load())
end

-- 2. an rwmutex: readers and writers on several VMs
do
    local rw, readers, writers = G.rwmutex(), G.atomic_int(0), G.atomic_int(0)
    local ids = {}
    for t = 1, 6 do
        ids[#ids + 1] = G.pool_submit("st", function()
            for _ = 1, 300 do
                rw:rlock()
                readers:add(1)
                assert(writers:load() == 0)
                readers:add(-1)
                rw:runlock()
            end
        end)
        ids[#ids + 1] = G.pool_submit("st", function()
            for _ = 1, 100 do
                rw:lock()
                assert(writers:add(1) == 1 and readers:load() == 0)
                writers:add(-1)
                rw:unlock()
            end
        end)
    end
    for _, id in ipairs(ids) do ok(id) end
end

-- 3. a semaphore of 2 across 16 tasks
do
    local sem, holding = G.semaphore(2), G.atomic_int(0)
    local ids = {}
    for t = 1, 16 do
        ids[t] = G.pool_submit("st", function()
            for _ = 1, 100 do
                sem:acquire()
                assert(holding:add(1) <= 2)
                holding:add(-1)
                sem:release()
            end
        end)
    end
    for _, id in ipairs(ids) do ok(id) end
    check(sem:available() == 2)
end

-- 4. once, raced by many VMs
for _ = 1, 20 do
    local once, runs = G.once(), G.atomic_int(0)
    local ids = {}
    for t = 1, 8 do
        ids[t] = G.pool_submit("st", function()
            once:call(function() runs:add(1) end)
            return runs:load()
        end)
    end
    for _, id in ipairs(ids) do check(ok(id) == 1) end
end

-- 5. a cond: a producer in the main VM, consumers in pool tasks
do
    local mu = G.mutex()
    local cv = G.cond(mu)
    local queue, taken = G.atomic_int(0), G.atomic_int(0)
    local stop = G.atomic_int(0)
    local ids = {}
    for t = 1, 4 do
        ids[t] = G.pool_submit("st", function()
            local mine = 0
            while true do
                mu:lock()
                while queue:load() == 0 and stop:load() == 0 do cv:wait() end
                if queue:load() == 0 then
                    mu:unlock()
                    return mine
                end
                queue:add(-1)
                mine = mine + 1
                mu:unlock()
            end
        end)
    end
    for _ = 1, 500 do
        mu:lock()
        queue:add(1)
        cv:signal()
        mu:unlock()
        if _ % 50 == 0 then G.sleep(1) end
    end
    mu:lock()
    stop:store(1)
    cv:broadcast()
    mu:unlock()
    local total = 0
    for _, id in ipairs(ids) do total = total + ok(id) end
    check(total == 500, "cond: " .. total)
end

-- 6. holders and waiters of a mutex killed by task timeouts while it
-- changes hands between VMs: a killed waiter never keeps it
do
    G.pool_create("st_to", { workers = 32, timeout = 5 })
    local mu = G.mutex()
    local ids = {}
    for t = 1, 32 do
        ids[t] = G.pool_submit("st_to", function()
            local G = require("goroutine")
            local guard = setmetatable({}, { __close = function() mu:unlock() end })
            while true do
                -- (one line: a goroutine is killed at a line boundary or
                -- while it waits, so a holder always unlocks in its <close>)
                mu:lock() local held <close> = guard
                G.sleep(1)
            end
        end)
    end
    for _, id in ipairs(ids) do check(not G.await(id)) end
    check(mu:try_lock(), "a killed waiter kept the mutex")
    mu:unlock()
    G.pool_close("st_to")
end

-- 7. contexts cancelled from several VMs at once: every holder sees it
for _ = 1, 20 do
    local ctx = G.context():with_cancel()
    local ids = {}
    for t = 1, 6 do
        ids[t] = G.pool_submit("st", function()
            local G = require("goroutine")
            local child = ctx:with_cancel()
            if t % 3 == 0 then ctx:cancel() end
            G.select({ { channel = child:done(), receive = true } })
            return child:err()
        end)
    end
    for _, id in ipairs(ids) do check(ok(id) == "context canceled") end
    check(ctx:err() == "context canceled")
end

G.pool_close("st")
print("sync_threads: ok")
