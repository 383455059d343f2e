-- tests/lua/spec_files.lua: what plain `busted` at the root of the checkout
-- runs (.busted): every tests/lua/*_spec.lua, each in a busted of its own
-- under lua5.4, from tests/lua, with the environment ctest gives it
-- (tests/lua/lua.cmake). The specs are written for a process each: a
-- goroutine or pool one leaves behind would change what the next one sees
-- (a wait "nothing can end" would then wait). One test per spec file; a
-- failing one shows that busted's output. The module is the goroutine.so
-- busted's cpath finds (build/lib in .busted; `busted --cpath=DIR/?.so`
-- for another build).
local busted_script = arg and arg[0] or "busted"
local lua = os.getenv("MUTIRAO_LUA") or "lua5.4"

local function shell_quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function absolute(path)
    if path:sub(1, 1) == "/" then return path end
    local pwd = assert(os.getenv("PWD"), "PWD is not set")
    return pwd .. "/" .. path:gsub("^%./", "")
end

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local spec_dir = absolute(here)
local so = package.searchpath("goroutine", package.cpath)
local module_dir = so and absolute(so:match("^(.*)/[^/]*$"))

-- the spec files, sorted
local specs = {}
local ls = assert(io.popen("ls " .. shell_quote(spec_dir)))
for name in ls:lines() do
    if name:match("_spec%.lua$") then specs[#specs + 1] = name end
end
ls:close()
table.sort(specs)

describe("tests/lua, one busted per spec file", function()
    it("finds the goroutine module and the spec files", function()
        assert(module_dir, "goroutine.so is not on busted's cpath (build first: "
            .. "cmake -S . -B build && cmake --build build -j2)")
        assert.is_true(#specs > 0, "no *_spec.lua in " .. spec_dir)
    end)

    for _, name in ipairs(specs) do
        it(name, function()
            assert(module_dir, "goroutine.so is not on busted's cpath")
            local cmd = table.concat({
                "cd", shell_quote(spec_dir), "&&",
                "MUTIRAO_LUA=" .. shell_quote(lua),
                "MUTIRAO_MODULE_DIR=" .. shell_quote(module_dir),
                "SANDBOX_SPEC_API_TOKEN=t0ken SANDBOX_SPEC_PLAIN=plain",
                "timeout -s KILL 120", shell_quote(lua), shell_quote(busted_script), "--ignore-lua",
                "--lpath=./?.lua", "--cpath=" .. shell_quote(module_dir .. "/?.so"),
                "--output=plainTerminal", shell_quote(name), "2>&1",
            }, " ")
            local p = assert(io.popen(cmd))
            local out = p:read("a")
            local ok, how, code = p:close()
            assert.is_true(ok == true, string.format("%s: busted exited (%s %s)%s:\n%s", name, how,
                tostring(code), code == 137 and ", killed after 120 s" or "", out))
        end)
    end
end)
