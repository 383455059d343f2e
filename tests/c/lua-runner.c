/* lua-runner.c: runs a Lua test script in a VM built and linked like the
 * product's (goroutine preloaded), so that sanitizers see every line of the
 * runtime, including the pool VM threads. Exit status 0 when the script
 * ends without error. Usage: mutirao-test-lua FILE [ARGS...] */
#include <stdio.h>

#include <lauxlib.h>
#include <lualib.h>

#include "goroutine.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [ARGS...]\n", argv[0]);
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (!L)
        return 1;
    luaL_openlibs(L);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 0);
    lua_pop(L, 1);
    lua_createtable(L, argc, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    int rc = 0;
    if (luaL_dofile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        rc = 1;
    }
    lua_close(L);
    return rc;
}
