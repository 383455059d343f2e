-- examples/deploy.lua: ships a release to several targets at once with exec
-- and goroutines. Each target is simulated by a directory and local commands
-- (on real machines the same steps would be `ssh host ...` argv tables).
-- A target runs its steps in order; the targets run concurrently, so four
-- targets of ~0.7 s each take about 0.7 s, not 2.8 s. A failing step stops
-- its target only; the task fails if any target failed.
--
--   mutirao run examples/deploy.lua
--   mutirao run examples/deploy.lua --param version=v2.1.0 --param fail=db-01
local deploy = task("deploy_release")
    :description("Deploy a release to every target at once")
    :command(function(this, params)
        local goroutine = require("goroutine")
        local exec = require("exec")

        local version = params.version or "v2.0.0"
        local targets = { "web-01", "web-02", "web-03", "db-01" }
        local root = exec.run({ "mktemp", "-d", "/tmp/mutirao-deploy.XXXXXX" }).stdout:gsub("%s+$", "")

        -- The steps of one target; ${...} come from the step's environment.
        local steps = {
            { "prepare", "mkdir -p releases/$VERSION" },
            { "upload", "sleep 0.3; echo \"app $VERSION for $TARGET\" > releases/$VERSION/app.txt" },
            { "switch", "ln -sfn releases/$VERSION current" },
            { "restart", "sleep 0.4; [ \"$FAIL\" != \"$TARGET\" ] || { echo 'service did not come up' >&2; exit 1; }; echo restarted" },
            { "verify", "cat current/app.txt" },
        }

        local function deploy_to(target)
            local dir = root .. "/" .. target
            exec.run({ "mkdir", "-p", dir })
            local env = { TARGET = target, VERSION = version, FAIL = params.fail or "" }
            local out
            for _, step in ipairs(steps) do
                local r = exec.run(step[2], { cwd = dir, env = env, timeout = 10 })
                if not r.ok then
                    local why = r.timed_out and "timed out" or ("exit " .. r.code)
                    error(string.format("%s: %s failed (%s): %s", target, step[1], why,
                        (r.stderr:gsub("%s+$", ""))), 0)
                end
                out = r.stdout
            end
            return out:gsub("%s+$", "")
        end

        log.info("deploying " .. version .. " to " .. #targets .. " targets...")
        local handles = {}
        for i, target in ipairs(targets) do
            handles[i] = goroutine.async(deploy_to, target)
        end

        local ok_count = 0
        for i, result in ipairs(goroutine.await_all(handles)) do
            if result.success then
                ok_count = ok_count + 1
                log.info(targets[i] .. ": verified '" .. result.values[1] .. "'")
            else
                log.error((result.error:match("^[^\n]*")))
            end
        end
        exec.run({ "rm", "-rf", root })

        log.info(ok_count .. "/" .. #targets .. " targets deployed")
        return ok_count == #targets, ok_count .. "/" .. #targets .. " targets on " .. version
    end)
    :timeout("1m")
    :build()

workflow.define("deploy")
    :description("Release to all targets")
    :version("1.0.0")
    :tasks({ deploy })
