-- Two workflows run in file order; --workflow picks one.
local a = task("alpha_task"):command(function() print("alpha ran") end):build()
local b = task("beta_task"):command(function() print("beta ran") end):build()
workflow.define("alpha"):description("first"):version("1.0"):tasks({ a })
workflow.define("beta"):description("second"):version("2.0"):tasks({ b })
