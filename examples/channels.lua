-- Channels: a producer, three workers and a collector, wired with channels.
-- The producer sends 9 jobs on an unbuffered channel and closes it; each
-- worker takes jobs until the channel is closed and drained, and sends its
-- results on a buffered channel; the collector ranges over the results.
local goroutine = require("goroutine")

local jobs = goroutine.channel()      -- unbuffered: a send waits for a worker
local results = goroutine.channel(4)  -- buffered: workers run ahead of the collector

goroutine.spawn(function()
    for n = 1, 9 do
        jobs:send(n)
    end
    jobs:close()
end)

local workers = goroutine.wait_group()
for w = 1, 3 do
    workers:add(1)
    goroutine.spawn(function()
        for n in jobs:iter() do
            goroutine.sleep(50) -- some work
            results:send({ worker = w, job = n, square = n * n })
        end
        workers:done()
    end)
end

-- once every worker is done, nothing more will be sent: close results
goroutine.spawn(function()
    workers:wait()
    results:close()
end)

local total, count = 0, 0
results:range(function(r)
    count = count + 1
    total = total + r.square
end)
print(string.format("%d results, sum of squares %d", count, total))
