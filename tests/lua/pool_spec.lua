-- Pools on the embedded backend: pool_create, pool_submit, pool_wait,
-- pool_close, pool_stats and await(task_id).
local G = require("goroutine")
local now = G.now

local n = 0
local function fresh_name()
    n = n + 1
    return "spec_pool_" .. n
end

describe("goroutine.pool_create", function()
    it("returns true and refuses a second open pool of the same name", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 2 }))
        local ok, err = G.pool_create(name, { workers = 3 })
        assert.is_nil(ok)
        assert.are.equal("pool already exists: " .. name, err)
        assert.is_true(G.pool_close(name))
        assert.is_true(G.pool_create(name), "a closed pool's name is free again")
        assert.is_true(G.pool_close(name))
    end)

    it("has the documented defaults", function()
        local name = fresh_name()
        G.pool_create(name)
        local st = G.pool_stats(name)
        assert.are.equal(4, st.workers)
        assert.are.equal(8, st.queue)
        assert.are.equal(name, st.name)
        for _, k in ipairs({ "active", "completed", "failed", "queued", "submitted", "rejected" }) do
            assert.are.equal(0, st[k], k)
        end
        G.pool_close(name)
    end)

    it("rejects bad names and options with argument errors", function()
        assert.has_error(function() G.pool_create(nil) end)
        assert.has_error(function() G.pool_create("") end)
        assert.has_error(function() G.pool_create("has space") end)
        assert.has_error(function() G.pool_create("slash/name") end)
        assert.has_error(function() G.pool_create(fresh_name(), { workers = 0 }) end)
        assert.has_error(function() G.pool_create(fresh_name(), { workers = 1.5 }) end)
        assert.has_error(function() G.pool_create(fresh_name(), { workers = "many" }) end)
        assert.has_error(function() G.pool_create(fresh_name(), { queue = -1 }) end)
        assert.has_error(function() G.pool_create(fresh_name(), 5) end)
        assert.has_error(function() G.pool_create(fresh_name(), { max_deliveries = 0 }) end,
            "bad option 'max_deliveries' to 'pool_create' (integer from 1 to 1000000 expected, got 0)")
        assert.has_error(function() G.pool_create(fresh_name(), { max_deliveries = 1.5 }) end)
    end)

    it("takes max_deliveries (a fleet option; embedded pools run each task once)", function()
        local name = fresh_name()
        assert.is_true(G.pool_create(name, { workers = 1, max_deliveries = 1 }))
        local ok, v = G.await(G.pool_submit(name, function() return 7 end))
        assert.is_true(ok)
        assert.equal(7, v)
    end)
end)

