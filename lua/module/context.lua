-- context.lua: Go's context and errgroup (goroutine.context,
-- goroutine.errgroup). Embedded into the module; run once per VM with the
-- module table.
--
-- A context is cancelled by its cancel function, by its parent's
-- cancellation, or at its deadline (a timer of the scheduler: it keeps
-- nothing alive). Cancelling closes its done() channel, so a select can
-- wait for it, and cancels its children. err() says why. A context sent to
-- a pool task is cancelled in every VM holding it (its link).
local G = ...
local channel, after_call, close, recv_only = G.channel, G._after_call, G._close, G._recv_only
local wall_ms, local_only = G._wall_ms, G._local_only
local link_new, keys, put_new = G._link_new, G._keys, G._put_new
local setmetatable, type, error, select, pairs = setmetatable, type, error, select, pairs
local CANCELED, DEADLINE = "context canceled", "context deadline exceeded"

local Context = {}
Context.__index = Context
Context.__name = "goroutine.Context"
-- a context travels to a pool task as a table with this VM's Context
-- there: its parent, deadline and link (a cancellation shared by the VMs
-- holding it, lua/core/cancel_link.c); the rest is each VM's own (state)
G._link_class(Context)

-- context -> its VM's part: children (weak), the reason once cancelled,
-- the done channel (made on first done()), the deadline's timer
local state = setmetatable({}, { __mode = "k" })
-- link -> the contexts of this VM that have it (weak): a context and the
-- copies of it that came in pool tasks' values
local by_link = setmetatable({}, { __mode = "k" })

local function is_ctx(c)
    return getmetatable(c) == Context
end

local function check_self(c, fname)
    if not is_ctx(c) then
        error(("bad argument #1 to '%s' (context expected, got %s)"):format(fname, type(c)), 3)
    end
end

-- (each entry is made by one C call, put_new: this runs in goroutines,
-- which may be preempted at any line, and another goroutine of this VM
-- making the same entry meanwhile had its entry replaced: a context lost
-- from by_link was never cancelled)
local function st(c)
    local s = state[c]
    if not s then
        s = put_new(state, c,
            { children = setmetatable({}, { __mode = "k" }), cancelled = c.link:state() })
        put_new(by_link, c.link, setmetatable({}, { __mode = "k" }))[c] = true
    end
    return s
end

local function new(parent)
    local c = setmetatable({ parent = parent, deadline_ms = parent and parent.deadline_ms,
        link = link_new() }, Context)
    st(c)
    return c
end

local cancel

-- c's part in this VM: its done channel, its timer, its children here
local function cancel_here(c, why)
    local s = st(c)
    if s.finished then return end
    s.cancelled, s.finished = s.cancelled or why, true
    if s.done_ch then close(s.done_ch) end
    if s.timer then
        close(s.timer) -- stops it
        s.timer = nil
    end
    local children = s.children
    s.children = {}
    for child in pairs(children) do cancel(child, s.cancelled) end
    if c.parent and state[c.parent] then state[c.parent].children[c] = nil end
end

