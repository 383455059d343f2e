-- Prints the params it receives.
task("show"):command(function(this, params)
    local keys = {}
    for k in pairs(params) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do print("param " .. k .. "=" .. params[k]) end
    return params.env == "prod", "env is " .. tostring(params.env)
end):build()
