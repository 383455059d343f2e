-- A Mutex guards a bank account that 50 goroutines deposit into: each
-- deposit reads the balance, sleeps (an I/O call), then writes it back.
-- Without the lock, the sleeps would interleave and lose deposits.
local goroutine = require("goroutine")
local account = { balance = 0, lock = goroutine.mutex() }
local wg = goroutine.wait_group()
for i = 1, 50 do
    wg:add(1)
    goroutine.spawn(function()
        account.lock:lock()
        local balance = account.balance
        goroutine.sleep(1) -- the other goroutines run meanwhile, but wait for the lock
        account.balance = balance + 10
        account.lock:unlock()
        wg:done()
    end)
end
wg:wait()
print("balance: " .. account.balance .. " (50 deposits of 10)")
print(tostring(account.lock))
