-- The http module: responses, methods, errors, concurrency on the VM's loop,
-- cancellation, pool tasks and https. Against tests/helpers/http_server.py.
local G = require("goroutine")
local http = require("http")
local TS = require("test_server")
local now = G.now
local F = TS.factor

local server

setup(function()
    server = TS.start()
end)

teardown(function()
    if server then server.stop() end
end)

local function url(path) return server.base .. path end

-- crude JSON field readers for the echo route (no JSON library here)
local function jstr(body, key)
    return body:match('"' .. key:gsub("%p", "%%%0") .. '": "(.-)"')
end

describe("http responses", function()
    it("are tables of status_code, body and headers", function()
        local r = http.get(url("/health"))
        assert.are.equal(200, r.status_code)
        assert.are.equal("OK", r.body)
        assert.is_table(r.headers)
        assert.are.equal("2", r.headers["content-length"])
    end)

    it("keep header names lower-case, find them in any case and join repeated ones", function()
        local r = http.get(url("/headers"))
        assert.are.equal("one", r.headers["x-custom"])
        assert.are.equal("one", r.headers["X-Custom"])
        assert.are.equal("text/plain", r.headers["Content-Type"])
        assert.are.equal("a, b", r.headers["x-multi"])
        assert.is_nil(r.headers["X-Absent"])
        for k in pairs(r.headers) do assert.are.equal(k:lower(), k) end
    end)

    it("come back for 4xx and 5xx statuses too (no error)", function()
        for _, code in ipairs({ 404, 418, 500, 503 }) do
            local r = http.get(url("/status/" .. code))
            assert.are.equal(code, r.status_code)
            assert.are.equal("status " .. code, r.body)
        end
    end)

    it("carry large bodies intact", function()
        local r = http.get(url("/big/1048576"))
        assert.are.equal(1048576, #r.body)
        assert.are.equal(string.rep("x", 1048576), r.body)
    end)

    it("follow redirects, unless follow_redirects = false", function()
        local r = http.get(url("/redirect"))
        assert.are.equal(200, r.status_code)
        assert.are.equal("/echo", jstr(r.body, "path"))
        r = http.get(url("/redirect"), { follow_redirects = false })
        assert.are.equal(302, r.status_code)
        assert.are.equal("/echo", r.headers.location)
    end)
end)

describe("http methods", function()
    it("post sends opts.body and opts.headers", function()
        local r = http.post(url("/echo"), { body = "name=mutirao", headers = { ["X-Trace"] = "t-1", ["X-Num"] = 42 } })
        assert.are.equal(200, r.status_code)
        assert.are.equal("POST", jstr(r.body, "method"))
        assert.are.equal("name=mutirao", jstr(r.body, "body"))
        assert.are.equal("t-1", jstr(r.body, "x-trace"))
        assert.are.equal("42", jstr(r.body, "x-num"))
        assert.are.equal("12", jstr(r.body, "content-length"))
    end)

    it("post, put and patch also take the body as the second argument", function()
        for _, m in ipairs({ "post", "put", "patch" }) do
            local r = http[m](url("/echo"), "[1, 2, 3]", { headers = { ["Content-Type"] = "application/json" } })
            assert.are.equal(m:upper(), jstr(r.body, "method"))
            assert.are.equal("[1, 2, 3]", jstr(r.body, "body"))
            assert.are.equal("application/json", jstr(r.body, "content-type"))
        end
    end)

    it("get, delete and head use their methods; head has no body", function()
        assert.are.equal("GET", jstr(http.get(url("/echo")).body, "method"))
        assert.are.equal("DELETE", jstr(http.delete(url("/echo")).body, "method"))
        local r = http.head(url("/echo"))
        assert.are.equal(200, r.status_code)
        assert.are.equal("", r.body)
    end)

    it("request{} takes method, url, body, headers and timeout in one table", function()
        local r = http.request({
            method = "put", url = url("/echo?x=1"), body = "payload",
            headers = { Accept = "text/plain" }, timeout = 5,
        })
        assert.are.equal("PUT", jstr(r.body, "method"))
        assert.are.equal("x=1", jstr(r.body, "query"))
        assert.are.equal("payload", jstr(r.body, "body"))
        assert.are.equal("text/plain", jstr(r.body, "accept"))
        assert.are.equal("GET", jstr(http.request({ url = url("/echo") }).body, "method"))
    end)

    it("sends a User-Agent unless the caller sets one", function()
        assert.matches("^mutirao/", jstr(http.get(url("/echo")).body, "user-agent"))
        local r = http.get(url("/echo"), { headers = { ["User-Agent"] = "Sloth-Runner-HealthCheck/1.0" } })
        assert.are.equal("Sloth-Runner-HealthCheck/1.0", jstr(r.body, "user-agent"))
    end)
end)

describe("http transport failures", function()
    local function fails(fn, ...)
        local ok, err = pcall(fn, ...)
        assert.is_false(ok, "expected an error")
        assert.is_string(err)
        return err
    end

    it("raise an error naming the URL and 'connection refused'", function()
        local u = "http://127.0.0.1:" .. server.refused .. "/health"
        local err = fails(http.get, u)
        assert.is_truthy(err:find(u, 1, true), err)
        assert.matches("[Cc]onnection refused", err)
    end)

    it("raise an error naming the host that cannot be resolved", function()
        local err = fails(http.get, "http://no-such-host.invalid/x")
        assert.is_truthy(err:find("http://no-such-host.invalid/x", 1, true), err)
        assert.matches("resolve", err)
    end)

    it("raise at opts.timeout, naming the URL and the timeout", function()
        local u = url("/delay/5000")
        local t0 = now()
        local err = fails(http.get, u, { timeout = 0.3 })
        local elapsed = now() - t0
        assert.is_truthy(err:find(u, 1, true), err)
        assert.matches("timed out", err)
        assert.is_true(elapsed >= 290, "elapsed " .. elapsed)
        assert.is_true(elapsed < 2000 * F, "elapsed " .. elapsed)
    end)

    it("reach await_all as success = false with the error (the spec's Exemplo 2)", function()
        local apis = { url("/data/api1"), "http://127.0.0.1:" .. server.refused .. "/data", url("/data/api3") }
        local hs = {}
        for i, u in ipairs(apis) do
            hs[i] = G.async(function() return http.get(u) end)
        end
        local results = G.await_all(hs)
        assert.is_true(results[1].success)
        assert.are.equal(200, results[1].values[1].status_code)
        assert.matches('"api": "api1"', results[1].values[1].body)
        assert.is_false(results[2].success)
        assert.is_truthy(results[2].error:find(apis[2], 1, true), results[2].error)
        assert.is_true(results[3].success)
    end)
end)

describe("http argument errors", function()
    local function arg_error(msg, fn)
        local ok, err = pcall(fn)
        assert.is_false(ok)
        assert.matches("^[^:]*http_spec%.lua:%d+: ", err) -- the caller's position, as Lua's own
        assert.are.equal(msg, (err:gsub("^[^:]*http_spec%.lua:%d+: ", "")))
    end

    it("read like Lua's own", function()
        arg_error("bad argument #1 to 'get' (string expected, got nil)", function() http.get(nil) end)
        arg_error("bad argument #1 to 'post' (string expected, got table)", function() http.post({}) end)
        arg_error("bad argument #2 to 'get' (table expected, got number)", function() http.get(url("/"), 5) end)
        arg_error("bad argument #2 to 'get' (field 'timeout': number expected, got string)",
            function() http.get(url("/"), { timeout = "5s" }) end)
        arg_error("bad argument #2 to 'get' (field 'timeout': positive number of seconds expected)",
            function() http.get(url("/"), { timeout = -1 }) end)
        arg_error("bad argument #2 to 'get' (field 'headers': table expected, got string)",
            function() http.get(url("/"), { headers = "X: y" }) end)
        arg_error("bad argument #2 to 'post' (field 'body': string expected, got number)",
            function() http.post(url("/"), { body = 5 }) end)
        arg_error("bad argument #2 to 'post' (string (body) or table (options) expected, got number)",
            function() http.post(url("/"), 123) end)
        arg_error("bad argument #2 to 'get' (unknown option 'timout')",
            function() http.get(url("/"), { timout = 5 }) end)
        arg_error("bad argument #1 to 'request' (field 'url': string expected, got nil)",
            function() http.request({ method = "GET" }) end)
        arg_error("bad argument #1 to 'request' (table expected, got string)",
            function() http.request(url("/")) end)
    end)

    it("refuse header injection and invalid methods", function()
        arg_error("bad argument #2 to 'get' (field 'headers': invalid header 'X-Evil')",
            function() http.get(url("/"), { headers = { ["X-Evil"] = "a\r\nHost: other" } }) end)
        arg_error("bad argument #1 to 'request' (invalid HTTP method 'GE T')",
            function() http.request({ method = "GE T", url = url("/") }) end)
        arg_error("bad argument #1 to 'get' (invalid URL)", function() http.get("") end)
    end)
end)

describe("http concurrency", function()
    it("1,000 goroutines each waiting 200 ms for the server finish well under 1 s", function()
        local wg, ok, bad = G.wait_group(), 0, nil
        local t0 = now()
        for _ = 1, 1000 do
            wg:add(1)
            G.spawn(function()
                local r = http.get(url("/delay/200"))
                if r.status_code == 200 and r.body == "slept 200" then ok = ok + 1 else bad = r end
                wg:done()
            end)
        end
        wg:wait()
        local elapsed = now() - t0
        assert.is_nil(bad)
        assert.are.equal(1000, ok)
        assert.is_true(elapsed >= 199, "elapsed " .. elapsed)
        assert.is_true(elapsed < 1000 * F, "1,000 x 200 ms took " .. elapsed .. " ms")
    end)

    it("suspends only the calling goroutine: a ticker keeps running meanwhile", function()
        local ticks, done = 0, false
        G.spawn(function()
            while not done do
                ticks = ticks + 1
                G.sleep(10)
            end
        end)
        local r = http.get(url("/delay/300"))
        done = true
        assert.are.equal(200, r.status_code)
        assert.is_true(ticks >= 10, "ticks " .. ticks)
    end)
end)

describe("http cancellation", function()
    local function wait_seen(tag, want)
        local deadline, state = now() + 3000 * F, nil
        repeat
            state = http.get(url("/seen/" .. tag)).body
            if state == want then return state end
            G.sleep(20)
        until now() > deadline
        return state
    end

    it("goroutine.timeout drops the request: the server sees the client hang up", function()
        local tag = "timeout-" .. tostring(os.time()) .. "-" .. math.random(1e9)
        local t0 = now()
        local ok, err = G.timeout(200, function()
            http.get(url("/hold/" .. tag))
            return "unreachable"
        end)
        local elapsed = now() - t0
        assert.is_false(ok)
        assert.are.equal("timeout after 200 ms", err)
        assert.is_true(elapsed < 1500 * F, "elapsed " .. elapsed)
        assert.are.equal("closed", wait_seen(tag, "closed"))
        assert.are.equal(200, http.get(url("/health")).status_code, "the VM's requests still work")
    end)

    it("a killed scope with many requests in flight leaves nothing behind", function()
        local ok = G.timeout(150, function()
            for _ = 1, 50 do
                G.spawn(function() http.get(url("/delay/2000")) end)
            end
            G.sleep(math.huge)
        end)
        assert.is_false(ok)
        local t0 = now()
        local wg = G.wait_group()
        wg:add(1)
        G.spawn(function() http.get(url("/delay/50")); wg:done() end)
        wg:wait()
        assert.is_true(now() - t0 < 1500 * F)
    end)
end)

describe("http in pool tasks", function()
    it("works inside pool tasks (another VM and loop), as the module and as the global", function()
        local pool = "http_spec_pool"
        assert.is_true(G.pool_create(pool, { workers = 8 }))
        local t0 = now()
        local ids = {}
        for i = 1, 8 do
            if i % 2 == 0 then
                ids[i] = G.pool_submit(pool, function(u) return http.get(u).status_code end, url("/delay/200"))
            else
                ids[i] = G.pool_submit(pool, function(u) return _G.http.get(u).body end, url("/delay/200"))
            end
            assert.is_string(ids[i])
        end
        for i, id in ipairs(ids) do
            local ok, v = G.await(id)
            assert.is_true(ok, tostring(v))
            assert.are.equal(i % 2 == 0 and 200 or "slept 200", v)
        end
        local elapsed = now() - t0
        assert.is_true(elapsed < 1500 * F, "8 x 200 ms on 8 workers took " .. elapsed)
        local ok, err = G.await(G.pool_submit(pool, function(u) return http.get(u) end,
            "http://127.0.0.1:" .. server.refused .. "/"))
        assert.is_false(ok)
        assert.matches("[Cc]onnection refused", err)
        G.pool_wait(pool)
        G.pool_close(pool)
    end)

    it("a response a task returns keeps its any-case header lookup (its metatable travels by name)", function()
        local pool = "http_spec_pool_headers"
        assert.is_true(G.pool_create(pool, { workers = 1 }))
        local ok, r = G.await(G.pool_submit(pool, function(u) return http.get(u) end, url("/headers")))
        assert.is_true(ok, tostring(r))
        assert.are.equal("one", r.headers["x-custom"])
        assert.are.equal("one", r.headers["X-Custom"])
        assert.are.equal(getmetatable(http.get(url("/headers")).headers), getmetatable(r.headers))
        -- and the other way: headers sent to a task
        ok, r = G.await(G.pool_submit(pool, function(h) return h["X-Multi"] end,
            http.get(url("/headers")).headers))
        assert.is_true(ok, tostring(r))
        assert.are.equal("a, b", r)
        G.pool_close(pool)
    end)
end)

describe("https", function()
    local dir, tls
    setup(function()
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir))
        local ok = os.execute("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
            .. " -addext subjectAltName=IP:127.0.0.1 -keyout " .. dir .. "/key.pem -out " .. dir
            .. "/cert.pem >/dev/null 2>&1")
        assert(ok, "openssl could not make a test certificate")
        tls = TS.start("--tls " .. dir .. "/cert.pem " .. dir .. "/key.pem")
    end)
    teardown(function()
        if tls then tls.stop() end
        os.execute("rm -rf " .. dir)
    end)

    it("verifies the server against the system CA store (a self-signed one fails)", function()
        local u = "https://127.0.0.1:" .. tls.port .. "/health"
        local ok, err = pcall(http.get, u)
        assert.is_false(ok)
        assert.is_truthy(err:find(u, 1, true), err)
        assert.matches("certificate", err)
    end)

    it("trusts a private CA given as ca_file", function()
        local r = http.get("https://127.0.0.1:" .. tls.port .. "/health", { ca_file = dir .. "/cert.pem" })
        assert.are.equal(200, r.status_code)
        assert.are.equal("OK", r.body)
    end)
end)
