-- goroutine.mutex, rwmutex, semaphore, atomic_int, once, cond: Go's sync
-- package for goroutines.
local G = require("goroutine")
local now = G.now

local in_goroutine = require("spec_helpers").in_goroutine

-- runs code in a fresh lua5.4 (a deadlock error ends the whole script)
local run_lua = require("spec_helpers").run_lua

-- busy for ms milliseconds without yielding
local function spin(ms)
    local t0 = now()
    while now() - t0 < ms do end
end

-- waits (sleeping) until cond() holds, at most 2 s: what must happen soon,
-- robust to a loaded machine
local function eventually(cond)
    local t0 = now()
    while not cond() do
        if now() - t0 > 2000 then return false end
        G.sleep(1)
    end
    return true
end

local function raises(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok, "expected an error matching " .. pattern)
    assert.matches(pattern, tostring(err))
end

-- waits on the primitive (through wait_fn) inside a timeout of ms (10 by
-- default): it must be killed at the deadline
local function killed_waiter(wait_fn, ms)
    ms = ms or 10
    local ok, err = G.timeout(ms, wait_fn)
    assert.is_false(ok)
    assert.are.equal("timeout after " .. ms .. " ms", err)
end

describe("goroutine.mutex", function()
    it("returns a Mutex with lock, unlock and try_lock, and a useful tostring", function()
        local m = G.mutex()
        assert.is_userdata(m)
        assert.are.equal("Mutex(unlocked)", tostring(m))
        m:lock()
        assert.are.equal("Mutex(locked)", tostring(m))
        m:unlock()
        assert.are_not.equal(m, G.mutex())
    end)

    it("excludes: 100 goroutines incrementing a counter with sleeps inside the critical section", function()
        local m = G.mutex()
        local wg = G.wait_group()
        local counter, inside, max_inside = 0, 0, 0
        for i = 1, 100 do
            wg:add()
            G.spawn(function()
                m:lock()
                inside = inside + 1
                if inside > max_inside then max_inside = inside end
                local v = counter
                G.sleep(i % 3 == 0 and 1 or 0)
                counter = v + 1
                inside = inside - 1
                m:unlock()
                wg:done()
            end)
        end
        wg:wait()
        assert.are.equal(100, counter)
        assert.are.equal(1, max_inside)
        assert.are.equal("Mutex(unlocked)", tostring(m))
    end)

    it("try_lock takes a free mutex only", function()
        local m = G.mutex()
        assert.is_true(m:try_lock())
        assert.is_false(m:try_lock())
        m:unlock()
        assert.is_true(m:try_lock())
        m:unlock()
    end)

    it("unlock of an unlocked mutex raises", function()
        local m = G.mutex()
        raises("unlock of unlocked mutex", m.unlock, m)
        m:lock()
        m:unlock()
        raises("unlock of unlocked mutex", function() m:unlock() end)
    end)

    it("hands the lock to its waiters in FIFO order; a newcomer cannot take it meanwhile", function()
        local m = G.mutex()
        m:lock()
        local order = {}
        local wg = G.wait_group()
        for i = 1, 5 do
            wg:add()
            G.spawn(function()
                m:lock()
                order[#order + 1] = i
                G.sleep(1)
                m:unlock()
                wg:done()
            end)
            G.sleep(1) -- each one queued before the next
        end
        assert.are.equal("Mutex(locked, 5 waiting)", tostring(m))
        m:unlock()
        -- handed to waiter 1, which has not run yet: the lock stays taken
        assert.is_false(m:try_lock())
        assert.are.equal("Mutex(locked, 4 waiting)", tostring(m))
        wg:wait()
        assert.are.same({ 1, 2, 3, 4, 5 }, order)
    end)

    it("a goroutine's lock waits without blocking the others; the main chunk waits too", function()
        local m = G.mutex()
        local ticks = 0
        G.spawn(function()
            m:lock()
            for _ = 1, 5 do
                G.sleep(2)
                ticks = ticks + 1
            end
            m:unlock()
        end)
        G.sleep(1)
        local t0 = now()
        m:lock() -- the main chunk: runs the loop until the goroutine unlocks
        assert.are.equal(5, ticks)
        assert.is_true(now() - t0 >= 5)
        m:unlock()
    end)

    it("a waiter killed by a timeout leaves the mutex usable", function()
        local m = G.mutex()
        m:lock()
        killed_waiter(function() m:lock() end)
        assert.are.equal("Mutex(locked)", tostring(m))
        m:unlock()
        assert.is_true(m:try_lock())
        m:unlock()
        -- killed after the lock was handed to it, before it ran: it passes it on
        m:lock()
        local got = false
        local h = G.async(function()
            return G.timeout(10, function()
                m:lock()
                got = true
            end)
        end)
        G.spawn(function()
            G.sleep(3)
            m:unlock() -- handed to the waiter...
            spin(30)   -- ...which cannot run before its deadline
        end)
        local ok, tok, terr = G.await(h)
        assert.is_true(ok)
        if not tok then
            assert.are.equal("timeout after 10 ms", terr)
            assert.is_false(got)
            assert.is_true(m:try_lock())
        else
            assert.is_true(got) -- ran in time on a slow machine: it owns the lock
        end
        m:unlock()
        assert.are.equal("Mutex(unlocked)", tostring(m))
    end)

    it("a later waiter gets the lock when the one before it was killed", function()
        local m = G.mutex()
        m:lock()
        G.spawn(killed_waiter, function() m:lock() end)
        local got = false
        G.spawn(function()
            G.sleep(1)
            m:lock()
            got = true
            m:unlock()
        end)
        G.sleep(20) -- the first waiter is dead by now
        m:unlock()
        assert.is_true(eventually(function() return got end))
        assert.is_true(m:try_lock())
        m:unlock()
    end)

    it("wrong self raises", function()
        local m = G.mutex()
        raises("calling 'lock' on bad self %(goroutine.Mutex expected, got table%)", function()
            local t = { lock = m.lock }
            t:lock()
        end)
        raises("goroutine.Mutex expected, got goroutine.RWMutex", m.lock, G.rwmutex())
        raises("goroutine.Mutex expected, got no value", m.unlock)
        raises("goroutine.Mutex expected", m.try_lock, 42)
    end)
end)

describe("goroutine.rwmutex", function()
    it("returns an RWMutex with lock, unlock, try_lock, rlock, runlock, try_rlock", function()
        local rw = G.rwmutex()
        for _, name in ipairs({ "lock", "unlock", "try_lock", "rlock", "runlock", "try_rlock" }) do
            assert.is_function(rw[name])
        end
        assert.are.equal("RWMutex(unlocked)", tostring(rw))
        rw:rlock()
        rw:rlock()
        assert.are.equal("RWMutex(2 readers)", tostring(rw))
        rw:runlock()
        assert.are.equal("RWMutex(1 reader)", tostring(rw))
        rw:runlock()
        rw:lock()
        assert.are.equal("RWMutex(locked)", tostring(rw))
        rw:unlock()
    end)

    it("readers share it, a writer excludes everyone", function()
        local rw = G.rwmutex()
        local readers, max_readers, writers, bad = 0, 0, 0, false
        local wg = G.wait_group()
        for i = 1, 30 do
            wg:add()
            G.spawn(function()
                if i % 10 == 0 then
                    rw:lock()
                    writers = writers + 1
                    if readers > 0 or writers > 1 then bad = true end
                    G.sleep(2)
                    writers = writers - 1
                    rw:unlock()
                else
                    rw:rlock()
                    readers = readers + 1
                    if writers > 0 then bad = true end
                    if readers > max_readers then max_readers = readers end
                    G.sleep(2)
                    readers = readers - 1
                    rw:runlock()
                end
                wg:done()
            end)
        end
        wg:wait()
        assert.is_false(bad)
        assert.is_true(max_readers > 1)
        assert.are.equal("RWMutex(unlocked)", tostring(rw))
    end)

    it("try_lock and try_rlock", function()
        local rw = G.rwmutex()
        assert.is_true(rw:try_rlock())
        assert.is_true(rw:try_rlock())
        assert.is_false(rw:try_lock())
        rw:runlock()
        rw:runlock()
        assert.is_true(rw:try_lock())
        assert.is_false(rw:try_rlock())
        assert.is_false(rw:try_lock())
        rw:unlock()
    end)

    it("does not starve a writer: once a writer waits, new readers wait behind it", function()
        local rw = G.rwmutex()
        local log = {}
        rw:rlock() -- a reader holds it
        G.spawn(function()
            rw:lock()
            log[#log + 1] = "writer"
            G.sleep(2)
            rw:unlock()
        end)
        G.sleep(1)
        assert.is_false(rw:try_rlock()) -- a writer waits: no new reader gets in
        G.spawn(function()
            rw:rlock()
            log[#log + 1] = "late reader"
            rw:runlock()
        end)
        G.sleep(5)
        assert.are.same({}, log)
        rw:runlock()
        assert.is_true(eventually(function() return #log == 2 end))
        assert.are.same({ "writer", "late reader" }, log)
    end)

    it("lets the readers queued behind a writer in together", function()
        local rw = G.rwmutex()
        rw:lock()
        local inside, max_inside = 0, 0
        local wg = G.wait_group()
        for _ = 1, 5 do
            wg:add()
            G.spawn(function()
                rw:rlock()
                inside = inside + 1
                if inside > max_inside then max_inside = inside end
                G.sleep(2)
                inside = inside - 1
                rw:runlock()
                wg:done()
            end)
        end
        G.sleep(1)
        rw:unlock()
        wg:wait()
        assert.are.equal(5, max_inside)
    end)

    it("unlock and runlock of an unlocked one raise", function()
        local rw = G.rwmutex()
        raises("unlock of unlocked rwmutex", function() rw:unlock() end)
        raises("runlock of unlocked rwmutex", function() rw:runlock() end)
        rw:rlock()
        raises("unlock of unlocked rwmutex", function() rw:unlock() end)
        rw:runlock()
        rw:lock()
        raises("runlock of unlocked rwmutex", function() rw:runlock() end)
        rw:unlock()
    end)

    it("killed waiters (a writer, a reader) leave it usable", function()
        local rw = G.rwmutex()
        rw:rlock()
        killed_waiter(function() rw:lock() end)
        -- the dead writer no longer holds readers back
        assert.is_true(rw:try_rlock())
        rw:runlock()
        rw:runlock()
        rw:lock()
        killed_waiter(function() rw:rlock() end)
        rw:unlock()
        assert.are.equal("RWMutex(unlocked)", tostring(rw))
        assert.is_true(rw:try_lock())
        rw:unlock()
    end)

    it("a reader queued behind a writer that gets killed is let in", function()
        local rw = G.rwmutex()
        rw:rlock()
        G.spawn(killed_waiter, function() rw:lock() end, 100)
        local got = false
        G.spawn(function()
            G.sleep(1)
            rw:rlock()
            got = true
            rw:runlock()
        end)
        G.sleep(3)
        assert.is_false(got)
        -- the writer is killed at 100 ms: the reader behind it is let in
        assert.is_true(eventually(function() return got end))
        rw:runlock()
    end)
end)

describe("goroutine.semaphore", function()
    it("returns a Semaphore with acquire, release, try_acquire, available, capacity", function()
        local s = G.semaphore(5)
        assert.are.equal(5, s:capacity())
        assert.are.equal(5, s:available())
        assert.are.equal("Semaphore(5/5)", tostring(s))
        s:acquire()
        s:acquire(2)
        assert.are.equal(2, s:available())
        assert.are.equal("Semaphore(2/5)", tostring(s))
        s:release(2)
        s:release()
        assert.are.equal(5, s:available())
    end)

    it("limits concurrency: at most n at once, all finish", function()
        local s = G.semaphore(3)
        local inside, max_inside, done = 0, 0, 0
        local wg = G.wait_group()
        for i = 1, 20 do
            wg:add()
            G.spawn(function()
                s:acquire()
                inside = inside + 1
                if inside > max_inside then max_inside = inside end
                G.sleep(1 + i % 3)
                inside = inside - 1
                done = done + 1
                s:release()
                wg:done()
            end)
        end
        wg:wait()
        assert.are.equal(3, max_inside)
        assert.are.equal(20, done)
        assert.are.equal(3, s:available())
    end)

    it("serves waiters in FIFO order: a big request at the head is not overtaken", function()
        local s = G.semaphore(4)
        s:acquire(4)
        local order = {}
        local wg = G.wait_group()
        for i, k in ipairs({ 3, 1, 1, 2 }) do
            wg:add()
            G.spawn(function()
                s:acquire(k)
                order[#order + 1] = i
                G.sleep(2)
                s:release(k)
                wg:done()
            end)
            G.sleep(1)
        end
        assert.are.equal("Semaphore(0/4, 4 waiting)", tostring(s))
        s:release(1) -- 1 free: the head wants 3, the small ones behind it wait
        G.sleep(2)
        assert.are.same({}, order)
        assert.is_false(s:try_acquire(1)) -- nor can a newcomer overtake it
        s:release(2)
        assert.is_true(eventually(function() return #order == 1 end))
        assert.are.same({ 1 }, order)
        s:release(1)
        wg:wait()
        assert.are.same(1, order[1])
        assert.are.equal(4, s:available())
        table.sort(order)
        assert.are.same({ 1, 2, 3, 4 }, order)
    end)

    it("try_acquire takes units only when they are free and nobody waits", function()
        local s = G.semaphore(2)
        assert.is_true(s:try_acquire())
        assert.is_false(s:try_acquire(2))
        assert.is_true(s:try_acquire(1))
        assert.is_false(s:try_acquire())
        s:release(2)
        assert.is_true(s:try_acquire(2))
        s:release(2)
    end)

    it("releasing more than was acquired raises", function()
        local s = G.semaphore(2)
        raises("released more than acquired", function() s:release() end)
        s:acquire()
        raises("released more than acquired", function() s:release(2) end)
        s:release()
        assert.are.equal(2, s:available())
    end)

    it("the main chunk's acquire waits for a goroutine's release", function()
        local s = G.semaphore(1)
        G.spawn(function()
            s:acquire()
            G.sleep(5)
            s:release()
        end)
        G.sleep(1)
        local t0 = now()
        s:acquire()
        assert.is_true(now() - t0 >= 3)
        s:release()
    end)

    it("a waiter killed at the head does not block the later ones", function()
        local s = G.semaphore(3)
        s:acquire(2)
        G.spawn(killed_waiter, function() s:acquire(3) end, 100) -- the head: needs all 3
        local got = false
        G.spawn(function()
            G.sleep(1)
            s:acquire(1) -- fits, but waits behind the head
            got = true
            s:release(1)
        end)
        G.sleep(3)
        assert.is_false(got)
        -- the head is killed at 100 ms: the one behind it fits now
        assert.is_true(eventually(function() return got end))
        s:release(2)
        assert.are.equal(3, s:available())
        -- killed while holding the units handed to it: they come back
        s:acquire(3)
        local h = G.async(G.timeout, 10, function() s:acquire(2) end)
        G.spawn(function()
            G.sleep(3)
            s:release(3)
            spin(30)
        end)
        local ok, tok = G.await(h)
        assert.is_true(ok)
        if not tok then
            assert.are.equal(3, s:available())
        else
            assert.are.equal(1, s:available()) -- ran in time on a slow machine
        end
    end)

    it("checks its arguments", function()
        raises("bad argument #1 to '.*semaphore' %(capacity must be at least 1%)", G.semaphore, 0)
        raises("bad argument #1 to '.*semaphore' %(integer expected, got no value%)", G.semaphore)
        raises("bad argument #1 to '.*semaphore' %(integer expected, got string%)", G.semaphore, "3")
        raises("bad argument #1 to '.*semaphore' %(number has no integer representation%)", G.semaphore, 1.5)
        local s = G.semaphore(2)
        raises("bad argument #1 to 'acquire' %(units must be 1..2 %(the capacity%), got 0%)",
            function() s:acquire(0) end)
        raises("bad argument #1 to 'acquire' %(units must be 1..2 %(the capacity%), got 3%)",
            function() s:acquire(3) end)
        raises("bad argument #1 to 'try_acquire' %(integer expected, got string%)",
            function() s:try_acquire("x") end)
        raises("bad argument #1 to 'release' %(units must be 1..2", function() s:release(-1) end)
        raises("calling 'acquire' on bad self %(goroutine.Semaphore expected, got table%)", function()
            local t = { acquire = s.acquire }
            t:acquire()
        end)
        assert.are.equal(2, s:available())
    end)
end)

describe("goroutine.atomic_int", function()
    it("add, load, store, swap, compare_and_swap", function()
        local a = G.atomic_int()
        assert.are.equal(0, a:load())
        assert.are.equal(5, a:add(5))
        assert.are.equal(2, a:add(-3))
        a:store(10)
        assert.are.equal(10, a:load())
        assert.are.equal(10, a:swap(7))
        assert.are.equal(7, a:load())
        assert.is_false(a:compare_and_swap(6, 1))
        assert.are.equal(7, a:load())
        assert.is_true(a:compare_and_swap(7, 1))
        assert.are.equal(1, a:load())
        assert.are.equal("AtomicInt(1)", tostring(a))
        assert.are.equal(-4, G.atomic_int(-4):load())
        assert.is_true(math.type(a:load()) == "integer")
    end)

    it("wraps around like Lua integers", function()
        local a = G.atomic_int(math.maxinteger)
        assert.are.equal(math.mininteger, a:add(1))
        assert.are.equal(math.maxinteger, a:add(-1))
        assert.are.equal(math.maxinteger + 1, math.mininteger)
    end)

    it("counts exactly under many goroutines", function()
        local a = G.atomic_int()
        local wg = G.wait_group()
        for _ = 1, 100 do
            wg:add()
            G.spawn(function()
                for _ = 1, 10 do
                    a:add(1)
                    G.sleep(0)
                end
                wg:done()
            end)
        end
        wg:wait()
        assert.are.equal(1000, a:load())
    end)

    it("is the same counter in the tasks of a pool (other VMs, other threads)", function()
        local a = G.atomic_int()
        local name = "sync_spec_atomic"
        assert.is_true(G.pool_create(name, { workers = 4 }))
        local ids = {}
        for i = 1, 8 do
            ids[i] = G.pool_submit(name, function()
                for _ = 1, 1000 do a:add(1) end
                return a
            end)
            assert.is_string(ids[i])
        end
        for i = 1, 8 do
            local ok, back = G.await(ids[i])
            assert.is_true(ok, tostring(back))
            assert.are.equal(a, back) -- back home: the same object
        end
        G.pool_wait(name)
        G.pool_close(name)
        assert.are.equal(8000, a:load())
    end)

    it("takes integers only", function()
        raises("bad argument #1 to '.*atomic_int' %(number has no integer representation%)", G.atomic_int, 0.5)
        raises("bad argument #1 to '.*atomic_int' %(integer expected, got string%)", G.atomic_int, "1")
        local a = G.atomic_int(3.0) -- a float with an integer value is that integer
        assert.are.equal(3, a:load())
        raises("bad argument #1 to 'add' %(number has no integer representation%)", function() a:add(1.5) end)
        raises("bad argument #1 to 'add' %(integer expected, got no value%)", function() a:add() end)
        raises("bad argument #1 to 'store' %(integer expected, got table%)", function() a:store({}) end)
        raises("bad argument #1 to 'swap' %(integer expected, got string%)", function() a:swap("2") end)
        raises("bad argument #2 to 'compare_and_swap' %(integer expected, got no value%)",
            function() a:compare_and_swap(3) end)
        raises("bad argument #1 to 'load' %(goroutine.AtomicInt expected, got goroutine.Mutex%)",
            function()
                local m = G.mutex()
                a.load(m)
            end)
        assert.are.equal(3, a:load())
    end)
end)

describe("goroutine.once", function()
    it("runs fn the first time only and returns its results to that caller", function()
        local o = G.once()
        assert.are.equal("Once(not run)", tostring(o))
        local runs = 0
        local r1, r2 = o:call(function(a, b)
            runs = runs + 1
            return a + b, "first"
        end, 40, 2)
        assert.are.equal(42, r1)
        assert.are.equal("first", r2)
        assert.are.equal(0, select("#", o:call(function() runs = runs + 1 end)))
        assert.are.equal(1, runs)
        assert.are.equal("Once(done)", tostring(o))
    end)

    it("runs fn exactly once under concurrency; the others wait until it has finished", function()
        local o = G.once()
        local runs, finished = 0, false
        local saw_finished = {}
        local wg = G.wait_group()
        for i = 1, 20 do
            wg:add()
            G.spawn(function()
                o:call(function()
                    runs = runs + 1
                    G.sleep(50)
                    finished = true
                end)
                saw_finished[i] = finished
                wg:done()
            end)
        end
        G.sleep(2)
        assert.are.equal("Once(running)", tostring(o))
        o:call(function() runs = runs + 1 end) -- the main chunk waits too
        assert.is_true(finished)
        wg:wait()
        assert.are.equal(1, runs)
        for i = 1, 20 do assert.is_true(saw_finished[i], "caller " .. i) end
    end)

    it("an error reaches the first caller and the once counts as done", function()
        local o = G.once()
        local ok, err = pcall(o.call, o, function() error("boom") end)
        assert.is_false(ok)
        assert.matches("boom", err)
        local ran = false
        o:call(function() ran = true end)
        assert.is_false(ran)
        assert.are.equal("Once(done)", tostring(o))
    end)

    it("waiters are released when fn raises", function()
        local o = G.once()
        local released = 0
        G.spawn(function()
            pcall(o.call, o, function()
                G.sleep(5)
                error("boom")
            end)
        end)
        for _ = 1, 3 do
            G.spawn(function()
                o:call(function() error("never runs") end)
                released = released + 1
            end)
        end
        assert.is_true(eventually(function() return released == 3 end))
    end)

    it("a first caller killed by a timeout counts as done; a killed waiter is harmless", function()
        local o = G.once()
        local waiter_done = false
        local first
        G.spawn(function()
            first = { G.timeout(200, function()
                o:call(function() G.sleep(1000) end) -- the first caller
            end) }
        end)
        G.sleep(1)
        assert.are.equal("Once(running)", tostring(o))
        G.spawn(function()
            o:call(function() error("never runs") end)
            waiter_done = true
        end)
        -- a waiter killed at 10 ms, while the first caller still runs
        killed_waiter(function() o:call(function() error("never runs") end) end)
        assert.are.equal("Once(running)", tostring(o))
        assert.is_false(waiter_done)
        -- the first caller is killed at 200 ms: done, the waiters go on
        o:call(function() error("never runs") end)
        assert.is_true(eventually(function() return first ~= nil and waiter_done end))
        assert.are.same({ false, "timeout after 200 ms" }, first)
        assert.are.equal("Once(done)", tostring(o))
    end)

    it("checks its arguments", function()
        local o = G.once()
        raises("bad argument #1 to 'call' %(function expected, got no value%)", function() o:call() end)
        raises("calling 'call' on bad self %(goroutine.Once expected, got table%)", function()
            local t = { call = o.call }
            t:call(print)
        end)
        assert.are.equal("Once(not run)", tostring(o))
    end)
end)

describe("goroutine.cond", function()
    it("a cond waiter killed by a timeout, with the usual <close> unlock, never breaks mutual exclusion", function()
        -- the killed waiter holds no mutex while its <close> handlers run:
        -- its guard's unlock must not release the lock another goroutine holds
        for _, mk in ipairs({ G.mutex, G.rwmutex }) do
            local m = mk()
            local cv = G.cond(m)
            local inside, most = 0, 0
            local function critical(ms)
                m:lock()
                inside = inside + 1
                if inside > most then most = inside end
                G.sleep(ms)
                inside = inside - 1
                m:unlock()
            end
            G.spawn(function()
                G.timeout(10, function()
                    m:lock()
                    local _ <close> = setmetatable({}, { __close = function() m:unlock() end })
                    cv:wait()
                end)
            end)
            G.sleep(1)
            local wg = G.wait_group()
            wg:add(2)
            G.spawn(function() G.sleep(4) critical(30) wg:done() end) -- holds it when the waiter dies
            G.spawn(function() G.sleep(14) critical(1) wg:done() end)
            wg:wait()
            assert.are.equal(1, most)
            assert.is_false(m:try_lock() == false) -- free again, and consistent
            m:unlock()
        end
    end)

    it("a producer/consumer queue with signal", function()
        local m = G.mutex()
        local c = G.cond(m)
        assert.are.equal("Cond(0 waiting)", tostring(c))
        local queue, consumed = {}, {}
        local wg = G.wait_group()
        for id = 1, 3 do
            wg:add()
            G.spawn(function()
                for _ = 1, 10 do
                    m:lock()
                    while #queue == 0 do c:wait() end
                    consumed[#consumed + 1] = table.remove(queue, 1)
                    m:unlock()
                end
                wg:done()
            end)
        end
        for i = 1, 30 do
            m:lock()
            queue[#queue + 1] = i
            c:signal()
            m:unlock()
            if i % 4 == 0 then G.sleep(1) end
        end
        wg:wait()
        table.sort(consumed)
        local want = {}
        for i = 1, 30 do want[i] = i end
        assert.are.same(want, consumed)
    end)

    it("wait unlocks the mutex while waiting and holds it again when it returns", function()
        local m = G.mutex()
        local c = G.cond(m)
        local held_after = nil
        G.spawn(function()
            m:lock()
            c:wait()
            held_after = not m:try_lock()
            m:unlock()
        end)
        G.sleep(1)
        assert.are.equal("Cond(1 waiting)", tostring(c))
        assert.is_true(m:try_lock()) -- the waiter let it go
        c:signal()
        G.sleep(1)
        assert.is_nil(held_after) -- woken, but the mutex is ours
        m:unlock()
        assert.is_true(eventually(function() return held_after ~= nil end))
        assert.is_true(held_after)
        assert.are.equal("Mutex(unlocked)", tostring(m))
    end)

    it("signal wakes one waiter (the longest waiting), broadcast wakes all", function()
        local m = G.mutex()
        local c = G.cond(m)
        local woken = {}
        for i = 1, 4 do
            G.spawn(function()
                m:lock()
                c:wait()
                woken[#woken + 1] = i
                m:unlock()
            end)
            G.sleep(1)
        end
        c:signal()
        assert.is_true(eventually(function() return #woken == 1 end))
        G.sleep(2)
        assert.are.same({ 1 }, woken)
        c:signal()
        assert.is_true(eventually(function() return #woken == 2 end))
        G.sleep(2)
        assert.are.same({ 1, 2 }, woken)
        c:broadcast()
        assert.is_true(eventually(function() return #woken == 4 end))
        assert.are.same({ 1, 2, 3, 4 }, woken)
        c:signal() -- nobody waits: nothing happens
        c:broadcast()
    end)

    it("wait without holding the mutex raises", function()
        local m = G.mutex()
        local c = G.cond(m)
        raises("Cond wait with its mutex not locked", function() c:wait() end)
        assert.are.equal("Cond(0 waiting)", tostring(c))
    end)

    it("works over an RWMutex's write side", function()
        local rw = G.rwmutex()
        local c = G.cond(rw)
        local ready = false
        G.spawn(function()
            G.sleep(2)
            rw:lock()
            ready = true
            c:broadcast()
            rw:unlock()
        end)
        rw:lock()
        while not ready do c:wait() end
        rw:unlock()
        assert.is_true(ready)
    end)

    it("a killed waiter does not hold the mutex, and a signal it got goes to the next", function()
        local m = G.mutex()
        local c = G.cond(m)
        -- killed while waiting for a signal
        killed_waiter(function()
            m:lock()
            c:wait()
        end)
        assert.are.equal("Mutex(unlocked)", tostring(m))
        assert.are.equal("Cond(0 waiting)", tostring(c))
        -- killed while waiting to lock the mutex again
        m:lock()
        G.spawn(killed_waiter, function()
            m:lock()
            c:wait()
        end)
        G.sleep(1)
        m:unlock()
        G.sleep(1)
        m:lock()
        c:signal()
        G.sleep(20) -- it is killed while waiting for the mutex we hold
        m:unlock()
        assert.is_true(m:try_lock())
        m:unlock()
        -- signalled, then killed before it ran: the next waiter gets the signal
        local got = false
        local h = G.async(G.timeout, 10, function()
            m:lock()
            c:wait()
            m:unlock()
        end)
        G.sleep(1)
        G.spawn(function()
            m:lock()
            c:wait()
            got = true
            m:unlock()
        end)
        G.sleep(1)
        G.spawn(function()
            c:signal()
            spin(30)
        end)
        local ok, tok = G.await(h)
        assert.is_true(ok)
        if tok then
            c:signal() -- the first one ran in time on a slow machine
        end
        assert.is_true(eventually(function() return got end))
        assert.is_true(m:try_lock())
        m:unlock()
    end)

    it("checks its arguments", function()
        raises("bad argument #1 to '.*cond' %(Mutex or RWMutex expected, got no value%)", G.cond)
        raises("bad argument #1 to '.*cond' %(Mutex or RWMutex expected, got goroutine.Semaphore%)",
            G.cond, G.semaphore(1))
        local c = G.cond(G.mutex())
        raises("calling 'signal' on bad self %(goroutine.Cond expected, got table%)", function()
            local t = { signal = c.signal }
            t:signal()
        end)
    end)
end)

describe("sync waits", function()
    it("from a plain coroutine inside a goroutine: an error, not a hang", function()
        in_goroutine(function()
            local m = G.mutex()
            m:lock()
            local co = coroutine.wrap(function() m:lock() end)
            local ok = pcall(co)
            assert.is_false(ok)
            m:unlock()
            assert.is_true(m:try_lock()) -- the failed wait left no waiter behind
            m:unlock()
        end)
    end)

    it("the main chunk locking a mutex nobody will unlock gets a deadlock error", function()
        local m = G.mutex()
        m:lock()
        local ok, err = pcall(m.lock, m)
        assert.is_false(ok)
        assert.matches("deadlock", err)
        assert.are.equal("Mutex(locked)", tostring(m))
        m:unlock()
        local s = G.semaphore(1)
        s:acquire()
        ok, err = pcall(s.acquire, s)
        assert.is_false(ok)
        assert.matches("deadlock", err)
        assert.are.equal("Semaphore(0/1)", tostring(s))
        s:release()
        local c = G.cond(m)
        m:lock()
        ok, err = pcall(c.wait, c)
        assert.is_false(ok)
        assert.matches("deadlock", err)
        assert.are.equal("Cond(0 waiting)", tostring(c))
        -- the failed wait let the mutex go and did not take it again
        assert.are.equal("Mutex(unlocked)", tostring(m))
    end)

    it("ends a plain script whose lock is never released with a deadlock error", function()
        local out, status = run_lua([[
            local G = require("goroutine")
            local m = G.mutex()
            G.spawn(function()
                m:lock()
                G.sleep(10)
                -- never unlocks
            end)
            G.sleep(1)
            m:lock()
            print("unreachable")
        ]], 10)
        assert.are_not.equal(124, status, "the deadlocked script hung")
        assert.are_not.equal(0, status)
        assert.matches("deadlock", out)
        assert.is_nil(out:find("unreachable", 1, true))
    end)

    it("examples run with plain lua5.4", function()
        for _, name in ipairs({ "mutex", "semaphore" }) do
            local f = assert(io.open("../../examples/" .. name .. ".lua"))
            local code = f:read("a")
            f:close()
            local out, status = run_lua(code, 20)
            assert.are.equal(0, status, out)
        end
    end)
end)
