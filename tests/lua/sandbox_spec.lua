-- The task sandbox on pool VMs (lua/pool/sandbox.c), through the embedded
-- backend: a pool created with `allow` runs its tasks sandboxed (only what
-- the list names, beyond the safe default); every denied function raises
-- an error naming it and the setting; what is allowed works; the ways a task
-- could get an original back lead to the same gates; pools without `allow`
-- keep today's behaviour on the same VMs. (The worker's own setting,
-- worker.allow, is the fleet case integration.fleet_sandbox.)
local G = require("goroutine")

local n = 0
local function pool(allow)
    n = n + 1
    local name = "sandbox_pool_" .. n
    assert.is_true(G.pool_create(name, { workers = 4, allow = allow }))
    return name
end

local function run(name, fn, ...)
    return G.await(G.pool_submit(name, fn, ...))
end

-- The task fails with "WHAT is not allowed in this pool's tasks (... lacks 'SETTING')".
local function denied(name, what, setting, fn, ...)
    local ok, err = run(name, fn, ...)
    assert.is_false(ok, what .. " ran")
    local want = what:gsub("[%.%(%)%[%]%-%+]", "%%%0") .. " is not allowed in this pool's tasks "
        .. "%(pool_create option allow = {...} lacks '" .. setting:gsub("%.", "%%.") .. "'%)"
    assert.matches(want, err)
end

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)
local readable = tmp .. "/readable.txt"
do
    local f = assert(io.open(readable, "w"))
    f:write("hello\n")
    f:close()
end
-- a binary chunk and a "C module" (never opened when denied: any bytes do)
local binfile = tmp .. "/bin.luac"
do
    local f = assert(io.open(binfile, "wb"))
    f:write(string.dump(function() return "from bytecode" end))
    f:close()
    f = assert(io.open(tmp .. "/binmod.lua", "wb"))
    f:write(string.dump(function() return { bin = true } end))
    f:close()
    f = assert(io.open(tmp .. "/sbfake.so", "wb"))
    f:write("not a library")
    f:close()
    f = assert(io.open(tmp .. "/textmod.lua", "w"))
    f:write("return { ok = os.execute ~= nil, run = function() return os.execute('true') end }")
    f:close()
end

describe("pool_create's allow option", function()
    it("takes a list of settings and refuses anything else", function()
        local ok, err = pcall(G.pool_create, "sandbox_bad_1", { allow = "os" })
        assert.is_false(ok)
        assert.matches("bad option 'allow' to 'pool_create' %(list of strings expected, got string%)", err)
        ok, err = pcall(G.pool_create, "sandbox_bad_2", { allow = { "os.exec" } })
        assert.is_false(ok)
        assert.matches("bad option 'allow' to 'pool_create' %(item 1: one of expected: os, os.execute", err)
        ok, err = pcall(G.pool_create, "sandbox_bad_3", { allow = { "require.lpeg" } })
        assert.is_false(ok)
        assert.matches("item 1: one of expected", err)
        ok, err = pcall(G.pool_create, "sandbox_bad_4", { allow = { 1 } })
        assert.is_false(ok)
        assert.matches("item 1: string expected, got number", err)
        ok, err = pcall(G.pool_create, "sandbox_bad_5", { allow = { x = "os" } })
        assert.is_false(ok)
        assert.matches("list of strings expected, got key x", err)
    end)
end)

