-- What a command returns decides its task's status: false or nil with a
-- message fail, true or nothing succeed.
task("nil_msg"):command(function() return nil, "broke" end):build()
task("false_msg"):command(function() return false, "broke too" end):build()
task("nothing"):command(function() end):build()
task("true_msg"):command(function() return true, "fine" end):build()
task("nil_only"):command(function() return nil end):build()
workflow.define("w"):tasks({ "nil_msg", "false_msg", "nothing", "true_msg", "nil_only" }):build()
