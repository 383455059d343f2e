#!/usr/bin/env bash
# tests/install/luarocks_test.sh: the rockspec as a Lua user uses it, with
# Debian's luarocks, for Lua 5.4, into temporary trees:
#   1. `luarocks make` in a copy of the checkout (never in the checkout:
#      the test writes nothing there) -> tree T1; the copy is a git work
#      tree, so the build must leave `git status` clean (.gitignore);
#   2. `luarocks pack mutirao-goroutine` (a binary rock of what T1 holds)
#      and `luarocks install` of that rock -> tree T2;
# then, in each tree, lua5.4 with `eval $(luarocks path)` requires
# goroutine, http and exec and runs goroutines that wait on exec together
# (one scheduler). goroutine.so must need no Kafka, Redis or OpenSSL.
#
#   luarocks_test.sh SOURCE_DIR LUA
set -euo pipefail
SRC="$1" LUA="$2"
ROCKSPEC=mutirao-goroutine-scm-1.rockspec

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mutirao-rock.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# As a user's shell: no Lua paths or MUTIRAO_* variables of ours; LuaRocks'
# own files (cache, config) in a HOME of the test's.
while IFS='=' read -r name _; do
    case "$name" in MUTIRAO_* | LUA_PATH* | LUA_CPATH* | LUA_INIT*) unset "$name" ;; esac
done < <(env)
export HOME="$TMP/home"
mkdir -p "$HOME"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
rocks() { luarocks --lua-version 5.4 "$@"; }

echo "---- a copy of the checkout (without .git and build trees), as a git work tree"
mkdir "$TMP/src"
tar -C "$SRC" --exclude=./.git --exclude='./build*' --exclude=./.cache -cf - . | tar -C "$TMP/src" -xf -
cd "$TMP/src"
[[ -f "$ROCKSPEC" ]] || fail "no $ROCKSPEC at the root of the checkout"
git init -q . && git add -A

echo "---- luarocks make (-> T1)"
rocks --tree "$TMP/T1" make >"$TMP/make.log" 2>&1 || { cat "$TMP/make.log"; fail "luarocks make"; }
tail -n 3 "$TMP/make.log"
left="$(git status --porcelain --untracked-files=all | grep -v '^A  ' || true)"
[[ -z "$left" ]] || fail "luarocks make left files git does not ignore:
$left"

# The modules of a tree, used as a Lua 5.4 user would.
check_tree() {
    local tree="$1" so out
    so="$tree/lib/lua/5.4/goroutine.so"
    [[ -f "$so" ]] || fail "$so is missing"
    for m in http exec; do
        [[ -f "$tree/share/lua/5.4/$m.lua" ]] || fail "$tree/share/lua/5.4/$m.lua is missing"
    done
    if readelf -d "$so" | grep -E "NEEDED" | grep -Ei "rdkafka|hiredis|libssl|libcrypto"; then
        fail "$so needs Kafka, Redis or OpenSSL"
    fi
    out="$(
        eval "$(rocks --tree "$tree" path)"
        "$LUA" -e '
local http, exec = require "http", require "exec"   -- before goroutine: same library
local g = require "goroutine"
assert(type(http.get) == "function")
local t0, wg, got = g.now(), g.wait_group(), {}
for i = 1, 2 do
    wg:add(1)
    g.spawn(function() got[i] = exec.run("sleep 0.3; echo " .. i).stdout wg:done() end)
end
wg:wait()
local ms = g.now() - t0
assert(ms < 550, "two 0.3 s commands in goroutines took " .. ms .. " ms")
print(g._backend(), got[1] .. got[2] == "1\n2\n")
print(package.searchpath("goroutine", package.cpath))' 2>&1
    )" || { echo "$out"; fail "lua5.4 with the modules of $tree"; }
    echo "$out"
    grep -q "^embedded	true$" <<<"$out" || fail "unexpected output with the modules of $tree"
    grep -qxF "$so" <<<"$out" || fail "goroutine.so was not the one of $tree"
}
check_tree "$TMP/T1"

echo "---- luarocks pack + luarocks install of the packed rock (-> T2)"
mkdir "$TMP/rocks"
(cd "$TMP/rocks" && rocks --tree "$TMP/T1" pack mutirao-goroutine) || fail "luarocks pack"
rock="$(ls "$TMP"/rocks/mutirao-goroutine-scm-1.*.rock)"
echo "packed: $(basename "$rock")"
rocks --tree "$TMP/T2" install "$rock" >"$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; fail "luarocks install $rock"; }
check_tree "$TMP/T2"
echo "luarocks: ok"
