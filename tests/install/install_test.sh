#!/usr/bin/env bash
# tests/install/install_test.sh: `cmake --install` into a temporary prefix,
# then what a user does with that prefix alone: build examples/producer.c
# with pkg-config (no -I/-L by hand) and run it on the embedded backend,
# require the Lua modules from the stock lua5.4 with only the prefix's
# standard cpath, run the installed commands and read their man pages.
#
#   install_test.sh SOURCE_DIR BUILD_DIR LIBDIR LUA_CMOD_DIR LUA
# LIBDIR and LUA_CMOD_DIR as configured (CMAKE_INSTALL_LIBDIR,
# MUTIRAO_LUA_CMOD_DIR); an absolute one would install outside the
# temporary prefix, so the test is skipped (exit 77) then.
set -euo pipefail
SRC="$1" BUILD="$2" LIBDIR="$3" CMOD="$4" LUA="$5"

for d in "$LIBDIR" "$CMOD"; do
    if [[ "$d" == /* ]]; then
        echo "skipped: $d is absolute (it would install outside a temporary prefix)"
        exit 77
    fi
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/mutirao-install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
P="$TMP/prefix"
fail() { echo "FAIL: $*" >&2; exit 1; }

# The commands run as a user's would: no MUTIRAO_* variable (embedded
# backend, no fleet), no Lua or pkg-config paths of ours, from a directory
# without config/.
while IFS='=' read -r name _; do
    case "$name" in MUTIRAO_* | LUA_PATH* | LUA_CPATH* | PKG_CONFIG_* | LD_LIBRARY_PATH | DESTDIR) unset "$name" ;; esac
done < <(env)
cd "$TMP"

echo "---- cmake --install $BUILD --prefix '$P'"
cmake --install "$BUILD" --prefix "$P" >"$TMP/install.log" || { cat "$TMP/install.log"; fail "cmake --install"; }

echo "---- the installed files"
for f in bin/mutirao bin/mutirao-worker \
    "$CMOD/goroutine.so" "$CMOD/http.so" "$CMOD/exec.so" "$CMOD/goroutine_fleet.so" \
    include/mutirao.h "$LIBDIR/libmutirao.so" "$LIBDIR/libmutirao.a" "$LIBDIR/pkgconfig/mutirao.pc" \
    share/mutirao/mutirao.conf share/man/man1/mutirao.1 share/man/man1/mutirao-worker.1; do
    [[ -e "$P/$f" ]] || fail "$P/$f was not installed"
    echo "  $f"
done
# http.so and exec.so are links to goroutine.so (one loaded object, one scheduler)
for m in http exec; do
    [[ "$(readlink "$P/$CMOD/$m.so")" == goroutine.so ]] || fail "$CMOD/$m.so is not a link to goroutine.so"
done
cmp -s "$SRC/config/mutirao.conf" "$P/share/mutirao/mutirao.conf" || fail "share/mutirao/mutirao.conf differs from config/mutirao.conf"

echo "---- no dependency missing, nothing pointing into the build tree"
for f in "$P"/bin/* "$P/$LIBDIR"/libmutirao.so "$P/$CMOD"/*.so; do
    deps="$(ldd "$f")"
    if grep -q "not found" <<<"$deps"; then
        echo "$deps"
        fail "$f: a library is not found"
    fi
    rpath="$(readelf -d "$f" | grep -E "R(UN)?PATH" || true)"
    if grep -qF "$BUILD" <<<"$rpath"; then
        echo "$rpath"
        fail "$f: its RPATH/RUNPATH names the build tree"
    fi
done

echo "---- mutirao.pc"
export PKG_CONFIG_PATH="$P/$LIBDIR/pkgconfig"
[[ "$(pkg-config --variable=prefix mutirao)" == "$P" ]] ||
    fail "mutirao.pc: prefix is '$(pkg-config --variable=prefix mutirao)', not '$P'"
pkg-config --cflags --libs mutirao

echo "---- examples/producer.c built with pkg-config alone, run from the prefix"
cp "$SRC/examples/producer.c" "$TMP/producer.c"
# shellcheck disable=SC2046 # the words of pkg-config's output are the flags
cc -o "$TMP/producer" "$TMP/producer.c" $(pkg-config --cflags --libs mutirao msgpack)
out="$(LD_LIBRARY_PATH="$P/$LIBDIR" "$TMP/producer" 2>&1)" || { echo "$out"; fail "the producer failed"; }
echo "$out"
grep -q "^doubled 1..10: total 110$" <<<"$out" || fail "the producer's output lacks 'doubled 1..10: total 110'"
grep -q "^libmutirao 0.1.0$\|^libmutirao [0-9]" <<<"$out" || fail "the producer did not print libmutirao's version"

echo "---- lua5.4 with the prefix's standard cpath only"
export LUA_CPATH="$P/$CMOD/?.so;;"
out="$("$LUA" -e '
local g = require "goroutine"
local http, exec = require "http", require "exec"
assert(type(http.get) == "function" and type(exec.run) == "function")
local r = exec.run({ "echo", "from exec" })
local wg, n = g.wait_group(), 0
for _ = 1, 3 do wg:add(1) g.spawn(function() g.sleep(10) n = n + 1 wg:done() end) end
wg:wait()
print(g._backend(), n, (r.stdout:gsub("\n", "")))
print(package.searchpath("goroutine", package.cpath))' 2>&1)" || { echo "$out"; fail "lua5.4 could not use the installed modules"; }
echo "$out"
grep -q "^embedded	3	from exec$" <<<"$out" || fail "unexpected output from the installed modules"
grep -qF "$P/$CMOD/goroutine.so" <<<"$out" || fail "goroutine.so was not the installed one"
out="$("$LUA" -e 'print(require("goroutine_fleet")._backend())' 2>&1)" || { echo "$out"; fail "require goroutine_fleet"; }
echo "goroutine_fleet: $out"
unset LUA_CPATH

echo "---- the installed commands"
"$P/bin/mutirao" version
# (grep reads all of it: with -q on a pipe the command could get SIGPIPE)
for cmd in mutirao mutirao-worker; do
    out="$("$P/bin/$cmd" --help)" || fail "$cmd --help exits with $?"
    grep -q "^usage: $cmd " <<<"$out" || fail "$cmd --help prints no usage line"
done
out="$("$P/bin/mutirao" run "$SRC/examples/hello.lua" 2>&1)" || { echo "$out"; fail "mutirao run examples/hello.lua"; }
echo "$out"
grep -q "^all 3 goroutines finished$" <<<"$out" || fail "mutirao run examples/hello.lua: unexpected output"

echo "---- the man pages"
for page in mutirao mutirao-worker; do
    f="$P/share/man/man1/$page.1"
    if command -v man >/dev/null 2>&1; then
        text="$(LC_ALL=C MANWIDTH=80 man -l "$f" 2>&1)" || { echo "$text"; fail "man -l $f"; }
        grep -q "^NAME" <<<"$text" && grep -q "^OPTIONS\|^RUN OPTIONS" <<<"$text" ||
            { echo "$text"; fail "$f: no NAME or OPTIONS section"; }
        # every option the command's --help names is in its page
        for opt in $("$P/bin/$page" --help | grep -oE -- "--[a-z][a-z-]+" | sort -u); do
            grep -qF -- "$opt" <<<"$text" || fail "$f does not document $opt (in $page --help)"
        done
        echo "  man -l $f: ok"
    else
        fail "man is not installed (scripts/deps.sh installs man-db)"
    fi
done
echo "install: ok"