describe("a sandboxed pool task", function()
    local strict = pool({})

    it("cannot run commands or change files", function()
        denied(strict, "os.execute", "os.execute", function() return os.execute("true") end)
        denied(strict, "os.execute", "os.execute", function() return os.execute() end)
        denied(strict, "io.popen", "io.popen", function() return io.popen("id") end)
        denied(strict, "os.remove", "os.remove", function(p) return os.remove(p) end, readable)
        denied(strict, "os.rename", "os.rename", function(p) return os.rename(p, p .. ".x") end, readable)
        denied(strict, "os.tmpname", "os.tmpname", function() return os.tmpname() end)
        for _, mode in ipairs({ "w", "a", "r+", "wb", "a+" }) do
            denied(strict, "io.open in mode '" .. mode .. "'", "io.open.write",
                function(p, m) return io.open(p, m) end, readable, mode)
        end
        denied(strict, "io.output of a file name", "io.open.write",
            function(p) return io.output(p) end, readable)
        denied(strict, "io.tmpfile", "io.open.write", function() return io.tmpfile() end)
        local f = io.open(readable)
        assert.are.equal("hello", f:read("l")) -- untouched
        f:close()
    end)

    it("keeps os.exit failing the task", function()
        local ok, err = run(strict, function() os.exit(3) end)
        assert.is_false(ok)
        assert.matches("os.exit called in a pool task", err)
    end)

    it("cannot load C code or bytecode", function()
        denied(strict, "package.loadlib", "package.loadlib",
            function(p) return package.loadlib(p, "luaopen_x") end, tmp .. "/sbfake.so")
        denied(strict, "load of a binary chunk", "load.binary",
            function() return load(string.dump(function() return 1 end)) end)
        denied(strict, "load of a binary chunk", "load.binary", function()
            local s, done = string.dump(function() return 1 end), false
            return load(function()
                if done then return nil end
                done = true
                return s
            end)
        end)
        denied(strict, "loadfile of a binary chunk", "load.binary", function(p) return loadfile(p) end, binfile)
        denied(strict, "dofile of a binary chunk", "load.binary", function(p) return dofile(p) end, binfile)
        denied(strict, "require of binary chunk '" .. tmp .. "/binmod.lua'", "load.binary", function(dir)
            package.path = dir .. "/?.lua"
            return require("binmod")
        end, tmp)
        denied(strict, "require of C module 'sbfake' (" .. tmp .. "/sbfake.so)", "require", function(dir)
            package.cpath = dir .. "/?.so"
            return require("sbfake")
        end, tmp)
        denied(strict, "require of C module 'sbfake.sub' (" .. tmp .. "/sbfake.so)", "require", function(dir)
            package.cpath = dir .. "/?.so"
            return require("sbfake.sub")
        end, tmp)
    end)

    it("has no debug library but debug.traceback", function()
        for _, fname in ipairs({ "getinfo", "getlocal", "getregistry", "getupvalue", "setupvalue",
            "getmetatable", "setmetatable", "sethook", "gethook", "upvalueid", "setuservalue" }) do
            denied(strict, "debug." .. fname, "debug", function(f) return debug[f](print, 1) end, fname)
        end
        assert.are.same({ true, "string" }, { run(strict, function() return type(debug.traceback("x")) end) })
    end)

    it("has no exec or http module", function()
        denied(strict, "exec.run", "exec", function() return exec.run("true") end)
        denied(strict, "http.get", "http", function() return http.get("http://127.0.0.1:1/") end)
        denied(strict, "exec", "exec", function()
            local was = package.loaded.exec
            package.loaded.exec = nil
            local ok, mod = pcall(require, "exec")
            package.loaded.exec = was
            if not ok then error(mod, 0) end
            return mod.run("true")
        end)
    end)

    it("still reads files, loads text and uses the safe libraries", function()
        assert.are.same({ true, "hello" }, { run(strict, function(p)
            local f = assert(io.open(p, "r"))
            local l = f:read("l")
            f:close()
            return l
        end, readable) })
        assert.are.same({ true, "hello" }, { run(strict, function(p)
            for l in io.lines(p) do return l end
        end, readable) })
        assert.are.same({ true, 42 }, { run(strict, function() return load("return 40 + 2")() end) })
        assert.are.same({ true, 7 }, { run(strict, function(p)
            local f = io.open(p .. "/t.lua", "r")
            if f then f:close() end
            return select("#", 1, 2, 3) + 4
        end, tmp) })
        assert.are.same({ true, true, "ab" }, { run(strict, function()
            return type(os.time()) == "number" and os.getenv("HOME") ~= false, ("a"):rep(1) .. "b"
        end) })
        -- a Lua module on package.path loads (text) and sees the same gates
        local ok, m = run(strict, function(dir)
            package.path = dir .. "/?.lua"
            local mod = require("textmod")
            return { ok = mod.ok, ran = pcall(mod.run) }
        end, tmp)
        assert.is_true(ok)
        assert.are.same({ ok = true, ran = false }, m)
    end)

    it("cannot get the originals back", function()
        local ex = os.execute -- travels by name: the worker's own os.execute
        local escapes = {
            function() return package.loaded.os.execute("true") end,
            function() return require("os").execute("true") end,
            function() return _G.os.execute("true") end,
            function() return rawget(_G, "os").execute("true") end,
            function() return getmetatable(_ENV).__index.os.execute("true") end,
            function() return load("return os.execute('true')")() end,
            function() return load("return os.execute('true')", "x", "t", { os = os })() end,
            function() return ex("true") end,
            function() return coroutine.wrap(function() return os.execute("true") end)() end,
            function()
                local g = require("goroutine")
                local ok, e = g.await(g.async(function() return os.execute("true") end))
                if not ok then error(e, 0) end
                return e
            end,
            function()
                local g, wg, r = require("goroutine"), require("goroutine").wait_group(), nil
                wg:add(1)
                g.spawn(function() r = { pcall(os.execute, "true") } wg:done() end)
                wg:wait()
                if not r[1] then error(r[2], 0) end
                return r[2]
            end,
        }
        for i, fn in ipairs(escapes) do
            local ok, err = run(strict, fn)
            assert.is_false(ok, "escape " .. i .. " ran")
            assert.matches("not allowed in this pool's tasks", tostring(err), 1, true)
        end
        -- the library cannot be loaded again
        local ok, err = run(strict, function()
            local was = package.loaded.os
            package.loaded.os = nil
            local got, mod = pcall(require, "os")
            package.loaded.os = was
            if not got then error(mod, 0) end
            return mod.execute("true")
        end)
        assert.is_false(ok)
        assert.matches("module 'os' not found", err, 1, true)
        -- the string metatable leads to the string library only
        assert.are.same({ true, false }, { run(strict, function()
            return getmetatable("").__index.execute ~= nil
        end) })
        -- the searchers are the gated ones
        ok, err = run(strict, function(dir)
            package.cpath = dir .. "/?.so"
            return package.searchers[3]("sbfake")
        end, tmp)
        assert.is_false(ok)
        assert.matches("require of C module 'sbfake'", err, 1, true)
    end)

    it("keeps its narrowing in the <close> handlers of its cancelled goroutines", function()
        local ok, got, err = run(strict, function()
            local g, res = require("goroutine"), {}
            g.timeout(30, function()
                local x <close> = setmetatable({}, { __close = function()
                    res[1], res[2] = pcall(os.execute, "true")
                end })
                g.sleep(10000)
            end)
            return res[1], res[2]
        end)
        assert.is_true(ok)
        assert.is_false(got)
        assert.matches("os.execute is not allowed in this pool's tasks", err, 1, true)
    end)

    it("passes its narrowing on to the tasks it submits", function()
        local open = pool(nil)
        local ok, inner_ok, err = run(strict, function(p)
            local g = require("goroutine")
            return g.await(g.pool_submit(p, function() return os.execute("true") end))
        end, open)
        assert.is_true(ok)
        assert.is_false(inner_ok)
        assert.matches("os.execute is not allowed in this pool's tasks", err, 1, true)
    end)
end)

