-- dsl.lua: the task-file DSL: task(name) builders and workflow.define(name).
--
-- dsl.new() returns a fresh registry { task = fn, workflow = tbl, tasks = {built tasks in
-- definition order}, workflows = {defined workflows in order} } whose `task` and `workflow`
-- become the task file's globals. Definition mistakes raise a DefinitionError (a table
-- with a `msg` naming the file:line of the user's call) so that the runner can report
-- them in one line.
local M = {}

local DefinitionError = {}
DefinitionError.__index = DefinitionError
DefinitionError.__tostring = function(e) return e.msg end
M.DefinitionError = DefinitionError

local this_source = debug.getinfo(1, "S").source

-- file:line of the first caller outside this file.
local function where()
    for level = 3, 50 do
        local info = debug.getinfo(level, "Sl")
        if not info then break end
        if info.source ~= this_source and info.currentline and info.currentline > 0 then
            return info.short_src .. ":" .. info.currentline .. ": "
        end
    end
    return ""
end

local function fail(fmt, ...)
    error(setmetatable({ msg = where() .. string.format(fmt, ...) }, DefinitionError), 0)
end
M.fail = fail

function M.is_definition_error(e)
    return getmetatable(e) == DefinitionError
end

-- Durations: "500ms", "30s", "2m", "1h", "1m30s", "1.5s"; a number is seconds.
-- Returns milliseconds, or nil when the value is no valid positive duration.
local unit_ms = { ms = 1, s = 1000, m = 60000, h = 3600000 }

function M.parse_duration(v)
    if type(v) == "number" then
        if v > 0 and v <= 1e9 then return v * 1000 end
        return nil
    end
    if type(v) ~= "string" then return nil end
    local s = v:match("^%s*(.-)%s*$")
    if s == "" then return nil end
    local total, pos = 0, 1
    while pos <= #s do
        local num, unit, nxt = s:match("^(%d+%.?%d*)(%a+)()", pos)
        if not num or not unit_ms[unit] then return nil end
        total = total + tonumber(num) * unit_ms[unit]
        pos = nxt
    end
    if total <= 0 or total > 1e12 then return nil end -- 1e12 ms: about 31 years
    return total
end

-- A duration in ms as a short human string: 500ms, 30s, 1.5s, 2m, 1m30s, 1h.
local function trim_num(x)
    if x == math.floor(x) then return string.format("%d", x) end
    local s = string.format("%.3f", x):gsub("0+$", ""):gsub("%.$", "")
    if s == "0" then s = string.format("%g", x) end -- under a microsecond
    return s
end

function M.format_duration(ms)
    if ms < 1000 then return trim_num(ms) .. "ms" end
    if ms < 60000 then return trim_num(ms / 1000) .. "s" end
    local h = ms // 3600000
    local m = (ms % 3600000) // 60000
    local sec = (ms % 60000) / 1000
    local out = ""
    if h > 0 then out = out .. string.format("%dh", h) end
    if m > 0 then out = out .. string.format("%dm", m) end
    if sec > 0 then out = out .. trim_num(sec) .. "s" end
    return out
end

local function check_string(what, v, owner)
    if type(v) ~= "string" then
        fail("%s: %s expects a string, got %s", owner, what, type(v))
    end
    return v
end

