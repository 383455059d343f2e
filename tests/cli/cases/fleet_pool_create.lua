-- pool_create on the fleet, its answer printed (cli_test.py: the brokers
-- come from the file given with --config)
local g = require("goroutine")
print(g.pool_create("cfgfile"))
