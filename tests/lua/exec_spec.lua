-- The exec module: results, argv/env/cwd/stdin, timeouts and process groups,
-- cancellation, concurrency on the VM's loop and pool tasks.
local G = require("goroutine")
local exec = require("exec")
local F = require("test_server").factor
local now = G.now
-- The ASan specs preload the sanitizer runtimes into lua5.4; children need not
-- start them too (an ASan start costs a child tens of milliseconds of CPU).
local CHILD_ENV = { LD_PRELOAD = false }

-- Live (non-zombie) processes whose process group is pgid.
local function live_in_group(pgid)
    -- (without the sanitizer runtimes the ASan specs preload: ps hangs under them)
    local r = exec.run({ "ps", "-eo", "pgid=,stat=" }, { env = { LD_PRELOAD = false }, timeout = 10 })
    assert(r.ok, "ps failed: " .. r.stderr)
    local n = 0
    for g, stat in r.stdout:gmatch("%s*(%d+)%s+(%S+)") do
        if tonumber(g) == pgid and not stat:match("^Z") then n = n + 1 end
    end
    return n
end

-- Polls (with a generous deadline) until the group has no live process.
local function group_gone(pgid)
    local deadline = now() + 3000 * F
    while live_in_group(pgid) > 0 do
        if now() > deadline then return false end
        G.sleep(20)
    end
    return true
end

local function read_file(path)
    local f = io.open(path)
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end

