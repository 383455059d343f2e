-- runner.lua: `mutirao run`: runs a task file's main chunk, then its workflows.
--
-- runner.start(chunk, opts) spawns the runner as a goroutine and returns a table whose
-- `exit` field holds the process exit status once the scheduler loop has ended (the C
-- side runs the loop). opts: file, workflow (name or nil), params (table of strings).
--
-- Exit status: 0 when every task succeeded (or a plain script ended without an escaped
-- error); 1 when a task did not succeed or an error escaped; 2 when the file is invalid
-- (definition errors, unknown workflow, unknown dependency, dependency cycle).
local goroutine = require("goroutine")
local log = require("log")
local dsl = require("mutirao.dsl")

local M = {}

local function now() return goroutine.now() end

-- Display form of a measured duration in ms.
local function fmt_elapsed(ms)
    if ms < 1000 then return string.format("%dms", math.floor(ms + 0.5)) end
    return string.format("%.2fs", ms / 1000)
end

-- Milliseconds rounded to microseconds, for records and JSON.
local function round_ms(ms) return math.floor(ms * 1000 + 0.5) / 1000 end

local function first_line(s)
    if s == nil then return nil end
    s = tostring(s)
    return s:match("^[^\n]*")
end

local function fatal_usage(msg)
    io.stderr:write("mutirao: ", msg, "\n")
    io.stderr:flush()
    return 2
end

local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
end

local function display_width(s)
    return utf8.len(s) or #s
end

local function pad(s, w)
    return s .. string.rep(" ", w - display_width(s))
end

-- ---- planning ----