describe("goroutine.pool_submit", function()
    local name
    before_each(function()
        name = fresh_name()
        G.pool_create(name, { workers = 4 })
    end)
    after_each(function()
        G.pool_wait(name)
        G.pool_close(name)
    end)

    it("returns a task id whose await gives the task's values", function()
        local id = G.pool_submit(name, function(a, b) return a + b, "x", nil, { deep = { 1, 2 } } end, 40, 2)
        assert.are.equal("string", type(id))
        local ok, sum, x, hole, t = G.await(id)
        assert.is_true(ok)
        assert.are.equal(42, sum)
        assert.are.equal("x", x)
        assert.is_nil(hole)
        assert.are.same({ deep = { 1, 2 } }, t)
        assert.are.same({ true, 42, "x", nil, { deep = { 1, 2 } } }, { G.await(id) }, "await again: same outcome")
    end)

    it("gives every outcome to a submitter that submits thousands without waiting", function()
        -- (past 1,024 tasks out, pool_submit itself takes the outcomes that
        -- came back: they must all still reach await, from the main chunk
        -- and from a goroutine, with a new closure per submit)
        local big = fresh_name()
        G.pool_create(big, { workers = 64, queue = 256 })
        local function submit_many(count, base)
            local ids = {}
            for i = 1, count do
                ids[i] = assert(G.pool_submit(big, function(x) return x * 2 end, base + i))
            end
            return ids
        end
        local ids = submit_many(3000, 0)
        local spawned, wg = nil, G.wait_group()
        wg:add(1)
        G.spawn(function()
            spawned = submit_many(3000, 3000)
            wg:done()
        end)
        wg:wait()
        G.pool_wait(big)
        for i, id in ipairs(ids) do
            local ok, v = G.await(id)
            assert(ok and v == 2 * i, "task " .. i)
        end
        for i, id in ipairs(spawned) do
            local ok, v = G.await(id)
            assert(ok and v == 2 * (3000 + i), "spawned task " .. i)
        end
        local st = G.pool_stats(big)
        assert.are.equal(6000, st.completed)
        assert.are.equal(0, st.failed)
        G.pool_close(big)
    end)

    it("copies upvalues: a task never mutates the submitter's variables", function()
        local counter, shared = 10, { v = 1 }
        local id = G.pool_submit(name, function()
            counter = counter + 1
            shared.v = 99
            return counter, shared.v
        end)
        local ok, c, v = G.await(id)
        assert.is_true(ok)
        assert.are.equal(11, c)
        assert.are.equal(99, v)
        assert.are.equal(10, counter)
        assert.are.equal(1, shared.v)
    end)

    it("runs each task with fresh globals", function()
        local a = G.pool_submit(name, function() spec_leak = "set" return spec_leak end)
        assert.are.same({ true, "set" }, { G.await(a) })
        local b = G.pool_submit(name, function() return spec_leak end)
        assert.are.same({ true }, { G.await(b) })
        assert.is_nil(rawget(_G, "spec_leak"))
    end)

    it("fails a task that raises: await gives false and a traceback naming this file", function()
        local id = G.pool_submit(name, function() error("task exploded") end)
        local ok, err = G.await(id)
        assert.is_false(ok)
        assert.matches("task exploded", err)
        assert.matches("pool_spec.lua:%d+", err)
        assert.matches("stack traceback", err)
        G.pool_wait(name)
        assert.are.equal(1, G.pool_stats(name).failed)
    end)

    it("names what cannot travel and where", function()
        local conn = coroutine.create(function() end)
        local id, err = G.pool_submit(name, function() return conn end)
        assert.is_nil(id)
        assert.matches("upvalue 'conn'", err)
        assert.matches("pool_spec.lua:%d+", err)
        local id2, err2 = G.pool_submit(name, function(x) return x end, io.stdout)
        assert.is_nil(id2)
        assert.matches("argument #3 %(userdata%)", err2) -- pool_submit's own numbering
    end)

    it("reports a missing pool and a closed one", function()
        assert.are.same({ nil, "pool not found: no_such_pool" },
            { G.pool_submit("no_such_pool", function() end) })
        local other = fresh_name()
        G.pool_create(other)
        G.pool_close(other)
        assert.are.same({ nil, "pool not found: " .. other }, { G.pool_submit(other, function() end) })
        assert.has_error(function() G.pool_submit(name, "not a function") end)
    end)

    it("a WaitGroup captured by tasks is the same WaitGroup", function()
        local wg = G.wait_group()
        wg:add(12)
        for _ = 1, 12 do
            G.pool_submit(name, function() G.sleep(5) wg:done() end)
        end
        wg:wait()
        assert.are.equal(0, wg:count())
        local ok, back = G.await(G.pool_submit(name, function() return wg end))
        assert.is_true(ok)
        assert.are.equal(wg, back)
    end)
end)