describe("exec.run results", function()
    it("has code, stdout, stderr, ok and timed_out; a string runs with /bin/sh -c", function()
        local r = exec.run("echo out; echo err >&2; exit 3")
        assert.are.equal(3, r.code)
        assert.are.equal("out\n", r.stdout)
        assert.are.equal("err\n", r.stderr)
        assert.is_false(r.ok)
        assert.is_false(r.timed_out)
        assert.is_nil(r.signal)
        assert.is_number(r.pid)
        local ok = exec.run("true")
        assert.are.equal(0, ok.code)
        assert.is_true(ok.ok)
    end)

    it("runs an argv table as is: no shell, no splitting, no expansion", function()
        local r = exec.run({ "printf", "%s|", "a b", "$HOME", "*" })
        assert.are.equal(0, r.code)
        assert.are.equal("a b|$HOME|*|", r.stdout)
    end)

    it("reports a child killed by a signal (code = 128 + signal)", function()
        local r = exec.run("kill -TERM $$")
        assert.are.equal(15, r.signal)
        assert.are.equal(143, r.code)
        assert.is_false(r.timed_out)
        assert.is_false(r.ok)
    end)

    it("collects output larger than a pipe buffer", function()
        local r = exec.run("head -c 3000000 /dev/zero | tr '\\0' y; echo done >&2")
        assert.are.equal(3000000, #r.stdout)
        assert.are.equal(string.rep("y", 3000000), r.stdout)
        assert.are.equal("done\n", r.stderr)
    end)

    it("a command that cannot be found: 127 from the shell, an error for argv", function()
        local r = exec.run("no-such-command-xyz")
        assert.are.equal(127, r.code)
        assert.matches("not found", r.stderr)
        local ok, err = pcall(exec.run, { "/no/such/program" })
        assert.is_false(ok)
        assert.matches("exec.run: cannot run '/no/such/program': no such file or directory", err, 1, true)
    end)

    it("does not hang on a background child that keeps stdout open", function()
        local t0 = now()
        local r = exec.run("sleep 2 & echo started")
        assert.are.equal(0, r.code)
        assert.are.equal("started\n", r.stdout)
        assert.is_true(now() - t0 < 1500 * F, "took " .. (now() - t0))
    end)
end)

describe("exec.run options", function()
    it("stdin feeds the child; without it the child reads /dev/null", function()
        local r = exec.run({ "cat" }, { stdin = "line 1\nline 2\n" })
        assert.are.equal("line 1\nline 2\n", r.stdout)
        local big = string.rep("0123456789", 100000)
        r = exec.run("wc -c", { stdin = big })
        assert.are.equal("1000000", r.stdout:match("%d+"))
        r = exec.run({ "cat" })
        assert.are.equal("", r.stdout)
        assert.are.equal(0, r.code)
        r = exec.run({ "cat" }, { stdin = "" })
        assert.are.equal("", r.stdout)
    end)

    it("stdin to a child that does not read it is no error", function()
        local r = exec.run("exit 0", { stdin = string.rep("x", 1000000) })
        assert.are.equal(0, r.code)
    end)

    it("cwd sets the working directory; a missing one raises", function()
        local r = exec.run("pwd", { cwd = "/tmp" })
        assert.are.equal("/tmp\n", r.stdout)
        local ok, err = pcall(exec.run, "pwd", { cwd = "/no/such/dir" })
        assert.is_false(ok)
        assert.matches("cannot run '/bin/sh' in '/no/such/dir'", err, 1, true)
    end)

    it("env adds and replaces variables, false removes one, the rest is inherited", function()
        local r = exec.run({ "sh", "-c", 'echo "$MUTIRAO_A|$MUTIRAO_N|${HOME-unset}|$PATH"' },
            { env = { MUTIRAO_A = "hello world", MUTIRAO_N = 42, HOME = false } })
        assert.are.equal("hello world|42|unset|" .. os.getenv("PATH") .. "\n", r.stdout)
        r = exec.run("echo $HOME", { env = { HOME = "/elsewhere" } })
        assert.are.equal("/elsewhere\n", r.stdout)
    end)
end)

describe("exec.run timeouts and cancellation", function()
    it("timeout kills the child and its whole process group", function()
        local t0 = now()
        local r = exec.run("sleep 30 & echo $$; sleep 30", { timeout = 0.3 })
        local elapsed = now() - t0
        assert.is_true(r.timed_out)
        assert.are.equal(9, r.signal)
        assert.are.equal(137, r.code)
        assert.is_false(r.ok)
        assert.is_true(elapsed >= 290, "elapsed " .. elapsed)
        assert.is_true(elapsed < 2000 * F, "elapsed " .. elapsed)
        local pgid = tonumber(r.stdout:match("%d+"))
        assert.are.equal(r.pid, pgid, "the child leads its own process group")
        assert.is_true(group_gone(pgid), "processes of group " .. pgid .. " survived")
    end)

    it("a goroutine cancelled by goroutine.timeout kills the children it started", function()
        local pidfile = os.tmpname()
        local t0 = now()
        -- (the child must have started and written its pid by the deadline:
        -- scaled, as starting it is slow under valgrind)
        local ms = math.floor(300 * F)
        local ok, err = G.timeout(ms, function()
            exec.run("echo $$ > " .. pidfile .. "; sleep 30 & sleep 30")
            return "unreachable"
        end)
        assert.is_false(ok)
        assert.are.equal("timeout after " .. ms .. " ms", err)
        assert.is_true(now() - t0 < 1500 * F)
        local pgid = tonumber(read_file(pidfile):match("%d+"))
        os.remove(pidfile)
        assert.is_true(group_gone(pgid), "processes of group " .. pgid .. " survived")
    end)

    it("many cancelled runs at once leave no process behind", function()
        local dir = os.tmpname()
        os.remove(dir)
        exec.run({ "mkdir", dir })
        -- (all 20 children must have started by the deadline: scaled, as
        -- starting them is slow under valgrind)
        G.timeout(300 * F, function()
            for i = 1, 20 do
                G.spawn(function() exec.run("echo $$ > " .. dir .. "/" .. i .. "; sleep 30") end)
            end
            G.sleep(math.huge)
        end)
        for i = 1, 20 do
            local pid = read_file(dir .. "/" .. i)
            assert.is_string(pid, "child " .. i .. " never started")
            assert.is_true(group_gone(tonumber(pid:match("%d+"))))
        end
        exec.run({ "rm", "-rf", dir })
    end)
end)

describe("exec.run concurrency", function()
    it("100 goroutines each running sleep 0.2 finish in about 0.2 s", function()
        local wg, ok = G.wait_group(), 0
        local t0 = now()
        for _ = 1, 100 do
            wg:add(1)
            G.spawn(function()
                if exec.run("sleep 0.2", { env = CHILD_ENV }).code == 0 then ok = ok + 1 end
                wg:done()
            end)
        end
        wg:wait()
        local elapsed = now() - t0
        assert.are.equal(100, ok)
        assert.is_true(elapsed >= 195, "elapsed " .. elapsed)
        assert.is_true(elapsed < 1500 * F, "100 x sleep 0.2 took " .. elapsed .. " ms")
    end)

    it("suspends only the calling goroutine: a ticker keeps running meanwhile", function()
        local ticks, done = 0, false
        G.spawn(function()
            while not done do
                ticks = ticks + 1
                G.sleep(10)
            end
        end)
        exec.run("sleep 0.3")
        done = true
        assert.is_true(ticks >= 10, "ticks " .. ticks)
    end)
end)

describe("exec.run in pool tasks", function()
    it("works inside pool tasks, as the module and as the global", function()
        local pool = "exec_spec_pool"
        assert.is_true(G.pool_create(pool, { workers = 4 }))
        local t0 = now()
        local ids = {}
        for i = 1, 4 do
            ids[i] = G.pool_submit(pool, function(n)
                local r = (n % 2 == 0 and exec or _G.exec).run("sleep 0.2; echo task " .. n)
                return r.stdout
            end, i)
        end
        for i, id in ipairs(ids) do
            local ok, out = G.await(id)
            assert.is_true(ok, tostring(out))
            assert.are.equal("task " .. i .. "\n", out)
        end
        assert.is_true(now() - t0 < 1500 * F, "took " .. (now() - t0))
        G.pool_wait(pool)
        G.pool_close(pool)
    end)
end)

describe("exec.run argument errors", function()
    local function arg_error(msg, fn)
        local ok, err = pcall(fn)
        assert.is_false(ok)
        assert.are.equal(msg, (err:gsub("^[^:]*exec_spec%.lua:%d+: ", "")))
    end

    it("read like Lua's own", function()
        arg_error("bad argument #1 to 'run' (string or table expected, got nil)", function() exec.run(nil) end)
        arg_error("bad argument #1 to 'run' (argv table is empty)", function() exec.run({}) end)
        arg_error("bad argument #1 to 'run' (string expected at index 2, got number)",
            function() exec.run({ "echo", 5 }) end)
        arg_error("bad argument #2 to 'run' (table expected, got number)", function() exec.run("true", 5) end)
        arg_error("bad argument #2 to 'run' (field 'timeout': number expected, got string)",
            function() exec.run("true", { timeout = "1s" }) end)
        arg_error("bad argument #2 to 'run' (field 'timeout': positive number of seconds expected)",
            function() exec.run("true", { timeout = 0 }) end)
        arg_error("bad argument #2 to 'run' (field 'cwd': string expected, got number)",
            function() exec.run("true", { cwd = 1 }) end)
        arg_error("bad argument #2 to 'run' (field 'stdin': string expected, got table)",
            function() exec.run("true", { stdin = {} }) end)
        arg_error("bad argument #2 to 'run' (field 'env': names must be strings)",
            function() exec.run("true", { env = { "A=1" } }) end)
        arg_error("bad argument #2 to 'run' (field 'env': value of 'A': string expected, got table)",
            function() exec.run("true", { env = { A = {} } }) end)
        arg_error("bad argument #2 to 'run' (unknown option 'time_out')",
            function() exec.run("true", { time_out = 1 }) end)
    end)
end)
