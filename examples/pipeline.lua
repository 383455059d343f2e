-- A pipeline of two stages, then fan-out to two readers and fan-in back:
-- numbers are squared by 4 workers, then labelled by one.
local goroutine = require("goroutine")

local numbers = goroutine.channel()
goroutine.spawn(function()
    for n = 1, 20 do numbers:send(n) end
    numbers:close()
end)

local out, stats = goroutine.pipeline(numbers, {
    { workers = 4, fn = function(n)
        goroutine.sleep(10) -- some work per value
        return n * n
    end },
    { workers = 1, fn = function(sq) return { square = sq, odd = sq % 2 == 1 } end },
})

-- two readers share the results (each value reaches one of them) ...
local a, b = table.unpack(goroutine.fan_out(out, 2))
-- ... and one channel collects what both pass on
local merged = goroutine.fan_in({ a, b })

local sum, odd = 0, 0
merged:range(function(r)
    sum = sum + r.square
    if r.odd then odd = odd + 1 end
end)
print(string.format("sum of squares 1..20 = %d, %d odd, %d stage errors", sum, odd, stats.errors))