describe("tables with metatables in pool tasks", function()
    local name
    before_each(function()
        name = fresh_name()
        G.pool_create(name, { workers = 2 })
    end)
    after_each(function()
        G.pool_wait(name)
        G.pool_close(name)
    end)

    local Account = {}
    Account.__index = Account
    function Account.new(owner, balance) return setmetatable({ owner = owner, balance = balance }, Account) end
    function Account:deposit(n)
        self.balance = self.balance + n
        return self.balance
    end

    it("keep their methods (a class-style __index metatable), as arguments and upvalues", function()
        local acc = Account.new("ana", 10)
        local ok, v, owner = G.await(G.pool_submit(name, function(a) return a:deposit(5), a.owner end, acc))
        assert.is_true(ok, tostring(v))
        assert.are.equal(15, v)
        assert.are.equal("ana", owner)
        assert.are.equal(10, acc.balance) -- a copy was changed
        local other = Account.new("bia", 1)
        ok, v = G.await(G.pool_submit(name, function() return other:deposit(1) end))
        assert.is_true(ok, tostring(v))
        assert.are.equal(2, v)
    end)

    it("keep __tostring and __add", function()
        local V = {}
        V.__index = V
        V.__tostring = function(v) return "(" .. v.x .. ", " .. v.y .. ")" end
        V.__add = function(a, b) return setmetatable({ x = a.x + b.x, y = a.y + b.y }, V) end
        local a, b = setmetatable({ x = 1, y = 2 }, V), setmetatable({ x = 10, y = 20 }, V)
        local ok, s, sum = G.await(G.pool_submit(name, function(p, q) return tostring(p + q), p + q end, a, b))
        assert.is_true(ok, tostring(s))
        assert.are.equal("(11, 22)", s)
        assert.are.equal("(11, 22)", tostring(sum)) -- and back with the task's outcome
    end)

    it("a metatable shared by two objects stays shared, both ways", function()
        local a, b = Account.new("a", 1), Account.new("b", 2)
        local ok, same, ra, rb = G.await(G.pool_submit(name, function(x, y)
            return getmetatable(x) == getmetatable(y), x, y
        end, a, b))
        assert.is_true(ok, tostring(same))
        assert.is_true(same)
        assert.are.equal(getmetatable(ra), getmetatable(rb))
        assert.are.equal(3, ra:deposit(2))
        assert.are.equal(5, rb:deposit(3))
    end)

    it("a metatable that is a loaded module travels by name", function()
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir))
        local modname = "pool_spec_shape_" .. tostring(os.time())
        local f = assert(io.open(dir .. "/" .. modname .. ".lua", "w"))
        f:write("local M = {}\nM.__index = M\nfunction M.area(s) return s.w * s.h end\nreturn M\n")
        f:close()
        local saved = package.path
        package.path = dir .. "/?.lua;" .. package.path
        local Shape = require(modname)
        local ok, area, by_name = G.await(G.pool_submit(name, function(s, mod)
            return s:area(), getmetatable(s) == package.loaded[mod]
        end, setmetatable({ w = 2, h = 3 }, Shape), modname))
        package.path = saved
        package.loaded[modname] = nil
        os.remove(dir .. "/" .. modname .. ".lua")
        os.remove(dir)
        assert.is_true(ok, tostring(area))
        assert.are.equal(6, area)
        assert.is_true(by_name, "the task's metatable is its VM's loaded module")
    end)

    it("a metatable that cannot travel fails the submit, naming it", function()
        local obj = setmetatable({}, { __index = { conn = coroutine.create(function() end) } })
        local id, err = G.pool_submit(name, function(o) return o end, obj)
        assert.is_nil(id)
        assert.are.equal("cannot send field '__index.conn' (thread) of metatable of argument #3", err)
        id, err = G.pool_submit(name, function() return obj end)
        assert.is_nil(id)
        assert.matches("^cannot send field '__index.conn' %(thread%) of metatable of upvalue 'obj' "
            .. "of function at [^:]*pool_spec.lua:%d+$", err)
    end)
end)

