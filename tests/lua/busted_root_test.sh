#!/usr/bin/env bash
# tests/lua/busted_root_test.sh: plain `busted` at the root of a checkout
# built into build/ (.busted): in a temporary copy of the root (links to
# the sources, build/ a link to BUILD_DIR), `busted --list` names one test
# per tests/lua/*_spec.lua, and plain `busted` with a filter runs two of
# them, each in its own busted under lua5.4 (the whole run is what the
# lua.* tests already do, one per spec file).
#
#   busted_root_test.sh SOURCE_DIR BUILD_DIR BUSTED
set -euo pipefail
SRC="$1" BUILD="$2" BUSTED="$3"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/mutirao-busted.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for entry in "$SRC"/* "$SRC"/.busted; do
    name="$(basename "$entry")"
    [[ "$name" == build* ]] || ln -s "$entry" "$TMP/$name"
done
ln -s "$BUILD" "$TMP/build"
cd "$TMP"
unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 MUTIRAO_MODULE_DIR

specs="$(cd tests/lua && ls ./*_spec.lua | sed 's|^\./||' | sort)"
echo "---- busted --list"
list="$("$BUSTED" --list 2>&1)" || { echo "$list"; fail "busted --list"; }
echo "$list"
listed="$(sed -n 's/^.* one busted per spec file \(.*_spec\.lua\)$/\1/p' <<<"$list" | sort)"
[[ "$listed" == "$specs" ]] || fail "busted --list does not name every tests/lua/*_spec.lua once"

echo "---- busted --filter=waitgroup_spec --filter=pipeline_spec"
out="$("$BUSTED" --output=plainTerminal --filter=waitgroup_spec --filter=pipeline_spec 2>&1)" ||
    { echo "$out"; fail "busted"; }
echo "$out"
grep -q "^2 successes / 0 failures / 0 errors / 0 pending" <<<"$out" || fail "expected 2 successes"
echo "busted at the root: ok"
