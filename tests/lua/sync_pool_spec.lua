-- mutex, rwmutex, semaphore, once and cond across pool VMs: captured by a
-- pool task (or passed to it) each is the same object there, between OS
-- threads, with the same rules.
local G = require("goroutine")

local POOL = "sync_pool_spec"
local submit, await_ok = require("spec_helpers").pool(POOL, { workers = 200 })

describe("a mutex shared with pool tasks", function()
    it("excludes: increments under the lock from many VMs lose nothing", function()
        local mu = G.mutex()
        local counter = G.atomic_int(0)
        local inside = G.atomic_int(0)
        local ids = {}
        for t = 1, 16 do
            ids[t] = submit(function()
                local G = require("goroutine")
                local worst = 0
                for _ = 1, 200 do
                    mu:lock()
                    local n = inside:add(1)
                    if n > worst then worst = n end
                    -- a read-modify-write that only the lock keeps whole
                    local v = counter:load()
                    if _ % 50 == 0 then G.sleep(0) end
                    counter:store(v + 1)
                    inside:add(-1)
                    mu:unlock()
                end
                return worst
            end)
        end
        for _ = 1, 200 do -- the main VM takes part too
            mu:lock()
            counter:store(counter:load() + 1)
            mu:unlock()
        end
        for _, id in ipairs(ids) do assert.are.equal(1, await_ok(id)) end
        assert.are.equal(17 * 200, counter:load())
        assert.matches("^Mutex%(unlocked%)$", tostring(mu))
    end)

    it("is the same object when it comes back", function()
        local mu, rw = G.mutex(), G.rwmutex()
        local same, back = await_ok(submit(function(a) return rawequal(a, mu), mu, rw end, mu))
        assert.is_true(same)
        assert.is_true(rawequal(back, mu))
    end)

    it("a lock held in the main VM makes a pool task wait, and unlock lets it in", function()
        local mu = G.mutex()
        mu:lock()
        local id = submit(function()
            local G = require("goroutine")
            local t0 = G.now()
            mu:lock()
            local waited = G.now() - t0
            mu:unlock()
            return waited
        end)
        G.sleep(60)
        assert.matches("1 waiting", tostring(mu))
        mu:unlock()
        assert.is_true(await_ok(id) >= 40)
        -- try_lock across VMs
        assert.is_true(await_ok(submit(function() return mu:try_lock() end)))
        assert.is_false(mu:try_lock())
        mu:unlock()
        local ok, err = pcall(mu.unlock, mu)
        assert.is_false(ok)
        assert.matches("unlock of unlocked mutex", err)
    end)

    it("a pool task killed by its timeout while waiting leaves the lock usable", function()
        local mu = G.mutex()
        mu:lock()
        local tpool = "sync_pool_spec_timeout"
        G.pool_create(tpool, { workers = 4, timeout = 40 })
        local ids = {}
        for i = 1, 3 do ids[i] = assert(G.pool_submit(tpool, function() mu:lock() return "got it" end)) end
        for _, id in ipairs(ids) do
            local ok, err = G.await(id)
            assert.is_false(ok)
            assert.matches("timeout after 40 ms", err)
        end
        assert.matches("^Mutex%(locked%)$", tostring(mu))
        mu:unlock()
        assert.is_true(mu:try_lock())
        mu:unlock()
        G.pool_close(tpool)
    end)
end)

