/* lua_test.h: what the C tests that drive Lua states share: a fresh state
 * with the standard libraries, and LUA_RUN, which runs a chunk and fails
 * the test (printing the Lua error) when it raises. */
#ifndef MUTIRAO_LUA_TEST_H
#define MUTIRAO_LUA_TEST_H

#include <stdio.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Runs a Lua chunk; on error prints it and fails the test. */
#define LUA_RUN(L, code)                                                                           \
    do {                                                                                           \
        if (luaL_dostring((L), (code)) != LUA_OK) {                                                \
            fprintf(stderr, "%s:%d: Lua error: %s\n", __FILE__, __LINE__, lua_tostring((L), -1));  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* A new state with the standard libraries. */
static inline lua_State *lua_test_vm(void)
{
    lua_State *L = luaL_newstate();
    if (L)
        luaL_openlibs(L);
    return L;
}

#endif
