-- Channels across pool VMs: the main VM sends numbers on a channel, four
-- pool tasks (each in a VM of its own thread, in parallel on several cores)
-- take them off it, do CPU work on each, and send the results on a second
-- channel that the main VM ranges over. The channels are the same objects
-- in every VM: a pool task captures them like any other upvalue.
local goroutine = require("goroutine")

goroutine.pool_create("crunch", { workers = 4 })

local numbers = goroutine.channel(16)
local results = goroutine.channel(16)

local function collatz_steps(n) -- CPU work: steps to reach 1
    local steps = 0
    while n ~= 1 do
        n = n % 2 == 0 and n // 2 or 3 * n + 1
        steps = steps + 1
    end
    return steps
end

local tasks = {}
for w = 1, 4 do
    tasks[w] = goroutine.pool_submit("crunch", function()
        local done = 0
        for n in numbers:iter() do -- until the main VM closes `numbers`
            results:send({ n = n, steps = collatz_steps(n) })
            done = done + 1
        end
        return done
    end)
end

goroutine.spawn(function()
    for n = 1, 20000 do
        numbers:send(n)
    end
    numbers:close()
end)

-- once every task has returned, nothing more will be sent: close results
goroutine.spawn(function()
    local total = 0
    for _, id in ipairs(tasks) do
        local ok, done = goroutine.await(id)
        assert(ok, done)
        total = total + done
    end
    print(("4 pool tasks took %d numbers"):format(total))
    results:close()
end)

local best, count = { steps = -1 }, 0
for r in results:iter() do
    count = count + 1
    if r.steps > best.steps then best = r end
end
print(("%d results; the longest: %d takes %d steps"):format(count, best.n, best.steps))
goroutine.pool_close("crunch")