describe("async handles captured by pool tasks", function()
    local name
    before_each(function()
        name = fresh_name()
        G.pool_create(name, { workers = 4 })
    end)
    after_each(function()
        G.pool_wait(name)
        G.pool_close(name)
    end)

    it("await the same goroutine from inside the task", function()
        local h = G.async(function() G.sleep(50) return "from home", 7 end)
        local id = G.pool_submit(name, function()
            local ok, a, b = G.await(h)
            return ok, a, b
        end)
        assert.are.same({ true, true, "from home", 7 }, { G.await(id) })
        -- once resolved, later tasks get the same outcome at once
        assert.are.same({ true, true, "from home", 7 }, { G.await(G.pool_submit(name, function() return G.await(h) end)) })
    end)

    it("carry failures, work in await_all and come back as the same object", function()
        local hs = { G.async(function() G.sleep(20) return 1 end), G.async(function() error("nope") end) }
        local id = G.pool_submit(name, function()
            local rs = G.await_all(hs)
            return rs[1].success, rs[1].values[1], rs[2].success, rs[2].error, hs[1]
        end)
        local ok, s1, v1, s2, e2, back = G.await(id)
        assert.is_true(ok)
        assert.is_true(s1)
        assert.are.equal(1, v1)
        assert.is_false(s2)
        assert.matches("nope", e2)
        assert.are.equal(hs[1], back)
    end)
end)

describe("backpressure", function()
    it("suspends the submitter on a full queue: 50 tasks, 5 workers, all complete", function()
        local name = fresh_name()
        G.pool_create(name, { workers = 5 })
        local ticks = 0
        local ticker = G.async(function()
            for _ = 1, 20 do G.sleep(10) ticks = ticks + 1 end
        end)
        local t0 = now()
        G.await(G.async(function()
            for i = 1, 50 do
                local id, err = G.pool_submit(name, function() G.sleep(20) return i end)
                assert(id, err)
            end
        end))
        G.pool_wait(name)
        local elapsed = now() - t0
        local st = G.pool_stats(name)
        assert.are.equal(50, st.completed)
        assert.are.equal(0, st.failed)
        assert.are.equal(50, st.submitted)
        assert.are.equal(0, st.rejected)
        assert.are.equal(0, st.active)
        assert.are.equal(0, st.queued)
        assert.is_true(elapsed >= 190, "10 rounds of 20 ms, took " .. elapsed)
        G.await(ticker)
        assert.are.equal(20, ticks, "other goroutines ran while the submitter waited")
        G.pool_close(name)
    end)

    it("with block = false returns nil, 'pool queue is full' at once", function()
        local name = fresh_name()
        G.pool_create(name, { workers = 1, queue = 2, block = false })
        local ids = {}
        for i = 1, 3 do ids[i] = G.pool_submit(name, function() G.sleep(50) end) end
        assert.is_string(ids[3])
        local t0 = now()
        local id, err = G.pool_submit(name, function() end)
        assert.is_true(now() - t0 < 20)
        assert.is_nil(id)
        assert.are.equal("pool queue is full", err)
        G.pool_wait(name)
        local st = G.pool_stats(name)
        assert.are.equal(3, st.completed)
        assert.are.equal(1, st.rejected)
        G.pool_close(name)
    end)

    it("1000 workers run 1000 I/O-bound tasks at once", function()
        local name = fresh_name()
        G.pool_create(name, { workers = 1000, queue = 1000 })
        local t0 = now()
        for _ = 1, 1000 do G.pool_submit(name, function() G.sleep(200) end) end
        G.pool_wait(name)
        local elapsed = now() - t0
        assert.is_true(elapsed < 1500, "took " .. elapsed .. " ms")
        assert.are.equal(1000, G.pool_stats(name).completed)
        G.pool_close(name)
    end)
end)

