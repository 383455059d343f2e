-- A task whose exec.run outlives the task's timeout: the timeout cancels the
-- task's goroutines, which kills the child and its process group (the
-- shell writes its pid, = the group id, to params.marker first).
local slow = task("slow_command")
    :command(function(this, params)
        local r = exec.run("echo $$ > " .. params.marker .. "; sleep 30 & sleep 30")
        print("unreachable: exec.run returned " .. tostring(r.code))
        return true
    end)
    :timeout("300ms")
    :build()

workflow.define("exec_timeout"):tasks({ slow })
