-- A Semaphore of 3 lets at most 3 of 12 downloads run at once (100 ms each):
-- 4 waves, about 400 ms, never more than 3 in flight.
local goroutine = require("goroutine")
local slots = goroutine.semaphore(3)
local running, most = goroutine.atomic_int(0), 0
local wg = goroutine.wait_group()
local t0 = goroutine.now()
for i = 1, 12 do
    wg:add(1)
    goroutine.spawn(function()
        slots:acquire()
        local n = running:add(1)
        if n > most then most = n end
        goroutine.sleep(100) -- the download
        running:add(-1)
        slots:release()
        wg:done()
    end)
end
wg:wait()
print(string.format("12 downloads, at most %d at once, in %.1f s", most,
    (goroutine.now() - t0) / 1000))
print(tostring(slots))