describe("pool_wait, pool_stats, pool_close", function()
    it("pool_wait suspends only the caller and stats are exact after it", function()
        local name = fresh_name()
        G.pool_create(name, { workers = 3, queue = 100 })
        for i = 1, 30 do
            G.pool_submit(name, function() G.sleep(5) if i % 10 == 0 then error("every tenth") end end)
        end
        local progressed = 0
        local other = G.async(function() for _ = 1, 5 do G.sleep(1) progressed = progressed + 1 end end)
        assert.is_true(G.pool_wait(name))
        local st = G.pool_stats(name)
        assert.are.equal(27, st.completed)
        assert.are.equal(3, st.failed)
        assert.are.equal(30, st.completed + st.failed)
        assert.are.equal(0, st.active + st.queued)
        G.await(other)
        assert.are.equal(5, progressed)
        assert.is_true(G.pool_close(name))
        assert.are.same({ nil, "pool not found: " .. name }, { G.pool_stats(name) })
        assert.are.same({ nil, "pool not found: " .. name }, { G.pool_wait(name) })
        assert.are.same({ nil, "pool not found: " .. name }, { G.pool_close(name) })
    end)

    it("pool_wait on an idle pool returns at once", function()
        local name = fresh_name()
        G.pool_create(name)
        local t0 = now()
        assert.is_true(G.pool_wait(name))
        assert.is_true(now() - t0 < 20)
        G.pool_close(name)
    end)

    it("pool_wait of its own pool inside a task raises instead of waiting forever", function()
        local name, other = fresh_name(), fresh_name()
        G.pool_create(name, { workers = 2 })
        G.pool_create(other, { workers = 1 })
        local id = G.pool_submit(name, function(p, q)
            -- another pool: waited for as usual
            G.pool_submit(q, function() G.sleep(5) end)
            local waited = G.pool_wait(q)
            -- its own, from the task and from a goroutine it started
            local ok1, e1 = pcall(G.pool_wait, p)
            local wg, ok2, e2 = G.wait_group(), nil, nil
            wg:add(1)
            G.spawn(function() ok2, e2 = pcall(G.pool_wait, p) wg:done() end)
            wg:wait()
            return waited, ok1, e1, ok2, e2
        end, name, other)
        local ok, waited, ok1, e1, ok2, e2 = G.await(id)
        assert.is_true(ok, tostring(waited))
        assert.is_true(waited)
        assert.is_false(ok1)
        assert.matches("pool_wait%('" .. name .. "'%) inside task " .. id:gsub("%-", "%%-")
            .. " of that pool would wait for itself", e1)
        assert.is_false(ok2)
        assert.matches("would wait for itself", e2)
        -- the main VM still waits for it
        assert.is_true(G.pool_wait(name))
        G.pool_close(name)
        G.pool_close(other)
    end)

    it("pool_close lets queued and running tasks finish", function()
        local name = fresh_name()
        G.pool_create(name, { workers = 1, queue = 10 })
        local ids = {}
        for i = 1, 5 do ids[i] = G.pool_submit(name, function() G.sleep(10) return i end) end
        assert.is_true(G.pool_close(name))
        for i = 1, 5 do
            assert.are.same({ true, i }, { G.await(ids[i]) })
        end
    end)

    it("await of an unknown task id is an expected failure", function()
        local ok, err = G.await("nope-1")
        assert.is_false(ok)
        assert.matches("unknown task id", err)
    end)
end)

describe("parallelism", function()
    it("runs concurrent CPU-bound tasks on different OS threads", function()
        local cores = 0
        local f = io.popen("nproc")
        if f then cores = tonumber(f:read("l")) or 0 f:close() end
        if cores < 2 or os.getenv("MUTIRAO_PROCS") == "1" then
            pending("one core: nothing to compare")
            return
        end
        local name = fresh_name()
        G.pool_create(name, { workers = 2 })
        -- each task reports the OS thread it ran on (Linux: /proc/thread-self)
        local function burn()
            local x = 0
            for i = 1, 2000000 do x = x + i % 3 end
            local st = io.open("/proc/thread-self/stat")
            local tid = st:read("n")
            st:close()
            return tid
        end
        local a, b = G.pool_submit(name, burn), G.pool_submit(name, burn)
        local oka, ta = G.await(a)
        local okb, tb = G.await(b)
        G.pool_close(name)
        assert.is_true(oka and okb)
        assert.are_not.equal(ta, tb)
        local me = io.open("/proc/thread-self/stat")
        local main_tid = me:read("n")
        me:close()
        assert.are_not.equal(main_tid, ta)
        assert.are_not.equal(main_tid, tb)
    end)
end)