describe("sandboxed tasks on one VM", function()
    -- every VM runs tasks of both pools: a change one task makes to a table
    -- it reaches must not show in another task (a later one, of another
    -- pool with a wider allowance)
    local attacker = pool({})
    local victim = pool({ "os.execute", "io.open.write" })
    local marker = tmp .. "/stolen"
    local S = string -- travels as a module reference

    local function each_vm(name, fn, ...)
        local out = {}
        for i = 1, 8 do out[i] = { run(name, fn, ...) } end
        return out
    end

    it("cannot replace a library function for other tasks", function()
        for _, r in ipairs(each_vm(attacker, function(m)
            local orig = string.format
            string.format = function(fmt, ...)
                pcall(os.execute, "echo stolen >> " .. m)
                return orig(fmt, ...)
            end
            rawset(string, "rep", function() return "poisoned" end)
            S.upper = function() return "POISONED" end
            getmetatable("").__index.lower = function() return "poisoned" end
            rawset(getmetatable(""), "__add", function() return "poisoned" end)
            return string.format("%s", "own view") -- its own change holds for itself
        end, marker)) do
            assert.are.same({ true, "own view" }, r)
        end
        for _, r in ipairs(each_vm(victim, function(pw)
            return string.format("login %s", pw), string.rep("a", 2), S.upper("x"), ("X"):lower(),
                pcall(function() return "a" + {} end)
        end, "s3cret")) do
            assert.are.same({ true, "login s3cret", "aa", "X", "x", false }, { table.unpack(r, 1, 6) })
        end
        assert.is_nil(io.open(marker), "the replaced string.format ran in another task")
    end)

    it("gets a view of the string metatable, not the VM's", function()
        assert.are.same({ true, true, true, false, "X" }, { run(attacker, function()
            local mt = getmetatable("")
            local changed = pcall(setmetatable, mt, {})
            rawset(mt, "__index", {}) -- its view only
            return mt == getmetatable("a"), mt.__index ~= string, changed, ("x"):upper()
        end) })
    end)

    it("cannot add a searcher, a preload or a global for later tasks", function()
        each_vm(attacker, function()
            table.insert(package.searchers, 1, function(n) return function() return "evil " .. n end end)
            package.preload.nosuchmod = function() return "evil preload" end
            package.path = "/nonexistent/?.lua"
            rawset(_G, "QA_STOLEN", {})
            load("leaked = true; string.len = nil")()
            return true
        end)
        for _, r in ipairs(each_vm(victim, function(dir)
            local ok, err = pcall(require, "nosuchmod")
            package.path = dir .. "/?.lua"
            local m = require("textmod")
            return ok, err:match("module 'nosuchmod' not found") ~= nil, #package.searchers,
                rawget(_G, "QA_STOLEN"), leaked, string.len("abc"), m.ok
        end, tmp)) do
            assert.are.same({ true, false, true, 4, nil, nil, 3, true }, { table.unpack(r, 1, 8) })
        end
    end)

    it("keeps modules it loads to itself", function()
        each_vm(attacker, function(dir)
            package.path = dir .. "/?.lua"
            local m = require("textmod")
            m.run = function() return "poisoned" end
            return true
        end, tmp)
        for _, r in ipairs(each_vm(victim, function(dir)
            package.path = dir .. "/?.lua"
            return require("textmod").run()
        end, tmp)) do
            assert.are.same({ true, true, "exit", 0 }, r)
        end
    end)

    it("cannot reach the VM's internal functions", function()
        local g = require("goroutine")
        local seth = g._set_error_handler -- travels by name
        for _, r in ipairs(each_vm(attacker, function()
            local G = require("goroutine")
            return G._set_error_handler, G._run_scope, package.loaded.goroutine._context,
                type(G.spawn), rawget(G, "_set_error_handler")
        end)) do
            assert.are.same({ true, nil, nil, nil, "function", nil }, { table.unpack(r, 1, 6) })
        end
        local ok, err = run(attacker, function() return seth(print) end)
        assert.is_false(ok)
        assert.matches("has no function '_set_error_handler'", err, 1, true)
    end)

    it("cannot stop or retune the VM's collector", function()
        for _, opt in ipairs({ "stop", "restart", "incremental", "generational", "setpause", "setstepmul" }) do
            local ok, err = run(attacker, function(o) return collectgarbage(o) end, opt)
            assert.is_false(ok)
            assert.matches("collectgarbage('" .. opt .. "') is not allowed in sandboxed tasks", err, 1, true)
        end
        assert.are.same({ true, true, "number" }, { run(attacker, function()
            collectgarbage()
            return collectgarbage("isrunning"), type(collectgarbage("count"))
        end) })
    end)

    it("has io.output and io.input of its own", function()
        local out = tmp .. "/own-output.txt"
        each_vm(victim, function(p)
            io.output(p)
            io.write("mine\n")
            io.input(p)
            return true
        end, out)
        for _, r in ipairs(each_vm(attacker, function()
            return io.output() == io.stdout, io.input() == io.stdin
        end)) do
            assert.are.same({ true, true, true }, r)
        end
    end)
end)