-- cancels c everywhere: the other VMs holding its link are told (once),
-- and every context of this VM with that link is cancelled here
function cancel(c, why)
    c.link:cancel(why)
    why = c.link:state() or why -- (another VM's reason may have come first)
    -- (over a copy of the set taken in one C call: this runs in the goroutine
    -- that cancels, which may be preempted inside the loop, and a context
    -- another goroutine adds to the set meanwhile broke a pairs() traversal:
    -- contexts it skipped stayed uncancelled, their waits hung)
    local others = keys(by_link[c.link])
    for i = 1, #others do cancel_here(others[i], why) end
    cancel_here(c, why)
end

-- another VM cancelled a link this VM holds (from the loop: cannot wait)
G._link_on_cancel(function(link, why)
    local cs = keys(by_link[link])
    for i = 1, #cs do cancel_here(cs[i], why) end
end)

local function child_of(parent, deadline_ms)
    local c = new(parent)
    if deadline_ms and (not c.deadline_ms or deadline_ms < c.deadline_ms) then
        c.deadline_ms = deadline_ms
    end
    -- a child first, then the parent's state: a goroutine preempted between
    -- the two while another cancels the parent is cancelled all the same (by
    -- that cancel, or by the check), never left out of both
    st(parent).children[c] = true
    local why = st(parent).cancelled or parent.link:state()
    if why then
        cancel(c, why)
    else
        if c.deadline_ms and c.deadline_ms ~= parent.deadline_ms then
            local left = c.deadline_ms - wall_ms()
            if left <= 0 then
                cancel(c, DEADLINE)
            else
                st(c).timer = after_call(left, function() cancel(c, DEADLINE) end)
            end
        end
    end
    -- (a C function calling c:cancel(): a Lua closure would take this
    -- file's tables along wherever it was sent)
    return c, G._cancel_func(c)
end

function G.context()
    return new(nil)
end

function Context:with_cancel()
    check_self(self, "with_cancel")
    return child_of(self, nil)
end

function Context:with_timeout(ms)
    check_self(self, "with_timeout")
    if type(ms) ~= "number" or not (ms >= 0) then
        error(("bad argument #1 to 'with_timeout' (non-negative number of milliseconds expected, got %s)")
            :format(type(ms) == "number" and tostring(ms) or type(ms)), 2)
    end
    return child_of(self, wall_ms() + ms)
end

function Context:with_deadline(epoch_ms)
    check_self(self, "with_deadline")
    if type(epoch_ms) ~= "number" or epoch_ms ~= epoch_ms then
        error(("bad argument #1 to 'with_deadline' (Unix time in milliseconds expected, got %s)")
            :format(type(epoch_ms)), 2)
    end
    return child_of(self, epoch_ms)
end

function Context:cancel()
    check_self(self, "cancel")
    cancel(self, CANCELED)
end

-- (the link first: another VM's cancel is seen at once, before its
-- message has run here)
local function reason(c)
    return st(c).cancelled or c.link:state()
end

function Context:is_cancelled()
    check_self(self, "is_cancelled")
    return reason(self) ~= nil
end

function Context:err()
    check_self(self, "err")
    return reason(self)
end

function Context:deadline()
    check_self(self, "deadline")
    return self.deadline_ms
end

function Context:done()
    check_self(self, "done")
    local s = st(self)
    if not s.done_ch then
        local ch = recv_only(channel()) -- closed by cancellation only
        -- (a cancel in another VM, of it or an ancestor, closes it: waiting
        -- on it is no deadlock)
        local c = self
        while c and not c.link:shared() do c = c.parent end
        if c then G._remote_close(ch) end
        -- (stored by one C call: a goroutine preempted between the look-up
        -- above and a store replaced the channel another one had been given,
        -- which no cancellation closed; the channel that lost is dropped)
        if put_new(s, "done_ch", ch) == ch then
            if s.finished then close(ch) end
            if not s.finished and reason(self) then cancel_here(self, reason(self)) end
        end
    end
    return s.done_ch
end

function Context:__tostring()
    local why = reason(self)
    if why then return "Context(" .. why .. ")" end
    if self.deadline_ms then
        return ("Context(deadline in %.0f ms)"):format(self.deadline_ms - wall_ms())
    end
    return "Context(active)"
end

-- ---- errgroup ----

local Group = {}
Group.__index = Group
Group.__name = "goroutine.ErrGroup"

local function check_group(g, fname)
    if getmetatable(g) ~= Group then
        error(("bad argument #1 to '%s' (errgroup expected, got %s)"):format(fname, type(g)), 3)
    end
end

local traceback = debug.traceback
local function with_traceback(e)
    if type(e) == "string" then return traceback(e, 2) end
    return e
end

function G.errgroup(ctx)
    if ctx ~= nil and not is_ctx(ctx) then
        error(("bad argument #1 to 'errgroup' (context expected, got %s)"):format(type(ctx)), 2)
    end
    local gctx = (ctx or new(nil)):with_cancel()
    -- (every field but the guard could travel: the codec meets the guard)
    local g = setmetatable({ wg = G.wait_group(), ctx = gctx, failed = false, err = nil,
        guard = local_only("an error group") }, Group)
    return g, gctx
end

function Group:go(fn, ...)
    check_group(self, "go")
    if type(fn) ~= "function" then
        error(("bad argument #1 to 'go' (function expected, got %s)"):format(type(fn)), 2)
    end
    local wg = self.wg
    wg:add(1)
    local n, args = select("#", ...), { ... }
    G.spawn(function()
        -- done() even when a timeout kills this goroutine midway
        local _ <close> = setmetatable({}, { __close = function() wg:done() end })
        local ok, err = xpcall(fn, with_traceback, table.unpack(args, 1, n))
        if not ok and not self.failed then -- (error(nil) is an error too)
            self.failed, self.err = true, err
            self.ctx:cancel()
        end
    end)
end

function Group:wait()
    check_group(self, "wait")
    self.wg:wait()
    self.ctx:cancel()
    if self.failed then return false, self.err end
    return true
end

function Group:__tostring()
    if self.failed then return "ErrGroup(failed: " .. tostring(self.err):match("^[^\n]*") .. ")" end
    return ("ErrGroup(%d running)"):format(self.wg:count())
end
