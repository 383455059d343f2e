-- Streaming results back from pool tasks, with a limit on a shared resource.
-- The same script runs embedded (`mutirao run examples/fleet_channel.lua`)
-- and on a fleet (`mutirao run --fleet examples/fleet_channel.lua` with
-- mutirao-worker processes): there the channel, the semaphore and the
-- AtomicInt the tasks capture are kept in Redis, so tasks on several
-- machines send to the producer's `for v in progress:iter()`, at most two
-- of them "download" at once across the whole fleet, and they count bytes
-- in one counter.
local goroutine = require("goroutine")

goroutine.pool_create("fetchers", { workers = 4 })

local progress = goroutine.channel(8) -- task -> producer, as they go
local downloads = goroutine.semaphore(2) -- at most 2 at once, anywhere
local bytes = goroutine.atomic_int(0)
local busy, peak = goroutine.atomic_int(0), goroutine.atomic_int(0)

local files = { "a.csv", "b.csv", "c.csv", "d.csv", "e.csv", "f.csv" }
local ids = {}
for i, name in ipairs(files) do
    ids[i] = goroutine.pool_submit("fetchers", function(file, size)
        progress:send(file .. " queued")
        downloads:acquire()
        local now = busy:add(1)
        local seen = peak:load()
        while now > seen and not peak:compare_and_swap(seen, now) do
            seen = peak:load()
        end
        goroutine.sleep(100) -- the download
        bytes:add(size)
        busy:add(-1)
        downloads:release()
        progress:send(file .. " done")
        return size
    end, name, i * 1000)
end

-- close the channel once every task has finished
goroutine.spawn(function()
    for _, id in ipairs(ids) do
        assert(goroutine.await(id))
    end
    progress:close()
end)

local done = 0
for line in progress:iter() do
    if line:find(" done$") then
        done = done + 1
    end
end
print(string.format("%d files, %d bytes, at most %d downloading at once", done, bytes:load(),
    peak:load()))
