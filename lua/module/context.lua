-- context.lua: Go's context and errgroup for the goroutines of one VM
-- (goroutine.context, goroutine.errgroup). Embedded into the module; run
-- once per VM with the module table.
--
-- A context is cancelled by its cancel function, by its parent's
-- cancellation, or at its deadline (a timer of the scheduler: it keeps
-- nothing alive). Cancelling closes its done() channel, so a select can
-- wait for it, and cancels its children. err() says why.
local G = ...
local channel, after_call, close, recv_only = G.channel, G._after_call, G._close, G._recv_only
local wall_ms, local_only = G._wall_ms, G._local_only
local setmetatable, type, error, select = setmetatable, type, error, select
local CANCELED, DEADLINE = "context canceled", "context deadline exceeded"

local Context = {}
Context.__index = Context
Context.__name = "goroutine.Context"

local function is_ctx(c)
    return getmetatable(c) == Context
end

local function check_self(c, fname)
    if not is_ctx(c) then
        error(("bad argument #1 to '%s' (context expected, got %s)"):format(fname, type(c)), 3)
    end
end

local function new(parent)
    return setmetatable({
        parent = parent,
        children = setmetatable({}, { __mode = "k" }), -- (a child forgets itself on cancel)
        cancelled = nil, -- the error once cancelled
        deadline_ms = parent and parent.deadline_ms, -- Unix ms, or nil
        done_ch = nil,   -- made on first done()
        timer = nil,     -- the deadline's timer (after_call's channel)
        guard = local_only("a context"), -- a copy in another VM would be cancelled by nothing
    }, Context)
end

local function cancel(c, why)
    if c.cancelled then return end
    c.cancelled = why
    if c.done_ch then close(c.done_ch) end
    if c.timer then
        close(c.timer) -- stops it
        c.timer = nil
    end
    for child in pairs(c.children) do cancel(child, why) end
    c.children = {}
    if c.parent then c.parent.children[c] = nil end
end

local function child_of(parent, deadline_ms)
    local c = new(parent)
    if deadline_ms and (not c.deadline_ms or deadline_ms < c.deadline_ms) then
        c.deadline_ms = deadline_ms
    end
    if parent.cancelled then
        cancel(c, parent.cancelled)
    else
        parent.children[c] = true
        if c.deadline_ms and c.deadline_ms ~= parent.deadline_ms then
            local left = c.deadline_ms - wall_ms()
            if left <= 0 then
                cancel(c, DEADLINE)
            else
                c.timer = after_call(left, function() cancel(c, DEADLINE) end)
            end
        end
    end
    return c, function() cancel(c, CANCELED) end
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

function Context:is_cancelled()
    check_self(self, "is_cancelled")
    return self.cancelled ~= nil
end

function Context:err()
    check_self(self, "err")
    return self.cancelled
end

function Context:deadline()
    check_self(self, "deadline")
    return self.deadline_ms
end

function Context:done()
    check_self(self, "done")
    if not self.done_ch then
        self.done_ch = recv_only(channel()) -- closed by cancellation only
        if self.cancelled then close(self.done_ch) end
    end
    return self.done_ch
end

function Context:__tostring()
    if self.cancelled then return "Context(" .. self.cancelled .. ")" end
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
    local gctx, cancel_fn = (ctx or new(nil)):with_cancel()
    local g = setmetatable({ wg = G.wait_group(), cancel = cancel_fn, failed = false, err = nil,
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
            self.cancel()
        end
    end)
end

function Group:wait()
    check_group(self, "wait")
    self.wg:wait()
    self.cancel()
    if self.failed then return false, self.err end
    return true
end

function Group:__tostring()
    if self.failed then return "ErrGroup(failed: " .. tostring(self.err):match("^[^\n]*") .. ")" end
    return ("ErrGroup(%d running)"):format(self.wg:count())
end