-- Resolves a workflow's task list to task objects and orders them so that every
-- task comes after its dependencies (stable: listed order otherwise). Returns the
-- ordered list or nil, error message.
local function plan(R, wf)
    local by_name = {}
    for _, t in ipairs(R.tasks) do by_name[t._name] = by_name[t._name] or t end
    local list, in_wf = {}, {}
    for i, t in ipairs(wf._tasks) do
        if type(t) == "string" then
            local found = by_name[t]
            if not found then
                return nil, string.format("workflow '%s': task %d: no built task named '%s'",
                    wf._name, i, t)
            end
            t = found
        end
        if not t._command then
            return nil, string.format("workflow '%s': task '%s' has no command", wf._name,
                t._name)
        end
        if in_wf[t._name] then
            return nil, string.format("workflow '%s': task '%s' is listed twice", wf._name,
                t._name)
        end
        in_wf[t._name] = t
        list[#list + 1] = t
    end
    for _, t in ipairs(list) do
        for _, d in ipairs(t._deps) do
            if not in_wf[d] then
                return nil, string.format(
                    "workflow '%s': task '%s' depends on unknown task '%s'%s", wf._name,
                    t._name, d, by_name[d] and " (it is not part of this workflow)" or "")
            end
            if d == t._name then
                return nil, string.format("workflow '%s': task '%s' depends on itself",
                    wf._name, t._name)
            end
        end
    end
    -- Kahn's algorithm, always taking the first ready task in listed order.
    local placed, order = {}, {}
    while #order < #list do
        local progress = false
        for _, t in ipairs(list) do
            if not placed[t._name] then
                local ready = true
                for _, d in ipairs(t._deps) do
                    if not placed[d] then ready = false break end
                end
                if ready then
                    placed[t._name] = true
                    order[#order + 1] = t
                    progress = true
                    break
                end
            end
        end
        if not progress then
            -- find a cycle to name it
            local left = {}
            for _, t in ipairs(list) do
                if not placed[t._name] then left[#left + 1] = t end
            end
            local path, seen, cur = {}, {}, left[1]
            while cur and not seen[cur._name] do
                seen[cur._name] = #path + 1
                path[#path + 1] = cur._name
                local nxt
                for _, d in ipairs(cur._deps) do
                    if not placed[d] then nxt = in_wf[d] break end
                end
                cur = nxt
            end
            local cyc = {}
            if cur then
                for i = seen[cur._name], #path do cyc[#cyc + 1] = path[i] end
                cyc[#cyc + 1] = cur._name
            end
            return nil, string.format("workflow '%s': dependency cycle: %s (each depends on the next)", wf._name,
                table.concat(cyc, " -> "))
        end
    end
    return order
end

-- ---- running ----

local function log_task_end(r)
    local level = (r.status == "success") and "info"
        or (r.status == "skipped") and "warn" or "error"
    local text = string.format("task '%s' %s", r.task, r.status)
    if r.status ~= "skipped" then text = text .. " (" .. fmt_elapsed(r.duration_ms) .. ")" end
    if r.message and r.message ~= "" then text = text .. ": " .. r.message end
    log._event(level, text, {
        event = "task_end", task = r.task, workflow = r.workflow, status = r.status,
        duration_ms = r.duration_ms, message = r.message, data = r.data,
    })
end

local function skip(r, why)
    r.status, r.message, r.duration_ms = "skipped", why, 0
    log_task_end(r)
end

-- Runs one task in its own scope. r is its result record, filled in place.
local function run_task(t, r, params, status_of, cur)
    for _, d in ipairs(t._deps) do
        local st = status_of[d]
        if st ~= "success" then
            return skip(r, string.format("dependency '%s' %s", d,
                st == "skipped" and "was skipped" or st == "timeout" and "timed out"
                or "failed"))
        end
    end
    local start = string.format("task '%s' started", t._name)
    if t._description then start = start .. ": " .. t._description end
    log._event("info", start, {
        event = "task_start", task = t._name, workflow = r.workflow,
        description = t._description,
    })
    local command = t._command
    if t._delegate and goroutine._backend() == "fleet" then
        log._event("info", string.format("task '%s' delegated to fleet pool '%s'",
            t._name, t._delegate), {
            event = "task_delegated", task = t._name, pool = t._delegate, where = "fleet",
        })
        command = function(this, p)
            -- the pool may exist already (another task, another producer)
            goroutine.pool_create(t._delegate)
            -- `this` travels as its fields; its getters are rebuilt there
            -- (the builder's metatable holds more than a task may need)
            local view = { _name = this._name, _description = this._description,
                _timeout_ms = this._timeout_ms, _delegate = this._delegate }
            local id, err = goroutine.pool_submit(t._delegate, function(v, prm, cmd)
                local T = {}
                T.__index = T
                T.__tostring = function(x) return "task '" .. x._name .. "'" end
                function T:name() return self._name end
                function T:description() return self._description end
                function T:timeout() return self._timeout_ms end
                function T:delegate_to() return self._delegate end
                return cmd(setmetatable(v, T), prm)
            end, view, p, t._command)
            if not id then
                error(string.format("task '%s' cannot be sent to pool '%s': %s",
                    t._name, t._delegate, err), 0)
            end
            local res = table.pack(goroutine.await(id))
            if not res[1] then error(res[2], 0) end
            return table.unpack(res, 2, res.n)
        end
    elseif t._delegate then
        log._event("info", string.format(
            "task '%s' delegated to '%s': no fleet configured, running locally",
            t._name, t._delegate), {
            event = "task_delegated", task = t._name, pool = t._delegate, where = "local",
        })
    end
    local opts = { label = t._name }
    if t._timeout_ms then
        opts.timeout_ms = t._timeout_ms
        opts.reason = "task timed out after " .. t._timeout_text
    end
    local t0 = now()
    r.status, r.started = "running", t0
    cur.r = r
    local res = table.pack(goroutine._run_scope(opts, command, t, copy(params)))
    cur.r = nil
    r.duration_ms = round_ms(now() - t0)
    if res[1] then
        local ok, msg, data = res[2], res[3], res[4]
        -- false, or nil with a message (Lua's `return nil, err`), is a failure;
        -- nothing returned is a success
        local failed = ok == false or (ok == nil and msg ~= nil)
        r.status = failed and "failed" or "success"
        if msg ~= nil then r.message = tostring(msg) end
        r.data = data
    elseif res[3] == true then
        r.status, r.message = "timeout", tostring(res[2])
    else
        local err = res[2]
        r.status = "failed"
        if dsl.is_definition_error(err) then err = err.msg end
        r.message = first_line(err)
        log._event("error", string.format("task '%s' raised an error: %s", t._name,
            tostring(err)), { event = "task_error", task = t._name, goroutine = res[4] })
    end
    log_task_end(r)
end

local function run_workflow(wf, order, params, results)
    local status_of, cur = {}, {}
    local recs = {}
    for i, t in ipairs(order) do
        recs[i] = { workflow = wf._name, task = t._name }
        results[#results + 1] = recs[i]
    end
    local header = string.format("workflow '%s'%s started: %d task%s", wf._name,
        wf._version and (" v" .. wf._version) or "", #order, #order == 1 and "" or "s")
    log._event("info", header, {
        event = "workflow_start", workflow = wf._name, version = wf._version,
        description = wf._description, task = false,
    })
    local opts = {}
    if wf._timeout_ms then
        opts.timeout_ms = wf._timeout_ms
        opts.reason = string.format("workflow '%s' timed out after %s", wf._name,
            wf._timeout_text)
    end
    local t0 = now()
    local ok, err, cancelled = goroutine._run_scope(opts, function()
        for i, t in ipairs(order) do
            run_task(t, recs[i], params, status_of, cur)
            status_of[t._name] = recs[i].status
        end
    end)
    local elapsed = round_ms(now() - t0)
    if not ok then
        -- the workflow's deadline (or a runner bug): settle what was cut short
        local why = cancelled and tostring(err) or ("runner error: " .. tostring(err))
        for _, r in ipairs(recs) do
            if r.status == "running" then
                r.status = cancelled and "timeout" or "failed"
                r.message = why
                r.duration_ms = round_ms(now() - r.started)
                log_task_end(r)
            elseif r.status == nil then
                skip(r, cancelled and "workflow timed out" or "workflow aborted")
            end
        end
    end
    local all_ok = true
    for _, r in ipairs(recs) do
        if r.status ~= "success" then all_ok = false end
    end
    log._event(all_ok and "info" or "error", string.format("workflow '%s' %s (%s)", wf._name,
        all_ok and "succeeded" or "failed", fmt_elapsed(elapsed)), {
        event = "workflow_end", workflow = wf._name, status = all_ok and "success" or "failed",
        duration_ms = elapsed, task = false,
    })
end

-- ---- summary ----

local function print_summary(results, json, elapsed)
    local counts = { success = 0, failed = 0, timeout = 0, skipped = 0 }
    local ok = true
    for _, r in ipairs(results) do
        counts[r.status] = (counts[r.status] or 0) + 1
        if r.status ~= "success" then ok = false end
    end
    if json then
        local rows = {}
        for i, r in ipairs(results) do
            rows[i] = {
                workflow = r.workflow, task = r.task, status = r.status,
                duration_ms = r.duration_ms, message = r.message,
            }
        end
        io.stdout:write(log._json({
            event = "summary", ok = ok, duration_ms = elapsed, tasks = rows,
            counts = counts,
        }), "\n")
        io.stdout:flush()
        return ok
    end
    local head = { "WORKFLOW", "TASK", "STATUS", "DURATION", "MESSAGE" }
    local rows = {}
    for _, r in ipairs(results) do
        rows[#rows + 1] = { r.workflow, r.task, r.status,
            r.status == "skipped" and "-" or fmt_elapsed(r.duration_ms or 0),
            first_line(r.message) or "" }
    end
    local w = {}
    for c = 1, 4 do
        w[c] = display_width(head[c])
        for _, row in ipairs(rows) do w[c] = math.max(w[c], display_width(row[c])) end
    end
    local colours = { success = "green", failed = "red", timeout = "red", skipped = "yellow" }
    local out = { "\n" }
    local function line(cells, paint_status)
        local parts = {}
        for c = 1, 5 do
            local cell = cells[c]
            if c < 5 then cell = pad(cell, w[c]) end
            if c == 3 and paint_status and colours[cells[3]] then
                cell = log._paint(cell, colours[cells[3]], "stdout")
            end
            parts[c] = cell
        end
        out[#out + 1] = (table.concat(parts, "  "):gsub("%s+$", "")) .. "\n"
    end
    out[#out + 1] = log._paint((table.concat({ pad(head[1], w[1]), pad(head[2], w[2]),
        pad(head[3], w[3]), pad(head[4], w[4]), head[5] }, "  ")), "bold", "stdout") .. "\n"
    for _, row in ipairs(rows) do line(row, true) end
    local parts = {}
    for _, k in ipairs({ "success", "failed", "timeout", "skipped" }) do
        if counts[k] > 0 then parts[#parts + 1] = counts[k] .. " " .. k end
    end
    out[#out + 1] = string.format("\n%d task%s: %s in %s\n", #results,
        #results == 1 and "" or "s", #parts > 0 and table.concat(parts, ", ") or "none",
        fmt_elapsed(elapsed))
    io.stdout:write(table.concat(out))
    io.stdout:flush()
    return ok
end

-- ---- main ----

local function file_stem(path)
    local base = path:match("([^/]+)$") or path
    return (base:gsub("%.[^.]*$", ""))
end

local function main(chunk, opts)
    local json = opts.log_format == "json"
    local tostring = function(v) -- never raises: an error value's __tostring may
        local ok, s = pcall(tostring, v)
        if ok and type(s) == "string" then return s end
        return string.format("(%s error value; its __tostring failed)", type(v))
    end
    goroutine._set_error_handler(function(msg, id, label, level)
        if level and level ~= "error" then -- a runtime warning (the fleet's)
            log._event(level, tostring(msg), { event = "runtime", task = label })
        elseif id == nil then -- a pool task: msg names it
            log._event("error", tostring(msg), { event = "pool_task_error", task = label })
        else
            log._event("error", string.format("goroutine %s failed: %s", tostring(id),
                tostring(msg)), { event = "goroutine_error", task = label, goroutine = id })
        end
    end)

    -- progress lines for long pool_wait and WaitGroup waits (progress.lua):
    -- on a terminal only, not with the json log format
    if not json and package.preload["mutirao.term"] then
        local term = require("mutirao.term")
        if term.stderr_tty() then require("mutirao.progress").install(goroutine, term) end
    end

    local R = dsl.new()
    _G.task = R.task
    _G.workflow = R.workflow
    _G.goroutine = goroutine -- the spec's snippets use it without a require
    local dir = opts.file:match("^(.*)/[^/]*$")
    if dir then
        package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
    end

    local t0 = now()
    local ok, err, _, gid = goroutine._run_scope({}, chunk)
    if not ok then
        if dsl.is_definition_error(err) then return fatal_usage(err.msg) end
        -- in the context of the goroutine that ran the chunk and raised
        log._event("error", "error: " .. tostring(err), { event = "script_error", goroutine = gid })
        return 1
    end

    local selected = {}
    if #R.workflows > 0 then
        if opts.workflow then
            local wf = R.wf_by_name[opts.workflow]
            if not wf then
                local names = {}
                for i, w in ipairs(R.workflows) do names[i] = w._name end
                return fatal_usage(string.format(
                    "%s: no workflow named '%s' (defined: %s)", opts.file, opts.workflow,
                    table.concat(names, ", ")))
            end
            selected[1] = wf
        else
            selected = R.workflows
        end
    elseif #R.tasks > 0 then
        local stem = file_stem(opts.file)
        if opts.workflow and opts.workflow ~= stem then
            return fatal_usage(string.format(
                "%s: no workflow named '%s' (the file defines no workflow; its tasks run as '%s')",
                opts.file, opts.workflow, stem))
        end
        -- implicit workflow: the built tasks in definition order
        local implicit = setmetatable({ _name = stem, _tasks = {}, _config = {} }, R.Workflow)
        for i, t in ipairs(R.tasks) do implicit._tasks[i] = t end
        selected[1] = implicit
    else
        if opts.workflow then
            return fatal_usage(string.format("%s: no workflow named '%s' (the file defines none)",
                opts.file, opts.workflow))
        end
        return 0 -- a plain script that ran to the end
    end

    -- validate everything before anything runs
    local orders = {}
    for i, wf in ipairs(selected) do
        local order, perr = plan(R, wf)
        if not order then return fatal_usage(opts.file .. ": " .. perr) end
        orders[i] = order
    end

    local results = {}
    for i, wf in ipairs(selected) do
        run_workflow(wf, orders[i], opts.params or {}, results)
    end
    local all_ok = print_summary(results, json, round_ms(now() - t0))
    return all_ok and 0 or 1
end

function M.start(chunk, opts)
    local st = {}
    goroutine.spawn(function()
        local ok, code = xpcall(main, debug.traceback, chunk, opts)
        if ok then
            st.exit = code
        else
            io.stderr:write("mutirao: internal error: ", tostring(code), "\n")
            st.exit = 1
        end
    end)
    return st
end

return M