describe("an rwmutex shared with pool tasks", function()
    it("lets readers in together and a writer alone", function()
        local rw = G.rwmutex()
        local readers, max_readers, writers = G.atomic_int(0), G.atomic_int(0), G.atomic_int(0)
        local ids = {}
        for t = 1, 8 do
            ids[#ids + 1] = submit(function()
                local G = require("goroutine")
                for _ = 1, 20 do
                    rw:rlock()
                    local n = readers:add(1)
                    if n > max_readers:load() then max_readers:store(n) end
                    assert(writers:load() == 0, "a reader met a writer")
                    G.sleep(1)
                    readers:add(-1)
                    rw:runlock()
                end
            end)
            ids[#ids + 1] = submit(function()
                local G = require("goroutine")
                for _ = 1, 10 do
                    rw:lock()
                    assert(writers:add(1) == 1, "two writers")
                    assert(readers:load() == 0, "a writer met a reader")
                    G.sleep(0)
                    writers:add(-1)
                    rw:unlock()
                end
            end)
        end
        for _, id in ipairs(ids) do await_ok(id) end
        assert.is_true(max_readers:load() >= 2)
        assert.matches("^RWMutex%(unlocked%)$", tostring(rw))
        local ok, err = pcall(rw.runlock, rw)
        assert.is_false(ok)
        assert.matches("runlock of unlocked rwmutex", err)
    end)
end)

describe("a semaphore shared with pool tasks", function()
    it("limits how many tasks hold it at once, across VMs", function()
        local sem = G.semaphore(3)
        local holding, most = G.atomic_int(0), G.atomic_int(0)
        local ids = {}
        for t = 1, 20 do
            ids[t] = submit(function()
                local G = require("goroutine")
                sem:acquire()
                local n = holding:add(1)
                if n > most:load() then most:store(n) end
                G.sleep(5)
                holding:add(-1)
                sem:release()
            end)
        end
        for _, id in ipairs(ids) do await_ok(id) end
        assert.are.equal(3, most:load())
        assert.are.equal(3, sem:available())
        assert.matches("^Semaphore%(3/3%)$", tostring(sem))
    end)

    it("hands units acquired in one VM to a waiter in another, k at a time", function()
        local sem = G.semaphore(4)
        sem:acquire(4)
        local id = submit(function() sem:acquire(3) return sem:available() end)
        G.sleep(30)
        assert.matches("1 waiting", tostring(sem))
        sem:release(2)
        G.sleep(20)
        assert.are.equal(2, sem:available()) -- 2 < 3: the task still waits
        sem:release(2)
        assert.are.equal(1, await_ok(id))
        assert.is_false(sem:try_acquire(2))
        local ok, err = pcall(sem.release, sem, 4)
        assert.is_false(ok)
        assert.matches("released more than acquired", err)
    end)
end)

describe("a once shared with pool tasks", function()
    it("runs its function once for all VMs, the others wait for it to end", function()
        local once = G.once()
        local runs = G.atomic_int(0)
        local ids = {}
        for t = 1, 12 do
            ids[t] = submit(function()
                local G = require("goroutine")
                once:call(function()
                    runs:add(1)
                    G.sleep(50)
                end)
                return runs:load() -- the first call has ended here
            end)
        end
        for _, id in ipairs(ids) do assert.are.equal(1, await_ok(id)) end
        once:call(function() runs:add(1) end)
        assert.are.equal(1, runs:load())
        assert.matches("^Once%(done%)$", tostring(once))
    end)
end)

describe("a cond shared with pool tasks", function()
    it("signal and broadcast wake waiters in other VMs, which hold the mutex again", function()
        local mu = G.mutex()
        local cv = G.cond(mu)
        local ready = G.atomic_int(0)
        local woke = G.atomic_int(0)
        local ids = {}
        for t = 1, 5 do
            ids[t] = submit(function()
                mu:lock()
                while ready:load() == 0 do cv:wait() end
                woke:add(1)
                mu:unlock()
            end)
        end
        G.sleep(50)
        assert.matches("5 waiting", tostring(cv))
        mu:lock()
        ready:store(1)
        cv:signal()
        mu:unlock()
        G.sleep(30)
        assert.are.equal(1, woke:load())
        mu:lock()
        cv:broadcast()
        mu:unlock()
        for _, id in ipairs(ids) do await_ok(id) end
        assert.are.equal(5, woke:load())
        assert.matches("^Mutex%(unlocked%)$", tostring(mu))
    end)
end)
