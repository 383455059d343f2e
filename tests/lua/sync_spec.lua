-- goroutine.mutex, rwmutex: Go's sync package for goroutines.
local G = require("goroutine")
local now = G.now

local function in_goroutine(fn, ...)
    local ok, err = G.await(G.async(fn, ...))
    if not ok then error(err, 0) end
end

-- runs code in a fresh lua5.4 (a deadlock error ends the whole script)
local function run_lua(code, limit)
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
        "LUA_CPATH='%s/?.so;;' timeout -s KILL %d %s %s 2>&1; echo \"EXIT:$?\"", dir, limit or 20, lua, path)))
    local out = p:read("a")
    p:close()
    os.remove(path)
    local status = tonumber(out:match("EXIT:(%d+)%s*$"))
    if status == 137 then status = 124 end
    return (out:gsub("EXIT:%d+%s*$", "")), status
end

-- busy for ms milliseconds without yielding
local function spin(ms)
    local t0 = now()
    while now() - t0 < ms do end
end

local function raises(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    assert.is_false(ok, "expected an error matching " .. pattern)
    assert.matches(pattern, tostring(err))
end

-- a goroutine that waits on the primitive (through wait_fn) inside a
-- 10 ms timeout: it must be killed at the deadline
local function killed_waiter(wait_fn)
    local ok, err = G.timeout(10, wait_fn)
    assert.is_false(ok)
    assert.are.equal("timeout after 10 ms", err)
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
        G.sleep(2)
        assert.is_true(got)
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
        G.sleep(10)
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
        G.spawn(killed_waiter, function() rw:lock() end)
        local got = false
        G.spawn(function()
            G.sleep(1)
            rw:rlock()
            got = true
            rw:runlock()
        end)
        G.sleep(3)
        assert.is_false(got)
        G.sleep(20) -- the writer is killed: the reader behind it is let in
        assert.is_true(got)
        rw:runlock()
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
end)