function M.new()
    local R = { tasks = {}, workflows = {}, by_name = {}, wf_by_name = {} }

    -- ---- tasks ----
    local Task = {}
    Task.__index = Task
    Task.__tostring = function(t) return "task '" .. t._name .. "'" end
    R.Task = Task

    local function owner(t) return "task '" .. t._name .. "'" end

    local function setter_ok(t, what)
        if t._built then fail("%s is already built: cannot change its %s", owner(t), what) end
    end

    function Task:name() return self._name end

    -- description(s) sets it while building; description() reads it (as `this:description()`).
    function Task:description(s)
        if s == nil then return self._description end
        setter_ok(self, "description")
        self._description = check_string("description", s, owner(self))
        return self
    end

    function Task:command(fn)
        setter_ok(self, "command")
        if type(fn) ~= "function" then
            fail("%s: command expects a function, got %s", owner(self), type(fn))
        end
        self._command = fn
        return self
    end

    function Task:timeout(v)
        if v == nil then return self._timeout_ms end
        setter_ok(self, "timeout")
        local ms = M.parse_duration(v)
        if not ms then
            fail("%s: invalid timeout %s (expected a duration such as \"500ms\", \"30s\", "
                .. "\"2m\", \"1h\", \"1m30s\" or a positive number of seconds)",
                owner(self), type(v) == "string" and string.format("%q", v) or tostring(v))
        end
        self._timeout_ms = ms
        self._timeout_text = M.format_duration(ms)
        return self
    end

    function Task:delegate_to(name)
        if name == nil then return self._delegate end
        setter_ok(self, "delegate_to")
        self._delegate = check_string("delegate_to", name, owner(self))
        return self
    end

    function Task:depends_on(deps)
        setter_ok(self, "depends_on")
        if type(deps) == "string" or getmetatable(deps) == Task then deps = { deps } end
        if type(deps) ~= "table" then
            fail("%s: depends_on expects a list of task names or tasks, got %s",
                owner(self), type(deps))
        end
        for i, d in ipairs(deps) do
            if getmetatable(d) == Task then
                self._deps[#self._deps + 1] = d._name
            elseif type(d) == "string" then
                self._deps[#self._deps + 1] = d
            else
                fail("%s: depends_on: element %d is a %s, expected a task name or a task",
                    owner(self), i, type(d))
            end
        end
        return self
    end

    function Task:build()
        if self._built then return self end
        if not self._command then
            fail("%s has no command: call :command(function(this, params) ... end) "
                .. "before :build()", owner(self))
        end
        self._built = true
        R.tasks[#R.tasks + 1] = self
        return self
    end

    function R.task(name)
        if type(name) ~= "string" or name == "" then
            fail("task(name): a non-empty string expected, got %s", type(name))
        end
        return setmetatable({ _name = name, _deps = {} }, Task)
    end

    -- ---- workflows ----
    local Workflow = {}
    Workflow.__index = Workflow
    Workflow.__tostring = function(w) return "workflow '" .. w._name .. "'" end
    R.Workflow = Workflow

    local function wowner(w) return "workflow '" .. w._name .. "'" end

    function Workflow:name() return self._name end

    function Workflow:description(s)
        if s == nil then return self._description end
        self._description = check_string("description", s, wowner(self))
        return self
    end

    function Workflow:version(v)
        if v == nil then return self._version end
        if type(v) ~= "string" and type(v) ~= "number" then
            fail("%s: version expects a string, got %s", wowner(self), type(v))
        end
        self._version = tostring(v)
        return self
    end

    function Workflow:tasks(list)
        if list == nil then return self._tasks end
        if type(list) ~= "table" or getmetatable(list) == Task then
            fail("%s: tasks expects a list of tasks, got %s", wowner(self), type(list))
        end
        local out = {}
        for i, t in ipairs(list) do
            if getmetatable(t) ~= Task and type(t) ~= "string" then
                fail("%s: tasks: element %d is a %s, expected a task (or a task name)",
                    wowner(self), i, type(t))
            end
            out[#out + 1] = t
        end
        self._tasks = out
        return self
    end

    function Workflow:config(cfg)
        if cfg == nil then return self._config end
        if type(cfg) ~= "table" then
            fail("%s: config expects a table, got %s", wowner(self), type(cfg))
        end
        if cfg.timeout ~= nil then
            local ms = M.parse_duration(cfg.timeout)
            if not ms then
                fail("%s: invalid timeout %s in config (expected a duration such as \"30s\", "
                    .. "\"5m\", \"1m30s\" or a positive number of seconds)", wowner(self),
                    type(cfg.timeout) == "string" and string.format("%q", cfg.timeout)
                    or tostring(cfg.timeout))
            end
            self._timeout_ms = ms
            self._timeout_text = M.format_duration(ms)
        end
        self._config = cfg
        return self
    end

    -- Accepted for symmetry with tasks: a workflow is registered when defined.
    function Workflow:build() return self end

    R.workflow = {}
    function R.workflow.define(name)
        if type(name) ~= "string" or name == "" then
            fail("workflow.define(name): a non-empty string expected, got %s", type(name))
        end
        if R.wf_by_name[name] then fail("workflow '%s' is already defined", name) end
        local w = setmetatable({ _name = name, _tasks = {}, _config = {} }, Workflow)
        R.workflows[#R.workflows + 1] = w
        R.wf_by_name[name] = w
        return w
    end

    return R
end

return M
