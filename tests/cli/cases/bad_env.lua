-- Tuning variables with values that are not whole numbers in range: each is
-- named on stderr with the value used instead, and the run goes on.
local g = require("goroutine")
assert(g.pool_create("env", { workers = 2 }))
print("pool:", g.await(g.pool_submit("env", function(n) return n * 2 end, 21)))
print("timeout:", g.timeout(20, function() while true do end end))
