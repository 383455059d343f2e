-- A task times out while a pool task it submitted spins forever: the task
-- fails at its deadline and the process exits (the pool task is abandoned).
task("t"):command(function()
  local g = require("goroutine")
  g.pool_create("p", { workers = 1 })
  local id = g.pool_submit("p", function() while true do end end)
  return g.await(id)
end):timeout("1s"):build()