describe("a sandboxed task's files and streams", function()
    local strict = pool({})

    it("cannot open a file for writing by a number as its name", function()
        local ok, cwd = run(strict, function() return os.getenv("PWD") end)
        assert.is_true(ok)
        for _, name in ipairs({ 4242, 7.5, -0.0 }) do
            denied(strict, "io.output of a file name", "io.open.write",
                function(n) return io.output(n) end, name)
        end
        local f = io.open((cwd or ".") .. "/4242")
        assert.is_nil(f) -- not created
        -- a file handle is no name: allowed
        assert.are.same({ true, true }, { run(strict, function()
            return io.type(io.output(io.stdout)) == "file"
        end) })
    end)

    it("reads only regular files: a FIFO or a pipe is refused at once", function()
        local fifo = tmp .. "/fifo"
        assert.is_true(os.execute("mkfifo " .. fifo))
        local what = "'" .. fifo .. "' (a FIFO or pipe)"
        local t0 = os.time()
        denied(strict, "io.open of " .. what, "io.open.special", function(p) return io.open(p, "r") end, fifo)
        denied(strict, "io.open of " .. what, "io.open.special", function(p) return io.open(p) end, fifo)
        denied(strict, "io.lines of " .. what, "io.open.special", function(p) return io.lines(p) end, fifo)
        denied(strict, "io.input of " .. what, "io.open.special", function(p) return io.input(p) end, fifo)
        denied(strict, "loadfile of " .. what, "io.open.special", function(p) return loadfile(p) end, fifo)
        denied(strict, "dofile of " .. what, "io.open.special", function(p) return dofile(p) end, fifo)
        denied(strict, "require of " .. what, "io.open.special", function(d)
            package.path = d .. "/?"
            return require("fifo")
        end, tmp)
        -- /proc/self/fd/N of a pipe of this process (a worker's pipe)
        local holder = io.popen("sleep 5")
        local ls = io.popen("ls -l /proc/$PPID/fd 2>/dev/null")
        local pipefd
        for l in ls:lines() do
            pipefd = pipefd or l:match("(%d+) %-> pipe:")
        end
        ls:close()
        assert.is_not_nil(pipefd)
        denied(strict, "io.open of '/proc/self/fd/" .. pipefd .. "' (a FIFO or pipe)", "io.open.special",
            function(p) return io.open(p, "r"):read(1) end, "/proc/self/fd/" .. pipefd)
        assert.is_true(os.time() - t0 <= 2, "a refusal waited")
        holder:close()
        -- a character device too; allowed by io.open.special
        denied(strict, "io.open of '/dev/zero' (a character device)", "io.open.special",
            function() return io.open("/dev/zero"):read(4) end)
        local special = pool({ "io.open.special" })
        assert.are.same({ true, "" }, { run(special, function() return io.open("/dev/null"):read("a") end) })
        -- regular files still read
        assert.are.same({ true, "hello" }, { run(strict, function(p) return io.open(p):read("l") end, readable) })
    end)

    it("cannot seek the worker's standard streams", function()
        for _, s in ipairs({ "stdout", "stderr", "stdin" }) do
            local ok, err = run(strict, function(n) return io[n]:seek("set", 0) end, s)
            assert.is_false(ok)
            assert.matches("seek on io." .. s .. " is not allowed in sandboxed tasks", err, 1, true)
            ok, err = run(strict, function(n) return io[n]:setvbuf("no") end, s)
            assert.is_false(ok)
            assert.matches("setvbuf on io." .. s .. " is not allowed in sandboxed tasks", err, 1, true)
        end
    end)

    it("compiles no chunk over 1 MiB (the parser cannot be stopped by a timeout)", function()
        local ok, err = run(strict, function()
            return load(string.rep("local x = 1\n", 100000))
        end)
        assert.is_false(ok)
        assert.matches("load of a chunk of 1200000 bytes is not allowed in sandboxed tasks",
            err, 1, true)
        local big = os.tmpname()
        local f = assert(io.open(big, "w"))
        f:write(string.rep("local x = 1\n", 100000), "return 1\n")
        f:close()
        for _, fn in ipairs({ "loadfile", "dofile" }) do
            ok, err = run(strict, function(name, p) return _G[name](p) end, fn, big)
            assert.is_false(ok)
            assert.matches(fn .. " of '" .. big .. "' (1200009 bytes) is not allowed in sandboxed tasks",
                err, 1, true)
        end
        os.remove(big)
        -- smaller ones as usual
        assert.are.same({ true, 3 }, { run(strict, function()
            return load(string.rep("x = 1\n", 1000) .. "return 3")()
        end) })
    end)

    it("reads the process's locale but cannot change it", function()
        local now = os.setlocale()
        assert.are.same({ true, now }, { run(strict, function() return os.setlocale() end) })
        assert.are.same({ true, os.setlocale(nil, "numeric") },
            { run(strict, function() return os.setlocale(nil, "numeric") end) })
        for _, args in ipairs({ { "C" }, { "", "numeric" }, { "C", "all" } }) do
            local ok, err = run(strict, function(a, b) return os.setlocale(a, b) end, args[1], args[2])
            assert.is_false(ok)
            assert.matches("os.setlocale that changes the locale is not allowed in sandboxed tasks",
                err, 1, true)
        end
        assert.are.equal(now, os.setlocale())
    end)
end)

describe("a sandboxed task and the worker's process", function()
    local strict = pool({})

    it("opens nothing under /proc without io.open.special, by any function or link", function()
        local what = "'/proc/self/environ' (a /proc file)"
        denied(strict, "io.open of " .. what, "io.open.special", function(p) return io.open(p):read("a") end,
            "/proc/self/environ")
        denied(strict, "io.lines of " .. what, "io.open.special", function(p) return io.lines(p)() end,
            "/proc/self/environ")
        denied(strict, "io.input of " .. what, "io.open.special", function(p) return io.input(p) end,
            "/proc/self/environ")
        denied(strict, "loadfile of " .. what, "io.open.special", function(p) return loadfile(p) end,
            "/proc/self/environ")
        denied(strict, "dofile of " .. what, "io.open.special", function(p) return dofile(p) end,
            "/proc/self/environ")
        for _, f in ipairs({ "mem", "cmdline", "maps", "status" }) do
            denied(strict, "io.open of '/proc/self/" .. f .. "' (a /proc file)", "io.open.special",
                function(p) return io.open(p):read(1) end, "/proc/self/" .. f)
        end
        denied(strict, "io.open of '/proc/cpuinfo' (a /proc file)", "io.open.special",
            function() return io.open("/proc/cpuinfo"):read(1) end)
        -- a symbolic link to it: the file system of what it leads to
        local link = tmp .. "/environ-link"
        assert.is_true(os.execute("ln -sf /proc/self/environ " .. link))
        denied(strict, "io.open of '" .. link .. "' (a /proc file)", "io.open.special",
            function(p) return io.open(p):read("a") end, link)
        -- a module search path into /proc
        denied(strict, "require of '/proc/self/environ' (a /proc file)", "io.open.special", function()
            package.path = "/proc/self/?"
            return require("environ")
        end)
        -- allowed by io.open.special
        local special = pool({ "io.open.special" })
        local ok, env = run(special, function(p) return io.open(p):read("a") end, "/proc/self/environ")
        assert.is_true(ok)
        assert.matches("MUTIRAO_MODULE_DIR=", env, 1, true)
        assert.are.same({ true, "string" }, { run(special, function() return type(io.open("/proc/self/status"):read("l")) end) })
        -- a pool without allow: unchanged
        local open = pool(nil)
        ok, env = run(open, function(p) return io.open(p):read("a") end, "/proc/self/environ")
        assert.is_true(ok)
        assert.matches("MUTIRAO_MODULE_DIR=", env, 1, true)
    end)

    it("reads no MUTIRAO_* or secret-looking variable without os.getenv", function()
        assert.is_not_nil(os.getenv("MUTIRAO_MODULE_DIR"))
        local function getenv(p, name) return { run(p, function(n) return os.getenv(n) end, name) } end
        assert.are.same({ true, nil }, getenv(strict, "MUTIRAO_MODULE_DIR"))
        assert.are.same({ true, nil }, getenv(strict, "mutirao_module_dir"))
        for _, name in ipairs({ "DB_PASSWORD", "my_secret", "GITHUB_TOKEN", "AWS_ACCESS_KEY_ID", "api_key",
            "PGPASSWD", "CREDENTIALS" }) do
            assert.are.same({ true, nil }, getenv(strict, name), name)
        end
        if os.getenv("SANDBOX_SPEC_API_TOKEN") then -- (set by ctest)
            assert.are.same({ true, nil }, getenv(strict, "SANDBOX_SPEC_API_TOKEN"))
            assert.are.same({ true, "plain" }, getenv(strict, "SANDBOX_SPEC_PLAIN"))
        end
        assert.are.same({ true, os.getenv("PATH") }, getenv(strict, "PATH"))
        assert.are.same({ true, os.getenv("HOME") }, getenv(strict, "HOME"))
        -- its argument is checked as the original's
        local ok, err = run(strict, function() return os.getenv() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'getenv'", err, 1, true)
        -- allowed by os.getenv, and by the os group
        for _, allow in ipairs({ { "os.getenv" }, { "os" }, { "all" } }) do
            local p = pool(allow)
            assert.are.same({ true, os.getenv("MUTIRAO_MODULE_DIR") }, getenv(p, "MUTIRAO_MODULE_DIR"))
            if os.getenv("SANDBOX_SPEC_API_TOKEN") then
                assert.are.same({ true, "t0ken" }, getenv(p, "SANDBOX_SPEC_API_TOKEN"))
            end
        end
        -- narrowed away by a pool that lists other settings only
        assert.are.same({ true, nil }, getenv(pool({ "os.execute" }), "MUTIRAO_MODULE_DIR"))
        -- a pool without allow: unchanged
        assert.are.same({ true, os.getenv("MUTIRAO_MODULE_DIR") }, getenv(pool(nil), "MUTIRAO_MODULE_DIR"))
    end)

    it("loads files as before: comments, line numbers, env, errors", function()
        local chunk = tmp .. "/chunk.lua"
        local f = assert(io.open(chunk, "w"))
        f:write("#!/usr/bin/lua\nlocal x = ...\nreturn (x or 0) + 1, debug.traceback ~= nil, error ~= nil and 2\n")
        f:close()
        local bad = tmp .. "/bad.lua"
        f = assert(io.open(bad, "w"))
        f:write("#comment\n\nreturn +\n")
        f:close()
        local bom = tmp .. "/bom.lua"
        f = assert(io.open(bom, "wb"))
        f:write("\xEF\xBB\xBFreturn 'bom'")
        f:close()
        for _, p in ipairs({ strict, pool(nil) }) do
            assert.are.same({ true, 6, true, 2 }, { run(p, function(c) return loadfile(c)(5) end, chunk) })
            assert.are.same({ true, 1, true, 2 }, { run(p, function(c) return dofile(c) end, chunk) })
            assert.are.same({ true, "bom" }, { run(p, function(c) return dofile(c) end, bom) })
            local ok, a, b = run(p, function(c) return loadfile(c) end, bad)
            assert.is_true(ok)
            assert.is_nil(a)
            assert.matches(bad .. ":3:", b, 1, true)
            ok, a, b = run(p, function(c) return loadfile(c) end, tmp .. "/none.lua")
            assert.is_true(ok)
            assert.is_nil(a)
            assert.matches("cannot open " .. tmp .. "/none.lua", b, 1, true)
            ok, a = run(p, function(c) return dofile(c) end, bad)
            assert.is_false(ok)
            assert.matches(bad .. ":3:", a, 1, true)
            -- an env given (even nil) is the chunk's
            assert.are.same({ true, 42 }, { run(p, function(c)
                local t = { x = 41 }
                return loadfile(c, "t", t)()
            end, (function()
                local g = tmp .. "/env.lua"
                local h = assert(io.open(g, "w"))
                h:write("return x + 1")
                h:close()
                return g
            end)()) })
            -- without one, a sandboxed task's chunk gets the task's globals
            if p == strict then
                assert.are.same({ true, "mine", "mine" }, { run(p, function(d)
                    marker_global = "mine"
                    return loadfile(d .. "/g.lua")(), dofile(d .. "/g.lua")
                end, (function()
                    local h = assert(io.open(tmp .. "/g.lua", "w"))
                    h:write("return marker_global")
                    h:close()
                    return tmp
                end)()) })
            end
            assert.are.same({ true, { "hello" } }, { run(p, function(c)
                local t = {}
                for l in io.lines(c) do t[#t + 1] = l end
                return t
            end, readable) })
        end
    end)
end)

describe("a sandboxed task's writes", function()
    it("truncate, append and set the default output as the original's", function()
        local p = pool({ "io.open.write" })
        local f = tmp .. "/rewritten.txt"
        assert.are.same({ true, "x|xy|xyz|w" }, { run(p, function(name)
            local h = assert(io.open(name, "w"))
            h:write("a much longer first content")
            h:close()
            h = assert(io.open(name, "w"))
            h:write("x")
            h:close()
            local r = { io.open(name):read("a") }
            h = assert(io.open(name, "a"))
            h:write("y")
            h:close()
            r[#r + 1] = io.open(name):read("a")
            h = assert(io.open(name, "r+"))
            h:seek("end")
            h:write("z")
            h:close()
            r[#r + 1] = io.open(name):read("a")
            io.output(name)
            io.write("w")
            io.close()
            io.output(io.stdout)
            r[#r + 1] = io.open(name):read("a")
            return table.concat(r, "|")
        end, f) })
        local ok, err = run(p, function(d) return io.output(d .. "/no/such/dir/file") end, tmp)
        assert.is_false(ok)
        assert.matches("cannot open file '" .. tmp .. "/no/such/dir/file' (No such file or directory)", err, 1, true)
        ok, err = run(p, function(d) return io.input(d .. "/none.txt") end, tmp)
        assert.is_false(ok)
        assert.matches("cannot open file '" .. tmp .. "/none.txt' (No such file or directory)", err, 1, true)
        assert.are.same({ true, "hello" }, { run(p, function(name)
            io.input(name)
            local l = io.read("l")
            io.input(io.stdin)
            return l
        end, readable) })
    end)
end)

describe("the allow option's errors", function()
    it("refuses none with other items, empty items and require.NAME clearly", function()
        local ok, err = pcall(G.pool_create, "sandbox_bad_6", { allow = { "all", "none" } })
        assert.is_false(ok)
        assert.matches("item 2: 'none' allows nothing and cannot be combined with other items", err, 1, true)
        ok, err = pcall(G.pool_create, "sandbox_bad_7", { allow = { "none", "os.execute" } })
        assert.is_false(ok)
        assert.matches("'none' allows nothing and cannot be combined", err, 1, true)
        ok, err = pcall(G.pool_create, "sandbox_bad_8", { allow = { "" } })
        assert.is_false(ok)
        assert.matches("item 1: a setting expected, got an empty string", err, 1, true)
        ok, err = pcall(G.pool_create, "sandbox_bad_9", { allow = { "require.foo" } })
        assert.is_false(ok)
        assert.matches("'require.NAME' is only for worker.allow", err, 1, true)
        assert.is_true(G.pool_create("sandbox_none_alone", { allow = { "none" } }))
    end)
end)

describe("a pool's allow list", function()
    it("allows what it names and nothing more", function()
        local p = pool({ "os.execute", "io.open.write" })
        assert.are.same({ true, true, "exit", 0 }, { run(p, function() return os.execute("true") end) })
        local out = tmp .. "/written.txt"
        assert.are.same({ true, true }, { run(p, function(f)
            local h = assert(io.open(f, "w"))
            h:write("x")
            h:close()
            return true
        end, out) })
        denied(p, "io.popen", "io.popen", function() return io.popen("id") end)
        denied(p, "debug.getinfo", "debug", function() return debug.getinfo(1) end)
        local q = pool({ "os", "io", "debug", "load.binary", "exec" })
        assert.are.same({ true, 7 }, { run(q, function() return load(string.dump(function() return 7 end))() end) })
        assert.are.same({ true, true }, { run(q, function() return exec.run("true").ok end) })
        assert.are.same({ true, "table" }, { run(q, function() return type(debug.getinfo(1)) end) })
        denied(q, "http.get", "http", function() return http.get("http://127.0.0.1:1/") end)
        local all = pool({ "all" })
        assert.are.same({ true, true, "exit", 0 }, { run(all, function() return io.popen("true"):close() end) })
    end)
end)

describe("a pool without allow", function()
    it("keeps today's behaviour on VMs that run sandboxed tasks too", function()
        pool({}) -- gates are on the VMs now
        local p = pool(nil)
        for _ = 1, 8 do -- every VM
            assert.are.same({ true, true, "exit", 0 }, { run(p, function() return os.execute("true") end) })
        end
        assert.are.same({ true, "table" }, { run(p, function() return type(debug.getinfo(1)) end) })
        assert.are.same({ true, 3 }, { run(p, function() return load(string.dump(function() return 3 end))() end) })
        local ok, err = run(p, function() return os.remove() end)
        assert.is_false(ok)
        assert.matches("bad argument #1 to 'remove'", err, 1, true)
        ok, err = run(p, function() return exec.run("true", { time_out = 1 }) end)
        assert.is_false(ok)
        assert.matches("bad argument #2 to 'run' (unknown option 'time_out')", err, 1, true)
    end)
end)

teardown(function() os.execute("rm -rf " .. tmp) end)
